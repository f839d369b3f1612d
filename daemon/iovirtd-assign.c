/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <syslog.h>

#include "iovirt-assign.h"
#include "iovirt-guard.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"
#include "iovirtd-assign.h"
#include "iovirtd-bouncer.h"
#include "iovirtd-log.h"

int manager_load_state(Manager *m) {
        _cleanup_free_ char *boot_id = NULL;
        char **notes = NULL;
        size_t n_notes = 0;
        int r;

        m->state_dir = iovirt_state_dir();
        r = iovirt_state_load(m->state_dir, &m->state);
        if (r < 0)
                return log_error_errno(r, "Failed to read the state in %s: %m", m->state_dir);
        for (size_t i = 0; i < m->state->n_problems; i++)
                log_full_errno(LOG_CRIT, 0, NULL, "%s", m->state->problems[i]);
        r = iovirt_boot_id(&boot_id);
        if (r < 0)
                log_warning_errno(r, "Cannot read the boot id; assignments of earlier boots cannot be told apart: %m");

        r = iovirt_state_reconcile(m->host, m->state, m->state_dir, boot_id, &notes, &n_notes);
        for (size_t i = 0; i < n_notes; i++) {
                log_full_errno(LOG_WARNING, 0, NULL, "%s", notes[i]);
                free(notes[i]);
        }
        free(notes);
        if (r < 0)
                return log_error_errno(r, "Failed to reconcile the state with the host: %m");
        if (n_notes > 0) {
                r = manager_refresh(m);
                if (r < 0)
                        return r;
        }
        log_info("%zu assignment%s held", m->state->n_records, m->state->n_records == 1 ? "" : "s");
        return 0;
}

/* ---- arguments ---- */

typedef struct AssignArgs {
        const char *target, *consumer;
        unsigned accept;
        int interactive;
} AssignArgs;

static int check_target(const char *target, sd_bus_error *error) {
        if (strlen(target) > IOVIRT_ARG_MAX)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "The target is %zu bytes long; at most %d are accepted", strlen(target),
                                         IOVIRT_ARG_MAX);
        return 0;
}

static int check_consumer(const char *consumer, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        if (iovirt_consumer_valid(consumer, &reason) < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "%s",
                                         reason ? reason : "Invalid consumer name");
        return 0;
}

static int read_assign_args(sd_bus_message *msg, bool with_interactive, AssignArgs *a, sd_bus_error *error) {
        int r;
        *a = (AssignArgs) {};
        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "ss", &a->target, &a->consumer);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        for (;;) {
                const char *s;
                r = sd_bus_message_read(msg, "s", &s);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (streq_ptr(s, "leaky"))
                        a->accept |= IOVIRT_ACCEPT_LEAKY;
                else
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                 "Unknown value in accept: '%.64s'; the only one is 'leaky'", s);
        }
        r = sd_bus_message_exit_container(msg);
        if (r >= 0 && with_interactive)
                r = sd_bus_message_read(msg, "b", &a->interactive);
        if (r < 0)
                return r;
        r = check_target(a->target, error);
        if (r >= 0)
                r = check_consumer(a->consumer, error);
        return r;
}

/* The plan for a, or a NoSuchDevice / InvalidArgument error */
static int make_plan(Manager *m, const AssignArgs *a, IovirtPlan **ret, sd_bus_error *error) {
        _cleanup_(iovirt_usage_freep) IovirtUsage *usage = NULL;
        _cleanup_free_ char *reason = NULL;
        size_t device;
        int group, r;

        r = iovirt_target_resolve(m->host, a->target, &group, &device, &reason);
        if (r < 0)
                return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", reason ? reason : "No such device");
        r = iovirt_guard_scan(m->host, &usage);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not tell what the host itself uses: %m");
        r = iovirt_plan_assign(m->host, m->verdicts, usage, m->state, group, device, a->consumer, a->accept, ret);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not make a plan: %m");
        return 0;
}

int method_plan_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        AssignArgs a;
        int r;

        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        r = read_assign_args(msg, false, &a, error);
        if (r < 0)
                return r;
        r = make_plan(m, &a, &plan, error);
        if (r < 0)
                return r;
        _cleanup_(json_object_putp) json_object *o = iovirt_plan_to_json(plan);
        return manager_reply_json(msg, o);
}

