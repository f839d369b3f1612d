/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Fault injection, for the crash tests: with -Dfault_injection=true, a
 * process whose $IOVIRT_FAULT is "POINT" or "POINT:N" kills itself with
 * SIGKILL the first (or N-th) time it reaches POINT, as a power cut or an
 * OOM kill would.  Without the option the points compile to nothing.
 *
 * The points, in the order a transaction passes them.  An assign and a
 * release of a group (src/iovirt-transaction.c, src/iovirt-bind.c), with
 * the RLIMIT_MEMLOCK of a pid: consumer raised before it and put back after
 * its last group (daemon/iovirtd-policy.c, src/iovirt-memlock.c):
 *   memlock.intent   the process's limit from before is on disk (memlock-PID.json), not raised yet
 *   memlock.raised   raised, before the group's intent record and its bind
 *   assign.intent    the group's record (phase assigning) is on disk, nothing moved
 *   assign.override  .. assign.bound: each function on its way to its VFIO driver
 *   assign.node      every function bound, /dev/vfio/N there (or not), the record still assigning
 *   assign.commit    the record says assigned
 *   assign.rollback  a failed assign put the functions back, its record not yet dropped
 *   memlock.undone   and put back what it raised, the memlock record not yet dropped
 *   release.intent .. release.commit: the same backwards (record releasing, then gone)
 *   memlock.restored the consumer's last group released: its limit from before is back, the
 *                    memlock record not yet dropped
 * A VF count change, SetVfs (daemon/iovirtd-sriov.c, src/iovirt-sriov.c):
 *   sriov.intent     the PF's record names the count it goes to ("pending"), the kernel untouched
 *   sriov.autoprobe  sriov_drivers_autoprobe written, the count not yet
 *   sriov.zero       on a change between two non-zero counts: 0 written, every VF gone
 *   sriov.numvfs     the kernel took the new count (its VFs exist), the record still pending
 *   sriov.commit     the record is what the caller asked (persisted, or gone), nothing answered yet */
#define IOVIRT_FAULT_POINTS                                                                              \
        "memlock.intent", "memlock.raised", "assign.intent", "assign.override", "assign.unbind",          \
        "assign.probe", "assign.bound", "assign.node", "assign.commit", "assign.rollback", "memlock.undone", \
        "release.intent", "release.unbind", "release.override", "release.probe", "release.restored",      \
        "release.commit", "memlock.restored", "sriov.intent", "sriov.autoprobe", "sriov.zero",            \
        "sriov.numvfs", "sriov.commit"

#if IOVIRT_FAULT_INJECTION
void iovirt_fault_point(const char *point);
#else
static inline void iovirt_fault_point(const char *point) {
}
#endif
