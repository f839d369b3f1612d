/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "iovirt-memlock.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"
#include "iovirtd-libvirt.h"
#include "iovirtd-log.h"

/* libvirt writes the QEMU's pid here for qemu:///system (libvirtd and virtqemud alike) */
#define QEMU_SYSTEM_RUN_DIR "/run/libvirt/qemu"

const char *libvirt_uri(void) {
        const char *e = getenv(LIBVIRT_ENV_URI);
        return e && *e ? e : LIBVIRT_DEFAULT_URI;
}

static uint64_t detach_timeout_sec(void) {
        const char *e = getenv(LIBVIRT_ENV_DETACH_TIMEOUT);
        int v;
        if (e && iovirt_parse_int(e, &v) >= 0 && v > 0)
                return (uint64_t) v;
        return LIBVIRT_DETACH_TIMEOUT_SEC;
}

/* ---- once per process: errors kept quiet, the event loop running ---- */

static void quiet(void *userdata, virErrorPtr error) {
        (void) userdata;
        (void) error;   /* each call's error is read and reported by its caller */
}

static void *event_loop(void *p) {
        (void) p;
        for (;;)
                if (virEventRunDefaultImpl() < 0)
                        log_warning("libvirt's event loop failed: %s", strna(virGetLastErrorMessage()));
        return NULL;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;

static void init(void) {
        pthread_t t;
        pthread_attr_t attr;
        if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
                init_result = -EIO;
                return;
        }
        virSetErrorFunc(NULL, quiet);
        /* the thread that runs it inherits the caller's signal mask: iovirtd's signals stay on its loop */
        init_result = -pthread_attr_init(&attr);
        if (init_result < 0)
                return;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        init_result = -pthread_create(&t, &attr, event_loop, NULL);
        pthread_attr_destroy(&attr);
}

/* ---- errors ---- */

/* libvirt's last error as -errno and a sentence about what was asked */
static int lv_error(char **reason, const char *what) {
        virErrorPtr e = virGetLastError();
        int code = e ? e->code : VIR_ERR_INTERNAL_ERROR, r;
        const char *msg = e && e->message ? e->message : "no message";
        switch (code) {
        case VIR_ERR_NO_DOMAIN:
                r = -ENOENT;
                break;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_AUTH_FAILED:
        case VIR_ERR_AUTH_CANCELLED:
        case VIR_ERR_AUTH_UNAVAILABLE:
        case VIR_ERR_RPC:
                r = -ECONNREFUSED;
                break;
        case VIR_ERR_SYSTEM_ERROR:
                /* the socket: libvirtd is not there, or went away during the call */
                r = e && (e->domain == VIR_FROM_RPC || e->domain == VIR_FROM_REMOTE) ? -ECONNREFUSED : -EIO;
                break;
        case VIR_ERR_OPERATION_INVALID:
                r = -ESRCH;        /* "domain is not running" and the like: the domain changed under us */
                break;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_OPERATION_UNSUPPORTED:
        case VIR_ERR_ARGUMENT_UNSUPPORTED:
                r = -EOPNOTSUPP;
                break;
        default:
                r = -EIO;
        }
        if (r == -ECONNREFUSED)
                return iovirt_set_reason(reason, r, "libvirt cannot be reached at %s (%s): is libvirtd (or "
                                         "virtqemud) running? 'systemctl status libvirtd' says; $IOVIRT_LIBVIRT_URI "
                                         "names another URI", libvirt_uri(), msg);
        return iovirt_set_reason(reason, r, "libvirt refused to %s: %s", what, msg);
}

typedef struct Connection {
        virConnectPtr conn;
        virDomainPtr dom;
} Connection;

static void connection_close(Connection *c) {
        if (c->dom)
                virDomainFree(c->dom);
        if (c->conn)
                virConnectClose(c->conn);
        *c = (Connection) {};
}

static bool is_uuid(const char *s) {
        size_t n = strlen(s);
        if (n != 36 && n != 32)
                return false;
        for (size_t i = 0; i < n; i++) {
                bool dash = n == 36 && (i == 8 || i == 13 || i == 18 || i == 23);
                if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
                        return false;
        }
        return true;
}

