/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>

#include "iovirt-json.h"

/* json-c's adders return errors only on OOM; a NULL object added is JSON null. */
static json_object *str_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

static json_object *hex(unsigned v, int width) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%0*x", width, v);
        return json_object_new_string(buf);
}

static json_object *address_list(const IovirtHost *h, const size_t *idx, size_t n) {
        json_object *a = json_object_new_array_ext((int) n);
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(h->devices[idx[i]].name));
        return a;
}

static json_object *words(const char *s) {
        json_object *a = json_object_new_array();
        while (s && *s) {
                size_t l = strcspn(s, " ");
                if (l)
                        json_object_array_add(a, json_object_new_string_len(s, (int) l));
                s += l;
                s += strspn(s, " ");
        }
        return a;
}

static void add_brief(json_object *o, IovirtHost *h, const IovirtDevice *d) {
        json_object_object_add(o, "address", json_object_new_string(d->name));
        json_object_object_add(o, "vendor", d->ids_known ? hex(d->vendor, 4) : NULL);
        json_object_object_add(o, "device", d->ids_known ? hex(d->device, 4) : NULL);
        json_object_object_add(o, "class", hex(d->class_code, 6));
        json_object_object_add(o, "driver", str_or_null(d->driver));
        json_object_object_add(o, "iommu_group", d->iommu_group >= 0 ? json_object_new_int(d->iommu_group) : NULL);
        json_object_object_add(o, "numa_node", d->numa_node >= 0 ? json_object_new_int(d->numa_node) : NULL);
        json_object_object_add(o, "bridge", json_object_new_boolean(d->bridge));
        char vb[128], db[256];
        json_object_object_add(o, "vendor_name", str_or_null(iovirt_host_vendor_name(h, d, vb, sizeof(vb))));
        json_object_object_add(o, "device_name", str_or_null(iovirt_host_device_name(h, d, db, sizeof(db))));
}

static json_object *brief(IovirtHost *h, const IovirtDevice *d) {
        json_object *o = json_object_new_object();
        add_brief(o, h, d);
        return o;
}

static json_object *causes(const IovirtHost *h, const IovirtGroupVerdict *gv) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < gv->n_causes; i++) {
                const IovirtCause *c = &gv->causes[i];
                json_object *o = json_object_new_object();
                json_object_object_add(o, "address", json_object_new_string(h->devices[c->device].name));
                json_object_object_add(o, "kind", json_object_new_string(iovirt_cause_kind_name(c->kind)));
                char bits[64];
                iovirt_acs_bits_format(c->missing, bits, sizeof(bits));
                json_object_object_add(o, "acs_missing", words(bits));
                json_object_array_add(a, o);
        }
        return a;
}

static json_object *group_verdict(const IovirtHost *h, const IovirtGroup *g, const IovirtGroupVerdict *gv) {
        json_object *o = json_object_new_object(), *via = json_object_new_object();
        json_object_object_add(o, "group", json_object_new_int(g->number));
        json_object_object_add(o, "isolation", json_object_new_string(iovirt_isolation_name(gv->isolation)));
        json_object_object_add(o, "peers", address_list(h, gv->peers, gv->n_peers));
        json_object_object_add(o, "causes", causes(h, gv));
        json_object_object_add(o, "unknown_because",
                               gv->unknown_device != IOVIRT_NONE
                                       ? json_object_new_string(h->devices[gv->unknown_device].name)
                                       : NULL);
        json_object_object_add(o, "vfio_device", json_object_new_boolean(g->vfio_node));
        json_object_object_add(via, "endpoints", address_list(h, gv->endpoints, gv->n_endpoints));
        json_object_object_add(via, "bridges", address_list(h, gv->bridges, gv->n_bridges));
        json_object_object_add(via, "host_bound", address_list(h, gv->host_bound, gv->n_host_bound));
        json_object_object_add(o, "viability", via);
        return o;
}

json_object *iovirt_json_groups(IovirtHost *h, const IovirtVerdicts *v) {
        json_object *root = json_object_new_object(), *groups = json_object_new_array_ext((int) h->n_groups);
        json_object_object_add(root, "iommu", json_object_new_boolean(h->n_groups > 0));
        for (size_t i = 0; i < h->n_groups; i++) {
                const IovirtGroup *g = &h->groups[i];
                json_object *o = group_verdict(h, g, &v->groups[i]), *devs = json_object_new_array();
                for (size_t m = 0; m < g->n_members; m++)
                        json_object_array_add(devs, brief(h, &h->devices[g->members[m]]));
                json_object_object_add(o, "devices", devs);
                json_object_array_add(groups, o);
        }
        json_object_object_add(root, "groups", groups);
        return root;
}

