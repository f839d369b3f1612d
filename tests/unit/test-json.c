/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "iovirt-json.h"
#include "model-builder.h"

/* The daemon serves the model as the "tree" document (every device, as
 * iovirt_json_device() writes it); the CLI rebuilds the model from it with
 * iovirt_host_from_json() and computes its verdicts again.  These tests
 * build models by hand, take them through the document as text and back,
 * and require the same devices and the same verdicts. */

/* ---- hand-built models (model-builder.h's, with every field the document carries) ---- */

#define NO_GROUP (-1)

static IovirtDevice *dev(IovirtHost *h, const char *addr) {
        IovirtAddress a;
        assert_int_equal(iovirt_address_parse(addr, &a, NULL), 0);
        size_t i = iovirt_host_find_address(h, &a);
        if (i == IOVIRT_NONE)
                fail_msg("no device %s in the model", addr);
        return &h->devices[i];
}

static size_t index_of(IovirtHost *h, const char *addr) {
        return (size_t) (dev(h, addr) - h->devices);
}

static void set_str(char **field, const char *value) {
        free(*field);
        *field = value ? strdup(value) : NULL;
}

/* build() gives what the verdicts read; the document carries more.  Every
 * field it carries gets a value that is not the default, so that one the
 * round trip loses shows. */
static IovirtHost *build_model(const Spec *s, size_t n) {
        IovirtHost *h = build(s, n);
        assert_non_null(h);
        for (size_t i = 0; i < h->n_devices; i++) {
                IovirtDevice *d = &h->devices[i];
                IovirtCaps *c = &d->caps;
                char path[128];
                snprintf(path, sizeof(path), "/sys/devices/pci%04x:%02x/%s", d->addr.domain, d->addr.bus, d->name);
                set_str(&d->syspath, path);
                d->vendor = 0x8086;
                d->device = (uint16_t) (0x1500 + i);
                d->subsys_vendor = 0x17aa;
                d->subsys_device = (uint16_t) (0x2200 + i);
                d->revision = (uint8_t) (0x10 + i);
                c->multifunction = d->multifunction;
                d->numa_node = -1;
                d->has_numa_attr = true;
                if (d->iommu_group < 0)
                        d->group = IOVIRT_NONE;         /* build() leaves 0 */
                if (c->pcie == IOVIRT_PRESENT) {
                        /* 8GT/s x16 capable (with ASPM bits the document leaves out), 5GT/s x8 now */
                        c->has_link = true;
                        c->lnkcap = 3 | 16 << 4 | 3 << 10;
                        c->lnksta = 2 | 8 << 4;
                }
                if (c->acs != IOVIRT_PRESENT)
                        c->acs_cap = 0;
                c->sriov = IOVIRT_ABSENT;
                c->pm = c->af = IOVIRT_PRESENT;
                /* the kernel says how each can be reset */
                d->reset_source = IOVIRT_RESET_KERNEL;
                set_str(&d->reset_methods, d->bridge ? "" : "flr bus");
        }
        return h;
}

static void set_vfio_node(IovirtHost *h, int number, bool node) {
        for (size_t i = 0; i < h->n_groups; i++)
                if (h->groups[i].number == number) {
                        h->groups[i].vfio_node = node;
                        return;
                }
        fail_msg("no group %d", number);
}

/* Makes pf a PF with SR-IOV enabled and vfs its VFs, as discovery links them */
static void make_family(IovirtHost *h, const char *pf, const char *const *vfs, size_t n) {
        IovirtDevice *p = dev(h, pf);
        p->sriov = true;
        p->caps.sriov = IOVIRT_PRESENT;
        p->sriov_total = p->sriov_initial = 8;
        p->sriov_num = (unsigned) n;
        p->sriov_offset = 0x80;
        p->sriov_stride = 2;
        p->caps.iov_did = 0x10ed;
        p->vfs = calloc(n + 1, sizeof(size_t));
        assert_non_null(p->vfs);
        for (size_t v = 0; v < n; v++) {
                IovirtDevice *d = dev(h, vfs[v]);
                p->vfs[p->n_vfs++] = index_of(h, vfs[v]);
                d->physfn = index_of(h, pf);
                d->device = 0x10ed;
                d->subsys_device = 0;
                d->revision = 1;
                d->caps.has_link = false;       /* VFs have no link of their own */
                set_str(&d->reset_methods, "flr");
        }
}

/* ---- comparing models ---- */

static const char *name_of(const IovirtHost *h, size_t i) {
        return i == IOVIRT_NONE ? "(none)" : h->devices[i].name;
}

static char *names(const IovirtHost *h, const size_t *idx, size_t n) {
        char *buf = calloc(1, 4096);
        size_t l = 0;
        assert_non_null(buf);
        for (size_t i = 0; i < n; i++)
                l += (size_t) snprintf(buf + l, l < 4096 ? 4096 - l : 0, "%s%s", i ? " " : "", h->devices[idx[i]].name);
        return buf;
}

#define SAME_INT(field)                                                                            \
        do {                                                                                       \
                if ((long long) (a->field) != (long long) (b->field))                               \
                        fail_msg("%s: " #field " %lld became %lld", a->name, (long long) (a->field), \
                                 (long long) (b->field));                                          \
        } while (0)

