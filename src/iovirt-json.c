/* SPDX-License-Identifier: LGPL-2.1-or-later */
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

/* ---- reading documents back ---- */

static const char *get_str(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v)
                       : NULL;
}

static bool get_int(json_object *o, const char *key, int *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int(v);
        return true;
}

static bool get_bool(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static json_object *get_obj(json_object *o, const char *key, json_type type) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

static bool get_hex(json_object *o, const char *key, uint32_t *ret) {
        const char *s = get_str(o, key);
        char *end;
        if (!s || !*s)
                return false;
        *ret = (uint32_t) strtoul(s, &end, 16);
        return *end == '\0';
}

static char *dup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static unsigned speed_code(const char *name) {
        for (unsigned c = 1; c < 16; c++)
                if (streq_ptr(iovirt_link_speed_name(c), name))
                        return c;
        return 0;
}

static int pcie_type_code(const char *name) {
        for (int t = 0; t < 16; t++)
                if (streq_ptr(iovirt_pcie_type_name((uint8_t) t), name))
                        return t;
        return -1;
}

static size_t find_index(const IovirtHost *h, const char *address) {
        IovirtAddress a;
        if (!address || iovirt_address_parse(address, &a, NULL) < 0)
                return IOVIRT_NONE;
        return iovirt_host_find_address(h, &a);
}

/* One device's own fields; links to others are resolved afterwards. */
static int device_from_json(IovirtDevice *d, json_object *o) {
        IovirtCaps *k = &d->caps;
        uint32_t v;
        int i;

        if (iovirt_address_parse(get_str(o, "address"), &d->addr, NULL) < 0 || !get_str(o, "syspath"))
                return -EBADMSG;
        iovirt_address_format(&d->addr, d->name);
        d->syspath = strdup(get_str(o, "syspath"));
        if (get_hex(o, "vendor", &v)) {
                d->vendor = (uint16_t) v;
                d->ids_known = get_hex(o, "device", &v);
                d->device = (uint16_t) v;
        }
        if (get_hex(o, "class", &v))
                d->class_code = v;
        d->bridge = get_bool(o, "bridge");
        d->driver = dup_or_null(get_str(o, "driver"));
        d->driver_override = dup_or_null(get_str(o, "driver_override"));
        d->local_cpulist = dup_or_null(get_str(o, "local_cpulist"));
        d->problem = dup_or_null(get_str(o, "problem"));
        d->iommu_group = get_int(o, "iommu_group", &i) ? i : -1;
        d->numa_node = get_int(o, "numa_node", &i) ? i : -1;
        d->boot_vga = get_bool(o, "boot_vga");

        /* the header is known when config space gave the revision */
        k->header_known = get_hex(o, "revision", &v);
        if (k->header_known) {
                d->revision = (uint8_t) v;
                d->multifunction = k->multifunction = get_bool(o, "multifunction");
                d->header_type = k->header_type = get_int(o, "header_type", &i) ? (uint8_t) i : 0;
                if (get_hex(o, "subsystem_vendor", &v))
                        d->subsys_vendor = (uint16_t) v;
                if (get_hex(o, "subsystem_device", &v))
                        d->subsys_device = (uint16_t) v;
        }
        json_object *pcie = get_obj(o, "pcie", json_type_boolean), *link = get_obj(o, "link", json_type_object);
        k->pcie = !pcie ? IOVIRT_UNKNOWN : json_object_get_boolean(pcie) ? IOVIRT_PRESENT : IOVIRT_ABSENT;
        if (k->pcie == IOVIRT_PRESENT) {
                int t = pcie_type_code(get_str(o, "pcie_type"));
                if (t < 0)
                        return -EBADMSG;
                k->pcie_type = (uint8_t) t;
        }
        if (link) {
                int mw = 0, w = 0;
                get_int(link, "max_width", &mw);
                get_int(link, "width", &w);
                k->has_link = true;
                k->lnkcap = speed_code(get_str(link, "max_speed")) | (uint32_t) mw << 4;
                k->lnksta = (uint16_t) (speed_code(get_str(link, "speed")) | (unsigned) w << 4);
        }
        json_object *acs = get_obj(o, "acs", json_type_object);
        k->acs = acs ? IOVIRT_PRESENT : get_bool(o, "acs_known") ? IOVIRT_ABSENT : IOVIRT_UNKNOWN;
        if (acs && get_int(acs, "cap", &i))
                k->acs_cap = (uint16_t) i;
        if (acs && get_int(acs, "ctl", &i))
                k->acs_ctl = (uint16_t) i;

        json_object *sriov = get_obj(o, "sriov", json_type_object);
        if (!sriov && get_bool(o, "sriov_known"))
                k->sriov = IOVIRT_ABSENT;
        if (sriov) {
                d->sriov = true;
                d->sriov_total = get_int(sriov, "total_vfs", &i) ? (unsigned) i : 0;
                d->sriov_num = get_int(sriov, "num_vfs", &i) ? (unsigned) i : 0;
                if (get_int(sriov, "initial_vfs", &i)) {
                        k->sriov = IOVIRT_PRESENT;
                        d->sriov_initial = k->iov_initial = (uint16_t) i;
                        d->sriov_offset = k->iov_offset = get_int(sriov, "vf_offset", &i) ? (uint16_t) i : 0;
                        d->sriov_stride = k->iov_stride = get_int(sriov, "vf_stride", &i) ? (uint16_t) i : 0;
                        if (get_hex(sriov, "vf_device", &v))
                                k->iov_did = (uint16_t) v;
                }
        }
        const char *source = get_str(o, "reset_source");
        json_object *resets = get_obj(o, "reset_methods", json_type_array);
        d->reset_source = streq_ptr(source, "kernel")   ? IOVIRT_RESET_KERNEL
                          : streq_ptr(source, "config") ? IOVIRT_RESET_CONFIG
                                                        : IOVIRT_RESET_UNKNOWN;
        if (resets) {
                char buf[256] = "";
                size_t l = 0;
                for (size_t r = 0; r < json_object_array_length(resets) && l < sizeof(buf); r++)
                        l += (size_t) snprintf(buf + l, sizeof(buf) - l, "%s%s", r ? " " : "",
                                               json_object_get_string(json_object_array_get_idx(resets, r)));
                d->reset_methods = strdup(buf);
        }
        return d->syspath ? 0 : -ENOMEM;
}

static int compare_devices_by_address(const void *a, const void *b) {
        return iovirt_address_compare(&((const IovirtDevice *) a)->addr, &((const IovirtDevice *) b)->addr);
}

int iovirt_host_from_json(json_object *tree, IovirtHost **ret) {
        _cleanup_(iovirt_host_freep) IovirtHost *h = calloc(1, sizeof(IovirtHost));
        json_object *devs = get_obj(tree, "devices", json_type_array);
        int r;

        if (!h)
                return -ENOMEM;
        if (!devs)
                return -EBADMSG;
        size_t n = json_object_array_length(devs);
        h->devices = calloc(n + 1, sizeof(IovirtDevice));
        if (!h->devices)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                h->n_devices++;
                r = device_from_json(&h->devices[i], json_object_array_get_idx(devs, i));
                if (r < 0)
                        return r;
        }
        qsort(h->devices, n, sizeof(IovirtDevice), compare_devices_by_address);

        /* links: parent, PF/VFs, groups.  doc[i]: device i's object in the
         * document (which is in address order: usually the i-th) */
        _cleanup_free_ json_object **doc = calloc(n + 1, sizeof(json_object *));
        int max_group = -1;
        if (!doc)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = NULL;
                for (size_t j = 0; j < n && !o; j++)
                        if (streq_ptr(get_str(json_object_array_get_idx(devs, (i + j) % n), "address"),
                                      h->devices[i].name))
                                o = json_object_array_get_idx(devs, (i + j) % n);
                doc[i] = o;
                IovirtDevice *d = &h->devices[i];
                d->parent = find_index(h, get_str(o, "parent"));
                d->physfn = find_index(h, get_str(o, "physfn"));
                d->group = IOVIRT_NONE;
                json_object *sriov = get_obj(o, "sriov", json_type_object),
                            *vfs = sriov ? get_obj(sriov, "vfs", json_type_array) : NULL;
                for (size_t v = 0; vfs && v < json_object_array_length(vfs); v++) {
                        size_t vf = find_index(h, json_object_get_string(json_object_array_get_idx(vfs, v)));
                        size_t *p = reallocarray(d->vfs, d->n_vfs + 1, sizeof(size_t));
                        if (!p)
                                return -ENOMEM;
                        d->vfs = p;
                        if (vf != IOVIRT_NONE)
                                d->vfs[d->n_vfs++] = vf;
                }
                if (d->iommu_group > max_group)
                        max_group = d->iommu_group;
        }
        /* groups in number order, members in address order: count, then fill */
        if (max_group >= 0) {
                _cleanup_free_ size_t *slot = calloc((size_t) max_group + 1, sizeof(size_t)); /* index + 1 */
                if (!slot)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        if (h->devices[i].iommu_group >= 0 && !slot[h->devices[i].iommu_group])
                                slot[h->devices[i].iommu_group] = 1;
                for (int g = 0; g <= max_group; g++)
                        if (slot[g])
                                slot[g] = ++h->n_groups;
                h->groups = calloc(h->n_groups + 1, sizeof(IovirtGroup));
                if (!h->groups)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        IovirtDevice *d = &h->devices[i];
                        if (d->iommu_group < 0)
                                continue;
                        IovirtGroup *grp = &h->groups[slot[d->iommu_group] - 1];
                        if (grp->n_members == 0) {
                                json_object *gv = get_obj(doc[i], "group", json_type_object);
                                grp->number = d->iommu_group;
                                grp->vfio_node = gv && get_bool(gv, "vfio_device");
                        }
                        size_t *p = reallocarray(grp->members, grp->n_members + 1, sizeof(size_t));
                        if (!p)
                                return -ENOMEM;
                        grp->members = p;
                        grp->members[grp->n_members++] = i;
                        d->group = slot[d->iommu_group] - 1;
                }
        }
        *ret = TAKE_PTR(h);
        return 0;
}