json_object *iovirt_json_devices(IovirtHost *h, const size_t *sel, size_t n) {
        json_object *root = json_object_new_object(), *devs = json_object_new_array_ext((int) n);
        for (size_t i = 0; i < n; i++)
                json_object_array_add(devs, brief(h, &h->devices[sel[i]]));
        json_object_object_add(root, "devices", devs);
        return root;
}

json_object *iovirt_json_device(IovirtHost *h, const IovirtVerdicts *v, size_t i) {
        const IovirtDevice *d = &h->devices[i];
        const IovirtCaps *c = &d->caps;
        json_object *o = json_object_new_object();
        char buf[256];

        add_brief(o, h, d);
        json_object_object_add(o, "subsystem_vendor", c->header_known ? hex(d->subsys_vendor, 4) : NULL);
        json_object_object_add(o, "subsystem_device", c->header_known ? hex(d->subsys_device, 4) : NULL);
        json_object_object_add(o, "class_name", str_or_null(iovirt_class_name(h, d->class_code, buf, sizeof(buf))));
        json_object_object_add(o, "revision", c->header_known ? hex(d->revision, 2) : NULL);
        json_object_object_add(o, "header_type", c->header_known ? json_object_new_int(d->header_type) : NULL);
        json_object_object_add(o, "multifunction", c->header_known ? json_object_new_boolean(d->multifunction) : NULL);
        json_object_object_add(o, "driver_override", str_or_null(d->driver_override));
        json_object_object_add(o, "local_cpulist", str_or_null(d->local_cpulist));
        json_object_object_add(o, "syspath", json_object_new_string(d->syspath));

        json_object_object_add(o, "pcie_type", c->pcie == IOVIRT_PRESENT
                                                       ? json_object_new_string(iovirt_pcie_type_name(c->pcie_type))
                                                       : NULL);
        json_object_object_add(o, "pcie", c->pcie == IOVIRT_UNKNOWN ? NULL
                                                                    : json_object_new_boolean(c->pcie == IOVIRT_PRESENT));
        if (c->pcie == IOVIRT_PRESENT && c->has_link) {
                json_object *l = json_object_new_object();
                json_object_object_add(l, "max_speed", str_or_null(iovirt_link_speed_name(c->lnkcap & PCI_EXP_LNKCAP_SPEED)));
                json_object_object_add(l, "max_width", json_object_new_int((int) ((c->lnkcap & PCI_EXP_LNKCAP_WIDTH) >> 4)));
                json_object_object_add(l, "speed", str_or_null(iovirt_link_speed_name(c->lnksta & PCI_EXP_LNKSTA_SPEED)));
                json_object_object_add(l, "width", json_object_new_int((c->lnksta & PCI_EXP_LNKSTA_WIDTH) >> 4));
                json_object_object_add(o, "link", l);
        } else
                json_object_object_add(o, "link", NULL);

        json_object_object_add(o, "parent", d->parent != IOVIRT_NONE ? json_object_new_string(h->devices[d->parent].name)
                                                                     : NULL);
        json_object *up = json_object_new_array();
        for (size_t p = d->parent; p != IOVIRT_NONE; p = h->devices[p].parent)
                json_object_array_add(up, json_object_new_string(h->devices[p].name));
        json_object_object_add(o, "upstream", up);

        if (c->acs == IOVIRT_PRESENT) {
                json_object *a = json_object_new_object();
                json_object_object_add(a, "cap", json_object_new_int(c->acs_cap));
                json_object_object_add(a, "ctl", json_object_new_int(c->acs_ctl));
                json_object_object_add(o, "acs", a);
        } else
                json_object_object_add(o, "acs", NULL);
        json_object_object_add(o, "acs_known", json_object_new_boolean(c->acs != IOVIRT_UNKNOWN));

        if (d->sriov) {
                json_object *s = json_object_new_object();
                json_object_object_add(s, "total_vfs", json_object_new_int((int) d->sriov_total));
                json_object_object_add(s, "initial_vfs", c->sriov == IOVIRT_PRESENT ? json_object_new_int((int) d->sriov_initial) : NULL);
                json_object_object_add(s, "num_vfs", json_object_new_int((int) d->sriov_num));
                json_object_object_add(s, "vf_offset", c->sriov == IOVIRT_PRESENT ? json_object_new_int((int) d->sriov_offset) : NULL);
                json_object_object_add(s, "vf_stride", c->sriov == IOVIRT_PRESENT ? json_object_new_int((int) d->sriov_stride) : NULL);
                json_object_object_add(s, "vf_device", c->sriov == IOVIRT_PRESENT ? hex(c->iov_did, 4) : NULL);
                json_object_object_add(s, "vfs", address_list(h, d->vfs, d->n_vfs));
                json_object_object_add(o, "sriov", s);
        } else
                json_object_object_add(o, "sriov", NULL);
        json_object_object_add(o, "sriov_known", json_object_new_boolean(d->sriov || c->sriov != IOVIRT_UNKNOWN));
        json_object_object_add(o, "physfn", d->physfn != IOVIRT_NONE ? json_object_new_string(h->devices[d->physfn].name)
                                                                     : NULL);

        json_object_object_add(o, "reset_methods", d->reset_source == IOVIRT_RESET_UNKNOWN ? NULL : words(d->reset_methods));
        json_object_object_add(o, "reset_source", json_object_new_string(d->reset_source == IOVIRT_RESET_KERNEL ? "kernel"
                                                                          : d->reset_source == IOVIRT_RESET_CONFIG ? "config"
                                                                                                                     : "unknown"));
        json_object_object_add(o, "boot_vga", json_object_new_boolean(d->boot_vga));
        json_object_object_add(o, "problem", str_or_null(d->problem));

        if (d->group != IOVIRT_NONE)
                json_object_object_add(o, "group", group_verdict(h, &h->groups[d->group], &v->groups[d->group]));
        else
                json_object_object_add(o, "group", NULL);
        return o;
}