#define SAME_STR(field)                                                                                      \
        do {                                                                                                 \
                if (!streq_ptr(a->field, b->field))                                                          \
                        fail_msg("%s: " #field " \"%s\" became \"%s\"", a->name, strna(a->field), strna(b->field)); \
        } while (0)

#define SAME_LINK(field)                                                                                      \
        do {                                                                                                  \
                if (!streq_ptr(name_of(x, a->field), name_of(y, b->field)))                                   \
                        fail_msg("%s: " #field " %s became %s", a->name, name_of(x, a->field), name_of(y, b->field)); \
        } while (0)

static void assert_device_equal(const IovirtHost *x, const IovirtDevice *a, const IovirtHost *y, const IovirtDevice *b) {
        const IovirtCaps *ca = &a->caps, *cb = &b->caps;

        assert_string_equal(a->name, b->name);
        assert_true(iovirt_address_equal(&a->addr, &b->addr));
        SAME_STR(syspath);
        SAME_INT(ids_known);
        if (a->ids_known) {
                SAME_INT(vendor);
                SAME_INT(device);
        }
        SAME_INT(class_code);
        SAME_INT(caps.header_known);
        if (ca->header_known) {
                SAME_INT(revision);
                SAME_INT(header_type);
                SAME_INT(caps.header_type);
                SAME_INT(multifunction);
                SAME_INT(subsys_vendor);
                SAME_INT(subsys_device);
        }
        SAME_INT(bridge);
        SAME_STR(driver);
        SAME_STR(driver_override);
        SAME_STR(local_cpulist);
        SAME_STR(problem);
        SAME_INT(iommu_group);
        SAME_INT(numa_node);
        SAME_INT(boot_vga);

        SAME_INT(caps.pcie);
        if (ca->pcie == IOVIRT_PRESENT) {
                SAME_INT(caps.pcie_type);
                SAME_INT(caps.has_link);
                if (ca->has_link) {
                        uint32_t m = PCI_EXP_LNKCAP_SPEED | PCI_EXP_LNKCAP_WIDTH;
                        if ((ca->lnkcap & m) != (cb->lnkcap & m) ||
                            (ca->lnksta & (PCI_EXP_LNKSTA_SPEED | PCI_EXP_LNKSTA_WIDTH)) !=
                                    (cb->lnksta & (PCI_EXP_LNKSTA_SPEED | PCI_EXP_LNKSTA_WIDTH)))
                                fail_msg("%s: the link changed: LNKCAP 0x%x LNKSTA 0x%x became LNKCAP 0x%x LNKSTA 0x%x",
                                         a->name, ca->lnkcap & m, ca->lnksta & (PCI_EXP_LNKSTA_SPEED | PCI_EXP_LNKSTA_WIDTH),
                                         cb->lnkcap & m, cb->lnksta & (PCI_EXP_LNKSTA_SPEED | PCI_EXP_LNKSTA_WIDTH));
                }
        }
        SAME_INT(caps.acs);
        if (ca->acs == IOVIRT_PRESENT) {
                SAME_INT(caps.acs_cap);
                SAME_INT(caps.acs_ctl);
        }
        SAME_INT(sriov);
        SAME_INT(caps.sriov);
        if (a->sriov) {
                SAME_INT(sriov_total);
                SAME_INT(sriov_num);
        }
        if (ca->sriov == IOVIRT_PRESENT) {
                SAME_INT(sriov_initial);
                SAME_INT(sriov_offset);
                SAME_INT(sriov_stride);
                SAME_INT(caps.iov_did);
        }
        SAME_LINK(parent);
        SAME_LINK(physfn);
        _cleanup_free_ char *va = names(x, a->vfs, a->n_vfs), *vb = names(y, b->vfs, b->n_vfs);
        if (!streq_ptr(va, vb))
                fail_msg("%s: VFs \"%s\" became \"%s\"", a->name, va, vb);

        SAME_INT(reset_source);
        if (a->reset_source != IOVIRT_RESET_UNKNOWN)
                SAME_STR(reset_methods);

        assert_int_equal(a->group == IOVIRT_NONE, b->group == IOVIRT_NONE);
        if (a->group != IOVIRT_NONE) {
                assert_int_equal(x->groups[a->group].number, y->groups[b->group].number);
                if (x->groups[a->group].vfio_node != y->groups[b->group].vfio_node)
                        fail_msg("%s: /dev/vfio/%d changed", a->name, x->groups[a->group].number);
        }
}

static void assert_hosts_equal(const IovirtHost *x, const IovirtHost *y) {
        assert_int_equal(x->n_devices, y->n_devices);
        for (size_t i = 0; i < x->n_devices; i++)
                assert_device_equal(x, &x->devices[i], y, &y->devices[i]);
        assert_int_equal(x->n_groups, y->n_groups);
        for (size_t g = 0; g < x->n_groups; g++) {
                assert_int_equal(x->groups[g].number, y->groups[g].number);
                assert_int_equal(x->groups[g].vfio_node, y->groups[g].vfio_node);
                _cleanup_free_ char *ma = names(x, x->groups[g].members, x->groups[g].n_members);
                _cleanup_free_ char *mb = names(y, y->groups[g].members, y->groups[g].n_members);
                assert_string_equal(ma, mb);
        }
}

/* How the verdicts of group g of x differ in y, or NULL */
static const char *group_diff(const IovirtHost *x, const IovirtVerdicts *v, const IovirtHost *y,
                              const IovirtVerdicts *w, size_t g) {
        const IovirtGroupVerdict *a = &v->groups[g], *b;
        const IovirtGroup *other = iovirt_host_find_group(y, x->groups[g].number);
        if (!other)
                return "it is gone";
        b = &w->groups[other - y->groups];
        _cleanup_free_ char *pa = names(x, a->peers, a->n_peers), *pb = names(y, b->peers, b->n_peers);
        _cleanup_free_ char *ea = names(x, a->endpoints, a->n_endpoints), *eb = names(y, b->endpoints, b->n_endpoints);
        _cleanup_free_ char *ba = names(x, a->bridges, a->n_bridges), *bb = names(y, b->bridges, b->n_bridges);
        _cleanup_free_ char *ha = names(x, a->host_bound, a->n_host_bound), *hb = names(y, b->host_bound, b->n_host_bound);
        if (a->isolation != b->isolation)
                return "isolation differs";
        if (!streq_ptr(pa, pb))
                return "peers differ";
        if (!streq_ptr(ea, eb))
                return "endpoints differ";
        if (!streq_ptr(ba, bb))
                return "bridges differ";
        if (!streq_ptr(ha, hb))
                return "host-bound endpoints differ";
        if (!streq_ptr(name_of(x, a->unknown_device), name_of(y, b->unknown_device)))
                return "unknown_because differs";
        if (a->n_causes != b->n_causes)
                return "causes differ";
        for (size_t c = 0; c < a->n_causes; c++)
                if (a->causes[c].kind != b->causes[c].kind || a->causes[c].missing != b->causes[c].missing ||
                    !streq_ptr(name_of(x, a->causes[c].device), name_of(y, b->causes[c].device)))
                        return "causes differ";
        return NULL;
}

/* One sentence on the worst difference (a changed isolation first), or
 * NULL when the verdicts are the same */
static char *verdicts_diff(const IovirtHost *x, const IovirtVerdicts *v, const IovirtHost *y, const IovirtVerdicts *w) {
        char *out = NULL;
        for (int pass = 0; pass < 2; pass++)
                for (size_t g = 0; g < x->n_groups; g++) {
                        const char *what = group_diff(x, v, y, w, g);
                        const IovirtGroup *other = iovirt_host_find_group(y, x->groups[g].number);
                        if (!what || (pass == 0 && (!other || w->groups[other - y->groups].isolation ==
                                                                       v->groups[g].isolation)))
                                continue;
                        if (asprintf(&out, "group %d (%s%s%s): %s", x->groups[g].number,
                                     iovirt_isolation_name(v->groups[g].isolation), other ? " -> " : "",
                                     other ? iovirt_isolation_name(w->groups[other - y->groups].isolation) : "",
                                     what) < 0)
                                out = NULL;
                        return out;
                }
        if (x->n_groups != y->n_groups && asprintf(&out, "%zu groups became %zu", x->n_groups, y->n_groups) < 0)
                out = NULL;
        return out;
}

static void assert_verdicts_equal(const IovirtHost *x, const IovirtVerdicts *v, const IovirtHost *y,
                                  const IovirtVerdicts *w) {
        assert_int_equal(v->n_groups, w->n_groups);
        _cleanup_free_ char *diff = verdicts_diff(x, v, y, w);
        if (diff)
                fail_msg("%s", diff);
}

/* ---- documents ---- */

/* What iovirtd's DescribeTree serves (daemon/iovirtd-manager.c, build_tree) */
static json_object *tree(IovirtHost *h, const IovirtVerdicts *v) {
        json_object *root = json_object_new_object(), *a = json_object_new_array();
        for (size_t i = 0; i < h->n_devices; i++)
                json_object_array_add(a, iovirt_json_device(h, v, i));
        json_object_object_add(root, "devices", a);
        return root;
}

static char *tree_text(IovirtHost *h, const IovirtVerdicts *v) {
        _cleanup_(json_object_putp) json_object *o = tree(h, v);
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/* The CLI's side: text → model */
static int parse_text(const char *text, IovirtHost **ret) {
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(text);
        return iovirt_host_from_json(o, ret);
}

static char *doc_text(json_object *o) {
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/* Serialises h, parses it back and requires the same model, the same
 * verdicts and the same documents; returns what the CLI would see. */
static void round_trip(IovirtHost *h, IovirtVerdicts **ret_v, IovirtHost **ret_h2, IovirtVerdicts **ret_v2) {
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL, *v2 = NULL;
        _cleanup_(iovirt_host_freep) IovirtHost *h2 = NULL;

        assert_int_equal(iovirt_verdicts_compute(h, &v), 0);
        _cleanup_free_ char *text = tree_text(h, v);
        assert_int_equal(parse_text(text, &h2), 0);
        assert_non_null(h2);
        assert_hosts_equal(h, h2);
        assert_int_equal(iovirt_verdicts_compute(h2, &v2), 0);
        assert_verdicts_equal(h, v, h2, v2);

        /* a fixed point: every document written from the rebuilt model is the same */
        _cleanup_free_ char *again = tree_text(h2, v2);
        assert_string_equal(text, again);
        _cleanup_(json_object_putp) json_object *ga = iovirt_json_groups(h, v), *gb = iovirt_json_groups(h2, v2);
        _cleanup_free_ char *gta = doc_text(ga), *gtb = doc_text(gb);
        assert_string_equal(gta, gtb);
        _cleanup_free_ size_t *all = calloc(h->n_devices + 1, sizeof(size_t));
        for (size_t i = 0; i < h->n_devices; i++)
                all[i] = i;
        _cleanup_(json_object_putp) json_object *da = iovirt_json_devices(h, all, h->n_devices),
                                                *db = iovirt_json_devices(h2, all, h2->n_devices);
        _cleanup_free_ char *dta = doc_text(da), *dtb = doc_text(db);
        assert_string_equal(dta, dtb);

        *ret_v = TAKE_PTR(v);
        *ret_h2 = TAKE_PTR(h2);
        *ret_v2 = TAKE_PTR(v2);
}

#define ROUND_TRIP(h, v, h2, v2)                                            \
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL, *v2 = NULL; \
        _cleanup_(iovirt_host_freep) IovirtHost *h2 = NULL;                  \
        round_trip(h, &v, &h2, &v2)

/* A member of an object in a document, by a path of keys and array indices ("groups.2.peers") */
static json_object *member(json_object *o, const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        char *save = NULL;
        for (char *k = strtok_r(copy, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
                if (json_object_is_type(o, json_type_array))
                        o = json_object_array_get_idx(o, strtoul(k, NULL, 10));
                else if (!json_object_object_get_ex(o, k, &o))
                        fail_msg("no %s in the document (at %s)", path, k);
        }
        return o;
}

static void assert_member(json_object *o, const char *path, const char *expected_json) {
        const char *got = json_object_to_json_string_ext(member(o, path),
                                                         JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!streq_ptr(got, expected_json))
                fail_msg("%s is %s, expected %s", path, got, expected_json);
}

/* ---- the scenarios ---- */

static IovirtHost *leaky_host(void) {
        static const Spec s[] = {
                { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, UPSTREAM, NO_ACS, false, "pcieport" },
                { "02:01.0", "01:00.0", 3, DOWNSTREAM, NO_ACS, false, "pcieport" },
                { "02:02.0", "01:00.0", 4, DOWNSTREAM, ACS_OK & ~PCI_ACS_CTRL_FORWARD, false, "pcieport" },
                { "03:00.0", "02:01.0", 3, ENDPOINT, PCI_ACS_CTRL_REQ_RED, false, "vfio-pci" },
                { "04:00.0", "02:02.0", 4, ENDPOINT, NO_ACS, false, "nvme" },
                { "00:1c.0", NULL, 5, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "05:00.0", "00:1c.0", 6, ENDPOINT, NO_ACS, false, "igb" },
        };
        IovirtHost *h = build_model(s, ELEMENTSOF(s));
        IovirtDevice *d = dev(h, "03:00.0");
        set_str(&d->driver_override, "vfio-pci");
        set_str(&d->local_cpulist, "8-15,24-31");
        d->numa_node = 1;
        d->class_code = 0x010802;
        set_vfio_node(h, 3, true);
        d = dev(h, "04:00.0");
        d->numa_node = 0;
        set_str(&d->local_cpulist, "0-7");
        d->class_code = 0x010802;
        /* an older kernel: methods decoded from config space */
        d = dev(h, "05:00.0");
        d->reset_source = IOVIRT_RESET_CONFIG;
        set_str(&d->reset_methods, "pm bus");
        return h;
}

static void test_leaky_switch(void **state) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = leaky_host();
        ROUND_TRIP(h, v, h2, v2);

        /* what the CLI sees is the leak, with both ports named */
        const IovirtGroupVerdict *g = verdict(h2, v2, 3);
        assert_int_equal(g->isolation, IOVIRT_LEAKY);
        assert_addresses(h2, g->peers, g->n_peers, "0000:04:00.0");
        assert_addresses(h2, g->endpoints, g->n_endpoints, "0000:03:00.0");
        assert_addresses(h2, g->bridges, g->n_bridges, "0000:02:01.0");
        assert_int_equal(g->n_host_bound, 0);       /* on vfio-pci */
        assert_int_equal(g->n_causes, 2);
        assert_string_equal(h2->devices[g->causes[0].device].name, "0000:02:01.0");
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_PORT_WITHOUT_ACS);
        assert_string_equal(h2->devices[g->causes[1].device].name, "0000:02:02.0");
        assert_int_equal(g->causes[1].kind, IOVIRT_CAUSE_PORT_ACS_DISABLED);
        assert_int_equal(g->causes[1].missing, PCI_ACS_CTRL_FORWARD);
        assert_int_equal(verdict(h2, v2, 4)->isolation, IOVIRT_LEAKY);
        assert_int_equal(verdict(h2, v2, 6)->isolation, IOVIRT_ISOLATED);
        /* the upstream port alone: bridges, with what reaches it from below */
        assert_int_equal(verdict(h2, v2, 2)->isolation, IOVIRT_BRIDGES);
        assert_addresses(h2, verdict(h2, v2, 2)->peers, verdict(h2, v2, 2)->n_peers, "0000:03:00.0 0000:04:00.0");
        assert_int_equal(verdict(h2, v2, 0)->isolation, IOVIRT_BRIDGES);
        assert_true(iovirt_host_find_group(h2, 3)->vfio_node);
        assert_false(iovirt_host_find_group(h2, 4)->vfio_node);

        /* and the documents say it in the schema's words */
        _cleanup_(json_object_putp) json_object *groups = iovirt_json_groups(h2, v2);
        assert_member(groups, "iommu", "true");
        assert_member(groups, "groups.3.group", "3");
        assert_member(groups, "groups.3.isolation", "\"leaky\"");
        assert_member(groups, "groups.3.peers", "[\"0000:04:00.0\"]");
        assert_member(groups, "groups.3.causes.0.address", "\"0000:02:01.0\"");
        assert_member(groups, "groups.3.causes.0.kind", "\"port_without_acs\"");
        assert_member(groups, "groups.3.causes.0.acs_missing", "[\"SV\",\"RR\",\"CR\",\"UF\"]");
        assert_member(groups, "groups.3.causes.1.kind", "\"port_acs_disabled\"");
        assert_member(groups, "groups.3.causes.1.acs_missing", "[\"UF\"]");
        assert_member(groups, "groups.3.vfio_device", "true");
        assert_member(groups, "groups.3.viability.bridges", "[\"0000:02:01.0\"]");
        assert_member(groups, "groups.3.viability.host_bound", "[]");
        assert_member(groups, "groups.3.devices.1.driver", "\"vfio-pci\"");
        assert_member(groups, "groups.3.devices.1.numa_node", "1");
        assert_member(groups, "groups.0.isolation", "\"bridges\"");
        assert_member(groups, "groups.2.isolation", "\"bridges\"");
        assert_member(groups, "groups.2.peers", "[\"0000:03:00.0\",\"0000:04:00.0\"]");
        assert_member(groups, "groups.2.viability.endpoints", "[]");
        assert_member(groups, "groups.2.unknown_because", "null");

        _cleanup_(json_object_putp) json_object *d = iovirt_json_device(h2, v2, index_of(h2, "03:00.0"));
        assert_member(d, "class", "\"010802\"");
        assert_member(d, "driver_override", "\"vfio-pci\"");
        assert_member(d, "pcie_type", "\"endpoint\"");
        assert_member(d, "parent", "\"0000:02:01.0\"");
        assert_member(d, "upstream", "[\"0000:02:01.0\",\"0000:01:00.0\",\"0000:00:01.0\"]");
        assert_member(d, "acs", "{\"cap\":12,\"ctl\":4}");
        assert_member(d, "link.max_speed", "\"8GT/s\"");
        assert_member(d, "link.max_width", "16");
        assert_member(d, "link.speed", "\"5GT/s\"");
        assert_member(d, "link.width", "8");
        assert_member(d, "reset_methods", "[\"flr\",\"bus\"]");
        assert_member(d, "reset_source", "\"kernel\"");
        assert_member(d, "group.isolation", "\"leaky\"");
        _cleanup_(json_object_putp) json_object *rp = iovirt_json_device(h2, v2, index_of(h2, "05:00.0"));
        assert_member(rp, "reset_methods", "[\"pm\",\"bus\"]");
        assert_member(rp, "reset_source", "\"config\"");
        _cleanup_(json_object_putp) json_object *hb = iovirt_json_device(h2, v2, index_of(h2, "00:00.0"));
        assert_member(hb, "pcie", "false");
        assert_member(hb, "pcie_type", "null");
        assert_member(hb, "acs", "null");
        assert_member(hb, "acs_known", "true");
        assert_member(hb, "parent", "null");
        assert_member(hb, "reset_methods", "[]");
        assert_member(hb, "group.isolation", "\"bridges\"");
}

static void test_shared_multifunction(void **state) {
        static const Spec s[] = {
                { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, true, "nouveau" },
                { "01:00.1", "00:01.0", 2, ENDPOINT, NO_ACS, true, "snd_hda_intel" },
                { "01:00.2", "00:01.0", 2, ENDPOINT, NO_ACS, true, NULL },
                /* a conventional PCI bridge: everything behind it is one requester */
                { "00:1e.0", NULL, 3, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "06:00.0", "00:1e.0", 4, PCI_BRIDGE, NO_ACS, false, NULL },
                { "07:04.0", "06:00.0", 4, CONVENTIONAL, NO_ACS, false, "snd_emu10k1" },
                { "07:05.0", "06:00.0", 4, CONVENTIONAL, NO_ACS, false, "vfio-pci" },
        };
        _cleanup_(iovirt_host_freep) IovirtHost *h = build_model(s, ELEMENTSOF(s));
        IovirtDevice *gpu = dev(h, "01:00.0");
        gpu->class_code = 0x030000;
        gpu->boot_vga = true;
        dev(h, "01:00.1")->class_code = 0x040300;
        dev(h, "01:00.2")->class_code = 0x0c0330;
        set_str(&dev(h, "01:00.2")->driver_override, "vfio-pci");
        set_str(&dev(h, "07:05.0")->driver_override, "vfio-pci");
        set_str(&dev(h, "07:04.0")->reset_methods, "");
        ROUND_TRIP(h, v, h2, v2);

        const IovirtGroupVerdict *g = verdict(h2, v2, 2);
        assert_int_equal(g->isolation, IOVIRT_SHARED);
        assert_int_equal(g->n_peers, 0);
        assert_addresses(h2, g->endpoints, g->n_endpoints, "0000:01:00.0 0000:01:00.1 0000:01:00.2");
        assert_addresses(h2, g->host_bound, g->n_host_bound, "0000:01:00.0 0000:01:00.1");
        assert_true(g->n_causes >= 1);
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_MULTIFUNCTION);
        assert_true(dev(h2, "01:00.0")->boot_vga);
        assert_true(dev(h2, "01:00.0")->multifunction);

        g = verdict(h2, v2, 4);
        assert_int_equal(g->isolation, IOVIRT_SHARED);
        assert_addresses(h2, g->endpoints, g->n_endpoints, "0000:07:04.0 0000:07:05.0");
        assert_addresses(h2, g->bridges, g->n_bridges, "0000:06:00.0");
        assert_addresses(h2, g->host_bound, g->n_host_bound, "0000:07:04.0");
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_PCI_BRIDGE);

        _cleanup_(json_object_putp) json_object *d = iovirt_json_device(h2, v2, index_of(h2, "07:04.0"));
        assert_member(d, "pcie", "false");
        assert_member(d, "link", "null");
        assert_member(d, "multifunction", "false");
        assert_member(d, "reset_methods", "[]");
        _cleanup_(json_object_putp) json_object *groups = iovirt_json_groups(h2, v2);
        assert_member(groups, "groups.2.isolation", "\"shared\"");
        assert_member(groups, "groups.2.causes.0.kind", "\"multifunction_without_acs\"");
        assert_member(groups, "groups.4.causes.0.kind", "\"conventional_pci_bridge\"");
}

static IovirtHost *sriov_host(void) {
        static const Spec s[] = {
                { "00:03.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "03:00.0", "00:03.0", 2, ENDPOINT, PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED, true, "ixgbe" },
                { "03:00.1", "00:03.0", 3, ENDPOINT, PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED, true, "ixgbe" },
                { "03:10.0", "00:03.0", 4, ENDPOINT, NO_ACS, false, "ixgbevf" },
                { "03:10.2", "00:03.0", 5, ENDPOINT, NO_ACS, false, "vfio-pci" },
                { "03:10.4", "00:03.0", 6, ENDPOINT, NO_ACS, false, NULL },
        };
        static const char *const vfs[] = { "03:10.0", "03:10.2", "03:10.4" };
        IovirtHost *h = build_model(s, ELEMENTSOF(s));
        make_family(h, "03:00.0", vfs, ELEMENTSOF(vfs));
        /* the second PF: SR-IOV capable, no VF enabled */
        IovirtDevice *pf1 = dev(h, "03:00.1");
        pf1->sriov = true;
        pf1->caps.sriov = IOVIRT_PRESENT;
        pf1->sriov_total = pf1->sriov_initial = 64;
        pf1->sriov_offset = 0x180;
        pf1->sriov_stride = 2;
        pf1->caps.iov_did = 0x10ed;
        pf1->numa_node = 1;
        set_str(&dev(h, "03:10.2")->driver_override, "vfio-pci");
        set_vfio_node(h, 5, true);
        return h;
}

static void test_sriov_family(void **state) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = sriov_host();
        ROUND_TRIP(h, v, h2, v2);

        const IovirtDevice *pf = dev(h2, "03:00.0");
        assert_true(pf->sriov);
        assert_int_equal(pf->caps.sriov, IOVIRT_PRESENT);
        assert_int_equal(pf->sriov_total, 8);
        assert_int_equal(pf->sriov_num, 3);
        assert_int_equal(pf->sriov_offset, 0x80);
        assert_int_equal(pf->sriov_stride, 2);
        assert_addresses(h2, pf->vfs, pf->n_vfs, "0000:03:10.0 0000:03:10.2 0000:03:10.4");
        for (size_t i = 0; i < pf->n_vfs; i++) {
                assert_true(iovirt_device_is_vf(&h2->devices[pf->vfs[i]]));
                assert_string_equal(h2->devices[h2->devices[pf->vfs[i]].physfn].name, "0000:03:00.0");
        }
        assert_int_equal(dev(h2, "03:00.1")->n_vfs, 0);
        assert_false(iovirt_device_is_vf(dev(h2, "03:00.1")));
        /* multifunction PFs with ACS, and VFs: each group on its own */
        for (int g = 2; g <= 6; g++)
                assert_int_equal(verdict(h2, v2, g)->isolation, IOVIRT_ISOLATED);

        _cleanup_(json_object_putp) json_object *d = iovirt_json_device(h2, v2, index_of(h2, "03:00.0"));
        assert_member(d, "sriov.total_vfs", "8");
        assert_member(d, "sriov.num_vfs", "3");
        assert_member(d, "sriov.vf_offset", "128");
        assert_member(d, "sriov.vf_device", "\"10ed\"");
        assert_member(d, "sriov.vfs", "[\"0000:03:10.0\",\"0000:03:10.2\",\"0000:03:10.4\"]");
        assert_member(d, "physfn", "null");
        _cleanup_(json_object_putp) json_object *vf = iovirt_json_device(h2, v2, index_of(h2, "03:10.2"));
        assert_member(vf, "physfn", "\"0000:03:00.0\"");
        assert_member(vf, "sriov", "null");
        assert_member(vf, "sriov_known", "true");
        assert_member(vf, "link", "null");
        assert_member(vf, "group.vfio_device", "true");
}

static void test_unknown_config(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, false, "mlx5_core" },
                /* a root port whose ACS capability could not be read */
                { "00:02.0", NULL, 3, ROOT_PORT, ACS_UNREADABLE, false, "pcieport" },
                { "02:00.0", "00:02.0", 4, ENDPOINT, NO_ACS, false, "e1000e" },
                { "00:03.0", NULL, 5, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "03:00.0", "00:03.0", 6, ENDPOINT, NO_ACS, false, NULL },
        };
        _cleanup_(iovirt_host_freep) IovirtHost *h = build_model(s, ELEMENTSOF(s));

        /* config space unreadable: what the kernel's attributes say, nothing more */
        IovirtDevice *d = dev(h, "01:00.0");
        d->caps = (IovirtCaps) {};
        d->revision = d->header_type = 0;
        d->subsys_vendor = d->subsys_device = 0;
        d->multifunction = false;
        d->vendor = 0x15b3;
        d->device = 0x1017;
        d->class_code = 0x020000;
        d->sriov = true;                      /* sriov_totalvfs / sriov_numvfs */
        d->sriov_total = 4;
        d->sriov_num = 0;
        d->reset_source = IOVIRT_RESET_UNKNOWN;
        d->reset_methods = mfree(d->reset_methods);
        set_str(&d->problem, "config space cannot be read: Cannot open /sys/bus/pci/devices/0000:01:00.0/config");

        /* not even the IDs */
        d = dev(h, "03:00.0");
        d->caps = (IovirtCaps) {};
        d->ids_known = false;
        d->vendor = d->device = 0;
        d->revision = d->header_type = 0;
        d->subsys_vendor = d->subsys_device = 0;
        d->class_code = 0;
        d->reset_source = IOVIRT_RESET_UNKNOWN;
        d->reset_methods = mfree(d->reset_methods);
        set_str(&d->problem, "libpci could not open the device");

        ROUND_TRIP(h, v, h2, v2);

        const IovirtGroupVerdict *g = verdict(h2, v2, 2);
        assert_int_equal(g->isolation, IOVIRT_ISOLATION_UNKNOWN);
        assert_string_equal(name_of(h2, g->unknown_device), "0000:01:00.0");
        g = verdict(h2, v2, 4);
        assert_int_equal(g->isolation, IOVIRT_ISOLATION_UNKNOWN);
        assert_string_equal(name_of(h2, g->unknown_device), "0000:00:02.0");
        assert_int_equal(verdict(h2, v2, 6)->isolation, IOVIRT_ISOLATION_UNKNOWN);
        assert_int_equal(verdict(h2, v2, 5)->isolation, IOVIRT_BRIDGES);
        /* a port whose ACS could not be read: nothing to hand out, and
         * what could not be read is still named */
        g = verdict(h2, v2, 3);
        assert_int_equal(g->isolation, IOVIRT_BRIDGES);
        assert_string_equal(name_of(h2, g->unknown_device), "0000:00:02.0");

        const IovirtDevice *u = dev(h2, "01:00.0");
        assert_false(u->caps.header_known);
        assert_int_equal(u->caps.pcie, IOVIRT_UNKNOWN);
        assert_int_equal(u->caps.acs, IOVIRT_UNKNOWN);
        assert_int_equal(u->caps.sriov, IOVIRT_UNKNOWN);
        assert_true(u->ids_known);
        assert_true(u->sriov);
        assert_int_equal(u->sriov_total, 4);
        assert_int_equal(u->reset_source, IOVIRT_RESET_UNKNOWN);
        assert_false(dev(h2, "03:00.0")->ids_known);
        assert_int_equal(dev(h2, "00:02.0")->caps.acs, IOVIRT_UNKNOWN);
        assert_int_equal(dev(h2, "00:02.0")->caps.pcie, IOVIRT_PRESENT);

        _cleanup_(json_object_putp) json_object *o = iovirt_json_device(h2, v2, index_of(h2, "01:00.0"));
        assert_member(o, "revision", "null");
        assert_member(o, "multifunction", "null");
        assert_member(o, "pcie", "null");
        assert_member(o, "acs_known", "false");
        assert_member(o, "sriov.initial_vfs", "null");
        assert_member(o, "sriov.total_vfs", "4");
        assert_member(o, "reset_methods", "null");
        assert_member(o, "reset_source", "\"unknown\"");
        assert_member(o, "group.unknown_because", "\"0000:01:00.0\"");
        _cleanup_(json_object_putp) json_object *n = iovirt_json_device(h2, v2, index_of(h2, "03:00.0"));
        assert_member(n, "vendor", "null");
        assert_member(n, "device", "null");
        assert_member(n, "sriov_known", "false");
}

