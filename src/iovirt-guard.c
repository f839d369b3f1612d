/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pci/header.h>
#include <stdarg.h>

#include "iovirt-guard.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"

IovirtUsage *iovirt_usage_free(IovirtUsage *u) {
        if (!u)
                return NULL;
        for (size_t i = 0; i < u->n_uses; i++)
                free(u->uses[i].what);
        for (size_t i = 0; i < u->n_blind; i++)
                free(u->blind[i].source);
        free(u->uses);
        free(u->blind);
        free(u);
        return NULL;
}

typedef struct Guard {
        const IovirtHost *host;
        IovirtUsage *usage;
        size_t allocated, blind_allocated;
} Guard;

char *iovirt_blind_spot_text(const IovirtBlindSpot *b) {
        char *s;
        if (asprintf(&s, "could not read %s: %s; cannot tell %s", b->source, strerror(b->error), b->unknown) < 0)
                return NULL;
        return s;
}

/* SOURCE could not be read (error is a negative errno), so UNKNOWN stays
 * unknown.  Returns 0, or -ENOMEM. */
static int add_blind(Guard *g, int error, const char *unknown, const char *fmt, ...) _printf_(4, 5);
static int add_blind(Guard *g, int error, const char *unknown, const char *fmt, ...) {
        char *source;
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&source, fmt, ap);
        va_end(ap);
        if (l < 0)
                return -ENOMEM;
        IovirtBlindSpot *b = GROW(g->usage->blind, g->usage->n_blind, g->blind_allocated);
        if (!b) {
                free(source);
                return -ENOMEM;
        }
        *b = (IovirtBlindSpot) { .source = source, .error = error < 0 ? -error : error, .unknown = unknown };
        return 0;
}

#define UNKNOWN_FS "whether a device backs a filesystem"
#define UNKNOWN_SWAP "whether a device backs swap"
#define UNKNOWN_ARRAY "whether a device backs a device-mapper or md array"
#define UNKNOWN_NET "whether a device carries a network interface the host uses"
#define UNKNOWN_CONSOLE "whether a device drives the console"

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
        for (const char *c = target; *c; c += strspn(c, "/")) {
                size_t l = strcspn(c, "/");
                char name[16];
                IovirtAddress a;
                unsigned dom, bus, dev, fn;
                int end = 0;
                if (l == 12) {
                        memcpy(name, c, l);
                        name[l] = '\0';
                        if (sscanf(name, "%4x:%2x:%2x.%1u%n", &dom, &bus, &dev, &fn, &end) == 4 && end == 12 &&
                            iovirt_address_parse(name, &a, NULL) >= 0) {
                                size_t i = iovirt_host_find_address(h, &a);
                                if (i != IOVIRT_NONE)
                                        found = i;
                        }
                }
                c += l;
        }
        return found;
}

/* readdir() that tells the end from an error: 1 with *ret, 0 at the end,
 * -errno.  Entries starting with a dot are skipped. */
static int next_entry(DIR *d, struct dirent **ret) {
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de)
                        return errno ? -errno : 0;
                if (de->d_name[0] != '.') {
                        *ret = de;
                        return 1;
                }
        }
}

static int read_link(const char *path, char buf[static PATH_MAX]) {
        ssize_t l = readlink(path, buf, PATH_MAX - 1);
        if (l < 0)
                return -errno;
        buf[l] = '\0';
        return 0;
}

/* Block devices backed by memory, a file on a mounted filesystem (which
 * is guarded on its own) or the network (guarded as its interface) */
