/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

/* libvirt's qemu hook through iovirtd: PrepareDomain(s name, s xml, b
 * interactive) at "prepare begin" and ReleaseDomain(s name, b interactive)
 * at "release end", behind the bouncer (org.iovirt1.assign, .release). */
int prepare_prepare_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_prepare_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prepare_release_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_release_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* org.iovirt1.release-any when another uid prepared one of its groups */
const char *escalate_release_domain(sd_bus_message *msg, void *userdata, uid_t uid);