/* The model follows the kernel at once, not when the uevents arrive. */
static void update_address(Manager *m, const char *address) {
        IovirtAddress a;
        size_t d;
        if (iovirt_address_parse(address, &a, NULL) < 0 || (d = iovirt_host_find_address(m->host, &a)) == IOVIRT_NONE)
                return;
        _cleanup_free_ char *syspath = strdup(m->host->devices[d].syspath);    /* the update replaces it */
        if (syspath)
                manager_update_device(m, syspath);
}

/* The kernel's time for each bind, as an operator would want to see it */
static void log_moves(const IovirtMoves *moves) {
        for (size_t i = 0; i < moves->n; i++)
                log_device_info(moves->moves[i].address, "%s went to %s in %.1f ms", moves->moves[i].address,
                                moves->moves[i].to ? moves->moves[i].to : "no driver", moves->moves[i].usec / 1000.0);
}

static void free_strv(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static int act_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        _cleanup_free_ char *reason = NULL;
        AssignArgs a;
        int r;

        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        r = read_assign_args(msg, true, &a, error);
        if (r < 0)
                return r;
        r = make_plan(m, &a, &plan, error);
        if (r < 0)
                return r;
        const IovirtPlanCheck *refusal = iovirt_plan_refusal(plan);
        if (refusal) {
                _cleanup_free_ char *text = iovirt_plan_refusal_text(plan);
                log_notice("Refused to assign %s to %s: %s", a.target, a.consumer, strna(text));
                return sd_bus_error_setf(error, refusal->error ? refusal->error : IOVIRT_ERROR_FAILED, "%s",
                                         text ? text : refusal->message);
        }

        _cleanup_(iovirt_moves_clear) IovirtMoves moves = {};
        r = iovirt_assign_execute(plan, m->state, m->state_dir, &moves, &reason);
        log_moves(&moves);
        for (size_t i = 0; i < plan->n_steps; i++)
                update_address(m, plan->steps[i].address);
        if (r < 0) {
                log_full_errno(LOG_ERR, r, NULL, "Assigning group %d to %s failed: %s", plan->group, a.consumer,
                               strna(reason));
                return sd_bus_error_setf(error, IOVIRT_ERROR_BIND_FAILED, "%s", reason ? reason : strerror(-r));
        }
        log_info("Assigned group %d (%zu function%s) to %s", plan->group, plan->n_steps, plan->n_steps > 1 ? "s" : "",
                 a.consumer);
        r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Assigned", "is",
                               (int32_t) plan->group, a.consumer);
        if (r < 0)
                log_warning_errno(r, "Failed to emit Assigned: %m");
        _cleanup_(json_object_putp) json_object *o = iovirt_plan_to_json(plan);
        return manager_reply_json(msg, o);
}

int method_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        AssignArgs a;
        int r = read_assign_args(msg, true, &a, error);        /* refuse bad input before asking polkit */
        if (r < 0)
                return r;
        r = bouncer_check(m->bouncer, msg, a.interactive, act_assign, m, error);
        return r < 0 ? r : 1;
}

