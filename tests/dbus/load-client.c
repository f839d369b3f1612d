/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* load-client TESTBED SECONDS PLAN: many clients of iovirtd in one process.
 *
 * PLAN has one line per client; each gets its own sd-bus connection, all
 * driven by one sd-event loop, one call in flight per client:
 *
 *   ping                              Peer.Ping in a loop (the floor)
 *   read DEV GROUP DRIVER PF NUMVFS VF
 *                                     reads in turn: ListGroups, DescribeDevice(DEV),
 *                                     DescribeSriov(PF), DescribeStatus,
 *                                     DescribeAssignments, ListAssignments,
 *                                     PlanAssign(VF); each answer is checked against
 *                                     what DEV (in GROUP, on DRIVER), PF (with
 *                                     NUMVFS VFs) and the assign lines say
 *   assign VF GROUP DRIVER CONSUMER   Assign(VF) to CONSUMER, then Release(VF) or
 *                                     ReleaseConsumer(CONSUMER), in turn (odd clients start
 *                                     with the latter); after each
 *                                     answer the testbed's driver link of VF must be
 *                                     vfio-pci, then DRIVER again
 *   sriov PF N,N,...                  SetVfs(PF, N) through the list, in a loop; after
 *                                     each answer the testbed's sriov_numvfs and
 *                                     virtfn links must be N
 *
 * For SECONDS, then no new call; every call in flight must be answered
 * (within 120 s more).  Prints one line per method,
 *   METHOD sent N answered N failed N p50 US p99 US max US
 * then "elapsed S", "final assign CONSUMER GROUP VF assigned|released" and
 * "final sriov PF N" for each such client (where the host should be now),
 * and "failures N".  Every failure is printed on stderr (the first 50).
 * Exit 0 when every call was answered and every answer was right. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define CALL_TIMEOUT_USEC (120ULL * 1000 * 1000)
#define MAX_COUNTS 16

enum { K_PING, K_LIST_GROUPS, K_DESCRIBE_DEVICE, K_DESCRIBE_SRIOV, K_DESCRIBE_STATUS, K_DESCRIBE_ASSIGNMENTS,
       K_LIST_ASSIGNMENTS, K_PLAN_ASSIGN, K_ASSIGN, K_RELEASE, K_RELEASE_CONSUMER, K_SET_VFS, N_KINDS };
static const char *const kind_names[N_KINDS] = {
        "Peer.Ping", "ListGroups", "DescribeDevice", "DescribeSriov", "DescribeStatus", "DescribeAssignments",
        "ListAssignments", "PlanAssign", "Assign", "Release", "ReleaseConsumer", "SetVfs",
};
#define N_READS 7          /* K_LIST_GROUPS .. K_PLAN_ASSIGN */

typedef enum { ROLE_PING, ROLE_READ, ROLE_ASSIGN, ROLE_SRIOV } Role;

typedef struct Client {
        int index;
        Role role;
        sd_bus *bus;
        char dev[32], driver[64], pf[32], vf[32], consumer[64];
        int group, num_vfs;
        unsigned counts[MAX_COUNTS];
        size_t n_counts;
        unsigned long step;
        int kind;                  /* of the call in flight, -1: none */
        double sent_at;
        bool assigned;             /* ROLE_ASSIGN: the last answer left VF with CONSUMER */
        int current_vfs;           /* ROLE_SRIOV: -1 until the first answer */
} Client;

typedef struct Samples {
        double *v;
        size_t n, size;
        unsigned long sent, failed;
} Samples;

static const char *testbed;
static Client *clients;
static size_t n_clients;
static Samples samples[N_KINDS];
static double deadline, started;
static unsigned long failures, in_flight;
static sd_event *event;

