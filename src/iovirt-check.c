/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <sys/stat.h>

#include "iovirt-check.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"

IovirtChecks *iovirt_checks_free(IovirtChecks *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_checks; i++) {
                free(c->checks[i].id);
                free(c->checks[i].title);
                free(c->checks[i].message);
                free(c->checks[i].remedy);
        }
        free(c->checks);
        free(c);
        return NULL;
}

const char *iovirt_check_status_name(IovirtCheckStatus s) {
        static const char *const names[] = { "PASS", "WARN", "FAIL", "SKIP" };
        return names[s];
}

IovirtCheckStatus iovirt_checks_worst(const IovirtChecks *c) {
        IovirtCheckStatus worst = IOVIRT_CHECK_PASS;
        for (size_t i = 0; i < c->n_checks; i++) {
                IovirtCheckStatus s = c->checks[i].status;
                if (s == IOVIRT_CHECK_FAIL)
                        return s;
                if (s == IOVIRT_CHECK_WARN)
                        worst = s;
        }
        return worst;
}

bool iovirt_cmdline_has(const char *cmdline, const char *word, char **value) {
        size_t wl = strlen(word);
        const char *p = cmdline;
        bool found = false;
        /* the last occurrence wins, as in the kernel */
        while (p && *p) {
                p += strspn(p, " \t\n");
                size_t l = strcspn(p, " \t\n");
                if (l >= wl && strncmp(p, word, wl) == 0 && (l == wl || p[wl] == '=')) {
                        found = true;
                        if (value) {
                                free(*value);
                                *value = l == wl ? strdup("") : strndup(p + wl + 1, l - wl - 1);
                        }
                }
                p += l;
        }
        return found;
}

static int add(IovirtChecks *c, const char *id, const char *title, IovirtCheckStatus status,
               const char *remedy, const char *fmt, ...) _printf_(6, 7);
static int add(IovirtChecks *c, const char *id, const char *title, IovirtCheckStatus status,
               const char *remedy, const char *fmt, ...) {
        IovirtCheck *n = reallocarray(c->checks, c->n_checks + 1, sizeof(IovirtCheck));
        if (!n)
                return -ENOMEM;
        c->checks = n;
        IovirtCheck *k = &n[c->n_checks];
        *k = (IovirtCheck) { .status = status };
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&k->message, fmt, ap);
        va_end(ap);
        if (r < 0)
                k->message = NULL;
        k->id = strdup(id);
        k->title = strdup(title);
        k->remedy = remedy ? strdup(remedy) : NULL;
        c->n_checks++;      /* counted even when incomplete, so that free() releases it */
        if (!k->message || !k->id || !k->title || (remedy && !k->remedy))
                return -ENOMEM;
        return 0;
}

static char *read_root_file(const char *path) {
        _cleanup_free_ char *p = iovirt_root_path(path);
        char *s = NULL;
        if (!p || iovirt_read_file(p, &s) < 0)
                return NULL;
        return s;
}

static bool exists(const char *path) {
        struct stat st;
        return stat(path, &st) == 0;
}

/* Loaded (/sys/module/NAME), built in, or installed as a module file */
typedef enum ModuleState { MODULE_MISSING, MODULE_LOADABLE, MODULE_LOADED } ModuleState;

static ModuleState module_state(const char *name, const char *file, const char *modules_dep,
                                const char *modules_builtin) {
        char path[256];
        snprintf(path, sizeof(path), SYSFS_MODULE "/%s", name);
        if (exists(path))
                return MODULE_LOADED;
        char needle[64];
        snprintf(needle, sizeof(needle), "/%s.ko", file);
        if ((modules_builtin && strstr(modules_builtin, needle)) || (modules_dep && strstr(modules_dep, needle)))
                return MODULE_LOADABLE;
        return MODULE_MISSING;
}

static const char *kernel_iommu_remedy(const char *cmdline, bool intel, bool amd) {
        if (iovirt_cmdline_has(cmdline, "iommu", NULL) && strstr(cmdline, "iommu=off"))
                return "remove iommu=off from the kernel command line and reboot";
        if (intel)
                return "add intel_iommu=on to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, "
                       "then update-grub) and reboot";
        if (amd)
                return "remove amd_iommu=off from the kernel command line, or update the firmware, and reboot";
        return "enable the IOMMU (VT-d / AMD-Vi / SMMU) in the firmware setup, then reboot";
}

