/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "iovirt-numa.h"
#include "iovirt-util.h"

/* Policy files: who may take which devices, with what pinned-memory limits
 * and NUMA affinity.  The format is documented in policy/README.md (and
 * man iovirt-policy(5)).  This file is parsing and the model only: no
 * evaluation against a host yet, no logging; src/ never calls into it.
 *
 * Files are read from IOVIRT_POLICY_VENDOR_DIR and IOVIRT_POLICY_ADMIN_DIR,
 * both below $IOVIRT_ROOT; a file of /etc replaces the file of /usr/lib
 * with the same name, and files are read in the lexical order of their
 * names.  A file with an error is rejected as a whole, and so is the load:
 * the caller keeps its last good policy. */

#define IOVIRT_POLICY_VENDOR_DIR "/usr/lib/iovirt/policy.d"
#define IOVIRT_POLICY_ADMIN_DIR "/etc/iovirt/policy.d"
#define IOVIRT_POLICY_SUFFIX ".conf"

/* A line longer than libinih's line buffer (about 200 characters) is
 * refused rather than cut: a list continues on indented lines instead. */

/* Where a setting comes from: file NULL is the built-in default.  file
 * points into IovirtPolicy.files and lives as long as the policy. */
typedef struct IovirtPolicyOrigin {
        const char *file;
        unsigned line;
} IovirtPolicyOrigin;

static inline bool iovirt_policy_origin_set(IovirtPolicyOrigin o) {
        return o.file != NULL;
}

typedef enum IovirtPolicyIsolation {
        IOVIRT_POLICY_ISOLATION_STRICT,          /* only groups that are isolated */
        IOVIRT_POLICY_ISOLATION_ACCEPT_LEAKY,    /* a leaky group may be taken when asked */
        _IOVIRT_POLICY_ISOLATION_MAX,
} IovirtPolicyIsolation;

typedef enum IovirtMemoryCgroupMode {
        IOVIRT_MEMORY_CGROUP_WARN,
        IOVIRT_MEMORY_CGROUP_REFUSE,
        _IOVIRT_MEMORY_CGROUP_MAX,
} IovirtMemoryCgroupMode;

typedef enum IovirtPoolSelectorType {
        IOVIRT_POOL_SELECTOR_ID,          /* vendor:device, device may be '*' */
        IOVIRT_POOL_SELECTOR_CLASS,       /* class=0x02, class=0x0200, class=0x020000 or class=net */
        IOVIRT_POOL_SELECTOR_ADDRESS,     /* an address or an fnmatch glob of one: 0000:81:* */
        IOVIRT_POOL_SELECTOR_PF_RANGE,    /* PF#first-last: VFs of a PF (interface name or address) */
        IOVIRT_POOL_SELECTOR_DRIVER,      /* driver=igb */
        _IOVIRT_POOL_SELECTOR_TYPE_MAX,
} IovirtPoolSelectorType;

typedef struct IovirtPoolSelector {
        IovirtPoolSelectorType type;
        char *text;                  /* as written, for messages and JSON */
        uint16_t vendor, device;     /* ID */
        bool any_device;             /* ID: vendor:* */
        uint32_t class_value;        /* CLASS: compared under class_mask with the 24-bit class code */
        uint32_t class_mask;
        char *pattern;               /* ADDRESS: a glob over the full address (domain added, lower case);
                                      * PF_RANGE: the PF; DRIVER: the driver */
        unsigned vf_first, vf_last;  /* PF_RANGE, inclusive */
} IovirtPoolSelector;

/* A user or group named in Users= / Groups=: a name (resolved when the
 * policy is evaluated, so accounts created later count) or a number. */
typedef struct IovirtPolicyId {
        char *name;                  /* NULL when numeric */
        uint32_t id;                 /* when numeric */
} IovirtPolicyId;

typedef struct IovirtPolicyPool {
        char *name;
        IovirtPolicyOrigin origin;                   /* the [Pool NAME] line */

        IovirtPoolSelector *selectors;
        size_t n_selectors, allocated_selectors;
        IovirtPolicyOrigin devices_origin;

        char **consumers;                            /* fnmatch patterns; none given: any consumer */
        size_t n_consumers;
        IovirtPolicyOrigin consumers_origin;

        IovirtPolicyId *users, *groups;              /* none given: any caller polkit lets in */
        size_t n_users, allocated_users, n_groups, allocated_groups;
        IovirtPolicyOrigin users_origin, groups_origin;

        IovirtPolicyIsolation isolation;
        IovirtPolicyOrigin isolation_origin;

        /* Unset: [Numa]'s; use iovirt_policy_pool_numa_policy() and
         * iovirt_policy_pool_allow_numa_choice() for the effective values. */
        IovirtNumaPolicy numa_policy;
        IovirtPolicyOrigin numa_policy_origin;
        bool allow_numa_policy_choice;
        IovirtPolicyOrigin allow_numa_policy_choice_origin;

        uint64_t memlock_hard_limit;                 /* bytes; 0: libvirt's rule */
        IovirtPolicyOrigin memlock_hard_limit_origin;

        uint64_t guest_memory;                       /* bytes; 0: the request's --memory */
        IovirtPolicyOrigin guest_memory_origin;
} IovirtPolicyPool;

