/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "iovirt-host.h"
#include "iovirt-plan.h"
#include "iovirt-state.h"

/* SR-IOV: VF selectors, the plan of a VF count change with its claim
 * rules, the change itself, and what is kept of a PF across reboots.
 *
 * The kernel's rules (drivers/pci/iov.c, sriov_numvfs_store): a count above
 * sriov_totalvfs is ERANGE; a PF without a driver, or whose driver has no
 * sriov_configure, is ENOENT; a change between two non-zero counts is
 * EBUSY, so it goes through 0, which removes every VF.  VFs are probed
 * when they appear unless sriov_drivers_autoprobe is 0. */

/* ---- selectors: "PF#range", as the Kubernetes SR-IOV device plugin writes them ---- */

typedef struct IovirtVfRange {
        unsigned first, last;              /* inclusive, first <= last */
} IovirtVfRange;

typedef struct IovirtSelector {
        char *pf;                          /* what came before '#': an address or an interface name */
        IovirtVfRange *ranges;             /* as written, e.g. "0,2-7" */
        size_t n_ranges;
} IovirtSelector;

/* The largest VF index a selector may name: sriov_totalvfs is 16 bits */
#define IOVIRT_VF_INDEX_MAX 65534U

/* 0 when s has no '#' (it is no selector, *ret untouched); 1 when parsed;
 * -EINVAL with an allocated sentence for an empty, reversed or malformed
 * range; -ENOMEM. */
int iovirt_selector_parse(const char *s, IovirtSelector *ret, char **reason);
void iovirt_selector_clear(IovirtSelector *s);
bool iovirt_selector_has(const IovirtSelector *s, unsigned index);
/* How many indexes the ranges name (overlaps counted once), and the highest */
unsigned iovirt_selector_count(const IovirtSelector *s);
unsigned iovirt_selector_max(const IovirtSelector *s);

/* A VF's index below its PF, from the routing IDs the SR-IOV capability
 * gives (offset, stride), as the kernel numbers virtfnN.  -1 when d is no
 * VF of a PF the model knows. */
int iovirt_vf_index(const IovirtHost *h, size_t vf);
/* The VF of pf with that index, IOVIRT_NONE when it is not enabled */
size_t iovirt_vf_find(const IovirtHost *h, size_t pf, unsigned index);

/* The PF a user named (anything iovirt_host_lookup() takes), refusing what
 * is not one: -EINVAL with a sentence for a VF ("a VF given where a PF is
 * expected") or a function without SR-IOV; -ENODEV for nothing at all. */
int iovirt_pf_lookup(const IovirtHost *h, const char *spec, size_t *ret, char **reason);

/* The VFs sel names that are enabled now, in index order (*ret may be
 * empty).  -ERANGE with a sentence naming the total when an index is out
 * of the PF's range; what iovirt_pf_lookup() refuses. */
int iovirt_selector_resolve(const IovirtHost *h, const IovirtSelector *sel, size_t *pf, size_t **ret, size_t *n_ret,
                            char **reason);

/* The PF's network interface name, -ENOENT when it has none: VF settings
 * go through it.  In switchdev mode the VFs' representors are there too;
 * they are not it. */
int iovirt_pf_netdev(const IovirtDevice *pf, char *buf, size_t size);

/* ---- a VF count change ---- */

typedef enum IovirtAutoprobe {
        IOVIRT_AUTOPROBE_KEEP = -1,
        IOVIRT_AUTOPROBE_OFF = 0,
        IOVIRT_AUTOPROBE_ON = 1,
} IovirtAutoprobe;

typedef struct IovirtSriovInput {
        const IovirtHost *host;
        const IovirtState *state;
        size_t pf;
        unsigned count;
        IovirtAutoprobe autoprobe;
        int autoprobe_now;                 /* iovirt_sriov_read_autoprobe(): 0/1, or why it could not be read */
        /* whether a transaction holds a group right now (the daemon's jobs) */
        bool (*group_locked)(int group, void *userdata);
        void *userdata;
} IovirtSriovInput;

