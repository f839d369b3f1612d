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

/* Connects and finds the domain (by UUID or name), however long libvirtd takes */
static int connection_open_now(const char *name_or_uuid, Connection *c, char **reason) {
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

/* A connection opened on a thread of its own, shared with whoever waits
 * for it: a libvirtd that accepts and never answers holds that thread, not
 * the job (keepalive only starts once a connection is open).  The last of
 * the two to let go frees it, and closes a connection nobody took. */
typedef struct Opening {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned refs;
        bool done;
        char *name;
        int r;
        char *reason;
        Connection c;
} Opening;

static void opening_unref(Opening *o) {
        pthread_mutex_lock(&o->lock);
        bool last = --o->refs == 0;
        pthread_mutex_unlock(&o->lock);
        if (!last)
                return;
        connection_close(&o->c);
        free(o->name);
        free(o->reason);
        pthread_cond_destroy(&o->cond);
        pthread_mutex_destroy(&o->lock);
        free(o);
}

static void *opening_run(void *p) {
        Opening *o = p;
        Connection c = {};
        char *reason = NULL;
        int r = connection_open_now(o->name, &c, &reason);
        pthread_mutex_lock(&o->lock);
        o->r = r;
        o->c = c;
        o->reason = reason;
        o->done = true;
        pthread_cond_signal(&o->cond);
        pthread_mutex_unlock(&o->lock);
        opening_unref(o);
        return NULL;
}

static int timeout_sec(const char *env, int fallback) {
        const char *e = getenv(env);
        int v;
        return e && iovirt_parse_int(e, &v) >= 0 && v > 0 ? v : fallback;
}

/* connection_open_now(), waited for at most $IOVIRT_LIBVIRT_TIMEOUT seconds */
static int connection_open(const char *name_or_uuid, Connection *c, char **reason) {
        int seconds = timeout_sec(LIBVIRT_ENV_LOOKUP_TIMEOUT, LIBVIRT_LOOKUP_TIMEOUT_SEC), r;
        Opening *o = calloc(1, sizeof(Opening));
        if (!o || !(o->name = strdup(name_or_uuid))) {
                free(o);
                return -ENOMEM;
        }
        pthread_condattr_t cattr;
        pthread_mutex_init(&o->lock, NULL);
        pthread_condattr_init(&cattr);
        pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
        pthread_cond_init(&o->cond, &cattr);
        pthread_condattr_destroy(&cattr);
        o->refs = 2;
        pthread_t t;
        pthread_attr_t attr;
        if ((r = pthread_attr_init(&attr)) == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = pthread_create(&t, &attr, opening_run, o);
                pthread_attr_destroy(&attr);
        }
        if (r != 0) {
                o->refs = 1;
                opening_unref(o);
                return -r;
        }
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += seconds;
        pthread_mutex_lock(&o->lock);
        while (!o->done)
                if (pthread_cond_timedwait(&o->cond, &o->lock, &deadline) == ETIMEDOUT)
                        break;
        if (o->done) {
                r = o->r;
                *c = o->c;
                o->c = (Connection) {};
                if (reason)
                        *reason = TAKE_PTR(o->reason);
        } else
                r = -ETIMEDOUT;
        pthread_mutex_unlock(&o->lock);
        opening_unref(o);
        if (r == -ETIMEDOUT)
                return iovirt_set_reason(reason, r, "libvirt at %s did not answer within %d s (is libvirtd stuck, "
                                         "or restarting?); $IOVIRT_LIBVIRT_TIMEOUT sets how long iovirtd waits",
                                         libvirt_uri(), seconds);
        return r;
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
        if (asprintf(&path, QEMU_SYSTEM_RUN_DIR "/%s.pid", name) < 0) {
                path = NULL;
                return 0;
        }
        if (iovirt_read_file(path, &text) < 0 || iovirt_parse_int(text, &pid) < 0 || pid <= 0)
                return 0;
        path = mfree(path);
        if (asprintf(&path, "/proc/%d/cmdline", pid) < 0) {
                path = NULL;
                return 0;
        }
        if (asprintf(&want, "guest=%s,", name) < 0) {
                want = NULL;
                return 0;
        }
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

/* Where the functions go: live when it runs, the config too when asked (or alone when it does not run) */
static int attach_where(Connection *c, bool was_active, bool persistent, LibvirtAttach *ret, char **reason) {
        int active = virDomainIsActive(c->dom), is_persistent = virDomainIsPersistent(c->dom);
        if (active < 0 || is_persistent < 0)
                return lv_error(reason, "tell whether the domain runs");
        if (was_active && !active)
                return iovirt_set_reason(reason, -ESRCH, "The domain stopped while its device was being bound, so "
                                         "it was not attached; assign it again to the domain's config, or start "
                                         "the domain first");
        if (persistent && !is_persistent)
                return iovirt_set_reason(reason, -EINVAL, "The domain is transient (started with virsh create): it "
                                         "has no persistent config to add the device to; assign it without "
                                         "--persistent");
        LibvirtAttach where = active ? LIBVIRT_ATTACH_LIVE : LIBVIRT_ATTACH_NONE;
        if (is_persistent && (persistent || !active))
                where |= LIBVIRT_ATTACH_CONFIG;
        if (where == LIBVIRT_ATTACH_NONE)
                return iovirt_set_reason(reason, -ESRCH, "The domain neither runs nor has a persistent config to "
                                         "add the device to");
        *ret = where;
        return 0;
}

int libvirt_attach(const char *uuid, const IovirtAddress *functions, size_t n, bool was_active, bool persistent,
                   LibvirtAttach *ret, bool *stuck, char **reason) {
        _cleanup_(connection_close) Connection c = {};
        LibvirtAttach where = LIBVIRT_ATTACH_NONE;
        *stuck = false;
        int r = connection_open(uuid, &c, reason);
        if (r >= 0)
                r = attach_where(&c, was_active, persistent, &where, reason);
        if (r < 0)
                return r;      /* nothing was asked of the domain */
        unsigned flags = (where & LIBVIRT_ATTACH_LIVE ? VIR_DOMAIN_AFFECT_LIVE : 0) |
                         (where & LIBVIRT_ATTACH_CONFIG ? VIR_DOMAIN_AFFECT_CONFIG : 0);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = attach_one(&c, &functions[i], flags, reason);
        if (r >= 0) {
                *ret = where;
                return 0;
        }
        /* All or none: every function goes back out, the failed one too (its attach may have been carried
         * out with the answer lost); one the domain does not have is nothing to detach.  Until that is done
         * the guest may hold them: the caller must not unbind. */
        _cleanup_free_ char *why = NULL;
        connection_close(&c);
        if (libvirt_detach(uuid, functions, n, where & LIBVIRT_ATTACH_CONFIG, &why) < 0) {
                *stuck = true;
                iovirt_reason_append(reason, "; and what was attached could not be taken out again: ", why);
        }
        return r;
}

/* ---- detach ---- */

/* What the detach waits for, shared with libvirt's event thread: each
 * registered callback holds a reference, dropped by libvirt (freecb) once
 * the callback can run no more, so a late event never finds it gone */
typedef struct Waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned refs;
        char **aliases;          /* those still to be removed; NULL once reported */
        size_t n;
        bool stopped;
} Waiter;

static Waiter *waiter_new(size_t n) {
        Waiter *w = calloc(1, sizeof(Waiter));
        pthread_condattr_t attr;
        if (!w || !(w->aliases = calloc(n + 1, sizeof(char *)))) {
                free(w);
                return NULL;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cond, &attr);
        pthread_condattr_destroy(&attr);
        w->refs = 1;
        return w;
}

static void waiter_unref(void *p) {
        Waiter *w = p;
        pthread_mutex_lock(&w->lock);
        bool last = --w->refs == 0;
        pthread_mutex_unlock(&w->lock);
        if (!last)
                return;
        for (size_t i = 0; i < w->n; i++)
                free(w->aliases[i]);
        free(w->aliases);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
}

static void waiter_unrefp(Waiter **w) {
        if (*w)
                waiter_unref(*w);
}

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

/* Called with w->lock held */
static bool waiter_done(const Waiter *w) {
        if (w->stopped)
                return true;
        for (size_t i = 0; i < w->n; i++)
                if (w->aliases[i])
                        return false;
        return true;
}

/* The callbacks of one detach: registered first, so that nothing between
 * the look at the live XML and the detach is missed */
typedef struct Listening {
        virConnectPtr conn;
        int removed_id, lifecycle_id;
} Listening;

static void listening_stop(Listening *l) {
        if (l->removed_id >= 0)
                virConnectDomainEventDeregisterAny(l->conn, l->removed_id);
        if (l->lifecycle_id >= 0)
                virConnectDomainEventDeregisterAny(l->conn, l->lifecycle_id);
}

static int listen_for(Connection *c, Waiter *w, Listening *l, char **reason) {
        *l = (Listening) { .conn = c->conn, .removed_id = -1, .lifecycle_id = -1 };
        w->refs += 2;        /* one per callback, before libvirt may drop one */
        l->removed_id = virConnectDomainEventRegisterAny(c->conn, c->dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                                         VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), w, waiter_unref);
        if (l->removed_id < 0)
                w->refs--;
        l->lifecycle_id = virConnectDomainEventRegisterAny(c->conn, c->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                           VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), w, waiter_unref);
        if (l->lifecycle_id < 0)
                w->refs--;
        if (l->removed_id < 0 || l->lifecycle_id < 0)
                return lv_error(reason, "report when the device is gone");
        return 0;
}

