/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <sys/epoll.h>
#include <time.h>

#include "iovirt-check.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirtd-assign.h"
#include "iovirtd-bouncer.h"
#include "iovirtd-domain.h"
#include "iovirtd-job.h"
#include "iovirtd-log.h"
#include "iovirtd-manager.h"
#include "iovirtd-policy.h"
#include "iovirtd-sriov.h"

int manager_new(Manager **ret) {
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof(Manager));
        int r;

        if (!m)
                return -ENOMEM;
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* The documents serialised from the model, dropped whenever it changes */
static void manager_drop_documents(Manager *m) {
        m->groups_json = mfree(m->groups_json);
        m->devices_json = mfree(m->devices_json);
        m->tree_json = mfree(m->tree_json);
}

static void manager_drop_model(Manager *m) {
        m->verdicts = iovirt_verdicts_free(m->verdicts);
        m->host = iovirt_host_free(m->host);
        manager_drop_documents(m);
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        job_finish_all(m);       /* their records and replies, before the bus goes */
        manager_sriov_stop(m);
        manager_sriov_free(m);
        manager_watches_free(m);
        domains_free(m->domains);
        iovirt_policy_free(m->policy);
        free(m->policy_error);
        sd_event_source_disable_unref(m->monitor_source);
        sd_event_source_disable_unref(m->resync_timer);
        udev_monitor_unref(m->monitor);
        udev_unref(m->udev);
        bouncer_free(m->bouncer);
        manager_drop_model(m);
        iovirt_state_free(m->state);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

static void manager_model_changed(Manager *m) {
        manager_drop_documents(m);
        m->generation++;
        manager_sriov_check_waits(m);
}

int manager_refresh(Manager *m) {
        _cleanup_(iovirt_host_freep) IovirtHost *host = NULL;
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *verdicts = NULL;
        int r;

        r = iovirt_host_discover(&host);
        if (r < 0)
                return log_error_errno(r, "Failed to read the host's PCI devices: %m");
        r = iovirt_verdicts_compute(host, &verdicts);
        if (r < 0)
                return log_error_errno(r, "Failed to compute isolation verdicts: %m");
        for (size_t i = 0; i < host->n_problems; i++)
                log_warning("%s", host->problems[i]);
        for (size_t i = 0; i < host->n_devices; i++)
                if (host->devices[i].problem)
                        log_full_errno(LOG_WARNING, 0, host->devices[i].name, "%s: %s", host->devices[i].name,
                                       host->devices[i].problem);

        manager_drop_model(m);
        m->host = TAKE_PTR(host);
        m->verdicts = TAKE_PTR(verdicts);
        manager_model_changed(m);
        log_info("Host model: %zu PCI functions, %zu IOMMU groups%s", m->host->n_devices, m->host->n_groups,
                 m->host->n_groups ? "" : " (no IOMMU)");
        return 0;
}

static void emit_counts_changed(Manager *m) {
        if (!m->bus)
                return;
        int r = sd_bus_emit_properties_changed(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "IommuEnabled",
                                               "DeviceCount", "GroupCount", NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged: %m");
}

/* One function's change, logged and signalled as its uevent announces it */
static void announce_change(Manager *m, const IovirtDeviceChange *c) {
        int r;
        switch (c->kind) {
        case IOVIRT_DEVICE_ADDED:
                log_device_info(c->address, "%s appeared (driver %s, group %d)", c->address, strna(c->new_driver),
                                c->new_group);
                r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "DeviceAdded", "s",
                                       c->address);
                break;
        case IOVIRT_DEVICE_REMOVED:
                log_device_info(c->address, "%s disappeared", c->address);
                r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "DeviceRemoved", "s",
                                       c->address);
                break;
        case IOVIRT_DEVICE_CHANGED:
                log_device_info(c->address, "%s: driver %s -> %s, group %d -> %d", c->address, strna(c->old_driver),
                                strna(c->new_driver), c->old_group, c->new_group);
                r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "DeviceChanged", "ssi",
                                       c->address, c->new_driver ? c->new_driver : "", (int32_t) c->new_group);
                break;
        default:
                r = 0;
        }
        if (r < 0)
                log_warning_errno(r, "Failed to emit a signal for %s: %m", c->address);
}