/* Connects and finds the domain (by UUID or name) */
static int connection_open(const char *name_or_uuid, Connection *c, char **reason) {
        int r = (pthread_once(&init_once, init), init_result);
        if (r < 0)
                return iovirt_set_reason(reason, r, "libvirt's client library could not start: %s",
                                         strna(virGetLastErrorMessage()));
        virResetLastError();
        c->conn = virConnectOpen(libvirt_uri());
        if (!c->conn)
                return lv_error(reason, "connect");
        /* a libvirtd that stops answering is given up after about 20 s, not waited for */
        (void) virConnectSetKeepAlive(c->conn, 5, 3);
        c->dom = is_uuid(name_or_uuid) ? virDomainLookupByUUIDString(c->conn, name_or_uuid)
                                       : virDomainLookupByName(c->conn, name_or_uuid);
        if (!c->dom) {
                r = lv_error(NULL, "find the domain");
                if (r == -ENOENT)
                        return iovirt_set_reason(reason, r, "libvirt at %s has no domain '%s' ('virsh list --all' "
                                                 "lists them)", libvirt_uri(), name_or_uuid);
                return lv_error(reason, "look the domain up");
        }
        return 0;
}

void libvirt_domain_clear(LibvirtDomain *d) {
        free(d->name);
        iovirt_domain_free(d->xml);
        *d = (LibvirtDomain) {};
}

/* The QEMU of a running domain of qemu:///system: libvirt's pid file, and
 * a process that is that domain's QEMU ("-name guest=NAME,...") */
static pid_t qemu_pid(const char *name) {
        if (!streq_ptr(libvirt_uri(), "qemu:///system"))
                return 0;
        _cleanup_free_ char *path = NULL, *text = NULL, *cmdline = NULL, *want = NULL;
        size_t size;
        int pid;
        if (asprintf(&path, QEMU_SYSTEM_RUN_DIR "/%s.pid", name) < 0)
                return 0;
        if (iovirt_read_file(path, &text) < 0 || iovirt_parse_int(text, &pid) < 0 || pid <= 0)
                return 0;
        free(path);
        if (asprintf(&path, "/proc/%d/cmdline", pid) < 0 || asprintf(&want, "guest=%s,", name) < 0)
                return 0;
        if (iovirt_read_file_sized(path, &cmdline, &size) < 0)
                return 0;
        /* the arguments, NUL-separated: "-name" then "guest=NAME,debug-threads=on" */
        for (size_t i = 0; i < size; i += strlen(cmdline + i) + 1)
                if (strncmp(cmdline + i, want, strlen(want)) == 0)
                        return pid;
        return 0;
}

int libvirt_lookup(const char *name_or_uuid, LibvirtDomain *ret, char **reason) {
        _cleanup_(connection_close) Connection c = {};
        _cleanup_(libvirt_domain_clear) LibvirtDomain d = {};
        _cleanup_free_ char *xml = NULL, *why = NULL;
        int r = connection_open(name_or_uuid, &c, reason);
        if (r < 0)
                return r;
        const char *name = virDomainGetName(c.dom);
        if (!name || virDomainGetUUIDString(c.dom, d.uuid) < 0)
                return lv_error(reason, "name the domain");
        if (!(d.name = strdup(name)))
                return -ENOMEM;
        int active = virDomainIsActive(c.dom), persistent = virDomainIsPersistent(c.dom);
        if (active < 0 || persistent < 0)
                return lv_error(reason, "tell whether the domain runs");
        d.active = active;
        d.persistent = persistent;
        xml = virDomainGetXMLDesc(c.dom, d.active ? 0 : VIR_DOMAIN_XML_INACTIVE);
        if (!xml)
                return lv_error(reason, "give the domain's XML");
        r = iovirt_domain_parse(xml, strlen(xml), &d.xml, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return iovirt_set_reason(reason, -EBADMSG, "The XML libvirt gives for domain %s cannot be read: %s",
                                         d.name, strna(why));
        if (d.active)
                d.pid = qemu_pid(d.name);
        *ret = d;
        d = (LibvirtDomain) {};
        return 0;
}

/* A lookup on a thread of its own, shared with whoever waits for it: the
 * last of the two to let go frees it */
typedef struct Bounded {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned refs;
        bool done;
        char *name;
        int r;
        LibvirtDomain domain;
        char *reason;
} Bounded;

static void bounded_unref(Bounded *b) {
        pthread_mutex_lock(&b->lock);
        bool last = --b->refs == 0;
        pthread_mutex_unlock(&b->lock);
        if (!last)
                return;
        free(b->name);
        free(b->reason);
        libvirt_domain_clear(&b->domain);
        free(b);
}

static void *bounded_lookup(void *p) {
        Bounded *b = p;
        LibvirtDomain d = {};
        char *reason = NULL;
        int r = libvirt_lookup(b->name, &d, &reason);
        pthread_mutex_lock(&b->lock);
        b->r = r;
        b->domain = d;
        b->reason = reason;
        b->done = true;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->lock);
        bounded_unref(b);
        return NULL;
}