json_object *iovirt_json_checks(const IovirtChecks *c) {
        json_object *root = json_object_new_object(), *a = json_object_new_array();
        static const char *const results[] = { "pass", "warn", "fail", "pass" };
        for (size_t i = 0; i < c->n_checks; i++) {
                const IovirtCheck *k = &c->checks[i];
                json_object *o = json_object_new_object();
                char status[8];
                snprintf(status, sizeof(status), "%s", iovirt_check_status_name(k->status));
                for (char *p = status; *p; p++)
                        *p = (char) (*p - 'A' + 'a');
                json_object_object_add(o, "id", json_object_new_string(k->id));
                json_object_object_add(o, "title", json_object_new_string(k->title));
                json_object_object_add(o, "status", json_object_new_string(status));
                json_object_object_add(o, "message", json_object_new_string(k->message));
                json_object_object_add(o, "remedy", str_or_null(k->remedy));
                json_object_array_add(a, o);
        }
        json_object_object_add(root, "result", json_object_new_string(results[iovirt_checks_worst(c)]));
        json_object_object_add(root, "checks", a);
        return root;
}

/* ---- reading documents back ----
 *
 * The reader is the writer's inverse, and strict: every member the writer
 * emits must be there with the type it is written with (null only where the
 * writer writes null, and together with the members it is written together
 * with), every address in the form iovirt_address_format() gives, and every
 * device the document names must be in it, once.  Anything else is refused
 * whole with -EBADMSG: a member read as absent, false or -1 could make a
 * leaky group look isolated.  Members the model is not rebuilt from (names
 * from pci.ids, verdicts the CLI computes again) are not read, except for
 * the devices they name. */

#define NULLABLE true
#define REQUIRED false

/* A JSON string without an embedded NUL, or NULL */
static const char *string_of(json_object *v) {
        if (!json_object_is_type(v, json_type_string))
                return NULL;
        const char *s = json_object_get_string(v);
        return strlen(s) == (size_t) json_object_get_string_len(v) ? s : NULL;
}

/* The member key of o, of the given type: 1 with *ret set; 0 for null
 * where null is allowed; -EBADMSG when it is missing or of another type.
 * json-c reads JSON null as a NULL member. */
static int get_typed(json_object *o, const char *key, json_type type, bool nullable, json_object **ret) {
        json_object *v;
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v))
                return -EBADMSG;
        if (!v)
                return nullable ? 0 : -EBADMSG;
        if (!json_object_is_type(v, type))
                return -EBADMSG;
        *ret = v;
        return 1;
}

static int get_str(json_object *o, const char *key, bool nullable, const char **ret) {
        json_object *v;
        int r = get_typed(o, key, json_type_string, nullable, &v);
        *ret = NULL;
        if (r <= 0)
                return r;
        *ret = string_of(v);
        return *ret ? 1 : -EBADMSG;
}

/* A string or null, copied */
static int get_dup(json_object *o, const char *key, char **ret) {
        const char *s;
        int r = get_str(o, key, NULLABLE, &s);
        if (r <= 0)
                return r;
        *ret = strdup(s);
        return *ret ? 1 : -ENOMEM;
}

/* An integer in [min, max]: json-c converts strings, doubles and booleans
 * in json_object_get_int(), so the type is checked first */
