/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A PCI function address: domain:bus:device.function */
typedef struct IovirtAddress {
        uint32_t domain;
        uint8_t bus;
        uint8_t dev;  /* 0x00-0x1f */
        uint8_t fn;   /* 0-7 */
} IovirtAddress;

/* "0000:05:00.0" plus NUL; domains above 0xffff (VMD) take up to 8 digits */
#define IOVIRT_ADDRESS_MAX 18

/* Parses the full form "0000:05:00.0", the short form "05:00.0" (domain 0)
 * and libvirt's node-device name "pci_0000_05_00_0".  Hex digits in either
 * case.  On failure returns -EINVAL and, if reason is not NULL, points it at
 * a static sentence saying what is wrong. */
int iovirt_address_parse(const char *s, IovirtAddress *ret, const char **reason);

/* Formats as the kernel does ("%04x:%02x:%02x.%x"); returns buf. */
char *iovirt_address_format(const IovirtAddress *a, char buf[static IOVIRT_ADDRESS_MAX]);

int iovirt_address_compare(const IovirtAddress *a, const IovirtAddress *b);

/* One hex digit's value, either case; -1 for anything else */
static inline int iovirt_hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static inline bool iovirt_address_equal(const IovirtAddress *a, const IovirtAddress *b) {
        return a->domain == b->domain && a->bus == b->bus && a->dev == b->dev && a->fn == b->fn;
}
