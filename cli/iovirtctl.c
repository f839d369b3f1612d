/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <sys/ioctl.h>

#include <systemd/sd-bus.h>

#include "iovirt-address.h"
#include "iovirt-names.h"
#include "iovirt-memlock.h"
#include "iovirt-netlink.h"
#include "iovirt-numa.h"
#include "iovirt-policy.h"
#include "iovirt-sriov.h"
#include "iovirt-state.h"
#include "iovirt-variant.h"
#include "iovirtctl.h"

enum {
        OPT_FILTERS = 1u << 0,   /* accepts --class/--driver/--group/--numa */
        OPT_ASSIGN = 1u << 1,    /* accepts --to/--dry-run/--accept-leaky; needs --to */
        OPT_RELEASE = 1u << 2,   /* accepts --consumer, or else a TARGET */
        ARG_DEVICE = 1u << 3,    /* its argument is a DEVICE */
        ARG_TARGET = 1u << 4,    /* its argument is a TARGET: a DEVICE or group:N */
        NEEDS_DAEMON = 1u << 5,  /* asks iovirtd, never reads the host itself: not --direct */
        OPT_SRIOV = 1u << 6,     /* accepts --vfs/--persist/--autoprobe and the VF settings */
        ARG_SRIOV = 1u << 7,     /* its argument is a PF, or a VF as PF#N with settings */
        OPT_DRIVER = 1u << 8,    /* (given only) --driver: list-devices' filter, or assign's VFIO driver */
};

typedef struct Verb {
        const char *name;
        int min_args, max_args;
        unsigned flags;
        int (*run)(Ctl *c, int argc, char **argv);
        const char *args;
        const char *help;
} Verb;

static const Verb verbs[] = {
        { "list-groups", 0, 0, 0, verb_list_groups, "", "IOMMU groups with isolation verdicts and members" },
        { "list-devices", 0, 0, OPT_FILTERS, verb_list_devices, "", "PCI functions, optionally filtered" },
        { "show", 1, 1, ARG_DEVICE, verb_show, "DEVICE", "everything known about one function" },
        { "tree", 0, 0, 0, verb_tree, "", "the PCI topology with groups and isolation" },
        { "check", 0, 0, 0, verb_check, "", "is this host ready for device assignment?" },
        { "reload", 0, 0, NEEDS_DAEMON, verb_reload, "", "make iovirtd re-read the host (polkit: org.iovirt1.reload)" },
        { "assign", 1, 1, OPT_ASSIGN | ARG_TARGET | NEEDS_DAEMON, verb_assign, "TARGET --to CONSUMER",
          "give TARGET's whole IOMMU group to its VFIO driver for CONSUMER (polkit: org.iovirt1.assign)" },
        { "release", 0, 1, OPT_RELEASE | ARG_TARGET | NEEDS_DAEMON, verb_release, "TARGET | --consumer C",
          "give a group back to its host drivers (polkit: org.iovirt1.release)" },
        { "list-assignments", 0, 0, NEEDS_DAEMON, verb_list_assignments, "",
          "what is assigned to whom, and any drift" },
        { "status", 0, 0, NEEDS_DAEMON, verb_status, "",
          "the pinned-memory budget and what each consumer holds of it" },
        { "policy", 0, 0, NEEDS_DAEMON, verb_policy, "", "the policy iovirtd enforces, each setting with its file:line" },
        { "libvirt-hook", 3, 3, NEEDS_DAEMON, verb_libvirt_hook, "DOMAIN OPERATION SUB-OPERATION",
          "what libvirt's qemu.d hook runs, the domain XML on stdin: prepare begin prepares its PCI hostdevs, "
          "release end gives them back (polkit: org.iovirt1.assign, org.iovirt1.release)" },
        { "sriov", 1, 1, OPT_SRIOV | ARG_SRIOV | NEEDS_DAEMON, verb_sriov, "PF [--vfs N] | PF#N --mac ADDR ...",
          "a PF's VFs; create or remove them, set one's MAC, VLAN, spoof check and trust "
          "(polkit: org.iovirt1.manage-sriov)" },
};