static void test_no_iommu(void **state) {
        static const Spec s[] = {
                { "00:00.0", NULL, NO_GROUP, HOST_BRIDGE, NO_ACS, false, NULL },
                { "00:01.0", NULL, NO_GROUP, ROOT_PORT, NO_ACS, false, "pcieport" },
                { "01:00.0", "00:01.0", NO_GROUP, ENDPOINT, NO_ACS, true, "nvidia" },
                { "01:00.1", "00:01.0", NO_GROUP, ENDPOINT, NO_ACS, true, "snd_hda_intel" },
                { "00:1f.3", NULL, NO_GROUP, ENDPOINT, NO_ACS, false, "snd_hda_intel" },
        };
        _cleanup_(iovirt_host_freep) IovirtHost *h = build_model(s, ELEMENTSOF(s));
        assert_int_equal(h->n_groups, 0);
        ROUND_TRIP(h, v, h2, v2);
        assert_int_equal(h2->n_groups, 0);
        assert_int_equal(v2->n_groups, 0);
        for (size_t i = 0; i < h2->n_devices; i++) {
                assert_int_equal(h2->devices[i].iommu_group, -1);
                assert_true(h2->devices[i].group == IOVIRT_NONE);
        }
        _cleanup_(json_object_putp) json_object *groups = iovirt_json_groups(h2, v2);
        assert_member(groups, "iommu", "false");
        assert_member(groups, "groups", "[]");
        _cleanup_(json_object_putp) json_object *d = iovirt_json_device(h2, v2, index_of(h2, "01:00.0"));
        assert_member(d, "iommu_group", "null");
        assert_member(d, "group", "null");
}

