/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "iovirt-names.h"
#include "iovirtctl.h"

/* Changing commands go through iovirtd and never fall back to doing the
 * work themselves: only the daemon serialises changes and checks polkit. */
int verb_reload(Ctl *c, int argc, char **argv) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (c->direct) {
                fprintf(stderr, "iovirtctl: reload asks iovirtd; it cannot be done --direct\n");
                return EXIT_USAGE;
        }
        r = sd_bus_open_system(&c->bus);
        if (r < 0) {
                fprintf(stderr, "iovirtctl: cannot reach the system bus (%s); reload needs iovirtd\n", strerror(-r));
                return 1;
        }
        /* a password prompt only where someone can answer it */
        int interactive = !c->no_ask_password && isatty(STDIN_FILENO);
        r = sd_bus_call_method(c->bus, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Reload", &error,
                               NULL, "b", interactive);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        fprintf(stderr, "iovirtctl: iovirtd is not running; start it with "
                                        "'systemctl start iovirtd'\n");
                else
                        fprintf(stderr, "iovirtctl: %s\n", error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return 1;
        }
        return 0;
}
