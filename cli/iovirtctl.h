/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include <systemd/sd-bus.h>

#include "iovirt-host.h"
#include "iovirt-json.h"
#include "iovirt-verdict.h"

/* What a script can tell failures apart by: under --json every failure
 * prints {"error": {"name": NAME, "message": TEXT, ...}} on stdout.  NAME is
 * one of these words, or the D-Bus error name iovirtd answered with (a name
 * with dots).  iovirtctl(1) lists them (EXIT STATUS, Errors): change both
 * together. */
typedef enum CtlError {
        CTL_ERROR_USAGE,            /* "usage": exit 2, before anything is read */
        CTL_ERROR_NO_SUCH_DEVICE,   /* "no-such-device": the device or group is not on this host */
        CTL_ERROR_NO_DAEMON,        /* "no-daemon": the command needs iovirtd, which is not on the bus */
        CTL_ERROR_HOST_UNREADABLE,  /* "host-unreadable": the host's PCI devices could not be read */
        CTL_ERROR_BAD_ANSWER,       /* "bad-answer": iovirtd answered something iovirtctl cannot read */
        CTL_ERROR_FAILED,           /* "failed": anything else (out of memory, ...) */
        _CTL_ERROR_MAX,
} CtlError;

/* What every verb gets: parsed options and, loaded on demand, the host. */
typedef struct Ctl {
        bool json;
        bool direct;
        bool no_ask_password;
        unsigned columns;
        /* list-devices filters; NULL / -1 when not given */
        const char *filter_class;
        const char *filter_driver;
        int filter_group;
        int filter_numa;
        /* assign / release */
        const char *consumer;      /* --to, --consumer */
        bool dry_run;
        bool accept_leaky;
        const char *vfio_driver;   /* assign --driver NAME; NULL: the kernel's choice */
        /* assign: what the policy judges; as typed, checked by the dispatcher */
        const char *opt_memory, *opt_hard_limit, *opt_numa_policy, *opt_numa_node, *opt_cpus;
        bool viommu;
        bool persistent;                /* assign --persistent */
        const char *opt_user;      /* assign --user: /dev/vfio/N's owner */
        bool print_qemu_args;      /* assign: print QEMU's -device arguments, not the plan */
        /* sriov: as typed, checked by the dispatcher before the bus; the
         * parsed values below are set once they are */
        const char *opt_vfs, *opt_autoprobe, *opt_mac, *opt_vlan, *opt_spoofchk, *opt_trust;
        int persist;            /* --persist 1, --no-persist 0, neither -1 */
        unsigned vfs;              /* --vfs N */
        bool autoprobe;            /* --autoprobe yes */
        uint8_t mac[6];
        unsigned vlan;
        bool spoofchk, trust;
        /* the DEVICE argument of a verb that takes one (show); NULL for a
         * selector (PF#N), which the verb resolves */
        const char *device;
        const char *verb;

        /* the first failure: printed as the error object under --json */
        char *error_name, *error_message;
        json_object *error_fields;

        IovirtHost *host;
        IovirtVerdicts *verdicts;
        sd_bus *bus;
        bool from_daemon;          /* the model came from iovirtd */
} Ctl;

/* Failures (cli/iovirtctl-output.c).  ctl_fail() reports one: on stderr
 * ("iovirtctl: TEXT"), or under --json kept for ctl_finish(); the first one
 * reported is the one a script sees.  It returns the exit status that goes
 * with it: EXIT_USAGE for usage, 1 otherwise. */
int ctl_fail(Ctl *c, CtlError kind, const char *fmt, ...) _printf_(3, 4);
/* The same with a D-Bus error name (printed as a last line in text mode) and
 * more fields for the error object (fields is taken, may be NULL). */
int ctl_fail_named(Ctl *c, const char *name, json_object *fields, const char *fmt, ...) _printf_(4, 5);
const char *ctl_error_name(CtlError kind);
/* At exit: under --json, a failure that printed no document prints its error
 * object (or a generic one).  Returns status. */
int ctl_finish(Ctl *c, int status);

