/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <signal.h>

#include <systemd/sd-daemon.h>

#include "iovirt-domain.h"
#include "iovirt-names.h"
#include "iovirtd-assign.h"
#include "iovirtd-bouncer.h"
#include "iovirtd-log.h"
#include "iovirtd-manager.h"
#include "iovirtd-policy.h"

static void help(void) {
        printf("iovirtd [OPTIONS]\n\n"
               "The iovirt system service: owns the host's PCI and IOMMU model and serves\n"
               IOVIRT_BUS_NAME " on the system bus. Normally started by systemd.\n\n"
               "  -h --help       show this help\n"
               "     --version    show the version\n"
               "  -d --debug      log debug messages too\n"
               "     --list-methods\n"
               "                  list the methods of " IOVIRT_MANAGER_INTERFACE " with the polkit\n"
               "                  action each needs (or read-only), and exit\n"
               "\nIt runs in the foreground, logs to the journal (or stderr), and tells\n"
               "systemd when it is ready (Type=notify).\n");
}

/* From the vtable itself: what is exported is what is listed */
static void list_methods(void) {
        for (const sd_bus_vtable *v = manager_vtable; v->type != _SD_BUS_VTABLE_END; v++) {
                if (v->type != _SD_BUS_VTABLE_METHOD)
                        continue;
                const GuardedMethod *g = bouncer_find(IOVIRT_MANAGER_INTERFACE, v->x.method.member);
                if (v->x.method.handler != method_guarded)
                        printf("%s\tread-only\n", v->x.method.member);
                else if (g && g->escalate)
                        /* the second: what a caller needs for another uid's assignments */
                        printf("%s\t%s %s\n", v->x.method.member, g->action, IOVIRT_ACTION_RELEASE_ANY);
                else
                        printf("%s\t%s\n", v->x.method.member, g ? g->action : "denied (not in the table)");
        }
}

static int parse_argv(int argc, char **argv) {
        enum { ARG_VERSION = 0x100, ARG_LIST_METHODS };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "list-methods", no_argument, NULL, ARG_LIST_METHODS },
                { "debug", no_argument, NULL, 'd' },
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "hd", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("iovirtd %s\n", IOVIRT_VERSION);
                        return 0;
                case ARG_LIST_METHODS:
                        list_methods();
                        return 0;
                case 'd':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        fprintf(stderr, "iovirtd: unknown option '%s'; see iovirtd --help\n", argv[optind - 1]);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "iovirtd: takes no arguments\n");
                return -EINVAL;
        }
        return 1;
}

/* SIGTERM, SIGINT: no new transactions; exit once the running ones end */
static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        if (!m->stopping && m->jobs)
                log_info("Stopping once the running transactions have finished");
        m->stopping = true;
        if (!m->jobs)
                manager_exit(m);
        return 0;
}

static int run(void) {
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        r = manager_new(&m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up: %m");

        /* libvirt's client writes to its socket with plain write(2): a libvirtd gone away is EPIPE, not death */
        signal(SIGPIPE, SIG_IGN);
        /* domain XML is parsed on jobs' threads */
        iovirt_domain_init();

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, on_stop, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, on_stop, m)) < 0)
                return log_error_errno(r, "Failed to handle signals: %m");
        (void) sd_event_set_watchdog(m->event, true);

        /* Listen first, then read: an event between the two is applied again, harmlessly.
         * The model comes before the name: once the name is taken, every query is answered. */
        r = manager_start_monitor(m);
        if (r < 0)
                return r;
        r = manager_refresh(m);
        if (r < 0)
                return r;
        r = manager_load_policy(m);
        if (r < 0)
                return r;
        r = manager_load_state(m);
        if (r < 0)
                return r;
        r = manager_connect_bus(m);
        if (r < 0)
                return r;
        /* pid: consumers of the records: watched again, or released when gone */
        r = manager_restore_watches(m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the consumers' processes: %m");

        (void) sd_notify(false, "READY=1\nSTATUS=Serving " IOVIRT_BUS_NAME);
        log_info("Serving %s", IOVIRT_BUS_NAME);
        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char **argv) {
        int r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        return run() < 0 ? 1 : 0;
}
