/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "iovirtd-domain.h"
#include "iovirtd-job.h"
#include "iovirtd-log.h"
#include "iovirtd-policy.h"

struct Job {
        Manager *manager;
        sd_bus_message *request;
        int *groups;
        size_t n_groups;
        JobWork work;
        JobDone done;
        void *data;
        void (*free_data)(void *);
        pthread_t thread;
        int efd;                     /* written by the thread when work returns */
        sd_event_source *source;
        Job *prev, *next;
};

static Job *job_free(Job *j) {
        if (!j)
                return NULL;
        if (j->prev)
                j->prev->next = j->next;
        else if (j->manager->jobs == j)
                j->manager->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        sd_event_source_disable_unref(j->source);
        if (j->efd >= 0)
                close(j->efd);
        if (j->free_data)
                j->free_data(j->data);
        sd_bus_message_unref(j->request);
        free(j->groups);
        free(j);
        return NULL;
}

bool job_group_locked(Manager *m, int group) {
        for (Job *j = m->jobs; j; j = j->next)
                for (size_t i = 0; i < j->n_groups; i++)
                        if (j->groups[i] == group)
                                return true;
        return false;
}

static void *job_thread(void *userdata) {
        Job *j = userdata;
        j->work(j->data);
        /* an eventfd write cannot fail short of a bug; if it did, the job
         * would never finish and its groups stay Busy: say so loudly */
        if (eventfd_write(j->efd, 1) < 0)
                abort();
        return NULL;
}

/* The work has returned: back on the event loop */
static int job_finish(Job *j) {
        Manager *m = j->manager;

        pthread_join(j->thread, NULL);
        int r = j->done(m, j->request, j->data);
        if (r < 0)
                (void) sd_bus_reply_method_errno(j->request, r, NULL);
        job_free(j);
        /* a consumer that exited, or a domain that stopped, while one of its groups was in a job */
        manager_reap_consumers(m, false);
        domain_release_deferred(m);
        if (m->stopping && !m->jobs)
                manager_exit(m);
        return 0;
}

static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        eventfd_t v;
        (void) eventfd_read(fd, &v);
        return job_finish(userdata);
}

int job_start(Manager *m, sd_bus_message *request, const int *groups, size_t n_groups, JobWork work, JobDone done,
              void *data, void (*free_data)(void *)) {
        Job *j;
        int r;

        for (size_t i = 0; i < n_groups; i++)
                if (job_group_locked(m, groups[i])) {
                        if (free_data)
                                free_data(data);
                        return -EBUSY;
                }
        j = calloc(1, sizeof(Job));
        if (!j) {
                if (free_data)
                        free_data(data);
                return -ENOMEM;
        }
        *j = (Job) { .manager = m, .request = sd_bus_message_ref(request), .work = work, .done = done, .data = data,
                     .free_data = free_data, .efd = -EBADF, .next = m->jobs };
        if (m->jobs)
                m->jobs->prev = j;
        m->jobs = j;

        /* none: a job that holds no group (a libvirt lookup) */
        if (n_groups && !(j->groups = malloc(n_groups * sizeof(int)))) {
                job_free(j);
                return -ENOMEM;
        }
        if (n_groups)
                memcpy(j->groups, groups, n_groups * sizeof(int));
        j->n_groups = n_groups;
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0) {
                r = -errno;
                job_free(j);
                return r;
        }
        r = sd_event_add_io(m->event, &j->source, j->efd, EPOLLIN, on_job_done, j);
        if (r < 0) {
                job_free(j);
                return r;
        }
        r = -pthread_create(&j->thread, NULL, job_thread, j);
        if (r < 0) {
                job_free(j);
                return r;
        }
        return 0;
}

void job_finish_all(Manager *m) {
        while (m->jobs) {
                Job *j = m->jobs;      /* a linked job has its thread: job_start() unlinks it otherwise */
                eventfd_t v;
                struct pollfd p = { .fd = j->efd, .events = POLLIN };
                while (poll(&p, 1, -1) < 0 && errno == EINTR)
                        ;
                (void) eventfd_read(j->efd, &v);
                job_finish(j);
        }
}
