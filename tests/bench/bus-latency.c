/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-latency ROUNDS DEVICE [TESTBED SYSPATH]: round trips to iovirtd.
 *
 * Times ROUNDS calls each of org.freedesktop.DBus.Peer.Ping (the floor),
 * ListGroups and DescribeDevice(DEVICE), interleaved, and prints p50/p99
 * in microseconds.  With TESTBED and SYSPATH, also times uevent -> model:
 * it flips the device's driver link in the umockdev testbed, announces
 * the change as udevd would (the libudev header, to every event socket of
 * the testbed), and waits for iovirtd's DeviceChanged signal.
 *
 * bus-latency --pair ROUNDS DEVICE: only Peer.Ping and DescribeDevice(DEVICE),
 * ROUNDS of each, interleaved (which one goes first alternates), after 20
 * untimed rounds; prints one line per method, "NAME p50 US p99 US max US",
 * for a script to read (tests/bench/gate.py).
 *
 * bus-latency --consumers ROUNDS DEVICE [DOMAIN]: Peer.Ping, and
 * PlanAssign(DEVICE) for kinds of consumer, interleaved: a name libvirt is
 * never asked about ("bench:kept"), a bare name new each time ("vm-N"),
 * and with DOMAIN one libvirt domain ("domain:lv-web"); one line each as
 * --pair prints them (tests/bench/libvirt.py). */
#include <arpa/inet.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

static double now_us(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, int n, double floor50) {
        qsort(v, (size_t) n, sizeof(double), compare);
        double p50 = v[n / 2], p99 = v[(n * 99) / 100];
        printf("%-22s p50 %8.1f us  p99 %8.1f us", name, p50, p99);
        if (floor50 > 0)
                printf("  (%.2fx Ping)", p50 / floor50);
        printf("\n");
}

static int call(sd_bus *bus, const char *dest, const char *path, const char *iface, const char *method,
                const char *arg) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, dest, path, iface, method, &e, &reply, arg ? "s" : "", arg);
        if (r < 0)
                fprintf(stderr, "%s failed: %s\n", method, e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return r;
}