static int check_iommu(IovirtChecks *c, const IovirtHost *h, const char *cmdline, bool *enabled) {
        bool dmar = exists(SYSFS_ACPI_TABLES "/DMAR"), ivrs = exists(SYSFS_ACPI_TABLES "/IVRS"),
             iort = exists(SYSFS_ACPI_TABLES "/IORT");
        int r;

        if (dmar || ivrs || iort)
                r = add(c, "iommu_firmware", "IOMMU in firmware", IOVIRT_CHECK_PASS, NULL,
                        "%s table present (%s)", dmar ? "DMAR" : ivrs ? "IVRS" : "IORT",
                        dmar ? "Intel VT-d" : ivrs ? "AMD-Vi" : "Arm SMMU");
        else
                r = add(c, "iommu_firmware", "IOMMU in firmware", IOVIRT_CHECK_FAIL,
                        "enable VT-d / AMD-Vi (IOMMU) in the firmware setup, then reboot",
                        "no DMAR, IVRS or IORT ACPI table: the firmware does not describe an IOMMU");
        if (r < 0)
                return r;

        /* groups exist iff the kernel's IOMMU driver is active */
        _cleanup_closedir_ DIR *dir = opendir(SYSFS_IOMMU_GROUPS);
        size_t groups = 0;
        struct dirent *de;
        while (dir && (de = readdir(dir)))
                groups += de->d_name[0] != '.';
        *enabled = groups > 0;
        if (*enabled) {
                _cleanup_free_ char *mode = NULL;
                bool pt = iovirt_cmdline_has(cmdline, "iommu", &mode) && streq_ptr(mode, "pt");
                return add(c, "iommu_kernel", "IOMMU enabled by the kernel", IOVIRT_CHECK_PASS, NULL,
                           "%zu IOMMU groups, %zu with PCI devices%s", groups, h->n_groups,
                           pt ? "; iommu=pt (host devices bypass translation)" : "");
        }
        return add(c, "iommu_kernel", "IOMMU enabled by the kernel", IOVIRT_CHECK_FAIL,
                   kernel_iommu_remedy(cmdline, dmar, ivrs),
                   "no IOMMU groups in " SYSFS_IOMMU_GROUPS ": the kernel is not using an IOMMU");
}

static int check_interrupts(IovirtChecks *c, bool iommu) {
        _cleanup_free_ char *interrupts = read_root_file(PROC_INTERRUPTS);
        char unsafe[8] = "";
        const char *title = "Interrupt remapping";

        if (!iommu)
                return add(c, "interrupt_remapping", title, IOVIRT_CHECK_SKIP, NULL, "needs the IOMMU");
        {
                _cleanup_free_ char *s = NULL;
                if (iovirt_read_file(SYSFS_UNSAFE_INTERRUPTS, &s) == 0)
                        snprintf(unsafe, sizeof(unsafe), "%c", s[0]);
        }
        if (interrupts && strstr(interrupts, "IR-"))
                return add(c, "interrupt_remapping", title, IOVIRT_CHECK_PASS, NULL,
                           "enabled (IR- interrupt domains in /proc/interrupts)");
        if (unsafe[0] == 'Y' || unsafe[0] == '1')
                return add(c, "interrupt_remapping", title, IOVIRT_CHECK_WARN,
                           "enable interrupt remapping (x2APIC/IR in the firmware; drop intremap=off), "
                           "then unset vfio_iommu_type1 allow_unsafe_interrupts",
                           "off, and vfio_iommu_type1 allow_unsafe_interrupts=1: a guest can forge MSIs to attack the host");
        if (!interrupts || !strstr(interrupts, "MSI"))
                return add(c, "interrupt_remapping", title, IOVIRT_CHECK_WARN,
                           "check dmesg for 'DMAR-IR' or 'AMD-Vi: Interrupt remapping enabled'",
                           "cannot tell: no MSI interrupts in /proc/interrupts");
        return add(c, "interrupt_remapping", title, IOVIRT_CHECK_FAIL,
                   "enable interrupt remapping (x2APIC/IR in the firmware; drop intremap=off); "
                   "only if you accept the risk: vfio_iommu_type1.allow_unsafe_interrupts=1",
                   "off: VFIO will refuse to give devices to guests");
}

