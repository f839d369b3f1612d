/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "iovirt-memlock.h"
#include "iovirtctl.h"

/* policy and status: what iovirtd enforces, and what consumers hold of the
 * pinned-memory budget.  Both only format iovirtd's documents. */

static json_object *member(json_object *o, const char *key) {
        json_object *v;
        return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A setting's value as the policy file would write it */
static void format_value(json_object *v, char *buf, size_t size) {
        char s[IOVIRT_SIZE_MAX];
        if (!v) {
                snprintf(buf, size, "(unset)");
                return;
        }
        switch (json_object_get_type(v)) {
        case json_type_boolean:
                snprintf(buf, size, "%s", json_object_get_boolean(v) ? "yes" : "no");
                return;
        case json_type_array: {
                size_t l = 0;
                buf[0] = '\0';
                for (size_t i = 0; i < json_object_array_length(v) && l < size; i++) {
                        json_object *e = json_object_array_get_idx(v, i), *sel = member(e, "selector");
                        l += (size_t) snprintf(buf + l, size - l, "%s%s", i ? " " : "",
                                               json_object_get_string(sel ? sel : e));
                }
                return;
        }
        case json_type_object:
                if (member(v, "percent"))
                        snprintf(buf, size, "%g%%", json_object_get_double(member(v, "percent")));
                else
                        snprintf(buf, size, "%s", iovirt_size_format(json_object_get_uint64(member(v, "bytes")), s));
                return;
        default:
                snprintf(buf, size, "%s", json_object_get_string(v));
        }
}

static void print_setting(const char *key, json_object *setting) {
        char value[1024], line[1200];
        json_object *v = member(setting, "value");
        /* sizes as a person writes them */
        if (v && json_object_is_type(v, json_type_int) && (streq_ptr(key, "Memory") || streq_ptr(key, "MemlockHardLimit")))
                iovirt_size_format(json_object_get_uint64(v), value);
        else
                format_value(v, value, sizeof(value));
        snprintf(line, sizeof(line), "%s=%s", key, value);
        printf("  %-44s %s\n", line, json_object_get_string(member(setting, "origin")));
}

static void print_section(json_object *doc, const char *section, const char *title, const char *const *keys,
                          const char *const *names) {
        json_object *o = member(doc, section);
        printf("[%s]\n", title);
        for (size_t i = 0; keys[i]; i++)
                print_setting(names[i], member(o, keys[i]));
}

/* iovirtd's document for method: 0 with *ret to format, or the exit
 * status once it is printed (--json) or a failure is reported */
static int describe(Ctl *c, const char *method, json_object **ret) {
        _cleanup_(json_object_putp) json_object *doc = NULL;
        _cleanup_free_ char *why = NULL;
        if (ctl_open_bus(c) < 0)
                return 1;
        int r = ctl_call_json(c, method, NULL, &doc, &why);
        if (r == -ENOTCONN)
                return ctl_fail(c, CTL_ERROR_NO_DAEMON, "iovirtd is not running (%s); start it with 'systemctl "
                                                        "start iovirtd'", strna(why));
        if (r < 0)
                return 1;
        if (c->json) {
                ctl_print_json(doc);
                return -1;
        }
        *ret = TAKE_PTR(doc);
        return 0;
}

int verb_policy(Ctl *c, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int status = describe(c, "DescribePolicy", &doc);
        if (status)
                return status < 0 ? 0 : status;
        json_object *v = member(doc, "error");
        if (v && json_object_get_boolean(member(doc, "loaded")))
                printf("The last reload failed: %s\nThe policy below, the last good one, stays in force.\n\n",
                       json_object_get_string(v));
        else if (v)
                printf("The policy could not be read: %s\nEvery assignment is refused until 'iovirtctl reload' reads "
                       "a good one. The defaults would be:\n\n", json_object_get_string(v));
        v = member(doc, "files");
        printf("Files:%s\n", json_object_array_length(v) ? "" : " none (the defaults apply)");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *f = json_object_array_get_idx(v, i), *over = member(f, "overrides");
                printf("  %s%s%s\n", json_object_get_string(member(f, "path")), over ? " (replaces " : "",
                       over ? json_object_get_string(over) : "");
                if (over)
                        printf(")\n");
        }
        /* the files' own warnings, then selectors that match nothing on this host */
        bool warned = false;
        static const char *const lists[] = { "warnings", "unmatched" };
        for (size_t k = 0; k < ELEMENTSOF(lists); k++) {
                v = member(doc, lists[k]);
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        printf("%s  %s\n", warned ? "" : "Warnings:\n",
                               json_object_get_string(json_object_array_get_idx(v, i)));
                        warned = true;
                }
        }
        print_section(doc, "memory", "Memory", (const char *const[]) { "reserve", "memory_cgroup", NULL },
                      (const char *const[]) { "Reserve", "MemoryCgroup" });
        print_section(doc, "consumers", "Consumers", (const char *const[]) { "watch_process_exit", NULL },
                      (const char *const[]) { "WatchProcessExit" });
        print_section(doc, "numa", "Numa", (const char *const[]) { "default_policy", "allow_policy_choice", NULL },
                      (const char *const[]) { "DefaultPolicy", "AllowPolicyChoice" });
        v = member(doc, "pools");
        if (json_object_array_length(v) == 0)
                printf("No pools: root and polkit-authorized callers may assign whatever passes the safety checks.\n");
        static const char *const keys[] = { "devices", "consumers", "users", "groups", "isolation", "numa_policy",
                                            "allow_numa_policy_choice", "memlock_hard_limit", "memory", NULL };
        static const char *const names[] = { "Devices", "Consumers", "Users", "Groups", "Isolation", "NumaPolicy",
                                             "AllowNumaPolicyChoice", "MemlockHardLimit", "Memory" };
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *p = json_object_array_get_idx(v, i);
                char title[128];
                snprintf(title, sizeof(title), "[Pool %s]", json_object_get_string(member(p, "name")));
                printf("%-46s %s\n", title, json_object_get_string(member(p, "origin")));
                for (size_t k = 0; keys[k]; k++)
                        print_setting(names[k], member(p, keys[k]));
        }
        return 0;
}

