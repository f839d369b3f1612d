/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "iovirt-host.h"
#include "iovirt-verdict.h"

/* Host checks: is this host ready for device assignment, and if not, what
 * to do about it.  Each check reads the files it needs and says PASS, WARN,
 * FAIL (or SKIP when what it needs failed before it). */

typedef enum IovirtCheckStatus {
        IOVIRT_CHECK_PASS,
        IOVIRT_CHECK_WARN,
        IOVIRT_CHECK_FAIL,
        IOVIRT_CHECK_SKIP,
} IovirtCheckStatus;

typedef struct IovirtCheck {
        char *id;                  /* stable, for --json: "iommu_firmware", ... */
        char *title;               /* "IOMMU in firmware" */
        IovirtCheckStatus status;
        char *message;             /* what was found */
        char *remedy;              /* one line: what to do; NULL on PASS */
} IovirtCheck;

typedef struct IovirtChecks {
        IovirtCheck *checks;
        size_t n_checks;
} IovirtChecks;

int iovirt_checks_run(const IovirtHost *h, const IovirtVerdicts *v, IovirtChecks **ret);
IovirtChecks *iovirt_checks_free(IovirtChecks *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtChecks *, iovirt_checks_free);

const char *iovirt_check_status_name(IovirtCheckStatus s);   /* "PASS", ... */
/* The worst status of all checks (SKIP counts as PASS). */
IovirtCheckStatus iovirt_checks_worst(const IovirtChecks *c);

/* Whether the kernel command line (as in /proc/cmdline) sets word, alone or
 * as word=VALUE; stores a copy of VALUE (or "") in *value when asked. */
bool iovirt_cmdline_has(const char *cmdline, const char *word, char **value);