static int get_int(json_object *o, const char *key, bool nullable, int64_t min, int64_t max, int64_t *ret) {
        json_object *v;
        int r = get_typed(o, key, json_type_int, nullable, &v);
        if (r <= 0)
                return r;
        int64_t i = json_object_get_int64(v);       /* values past INT64_MAX read as INT64_MAX */
        if (i < min || i > max)
                return -EBADMSG;
        *ret = i;
        return 1;
}

static int get_bool(json_object *o, const char *key, bool nullable, bool *ret) {
        json_object *v;
        int r = get_typed(o, key, json_type_boolean, nullable, &v);
        *ret = r > 0 && json_object_get_boolean(v);
        return r;
}

/* A number the writer formats with hex(v, width): exactly that text */
static int get_hex(json_object *o, const char *key, bool nullable, int width, uint32_t max, uint32_t *ret) {
        const char *s;
        char *end, buf[16];
        int r = get_str(o, key, nullable, &s);
        if (r <= 0)
                return r;
        if (!*s || strlen(s) > 8)
                return -EBADMSG;
        unsigned long v = strtoul(s, &end, 16);
        if (*end || v > max)
                return -EBADMSG;
        snprintf(buf, sizeof(buf), "%0*lx", width, v);
        if (!streq_ptr(buf, s))         /* no sign, no 0x, no capitals, no padding past width */
                return -EBADMSG;
        *ret = (uint32_t) v;
        return 1;
}

/* An address as the writer formats it: the short and libvirt forms a user
 * may type are not what documents hold */
static int parse_canonical(const char *s, IovirtAddress *ret) {
        char buf[IOVIRT_ADDRESS_MAX];
        if (!s || iovirt_address_parse(s, ret, NULL) < 0 || !streq_ptr(iovirt_address_format(ret, buf), s))
                return -EBADMSG;
        return 0;
}

/* A device the document names (an address string): its index */
static int get_ref(const IovirtHost *h, json_object *v, size_t *ret) {
        IovirtAddress a;
        if (parse_canonical(string_of(v), &a) < 0)
                return -EBADMSG;
        *ret = iovirt_host_find_address(h, &a);
        return *ret != IOVIRT_NONE ? 0 : -EBADMSG;
}

/* A member naming a device, or null: IOVIRT_NONE */
static int get_link(const IovirtHost *h, json_object *o, const char *key, size_t *ret) {
        json_object *v;
        *ret = IOVIRT_NONE;
        if (!json_object_object_get_ex(o, key, &v))
                return -EBADMSG;
        return v ? get_ref(h, v, ret) : 0;
}

/* An array of devices the document names; each is checked, and kept when
 * ret is not NULL */
static int get_refs(const IovirtHost *h, json_object *o, const char *key, size_t **ret, size_t *ret_n) {
        json_object *a;
        int r = get_typed(o, key, json_type_array, REQUIRED, &a);
        if (r < 0)
                return r;
        size_t n = json_object_array_length(a);
        _cleanup_free_ size_t *idx = ret ? calloc(n + 1, sizeof(size_t)) : NULL;
        if (ret && !idx)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t d;
                r = get_ref(h, json_object_array_get_idx(a, i), &d);
                if (r < 0)
                        return r;
                if (idx)
                        idx[i] = d;
        }
        if (ret) {
                *ret = TAKE_PTR(idx);
                *ret_n = n;
        }
        return 0;
}

/* The writer's null is a link that is down (code 0), or a code the
 * specification has not named: read back as 0.  A name that is not one of
 * the specification's is refused. */
static int get_speed(json_object *link, const char *key, unsigned *ret) {
        const char *s;
        int r = get_str(link, key, NULLABLE, &s);
        *ret = 0;
        if (r <= 0)
                return r;
        for (unsigned c = 1; c < 16; c++) {
                const char *name = iovirt_link_speed_name(c);
                if (name && streq_ptr(name, s)) {
                        *ret = c;
                        return 0;
                }
        }
        return -EBADMSG;
}

static int pcie_type_code(const char *name) {
        for (int t = 0; t < 16; t++)
                if (streq_ptr(iovirt_pcie_type_name((uint8_t) t), name))
                        return t;
        return -1;
}

/* Members the writer writes together are null together */
static bool same_nullness(const int *r, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (r[i] < 0 || (r[i] > 0) != (r[0] > 0))
                        return false;
        return true;
}

/* "reset_methods": the words of the model's space-separated list */
static int get_reset_methods(json_object *a, char **ret) {
        size_t n = json_object_array_length(a), len = 1;
        for (size_t i = 0; i < n; i++) {
                const char *w = string_of(json_object_array_get_idx(a, i));
                if (!w || !*w || strchr(w, ' '))
                        return -EBADMSG;
                len += strlen(w) + 1;
        }
        char *s = malloc(len), *p = s;
        if (!s)
                return -ENOMEM;
        *p = '\0';
        for (size_t i = 0; i < n; i++)
                p = stpcpy(stpcpy(p, i ? " " : ""), json_object_get_string(json_object_array_get_idx(a, i)));
        *ret = s;
        return 0;
}

