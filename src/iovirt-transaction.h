/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "iovirt-host.h"
#include "iovirt-plan.h"
#include "iovirt-state.h"

/* Transactions: an allowed plan carried out on the host, or a recorded
 * group given back, with the intent on disk before the first write to
 * sysfs and every step undone when a later one fails.
 *
 * A transaction touches only sysfs, the state directory and the record it
 * was handed: never the host model nor the IovirtState others read, so the
 * daemon can run it on a thread of its own while its event loop answers
 * queries.  The caller puts the resulting record into its state. */

/* How long the kernel took to move each function in one transaction (to
 * its VFIO driver, or back), as the daemon logs it for the operator. */
typedef struct IovirtMove {
        char address[IOVIRT_ADDRESS_MAX];
        char *to;                /* the driver it went to; NULL: left unbound */
        uint64_t usec;
} IovirtMove;

typedef struct IovirtMoves {
        IovirtMove *moves;
        size_t n, allocated;
} IovirtMoves;

void iovirt_moves_clear(IovirtMoves *m);

/* Executes an allowed plan.  On success *ret is the group's record, phase
 * assigned, saved in dir.  On failure every function touched is put back
 * and *ret is NULL with the record gone, or, when a function could not be
 * put back, the record of those functions, phase releasing, kept for a
 * retry; *reason says what failed and what could not be put back. */
int iovirt_assign_execute(const IovirtPlan *p, const char *dir, IovirtRecord **ret, IovirtMoves *moves,
                          char **reason);

/* Records an allowed plan's group as held by its consumer, a libvirt domain
 * whose libvirt binds the functions itself (managed='yes'): phase libvirt,
 * each function's driver as it is now, saved in dir; nothing is moved. */
int iovirt_libvirt_hold(const IovirtPlan *p, const char *dir, IovirtRecord **ret, char **reason);

/* Gives rec's group back to the host: every function to its recorded driver
 * and driver_override.  On success the record file is gone (the caller
 * drops rec) and *notes has what the operator should know (functions that
 * had gone).  A function that does not come back stays in rec (phase
 * releasing, only those functions, saved) so that a retry can finish it:
 * -EIO with *reason. */
int iovirt_release_execute(IovirtRecord *rec, const char *dir, IovirtMoves *moves, char **notes, char **reason);

/* What the operator should know before giving rec's group back, from the
 * model: functions without a reset method.  NULL when nothing; -ENOMEM. */
int iovirt_release_notes(const IovirtHost *h, const IovirtRecord *rec, char **ret);

/* At start-up: finishes or rolls back what a crash cut short, ends
 * assignments of an earlier boot, and rebuilds what it can of damaged
 * records.  Each thing done is one line in *notes. */
int iovirt_state_reconcile(const IovirtHost *h, IovirtState *state, const char *dir, const char *boot_id,
                           char ***notes, size_t *n_notes);

/* The kernel's boot id, which tells one boot from the next */
int iovirt_boot_id(char **ret);

/* {"assignments":[{"group","consumer","phase","since_usec",
 *   "functions":[{"address","original_known","original_driver","original_driver_override","driver",
 *                 "vfio_driver"}],"drift":[..]}]}
 * with the live drivers from the model: drift is a function not on the VFIO
 * driver its record names (vfio_driver). */
json_object *iovirt_assignments_to_json(const IovirtHost *h, const IovirtState *state);
