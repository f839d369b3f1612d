/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "iovirt-host.h"
#include "iovirt-json.h"
#include "iovirt-verdict.h"

typedef struct sd_bus sd_bus;

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

        IovirtHost *host;
        IovirtVerdicts *verdicts;
        sd_bus *bus;
        bool from_daemon;          /* the model came from iovirtd */
} Ctl;

/* iovirtd as the source (cli/iovirtctl-bus.c).  -ENOTCONN with *why set when
 * iovirtd is not on the bus; other failures are printed. */
int ctl_call_json(Ctl *c, const char *method, const char *arg, json_object **ret, char **why);
int ctl_load_from_daemon(Ctl *c, char **why);

/* Gets the model once, from iovirtd unless --direct (falling back to
 * reading the host, with a note, when iovirtd is not on the bus), and
 * computes the verdicts; prints the error itself. */
int ctl_load(Ctl *c);

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

/* Exit codes */
#define EXIT_USAGE 2

/* One sentence for what widens a DMA domain */
/* Lines explaining a group's verdict (peers, causes, unknowns) */
void ctl_explain_group(Ctl *c, size_t group_index, unsigned indent);
