/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "iovirt-check.h"
#include "iovirt-host.h"
#include "iovirt-verdict.h"

/* The documented JSON schema (man iovirtctl, JSON OUTPUT), built in one
 * place so that the CLI's --json and the daemon's answers cannot drift. */

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* {"iommu":bool,"groups":[{"group":N,"isolation":..,"peers":[..],"causes":[..],
 *   "vfio_device":bool,"viability":{..},"devices":[brief device..]}]} */
json_object *iovirt_json_groups(IovirtHost *h, const IovirtVerdicts *v);
/* {"devices":[brief device..]} for the selected indices */
json_object *iovirt_json_devices(IovirtHost *h, const size_t *sel, size_t n);
/* every field of one device, plus its group's verdict */
json_object *iovirt_json_device(IovirtHost *h, const IovirtVerdicts *v, size_t i);
/* {"result":"pass|warn|fail","checks":[{"id","title","status","message","remedy"}]} */
json_object *iovirt_json_checks(const IovirtChecks *c);

/* The other way, for clients of iovirtd: a host model rebuilt from the
 * "tree" document (DescribeTree), holding everything the verdicts and the
 * CLI's formatting read; and checks from the "check" document.  -EBADMSG
 * when the document is not what the schema says. */
int iovirt_host_from_json(json_object *tree, IovirtHost **ret);
int iovirt_checks_from_json(json_object *doc, IovirtChecks **ret);
