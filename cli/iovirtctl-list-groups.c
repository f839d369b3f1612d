/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "iovirtctl.h"

int verb_list_groups(Ctl *c, int argc, char **argv) {
        if (ctl_load(c) < 0)
                return 1;
        if (c->json) {
                _cleanup_(json_object_putp) json_object *o = iovirt_json_groups(c->host, c->verdicts);
                ctl_print_json(o);
                return 0;
        }
        if (c->host->n_groups == 0) {
                printf("No IOMMU groups: the IOMMU is disabled or absent on this host, so no device\n"
                       "can be given to a VM. 'iovirtctl check' tells why and what to do.\n");
                return 0;
        }

        unsigned desc = c->columns > 57 ? c->columns - 47 : 10;
        printf("GROUP  ISOLATION  ADDRESS       DRIVER         DEVICE\n");
        for (size_t gi = 0; gi < c->host->n_groups; gi++) {
                const IovirtGroup *g = &c->host->groups[gi];
                const IovirtGroupVerdict *gv = &c->verdicts->groups[gi];
                for (size_t m = 0; m < g->n_members; m++) {
                        const IovirtDevice *d = &c->host->devices[g->members[m]];
                        char buf[512];
                        if (m == 0)
                                printf("%5d  %-9s  ", g->number, iovirt_isolation_name(gv->isolation));
                        else
                                printf("%5s  %-9s  ", "", "");
                        printf("%-12s  ", d->name);
                        ctl_cell(d->driver ? d->driver : "-", 13, true);
                        printf("  ");
                        ctl_cell(ctl_device_name(c, d, buf, sizeof(buf)), desc, false);
                        printf("\n");
                }
                ctl_explain_group(c, gi, 18);
        }
        return 0;
}