static bool block_without_device(const char *name) {
        static const char *const prefixes[] = { "loop", "zram", "ram", "nbd", "rbd" };
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static int mark_block(Guard *g, const char *name, const char *why, const char *unknown, unsigned depth);

/* Marks what every entry of SYSFS_CLASS_BLOCK/NAME/SUB lives on: the slaves
 * of a dm or md array, the paths of an NVMe multipath disk.  Returns how
 * many entries there were, or -errno. */
static int mark_below(Guard *g, const char *name, const char *sub, const char *why, const char *unknown,
                      unsigned depth) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), SYSFS_CLASS_BLOCK "/%s/%s", name, sub);
        _cleanup_closedir_ DIR *d = opendir(path);
        if (!d)
                return errno == ENOENT || errno == ENOTDIR ? 0 : add_blind(g, -errno, unknown, "%s", path);
        struct dirent *de = NULL;
        int n = 0, r;
        while ((r = next_entry(d, &de)) > 0) {
                char link[PATH_MAX + 256], target[PATH_MAX];
                n++;
                if (streq_ptr(sub, "slaves")) {
                        r = mark_block(g, de->d_name, why, unknown, depth + 1);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* a multipath path (nvme0c0n1) is hidden from class/block: follow its link */
                snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
                r = read_link(link, target);
                size_t dev = r < 0 ? IOVIRT_NONE : pci_parent_of(g->host, target);
                r = r < 0 ? add_blind(g, r, unknown, "%s", link)
                    : dev != IOVIRT_NONE ? add_use(g, dev, "%s", why)
                                          : add_blind(g, ENODEV, unknown, "the PCI device of %s", link);
                if (r < 0)
                        return r;
        }
        return r < 0 ? add_blind(g, r, unknown, "%s", path) : n;
}

/* Marks the PCI functions under the block device NAME (a disk, a partition,
 * a dm or md array followed through its slaves, an NVMe multipath disk
 * followed through its paths) as used for WHY; UNKNOWN is what stays
 * unknown when that cannot be read. */
static int mark_block(Guard *g, const char *name, const char *why, const char *unknown, unsigned depth) {
        char path[PATH_MAX], target[PATH_MAX];
        if (strchr(name, '/') || !name[0])
                return add_blind(g, EINVAL, unknown, "the block device name '%s'", name);
        if (depth > 8)
                return add_blind(g, ELOOP, unknown, SYSFS_CLASS_BLOCK "/%s (slaves nested too deep)", name);
        snprintf(path, sizeof(path), SYSFS_CLASS_BLOCK "/%s", name);
        int r = read_link(path, target);
        if (r < 0)
                return add_blind(g, r, unknown, "%s", path);
        size_t dev = pci_parent_of(g->host, target);
        if (dev != IOVIRT_NONE)
                return add_use(g, dev, "%s", why);

        /* not below a PCI function: a partition of a virtual disk lives on its disk */
        snprintf(path, sizeof(path), SYSFS_CLASS_BLOCK "/%s/partition", name);
        if (access(path, F_OK) == 0) {
                char *slash = strrchr(target, '/');
                if (!slash)
                        return add_blind(g, EINVAL, unknown, "the disk of the partition %s", name);
                *slash = '\0';
                const char *disk = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
                return mark_block(g, disk, why, unknown, depth + 1);
        }
        if (block_without_device(name))
                return 0;
        int n = mark_below(g, name, "slaves", why, unknown, depth);
        if (n < 0)
                return n;
        int m = mark_below(g, name, "multipath", why, unknown, depth);
        if (m < 0)
                return m;
        return n + m > 0 ? 0 : add_blind(g, ENODEV, unknown, "the device behind the block device %s", name);
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
        if (!d)
                return add_blind(g, -errno, UNKNOWN_FS, SYSFS_BUS_VIRTIO_DEVICES " (for the virtio-9p tag %s of %s)",
                                 tag, mnt);
        struct dirent *de = NULL;
        int r;
        while ((r = next_entry(d, &de)) > 0) {
                char path[PATH_MAX], target[PATH_MAX];
                _cleanup_free_ char *have = NULL;
                snprintf(path, sizeof(path), SYSFS_BUS_VIRTIO_DEVICES "/%s/mount_tag", de->d_name);
                r = iovirt_read_file(path, &have);
                if (r == -ENOENT)
                        continue;         /* not a 9p transport */
                if (r < 0)
                        return r == -ENOMEM ? r : add_blind(g, r, UNKNOWN_FS, "%s", path);
                have[strcspn(have, "\n")] = '\0';
                if (!streq_ptr(have, tag))
                        continue;
                snprintf(path, sizeof(path), SYSFS_BUS_VIRTIO_DEVICES "/%s", de->d_name);
                r = read_link(path, target);
                if (r < 0)
                        return add_blind(g, r, UNKNOWN_FS, "%s", path);
                size_t dev = pci_parent_of(g->host, target);
                return dev != IOVIRT_NONE ? add_use(g, dev, "%s", why) : 0;    /* virtio-mmio: not ours */
        }
        if (r < 0)
                return add_blind(g, r, UNKNOWN_FS, SYSFS_BUS_VIRTIO_DEVICES " (for the virtio-9p tag %s of %s)", tag, mnt);
        return add_blind(g, ENODEV, UNKNOWN_FS, "the virtio device with the 9p tag %s of %s", tag, mnt);
}

