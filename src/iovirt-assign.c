/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <time.h>

#include "iovirt-assign.h"
#include "iovirt-bind.h"
#include "iovirt-fault.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"

/* ---- small string building ---- */

typedef struct Text {
        char *s;
        size_t len;
} Text;

static void text_add(Text *t, const char *fmt, ...) _printf_(2, 3);
static void text_add(Text *t, const char *fmt, ...) {
        char *piece;
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&piece, fmt, ap);
        va_end(ap);
        if (l < 0)
                return;
        char *n = realloc(t->s, t->len + (size_t) l + 1);
        if (n) {
                memcpy(n + t->len, piece, (size_t) l + 1);
                t->s = n;
                t->len += (size_t) l;
        }
        free(piece);
}

static void text_line(Text *t, const char *line) {
        if (line)
                text_add(t, "%s%s", t->len ? "\n" : "", line);
}

/* ---- plans ---- */

static const char *const status_names[] = {
        [IOVIRT_PLAN_PASS] = "pass",
        [IOVIRT_PLAN_WARN] = "warn",
        [IOVIRT_PLAN_ACCEPTED] = "accepted",
        [IOVIRT_PLAN_FAIL] = "fail",
};

const char *iovirt_plan_status_name(IovirtPlanStatus s) {
        return s <= IOVIRT_PLAN_FAIL ? status_names[s] : "invalid";
}

IovirtPlan *iovirt_plan_free(IovirtPlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_steps; i++)
                free(p->steps[i].from);
        for (size_t i = 0; i < p->n_staying; i++)
                free(p->staying[i]);
        for (size_t i = 0; i < p->n_checks; i++)
                free(p->checks[i].message);
        free(p->steps);
        free(p->staying);
        free(p->checks);
        free(p->consumer);
        free(p);
        return NULL;
}

int iovirt_target_resolve(const IovirtHost *h, const char *target, int *group, size_t *device, char **reason) {
        if (strncmp(target, "group:", 6) == 0) {
                int n;
                if (iovirt_parse_int(target + 6, &n) < 0 || n < 0 || strchr(target + 6, '\n')) {
                        *reason = strdup("A group is written group:N, with N a group number (iovirtctl list-groups)");
                        return -EINVAL;
                }
                if (!iovirt_host_find_group(h, n)) {
                        if (asprintf(reason, "There is no IOMMU group %d on this host%s", n,
                                     h->n_groups ? "; iovirtctl list-groups shows them" : " (the IOMMU is off)") < 0)
                                *reason = NULL;
                        return -ENODEV;
                }
                *group = n;
                *device = IOVIRT_NONE;
                return 0;
        }
        size_t i;
        int r = iovirt_host_lookup(h, target, &i, reason);
        if (r < 0)
                return r;
        *group = h->devices[i].iommu_group;
        *device = i;
        return 0;
}

static IovirtPlanCheck *add_check(IovirtPlan *p, size_t *allocated, const char *id, IovirtPlanStatus status,
                                  const char *error, const char *override, const char *fmt, ...) _printf_(7, 8);
static IovirtPlanCheck *add_check(IovirtPlan *p, size_t *allocated, const char *id, IovirtPlanStatus status,
                                  const char *error, const char *override, const char *fmt, ...) {
        IovirtPlanCheck *c = GROW(p->checks, p->n_checks, *allocated);
        if (!c)
                return NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&c->message, fmt, ap) < 0)
                c->message = NULL;
        va_end(ap);
        c->id = id;
        c->status = status;
        c->error = error;
        c->override = override;
        return c;
}

static void join_names(Text *t, const IovirtHost *h, const size_t *idx, size_t n) {
        for (size_t i = 0; i < n; i++)
                text_add(t, "%s%s", i ? ", " : "", h->devices[idx[i]].name);
}

