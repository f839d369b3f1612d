/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Every name iovirt shares with the outside world, in one place: bus names,
 * sysfs attributes, paths, environment variables. */

/* Environment */
#define IOVIRT_ENV_ROOT "IOVIRT_ROOT"   /* prefix for /proc, /lib/modules and /dev/vfio/N's owner; tests point it at a testbed */
#define IOVIRT_ENV_STATE_DIRECTORY "STATE_DIRECTORY"   /* systemd's StateDirectory= */
#define IOVIRT_ENV_MODPROBE "IOVIRT_MODPROBE"          /* the modprobe to run; tests emulate it */
#define IOVIRT_ENV_FAULT "IOVIRT_FAULT"                /* fault-injection builds only: where to die */
#define IOVIRT_ENV_SRIOV_TIMEOUT "IOVIRT_SRIOV_TIMEOUT" /* seconds SetVfs waits for the VFs' uevents */

/* State */
#define IOVIRT_STATE_DIR "/var/lib/iovirt"
#define IOVIRT_CONSUMER_MAX 255
#define MODPROBE "/sbin/modprobe"

/* libvirt */
#define IOVIRT_DOMAIN_XMLNS "https://iovirt.org/xmlns/domain/1"   /* <metadata><iovirt:device pool='NAME'/> */

/* D-Bus */
#define IOVIRT_BUS_NAME "org.iovirt1"
#define IOVIRT_OBJECT_PATH "/org/iovirt1"
#define IOVIRT_MANAGER_INTERFACE "org.iovirt1.Manager"

#define IOVIRT_ERROR_NO_SUCH_DEVICE "org.iovirt1.Error.NoSuchDevice"
#define IOVIRT_ERROR_INVALID_ARGUMENT "org.iovirt1.Error.InvalidArgument"
#define IOVIRT_ERROR_NOT_AUTHORIZED "org.iovirt1.Error.NotAuthorized"
#define IOVIRT_ERROR_BUSY "org.iovirt1.Error.Busy"
#define IOVIRT_ERROR_FAILED "org.iovirt1.Error.Failed"
#define IOVIRT_ERROR_NO_IOMMU "org.iovirt1.Error.NoIommu"
#define IOVIRT_ERROR_IN_USE "org.iovirt1.Error.InUse"
#define IOVIRT_ERROR_NOT_ISOLATED "org.iovirt1.Error.NotIsolated"
#define IOVIRT_ERROR_HOST_CRITICAL "org.iovirt1.Error.HostCritical"
#define IOVIRT_ERROR_NOT_ASSIGNED "org.iovirt1.Error.NotAssigned"
#define IOVIRT_ERROR_BIND_FAILED "org.iovirt1.Error.BindFailed"
#define IOVIRT_ERROR_POLICY_DENIED "org.iovirt1.Error.PolicyDenied"
#define IOVIRT_ERROR_OVER_BUDGET "org.iovirt1.Error.OverBudget"
/* libvirt cannot be reached, refused an attach or a detach, or the guest did not let go */
#define IOVIRT_ERROR_LIBVIRT "org.iovirt1.Error.Libvirt"

/* polkit actions (data/polkit-1/actions/org.iovirt1.policy) */
#define IOVIRT_ACTION_RELOAD "org.iovirt1.reload"
#define IOVIRT_ACTION_ASSIGN "org.iovirt1.assign"
#define IOVIRT_ACTION_RELEASE "org.iovirt1.release"
#define IOVIRT_ACTION_RELEASE_ANY "org.iovirt1.release-any"   /* a group another uid assigned */
#define IOVIRT_ACTION_MANAGE_SRIOV "org.iovirt1.manage-sriov"

#define POLKIT_BUS_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_OBJECT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_INTERFACE "org.freedesktop.PolicyKit1.Authority"

/* Longest string argument the daemon accepts (a device spec, a path) */
#define IOVIRT_ARG_MAX 4096