static double now_us(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

__attribute__((format(printf, 2, 3))) static void fail(const Client *c, const char *fmt, ...) {
        va_list ap;
        failures++;
        if (failures > 50)
                return;
        fprintf(stderr, "client %d (%s): ", c->index, kind_names[c->kind]);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int sample_add(Samples *s, double v) {
        if (s->n == s->size) {
                size_t size = s->size ? s->size * 2 : 1024;
                double *n = realloc(s->v, size * sizeof(double));
                if (!n)
                        return -ENOMEM;
                s->v = n;
                s->size = size;
        }
        s->v[s->n++] = v;
        return 0;
}

/* The testbed's driver of addr, "" when it has none */
static void testbed_driver(const char *addr, char *out, size_t size) {
        char path[PATH_MAX], link[PATH_MAX];
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", testbed, addr);
        ssize_t l = readlink(path, link, sizeof(link) - 1);
        out[0] = 0;
        if (l > 0) {
                link[l] = 0;
                const char *slash = strrchr(link, '/'), *name = slash ? slash + 1 : link;
                size_t n = strlen(name);
                if (n < size)
                        memcpy(out, name, n + 1);
        }
}

/* The testbed's sriov_numvfs of pf and how many virtfnN links it has */
static int testbed_vfs(const char *pf, int *links) {
        char path[PATH_MAX];
        int num = -1;
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/sriov_numvfs", testbed, pf);
        FILE *f = fopen(path, "re");
        if (f) {
                if (fscanf(f, "%d", &num) != 1)
                        num = -1;
                fclose(f);
        }
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s", testbed, pf);
        *links = 0;
        DIR *d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));)
                if (strncmp(e->d_name, "virtfn", 6) == 0)
                        (*links)++;
        if (d)
                closedir(d);
        return num;
}

static const Client *assign_client_of(const char *consumer) {
        for (size_t i = 0; i < n_clients; i++)
                if (clients[i].role == ROLE_ASSIGN && strcmp(clients[i].consumer, consumer) == 0)
                        return &clients[i];
        return NULL;
}

static const char *jstr(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                ? json_object_get_string(v) : NULL;
}

static int jint(json_object *o, const char *key, int missing) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int)
                ? json_object_get_int(v) : missing;
}

static json_object *jget(json_object *o, const char *key, json_type type) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