static void help(void) {
        printf("iovirtctl [OPTIONS] COMMAND [ARGS]\n\n"
               "Inspect IOMMU groups, isolation and devices, and assign whole groups to VMs.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                char left[64];
                snprintf(left, sizeof(left), "%s %s", verbs[i].name, verbs[i].args);
                if (strlen(left) > 22)
                        printf("  %s\n  %-22s %s\n", left, "", verbs[i].help);
                else
                        printf("  %-22s %s\n", left, verbs[i].help);
        }
        printf("\nOptions:\n"
               "  -h --help              show this help\n"
               "     --version           show the version\n"
               "  -j --json              print JSON (schema: man iovirtctl)\n"
               "     --direct            read the host directly instead of asking iovirtd\n"
               "     --no-ask-password   never ask for a password for changing commands\n"
               "\nlist-devices filters:\n"
               "     --class CLASS       net, storage, display, multimedia, usb, serial, bridge,\n"
               "                         crypto, accelerator, or a hex class prefix such as 0200\n"
               "     --driver NAME       bound to driver NAME (\"none\" for unbound)\n"
               "     --group N           in IOMMU group N\n"
               "     --numa N            on NUMA node N\n"
               "\nassign and release:\n"
               "     --to CONSUMER       who gets the group: domain:NAME or domain:UUID (a libvirt\n"
               "                         domain: attached live when it runs), pid:PID (a plain\n"
               "                         QEMU), or any other name (a VM id); a bare name libvirt\n"
               "                         knows means that domain\n"
               "     --persistent        assign: to a running domain's persistent config too\n"
               "     --dry-run           show the plan and its checks; change nothing\n"
               "     --accept-leaky      assign a leaky group (peers can reach it by DMA)\n"
               "     --driver NAME       assign: bind the VFIO driver NAME (vfio-pci, or a variant\n"
               "                         such as mlx5_vfio_pci), not the one the kernel's\n"
               "                         modules.alias gives (libvirt's rule)\n"
               "     --memory SIZE       assign: the guest's memory (4G, 4096M): sizes its\n"
               "                         RLIMIT_MEMLOCK and its share of the pinned budget\n"
               "     --viommu            assign: the guest has a virtual IOMMU (libvirt's factor)\n"
               "     --hard-limit SIZE   assign: RLIMIT_MEMLOCK as given, not libvirt's rule\n"
               "     --numa-policy P     assign: required, legacy, preferred, socket or none\n"
               "     --numa-node N       assign: the consumer runs on NUMA node N\n"
               "     --cpus LIST         assign: the consumer runs on these CPUs (0-3,8-11)\n"
               "     --user USER         assign: give /dev/vfio/N to USER (a plain QEMU that is\n"
               "                         not root; a pid: consumer's own user by default)\n"
               "     --print-qemu-args   assign: print QEMU's -device vfio-pci,host=... arguments\n"
               "     --consumer CONSUMER release everything assigned to CONSUMER\n"
               "\nsriov:\n"
               "     --vfs N             enable N VFs on the PF (0 removes them)\n"
               "     --autoprobe yes|no  whether new VFs get a host driver (with --vfs)\n"
               "     --mac ADDR          the VF's MAC address (PF#N)\n"
               "     --vlan ID           the VF's VLAN, 0-4095; 0 for none (PF#N)\n"
               "     --spoofchk on|off   the VF's spoof check (PF#N)\n"
               "     --trust on|off      whether the VF is trusted (PF#N)\n"
               "     --persist           restore this at boot, before assignments\n"
               "     --no-persist        stop restoring the PF's VFs and settings (with --vfs)\n"
               "\nTARGET is a DEVICE (its whole IOMMU group is meant), group:N, VFs of a PF\n"
               "as PF#RANGE: enp5s0f0#0-3, 0000:05:00.0#0,2-7, or pool:NAME (a pool of the\n"
               "policy); of several, assign takes the nearest free one by the NUMA policy.\n"
               "CONSUMER is domain:NAME or domain:UUID, a libvirt domain (attached live when it\n"
               "runs; a bare name libvirt knows means it too), pid:PID, a process whose\n"
               "RLIMIT_MEMLOCK iovirtd raises and whose exit releases its devices, or any\n"
               "other name (a VM id).\n"
               "DEVICE is a PCI address (0000:05:00.0 or 05:00.0), libvirt's pci_0000_05_00_0,\n"
               "a network interface name (enp5s0) or a sysfs path.\n"
               "Exit status: 0 success, 1 failure (or a FAIL from check), 2 usage error.\n"
               "With --json a failure prints {\"error\": {\"name\": ..., \"message\": ...}} (man iovirtctl).\n");
}

/* ---- syntax, checked before anything is read or the bus is contacted ---- */

