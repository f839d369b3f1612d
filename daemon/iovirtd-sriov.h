/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "iovirtd-manager.h"

/* SR-IOV over the bus: DescribeSriov (read-only), SetVfs and ConfigureVf
 * (behind the bouncer, polkit action org.iovirt1.manage-sriov).
 *
 * SetVfs plans the change (src/iovirt-sriov.h: the count against the
 * total, the claim rules), writes sriov_numvfs on a job's thread, and
 * answers once every VF has appeared in (or gone from) the live model with
 * its IOMMU group: the model follows udev's events, so the wait is driven
 * by them, bounded, and never polls sysfs.
 *
 * What is kept of each PF (the count, autoprobe, VF settings) lives in
 * STATE_DIR/sriov-ADDRESS.json; persisted PFs are put back at start-up,
 * before assignments are reconciled. */

/* At start-up, after the first manager_refresh() and with the state
 * records read, before they are reconciled: re-applies each persisted PF's
 * VF count, autoprobe and VF settings where the host differs. */
int manager_restore_sriov(Manager *m);

/* Whether a SetVfs on the PF (its address) has not ended yet: its count
 * is changing, or its VFs are not all in the model.  Nothing else may plan
 * on the PF or its VFs meanwhile (Busy). */
bool manager_sriov_busy(Manager *m, const char *pf);

/* After every change of the model: answers the SetVfs calls whose VFs are
 * all there now. */
void manager_sriov_check_waits(Manager *m);
/* At shutdown: answers the calls still waiting */
void manager_sriov_stop(Manager *m);
void manager_sriov_free(Manager *m);

int method_describe_sriov(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prepare_set_vfs(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_set_vfs(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prepare_configure_vf(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_configure_vf(sd_bus_message *msg, void *userdata, sd_bus_error *error);