/* The live definition: the running domain's hostdevs with their aliases */
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

/* Which of the functions the guest has: their aliases into w */
static int guest_has(Connection *c, Waiter *w, const IovirtAddress *functions, size_t n, char **reason) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *live = NULL;
        int r = live_definition(c, &live, reason);
        if (r < 0)
                return r;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < n && r >= 0; i++) {
                const IovirtDomainHostdev *h = iovirt_domain_find_hostdev(live, &functions[i]);
                if (!h)
                        continue;     /* not the guest's: nothing to wait for */
                if (!h->alias)
                        r = iovirt_set_reason(reason, -EIO, "libvirt names no alias for a device of the running "
                                              "domain, so its removal could not be told; shut the domain down to "
                                              "take the device back");
                else if (!(w->aliases[i] = strdup(h->alias)))
                        r = -ENOMEM;
                w->n = i + 1;
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

/* Asks for each function the guest has; a domain that stopped meanwhile has none */
static int ask_detach(Connection *c, Waiter *w, const IovirtAddress *functions, char **reason) {
        for (size_t i = 0; i < w->n; i++) {
                pthread_mutex_lock(&w->lock);
                bool wanted = w->aliases[i] != NULL;
                pthread_mutex_unlock(&w->lock);
                if (!wanted)
                        continue;
                _cleanup_free_ char *xml = iovirt_domain_hostdev_xml(&functions[i]);
                char addr[IOVIRT_ADDRESS_MAX], what[64];
                iovirt_address_format(&functions[i], addr);
                snprintf(what, sizeof(what), "detach %s from the running domain", addr);
                if (!xml)
                        return -ENOMEM;
                if (virDomainDetachDeviceFlags(c->dom, xml, VIR_DOMAIN_AFFECT_LIVE) >= 0)
                        continue;
                int r = lv_error(reason, what);
                /* "not running" and other refusals share one code: only a domain that is off is let go */
                if (r != -ESRCH || virDomainIsActive(c->dom) != 0)
                        return r;
                if (reason)
                        *reason = mfree(*reason);
                return 0;
        }
        return 0;
}

/* libvirt waits a few seconds for the guest itself; the rest of the time is waited here */
static bool wait_gone(Waiter *w, uint64_t seconds) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t) seconds;
        pthread_mutex_lock(&w->lock);
        while (!waiter_done(w))
                if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT)
                        break;
        bool done = waiter_done(w);
        pthread_mutex_unlock(&w->lock);
        return done;
}

