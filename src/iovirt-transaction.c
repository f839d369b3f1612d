/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <time.h>

#include "iovirt-transaction.h"
#include "iovirt-bind.h"
#include "iovirt-fault.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"
#include "iovirt-variant.h"

/* ---- transactions ---- */

int iovirt_boot_id(char **ret) {
        _cleanup_free_ char *path = iovirt_root_path(PROC_BOOT_ID), *text = NULL;
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, &text);
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = '\0';
        *ret = TAKE_PTR(text);
        return 0;
}

static uint64_t realtime_usec(void) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        return (uint64_t) t.tv_sec * 1000000 + (uint64_t) t.tv_nsec / 1000;
}

static uint64_t monotonic_usec(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000 + (uint64_t) t.tv_nsec / 1000;
}

void iovirt_moves_clear(IovirtMoves *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->moves[i].to);
        free(m->moves);
        *m = (IovirtMoves) {};
}

/* Notes that address went to driver (NULL: unbound) in the time since start;
 * a timing lost to a full memory is not worth failing a transaction for. */
static void note_move(IovirtMoves *m, const char *address, const char *driver, uint64_t start) {
        IovirtMove *mv;
        if (!m || !(mv = GROW(m->moves, m->n, m->allocated)))
                return;
        *mv = (IovirtMove) { .usec = monotonic_usec() - start, .to = driver ? strdup(driver) : NULL };
        snprintf(mv->address, sizeof(mv->address), "%s", address);
}

/* Puts back every function of rec (last first).  Returns how many could not
 * be, with their reasons in t; gone functions count as back. */
static size_t restore_all(IovirtRecord *rec, IovirtMoves *moves, IovirtText *t) {
        size_t failed = 0;
        for (size_t i = rec->n_functions; i-- > 0;) {
                _cleanup_free_ char *why = NULL;
                const IovirtFunctionRecord *f = &rec->functions[i];
                uint64_t start = monotonic_usec();
                int r = iovirt_bind_restore(f, IOVIRT_BIND_TIMEOUT_USEC, &why);
                if (r >= 0)
                        note_move(moves, f->address, f->original_known ? f->driver : NULL, start);
                iovirt_fault_point("release.restored");
                if (r < 0 && r != -ENODEV)
                        failed++;
                if (r < 0)
                        (void) iovirt_text_line(t, why ? why : "A function could not be put back (out of memory)");
        }
        return failed;
}

/* The intent: the consumer, each function's original driver and override
 * as the kernel has them now (the model may lag), and the VFIO driver it
 * goes to (drivers[i], by the name the kernel gives it). */
static int assign_intent(const IovirtPlan *p, char **drivers, IovirtRecord **ret, char **reason) {
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = calloc(1, sizeof(IovirtRecord));
        int r;

        if (!rec || !(rec->consumer = strdup(p->consumer)) ||
            (p->n_steps && !(rec->functions = calloc(p->n_steps, sizeof(IovirtFunctionRecord)))))
                return -ENOMEM;
        r = iovirt_boot_id(&rec->boot_id);
        if (r < 0 && r != -ENOENT)
                return r;
        rec->group = p->group;
        rec->phase = IOVIRT_PHASE_ASSIGNING;
        rec->since_usec = realtime_usec();
        rec->holder = p->holder;
        rec->libvirt_attach = p->libvirt_attach;
        for (size_t i = 0; i < p->n_steps; i++) {
                IovirtFunctionRecord *f = &rec->functions[rec->n_functions++];
                memcpy(f->address, p->steps[i].address, sizeof(f->address));
                f->original_known = true;
                f->vfio_driver = TAKE_PTR(drivers[i]);
                r = iovirt_bind_read(f->address, &f->driver, &f->driver_override);
                if (r == -ENODEV)
                        iovirt_set_reason(reason, r, "%s has gone away; nothing was changed", f->address);
                else if (r < 0)
                        iovirt_set_reason(reason, r, "Could not read the driver and driver_override of %s: %s; without them it "
                                           "could not be put back, so nothing was changed", f->address, strerror(-r));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(rec);
        return 0;
}

static void strv_free_n(char ***v, size_t n) {
        for (size_t i = 0; *v && i < n; i++)
                free((*v)[i]);
        *v = mfree(*v);
}

int iovirt_libvirt_hold(const IovirtPlan *p, const char *dir, IovirtRecord **ret, char **reason) {
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = NULL;
        _cleanup_free_ char **drivers = calloc(p->n_steps + 1, sizeof(char *));     /* none: libvirt chooses */
        *ret = NULL;
        if (iovirt_plan_refusal(p))
                return -EPERM;
        if (!drivers)
                return -ENOMEM;
        int r = assign_intent(p, drivers, &rec, reason);
        if (r < 0)
                return r;
        rec->phase = IOVIRT_PHASE_LIBVIRT;
        r = iovirt_record_save(dir, rec);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Could not record group %d for %s in %s: %s; nothing was "
                                         "changed%s", p->group, p->consumer, dir, strerror(-r), iovirt_state_write_advice(r));
        *ret = TAKE_PTR(rec);
        return 0;
}

