/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Fault injection, for the crash tests: with -Dfault_injection=true, a
 * process whose $IOVIRT_FAULT is "POINT" or "POINT:N" kills itself with
 * SIGKILL the first (or N-th) time it reaches POINT, as a power cut or an
 * OOM kill would.  Without the option the points compile to nothing.
 *
 * The points, in the order an assign and a release pass them: */
#define IOVIRT_FAULT_POINTS                                                              \
        "assign.intent", "assign.override", "assign.unbind", "assign.probe", "assign.bound", \
        "assign.node", "assign.commit", "assign.rollback", "release.intent", "release.unbind", \
        "release.override", "release.probe", "release.restored", "release.commit"

#if IOVIRT_FAULT_INJECTION
void iovirt_fault_point(const char *point);
#else
static inline void iovirt_fault_point(const char *point) {
}
#endif
