/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>

#include <libudev.h>
#include <pci/pci.h>

#include "iovirt-host.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev *, udev_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_enumerate *, udev_enumerate_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pci_dev *, pci_free_dev);

/* libpci reports fatal errors (out of memory, mostly) through a callback
 * that must not return and whose default exits the process.  A library, and
 * later a daemon, must never exit on libpci's behalf: every libpci call runs
 * inside a guard, and the callback jumps back to it, turning the error into
 * -EIO.  Warnings are dropped: every failed read shows up as a failed
 * pci_read_block() that we report ourselves, naming the device. */
static __thread jmp_buf *pci_guard;

/* noreturn as an attribute, not _Noreturn: clang takes it into the type of
 * pci_access.error, which libpci declares with it */
__attribute__((noreturn)) static void pci_fatal(char *msg _unused_, ...) {
        if (pci_guard)
                longjmp(*pci_guard, 1);
        abort();    /* a libpci call outside a guard is a bug of ours */
}

/* libpci's last warning ("Cannot open .../config: ..."), to explain a failed read */
static __thread char pci_warning[256];

_printf_(1, 2) static void pci_warn(char *msg, ...) {
        va_list ap;
        va_start(ap, msg);
        vsnprintf(pci_warning, sizeof(pci_warning), msg, ap);
        va_end(ap);
}

static void pci_quiet(char *msg _unused_, ...) {
}

/* Each guard is a small function of its own: setjmp() in a large one
 * would put every local at risk of being clobbered. */
static bool guarded_init(struct pci_access *pacc) {
        jmp_buf jb, *volatile saved = pci_guard;
        volatile bool ok = false;
        if (setjmp(jb) == 0) {
                pci_guard = &jb;
                pci_init(pacc);
                ok = true;
        }
        pci_guard = saved;
        return ok;
}

static struct pci_dev *guarded_get_dev(struct pci_access *pacc, const IovirtAddress *a) {
        jmp_buf jb, *volatile saved = pci_guard;
        struct pci_dev *volatile d = NULL;
        if (setjmp(jb) == 0) {
                pci_guard = &jb;
                d = pci_get_dev(pacc, (int) a->domain, a->bus, a->dev, a->fn);
        }
        pci_guard = saved;
        return d;
}

static int pci_reader(void *userdata, unsigned pos, uint8_t *buf, unsigned len) {
        jmp_buf jb, *volatile saved = pci_guard;
        volatile int ok = 0;
        if (setjmp(jb) == 0) {
                pci_guard = &jb;
                ok = pci_read_block(userdata, (int) pos, buf, (int) len);
        }
        pci_guard = saved;
        return ok ? 0 : -EIO;
}

static const char *guarded_lookup(struct pci_access *pacc, char *buf, size_t size, int flags, unsigned a,
                                  unsigned b) {
        jmp_buf jb, *volatile saved = pci_guard;
        const char *volatile r = NULL;
        if (setjmp(jb) == 0) {
                pci_guard = &jb;
                r = pci_lookup_name(pacc, buf, (int) size, flags | PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB,
                                    a, b);
        }
        pci_guard = saved;
        return r;
}

#define host_problem(h, ...) iovirt_strv_pushf(&(h)->problems, &(h)->n_problems, __VA_ARGS__)

/* Returns -ENOMEM when the problem could not be noted: a device whose
 * problem is lost would look sound, so the reading fails instead. */
