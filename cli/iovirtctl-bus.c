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

int ctl_open_bus(Ctl *c) {
        if (c->bus)
                return 0;
        int r = sd_bus_open_system(&c->bus);
        if (r < 0)
                ctl_fail(c, CTL_ERROR_NO_DAEMON, "cannot reach the system bus (%s); %s needs iovirtd", strerror(-r),
                         strna(c->verb));
        return r;
}

int ctl_fail_bus(Ctl *c, const sd_bus_error *e, int r, json_object *fields) {
        _cleanup_(json_object_putp) json_object *f = fields;

        /* a daemon that is not there, not one that takes long: a timeout of
         * a bind in progress is iovirtd's to explain, by its own name */
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                   SD_BUS_ERROR_NO_SERVER, SD_BUS_ERROR_DISCONNECTED,
                                   "org.freedesktop.DBus.Error.Spawn.ChildExited",
                                   "org.freedesktop.DBus.Error.Spawn.Failed"))
                return ctl_fail(c, CTL_ERROR_NO_DAEMON, "iovirtd is not running; start it with "
                                                        "'systemctl start iovirtd'");
        /* the same word whether iovirtd or iovirtctl finds the device missing */
        if (sd_bus_error_has_name(e, IOVIRT_ERROR_NO_SUCH_DEVICE))
                return ctl_fail(c, CTL_ERROR_NO_SUCH_DEVICE, "%s", strna(e->message));
        /* sd-bus's own errno errors ("System.Error.ECONNRESET") are no answer of iovirtd's */
        if (!sd_bus_error_is_set(e) || strncmp(e->name, "System.Error.", 13) == 0)
                return ctl_fail(c, CTL_ERROR_FAILED, "the call to iovirtd failed: %s",
                                e->message ? e->message : strerror(r < 0 ? -r : EIO));
        return ctl_fail_named(c, e->name, TAKE_PTR(f), "%s", e->message ? e->message : strerror(r < 0 ? -r : EIO));
}

/* Calls a method that returns one JSON document and parses it.
 * -ENOTCONN: iovirtd is not on the bus (*why says how); other errors reported. */
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
                ctl_fail_bus(c, &error, r, NULL);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0) {
                ctl_fail(c, CTL_ERROR_BAD_ANSWER, "unexpected answer from iovirtd to %s: %s", method, strerror(-r));
                return r;
        }
        *ret = json_tokener_parse(s);
        if (!*ret) {
                ctl_fail(c, CTL_ERROR_BAD_ANSWER, "iovirtd's answer to %s is not JSON", method);
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
                ctl_fail(c, r == -ENOMEM ? CTL_ERROR_FAILED : CTL_ERROR_BAD_ANSWER,
                         "iovirtd's device tree does not follow the schema: %s", strerror(-r));
                return r;
        }
        c->from_daemon = true;
        return 0;
}