static int check_vfio(IovirtChecks *c) {
        _cleanup_free_ char *release = read_root_file(PROC_OSRELEASE);
        _cleanup_free_ char *dep = NULL, *builtin = NULL;
        int r;

        if (release) {
                release[strcspn(release, "\n")] = '\0';
                _cleanup_free_ char *p1 = NULL, *p2 = NULL;
                if (asprintf(&p1, LIB_MODULES "/%s/modules.dep", release) >= 0)
                        dep = read_root_file(p1);
                if (asprintf(&p2, LIB_MODULES "/%s/modules.builtin", release) >= 0)
                        builtin = read_root_file(p2);
        }
        ModuleState pci = module_state("vfio_pci", "vfio-pci", dep, builtin),
                    type1 = module_state("vfio_iommu_type1", "vfio_iommu_type1", dep, builtin);

        if (pci == MODULE_MISSING || type1 == MODULE_MISSING)
                r = add(c, "vfio_modules", "vfio modules", IOVIRT_CHECK_FAIL,
                        "install the kernel's module package (linux-image-*) that matches the running kernel",
                        "%s%s%s not installed for kernel %s", pci == MODULE_MISSING ? "vfio-pci" : "",
                        pci == MODULE_MISSING && type1 == MODULE_MISSING ? " and " : "",
                        type1 == MODULE_MISSING ? "vfio_iommu_type1" : "", release ? release : "(unknown)");
        else if (pci == MODULE_LOADED && type1 == MODULE_LOADED)
                r = add(c, "vfio_modules", "vfio modules", IOVIRT_CHECK_PASS, NULL,
                        "vfio-pci and vfio_iommu_type1 loaded");
        else
                r = add(c, "vfio_modules", "vfio modules", IOVIRT_CHECK_PASS, NULL,
                        "vfio-pci and vfio_iommu_type1 installed; loaded on first assignment");
        if (r < 0)
                return r;

        if (exists(DEV_VFIO_CONTAINER))
                return add(c, "vfio_device", DEV_VFIO_CONTAINER, IOVIRT_CHECK_PASS, NULL, "present");
        if (pci != MODULE_MISSING && type1 != MODULE_MISSING)
                return add(c, "vfio_device", DEV_VFIO_CONTAINER, IOVIRT_CHECK_WARN, "modprobe vfio-pci",
                           "absent until vfio is loaded");
        return add(c, "vfio_device", DEV_VFIO_CONTAINER, IOVIRT_CHECK_FAIL,
                   "install the vfio modules (see above)", "absent, and vfio cannot be loaded");
}

static int check_acs(IovirtChecks *c, const IovirtHost *h, const IovirtVerdicts *v, const char *cmdline,
                     bool iommu) {
        _cleanup_free_ char *override = NULL;
        const char *title = "ACS isolation";
        char list[256] = "";
        size_t leaky = 0, l = 0;

        if (!iommu)
                return add(c, "acs_override", title, IOVIRT_CHECK_SKIP, NULL, "needs the IOMMU");
        for (size_t i = 0; i < v->n_groups; i++)
                if (v->groups[i].isolation == IOVIRT_LEAKY) {
                        if (leaky < 5 && l < sizeof(list))
                                l += (size_t) snprintf(list + l, sizeof(list) - l, "%s%d", leaky ? ", " : "",
                                                       h->groups[i].number);
                        leaky++;
                }
        if (iovirt_cmdline_has(cmdline, "pcie_acs_override", &override))
                return add(c, "acs_override", title, IOVIRT_CHECK_WARN,
                           "remove pcie_acs_override from the kernel command line and assign whole groups, "
                           "or move the devices to slots behind ACS-capable ports",
                           "booted with pcie_acs_override=%s: groups are finer than the hardware isolates "
                           "(%zu leaky%s%s%s)", override, leaky, leaky ? ": " : "", list, leaky > 5 ? ", ..." : "");
        if (leaky)
                return add(c, "acs_override", title, IOVIRT_CHECK_WARN,
                           "see 'iovirtctl list-groups': assign leaky groups only together with their peers",
                           "%zu group%s leaky (finer than the hardware isolates): %s%s", leaky,
                           leaky == 1 ? " is" : "s are", list, leaky > 5 ? ", ..." : "");
        return add(c, "acs_override", title, IOVIRT_CHECK_PASS, NULL, "no ACS override; no leaky groups");
}