static int device_problem(IovirtDevice *d, const char *fmt, ...) _printf_(2, 3);
static int device_problem(IovirtDevice *d, const char *fmt, ...) {
        if (d->problem)
                return 0;  /* the first problem is the one that explains the rest */
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&d->problem, fmt, ap);
        va_end(ap);
        if (l < 0) {
                d->problem = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* strdup() for a fact of the model: NULL in, NULL out; -ENOMEM otherwise */
static int dup_fact(char **dst, const char *src) {
        if (!src) {
                *dst = NULL;
                return 0;
        }
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

static void device_clear(IovirtDevice *d) {
        free(d->syspath);
        free(d->driver);
        free(d->driver_override);
        free(d->local_cpulist);
        free(d->vfs);
        free(d->reset_methods);
        free(d->problem);
}

IovirtHost *iovirt_host_free(IovirtHost *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_devices; i++)
                device_clear(&h->devices[i]);
        free(h->devices);
        for (size_t i = 0; i < h->n_groups; i++)
                free(h->groups[i].members);
        free(h->groups);
        for (size_t i = 0; i < h->n_problems; i++)
                free(h->problems[i]);
        free(h->problems);
        if (h->pci_access)
                pci_cleanup(h->pci_access);
        free(h);
        return NULL;
}


static int read_hex_attr(const char *dir, const char *name, uint32_t *ret) {
        char buf[32];
        int r = iovirt_sysfs_read(dir, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        unsigned long v = strtoul(buf, &end, 16);
        if (errno || end == buf || *end)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* Fills what config space says into the device, falling back to the
 * kernel's own attributes where config space cannot say it. */
/* Returns how far config space could be read (64: not root), or -ENOMEM. */
static int device_read_config(IovirtDevice *d, struct pci_access *pacc) {
        _cleanup_(pci_free_devp) struct pci_dev *pd = guarded_get_dev(pacc, &d->addr);
        IovirtConfig cfg;
        int r = 0;

        if (!pd)
                return device_problem(d, "libpci could not open the device");
        pci_warning[0] = '\0';
        iovirt_config_init(&cfg, pci_reader, pd);
        iovirt_config_decode(&cfg, &d->caps);
        if (!d->caps.header_known && pci_warning[0])
                r = device_problem(d, "config space cannot be read: %s", pci_warning);
        else if (d->caps.problem)
                r = device_problem(d, "%s (at offset 0x%x)", d->caps.problem, d->caps.problem_offset);
        if (r < 0)
                return r;

        if (d->caps.header_known) {
                d->vendor = d->caps.vendor;
                d->device = d->caps.device;
                d->subsys_vendor = d->caps.subsys_vendor;
                d->subsys_device = d->caps.subsys_device;
                d->class_code = d->caps.class_code;
                d->revision = d->caps.revision;
                d->header_type = d->caps.header_type;
                d->multifunction = d->caps.multifunction;
                d->ids_known = true;
        }
        /* VFs read 0xffff as their IDs (SR-IOV spec); the kernel's
         * attributes carry the IDs it derived from the PF.  Unreadable
         * headers also fall back to them: they are the kernel's, not guesses. */
        if (!d->caps.header_known || d->vendor == 0xffff) {
                uint32_t v, dev, cls;
                if (read_hex_attr(d->syspath, ATTR_VENDOR, &v) == 0 && read_hex_attr(d->syspath, ATTR_DEVICE, &dev) == 0) {
                        d->vendor = (uint16_t) v;
                        d->device = (uint16_t) dev;
                        d->ids_known = true;
                }
                if (!d->caps.header_known && read_hex_attr(d->syspath, "class", &cls) == 0)
                        d->class_code = cls;
        }
        /* bridges stay with the host: PCI-to-PCI, CardBus and host bridges */
        d->bridge = (d->caps.header_known &&
                     (d->header_type == PCI_HEADER_TYPE_BRIDGE || d->header_type == PCI_HEADER_TYPE_CARDBUS)) ||
                    (d->class_code >> 8) == PCI_CLASS_BRIDGE_HOST;

        if (d->caps.sriov == IOVIRT_PRESENT) {
                d->sriov = true;
                d->sriov_total = d->caps.iov_total;
                d->sriov_initial = d->caps.iov_initial;
                d->sriov_num = (d->caps.iov_ctrl & PCI_IOV_CTRL_VFE) ? d->caps.iov_num : 0;
                d->sriov_offset = d->caps.iov_offset;
                d->sriov_stride = d->caps.iov_stride;
                /* A PF driver may offer fewer VFs than its TotalVFs register
                 * (igb: 7 of 8); the kernel's attribute says how many it
                 * will take, and a count above it is ERANGE. */
                char buf[32];
                int total;
                if (iovirt_sysfs_read(d->syspath, ATTR_SRIOV_TOTALVFS, buf, sizeof(buf)) >= 0 &&
                    iovirt_parse_int(buf, &total) == 0 && total >= 0 && (unsigned) total < d->sriov_total)
                        d->sriov_total = (unsigned) total;
        } else if (d->caps.sriov == IOVIRT_UNKNOWN) {
                /* Unprivileged: the kernel's own counts are readable by all. */
                char buf[32];
                int total, num;
                if (iovirt_sysfs_read(d->syspath, ATTR_SRIOV_TOTALVFS, buf, sizeof(buf)) >= 0 &&
                    iovirt_parse_int(buf, &total) == 0 &&
                    iovirt_sysfs_read(d->syspath, ATTR_SRIOV_NUMVFS, buf, sizeof(buf)) >= 0 &&
                    iovirt_parse_int(buf, &num) == 0) {
                        d->sriov = true;
                        d->sriov_total = (unsigned) total;
                        d->sriov_num = (unsigned) num;
                }
        }
        return (int) cfg.limit;
}

/* Returns -ENOMEM, or 1 with d->vanished set when the device is gone. */
static int device_read_sysfs(IovirtDevice *d, bool *has_reset_method) {
        char buf[4096];
        int r, v;

        d->numa_node = -1;
        r = iovirt_sysfs_read(d->syspath, ATTR_NUMA_NODE, buf, sizeof(buf));
        if (r >= 0 && iovirt_parse_int(buf, &v) == 0) {
                d->numa_node = v < 0 ? -1 : v;
                d->has_numa_attr = true;
        } else if (r == -ENOENT && access(d->syspath, F_OK) < 0) {
                d->vanished = errno;     /* every PCI function has numa_node: is it gone? */
                return 1;
        } else if (r != -ENOENT && (r = device_problem(d, "its numa_node attribute is unreadable or malformed")) < 0)
                return r;

        r = iovirt_sysfs_link_name(d->syspath, LINK_DRIVER, buf, sizeof(buf));
        if (r > 0)
                r = dup_fact(&d->driver, buf);
        else if (r != -ENOENT)
                r = device_problem(d, "cannot read its driver link: %s", strerror(-r));
        if (r < 0 && r != -ENOENT)
                return r;

        r = iovirt_sysfs_link_name(d->syspath, LINK_IOMMU_GROUP, buf, sizeof(buf));
        d->iommu_group = -1;
        if (r > 0 && iovirt_parse_int(buf, &v) == 0 && v >= 0)
                d->iommu_group = v;
        else if (r != -ENOENT && (r = device_problem(d, "its iommu_group link is malformed")) < 0)
                return r;

        r = iovirt_sysfs_read(d->syspath, ATTR_DRIVER_OVERRIDE, buf, sizeof(buf));
        if (r > 0 && !streq_ptr(buf, "(null)") && (r = dup_fact(&d->driver_override, buf)) < 0)
                return r;

        r = iovirt_sysfs_read(d->syspath, ATTR_RESET_METHOD, buf, sizeof(buf));
        if (r >= 0) {
                r = dup_fact(&d->reset_methods, buf);
                if (r < 0)
                        return r;
                d->reset_source = IOVIRT_RESET_KERNEL;
                *has_reset_method = true;
        }
        return 0;
}

static int compare_devices(const void *a, const void *b) {
        return iovirt_address_compare(&((const IovirtDevice *) a)->addr, &((const IovirtDevice *) b)->addr);
}

size_t iovirt_host_find_address(const IovirtHost *h, const IovirtAddress *a) {
        size_t lo = 0, hi = h->n_devices;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = iovirt_address_compare(&h->devices[mid].addr, a);
                if (c == 0)
                        return mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return IOVIRT_NONE;
}

const IovirtGroup *iovirt_host_find_group(const IovirtHost *h, int number) {
        size_t lo = 0, hi = h->n_groups;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (h->groups[mid].number == number)
                        return &h->groups[mid];
                if (h->groups[mid].number < number)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* The parent in sysfs is the directory above; on a root bus it is pciDDDD:BB. */
static size_t find_parent(const IovirtHost *h, const char *syspath) {
        const char *end = strrchr(syspath, '/');
        if (!end)
                return IOVIRT_NONE;
        const char *start = end;
        while (start > syspath && start[-1] != '/')
                start--;
        char name[64];
        size_t l = (size_t) (end - start);
        if (l == 0 || l >= sizeof(name))
                return IOVIRT_NONE;
        memcpy(name, start, l);
        name[l] = '\0';
        IovirtAddress a;
        if (iovirt_address_parse(name, &a, NULL) < 0)
                return IOVIRT_NONE;
        return iovirt_host_find_address(h, &a);
}

/* Links the tree, the SR-IOV families and the groups once every device is read. */
static int add_vf(IovirtHost *h, size_t pf, size_t vf) {
        size_t *v = reallocarray(h->devices[pf].vfs, h->devices[pf].n_vfs + 1, sizeof(size_t));
        if (!v)
                return -ENOMEM;
        h->devices[pf].vfs = v;
        v[h->devices[pf].n_vfs++] = vf;
        h->devices[vf].physfn = pf;
        return 0;
}

/* SR-IOV families.  Where every SR-IOV capability could be read, VF i of a
 * PF is at the PF's routing ID + First VF Offset + i * VF Stride, exactly as
 * the kernel places it: no physfn link needs reading.  Otherwise (not root)
 * the kernel's physfn links say it. */
static int host_link_vfs(IovirtHost *h) {
        bool derive = true;
        int r;

        for (size_t i = 0; i < h->n_devices && derive; i++)
                if (h->devices[i].caps.sriov == IOVIRT_UNKNOWN)
                        derive = false;
        for (size_t i = 0; i < h->n_devices; i++) {
                IovirtDevice *d = &h->devices[i];
                if (derive) {
                        if (!d->sriov)
                                continue;
                        unsigned rid = (unsigned) d->addr.bus << 8 | (unsigned) d->addr.dev << 3 | d->addr.fn;
                        for (unsigned v = 0; v < d->sriov_num; v++) {
                                unsigned vrid = rid + d->sriov_offset + v * d->sriov_stride;
                                IovirtAddress a = { d->addr.domain, (uint8_t) (vrid >> 8), (uint8_t) ((vrid >> 3) & 0x1f),
                                                    (uint8_t) (vrid & 7) };
                                size_t vf = vrid > 0xffff ? IOVIRT_NONE : iovirt_host_find_address(h, &a);
                                if (vf == IOVIRT_NONE) {
                                        char n[IOVIRT_ADDRESS_MAX];
                                        r = device_problem(d, "its VF %u (%s) is missing", v, iovirt_address_format(&a, n));
                                        if (r < 0)
                                                return r;
                                        continue;
                                }
                                if ((r = add_vf(h, i, vf)) < 0)
                                        return r;
                        }
                        continue;
                }
                char path[PATH_MAX], name[64];
                IovirtAddress a;
                snprintf(path, sizeof(path), "%s/" LINK_PHYSFN, d->syspath);
                if (iovirt_sysfs_link_name_at(AT_FDCWD, path, name, sizeof(name)) < 0 ||
                    iovirt_address_parse(name, &a, NULL) < 0)
                        continue;
                size_t pf = iovirt_host_find_address(h, &a);
                if (pf == IOVIRT_NONE) {
                        r = device_problem(d, "its physical function %s is missing", name);
                        if (r < 0)
                                return r;
                        continue;
                }
                if ((r = add_vf(h, pf, i)) < 0)
                        return r;
        }
        return 0;
}

/* Links the tree, the SR-IOV families and the groups once every device is read. */
/* Whether /dev/vfio/N exists: asked again only for the groups in recheck
 * (those a changed device left or joined) or not known before; for the
 * others the previous answer stands.  Each asking is a syscall, and a
 * host has thousands of groups. */
static bool group_vfio_node(int number, const IovirtGroup *old, size_t n_old, const int recheck[2]) {
        if (number != recheck[0] && number != recheck[1]) {
                size_t lo = 0, hi = n_old;
                while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;
                        if (old[mid].number == number)
                                return old[mid].vfio_node;
                        if (old[mid].number < number)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
        }
        char path[64];
        snprintf(path, sizeof(path), DEV_VFIO "/%d", number);
        return access(path, F_OK) == 0;
}

static int host_link(IovirtHost *h, const int recheck[2]) {
        /* built anew each time: a device added or removed can change any of it */
        _cleanup_free_ IovirtGroup *old = TAKE_PTR(h->groups);
        size_t n_old = h->n_groups;
        int r;

        h->n_groups = 0;
        for (size_t i = 0; i < n_old; i++)
                old[i].members = mfree(old[i].members);
        for (size_t i = 0; i < h->n_devices; i++) {
                IovirtDevice *d = &h->devices[i];
                d->vfs = mfree(d->vfs);
                d->n_vfs = 0;
                d->parent = find_parent(h, d->syspath);
                d->physfn = IOVIRT_NONE;
                d->group = IOVIRT_NONE;
        }
        r = host_link_vfs(h);
        if (r < 0)
                return r;

        /* Groups: count, then fill in address order */
        int max_group = -1;
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].iommu_group > max_group)
                        max_group = h->devices[i].iommu_group;
        if (max_group < 0)
                return 0;
        _cleanup_free_ size_t *count = calloc((size_t) max_group + 1, sizeof(size_t));
        _cleanup_free_ size_t *slot = calloc((size_t) max_group + 1, sizeof(size_t));
        if (!count || !slot)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].iommu_group >= 0)
                        count[h->devices[i].iommu_group]++;
        size_t n = 0;
        for (int g = 0; g <= max_group; g++)
                n += count[g] > 0;
        h->groups = calloc(n, sizeof(IovirtGroup));
        if (!h->groups)
                return -ENOMEM;
        for (int g = 0; g <= max_group; g++) {
                if (!count[g])
                        continue;
                IovirtGroup *grp = &h->groups[h->n_groups];
                grp->number = g;
                grp->members = calloc(count[g], sizeof(size_t));
                if (!grp->members)
                        return -ENOMEM;
                slot[g] = h->n_groups++;
                grp->vfio_node = group_vfio_node(g, old, n_old, recheck);
        }
        for (size_t i = 0; i < h->n_devices; i++) {
                int g = h->devices[i].iommu_group;
                if (g < 0)
                        continue;
                IovirtGroup *grp = &h->groups[slot[g]];
                grp->members[grp->n_members++] = i;
                h->devices[i].group = slot[g];
        }
        return 0;
}

