/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "iovirt-memlock.h"
#include "iovirt-names.h"
#include "iovirtctl.h"

/* assign, release and list-assignments: all through iovirtd, which alone
 * changes bindings (it serialises them, records them, and checks polkit). */

/* Calls the method of m, whose arguments are appended, and parses the JSON
 * answer.  Reports nothing: an error answer is left in *error, and an
 * answer that is not JSON is -EBADMSG. */
static int call(Ctl *c, sd_bus_message *m, json_object **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s;
        /* binding waits for drivers; give it more than the default 25 s */
        int r = sd_bus_call(c->bus, m, 120 * 1000 * 1000ULL, error, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0 || !(*ret = json_tokener_parse(s)))
                return -EBADMSG;
        return 0;
}

/* Reports what call() failed with (fields taken) */
static int call_failed(Ctl *c, const char *method, const sd_bus_error *error, int r, json_object *fields) {
        if (sd_bus_error_is_set(error))
                return ctl_fail_bus(c, error, r, fields);
        json_object_put(fields);
        if (r == -EBADMSG)
                return ctl_fail(c, CTL_ERROR_BAD_ANSWER, "iovirtd's answer to %s is not JSON", method);
        return ctl_fail(c, CTL_ERROR_FAILED, "the call to %s failed: %s", method, strerror(-r));
}

static int call_or_fail(Ctl *c, sd_bus_message *m, const char *method, json_object **ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = call(c, m, ret, &error);
        if (r < 0)
                call_failed(c, method, &error, r, NULL);
        sd_bus_error_free(&error);
        return r;
}

/* A call of METHOD; nothing appended yet */
static int new_call(Ctl *c, const char *method, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(c->bus, ret, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH,
                                              IOVIRT_MANAGER_INTERFACE, method);
}

static int interactive(Ctl *c) {
        return !c->no_ask_password && isatty(STDIN_FILENO);
}

static const char *json_str(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static void print_plan(Ctl *c, json_object *plan) {
        json_object *v;
        printf("Group %s to %s:\n", strna(json_str(plan, "group")), strna(json_str(plan, "consumer")));
        if (json_object_object_get_ex(plan, "functions", &v))
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *f = json_object_array_get_idx(v, i), *moves;
                        /* vfio-pci, or the variant driver the plan chose; none when it could not choose */
                        const char *to = json_str(f, "to") ? json_str(f, "to") : "(no VFIO driver)";
                        json_object_object_get_ex(f, "moves", &moves);
                        if (json_object_get_boolean(moves))
                                printf("  %-14s %s -> %s\n", json_str(f, "address"),
                                       json_str(f, "from") ? json_str(f, "from") : "(no driver)", to);
                        else
                                printf("  %-14s already on %s\n", json_str(f, "address"), to);
                }
        if (json_object_object_get_ex(plan, "staying", &v))
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        printf("  %-14s bridge, stays with the host\n", json_object_get_string(json_object_array_get_idx(v, i)));
        if (json_object_object_get_ex(plan, "node_owner", &v) && v)
                printf("  /dev/vfio/%-4s goes to uid %s (its process opens it without root)\n",
                       strna(json_str(plan, "group")), json_object_get_string(v));
        printf("Checks:\n");
        if (json_object_object_get_ex(plan, "checks", &v))
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *k = json_object_array_get_idx(v, i);
                        const char *st = json_str(k, "status"), *ov = json_str(k, "override");
                        char line[4096];
                        snprintf(line, sizeof(line), "%s%s%s%s", json_str(k, "message"),
                                 streq_ptr(st, "fail") && ov ? " (" : "", streq_ptr(st, "fail") && ov ? ov : "",
                                 streq_ptr(st, "fail") && ov ? " allows it)" : "");
                        printf("  %-8s %-14s ", st, json_str(k, "id"));
                        ctl_wrap_at(c, 26, 26, line);
                }
}

/* leaky, viommu, persistent and the key=value options */
#define N_ACCEPT 12

static void strv_free(char *(*v)[N_ACCEPT]) {
        for (size_t i = 0; i < N_ACCEPT; i++)
                free((*v)[i]);
}