/* Reads a /proc file the guard cannot do without: 1 with its text, 0 when
 * it is a blind spot now, -ENOMEM. */
static int read_proc(Guard *g, const char *name, const char *unknown, char **ret) {
        _cleanup_free_ char *path = iovirt_root_path(name);
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return add_blind(g, r, unknown, "%s", name);
        return 1;
}

/* Filesystems no device backs: the kernel's own and memory's.  Network
 * filesystems ride on an interface, which scan_network() guards; overlay
 * and FUSE layers live on other mounts, guarded as themselves. */
static bool filesystem_without_device(const char *fstype) {
        static const char *const types[] = {
                "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "ramfs", "cgroup", "cgroup2", "securityfs",
                "pstore", "bpf", "debugfs", "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs",
                "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs", "selinuxfs", "overlay", "nfs", "nfs4", "cifs",
                "smb3", "ceph", "9p",
        };
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (streq_ptr(fstype, types[i]))
                        return true;
        return strncmp(fstype, "fuse.", 5) == 0;
}

/* The devices of every btrfs filesystem: btrfs shows an anonymous 0:N in
 * mountinfo, and may span several disks. */
static int mark_btrfs(Guard *g, const char *mnt) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof(why), "backs the btrfs filesystem mounted at %s", mnt);
        _cleanup_closedir_ DIR *fs = opendir(SYSFS_FS_BTRFS);
        if (!fs)
                return add_blind(g, -errno, UNKNOWN_FS, SYSFS_FS_BTRFS " (the devices of %s)", mnt);
        struct dirent *de = NULL;
        int r;
        while ((r = next_entry(fs, &de)) > 0) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), SYSFS_FS_BTRFS "/%s/devices", de->d_name);
                _cleanup_closedir_ DIR *devs = opendir(path);
                if (!devs) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;     /* "features", not a filesystem */
                        return add_blind(g, -errno, UNKNOWN_FS, "%s", path);
                }
                struct dirent *dev = NULL;
                while ((r = next_entry(devs, &dev)) > 0) {
                        r = mark_block(g, dev->d_name, why, UNKNOWN_FS, 0);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return add_blind(g, r, UNKNOWN_FS, "%s", path);
        }
        return r < 0 ? add_blind(g, r, UNKNOWN_FS, SYSFS_FS_BTRFS) : 0;
}

/* A mount whose mountinfo line names no block device (0:N): a virtio-9p
 * share, btrfs, a filesystem on a device named by its source, one no
 * device backs, or one iovirt cannot follow (ZFS, virtiofs): a blind spot. */
