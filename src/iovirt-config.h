/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <pci/header.h>

/* Config space access and capability decoding.
 *
 * Decoding is pure: it does no I/O of its own.  It asks an IovirtConfig for
 * the bytes it needs, and the IovirtConfig either has them (a buffer, as in
 * the unit tests) or asks its reader once for each missing range (libpci's
 * sysfs method, in discovery).  Only the dwords a decoder needs are read:
 * every dword is a config transaction on real hardware. */

#define IOVIRT_CONFIG_SIZE 4096

typedef int (*IovirtConfigReader)(void *userdata, unsigned pos, uint8_t *buf, unsigned len);

typedef struct IovirtConfig {
        uint8_t data[IOVIRT_CONFIG_SIZE];
        uint32_t valid[IOVIRT_CONFIG_SIZE / 4 / 32]; /* one bit per dword */
        unsigned limit;          /* nothing at or past this offset can be read */
        unsigned highest_read;   /* end of the highest range read successfully */
        IovirtConfigReader reader;
        void *userdata;
} IovirtConfig;

void iovirt_config_init(IovirtConfig *c, IovirtConfigReader reader, void *userdata);
/* A config space that is exactly these bytes (len may be short: the rest is unreadable). */
void iovirt_config_init_bytes(IovirtConfig *c, const uint8_t *bytes, unsigned len);

/* Makes [pos, pos+len) available; -ENODATA when it cannot be read. */
int iovirt_config_fetch(IovirtConfig *c, unsigned pos, unsigned len);
int iovirt_config_u8(IovirtConfig *c, unsigned pos, uint8_t *ret);
int iovirt_config_u16(IovirtConfig *c, unsigned pos, uint16_t *ret);
int iovirt_config_u32(IovirtConfig *c, unsigned pos, uint32_t *ret);

/* Whether a capability is there; UNKNOWN when the part of config space that
 * would say so could not be read or was malformed. */
typedef enum IovirtPresence {
        IOVIRT_UNKNOWN = 0,
        IOVIRT_ABSENT,
        IOVIRT_PRESENT,
} IovirtPresence;

/* ACS control bits the isolation rule requires on root and downstream ports
 * (the rule libvirt applies): Source Validation, P2P Request Redirect, P2P
 * Completion Redirect, Upstream Forwarding. */
#define IOVIRT_ACS_REQUIRED \
        (PCI_ACS_CTRL_VALID | PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED | PCI_ACS_CTRL_FORWARD)

typedef struct IovirtCaps {
        /* header (64 bytes, readable by everyone) */
        bool header_known;
        uint16_t vendor, device, command, status;
        uint8_t revision, header_type;      /* header_type without the multifunction bit */
        bool multifunction;
        uint32_t class_code;                /* base << 16 | sub << 8 | prog-if */
        uint16_t subsys_vendor, subsys_device;
        uint8_t secondary_bus, subordinate_bus; /* bridges */

        IovirtPresence pcie;
        uint8_t pcie_type;                  /* PCI_EXP_TYPE_* */
        uint32_t devcap;
        bool has_link;                      /* link registers are meaningful */
        uint32_t lnkcap;
        uint16_t lnksta;

        IovirtPresence pm;
        bool pm_no_soft_reset;

        IovirtPresence af;
        bool af_flr;

        IovirtPresence acs;
        uint16_t acs_cap, acs_ctl;

        IovirtPresence sriov;
        uint16_t iov_ctrl, iov_initial, iov_total, iov_num, iov_offset, iov_stride, iov_did;

        /* the first thing that went wrong, for the user; NULL when all was well */
        const char *problem;
        unsigned problem_offset;
} IovirtCaps;

/* Decodes the header and walks both capability lists.  Never fails: what
 * cannot be read or makes no sense is reported as UNKNOWN with a problem. */
void iovirt_config_decode(IovirtConfig *c, IovirtCaps *ret);

/* Names and helpers for decoded values */
const char *iovirt_pcie_type_name(uint8_t type);      /* "root_port", ... */
const char *iovirt_link_speed_name(unsigned code);    /* "8GT/s", NULL for unknown */
bool iovirt_caps_is_port(const IovirtCaps *c);        /* root or downstream port */
/* Required ACS control bits that are not enabled (0: all good). */
uint16_t iovirt_acs_missing(const IovirtCaps *c);