static int parse_nonneg(const char *s, int *ret) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 0 || v > 1000000 || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* A DEVICE, as iovirt_host_lookup() takes it, judged without the host: an
 * address in any of its forms must be well formed, a sysfs path must end in
 * one, anything else must be able to be a network interface name (the
 * kernel's dev_valid_name()).  Whether it exists only the host can say. */
static int check_device(Ctl *c, const char *spec) {
        IovirtAddress a;
        const char *why = NULL;
        size_t l = strlen(spec);

        if (l == 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "no device given: name one by address (0000:05:00.0 or 05:00.0), "
                                                    "network interface or sysfs path");
        if (l >= PATH_MAX)
                return ctl_fail(c, CTL_ERROR_USAGE, "the device name is too long");
        if (spec[0] == '/') {
                char base[PATH_MAX];
                while (l > 1 && spec[l - 1] == '/')
                        l--;
                size_t b = l;
                while (b > 0 && spec[b - 1] != '/')
                        b--;
                memcpy(base, spec + b, l - b);
                base[l - b] = '\0';
                if (iovirt_address_parse(base, &a, NULL) < 0)
                        return ctl_fail(c, CTL_ERROR_USAGE, "'%s' is not the sysfs path of a PCI function "
                                                            "(it should end in an address such as 0000:05:00.0)", spec);
                return 0;
        }
        if (iovirt_address_parse(spec, &a, &why) >= 0)
                return 0;
        if (strchr(spec, ':') || strncmp(spec, "pci_", 4) == 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s' is not a valid PCI address: %s", spec, why);
        bool iface = l <= 15 && !streq_ptr(spec, ".") && !streq_ptr(spec, "..");
        for (const char *p = spec; iface && *p; p++)
                if (*p == '/' || isspace((unsigned char) *p) || iscntrl((unsigned char) *p))
                        iface = false;
        if (!iface)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s' is neither a PCI address nor a network interface name",
                                spec);
        return 0;
}

/* PF#RANGE: the range well formed (iovirt_selector_parse() says what is
 * wrong) and the PF a DEVICE.  Whether the indexes fit the PF is for the
 * verb to find out (its total is the host's to say: ctl_check_selector()).
 * Returns 0 with *n_vfs the number of VFs named (0 when spec is no
 * selector), or the exit status of the usage error reported. */
static int check_selector(Ctl *c, const char *spec, unsigned *n_vfs) {
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_free_ char *reason = NULL;
        int status;

        *n_vfs = 0;
        int r = iovirt_selector_parse(spec, &sel, &reason);
        if (r == -ENOMEM)
                return ctl_fail(c, CTL_ERROR_FAILED, "out of memory");
        if (r < 0)
                return reason ? ctl_fail(c, CTL_ERROR_USAGE, "%s", reason)
                              : ctl_fail(c, CTL_ERROR_USAGE, "'%s' is not a valid VF selector (PF#RANGE, as in "
                                                             "enp5s0f0#0-3 or 0000:05:00.0#0,2-7)", spec);
        if (r == 0)
                return 0;
        if ((status = check_device(c, sel.pf)))
                return status;
        *n_vfs = iovirt_selector_count(&sel);
        return 0;
}

/* A TARGET: group:N, PF#RANGE or a DEVICE */
static int check_target(Ctl *c, const char *target) {
        const char *n = target + 6;
        unsigned n_vfs;
        if (strchr(target, '#'))
                return check_selector(c, target, &n_vfs);
        if (strncmp(target, "pool:", 5) == 0) {
                if (!target[5] || strlen(target) > 5 + 64)
                        return ctl_fail(c, CTL_ERROR_USAGE, "'%s': a pool is written pool:NAME, with NAME a pool of "
                                                            "the policy (iovirtctl policy)", target);
                return 0;
        }
        if (strncmp(target, "group:", 6) != 0)
                return check_device(c, target);
        /* decimal digits that fit an int, as the kernel names groups */
        size_t l = strlen(n);
        if (l == 0 || l > 10 || strspn(n, "0123456789") != l || strtoll(n, NULL, 10) > INT_MAX)
                return ctl_fail(c, CTL_ERROR_USAGE,
                                "'%s': a group is written group:N, with N a group number (iovirtctl list-groups)",
                                target);
        return 0;
}

static int check_consumer(Ctl *c, const char *option, const char *consumer) {
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_consumer_valid(consumer, &reason);
        if (r == -ENOMEM)
                return ctl_fail(c, CTL_ERROR_FAILED, "out of memory");
        if (r < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "%s: %s", option, reason ? reason : "not a valid consumer name");
        return 0;
}

/* show's DEVICE: a function, or one VF as PF#N */
static int check_one_device(Ctl *c, const char *spec) {
        unsigned n_vfs;
        int status;
        if (!strchr(spec, '#'))
                return check_device(c, spec);
        if ((status = check_selector(c, spec, &n_vfs)))
                return status;
        if (n_vfs != 1)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s' names %u VFs; %s describes one function (PF#N): "
                                                    "iovirtctl sriov PF lists them all", spec, n_vfs, c->verb);
        return 0;
}

