/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "iovirtd-libvirt.h"
#include "iovirtd-manager.h"
#include "iovirtd-policy.h"

/* libvirt's qemu hook through iovirtd: PrepareDomain(s name, s xml, b
 * interactive) at "prepare begin" and ReleaseDomain(s name, b interactive)
 * at "release end", behind the bouncer (org.iovirt1.assign, .release). */
int prepare_prepare_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_prepare_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prepare_release_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_release_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* StartedDomain(s name, b interactive) at "started begin": the domain's
 * pool devices (metadata <iovirt:device pool=>) are attached live by a job
 * queued before the answer, which libvirt waits for (org.iovirt1.assign) */
int prepare_started_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_started_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* org.iovirt1.release-any when another uid prepared one of its groups */
const char *escalate_release_domain(sd_bus_message *msg, void *userdata, uid_t uid);

/* Assign's consumer when it is a libvirt domain: "domain:NAME",
 * "domain:UUID", or a bare name libvirt knows (a bare name it does not
 * know, or a libvirt that cannot be reached, leaves it a name).  The
 * lookup runs on a job's thread; msg is handed to again (its method's
 * handler) when it has finished (1).  0 with *ret the domain, valid until the loop returns, and
 * *consumer its "domain:NAME"; or *ret NULL for a consumer that is no
 * domain.  With lookup false (after polkit) no lookup is started: the
 * prepare's is used.  Errors are set on error. */
int domain_consumer(Manager *m, sd_bus_message *msg, sd_bus_message_handler_t again, const char *asked, bool lookup,
                    const LibvirtDomain **ret, const char **consumer, sd_bus_error *error);
void domains_free(Domains *s);

/* After each job: the releases hooks asked for while it held their groups */
void domain_release_deferred(Manager *m);

/* What a domain's definition asks of the policy: its memory (with memory
 * hotplug what it may grow to, as libvirt sizes its memlock), vIOMMU, hard
 * limit and placement; ask is filled in, the caller's uid kept. */
void domain_ask(const IovirtDomain *dom, PolicyAsk *ask);