/* "key=value" into accept[(*n)++], when value is given */
static int add_option(char **accept, size_t *n, const char *key, const char *value) {
        if (!value)
                return 0;
        if (asprintf(&accept[*n], "%s=%s", key, value) < 0) {
                accept[*n] = NULL;
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

/* PlanAssign, or Assign, of target to c->consumer with the accept options:
 * "leaky" (--accept-leaky), "driver=NAME" (--driver NAME), "memory=SIZE",
 * "viommu", "hard-limit=SIZE", "numa-policy=NAME", "numa-node=N", "cpus=LIST" */
static int assign_message(Ctl *c, const char *target, bool plan_only, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(strv_free) char *accept[N_ACCEPT] = {};
        size_t n = 0;
        int r;
        if (c->accept_leaky && !(accept[n++] = strdup("leaky")))
                return -ENOMEM;
        if (c->viommu && !(accept[n++] = strdup("viommu")))
                return -ENOMEM;
        if (c->persistent && !(accept[n++] = strdup("persistent")))
                return -ENOMEM;
        if ((r = add_option(accept, &n, "driver", c->vfio_driver)) < 0 ||
            (r = add_option(accept, &n, "memory", c->opt_memory)) < 0 ||
            (r = add_option(accept, &n, "hard-limit", c->opt_hard_limit)) < 0 ||
            (r = add_option(accept, &n, "numa-policy", c->opt_numa_policy)) < 0 ||
            (r = add_option(accept, &n, "numa-node", c->opt_numa_node)) < 0 ||
            (r = add_option(accept, &n, "cpus", c->opt_cpus)) < 0 ||
            (r = add_option(accept, &n, "user", c->opt_user)) < 0)
                return r;
        r = new_call(c, plan_only ? "PlanAssign" : "Assign", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", target, c->consumer);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, accept);
        if (r >= 0 && !plan_only)
                r = sd_bus_message_append(m, "b", interactive(c));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* What libvirt did with a domain's group: where it was attached, and whether its QEMU may lock enough now */
static void print_attached(Ctl *c, json_object *plan) {
        json_object *l, *where, *ml;
        char line[1024];
        if (!json_object_object_get_ex(plan, "libvirt", &l) || !json_object_object_get_ex(l, "attached", &where))
                return;
        bool live = false, config = false;
        for (size_t i = 0; i < json_object_array_length(where); i++) {
                const char *w = json_object_get_string(json_object_array_get_idx(where, i));
                live |= streq_ptr(w, "live");
                config |= streq_ptr(w, "config");
        }
        printf("Attached to domain %s: %s.\n", strna(json_str(l, "domain")),
               live && config ? "live, and to its persistent config"
               : live         ? "live (not to its persistent config: --persistent does that)"
                              : "to its persistent config (it is not running)");
        if (json_object_object_get_ex(l, "memlock", &ml)) {
                json_object *covers, *need, *have;
                json_object_object_get_ex(ml, "covers", &covers);
                json_object_object_get_ex(ml, "need", &need);
                json_object_object_get_ex(ml, "have", &have);
                char n[IOVIRT_SIZE_MAX], h[IOVIRT_SIZE_MAX];
                uint64_t nv = json_object_get_uint64(need), hv = json_object_get_uint64(have);
                snprintf(line, sizeof(line), json_object_get_boolean(covers)
                                 ? "RLIMIT_MEMLOCK of its QEMU: %s, covering the %s libvirt's rule asks for its devices"
                                 : "warning: RLIMIT_MEMLOCK of its QEMU is %s, less than the %s libvirt's rule asks for "
                                   "its devices: the guest may fail to map its memory for them ('virsh edit' a "
                                   "<memtune><hard_limit>, or restart the domain)",
                         hv == UINT64_MAX ? "unlimited" : iovirt_size_format(hv, h),
                         nv == UINT64_MAX ? "unlimited" : iovirt_size_format(nv, n));
                ctl_wrap_at(c, 0, 2, line);
        } else if (json_str(l, "memlock_unknown")) {
                snprintf(line, sizeof(line), "warning: whether its QEMU may lock enough memory cannot be told: %s",
                         json_str(l, "memlock_unknown"));
                ctl_wrap_at(c, 0, 2, line);
        }
}

/* One -device per function, for a command line: qemu ... $(iovirtctl assign ... --print-qemu-args) */
static void print_qemu_args(json_object *plan) {
        json_object *v;
        if (!json_object_object_get_ex(plan, "functions", &v))
                return;
        for (size_t i = 0; i < json_object_array_length(v); i++)
                printf("%s-device vfio-pci,host=%s", i ? " " : "",
                       strna(json_str(json_object_array_get_idx(v, i), "address")));
        printf("\n");
}

/* What iovirtd knows about a refused Assign, for the error object: the
 * failed checks of the same plan asked again read-only (PlanAssign), each
 * as the plan has it (id, status, reason, message, override, error).  NULL
 * when there are none: not a refusal of the plan (polkit, a failed bind),
 * or the host changed in between.  Reports nothing: the refusal is the
 * failure to report. */
static json_object *refusal_fields(Ctl *c, const char *target) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *plan = NULL, *failed = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        json_object *checks, *fields;

        int r = assign_message(c, target, true, &m);
        if (r >= 0)
                r = call(c, m, &plan, &error);
        sd_bus_error_free(&error);
        if (r < 0 || !json_object_object_get_ex(plan, "checks", &checks) ||
            !json_object_is_type(checks, json_type_array) || !(failed = json_object_new_array()))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(checks); i++) {
                json_object *k = json_object_array_get_idx(checks, i);
                if (streq_ptr(json_str(k, "status"), "fail"))
                        json_object_array_add(failed, json_object_get(k));
        }
        if (json_object_array_length(failed) == 0 || !(fields = json_object_new_object()))
                return NULL;
        json_object_object_add(fields, "checks", TAKE_PTR(failed));
        return fields;
}

int verb_assign(Ctl *c, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *plan = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *method = c->dry_run ? "PlanAssign" : "Assign";
        int r, status;

        /* the dispatcher checked the target and --to; a selector's indices
         * need its PF's total, which only the host knows */
        if (ctl_open_bus(c) < 0)
                return 1;
        if ((status = ctl_check_selector(c, argv[0])))
                return status;
        r = assign_message(c, argv[0], c->dry_run, &m);
        if (r < 0)
                return ctl_fail(c, CTL_ERROR_FAILED, "cannot build a call to %s: %s", method, strerror(-r));
        r = call(c, m, &plan, &error);
        if (r < 0) {
                /* a refusal: under --json, with the plan's failed checks */
                bool refusal = sd_bus_error_is_set(&error) && strncmp(error.name, "org.iovirt1.Error.", 18) == 0 &&
                               !sd_bus_error_has_name(&error, IOVIRT_ERROR_NO_SUCH_DEVICE);
                call_failed(c, method, &error, r, c->json && refusal ? refusal_fields(c, argv[0]) : NULL);
                sd_bus_error_free(&error);
                return 1;
        }
        json_object *allowed, *done;
        bool ok = json_object_object_get_ex(plan, "allowed", &allowed) && json_object_get_boolean(allowed);
        bool already = json_object_object_get_ex(plan, "done", &done) && json_object_get_boolean(done);
        if (c->json)
                ctl_print_json(plan);
        else if (c->print_qemu_args && ok)
                print_qemu_args(plan);
        else {
                print_plan(c, plan);
                if (c->dry_run)
                        printf("%s\n", !ok ? "Dry run: this would be refused; nothing was changed."
                                       : already ? "Dry run: this is done already; nothing would change."
                                                 : "Dry run: this would be done; nothing was changed.");
                else if (already)
                        printf("Group %s was assigned to %s already; nothing changed.\n",
                               strna(json_str(plan, "group")), strna(json_str(plan, "consumer")));
                else
                        printf("Assigned group %s to %s.\n", strna(json_str(plan, "group")),
                               strna(json_str(plan, "consumer")));
                print_attached(c, plan);
        }
        return ok ? 0 : 1;
}

int verb_release(Ctl *c, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *answer = NULL;
        int r;

        /* the dispatcher checked: a TARGET or --consumer, one of them */
        if (ctl_open_bus(c) < 0)
                return 1;
        if (argc == 1 && (r = ctl_check_selector(c, argv[0])))
                return r;
        const char *method = argc == 1 ? "Release" : "ReleaseConsumer";
        r = new_call(c, method, &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "sb", argc == 1 ? argv[0] : c->consumer, interactive(c));
        if (r < 0)
                return ctl_fail(c, CTL_ERROR_FAILED, "cannot build a call to %s: %s", method, strerror(-r));
        if (call_or_fail(c, m, method, &answer) < 0)
                return 1;
        if (c->json) {
                ctl_print_json(answer);
                return 0;
        }
        json_object *list, *v;
        json_object_object_get_ex(answer, "released", &list);
        if (argc == 0 && (!list || json_object_array_length(list) == 0))
                printf("Nothing is assigned to %s; nothing changed.\n", c->consumer);
        for (size_t i = 0; list && i < json_object_array_length(list); i++) {
                json_object *g = json_object_array_get_idx(list, i);
                const char *consumer = json_str(g, "consumer");
                printf("Released group %s from %s:", strna(json_str(g, "group")),
                       consumer && *consumer ? consumer : "an unknown consumer");
                if (json_object_object_get_ex(g, "functions", &v))
                        for (size_t k = 0; k < json_object_array_length(v); k++)
                                printf(" %s", json_object_get_string(json_object_array_get_idx(v, k)));
                printf("\n");
                if (json_object_object_get_ex(g, "notes", &v))
                        for (size_t k = 0; k < json_object_array_length(v); k++) {
                                printf("  note: ");
                                ctl_wrap_at(c, 8, 8, json_object_get_string(json_object_array_get_idx(v, k)));
                        }
        }
        return 0;
}

int verb_list_assignments(Ctl *c, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r;

        if (ctl_open_bus(c) < 0)
                return 1;
        r = new_call(c, "DescribeAssignments", &m);
        if (r < 0)
                return ctl_fail(c, CTL_ERROR_FAILED, "cannot build a call to DescribeAssignments: %s", strerror(-r));
        if (call_or_fail(c, m, "DescribeAssignments", &doc) < 0)
                return 1;
        if (c->json) {
                ctl_print_json(doc);
                return 0;
        }
        json_object *list, *v;
        json_object_object_get_ex(doc, "assignments", &list);
        if (!list || json_object_array_length(list) == 0) {
                printf("No assignments.\n");
                return 0;
        }
        printf("%-6s %-20s %-10s %s\n", "GROUP", "CONSUMER", "PHASE", "FUNCTIONS (original driver -> VFIO driver)");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *a = json_object_array_get_idx(list, i);
                const char *consumer = json_str(a, "consumer");
                printf("%-6s ", strna(json_str(a, "group")));
                ctl_cell(consumer && *consumer ? consumer : "(unknown)", 20, true);
                printf(" %-10s", strna(json_str(a, "phase")));
                if (json_object_object_get_ex(a, "functions", &v))
                        for (size_t k = 0; k < json_object_array_length(v); k++) {
                                json_object *f = json_object_array_get_idx(v, k), *known;
                                json_object_object_get_ex(f, "original_known", &known);
                                printf(" %s (%s -> %s)", json_str(f, "address"),
                                       !json_object_get_boolean(known) ? "unknown"
                                       : json_str(f, "original_driver") ? json_str(f, "original_driver") : "none",
                                       strna(json_str(f, "vfio_driver")));
                        }
                printf("\n");
                if (json_object_object_get_ex(a, "drift", &v))
                        for (size_t k = 0; k < json_object_array_length(v); k++) {
                                printf("       drift: ");
                                ctl_wrap_at(c, 14, 14, json_object_get_string(json_object_array_get_idx(v, k)));
                        }
        }
        return 0;
}