static bool streq(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

/* ---- what each answer must say ---- */

static void check_list_groups(Client *c, sd_bus_message *m) {
        static unsigned char seen[1 << 16];
        int r, number, found = 0, n = 0;
        const char *isolation;
        memset(seen, 0, sizeof(seen));
        r = sd_bus_message_enter_container(m, 'a', "(isasas)");
        while (r > 0 && (r = sd_bus_message_enter_container(m, 'r', "isasas")) > 0) {
                bool mine = false;
                const char *addr;
                if ((r = sd_bus_message_read(m, "is", &number, &isolation)) < 0)
                        break;
                if (number < 0 || number >= (1 << 16) || seen[number]++) {
                        fail(c, "group %d out of range or listed twice", number);
                        return;
                }
                if ((r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
                        break;
                int members = 0;
                while ((r = sd_bus_message_read(m, "s", &addr)) > 0) {
                        members++;
                        mine = mine || strcmp(addr, c->dev) == 0;
                }
                if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_skip(m, "as")) < 0 ||
                    (r = sd_bus_message_exit_container(m)) < 0)
                        break;
                if (members == 0)
                        fail(c, "group %d listed without members", number);
                if (mine && number != c->group)
                        fail(c, "%s listed in group %d, not %d", c->dev, number, c->group);
                found += mine;
                n++;
        }
        if (r < 0)
                fail(c, "answer unreadable: %s", strerror(-r));
        else if (found != 1 || n < 100)
                fail(c, "%s listed %d times in %d groups", c->dev, found, n);
}

static void check_list_assignments(Client *c, sd_bus_message *m) {
        int r, group;
        const char *consumer, *phase, *addr;
        r = sd_bus_message_enter_container(m, 'a', "(issas)");
        while (r > 0 && (r = sd_bus_message_enter_container(m, 'r', "issas")) > 0) {
                if ((r = sd_bus_message_read(m, "iss", &group, &consumer, &phase)) < 0 ||
                    (r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
                        break;
                const Client *a = assign_client_of(consumer);
                int n = 0;
                while ((r = sd_bus_message_read(m, "s", &addr)) > 0)
                        if (!a || strcmp(addr, a->vf) != 0 || n++ > 0)
                                fail(c, "%s listed as %s's", addr, consumer);
                if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_exit_container(m)) < 0)
                        break;
                if (!a || a->group != group)
                        fail(c, "group %d listed as assigned to %s", group, consumer);
        }
        if (r < 0)
                fail(c, "answer unreadable: %s", strerror(-r));
}

static void check_json(Client *c, json_object *o) {
        const Client *a;
        json_object *x, *arr;
        switch (c->kind) {
        case K_DESCRIBE_DEVICE:
                if (!streq(jstr(o, "address"), c->dev) || jint(o, "iommu_group", -1) != c->group ||
                    !streq(jstr(o, "driver"), c->driver))
                        fail(c, "%s: %s", c->dev, json_object_to_json_string(o));
                break;
        case K_DESCRIBE_SRIOV:
                x = jget(o, "pf", json_type_object);
                arr = jget(o, "vfs", json_type_array);
                if (!x || !streq(jstr(x, "address"), c->pf) || jint(x, "num_vfs", -1) != c->num_vfs || !arr ||
                    (int) json_object_array_length(arr) != c->num_vfs)
                        fail(c, "%s should have %d VFs: %.300s", c->pf, c->num_vfs, json_object_to_json_string(o));
                break;
        case K_DESCRIBE_STATUS:
                arr = jget(o, "consumers", json_type_array);
                if (!arr || !jget(o, "budget", json_type_object)) {
                        fail(c, "no consumers or budget: %.300s", json_object_to_json_string(o));
                        break;
                }
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        json_object *e = json_object_array_get_idx(arr, i), *g = jget(e, "groups", json_type_array);
                        a = assign_client_of(jstr(e, "consumer") ? jstr(e, "consumer") : "");
                        if (!a || !g || json_object_array_length(g) != 1 ||
                            json_object_get_int(json_object_array_get_idx(g, 0)) != a->group)
                                fail(c, "status names %s", json_object_to_json_string(e));
                }
                break;
        case K_DESCRIBE_ASSIGNMENTS:
                arr = jget(o, "assignments", json_type_array);
                if (!arr) {
                        fail(c, "no assignments: %.300s", json_object_to_json_string(o));
                        break;
                }
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        json_object *e = json_object_array_get_idx(arr, i);
                        a = assign_client_of(jstr(e, "consumer") ? jstr(e, "consumer") : "");
                        if (!a || jint(e, "group", -1) != a->group)
                                fail(c, "assignment %s", json_object_to_json_string(e));
                }
                break;
        case K_PLAN_ASSIGN:
                arr = jget(o, "functions", json_type_array);
                x = jget(o, "allowed", json_type_boolean);
                if (!x || !json_object_get_boolean(x) || !arr || json_object_array_length(arr) != 1 ||
                    !streq(jstr(json_object_array_get_idx(arr, 0), "address"), c->vf))
                        fail(c, "plan for %s: %.400s", c->vf, json_object_to_json_string(o));
                break;
        case K_ASSIGN: {
                char drv[64];
                arr = jget(o, "functions", json_type_array);
                testbed_driver(c->vf, drv, sizeof(drv));
                if (!streq(jstr(o, "consumer"), c->consumer) || jint(o, "group", -1) != c->group || !arr ||
                    json_object_array_length(arr) != 1 ||
                    !streq(jstr(json_object_array_get_idx(arr, 0), "address"), c->vf) ||
                    !streq(jstr(json_object_array_get_idx(arr, 0), "to"), "vfio-pci"))
                        fail(c, "%s: %.400s", c->vf, json_object_to_json_string(o));
                if (strcmp(drv, "vfio-pci") != 0)
                        fail(c, "%s answered assigned, on '%s' in sysfs", c->vf, drv);
                c->assigned = true;
                break;
        }
        case K_RELEASE:
        case K_RELEASE_CONSUMER: {
                char drv[64];
                json_object *f;
                arr = jget(o, "released", json_type_array);
                x = arr && json_object_array_length(arr) == 1 ? json_object_array_get_idx(arr, 0) : NULL;
                f = x ? jget(x, "functions", json_type_array) : NULL;
                testbed_driver(c->vf, drv, sizeof(drv));
                if (!x || jint(x, "group", -1) != c->group || !streq(jstr(x, "consumer"), c->consumer) || !f ||
                    json_object_array_length(f) != 1 ||
                    !streq(json_object_get_string(json_object_array_get_idx(f, 0)), c->vf))
                        fail(c, "%s: %.400s", c->vf, json_object_to_json_string(o));
                if (strcmp(drv, c->driver) != 0)
                        fail(c, "%s answered released, on '%s' in sysfs, not %s", c->vf, drv, c->driver);
                c->assigned = false;
                break;
        }
        case K_SET_VFS: {
                int want = (int) c->counts[(c->step - 1) % c->n_counts], links, num = testbed_vfs(c->pf, &links);
                x = jget(o, "pf", json_type_object);
                arr = jget(o, "vfs", json_type_array);
                if (!x || jint(x, "num_vfs", -1) != want || !arr || (int) json_object_array_length(arr) != want)
                        fail(c, "%s to %d: %.300s", c->pf, want, json_object_to_json_string(o));
                if (num != want || links != want)
                        fail(c, "%s answered %d VFs; sysfs has sriov_numvfs %d and %d virtfn links", c->pf, want, num,
                             links);
                c->current_vfs = want;
                break;
        }
        }
}