/* --vfs N: a count the SR-IOV capability can hold (TotalVFs is 16 bits) */
static int parse_vfs(const char *s, unsigned *ret) {
        size_t l = strlen(s);
        if (l == 0 || strspn(s, "0123456789") != l)
                return -EINVAL;
        unsigned long v = l > 5 ? ULONG_MAX : strtoul(s, NULL, 10);
        if (v > 65535)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/* sriov PF [--vfs N [--autoprobe yes|no]] [--persist], or sriov PF#N with
 * VF settings [--persist]: which options go together, then every value */
static int check_sriov(Ctl *c, const char *spec) {
        bool settings = c->opt_mac || c->opt_vlan || c->opt_spoofchk || c->opt_trust;
        bool selector = strchr(spec, '#');
        const char *reason = NULL;
        unsigned n_vfs = 0;
        int r, status;

        if (selector && (status = check_selector(c, spec, &n_vfs)))
                return status;
        if (!selector && (status = check_device(c, spec)))
                return status;
        if (c->opt_vfs && settings)
                return ctl_fail(c, CTL_ERROR_USAGE, "--vfs changes a PF's VFs and --mac, --vlan, --spoofchk and "
                                                    "--trust one VF's settings: one of them at a time");
        if (c->opt_vfs && selector)
                return ctl_fail(c, CTL_ERROR_USAGE, "--vfs wants a PF, not the VF selector '%s'", spec);
        if (settings && !selector)
                return ctl_fail(c, CTL_ERROR_USAGE, "--mac, --vlan, --spoofchk and --trust set one VF's settings: "
                                                    "name it as PF#N (for example %s#0)", spec);
        if (settings && n_vfs != 1)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s' names %u VFs; settings go to one VF at a time (PF#N)",
                                spec, n_vfs);
        if (selector && !settings)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s' is a VF: give it --mac, --vlan, --spoofchk or --trust; "
                                                    "'iovirtctl sriov PF' lists a PF's VFs", spec);
        if (c->opt_autoprobe && !c->opt_vfs)
                return ctl_fail(c, CTL_ERROR_USAGE, "--autoprobe goes with --vfs N");
        if (c->persist > 0 && !c->opt_vfs && !settings)
                return ctl_fail(c, CTL_ERROR_USAGE, "--persist goes with --vfs N or a VF's settings");
        if (c->persist == 0 && (!c->opt_vfs || settings))
                return ctl_fail(c, CTL_ERROR_USAGE, "--no-persist goes with --vfs N: the PF's count, autoprobe and "
                                                    "VF settings are then no longer restored at start-up");

        if (c->opt_vfs && (r = parse_vfs(c->opt_vfs, &c->vfs)) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "--vfs wants a number of VFs, %s, not '%s'",
                                r == -ERANGE ? "at most 65535 (what SR-IOV can count)" : "0 or more", c->opt_vfs);
        if (c->opt_autoprobe) {
                if (streq_ptr(c->opt_autoprobe, "yes"))
                        c->autoprobe = true;
                else if (streq_ptr(c->opt_autoprobe, "no"))
                        c->autoprobe = false;
                else
                        return ctl_fail(c, CTL_ERROR_USAGE, "--autoprobe wants yes or no, not '%s'", c->opt_autoprobe);
        }
        if (c->opt_mac && iovirt_mac_parse(c->opt_mac, c->mac, &reason) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "--mac '%s': %s", c->opt_mac,
                                reason ? reason : "not a MAC address; write it as 52:54:00:12:34:56");
        reason = NULL;
        if (c->opt_vlan && iovirt_vlan_parse(c->opt_vlan, &c->vlan, &reason) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "--vlan '%s': %s", c->opt_vlan,
                                reason ? reason : "a VLAN ID is 0 to 4095 (0: no VLAN)");
        if (c->opt_spoofchk && iovirt_onoff_parse(c->opt_spoofchk, &c->spoofchk) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "--spoofchk wants on or off, not '%s'", c->opt_spoofchk);
        if (c->opt_trust && iovirt_onoff_parse(c->opt_trust, &c->trust) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "--trust wants on or off, not '%s'", c->opt_trust);
        return 0;
}

