/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: up to 4096 bytes of config space to iovirt_config_decode(), two
 * ways: as a buffer of exactly those bytes (the unit tests' way), and
 * through a reader that serves the same bytes and fails past them as
 * libpci's sysfs method fails past the end of a config file (discovery's
 * way); and once more through a reader that, as for a user who is not root,
 * has only the 64-byte header.
 * Asserts beyond "no crash":
 *  - the reader is only asked for ranges inside the 4096-byte space;
 *  - a problem's offset lies inside the space (0 when there is no problem);
 *  - nothing is said without its bytes: no header from fewer than 64, no
 *    PCIe capability from fewer than its registers, no ACS or SR-IOV from
 *    a space that ends before the extended capability list;
 *  - a capability is never ABSENT while its ID sits on the part of the
 *    list that could be walked (an independent walk below);
 *  - both ways of reading decode the same capabilities;
 *  - with only the header, what is known (PRESENT or ABSENT) is what the
 *    whole space says: a narrower view may know less, never otherwise. */
#include <errno.h>
#include <pci/header.h>

#include "fuzz.h"
#include "iovirt-config.h"

typedef struct Space {
        const uint8_t *bytes;
        unsigned size;
        unsigned reads;
} Space;

static int space_reader(void *userdata, unsigned pos, uint8_t *buf, unsigned len) {
        Space *s = userdata;
        fuzz_assert(len > 0 && pos < IOVIRT_CONFIG_SIZE && len <= IOVIRT_CONFIG_SIZE - pos);
        fuzz_assert(pos % 4 == 0 && len % 4 == 0);
        s->reads++;
        if (pos + len > s->size)
                return -EIO;
        memcpy(buf, s->bytes + pos, len);
        return 0;
}

static uint16_t le16(const uint8_t *b, unsigned pos) {
        return (uint16_t) (b[pos] | b[pos + 1] << 8);
}

static uint32_t le32(const uint8_t *b, unsigned pos) {
        return (uint32_t) le16(b, pos) | (uint32_t) le16(b, pos + 2) << 16;
}

/* The IDs on the walkable part of both lists (the same stops as the
 * decoder: a pointer into the header or below 0x100, a loop, the end of
 * what can be read, all ones).  Only the bits the decoder keeps. */
enum { SAW_EXP = 1, SAW_PM = 2, SAW_AF = 4, SAW_ACS = 8, SAW_SRIOV = 16 };

static unsigned walk_ids(const uint8_t *b, unsigned size, bool ext) {
        unsigned saw = 0;
        if (!ext) {
                if (size < 64 || !(le16(b, PCI_STATUS) & PCI_STATUS_CAP_LIST))
                        return 0;
                uint8_t seen[64] = {};
                for (unsigned pos = b[PCI_CAPABILITY_LIST] & ~3u; pos >= 64 && pos + 2 <= size && !seen[pos / 4]++;
                     pos = b[pos + 1] & ~3u) {
                        uint8_t id = b[pos];
                        if (id == 0xff)
                                break;
                        saw |= id == PCI_CAP_ID_EXP ? SAW_EXP : id == PCI_CAP_ID_PM ? SAW_PM : id == PCI_CAP_ID_AF ? SAW_AF : 0;
                }
                return saw;
        }
        uint8_t seen[IOVIRT_CONFIG_SIZE / 4] = {};
        for (unsigned pos = 0x100; pos >= 0x100 && pos + 4 <= size && !seen[pos / 4]++;) {
                uint32_t hdr = le32(b, pos);
                if (hdr == 0xffffffff || (pos == 0x100 && hdr == 0))
                        break;
                unsigned id = hdr & 0xffff;
                saw |= id == PCI_EXT_CAP_ID_ACS ? SAW_ACS : id == PCI_EXT_CAP_ID_SRIOV ? SAW_SRIOV : 0;
                pos = (hdr >> 20) & ~3u;
        }
        return saw;
}