/* ---- the loop ---- */

static void issue(Client *c);

static void finish_one(void) {
        if (--in_flight == 0 && now_us() >= deadline)
                sd_event_exit(event, 0);
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Client *c = userdata;
        double latency = now_us() - c->sent_at;
        if (sample_add(&samples[c->kind], latency) < 0) {
                fail(c, "out of memory");
                return sd_event_exit(event, 1);
        }
        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(m);
                samples[c->kind].failed++;
                fail(c, "%s: %s", e->name, e->message);
        } else if (c->kind == K_LIST_GROUPS)
                check_list_groups(c, m);
        else if (c->kind == K_LIST_ASSIGNMENTS)
                check_list_assignments(c, m);
        else if (c->kind != K_PING) {
                const char *text;
                json_object *o = NULL;
                if (sd_bus_message_read(m, "s", &text) < 0 || !(o = json_tokener_parse(text)))
                        fail(c, "answer is not one JSON string");
                else
                        check_json(c, o);
                json_object_put(o);
        }
        c->kind = -1;
        if (now_us() < deadline)
                issue(c);
        finish_one();
        return 0;
}

static void issue(Client *c) {
        sd_bus_message *m = NULL;
        const char *iface = "org.iovirt1.Manager";
        int kind, r;

        switch (c->role) {
        case ROLE_PING:
                kind = K_PING;
                iface = "org.freedesktop.DBus.Peer";
                break;
        case ROLE_READ:
                kind = K_LIST_GROUPS + (int) ((c->step + (unsigned long) c->index) % N_READS);
                break;
        case ROLE_ASSIGN:
                kind = !c->assigned ? K_ASSIGN : (c->step / 2 + (unsigned long) c->index) % 2 ? K_RELEASE_CONSUMER : K_RELEASE;
                break;
        default:
                kind = K_SET_VFS;
                break;
        }
        const char *method = kind == K_PING ? "Ping" : kind_names[kind];
        r = sd_bus_message_new_method_call(c->bus, &m, "org.iovirt1", "/org/iovirt1", iface, method);
        if (r >= 0)
                switch (kind) {
                case K_DESCRIBE_DEVICE:
                        r = sd_bus_message_append(m, "s", c->dev);
                        break;
                case K_DESCRIBE_SRIOV:
                        r = sd_bus_message_append(m, "s", c->pf);
                        break;
                case K_PLAN_ASSIGN:
                        r = sd_bus_message_append(m, "ssas", c->vf, "load-reader", 0);
                        break;
                case K_ASSIGN:
                        r = sd_bus_message_append(m, "ssasb", c->vf, c->consumer, 0, 0);
                        break;
                case K_RELEASE:
                        r = sd_bus_message_append(m, "sb", c->vf, 0);
                        break;
                case K_RELEASE_CONSUMER:
                        r = sd_bus_message_append(m, "sb", c->consumer, 0);
                        break;
                case K_SET_VFS:
                        r = sd_bus_message_append(m, "sua{sv}b", c->pf, c->counts[c->step % c->n_counts], 0, 0);
                        break;
                }
        c->kind = kind;
        c->step++;
        if (r >= 0) {
                c->sent_at = now_us();
                r = sd_bus_call_async(c->bus, NULL, m, on_reply, c, CALL_TIMEOUT_USEC);
        }
        sd_bus_message_unref(m);
        samples[kind].sent++;
        if (r < 0) {
                fail(c, "could not send: %s", strerror(-r));
                c->kind = -1;
                return;
        }
        in_flight++;
}

static int on_start(sd_event_source *s, uint64_t usec, void *userdata) {
        started = now_us();
        deadline = started + *(double *) userdata * 1e6;
        for (size_t i = 0; i < n_clients; i++)
                issue(&clients[i]);
        return 0;
}

static int on_give_up(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(event, 0);
}

