/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovirt-address.h"

/* Reads between min and max hex digits; returns how many, or -1. */
static int take_hex(const char **p, int min, int max, uint32_t *ret) {
        uint32_t v = 0;
        int n = 0;
        while (n < max && iovirt_hex_digit((*p)[n]) >= 0) {
                v = v * 16 + (uint32_t) iovirt_hex_digit((*p)[n]);
                n++;
        }
        if (n < min || iovirt_hex_digit((*p)[n]) >= 0)
                return -1;
        *p += n;
        *ret = v;
        return n;
}

static int fail(const char **reason, const char *why) {
        if (reason)
                *reason = why;
        return -EINVAL;
}

int iovirt_address_parse(const char *s, IovirtAddress *ret, const char **reason) {
        uint32_t domain = 0, bus, dev, fn;
        char sep = ':', dot = '.';

        if (!s || !*s)
                return fail(reason, "the address is empty; expected DDDD:BB:DD.F, e.g. 0000:05:00.0");
        if (strncmp(s, "pci_", 4) == 0) {
                /* libvirt node device name: pci_DDDD_BB_DD_F */
                s += 4;
                sep = '_';
                dot = '_';
        }
        size_t colons = 0;
        for (const char *c = s; *c; c++)
                colons += *c == sep;
        if (sep == ':' && colons != 1 && colons != 2)
                return fail(reason, "expected DDDD:BB:DD.F (e.g. 0000:05:00.0) or BB:DD.F (e.g. 05:00.0)");

        const char *p = s;
        if (sep == '_' || colons == 2) {
                if (take_hex(&p, 4, 8, &domain) < 0)
                        return fail(reason, "the domain must be 4 to 8 hex digits, as in 0000:05:00.0");
                if (*p++ != sep)
                        return fail(reason, "expected a separator after the domain, as in 0000:05:00.0");
        }
        if (take_hex(&p, 2, 2, &bus) < 0)
                return fail(reason, "the bus must be 2 hex digits (00-ff), as in 0000:05:00.0");
        if (*p++ != sep)
                return fail(reason, "expected ':' after the bus, as in 05:00.0");
        if (take_hex(&p, 2, 2, &dev) < 0)
                return fail(reason, "the device must be 2 hex digits (00-1f), as in 05:00.0");
        if (dev > 0x1f)
                return fail(reason, "the device number is out of range: it must be 00-1f");
        if (*p++ != dot)
                return fail(reason, "expected '.' between device and function, as in 05:00.0");
        if (take_hex(&p, 1, 1, &fn) < 0)
                return fail(reason, "the function must be one digit 0-7, as in 05:00.0");
        if (fn > 7)
                return fail(reason, "the function number is out of range: it must be 0-7");
        if (*p != '\0')
                return fail(reason, "unexpected characters after the function number");

        *ret = (IovirtAddress) { .domain = domain, .bus = (uint8_t) bus, .dev = (uint8_t) dev, .fn = (uint8_t) fn };
        return 0;
}

char *iovirt_address_format(const IovirtAddress *a, char buf[static IOVIRT_ADDRESS_MAX]) {
        snprintf(buf, IOVIRT_ADDRESS_MAX, "%04x:%02x:%02x.%x", a->domain, a->bus, a->dev, a->fn);
        return buf;
}

int iovirt_address_compare(const IovirtAddress *a, const IovirtAddress *b) {
        if (a->domain != b->domain)
                return a->domain < b->domain ? -1 : 1;
        if (a->bus != b->bus)
                return a->bus < b->bus ? -1 : 1;
        if (a->dev != b->dev)
                return a->dev < b->dev ? -1 : 1;
        if (a->fn != b->fn)
                return a->fn < b->fn ? -1 : 1;
        return 0;
}
