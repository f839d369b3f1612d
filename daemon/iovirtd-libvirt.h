/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "iovirt-address.h"
#include "iovirt-domain.h"

/* libvirt domains as consumers, through libvirt's client API.
 *
 * Every function here may wait on libvirtd for as long as libvirtd takes
 * (a domain's job, a detach the guest has not finished, a daemon that is
 * restarting): they run on a job's thread, never on the event loop, so a
 * slow or absent libvirtd delays only the request that needs it.  Each
 * opens a connection of its own, so that a libvirtd restarted in between
 * is simply reached again, and closes it before returning.  Keepalive
 * (which needs the event loop below) notices a libvirtd that stopped
 * answering.
 *
 * libvirt's events (the DEVICE_REMOVED that ends a detach) are dispatched
 * by libvirt's default event loop, on a thread of its own started on
 * first use.
 *
 * The connection URI is $IOVIRT_LIBVIRT_URI, else qemu:///system. */

#define LIBVIRT_CONSUMER_PREFIX "domain:"
#define LIBVIRT_DEFAULT_URI "qemu:///system"
#define LIBVIRT_ENV_URI "IOVIRT_LIBVIRT_URI"
#define LIBVIRT_ENV_DETACH_TIMEOUT "IOVIRT_DETACH_TIMEOUT"   /* seconds a detach may take; default 30 */
#define LIBVIRT_DETACH_TIMEOUT_SEC 30
#define LIBVIRT_ENV_LOOKUP_TIMEOUT "IOVIRT_LIBVIRT_TIMEOUT"  /* seconds a lookup waits for libvirt; default 10 */
#define LIBVIRT_LOOKUP_TIMEOUT_SEC 10

const char *libvirt_uri(void);

/* A domain as a lookup found it */
typedef struct LibvirtDomain {
        char *name;
        char uuid[37];
        bool active;             /* running or paused: it has a QEMU */
        bool persistent;         /* defined, not only created */
        IovirtDomain *xml;       /* the live definition when active, else the persistent one */
        pid_t pid;               /* its QEMU's, from libvirt's pid file (qemu:///system); 0: unknown */
} LibvirtDomain;

void libvirt_domain_clear(LibvirtDomain *d);

/* By name, or by UUID when name_or_uuid is one.  Errors, each with a
 * sentence in *reason:
 *   -ENOENT        libvirt has no such domain;
 *   -ECONNREFUSED  libvirt cannot be reached at the URI (not running,
 *                  restarting, no permission);
 *   -ETIMEDOUT     libvirt did not answer within $IOVIRT_LIBVIRT_TIMEOUT
 *                  seconds (every connection here is so bounded);
 *   -EBADMSG       its XML could not be read (iovirt_domain_parse's reason);
 *   -EIO           libvirt failed otherwise (its message). */
int libvirt_lookup(const char *name_or_uuid, LibvirtDomain *ret, char **reason);


/* Where an attach went */
typedef enum LibvirtAttach {
        LIBVIRT_ATTACH_NONE = 0,
        LIBVIRT_ATTACH_LIVE = 1 << 0,
        LIBVIRT_ATTACH_CONFIG = 1 << 1,
} LibvirtAttach;

/* Attaches the functions as <hostdev managed='no'> to the domain with
 * uuid: live when it runs (and to its persistent config too when
 * persistent), to its persistent config alone when it does not.  All or
 * none: when one fails, all are taken back out (as libvirt_detach does);
 * when that fails too, *stuck: the guest may hold them, and the caller
 * must not unbind them.
 * *ret says where they went.  Errors as libvirt_lookup's, and -ESRCH when
 * the domain ran when looked up (was_active) and has stopped since, or
 * neither runs nor has a config to change. */
int libvirt_attach(const char *uuid, const IovirtAddress *functions, size_t n, bool was_active, bool persistent,
                   LibvirtAttach *ret, bool *stuck, char **reason);

/* Takes the functions out of the domain with uuid: from the running guest
 * first, waiting for libvirt's DEVICE_REMOVED (or for the domain to stop)
 * up to $IOVIRT_DETACH_TIMEOUT seconds; then, with config, from its
 * persistent definition.  A function the domain does not have is nothing
 * to do; a domain that does not exist neither.  -ETIMEDOUT when the guest
 * did not let go in time: the device is still the guest's, and nothing
 * else was changed. */
int libvirt_detach(const char *uuid, const IovirtAddress *functions, size_t n, bool config, char **reason);

/* Whether the domain's QEMU (pid) may lock what libvirt's rule asks for its
 * devices now: 1 yes, 0 no (*need and *have say the shortfall), -errno
 * when that cannot be told (unknown pid, an unreadable limit). */
int libvirt_memlock_covers(const LibvirtDomain *d, uint64_t *need, uint64_t *have);

/* The same for the domain as it is now (looked up again), *reason saying
 * why it cannot be told */
int libvirt_domain_memlock(const char *name_or_uuid, uint64_t *need, uint64_t *have, char **reason);
