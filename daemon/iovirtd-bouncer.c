/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "iovirt-names.h"
#include "iovirtd-assign.h"
#include "iovirtd-bouncer.h"
#include "iovirtd-domain.h"
#include "iovirtd-log.h"
#include "iovirtd-manager.h"
#include "iovirtd-sriov.h"

/* Every method that changes something: what guards it, how it is checked,
 * what it does.  tests/dbus checks the live interface, the polkit actions
 * and the bus policy against this table (iovirtd --list-methods). */
const GuardedMethod guarded_methods[] = {
        { IOVIRT_MANAGER_INTERFACE, "Reload", IOVIRT_ACTION_RELOAD, prepare_reload, act_reload },
        { IOVIRT_MANAGER_INTERFACE, "Assign", IOVIRT_ACTION_ASSIGN, prepare_assign, act_assign },
        { IOVIRT_MANAGER_INTERFACE, "Release", IOVIRT_ACTION_RELEASE, prepare_release, act_release,
          escalate_release },
        { IOVIRT_MANAGER_INTERFACE, "ReleaseConsumer", IOVIRT_ACTION_RELEASE, prepare_release_consumer,
          act_release_consumer, escalate_release_consumer },
        { IOVIRT_MANAGER_INTERFACE, "PrepareDomain", IOVIRT_ACTION_ASSIGN, prepare_prepare_domain,
          act_prepare_domain },
        { IOVIRT_MANAGER_INTERFACE, "StartedDomain", IOVIRT_ACTION_ASSIGN, prepare_started_domain,
          act_started_domain },
        { IOVIRT_MANAGER_INTERFACE, "ReleaseDomain", IOVIRT_ACTION_RELEASE, prepare_release_domain,
          act_release_domain, escalate_release_domain },
        { IOVIRT_MANAGER_INTERFACE, "SetVfs", IOVIRT_ACTION_MANAGE_SRIOV, prepare_set_vfs, act_set_vfs },
        { IOVIRT_MANAGER_INTERFACE, "ConfigureVf", IOVIRT_ACTION_MANAGE_SRIOV, prepare_configure_vf,
          act_configure_vf },
};
const size_t n_guarded_methods = ELEMENTSOF(guarded_methods);

typedef struct Pending Pending;
struct Pending {
        Bouncer *bouncer;
        sd_bus_message *request;
        sd_bus_slot *slot;
        BouncerAct act;
        BouncerEscalate escalate;
        uid_t uid;
        void *userdata;
        const char *action;          /* what polkit was asked */
        Pending *prev, *next;
};

struct Bouncer {
        sd_bus *bus;
        Pending *pending;
};

const GuardedMethod *bouncer_find(const char *interface, const char *method) {
        for (size_t i = 0; i < n_guarded_methods; i++)
                if (streq_ptr(guarded_methods[i].interface, interface) && streq_ptr(guarded_methods[i].method, method))
                        return &guarded_methods[i];
        return NULL;
}

static void pending_free(Pending *p) {
        if (!p)
                return;
        if (p->prev)
                p->prev->next = p->next;
        else if (p->bouncer)
                p->bouncer->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        sd_bus_slot_unref(p->slot);
        sd_bus_message_unref(p->request);
        free(p);
}

int bouncer_new(sd_bus *bus, Bouncer **ret) {
        Bouncer *b = calloc(1, sizeof(Bouncer));
        if (!b)
                return -ENOMEM;
        b->bus = sd_bus_ref(bus);
        *ret = b;
        return 0;
}

void bouncer_stop(Bouncer *b) {
        while (b && b->pending) {
                (void) sd_bus_reply_method_errorf(b->pending->request, IOVIRT_ERROR_BUSY,
                                                  "iovirtd stopped before polkit answered; nothing was changed, "
                                                  "try again");
                pending_free(b->pending);
        }
}

Bouncer *bouncer_free(Bouncer *b) {
        if (!b)
                return NULL;
        while (b->pending)
                pending_free(b->pending);
        sd_bus_unref(b->bus);
        free(b);
        return NULL;
}

static int deny(sd_bus_message *request, const char *action, const char *why) {
        const char *method = sd_bus_message_get_member(request);
        log_notice("Denied %s to %s: %s", method, strna(sd_bus_message_get_sender(request)), why);
        return sd_bus_reply_method_errorf(request, IOVIRT_ERROR_NOT_AUTHORIZED,
                                          "Not authorized to call %s (polkit action %s): %s", method, action, why);
}