static int check_resets(IovirtChecks *c, const IovirtHost *h) {
        char list[256] = "";
        size_t none = 0, unknown = 0, l = 0;
        const char *title = "Reset methods";

        for (size_t i = 0; i < h->n_devices; i++) {
                const IovirtDevice *d = &h->devices[i];
                if (!iovirt_device_is_endpoint(d))
                        continue;
                if (d->reset_source == IOVIRT_RESET_UNKNOWN)
                        unknown++;
                else if (d->reset_methods && !d->reset_methods[0]) {
                        if (none < 4 && l < sizeof(list))
                                l += (size_t) snprintf(list + l, sizeof(list) - l, "%s%s", none ? ", " : "", d->name);
                        none++;
                }
        }
        if (none)
                return add(c, "reset", title, IOVIRT_CHECK_WARN,
                           "a guest may get these devices in a dirty state: prefer devices with FLR, "
                           "or give each to one VM until the host reboots",
                           "%zu device%s without any reset method: %s%s", none, none == 1 ? "" : "s", list,
                           none > 4 ? ", ..." : "");
        if (unknown)
                return add(c, "reset", title, IOVIRT_CHECK_WARN, "run as root to read the capabilities",
                           "%zu device%s with unknown reset methods (config space unreadable)", unknown,
                           unknown == 1 ? "" : "s");
        return add(c, "reset", title, IOVIRT_CHECK_PASS, NULL, "every endpoint has a reset method");
}

static int check_scan(IovirtChecks *c, const IovirtHost *h) {
        size_t problems = h->n_problems;
        const char *first = h->n_problems ? h->problems[0] : NULL;
        const char *first_dev = NULL;

        for (size_t i = 0; i < h->n_devices; i++)
                if (h->devices[i].problem) {
                        if (!first) {
                                first = h->devices[i].problem;
                                first_dev = h->devices[i].name;
                        }
                        problems++;
                }
        if (h->config_restricted)
                return add(c, "scan", "Device scan", IOVIRT_CHECK_WARN, "run as root (sudo iovirtctl check)",
                           "not root: config space past 64 bytes is unreadable, so ACS, SR-IOV and reset "
                           "data are unknown");
        if (problems)
                return add(c, "scan", "Device scan", IOVIRT_CHECK_WARN,
                           "see 'iovirtctl show DEVICE' for each device named there",
                           "%zu problem%s; first: %s%s%s", problems, problems == 1 ? "" : "s",
                           first_dev ? first_dev : "", first_dev ? ": " : "", first);
        return add(c, "scan", "Device scan", IOVIRT_CHECK_PASS, NULL, "%zu PCI functions read without problems",
                   h->n_devices);
}

int iovirt_checks_run(const IovirtHost *h, const IovirtVerdicts *v, IovirtChecks **ret) {
        _cleanup_(iovirt_checks_freep) IovirtChecks *c = calloc(1, sizeof(IovirtChecks));
        _cleanup_free_ char *cmdline = read_root_file(PROC_CMDLINE);
        bool iommu = false;
        int r;

        if (!c)
                return -ENOMEM;
        if (!cmdline && !(cmdline = strdup("")))
                return -ENOMEM;
        if ((r = check_iommu(c, h, cmdline, &iommu)) < 0 || (r = check_interrupts(c, iommu)) < 0 ||
            (r = check_vfio(c)) < 0 || (r = check_acs(c, h, v, cmdline, iommu)) < 0 ||
            (r = check_resets(c, h)) < 0 || (r = check_scan(c, h)) < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}
