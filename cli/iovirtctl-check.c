/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "iovirt-check.h"
#include "iovirtctl.h"

int verb_check(Ctl *c, int argc, char **argv) {
        _cleanup_(iovirt_checks_freep) IovirtChecks *checks = NULL;
        int r;

        if (ctl_load(c) < 0)
                return 1;
        if (c->from_daemon) {
                /* the daemon's view of the host is the one that counts */
                _cleanup_(json_object_putp) json_object *doc = NULL;
                _cleanup_free_ char *why = NULL;
                r = ctl_call_json(c, "CheckHost", NULL, &doc, &why);
                if (r == -ENOTCONN)
                        return ctl_fail(c, CTL_ERROR_NO_DAEMON, "cannot get the host checks from iovirtd: %s",
                                        why ? why : "it is not on the bus");
                if (r < 0)
                        return 1;       /* reported */
                r = iovirt_checks_from_json(doc, &checks);
                if (r < 0)
                        return ctl_fail(c, r == -ENOMEM ? CTL_ERROR_FAILED : CTL_ERROR_BAD_ANSWER,
                                        "cannot get the host checks from iovirtd: %s", strerror(-r));
        } else {
                r = iovirt_checks_run(c->host, c->verdicts, &checks);
                if (r < 0)
                        return ctl_fail(c, CTL_ERROR_FAILED, "cannot run the host checks: %s", strerror(-r));
        }
        if (c->json) {
                _cleanup_(json_object_putp) json_object *o = iovirt_json_checks(checks);
                ctl_print_json(o);
        } else
                for (size_t i = 0; i < checks->n_checks; i++) {
                        const IovirtCheck *k = &checks->checks[i];
                        char line[1024];
                        snprintf(line, sizeof(line), "%s  %s: %s", iovirt_check_status_name(k->status), k->title,
                                 k->message);
                        ctl_wrap(c, 0, line);
                        if (k->remedy) {
                                snprintf(line, sizeof(line), "-> %s", k->remedy);
                                ctl_wrap(c, 6, line);
                        }
                }
        return iovirt_checks_worst(checks) == IOVIRT_CHECK_FAIL ? 1 : 0;
}
