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