static void test_link_down(void **state) {
        /* a link that is down (speed code 0): the document says null, and
         * the model must not come back with a speed made up */
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, false, "nvme" },
                { "00:02.0", NULL, 3, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "02:00.0", "00:02.0", 4, ENDPOINT, NO_ACS, false, "nvme" },
        };
        IovirtHost *h = build_model(s, ELEMENTSOF(s)), *h2 = NULL;
        IovirtVerdicts *v = NULL;
        dev(h, "00:02.0")->caps.lnksta = 0;                     /* nothing trained */
        dev(h, "02:00.0")->caps.lnkcap = 6 | 4 << 4;            /* 64GT/s x4: the last named */
        dev(h, "02:00.0")->caps.lnksta = 6 | 4 << 4;
        assert_int_equal(iovirt_verdicts_compute(h, &v), 0);
        json_object *port = iovirt_json_device(h, v, index_of(h, "00:02.0"));
        assert_member(port, "link.speed", "null");
        assert_member(port, "link.width", "0");
        json_object_put(port);
        char *text = tree_text(h, v);
        assert_int_equal(parse_text(text, &h2), 0);
        free(text);
        unsigned down = dev(h2, "00:02.0")->caps.lnksta & PCI_EXP_LNKSTA_SPEED,
                 fast = dev(h2, "02:00.0")->caps.lnksta & PCI_EXP_LNKSTA_SPEED,
                 fast_cap = dev(h2, "02:00.0")->caps.lnkcap & PCI_EXP_LNKCAP_SPEED;
        /* free before failing: a failure jumps past cleanups */
        iovirt_host_free(h2);
        iovirt_verdicts_free(v);
        iovirt_host_free(h);
        assert_int_equal(fast, 6);
        assert_int_equal(fast_cap, 6);
        if (down != 0)
                fail_msg("a link that is down came back with speed code %u", down);
}