int iovirt_checks_from_json(json_object *doc, IovirtChecks **ret) {
        _cleanup_(iovirt_checks_freep) IovirtChecks *c = calloc(1, sizeof(IovirtChecks));
        json_object *checks = get_obj(doc, "checks", json_type_array);
        static const char *const statuses[] = { "pass", "warn", "fail", "skip" };

        if (!c)
                return -ENOMEM;
        if (!checks)
                return -EBADMSG;
        size_t n = json_object_array_length(checks);
        c->checks = calloc(n + 1, sizeof(IovirtCheck));
        if (!c->checks)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(checks, i);
                IovirtCheck *k = &c->checks[c->n_checks++];
                const char *status = get_str(o, "status");
                size_t s = 0;
                while (s < ELEMENTSOF(statuses) && !streq_ptr(statuses[s], status))
                        s++;
                if (s == ELEMENTSOF(statuses) || !get_str(o, "id") || !get_str(o, "title") || !get_str(o, "message"))
                        return -EBADMSG;
                k->status = (IovirtCheckStatus) s;
                k->id = strdup(get_str(o, "id"));
                k->title = strdup(get_str(o, "title"));
                k->message = strdup(get_str(o, "message"));
                k->remedy = dup_or_null(get_str(o, "remedy"));
                if (!k->id || !k->title || !k->message)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(c);
        return 0;
}
