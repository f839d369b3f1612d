/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "iovirt-address.h"
#include "iovirt-util.h"

/* What iovirt has done to the host, one record per IOMMU group, one file per
 * record (STATE_DIR/group-N.json): a damaged file costs one record, never
 * the others.  A record is written, atomically, before the first write to
 * sysfs (the intent) and again when the transaction ends; it names each
 * function's original driver and driver_override, so that whatever happens
 * to the daemon the host can be put back. */

#define IOVIRT_STATE_VERSION 1

typedef enum IovirtPhase {
        IOVIRT_PHASE_ASSIGNING,   /* intent written, functions may be moving */
        IOVIRT_PHASE_ASSIGNED,    /* every function on its VFIO driver, with its consumer */
        IOVIRT_PHASE_RELEASING,   /* functions may be going back */
        IOVIRT_PHASE_LIBVIRT,     /* held by a libvirt domain whose libvirt binds it itself
                                   * (managed='yes'): recorded so that others are refused and the
                                   * budget counts it; iovirt never moves its functions */
        _IOVIRT_PHASE_MAX,
} IovirtPhase;

typedef struct IovirtFunctionRecord {
        char address[IOVIRT_ADDRESS_MAX];
        char *driver;            /* before assignment; NULL: it was unbound */
        char *driver_override;   /* before assignment; NULL: none */
        bool original_known;     /* false when rebuilt from the host after a lost record */
        char *vfio_driver;       /* the VFIO driver it went to (vfio-pci, mlx5_vfio_pci, ...); NULL: vfio-pci,
                                  * as records made before variant drivers mean */
} IovirtFunctionRecord;

/* The VFIO driver f is held on: its vfio_driver, or vfio-pci */
const char *iovirt_function_vfio_driver(const IovirtFunctionRecord *f);

/* Who holds a group, beyond the consumer's name (assignments made since
 * policy; older records have none: owner root, nothing counted).  The same
 * for every group of one consumer. */
typedef struct IovirtHolder {
        bool known;
        uint32_t uid;            /* the caller who assigned it */
        int32_t pid;             /* a pid: consumer's process; 0: none */
        uint64_t pid_start;      /* its start time (/proc/PID/stat, clock ticks): with pid, which process */
        uint64_t memory;         /* guest memory in bytes; 0: unknown */
        bool viommu;
        uint64_t memlock;        /* the RLIMIT_MEMLOCK iovirt set on pid; 0: none */
        bool memlock_saved;      /* memlock_soft/hard hold the limit from before iovirt raised it */
        uint64_t memlock_soft, memlock_hard;   /* RLIM_INFINITY as UINT64_MAX */
} IovirtHolder;

typedef struct IovirtRecord {
        int group;
        char *consumer;          /* "" when rebuilt from the host after a lost record */
        IovirtPhase phase;
        char *boot_id;           /* the kernel's boot id when the record was made */
        uint64_t since_usec;     /* CLOCK_REALTIME */
        IovirtFunctionRecord *functions;
        size_t n_functions;
        IovirtHolder holder;
        /* /dev/vfio/N given to the consumer's user (a plain QEMU that is not
         * root): whom, and its owner before, put back on release */
        bool node_given;
        uint32_t node_uid;               /* given to */
        uint32_t node_old_uid, node_old_gid;
        /* a libvirt domain consumer: iovirt added the hostdevs to the domain's persistent
         * config too (assign --persistent), so release takes them out of it again */
        bool libvirt_config;
        /* a libvirt domain consumer's pool device (<iovirt:device pool=>), which its XML does
         * not name: attached live once the domain runs ("started begin") */
        bool libvirt_attach;
} IovirtRecord;

IovirtRecord *iovirt_record_free(IovirtRecord *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtRecord *, iovirt_record_free);

/* A deep copy, for a transaction that works on its own while the
 * original stays in the state others read. */
int iovirt_record_copy(const IovirtRecord *r, IovirtRecord **ret);