static int mark_deviceless_mount(Guard *g, const char *line, const char *mnt) {
        char fstype[64], source[PATH_MAX];
        const char *tail = strstr(line, " - ");
        if (!tail || sscanf(tail, " - %63s %4095s", fstype, source) != 2)
                return add_blind(g, EBADMSG, UNKNOWN_FS, PROC_MOUNTINFO " (the line of %s)", mnt);
        unescape(source);
        if (streq_ptr(fstype, "9p") && strstr(tail, "trans=virtio"))
                return mark_virtio_9p(g, line, mnt);
        if (filesystem_without_device(fstype))
                return 0;
        if (streq_ptr(fstype, "btrfs"))
                return mark_btrfs(g, mnt);
        if (strncmp(source, "/dev/", 5) == 0) {
                /* /dev/mapper/NAME is a link to ../dm-N */
                char real[PATH_MAX], why[2 * PATH_MAX + 64];
                const char *dev = realpath(source, real) ? real : source;
                snprintf(why, sizeof(why), "backs the filesystem mounted at %s (%s)", mnt, source);
                return mark_block(g, strrchr(dev, '/') + 1, why, UNKNOWN_FS, 0);
        }
        return add_blind(g, ENODEV, UNKNOWN_FS, "the device behind the %s filesystem %s mounted at %s", fstype,
                         source, mnt);
}