/* Linux 5.15 added the reset_method attribute; it hides it on devices with
 * no method.  Asked only when no device showed the attribute.  1 or 0, or
 * -ENOMEM: out of memory is not an old kernel, whose resets would then be
 * guessed from config space where the kernel says there are none. */
static int kernel_has_reset_method(void) {
        _cleanup_free_ char *path = iovirt_root_path(PROC_OSRELEASE), *release = NULL;
        unsigned major, minor;
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, &release);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || sscanf(release, "%u.%u", &major, &minor) != 2)
                return 0;
        return major > 5 || (major == 5 && minor >= 15);
}

/* Reset methods for kernels without the reset_method attribute, decoded
 * the way the kernel probes them (pci_init_reset_methods). */
static int host_derive_resets(IovirtHost *h) {
        _cleanup_free_ size_t *below = NULL;   /* devices directly below each device */

        if (h->kernel_has_reset_method) {
                /* The kernel hides the attribute when no method works. */
                for (size_t i = 0; i < h->n_devices; i++)
                        if (h->devices[i].reset_source != IOVIRT_RESET_KERNEL) {
                                if (dup_fact(&h->devices[i].reset_methods, "") < 0)
                                        return -ENOMEM;
                                h->devices[i].reset_source = IOVIRT_RESET_KERNEL;
                        }
                return 0;
        }
        below = calloc(h->n_devices + 1, sizeof(size_t));
        if (!below)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].parent != IOVIRT_NONE)
                        below[h->devices[i].parent]++;
        for (size_t i = 0; i < h->n_devices; i++) {
                IovirtDevice *d = &h->devices[i];
                const IovirtCaps *c = &d->caps;
                if (c->pcie == IOVIRT_UNKNOWN || c->pm == IOVIRT_UNKNOWN || c->af == IOVIRT_UNKNOWN) {
                        d->reset_source = IOVIRT_RESET_UNKNOWN;
                        continue;
                }
                char buf[64] = "";
                if (c->pcie == IOVIRT_PRESENT && (c->devcap & PCI_EXP_DEVCAP_FLRESET))
                        strcat(buf, " flr");
                if (c->af == IOVIRT_PRESENT && c->af_flr)
                        strcat(buf, " af_flr");
                if (c->pm == IOVIRT_PRESENT && !c->pm_no_soft_reset)
                        strcat(buf, " pm");
                /* Secondary bus reset: only when the device is alone below its bridge */
                if (d->parent != IOVIRT_NONE && !d->bridge && below[d->parent] == 1)
                        strcat(buf, " bus");
                free(d->reset_methods);     /* siblings may have changed: derive again */
                d->reset_methods = strdup(buf[0] ? buf + 1 : "");
                if (!d->reset_methods)
                        return -ENOMEM;
                d->reset_source = IOVIRT_RESET_CONFIG;
        }
        return 0;
}