/* iovirtd (cli/iovirtctl-bus.c) */
/* The system bus, opened once; no-daemon when it cannot be reached */
int ctl_open_bus(Ctl *c);
/* An error from a call to iovirtd, reported (fields taken): no-daemon when
 * iovirtd is not on the bus, no-such-device for NoSuchDevice (the same word
 * as when iovirtctl finds out itself), otherwise the D-Bus error's name. */
int ctl_fail_bus(Ctl *c, const sd_bus_error *e, int r, json_object *fields);
/* Calls a method of iovirtd that returns one JSON document.  -ENOTCONN with
 * *why set when iovirtd is not on the bus (nothing reported: the caller may
 * read the host itself); other failures are reported. */
int ctl_call_json(Ctl *c, const char *method, const char *arg, json_object **ret, char **why);
int ctl_load_from_daemon(Ctl *c, char **why);

/* Gets the model once, from iovirtd unless --direct (falling back to
 * reading the host, with a note, when iovirtd is not on the bus), and
 * computes the verdicts.  Reading the host itself, it also finds c->device
 * there (no-such-device if absent; iovirtd resolves names on its own host).
 * Reports its failures. */
int ctl_load(Ctl *c);

/* list-devices --class: a class name or a hex prefix of the class code
 * (cli/iovirtctl-list-devices.c); -EINVAL for anything else */
int ctl_parse_class(const char *s, uint32_t *code, unsigned *digits);
/* "storage net ... accelerator": the names ctl_parse_class() knows */
const char *ctl_class_names(char *buf, size_t size);

/* Prints a JSON document on stdout, pretty, with a final newline. */
void ctl_print_json(json_object *o);

/* Prints s cut to width columns (with "..." where cut), padded to width if pad. */
void ctl_cell(const char *s, unsigned width, bool pad);
/* "VGA compatible controller: GP104 [GeForce GTX 1080]" or IDs if unnamed */
const char *ctl_describe(Ctl *c, const IovirtDevice *d, char *buf, size_t size);
/* "GP104 [GeForce GTX 1080]", or the IDs where pci.ids has no name */
const char *ctl_device_name(Ctl *c, const IovirtDevice *d, char *buf, size_t size);
/* Prints text wrapped at the terminal width, each line after the first indented */
void ctl_wrap(Ctl *c, unsigned indent, const char *text);
/* The same, from column col where the cursor is, continuation lines at indent */
void ctl_wrap_at(Ctl *c, unsigned col, unsigned indent, const char *text);

int verb_list_groups(Ctl *c, int argc, char **argv);
int verb_list_devices(Ctl *c, int argc, char **argv);
int verb_show(Ctl *c, int argc, char **argv);
int verb_tree(Ctl *c, int argc, char **argv);
int verb_check(Ctl *c, int argc, char **argv);
int verb_reload(Ctl *c, int argc, char **argv);
int verb_assign(Ctl *c, int argc, char **argv);
int verb_release(Ctl *c, int argc, char **argv);
int verb_list_assignments(Ctl *c, int argc, char **argv);
int verb_sriov(Ctl *c, int argc, char **argv);
int verb_policy(Ctl *c, int argc, char **argv);
int verb_libvirt_hook(Ctl *c, int argc, char **argv);
int verb_status(Ctl *c, int argc, char **argv);

/* Selectors (PF#RANGE), cli/iovirtctl-sriov.c.  The syntax is checked by
 * the dispatcher; whether the range fits the PF needs its total, which
 * these ask iovirtd for (DescribeSriov), or the host read directly.  Each
 * returns 0 when spec is no selector or fits, else the exit status of the
 * failure it reported: EXIT_USAGE for an index at or above the PF's total. */
int ctl_check_selector(Ctl *c, const char *spec);
/* show PF#N: the address of that VF (buf), resolved as above; the model is
 * loaded.  Returns 0 or the exit status of the failure reported. */
int ctl_resolve_selector(Ctl *c, const char *spec, char buf[static IOVIRT_ADDRESS_MAX]);

/* Exit codes */
#define EXIT_USAGE 2

/* One sentence for what widens a DMA domain */
/* Lines explaining a group's verdict (peers, causes, unknowns) */
void ctl_explain_group(Ctl *c, size_t group_index, unsigned indent);
