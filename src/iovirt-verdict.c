/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "iovirt-names.h"
#include "iovirt-verdict.h"

/* Union-find over devices plus one pseudo node per root bus */
typedef struct Domains {
        size_t *parent;
        size_t n;
} Domains;

static size_t dom_find(Domains *d, size_t x) {
        while (d->parent[x] != x) {
                d->parent[x] = d->parent[d->parent[x]];
                x = d->parent[x];
        }
        return x;
}

static void dom_union(Domains *d, size_t a, size_t b) {
        a = dom_find(d, a);
        b = dom_find(d, b);
        if (a != b)
                d->parent[a < b ? b : a] = a < b ? a : b;
}

bool iovirt_device_is_endpoint(const IovirtDevice *d) {
        return !d->bridge;
}

static bool is_conventional_bridge(const IovirtDevice *d) {
        if (!d->caps.header_known || d->header_type != PCI_HEADER_TYPE_BRIDGE)
                return false;
        if (d->caps.pcie == IOVIRT_ABSENT)
                return true;
        return d->caps.pcie == IOVIRT_PRESENT &&
               (d->caps.pcie_type == PCI_EXP_TYPE_PCI_BRIDGE || d->caps.pcie_type == PCI_EXP_TYPE_PCIE_BRIDGE);
}

/* The kernel's rule for a function of a multifunction device: the ACS
 * controls it is capable of must be enabled. */
static bool multifunction_acs_ok(const IovirtDevice *d) {
        if (d->caps.acs != IOVIRT_PRESENT)
                return false;
        uint16_t req = IOVIRT_ACS_REQUIRED & d->caps.acs_cap;
        return (d->caps.acs_ctl & req) == req;
}

/* Whether the part of config space that decides this device's role in the
 * verdict could not be read. */
static bool verdict_unknown(const IovirtDevice *d) {
        if (!d->caps.header_known || d->caps.pcie == IOVIRT_UNKNOWN)
                return true;
        if (iovirt_caps_is_port(&d->caps) && d->caps.acs == IOVIRT_UNKNOWN)
                return true;
        if (d->multifunction && d->caps.pcie == IOVIRT_PRESENT && d->caps.acs == IOVIRT_UNKNOWN)
                return true;
        return false;
}

static bool same_slot(const IovirtDevice *a, const IovirtDevice *b) {
        return a->addr.domain == b->addr.domain && a->addr.bus == b->addr.bus && a->addr.dev == b->addr.dev;
}

IovirtVerdicts *iovirt_verdicts_free(IovirtVerdicts *v) {
        if (!v)
                return NULL;
        for (size_t i = 0; i < v->n_groups; i++) {
                IovirtGroupVerdict *g = &v->groups[i];
                free(g->peers);
                free(g->causes);
                free(g->endpoints);
                free(g->bridges);
                free(g->host_bound);
        }
        free(v->groups);
        free(v);
        return NULL;
}

typedef struct CauseAt {
        IovirtCause cause;
        size_t node;    /* the node whose domain it widens */
} CauseAt;

static int push_index(size_t **array, size_t *n, size_t value) {
        size_t *p = reallocarray(*array, *n + 1, sizeof(size_t));
        if (!p)
                return -ENOMEM;
        p[(*n)++] = value;
        *array = p;
        return 0;
}