/* One device's own fields; its links to others are read once every device is known. */
static int device_from_json(IovirtDevice *d, json_object *o) {
        IovirtCaps *k = &d->caps;
        json_object *v;
        const char *s;
        uint32_t x;
        int64_t i;
        bool b;
        int r;

        d->parent = d->physfn = d->group = IOVIRT_NONE;
        r = get_str(o, "syspath", REQUIRED, &s);
        if (r < 0)
                return r;
        if (!(d->syspath = strdup(s)))
                return -ENOMEM;

        uint32_t vendor = 0, device = 0;
        int ids[] = { get_hex(o, "vendor", NULLABLE, 4, UINT16_MAX, &vendor),
                      get_hex(o, "device", NULLABLE, 4, UINT16_MAX, &device) };
        if (!same_nullness(ids, ELEMENTSOF(ids)))
                return -EBADMSG;
        d->ids_known = ids[0] > 0;
        d->vendor = (uint16_t) vendor;
        d->device = (uint16_t) device;
        if ((r = get_hex(o, "class", REQUIRED, 6, UINT32_MAX, &x)) < 0)
                return r;
        d->class_code = x;
        if ((r = get_bool(o, "bridge", REQUIRED, &d->bridge)) < 0 ||
            (r = get_dup(o, "driver", &d->driver)) < 0 ||
            (r = get_dup(o, "driver_override", &d->driver_override)) < 0 ||
            (r = get_dup(o, "local_cpulist", &d->local_cpulist)) < 0 ||
            (r = get_dup(o, "problem", &d->problem)) < 0 ||
            (r = get_bool(o, "boot_vga", REQUIRED, &d->boot_vga)) < 0)
                return r;
        if ((r = get_int(o, "iommu_group", NULLABLE, 0, INT_MAX, &i)) < 0)
                return r;
        d->iommu_group = r > 0 ? (int) i : -1;
        if ((r = get_int(o, "numa_node", NULLABLE, 0, INT_MAX, &i)) < 0)
                return r;
        d->numa_node = r > 0 ? (int) i : -1;

        /* the header: all of it when config space gave it, else none */
        uint32_t rev = 0, sv = 0, sd = 0;
        int64_t ht = 0;
        bool mf = false;
        int header[] = { get_hex(o, "revision", NULLABLE, 2, UINT8_MAX, &rev),
                         get_hex(o, "subsystem_vendor", NULLABLE, 4, UINT16_MAX, &sv),
                         get_hex(o, "subsystem_device", NULLABLE, 4, UINT16_MAX, &sd),
                         get_int(o, "header_type", NULLABLE, 0, UINT8_MAX, &ht),
                         get_bool(o, "multifunction", NULLABLE, &mf) };
        if (!same_nullness(header, ELEMENTSOF(header)))
                return -EBADMSG;
        k->header_known = header[0] > 0;
        if (k->header_known) {
                d->revision = (uint8_t) rev;
                d->subsys_vendor = (uint16_t) sv;
                d->subsys_device = (uint16_t) sd;
                d->header_type = k->header_type = (uint8_t) ht;
                d->multifunction = k->multifunction = mf;
        }

        /* PCIe: its type when present, and the link when it has one */
        if ((r = get_bool(o, "pcie", NULLABLE, &b)) < 0)
                return r;
        k->pcie = r == 0 ? IOVIRT_UNKNOWN : b ? IOVIRT_PRESENT : IOVIRT_ABSENT;
        if ((r = get_str(o, "pcie_type", NULLABLE, &s)) < 0 || (r > 0) != (k->pcie == IOVIRT_PRESENT))
                return -EBADMSG;
        if (r > 0) {
                int t = pcie_type_code(s);
                if (t < 0)
                        return -EBADMSG;
                k->pcie_type = (uint8_t) t;
        }
        if ((r = get_typed(o, "link", json_type_object, NULLABLE, &v)) < 0 || (r > 0 && k->pcie != IOVIRT_PRESENT))
                return -EBADMSG;
        if (r > 0) {
                unsigned max_speed, speed;
                int64_t max_width, width;
                if ((r = get_speed(v, "max_speed", &max_speed)) < 0 || (r = get_speed(v, "speed", &speed)) < 0 ||
                    (r = get_int(v, "max_width", REQUIRED, 0, PCI_EXP_LNKCAP_WIDTH >> 4, &max_width)) < 0 ||
                    (r = get_int(v, "width", REQUIRED, 0, PCI_EXP_LNKSTA_WIDTH >> 4, &width)) < 0)
                        return r;
                k->has_link = true;
                k->lnkcap = max_speed | (uint32_t) max_width << 4;
                k->lnksta = (uint16_t) (speed | (unsigned) width << 4);
        }

        /* ACS: the registers when present; acs_known tells absent from unknown */
        bool known;
        if ((r = get_bool(o, "acs_known", REQUIRED, &known)) < 0 ||
            (r = get_typed(o, "acs", json_type_object, NULLABLE, &v)) < 0 || (r > 0 && !known))
                return -EBADMSG;
        k->acs = r > 0 ? IOVIRT_PRESENT : known ? IOVIRT_ABSENT : IOVIRT_UNKNOWN;
        if (r > 0) {
                int64_t cap, ctl;
                if ((r = get_int(v, "cap", REQUIRED, 0, UINT16_MAX, &cap)) < 0 ||
                    (r = get_int(v, "ctl", REQUIRED, 0, UINT16_MAX, &ctl)) < 0)
                        return r;
                k->acs_cap = (uint16_t) cap;
                k->acs_ctl = (uint16_t) ctl;
        }

        /* SR-IOV: the counts, and the capability's registers when it could be read */
        if ((r = get_bool(o, "sriov_known", REQUIRED, &known)) < 0 ||
            (r = get_typed(o, "sriov", json_type_object, NULLABLE, &v)) < 0 || (r > 0 && !known))
                return -EBADMSG;
        if (r == 0)
                k->sriov = known ? IOVIRT_ABSENT : IOVIRT_UNKNOWN;
        else {
                int64_t total, num, initial = 0, offset = 0, stride = 0;
                uint32_t did = 0;
                json_object *vfs;
                if ((r = get_int(v, "total_vfs", REQUIRED, 0, INT_MAX, &total)) < 0 ||
                    (r = get_int(v, "num_vfs", REQUIRED, 0, INT_MAX, &num)) < 0 ||
                    (r = get_typed(v, "vfs", json_type_array, REQUIRED, &vfs)) < 0)
                        return r;
                int regs[] = { get_int(v, "initial_vfs", NULLABLE, 0, UINT16_MAX, &initial),
                               get_int(v, "vf_offset", NULLABLE, 0, UINT16_MAX, &offset),
                               get_int(v, "vf_stride", NULLABLE, 0, UINT16_MAX, &stride),
                               get_hex(v, "vf_device", NULLABLE, 4, UINT16_MAX, &did) };
                if (!same_nullness(regs, ELEMENTSOF(regs)))
                        return -EBADMSG;
                d->sriov = true;
                d->sriov_total = (unsigned) total;
                d->sriov_num = (unsigned) num;
                if (regs[0] > 0) {
                        k->sriov = IOVIRT_PRESENT;
                        d->sriov_initial = k->iov_initial = (uint16_t) initial;
                        d->sriov_offset = k->iov_offset = (uint16_t) offset;
                        d->sriov_stride = k->iov_stride = (uint16_t) stride;
                        k->iov_did = (uint16_t) did;
                }
        }

        /* resets: the methods, unless nothing could tell them */
        if ((r = get_str(o, "reset_source", REQUIRED, &s)) < 0)
                return r;
        if (streq_ptr(s, "kernel"))
                d->reset_source = IOVIRT_RESET_KERNEL;
        else if (streq_ptr(s, "config"))
                d->reset_source = IOVIRT_RESET_CONFIG;
        else if (streq_ptr(s, "unknown"))
                d->reset_source = IOVIRT_RESET_UNKNOWN;
        else
                return -EBADMSG;
        if ((r = get_typed(o, "reset_methods", json_type_array, NULLABLE, &v)) < 0 ||
            (r > 0) != (d->reset_source != IOVIRT_RESET_UNKNOWN))
                return -EBADMSG;
        return r > 0 ? get_reset_methods(v, &d->reset_methods) : 0;
}