/* Reads every device udev listed.  One thread: under umockdev every call
 * takes a global lock, and on real hosts config reads dominate, which
 * threads would only reorder (measured: threads made the 4,130-function scan
 * 8% slower under the preload). */
/* local_cpulist is, by the kernel's definition, the CPU list of the
 * device's NUMA node (all online CPUs for node -1): one read per node
 * instead of one per device. */
static int host_fill_cpulists(IovirtHost *h) {
        char *cache[65] = {};    /* [0]: online CPUs (node -1); [n+1]: node n */
        int r = 0;

        for (size_t i = 0; i < h->n_devices && r == 0; i++) {
                IovirtDevice *d = &h->devices[i];
                if (d->local_cpulist || d->numa_node < -1 || d->numa_node >= 64 || !d->has_numa_attr)
                        continue;
                size_t k = (size_t) (d->numa_node + 1);
                if (!cache[k]) {
                        char path[128], *s = NULL;
                        if (d->numa_node < 0)
                                snprintf(path, sizeof(path), SYSFS_CPU_ONLINE);
                        else
                                snprintf(path, sizeof(path), SYSFS_NODE "/node%d/cpulist", d->numa_node);
                        r = iovirt_read_file(path, &s);
                        if (r == -ENOMEM)
                                break;
                        r = 0;
                        if (!s)
                                continue;     /* unknown stays unknown */
                        s[strcspn(s, "\n")] = '\0';
                        cache[k] = s;
                }
                if (!(d->local_cpulist = strdup(cache[k])))
                        r = -ENOMEM;
        }
        for (size_t k = 0; k < ELEMENTSOF(cache); k++)
                free(cache[k]);
        return r;
}