int iovirt_verdicts_compute(const IovirtHost *h, IovirtVerdicts **ret) {
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = calloc(1, sizeof(IovirtVerdicts));
        size_t n = h->n_devices;
        /* pseudo nodes for root buses: node n + k for the k-th device on a
         * root bus; devices on the same root bus map to the first one's node */
        _cleanup_free_ size_t *rootbus = malloc((n + 1) * sizeof(size_t));
        _cleanup_free_ bool *collapse = calloc(2 * n + 1, sizeof(bool));
        _cleanup_free_ bool *unknown = calloc(n + 1, sizeof(bool));
        _cleanup_free_ CauseAt *causes = NULL;
        size_t n_causes = 0, causes_allocated = 0;
        Domains dom = { .parent = malloc((2 * n + 1) * sizeof(size_t)), .n = 2 * n };
        _cleanup_free_ size_t *dom_parent = dom.parent;

        if (!v || !rootbus || !collapse || !unknown || !dom.parent)
                return -ENOMEM;
        for (size_t i = 0; i < 2 * n; i++)
                dom.parent[i] = i;

        /* Root bus pseudo node of each device (only meaningful at the top) */
        for (size_t i = 0; i < n; i++) {
                const IovirtDevice *d = &h->devices[i];
                rootbus[i] = IOVIRT_NONE;
                if (d->parent != IOVIRT_NONE)
                        continue;
                rootbus[i] = n + i;
                for (size_t j = 0; j < i; j++)     /* devices sorted: root buses few */
                        if (h->devices[j].parent == IOVIRT_NONE && h->devices[j].addr.domain == d->addr.domain &&
                            h->devices[j].addr.bus == d->addr.bus) {
                                rootbus[i] = rootbus[j];
                                break;
                        }
        }

        /* Pass 1: what widens a domain, and where */
        for (size_t i = 0; i < n; i++) {
                const IovirtDevice *d = &h->devices[i];
                unknown[i] = verdict_unknown(d);
                if (unknown[i])
                        continue;
                if (is_conventional_bridge(d)) {
                        collapse[i] = true;
                        CauseAt *c = GROW(causes, n_causes, causes_allocated);
                        if (!c)
                                return -ENOMEM;
                        *c = (CauseAt) { { i, IOVIRT_CAUSE_PCI_BRIDGE, 0 }, i };
                } else if (iovirt_caps_is_port(&d->caps) && iovirt_acs_missing(&d->caps)) {
                        /* Peers below this port reach everything on the bus above it */
                        size_t node = d->parent != IOVIRT_NONE ? d->parent : rootbus[i];
                        collapse[node] = true;
                        CauseAt *c = GROW(causes, n_causes, causes_allocated);
                        if (!c)
                                return -ENOMEM;
                        *c = (CauseAt) { { i,
                                           d->caps.acs == IOVIRT_PRESENT ? IOVIRT_CAUSE_PORT_ACS_DISABLED
                                                                        : IOVIRT_CAUSE_PORT_WITHOUT_ACS,
                                           iovirt_acs_missing(&d->caps) },
                                         node };
                }
        }

        /* Pass 2: each device joins the widest collapsed node above it */
        for (size_t i = 0; i < n; i++) {
                size_t top = IOVIRT_NONE, cur = i;
                for (;;) {
                        if (collapse[cur])
                                top = cur;
                        size_t p = h->devices[cur].parent;
                        if (p == IOVIRT_NONE) {
                                if (rootbus[cur] != IOVIRT_NONE && collapse[rootbus[cur]])
                                        top = rootbus[cur];
                                break;
                        }
                        cur = p;
                }
                if (top != IOVIRT_NONE)
                        dom_union(&dom, i, top);
        }

        /* Pass 3: functions of one device without ACS share */
        for (size_t i = 0; i < n; i++) {
                const IovirtDevice *d = &h->devices[i];
                if (unknown[i] || !d->multifunction || iovirt_device_is_vf(d) || multifunction_acs_ok(d))
                        continue;
                bool shared = false;
                for (size_t j = i + 1; j < n && same_slot(&h->devices[j], d); j++) {
                        const IovirtDevice *o = &h->devices[j];
                        if (!unknown[j] && !iovirt_device_is_vf(o) && !multifunction_acs_ok(o)) {
                                dom_union(&dom, i, j);
                                shared = true;
                        }
                }
                for (size_t j = i; j > 0 && same_slot(&h->devices[j - 1], d); j--)
                        if (!unknown[j - 1] && !iovirt_device_is_vf(&h->devices[j - 1]) &&
                            !multifunction_acs_ok(&h->devices[j - 1]))
                                shared = true;
                if (shared) {
                        CauseAt *c = GROW(causes, n_causes, causes_allocated);
                        if (!c)
                                return -ENOMEM;
                        *c = (CauseAt) { { i, IOVIRT_CAUSE_MULTIFUNCTION, iovirt_acs_missing(&d->caps) }, i };
                }
        }

        /* Devices by domain, for the peer lists: a counting sort on the root */
        _cleanup_free_ size_t *root = malloc((n + 1) * sizeof(size_t));
        _cleanup_free_ size_t *start = calloc(2 * n + 2, sizeof(size_t));
        _cleanup_free_ size_t *by_domain = malloc((n + 1) * sizeof(size_t));
        if (!root || !start || !by_domain)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                root[i] = dom_find(&dom, i);
                start[root[i] + 1]++;
        }
        for (size_t k = 1; k <= 2 * n + 1; k++)
                start[k] += start[k - 1];
        {
                _cleanup_free_ size_t *fill = malloc((2 * n + 1) * sizeof(size_t));
                if (!fill)
                        return -ENOMEM;
                memcpy(fill, start, (2 * n + 1) * sizeof(size_t));
                for (size_t i = 0; i < n; i++)
                        by_domain[fill[root[i]]++] = i;
        }

        v->n_groups = h->n_groups;
        v->groups = calloc(h->n_groups + 1, sizeof(IovirtGroupVerdict));
        if (!v->groups)
                return -ENOMEM;
        _cleanup_free_ size_t *seen_domain = calloc(2 * n + 1, sizeof(size_t)); /* group index + 1 */
        if (!seen_domain)
                return -ENOMEM;

        for (size_t gi = 0; gi < h->n_groups; gi++) {
                const IovirtGroup *g = &h->groups[gi];
                IovirtGroupVerdict *gv = &v->groups[gi];
                gv->unknown_device = IOVIRT_NONE;
                int r;

                for (size_t m = 0; m < g->n_members; m++) {
                        size_t i = g->members[m];
                        const IovirtDevice *d = &h->devices[i];
                        /* unknown if it, or anything on its way up, could not be read */
                        for (size_t cur = i; cur != IOVIRT_NONE && gv->unknown_device == IOVIRT_NONE;
                             cur = h->devices[cur].parent)
                                if (unknown[cur])
                                        gv->unknown_device = cur;
                        if (iovirt_device_is_endpoint(d)) {
                                r = push_index(&gv->endpoints, &gv->n_endpoints, i);
                                if (r == 0 && d->driver && !streq_ptr(d->driver, DRIVER_VFIO_PCI) &&
                                    !streq_ptr(d->driver, "pci-stub"))
                                        r = push_index(&gv->host_bound, &gv->n_host_bound, i);
                        } else
                                r = push_index(&gv->bridges, &gv->n_bridges, i);
                        if (r < 0)
                                return r;

                        /* peers: everything in this member's domain outside the group */
                        size_t rt = root[i];
                        if (seen_domain[rt] == gi + 1)
                                continue;
                        seen_domain[rt] = gi + 1;
                        for (size_t k = start[rt]; k < start[rt + 1]; k++) {
                                size_t p = by_domain[k];
                                if (h->devices[p].group == gi || !iovirt_device_is_endpoint(&h->devices[p]))
                                        continue;
                                r = push_index(&gv->peers, &gv->n_peers, p);
                                if (r < 0)
                                        return r;
                        }
                        for (size_t c = 0; c < n_causes; c++)
                                if (dom_find(&dom, causes[c].node) == rt) {
                                        IovirtCause *nc = reallocarray(gv->causes, gv->n_causes + 1, sizeof(IovirtCause));
                                        if (!nc)
                                                return -ENOMEM;
                                        gv->causes = nc;
                                        nc[gv->n_causes++] = causes[c].cause;
                                }
                }

                if (gv->unknown_device != IOVIRT_NONE)
                        gv->isolation = IOVIRT_ISOLATION_UNKNOWN;
                else if (gv->n_peers > 0 && gv->n_endpoints > 0)   /* bridges alone hand nothing out */
                        gv->isolation = IOVIRT_LEAKY;
                else if (gv->n_endpoints > 1)
                        gv->isolation = IOVIRT_SHARED;
                else
                        gv->isolation = IOVIRT_ISOLATED;
        }

        *ret = TAKE_PTR(v);
        return 0;
}