static int parse_plan(const char *path) {
        FILE *f = fopen(path, "re");
        char line[1024];
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                Client c = { .index = (int) n_clients, .kind = -1, .current_vfs = -1 };
                char role[16] = "", counts[256] = "";
                if (sscanf(line, "%15s", role) != 1)
                        continue;
                if (strcmp(role, "ping") == 0)
                        c.role = ROLE_PING;
                else if (strcmp(role, "read") == 0 &&
                         sscanf(line, "%*s %31s %d %63s %31s %d %31s", c.dev, &c.group, c.driver, c.pf, &c.num_vfs,
                                c.vf) == 6)
                        c.role = ROLE_READ;
                else if (strcmp(role, "assign") == 0 &&
                         sscanf(line, "%*s %31s %d %63s %63s", c.vf, &c.group, c.driver, c.consumer) == 4)
                        c.role = ROLE_ASSIGN;
                else if (strcmp(role, "sriov") == 0 && sscanf(line, "%*s %31s %255s", c.pf, counts) == 2) {
                        c.role = ROLE_SRIOV;
                        for (char *s = strtok(counts, ","); s && c.n_counts < MAX_COUNTS; s = strtok(NULL, ","))
                                c.counts[c.n_counts++] = (unsigned) strtoul(s, NULL, 10);
                        if (c.n_counts == 0)
                                goto bad;
                } else
                        goto bad;
                Client *n = realloc(clients, (n_clients + 1) * sizeof(Client));
                if (!n) {
                        fclose(f);
                        return -ENOMEM;
                }
                clients = n;
                clients[n_clients++] = c;
                continue;
bad:
                fprintf(stderr, "bad plan line: %s", line);
                fclose(f);
                return -EINVAL;
        }
        fclose(f);
        return 0;
}

static int compare(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        double seconds;
        int r;

        if (argc != 4 || (seconds = atof(argv[2])) <= 0) {
                fprintf(stderr, "usage: load-client TESTBED SECONDS PLAN\n");
                return 2;
        }
        testbed = argv[1];
        if ((r = parse_plan(argv[3])) < 0) {
                fprintf(stderr, "cannot read %s: %s\n", argv[3], strerror(-r));
                return 2;
        }
        if (sd_event_default(&event) < 0)
                return 1;
        for (size_t i = 0; i < n_clients; i++) {
                r = sd_bus_open_system(&clients[i].bus);
                if (r >= 0)
                        r = sd_bus_attach_event(clients[i].bus, event, 0);
                if (r < 0) {
                        fprintf(stderr, "connection %zu: %s\n", i, strerror(-r));
                        return 1;
                }
        }
        /* every connection's Hello answered before the clock starts */
        for (size_t i = 0; i < n_clients; i++) {
                const char *unique;
                if ((r = sd_bus_get_unique_name(clients[i].bus, &unique)) < 0) {
                        fprintf(stderr, "connection %zu has no name: %s\n", i, strerror(-r));
                        return 1;
                }
        }
        uint64_t t;
        sd_event_now(event, CLOCK_MONOTONIC, &t);
        if (sd_event_add_time(event, NULL, CLOCK_MONOTONIC, t, 0, on_start, &seconds) < 0 ||
            sd_event_add_time(event, NULL, CLOCK_MONOTONIC, t + (uint64_t) (seconds * 1e6) + CALL_TIMEOUT_USEC + 10000000,
                              0, on_give_up, NULL) < 0)
                return 1;
        r = sd_event_loop(event);
        double elapsed = (now_us() - started) / 1e6;

        unsigned long lost = 0;
        for (size_t i = 0; i < n_clients; i++)
                if (clients[i].kind >= 0) {
                        lost++;
                        fail(&clients[i], "never answered");
                }
        for (int k = 0; k < N_KINDS; k++) {
                Samples *s = &samples[k];
                if (!s->sent)
                        continue;
                qsort(s->v, s->n, sizeof(double), compare);
                printf("%s sent %lu answered %zu failed %lu p50 %.1f p99 %.1f max %.1f\n", kind_names[k], s->sent, s->n,
                       s->failed, s->n ? s->v[s->n / 2] : 0, s->n ? s->v[(s->n * 99) / 100] : 0,
                       s->n ? s->v[s->n - 1] : 0);
        }
        printf("elapsed %.3f\n", elapsed);
        for (size_t i = 0; i < n_clients; i++) {
                const Client *c = &clients[i];
                if (c->role == ROLE_ASSIGN)
                        printf("final assign %s %d %s %s\n", c->consumer, c->group, c->vf,
                               c->assigned ? "assigned" : "released");
                else if (c->role == ROLE_SRIOV)
                        printf("final sriov %s %d\n", c->pf, c->current_vfs);
        }
        printf("lost %lu\nfailures %lu\n", lost, failures);
        for (size_t i = 0; i < n_clients; i++)
                sd_bus_flush_close_unref(clients[i].bus);
        sd_event_unref(event);
        return r < 0 || failures ? 1 : 0;
}