/* Releases one group and appends its JSON to list. */
static int release_group(Manager *m, int group, json_object *list, sd_bus_error *error) {
        IovirtRecord *rec = iovirt_state_find(m->state, group);
        _cleanup_free_ char *notes = NULL, *reason = NULL, *consumer = NULL;
        char **addresses = NULL;
        size_t n = 0;
        int r;

        if (!rec)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_ASSIGNED,
                                         "Group %d is not assigned; iovirtctl list-assignments shows what is", group);
        consumer = strdup(rec->consumer);
        addresses = calloc(rec->n_functions, sizeof(char *));
        if (!consumer || !addresses) {
                free(addresses);
                return -ENOMEM;
        }
        for (; n < rec->n_functions; n++)
                addresses[n] = strdup(rec->functions[n].address);

        _cleanup_(iovirt_moves_clear) IovirtMoves moves = {};
        r = iovirt_release_execute(m->host, m->state, m->state_dir, group, &moves, &notes, &reason);
        log_moves(&moves);
        for (size_t i = 0; i < n; i++)
                if (addresses[i])
                        update_address(m, addresses[i]);
        if (r < 0) {
                free_strv(addresses, n);
                log_full_errno(LOG_ERR, r, NULL, "Releasing group %d from %s failed: %s", group, consumer, strna(reason));
                return sd_bus_error_setf(error, IOVIRT_ERROR_BIND_FAILED, "%s", reason ? reason : strerror(-r));
        }
        log_info("Released group %d from %s%s%s", group, consumer[0] ? consumer : "an unknown consumer",
                 notes ? ": " : "", notes ? notes : "");
        r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Released", "is",
                               (int32_t) group, consumer);
        if (r < 0)
                log_warning_errno(r, "Failed to emit Released: %m");

        json_object *o = json_object_new_object(), *fns = json_object_new_array(), *nl = json_object_new_array();
        json_object_object_add(o, "group", json_object_new_int(group));
        json_object_object_add(o, "consumer", json_object_new_string(consumer));
        for (size_t i = 0; i < n; i++)
                json_object_array_add(fns, json_object_new_string(addresses[i] ? addresses[i] : ""));
        for (char *save = NULL, *l = notes ? strtok_r(notes, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
                json_object_array_add(nl, json_object_new_string(l));
        json_object_object_add(o, "functions", fns);
        json_object_object_add(o, "notes", nl);
        json_object_array_add(list, o);
        free_strv(addresses, n);
        return 0;
}

static int reply_released(sd_bus_message *msg, json_object *list) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "released", list);
        return manager_reply_json(msg, o);
}

static int act_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *reason = NULL;
        const char *target;
        size_t device;
        int group, r;

        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &target);
        if (r < 0)
                return r;
        /* a recorded group may have left the host; its record still names it */
        if (strncmp(target, "group:", 6) == 0 && iovirt_parse_int(target + 6, &group) >= 0 &&
            iovirt_state_find(m->state, group))
                r = 0;
        else
                r = iovirt_target_resolve(m->host, target, &group, &device, &reason);
        if (r < 0)
                return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", reason ? reason : "No such device");
        if (group < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_ASSIGNED,
                                         "%s is in no IOMMU group, so it cannot have been assigned", target);
        json_object *list = json_object_new_array();
        r = release_group(m, group, list, error);
        if (r < 0) {
                json_object_put(list);
                return r;
        }
        return reply_released(msg, list);
}

int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *target;
        int interactive, r;

        r = sd_bus_message_read(msg, "sb", &target, &interactive);
        if (r < 0)
                return r;
        r = check_target(target, error);
        if (r < 0)
                return r;
        r = bouncer_check(m->bouncer, msg, interactive, act_release, m, error);
        return r < 0 ? r : 1;
}

static int act_release_consumer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *consumer;
        int r;

        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &consumer);
        if (r < 0)
                return r;
        _cleanup_free_ int *groups = calloc(m->state->n_records + 1, sizeof(int));
        size_t n = 0;
        if (!groups)
                return -ENOMEM;
        for (size_t i = 0; i < m->state->n_records; i++)
                if (streq_ptr(m->state->records[i]->consumer, consumer))
                        groups[n++] = m->state->records[i]->group;
        if (n == 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_ASSIGNED,
                                         "Nothing is assigned to %s; iovirtctl list-assignments shows what is", consumer);
        json_object *list = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                r = release_group(m, groups[i], list, error);
                if (r < 0) {
                        json_object_put(list);
                        return r;
                }
        }
        return reply_released(msg, list);
}

int method_release_consumer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *consumer;
        int interactive, r;

        r = sd_bus_message_read(msg, "sb", &consumer, &interactive);
        if (r < 0)
                return r;
        r = check_consumer(consumer, error);
        if (r < 0)
                return r;
        r = bouncer_check(m->bouncer, msg, interactive, act_release_consumer, m, error);
        return r < 0 ? r : 1;
}

int method_list_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(issas)");
        for (size_t i = 0; r >= 0 && i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                r = sd_bus_message_open_container(reply, 'r', "issas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "iss", rec->group, rec->consumer, iovirt_phase_name(rec->phase));
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t k = 0; r >= 0 && k < rec->n_functions; k++)
                        r = sd_bus_message_append(reply, "s", rec->functions[k].address);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

int method_describe_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        _cleanup_(json_object_putp) json_object *o = iovirt_assignments_to_json(m->host, m->state);
        return manager_reply_json(msg, o);
}