static void test_empty_host(void **state) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = calloc(1, sizeof(IovirtHost));
        assert_non_null(h);
        ROUND_TRIP(h, v, h2, v2);
        assert_int_equal(h2->n_devices, 0);
        assert_int_equal(h2->n_groups, 0);
}

static void test_devices_out_of_order(void **state) {
        /* the schema does not promise address order: the model is sorted anyway */
        _cleanup_(iovirt_host_freep) IovirtHost *h = sriov_host();
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL, *v2 = NULL;
        _cleanup_(iovirt_host_freep) IovirtHost *h2 = NULL;
        assert_int_equal(iovirt_verdicts_compute(h, &v), 0);
        _cleanup_(json_object_putp) json_object *doc = tree(h, v), *reversed = json_object_new_object();
        json_object *devs = member(doc, "devices"), *a = json_object_new_array();
        for (size_t i = json_object_array_length(devs); i > 0; i--)
                json_object_array_add(a, json_object_get(json_object_array_get_idx(devs, i - 1)));
        json_object_object_add(reversed, "devices", a);
        assert_int_equal(iovirt_host_from_json(reversed, &h2), 0);
        assert_hosts_equal(h, h2);
        assert_int_equal(iovirt_verdicts_compute(h2, &v2), 0);
        assert_verdicts_equal(h, v, h2, v2);
}

/* ---- malformed documents ---- */

static void assert_refused(json_object *doc, const char *what) {
        IovirtHost *h = NULL;
        int r = iovirt_host_from_json(doc, &h);
        if (r >= 0) {
                iovirt_host_free(h);
                fail_msg("%s: accepted", what);
        }
        assert_int_equal(r, -EBADMSG);
        assert_null(h);
}

static json_object *parse(const char *text) {
        json_object *o = json_tokener_parse(text);
        assert_true(o || streq_ptr(text, "null"));
        return o;
}

static json_object *device_in(json_object *doc, size_t i) {
        return json_object_array_get_idx(member(doc, "devices"), i);
}

/* The models the damage is done to, each with its verdicts and document,
 * built once per test */
static IovirtHost *(*const hosts[])(void) = { leaky_host, sriov_host };

typedef struct Model {
        IovirtHost *host;
        IovirtVerdicts *verdicts;
        json_object *doc;
} Model;

static int models_setup(void **state) {
        Model *m = calloc(ELEMENTSOF(hosts), sizeof(Model));
        if (!m)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(hosts); i++) {
                m[i].host = hosts[i]();
                if (iovirt_verdicts_compute(m[i].host, &m[i].verdicts) < 0)
                        return -1;
                m[i].doc = tree(m[i].host, m[i].verdicts);
        }
        *state = m;
        return 0;
}

static int models_teardown(void **state) {
        Model *m = *state;
        for (size_t i = 0; m && i < ELEMENTSOF(hosts); i++) {
                json_object_put(m[i].doc);
                iovirt_verdicts_free(m[i].verdicts);
                iovirt_host_free(m[i].host);
        }
        free(m);
        return 0;
}

static json_object *copy_of(json_object *doc) {
        json_object *c = NULL;
        assert_int_equal(json_object_deep_copy(doc, &c, NULL), 0);
        return c;
}

