/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "iovirt-names.h"
#include "iovirtctl.h"

/* Whether an error means "iovirtd is not there", the one case in which
 * read-only commands read the host themselves. */
static bool not_on_bus(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_NO_SERVER, SD_BUS_ERROR_DISCONNECTED, SD_BUS_ERROR_TIMEOUT,
                                      "org.freedesktop.DBus.Error.Spawn.ChildExited",
                                      "org.freedesktop.DBus.Error.Spawn.Failed");
}

/* Calls a method that returns one JSON document and parses it.
 * -ENOTCONN: iovirtd is not on the bus (*why says how); other errors printed. */
int ctl_call_json(Ctl *c, const char *method, const char *arg, json_object **ret, char **why) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *s;
        int r;

        if (!c->bus) {
                r = sd_bus_open_system(&c->bus);
                if (r < 0) {
                        if (asprintf(why, "no system bus: %s", strerror(-r)) < 0)
                                *why = NULL;
                        return -ENOTCONN;
                }
        }
        r = sd_bus_call_method(c->bus, IOVIRT_BUS_NAME, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, method, &error,
                               &reply, arg ? "s" : "", arg);
        if (r < 0) {
                if (not_on_bus(&error)) {
                        if (asprintf(why, "%s", error.message ? error.message : error.name) < 0)
                                *why = NULL;
                        sd_bus_error_free(&error);
                        return -ENOTCONN;
                }
                if (sd_bus_error_has_names(&error, IOVIRT_ERROR_NO_SUCH_DEVICE, IOVIRT_ERROR_INVALID_ARGUMENT))
                        fprintf(stderr, "iovirtctl: %s\n", error.message);    /* already names the problem */
                else
                        fprintf(stderr, "iovirtctl: iovirtd failed %s: %s\n", method,
                                error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0) {
                fprintf(stderr, "iovirtctl: unexpected answer from iovirtd to %s: %s\n", method, strerror(-r));
                return r;
        }
        *ret = json_tokener_parse(s);
        if (!*ret) {
                fprintf(stderr, "iovirtctl: iovirtd's answer to %s is not JSON\n", method);
                return -EBADMSG;
        }
        return 0;
}

int ctl_load_from_daemon(Ctl *c, char **why) {
        _cleanup_(json_object_putp) json_object *tree = NULL;
        int r = ctl_call_json(c, "DescribeTree", NULL, &tree, why);
        if (r < 0)
                return r;
        r = iovirt_host_from_json(tree, &c->host);
        if (r < 0) {
                fprintf(stderr, "iovirtctl: iovirtd's device tree does not follow the schema: %s\n", strerror(-r));
                return r;
        }
        c->from_daemon = true;
        return 0;
}