int iovirt_assign_execute(const IovirtPlan *p, const char *dir, IovirtRecord **ret, IovirtMoves *moves,
                          char **reason) {
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = NULL;
        char **drivers = NULL;
        int r;

        *ret = NULL;
        if (iovirt_plan_refusal(p) || p->done)
                return -EPERM;
        /* every VFIO driver there (loaded if need be) before anything changes */
        if (p->n_steps && !(drivers = calloc(p->n_steps, sizeof(char *))))
                return -ENOMEM;
        for (size_t i = 0; i < p->n_steps; i++) {
                r = p->steps[i].to ? iovirt_bind_load_driver(p->steps[i].to, p->steps[i].module, &drivers[i], reason)
                                   : -EINVAL;
                if (r < 0) {
                        strv_free_n(&drivers, p->n_steps);
                        return r;
                }
        }
        r = assign_intent(p, drivers, &rec, reason);
        strv_free_n(&drivers, p->n_steps);
        if (r < 0)
                return r;
        r = iovirt_record_save(dir, rec);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Could not write the intent record to %s: %s; nothing was changed%s",
                                         dir, strerror(-r), iovirt_state_write_advice(r));
        iovirt_fault_point("assign.intent");

        _cleanup_free_ char *why = NULL;
        for (size_t i = 0; r >= 0 && i < rec->n_functions; i++) {
                uint64_t start = monotonic_usec();
                const IovirtFunctionRecord *f = &rec->functions[i];
                r = iovirt_bind_to_vfio(f->address, iovirt_function_vfio_driver(f), IOVIRT_BIND_TIMEOUT_USEC, &why);
                if (r >= 0)
                        note_move(moves, f->address, iovirt_function_vfio_driver(f), start);
        }
        if (r >= 0) {
                r = iovirt_bind_wait_node(p->group, true, IOVIRT_BIND_TIMEOUT_USEC);
                if (r < 0)
                        iovirt_set_reason(&why, r, "Every function went to its VFIO driver but " DEV_VFIO "/%d did not "
                                          "appear", p->group);
        }
        iovirt_fault_point("assign.node");
        if (r >= 0 && p->give_node_to) {
                r = iovirt_bind_node_give(p->group, p->give_node_to, &rec->node_old_uid, &rec->node_old_gid);
                if (r < 0)
                        iovirt_set_reason(&why, r, "Could not give " DEV_VFIO "/%d to uid %u: %s", p->group,
                                          p->give_node_to, strerror(-r));
                rec->node_given = r >= 0;
                rec->node_uid = p->give_node_to;
        }
        if (r >= 0) {
                rec->phase = IOVIRT_PHASE_ASSIGNED;
                r = iovirt_record_save(dir, rec);
                if (r < 0)
                        iovirt_set_reason(&why, r, "Could not record the assignment in %s: %s, so it is rolled back%s",
                                          dir, strerror(-r), iovirt_state_write_advice(r));
        }
        if (r >= 0) {
                iovirt_fault_point("assign.commit");
                *ret = TAKE_PTR(rec);
                return 0;
        }

        /* roll back: every function to where it was */
        IovirtText t = {};
        (void) iovirt_text_line(&t, why ? why : "Binding to the VFIO driver failed");
        size_t failed = restore_all(rec, moves, &t);
        iovirt_fault_point("assign.rollback");
        if (failed) {
                (void) iovirt_text_add(&t, "\n%zu function%s could not be put back; the record stays in %s for a retry "
                                           "(iovirtctl release group:%d)", failed, failed > 1 ? "s" : "", dir, p->group);
                rec->phase = IOVIRT_PHASE_RELEASING;
                (void) iovirt_record_save(dir, rec);
                *ret = TAKE_PTR(rec);
        } else {
                (void) iovirt_text_add(&t, "\nEvery function was put back as it was.");
                (void) iovirt_record_remove(dir, p->group);
        }
        free(*reason);
        *reason = iovirt_text_take(&t);
        return r;
}