/* The links of device i: its parent, its PF, its VFs */
static int device_links_from_json(IovirtHost *h, size_t i, json_object *o) {
        IovirtDevice *d = &h->devices[i];
        json_object *sriov;
        int r;

        if ((r = get_link(h, o, "parent", &d->parent)) < 0 || (r = get_link(h, o, "physfn", &d->physfn)) < 0)
                return r;
        if (d->sriov && (r = get_typed(o, "sriov", json_type_object, REQUIRED, &sriov)) > 0)
                r = get_refs(h, sriov, "vfs", &d->vfs, &d->n_vfs);
        return r < 0 ? r : 0;
}

/* Every parent chain ends at a root: a loop would make each walk up the
 * tree (the verdicts', "upstream") endless.  Linear: each device is walked
 * over once, marked with the walk it was met on, then as ending at a root. */
static int check_parent_chains(const IovirtHost *h) {
        _cleanup_free_ size_t *mark = calloc(h->n_devices + 1, sizeof(size_t));
        if (!mark)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++) {
                size_t p = i;
                while (p != IOVIRT_NONE && mark[p] == 0) {
                        mark[p] = i + 1;
                        p = h->devices[p].parent;
                }
                if (p != IOVIRT_NONE && mark[p] == i + 1)
                        return -EBADMSG;        /* met again on the same walk */
                for (p = i; p != IOVIRT_NONE && mark[p] == i + 1; p = h->devices[p].parent)
                        mark[p] = SIZE_MAX;
        }
        return 0;
}