/* After a resync: what the lost uevents would have announced, found by
 * comparing the model before with the model after, so that a client that
 * follows the signals does not keep the stale view */
static void announce_differences(Manager *m, const IovirtHost *old) {
        const IovirtHost *h = m->host;
        for (size_t i = 0; i < old->n_devices; i++) {
                const IovirtDevice *o = &old->devices[i];
                size_t k = iovirt_host_find_address(h, &o->addr);
                IovirtDeviceChange c = { .kind = IOVIRT_DEVICE_REMOVED, .old_driver = o->driver,
                                         .old_group = o->iommu_group, .new_group = -1 };
                if (k != IOVIRT_NONE) {
                        const IovirtDevice *d = &h->devices[k];
                        if (streq_ptr(o->driver, d->driver) && o->iommu_group == d->iommu_group)
                                continue;
                        c.kind = IOVIRT_DEVICE_CHANGED;
                        c.new_driver = d->driver;
                        c.new_group = d->iommu_group;
                }
                memcpy(c.address, o->name, sizeof(c.address));
                announce_change(m, &c);
        }
        for (size_t k = 0; k < h->n_devices; k++) {
                const IovirtDevice *d = &h->devices[k];
                if (iovirt_host_find_address(old, &d->addr) != IOVIRT_NONE)
                        continue;
                IovirtDeviceChange c = { .kind = IOVIRT_DEVICE_ADDED, .new_driver = d->driver, .old_group = -1,
                                         .new_group = d->iommu_group };
                memcpy(c.address, d->name, sizeof(c.address));
                announce_change(m, &c);
        }
}

#define RESYNC_DELAY_USEC (200 * 1000)

static void manager_schedule_resync(Manager *m);

static int on_resync(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        log_notice("Re-reading the host after lost or failed udev events");
        /* the model before, kept to compare (a damaged one says nothing reliable) */
        _cleanup_(iovirt_host_freep) IovirtHost *old = m->host && !m->host->damaged ? TAKE_PTR(m->host) : NULL;
        if (manager_refresh(m) < 0) {
                if (old)
                        m->host = TAKE_PTR(old);     /* with its verdicts, as before */
                manager_schedule_resync(m);     /* Busy meanwhile, if the model is gone */
                return 0;
        }
        if (old && m->bus)
                announce_differences(m, old);
        emit_counts_changed(m);
        return 0;
}