/* [Memory] Reserve=: bytes, or a share of MemTotal in hundredths of a
 * percent.  Unset: 5% of MemTotal, at least 512 MiB. */
typedef struct IovirtPolicyReserve {
        bool percent;
        uint64_t bytes;
        unsigned basis_points;                       /* 500 = 5% */
} IovirtPolicyReserve;

#define IOVIRT_POLICY_RESERVE_DEFAULT_BASIS_POINTS 500u
#define IOVIRT_POLICY_RESERVE_MIN_DEFAULT (UINT64_C(512) << 20)

typedef struct IovirtPolicyFile {
        char *path;                                  /* as named in origins (without $IOVIRT_ROOT) */
        char *overrides;                             /* the /usr/lib file it replaces, or NULL */
} IovirtPolicyFile;

typedef struct IovirtPolicy {
        IovirtPolicyFile *files;                     /* read, in order */
        size_t n_files, allocated_files;

        IovirtPolicyPool *pools;                     /* in the order read */
        size_t n_pools, allocated_pools;

        IovirtPolicyReserve reserve;
        IovirtPolicyOrigin reserve_origin;
        IovirtMemoryCgroupMode memory_cgroup;
        IovirtPolicyOrigin memory_cgroup_origin;

        bool watch_process_exit;
        IovirtPolicyOrigin watch_process_exit_origin;

        IovirtNumaPolicy numa_default_policy;
        IovirtPolicyOrigin numa_default_policy_origin;
        bool numa_allow_policy_choice;
        IovirtPolicyOrigin numa_allow_policy_choice_origin;

        char **warnings;                             /* "file:line: ..." */
        size_t n_warnings;
} IovirtPolicy;

/* The defaults, as with no files at all. */
IovirtPolicy *iovirt_policy_new(void);
IovirtPolicy *iovirt_policy_free(IovirtPolicy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtPolicy *, iovirt_policy_free);

/* Parses one file's text into p (pure: no I/O).  path names it in origins
 * and messages.  On error p is unchanged, *error (when error is not NULL)
 * is "path:line: message" and the result -EINVAL (-ENOMEM when out of
 * memory; *error may then be NULL).  *error must be NULL or a string of
 * an earlier call: it is replaced.  Unknown keys are warnings in p. */
int iovirt_policy_parse_text(IovirtPolicy *p, const char *path, const char *text, char **error);

/* Reads both directories below $IOVIRT_ROOT.  No directories or no files:
 * the defaults.  An unreadable directory or file fails the load, naming it. */
int iovirt_policy_load(IovirtPolicy **ret, char **error);

/* Effective per-pool NUMA settings, with where they come from. */
IovirtNumaPolicy iovirt_policy_pool_numa_policy(const IovirtPolicy *p, const IovirtPolicyPool *pool,
                                                IovirtPolicyOrigin *ret_origin);
bool iovirt_policy_pool_allow_numa_choice(const IovirtPolicy *p, const IovirtPolicyPool *pool,
                                          IovirtPolicyOrigin *ret_origin);

/* The reserve in bytes for a host of mem_total bytes. */
uint64_t iovirt_policy_reserve_bytes(const IovirtPolicy *p, uint64_t mem_total);

const IovirtPolicyPool *iovirt_policy_find_pool(const IovirtPolicy *p, const char *name);

/* The effective policy with the origin of each setting:
 * {"files":[{"path","overrides"}],"warnings":[..],
 *  "memory":{"reserve":S,"memory_cgroup":S},"consumers":{"watch_process_exit":S},
 *  "numa":{"default_policy":S,"allow_policy_choice":S},
 *  "pools":[{"name","origin","devices":S of [{"type","selector"}],"consumers":S,"users":S,
 *            "groups":S,"isolation":S,"numa_policy":S,"allow_numa_policy_choice":S,
 *            "memlock_hard_limit":S,"memory":S}]}
 * where S is {"value":..,"origin":"file:line" or "default"} (a pool's NUMA
 * settings not given in the pool carry [Numa]'s origin).  NULL on OOM. */
json_object *iovirt_policy_to_json(const IovirtPolicy *p);

/* "4G", "4096M", "512K", "1T", "4GiB" or bytes; K, M, G, T, P, E are
 * powers of 1024.  -EINVAL (bad form) or -ERANGE (above 2^64-1), with a
 * static sentence in *reason.  Zero parses: callers decide. */
int iovirt_size_parse(const char *s, uint64_t *ret, const char **reason);

/* "5%", "2.5%", "0.25%": hundredths of a percent, 1..9999. */
int iovirt_percent_parse(const char *s, unsigned *ret_basis_points, const char **reason);

const char *iovirt_policy_isolation_name(IovirtPolicyIsolation i);
const char *iovirt_memory_cgroup_mode_name(IovirtMemoryCgroupMode m);
const char *iovirt_pool_selector_type_name(IovirtPoolSelectorType t);
