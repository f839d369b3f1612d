/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>

#include "iovirt-guard.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"

IovirtUsage *iovirt_usage_free(IovirtUsage *u) {
        if (!u)
                return NULL;
        for (size_t i = 0; i < u->n_uses; i++)
                free(u->uses[i].what);
        free(u->uses);
        free(u);
        return NULL;
}

typedef struct Guard {
        const IovirtHost *host;
        IovirtUsage *usage;
        size_t allocated;
} Guard;

static int add_use(Guard *g, size_t device, const char *fmt, ...) _printf_(3, 4);
static int add_use(Guard *g, size_t device, const char *fmt, ...) {
        char *what;
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&what, fmt, ap);
        va_end(ap);
        if (l < 0)
                return -ENOMEM;
        for (size_t i = 0; i < g->usage->n_uses; i++)
                if (g->usage->uses[i].device == device && streq_ptr(g->usage->uses[i].what, what)) {
                        free(what);
                        return 0;
                }
        IovirtUse *u = GROW(g->usage->uses, g->usage->n_uses, g->allocated);
        if (!u) {
                free(what);
                return -ENOMEM;
        }
        *u = (IovirtUse) { device, what };
        return 0;
}

/* The PCI function a sysfs link target lies below: its last component
 * shaped like DDDD:BB:DD.F. */
static size_t pci_parent_of(const IovirtHost *h, const char *target) {
        size_t found = IOVIRT_NONE;
        _cleanup_free_ char *copy = strdup(target);
        if (!copy)
                return IOVIRT_NONE;
        for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                IovirtAddress a;
                unsigned dom, bus, dev, fn;
                int end = 0;
                if (sscanf(c, "%4x:%2x:%2x.%1u%n", &dom, &bus, &dev, &fn, &end) == 4 && c[end] == '\0' &&
                    strlen(c) == 12 && iovirt_address_parse(c, &a, NULL) >= 0) {
                        size_t i = iovirt_host_find_address(h, &a);
                        if (i != IOVIRT_NONE)
                                found = i;
                }
        }
        return found;
}

static int read_link(const char *path, char buf[static PATH_MAX]) {
        ssize_t l = readlink(path, buf, PATH_MAX - 1);
        if (l < 0)
                return -errno;
        buf[l] = '\0';
        return 0;
}

/* Marks the PCI functions under the block device NAME (a disk, a partition,
 * or a dm/md array, followed through its slaves) as used for WHY. */
static int mark_block(Guard *g, const char *name, const char *why, unsigned depth) {
        char path[PATH_MAX], target[PATH_MAX];
        if (depth > 8 || strchr(name, '/'))
                return 0;
        snprintf(path, sizeof(path), SYSFS_CLASS_BLOCK "/%s", name);
        if (read_link(path, target) < 0)
                return 0;
        size_t dev = pci_parent_of(g->host, target);
        if (dev != IOVIRT_NONE)
                return add_use(g, dev, "%s", why);

        /* virtual: a dm or md array; its slaves are what it lives on */
        snprintf(path, sizeof(path), SYSFS_CLASS_BLOCK "/%s/slaves", name);
        _cleanup_closedir_ DIR *d = opendir(path);
        if (!d)
                return 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.') {
                        int r = mark_block(g, de->d_name, why, depth + 1);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* The block device name behind major:minor, via /sys/dev/block */
static int block_name(const char *majmin, char buf[static PATH_MAX]) {
        char path[PATH_MAX], target[PATH_MAX];
        snprintf(path, sizeof(path), SYSFS_DEV_BLOCK "/%s", majmin);
        int r = read_link(path, target);
        if (r < 0)
                return r;
        snprintf(buf, PATH_MAX, "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
        return 0;
}

/* mountinfo escapes blanks as \040 */
static void unescape(char *s) {
        char *w = s;
        for (char *p = s; *p; p++) {
                unsigned v;
                if (p[0] == '\\' && sscanf(p + 1, "%3o", &v) == 1 && strlen(p) >= 4) {
                        *w++ = (char) v;
                        p += 3;
                } else
                        *w++ = *p;
        }
        *w = '\0';
}

/* A mount without a block device (mountinfo says 0:N).  Of those, a
 * virtio-9p filesystem ("... - 9p TAG rw,...,trans=virtio") is backed by
 * PCI: its source is the mount tag of a virtio device, which lives on a
 * PCI function like a disk does. */
static int mark_virtio_9p(Guard *g, const char *line, const char *mnt) {
        char fstype[32], tag[256], opts[1024];
        const char *tail = strstr(line, " - ");
        if (!tail || sscanf(tail, " - %31s %255s %1023s", fstype, tag, opts) != 3 || !streq_ptr(fstype, "9p") ||
            !strstr(opts, "trans=virtio"))
                return 0;
        unescape(tag);
        char why[PATH_MAX + 320];
        snprintf(why, sizeof(why), "backs the filesystem mounted at %s (virtio-9p %s)", mnt, tag);

        _cleanup_closedir_ DIR *d = opendir(SYSFS_BUS_VIRTIO_DEVICES);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char path[PATH_MAX], target[PATH_MAX];
                _cleanup_free_ char *have = NULL;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), SYSFS_BUS_VIRTIO_DEVICES "/%s/mount_tag", de->d_name);
                if (iovirt_read_file(path, &have) < 0)
                        continue;
                have[strcspn(have, "\n")] = '\0';
                snprintf(path, sizeof(path), SYSFS_BUS_VIRTIO_DEVICES "/%s", de->d_name);
                if (!streq_ptr(have, tag) || read_link(path, target) < 0)
                        continue;
                size_t dev = pci_parent_of(g->host, target);
                if (dev != IOVIRT_NONE)
                        return add_use(g, dev, "%s", why);
        }
        return 0;
}