int iovirt_plan_assign(const IovirtHost *h, const IovirtVerdicts *v, const IovirtUsage *usage,
                       const IovirtState *state, int group, size_t device, const char *consumer, unsigned accept,
                       IovirtPlan **ret) {
        _cleanup_(iovirt_plan_freep) IovirtPlan *p = calloc(1, sizeof(IovirtPlan));
        size_t checks_allocated = 0, steps_allocated = 0;

        if (!p || !(p->consumer = strdup(consumer)))
                return -ENOMEM;
        p->group = group;
        const char *what = device != IOVIRT_NONE ? h->devices[device].name : NULL;

        /* the IOMMU, and a group to speak of */
        if (h->n_groups == 0) {
                add_check(p, &checks_allocated, "iommu", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_NO_IOMMU, NULL,
                          "The IOMMU is off, so no device can be given to a VM safely; 'iovirtctl check' says how "
                          "to turn it on");
                goto done;
        }
        if (group < 0) {
                add_check(p, &checks_allocated, "iommu", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_NO_IOMMU, NULL,
                          "%s is in no IOMMU group (the IOMMU does not cover it), so it cannot be assigned",
                          strna(what));
                goto done;
        }
        const IovirtGroup *g = iovirt_host_find_group(h, group);
        if (!g) {
                add_check(p, &checks_allocated, "iommu", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_NO_SUCH_DEVICE, NULL,
                          "There is no IOMMU group %d on this host", group);
                goto done;
        }
        const IovirtGroupVerdict *gv = &v->groups[g - h->groups];
        add_check(p, &checks_allocated, "iommu", IOVIRT_PLAN_PASS, NULL, NULL, "The IOMMU is on; %s%sis in group %d",
                  what ? what : "the target", what ? " " : " ", group);

        /* ownership */
        const IovirtRecord *rec = iovirt_state_find(state, group);
        if (rec && rec->phase == IOVIRT_PHASE_RELEASING)
                add_check(p, &checks_allocated, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_BUSY, NULL,
                          "Group %d is still being given back by %s: a function did not return to its driver; "
                          "'iovirtctl release group:%d' finishes it", group,
                          rec->consumer[0] ? rec->consumer : "an unknown consumer", group);
        else if (rec && rec->phase == IOVIRT_PHASE_ASSIGNING)
                add_check(p, &checks_allocated, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_BUSY, NULL,
                          "Group %d is being assigned to %s; try again when that has finished", group,
                          rec->consumer[0] ? rec->consumer : "an unknown consumer");
        else if (rec)
                add_check(p, &checks_allocated, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_IN_USE, NULL,
                          "Group %d is already assigned to %s%s; release it first (iovirtctl release group:%d)",
                          group, rec->consumer[0] ? rec->consumer : "an unknown consumer",
                          rec->consumer[0] ? "" : " (its state record was damaged)", group);
        else
                add_check(p, &checks_allocated, "ownership", IOVIRT_PLAN_PASS, NULL, NULL,
                          "Group %d is not assigned to anyone", group);

        /* the whole group moves */
        if (gv->n_endpoints == 0)
                add_check(p, &checks_allocated, "whole-group", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_INVALID_ARGUMENT, NULL,
                          "Group %d holds only bridges; there is nothing a VM could use", group);
        else {
                Text t = {};
                join_names(&t, h, gv->endpoints, gv->n_endpoints);
                if (gv->n_bridges) {
                        text_add(&t, "; the bridge%s ", gv->n_bridges > 1 ? "s" : "");
                        join_names(&t, h, gv->bridges, gv->n_bridges);
                        text_add(&t, " stay%s with the host", gv->n_bridges > 1 ? "" : "s");
                }
                add_check(p, &checks_allocated, "whole-group", IOVIRT_PLAN_PASS, NULL, NULL,
                          "%zu function%s of group %d move%s together: %s", gv->n_endpoints,
                          gv->n_endpoints > 1 ? "s" : "", group, gv->n_endpoints > 1 ? "" : "s", strna(t.s));
                free(t.s);
        }
        for (size_t i = 0; i < gv->n_endpoints; i++) {
                const IovirtDevice *d = &h->devices[gv->endpoints[i]];
                IovirtPlanStep *s = GROW(p->steps, p->n_steps, steps_allocated);
                if (!s)
                        return -ENOMEM;
                memcpy(s->address, d->name, sizeof(s->address));
                s->from = d->driver ? strdup(d->driver) : NULL;
                s->moves = !streq_ptr(d->driver, DRIVER_VFIO_PCI);
        }
        if (gv->n_bridges && !(p->staying = calloc(gv->n_bridges, sizeof(char *))))
                return -ENOMEM;
        for (size_t i = 0; i < gv->n_bridges; i++)
                if (!(p->staying[p->n_staying++] = strdup(h->devices[gv->bridges[i]].name)))
                        return -ENOMEM;

        /* isolation */
        switch (gv->isolation) {
        case IOVIRT_ISOLATED:
                add_check(p, &checks_allocated, "isolation", IOVIRT_PLAN_PASS, NULL, NULL,
                          "Group %d is isolated: nothing outside it can reach it by DMA", group);
                break;
        case IOVIRT_SHARED:
                add_check(p, &checks_allocated, "isolation", IOVIRT_PLAN_PASS, NULL, NULL,
                          "Group %d is shared by several functions, which go to %s together", group, consumer);
                break;
        case IOVIRT_LEAKY: {
                Text t = {};
                join_names(&t, h, gv->peers, gv->n_peers);
                for (size_t i = 0; i < gv->n_causes; i++) {
                        char cause[256];
                        iovirt_cause_text(h, &gv->causes[i], cause, sizeof(cause));
                        text_add(&t, "%s%s", i ? "; " : " (", cause);
                }
                text_add(&t, "%s", gv->n_causes ? ")" : "");
                bool ok = accept & IOVIRT_ACCEPT_LEAKY;
                add_check(p, &checks_allocated, "isolation", ok ? IOVIRT_PLAN_ACCEPTED : IOVIRT_PLAN_FAIL,
                          IOVIRT_ERROR_NOT_ISOLATED, "--accept-leaky",
                          "Group %d is leaky: %s outside it can reach it by peer-to-peer DMA%s: %s", group,
                          gv->n_peers == 1 ? "a device" : "devices", ok ? ", accepted by the request" : "",
                          strna(t.s));
                free(t.s);
                break;
        }
        default:
                add_check(p, &checks_allocated, "isolation", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_NOT_ISOLATED, NULL,
                          "The isolation of group %d is unknown: %s could not be read (iovirtctl show %s)", group,
                          gv->unknown_device != IOVIRT_NONE ? h->devices[gv->unknown_device].name : "config space",
                          gv->unknown_device != IOVIRT_NONE ? h->devices[gv->unknown_device].name : "");
        }

        /* the host's own devices */
        {
                Text t = {};
                for (size_t i = 0; i < gv->n_endpoints; i++)
                        for (size_t u = 0; u < usage->n_uses; u++)
                                if (usage->uses[u].device == gv->endpoints[i])
                                        text_add(&t, "%s%s %s", t.len ? "; " : "", h->devices[gv->endpoints[i]].name,
                                                 usage->uses[u].what);
                if (t.s)
                        add_check(p, &checks_allocated, "host-critical", IOVIRT_PLAN_FAIL, IOVIRT_ERROR_HOST_CRITICAL,
                                  NULL, "The host needs group %d: %s. Stop using it first (unmount, swapoff, "
                                        "'ip link set dev IFACE down', another console)", group, t.s);
                else
                        add_check(p, &checks_allocated, "host-critical", IOVIRT_PLAN_PASS, NULL, NULL,
                                  "No mount, swap, array, active network interface or console uses group %d", group);
                free(t.s);
        }

        /* reset: not a refusal, but the next VM would see the last one's state */
        {
                Text t = {};
                for (size_t i = 0; i < gv->n_endpoints; i++) {
                        const IovirtDevice *d = &h->devices[gv->endpoints[i]];
                        if (d->reset_methods && !d->reset_methods[0])
                                text_add(&t, "%s%s", t.len ? ", " : "", d->name);
                }
                if (t.s)
                        add_check(p, &checks_allocated, "reset", IOVIRT_PLAN_WARN, NULL, NULL,
                                  "%s cannot be reset: a VM that gets %s after another sees what the last one left",
                                  t.s, strchr(t.s, ',') ? "them" : "it");
                free(t.s);
        }

done:
        for (size_t i = 0; i < p->n_checks; i++)
                if (!p->checks[i].message)
                        return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

const IovirtPlanCheck *iovirt_plan_refusal(const IovirtPlan *p) {
        for (size_t i = 0; i < p->n_checks; i++)
                if (p->checks[i].status == IOVIRT_PLAN_FAIL)
                        return &p->checks[i];
        return NULL;
}

char *iovirt_plan_refusal_text(const IovirtPlan *p) {
        Text t = {};
        for (size_t i = 0; i < p->n_checks; i++)
                if (p->checks[i].status == IOVIRT_PLAN_FAIL) {
                        text_line(&t, p->checks[i].message);
                        if (p->checks[i].override)
                                text_add(&t, " (%s allows it)", p->checks[i].override);
                }
        return t.s;
}

json_object *iovirt_plan_to_json(const IovirtPlan *p) {
        json_object *o = json_object_new_object(), *steps = json_object_new_array(),
                    *staying = json_object_new_array(), *checks = json_object_new_array();
        json_object_object_add(o, "consumer", json_object_new_string(p->consumer));
        json_object_object_add(o, "group", p->group >= 0 ? json_object_new_int(p->group) : NULL);
        for (size_t i = 0; i < p->n_steps; i++) {
                json_object *s = json_object_new_object();
                json_object_object_add(s, "address", json_object_new_string(p->steps[i].address));
                json_object_object_add(s, "from", p->steps[i].from ? json_object_new_string(p->steps[i].from) : NULL);
                json_object_object_add(s, "to", json_object_new_string(DRIVER_VFIO_PCI));
                json_object_object_add(s, "moves", json_object_new_boolean(p->steps[i].moves));
                json_object_array_add(steps, s);
        }
        for (size_t i = 0; i < p->n_staying; i++)
                json_object_array_add(staying, json_object_new_string(p->staying[i]));
        for (size_t i = 0; i < p->n_checks; i++) {
                json_object *c = json_object_new_object();
                json_object_object_add(c, "id", json_object_new_string(p->checks[i].id));
                json_object_object_add(c, "status", json_object_new_string(iovirt_plan_status_name(p->checks[i].status)));
                json_object_object_add(c, "message", json_object_new_string(p->checks[i].message));
                json_object_object_add(c, "error", p->checks[i].status == IOVIRT_PLAN_FAIL && p->checks[i].error
                                                           ? json_object_new_string(p->checks[i].error) : NULL);
                json_object_object_add(c, "override", p->checks[i].override ? json_object_new_string(p->checks[i].override) : NULL);
                json_object_array_add(checks, c);
        }
        json_object_object_add(o, "functions", steps);
        json_object_object_add(o, "staying", staying);
        json_object_object_add(o, "checks", checks);
        json_object_object_add(o, "allowed", json_object_new_boolean(!iovirt_plan_refusal(p)));
        return o;
}

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
static size_t restore_all(IovirtRecord *rec, IovirtMoves *moves, Text *t) {
        size_t failed = 0;
        for (size_t i = rec->n_functions; i-- > 0;) {
                _cleanup_free_ char *why = NULL;
                const IovirtFunctionRecord *f = &rec->functions[i];
                uint64_t start = monotonic_usec();
                int r = iovirt_bind_restore(f, IOVIRT_BIND_TIMEOUT_USEC, &why);
                if (r >= 0)
                        note_move(moves, f->address, f->original_known ? f->driver : NULL, start);
                iovirt_fault_point("release.restored");
                if (r == -ENODEV)
                        text_line(t, why);
                else if (r < 0) {
                        failed++;
                        text_line(t, why);
                }
        }
        return failed;
}

int iovirt_assign_execute(const IovirtPlan *p, IovirtState *state, const char *dir, IovirtMoves *moves,
                          char **reason) {
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = calloc(1, sizeof(IovirtRecord));
        int r;

        if (iovirt_plan_refusal(p))
                return -EPERM;
        if (!rec || !(rec->consumer = strdup(p->consumer)) || !(rec->functions = calloc(p->n_steps, sizeof(IovirtFunctionRecord))))
                return -ENOMEM;
        r = iovirt_bind_load_vfio(reason);
        if (r < 0)
                return r;
        r = iovirt_boot_id(&rec->boot_id);
        if (r < 0 && r != -ENOENT)
                return r;
        rec->group = p->group;
        rec->phase = IOVIRT_PHASE_ASSIGNING;
        rec->since_usec = realtime_usec();
        /* the originals, as the kernel has them now: the model may lag */
        for (size_t i = 0; i < p->n_steps; i++) {
                IovirtFunctionRecord *f = &rec->functions[rec->n_functions++];
                memcpy(f->address, p->steps[i].address, sizeof(f->address));
                f->original_known = true;
                r = iovirt_bind_read(f->address, &f->driver, &f->driver_override);
                if (r < 0) {
                        if (asprintf(reason, "%s has gone away; nothing was changed", f->address) < 0)
                                *reason = NULL;
                        return r;
                }
        }

        r = iovirt_record_save(dir, rec);
        if (r < 0) {
                if (asprintf(reason, "Could not write the intent record to %s: %s; nothing was changed", dir,
                             strerror(-r)) < 0)
                        *reason = NULL;
                return r;
        }
        IovirtRecord *owned = TAKE_PTR(rec);
        r = iovirt_state_put(state, owned);
        if (r < 0) {
                iovirt_record_free(owned);
                (void) iovirt_record_remove(dir, p->group);
                return r;
        }
        iovirt_fault_point("assign.intent");

        _cleanup_free_ char *why = NULL;
        for (size_t i = 0; r >= 0 && i < owned->n_functions; i++) {
                uint64_t start = monotonic_usec();
                r = iovirt_bind_to_vfio(owned->functions[i].address, IOVIRT_BIND_TIMEOUT_USEC, &why);
                if (r >= 0)
                        note_move(moves, owned->functions[i].address, DRIVER_VFIO_PCI, start);
        }
        if (r >= 0) {
                r = iovirt_bind_wait_node(p->group, true, IOVIRT_BIND_TIMEOUT_USEC);
                if (r < 0 && asprintf(&why, "vfio-pci took every function but " DEV_VFIO "/%d did not appear",
                                      p->group) < 0)
                        why = NULL;
        }
        iovirt_fault_point("assign.node");
        if (r >= 0) {
                owned->phase = IOVIRT_PHASE_ASSIGNED;
                r = iovirt_record_save(dir, owned);
                if (r < 0 && asprintf(&why, "Could not record the assignment in %s: %s", dir, strerror(-r)) < 0)
                        why = NULL;
        }
        if (r >= 0) {
                iovirt_fault_point("assign.commit");
                return 0;
        }

        /* roll back: every function to where it was */
        Text t = {};
        text_line(&t, why ? why : "Binding to vfio-pci failed");
        size_t failed = restore_all(owned, moves, &t);
        iovirt_fault_point("assign.rollback");
        if (failed)
                text_add(&t, "\n%zu function%s could not be put back; the record stays in %s for a retry "
                             "(iovirtctl release group:%d)", failed, failed > 1 ? "s" : "", dir, p->group);
        else {
                text_add(&t, "\nEvery function was put back as it was.");
                (void) iovirt_record_remove(dir, p->group);
                iovirt_state_drop(state, p->group);
        }
        if (failed) {
                owned->phase = IOVIRT_PHASE_RELEASING;
                (void) iovirt_record_save(dir, owned);
        }
        free(*reason);
        *reason = t.s;
        return r;
}

int iovirt_release_execute(const IovirtHost *h, IovirtState *state, const char *dir, int group, IovirtMoves *moves,
                           char **notes, char **reason) {
        IovirtRecord *rec = iovirt_state_find(state, group);
        int r;

        if (!rec)
                return -ENOENT;
        rec->phase = IOVIRT_PHASE_RELEASING;
        r = iovirt_record_save(dir, rec);
        if (r < 0) {
                if (asprintf(reason, "Could not write the intent record to %s: %s; nothing was changed", dir,
                             strerror(-r)) < 0)
                        *reason = NULL;
                return r;
        }
        iovirt_fault_point("release.intent");

        Text t = {}, n = {};
        size_t failed = restore_all(rec, moves, &t);
        for (size_t i = 0; i < rec->n_functions; i++) {
                IovirtAddress a;
                size_t d;
                if (iovirt_address_parse(rec->functions[i].address, &a, NULL) < 0 ||
                    (d = iovirt_host_find_address(h, &a)) == IOVIRT_NONE)
                        continue;
                if (h->devices[d].reset_methods && !h->devices[d].reset_methods[0])
                        text_add(&n, "%s%s has no reset method: the host driver gets it in the state the VM left",
                                 n.len ? "\n" : "", rec->functions[i].address);
        }
        if (t.s && !failed)
                text_line(&n, t.s);     /* functions that had gone */
        if (failed) {
                /* keep what could not go back, for a retry */
                size_t kept = 0;
                for (size_t i = 0; i < rec->n_functions; i++) {
                        _cleanup_free_ char *drv = NULL, *over = NULL;
                        IovirtFunctionRecord *f = &rec->functions[i];
                        bool back = iovirt_bind_read(f->address, &drv, &over) == -ENODEV ||
                                    (f->original_known && streq_ptr(drv, f->driver) && streq_ptr(over, f->driver_override));
                        if (back) {
                                free(f->driver);
                                free(f->driver_override);
                        } else
                                rec->functions[kept++] = *f;
                }
                rec->n_functions = kept;
                (void) iovirt_record_save(dir, rec);
                text_add(&t, "\nRun 'iovirtctl release group:%d' again once that is fixed.", group);
                free(*reason);
                *reason = t.s;
                free(n.s);
                return -EIO;
        }
        free(t.s);
        r = iovirt_record_remove(dir, group);
        if (r < 0) {
                free(n.s);
                if (asprintf(reason, "Every function is back, but %s/group-%d.json could not be removed: %s", dir,
                             group, strerror(-r)) < 0)
                        *reason = NULL;
                return r;
        }
        iovirt_state_drop(state, group);
        iovirt_fault_point("release.commit");
        *notes = n.s;
        return 0;
}

/* A group whose record was damaged: what is on vfio-pci with our override
 * stays held, owner unknown, until an operator releases it. */
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
                if (!streq_ptr(d->driver, DRIVER_VFIO_PCI) || !streq_ptr(d->driver_override, DRIVER_VFIO_PCI))
                        continue;
                IovirtFunctionRecord *f = reallocarray(rec->functions, rec->n_functions + 1, sizeof(*f));
                if (!f)
                        return -ENOMEM;
                rec->functions = f;
                f = &rec->functions[rec->n_functions++];
                *f = (IovirtFunctionRecord) { .original_known = false };
                memcpy(f->address, d->name, sizeof(f->address));
        }
        if (rec->n_functions == 0)
                return iovirt_strv_pushf(notes, n_notes, "Group %d: its record was damaged, and none of its functions is on "
                                                "vfio-pci: nothing is held", group);
        int r = iovirt_record_save(dir, rec);
        if (r < 0)
                return r;
        r = iovirt_state_put(state, rec);
        if (r < 0)
                return r;
        TAKE_PTR(rec);
        return iovirt_strv_pushf(notes, n_notes, "Group %d: its record was damaged; its functions on vfio-pci stay held for an "
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
                } else if (rec->phase == IOVIRT_PHASE_ASSIGNED)
                        continue;
                else {
                        bool was_assigning = rec->phase == IOVIRT_PHASE_ASSIGNING;
                        Text t = {};
                        size_t failed = restore_all(rec, NULL, &t);
                        if (!failed) {
                                r = iovirt_record_remove(dir, group);
                                if (r < 0) {
                                        free(t.s);
                                        return r;
                                }
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
                        free(t.s);
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
                        json_object_array_add(fns, fo);
                        if (rec->phase != IOVIRT_PHASE_ASSIGNED)
                                continue;
                        char text[256];
                        if (d == IOVIRT_NONE)
                                snprintf(text, sizeof(text), "%s has gone from the host", f->address);
                        else if (!streq_ptr(now, DRIVER_VFIO_PCI))
                                snprintf(text, sizeof(text), "%s is %s%s, not on vfio-pci: somebody rebound it",
                                         f->address, now ? "on " : "without a driver", now ? now : "");
                        else
                                continue;
                        json_object_array_add(drift, json_object_new_string(text));
                }
                json_object_object_add(a, "functions", fns);
                json_object_object_add(a, "drift", drift);
                json_object_array_add(list, a);
        }
        json_object_object_add(o, "assignments", list);
        return o;
}