/* Debounced: a burst of overflows costs one full read. */
static void manager_schedule_resync(Manager *m) {
        int r;
        if (m->resync_timer) {
                r = sd_event_source_set_time_relative(m->resync_timer, RESYNC_DELAY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(m->resync_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(m->event, &m->resync_timer, CLOCK_MONOTONIC, RESYNC_DELAY_USEC, 0,
                                               on_resync, m);
        if (r < 0)
                log_error_errno(r, "Failed to schedule a resync; the model may be stale until Reload: %m");
}

static uint64_t now_usec(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000 + (uint64_t) t.tv_nsec / 1000;
}

static void manager_apply_uevent(Manager *m, const char *action, const char *syspath) {
        _cleanup_(iovirt_device_change_clear) IovirtDeviceChange c = {};
        uint64_t t0 = now_usec(), t1;
        int r;

        r = iovirt_host_update_device(m->host, syspath, streq_ptr(action, "remove"), &c);
        t1 = now_usec();
        if (r == -EINVAL)             /* not a PCI function address: not ours */
                return;
        if (r < 0) {
                log_error_errno(r, "Failed to follow %s of %s; re-reading the host: %m", strna(action), syspath);
                if (m->host->damaged)    /* queries answer Busy until the resync has rebuilt it */
                        manager_drop_model(m);
                manager_schedule_resync(m);
                return;
        }
        if (r == 0)
                return;
        iovirt_verdicts_free(m->verdicts);
        m->verdicts = NULL;
        r = iovirt_verdicts_compute(m->host, &m->verdicts);
        if (r < 0) {
                /* queries answer Busy until the resync has rebuilt it */
                log_error_errno(r, "Failed to compute verdicts after %s of %s: %m", action, c.address);
                manager_drop_documents(m);
                manager_schedule_resync(m);
                return;
        }
        manager_model_changed(m);
        log_debug("%s %s: model updated in %" PRIu64 " us (device %" PRIu64 ", verdicts %" PRIu64 ")", action,
                  c.address, now_usec() - t0, t1 - t0, now_usec() - t1);
        if (!m->bus)
                return;
        announce_change(m, &c);
        if (c.kind == IOVIRT_DEVICE_ADDED || c.kind == IOVIRT_DEVICE_REMOVED)
                emit_counts_changed(m);
}

void manager_update_device(Manager *m, const char *syspath) {
        if (m->host && m->verdicts)
                manager_apply_uevent(m, "change", syspath);
}

static int on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        for (;;) {
                errno = 0;
                struct udev_device *dev = udev_monitor_receive_device(m->monitor);
                if (!dev) {
                        if (errno == ENOBUFS) {                  /* the kernel dropped events */
                                int armed = SD_EVENT_OFF;
                                if (m->resync_timer)
                                        (void) sd_event_source_get_enabled(m->resync_timer, &armed);
                                if (armed == SD_EVENT_OFF)      /* once per burst */
                                        log_warning("The udev monitor's receive buffer overflowed (ENOBUFS): uevents "
                                                    "were lost, so the model may miss changes; re-reading the host");
                                manager_schedule_resync(m);
                        }
                        break;
                }
                log_debug("uevent %s %s", strna(udev_device_get_action(dev)), strna(udev_device_get_syspath(dev)));
                if (m->host && m->verdicts)
                        manager_apply_uevent(m, udev_device_get_action(dev), udev_device_get_syspath(dev));
                udev_device_unref(dev);
        }
        return 0;
}

int manager_start_monitor(Manager *m) {
        int r;

        m->udev = udev_new();
        if (!m->udev)
                return log_error_errno(-ENOMEM, "Failed to set up udev: %m");
        m->monitor = udev_monitor_new_from_netlink(m->udev, "udev");
        if (!m->monitor)
                return log_error_errno(-errno ?: -EIO, "Failed to listen to udev: %m");
        r = udev_monitor_filter_add_match_subsystem_devtype(m->monitor, "pci", NULL);
        if (r >= 0)
                r = udev_monitor_enable_receiving(m->monitor);
        if (r < 0)
                return log_error_errno(r, "Failed to listen to udev's pci events: %m");
        (void) udev_monitor_set_receive_buffer_size(m->monitor, 16 * 1024 * 1024);
        r = sd_event_add_io(m->event, &m->monitor_source, udev_monitor_get_fd(m->monitor), EPOLLIN, on_uevent, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch udev events: %m");
        /* read before bus calls: 200 busy clients must not let the buffer overflow, or answers lag the host */
        (void) sd_event_source_set_priority(m->monitor_source, SD_EVENT_PRIORITY_IMPORTANT);
        return 0;
}

/* The list documents are what clients ask for most: serialise them once. */
static const char *cached_json(Manager *m, char **cache, json_object *(*build)(Manager *m)) {
        if (!*cache) {
                _cleanup_(json_object_putp) json_object *o = build(m);
                if (!o)
                        return NULL;
                *cache = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        }
        return *cache;
}

static json_object *build_groups(Manager *m) {
        return iovirt_json_groups(m->host, m->verdicts);
}

static json_object *build_devices(Manager *m) {
        _cleanup_free_ size_t *all = malloc((m->host->n_devices + 1) * sizeof(size_t));
        if (!all)
                return NULL;
        for (size_t i = 0; i < m->host->n_devices; i++)
                all[i] = i;
        return iovirt_json_devices(m->host, all, m->host->n_devices);
}

int manager_reply_json(sd_bus_message *msg, json_object *o) {
        if (!o)
                return -ENOMEM;
        return sd_bus_reply_method_return(msg, "s",
                                          json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- properties ---- */

static int property_get_iommu_enabled(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "b", m->host && m->host->n_groups > 0);
}

static int property_get_device_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) (m->host ? m->host->n_devices : 0));
}

static int property_get_group_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) (m->host ? m->host->n_groups : 0));
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", IOVIRT_VERSION);
}

/* ---- read-only methods: open to everyone ---- */

/* The model may be incomplete for a moment after a failure (out of memory
 * while recomputing verdicts); a resync is then on its way. */
