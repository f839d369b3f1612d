/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "iovirtctl.h"

/* children[k] for k in [first[i], first[i+1]) are the devices directly below i */
typedef struct Tree {
        size_t *first, *children;
} Tree;

static void print_node(Ctl *c, const Tree *t, size_t i, char *prefix, size_t plen, bool last) {
        const IovirtDevice *d = &c->host->devices[i];
        char desc[512], tag[64] = "";
        /* every function carries its group's verdict: bridges alone are
         * "bridges", a bridge in a group with endpoints has that group's word */
        if (d->group != IOVIRT_NONE)
                snprintf(tag, sizeof(tag), "[group %d %s] ", d->iommu_group,
                         iovirt_isolation_name(c->verdicts->groups[d->group].isolation));
        printf("%s%s%s %s", prefix, last ? "`-- " : "|-- ", d->name, tag);
        unsigned used = (unsigned) (plen + 4 + strlen(d->name) + 1 + strlen(tag));
        if (iovirt_caps_is_port(&d->caps)) {
                char bits[64], note[96];
                uint16_t missing = iovirt_acs_missing(&d->caps);
                snprintf(note, sizeof(note), "%s, %s%s: ", iovirt_pcie_type_name(d->caps.pcie_type),
                         d->caps.acs == IOVIRT_UNKNOWN ? "ACS unknown"
                         : d->caps.acs == IOVIRT_ABSENT ? "no ACS"
                         : missing                     ? "ACS without "
                                                       : "ACS ok",
                         d->caps.acs == IOVIRT_PRESENT && missing ? iovirt_acs_bits_format(missing, bits, sizeof(bits)) : "");
                fputs(note, stdout);
                used += (unsigned) strlen(note);
        }
        ctl_describe(c, d, desc, sizeof(desc));
        if (d->driver) {
                size_t l = strlen(desc);
                snprintf(desc + l, sizeof(desc) - l, " (%s)", d->driver);
        }
        ctl_cell(desc, c->columns > used + 10 ? c->columns - used : 10, false);
        putchar('\n');

        size_t n = t->first[i + 1] - t->first[i];
        if (n == 0 || plen + 4 >= 256)
                return;
        memcpy(prefix + plen, last ? "    " : "|   ", 5);
        for (size_t k = 0; k < n; k++)
                print_node(c, t, t->children[t->first[i] + k], prefix, plen + 4, k == n - 1);
        prefix[plen] = '\0';
}

int verb_tree(Ctl *c, int argc, char **argv) {
        if (ctl_load(c) < 0)
                return 1;
        if (c->json) {
                /* the tree is the devices with their "parent" field: the same as show --json for all */
                _cleanup_(json_object_putp) json_object *root = json_object_new_object();
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < c->host->n_devices; i++)
                        json_object_array_add(a, iovirt_json_device(c->host, c->verdicts, i));
                json_object_object_add(root, "devices", a);
                ctl_print_json(root);
                return 0;
        }

        size_t n = c->host->n_devices;
        _cleanup_free_ size_t *first = calloc(n + 2, sizeof(size_t));
        _cleanup_free_ size_t *children = calloc(n + 1, sizeof(size_t));
        _cleanup_free_ size_t *fill = calloc(n + 2, sizeof(size_t));
        if (!first || !children || !fill)
                return 1;
        for (size_t i = 0; i < n; i++)
                if (c->host->devices[i].parent != IOVIRT_NONE)
                        first[c->host->devices[i].parent + 1]++;
        for (size_t i = 1; i <= n; i++)
                first[i] += first[i - 1];
        memcpy(fill, first, (n + 1) * sizeof(size_t));
        for (size_t i = 0; i < n; i++)
                if (c->host->devices[i].parent != IOVIRT_NONE)
                        children[fill[c->host->devices[i].parent]++] = i;
        Tree t = { first, children };

        char prefix[260];
        for (size_t i = 0; i < n;) {
                const IovirtDevice *d = &c->host->devices[i];
                /* one root bus at a time: pciDDDD:BB */
                printf("pci%04x:%02x\n", d->addr.domain, d->addr.bus);
                size_t end = i;
                while (end < n && (c->host->devices[end].parent != IOVIRT_NONE ||
                                   (c->host->devices[end].addr.domain == d->addr.domain &&
                                    c->host->devices[end].addr.bus == d->addr.bus)))
                        end++;
                size_t last = i;
                for (size_t k = i; k < end; k++)
                        if (c->host->devices[k].parent == IOVIRT_NONE)
                                last = k;
                for (size_t k = i; k < end; k++)
                        if (c->host->devices[k].parent == IOVIRT_NONE) {
                                prefix[0] = '\0';
                                print_node(c, &t, k, prefix, 0, k == last);
                        }
                i = end;
        }
        return 0;
}
