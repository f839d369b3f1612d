/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* assign-cycles ROUNDS TARGET FUNCTIONS STATS: assign+release cycles
 * through iovirtd.  Times each Assign+Release pair of TARGET (a group of
 * FUNCTIONS functions) and reads the kernel-behaviour emulator's account
 * (STATS: "OPS NANOSECONDS") before and after, so that the daemon's own
 * share can be told from the emulated kernel's.  Peer.Ping is timed in
 * the same run as the floor of one round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-bus.h>

static double now_us(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double emulated_us(const char *stats) {
        unsigned long long ops = 0, ns = 0;
        FILE *f = fopen(stats, "re");
        if (f) {
                if (fscanf(f, "%llu %llu", &ops, &ns) != 2)
                        ns = 0;
                fclose(f);
        }
        return ns / 1e3;
}

static int call(sd_bus *bus, const char *method, const char *target) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;
        if (method[0] == 'A')
                r = sd_bus_call_method(bus, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager", method, &e, &reply,
                                       "ssasb", target, "bench", 0, 0);
        else if (method[0] == 'R')
                r = sd_bus_call_method(bus, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager", method, &e, &reply,
                                       "sb", target, 0);
        else
                r = sd_bus_call_method(bus, "org.iovirt1", "/org/iovirt1", "org.freedesktop.DBus.Peer", "Ping", &e,
                                       &reply, "");
        if (r < 0)
                fprintf(stderr, "%s: %s\n", method, e.message ? e.message : "failed");
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return r;
}

int main(int argc, char **argv) {
        if (argc != 5) {
                fprintf(stderr, "usage: assign-cycles ROUNDS TARGET FUNCTIONS STATS\n");
                return 2;
        }
        int rounds = atoi(argv[1]), fns = atoi(argv[3]);
        sd_bus *bus = NULL;
        if (sd_bus_open_system(&bus) < 0)
                return 1;
        double ping = 0;
        for (int i = 0; i < 200; i++) {
                double t0 = now_us();
                if (call(bus, "Ping", NULL) < 0)
                        return 1;
                ping += now_us() - t0;
        }
        ping /= 200;
        double emu0 = emulated_us(argv[4]), t0 = now_us();
        for (int i = 0; i < rounds; i++)
                if (call(bus, "Assign", argv[2]) < 0 || call(bus, "Release", argv[2]) < 0)
                        return 1;
        double wall = now_us() - t0, emu = emulated_us(argv[4]) - emu0;
        double cycle = wall / rounds, own = (wall - emu) / rounds;
        printf("%d-function group: %6.1f cycles/s  cycle %7.2f ms  emulated kernel %6.2f ms  "
               "daemon %6.2f ms = %.2f ms per function per operation  (Ping %.0f us)\n",
               fns, 1e6 / cycle, cycle / 1e3, (cycle - own) / 1e3, own / 1e3, own / 1e3 / (2.0 * fns), ping);
        sd_bus_unref(bus);
        return 0;
}
