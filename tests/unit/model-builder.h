/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Hand-built host models for the unit tests: a table of functions (address,
 * parent, group, kind, ACS control, driver) becomes an IovirtHost in
 * address order, as discovery leaves it.  Include after cmocka.h. */

#include "iovirt-verdict.h"

/* Hand-built models: each function as the verdicts see it */
typedef enum Kind { HOST_BRIDGE, ROOT_PORT, UPSTREAM, DOWNSTREAM, PCI_BRIDGE, ENDPOINT, CONVENTIONAL } Kind;

#define NO_ACS 0xffff
#define ACS_UNREADABLE 0xfffe
#define ACS_OK (PCI_ACS_CTRL_VALID | PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED | PCI_ACS_CTRL_FORWARD)

typedef struct Spec {
        const char *addr, *parent;
        int group;
        Kind kind;
        uint16_t acs;      /* control register, NO_ACS or ACS_UNREADABLE */
        bool mf;
        const char *driver;
} Spec;

static inline int compare_specs(const void *a, const void *b) {
        IovirtAddress x, y;
        iovirt_address_parse(((const Spec *) a)->addr, &x, NULL);
        iovirt_address_parse(((const Spec *) b)->addr, &y, NULL);
        return iovirt_address_compare(&x, &y);
}

/* The model is in address order, as discovery leaves it */
static inline IovirtHost *build(const Spec *unsorted, size_t n) {
        IovirtHost *h = calloc(1, sizeof(IovirtHost));
        Spec specs[64];
        assert_true(n <= ELEMENTSOF(specs));
        memcpy(specs, unsorted, n * sizeof(Spec));
        qsort(specs, n, sizeof(Spec), compare_specs);
        h->devices = calloc(n, sizeof(IovirtDevice));
        h->n_devices = n;
        for (size_t i = 0; i < n; i++) {
                IovirtDevice *d = &h->devices[i];
                const Spec *s = &specs[i];
                assert_int_equal(iovirt_address_parse(s->addr, &d->addr, NULL), 0);
                iovirt_address_format(&d->addr, d->name);
                d->syspath = strdup(s->addr);
                d->ids_known = d->caps.header_known = true;
                d->multifunction = s->mf;
                d->driver = s->driver ? strdup(s->driver) : NULL;
                d->iommu_group = s->group;
                d->group = IOVIRT_NONE;      /* until its group is built below */
                d->physfn = IOVIRT_NONE;
                d->header_type = (s->kind == ENDPOINT || s->kind == CONVENTIONAL || s->kind == HOST_BRIDGE)
                                         ? PCI_HEADER_TYPE_NORMAL
                                         : PCI_HEADER_TYPE_BRIDGE;
                d->caps.header_type = d->header_type;
                d->bridge = s->kind != ENDPOINT && s->kind != CONVENTIONAL;
                d->class_code = s->kind == HOST_BRIDGE ? 0x060000 : d->bridge ? 0x060400 : 0x020000;
                static const uint8_t types[] = { [ROOT_PORT] = PCI_EXP_TYPE_ROOT_PORT,
                                                 [UPSTREAM] = PCI_EXP_TYPE_UPSTREAM,
                                                 [DOWNSTREAM] = PCI_EXP_TYPE_DOWNSTREAM,
                                                 [PCI_BRIDGE] = PCI_EXP_TYPE_PCI_BRIDGE,
                                                 [ENDPOINT] = PCI_EXP_TYPE_ENDPOINT, [CONVENTIONAL] = 0 };
                d->caps.pcie = s->kind == CONVENTIONAL || s->kind == HOST_BRIDGE ? IOVIRT_ABSENT : IOVIRT_PRESENT;
                d->caps.pcie_type = types[s->kind];
                d->caps.acs = s->acs == NO_ACS           ? IOVIRT_ABSENT
                              : s->acs == ACS_UNREADABLE ? IOVIRT_UNKNOWN
                                                         : IOVIRT_PRESENT;
                /* ports offer SV TB RR CR UF; endpoints RR CR (what real parts do) */
                d->caps.acs_cap = d->bridge ? 0x1f : PCI_ACS_CAP_REQ_RED | PCI_ACS_CAP_CMPLT_RED;
                d->caps.acs_ctl = d->caps.acs == IOVIRT_PRESENT ? s->acs : 0;
        }
        for (size_t i = 0; i < n; i++) {
                IovirtAddress p;
                h->devices[i].parent = IOVIRT_NONE;
                if (specs[i].parent) {
                        assert_int_equal(iovirt_address_parse(specs[i].parent, &p, NULL), 0);
                        h->devices[i].parent = iovirt_host_find_address(h, &p);
                        assert_true(h->devices[i].parent != IOVIRT_NONE);
                }
        }
        /* groups in number order, members in address order */
        int max = -1;
        for (size_t i = 0; i < n; i++)
                if (specs[i].group > max)
                        max = specs[i].group;
        h->groups = calloc((size_t) max + 1, sizeof(IovirtGroup));
        for (int g = 0; g <= max; g++) {
                IovirtGroup *grp = &h->groups[h->n_groups];
                grp->number = g;
                grp->members = calloc(n, sizeof(size_t));
                for (size_t i = 0; i < n; i++)
                        if (specs[i].group == g) {
                                grp->members[grp->n_members++] = i;
                                h->devices[i].group = h->n_groups;
                        }
                if (grp->n_members)
                        h->n_groups++;
                else
                        free(grp->members);
        }
        return h;
}

static inline const IovirtGroupVerdict *verdict(const IovirtHost *h, const IovirtVerdicts *v, int number) {
        for (size_t i = 0; i < h->n_groups; i++)
                if (h->groups[i].number == number)
                        return &v->groups[i];
        fail_msg("no group %d", number);
        return NULL;
}

static inline void assert_addresses(const IovirtHost *h, const size_t *idx, size_t n, const char *expected) {
        char buf[1024] = "";
        size_t l = 0;
        for (size_t i = 0; i < n; i++)
                l += (size_t) snprintf(buf + l, sizeof(buf) - l, "%s%s", i ? " " : "", h->devices[idx[i]].name);
        assert_string_equal(buf, expected);
}

#define RUN(specs, h, v)                                                            \
        _cleanup_(iovirt_host_freep) IovirtHost *h = build(specs, ELEMENTSOF(specs)); \
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL;                  \
        assert_int_equal(iovirt_verdicts_compute(h, &v), 0)