int iovirt_release_notes(const IovirtHost *h, const IovirtRecord *rec, char **ret) {
        IovirtText n = {};
        for (size_t i = 0; i < rec->n_functions; i++) {
                IovirtAddress a;
                size_t d;
                if (iovirt_address_parse(rec->functions[i].address, &a, NULL) < 0 ||
                    (d = iovirt_host_find_address(h, &a)) == IOVIRT_NONE)
                        continue;
                if (h->devices[d].reset_methods && !h->devices[d].reset_methods[0])
                        (void) iovirt_text_add(&n, "%s%s has no reset method: the host driver gets it in the state "
                                                   "the VM left", n.len ? "\n" : "", rec->functions[i].address);
        }
        if (n.failed) {
                iovirt_text_clear(&n);
                return -ENOMEM;
        }
        *ret = iovirt_text_take(&n);
        return 0;
}

/* Is f where a release leaves it?  Gone counts as back.  A function whose
 * original is unknown (a record rebuilt from the host) is back once it is
 * off its VFIO driver with no override naming it: the kernel chose its driver. */
static bool function_back(const IovirtFunctionRecord *f) {
        _cleanup_free_ char *drv = NULL, *over = NULL;
        int r = iovirt_bind_read(f->address, &drv, &over);
        if (r == -ENODEV)
                return true;
        if (r < 0)
                return false;     /* cannot tell: keep it for the retry */
        if (!f->original_known)
                return !streq_ptr(drv, iovirt_function_vfio_driver(f)) &&
                       !streq_ptr(over, iovirt_function_vfio_driver(f));
        return streq_ptr(drv, f->driver) && streq_ptr(over, f->driver_override);
}

int iovirt_release_execute(IovirtRecord *rec, const char *dir, IovirtMoves *moves, char **notes, char **reason) {
        IovirtPhase was = rec->phase;
        int r;

        rec->phase = IOVIRT_PHASE_RELEASING;
        r = iovirt_record_save(dir, rec);
        if (r < 0) {
                rec->phase = was;     /* as the file still says */
                return iovirt_set_reason(reason, r, "Could not write the intent record to %s: %s; nothing was changed%s",
                                         dir, strerror(-r), iovirt_state_write_advice(r));
        }
        iovirt_fault_point("release.intent");

        IovirtText t = {};
        /* the node back to its owner first: it goes with the last unbind, and
         * a function that stays on VFIO must not stay with the consumer's user */
        if (rec->node_given) {
                r = iovirt_bind_node_restore(rec->group, rec->node_old_uid, rec->node_old_gid);
                char line[256];
                snprintf(line, sizeof(line), DEV_VFIO "/%d could not be given back to uid %u: %s", rec->group,
                         rec->node_old_uid, strerror(-r));
                if (r < 0)
                        (void) iovirt_text_line(&t, line);
        }
        size_t failed = restore_all(rec, moves, &t);
        if (failed) {
                /* keep what could not go back, for a retry */
                size_t kept = 0;
                for (size_t i = 0; i < rec->n_functions; i++) {
                        IovirtFunctionRecord *f = &rec->functions[i];
                        if (function_back(f)) {
                                free(f->driver);
                                free(f->driver_override);
                                free(f->vfio_driver);
                        } else
                                rec->functions[kept++] = *f;
                }
                rec->n_functions = kept;
                (void) iovirt_record_save(dir, rec);
                (void) iovirt_text_add(&t, "\nRun 'iovirtctl release group:%d' again once that is fixed.", rec->group);
                free(*reason);
                *reason = iovirt_text_take(&t);
                return -EIO;
        }
        r = iovirt_record_remove(dir, rec->group);
        if (r < 0) {
                iovirt_text_clear(&t);
                return iovirt_set_reason(reason, r, "Every function is back, but %s/group-%d.json could not be "
                                         "removed: %s", dir, rec->group, strerror(-r));
        }
        iovirt_fault_point("release.commit");
        *notes = iovirt_text_take(&t);       /* functions that had gone */
        return 0;
}

