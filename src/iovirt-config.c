/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <pci/header.h>

#include "iovirt-config.h"

/* Present in newer headers only */
#ifndef PCI_EXP_TYPE_ROOT_INT_EP
#define PCI_EXP_TYPE_ROOT_INT_EP 0x9
#endif

#define PCI_STD_HEADER_SIZE 64
#define PCI_CONFIG_SPACE_SIZE 256
#define PCI_EXT_CAP_START 0x100

void iovirt_config_init(IovirtConfig *c, IovirtConfigReader reader, void *userdata) {
        memset(c->valid, 0, sizeof(c->valid));
        c->limit = IOVIRT_CONFIG_SIZE;
        c->highest_read = 0;
        c->reader = reader;
        c->userdata = userdata;
}

void iovirt_config_init_bytes(IovirtConfig *c, const uint8_t *bytes, unsigned len) {
        iovirt_config_init(c, NULL, NULL);
        if (len > IOVIRT_CONFIG_SIZE)
                len = IOVIRT_CONFIG_SIZE;
        memcpy(c->data, bytes, len);
        c->limit = len & ~3u;
        c->highest_read = c->limit;
        for (unsigned d = 0; d < c->limit / 4; d++)
                c->valid[d / 32] |= 1u << (d % 32);
}

static bool dword_valid(const IovirtConfig *c, unsigned d) {
        return c->valid[d / 32] & (1u << (d % 32));
}

int iovirt_config_fetch(IovirtConfig *c, unsigned pos, unsigned len) {
        if (len == 0)
                return 0;
        if (pos >= IOVIRT_CONFIG_SIZE || len > IOVIRT_CONFIG_SIZE - pos)
                return -ERANGE;
        unsigned first = pos / 4, last = (pos + len - 1) / 4;
        while (first <= last && dword_valid(c, first))
                first++;
        while (last >= first && dword_valid(c, last)) {
                if (last == 0)
                        break;
                last--;
        }
        if (first > last)
                return 0;
        unsigned start = first * 4, end = (last + 1) * 4;
        if (end > c->limit || !c->reader)
                return -ENODATA;
        int r = c->reader(c->userdata, start, c->data + start, end - start);
        if (r < 0) {
                /* Whatever stops us here (a short read: non-root sees 64
                 * bytes; a 256-byte conventional space) stops every later read. */
                if (start < c->limit)
                        c->limit = start;
                return -ENODATA;
        }
        for (unsigned d = first; d <= last; d++)
                c->valid[d / 32] |= 1u << (d % 32);
        if (end > c->highest_read)
                c->highest_read = end;
        return 0;
}

int iovirt_config_u8(IovirtConfig *c, unsigned pos, uint8_t *ret) {
        int r = iovirt_config_fetch(c, pos, 1);
        if (r < 0)
                return r;
        *ret = c->data[pos];
        return 0;
}

int iovirt_config_u16(IovirtConfig *c, unsigned pos, uint16_t *ret) {
        int r = iovirt_config_fetch(c, pos, 2);
        if (r < 0)
                return r;
        *ret = (uint16_t) (c->data[pos] | c->data[pos + 1] << 8);
        return 0;
}

int iovirt_config_u32(IovirtConfig *c, unsigned pos, uint32_t *ret) {
        int r = iovirt_config_fetch(c, pos, 4);
        if (r < 0)
                return r;
        *ret = (uint32_t) c->data[pos] | (uint32_t) c->data[pos + 1] << 8 |
               (uint32_t) c->data[pos + 2] << 16 | (uint32_t) c->data[pos + 3] << 24;
        return 0;
}

static uint16_t get16(const IovirtConfig *c, unsigned pos) {
        return (uint16_t) (c->data[pos] | c->data[pos + 1] << 8);
}

static uint32_t get32(const IovirtConfig *c, unsigned pos) {
        return (uint32_t) get16(c, pos) | (uint32_t) get16(c, pos + 2) << 16;
}

static void problem(IovirtCaps *caps, const char *what, unsigned offset) {
        if (!caps->problem) {
                caps->problem = what;
                caps->problem_offset = offset;
        }
}