/* The record's functions as addresses (n_functions of them), for libvirt;
 * -EINVAL when one is not an address (a damaged record) */
int iovirt_record_addresses(const IovirtRecord *r, IovirtAddress **ret);

const char *iovirt_phase_name(IovirtPhase p);

/* (De)serialisation, pure.  to_json returns the whole document or NULL
 * (out of memory: json-c would otherwise drop a field and carry on).
 * from_json: -EBADMSG names what is wrong in *reason; -ENOMEM. */
json_object *iovirt_record_to_json(const IovirtRecord *r);
int iovirt_record_from_json(json_object *o, IovirtRecord **ret, char **reason);

/* The state directory: $STATE_DIRECTORY (systemd's StateDirectory=) or
 * /var/lib/iovirt. */
const char *iovirt_state_dir(void);

/* Writes the record atomically: a temporary file, fsync, rename over
 * group-N.json, fsync the directory.  On failure nothing is left behind and
 * the previous version stays.  The text is read back before it is
 * written: -ENOMEM when memory ran out on the way, -EINVAL for a record
 * that load would not take back as it is. */
int iovirt_record_save(const char *dir, const IovirtRecord *r);
/* The file helpers records are made with, for other records of the state
 * directory (SR-IOV's): name written atomically (a temporary file, fsync,
 * rename, fsync the directory; nothing left behind on failure); strict
 * parsing of what save wrote (one JSON value; -EBADMSG with *reason,
 * -ENOMEM); a damaged file renamed NAME.damaged-TIME, *problem saying so. */
int iovirt_file_save_atomic(const char *dir, const char *name, const char *text, size_t size);
/* Removes name durably; 0 when there was none */
int iovirt_file_remove(const char *dir, const char *name);
/* What the operator can do about a state directory that could not be written
 * (-r: ENOSPC, EROFS, EACCES...): ". Free space there, then call again", or "" */
const char *iovirt_state_write_advice(int r);
/* o as save writes it (pretty), owned by o; -ENOMEM also when json-c
 * dropped a part of it for want of memory, which it only says in errno */
int iovirt_json_text(json_object *o, const char **ret, size_t *size);
int iovirt_json_text_parse(const char *text, size_t size, json_object **ret, char **reason);
/* O's KEY, an unsigned number json-c wrote (json_object_new_uint64), at most
 * MAX: -EBADMSG when it is missing, not a number, negative or above MAX */
int iovirt_json_get_u64(json_object *o, const char *key, uint64_t max, uint64_t *ret);
int iovirt_file_set_aside(const char *dir, const char *name, const char *why, char **problem);

/* Removes group-N.json durably; 0 when there was none. */
int iovirt_record_remove(const char *dir, int group);

typedef struct IovirtState {
        IovirtRecord **records;
        size_t n_records;
        char **problems;         /* each damaged file: what was wrong, where the copy is */
        size_t n_problems;
        int *damaged_groups;     /* the groups whose record was lost */
        size_t n_damaged;
} IovirtState;

IovirtState *iovirt_state_free(IovirtState *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtState *, iovirt_state_free);

/* Reads every record in dir (creating dir if needed).  A file that cannot be
 * parsed is renamed to group-N.json.damaged-<time>, kept, and reported in
 * problems; left-over temporary files of an interrupted write are removed. */
int iovirt_state_load(const char *dir, IovirtState **ret);

IovirtRecord *iovirt_state_find(const IovirtState *s, int group);
/* Takes ownership of r (replacing a record of the same group). */
int iovirt_state_put(IovirtState *s, IovirtRecord *r);
void iovirt_state_drop(IovirtState *s, int group);

/* Consumer names are opaque to us, but end up in logs, files and tables:
 * 1..255 bytes of UTF-8 without control characters.  -EINVAL with a sentence. */
int iovirt_consumer_valid(const char *name, char **reason);
/* Strict UTF-8, as D-Bus strings must be */
bool iovirt_utf8_valid(const char *s);