/* A driver is a directory in /sys/bus/pci/drivers */
static int check_driver(Ctl *c, const char *driver) {
        size_t l = strlen(driver);
        bool ok = l > 0 && l <= NAME_MAX && !strchr(driver, '/') && !streq_ptr(driver, ".") && !streq_ptr(driver, "..");
        for (const char *p = driver; ok && *p; p++)
                ok = !iscntrl((unsigned char) *p);
        if (!ok)
                return ctl_fail(c, CTL_ERROR_USAGE, "--driver wants a driver name (as in /sys/bus/pci/drivers), "
                                                    "or none, not '%s'", driver);
        return 0;
}

static int check_size(Ctl *c, const char *option, const char *value) {
        const char *why = NULL;
        uint64_t v;
        if (!value)
                return 0;
        if (iovirt_size_parse(value, &v, &why) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "%s wants a size (4G, 4096M, 512K or bytes), not '%s': %s", option,
                                value, why);
        if (v == 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "%s 0 is no size; give the guest's memory (4G, 4096M)", option);
        return 0;
}

/* assign's --memory, --hard-limit, --numa-policy, --numa-node, --cpus */
static int check_policy_options(Ctl *c) {
        int status, node;
        if ((status = check_size(c, "--memory", c->opt_memory)) || (status = check_size(c, "--hard-limit", c->opt_hard_limit)))
                return status;
        if (c->opt_numa_policy && iovirt_numa_policy_from_string(c->opt_numa_policy) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "--numa-policy wants required, legacy, preferred, socket or none, "
                                                    "not '%s'", c->opt_numa_policy);
        if (c->opt_numa_node && (parse_nonneg(c->opt_numa_node, &node) < 0 || node >= IOVIRT_NUMA_NODES_MAX))
                return ctl_fail(c, CTL_ERROR_USAGE, "--numa-node wants a NUMA node number (0-%d), not '%s'",
                                IOVIRT_NUMA_NODES_MAX - 1, c->opt_numa_node);
        if (c->opt_cpus) {
                _cleanup_(iovirt_bitmap_clear) IovirtBitmap cpus = {};
                if (iovirt_numa_cpulist_parse(c->opt_cpus, &cpus) < 0 || iovirt_bitmap_count(&cpus) == 0)
                        return ctl_fail(c, CTL_ERROR_USAGE, "--cpus wants a CPU list as the kernel writes it (0-3,8-11), "
                                                            "not '%s'", c->opt_cpus);
        }
        if (c->opt_user && (!*c->opt_user || strlen(c->opt_user) > 64 ||
                            strspn(c->opt_user, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-$") !=
                                    strlen(c->opt_user)))
                return ctl_fail(c, CTL_ERROR_USAGE, "--user wants a user name or a uid, not '%s'", c->opt_user);
        if (c->print_qemu_args && c->json)
                return ctl_fail(c, CTL_ERROR_USAGE, "--print-qemu-args prints QEMU's arguments, --json the plan; "
                                                    "give one");
        if (c->opt_numa_node && c->opt_cpus)
                return ctl_fail(c, CTL_ERROR_USAGE, "--numa-node and --cpus both say where the consumer runs; give one");
        return 0;
}

/* Everything that can be told wrong from the command line alone, for verb v
 * with its n arguments: counts, options, then every value */
static int check_usage(Ctl *c, const Verb *v, int n, char **args, bool filters, unsigned given) {
        int status;

        if (n < v->min_args || n > v->max_args) {
                if (v->max_args == 0)
                        return ctl_fail(c, CTL_ERROR_USAGE, "%s takes no arguments", v->name);
                return ctl_fail(c, CTL_ERROR_USAGE, "usage: iovirtctl %s %s", v->name, v->args);
        }
        if (filters && !(v->flags & OPT_FILTERS))
                return ctl_fail(c, CTL_ERROR_USAGE, "--class, --group and --numa go with list-devices only");
        if ((given & OPT_DRIVER) && !(v->flags & (OPT_FILTERS | OPT_ASSIGN)))
                return ctl_fail(c, CTL_ERROR_USAGE, "--driver goes with list-devices (a filter) and assign (the VFIO "
                                                    "driver to bind) only");
        if ((given & OPT_DRIVER) && (v->flags & OPT_ASSIGN)) {
                /* assign's: a VFIO driver; whether it is one, iovirtd says */
                c->vfio_driver = TAKE_PTR(c->filter_driver);
                if (!iovirt_variant_name_valid(c->vfio_driver))
                        return ctl_fail(c, CTL_ERROR_USAGE, "--driver wants the name of a VFIO driver (vfio-pci, or a "
                                                            "variant driver such as mlx5_vfio_pci), not '%s'",
                                        c->vfio_driver);
        }
        if (given & ~v->flags & OPT_ASSIGN)
                return ctl_fail(c, CTL_ERROR_USAGE, "--to, --dry-run, --accept-leaky, --memory, --viommu, "
                                                    "--hard-limit, --numa-policy, --numa-node, --cpus, --user, "
                                                    "--persistent and --print-qemu-args go with assign only");
        if ((status = check_policy_options(c)))
                return status;
        if (given & ~v->flags & OPT_RELEASE)
                return ctl_fail(c, CTL_ERROR_USAGE, "--consumer goes with release only");
        if (given & ~v->flags & OPT_SRIOV)
                return ctl_fail(c, CTL_ERROR_USAGE, "--vfs, --autoprobe, --mac, --vlan, --spoofchk, --trust and "
                                                    "--persist go with sriov only");
        if (c->direct && (v->flags & NEEDS_DAEMON))
                return ctl_fail(c, CTL_ERROR_USAGE, "%s asks iovirtd; it cannot be done --direct", v->name);
        if ((v->flags & OPT_ASSIGN) && !c->consumer)
                return ctl_fail(c, CTL_ERROR_USAGE,
                                "%s needs --to CONSUMER (the VM: its libvirt domain name or id)", v->name);
        if ((v->flags & OPT_RELEASE) && (n == 1) == (c->consumer != NULL))
                return ctl_fail(c, CTL_ERROR_USAGE, "%s takes a TARGET or --consumer CONSUMER (one of them)", v->name);

        if (c->filter_class) {
                uint32_t code;
                unsigned digits;
                char names[256];
                if (ctl_parse_class(c->filter_class, &code, &digits) < 0)
                        return ctl_fail(c, CTL_ERROR_USAGE,
                                        "unknown class '%s'; use one of %s, or a hex class prefix such as 0200",
                                        c->filter_class, ctl_class_names(names, sizeof(names)));
        }
        if (c->filter_driver && !streq_ptr(c->filter_driver, "none") && (status = check_driver(c, c->filter_driver)))
                return status;
        if (c->consumer && (status = check_consumer(c, (v->flags & OPT_ASSIGN) ? "--to" : "--consumer", c->consumer)))
                return status;
        for (int i = 0; i < n; i++) {
                status = (v->flags & ARG_DEVICE) ? check_one_device(c, args[i])
                         : (v->flags & ARG_TARGET) ? check_target(c, args[i])
                         : (v->flags & ARG_SRIOV)  ? check_sriov(c, args[i])
                                                   : 0;
                if (status)
                        return status;
        }
        return 0;
}

static unsigned terminal_columns(void) {
        struct winsize w;
        const char *e = getenv("COLUMNS");
        if (e && atoi(e) >= 40)
                return (unsigned) atoi(e);
        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col >= 40)
                return w.ws_col;
        return 80;
}