static const char *size_or(json_object *v, char buf[static IOVIRT_SIZE_MAX], const char *none) {
        return v ? iovirt_size_format(json_object_get_uint64(v), buf) : none;
}

int verb_status(Ctl *c, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *doc = NULL;
        char a[IOVIRT_SIZE_MAX], b[IOVIRT_SIZE_MAX], m[IOVIRT_SIZE_MAX], r_[IOVIRT_SIZE_MAX];
        int status = describe(c, "DescribeStatus", &doc);
        if (status)
                return status < 0 ? 0 : status;
        json_object *budget = member(doc, "budget"), *list = member(doc, "consumers");
        if (member(budget, "budget"))
                printf("Pinned memory: %s of a %s budget (MemTotal %s less a %s reserve)\n",
                       size_or(member(budget, "pinned"), a, "0 B"), size_or(member(budget, "budget"), b, "?"),
                       size_or(member(budget, "memtotal"), m, "?"), size_or(member(budget, "reserve"), r_, "?"));
        else
                printf("Pinned memory: %s; the budget is unknown (%s)\n", size_or(member(budget, "pinned"), a, "0 B"),
                       member(budget, "error") ? json_object_get_string(member(budget, "error"))
                                               : "no policy is loaded");
        if (json_object_array_length(list) == 0) {
                printf("No consumers hold devices.\n");
                return 0;
        }
        printf("%-20s %-8s %-6s %-10s %-10s %-6s %-10s %-10s %s\n", "CONSUMER", "PID", "UID", "GROUPS", "MEMORY",
               "VIOMMU", "MEMLOCK", "PINNED", "SHARE");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *o = json_object_array_get_idx(list, i), *groups = member(o, "groups"), *v;
                char g[64] = "", share[16] = "-";
                for (size_t k = 0, l = 0; k < json_object_array_length(groups) && l < sizeof(g); k++)
                        l += (size_t) snprintf(g + l, sizeof(g) - l, "%s%s", k ? "," : "",
                                               json_object_get_string(json_object_array_get_idx(groups, k)));
                if ((v = member(o, "budget_share")))
                        snprintf(share, sizeof(share), "%.1f%%", json_object_get_double(v) * 100);
                ctl_cell(json_object_get_string(member(o, "consumer")), 20, true);
                printf(" %-8s %-6s %-10s %-10s %-6s %-10s %-10s %s\n",
                       member(o, "pid") ? json_object_get_string(member(o, "pid")) : "-",
                       member(o, "uid") ? json_object_get_string(member(o, "uid")) : "-", g,
                       size_or(member(o, "memory"), a, "-"),
                       json_object_get_boolean(member(o, "viommu")) ? "yes" : "no",
                       size_or(member(o, "memlock"), b, "-"), size_or(member(o, "pinned"), m, "0 B"), share);
        }
        return 0;
}