static void decode_header(IovirtConfig *c, IovirtCaps *caps) {
        if (iovirt_config_fetch(c, 0, PCI_STD_HEADER_SIZE) < 0) {
                problem(caps, "config space is shorter than the 64-byte header", 0);
                return;
        }
        caps->header_known = true;
        caps->vendor = get16(c, PCI_VENDOR_ID);
        caps->device = get16(c, PCI_DEVICE_ID);
        caps->command = get16(c, PCI_COMMAND);
        caps->status = get16(c, PCI_STATUS);
        caps->revision = c->data[PCI_REVISION_ID];
        caps->class_code = get32(c, PCI_CLASS_REVISION) >> 8;
        caps->header_type = c->data[PCI_HEADER_TYPE] & 0x7f;
        caps->multifunction = c->data[PCI_HEADER_TYPE] & 0x80;
        if (caps->header_type == PCI_HEADER_TYPE_NORMAL) {
                caps->subsys_vendor = get16(c, PCI_SUBSYSTEM_VENDOR_ID);
                caps->subsys_device = get16(c, PCI_SUBSYSTEM_ID);
        } else if (caps->header_type == PCI_HEADER_TYPE_BRIDGE) {
                caps->secondary_bus = c->data[PCI_SECONDARY_BUS];
                caps->subordinate_bus = c->data[PCI_SUBORDINATE_BUS];
        }
}

static int decode_pcie(IovirtConfig *c, IovirtCaps *caps, unsigned pos) {
        /* flags, DevCap, and the link registers up to LnkSta, in one read */
        if (iovirt_config_fetch(c, pos, PCI_EXP_LNKSTA + 2) < 0) {
                problem(caps, "the PCI Express capability cannot be read", pos);
                caps->pcie = IOVIRT_UNKNOWN;
                return -ENODATA;
        }
        caps->pcie = IOVIRT_PRESENT;
        caps->pcie_type = (get16(c, pos + PCI_EXP_FLAGS) & PCI_EXP_FLAGS_TYPE) >> 4;
        caps->devcap = get32(c, pos + PCI_EXP_DEVCAP);
        /* Root complex integrated endpoints and event collectors have no link */
        caps->has_link = caps->pcie_type != PCI_EXP_TYPE_ROOT_INT_EP && caps->pcie_type != PCI_EXP_TYPE_ROOT_EC;
        if (caps->has_link) {
                caps->lnkcap = get32(c, pos + PCI_EXP_LNKCAP);
                caps->lnksta = get16(c, pos + PCI_EXP_LNKSTA);
        }
        return 0;
}

