/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>

#include "iovirtctl.h"

/* Class names an operator types, and the class code prefix each means */
static const struct {
        const char *name;
        uint32_t code;     /* base class, or base << 8 | subclass when sub */
        bool sub;
} classes[] = {
        { "storage", 0x01, false },     { "net", 0x02, false },        { "network", 0x02, false },
        { "display", 0x03, false },     { "gpu", 0x03, false },        { "multimedia", 0x04, false },
        { "audio", 0x0403, true },      { "memory", 0x05, false },     { "bridge", 0x06, false },
        { "communication", 0x07, false }, { "system", 0x08, false },   { "input", 0x09, false },
        { "serial", 0x0c, false },      { "usb", 0x0c03, true },       { "wireless", 0x0d, false },
        { "crypto", 0x10, false },      { "signal", 0x11, false },     { "accelerator", 0x12, false },
};

int ctl_parse_class(const char *s, uint32_t *code, unsigned *digits) {
        for (size_t i = 0; i < ELEMENTSOF(classes); i++)
                if (strcasecmp(s, classes[i].name) == 0) {
                        *code = classes[i].code;
                        *digits = classes[i].sub ? 4 : 2;
                        return 0;
                }
        size_t l = strlen(s);
        if (l == 0 || l > 6 || l % 2)
                return -EINVAL;
        for (size_t i = 0; i < l; i++)
                if (!isxdigit((unsigned char) s[i]))
                        return -EINVAL;
        *code = (uint32_t) strtoul(s, NULL, 16);
        *digits = (unsigned) l;
        return 0;
}

const char *ctl_class_names(char *buf, size_t size) {
        size_t l = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(classes) && l < size; i++)
                l += (size_t) snprintf(buf + l, size - l, "%s%s", i ? " " : "", classes[i].name);
        return buf;
}

int verb_list_devices(Ctl *c, int argc, char **argv) {
        uint32_t code = 0;
        unsigned digits = 0;

        /* the dispatcher checked --class */
        if (c->filter_class && ctl_parse_class(c->filter_class, &code, &digits) < 0)
                return ctl_fail(c, CTL_ERROR_USAGE, "unknown class '%s'", c->filter_class);
        if (ctl_load(c) < 0)
                return 1;

        _cleanup_free_ size_t *sel = calloc(c->host->n_devices + 1, sizeof(size_t));
        size_t n = 0;
        if (!sel)
                return ctl_fail(c, CTL_ERROR_FAILED, "out of memory");
        for (size_t i = 0; i < c->host->n_devices; i++) {
                const IovirtDevice *d = &c->host->devices[i];
                if (c->filter_class && (d->class_code >> (4 * (6 - digits))) != code)
                        continue;
                if (c->filter_driver &&
                    !(streq_ptr(c->filter_driver, "none") ? !d->driver : streq_ptr(c->filter_driver, d->driver)))
                        continue;
                if (c->filter_group >= 0 && d->iommu_group != c->filter_group)
                        continue;
                if (c->filter_numa >= 0 && d->numa_node != c->filter_numa)
                        continue;
                sel[n++] = i;
        }

        if (c->json) {
                _cleanup_(json_object_putp) json_object *o = iovirt_json_devices(c->host, sel, n);
                ctl_print_json(o);
                return 0;
        }
        unsigned desc = c->columns > 63 ? c->columns - 53 : 10;
        printf("ADDRESS       ID         GROUP  NUMA  DRIVER         DEVICE\n");
        for (size_t k = 0; k < n; k++) {
                const IovirtDevice *d = &c->host->devices[sel[k]];
                char id[16], group[16], numa[16], buf[512];
                snprintf(id, sizeof(id), "%04x:%04x", d->vendor, d->device);
                snprintf(group, sizeof(group), "%d", d->iommu_group);
                snprintf(numa, sizeof(numa), "%d", d->numa_node);
                printf("%-12s  %-9s  %5s  %4s  ", d->name, d->ids_known ? id : "?",
                       d->iommu_group >= 0 ? group : "-", d->numa_node >= 0 ? numa : "-");
                ctl_cell(d->driver ? d->driver : "-", 13, true);
                printf("  ");
                ctl_cell(ctl_device_name(c, d, buf, sizeof(buf)), desc, false);
                printf("\n");
        }
        if (n == 0)
                fprintf(stderr, "No PCI function matches.\n");
        return 0;
}