/* "upstream" is the chain of parents the document's own "parent" members make */
static int check_upstream(const IovirtHost *h, size_t i, json_object *o) {
        json_object *up;
        size_t k = 0;
        int r = get_typed(o, "upstream", json_type_array, REQUIRED, &up);
        if (r < 0)
                return r;
        size_t n = json_object_array_length(up);
        for (size_t p = h->devices[i].parent; p != IOVIRT_NONE; p = h->devices[p].parent, k++)
                if (k >= n || !streq_ptr(string_of(json_object_array_get_idx(up, k)), h->devices[p].name))
                        return -EBADMSG;
        return k == n ? 0 : -EBADMSG;
}

/* The group verdict in device d's object: of d's group, naming only devices
 * in the document; *vfio_node is all that is read of it */
static int check_group(const IovirtHost *h, const IovirtDevice *d, json_object *o, bool *vfio_node) {
        json_object *g, *via, *causes;
        int64_t number;
        size_t unused;
        int r;

        if ((r = get_typed(o, "group", json_type_object, NULLABLE, &g)) < 0 || (r > 0) != (d->iommu_group >= 0))
                return -EBADMSG;
        if (r == 0)
                return 0;
        if ((r = get_int(g, "group", REQUIRED, 0, INT_MAX, &number)) < 0 || number != d->iommu_group)
                return -EBADMSG;
        if ((r = get_bool(g, "vfio_device", REQUIRED, vfio_node)) < 0 || (r = get_refs(h, g, "peers", NULL, NULL)) < 0 ||
            (r = get_link(h, g, "unknown_because", &unused)) < 0 ||
            (r = get_typed(g, "viability", json_type_object, REQUIRED, &via)) < 0 ||
            (r = get_refs(h, via, "endpoints", NULL, NULL)) < 0 || (r = get_refs(h, via, "bridges", NULL, NULL)) < 0 ||
            (r = get_refs(h, via, "host_bound", NULL, NULL)) < 0 ||
            (r = get_typed(g, "causes", json_type_array, REQUIRED, &causes)) < 0)
                return r;
        for (size_t c = 0; c < json_object_array_length(causes); c++) {
                json_object *cause = json_object_array_get_idx(causes, c);
                if (!json_object_is_type(cause, json_type_object) || (r = get_link(h, cause, "address", &unused)) < 0 ||
                    unused == IOVIRT_NONE)
                        return -EBADMSG;
        }
        return 0;
}

typedef struct Entry {
        IovirtAddress addr;
        json_object *o;
} Entry;

static int compare_entries(const void *a, const void *b) {
        return iovirt_address_compare(&((const Entry *) a)->addr, &((const Entry *) b)->addr);
}

typedef struct Membership {
        int number;
        size_t device;
} Membership;

static int compare_memberships(const void *a, const void *b) {
        const Membership *x = a, *y = b;
        if (x->number != y->number)
                return x->number < y->number ? -1 : 1;
        return x->device < y->device ? -1 : x->device > y->device;
}

/* Groups in number order, members in address order.  Sized by how many
 * devices have a group, never by the largest number (which can be
 * INT_MAX). */