static int run(Ctl *c, int argc, char **argv) {
        enum { ARG_VERSION = 0x100, ARG_DIRECT, ARG_NO_ASK_PASSWORD, ARG_CLASS, ARG_DRIVER, ARG_GROUP, ARG_NUMA,
               ARG_TO, ARG_CONSUMER, ARG_DRY_RUN, ARG_ACCEPT_LEAKY, ARG_VFS, ARG_PERSIST, ARG_NO_PERSIST, ARG_AUTOPROBE, ARG_MAC,
               ARG_VLAN, ARG_SPOOFCHK, ARG_TRUST, ARG_MEMORY, ARG_VIOMMU, ARG_PERSISTENT, ARG_HARD_LIMIT, ARG_NUMA_POLICY,
               ARG_NUMA_NODE, ARG_CPUS, ARG_USER, ARG_PRINT_QEMU_ARGS };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },       { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, 'j' },       { "direct", no_argument, NULL, ARG_DIRECT },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "class", required_argument, NULL, ARG_CLASS }, { "driver", required_argument, NULL, ARG_DRIVER },
                { "group", required_argument, NULL, ARG_GROUP }, { "numa", required_argument, NULL, ARG_NUMA },
                { "to", required_argument, NULL, ARG_TO },       { "consumer", required_argument, NULL, ARG_CONSUMER },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },   { "accept-leaky", no_argument, NULL, ARG_ACCEPT_LEAKY },
                { "vfs", required_argument, NULL, ARG_VFS },     { "persist", no_argument, NULL, ARG_PERSIST },
                { "no-persist", no_argument, NULL, ARG_NO_PERSIST },
                { "autoprobe", required_argument, NULL, ARG_AUTOPROBE }, { "mac", required_argument, NULL, ARG_MAC },
                { "vlan", required_argument, NULL, ARG_VLAN },   { "spoofchk", required_argument, NULL, ARG_SPOOFCHK },
                { "trust", required_argument, NULL, ARG_TRUST }, { "memory", required_argument, NULL, ARG_MEMORY },
                { "viommu", no_argument, NULL, ARG_VIOMMU },     { "persistent", no_argument, NULL, ARG_PERSISTENT },     { "hard-limit", required_argument, NULL, ARG_HARD_LIMIT },
                { "numa-policy", required_argument, NULL, ARG_NUMA_POLICY },
                { "numa-node", required_argument, NULL, ARG_NUMA_NODE }, { "cpus", required_argument, NULL, ARG_CPUS },
                { "user", required_argument, NULL, ARG_USER },
                { "print-qemu-args", no_argument, NULL, ARG_PRINT_QEMU_ARGS },
                {},
        };
        bool filters = false;
        unsigned given = 0;      /* OPT_ASSIGN / OPT_RELEASE / OPT_SRIOV options seen */
        /* the first usage error: told once every option is read, so that
         * a --json after it still gets it as JSON */
        char bad[512] = "";
        int opt;

        opterr = 0;
        while ((opt = getopt_long(argc, argv, "+:hj", options, NULL)) >= 0 || (optind < argc && opt < 0)) {
                if (opt < 0) {
                        /* a non-option (the verb or its argument): keep going past it so that
                         * "iovirtctl CMD --json" works too; "--" ends the options */
                        if (streq_ptr(argv[optind - 1], "--"))
                                break;
                        optind++;
                        continue;
                }
                switch (opt) {
                case 'h':
                        if (*bad)
                                break;
                        help();
                        return 0;
                case ARG_VERSION:
                        if (*bad)
                                break;
                        printf("iovirtctl %s\n", IOVIRT_VERSION);
                        return 0;
                case 'j':
                        c->json = true;
                        break;
                case ARG_DIRECT:
                        c->direct = true;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        c->no_ask_password = true;
                        break;
                case ARG_CLASS:
                        c->filter_class = optarg;
                        filters = true;
                        break;
                case ARG_DRIVER:
                        c->filter_driver = optarg;
                        given |= OPT_DRIVER;
                        break;
                case ARG_GROUP:
                case ARG_NUMA:
                        if (parse_nonneg(optarg, opt == ARG_GROUP ? &c->filter_group : &c->filter_numa) < 0 && !*bad)
                                snprintf(bad, sizeof(bad), "%s wants a number (0 or more), not '%s'",
                                         opt == ARG_GROUP ? "--group" : "--numa", optarg);
                        filters = true;
                        break;
                case ARG_TO:
                        c->consumer = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_DRY_RUN:
                        c->dry_run = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_ACCEPT_LEAKY:
                        c->accept_leaky = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_CONSUMER:
                        c->consumer = optarg;
                        given |= OPT_RELEASE;
                        break;
                case ARG_MEMORY:
                        c->opt_memory = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_VIOMMU:
                        c->viommu = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_PERSISTENT:
                        c->persistent = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_HARD_LIMIT:
                        c->opt_hard_limit = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_NUMA_POLICY:
                        c->opt_numa_policy = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_NUMA_NODE:
                        c->opt_numa_node = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_CPUS:
                        c->opt_cpus = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_USER:
                        c->opt_user = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_PRINT_QEMU_ARGS:
                        c->print_qemu_args = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_VFS:
                        c->opt_vfs = optarg;
                        given |= OPT_SRIOV;
                        break;
                case ARG_PERSIST:
                case ARG_NO_PERSIST:
                        if (c->persist >= 0 && c->persist != (opt == ARG_PERSIST) && !bad[0])
                                snprintf(bad, sizeof(bad), "--persist and --no-persist contradict each other");
                        c->persist = opt == ARG_PERSIST;
                        given |= OPT_SRIOV;
                        break;
                case ARG_AUTOPROBE:
                        c->opt_autoprobe = optarg;
                        given |= OPT_SRIOV;
                        break;
                case ARG_MAC:
                        c->opt_mac = optarg;
                        given |= OPT_SRIOV;
                        break;
                case ARG_VLAN:
                        c->opt_vlan = optarg;
                        given |= OPT_SRIOV;
                        break;
                case ARG_SPOOFCHK:
                        c->opt_spoofchk = optarg;
                        given |= OPT_SRIOV;
                        break;
                case ARG_TRUST:
                        c->opt_trust = optarg;
                        given |= OPT_SRIOV;
                        break;
                case ':':
                        if (!*bad)
                                snprintf(bad, sizeof(bad), "option %s needs a value", argv[optind - 1]);
                        break;
                default:
                        if (*bad)
                                break;
                        if (optopt)
                                snprintf(bad, sizeof(bad), "unknown option '-%c'; see iovirtctl --help", optopt);
                        else
                                snprintf(bad, sizeof(bad), "unknown option '%s'; see iovirtctl --help",
                                         argv[optind - 1]);
                }
        }
        if (*bad)
                return ctl_fail(c, CTL_ERROR_USAGE, "%s", bad);

        /* Collect the non-options, in order: the verb and its arguments */
        char *args[8];
        int n = 0;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0) {
                        for (i++; i < argc && n < (int) ELEMENTSOF(args); i++)
                                args[n++] = argv[i];
                        break;
                }
                if (argv[i][0] == '-' && argv[i][1]) {
                        /* skip the option and, for those that take one, its value */
                        const char *o = argv[i];
                        static const char *const with_value[] = { "--class", "--driver", "--group", "--numa",
                                                                   "--to", "--consumer", "--vfs", "--autoprobe",
                                                                   "--mac", "--vlan", "--spoofchk", "--trust",
                                                                   "--memory", "--hard-limit", "--numa-policy",
                                                                   "--numa-node", "--cpus", "--user" };
                        for (size_t k = 0; !strchr(o, '=') && k < ELEMENTSOF(with_value); k++)
                                if (streq_ptr(o, with_value[k])) {
                                        i++;
                                        break;
                                }
                        continue;
                }
                if (n == (int) ELEMENTSOF(args))
                        return ctl_fail(c, CTL_ERROR_USAGE, "too many arguments; see iovirtctl --help");
                args[n++] = argv[i];
        }
        if (n == 0)
                return ctl_fail(c, CTL_ERROR_USAGE,
                                "no command given; try 'iovirtctl list-groups' or iovirtctl --help");

        const Verb *v = NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq_ptr(verbs[i].name, args[0]))
                        v = &verbs[i];
        if (!v)
                return ctl_fail(c, CTL_ERROR_USAGE, "unknown command '%s'; see iovirtctl --help", args[0]);
        c->verb = v->name;
        int status = check_usage(c, v, n - 1, args + 1, filters, given);
        if (status)
                return status;
        c->columns = terminal_columns();
        if ((v->flags & ARG_DEVICE) && strchr(args[1], '#')) {
                /* one VF as PF#N: its address, from its PF's description */
                static char vf[IOVIRT_ADDRESS_MAX];
                if (ctl_load(c) < 0)
                        return 1;
                if ((status = ctl_resolve_selector(c, args[1], vf)))
                        return status;
                args[1] = vf;
        }
        if (v->flags & ARG_DEVICE)
                c->device = args[1];
        return v->run(c, n - 1, args + 1);
}

int main(int argc, char **argv) {
        Ctl c = { .filter_group = -1, .filter_numa = -1, .persist = -1 };
        int r = ctl_finish(&c, run(&c, argc, argv));
        iovirt_verdicts_free(c.verdicts);
        iovirt_host_free(c.host);
        sd_bus_flush_close_unref(c.bus);
        free(c.error_name);
        free(c.error_message);
        json_object_put(c.error_fields);
        return r;
}