/* The event may have been missed (libvirtd restarted): its word, read again */
static bool gone_now(Connection *c, const IovirtAddress *functions, size_t n) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *live = NULL;
        int active = virDomainIsActive(c->dom);
        if (active == 0)
                return true;
        if (active < 0 || live_definition(c, &live, NULL) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (iovirt_domain_find_hostdev(live, &functions[i]))
                        return false;
        return true;
}

/* From the running guest: 0 once every one is gone (or the domain stopped) */
static int detach_live(Connection *c, const IovirtAddress *functions, size_t n, char **reason) {
        _cleanup_(waiter_unrefp) Waiter *w = waiter_new(n);
        _cleanup_(listening_stop) Listening l = { .removed_id = -1, .lifecycle_id = -1 };
        if (!w)
                return -ENOMEM;
        int r = listen_for(c, w, &l, reason);
        if (r >= 0)
                r = guest_has(c, w, functions, n, reason);
        if (r >= 0)
                r = ask_detach(c, w, functions, reason);
        if (r < 0)
                return r;
        uint64_t seconds = (uint64_t) timeout_sec(LIBVIRT_ENV_DETACH_TIMEOUT, LIBVIRT_DETACH_TIMEOUT_SEC);
        if (wait_gone(w, seconds) || gone_now(c, functions, n))
                return 0;
        return iovirt_set_reason(reason, -ETIMEDOUT, "The guest did not let go of the device within %" PRIu64 " s "
                                 "of the detach (libvirt sent no DEVICE_REMOVED): it is still the domain's, and "
                                 "stays bound to VFIO. The guest's OS must release it (is it running, and does it "
                                 "support PCI hot-unplug?); try again, or shut the domain down", seconds);
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

static int detach_from(Connection *c, const IovirtAddress *functions, size_t n, bool config, char **reason) {
        int active = virDomainIsActive(c->dom), r;
        if (active < 0)
                return lv_error(reason, "tell whether the domain runs");
        if (active && (r = detach_live(c, functions, n, reason)) < 0)
                return r;
        if (!config)
                return 0;
        int persistent = virDomainIsPersistent(c->dom);
        if (persistent < 0)
                return lv_error(reason, "tell whether the domain has a persistent config");
        return persistent ? detach_config(c, functions, n, reason) : 0;
}

int libvirt_detach(const char *uuid, const IovirtAddress *functions, size_t n, bool config, char **reason) {
        _cleanup_(connection_close) Connection c = {};
        int r = connection_open(uuid, &c, reason);
        if (r >= 0)
                r = detach_from(&c, functions, n, config, reason);
        if (r == -ENOENT) {
                /* no such domain (any more): it has nothing, a transient one that stopped included */
                if (reason)
                        *reason = mfree(*reason);
                return 0;
        }
        return r;
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

int libvirt_domain_memlock(const char *name_or_uuid, uint64_t *need, uint64_t *have, char **reason) {
        _cleanup_(libvirt_domain_clear) LibvirtDomain now = {};
        int r = libvirt_lookup(name_or_uuid, &now, reason);
        if (r < 0)
                return r;
        r = libvirt_memlock_covers(&now, need, have);
        if (r == -ESRCH)
                return iovirt_set_reason(reason, r, "libvirt's pid file names no QEMU of domain %s (only "
                                         "qemu:///system keeps one in " QEMU_SYSTEM_RUN_DIR ")", now.name);
        if (r < 0)
                return iovirt_set_reason(reason, r, "The RLIMIT_MEMLOCK of domain %s's QEMU cannot be read: %s",
                                         now.name, strerror(-r));
        return r;
}
