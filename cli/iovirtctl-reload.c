/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "iovirt-names.h"
#include "iovirtctl.h"

/* Changing commands go through iovirtd and never fall back to doing the
 * work themselves: only the daemon serialises changes and checks polkit.
 * (--direct is refused by the dispatcher, before the bus.) */
int verb_reload(Ctl *c, int argc, char **argv) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (ctl_open_bus(c) < 0)
                return 1;
        /* a password prompt only where someone can answer it */
        int interactive = !c->no_ask_password && isatty(STDIN_FILENO);
        r = sd_bus_call_method(c->bus, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Reload", &error,
                               NULL, "b", interactive);
        if (r < 0) {
                ctl_fail_bus(c, &error, r, NULL);
                sd_bus_error_free(&error);
                return 1;
        }
        return 0;
}