static void walk_caps(IovirtConfig *c, IovirtCaps *caps) {
        /* What the list does not mention is absent only if we saw all of it */
        bool complete = false;
        uint8_t seen[PCI_CONFIG_SPACE_SIZE / 4] = {};
        uint8_t pos;

        if (!(caps->status & PCI_STATUS_CAP_LIST)) {
                complete = true;
                goto done;
        }
        if (iovirt_config_u8(c, PCI_CAPABILITY_LIST, &pos) < 0)
                goto done;
        pos &= ~3;
        for (;;) {
                if (pos == 0) {
                        complete = true;
                        break;
                }
                if (pos < PCI_STD_HEADER_SIZE) {
                        problem(caps, "a capability pointer points into the header", pos);
                        break;
                }
                if (seen[pos / 4]++) {
                        problem(caps, "the capability list loops", pos);
                        break;
                }
                uint16_t hdr;
                if (iovirt_config_u16(c, pos, &hdr) < 0) {
                        problem(caps, "config space past 64 bytes is unreadable (it needs root)", pos);
                        break;
                }
                uint8_t id = hdr & 0xff;
                if (id == 0xff) {
                        problem(caps, "the capability list reads 0xff (device gone?)", pos);
                        break;
                }
                /* A capability on the list whose registers cannot be read
                 * stops the walk: it is there, so it must not end up ABSENT
                 * when the list is complete. */
                if (id == PCI_CAP_ID_EXP && caps->pcie == IOVIRT_UNKNOWN) {
                        if (decode_pcie(c, caps, pos) < 0)
                                break;
                } else if (id == PCI_CAP_ID_PM && caps->pm == IOVIRT_UNKNOWN) {
                        uint16_t ctrl;
                        if (iovirt_config_u16(c, pos + PCI_PM_CTRL, &ctrl) < 0) {
                                problem(caps, "the Power Management capability cannot be read", pos);
                                break;
                        }
                        caps->pm = IOVIRT_PRESENT;
                        caps->pm_no_soft_reset = ctrl & PCI_PM_CTRL_NO_SOFT_RST;
                } else if (id == PCI_CAP_ID_AF && caps->af == IOVIRT_UNKNOWN) {
                        uint8_t afcap;
                        if (iovirt_config_u8(c, pos + PCI_AF_CAP, &afcap) < 0) {
                                problem(caps, "the Advanced Features capability cannot be read", pos);
                                break;
                        }
                        caps->af = IOVIRT_PRESENT;
                        caps->af_flr = (afcap & PCI_AF_CAP_TP) && (afcap & PCI_AF_CAP_FLR);
                }
                pos = (hdr >> 8) & ~3;
        }
done:
        if (complete) {
                if (caps->pcie == IOVIRT_UNKNOWN)
                        caps->pcie = IOVIRT_ABSENT;
                if (caps->pm == IOVIRT_UNKNOWN)
                        caps->pm = IOVIRT_ABSENT;
                if (caps->af == IOVIRT_UNKNOWN)
                        caps->af = IOVIRT_ABSENT;
        }
}

static void walk_ext_caps(IovirtConfig *c, IovirtCaps *caps) {
        bool complete = false;
        uint32_t seen[(IOVIRT_CONFIG_SIZE / 4) / 32] = {};
        unsigned pos = PCI_EXT_CAP_START;

        if (caps->pcie != IOVIRT_PRESENT) {
                /* Conventional PCI has no extended space; unknown PCIe status
                 * leaves ACS and SR-IOV unknown too. */
                if (caps->pcie == IOVIRT_ABSENT)
                        complete = true;
                goto done;
        }
        for (;;) {
                uint32_t hdr;
                if (iovirt_config_u32(c, pos, &hdr) < 0) {
                        if (pos == PCI_EXT_CAP_START && c->highest_read > PCI_STD_HEADER_SIZE &&
                            c->limit <= PCI_EXT_CAP_START) {
                                /* We read past 64 bytes, but the space ends
                                 * at 256: the kernel found no extended space. */
                                complete = true;
                                break;
                        }
                        problem(caps, pos == PCI_EXT_CAP_START ?
                                "extended config space is unreadable (it needs root)" :
                                "the extended capability list runs past readable config space", pos);
                        break;
                }
                if (pos == PCI_EXT_CAP_START && (hdr == 0 || hdr == 0xffffffff)) {
                        complete = true;
                        break;
                }
                if (hdr == 0xffffffff) {
                        problem(caps, "the extended capability list reads 0xffffffff (device gone?)", pos);
                        break;
                }
                unsigned id = hdr & 0xffff, next = (hdr >> 20) & ~3u;
                /* as in walk_caps(): one that cannot be read is not absent */
                if (id == PCI_EXT_CAP_ID_ACS && caps->acs == IOVIRT_UNKNOWN) {
                        if (iovirt_config_fetch(c, pos, PCI_ACS_CTRL + 2) < 0) {
                                problem(caps, "the ACS capability cannot be read", pos);
                                break;
                        }
                        caps->acs = IOVIRT_PRESENT;
                        caps->acs_cap = get16(c, pos + PCI_ACS_CAP);
                        caps->acs_ctl = get16(c, pos + PCI_ACS_CTRL);
                } else if (id == PCI_EXT_CAP_ID_SRIOV && caps->sriov == IOVIRT_UNKNOWN) {
                        if (iovirt_config_fetch(c, pos, PCI_IOV_DID + 2) < 0) {
                                problem(caps, "the SR-IOV capability cannot be read", pos);
                                break;
                        }
                        caps->sriov = IOVIRT_PRESENT;
                        caps->iov_ctrl = get16(c, pos + PCI_IOV_CTRL);
                        caps->iov_initial = get16(c, pos + PCI_IOV_INITIALVF);
                        caps->iov_total = get16(c, pos + PCI_IOV_TOTALVF);
                        caps->iov_num = get16(c, pos + PCI_IOV_NUMVF);
                        caps->iov_offset = get16(c, pos + PCI_IOV_OFFSET);
                        caps->iov_stride = get16(c, pos + PCI_IOV_STRIDE);
                        caps->iov_did = get16(c, pos + PCI_IOV_DID);
                }
                seen[pos / 4 / 32] |= 1u << ((pos / 4) % 32);
                if (next == 0) {
                        complete = true;
                        break;
                }
                if (next < PCI_EXT_CAP_START) {
                        problem(caps, "an extended capability pointer points below 0x100", pos);
                        break;
                }
                if (seen[next / 4 / 32] & (1u << ((next / 4) % 32))) {
                        problem(caps, "the extended capability list loops", next);
                        break;
                }
                pos = next;
        }
done:
        if (complete) {
                if (caps->acs == IOVIRT_UNKNOWN)
                        caps->acs = IOVIRT_ABSENT;
                if (caps->sriov == IOVIRT_UNKNOWN)
                        caps->sriov = IOVIRT_ABSENT;
        }
}