typedef struct IovirtSriovPlan {
        char pf[IOVIRT_ADDRESS_MAX];
        unsigned from, to, total;
        bool through_zero;                 /* a change between two non-zero counts */
        int autoprobe_from;                /* 0/1; -ENOENT: the kernel has no such attribute (before 4.12) */
        IovirtAutoprobe autoprobe;         /* what to write; KEEP: nothing */
        bool done;                         /* nothing would change */
        IovirtPlanCheck *checks;           /* "count", "claims" */
        size_t n_checks, allocated_checks;
} IovirtSriovPlan;

IovirtSriovPlan *iovirt_sriov_plan_free(IovirtSriovPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtSriovPlan *, iovirt_sriov_plan_free);

/* Pure: the count against the total, and the claim rules: the count of an
 * assigned PF cannot change; nor can it while a VF that would go (every VF,
 * when the change goes through 0) is assigned or in a transaction.  A
 * change of autoprobe whose current value could not be read is refused:
 * it could never be undone. */
int iovirt_sriov_plan(const IovirtSriovInput *in, IovirtSriovPlan **ret);

/* Carries an allowed plan out: sriov_drivers_autoprobe first, then 0 when
 * the change goes through it, then the count.  When the count is refused
 * after 0 was written, the old count is written back (and autoprobe as it
 * was): the PF is left as found, or *reason says what could not be put
 * back.  The kernel's errors are named in *reason.  *usec: the kernel's
 * time for the writes. */
int iovirt_sriov_execute(const IovirtSriovPlan *p, uint64_t *usec, char **reason);

/* What the kernel has now: sriov_drivers_autoprobe, 0 or 1; -ENOENT when
 * the kernel has no such attribute, -EBADMSG for what is neither. */
int iovirt_sriov_read_autoprobe(const IovirtDevice *pf);

/* ---- what is kept of a PF: STATE_DIR/sriov-ADDRESS.json ----
 * {"version":1,"pf","num_vfs","persist","pending" and "boot_id"(only when pending),"autoprobe"(optional),
 *  "vfs":[..]} */

typedef struct IovirtVfConfig {
        unsigned index;
        bool set_mac, set_vlan;
        uint8_t mac[6];
        unsigned vlan;
        int spoofchk, trust;               /* -1: not set */
} IovirtVfConfig;

typedef struct IovirtSriovRecord {
        char pf[IOVIRT_ADDRESS_MAX];
        unsigned num_vfs;
        bool persist;                      /* restored at start-up */
        /* The intent of a count change under way (SetVfs writes it before
         * the kernel's first write): num_vfs and autoprobe are what the PF
         * goes to.  Found at start-up, the change was cut short: it is
         * carried out, then the record becomes what the change leaves
         * (persisted without pending, or gone when persist is false). */
        bool pending;
        char boot_id[40];                  /* with pending: the kernel's boot the change was cut short in */
        IovirtAutoprobe autoprobe;         /* KEEP: as the kernel has it */
        IovirtVfConfig *vfs;               /* settings by index */
        size_t n_vfs;
} IovirtSriovRecord;

IovirtSriovRecord *iovirt_sriov_record_free(IovirtSriovRecord *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtSriovRecord *, iovirt_sriov_record_free);

/* Equal as load would read them back */
bool iovirt_sriov_records_equal(const IovirtSriovRecord *a, const IovirtSriovRecord *b);

/* The settings of VF index, added when missing; NULL on OOM */
IovirtVfConfig *iovirt_sriov_record_vf(IovirtSriovRecord *r, unsigned index);

json_object *iovirt_sriov_record_to_json(const IovirtSriovRecord *r);
int iovirt_sriov_record_from_json(json_object *o, IovirtSriovRecord **ret, char **reason);

/* Atomically, as group records are; remove: 0 when there was none */
int iovirt_sriov_record_save(const char *dir, const IovirtSriovRecord *r);
int iovirt_sriov_record_remove(const char *dir, const char *pf);

/* Every record in dir; a damaged one is set aside (renamed .damaged-TIME)
 * and named in *problems. */
int iovirt_sriov_records_load(const char *dir, IovirtSriovRecord ***ret, size_t *n_ret, char ***problems,
                              size_t *n_problems);
