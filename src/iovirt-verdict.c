/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "iovirt-names.h"
#include "iovirt-variant.h"
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

/* The state of one computation: the host's devices, one union-find node
 * per device plus one per root bus, and what widens which domain. */
typedef struct Analysis {
        const IovirtHost *host;
        size_t n;
        size_t *rootbus;        /* per device on a root bus: its root-bus node (n + k) */
        bool *collapse;         /* per node: everything below it is one domain */
        bool *unknown;          /* per device: config too unreadable to judge */
        CauseAt *causes;
        size_t n_causes, causes_allocated;
        Domains dom;
        /* devices grouped by domain root: by_domain[start[r] .. start[r+1]) */
        size_t *root, *start, *by_domain;
} Analysis;

static void analysis_clear(Analysis *a) {
        free(a->rootbus);
        free(a->collapse);
        free(a->unknown);
        free(a->causes);
        free(a->dom.parent);
        free(a->root);
        free(a->start);
        free(a->by_domain);
}

static int push_index(size_t **array, size_t *n, size_t value) {
        size_t *p = reallocarray(*array, *n + 1, sizeof(size_t));
        if (!p)
                return -ENOMEM;
        p[(*n)++] = value;
        *array = p;
        return 0;
}

static int add_cause(Analysis *a, size_t device, IovirtCauseKind kind, uint16_t missing, size_t node) {
        CauseAt *c = GROW(a->causes, a->n_causes, a->causes_allocated);
        if (!c)
                return -ENOMEM;
        *c = (CauseAt) { { device, kind, missing }, node };
        return 0;
}

static int analysis_init(Analysis *a, const IovirtHost *h) {
        size_t n = h->n_devices;
        *a = (Analysis) { .host = h, .n = n };
        a->rootbus = malloc((n + 1) * sizeof(size_t));
        a->collapse = calloc(2 * n + 1, sizeof(bool));
        a->unknown = calloc(n + 1, sizeof(bool));
        a->dom.parent = malloc((2 * n + 1) * sizeof(size_t));
        if (!a->rootbus || !a->collapse || !a->unknown || !a->dom.parent)
                return -ENOMEM;
        for (size_t i = 0; i < 2 * n; i++)
                a->dom.parent[i] = i;
        /* devices on one root bus share the first one's pseudo node */
        for (size_t i = 0; i < n; i++) {
                const IovirtDevice *d = &h->devices[i];
                a->rootbus[i] = IOVIRT_NONE;
                if (d->parent != IOVIRT_NONE)
                        continue;
                a->rootbus[i] = n + i;
                for (size_t j = 0; j < i; j++)     /* root buses are few */
                        if (h->devices[j].parent == IOVIRT_NONE && h->devices[j].addr.domain == d->addr.domain &&
                            h->devices[j].addr.bus == d->addr.bus) {
                                a->rootbus[i] = a->rootbus[j];
                                break;
                        }
        }
        return 0;
}