static int build_groups(IovirtHost *h, json_object *const *doc) {
        size_t n = 0;
        int r;

        _cleanup_free_ Membership *m = calloc(h->n_devices + 1, sizeof(Membership));
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_devices; i++) {
                if (h->devices[i].iommu_group >= 0)
                        m[n++] = (Membership) { h->devices[i].iommu_group, i };
                else if ((r = check_group(h, &h->devices[i], doc[i], NULL)) < 0)
                        return r;       /* no group: "group" is null */
        }
        if (n == 0)
                return 0;
        qsort(m, n, sizeof(Membership), compare_memberships);
        size_t n_groups = 1;
        for (size_t i = 1; i < n; i++)
                n_groups += m[i].number != m[i - 1].number;
        h->groups = calloc(n_groups, sizeof(IovirtGroup));
        if (!h->groups)
                return -ENOMEM;
        h->n_groups = n_groups;         /* members are freed with the host as they are allocated */
        for (size_t i = 0, g = 0; i < n; g++) {
                IovirtGroup *grp = &h->groups[g];
                size_t end = i;
                while (end < n && m[end].number == m[i].number)
                        end++;
                grp->number = m[i].number;
                grp->members = calloc(end - i, sizeof(size_t));
                if (!grp->members)
                        return -ENOMEM;
                for (; i < end; i++) {
                        bool vfio_node = false;
                        IovirtDevice *d = &h->devices[m[i].device];
                        r = check_group(h, d, doc[m[i].device], &vfio_node);
                        if (r < 0)
                                return r;
                        /* every member's object says it of the same group */
                        if (grp->n_members > 0 && vfio_node != grp->vfio_node)
                                return -EBADMSG;
                        grp->vfio_node = vfio_node;
                        grp->members[grp->n_members++] = m[i].device;
                        d->group = g;
                }
        }
        return 0;
}

int iovirt_host_from_json(json_object *tree, IovirtHost **ret) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = calloc(1, sizeof(IovirtHost));
        json_object *devs;
        int r;

        if (!h)
                return -ENOMEM;
        if (get_typed(tree, "devices", json_type_array, REQUIRED, &devs) < 0)
                return -EBADMSG;

        /* the devices in address order (the schema does not promise it), each once */
        size_t n = json_object_array_length(devs);
        _cleanup_free_ Entry *e = calloc(n + 1, sizeof(Entry));
        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                e[i].o = json_object_array_get_idx(devs, i);
                const char *address;
                if (!json_object_is_type(e[i].o, json_type_object) || get_str(e[i].o, "address", REQUIRED, &address) < 0 ||
                    parse_canonical(address, &e[i].addr) < 0)
                        return -EBADMSG;
        }
        qsort(e, n, sizeof(Entry), compare_entries);
        for (size_t i = 1; i < n; i++)
                if (iovirt_address_equal(&e[i - 1].addr, &e[i].addr))
                        return -EBADMSG;

        h->devices = calloc(n + 1, sizeof(IovirtDevice));
        _cleanup_free_ json_object **doc = calloc(n + 1, sizeof(json_object *));
        if (!h->devices || !doc)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                IovirtDevice *d = &h->devices[h->n_devices++];
                d->addr = e[i].addr;
                iovirt_address_format(&d->addr, d->name);
                doc[i] = e[i].o;
                r = device_from_json(d, doc[i]);
                if (r < 0)
                        return r;
        }

        /* links, once every device is known: each must name one in the document */
        for (size_t i = 0; i < n; i++) {
                r = device_links_from_json(h, i, doc[i]);
                if (r < 0)
                        return r;
        }
        r = check_parent_chains(h);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = check_upstream(h, i, doc[i]);
                if (r < 0)
                        return r;
        }
        r = build_groups(h, doc);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(h);
        return 0;
}

int iovirt_checks_from_json(json_object *doc, IovirtChecks **ret) {
        _cleanup_(iovirt_checks_freep) IovirtChecks *c = calloc(1, sizeof(IovirtChecks));
        json_object *checks;
        static const char *const statuses[] = { "pass", "warn", "fail", "skip" };

        if (!c)
                return -ENOMEM;
        if (get_typed(doc, "checks", json_type_array, REQUIRED, &checks) < 0)
                return -EBADMSG;
        size_t n = json_object_array_length(checks);
        c->checks = calloc(n + 1, sizeof(IovirtCheck));
        if (!c->checks)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(checks, i);
                IovirtCheck *k = &c->checks[c->n_checks++];
                const char *status, *id, *title, *message;
                size_t s = 0;
                if (get_str(o, "status", REQUIRED, &status) < 0 || get_str(o, "id", REQUIRED, &id) < 0 ||
                    get_str(o, "title", REQUIRED, &title) < 0 || get_str(o, "message", REQUIRED, &message) < 0)
                        return -EBADMSG;
                while (s < ELEMENTSOF(statuses) && !streq_ptr(statuses[s], status))
                        s++;
                if (s == ELEMENTSOF(statuses))
                        return -EBADMSG;
                k->status = (IovirtCheckStatus) s;
                k->id = strdup(id);
                k->title = strdup(title);
                k->message = strdup(message);
                if (!k->id || !k->title || !k->message)
                        return -ENOMEM;
                int r = get_dup(o, "remedy", &k->remedy);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}
