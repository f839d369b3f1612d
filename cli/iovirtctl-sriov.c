/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include <systemd/sd-bus.h>

#include "iovirt-names.h"
#include "iovirt-netlink.h"
#include "iovirt-sriov.h"
#include "iovirtctl.h"

/* sriov: a PF's VFs as iovirtd describes them (DescribeSriov), and the two
 * changes it makes to them: the number of VFs (SetVfs) and one VF's MAC,
 * VLAN, spoof check and trust (ConfigureVf).  Both change the host, so both
 * go through iovirtd, which serialises them with assignments and asks
 * polkit; the dispatcher has checked every option and value. */

/* ---- reading the document ---- */

static json_object *get(json_object *o, const char *key) {
        json_object *v;
        return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *str(json_object *o, const char *key) {
        json_object *v = get(o, key);
        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* "-" for null or absent, the number otherwise */
static const char *num(json_object *o, const char *key, char *buf, size_t size) {
        json_object *v = get(o, key);
        if (!v || !json_object_is_type(v, json_type_int))
                return "-";
        snprintf(buf, size, "%" PRId64, json_object_get_int64(v));
        return buf;
}

static const char *onoff(json_object *o, const char *key) {
        json_object *v = get(o, key);
        return !v || !json_object_is_type(v, json_type_boolean) ? "-" : json_object_get_boolean(v) ? "on" : "off";
}

static const char *dash(const char *s) {
        return s && *s ? s : "-";
}

/* ---- the table ---- */

/* "0000:05:00.0: interface enp5s0f0, driver igb, 4 of 8 VFs, autoprobe on,
 *  persisted (4 VFs, autoprobe off), NUMA node 0" */
static void print_pf(Ctl *c, json_object *pf) {
        char a[32], b[32], n[32], line[1024];
        json_object *persisted = get(pf, "persisted");
        const char *consumer = str(pf, "consumer");
        int l = snprintf(line, sizeof(line), "%s: interface %s, driver %s, %s of %s VFs, autoprobe %s, ",
                         dash(str(pf, "address")), dash(str(pf, "interface")), dash(str(pf, "driver")),
                         num(pf, "num_vfs", a, sizeof(a)), num(pf, "total_vfs", b, sizeof(b)), onoff(pf, "autoprobe"));
        if (persisted && json_object_is_type(persisted, json_type_object)) {
                json_object *ap = get(persisted, "autoprobe");
                l += snprintf(line + l, sizeof(line) - (size_t) l, "persisted (%s VFs%s%s)",
                              num(persisted, "num_vfs", a, sizeof(a)),
                              ap && json_object_is_type(ap, json_type_boolean) ? ", autoprobe " : "",
                              ap && json_object_is_type(ap, json_type_boolean) ? onoff(persisted, "autoprobe") : "");
        } else
                l += snprintf(line + l, sizeof(line) - (size_t) l, "not persisted");
        l += snprintf(line + l, sizeof(line) - (size_t) l, ", NUMA node %s", num(pf, "numa_node", n, sizeof(n)));
        if (consumer && *consumer && l > 0 && (size_t) l < sizeof(line))
                snprintf(line + l, sizeof(line) - (size_t) l, ", assigned to %s", consumer);
        ctl_wrap(c, 0, line);
}

static size_t width(json_object *vfs, const char *key, const char *header) {
        size_t w = strlen(header);
        for (size_t i = 0; i < json_object_array_length(vfs); i++) {
                const char *s = str(json_object_array_get_idx(vfs, i), key);
                if (s && strlen(s) > w)
                        w = strlen(s);
        }
        return w;
}

static void print_vfs(Ctl *c, json_object *vfs) {
        char ib[32], gb[32], nb[32], vb[32];
        if (!vfs || !json_object_is_type(vfs, json_type_array) || json_object_array_length(vfs) == 0) {
                printf("No VFs.\n");
                return;
        }
        int wa = (int) width(vfs, "address", "ADDRESS"), wd = (int) width(vfs, "driver", "DRIVER");
        unsigned wo = (unsigned) width(vfs, "consumer", "OWNER");
        if (wo > 20)
                wo = 20;
        printf("%3s  %-*s  %-*s  %5s  %-8s  %4s  %-*s  %-17s  %4s  %-8s  %s\n", "VF", wa, "ADDRESS", wd, "DRIVER",
               "GROUP", "VERDICT", "NUMA", (int) wo, "OWNER", "MAC", "VLAN", "SPOOFCHK", "TRUST");
        for (size_t i = 0; i < json_object_array_length(vfs); i++) {
                json_object *vf = json_object_array_get_idx(vfs, i);
                printf("%3s  %-*s  %-*s  %5s  %-8s  %4s  ", num(vf, "index", ib, sizeof(ib)), wa,
                       dash(str(vf, "address")), wd, dash(str(vf, "driver")), num(vf, "group", gb, sizeof(gb)),
                       dash(str(vf, "verdict")), num(vf, "numa_node", nb, sizeof(nb)));
                ctl_cell(dash(str(vf, "consumer")), wo, true);
                printf("  %-17s  %4s  %-8s  %s\n", dash(str(vf, "mac")), num(vf, "vlan", vb, sizeof(vb)),
                       onoff(vf, "spoofchk"), onoff(vf, "trust"));
        }
        /* what is restored at boot, where it is set */
        for (size_t i = 0; i < json_object_array_length(vfs); i++) {
                json_object *vf = json_object_array_get_idx(vfs, i), *p = get(vf, "persisted");
                char line[512];
                int l;
                if (!p || !json_object_is_type(p, json_type_object))
                        continue;
                l = snprintf(line, sizeof(line), "VF %s persisted:", num(vf, "index", ib, sizeof(ib)));
                if (str(p, "mac"))
                        l += snprintf(line + l, sizeof(line) - (size_t) l, " mac %s,", str(p, "mac"));
                if (get(p, "vlan") && json_object_is_type(get(p, "vlan"), json_type_int))
                        l += snprintf(line + l, sizeof(line) - (size_t) l, " vlan %s,", num(p, "vlan", vb, sizeof(vb)));
                if (get(p, "spoofchk") && json_object_is_type(get(p, "spoofchk"), json_type_boolean))
                        l += snprintf(line + l, sizeof(line) - (size_t) l, " spoofchk %s,", onoff(p, "spoofchk"));
                if (get(p, "trust") && json_object_is_type(get(p, "trust"), json_type_boolean))
                        l += snprintf(line + l, sizeof(line) - (size_t) l, " trust %s,", onoff(p, "trust"));
                if (l > 0 && (size_t) l < sizeof(line) && line[l - 1] == ',')
                        line[l - 1] = '\0';
                ctl_wrap(c, 0, line);
        }
}

static void print_document(Ctl *c, json_object *doc) {
        const char *settings = str(doc, "vf_settings");
        print_pf(c, get(doc, "pf"));
        print_vfs(c, get(doc, "vfs"));
        if (settings && !streq_ptr(settings, "read")) {
                char line[1024];
                snprintf(line, sizeof(line), "MAC, VLAN, spoof check and trust unknown: %s", settings);
                ctl_wrap(c, 0, line);
        }
}

/* ---- calls ---- */

static int interactive(Ctl *c) {
        return !c->no_ask_password && isatty(STDIN_FILENO);
}

/* Sends m, reads the JSON answer into *ret; failures reported */
static int call(Ctl *c, sd_bus_message *m, const char *method, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *s;
        /* Creating VFs waits for the kernel and their drivers' probes, then
         * for udev, as long as iovirtd's own bound (IOVIRT_SRIOV_TIMEOUT, at
         * most an hour) plus a password prompt: iovirtd always answers
         * within that, and ^C stops waiting. */
        int r = sd_bus_call(c->bus, m, (3600 + 600) * 1000 * 1000ULL, &error, &reply);
        if (r < 0) {
                ctl_fail_bus(c, &error, r, NULL);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0 || !(*ret = json_tokener_parse(s))) {
                ctl_fail(c, CTL_ERROR_BAD_ANSWER, "iovirtd's answer to %s is not JSON", method);
                return -EBADMSG;
        }
        return 0;
}

static int new_call(Ctl *c, const char *method, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(c->bus, ret, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH,
                                              IOVIRT_MANAGER_INTERFACE, method);
}

static int append_bool(sd_bus_message *m, const char *key, bool value) {
        return sd_bus_message_append(m, "{sv}", key, "b", (int) value);
}

/* Closes the a{sv} of options begun on *m and adds the interactive flag;
 * *ret takes the message.  r: how building the options went. */
static int options_done(Ctl *c, sd_bus_message **m, int r, sd_bus_message **ret) {
        if (r >= 0)
                r = sd_bus_message_close_container(*m);
        if (r >= 0)
                r = sd_bus_message_append(*m, "b", interactive(c));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(*m);
        return 0;
}

/* SetVfs(pf, count, {persist, autoprobe}, interactive) */
static int set_vfs_message(Ctl *c, const char *pf, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = new_call(c, "SetVfs", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "su", pf, c->vfs);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && c->persist >= 0)
                r = append_bool(m, "persist", c->persist);
        if (r >= 0 && c->opt_autoprobe)
                r = append_bool(m, "autoprobe", c->autoprobe);
        return options_done(c, &m, r, ret);
}

/* ConfigureVf("PF#N", {mac, vlan, spoofchk, trust, persist}, interactive) */
static int configure_vf_message(Ctl *c, const char *vf, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char mac[IOVIRT_MAC_STRING_MAX];
        int r = new_call(c, "ConfigureVf", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", vf);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && c->opt_mac)
                r = sd_bus_message_append(m, "{sv}", "mac", "s", iovirt_mac_format(c->mac, mac));
        if (r >= 0 && c->opt_vlan)
                r = sd_bus_message_append(m, "{sv}", "vlan", "u", c->vlan);
        if (r >= 0 && c->opt_spoofchk)
                r = append_bool(m, "spoofchk", c->spoofchk);
        if (r >= 0 && c->opt_trust)
                r = append_bool(m, "trust", c->trust);
        if (r >= 0 && c->persist > 0)
                r = append_bool(m, "persist", true);
        return options_done(c, &m, r, ret);
}

/* "0000:05:00.0: 0 -> 4 VFs (through 0) in 12.3 ms; autoprobe off; persisted" */
static void print_change(Ctl *c, json_object *doc) {
        json_object *change = get(doc, "change"), *v;
        char from[32], to[32];
        const char *pf = dash(str(get(doc, "pf"), "address"));
        int64_t f = -1, t = -2;

        if ((v = get(change, "from")) && json_object_is_type(v, json_type_int))
                f = json_object_get_int64(v);
        if ((v = get(change, "to")) && json_object_is_type(v, json_type_int))
                t = json_object_get_int64(v);
        if (f == t)
                printf("%s: %s VFs already; the count did not change", pf, num(change, "to", to, sizeof(to)));
        else {
                printf("%s: %s -> %s VFs", pf, num(change, "from", from, sizeof(from)),
                       num(change, "to", to, sizeof(to)));
                if ((v = get(change, "through_zero")) && json_object_get_boolean(v))
                        printf(" (through 0)");
                if ((v = get(change, "usec")) && json_object_is_type(v, json_type_int))
                        printf(" in %.1f ms", (double) json_object_get_int64(v) / 1000.0);
        }
        if (c->opt_autoprobe)
                printf("; autoprobe %s", c->autoprobe ? "on" : "off");
        if (c->persist >= 0)
                printf(c->persist ? "; persisted" : "; no longer persisted");
        printf("\n");
}

static void print_settings(Ctl *c, const char *vf, json_object *doc) {
        char mac[IOVIRT_MAC_STRING_MAX];
        printf("%s:", vf);
        if (c->opt_mac)
                printf(" mac %s", iovirt_mac_format(c->mac, mac));
        if (c->opt_vlan)
                printf("%s vlan %u", c->opt_mac ? "," : "", c->vlan);
        if (c->opt_spoofchk)
                printf("%s spoofchk %s", c->opt_mac || c->opt_vlan ? "," : "", c->spoofchk ? "on" : "off");
        if (c->opt_trust)
                printf("%s trust %s", c->opt_mac || c->opt_vlan || c->opt_spoofchk ? "," : "", c->trust ? "on" : "off");
        printf("%s\n", c->persist > 0 ? "; persisted" : "");
}

/* ---- selectors against their PF ---- */

/* DescribeSriov(pf) of a selector's PF; -ENOTCONN (nothing reported) when
 * iovirtd is not on the bus, other failures reported */
static int describe(Ctl *c, const char *pf, json_object **ret) {
        _cleanup_free_ char *why = NULL;
        return ctl_call_json(c, "DescribeSriov", pf, ret, &why);
}

/* An index at or above the PF's total is a usage error: the command line
 * names a VF no PF of this kind can have */
static int check_range(Ctl *c, const char *spec, const IovirtSelector *sel, unsigned total) {
        unsigned max = iovirt_selector_max(sel);
        if (max < total)
                return 0;
        if (total == 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s': %s has no VFs to select (its total is 0)", spec, sel->pf);
        return ctl_fail(c, CTL_ERROR_USAGE, "'%s': VF %u is out of range: %s has %u VFs in total (0-%u)", spec, max,
                        sel->pf, total, total - 1);
}

int ctl_check_selector(Ctl *c, const char *spec) {
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_(json_object_putp) json_object *doc = NULL;
        _cleanup_free_ char *reason = NULL;
        json_object *total;

        int r = iovirt_selector_parse(spec, &sel, &reason);
        if (r <= 0)
                return r == 0 ? 0 : ctl_fail(c, CTL_ERROR_USAGE, "%s", reason ? reason : strerror(-r));
        r = describe(c, sel.pf, &doc);
        if (r == -ENOTCONN)
                return 0;       /* the call that follows says iovirtd is not there */
        if (r < 0)
                return 1;
        total = get(get(doc, "pf"), "total_vfs");
        if (!total || !json_object_is_type(total, json_type_int))
                return ctl_fail(c, CTL_ERROR_BAD_ANSWER, "iovirtd's description of %s has no total_vfs", sel.pf);
        return check_range(c, spec, &sel, (unsigned) json_object_get_int64(total));
}

/* The model read directly: the PF as iovirt_pf_lookup() finds it, its VF
 * with that index as iovirt_vf_find() does */
static int resolve_direct(Ctl *c, const char *spec, const IovirtSelector *sel, char buf[static IOVIRT_ADDRESS_MAX]) {
        _cleanup_free_ char *reason = NULL;
        size_t i, k;
        int r = iovirt_pf_lookup(c->host, sel->pf, &i, &reason);
        if (r < 0)
                return ctl_fail(c, r == -ENOMEM ? CTL_ERROR_FAILED : CTL_ERROR_NO_SUCH_DEVICE, "%s",
                                reason ? reason : strerror(-r));
        const IovirtDevice *pf = &c->host->devices[i];
        if ((r = check_range(c, spec, sel, pf->sriov_total)))
                return r;
        k = iovirt_vf_find(c->host, i, sel->ranges[0].first);
        if (k == IOVIRT_NONE)
                return ctl_fail(c, CTL_ERROR_NO_SUCH_DEVICE, "%s has no VF %u now: %u of its %u VFs are enabled",
                                sel->pf, sel->ranges[0].first, pf->sriov_num, pf->sriov_total);
        snprintf(buf, IOVIRT_ADDRESS_MAX, "%s", c->host->devices[k].name);
        return 0;
}

int ctl_resolve_selector(Ctl *c, const char *spec, char buf[static IOVIRT_ADDRESS_MAX]) {
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_(json_object_putp) json_object *doc = NULL;
        _cleanup_free_ char *reason = NULL;
        json_object *vfs, *total;

        int r = iovirt_selector_parse(spec, &sel, &reason);
        if (r <= 0)
                return ctl_fail(c, r == 0 ? CTL_ERROR_FAILED : CTL_ERROR_USAGE, "%s",
                                reason ? reason : "not a VF selector");
        if (!c->from_daemon)
                return resolve_direct(c, spec, &sel, buf);
        if (describe(c, sel.pf, &doc) < 0)
                return 1;
        total = get(get(doc, "pf"), "total_vfs");
        if (!total || !json_object_is_type(total, json_type_int))
                return ctl_fail(c, CTL_ERROR_BAD_ANSWER, "iovirtd's description of %s has no total_vfs", sel.pf);
        if ((r = check_range(c, spec, &sel, (unsigned) json_object_get_int64(total))))
                return r;
        vfs = get(doc, "vfs");
        for (size_t i = 0; vfs && json_object_is_type(vfs, json_type_array) && i < json_object_array_length(vfs); i++) {
                json_object *vf = json_object_array_get_idx(vfs, i), *index = get(vf, "index");
                if (index && json_object_get_int64(index) == (int64_t) sel.ranges[0].first && str(vf, "address")) {
                        snprintf(buf, IOVIRT_ADDRESS_MAX, "%s", str(vf, "address"));
                        return 0;
                }
        }
        char n[32], m[32];
        return ctl_fail(c, CTL_ERROR_NO_SUCH_DEVICE, "%s has no VF %u now: %s of its %s VFs are enabled", sel.pf,
                        sel.ranges[0].first, num(get(doc, "pf"), "num_vfs", n, sizeof(n)),
                        num(get(doc, "pf"), "total_vfs", m, sizeof(m)));
}

/* ---- the verb ---- */

int verb_sriov(Ctl *c, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *doc = NULL;
        bool settings = c->opt_mac || c->opt_vlan || c->opt_spoofchk || c->opt_trust;
        char vf[IOVIRT_ARG_MAX];
        int r, status;

        if (ctl_open_bus(c) < 0)
                return 1;
        if (!c->opt_vfs && !settings) {
                _cleanup_free_ char *why = NULL;
                r = ctl_call_json(c, "DescribeSriov", argv[0], &doc, &why);
                if (r == -ENOTCONN)
                        return ctl_fail(c, CTL_ERROR_NO_DAEMON, "iovirtd is not running (%s); sriov needs iovirtd",
                                        why ? why : "not on the bus");
                if (r < 0)
                        return 1;
                if (c->json)
                        ctl_print_json(doc);
                else
                        print_document(c, doc);
                return 0;
        }

        if (c->opt_vfs) {
                r = set_vfs_message(c, argv[0], &m);
                if (r < 0)
                        return ctl_fail(c, CTL_ERROR_FAILED, "cannot build a call to SetVfs: %s", strerror(-r));
                if (call(c, m, "SetVfs", &doc) < 0)
                        return 1;
                if (c->json)
                        ctl_print_json(doc);
                else {
                        print_change(c, doc);
                        print_document(c, doc);
                }
                return 0;
        }

        /* one VF, as PF#N: its index checked against the PF's total first */
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_free_ char *reason = NULL;
        if (iovirt_selector_parse(argv[0], &sel, &reason) != 1 || sel.n_ranges < 1)
                return ctl_fail(c, CTL_ERROR_USAGE, "'%s' is not a VF selector (PF#N)", argv[0]);
        if ((status = ctl_check_selector(c, argv[0])))
                return status;
        snprintf(vf, sizeof(vf), "%s#%u", sel.pf, sel.ranges[0].first);
        r = configure_vf_message(c, vf, &m);
        if (r < 0)
                return ctl_fail(c, CTL_ERROR_FAILED, "cannot build a call to ConfigureVf: %s", strerror(-r));
        if (call(c, m, "ConfigureVf", &doc) < 0)
                return 1;
        if (c->json)
                ctl_print_json(doc);
        else {
                print_settings(c, vf, doc);
                print_document(c, doc);
        }
        return 0;
}
