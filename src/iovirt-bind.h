/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "iovirt-state.h"

/* The binder: the only code that writes to sysfs.  Each step reads the
 * function's live state first, so every operation can be repeated after a
 * crash and finishes what a previous attempt started.  The bind order is
 * driverctl's: driver_override, unbind, drivers_probe, then check the link.
 * new_id is never used (it would capture every device with the same ID). */

/* How long a driver may take to show up after drivers_probe */
#define IOVIRT_BIND_TIMEOUT_USEC (5 * 1000 * 1000ULL)

/* The function's driver and driver_override as the kernel has them now
 * (NULL: none).  -ENODEV when the function is gone. */
int iovirt_bind_read(const char *address, char **driver, char **driver_override);

/* Makes sure the VFIO driver (vfio-pci, or a variant such as
 * mlx5_vfio_pci) is there, running "modprobe MODULE" ("modprobe vfio-pci"
 * for vfio-pci; $IOVIRT_MODPROBE in tests) if it is not.  *ret_name is the
 * name it goes by in /sys/bus/pci/drivers: driver, or with '-' as '_', or
 * what /sys/module/MODULE/drivers lists (libvirt's fallbacks).  -EINVAL for
 * a name that is not a driver name, -ENOENT when it cannot be loaded. */
int iovirt_bind_load_driver(const char *driver, const char *module, char **ret_name, char **reason);

/* Moves one function to the VFIO driver (its name in /sys/bus/pci/drivers):
 * driver_override, unbind, drivers_probe, then the link checked.  A variant
 * driver never autoprobes; the override is the way in. */
int iovirt_bind_to_vfio(const char *address, const char *driver, uint64_t timeout_usec, char **reason);

/* Puts one function back as f recorded it: off its VFIO driver, its own
 * driver_override, its own driver (or none, if it had none).  A function
 * that somebody rebound by hand to a third driver is left alone (-EBUSY). */
int iovirt_bind_restore(const IovirtFunctionRecord *f, uint64_t timeout_usec, char **reason);

/* Waits until /dev/vfio/GROUP exists (present) or not. */
int iovirt_bind_wait_node(int group, bool present, uint64_t timeout_usec);

/* Gives DEV_VFIO/GROUP to uid (its group stays), as libvirt's DAC driver
 * gives it to the qemu user: by path below $IOVIRT_ROOT, so that the group
 * itself is never opened (a VFIO group has one opener).  old_uid and old_gid: its owner
 * before, for iovirt_bind_node_restore(). */
int iovirt_bind_node_give(int group, uint32_t uid, uint32_t *old_uid, uint32_t *old_gid);
/* Sets the owner back; 0 when the node is gone (the group left VFIO) */
int iovirt_bind_node_restore(int group, uint32_t uid, uint32_t gid);
