/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "iovirtd-manager.h"

/* Transactions off the event loop.  A bind can take seconds while a driver
 * probes; meanwhile the event loop keeps answering everyone else.  A job
 * runs its work on a thread of its own, touching only what it was handed
 * (a plan or record copies, the state directory, sysfs); when the work
 * returns, its done() runs back on the event loop, where the model and the
 * state live, and replies to the request.
 *
 * A job holds its IOMMU groups for as long as it runs: the lock per group.
 * Two jobs on different groups run together; a request for a group held by
 * a job is refused with Busy at once (the plan says by whom), never queued:
 * an orchestrator retries, and a queue would hide a stuck probe. */

typedef struct Job Job;

typedef void (*JobWork)(void *data);                          /* on the job's thread */
typedef int (*JobDone)(Manager *m, sd_bus_message *request, void *data); /* on the event loop */

/* Starts work(data) on a new thread, holding groups; done(data) follows on
 * the event loop and replies to request.  The job owns data (free_data).
 * -EBUSY when a group is held already. */
int job_start(Manager *m, sd_bus_message *request, const int *groups, size_t n_groups, JobWork work, JobDone done,
              void *data, void (*free_data)(void *));

/* Whether a running job holds group */
bool job_group_locked(Manager *m, int group);

/* Waits for every running job and runs its done(): at shutdown. */
void job_finish_all(Manager *m);