/* Neither a rebuilt model nor a daemon on its way out takes new work */
int manager_accepting(Manager *m, sd_bus_error *error) {
        if (m->stopping)
                return sd_bus_error_set(error, IOVIRT_ERROR_BUSY, "iovirtd is stopping; try again when it is back");
        return manager_model_ready(m, error);
}

int manager_model_ready(Manager *m, sd_bus_error *error) {
        if (m->host && m->verdicts)
                return 0;
        return sd_bus_error_set(error, IOVIRT_ERROR_BUSY, "The host model is being rebuilt; try again in a moment");
}

static int append_addresses(sd_bus_message *reply, const IovirtHost *h, const size_t *idx, size_t n) {
        int r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "s", h->devices[idx[i]].name);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int method_list_groups(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(isasas)");
        for (size_t i = 0; r >= 0 && i < m->host->n_groups; i++) {
                const IovirtGroup *g = &m->host->groups[i];
                const IovirtGroupVerdict *gv = &m->verdicts->groups[i];
                r = sd_bus_message_open_container(reply, 'r', "isasas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "is", g->number, iovirt_isolation_name(gv->isolation));
                if (r >= 0)
                        r = append_addresses(reply, m->host, g->members, g->n_members);
                if (r >= 0)
                        r = append_addresses(reply, m->host, gv->peers, gv->n_peers);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int method_list_devices(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssssii)");
        for (size_t i = 0; r >= 0 && i < m->host->n_devices; i++) {
                const IovirtDevice *d = &m->host->devices[i];
                char vendor[8] = "", device[8] = "", cls[8];
                if (d->ids_known) {
                        snprintf(vendor, sizeof(vendor), "%04x", d->vendor);
                        snprintf(device, sizeof(device), "%04x", d->device);
                }
                snprintf(cls, sizeof(cls), "%06x", d->class_code);
                r = sd_bus_message_append(reply, "(sssssii)", d->name, vendor, device, cls, d->driver ? d->driver : "",
                                          d->iommu_group, d->numa_node);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int method_describe_groups(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        const char *s = cached_json(m, &m->groups_json, build_groups);
        return s ? sd_bus_reply_method_return(msg, "s", s) : -ENOMEM;
}

static int method_describe_devices(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        const char *s = cached_json(m, &m->devices_json, build_devices);
        return s ? sd_bus_reply_method_return(msg, "s", s) : -ENOMEM;
}

static int method_describe_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        _cleanup_free_ char *reason = NULL;
        const char *spec;
        size_t i;
        int r;

        r = sd_bus_message_read(msg, "s", &spec);
        if (r < 0)
                return r;
        if (strlen(spec) > IOVIRT_ARG_MAX)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "The device name is %zu bytes long; at most %d are accepted", strlen(spec),
                                         IOVIRT_ARG_MAX);
        r = iovirt_host_lookup(m->host, spec, &i, &reason);
        if (r < 0)
                return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", reason ? reason : "No such device");
        _cleanup_(json_object_putp) json_object *o = iovirt_json_device(m->host, m->verdicts, i);
        return manager_reply_json(msg, o);
}

static json_object *build_tree(Manager *m) {
        json_object *root = json_object_new_object();
        json_object *a = json_object_new_array_ext((int) m->host->n_devices);
        for (size_t i = 0; i < m->host->n_devices; i++)
                json_object_array_add(a, iovirt_json_device(m->host, m->verdicts, i));
        json_object_object_add(root, "devices", a);
        return root;
}

static int method_describe_tree(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        const char *s = cached_json(m, &m->tree_json, build_tree);
        return s ? sd_bus_reply_method_return(msg, "s", s) : -ENOMEM;
}

static int method_check(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        _cleanup_(iovirt_checks_freep) IovirtChecks *checks = NULL;
        int r = iovirt_checks_run(m->host, m->verdicts, &checks);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Host checks failed: %m");
        _cleanup_(json_object_putp) json_object *o = iovirt_json_checks(checks);
        return manager_reply_json(msg, o);
}

/* ---- Reload: behind the bouncer ---- */

int prepare_reload(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        int arg, r = sd_bus_message_read(msg, "b", &arg);
        if (r < 0)
                return r;
        *interactive = arg;
        return 0;
}

int act_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *why = NULL;
        int r = manager_refresh(m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Reading the host failed: %m");
        emit_counts_changed(m);      /* the host was read again, whatever the policy says */
        r = manager_reload_policy(m, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_full_errno(LOG_ERR, 0, NULL, "The policy was not reloaded: %s; %s", strna(why),
                          m->policy ? "the last good one stays" : "every assignment is refused until one is read");
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "The policy was not reloaded: %s; %s",
                                         strna(why), m->policy ? "the last good policy stays in force"
                                                               : "every assignment is refused until a good one is read");
        }
        log_info("Reloaded on request of %s", strna(sd_bus_message_get_sender(msg)));
        /* WatchProcessExit= may have been turned on for consumers that exited meanwhile */
        manager_reap_consumers(m, true);
        return sd_bus_reply_method_return(msg, NULL);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IommuEnabled", "b", property_get_iommu_enabled, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DeviceCount", "u", property_get_device_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GroupCount", "u", property_get_group_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),

        SD_BUS_METHOD_WITH_ARGS("ListGroups", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(isasas)", groups),
                                method_list_groups, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssssii)", devices),
                                method_list_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeGroups", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe_groups, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeDevices", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeDevice", SD_BUS_ARGS("s", device), SD_BUS_RESULT("s", json),
                                method_describe_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeTree", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe_tree, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CheckHost", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_check, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_ARGS("b", interactive), SD_BUS_NO_RESULT,
                                method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_METHOD_WITH_ARGS("PlanAssign", SD_BUS_ARGS("s", target, "s", consumer, "as", accept),
                                SD_BUS_RESULT("s", json), method_plan_assign, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Assign", SD_BUS_ARGS("s", target, "s", consumer, "as", accept, "b", interactive),
                                SD_BUS_RESULT("s", json), method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("s", target, "b", interactive), SD_BUS_RESULT("s", json),
                                method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseConsumer", SD_BUS_ARGS("s", consumer, "b", interactive),
                                SD_BUS_RESULT("s", json), method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListAssignments", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(issas)", assignments),
                                method_list_assignments, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeAssignments", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe_assignments, SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_METHOD_WITH_ARGS("DescribePolicy", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe_policy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe_status, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeSriov", SD_BUS_ARGS("s", pf), SD_BUS_RESULT("s", json),
                                method_describe_sriov, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PrepareDomain", SD_BUS_ARGS("s", name, "s", xml, "b", interactive),
                                SD_BUS_RESULT("s", json), method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartedDomain", SD_BUS_ARGS("s", name, "b", interactive), SD_BUS_RESULT("s", json),
                                method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseDomain", SD_BUS_ARGS("s", name, "b", interactive), SD_BUS_RESULT("s", json),
                                method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetVfs", SD_BUS_ARGS("s", pf, "u", count, "a{sv}", options, "b", interactive),
                                SD_BUS_RESULT("s", json), method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ConfigureVf", SD_BUS_ARGS("s", vf, "a{sv}", settings, "b", interactive),
                                SD_BUS_RESULT("s", json), method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_SIGNAL_WITH_ARGS("Assigned", SD_BUS_ARGS("i", group, "s", consumer), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Released", SD_BUS_ARGS("i", group, "s", consumer), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceAdded", SD_BUS_ARGS("s", address), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRemoved", SD_BUS_ARGS("s", address), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceChanged", SD_BUS_ARGS("s", address, "s", driver, "i", group), 0),
        SD_BUS_VTABLE_END
};

void manager_exit(Manager *m) {
        bouncer_stop(m->bouncer);       /* replies go out before the loop closes the bus */
        manager_sriov_stop(m);
        (void) sd_event_exit(m->event, 0);
}

int manager_connect_bus(Manager *m) {
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_add_object_vtable(m->bus, NULL, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to export " IOVIRT_OBJECT_PATH ": %m");
        r = bouncer_new(m->bus, &m->bouncer);
        if (r < 0)
                return log_error_errno(r, "Failed to set up authorization: %m");
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = sd_bus_request_name(m->bus, IOVIRT_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the name " IOVIRT_BUS_NAME
                                          " (is another iovirtd running, or does the bus policy forbid it?): %m");
        return 0;
}
