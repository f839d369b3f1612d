/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>

#include "iovirt-fault.h"
#include "iovirt-names.h"
#include "iovirt-util.h"

#if IOVIRT_FAULT_INJECTION
void iovirt_fault_point(const char *point) {
        static _Atomic unsigned hits;       /* transactions run on several threads */
        const char *want = getenv(IOVIRT_ENV_FAULT);
        if (!want)
                return;
        size_t l = strcspn(want, ":");
        if (strlen(point) != l || strncmp(point, want, l) != 0)
                return;
        unsigned nth = want[l] == ':' ? (unsigned) atoi(want + l + 1) : 1;
        unsigned hit = ++hits;
        if (hit < nth)
                return;
        fprintf(stderr, "iovirt: fault injection: killed at %s (hit %u)\n", point, hit);
        raise(SIGKILL);
}
#endif