static void test_malformed_documents(void **state) {
        static const char *const docs[] = {
                "null", "[]", "\"devices\"", "42", "{}",
                "{\"devices\": null}", "{\"devices\": {}}", "{\"devices\": \"0000:00:00.0\"}",
                "{\"Devices\": []}",
                "{\"devices\": [null]}", "{\"devices\": [42]}", "{\"devices\": [[]]}", "{\"devices\": [{}]}",
                "{\"devices\": [\"0000:00:00.0\"]}",
                "{\"devices\": [{\"address\": \"0000:00:00.0\"}]}",                     /* no syspath */
                "{\"devices\": [{\"syspath\": \"/sys/devices/pci0000:00/0000:00:00.0\"}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                _cleanup_(json_object_putp) json_object *o = parse(docs[i]);
                assert_refused(o, docs[i]);
        }

        /* one bad device spoils the document, wherever it is */
        static const struct {
                const char *key, *value;
        } bad[] = {
                { "address", "null" },
                { "address", "42" },
                { "address", "\"nonsense\"" },
                { "address", "\"0000:03:20.0\"" },
                { "address", "\"0000:03:00.8\"" },
                { "address", "\"\"" },
                { "syspath", "null" },
                { "syspath", "42" },
                { "pcie_type", "null" },         /* a PCIe device must say which kind */
                { "pcie_type", "\"warp_port\"" },
                { "pcie_type", "7" },
        };
        const Model *leaky = *state;
        for (size_t b = 0; b < ELEMENTSOF(bad); b++)
                for (size_t i = 0; i < leaky->host->n_devices; i++) {
                        if (streq_ptr(bad[b].key, "pcie_type") && leaky->host->devices[i].caps.pcie != IOVIRT_PRESENT)
                                continue;
                        _cleanup_(json_object_putp) json_object *doc = copy_of(leaky->doc);
                        json_object_object_add(device_in(doc, i), bad[b].key, parse(bad[b].value));
                        char what[128];
                        snprintf(what, sizeof(what), "%s: %s on %s", bad[b].key, bad[b].value,
                                 leaky->host->devices[i].name);
                        assert_refused(doc, what);
                }
        _cleanup_(json_object_putp) json_object *doc = copy_of(leaky->doc);
        json_object_object_del(device_in(doc, 3), "address");
        assert_refused(doc, "a device without an address");
}

static void test_truncated_text(void **state) {
        /* every cut of the text the daemon sends: refused, never a crash */
        _cleanup_(iovirt_host_freep) IovirtHost *h = sriov_host();
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL;
        assert_int_equal(iovirt_verdicts_compute(h, &v), 0);
        _cleanup_free_ char *text = tree_text(h, v);
        size_t len = strlen(text);
        for (size_t cut = 0; cut < len; cut++) {
                _cleanup_free_ char *part = strndup(text, cut);
                IovirtHost *h2 = NULL;
                _cleanup_(json_object_putp) json_object *o = json_tokener_parse(part);
                int r = iovirt_host_from_json(o, &h2);
                if (r >= 0) {
                        iovirt_host_free(h2);
                        fail_msg("the text cut at %zu of %zu was accepted", cut, len);
                }
        }
}

/* The keys of a device object that the model is rebuilt from: each is
 * always present in the schema (null when there is nothing to say). */
static const char *const model_keys[] = {
        "address", "syspath", "vendor", "device", "class", "bridge", "driver", "driver_override",
        "local_cpulist", "problem", "iommu_group", "numa_node", "boot_vga", "revision", "multifunction",
        "header_type", "subsystem_vendor", "subsystem_device", "pcie", "pcie_type", "link", "acs",
        "acs_known", "sriov", "sriov_known", "physfn", "parent", "reset_methods", "reset_source", "group",
};

/* A damaged document must be refused.  For each one that is accepted,
 * records what it was and whether the verdicts the CLI would print change. */
typedef struct Findings {
        char **items;
        size_t n;
} Findings;

static void findings_clear(Findings *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->items[i]);
        free(f->items);
}

/* NULL when doc is refused; else what was accepted and, when it changes
 * the verdicts the CLI would print, how. */
static char *damage_accepted(IovirtHost *h, const IovirtVerdicts *v, json_object *doc, const char *what,
                             bool *changes) {
        IovirtHost *h2 = NULL;
        char *msg = NULL;
        int r = iovirt_host_from_json(doc, &h2);
        *changes = false;
        if (r < 0) {
                assert_int_equal(r, -EBADMSG);
                assert_null(h2);
                return NULL;
        }
        _cleanup_(iovirt_host_freep) IovirtHost *parsed = h2;
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v2 = NULL;
        assert_int_equal(iovirt_verdicts_compute(parsed, &v2), 0);
        _cleanup_free_ char *diff = verdicts_diff(h, v, parsed, v2);
        *changes = diff;
        assert_true(asprintf(&msg, "%s%s%s", what, diff ? " -> " : "", diff ? diff : "") > 0);
        return msg;
}

static void check_damage(IovirtHost *h, const IovirtVerdicts *v, json_object *doc, const char *what, Findings *f) {
        bool changes;
        char *msg = damage_accepted(h, v, doc, what, &changes);
        if (msg)
                assert_int_equal(iovirt_strv_pushf(&f->items, &f->n, "%s", msg), 0);
        free(msg);
}

/* Sets key to value (JSON text; NULL: deletes it) on each device of each
 * model in turn; records one finding if any is accepted, preferring one
 * that changes the verdicts. */
static void probe_key(const Model *models, const char *key, const char *value, Findings *f) {
        _cleanup_free_ char *best = NULL;
        bool best_changes = false;
        for (size_t m = 0; m < ELEMENTSOF(hosts) && !best_changes; m++) {
                IovirtHost *h = models[m].host;
                for (size_t i = 0; i < h->n_devices && !best_changes; i++) {
                        _cleanup_(json_object_putp) json_object *doc = copy_of(models[m].doc);
                        json_object *d = device_in(doc, i);
                        char what[160];
                        assert_true(json_object_object_get_ex(d, key, NULL));
                        if (value) {
                                json_object_object_add(d, key, parse(value));
                                snprintf(what, sizeof(what), "\"%s\": %s on %s", key, value, h->devices[i].name);
                        } else {
                                json_object_object_del(d, key);
                                snprintf(what, sizeof(what), "no \"%s\" on %s", key, h->devices[i].name);
                        }
                        bool changes;
                        char *msg = damage_accepted(h, models[m].verdicts, doc, what, &changes);
                        if (msg && (!best || changes)) {
                                free(best);
                                best = msg;
                                best_changes = changes;
                        } else
                                free(msg);
                }
        }
        if (best)
                assert_int_equal(iovirt_strv_pushf(&f->items, &f->n, "%s", best), 0);
}

static void report(Findings *f, const char *title) {
        size_t n = f->n;
        if (n == 0)
                return;
        for (size_t i = 0; i < n; i++)
                print_error("    accepted: %s\n", f->items[i]);
        findings_clear(f);      /* failing jumps past the cleanup */
        *f = (Findings) {};
        fail_msg("%zu %s accepted (listed above)", n, title);
}

static void test_missing_fields(void **state) {
        _cleanup_(findings_clear) Findings f = {};
        for (size_t k = 0; k < ELEMENTSOF(model_keys); k++)
                probe_key(*state, model_keys[k], NULL, &f);
        report(&f, "documents with a device missing a field were");
}

