/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "iovirt-host.h"

/* Which VFIO driver a device gets: vfio-pci, or the VFIO *variant* driver
 * (mlx5_vfio_pci, hisi_acc_vfio_pci, nvgrace_gpu_vfio_pci, ...) that libvirt
 * 10.0 and later binds on its own for <hostdev managed='yes'>.
 *
 * The rule is libvirt's (src/util/virpci.c, virPCIDeviceFindBestVFIOVariant
 * with virPCIDeviceAliasInfoNew and virPCIDeviceAliasInfoMatch): take every
 * "alias vfio_pci:vNdNsvNsdNbcNscNiN MODULE" line of the running kernel's
 * modules.alias; split the pattern into its seven fields v d sv sd bc sc i;
 * a field matches when it is exactly "*" (a wildcard) or equals the
 * device's modalias field ("pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X");
 * of the lines that match, the one with the fewest wildcard fields wins,
 * and the first in the file wins a tie.  There is no other globbing: a
 * field such as "00*" (the kernel appends '*' to a pinned interface) is
 * compared as it is and does not match, as in libvirt.
 *
 * The kernel's own vfio_pci module has the catch-all alias
 * "vfio_pci:v*d*sv*sd*bc*sc*i*"; when it is the best match, or nothing
 * matches, the device gets vfio-pci.
 *
 * Module and driver: modules.alias names modules ('_', as depmod writes
 * them).  Every in-tree variant driver registers its pci_driver as
 * KBUILD_MODNAME, which is that same name (mlx5_vfio_pci; nvgrace-gpu-vfio-pci.o
 * becomes nvgrace_gpu_vfio_pci), so it is also the directory in
 * /sys/bus/pci/drivers/.  vfio_pci is the exception: its driver is "vfio-pci".
 * A binder that does not find /sys/bus/pci/drivers/DRIVER after loading the
 * module should follow /sys/module/MODULE/drivers/pci:NAME, as libvirt's
 * virPCIDeviceFindDriver does. */

typedef struct IovirtVariantChoice {
        char *driver;         /* as in /sys/bus/pci/drivers: "vfio-pci" or the variant's */
        char *module;         /* what to modprobe: "vfio_pci" or the variant's module */
        char *alias;          /* the modules.alias line that won, without its newline; NULL if none matched */
        char *why;            /* a sentence for the plan; on failure, what could not be read */
        unsigned wildcards;   /* wildcard fields of the winning alias (0-7); 7 when none matched */
        bool variant;         /* a variant driver, not vfio-pci */
} IovirtVariantChoice;

/* The choice for d given the text of a modules.alias (len bytes, need not
 * be NUL-terminated).  Lines that are not well-formed vfio_pci aliases are
 * ignored.  *ret is overwritten, not freed: pass it zeroed or cleared; on
 * failure it holds at most a why.
 * Returns 0, or -ENODATA when the device's IDs are unknown (or its
 * subsystem/class are and a matching alias pins them: the choice would be a
 * guess), -ENOMEM. */
int iovirt_variant_choose(const char *alias_text, size_t len, const IovirtDevice *d, IovirtVariantChoice *ret);

/* The same against $IOVIRT_ROOT/lib/modules/RELEASE/modules.alias, RELEASE
 * being $IOVIRT_ROOT/proc/sys/kernel/osrelease (uname(2)'s when that file is
 * not there), as the vfio module check finds modules.dep.  A missing
 * modules.alias is no error: vfio-pci, and the why says so.  One that
 * cannot be read is: -errno, and the why names the path. */
int iovirt_variant_for_device(const IovirtDevice *d, IovirtVariantChoice *ret);

void iovirt_variant_choice_clear(IovirtVariantChoice *c);
