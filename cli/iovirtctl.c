/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <sys/ioctl.h>

#include <systemd/sd-bus.h>

#include "iovirt-names.h"
#include "iovirtctl.h"

enum {
        OPT_FILTERS = 1u << 0,   /* accepts --class/--driver/--group/--numa */
        OPT_ASSIGN = 1u << 1,    /* accepts --to/--dry-run/--accept-leaky */
        OPT_RELEASE = 1u << 2,   /* accepts --consumer */
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
        { "show", 1, 1, 0, verb_show, "DEVICE", "everything known about one function" },
        { "tree", 0, 0, 0, verb_tree, "", "the PCI topology with groups and isolation" },
        { "check", 0, 0, 0, verb_check, "", "is this host ready for device assignment?" },
        { "reload", 0, 0, 0, verb_reload, "", "make iovirtd re-read the host (polkit: org.iovirt1.reload)" },
        { "assign", 1, 1, OPT_ASSIGN, verb_assign, "TARGET --to CONSUMER",
          "give TARGET's whole IOMMU group to vfio-pci for CONSUMER (polkit: org.iovirt1.assign)" },
        { "release", 0, 1, OPT_RELEASE, verb_release, "TARGET | --consumer C",
          "give a group back to its host drivers (polkit: org.iovirt1.release)" },
        { "list-assignments", 0, 0, 0, verb_list_assignments, "", "what is assigned to whom, and any drift" },
        { "status", 0, 0, 0, verb_list_assignments, "", "the same as list-assignments" },
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
               "     --to CONSUMER       the VM that gets the group (a libvirt domain name, a VM id)\n"
               "     --dry-run           show the plan and its checks; change nothing\n"
               "     --accept-leaky      assign a leaky group (peers can reach it by DMA)\n"
               "     --consumer CONSUMER release everything assigned to CONSUMER\n"
               "\nTARGET is a DEVICE (its whole IOMMU group is meant) or group:N.\n"
               "DEVICE is a PCI address (0000:05:00.0 or 05:00.0), libvirt's pci_0000_05_00_0,\n"
               "a network interface name (enp5s0) or a sysfs path.\n"
               "Exit status: 0 success, 1 failure (or a FAIL from check), 2 usage error.\n");
}

static int parse_nonneg(const char *opt, const char *s, int *ret) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 0 || v > 1000000) {
                fprintf(stderr, "iovirtctl: %s wants a number (0 or more), not '%s'\n", opt, s);
                return -EINVAL;
        }
        *ret = (int) v;
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

int main(int argc, char **argv) {
        enum { ARG_VERSION = 0x100, ARG_DIRECT, ARG_NO_ASK_PASSWORD, ARG_CLASS, ARG_DRIVER, ARG_GROUP, ARG_NUMA,
               ARG_TO, ARG_CONSUMER, ARG_DRY_RUN, ARG_ACCEPT_LEAKY };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },       { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, 'j' },       { "direct", no_argument, NULL, ARG_DIRECT },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "class", required_argument, NULL, ARG_CLASS }, { "driver", required_argument, NULL, ARG_DRIVER },
                { "group", required_argument, NULL, ARG_GROUP }, { "numa", required_argument, NULL, ARG_NUMA },
                { "to", required_argument, NULL, ARG_TO },       { "consumer", required_argument, NULL, ARG_CONSUMER },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },   { "accept-leaky", no_argument, NULL, ARG_ACCEPT_LEAKY },
                {},
        };
        Ctl c = { .filter_group = -1, .filter_numa = -1 };
        bool filters = false;
        unsigned given = 0;      /* OPT_ASSIGN / OPT_RELEASE options seen */
        int opt, r;

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
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("iovirtctl %s\n", IOVIRT_VERSION);
                        return 0;
                case 'j':
                        c.json = true;
                        break;
                case ARG_DIRECT:
                        c.direct = true;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        c.no_ask_password = true;
                        break;
                case ARG_CLASS:
                        c.filter_class = optarg;
                        filters = true;
                        break;
                case ARG_DRIVER:
                        c.filter_driver = optarg;
                        filters = true;
                        break;
                case ARG_GROUP:
                        if (parse_nonneg("--group", optarg, &c.filter_group) < 0)
                                return EXIT_USAGE;
                        filters = true;
                        break;
                case ARG_NUMA:
                        if (parse_nonneg("--numa", optarg, &c.filter_numa) < 0)
                                return EXIT_USAGE;
                        filters = true;
                        break;
                case ARG_TO:
                        c.consumer = optarg;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_DRY_RUN:
                        c.dry_run = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_ACCEPT_LEAKY:
                        c.accept_leaky = true;
                        given |= OPT_ASSIGN;
                        break;
                case ARG_CONSUMER:
                        c.consumer = optarg;
                        given |= OPT_RELEASE;
                        break;
                case ':':
                        fprintf(stderr, "iovirtctl: option %s needs a value\n", argv[optind - 1]);
                        return EXIT_USAGE;
                default:
                        if (optopt)
                                fprintf(stderr, "iovirtctl: unknown option '-%c'; see iovirtctl --help\n", optopt);
                        else
                                fprintf(stderr, "iovirtctl: unknown option '%s'; see iovirtctl --help\n",
                                        argv[optind - 1]);
                        return EXIT_USAGE;
                }
        }

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
                        if (!strchr(o, '=') && (streq_ptr(o, "--class") || streq_ptr(o, "--driver") ||
                                                streq_ptr(o, "--group") || streq_ptr(o, "--numa") ||
                                                streq_ptr(o, "--to") || streq_ptr(o, "--consumer")))
                                i++;
                        continue;
                }
                if (n == (int) ELEMENTSOF(args)) {
                        fprintf(stderr, "iovirtctl: too many arguments; see iovirtctl --help\n");
                        return EXIT_USAGE;
                }
                args[n++] = argv[i];
        }
        if (n == 0) {
                fprintf(stderr, "iovirtctl: no command given; try 'iovirtctl list-groups' or iovirtctl --help\n");
                return EXIT_USAGE;
        }

        const Verb *v = NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq_ptr(verbs[i].name, args[0]))
                        v = &verbs[i];
        if (!v) {
                fprintf(stderr, "iovirtctl: unknown command '%s'; see iovirtctl --help\n", args[0]);
                return EXIT_USAGE;
        }
        if (n - 1 < v->min_args || n - 1 > v->max_args) {
                if (v->max_args == 0)
                        fprintf(stderr, "iovirtctl: %s takes no arguments\n", v->name);
                else
                        fprintf(stderr, "iovirtctl: usage: iovirtctl %s %s\n", v->name, v->args);
                return EXIT_USAGE;
        }
        if (filters && !(v->flags & OPT_FILTERS)) {
                fprintf(stderr, "iovirtctl: --class, --driver, --group and --numa go with list-devices only\n");
                return EXIT_USAGE;
        }

        if (given & ~v->flags & OPT_ASSIGN) {
                fprintf(stderr, "iovirtctl: --to, --dry-run and --accept-leaky go with assign only\n");
                return EXIT_USAGE;
        }
        if (given & ~v->flags & OPT_RELEASE) {
                fprintf(stderr, "iovirtctl: --consumer goes with release only\n");
                return EXIT_USAGE;
        }

        c.columns = terminal_columns();
        r = v->run(&c, n - 1, args + 1);
        iovirt_verdicts_free(c.verdicts);
        iovirt_host_free(c.host);
        sd_bus_flush_close_unref(c.bus);
        return r;
}