static int scan_mounts(Guard *g) {
        _cleanup_free_ char *path = iovirt_root_path(PROC_MOUNTINFO), *text = NULL;
        if (!path)
                return -ENOMEM;
        if (iovirt_read_file(path, &text) < 0)
                return 0;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char majmin[32], mnt[PATH_MAX], name[PATH_MAX];
                if (sscanf(line, "%*u %*u %31s %*s %4095s", majmin, mnt) != 2)
                        continue;
                unescape(mnt);
                if (strncmp(majmin, "0:", 2) == 0) {
                        int r = mark_virtio_9p(g, line, mnt);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (block_name(majmin, name) < 0)
                        continue;
                char why[2 * PATH_MAX + 64];
                snprintf(why, sizeof(why), "backs the filesystem mounted at %s (%s)", mnt, name);
                int r = mark_block(g, name, why, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int scan_swaps(Guard *g) {
        _cleanup_free_ char *path = iovirt_root_path(PROC_SWAPS), *text = NULL;
        if (!path)
                return -ENOMEM;
        if (iovirt_read_file(path, &text) < 0)
                return 0;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char file[PATH_MAX], type[32];
                if (sscanf(line, "%4095s %31s", file, type) != 2 || strcmp(type, "partition") != 0)
                        continue;       /* the header; swap files live on a mounted filesystem */
                unescape(file);
                const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
                char why[PATH_MAX + 64];
                snprintf(why, sizeof(why), "backs the swap device %s", file);
                int r = mark_block(g, base, why, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every dm and md array, mounted or not: a volume somebody uses */
static int scan_arrays(Guard *g) {
        _cleanup_closedir_ DIR *d = opendir(SYSFS_CLASS_BLOCK);
        if (!d)
                return 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "dm-", 3) != 0 && strncmp(de->d_name, "md", 2) != 0)
                        continue;
                char dir[PATH_MAX], dmname[256] = "", why[600];
                snprintf(dir, sizeof(dir), SYSFS_CLASS_BLOCK "/%s/dm", de->d_name);
                (void) iovirt_sysfs_read(dir, "name", dmname, sizeof(dmname));
                if (dmname[0])
                        snprintf(why, sizeof(why), "backs the device-mapper device %s (%s)", de->d_name, dmname);
                else
                        snprintf(why, sizeof(why), "backs the %s array %s",
                                 de->d_name[0] == 'm' ? "md" : "device-mapper", de->d_name);
                snprintf(dir, sizeof(dir), SYSFS_CLASS_BLOCK "/%s/slaves", de->d_name);
                _cleanup_closedir_ DIR *s = opendir(dir);
                struct dirent *se;
                while (s && (se = readdir(s)))
                        if (se->d_name[0] != '.') {
                                int r = mark_block(g, se->d_name, why, 1);
                                if (r < 0)
                                        return r;
                        }
        }
        return 0;
}

/* Does the routing table (IPv4 or IPv6, as /proc/self/net shows it) have a
 * route through ifname?  Sets *is_default for a default route. */
static bool has_route(const char *ifname, bool *is_default) {
        bool found = false;
        _cleanup_free_ char *v4 = NULL, *v6 = NULL;
        *is_default = false;
        if (iovirt_read_file(PROC_NET_ROUTE, &v4) >= 0)
                for (char *save = NULL, *l = strtok_r(v4, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        char iface[IF_NAMESIZE + 1], dest[16];
                        unsigned mask;
                        if (sscanf(l, "%16s %15s %*s %*s %*s %*s %*s %x", iface, dest, &mask) == 3 &&
                            streq_ptr(iface, ifname)) {
                                found = true;
                                *is_default |= streq_ptr(dest, "00000000") && mask == 0;
                        }
                }
        if (iovirt_read_file(PROC_NET_IPV6_ROUTE, &v6) >= 0)
                for (char *save = NULL, *l = strtok_r(v6, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        char dest[40], plen[4], iface[IF_NAMESIZE + 1];
                        if (sscanf(l, "%39s %3s %*s %*s %*s %*s %*s %*s %*s %16s", dest, plen, iface) == 3 &&
                            streq_ptr(iface, ifname) && strncmp(dest, "fe80", 4) != 0 && strncmp(dest, "ff", 2) != 0) {
                                found = true;
                                *is_default |= streq_ptr(plen, "00");
                        }
                }
        return found;
}

static int scan_network(Guard *g) {
        struct ifaddrs *ifa = NULL;
        _cleanup_closedir_ DIR *d = opendir(SYSFS_CLASS_NET);
        if (!d)
                return 0;
        if (getifaddrs(&ifa) < 0)
                ifa = NULL;     /* no netlink: nothing is up as far as we can tell */
        int r = 0;
        struct dirent *de;
        while (r >= 0 && (de = readdir(d))) {
                char path[PATH_MAX], target[PATH_MAX], addr[INET6_ADDRSTRLEN] = "";
                bool up = false, is_default = false;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), SYSFS_CLASS_NET "/%s", de->d_name);
                if (read_link(path, target) < 0)
                        continue;
                size_t dev = pci_parent_of(g->host, target);
                if (dev == IOVIRT_NONE)
                        continue;
                for (struct ifaddrs *a = ifa; a; a = a->ifa_next) {
                        if (!streq_ptr(a->ifa_name, de->d_name))
                                continue;
                        up |= (a->ifa_flags & IFF_UP) != 0;
                        if (addr[0] || !a->ifa_addr)
                                continue;
                        if (a->ifa_addr->sa_family == AF_INET)
                                inet_ntop(AF_INET, &((struct sockaddr_in *) a->ifa_addr)->sin_addr, addr, sizeof(addr));
                        else if (a->ifa_addr->sa_family == AF_INET6 &&
                                 !IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *) a->ifa_addr)->sin6_addr))
                                inet_ntop(AF_INET6, &((struct sockaddr_in6 *) a->ifa_addr)->sin6_addr, addr,
                                          sizeof(addr));
                }
                bool routed = up && has_route(de->d_name, &is_default);
                if (!up || (!addr[0] && !routed))
                        continue;
                r = add_use(g, dev, "carries the network interface %s, which is up%s%s%s%s", de->d_name,
                            addr[0] ? " with the address " : "", addr,
                            routed ? (addr[0] ? " and " : " with ") : "",
                            is_default ? "the default route" : routed ? "a route" : "");
        }
        if (ifa)
                freeifaddrs(ifa);
        return r;
}

static int scan_display(Guard *g) {
        for (size_t i = 0; i < g->host->n_devices; i++)
                if (g->host->devices[i].boot_vga) {
                        int r = add_use(g, i, "is the boot display (boot_vga), which the console uses");
                        if (r < 0)
                                return r;
                }
        char target[PATH_MAX];
        if (read_link(SYSFS_CLASS_GRAPHICS "/fb0/device", target) >= 0) {
                size_t dev = pci_parent_of(g->host, target);
                if (dev != IOVIRT_NONE)
                        return add_use(g, dev, "drives the framebuffer fb0, which the console uses");
        }
        return 0;
}

int iovirt_guard_scan(const IovirtHost *h, IovirtUsage **ret) {
        _cleanup_(iovirt_usage_freep) IovirtUsage *u = calloc(1, sizeof(IovirtUsage));
        if (!u)
                return -ENOMEM;
        Guard g = { .host = h, .usage = u };
        int (*const scans[])(Guard *) = { scan_mounts, scan_swaps, scan_arrays, scan_network, scan_display };
        for (size_t i = 0; i < ELEMENTSOF(scans); i++) {
                int r = scans[i](&g);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(u);
        return 0;
}