/* -ENOMEM, or 0 (d->vanished says whether it was gone) */
static int read_device(IovirtHost *h, IovirtDevice *d, struct pci_access *pacc) {
        int r = device_read_sysfs(d, &h->kernel_has_reset_method);
        if (r != 0)
                return r < 0 ? r : 0;
        r = device_read_config(d, pacc);
        if (r < 0)
                return r;
        if (r == 64)
                h->config_restricted = true;
        if ((d->class_code >> 8) == PCI_CLASS_DISPLAY_VGA) {
                char buf[8];
                r = iovirt_sysfs_read(d->syspath, ATTR_BOOT_VGA, buf, sizeof(buf));
                d->boot_vga = r > 0 && streq_ptr(buf, "1");
        }
        return 0;
}

static int read_devices(IovirtHost *h, struct pci_access *pacc) {
        for (size_t i = 0; i < h->n_devices; i++) {
                int r = read_device(h, &h->devices[i], pacc);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Everything derived from the set of devices, after it changed */
static int host_relink(IovirtHost *h, const int recheck[2]) {
        int r = host_link(h, recheck);
        if (r < 0)
                return r;
        r = host_derive_resets(h);
        if (r < 0)
                return r;
        return host_fill_cpulists(h);
}

int iovirt_host_update_device(IovirtHost *h, const char *syspath, bool removed, IovirtDeviceChange *ret) {
        const char *base = strrchr(syspath, '/');
        IovirtAddress addr;
        int r;

        *ret = (IovirtDeviceChange) { .kind = IOVIRT_DEVICE_UNCHANGED, .old_group = -1, .new_group = -1 };
        if (!base || iovirt_address_parse(base + 1, &addr, NULL) < 0)
                return -EINVAL;
        iovirt_address_format(&addr, ret->address);
        size_t i = iovirt_host_find_address(h, &addr);
        if (i != IOVIRT_NONE) {
                if (dup_fact(&ret->old_driver, h->devices[i].driver) < 0)
                        return -ENOMEM;
                ret->old_group = h->devices[i].iommu_group;
        }

        IovirtDevice d = { .addr = addr };
        memcpy(d.name, ret->address, sizeof(d.name));
        if (!removed) {
                if (!(d.syspath = strdup(syspath)))
                        return -ENOMEM;
                r = read_device(h, &d, h->pci_access);
                if (r < 0) {
                        device_clear(&d);
                        return r;
                }
                if (d.vanished) {          /* gone again before we read it */
                        device_clear(&d);
                        removed = true;
                }
        }
        if (removed) {
                if (i == IOVIRT_NONE)
                        return 0;
                device_clear(&h->devices[i]);
                memmove(&h->devices[i], &h->devices[i + 1], (h->n_devices - i - 1) * sizeof(IovirtDevice));
                h->n_devices--;
                ret->kind = IOVIRT_DEVICE_REMOVED;
        } else if (i != IOVIRT_NONE) {
                device_clear(&h->devices[i]);
                h->devices[i] = d;
                ret->kind = IOVIRT_DEVICE_CHANGED;
        } else {
                IovirtDevice *p = reallocarray(h->devices, h->n_devices + 1, sizeof(IovirtDevice));
                if (!p) {
                        device_clear(&d);
                        return -ENOMEM;
                }
                h->devices = p;
                size_t at = 0;
                while (at < h->n_devices && iovirt_address_compare(&h->devices[at].addr, &addr) < 0)
                        at++;
                memmove(&h->devices[at + 1], &h->devices[at], (h->n_devices - at) * sizeof(IovirtDevice));
                h->devices[at] = d;
                h->n_devices++;
                ret->kind = IOVIRT_DEVICE_ADDED;
        }
        /* the device's old and new groups may have gained or lost /dev/vfio/N */
        int recheck[2] = { ret->old_group, d.iommu_group };
        if (removed)
                recheck[1] = -1;
        r = host_relink(h, recheck);
        if (r < 0) {
                h->damaged = true;      /* links half rebuilt: not a model to judge by */
                return r;
        }
        if (ret->kind != IOVIRT_DEVICE_REMOVED) {
                const IovirtDevice *now = &h->devices[iovirt_host_find_address(h, &addr)];
                if (dup_fact(&ret->new_driver, now->driver) < 0) {
                        h->damaged = true;      /* changed, but the caller cannot be told how */
                        return -ENOMEM;
                }
                ret->new_group = now->iommu_group;
                if (ret->kind == IOVIRT_DEVICE_CHANGED && streq_ptr(ret->old_driver, ret->new_driver) &&
                    ret->old_group == ret->new_group)
                        ret->kind = IOVIRT_DEVICE_UNCHANGED;
        }
        return 1;
}

void iovirt_device_change_clear(IovirtDeviceChange *c) {
        c->old_driver = mfree(c->old_driver);
        c->new_driver = mfree(c->new_driver);
}


int iovirt_host_discover(IovirtHost **ret) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = calloc(1, sizeof(IovirtHost));
        _cleanup_(udev_unrefp) struct udev *udev = NULL;
        _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = NULL;
        size_t allocated = 0;
        struct pci_access *pacc;    /* for names; workers read with their own */
        int r;

        if (!h)
                return -ENOMEM;

        pacc = pci_alloc();     /* has no failure of its own but OOM */
        if (!pacc)
                return -ENOMEM;
        h->pci_access = pacc;
        pacc->error = pci_fatal;
        pacc->warning = pci_warn;
        pacc->debug = pci_quiet;
        pacc->method = PCI_ACCESS_SYS_BUS_PCI;
        /* never pci_scan_bus(): udev says what exists */
        if (!guarded_init(pacc))
                return -EIO;

        udev = udev_new();
        if (!udev)
                return -ENOMEM;
        e = udev_enumerate_new(udev);
        if (!e)
                return -ENOMEM;
        r = udev_enumerate_add_match_subsystem(e, "pci");
        if (r < 0)
                return r;
        r = udev_enumerate_scan_devices(e);
        if (r < 0)
                return r;

        struct udev_list_entry *entry;
        udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(e)) {
                const char *syspath = udev_list_entry_get_name(entry);
                const char *base = strrchr(syspath, '/');
                IovirtAddress addr;

                if (!base || iovirt_address_parse(base + 1, &addr, NULL) < 0) {
                        r = host_problem(h, "%s: not a PCI function address; skipped", syspath);
                        if (r < 0)
                                return r;
                        continue;
                }
                IovirtDevice *d = GROW(h->devices, h->n_devices, allocated);
                if (!d)
                        return -ENOMEM;
                d->addr = addr;
                iovirt_address_format(&addr, d->name);
                d->syspath = strdup(syspath);
                if (!d->syspath)
                        return -ENOMEM;
        }

        r = read_devices(h, pacc);
        if (r < 0)
                return r;

        /* Drop what vanished between udev's listing and our reading */
        size_t kept = 0;
        for (size_t i = 0; i < h->n_devices; i++) {
                IovirtDevice *d = &h->devices[i];
                if (d->vanished) {
                        r = host_problem(h, "%s vanished during the scan (%s); skipped", d->name,
                                         strerror(d->vanished));
                        device_clear(d);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (kept != i)
                        h->devices[kept] = *d;
                kept++;
        }
        h->n_devices = kept;

        /* udev lists by syspath; the model is in address order */
        qsort(h->devices, h->n_devices, sizeof(IovirtDevice), compare_devices);

        if (!h->kernel_has_reset_method) {
                r = kernel_has_reset_method();
                if (r < 0)
                        return r;
                h->kernel_has_reset_method = r > 0;
        }
        r = host_relink(h, (const int[2]) { -1, -1 });      /* no groups known yet: all are asked */
        if (r < 0)
                return r;

        *ret = TAKE_PTR(h);
        return 0;
}

/* A model rebuilt from a document has no libpci handle until it needs names */
static struct pci_access *names_access(IovirtHost *h) {
        if (!h->pci_access) {
                struct pci_access *pacc = pci_alloc();
                pacc->error = pci_fatal;
                pacc->warning = pci_quiet;
                pacc->debug = pci_quiet;
                pacc->method = PCI_ACCESS_SYS_BUS_PCI;
                if (!guarded_init(pacc)) {
                        pci_cleanup(pacc);
                        return NULL;
                }
                h->pci_access = pacc;
        }
        return h->pci_access;
}

const char *iovirt_host_vendor_name(IovirtHost *h, const IovirtDevice *d, char *buf, size_t size) {
        if (!d->ids_known || !names_access(h))
                return NULL;
        return guarded_lookup(h->pci_access, buf, size, PCI_LOOKUP_VENDOR, d->vendor, 0);
}

const char *iovirt_host_device_name(IovirtHost *h, const IovirtDevice *d, char *buf, size_t size) {
        if (!d->ids_known || !names_access(h))
                return NULL;
        return guarded_lookup(h->pci_access, buf, size, PCI_LOOKUP_DEVICE, d->vendor, d->device);
}

const char *iovirt_class_name(IovirtHost *h, uint32_t class_code, char *buf, size_t size) {
        if (!names_access(h))
                return NULL;
        return guarded_lookup(h->pci_access, buf, size, PCI_LOOKUP_CLASS, class_code >> 8, 0);
}

static int lookup_fail(char **reason, int err, const char *fmt, ...) _printf_(3, 4);
static int lookup_fail(char **reason, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        if (reason && vasprintf(reason, fmt, ap) < 0)
                *reason = NULL;
        va_end(ap);
        return err;
}

int iovirt_host_lookup(const IovirtHost *h, const char *spec, size_t *ret, char **reason) {
        IovirtAddress a;
        const char *why = NULL;
        char buf[PATH_MAX];

        if (!spec || !*spec)
                return lookup_fail(reason, -EINVAL,
                                   "no device given: name one by address (0000:05:00.0 or 05:00.0), "
                                   "network interface or sysfs path");
        if (strlen(spec) >= PATH_MAX)
                return lookup_fail(reason, -EINVAL, "the device name is too long");

        if (spec[0] == '/') {
                /* a sysfs path: /sys/bus/pci/devices/X, /sys/devices/.../X */
                size_t l = strlen(spec);
                while (l > 1 && spec[l - 1] == '/')
                        l--;
                const char *base = spec + l;
                while (base > spec && base[-1] != '/')
                        base--;
                size_t bl = (size_t) (spec + l - base);
                if (bl >= sizeof(buf))
                        return lookup_fail(reason, -EINVAL, "'%s' is too long", spec);
                memcpy(buf, base, bl);
                buf[bl] = '\0';
                if (iovirt_address_parse(buf, &a, NULL) < 0)
                        return lookup_fail(reason, -EINVAL,
                                           "'%s' is not the sysfs path of a PCI function "
                                           "(it should end in an address such as 0000:05:00.0)", spec);
        } else if (iovirt_address_parse(spec, &a, &why) < 0) {
                /* not an address: a network interface? */
                bool looks_like_address = strchr(spec, ':') || strncmp(spec, "pci_", 4) == 0;
                if (looks_like_address) {
                        char *s;
                        if (reason && asprintf(&s, "'%s' is not a valid PCI address: %s", spec, why) >= 0)
                                *reason = s;
                        return -EINVAL;
                }
                if (strchr(spec, '/') || strlen(spec) > 15)
                        return lookup_fail(reason, -EINVAL,
                                           "'%s' is neither a PCI address nor a network interface name", spec);
                snprintf(buf, sizeof(buf), SYSFS_CLASS_NET "/%s", spec);
                _cleanup_close_ int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                char name[64];
                if (fd < 0)
                        return lookup_fail(reason, -ENODEV,
                                           "no network interface or PCI device is called '%s'; "
                                           "'iovirtctl list-devices' shows them all", spec);
                if (iovirt_sysfs_link_name_at(fd, LINK_DEVICE, name, sizeof(name)) < 0 ||
                    iovirt_address_parse(name, &a, NULL) < 0)
                        return lookup_fail(reason, -ENODEV,
                                           "network interface '%s' is not backed by a PCI function", spec);
        }
        size_t i = iovirt_host_find_address(h, &a);
        if (i == IOVIRT_NONE) {
                char n[IOVIRT_ADDRESS_MAX];
                return lookup_fail(reason, -ENODEV,
                                   "no PCI function %s on this host; 'iovirtctl list-devices' shows them all",
                                   iovirt_address_format(&a, n));
        }
        *ret = i;
        return 0;
}