int libvirt_lookup_bounded(const char *name_or_uuid, LibvirtDomain *ret, char **reason) {
        const char *e = getenv(LIBVIRT_ENV_LOOKUP_TIMEOUT);
        int seconds = LIBVIRT_LOOKUP_TIMEOUT_SEC, r;
        if (e && iovirt_parse_int(e, &r) >= 0 && r > 0)
                seconds = r;
        Bounded *b = calloc(1, sizeof(Bounded));
        if (!b || !(b->name = strdup(name_or_uuid))) {
                free(b);
                return -ENOMEM;
        }
        pthread_mutex_init(&b->lock, NULL);
        pthread_cond_init(&b->cond, NULL);
        b->refs = 2;
        pthread_t t;
        pthread_attr_t attr;
        if ((r = pthread_attr_init(&attr)) == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = pthread_create(&t, &attr, bounded_lookup, b);
                pthread_attr_destroy(&attr);
        }
        if (r != 0) {
                b->refs = 1;
                bounded_unref(b);
                return -r;
        }
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += seconds;
        pthread_mutex_lock(&b->lock);
        while (!b->done)
                if (pthread_cond_timedwait(&b->cond, &b->lock, &deadline) == ETIMEDOUT)
                        break;
        if (b->done) {
                r = b->r;
                *ret = b->domain;
                b->domain = (LibvirtDomain) {};
                if (reason)
                        *reason = TAKE_PTR(b->reason);
        } else
                r = -ETIMEDOUT;
        pthread_mutex_unlock(&b->lock);
        bounded_unref(b);
        if (r == -ETIMEDOUT)
                return iovirt_set_reason(reason, r, "libvirt at %s did not answer within %d s (is libvirtd stuck, "
                                         "or restarting?); $IOVIRT_LIBVIRT_TIMEOUT sets how long iovirtd waits",
                                         libvirt_uri(), seconds);
        return r;
}

/* ---- attach ---- */

static int attach_one(Connection *c, const IovirtAddress *a, unsigned flags, char **reason) {
        _cleanup_free_ char *xml = iovirt_domain_hostdev_xml(a);
        char addr[IOVIRT_ADDRESS_MAX], what[128];
        if (!xml)
                return -ENOMEM;
        iovirt_address_format(a, addr);
        snprintf(what, sizeof(what), "attach %s%s", addr,
                 flags & VIR_DOMAIN_AFFECT_LIVE ? "" : " to the domain's persistent config");
        return virDomainAttachDeviceFlags(c->dom, xml, flags) < 0 ? lv_error(reason, what) : 0;
}

int libvirt_attach(const char *uuid, const IovirtAddress *functions, size_t n, bool was_active, bool persistent,
                   LibvirtAttach *ret, char **reason) {
        _cleanup_(connection_close) Connection c = {};
        int r = connection_open(uuid, &c, reason);
        if (r < 0)
                return r;
        int active = virDomainIsActive(c.dom), is_persistent = virDomainIsPersistent(c.dom);
        if (active < 0 || is_persistent < 0)
                return lv_error(reason, "tell whether the domain runs");
        if (was_active && !active)
                return iovirt_set_reason(reason, -ESRCH, "The domain stopped while its device was being bound, so "
                                         "it was not attached; assign it again to the domain's config, or start "
                                         "the domain first");
        LibvirtAttach where = active ? LIBVIRT_ATTACH_LIVE : LIBVIRT_ATTACH_NONE;
        if (is_persistent && (persistent || !active))
                where |= LIBVIRT_ATTACH_CONFIG;
        if (where == LIBVIRT_ATTACH_NONE)
                return iovirt_set_reason(reason, -ESRCH, "The domain neither runs nor has a persistent config to "
                                         "add the device to");
        unsigned flags = (where & LIBVIRT_ATTACH_LIVE ? VIR_DOMAIN_AFFECT_LIVE : 0) |
                         (where & LIBVIRT_ATTACH_CONFIG ? VIR_DOMAIN_AFFECT_CONFIG : 0);
        size_t done = 0;
        for (; done < n; done++)
                if ((r = attach_one(&c, &functions[done], flags, reason)) < 0)
                        break;
        if (r < 0 && done > 0) {
                /* all or none: what went in before goes back out */
                _cleanup_free_ char *why = NULL;
                connection_close(&c);
                if (libvirt_detach(uuid, functions, done, where & LIBVIRT_ATTACH_CONFIG, &why) < 0)
                        log_warning("Taking back what was attached before a failed attach failed too: %s", strna(why));
        }
        if (r < 0)
                return r;
        *ret = where;
        return 0;
}