/* sysfs: paths are absolute; under umockdev they are redirected to a testbed */
#define SYSFS_PCI_DEVICES "/sys/bus/pci/devices"
#define SYSFS_PCI_DRIVERS "/sys/bus/pci/drivers"
#define SYSFS_PCI_DRIVERS_PROBE "/sys/bus/pci/drivers_probe"
#define SYSFS_IOMMU_GROUPS "/sys/kernel/iommu_groups"
#define SYSFS_CLASS_NET "/sys/class/net"
#define SYSFS_CLASS_BLOCK "/sys/class/block"
#define SYSFS_CLASS_GRAPHICS "/sys/class/graphics"
#define SYSFS_DEV_BLOCK "/sys/dev/block"
#define SYSFS_BUS_VIRTIO_DEVICES "/sys/bus/virtio/devices"
#define SYSFS_FS_BTRFS "/sys/fs/btrfs"
#define SYSFS_ACPI_TABLES "/sys/firmware/acpi/tables"
#define SYSFS_MODULE "/sys/module"
#define SYSFS_UNSAFE_INTERRUPTS "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
#define SYSFS_NODE "/sys/devices/system/node"
#define SYSFS_CPU_ONLINE "/sys/devices/system/cpu/online"
#define SYSFS_CPU "/sys/devices/system/cpu"
#define DEV_VFIO "/dev/vfio"
#define DEV_VFIO_CONTAINER "/dev/vfio/vfio"

/* per-device sysfs attributes and links */
#define ATTR_CONFIG "config"
#define ATTR_VENDOR "vendor"
#define ATTR_DEVICE "device"
#define ATTR_NUMA_NODE "numa_node"
#define ATTR_DRIVER_OVERRIDE "driver_override"
#define ATTR_RESET_METHOD "reset_method"
#define ATTR_SRIOV_TOTALVFS "sriov_totalvfs"
#define ATTR_SRIOV_NUMVFS "sriov_numvfs"
#define ATTR_SRIOV_AUTOPROBE "sriov_drivers_autoprobe"
#define ATTR_BOOT_VGA "boot_vga"
#define ATTR_NODE_DISTANCE "distance"   /* in SYSFS_NODE/nodeN/ */
#define ATTR_NODE_CPULIST "cpulist"     /* in SYSFS_NODE/nodeN/ */
#define ATTR_PHYSICAL_PACKAGE_ID "topology/physical_package_id"   /* in SYSFS_CPU/cpuN/ */
#define LINK_DRIVER "driver"
#define LINK_IOMMU_GROUP "iommu_group"
#define LINK_PHYSFN "physfn"
#define LINK_DEVICE "device"

/* procfs and module files, below $IOVIRT_ROOT */
#define PROC_CMDLINE "/proc/cmdline"
#define PROC_MOUNTINFO "/proc/self/mountinfo"
#define PROC_SWAPS "/proc/swaps"
#define PROC_BOOT_ID "/proc/sys/kernel/random/boot_id"
#define PROC_INTERRUPTS "/proc/interrupts"
#define PROC_MODULES "/proc/modules"
#define PROC_OSRELEASE "/proc/sys/kernel/osrelease"
#define PROC_MEMINFO "/proc/meminfo"
#define PROC_PID "/proc"   /* PROC_PID/<pid>/{status,cgroup}: a consumer process's placement and cgroup */
#define CGROUP_ROOT "/sys/fs/cgroup"   /* cgroupfs, not sysfs: below $IOVIRT_ROOT like /proc */
#define CGROUP_MEMORY_MAX "memory.max"
#define LIB_MODULES "/lib/modules"
#define MODULES_ALIAS "modules.alias"   /* in LIB_MODULES/<release>/; vfio_pci: lines name VFIO variant drivers */

/* the kernel's network state, per network namespace: never below $IOVIRT_ROOT */
#define PROC_NET_ROUTE "/proc/self/net/route"
#define PROC_NET_IPV6_ROUTE "/proc/self/net/ipv6_route"

/* drivers */
#define DRIVER_VFIO_PCI "vfio-pci"