/* Pass 1: what widens a domain, and from where. */
static int find_widenings(Analysis *a) {
        for (size_t i = 0; i < a->n; i++) {
                const IovirtDevice *d = &a->host->devices[i];
                int r = 0;
                a->unknown[i] = verdict_unknown(d);
                if (a->unknown[i])
                        continue;
                if (is_conventional_bridge(d)) {
                        a->collapse[i] = true;
                        r = add_cause(a, i, IOVIRT_CAUSE_PCI_BRIDGE, 0, i);
                } else if (iovirt_caps_is_port(&d->caps) && iovirt_acs_missing(&d->caps)) {
                        /* peers below this port reach everything on the bus above it */
                        size_t node = d->parent != IOVIRT_NONE ? d->parent : a->rootbus[i];
                        a->collapse[node] = true;
                        r = add_cause(a, i,
                                      d->caps.acs == IOVIRT_PRESENT ? IOVIRT_CAUSE_PORT_ACS_DISABLED
                                                                   : IOVIRT_CAUSE_PORT_WITHOUT_ACS,
                                      iovirt_acs_missing(&d->caps), node);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Pass 2: each device joins the widest collapsed node above it. */
static void join_collapsed(Analysis *a) {
        const IovirtDevice *devs = a->host->devices;
        for (size_t i = 0; i < a->n; i++) {
                size_t top = IOVIRT_NONE, cur = i;
                for (;;) {
                        if (a->collapse[cur])
                                top = cur;
                        if (devs[cur].parent == IOVIRT_NONE) {
                                if (a->rootbus[cur] != IOVIRT_NONE && a->collapse[a->rootbus[cur]])
                                        top = a->rootbus[cur];
                                break;
                        }
                        cur = devs[cur].parent;
                }
                if (top != IOVIRT_NONE)
                        dom_union(&a->dom, i, top);
        }
}

static bool shares_functions(const Analysis *a, size_t i) {
        const IovirtDevice *d = &a->host->devices[i];
        return !a->unknown[i] && d->multifunction && !iovirt_device_is_vf(d) && !multifunction_acs_ok(d);
}

/* Pass 3: functions of one device without ACS share a domain. */
static int join_functions(Analysis *a) {
        const IovirtDevice *devs = a->host->devices;
        for (size_t i = 0; i < a->n; i++) {
                if (!shares_functions(a, i))
                        continue;
                bool shared = false;
                /* devices are in address order: a slot's functions are adjacent */
                for (size_t j = i + 1; j < a->n && same_slot(&devs[j], &devs[i]); j++)
                        if (shares_functions(a, j)) {
                                dom_union(&a->dom, i, j);
                                shared = true;
                        }
                for (size_t j = i; j > 0 && same_slot(&devs[j - 1], &devs[i]); j--)
                        shared = shared || shares_functions(a, j - 1);
                if (shared) {
                        int r = add_cause(a, i, IOVIRT_CAUSE_MULTIFUNCTION, iovirt_acs_missing(&devs[i].caps), i);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Lists the devices of each domain (a counting sort on the domain root). */
static int index_domains(Analysis *a) {
        size_t n = a->n;
        a->root = malloc((n + 1) * sizeof(size_t));
        a->start = calloc(2 * n + 2, sizeof(size_t));
        a->by_domain = malloc((n + 1) * sizeof(size_t));
        _cleanup_free_ size_t *fill = malloc((2 * n + 2) * sizeof(size_t));
        if (!a->root || !a->start || !a->by_domain || !fill)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                a->root[i] = dom_find(&a->dom, i);
                a->start[a->root[i] + 1]++;
        }
        for (size_t k = 1; k <= 2 * n + 1; k++)
                a->start[k] += a->start[k - 1];
        memcpy(fill, a->start, (2 * n + 2) * sizeof(size_t));
        for (size_t i = 0; i < n; i++)
                a->by_domain[fill[a->root[i]]++] = i;
        return 0;
}

/* The verdict on group gi.  seen_domain marks domains already visited for it. */
static int judge_group(Analysis *a, size_t gi, size_t *seen_domain, IovirtGroupVerdict *gv) {
        const IovirtHost *h = a->host;
        const IovirtGroup *g = &h->groups[gi];
        int r;

        gv->unknown_device = IOVIRT_NONE;
        for (size_t m = 0; m < g->n_members; m++) {
                size_t i = g->members[m];
                const IovirtDevice *d = &h->devices[i];

                /* unknown if it, or anything on its way up, could not be read */
                for (size_t cur = i; cur != IOVIRT_NONE && gv->unknown_device == IOVIRT_NONE;
                     cur = h->devices[cur].parent)
                        if (a->unknown[cur])
                                gv->unknown_device = cur;

                /* viability */
                if (iovirt_device_is_endpoint(d)) {
                        r = push_index(&gv->endpoints, &gv->n_endpoints, i);
                        if (r == 0 && d->driver && !iovirt_variant_is_vfio(d->driver) &&
                            !streq_ptr(d->driver, "pci-stub"))
                                r = push_index(&gv->host_bound, &gv->n_host_bound, i);
                } else
                        r = push_index(&gv->bridges, &gv->n_bridges, i);
                if (r < 0)
                        return r;

                /* peers: the endpoints of this member's domain outside the group */
                size_t rt = a->root[i];
                if (seen_domain[rt] == gi + 1)
                        continue;
                seen_domain[rt] = gi + 1;
                for (size_t k = a->start[rt]; k < a->start[rt + 1]; k++) {
                        size_t p = a->by_domain[k];
                        if (h->devices[p].group != gi && iovirt_device_is_endpoint(&h->devices[p]) &&
                            (r = push_index(&gv->peers, &gv->n_peers, p)) < 0)
                                return r;
                }
                for (size_t c = 0; c < a->n_causes; c++) {
                        if (dom_find(&a->dom, a->causes[c].node) != rt)
                                continue;
                        IovirtCause *nc = reallocarray(gv->causes, gv->n_causes + 1, sizeof(IovirtCause));
                        if (!nc)
                                return -ENOMEM;
                        gv->causes = nc;
                        nc[gv->n_causes++] = a->causes[c].cause;
                }
        }

        /* A member counts as a bridge only when its header (or the kernel's
         * class) says so: an unreadable function is an endpoint, and its
         * group unknown, never bridges. */
        if (gv->n_endpoints == 0)
                gv->isolation = IOVIRT_BRIDGES;     /* nothing to hand out, peers or not */
        else if (gv->unknown_device != IOVIRT_NONE)
                gv->isolation = IOVIRT_ISOLATION_UNKNOWN;
        else if (gv->n_peers > 0)
                gv->isolation = IOVIRT_LEAKY;
        else if (gv->n_endpoints > 1)
                gv->isolation = IOVIRT_SHARED;
        else
                gv->isolation = IOVIRT_ISOLATED;
        return 0;
}

int iovirt_verdicts_compute(const IovirtHost *h, IovirtVerdicts **ret) {
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL;
        _cleanup_(analysis_clear) Analysis a = {};
        _cleanup_free_ size_t *seen_domain = NULL;    /* group index + 1 */
        int r;

        if (h->damaged)
                return -ESTALE;     /* a half-rebuilt model would judge half a group */
        v = calloc(1, sizeof(IovirtVerdicts));
        if (!v)
                return -ENOMEM;
        if ((r = analysis_init(&a, h)) < 0 || (r = find_widenings(&a)) < 0)
                return r;
        join_collapsed(&a);
        if ((r = join_functions(&a)) < 0 || (r = index_domains(&a)) < 0)
                return r;

        v->n_groups = h->n_groups;
        v->groups = calloc(h->n_groups + 1, sizeof(IovirtGroupVerdict));
        seen_domain = calloc(2 * h->n_devices + 1, sizeof(size_t));
        if (!v->groups || !seen_domain)
                return -ENOMEM;
        for (size_t gi = 0; gi < h->n_groups; gi++)
                if ((r = judge_group(&a, gi, seen_domain, &v->groups[gi])) < 0)
                        return r;

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
        case IOVIRT_BRIDGES:
                return "bridges";
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

void iovirt_cause_text(const IovirtHost *h, const IovirtCause *cause, char *buf, size_t size) {
        const IovirtDevice *d = &h->devices[cause->device];
        char bits[64];
        iovirt_acs_bits_format(cause->missing, bits, sizeof(bits));
        switch (cause->kind) {
        case IOVIRT_CAUSE_PORT_WITHOUT_ACS:
                snprintf(buf, size, "%s (%s) has no ACS capability", d->name,
                         iovirt_pcie_type_name(d->caps.pcie_type));
                break;
        case IOVIRT_CAUSE_PORT_ACS_DISABLED:
                snprintf(buf, size, "%s (%s) does not enable ACS %s", d->name,
                         iovirt_pcie_type_name(d->caps.pcie_type), bits);
                break;
        case IOVIRT_CAUSE_MULTIFUNCTION:
                snprintf(buf, size, "%.10s is a multifunction device without ACS", d->name);
                break;
        case IOVIRT_CAUSE_PCI_BRIDGE:
                snprintf(buf, size, "%s is a conventional PCI bridge: all behind it share one requester ID",
                         d->name);
                break;
        }
}