static void test_wrong_types(void **state) {
        static const struct {
                const char *key, *value;
        } wrong[] = {
                { "vendor", "32902" }, { "device", "true" }, { "class", "131072" }, { "bridge", "\"false\"" },
                { "bridge", "0" }, { "driver", "42" }, { "driver_override", "[]" }, { "local_cpulist", "{}" },
                { "problem", "false" }, { "iommu_group", "\"3\"" }, { "iommu_group", "3.5" },
                { "iommu_group", "-2" }, { "numa_node", "\"1\"" }, { "boot_vga", "\"no\"" },
                { "revision", "16" }, { "multifunction", "\"false\"" }, { "header_type", "\"1\"" },
                { "subsystem_vendor", "6058" }, { "pcie", "\"true\"" }, { "pcie", "1" }, { "link", "[]" },
                { "link", "\"x16\"" }, { "acs", "[]" }, { "acs", "\"SV RR CR UF\"" }, { "acs_known", "\"false\"" },
                { "sriov", "[]" }, { "sriov_known", "\"true\"" }, { "physfn", "42" }, { "parent", "42" },
                { "parent", "\"nonsense\"" }, { "reset_methods", "\"flr bus\"" }, { "reset_methods", "[1, 2]" },
                { "reset_source", "42" }, { "reset_source", "\"magic\"" }, { "group", "[]" }, { "group", "3" },
                /* hex fields that are not hex */
                { "vendor", "\"zzzz\"" }, { "vendor", "\"-1\"" }, { "class", "\"0x020000\"" }, { "class", "\"\"" },
                { "revision", "\"\"" },
        };
        _cleanup_(findings_clear) Findings f = {};
        for (size_t w = 0; w < ELEMENTSOF(wrong); w++)
                probe_key(*state, wrong[w].key, wrong[w].value, &f);
        /* inside the nested objects */
        static const struct {
                const char *addr, *path, *key, *value;
        } nested[] = {
                { "02:02.0", "acs", "ctl", "\"29\"" },
                { "02:02.0", "acs", "cap", "null" },
                { "03:00.0", "sriov", "vfs", "\"0000:03:10.0\"" },
                { "03:00.0", "sriov", "vfs", "[42]" },
                { "03:00.0", "sriov", "num_vfs", "\"3\"" },
                { "03:00.0", "sriov", "vf_stride", "\"2\"" },
                { "03:10.2", "group", "vfio_device", "\"false\"" },
                { "00:03.0", "link", "max_width", "\"16\"" },
        };
        for (size_t w = 0; w < ELEMENTSOF(nested); w++) {
                const Model *m = &((const Model *) *state)[strncmp(nested[w].addr, "02", 2) == 0 ? 0 : 1];
                _cleanup_(json_object_putp) json_object *doc = copy_of(m->doc);
                json_object *o = member(device_in(doc, index_of(m->host, nested[w].addr)), nested[w].path);
                char what[160];
                json_object_object_add(o, nested[w].key, parse(nested[w].value));
                snprintf(what, sizeof(what), "\"%s.%s\": %s on %s", nested[w].path, nested[w].key, nested[w].value,
                         nested[w].addr);
                check_damage(m->host, m->verdicts, doc, what, &f);
        }
        report(&f, "documents with a wrong-typed field were");
}

/* References to devices the document does not hold: what a document cut
 * short, or put together from two snapshots, looks like. */
static void test_dangling_references(void **state) {
        const Model *leaky = &((const Model *) *state)[0], *sriov = &((const Model *) *state)[1];
        _cleanup_(findings_clear) Findings f = {};
        static const struct {
                const char *addr, *key, *value, *what;
        } links[] = {
                { "03:00.0", "parent", "\"0000:09:00.0\"", "a parent that is not in the document" },
                { "04:00.0", "parent", "\"0000:04:00.0\"", "a device that is its own parent" },
                { "01:00.0", "parent", "\"0000:02:01.0\"", "two ports, each the other's parent" },
                { "03:00.0", "physfn", "\"0000:09:00.0\"", "a physfn that is not in the document" },
        };
        for (size_t d = 0; d < ELEMENTSOF(links); d++) {
                _cleanup_(json_object_putp) json_object *doc = copy_of(leaky->doc);
                json_object_object_add(device_in(doc, index_of(leaky->host, links[d].addr)), links[d].key,
                                       parse(links[d].value));
                IovirtHost *h2 = NULL;
                /* a loop would make the verdicts walk up forever: only parse */
                if (iovirt_host_from_json(doc, &h2) >= 0) {
                        iovirt_host_free(h2);
                        assert_int_equal(iovirt_strv_pushf(&f.items, &f.n, "%s", links[d].what), 0);
                }
        }
        {
                _cleanup_(json_object_putp) json_object *doc = copy_of(sriov->doc);
                json_object *vfs = member(device_in(doc, index_of(sriov->host, "03:00.0")), "sriov.vfs");
                json_object_array_add(vfs, json_object_new_string("0000:03:10.6"));
                check_damage(sriov->host, sriov->verdicts, doc, "a VF that is not in the document", &f);
        }
        {
                _cleanup_(json_object_putp) json_object *doc = copy_of(leaky->doc);
                json_object *devs = member(doc, "devices");
                json_object_array_add(devs, json_object_get(json_object_array_get_idx(devs, 4)));
                check_damage(leaky->host, leaky->verdicts, doc, "a device listed twice", &f);
        }
        {
                /* a device in the short form: refused, or read with its links kept */
                _cleanup_(json_object_putp) json_object *doc = copy_of(leaky->doc);
                json_object_object_add(device_in(doc, index_of(leaky->host, "03:00.0")), "address", parse("\"03:00.0\""));
                IovirtHost *h2 = NULL;
                if (iovirt_host_from_json(doc, &h2) >= 0) {
                        const IovirtDevice *d = dev(h2, "03:00.0");
                        bool lost = d->parent == IOVIRT_NONE || d->group == IOVIRT_NONE;
                        iovirt_host_free(h2);
                        if (lost)
                                assert_int_equal(iovirt_strv_pushf(&f.items, &f.n, "a device written as 03:00.0, "
                                                                                   "which lost its parent and group"), 0);
                }
        }
        /* the document cut after k devices, where what is left still names what was cut */
        for (size_t m = 0; m < ELEMENTSOF(hosts); m++) {
                const Model *model = &((const Model *) *state)[m];
                size_t n = model->host->n_devices;
                for (size_t k = 1; k < n; k++) {
                        _cleanup_(json_object_putp) json_object *doc = copy_of(model->doc);
                        assert_int_equal(json_object_array_del_idx(member(doc, "devices"), k, n - k), 0);
                        const char *text = json_object_to_json_string(doc);
                        bool names_cut = false;
                        for (size_t i = k; i < n; i++) {
                                char quoted[IOVIRT_ADDRESS_MAX + 2];
                                snprintf(quoted, sizeof(quoted), "\"%s\"", model->host->devices[i].name);
                                names_cut = names_cut || strstr(text, quoted);
                        }
                        if (!names_cut)
                                continue;
                        char what[128];
                        snprintf(what, sizeof(what), "the %s document cut after %s", m == 0 ? "leaky" : "SR-IOV",
                                 model->host->devices[k - 1].name);
                        check_damage(model->host, model->verdicts, doc, what, &f);
                }
        }
        report(&f, "documents that name devices they do not hold were");
}

/* Members that are each well-typed, but do not fit together, or name a
 * device in a form the writer never uses: the writer cannot produce them,
 * so they are damage. */
static void test_inconsistent_documents(void **state) {
        const Model *leaky = &((const Model *) *state)[0], *sriov = &((const Model *) *state)[1];
        static const char *const link = "{\"max_speed\": \"8GT/s\", \"max_width\": 16, \"speed\": \"5GT/s\", \"width\": 8}";
        const struct {
                const Model *model;
                const char *addr, *path, *key, *value, *what;
        } bad[] = {
                /* the kernel's address form only */
                { leaky, "03:00.0", NULL, "parent", "\"02:01.0\"", "a parent in the short form" },
                { leaky, "03:00.0", NULL, "parent", "\"pci_0000_02_01_0\"", "a parent in libvirt's form" },
                { leaky, "03:00.0", NULL, "address", "\"0000:03:00.0 \"", "an address with a space after it" },
                { sriov, "03:10.0", NULL, "physfn", "\"0000:03:00.0\\u0000\"", "a physfn with a NUL" },
                /* "upstream" is the chain of "parent"s */
                { leaky, "03:00.0", NULL, "upstream", "[\"0000:02:02.0\", \"0000:01:00.0\", \"0000:00:01.0\"]",
                  "an upstream path through another port" },
                { leaky, "03:00.0", NULL, "upstream", "[\"0000:02:01.0\", \"0000:01:00.0\"]", "an upstream path cut short" },
                { leaky, "00:01.0", NULL, "upstream", "[\"0000:00:00.0\"]", "an upstream path for a root" },
                { leaky, "03:00.0", NULL, "upstream", "null", "no upstream path" },
                /* the group verdict is of the device's group, and names devices in the document */
                { leaky, "03:00.0", "group", "group", "4", "the verdict of another group" },
                { leaky, "02:01.0", "group", "vfio_device", "false", "members that disagree on /dev/vfio/3" },
                { leaky, "03:00.0", "group", "peers", "[\"0000:09:00.0\"]", "a peer not in the document" },
                { leaky, "03:00.0", "group.causes.0", "address", "\"0000:09:00.0\"", "a cause not in the document" },
                { leaky, "03:00.0", "group.causes.0", "address", "null", "a cause without a device" },
                { leaky, "03:00.0", "group.viability", "host_bound", "[\"0000:09:00.0\"]", "a host-bound device not in the document" },
                { leaky, "03:00.0", "group", "unknown_because", "\"0000:09:00.0\"", "an unknown device not in the document" },
                { leaky, "03:00.0", NULL, "group", "null", "a device in a group without its verdict" },
                { leaky, "00:00.0", NULL, "iommu_group", "null", "a device in no group with a verdict" },
                /* members written together are null together */
                { leaky, "03:00.0", NULL, "device", "null", "a vendor without a device ID" },
                { leaky, "03:00.0", NULL, "revision", "null", "a header without its revision" },
                { leaky, "03:00.0", NULL, "multifunction", "null", "a header without multifunction" },
                { sriov, "03:00.0", "sriov", "vf_stride", "null", "SR-IOV registers without the stride" },
                { leaky, "03:00.0", NULL, "reset_methods", "null", "a reset source without its methods" },
                { leaky, "03:00.0", NULL, "reset_source", "\"unknown\"", "reset methods nothing told" },
                { leaky, "03:00.0", NULL, "acs_known", "false", "ACS registers that were not known" },
                { sriov, "03:00.0", NULL, "sriov_known", "false", "SR-IOV counts that were not known" },
                { leaky, "00:00.0", NULL, "pcie_type", "\"root_port\"", "a PCIe type on a conventional device" },
                { leaky, "00:00.0", NULL, "link", link, "a link on a conventional device" },
                /* values the writer never writes */
                { leaky, "03:00.0", "link", "speed", "\"3GT/s\"", "a speed the specification has not named" },
                { leaky, "03:00.0", "link", "width", "64", "a link width past the register's" },
                { leaky, "03:00.0", NULL, "vendor", "\"80861\"", "a vendor ID of five digits" },
                { leaky, "03:00.0", NULL, "class", "\"01080A\"", "a class in capitals" },
                { leaky, "03:00.0", NULL, "reset_methods", "[\"flr bus\"]", "two reset methods in one word" },
                { leaky, "03:00.0", NULL, "reset_methods", "[\"\"]", "an empty reset method" },
                { leaky, "03:00.0", NULL, "driver", "\"vfio-pci\\u0000nvme\"", "a driver name with a NUL" },
                { leaky, "03:00.0", "acs", "ctl", "65536", "an ACS control register past 16 bits" },
                { leaky, "03:00.0", NULL, "numa_node", "2147483648", "a NUMA node past INT_MAX" },
                { leaky, "03:00.0", NULL, "iommu_group", "2147483648", "a group past INT_MAX" },
        };
        for (size_t b = 0; b < ELEMENTSOF(bad); b++) {
                const Model *m = bad[b].model;
                _cleanup_(json_object_putp) json_object *doc = copy_of(m->doc);
                json_object *o = device_in(doc, index_of(m->host, bad[b].addr));
                if (bad[b].path)
                        o = member(o, bad[b].path);
                assert_true(json_object_object_get_ex(o, bad[b].key, NULL));
                json_object_object_add(o, bad[b].key, parse(bad[b].value));
                assert_refused(doc, bad[b].what);
        }
}

