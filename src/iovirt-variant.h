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

/* The running kernel's modules.alias, read once for several choices (a
 * plan looks at every function of a group, or of a VF range). */
typedef struct IovirtAliases {
        char *path;           /* $IOVIRT_ROOT/lib/modules/RELEASE/modules.alias; NULL if the release is unknown */
        char *text;           /* NULL: the file is not there */
        size_t size;
        int error;            /* < 0: it could not be read (nor the release), and why says what */
        char *why;
} IovirtAliases;

/* Reads it as iovirt_variant_for_device() does.  0, or -ENOMEM: a file
 * that cannot be read is kept as error and why, for each choice made with
 * it to fail with. */
int iovirt_variant_aliases_read(IovirtAliases *ret);
void iovirt_variant_aliases_clear(IovirtAliases *a);

/* iovirt_variant_for_device() against a file read already: a's error
 * (and why) when it could not be read. */
int iovirt_variant_for_device_in(const IovirtAliases *a, const IovirtDevice *d, IovirtVariantChoice *ret);

/* The driver an operator named (iovirtctl assign --driver NAME) for d:
 * vfio-pci ("vfio_pci" too), or a VFIO variant driver, by its name (it
 * ends in _vfio_pci, as every in-tree one does; '-' and '_' alike) or by a
 * vfio_pci alias of its module in a.  Never a host driver: -EINVAL with a
 * why for anything else (or a malformed name), a's error when the name
 * alone does not tell and a could not be read.  A variant's driver is its
 * module's name, '_' for '-', as in-tree variants register.  The why says
 * the kernel's own choice when it could be made.  -ENOMEM. */
int iovirt_variant_asked(const IovirtAliases *a, const IovirtDevice *d, const char *name, IovirtVariantChoice *ret);

/* A driver or module name as iovirt takes one: 1-55 characters of
 * letters, digits, '_' and '-' (the kernel's MODULE_NAME_LEN), not starting
 * with '-' (modprobe would take it for an option). */
bool iovirt_variant_name_valid(const char *name);

/* Whether driver is a VFIO driver by its name: vfio-pci, or a name ending
 * in _vfio_pci.  Binding one makes the group's /dev/vfio/N; no host uses a
 * function bound to one. */
bool iovirt_variant_is_vfio(const char *driver);