void iovirt_config_decode(IovirtConfig *c, IovirtCaps *ret) {
        *ret = (IovirtCaps) {};
        decode_header(c, ret);
        if (!ret->header_known)
                return;
        if (ret->vendor == 0xffff && ret->device == 0xffff && ret->class_code == 0xffffff) {
                problem(ret, "config space reads all ones (the device is gone or powered off)", 0);
                ret->header_known = false;
                return;
        }
        walk_caps(c, ret);
        walk_ext_caps(c, ret);
}

const char *iovirt_pcie_type_name(uint8_t type) {
        static const char *const names[] = {
                [PCI_EXP_TYPE_ENDPOINT] = "endpoint",
                [PCI_EXP_TYPE_LEG_END] = "legacy_endpoint",
                [PCI_EXP_TYPE_ROOT_PORT] = "root_port",
                [PCI_EXP_TYPE_UPSTREAM] = "upstream_port",
                [PCI_EXP_TYPE_DOWNSTREAM] = "downstream_port",
                [PCI_EXP_TYPE_PCI_BRIDGE] = "pcie_to_pci_bridge",
                [PCI_EXP_TYPE_PCIE_BRIDGE] = "pci_to_pcie_bridge",
                [PCI_EXP_TYPE_ROOT_INT_EP] = "rc_integrated_endpoint",
                [PCI_EXP_TYPE_ROOT_EC] = "rc_event_collector",
        };
        if (type < sizeof(names) / sizeof(names[0]) && names[type])
                return names[type];
        return "reserved";
}

const char *iovirt_link_speed_name(unsigned code) {
        static const char *const speeds[] = { NULL, "2.5GT/s", "5GT/s", "8GT/s", "16GT/s", "32GT/s", "64GT/s" };
        if (code < sizeof(speeds) / sizeof(speeds[0]))
                return speeds[code];
        return NULL;
}

bool iovirt_caps_is_port(const IovirtCaps *c) {
        return c->pcie == IOVIRT_PRESENT &&
               (c->pcie_type == PCI_EXP_TYPE_ROOT_PORT || c->pcie_type == PCI_EXP_TYPE_DOWNSTREAM);
}

uint16_t iovirt_acs_missing(const IovirtCaps *c) {
        if (c->acs != IOVIRT_PRESENT)
                return IOVIRT_ACS_REQUIRED;
        return (uint16_t) (IOVIRT_ACS_REQUIRED & ~c->acs_ctl);
}
