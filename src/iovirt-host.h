/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovirt-address.h"
#include "iovirt-config.h"
#include "iovirt-util.h"

/* The host model: every PCI function the kernel knows, with what its
 * config space and sysfs say, linked into a tree, IOMMU groups and SR-IOV
 * families.  Built once by iovirt_host_discover() and then read-only:
 * verdicts are functions of it. */

#define IOVIRT_NONE SIZE_MAX  /* "no device" for the index fields below */

typedef enum IovirtResetSource {
        IOVIRT_RESET_UNKNOWN,   /* neither the kernel nor config space could tell */
        IOVIRT_RESET_KERNEL,    /* the kernel's reset_method attribute */
        IOVIRT_RESET_CONFIG,    /* decoded from capabilities (kernels before 5.15) */
} IovirtResetSource;

typedef struct IovirtDevice {
        IovirtAddress addr;
        char name[IOVIRT_ADDRESS_MAX];   /* "0000:05:00.0" */
        char *syspath;

        uint16_t vendor, device, subsys_vendor, subsys_device;
        uint32_t class_code;
        uint8_t revision, header_type;
        bool ids_known;                  /* from config space or the kernel's attributes */
        bool multifunction;
        bool bridge;                     /* PCI-to-PCI or CardBus (header type 1/2), or a host bridge */

        char *driver;                    /* NULL: no driver bound */
        char *driver_override;           /* NULL: none set */
        int iommu_group;                 /* -1: none */
        int numa_node;                   /* -1: none or unknown */
        bool has_numa_attr;              /* the kernel has the attribute (CONFIG_NUMA) */
        char *local_cpulist;             /* NULL: unknown */
        bool boot_vga;

        IovirtCaps caps;

        /* SR-IOV counts; from config space, else from the kernel's attributes */
        bool sriov;
        unsigned sriov_total, sriov_initial, sriov_num, sriov_offset, sriov_stride;

        size_t parent;                   /* upstream bridge, IOVIRT_NONE on a root bus */
        size_t physfn;                   /* a VF's PF, IOVIRT_NONE otherwise */
        size_t *vfs;
        size_t n_vfs;
        size_t group;                    /* index into IovirtHost.groups, IOVIRT_NONE */

        char *reset_methods;             /* space-separated, as the kernel names them; "" for none */
        IovirtResetSource reset_source;

        char *problem;                   /* what could not be read, for the user; NULL if none */
        int vanished;                    /* during discovery: errno when it could not be opened */
} IovirtDevice;

typedef struct IovirtGroup {
        int number;
        size_t *members;                 /* device indices, in address order */
        size_t n_members;
        bool vfio_node;                  /* /dev/vfio/N exists */
} IovirtGroup;

typedef struct IovirtHost {
        IovirtDevice *devices;           /* sorted by address */
        size_t n_devices;
        IovirtGroup *groups;             /* sorted by number */
        size_t n_groups;
        bool kernel_has_reset_method;
        bool config_restricted;          /* config past 64 bytes was unreadable: not root */
        char **problems;                 /* host-level problems met during the scan */
        size_t n_problems;
        bool damaged;                    /* an update failed half-way: throw the model away */
        void *pci_access;                /* libpci; pci.ids is loaded on the first name look-up */
} IovirtHost;

/* Builds the model from the running host (or the umockdev testbed that
 * stands in for it).  Problems with single devices do not fail the scan:
 * they are recorded in the device's problem field or the host's problems. */
int iovirt_host_discover(IovirtHost **ret);
IovirtHost *iovirt_host_free(IovirtHost *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtHost *, iovirt_host_free);

/* What one uevent did to the model */
typedef enum IovirtDeviceChangeKind {
        IOVIRT_DEVICE_UNCHANGED,
        IOVIRT_DEVICE_ADDED,
        IOVIRT_DEVICE_REMOVED,
        IOVIRT_DEVICE_CHANGED,     /* its driver or its IOMMU group */
} IovirtDeviceChangeKind;

typedef struct IovirtDeviceChange {
        IovirtDeviceChangeKind kind;
        char address[IOVIRT_ADDRESS_MAX];
        char *old_driver, *new_driver;
        int old_group, new_group;
} IovirtDeviceChange;

/* Re-reads the one function at syspath (or drops it, when removed) and
 * re-derives what depends on it: parents, SR-IOV families, groups, reset
 * methods.  Nothing else is read.  Returns 1 when the model was touched,
 * 0 when a removed device was not in it.  A failure before the model is
 * touched leaves it as it was; one while re-deriving (out of memory) marks
 * it damaged: its groups and families may be half built, verdicts refuse
 * it, and the caller must read the host anew. */
int iovirt_host_update_device(IovirtHost *h, const char *syspath, bool removed, IovirtDeviceChange *ret);
void iovirt_device_change_clear(IovirtDeviceChange *c);

size_t iovirt_host_find_address(const IovirtHost *h, const IovirtAddress *a);
const IovirtGroup *iovirt_host_find_group(const IovirtHost *h, int number);

/* Resolves what a user typed: a full or short address, libvirt's
 * pci_DDDD_BB_DD_F, a network interface name, or a sysfs path.  Returns
 * -ENODEV / -EINVAL with a sentence in *reason (owned by the caller). */
int iovirt_host_lookup(const IovirtHost *h, const char *spec, size_t *ret, char **reason);

/* pci.ids names via libpci; NULL when the database does not know the ID. */
const char *iovirt_host_vendor_name(IovirtHost *h, const IovirtDevice *d, char *buf, size_t size);
const char *iovirt_host_device_name(IovirtHost *h, const IovirtDevice *d, char *buf, size_t size);
const char *iovirt_class_name(IovirtHost *h, uint32_t class_code, char *buf, size_t size);

static inline bool iovirt_device_is_vf(const IovirtDevice *d) {
        return d->physfn != IOVIRT_NONE;
}
