/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* flood-client N: one connection sends N calls to iovirtd without waiting
 * (DescribeTree, the largest answer, and malformed DescribeDevice calls),
 * reads a few replies, and hangs up with the rest in flight. */
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-bus.h>

static int replies;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        replies++;
        return 0;
}

int main(int argc, char **argv) {
        sd_bus *bus = NULL;
        int n = argc > 1 ? atoi(argv[1]) : 1000, r;

        if (sd_bus_open_system(&bus) < 0)
                return 1;
        for (int i = 0; i < n; i++) {
                if (i % 2)
                        r = sd_bus_call_method_async(bus, NULL, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager",
                                                     "DescribeTree", on_reply, NULL, "");
                else
                        r = sd_bus_call_method_async(bus, NULL, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager",
                                                     "DescribeDevice", on_reply, NULL, "s", "zz:zz.z");
                if (r < 0) {
                        fprintf(stderr, "call %d: %d\n", i, r);
                        return 1;
                }
        }
        sd_bus_flush(bus);
        while (replies < 5 && sd_bus_wait(bus, 10 * 1000 * 1000) > 0)
                while (sd_bus_process(bus, NULL) > 0)
                        ;
        printf("%d replies read, hanging up\n", replies);
        sd_bus_close(bus);    /* the rest is in flight */
        sd_bus_unref(bus);
        return replies >= 5 ? 0 : 1;
}
