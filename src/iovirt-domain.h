/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A libvirt domain, as far as iovirt needs it, read from the domain XML
 * libvirt's qemu hook hands over on stdin (and virDomainGetXMLDesc returns).
 * Pure: the XML in, a struct or a sentence out; no printing, no I/O.
 *
 * The XML is parsed by libxml2, with no entity expansion, no DTD loading and
 * no network: a document type declaration (<!DOCTYPE>), which libvirt never
 * writes, is refused outright.  Values are read the way libvirt reads them
 * (src/conf/domain_conf.c, src/util/virutil.c), so that the device iovirt
 * checks is the device libvirt will use: PCI address attributes are C
 * integers of any base as strtoul(3) reads them with base 0 ('0x05', '5',
 * and '010', which is 8), memory units are virScaleInteger's.
 *
 * libxml2 initialises itself on first use; a program that parses from more
 * than one thread calls xmlInitParser() from main() first. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovirt-address.h"
#include "iovirt-util.h"

/* The most domain XML iovirt reads: libvirt's own are a few KiB. */
#define IOVIRT_DOMAIN_XML_MAX (16u << 20)

/* The largest memory size libvirt takes, in bytes: it keeps sizes in KiB
 * and refuses 2^53 KiB and more (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED, the
 * largest number a double holds exactly, means "unlimited" for limits). */
#define IOVIRT_DOMAIN_MEMORY_MAX (((UINT64_C(1) << 53) - 1) * 1024)

typedef struct IovirtDomainHostdev {
        IovirtAddress address;   /* the host's PCI function (<source><address>) */
        bool managed;            /* managed='yes': libvirt binds it itself; omitted means 'no',
                                  * for <hostdev> and <interface type='hostdev'> alike */
        bool interface;          /* from <interface type='hostdev'> rather than <hostdev> */
        char *alias;             /* <alias name='...'> of a running domain's device ("hostdev0"),
                                  * which libvirt's DEVICE_REMOVED event names; NULL: none */
} IovirtDomainHostdev;

typedef struct IovirtDomain {
        char *name;              /* <name>, never empty */
        char *uuid;              /* <uuid> as written; NULL: none */
        uint64_t memory;         /* <memory>, bytes: libvirt's units, rounded up to whole KiB as
                                  * libvirt keeps it */
        uint64_t max_memory;     /* <maxMemory> (memory hotplug), bytes; 0: none */
        uint64_t hard_limit;     /* <memtune><hard_limit>, bytes (rounded up to KiB); 0: none, or
                                  * libvirt's "unlimited" (9007199254740991 KiB) */
        bool locked;             /* <memoryBacking><locked/> */
        bool viommu;             /* <devices><iommu> */
        char *cpuset;            /* <vcpu cpuset='...'> as written; NULL: none */
        char *nodeset;           /* <numatune><memory nodeset='...'> as written; NULL: none */
        /* PCI devices taken from the host: every <hostdev mode='subsystem' type='pci'> (mode
         * defaults to subsystem) in document order, then every <interface type='hostdev'> whose
         * source is a PCI address.  Other hostdevs (usb, scsi, mdev, ...) and interfaces are not
         * listed. */
        IovirtDomainHostdev *hostdevs;
        size_t n_hostdevs;
        /* Devices asked from iovirt's pools: the pool='NAME' of each <device> in the
         * IOVIRT_DOMAIN_XMLNS namespace anywhere below <metadata>, in document order (a name once
         * per device asked), e.g.
         *   <metadata><iovirt:device xmlns:iovirt="https://iovirt.org/xmlns/domain/1" pool="gpus"/>
         * (libvirt's metadata API keeps one element per namespace: wrap several in any element of
         * the namespace, <iovirt:devices>...). */
        char **pools;
        size_t n_pools;
} IovirtDomain;

IovirtDomain *iovirt_domain_free(IovirtDomain *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtDomain *, iovirt_domain_free);

/* Parses size bytes of domain XML (need not be NUL-terminated).  0 and
 * *ret on success.  Failures, each with a sentence in *reason (reason may
 * be NULL):
 *   -EFBIG    more than IOVIRT_DOMAIN_XML_MAX bytes;
 *   -EBADMSG  not well-formed XML (libxml2's message and line: "line 3:
 *             Opening and ending tag mismatch: name line 3 and domain"), a
 *             <!DOCTYPE>, a root that is not <domain>, no <name> or
 *             <memory>, a value libvirt would refuse, or a device iovirt
 *             cannot read ("hostdev 2 has an address without a bus";
 *             hostdev N and interface N count every <hostdev> and every
 *             <interface> of <devices> from 1);
 *   -ERANGE   a memory size beyond what libvirt takes;
 *   -ENOMEM   (no sentence), also when libxml2 ran out of memory: a domain
 *             is returned whole or not at all. */
int iovirt_domain_parse(const char *xml, size_t size, IovirtDomain **ret, char **reason);

/* libxml2's set-up, from main() of a program that parses on more than one thread */
void iovirt_domain_init(void);

/* The hostdev of d with the PCI function a, or NULL */
const IovirtDomainHostdev *iovirt_domain_find_hostdev(const IovirtDomain *d, const IovirtAddress *a);

/* The device XML libvirt attaches and detaches a host PCI function with, one iovirt has bound to
 * its VFIO driver: <hostdev mode='subsystem' type='pci' managed='no'> with a's <source><address>.
 * NULL when memory ran out. */
char *iovirt_domain_hostdev_xml(const IovirtAddress *a);
