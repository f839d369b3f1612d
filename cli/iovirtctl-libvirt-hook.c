/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "iovirt-domain.h"
#include "iovirt-names.h"
#include "iovirt-state.h"
#include "iovirt-sysfs.h"
#include "iovirtctl.h"

/* libvirt-hook DOMAIN OPERATION SUB-OPERATION: what libvirt's qemu hook
 * (data/libvirt/hooks/qemu.d/iovirt) runs, with the domain XML on stdin.
 * "prepare begin" asks iovirtd to prepare the domain's hostdevs and pool
 * devices (PrepareDomain), "started begin" to attach the pool devices
 * once the start is over (StartedDomain, which queues it and answers),
 * "release end" to give them back (ReleaseDomain); every other operation
 * is answered at once.  A refusal exits 1 with the reason
 * on stderr, which libvirt shows and which stops the start.  It never
 * calls libvirt: libvirtd waits on the hook. */

#define HOOK_TIMEOUT_USEC (300ULL * 1000 * 1000)

/* Whether the domain has a PCI device to prepare or check at all: one
 * without starts whether iovirtd is there or not.  XML that cannot be read
 * counts as having one (iovirtd would have said why). */
static bool has_pci_hostdev(const char *xml) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = NULL;
        return iovirt_domain_parse(xml, strlen(xml), &d, NULL) < 0 || d->n_hostdevs > 0 || d->n_pools > 0;
}

/* Whether it asks for pool devices, which are attached once it runs */
static bool has_pool_request(const char *xml) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = NULL;
        return iovirt_domain_parse(xml, strlen(xml), &d, NULL) >= 0 && d->n_pools > 0;
}

/* iovirtd is not there, or could not be started for us (activation) */
static bool daemon_absent(int r, const sd_bus_error *e) {
        return r == -ENOENT || r == -ECONNREFUSED ||
               sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_NO_SERVER, SD_BUS_ERROR_DISCONNECTED) ||
               (sd_bus_error_is_set(e) && (strncmp(e->name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0 ||
                                           strncmp(e->name, "org.freedesktop.systemd1.", 25) == 0));
}

/* One call to iovirtd.  A release end while a job holds the domain's
 * groups is answered at once and carried out after the job (iovirtd
 * defers it): libvirt holds the domain until its hook returns, and the
 * job may be waiting on libvirt. */
static int call_hook(Ctl *c, const char *method, const char *domain, const char *xml, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r = sd_bus_message_new_method_call(c->bus, &m, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH,
                                               IOVIRT_MANAGER_INTERFACE, method);
        if (r >= 0)
                r = streq_ptr(method, "PrepareDomain") ? sd_bus_message_append(m, "ssb", domain, xml, 0)
                                                       : sd_bus_message_append(m, "sb", domain, 0);
        /* binding waits for drivers, one group after another: more than sd-bus's 25 s */
        if (r >= 0)
                r = sd_bus_call(c->bus, m, HOOK_TIMEOUT_USEC, error, &reply);
        return r;
}

int verb_libvirt_hook(Ctl *c, int argc, char **argv) {
        _cleanup_free_ char *xml = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *domain = argv[0], *op = argv[1], *sub = argv[2];
        bool prepare = streq_ptr(op, "prepare") && streq_ptr(sub, "begin");
        bool started = streq_ptr(op, "started") && streq_ptr(sub, "begin");
        bool release = streq_ptr(op, "release") && streq_ptr(sub, "end");
        int r;

        if (!prepare && !started && !release)
                return 0;     /* libvirt's other operations: nothing for iovirt */
        r = iovirt_read_fd(STDIN_FILENO, IOVIRT_DOMAIN_XML_MAX, &xml, NULL);   /* what iovirtd takes */
        if (r < 0)
                return ctl_fail(c, CTL_ERROR_FAILED, "cannot read domain %s's XML on stdin: %s; the hook takes what "
                                                     "libvirt writes (virsh dumpxml %s)", domain, strerror(-r), domain);
        if (!iovirt_utf8_valid(domain))
                return ctl_fail(c, CTL_ERROR_FAILED, "the domain's name is not UTF-8 text, which libvirt writes: is "
                                                     "the hook called by something else?");
        if (prepare && !iovirt_utf8_valid(xml))
                return ctl_fail(c, CTL_ERROR_FAILED, "domain %s's XML on stdin is not UTF-8 text, which libvirt "
                                                     "writes: is the hook called by something else?", domain);
        /* A VM with nothing for iovirt starts without asking it: iovirtd
         * slow, stopping or not installed never delays other starts */
        if ((prepare && !has_pci_hostdev(xml)) || (started && !has_pool_request(xml)))
                return 0;
        r = sd_bus_open_system(&c->bus);
        if (r >= 0)
                r = call_hook(c, prepare ? "PrepareDomain" : started ? "StartedDomain" : "ReleaseDomain", domain, xml,
                              &error);
        if (r >= 0)
                return 0;
        bool absent = daemon_absent(r, &error);
        if (absent && release) {
                /* nothing iovirt prepared can be given back */
                sd_bus_error_free(&error);
                return 0;
        }
        if (absent)
                r = ctl_fail(c, CTL_ERROR_NO_DAEMON, "iovirtd is not running, so the PCI devices of domain %s cannot be "
                                                     "checked or prepared; start it (systemctl start iovirtd)", domain);
        else
                r = ctl_fail_bus(c, &error, r, NULL);
        sd_bus_error_free(&error);
        return r;
}