static int run_act(Pending *p) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        /* what is asked may have changed hands while polkit answered: what
         * was granted must still be enough */
        const char *now = p->escalate ? p->escalate(p->request, p->userdata, p->uid) : NULL;
        if (now && !streq_ptr(now, p->action))
                return deny(p->request, now, "what it names changed hands while polkit was asked; call again");
        int r = p->act(p->request, p->userdata, &error);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        sd_bus_error_set_errno(&error, r);
                r = sd_bus_reply_method_error(p->request, &error);
        }
        sd_bus_error_free(&error);
        return r;
}

static int polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        int authorized = 0, challenge = 0, r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        r = deny(p->request, p->action, "polkit is not running, and only root may without it");
                else {
                        char why[512];
                        snprintf(why, sizeof(why), "polkit failed: %s", e->message ? e->message : e->name);
                        r = deny(p->request, p->action, why);
                }
                goto finish;
        }
        /* (bba{ss}): is_authorized, is_challenge, details */
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                r = deny(p->request, p->action, "polkit's answer could not be read");
                goto finish;
        }
        if (authorized)
                r = run_act(p);
        else if (challenge)
                r = deny(p->request, p->action,
                         "authentication is required: call again with interactive=true from a session with an agent");
        else
                r = deny(p->request, p->action, "polkit says no");
finish:
        pending_free(p);
        return r < 0 ? r : 1;
}

/* Checks the sender of m for g's action.  Returns 1 when g->act ran (allowed
 * at once), 0 when the answer is pending (act or an error reply follows
 * later), negative on failure (error is set). */
static int bouncer_check(Bouncer *b, sd_bus_message *m, const GuardedMethod *g, bool interactive, void *userdata,
                         sd_bus_error *error) {
        const char *method = g->method, *action = g->action;
        BouncerAct act = g->act;
        sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        if (!action)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_AUTHORIZED,
                                         "%s is not in iovirtd's authorization table: denied", strna(method));

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID, &creds);
        if (r >= 0) {
                r = sd_bus_creds_get_euid(creds, &uid);
                if (r == -ENODATA)
                        r = sd_bus_creds_get_uid(creds, &uid);
        }
        sd_bus_creds_unref(creds);
        if (r < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_AUTHORIZED,
                                         "Cannot tell who is calling %s: denied", method);
        if (uid == 0) {
                r = act(m, userdata, error);
                return r < 0 ? r : 1;
        }
        /* another uid's assignment: its own action (auth_admin) */
        const char *stricter = g->escalate ? g->escalate(m, userdata, uid) : NULL;
        if (stricter)
                action = stricter;

        Pending *p = calloc(1, sizeof(Pending));
        if (!p)
                return -ENOMEM;
        *p = (Pending) { .bouncer = b, .request = sd_bus_message_ref(m), .act = act, .escalate = g->escalate,
                         .uid = uid, .userdata = userdata, .action = action, .next = b->pending };
        if (b->pending)
                b->pending->prev = p;
        b->pending = p;

        const char *sender = sd_bus_message_get_sender(m);
        r = sd_bus_call_method_async(b->bus, &p->slot, POLKIT_BUS_NAME, POLKIT_OBJECT_PATH, POLKIT_INTERFACE,
                                     "CheckAuthorization", polkit_reply, p, "(sa{sv})sa{ss}us",
                                     "system-bus-name", 1, "name", "s", sender, action, 0,
                                     (uint32_t) (interactive ? 1 : 0), "");
        if (r < 0) {
                pending_free(p);
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_AUTHORIZED,
                                         "Cannot ask polkit about %s: denied", action);
        }
        return 0;
}

int method_guarded(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *manager = userdata;
        const char *method = sd_bus_message_get_member(m);
        const GuardedMethod *g = bouncer_find(sd_bus_message_get_interface(m), method);
        bool interactive = false;
        int r;

        if (!g)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_AUTHORIZED,
                                         "%s is not in iovirtd's authorization table: denied", strna(method));
        r = g->prepare(m, userdata, &interactive, error);
        if (r != 0)
                return r;
        r = bouncer_check(manager->bouncer, m, g, interactive, userdata, error);
        return r < 0 ? r : 1;
}