/* ---- detach ---- */

typedef struct Waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char **aliases;          /* those still to be removed; NULL once reported */
        size_t n;
        bool stopped;
} Waiter;

static void on_device_removed(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque) {
        Waiter *w = opaque;
        (void) conn;
        (void) dom;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->n; i++)
                if (streq_ptr(w->aliases[i], alias))
                        w->aliases[i] = mfree(w->aliases[i]);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Waiter *w = opaque;
        (void) conn;
        (void) dom;
        (void) detail;
        if (event != VIR_DOMAIN_EVENT_STOPPED)
                return;
        pthread_mutex_lock(&w->lock);
        w->stopped = true;     /* a domain that stopped has let go of every device */
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

static bool waiter_done(Waiter *w) {
        if (w->stopped)
                return true;
        for (size_t i = 0; i < w->n; i++)
                if (w->aliases[i])
                        return false;
        return true;
}

/* The live definition: the running domain's hostdevs with their aliases; NULL (and -errno) when it cannot be read */
static int live_definition(Connection *c, IovirtDomain **ret, char **reason) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(c->dom, 0), *why = NULL;
        if (!xml)
                return lv_error(reason, "give the domain's XML");
        int r = iovirt_domain_parse(xml, strlen(xml), ret, &why);
        if (r < 0 && r != -ENOMEM)
                return iovirt_set_reason(reason, r, "The XML libvirt gives for the domain cannot be read: %s",
                                         strna(why));
        return r;
}

/* From the running guest: 0 once every one is gone (or the domain stopped) */
static int detach_live(Connection *c, const IovirtAddress *functions, size_t n, char **reason) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *live = NULL;
        Waiter w = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        int removed_id = -1, lifecycle_id = -1, r;

        if (!(w.aliases = calloc(n, sizeof(char *))))
                return -ENOMEM;
        /* listen first, then look: a removal between the two is still heard */
        removed_id = virConnectDomainEventRegisterAny(c->conn, c->dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                                      VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), &w, NULL);
        lifecycle_id = virConnectDomainEventRegisterAny(c->conn, c->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                        VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &w, NULL);
        if (removed_id < 0 || lifecycle_id < 0) {
                r = lv_error(reason, "report the detach's end");
                goto out;
        }
        r = live_definition(c, &live, reason);
        if (r < 0)
                goto out;
        pthread_mutex_lock(&w.lock);
        for (size_t i = 0; i < n && r >= 0; i++) {
                const IovirtDomainHostdev *h = iovirt_domain_find_hostdev(live, &functions[i]);
                if (!h)
                        continue;     /* not the guest's: nothing to wait for */
                if (!h->alias) {
                        r = iovirt_set_reason(reason, -EIO, "libvirt names no alias for a device of the running domain, "
                                              "so its removal could not be told");
                        break;
                }
                if (!(w.aliases[i] = strdup(h->alias)))
                        r = -ENOMEM;
                w.n = i + 1;
        }
        pthread_mutex_unlock(&w.lock);
        for (size_t i = 0; i < w.n && r >= 0; i++) {
                pthread_mutex_lock(&w.lock);
                bool wanted = w.aliases[i] != NULL;
                pthread_mutex_unlock(&w.lock);
                if (!wanted)
                        continue;
                _cleanup_free_ char *xml = iovirt_domain_hostdev_xml(&functions[i]);
                char addr[IOVIRT_ADDRESS_MAX], what[64];
                iovirt_address_format(&functions[i], addr);
                snprintf(what, sizeof(what), "detach %s from the running domain", addr);
                if (!xml)
                        r = -ENOMEM;
                else if (virDomainDetachDeviceFlags(c->dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
                        r = lv_error(reason, what);
                        if (r == -ESRCH)
                                r = 0;     /* it stopped meanwhile: nothing is the guest's any more */
                }
        }
        if (r < 0)
                goto out;

        /* libvirt waits a few seconds for the guest itself; the rest of the time is waited here */
        uint64_t seconds = detach_timeout_sec();
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += (time_t) seconds;
        pthread_mutex_lock(&w.lock);
        while (!waiter_done(&w))
                if (pthread_cond_timedwait(&w.cond, &w.lock, &deadline) == ETIMEDOUT)
                        break;
        bool done = waiter_done(&w);
        pthread_mutex_unlock(&w.lock);
        if (!done) {
                /* the event may have been missed (libvirtd restarted): its word, read again */
                iovirt_domain_free(TAKE_PTR(live));
                int active = virDomainIsActive(c->dom);
                if (active == 0)
                        done = true;
                else if (active > 0 && live_definition(c, &live, NULL) >= 0) {
                        done = true;
                        for (size_t i = 0; i < n; i++)
                                if (iovirt_domain_find_hostdev(live, &functions[i]))
                                        done = false;
                }
        }
        if (!done)
                r = iovirt_set_reason(reason, -ETIMEDOUT, "The guest did not let go of the device within %" PRIu64
                                      " s of the detach (libvirt sent no DEVICE_REMOVED): it is still the domain's, "
                                      "and stays bound to VFIO. The guest's OS must release it (is it running, and "
                                      "does it support PCI hot-unplug?); try again, or shut the domain down",
                                      seconds);
out:
        /* deregistering waits for a callback in progress: w is not used after this */
        if (removed_id >= 0)
                virConnectDomainEventDeregisterAny(c->conn, removed_id);
        if (lifecycle_id >= 0)
                virConnectDomainEventDeregisterAny(c->conn, lifecycle_id);
        for (size_t i = 0; i < n; i++)
                free(w.aliases[i]);
        free(w.aliases);
        return r;
}

