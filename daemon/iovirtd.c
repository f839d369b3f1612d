/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <signal.h>

#include <systemd/sd-daemon.h>

#include "iovirt-names.h"
#include "iovirtd-log.h"
#include "iovirtd-assign.h"
#include "iovirtd-manager.h"

static void help(void) {
        printf("iovirtd [OPTIONS]\n\n"
               "The iovirt system service: owns the host's PCI and IOMMU model and serves\n"
               IOVIRT_BUS_NAME " on the system bus. Normally started by systemd.\n\n"
               "  -h --help       show this help\n"
               "     --version    show the version\n"
               "  -d --debug      log debug messages too\n"
               "\nIt runs in the foreground, logs to the journal (or stderr), and tells\n"
               "systemd when it is ready (Type=notify).\n");
}

static int parse_argv(int argc, char **argv) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
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

static int run(void) {
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        r = manager_new(&m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up: %m");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, NULL, NULL)) < 0)
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
        r = manager_load_state(m);
        if (r < 0)
                return r;
        r = manager_connect_bus(m);
        if (r < 0)
                return r;

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