/* A group whose record was damaged: what is on a VFIO driver (vfio-pci or
 * a variant) with an override naming it stays held, owner unknown, until an
 * operator releases it. */
static int rebuild_damaged(const IovirtHost *h, IovirtState *state, const char *dir, int group, const char *boot_id,
                           char ***notes, size_t *n_notes) {
        const IovirtGroup *g = iovirt_host_find_group(h, group);
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = calloc(1, sizeof(IovirtRecord));
        if (!rec || !(rec->consumer = strdup("")) || (boot_id && !(rec->boot_id = strdup(boot_id))))
                return -ENOMEM;
        rec->group = group;
        rec->phase = IOVIRT_PHASE_ASSIGNED;
        rec->since_usec = realtime_usec();
        for (size_t i = 0; g && i < g->n_members; i++) {
                const IovirtDevice *d = &h->devices[g->members[i]];
                if (!iovirt_variant_is_vfio(d->driver) || !streq_ptr(d->driver_override, d->driver))
                        continue;
                IovirtFunctionRecord *f = reallocarray(rec->functions, rec->n_functions + 1, sizeof(*f));
                if (!f)
                        return -ENOMEM;
                rec->functions = f;
                f = &rec->functions[rec->n_functions];
                *f = (IovirtFunctionRecord) { .original_known = false };
                memcpy(f->address, d->name, sizeof(f->address));
                if (!(f->vfio_driver = strdup(d->driver)))
                        return -ENOMEM;
                rec->n_functions++;
        }
        if (rec->n_functions == 0)
                return iovirt_strv_pushf(notes, n_notes, "Group %d: its record was damaged, and none of its functions is on "
                                                "a VFIO driver: nothing is held", group);
        int r = iovirt_record_save(dir, rec);
        if (r < 0)
                return r;
        r = iovirt_state_put(state, rec);
        if (r < 0)
                return r;
        TAKE_PTR(rec);
        return iovirt_strv_pushf(notes, n_notes, "Group %d: its record was damaged; its functions on VFIO drivers stay held for an "
                                        "unknown consumer until 'iovirtctl release group:%d'", group, group);
}

int iovirt_state_reconcile(const IovirtHost *h, IovirtState *state, const char *dir, const char *boot_id,
                           char ***notes, size_t *n_notes) {
        int r;
        for (size_t i = state->n_records; i-- > 0;) {
                IovirtRecord *rec = state->records[i];
                int group = rec->group;
                _cleanup_free_ char *consumer = strdup(rec->consumer[0] ? rec->consumer : "an unknown consumer");
                if (!consumer)
                        return -ENOMEM;

                if (boot_id && rec->boot_id && !streq_ptr(boot_id, rec->boot_id)) {
                        /* the kernel forgot driver_override; the VM is gone too */
                        r = iovirt_record_remove(dir, group);
                        if (r < 0)
                                return r;
                        iovirt_state_drop(state, group);
                        r = iovirt_strv_pushf(notes, n_notes, "Group %d: the host has restarted since it was assigned to %s; "
                                                     "that assignment ended with the old boot", group, consumer);
                } else if (rec->phase == IOVIRT_PHASE_ASSIGNED || rec->phase == IOVIRT_PHASE_LIBVIRT)
                        continue;     /* nothing was under way; libvirt's are libvirt's to move */
                else {
                        bool was_assigning = rec->phase == IOVIRT_PHASE_ASSIGNING;
                        _cleanup_(iovirt_text_clear) IovirtText t = {};
                        size_t failed = restore_all(rec, NULL, &t);
                        if (t.failed)
                                return -ENOMEM;
                        if (!failed) {
                                r = iovirt_record_remove(dir, group);
                                if (r < 0)
                                        return r;
                                iovirt_state_drop(state, group);
                                r = iovirt_strv_pushf(notes, n_notes, "Group %d: %s %s was cut short; it was %s%s%s", group,
                                             was_assigning ? "assigning it to" : "releasing it from", consumer,
                                             was_assigning ? "rolled back" : "finished", t.s ? ": " : "",
                                             t.s ? t.s : "");
                        } else {
                                rec->phase = IOVIRT_PHASE_RELEASING;
                                (void) iovirt_record_save(dir, rec);
                                r = iovirt_strv_pushf(notes, n_notes, "Group %d: putting it back after an interrupted %s "
                                                             "failed: %s", group, was_assigning ? "assign" : "release",
                                             strna(t.s));
                        }
                }
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < state->n_damaged; i++) {
                if (iovirt_state_find(state, state->damaged_groups[i]))
                        continue;
                r = rebuild_damaged(h, state, dir, state->damaged_groups[i], boot_id, notes, n_notes);
                if (r < 0)
                        return r;
        }
        return 0;
}