/* Group numbers are the kernel's, up to INT_MAX: the model is built by how
 * many groups there are, never by the largest number (which asked for
 * 16 GiB and counted to INT_MAX, past it). */
static void test_huge_group_numbers(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 0, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 1, ENDPOINT, NO_ACS, false, "nvme" },
                { "00:02.0", NULL, 2, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "02:00.0", "00:02.0", 3, ENDPOINT, NO_ACS, true, "igb" },
                { "02:00.1", "00:02.0", 3, ENDPOINT, NO_ACS, true, "igb" },
        };
        static const int numbers[] = { 0, 7, INT_MAX - 1, INT_MAX };
        _cleanup_(iovirt_host_freep) IovirtHost *h = build_model(s, ELEMENTSOF(s));
        assert_int_equal(h->n_groups, ELEMENTSOF(numbers));
        for (size_t g = 0; g < h->n_groups; g++) {
                h->groups[g].number = numbers[g];
                for (size_t m = 0; m < h->groups[g].n_members; m++)
                        h->devices[h->groups[g].members[m]].iommu_group = numbers[g];
        }
        ROUND_TRIP(h, v, h2, v2);
        assert_int_equal(h2->n_groups, ELEMENTSOF(numbers));
        for (size_t g = 0; g < h2->n_groups; g++)
                assert_int_equal(h2->groups[g].number, numbers[g]);
        const IovirtGroup *top = iovirt_host_find_group(h2, INT_MAX);
        assert_non_null(top);
        assert_addresses(h2, top->members, top->n_members, "0000:02:00.0 0000:02:00.1");
        assert_int_equal(verdict(h2, v2, INT_MAX)->isolation, IOVIRT_SHARED);
        assert_int_equal(verdict(h2, v2, INT_MAX - 1)->isolation, IOVIRT_BRIDGES);
        assert_int_equal(verdict(h2, v2, 7)->isolation, IOVIRT_ISOLATED);
        assert_int_equal(dev(h2, "01:00.0")->iommu_group, 7);
}

/* ---- the check document ---- */

static void test_checks_round_trip(void **state) {
        IovirtCheck k[] = {
                { "iommu_firmware", "IOMMU in firmware", IOVIRT_CHECK_PASS, "DMAR table found", NULL },
                { "interrupt_remapping", "Interrupt remapping", IOVIRT_CHECK_WARN, "not enabled",
                  "enable x2APIC in the firmware" },
                { "vfio", "vfio-pci", IOVIRT_CHECK_FAIL, "the module is missing", "install the kernel's extra modules" },
                { "acs", "ACS", IOVIRT_CHECK_SKIP, "no IOMMU: nothing to judge (ünïcode)", NULL },
        };
        IovirtChecks c = { k, ELEMENTSOF(k) };
        _cleanup_(json_object_putp) json_object *doc = iovirt_json_checks(&c);
        assert_member(doc, "result", "\"fail\"");
        assert_member(doc, "checks.1.status", "\"warn\"");
        assert_member(doc, "checks.3.status", "\"skip\"");
        assert_member(doc, "checks.0.remedy", "null");

        _cleanup_free_ char *text = doc_text(doc);
        _cleanup_(json_object_putp) json_object *parsed = json_tokener_parse(text);
        _cleanup_(iovirt_checks_freep) IovirtChecks *back = NULL;
        assert_int_equal(iovirt_checks_from_json(parsed, &back), 0);
        assert_int_equal(back->n_checks, ELEMENTSOF(k));
        for (size_t i = 0; i < ELEMENTSOF(k); i++) {
                assert_string_equal(back->checks[i].id, k[i].id);
                assert_string_equal(back->checks[i].title, k[i].title);
                assert_int_equal(back->checks[i].status, k[i].status);
                assert_string_equal(back->checks[i].message, k[i].message);
                assert_true(streq_ptr(back->checks[i].remedy, k[i].remedy));
        }

        static const char *const bad[] = {
                "null", "{}", "{\"checks\": {}}", "{\"checks\": [{}]}",
                "{\"checks\": [{\"id\": \"a\", \"title\": \"A\", \"status\": \"PASS\", \"message\": \"m\"}]}",
                "{\"checks\": [{\"id\": \"a\", \"title\": \"A\", \"status\": \"pass\"}]}",
                "{\"checks\": [{\"id\": 1, \"title\": \"A\", \"status\": \"pass\", \"message\": \"m\"}]}",
                /* the writer always writes "remedy", null when there is none */
                "{\"checks\": [{\"id\": \"a\", \"title\": \"A\", \"status\": \"pass\", \"message\": \"m\"}]}",
                "{\"checks\": [{\"id\": \"a\", \"title\": \"A\", \"status\": \"pass\", \"message\": \"m\", \"remedy\": 1}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *o = parse(bad[i]);
                IovirtChecks *r = NULL;
                int e = iovirt_checks_from_json(o, &r);
                if (e != -EBADMSG) {
                        iovirt_checks_free(r);
                        fail_msg("%s: expected -EBADMSG, got %d", bad[i], e);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_leaky_switch),
                cmocka_unit_test(test_shared_multifunction),
                cmocka_unit_test(test_sriov_family),
                cmocka_unit_test(test_unknown_config),
                cmocka_unit_test(test_no_iommu),
                cmocka_unit_test(test_link_down),
                cmocka_unit_test(test_empty_host),
                cmocka_unit_test(test_devices_out_of_order),
                cmocka_unit_test_setup_teardown(test_malformed_documents, models_setup, models_teardown),
                cmocka_unit_test(test_truncated_text),
                cmocka_unit_test_setup_teardown(test_missing_fields, models_setup, models_teardown),
                cmocka_unit_test_setup_teardown(test_wrong_types, models_setup, models_teardown),
                cmocka_unit_test_setup_teardown(test_dangling_references, models_setup, models_teardown),
                cmocka_unit_test_setup_teardown(test_inconsistent_documents, models_setup, models_teardown),
                cmocka_unit_test(test_huge_group_numbers),
                cmocka_unit_test(test_checks_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