/* MurmurHash2 as systemd's string_hash32, for libudev's socket filter */
static uint32_t murmur2(const char *s) {
        const uint32_t m = 0x5bd1e995;
        size_t len = strlen(s);
        uint32_t h = (uint32_t) len;
        const unsigned char *d = (const unsigned char *) s;
        for (; len >= 4; d += 4, len -= 4) {
                uint32_t k;
                memcpy(&k, d, 4);
                k *= m;
                k ^= k >> 24;
                k *= m;
                h = h * m ^ k;
        }
        switch (len) {
        case 3:
                h ^= (uint32_t) d[2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t) d[1] << 8;
                /* fall through */
        case 1:
                h ^= d[0];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

static void send_uevent(const char *testbed, const char *syspath, const char *action, unsigned seq) {
        char body[1024], pattern[4096];
        int l = snprintf(body, sizeof(body), "ACTION=%s%cDEVPATH=%s%cSUBSYSTEM=pci%cSEQNUM=%u%c", action, 0,
                         syspath + 4, 0, 0, seq, 0);
        struct {
                char prefix[8];
                uint32_t magic, header_size, properties_off, properties_len, subsystem_hash, devtype_hash, bloom_hi,
                        bloom_lo;
        } h = { "libudev", htonl(0xfeedcafe), sizeof(h), sizeof(h), (uint32_t) l, htonl(murmur2("pci")), 0, 0, 0 };
        glob_t g;
        snprintf(pattern, sizeof(pattern), "%s/event[0-9]*", testbed);
        if (glob(pattern, 0, NULL, &g) != 0)
                return;
        for (size_t i = 0; i < g.gl_pathc; i++) {
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                int fd = socket(AF_UNIX, SOCK_RAW | SOCK_CLOEXEC, 0);
                snprintf(a.sun_path, sizeof(a.sun_path), "%s", g.gl_pathv[i]);
                if (fd >= 0 && connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0) {
                        struct iovec iov[2] = { { &h, sizeof(h) }, { body, (size_t) l } };
                        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
                        sendmsg(fd, &msg, 0);
                }
                if (fd >= 0)
                        close(fd);
        }
        globfree(&g);
}

static int changed;

static int on_changed(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        changed++;
        return 0;
}

static void report_pair(const char *name, double *v, int n) {
        qsort(v, (size_t) n, sizeof(double), compare);
        printf("%s p50 %.1f p99 %.1f max %.1f\n", name, v[n / 2], v[(n * 99) / 100], v[n - 1]);
}

static int pair(int n, const char *device) {
        sd_bus *bus = NULL;
        if (n < 10 || sd_bus_open_system(&bus) < 0)
                return 1;
        double *ping = calloc((size_t) n, sizeof(double)), *describe = calloc((size_t) n, sizeof(double));
        if (!ping || !describe)
                return 1;
        for (int i = -20; i < n; i++) {
                double t[3];
                int first_ping = (i & 1) == 0;
                t[0] = now_us();
                for (int k = 0; k < 2; k++) {
                        int r = (k == 0) == first_ping
                                ? call(bus, "org.iovirt1", "/org/iovirt1", "org.freedesktop.DBus.Peer", "Ping", NULL)
                                : call(bus, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager", "DescribeDevice",
                                       device);
                        if (r < 0)
                                return 1;
                        t[k + 1] = now_us();
                }
                if (i < 0)
                        continue;       /* warm-up */
                ping[i] = first_ping ? t[1] - t[0] : t[2] - t[1];
                describe[i] = first_ping ? t[2] - t[1] : t[1] - t[0];
        }
        report_pair("Peer.Ping", ping, n);
        report_pair("DescribeDevice", describe, n);
        free(ping);
        free(describe);
        sd_bus_flush_close_unref(bus);
        return 0;
}

static int plan(sd_bus *bus, const char *device, const char *consumer) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager", "PlanAssign", &e,
                                   &reply, "ssas", device, consumer, 0);
        if (r < 0)
                fprintf(stderr, "PlanAssign to %s failed: %s\n", consumer, e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return r;
}

static int consumers(int n, const char *device, const char *domain) {
        static const char *const names[] = { "Peer.Ping", "PlanAssign bench:kept", "PlanAssign vm-N",
                                             "PlanAssign DOMAIN" };
        int kinds = domain ? 4 : 3;
        double *v[4];
        sd_bus *bus = NULL;
        if (n < 10 || sd_bus_open_system(&bus) < 0)
                return 1;
        for (int k = 0; k < kinds; k++)
                if (!(v[k] = calloc((size_t) n, sizeof(double))))
                        return 1;
        for (int i = -5; i < n; i++) {
                for (int k = 0; k < kinds; k++) {
                        char fresh[32];
                        snprintf(fresh, sizeof(fresh), "vm-%d", i + 10);
                        double t0 = now_us();
                        int r = k == 0 ? call(bus, "org.iovirt1", "/org/iovirt1", "org.freedesktop.DBus.Peer", "Ping",
                                              NULL)
                                : k == 1 ? plan(bus, device, "bench:kept")
                                : k == 2 ? plan(bus, device, fresh)
                                         : plan(bus, device, domain);
                        if (r < 0)
                                return 1;
                        if (i >= 0)
                                v[k][i] = now_us() - t0;
                }
        }
        for (int k = 0; k < kinds; k++) {
                report_pair(names[k], v[k], n);
                free(v[k]);
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 4 && strcmp(argv[1], "--pair") == 0)
                return pair(atoi(argv[2]), argv[3]);
        if ((argc == 4 || argc == 5) && strcmp(argv[1], "--consumers") == 0)
                return consumers(atoi(argv[2]), argv[3], argc == 5 ? argv[4] : NULL);
        if (argc != 3 && argc != 5) {
                fprintf(stderr, "usage: bus-latency ROUNDS DEVICE [TESTBED SYSPATH]\n"
                                "       bus-latency --pair ROUNDS DEVICE\n"
                                "       bus-latency --consumers ROUNDS DEVICE [DOMAIN]\n");
                return 2;
        }
        int n = atoi(argv[1]);
        sd_bus *bus = NULL;
        if (n < 10 || sd_bus_open_system(&bus) < 0)
                return 1;
        double *ping = calloc((size_t) n, sizeof(double)), *groups = calloc((size_t) n, sizeof(double)),
               *device = calloc((size_t) n, sizeof(double));
        for (int i = 0; i < n; i++) {
                double t0 = now_us();
                if (call(bus, "org.iovirt1", "/org/iovirt1", "org.freedesktop.DBus.Peer", "Ping", NULL) < 0)
                        return 1;
                double t1 = now_us();
                if (call(bus, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager", "ListGroups", NULL) < 0)
                        return 1;
                double t2 = now_us();
                if (call(bus, "org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager", "DescribeDevice", argv[2]) < 0)
                        return 1;
                double t3 = now_us();
                ping[i] = t1 - t0;
                groups[i] = t2 - t1;
                device[i] = t3 - t2;
        }
        qsort(ping, (size_t) n, sizeof(double), compare);
        double floor50 = ping[n / 2];
        report("Peer.Ping", ping, n, 0);
        report("ListGroups", groups, n, floor50);
        report("DescribeDevice", device, n, floor50);

        if (argc == 5) {
                /* uevent -> DeviceChanged: flip the driver link and announce it */
                char link[4096];
                double *lat = calloc((size_t) n, sizeof(double));
                snprintf(link, sizeof(link), "%s%s/driver", argv[3], argv[4]);
                /* no sender: signals carry the unique name, which sd-bus compares locally */
                if (sd_bus_match_signal(bus, NULL, NULL, "/org/iovirt1", "org.iovirt1.Manager", "DeviceChanged",
                                        on_changed, NULL) < 0)
                        return 1;
                call(bus, "org.iovirt1", "/org/iovirt1", "org.freedesktop.DBus.Peer", "Ping", NULL); /* match is in place */
                for (int i = 0; i < n; i++) {
                        int before = changed;
                        if (i % 2 == 0)
                                unlink(link);
                        else if (symlink("../../../../bus/pci/drivers/vfio-pci", link) < 0)
                                return 1;
                        double t0 = now_us();
                        send_uevent(argv[3], argv[4], i % 2 == 0 ? "unbind" : "bind", 5000u + (unsigned) i);
                        /* dispatch what is queued first, then wait */
                        while (changed == before) {
                                int r = sd_bus_process(bus, NULL);
                                if (r < 0)
                                        return 1;
                                if (r > 0)
                                        continue;
                                if (sd_bus_wait(bus, 5 * 1000 * 1000) <= 0) {
                                        fprintf(stderr, "no DeviceChanged within 5 s\n");
                                        return 1;
                                }
                        }
                        lat[i] = now_us() - t0;
                }
                report("uevent -> DeviceChanged", lat, n, 0);
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}
