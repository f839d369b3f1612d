/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "iovirt-host.h"

/* Isolation and viability verdicts: pure functions of the host model.
 *
 * The kernel's IOMMU groups say which functions the IOMMU cannot tell apart.
 * The hardware says which functions can reach each other by peer-to-peer DMA
 * without passing the IOMMU at all: its "DMA domains".  We compute the
 * domains from config space with the rule libvirt applies (every root and
 * switch downstream port on the way up must enable ACS SV, RR, CR and UF; a
 * multifunction device without ACS shares all its functions; everything
 * behind a conventional PCI bridge is one requester) and compare:
 *
 *   isolated  the group holds one endpoint and nothing outside reaches it
 *   shared    the group holds several endpoints and nothing outside reaches
 *             them; they go together
 *   leaky     endpoints outside the group share its DMA domain: the kernel's
 *             group is finer than the hardware guarantees (pcie_acs_override,
 *             or Linux's own grouping below switch ports that lack ACS)
 *   bridges   the group holds no endpoint (a host bridge, ports): nothing to
 *             hand out, and no word on its safety.  What reaches its bridges
 *             from below is still computed (peers, causes), and so is what
 *             could not be read (unknown_device)
 *   unknown   config space needed for the verdict on a group with an
 *             endpoint could not be read
 *
 * So isolated means one endpoint and no peers, bridges means no endpoint,
 * and leaky always comes with peers. */

typedef enum IovirtIsolation {
        IOVIRT_ISOLATED,
        IOVIRT_SHARED,
        IOVIRT_LEAKY,
        IOVIRT_BRIDGES,
        IOVIRT_ISOLATION_UNKNOWN,
} IovirtIsolation;

typedef enum IovirtCauseKind {
        IOVIRT_CAUSE_PORT_WITHOUT_ACS,      /* root/downstream port has no ACS capability */
        IOVIRT_CAUSE_PORT_ACS_DISABLED,     /* ... has it, but not all of SV RR CR UF enabled */
        IOVIRT_CAUSE_MULTIFUNCTION,         /* a function of a multifunction device without ACS */
        IOVIRT_CAUSE_PCI_BRIDGE,            /* a conventional PCI bridge: one requester behind it */
} IovirtCauseKind;

typedef struct IovirtCause {
        size_t device;
        IovirtCauseKind kind;
        uint16_t missing;                   /* required ACS control bits not enabled */
} IovirtCause;

typedef struct IovirtGroupVerdict {
        IovirtIsolation isolation;
        size_t *peers;                      /* endpoints outside the group in its DMA domain */
        size_t n_peers;
        IovirtCause *causes;                /* what widens the domain */
        size_t n_causes;
        size_t unknown_device;              /* whose config made it unknown; IOVIRT_NONE */
        /* viability */
        size_t *endpoints;                  /* every non-bridge member: they move together */
        size_t n_endpoints;
        size_t *bridges;                    /* bridges in the group: they stay */
        size_t n_bridges;
        size_t *host_bound;                 /* endpoints bound to a host driver now */
        size_t n_host_bound;
} IovirtGroupVerdict;

typedef struct IovirtVerdicts {
        IovirtGroupVerdict *groups;         /* parallel to IovirtHost.groups */
        size_t n_groups;
} IovirtVerdicts;

int iovirt_verdicts_compute(const IovirtHost *h, IovirtVerdicts **ret);
IovirtVerdicts *iovirt_verdicts_free(IovirtVerdicts *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtVerdicts *, iovirt_verdicts_free);

const char *iovirt_isolation_name(IovirtIsolation i);
const char *iovirt_cause_kind_name(IovirtCauseKind k);
/* "SV RR" for the ACS control bits in mask; buf is returned. */
char *iovirt_acs_bits_format(uint16_t mask, char *buf, size_t size);
/* One sentence on what widens a domain: "0000:02:01.0 (downstream port) has no ACS capability" */
void iovirt_cause_text(const IovirtHost *h, const IovirtCause *cause, char *buf, size_t size);

/* Whether a function counts as a DMA peer: not a bridge, not a host bridge. */
bool iovirt_device_is_endpoint(const IovirtDevice *d);
