/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <libudev.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "iovirt-host.h"
#include "iovirt-state.h"
#include "iovirt-verdict.h"

typedef struct Bouncer Bouncer;
typedef struct Job Job;
typedef struct SriovWait SriovWait;
typedef struct IovirtSriovRecord IovirtSriovRecord;
typedef struct IovirtPolicy IovirtPolicy;
typedef struct Watch Watch;

/* The daemon's one context: the bus, the loop, and the host model it owns. */
typedef struct Domains Domains;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        Bouncer *bouncer;
        struct udev *udev;
        struct udev_monitor *monitor;
        sd_event_source *monitor_source;
        sd_event_source *resync_timer;    /* armed when the monitor lost events */

        IovirtHost *host;
        IovirtVerdicts *verdicts;
        uint64_t generation;       /* bumped on every change of the model */
        /* the list documents, serialised once per generation */
        char *groups_json;
        char *devices_json;
        char *tree_json;           /* every iovirtctl call starts with it */

        IovirtState *state;        /* assignments, as recorded in state_dir */
        const char *state_dir;
        Job *jobs;                 /* transactions running on their threads */
        bool stopping;             /* SIGTERM: finishing the jobs, taking no new ones */

        IovirtSriovRecord **sriov; /* what is kept of each PF (iovirtd-sriov.h) */
        size_t n_sriov;
        SriovWait *sriov_waits;    /* SetVfs calls waiting for their VFs' uevents */

        IovirtPolicy *policy;      /* the last good policy; NULL: none could be read */
        char *policy_error;        /* why the last load failed; NULL: it did not */
        Watch *watches;            /* pid: consumers' processes (iovirtd-policy.h) */
        Domains *domains;          /* libvirt domains looked up for Assign, and releases waiting for
                                    * a job to end (iovirtd-domain.h) */
} Manager;

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Reads the host again and replaces the model. */
int manager_refresh(Manager *m);

/* Listens to udev's pci events; each updates the model as it arrives.
 * Call before manager_refresh(), so that nothing falls between the two. */
int manager_start_monitor(Manager *m);

/* Leaves the event loop, answering what still waits for polkit first */
void manager_exit(Manager *m);

/* Connects to the system bus, exports the object, takes the name. */
int manager_connect_bus(Manager *m);

/* Re-reads the one function at syspath now, as its uevent would. */
void manager_update_device(Manager *m, const char *syspath);

/* Sets a Busy error while the model is being rebuilt; negative then. */
int manager_model_ready(Manager *m, sd_bus_error *error);
/* The same, and Busy while iovirtd is stopping: whether it takes new work */
int manager_accepting(Manager *m, sd_bus_error *error);

int manager_reply_json(sd_bus_message *msg, json_object *o);

/* Reload, behind the bouncer */
int prepare_reload(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error);

extern const sd_bus_vtable manager_vtable[];