/* Everything decoded, field by field (the struct has padding) */
static bool caps_equal(const IovirtCaps *x, const IovirtCaps *y) {
        return x->header_known == y->header_known && x->vendor == y->vendor && x->device == y->device &&
               x->command == y->command && x->status == y->status && x->revision == y->revision &&
               x->header_type == y->header_type && x->multifunction == y->multifunction &&
               x->class_code == y->class_code && x->subsys_vendor == y->subsys_vendor &&
               x->subsys_device == y->subsys_device && x->secondary_bus == y->secondary_bus &&
               x->subordinate_bus == y->subordinate_bus && x->pcie == y->pcie && x->pcie_type == y->pcie_type &&
               x->devcap == y->devcap && x->has_link == y->has_link && x->lnkcap == y->lnkcap &&
               x->lnksta == y->lnksta && x->pm == y->pm && x->pm_no_soft_reset == y->pm_no_soft_reset &&
               x->af == y->af && x->af_flr == y->af_flr && x->acs == y->acs && x->acs_cap == y->acs_cap &&
               x->acs_ctl == y->acs_ctl && x->sriov == y->sriov && x->iov_ctrl == y->iov_ctrl &&
               x->iov_initial == y->iov_initial && x->iov_total == y->iov_total && x->iov_num == y->iov_num &&
               x->iov_offset == y->iov_offset && x->iov_stride == y->iov_stride && x->iov_did == y->iov_did &&
               !x->problem == !y->problem;
}

/* A narrower view knows less or the same, never otherwise */
static bool knows_no_more(IovirtPresence narrow, IovirtPresence full) {
        return narrow == IOVIRT_UNKNOWN || narrow == full;
}

static bool presence_valid(IovirtPresence p) {
        return p == IOVIRT_UNKNOWN || p == IOVIRT_ABSENT || p == IOVIRT_PRESENT;
}

static void check_caps(const IovirtCaps *c, const uint8_t *b, unsigned size) {
        fuzz_assert(c->problem_offset < IOVIRT_CONFIG_SIZE);
        fuzz_assert(c->problem || c->problem_offset == 0);
        IovirtPresence all[] = { c->pcie, c->pm, c->af, c->acs, c->sriov };
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
                fuzz_assert(presence_valid(all[i]));
                if (!c->header_known)
                        fuzz_assert(all[i] == IOVIRT_UNKNOWN);
        }
        if (size < 64)
                fuzz_assert(!c->header_known && c->problem);
        if (c->pcie == IOVIRT_PRESENT)
                fuzz_assert(size >= 64 + PCI_EXP_LNKSTA + 2);
        if (c->pcie != IOVIRT_PRESENT)
                fuzz_assert(c->acs != IOVIRT_PRESENT && c->sriov != IOVIRT_PRESENT);
        if (c->pcie == IOVIRT_UNKNOWN)
                fuzz_assert(c->acs == IOVIRT_UNKNOWN && c->sriov == IOVIRT_UNKNOWN);
        if (c->acs == IOVIRT_PRESENT)
                fuzz_assert(size >= 0x100 + PCI_ACS_CTRL + 2);
        if (c->sriov == IOVIRT_PRESENT)
                fuzz_assert(size >= 0x100 + PCI_IOV_DID + 2);
        if (c->header_known) {
                unsigned saw = walk_ids(b, size, false);
                fuzz_assert(!(saw & SAW_EXP) || c->pcie != IOVIRT_ABSENT);
                fuzz_assert(!(saw & SAW_PM) || c->pm != IOVIRT_ABSENT);
                fuzz_assert(!(saw & SAW_AF) || c->af != IOVIRT_ABSENT);
        }
        if (c->pcie == IOVIRT_PRESENT) {        /* conventional PCI has no extended list */
                unsigned saw = walk_ids(b, size, true);
                fuzz_assert(!(saw & SAW_ACS) || c->acs != IOVIRT_ABSENT);
                fuzz_assert(!(saw & SAW_SRIOV) || c->sriov != IOVIRT_ABSENT);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > IOVIRT_CONFIG_SIZE)
                return 0;
        unsigned n = (unsigned) size & ~3u;     /* sysfs serves whole dwords */

        static IovirtConfig buffered, lazy, header;
        IovirtCaps a, b, h;
        iovirt_config_init_bytes(&buffered, data, n);
        iovirt_config_decode(&buffered, &a);
        check_caps(&a, data, n);

        Space s = { data, n, 0 };
        iovirt_config_init(&lazy, space_reader, &s);
        iovirt_config_decode(&lazy, &b);
        check_caps(&b, data, n);
        fuzz_assert(caps_equal(&a, &b));

        Space root_only = { data, n < 64 ? n : 64, 0 };
        iovirt_config_init(&header, space_reader, &root_only);
        iovirt_config_decode(&header, &h);
        check_caps(&h, data, root_only.size);
        fuzz_assert(h.header_known == a.header_known);
        fuzz_assert(knows_no_more(h.pcie, a.pcie) && knows_no_more(h.pm, a.pm) && knows_no_more(h.af, a.af) &&
                    knows_no_more(h.acs, a.acs) && knows_no_more(h.sriov, a.sriov));
        return 0;
}