const char *iovirt_isolation_name(IovirtIsolation i) {
        switch (i) {
        case IOVIRT_ISOLATED:
                return "isolated";
        case IOVIRT_SHARED:
                return "shared";
        case IOVIRT_LEAKY:
                return "leaky";
        default:
                return "unknown";
        }
}

const char *iovirt_cause_kind_name(IovirtCauseKind k) {
        switch (k) {
        case IOVIRT_CAUSE_PORT_WITHOUT_ACS:
                return "port_without_acs";
        case IOVIRT_CAUSE_PORT_ACS_DISABLED:
                return "port_acs_disabled";
        case IOVIRT_CAUSE_MULTIFUNCTION:
                return "multifunction_without_acs";
        default:
                return "conventional_pci_bridge";
        }
}

char *iovirt_acs_bits_format(uint16_t mask, char *buf, size_t size) {
        static const struct {
                uint16_t bit;
                const char *name;
        } bits[] = {
                { PCI_ACS_CTRL_VALID, "SV" },     { PCI_ACS_CTRL_BLOCK, "TB" },   { PCI_ACS_CTRL_REQ_RED, "RR" },
                { PCI_ACS_CTRL_CMPLT_RED, "CR" }, { PCI_ACS_CTRL_FORWARD, "UF" }, { PCI_ACS_CTRL_EGRESS, "EC" },
                { PCI_ACS_CTRL_TRANS, "DT" },
        };
        size_t l = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(bits); i++)
                if (mask & bits[i].bit)
                        l += (size_t) snprintf(buf + l, l < size ? size - l : 0, "%s%s", l ? " " : "", bits[i].name);
        return buf;
}
