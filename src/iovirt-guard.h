/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "iovirt-host.h"

/* The host-critical guard: which PCI functions the host itself is using,
 * so that taking them would take the host down.  A function is critical
 * when it backs
 *   - a mounted filesystem or a swap device (walked from /proc/self/mountinfo
 *     and /proc/swaps through device-mapper and md to the disks' PCI parents),
 *   - any device-mapper or md array, mounted or not (an LVM volume a VM uses),
 *   - a network interface that is up and has an address (other than an IPv6
 *     link-local one) or a route, in the daemon's network namespace,
 *   - the boot display (boot_vga) or fb0, which the console uses.
 * Block and display facts come from sysfs and $IOVIRT_ROOT/proc; network
 * facts from the kernel (getifaddrs, /proc/self/net).
 *
 * The guard fails closed: a source it needs and cannot read is not "nothing
 * in use" but a blind spot, named with its error and what it leaves
 * unknown; a plan refuses while there is one.  What is legitimately absent
 * (no fb0, no IPv6, a device without a mount tag) is not a blind spot. */

typedef struct IovirtUse {
        size_t device;
        char *what;              /* "mounted at / (nvme0n1p2)" ... */
} IovirtUse;

typedef struct IovirtBlindSpot {
        char *source;            /* "/proc/self/mountinfo" */
        int error;               /* errno */
        const char *unknown;     /* "whether a device backs a filesystem" */
} IovirtBlindSpot;

typedef struct IovirtUsage {
        IovirtUse *uses;
        size_t n_uses;
        IovirtBlindSpot *blind;
        size_t n_blind;
} IovirtUsage;

/* -ENOMEM only: what cannot be read is a blind spot in the result. */
int iovirt_guard_scan(const IovirtHost *h, IovirtUsage **ret);
/* "could not read SOURCE: ERROR; cannot tell UNKNOWN" */
char *iovirt_blind_spot_text(const IovirtBlindSpot *b);
IovirtUsage *iovirt_usage_free(IovirtUsage *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtUsage *, iovirt_usage_free);
