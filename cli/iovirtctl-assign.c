/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "iovirt-names.h"
#include "iovirtctl.h"

/* assign, release and list-assignments: all through iovirtd, which alone
 * changes bindings (it serialises them, records them, and checks polkit). */

static int open_bus(Ctl *c, const char *verb) {
        if (c->direct) {
                fprintf(stderr, "iovirtctl: %s asks iovirtd; it cannot be done --direct\n", verb);
                return -EINVAL;
        }
        if (c->bus)
                return 0;
        int r = sd_bus_open_system(&c->bus);
        if (r < 0)
                fprintf(stderr, "iovirtctl: cannot reach the system bus (%s); %s needs iovirtd\n", strerror(-r), verb);
        return r;
}

/* Calls METHOD with the arguments already appended to m; returns the parsed JSON answer. */
static int call(Ctl *c, sd_bus_message *m, const char *method, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *s;
        /* binding waits for drivers; give it more than the default 25 s */
        int r = sd_bus_call(c->bus, m, 120 * 1000 * 1000ULL, &error, &reply);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        fprintf(stderr, "iovirtctl: iovirtd is not running; start it with 'systemctl start iovirtd'\n");
                else
                        fprintf(stderr, "iovirtctl: %s\n", error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0 || !(*ret = json_tokener_parse(s))) {
                fprintf(stderr, "iovirtctl: iovirtd's answer to %s is not JSON\n", method);
                return -EBADMSG;
        }
        return 0;
}

static int new_call(Ctl *c, const char *method, sd_bus_message **ret) {
        int r = sd_bus_message_new_method_call(c->bus, ret, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH,
                                               IOVIRT_MANAGER_INTERFACE, method);
        if (r < 0)
                fprintf(stderr, "iovirtctl: cannot build a call to %s: %s\n", method, strerror(-r));
        return r;
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
                        json_object_object_get_ex(f, "moves", &moves);
                        if (json_object_get_boolean(moves))
                                printf("  %-14s %s -> vfio-pci\n", json_str(f, "address"),
                                       json_str(f, "from") ? json_str(f, "from") : "(no driver)");
                        else
                                printf("  %-14s already on vfio-pci\n", json_str(f, "address"));
                }
        if (json_object_object_get_ex(plan, "staying", &v))
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        printf("  %-14s bridge, stays with the host\n", json_object_get_string(json_object_array_get_idx(v, i)));
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

int verb_assign(Ctl *c, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *plan = NULL;
        int r;

        if (!c->consumer) {
                fprintf(stderr, "iovirtctl: assign needs --to CONSUMER (the VM: its libvirt domain name or id)\n");
                return EXIT_USAGE;
        }
        if (open_bus(c, "assign") < 0)
                return c->direct ? EXIT_USAGE : 1;
        r = new_call(c, c->dry_run ? "PlanAssign" : "Assign", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", argv[0], c->consumer);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, c->accept_leaky ? (char *[]) { (char *) "leaky", NULL }
                                                                  : (char *[]) { NULL });
        if (r >= 0 && !c->dry_run)
                r = sd_bus_message_append(m, "b", interactive(c));
        if (r < 0)
                return 1;
        r = call(c, m, c->dry_run ? "PlanAssign" : "Assign", &plan);
        if (r < 0)
                return 1;
        json_object *allowed, *done;
        bool ok = json_object_object_get_ex(plan, "allowed", &allowed) && json_object_get_boolean(allowed);
        bool already = json_object_object_get_ex(plan, "done", &done) && json_object_get_boolean(done);
        if (c->json)
                ctl_print_json(plan);
        else {
                print_plan(c, plan);
                if (c->dry_run)
                        printf("%s\n", !ok ? "Dry run: this would be refused; nothing was changed."
                                       : already ? "Dry run: this is done already; nothing would change."
                                                 : "Dry run: this would be done; nothing was changed.");
                else if (already)
                        printf("Group %s was assigned to %s already; nothing changed.\n",
                               strna(json_str(plan, "group")), c->consumer);
                else
                        printf("Assigned group %s to %s.\n", strna(json_str(plan, "group")), c->consumer);
        }
        return ok ? 0 : 1;
}

int verb_release(Ctl *c, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *answer = NULL;
        int r;

        if ((argc == 1) == (c->consumer != NULL)) {
                fprintf(stderr, "iovirtctl: release takes a TARGET or --consumer CONSUMER (one of them)\n");
                return EXIT_USAGE;
        }
        if (open_bus(c, "release") < 0)
                return c->direct ? EXIT_USAGE : 1;
        r = new_call(c, argc == 1 ? "Release" : "ReleaseConsumer", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "sb", argc == 1 ? argv[0] : c->consumer, interactive(c));
        if (r < 0)
                return 1;
        r = call(c, m, argc == 1 ? "Release" : "ReleaseConsumer", &answer);
        if (r < 0)
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

        if (open_bus(c, "list-assignments") < 0)
                return c->direct ? EXIT_USAGE : 1;
        r = new_call(c, "DescribeAssignments", &m);
        if (r < 0 || call(c, m, "DescribeAssignments", &doc) < 0)
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
        printf("%-6s %-20s %-10s %s\n", "GROUP", "CONSUMER", "PHASE", "FUNCTIONS (original driver)");
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
                                printf(" %s (%s)", json_str(f, "address"),
                                       !json_object_get_boolean(known) ? "unknown"
                                       : json_str(f, "original_driver") ? json_str(f, "original_driver") : "none");
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