static int scan_mounts(Guard *g) {
        _cleanup_free_ char *text = NULL;
        int r = read_proc(g, PROC_MOUNTINFO, UNKNOWN_FS, &text);
        if (r <= 0)
                return r;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char majmin[32], mnt[PATH_MAX], name[PATH_MAX];
                if (sscanf(line, "%*u %*u %31s %*s %4095s", majmin, mnt) != 2) {
                        r = add_blind(g, EBADMSG, UNKNOWN_FS, PROC_MOUNTINFO " (the line '%.80s')", line);
                        if (r < 0)
                                return r;
                        continue;
                }
                unescape(mnt);
                if (strncmp(majmin, "0:", 2) == 0) {
                        r = mark_deviceless_mount(g, line, mnt);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = block_name(majmin, name);
                if (r < 0) {
                        r = add_blind(g, r, UNKNOWN_FS, SYSFS_DEV_BLOCK "/%s (the device of %s)", majmin, mnt);
                        if (r < 0)
                                return r;
                        continue;
                }
                char why[2 * PATH_MAX + 64];
                snprintf(why, sizeof(why), "backs the filesystem mounted at %s (%s)", mnt, name);
                r = mark_block(g, name, why, UNKNOWN_FS, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int scan_swaps(Guard *g) {
        _cleanup_free_ char *text = NULL;
        int r = read_proc(g, PROC_SWAPS, UNKNOWN_SWAP, &text);
        if (r <= 0)
                return r;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char file[PATH_MAX], type[32];
                if (sscanf(line, "%4095s %31s", file, type) != 2 || strcmp(type, "partition") != 0)
                        continue;       /* the header; swap files live on a mounted filesystem */
                unescape(file);
                const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
                char why[PATH_MAX + 64];
                snprintf(why, sizeof(why), "backs the swap device %s", file);
                r = mark_block(g, base, why, UNKNOWN_SWAP, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every dm and md array, mounted or not: a volume somebody uses */
static int scan_arrays(Guard *g) {
        _cleanup_closedir_ DIR *d = opendir(SYSFS_CLASS_BLOCK);
        if (!d)
                return add_blind(g, -errno, UNKNOWN_ARRAY, SYSFS_CLASS_BLOCK);
        struct dirent *de = NULL;
        int r;
        while ((r = next_entry(d, &de)) > 0) {
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
                r = mark_below(g, de->d_name, "slaves", why, UNKNOWN_ARRAY, 0);
                if (r < 0)
                        return r;
        }
        return r < 0 ? add_blind(g, r, UNKNOWN_ARRAY, SYSFS_CLASS_BLOCK) : 0;
}

/* The routing tables of the daemon's network namespace, read once per scan.
 * IPv6 may be off (no ipv6_route); IPv4's table is always there. */
static int read_routes(Guard *g, char **v4, char **v6) {
        int r = iovirt_read_file(PROC_NET_ROUTE, v4);
        if (r < 0)
                return r == -ENOMEM ? r : add_blind(g, r, UNKNOWN_NET, PROC_NET_ROUTE);
        r = iovirt_read_file(PROC_NET_IPV6_ROUTE, v6);
        if (r < 0 && r != -ENOENT)
                return r == -ENOMEM ? r : add_blind(g, r, UNKNOWN_NET, PROC_NET_IPV6_ROUTE);
        return 0;
}

/* The next line of text at *p into buf (cut at size - 1), advancing *p;
 * false at the end.  The tables are read, never changed. */
static bool next_line(const char **p, char *buf, size_t size) {
        if (!*p || !**p)
                return false;
        size_t l = strcspn(*p, "\n");
        snprintf(buf, size, "%.*s", (int) (l < size ? l : size - 1), *p);
        *p += l + ((*p)[l] == '\n');
        return true;
}

/* Does the routing table (IPv4 or IPv6, as /proc/self/net shows it) have a
 * route through ifname?  Sets *is_default for a default route. */
static bool has_route(const char *routes4, const char *routes6, const char *ifname, bool *is_default) {
        bool found = false;
        char l[512];
        *is_default = false;
        for (const char *p = routes4; next_line(&p, l, sizeof(l));) {
                char iface[IF_NAMESIZE + 1], dest[16];
                unsigned mask;
                if (sscanf(l, "%16s %15s %*s %*s %*s %*s %*s %x", iface, dest, &mask) == 3 && streq_ptr(iface, ifname)) {
                        found = true;
                        *is_default |= streq_ptr(dest, "00000000") && mask == 0;
                }
        }
        for (const char *p = routes6; next_line(&p, l, sizeof(l));) {
                char dest[40], plen[4], iface[IF_NAMESIZE + 1];
                if (sscanf(l, "%39s %3s %*s %*s %*s %*s %*s %*s %*s %16s", dest, plen, iface) == 3 &&
                    streq_ptr(iface, ifname) && strncmp(dest, "fe80", 4) != 0 && strncmp(dest, "ff", 2) != 0) {
                        found = true;
                        *is_default |= streq_ptr(plen, "00");
                }
        }
        return found;
}

static void freeifaddrsp(struct ifaddrs **p) {
        if (*p)
                freeifaddrs(*p);
}

/* Marks the PCI functions that carry the interface NAME: its own device,
 * and for a bridge, bond, team, VLAN or macvlan, what lies below it
 * (lower_* links), so that the host's NIC inside br0 is guarded too. */
static int mark_net(Guard *g, const char *name, const char *why, unsigned depth) {
        char path[PATH_MAX], target[PATH_MAX];
        if (depth > 8)
                return add_blind(g, ELOOP, UNKNOWN_NET, SYSFS_CLASS_NET "/%s (lower devices nested too deep)", name);
        snprintf(path, sizeof(path), SYSFS_CLASS_NET "/%s", name);
        int r = read_link(path, target);
        if (r < 0)
                return add_blind(g, r, UNKNOWN_NET, "%s", path);
        size_t dev = pci_parent_of(g->host, target);
        if (dev != IOVIRT_NONE && (r = add_use(g, dev, "%s", why)) < 0)
                return r;
        _cleanup_closedir_ DIR *d = opendir(path);
        if (!d)
                return add_blind(g, -errno, UNKNOWN_NET, "%s", path);
        struct dirent *de = NULL;
        while ((r = next_entry(d, &de)) > 0)
                if (strncmp(de->d_name, "lower_", 6) == 0 && (r = mark_net(g, de->d_name + 6, why, depth + 1)) < 0)
                        return r;
        return r < 0 ? add_blind(g, r, UNKNOWN_NET, "%s", path) : 0;
}

/* Is NAME up, and with which address (not IPv6 link-local)?  From getifaddrs */
static bool interface_up(const struct ifaddrs *ifa, const char *name, char addr[static INET6_ADDRSTRLEN]) {
        bool up = false;
        addr[0] = '\0';
        for (const struct ifaddrs *a = ifa; a; a = a->ifa_next) {
                if (!streq_ptr(a->ifa_name, name))
                        continue;
                up |= (a->ifa_flags & IFF_UP) != 0;
                if (addr[0] || !a->ifa_addr)
                        continue;
                if (a->ifa_addr->sa_family == AF_INET)
                        inet_ntop(AF_INET, &((struct sockaddr_in *) a->ifa_addr)->sin_addr, addr, INET6_ADDRSTRLEN);
                else if (a->ifa_addr->sa_family == AF_INET6 &&
                         !IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *) a->ifa_addr)->sin6_addr))
                        inet_ntop(AF_INET6, &((struct sockaddr_in6 *) a->ifa_addr)->sin6_addr, addr, INET6_ADDRSTRLEN);
        }
        return up;
}

static int scan_network(Guard *g) {
        _cleanup_(freeifaddrsp) struct ifaddrs *ifa = NULL;
        _cleanup_free_ char *routes4 = NULL, *routes6 = NULL;
        _cleanup_closedir_ DIR *d = opendir(SYSFS_CLASS_NET);
        if (!d)
                return add_blind(g, -errno, UNKNOWN_NET, SYSFS_CLASS_NET);
        if (getifaddrs(&ifa) < 0)
                return errno == ENOMEM ? -ENOMEM : add_blind(g, -errno, UNKNOWN_NET, "the interfaces' addresses (getifaddrs)");
        int r = read_routes(g, &routes4, &routes6);
        if (r < 0 || !routes4)
                return r;
        struct dirent *de = NULL;
        while ((r = next_entry(d, &de)) > 0) {
                char addr[INET6_ADDRSTRLEN], why[512];
                bool is_default = false, up = interface_up(ifa, de->d_name, addr);
                bool routed = up && has_route(routes4, routes6, de->d_name, &is_default);
                if (!up || (!addr[0] && !routed))
                        continue;
                snprintf(why, sizeof(why), "carries the network interface %s, which is up%s%s%s%s", de->d_name,
                         addr[0] ? " with the address " : "", addr, routed ? (addr[0] ? " and " : " with ") : "",
                         is_default ? "the default route" : routed ? "a route" : "");
                r = mark_net(g, de->d_name, why, 0);
                if (r < 0)
                        return r;
        }
        return r < 0 ? add_blind(g, r, UNKNOWN_NET, SYSFS_CLASS_NET) : 0;
}

static int scan_display(Guard *g) {
        int r;
        for (size_t i = 0; i < g->host->n_devices; i++) {
                const IovirtDevice *d = &g->host->devices[i];
                char buf[8];
                if ((d->class_code >> 8) != PCI_CLASS_DISPLAY_VGA)
                        continue;
                /* read again, not from the model: an unreadable boot_vga is not a "0" */
                r = iovirt_sysfs_read(d->syspath, ATTR_BOOT_VGA, buf, sizeof(buf));
                if (r < 0 && r != -ENOENT)
                        r = add_blind(g, r, UNKNOWN_CONSOLE, "%s/" ATTR_BOOT_VGA, d->syspath);
                else if (r > 0 && streq_ptr(buf, "1"))
                        r = add_use(g, i, "is the boot display (boot_vga), which the console uses");
                if (r < 0)
                        return r;
        }
        char target[PATH_MAX];
        r = read_link(SYSFS_CLASS_GRAPHICS "/fb0/device", target);
        if (r == -ENOENT)
                return 0;     /* no framebuffer, or one that is no device's (efifb before a driver) */
        if (r < 0)
                return add_blind(g, r, UNKNOWN_CONSOLE, SYSFS_CLASS_GRAPHICS "/fb0/device");
        size_t dev = pci_parent_of(g->host, target);
        return dev != IOVIRT_NONE ? add_use(g, dev, "drives the framebuffer fb0, which the console uses") : 0;
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