/* From the persistent definition: each function it has */
static int detach_config(Connection *c, const IovirtAddress *functions, size_t n, char **reason) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(c->dom, VIR_DOMAIN_XML_INACTIVE), *why = NULL;
        _cleanup_(iovirt_domain_freep) IovirtDomain *config = NULL;
        if (!xml)
                return lv_error(reason, "give the domain's persistent XML");
        int r = iovirt_domain_parse(xml, strlen(xml), &config, &why);
        if (r < 0)
                return r == -ENOMEM ? r
                                    : iovirt_set_reason(reason, r, "The persistent XML of the domain cannot be read: %s",
                                                        strna(why));
        for (size_t i = 0; i < n; i++) {
                if (!iovirt_domain_find_hostdev(config, &functions[i]))
                        continue;
                _cleanup_free_ char *dev = iovirt_domain_hostdev_xml(&functions[i]);
                if (!dev)
                        return -ENOMEM;
                if (virDomainDetachDeviceFlags(c->dom, dev, VIR_DOMAIN_AFFECT_CONFIG) < 0)
                        return lv_error(reason, "take the device out of the domain's persistent config");
        }
        return 0;
}

int libvirt_detach(const char *uuid, const IovirtAddress *functions, size_t n, bool config, char **reason) {
        _cleanup_(connection_close) Connection c = {};
        int r = connection_open(uuid, &c, reason);
        if (r == -ENOENT)
                return 0;       /* no such domain any more: it has nothing */
        if (r < 0)
                return r;
        int active = virDomainIsActive(c.dom);
        if (active < 0)
                return lv_error(reason, "tell whether the domain runs");
        if (active && (r = detach_live(&c, functions, n, reason)) < 0)
                return r;
        int persistent = virDomainIsPersistent(c.dom);
        if (config && persistent > 0)
                return detach_config(&c, functions, n, reason);
        return 0;
}

/* ---- the QEMU's limit ---- */

int libvirt_memlock_covers(const LibvirtDomain *d, uint64_t *need, uint64_t *have) {
        const IovirtDomain *x = d->xml;
        struct rlimit rl;
        if (!d->active || d->pid <= 0)
                return -ESRCH;
        if (x->locked)
                *need = UINT64_MAX;      /* libvirt: <locked/> means unlimited */
        else {
                uint64_t memory = x->max_memory > x->memory ? x->max_memory : x->memory;
                int r = iovirt_memlock_limit(memory, (unsigned) x->n_hostdevs, x->viommu, x->hard_limit, need);
                if (r < 0)
                        return r;
        }
        int r = iovirt_memlock_get(d->pid, &rl);
        if (r < 0)
                return r;
        *have = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t) rl.rlim_cur;
        return *have >= *need;
}