json_object *iovirt_assignments_to_json(const IovirtHost *h, const IovirtState *state) {
        json_object *o = json_object_new_object(), *list = json_object_new_array();
        for (size_t i = 0; i < state->n_records; i++) {
                const IovirtRecord *rec = state->records[i];
                json_object *a = json_object_new_object(), *fns = json_object_new_array(),
                            *drift = json_object_new_array();
                json_object_object_add(a, "group", json_object_new_int(rec->group));
                json_object_object_add(a, "consumer", json_object_new_string(rec->consumer));
                json_object_object_add(a, "phase", json_object_new_string(iovirt_phase_name(rec->phase)));
                json_object_object_add(a, "since_usec", json_object_new_uint64(rec->since_usec));
                for (size_t k = 0; k < rec->n_functions; k++) {
                        const IovirtFunctionRecord *f = &rec->functions[k];
                        IovirtAddress addr;
                        size_t d = iovirt_address_parse(f->address, &addr, NULL) >= 0
                                           ? iovirt_host_find_address(h, &addr) : IOVIRT_NONE;
                        const char *now = d != IOVIRT_NONE ? h->devices[d].driver : NULL;
                        json_object *fo = json_object_new_object();
                        json_object_object_add(fo, "address", json_object_new_string(f->address));
                        json_object_object_add(fo, "original_known", json_object_new_boolean(f->original_known));
                        json_object_object_add(fo, "original_driver", f->driver ? json_object_new_string(f->driver) : NULL);
                        json_object_object_add(fo, "original_driver_override",
                                               f->driver_override ? json_object_new_string(f->driver_override) : NULL);
                        json_object_object_add(fo, "driver", now ? json_object_new_string(now) : NULL);
                        json_object_object_add(fo, "vfio_driver", json_object_new_string(iovirt_function_vfio_driver(f)));
                        json_object_array_add(fns, fo);
                        if (rec->phase != IOVIRT_PHASE_ASSIGNED)
                                continue;
                        char text[256];
                        if (d == IOVIRT_NONE)
                                snprintf(text, sizeof(text), "%s has gone from the host", f->address);
                        else if (!streq_ptr(now, iovirt_function_vfio_driver(f)))
                                snprintf(text, sizeof(text), "%s is %s%s, not on %s: somebody rebound it",
                                         f->address, now ? "on " : "without a driver", now ? now : "",
                                         iovirt_function_vfio_driver(f));
                        else
                                continue;
                        json_object_array_add(drift, json_object_new_string(text));
                }
                json_object_object_add(a, "functions", fns);
                json_object_object_add(a, "drift", drift);
                /* who assigned it (null: before iovirt recorded it, so root's) and the process */
                const IovirtHolder *hd = &rec->holder;
                json_object_object_add(a, "uid", hd->known ? json_object_new_int64(hd->uid) : NULL);
                json_object_object_add(a, "pid", hd->known && hd->pid > 0 ? json_object_new_int(hd->pid) : NULL);
                json_object_array_add(list, a);
        }
        json_object_object_add(o, "assignments", list);
        return o;
}
