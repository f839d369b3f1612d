/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "iovirtctl.h"

static void field(const char *name, const char *fmt, ...) _printf_(2, 3);
static void field(const char *name, const char *fmt, ...) {
        va_list ap;
        printf("  %-14s ", name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
}

static const char *unknown_text(const IovirtDevice *d) {
        return d->problem ? "unknown (see Problem below)" : "unknown (config space unreadable: run as root)";
}

static void show_acs(const IovirtDevice *d) {
        char cap[64], ctl[64];
        if (d->caps.acs == IOVIRT_UNKNOWN)
                field("ACS:", "%s", unknown_text(d));
        else if (d->caps.acs == IOVIRT_ABSENT)
                field("ACS:", "none");
        else
                field("ACS:", "capable of %s; enabled: %s",
                      *iovirt_acs_bits_format(d->caps.acs_cap, cap, sizeof(cap)) ? cap : "nothing",
                      *iovirt_acs_bits_format(d->caps.acs_ctl, ctl, sizeof(ctl)) ? ctl : "nothing");
}

static void show_upstream(Ctl *c, const IovirtDevice *d) {
        for (size_t p = d->parent; p != IOVIRT_NONE; p = c->host->devices[p].parent) {
                const IovirtDevice *u = &c->host->devices[p];
                char acs[128] = "";
                if (iovirt_caps_is_port(&u->caps)) {
                        char bits[64];
                        uint16_t missing = iovirt_acs_missing(&u->caps);
                        if (u->caps.acs == IOVIRT_UNKNOWN)
                                snprintf(acs, sizeof(acs), ", ACS unknown");
                        else if (u->caps.acs == IOVIRT_ABSENT)
                                snprintf(acs, sizeof(acs), ", no ACS");
                        else if (missing)
                                snprintf(acs, sizeof(acs), ", ACS without %s",
                                         iovirt_acs_bits_format(missing, bits, sizeof(bits)));
                        else
                                snprintf(acs, sizeof(acs), ", ACS ok");
                }
                field(p == d->parent ? "Upstream:" : "", "%s (%s%s)", u->name,
                      u->caps.pcie == IOVIRT_PRESENT ? iovirt_pcie_type_name(u->caps.pcie_type)
                      : u->bridge                    ? "PCI bridge"
                                                     : "unknown",
                      acs);
        }
}

static void add_names(IovirtText *t, const IovirtHost *h, const size_t *idx, size_t n, size_t except) {
        for (size_t k = 0; k < n; k++)
                if (idx[k] != except)
                        (void) iovirt_text_add(t, " %s", h->devices[idx[k]].name);
}

/* What 'iovirtctl assign' would do with device i's group, in the words of
 * the group's verdict, naming the option that overrides a refusal when one
 * does.  NULL when out of memory. */
static char *assignment_text(Ctl *c, size_t i) {
        const IovirtHost *h = c->host;
        const IovirtDevice *d = &h->devices[i];
        const IovirtGroupVerdict *gv = &c->verdicts->groups[d->group];
        bool one = gv->n_endpoints == 1;
        IovirtText t = {};

        if (gv->isolation == IOVIRT_BRIDGES) {
                (void) iovirt_text_add(&t, "nothing to assign: group %d holds only bridges, which stay with the host",
                                       d->iommu_group);
                return iovirt_text_take(&t);
        }
        if (!iovirt_device_is_endpoint(d)) {
                /* the bridge stays; what becomes of the endpoints it is grouped with */
                (void) iovirt_text_add(&t, "a bridge: stays with the host");
                if (gv->isolation == IOVIRT_ISOLATION_UNKNOWN)
                        (void) iovirt_text_add(&t, "; the group's isolation is unknown, so");
                else if (gv->isolation == IOVIRT_LEAKY)
                        (void) iovirt_text_add(&t, "; the group is leaky, so");
                else
                        (void) iovirt_text_add(&t, " while");
                add_names(&t, h, gv->endpoints, gv->n_endpoints, IOVIRT_NONE);
                if (gv->isolation == IOVIRT_ISOLATION_UNKNOWN)
                        (void) iovirt_text_add(&t, " %s refused, and no option overrides that", one ? "is" : "are");
                else if (gv->isolation == IOVIRT_LEAKY)
                        (void) iovirt_text_add(&t, " %s refused; --accept-leaky takes %s anyway", one ? "is" : "are",
                                               one ? "it" : "them");
                else
                        (void) iovirt_text_add(&t, " %s to a VM", one ? "goes" : "go");
                return iovirt_text_take(&t);
        }
        if (gv->isolation == IOVIRT_ISOLATION_UNKNOWN) {
                (void) iovirt_text_add(&t, "refused: the group's isolation is unknown, and no option overrides that");
                return iovirt_text_take(&t);
        }
        (void) iovirt_text_add(&t, "%s%s",
                               gv->isolation == IOVIRT_LEAKY
                                       ? "refused: the group is leaky; --accept-leaky takes it anyway, to a VM "
                                       : "goes to a VM ",
                               one ? "alone" : "together with");
        add_names(&t, h, gv->endpoints, gv->n_endpoints, i);
        if (gv->n_host_bound) {
                (void) iovirt_text_add(&t, "; host drivers to unbind:");
                for (size_t e = 0; e < gv->n_host_bound; e++) {
                        const IovirtDevice *hb = &h->devices[gv->host_bound[e]];
                        (void) iovirt_text_add(&t, " %s (%s)", hb->driver, hb->name);
                }
        }
        return iovirt_text_take(&t);
}

int verb_show(Ctl *c, int argc, char **argv) {
        _cleanup_free_ char *reason = NULL;
        size_t i;
        int r;

        if (ctl_load(c) < 0)
                return 1;
        if (c->from_daemon) {
                /* the daemon resolves names: interfaces and paths are its host's */
                _cleanup_(json_object_putp) json_object *doc = NULL;
                json_object *address;
                if (ctl_call_json(c, "DescribeDevice", argv[0], &doc, &reason) < 0)
                        return 1;
                IovirtAddress a;
                if (!json_object_object_get_ex(doc, "address", &address) ||
                    iovirt_address_parse(json_object_get_string(address), &a, NULL) < 0 ||
                    (i = iovirt_host_find_address(c->host, &a)) == IOVIRT_NONE) {
                        fprintf(stderr, "iovirtctl: iovirtd's answer names no device it listed\n");
                        return 1;
                }
        } else {
                r = iovirt_host_lookup(c->host, argv[0], &i, &reason);
                if (r < 0) {
                        fprintf(stderr, "iovirtctl: %s\n", reason ? reason : strerror(-r));
                        return 1;
                }
        }
        if (c->json) {
                _cleanup_(json_object_putp) json_object *o = iovirt_json_device(c->host, c->verdicts, i);
                ctl_print_json(o);
                return 0;
        }

        const IovirtDevice *d = &c->host->devices[i];
        const IovirtCaps *k = &d->caps;
        char buf[512], vb[128], db[256], cls[128];
        const char *vn = iovirt_host_vendor_name(c->host, d, vb, sizeof(vb));
        const char *dn = iovirt_host_device_name(c->host, d, db, sizeof(db));
        const char *cn = iovirt_class_name(c->host, d->class_code, cls, sizeof(cls));

        printf("%s  %s %s [%04x:%04x]\n", d->name, vn ? vn : "Unknown vendor", dn ? dn : "unknown device",
               d->vendor, d->device);
        field("Class:", "%s (%06x)%s", cn ? cn : "unknown", d->class_code, d->bridge ? ", bridge" : "");
        if (k->header_known) {
                field("Subsystem:", "%04x:%04x", d->subsys_vendor, d->subsys_device);
                field("Revision:", "%02x%s", d->revision, d->multifunction ? ", multifunction" : "");
        }
        field("Driver:", "%s%s%s", d->driver ? d->driver : "none",
              d->driver_override ? ", driver_override=" : "", d->driver_override ? d->driver_override : "");
        if (d->group != IOVIRT_NONE) {
                const IovirtGroup *g = &c->host->groups[d->group];
                const IovirtGroupVerdict *gv = &c->verdicts->groups[d->group];
                field("IOMMU group:", "%d (%zu function%s; /dev/vfio/%d %s)", g->number, g->n_members,
                      g->n_members == 1 ? "" : "s", g->number, g->vfio_node ? "present" : "absent");
                field("Isolation:", "%s", iovirt_isolation_name(gv->isolation));
                ctl_explain_group(c, d->group, 17);
        } else
                field("IOMMU group:", "none (the IOMMU is off or does not cover this device)");
        if (d->numa_node >= 0)
                field("NUMA node:", "%d (CPUs %s)", d->numa_node, d->local_cpulist ? d->local_cpulist : "unknown");
        else
                field("NUMA node:", "none%s%s%s", d->local_cpulist ? " (CPUs " : "",
                      d->local_cpulist ? d->local_cpulist : "", d->local_cpulist ? ")" : "");
        if (k->pcie == IOVIRT_PRESENT) {
                if (k->has_link)
                        field("PCIe:", "%s, link %s x%u (capable of %s x%u)", iovirt_pcie_type_name(k->pcie_type),
                              strna(iovirt_link_speed_name(k->lnksta & PCI_EXP_LNKSTA_SPEED)),
                              (k->lnksta & PCI_EXP_LNKSTA_WIDTH) >> 4,
                              strna(iovirt_link_speed_name(k->lnkcap & PCI_EXP_LNKCAP_SPEED)),
                              (k->lnkcap & PCI_EXP_LNKCAP_WIDTH) >> 4);
                else
                        field("PCIe:", "%s", iovirt_pcie_type_name(k->pcie_type));
        } else
                field("PCIe:", "%s", k->pcie == IOVIRT_UNKNOWN ? unknown_text(d) : "no (conventional PCI)");
        show_upstream(c, d);
        show_acs(d);
        if (d->sriov) {
                size_t l = 0;
                buf[0] = '\0';
                for (size_t v = 0; v < d->n_vfs && l < sizeof(buf); v++)
                        l += (size_t) snprintf(buf + l, sizeof(buf) - l, "%s%s", v ? " " : "",
                                               c->host->devices[d->vfs[v]].name);
                field("SR-IOV:", "%u of %u VFs enabled", d->sriov_num, d->sriov_total);
                if (k->sriov == IOVIRT_PRESENT)
                        field("", "initial %u, offset %u, stride %u, VF device %04x", d->sriov_initial,
                              d->sriov_offset, d->sriov_stride, k->iov_did);
                if (d->n_vfs) {
                        printf("  %-14s ", "");
                        ctl_wrap_at(c, 17, 17, buf);
                }
        } else if (k->sriov == IOVIRT_UNKNOWN && !d->bridge)
                field("SR-IOV:", "%s", unknown_text(d));
        if (d->physfn != IOVIRT_NONE)
                field("Physical fn:", "%s (this is an SR-IOV virtual function)", c->host->devices[d->physfn].name);
        if (d->reset_source == IOVIRT_RESET_UNKNOWN)
                field("Reset:", "%s", unknown_text(d));
        else
                field("Reset:", "%s (%s)", d->reset_methods[0] ? d->reset_methods : "none",
                      d->reset_source == IOVIRT_RESET_KERNEL ? "kernel's reset_method" : "from capabilities");
        if (d->group != IOVIRT_NONE) {
                _cleanup_free_ char *text = assignment_text(c, i);
                if (!text) {
                        fprintf(stderr, "iovirtctl: %s\n", strerror(ENOMEM));
                        return 1;
                }
                printf("  %-14s ", "Assignment:");
                ctl_wrap_at(c, 17, 17, text);
        }
        if (d->problem)
                field("Problem:", "%s", d->problem);
        return 0;
}
