/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Builds raw config spaces for the unit tests, capability by capability,
 * with the layouts the PCI and PCIe specifications give. */

#include <stdint.h>
#include <string.h>

#include <pci/header.h>

typedef struct Cfg {
        uint8_t b[4096];
        unsigned last_cap, next_cap, last_ecap, next_ecap;
} Cfg;

static inline void put16(Cfg *c, unsigned off, uint16_t v) {
        c->b[off] = v & 0xff;
        c->b[off + 1] = v >> 8;
}

static inline void put32(Cfg *c, unsigned off, uint32_t v) {
        put16(c, off, v & 0xffff);
        put16(c, off + 2, v >> 16);
}

static inline void cfg_init(Cfg *c, uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t header) {
        memset(c, 0, sizeof(*c));
        c->next_cap = 0x40;
        c->next_ecap = 0x100;
        put16(c, PCI_VENDOR_ID, vendor);
        put16(c, PCI_DEVICE_ID, device);
        put32(c, PCI_CLASS_REVISION, class_code << 8 | 0x02);
        c->b[PCI_HEADER_TYPE] = header;
}

static inline unsigned cfg_cap(Cfg *c, uint8_t id, unsigned len) {
        unsigned off = c->next_cap;
        c->next_cap = (off + len + 3) & ~3u;
        c->b[off] = id;
        if (!c->last_cap) {
                c->b[PCI_CAPABILITY_LIST] = (uint8_t) off;
                c->b[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
        } else
                c->b[c->last_cap + 1] = (uint8_t) off;
        c->last_cap = off;
        return off;
}

static inline unsigned cfg_ecap(Cfg *c, uint16_t id, unsigned len) {
        unsigned off = c->next_ecap;
        c->next_ecap = (off + len + 3) & ~3u;
        put32(c, off, id | 1u << 16);
        if (c->last_ecap) {
                uint32_t hdr = (uint32_t) c->b[c->last_ecap] | (uint32_t) c->b[c->last_ecap + 1] << 8 |
                               (uint32_t) c->b[c->last_ecap + 2] << 16;
                put32(c, c->last_ecap, (hdr & 0xfffff) | off << 20);
        }
        c->last_ecap = off;
        return off;
}

static inline unsigned cfg_pcie(Cfg *c, uint8_t type, uint32_t devcap) {
        unsigned off = cfg_cap(c, PCI_CAP_ID_EXP, 0x3c);
        put16(c, off + PCI_EXP_FLAGS, (uint16_t) (2 | type << 4));
        put32(c, off + PCI_EXP_DEVCAP, devcap);
        put32(c, off + PCI_EXP_LNKCAP, 0x3 | 16 << 4);   /* 8GT/s x16 */
        put16(c, off + PCI_EXP_LNKSTA, 0x2 | 8 << 4);    /* 5GT/s x8 */
        return off;
}

static inline unsigned cfg_acs(Cfg *c, uint16_t cap, uint16_t ctl) {
        unsigned off = cfg_ecap(c, PCI_EXT_CAP_ID_ACS, 8);
        put16(c, off + PCI_ACS_CAP, cap);
        put16(c, off + PCI_ACS_CTRL, ctl);
        return off;
}
