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
 * facts from the kernel (getifaddrs, /proc/self/net). */

typedef struct IovirtUse {
        size_t device;
        char *what;              /* "mounted at / (nvme0n1p2)" ... */
} IovirtUse;

typedef struct IovirtUsage {
        IovirtUse *uses;
        size_t n_uses;
} IovirtUsage;

int iovirt_guard_scan(const IovirtHost *h, IovirtUsage **ret);
IovirtUsage *iovirt_usage_free(IovirtUsage *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtUsage *, iovirt_usage_free);
