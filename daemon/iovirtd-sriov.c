/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <net/if.h>
#include <syslog.h>

#include "iovirt-fault.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-netlink.h"
#include "iovirt-sriov.h"
#include "iovirt-sysfs.h"
#include "iovirtd-assign.h"
#include "iovirtd-job.h"
#include "iovirtd-log.h"
#include "iovirtd-sriov.h"

/* How long SetVfs waits for the VFs' uevents once the kernel took the
 * count: $IOVIRT_SRIOV_TIMEOUT seconds (1-3600), else 60 */
#define SRIOV_WAIT_SEC_DEFAULT 60

static unsigned sriov_wait_sec(void) {
        const char *e = getenv(IOVIRT_ENV_SRIOV_TIMEOUT);
        int v;
        if (e && iovirt_parse_int(e, &v) == 0 && v >= 1 && v <= 3600)
                return (unsigned) v;
        if (e)
                log_warning("Ignoring %s=%.32s: not a number of seconds from 1 to 3600", IOVIRT_ENV_SRIOV_TIMEOUT, e);
        return SRIOV_WAIT_SEC_DEFAULT;
}

/* ---- what is kept of each PF ---- */

static IovirtSriovRecord *sriov_find(Manager *m, const char *pf) {
        for (size_t i = 0; i < m->n_sriov; i++)
                if (streq_ptr(m->sriov[i]->pf, pf))
                        return m->sriov[i];
        return NULL;
}

/* Takes r, replacing the PF's record; NULL drops it */
static int sriov_put(Manager *m, const char *pf, IovirtSriovRecord *r) {
        for (size_t i = 0; i < m->n_sriov; i++)
                if (streq_ptr(m->sriov[i]->pf, pf)) {
                        iovirt_sriov_record_free(m->sriov[i]);
                        if (r)
                                m->sriov[i] = r;
                        else
                                m->sriov[i] = m->sriov[--m->n_sriov];
                        return 0;
                }
        if (!r)
                return 0;
        IovirtSriovRecord **v = reallocarray(m->sriov, m->n_sriov + 1, sizeof(IovirtSriovRecord *));
        if (!v) {
                iovirt_sriov_record_free(r);
                return -ENOMEM;
        }
        m->sriov = v;
        m->sriov[m->n_sriov++] = r;
        return 0;
}

static int record_copy(const IovirtSriovRecord *r, IovirtSriovRecord **ret) {
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *c = calloc(1, sizeof(IovirtSriovRecord));
        if (!c)
                return -ENOMEM;
        *c = *r;
        c->vfs = NULL;
        c->n_vfs = 0;
        if (r->n_vfs) {
                if (!(c->vfs = calloc(r->n_vfs, sizeof(IovirtVfConfig))))
                        return -ENOMEM;
                memcpy(c->vfs, r->vfs, r->n_vfs * sizeof(IovirtVfConfig));
                c->n_vfs = r->n_vfs;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

void manager_sriov_free(Manager *m) {
        for (size_t i = 0; i < m->n_sriov; i++)
                iovirt_sriov_record_free(m->sriov[i]);
        m->sriov = mfree(m->sriov);
        m->n_sriov = 0;
}

/* ---- the document ---- */

static json_object *string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

static json_object *vf_config_json(const IovirtVfConfig *v) {
        json_object *o = json_object_new_object();
        char mac[IOVIRT_MAC_STRING_MAX];
        json_object_object_add(o, "mac", v->set_mac ? json_object_new_string(iovirt_mac_format(v->mac, mac)) : NULL);
        json_object_object_add(o, "vlan", v->set_vlan ? json_object_new_int((int) v->vlan) : NULL);
        json_object_object_add(o, "spoofchk", v->spoofchk >= 0 ? json_object_new_boolean(v->spoofchk) : NULL);
        json_object_object_add(o, "trust", v->trust >= 0 ? json_object_new_boolean(v->trust) : NULL);
        return o;
}

static const char *group_verdict(Manager *m, int group) {
        const IovirtGroup *g = group >= 0 ? iovirt_host_find_group(m->host, group) : NULL;
        return g ? iovirt_isolation_name(m->verdicts->groups[g - m->host->groups].isolation) : NULL;
}

static const char *group_consumer(Manager *m, int group) {
        const IovirtRecord *rec = group >= 0 ? iovirt_state_find(m->state, group) : NULL;
        return rec ? (rec->consumer[0] ? rec->consumer : "(unknown)") : NULL;
}

static json_object *sriov_document(Manager *m, size_t pf) {
        const IovirtHost *h = m->host;
        const IovirtDevice *d = &h->devices[pf];
        const IovirtSriovRecord *rec = sriov_find(m, d->name);
        json_object *o = json_object_new_object(), *p = json_object_new_object(), *vfs = json_object_new_array();
        _cleanup_free_ IovirtVfInfo *info = NULL;
        _cleanup_free_ char *why = NULL;
        char ifname[IF_NAMESIZE + 1] = "", vf_device[16];
        size_t n_info = 0;
        int r;

        r = iovirt_pf_netdev(d, ifname, sizeof(ifname));
        if (r < 0)
                ifname[0] = '\0';
        if (r == -ENOENT)
                why = strdup("the PF has no network interface, so it has no VF settings (MAC, VLAN)");
        else if (r < 0)
                (void) asprintf(&why, "its network interface could not be read: %s", strerror(-r));
        else {
                int k = iovirt_vf_info_read(ifname, &info, &n_info, &why);
                if (k < 0 && !why)
                        (void) asprintf(&why, "reading %s's VF settings failed: %s", ifname, strerror(-k));
        }

        json_object_object_add(p, "address", json_object_new_string(d->name));
        json_object_object_add(p, "interface", ifname[0] ? json_object_new_string(ifname) : NULL);
        json_object_object_add(p, "driver", string_or_null(d->driver));
        json_object_object_add(p, "total_vfs", json_object_new_int((int) d->sriov_total));
        json_object_object_add(p, "num_vfs", json_object_new_int((int) d->n_vfs));
        int autoprobe = iovirt_sriov_read_autoprobe(d);
        json_object_object_add(p, "autoprobe", autoprobe >= 0 ? json_object_new_boolean(autoprobe) : NULL);
        snprintf(vf_device, sizeof(vf_device), "%04x:%04x", d->vendor, d->caps.iov_did);
        json_object_object_add(p, "vf_device", d->caps.sriov == IOVIRT_PRESENT ? json_object_new_string(vf_device)
                                                                                : NULL);
        json_object_object_add(p, "numa_node", json_object_new_int(d->numa_node));
        json_object_object_add(p, "group", json_object_new_int(d->iommu_group));
        json_object_object_add(p, "consumer", string_or_null(group_consumer(m, d->iommu_group)));
        json_object *persisted = NULL;
        if (rec && rec->persist) {
                persisted = json_object_new_object();
                json_object_object_add(persisted, "num_vfs", json_object_new_int((int) rec->num_vfs));
                json_object_object_add(persisted, "autoprobe",
                                       rec->autoprobe == IOVIRT_AUTOPROBE_KEEP
                                               ? NULL
                                               : json_object_new_boolean(rec->autoprobe == IOVIRT_AUTOPROBE_ON));
        }
        json_object_object_add(p, "persisted", persisted);

        for (size_t i = 0; i < d->n_vfs; i++) {
                const IovirtDevice *vf = &h->devices[d->vfs[i]];
                int index = iovirt_vf_index(h, d->vfs[i]);
                json_object *v = json_object_new_object();
                json_object_object_add(v, "index", json_object_new_int(index));
                json_object_object_add(v, "address", json_object_new_string(vf->name));
                json_object_object_add(v, "driver", string_or_null(vf->driver));
                json_object_object_add(v, "group", json_object_new_int(vf->iommu_group));
                json_object_object_add(v, "verdict", string_or_null(group_verdict(m, vf->iommu_group)));
                json_object_object_add(v, "numa_node", json_object_new_int(vf->numa_node));
                json_object_object_add(v, "consumer", string_or_null(group_consumer(m, vf->iommu_group)));
                const IovirtVfInfo *vi = NULL;
                for (size_t k = 0; k < n_info && index >= 0; k++)
                        if (info[k].index == (unsigned) index)
                                vi = &info[k];
                char mac[IOVIRT_MAC_STRING_MAX];
                json_object_object_add(v, "mac", vi ? json_object_new_string(iovirt_mac_format(vi->mac, mac)) : NULL);
                json_object_object_add(v, "vlan", vi ? json_object_new_int((int) vi->vlan) : NULL);
                json_object_object_add(v, "spoofchk", vi && vi->spoofchk >= 0 ? json_object_new_boolean(vi->spoofchk)
                                                                               : NULL);
                json_object_object_add(v, "trust", vi && vi->trust >= 0 ? json_object_new_boolean(vi->trust) : NULL);
                const IovirtVfConfig *kept = NULL;
                for (size_t k = 0; rec && index >= 0 && k < rec->n_vfs; k++)
                        if (rec->vfs[k].index == (unsigned) index)
                                kept = &rec->vfs[k];
                json_object_object_add(v, "persisted", kept && rec->persist ? vf_config_json(kept) : NULL);
                json_object_array_add(vfs, v);
        }
        json_object_object_add(o, "pf", p);
        json_object_object_add(o, "vfs", vfs);
        json_object_object_add(o, "vf_settings", json_object_new_string(why ? why : "read"));
        return o;
}

static int pf_of(Manager *m, const char *spec, size_t *ret, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        if (strlen(spec) > IOVIRT_ARG_MAX)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "The PF is %zu bytes long; at most %d are accepted", strlen(spec),
                                         IOVIRT_ARG_MAX);
        if (strchr(spec, '#'))
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "'%s' is a VF selector, given where a PF is expected; name the PF alone",
                                         spec);
        int r = iovirt_pf_lookup(m->host, spec, ret, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", reason ? reason : "No such PF");
        return 0;
}

int method_describe_sriov(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *spec;
        size_t pf;
        int r;

        r = sd_bus_message_read(msg, "s", &spec);
        if (r < 0)
                return r;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        r = pf_of(m, spec, &pf, error);
        if (r < 0)
                return r;
        _cleanup_(json_object_putp) json_object *o = sriov_document(m, pf);
        return manager_reply_json(msg, o);
}

/* ---- SetVfs: waiting for the VFs ---- */

typedef struct SriovWait SriovWait;
struct SriovWait {
        Manager *manager;
        sd_bus_message *request;
        char pf[IOVIRT_ADDRESS_MAX];
        unsigned from, to;
        bool through_zero;
        uint64_t kernel_usec, start_usec;
        unsigned timeout_sec;
        bool running;                /* the job still writes to the kernel; its done() answers a failure */
        sd_event_source *timer;
        SriovWait *next;
};

static SriovWait *wait_free(SriovWait *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->timer);
        sd_bus_message_unref(w->request);
        free(w);
        return NULL;
}

static void wait_unlink(Manager *m, SriovWait *w) {
        for (SriovWait **p = &m->sriov_waits; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        return;
                }
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* The PF's VFs are exactly 0..to-1, each in an IOMMU group when the host has them */
static bool wait_satisfied(Manager *m, const SriovWait *w, size_t *pf) {
        IovirtAddress a;
        if (!m->host || !m->verdicts || iovirt_address_parse(w->pf, &a, NULL) < 0)
                return false;
        *pf = iovirt_host_find_address(m->host, &a);
        if (*pf == IOVIRT_NONE)
                return false;
        const IovirtDevice *d = &m->host->devices[*pf];
        if (d->n_vfs != w->to)
                return false;
        for (size_t i = 0; i < d->n_vfs; i++) {
                const IovirtDevice *vf = &m->host->devices[d->vfs[i]];
                int index = iovirt_vf_index(m->host, d->vfs[i]);
                if (index < 0 || (unsigned) index >= w->to || (m->host->n_groups > 0 && vf->iommu_group < 0))
                        return false;
        }
        return true;
}

static int reply_changed(Manager *m, sd_bus_message *msg, size_t pf, const SriovWait *w) {
        _cleanup_(json_object_putp) json_object *o = sriov_document(m, pf);
        json_object *c = json_object_new_object();
        json_object_object_add(c, "from", json_object_new_int((int) w->from));
        json_object_object_add(c, "to", json_object_new_int((int) w->to));
        json_object_object_add(c, "through_zero", json_object_new_boolean(w->through_zero));
        json_object_object_add(c, "kernel_usec", json_object_new_int64((int64_t) w->kernel_usec));
        json_object_object_add(c, "usec", json_object_new_int64((int64_t) (now_usec() - w->start_usec)));
        json_object_object_add(o, "change", c);
        return manager_reply_json(msg, o);
}

static int restore_vf_settings(const IovirtSriovRecord *rec, const IovirtDevice *pf, unsigned below);

void manager_sriov_check_waits(Manager *m) {
        for (SriovWait *w = m->sriov_waits, *next; w; w = next) {
                size_t pf;
                next = w->next;
                if (w->running || !wait_satisfied(m, w, &pf))
                        continue;
                /* new VFs start with the driver's defaults: the persisted
                 * settings of those there now go back */
                const IovirtSriovRecord *rec = sriov_find(m, w->pf);
                if (rec && rec->persist && w->from != w->to)
                        (void) restore_vf_settings(rec, &m->host->devices[pf], w->to);
                log_info("%s: %u VF%s in the model, %.1f ms after the request (the kernel's writes took %.1f ms)",
                         w->pf, w->to, w->to == 1 ? "" : "s", (now_usec() - w->start_usec) / 1000.0,
                         w->kernel_usec / 1000.0);
                int r = reply_changed(m, w->request, pf, w);
                if (r < 0)
                        (void) sd_bus_reply_method_errno(w->request, r, NULL);
                wait_unlink(m, w);
                wait_free(w);
        }
}

static int on_wait_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        SriovWait *w = userdata;
        Manager *m = w->manager;
        _cleanup_(iovirt_text_clear) IovirtText missing = {};
        IovirtAddress a;
        size_t pf = IOVIRT_NONE;

        if (m->host && iovirt_address_parse(w->pf, &a, NULL) >= 0)
                pf = iovirt_host_find_address(m->host, &a);
        for (unsigned i = 0; pf != IOVIRT_NONE && i < w->to; i++) {
                size_t vf = iovirt_vf_find(m->host, pf, i);
                if (vf == IOVIRT_NONE)
                        (void) iovirt_text_add(&missing, "%sVF %u", missing.len ? ", " : "", i);
                else if (m->host->n_groups > 0 && m->host->devices[vf].iommu_group < 0)
                        (void) iovirt_text_add(&missing, "%sVF %u (%s: no IOMMU group)", missing.len ? ", " : "", i,
                                               m->host->devices[vf].name);
        }
        if (pf != IOVIRT_NONE && m->host->devices[pf].n_vfs > w->to)
                (void) iovirt_text_add(&missing, "%s%zu VFs still there that should have gone",
                                       missing.len ? "; " : "", m->host->devices[pf].n_vfs - w->to);
        log_error_errno(-ETIMEDOUT, "%s: the kernel took %u VFs, but the model lacks %s after %u s", w->pf, w->to,
                        missing.s ? missing.s : "the PF", w->timeout_sec);
        (void) sd_bus_reply_method_errorf(w->request, IOVIRT_ERROR_FAILED,
                                          "The kernel took %u VFs on %s, but after %u s udev has not reported %s; "
                                          "the VF count is changed, the model is not: 'iovirtctl reload' re-reads the "
                                          "host", w->to, w->pf, w->timeout_sec, missing.s ? missing.s : "the PF");
        wait_unlink(m, w);
        wait_free(w);
        return 0;
}

void manager_sriov_stop(Manager *m) {
        for (SriovWait *w = m->sriov_waits, *next; w; w = next) {
                next = w->next;
                if (w->running)      /* its job's done() answers it */
                        continue;
                (void) sd_bus_reply_method_errorf(w->request, IOVIRT_ERROR_BUSY,
                                                  "iovirtd stopped while waiting for %s's VFs to appear; the count "
                                                  "was changed: 'iovirtctl sriov %s' shows them", w->pf, w->pf);
                wait_unlink(m, w);
                wait_free(w);
        }
}

/* ---- SetVfs ---- */

typedef struct SetVfsArgs {
        const char *pf;
        uint32_t count;
        int persist;                 /* -1: keep the record's own choice */
        IovirtAutoprobe autoprobe;
        int interactive;
} SetVfsArgs;

static int read_bool_variant(sd_bus_message *msg, const char *key, int *ret, sd_bus_error *error) {
        int b, r = sd_bus_message_read(msg, "v", "b", &b);
        if (r < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "The option %s takes a boolean", key);
        *ret = b;
        return 0;
}

/* Reads an a{sv} of options, one handler call per entry (its value still
 * to be read); a handler that does not know the key sets InvalidArgument */
typedef int (*OptionFn)(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error);

static int read_options(sd_bus_message *msg, OptionFn handle, void *userdata, sd_bus_error *error) {
        int r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        while (r >= 0) {
                const char *key;
                r = sd_bus_message_enter_container(msg, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(msg, "s", &key);
                if (r >= 0)
                        r = handle(msg, key, userdata, error);
                if (r >= 0)
                        r = sd_bus_message_exit_container(msg);
        }
        return r < 0 ? r : sd_bus_message_exit_container(msg);
}

static int set_vfs_option(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        SetVfsArgs *a = userdata;
        int b = 0, r;
        if (streq_ptr(key, "persist"))
                return read_bool_variant(msg, key, &a->persist, error);
        if (!streq_ptr(key, "autoprobe"))
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "Unknown option '%.64s'; SetVfs takes persist and autoprobe", key);
        r = read_bool_variant(msg, key, &b, error);
        a->autoprobe = b ? IOVIRT_AUTOPROBE_ON : IOVIRT_AUTOPROBE_OFF;
        return r;
}

static int read_set_vfs_args(sd_bus_message *msg, SetVfsArgs *a, sd_bus_error *error) {
        int r;
        *a = (SetVfsArgs) { .persist = -1, .autoprobe = IOVIRT_AUTOPROBE_KEEP };
        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "su", &a->pf, &a->count);
        if (r >= 0)
                r = read_options(msg, set_vfs_option, a, error);
        if (r >= 0)
                r = sd_bus_message_read(msg, "b", &a->interactive);
        return r;
}

static bool locked(int group, void *userdata) {
        return job_group_locked(userdata, group);
}

/* What the PF's record becomes: NULL *ret when nothing changes on disk */
static int next_record(Manager *m, const IovirtSriovPlan *p, const SetVfsArgs *a, IovirtSriovRecord **ret,
                       bool *remove) {
        const IovirtSriovRecord *old = sriov_find(m, p->pf);
        *ret = NULL;
        *remove = false;
        if (a->persist == 0) {
                *remove = old != NULL;
                return 0;
        }
        if (a->persist < 0 && !(old && old->persist))
                return 0;
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *r = NULL;
        int k = old ? record_copy(old, &r) : ((r = calloc(1, sizeof(*r))) ? 0 : -ENOMEM);
        if (k < 0)
                return k;
        memcpy(r->pf, p->pf, sizeof(r->pf));
        r->num_vfs = p->to;
        r->persist = true;
        if (a->autoprobe != IOVIRT_AUTOPROBE_KEEP)
                r->autoprobe = a->autoprobe;
        else if (!old)
                r->autoprobe = p->autoprobe_from < 0 ? IOVIRT_AUTOPROBE_KEEP : (IovirtAutoprobe) p->autoprobe_from;
        *ret = TAKE_PTR(r);
        return 0;
}

/* Validates, plans; answers refusals and no-ops (1), or 0 with the plan */
static int set_vfs_plan(Manager *m, sd_bus_message *msg, SetVfsArgs *a, IovirtSriovPlan **ret, size_t *pf,
                        sd_bus_error *error) {
        _cleanup_(iovirt_sriov_plan_freep) IovirtSriovPlan *p = NULL;
        int r;

        r = read_set_vfs_args(msg, a, error);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r >= 0)
                r = pf_of(m, a->pf, pf, error);
        if (r < 0)
                return r;
        if (manager_sriov_busy(m, m->host->devices[*pf].name))
                return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                         "%s's VFs are being changed right now; try again when that has finished",
                                         m->host->devices[*pf].name);
        const IovirtSriovInput in = { .host = m->host, .state = m->state, .pf = *pf, .count = a->count,
                                      .autoprobe = a->autoprobe,
                                      .autoprobe_now = iovirt_sriov_read_autoprobe(&m->host->devices[*pf]),
                                      .group_locked = locked, .userdata = m };
        r = iovirt_sriov_plan(&in, &p);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not plan the change: %m");
        const IovirtPlanCheck *refusal = iovirt_checks_refusal(p->checks, p->n_checks);
        if (refusal) {
                _cleanup_free_ char *text = iovirt_checks_refusal_text(p->checks, p->n_checks);
                log_notice("Refused %u VFs on %s: %s", a->count, p->pf, text ? text : refusal->message);
                return sd_bus_error_setf(error, manager_reason_error(refusal->reason), "%s",
                                         text ? text : refusal->message);
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int prepare_set_vfs(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_sriov_plan_freep) IovirtSriovPlan *p = NULL;
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *next = NULL;
        SetVfsArgs a;
        size_t pf;
        bool remove;
        int r = set_vfs_plan(m, msg, &a, &p, &pf, error);
        if (r != 0)
                return r;
        r = next_record(m, p, &a, &next, &remove);
        if (r < 0)
                return r;
        if (p->done && !next && !remove) {
                /* as asked already: answered without a password */
                SriovWait w = { .from = p->from, .to = p->to, .start_usec = now_usec() };
                r = reply_changed(m, msg, pf, &w);
                return r < 0 ? r : 1;
        }
        *interactive = a.interactive;
        return 0;
}

typedef struct SetVfsJob {
        IovirtSriovPlan *plan;
        SriovWait *wait;             /* the call's wait, in m->sriov_waits; running until done() */
        IovirtSriovRecord *intent;   /* saved before the kernel's first write (pending); NULL: the kernel is not written */
        IovirtSriovRecord *record;   /* to save; NULL: none */
        IovirtSriovRecord *old;      /* what was on disk, put back when the kernel refuses; NULL: nothing */
        bool remove;                 /* the record goes */
        const char *dir;
        char *reason, *save_error;
        uint64_t kernel_usec;
        int r, commit_r;             /* commit_r: the record after the kernel's change could not be written */
} SetVfsJob;

static void set_vfs_job_free(void *p) {
        SetVfsJob *j = p;
        iovirt_sriov_plan_free(j->plan);
        iovirt_sriov_record_free(j->intent);
        iovirt_sriov_record_free(j->record);
        iovirt_sriov_record_free(j->old);
        free(j->reason);
        free(j->save_error);
        free(j);
}

/* The record as it should be after the change, or as it was before */
static int record_write(const char *dir, const char *pf, const IovirtSriovRecord *r) {
        return r ? iovirt_sriov_record_save(dir, r) : iovirt_sriov_record_remove(dir, pf);
}

/* The intent of a change the kernel is to make: what the PF goes to,
 * pending, with the persisted settings of the record it becomes (or none,
 * persist false, when it is not persisted) */
static int intent_record(const IovirtSriovPlan *p, const IovirtSriovRecord *next, IovirtSriovRecord **ret) {
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *r = NULL;
        int k = next ? record_copy(next, &r) : ((r = calloc(1, sizeof(*r))) ? 0 : -ENOMEM);
        if (k < 0)
                return k;
        if (!next) {
                memcpy(r->pf, p->pf, sizeof(r->pf));
                r->num_vfs = p->to;
                r->autoprobe = p->autoprobe;
        }
        r->pending = true;
        _cleanup_free_ char *boot_id = NULL;
        k = iovirt_boot_id(&boot_id);
        if (k < 0)
                return k;
        if (strlen(boot_id) >= sizeof(r->boot_id))
                return -EBADMSG;
        strcpy(r->boot_id, boot_id);
        *ret = TAKE_PTR(r);
        return 0;
}

/* On the job's thread: the intent first, pending, so that a crash after
 * any of the kernel's writes is finished at the next start rather than
 * leaving the PF between two counts (0 on the way from 2 to 3) or
 * sriov_drivers_autoprobe changed alone; then the kernel; then the record
 * as the change leaves it.  When the kernel refuses, the old record goes
 * back. */
static void set_vfs_work(void *p) {
        SetVfsJob *j = p;
        bool recorded = j->intent || j->record || j->remove;
        int k;

        if (recorded && (k = record_write(j->dir, j->plan->pf, j->intent ? j->intent : j->record)) < 0) {
                j->r = k;
                (void) asprintf(&j->save_error, "%s could not be %s (%s); nothing was changed%s", j->dir,
                                j->intent || j->record ? "written" : "cleaned", strerror(-k),
                                iovirt_state_write_advice(k));
                return;
        }
        if (j->intent)
                iovirt_fault_point("sriov.intent");
        j->r = j->plan->done ? 0 : iovirt_sriov_execute(j->plan, &j->kernel_usec, &j->reason);
        if (j->r < 0 && recorded && (k = record_write(j->dir, j->plan->pf, j->old)) < 0) {
                /* the pending intent must not outlive the refusal (the next start would carry it
                 * out): without room to put the old record back, it goes (unlink needs none) */
                if (j->intent && j->old && iovirt_sriov_record_remove(j->dir, j->plan->pf) >= 0)
                        (void) asprintf(&j->save_error, "and its persisted record in %s could not be put back (%s), "
                                        "so it was removed: persist its VFs again with 'iovirtctl sriov %s --vfs N "
                                        "--persist' once there is room", j->dir, strerror(-k), j->plan->pf);
                else
                        (void) asprintf(&j->save_error, "and its record in %s could not be put back (%s): check it "
                                        "with 'iovirtctl sriov %s'", j->dir, strerror(-k), j->plan->pf);
        }
        if (j->r < 0 || !j->intent)
                return;
        /* still pending when this fails: the next start finishes it */
        j->commit_r = record_write(j->dir, j->plan->pf, j->record);
        iovirt_fault_point("sriov.commit");
}

static int set_vfs_done(Manager *m, sd_bus_message *msg, void *p) {
        SetVfsJob *j = p;
        const IovirtSriovPlan *plan = j->plan;
        SriovWait *w = j->wait;

        if (j->r < 0) {
                const char *why = j->reason ? j->reason : j->save_error ? NULL : strerror(-j->r);
                log_full_errno(LOG_ERR, j->r, plan->pf, "Changing %s from %u to %u VFs failed: %s%s%s", plan->pf,
                               plan->from, plan->to, strempty(why), why && j->save_error ? "; " : "",
                               strempty(j->save_error));
                wait_unlink(m, w);
                wait_free(w);
                return sd_bus_reply_method_errorf(msg, IOVIRT_ERROR_FAILED, "%s%s%s", strempty(why),
                                                  why && j->save_error ? "; " : "", strempty(j->save_error));
        }
        if (j->commit_r < 0)
                log_warning_errno(j->commit_r, "%s: its VFs changed, but its record in %s still says the change is "
                                  "under way (%m): the next start of iovirtd finishes it", plan->pf, j->dir);
        if (!plan->done)
                log_device_info(plan->pf, "%s: %u -> %u VFs%s%s in %.1f ms", plan->pf, plan->from, plan->to,
                                plan->through_zero ? " (through 0)" : "",
                                plan->autoprobe == IOVIRT_AUTOPROBE_KEEP ? ""
                                : plan->autoprobe == IOVIRT_AUTOPROBE_ON ? ", autoprobe on" : ", autoprobe off",
                                j->kernel_usec / 1000.0);
        if (j->record)
                (void) sriov_put(m, plan->pf, TAKE_PTR(j->record));
        else if (j->remove)
                (void) sriov_put(m, plan->pf, NULL);

        /* the PF's own SR-IOV registers changed (NumVFs, VF Enable): its
         * uevent may or may not come, so read it now */
        IovirtAddress a;
        size_t i;
        if (m->host && iovirt_address_parse(plan->pf, &a, NULL) >= 0 &&
            (i = iovirt_host_find_address(m->host, &a)) != IOVIRT_NONE) {
                _cleanup_free_ char *syspath = strdup(m->host->devices[i].syspath);
                if (syspath)
                        manager_update_device(m, syspath);
        }

        /* the kernel is done: now wait for the model, bounded */
        w->running = false;
        w->kernel_usec = j->kernel_usec;
        int r = sd_event_add_time_relative(m->event, &w->timer, CLOCK_MONOTONIC, w->timeout_sec * 1000000ULL, 0,
                                           on_wait_timeout, w);
        if (r < 0) {
                wait_unlink(m, w);
                wait_free(w);
                return r;
        }
        manager_sriov_check_waits(m);        /* the uevents may all be in already */
        return 1;
}

bool manager_sriov_busy(Manager *m, const char *pf) {
        for (SriovWait *w = m->sriov_waits; w; w = w->next)
                if (streq_ptr(w->pf, pf))
                        return true;
        return false;
}

int act_set_vfs(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_sriov_plan_freep) IovirtSriovPlan *p = NULL;
        SetVfsArgs a;
        size_t pf;
        int r;

        /* the host may have changed while a password was typed: plan again */
        r = set_vfs_plan(m, msg, &a, &p, &pf, error);
        if (r != 0)
                return r;
        SetVfsJob *j = calloc(1, sizeof(SetVfsJob));
        SriovWait *w = calloc(1, sizeof(SriovWait));
        const IovirtSriovRecord *old = sriov_find(m, p->pf);
        if (!j || !w) {
                free(j);
                free(w);
                return -ENOMEM;
        }
        *j = (SetVfsJob) { .dir = m->state_dir, .wait = w };
        r = next_record(m, p, &a, &j->record, &j->remove);
        if (r >= 0 && !p->done)
                r = intent_record(p, j->record, &j->intent);
        if (r >= 0 && old)
                r = record_copy(old, &j->old);
        if (r < 0) {
                set_vfs_job_free(j);
                free(w);
                return r;
        }
        /* the PF is busy from now until its VFs are in the model */
        *w = (SriovWait) { .manager = m, .request = sd_bus_message_ref(msg), .running = true, .from = p->from,
                           .to = p->to, .through_zero = p->through_zero, .start_usec = now_usec(),
                           .timeout_sec = sriov_wait_sec(), .next = m->sriov_waits };
        memcpy(w->pf, p->pf, sizeof(w->pf));
        m->sriov_waits = w;
        j->plan = TAKE_PTR(p);

        /* the PF and every VF are held while the count changes */
        const IovirtDevice *d = &m->host->devices[pf];
        _cleanup_free_ int *groups = calloc(d->n_vfs + 1, sizeof(int));
        size_t n = 0;
        if (!groups) {
                wait_unlink(m, w);
                wait_free(w);
                set_vfs_job_free(j);
                return -ENOMEM;
        }
        if (d->iommu_group >= 0)
                groups[n++] = d->iommu_group;
        for (size_t i = 0; i < d->n_vfs; i++) {
                int g = m->host->devices[d->vfs[i]].iommu_group;
                bool seen = false;
                for (size_t k = 0; k < n; k++)
                        seen = seen || groups[k] == g;
                if (g >= 0 && !seen)
                        groups[n++] = g;
        }
        r = job_start(m, msg, groups, n, set_vfs_work, set_vfs_done, j, set_vfs_job_free);
        if (r < 0) {              /* job_start freed j */
                wait_unlink(m, w);
                wait_free(w);
                return sd_bus_error_set_errnof(error, r, "Could not start changing %s's VFs: %m", d->name);
        }
        return 1;
}

/* ---- ConfigureVf ---- */

typedef struct ConfigureArgs {
        const char *vf;
        IovirtVfSettings settings;
        bool persist;
        int interactive;
} ConfigureArgs;

static int configure_option(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        ConfigureArgs *a = userdata;
        IovirtVfSettings *s = &a->settings;
        int b = 0, r;

        if (streq_ptr(key, "mac")) {
                const char *text, *why = NULL;
                r = sd_bus_message_read(msg, "v", "s", &text);
                if (r < 0 || iovirt_mac_parse(text, s->mac, &why) < 0)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "Invalid MAC address: %s",
                                                 why ? why : "mac takes a string");
                s->set_mac = true;
                return 0;
        }
        if (streq_ptr(key, "vlan")) {
                uint32_t v;
                r = sd_bus_message_read(msg, "v", "u", &v);
                if (r < 0 || v > 4095)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "A VLAN is 0-4095 (0: none)");
                s->set_vlan = true;
                s->vlan = v;
                return 0;
        }
        if (!streq_ptr(key, "spoofchk") && !streq_ptr(key, "trust") && !streq_ptr(key, "persist"))
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "Unknown setting '%.64s'; ConfigureVf takes mac, vlan, spoofchk, trust and "
                                         "persist", key);
        r = read_bool_variant(msg, key, &b, error);
        if (streq_ptr(key, "spoofchk")) {
                s->set_spoofchk = true;
                s->spoofchk = b;
        } else if (streq_ptr(key, "trust")) {
                s->set_trust = true;
                s->trust = b;
        } else
                a->persist = b;
        return r;
}

static int read_configure_args(sd_bus_message *msg, ConfigureArgs *a, sd_bus_error *error) {
        int r;
        *a = (ConfigureArgs) {};
        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &a->vf);
        if (r >= 0)
                r = read_options(msg, configure_option, a, error);
        if (r >= 0)
                r = sd_bus_message_read(msg, "b", &a->interactive);
        if (r < 0)
                return r;
        const IovirtVfSettings *s = &a->settings;
        if (!s->set_mac && !s->set_vlan && !s->set_spoofchk && !s->set_trust)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "Nothing to set: give mac, vlan, spoofchk or trust");
        return 0;
}

/* The VF a user named ("PF#N" or its address): its PF, index, and the
 * PF's network interface */
static int vf_target(Manager *m, const char *spec, size_t *pf, unsigned *index, char ifname[static IF_NAMESIZE + 1],
                     sd_bus_error *error) {
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_free_ char *reason = NULL;
        size_t vf;
        int r;

        if (strlen(spec) > IOVIRT_ARG_MAX)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "The VF name is too long");
        r = iovirt_selector_parse(spec, &sel, &reason);
        if (r > 0 && iovirt_selector_count(&sel) != 1)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "'%s' names several VFs; settings are made one VF at a time (PF#N)", spec);
        if (r > 0) {
                _cleanup_free_ size_t *vfs = NULL;
                size_t n;
                r = iovirt_selector_resolve(m->host, &sel, pf, &vfs, &n, &reason);
                if (r >= 0 && n == 0)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_NO_SUCH_DEVICE,
                                                 "VF %u of %s is not enabled; 'iovirtctl sriov %s --vfs N' creates VFs",
                                                 iovirt_selector_max(&sel), sel.pf, sel.pf);
                if (r >= 0)
                        vf = vfs[0];
        } else if (r == 0) {
                r = iovirt_host_lookup(m->host, spec, &vf, &reason);
                if (r >= 0 && !iovirt_device_is_vf(&m->host->devices[vf]))
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                 "%s is not a VF; name one as PF#N or by its address", spec);
                if (r >= 0)
                        *pf = m->host->devices[vf].physfn;
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", reason ? reason : "No such VF");
        int i = iovirt_vf_index(m->host, vf);
        if (i < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_FAILED, "Cannot tell which VF of its PF %s is", spec);
        *index = (unsigned) i;
        const IovirtDevice *d = &m->host->devices[*pf];
        if (manager_sriov_busy(m, d->name) || (d->iommu_group >= 0 && job_group_locked(m, d->iommu_group)) ||
            (m->host->devices[vf].iommu_group >= 0 && job_group_locked(m, m->host->devices[vf].iommu_group)))
                return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                         "%s or its VF %u is in a transaction right now; try again when it has "
                                         "finished", d->name, *index);
        r = iovirt_pf_netdev(d, ifname, IF_NAMESIZE + 1);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s has no network interface (driver %s), and VF settings (MAC, VLAN, spoof "
                                         "check, trust) are made through the PF's interface: only a NIC PF bound to "
                                         "its network driver has them", d->name, d->driver ? d->driver : "none");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot read %s's network interface: %m", d->name);
        return 0;
}

/* The arguments, and the VF they name, or the error to answer with */
static int configure_request(Manager *m, sd_bus_message *msg, ConfigureArgs *a, size_t *pf, unsigned *index,
                             char ifname[static IF_NAMESIZE + 1], sd_bus_error *error) {
        int r = read_configure_args(msg, a, error);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r >= 0)
                r = vf_target(m, a->vf, pf, index, ifname, error);
        return r;
}

int prepare_configure_vf(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        ConfigureArgs a;
        char ifname[IF_NAMESIZE + 1];
        unsigned index;
        size_t pf;
        int r = configure_request(userdata, msg, &a, &pf, &index, ifname, error);
        if (r < 0)
                return r;
        *interactive = a.interactive;
        return 0;
}

/* The PF's record with these settings of VF index added, to be persisted.
 * Settings made without persist are the kernel's alone: nothing records
 * them. */
static int vf_settings_record(Manager *m, const IovirtDevice *pf, unsigned index, const ConfigureArgs *a,
                              IovirtSriovRecord **ret) {
        const IovirtSriovRecord *old = sriov_find(m, pf->name);
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *r = NULL;
        int k = old ? record_copy(old, &r) : ((r = calloc(1, sizeof(*r))) ? 0 : -ENOMEM);
        if (k < 0)
                return k;
        if (!old) {
                memcpy(r->pf, pf->name, sizeof(r->pf));
                r->num_vfs = (unsigned) pf->n_vfs;
                int ap = iovirt_sriov_read_autoprobe(pf);
                r->autoprobe = ap < 0 ? IOVIRT_AUTOPROBE_KEEP : (IovirtAutoprobe) ap;
        }
        r->persist = true;
        IovirtVfConfig *v = iovirt_sriov_record_vf(r, index);
        if (!v)
                return -ENOMEM;
        const IovirtVfSettings *s = &a->settings;
        if (s->set_mac) {
                v->set_mac = true;
                memcpy(v->mac, s->mac, 6);
        }
        if (s->set_vlan) {
                v->set_vlan = true;
                v->vlan = s->vlan;
        }
        if (s->set_spoofchk)
                v->spoofchk = s->spoofchk;
        if (s->set_trust)
                v->trust = s->trust;
        *ret = TAKE_PTR(r);
        return 0;
}

typedef struct ConfigureJob {
        char pf[IOVIRT_ADDRESS_MAX];
        char ifname[IF_NAMESIZE + 1];
        unsigned index;
        IovirtVfSettings settings;
        IovirtSriovRecord *record;   /* to save once the kernel took the settings; NULL: not persisted */
        const char *dir;
        char *reason;
        int r, save_r;
} ConfigureJob;

static void configure_job_free(void *p) {
        ConfigureJob *j = p;
        iovirt_sriov_record_free(j->record);
        free(j->reason);
        free(j);
}

/* On the job's thread: a driver may take a while over it (i40e and ice
 * reset the VF, holding the kernel's rtnl lock), and the bus goes on */
static void configure_work(void *p) {
        ConfigureJob *j = p;
        j->r = iovirt_vf_configure(j->ifname, j->index, &j->settings, &j->reason);
        if (j->r >= 0 && j->record)
                j->save_r = iovirt_sriov_record_save(j->dir, j->record);
}

static int configure_done(Manager *m, sd_bus_message *msg, void *p) {
        ConfigureJob *j = p;
        IovirtAddress a;
        size_t pf;

        if (j->r < 0) {
                log_full_errno(LOG_ERR, j->r, j->pf, "Setting VF %u of %s failed: %s", j->index, j->ifname,
                               strna(j->reason));
                return sd_bus_reply_method_errorf(msg, j->r == -EINVAL || j->r == -EOPNOTSUPP
                                                               ? IOVIRT_ERROR_INVALID_ARGUMENT
                                                               : IOVIRT_ERROR_FAILED,
                                                  "%s", j->reason ? j->reason : strerror(-j->r));
        }
        log_device_info(j->pf, "VF %u of %s (%s) configured%s", j->index, j->ifname, j->pf,
                        j->record ? ", persisted" : "");
        if (j->save_r < 0) {
                log_error_errno(j->save_r, "%s: VF %u's settings could not be recorded in %s: %m", j->pf, j->index,
                                j->dir);
                return sd_bus_reply_method_errorf(msg, IOVIRT_ERROR_FAILED,
                                                  "VF %u of %s is configured, but its settings could not be "
                                                  "recorded in %s (%s): they will not come back at start-up",
                                                  j->index, j->ifname, j->dir, strerror(-j->save_r));
        }
        if (j->record)
                (void) sriov_put(m, j->pf, TAKE_PTR(j->record));
        if (!m->host || iovirt_address_parse(j->pf, &a, NULL) < 0 ||
            (pf = iovirt_host_find_address(m->host, &a)) == IOVIRT_NONE)
                return sd_bus_reply_method_errorf(msg, IOVIRT_ERROR_BUSY,
                                                  "VF %u of %s is configured; the model is being read again, ask "
                                                  "'iovirtctl sriov %s' in a moment", j->index, j->ifname, j->pf);
        _cleanup_(json_object_putp) json_object *o = sriov_document(m, pf);
        return manager_reply_json(msg, o);
}

int act_configure_vf(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        ConfigureArgs a;
        char ifname[IF_NAMESIZE + 1];
        unsigned index;
        size_t pf;
        /* the host may have changed while a password was typed: again */
        int r = configure_request(m, msg, &a, &pf, &index, ifname, error);
        if (r < 0)
                return r;
        const IovirtDevice *d = &m->host->devices[pf];
        ConfigureJob *j = calloc(1, sizeof(ConfigureJob));
        if (!j)
                return -ENOMEM;
        *j = (ConfigureJob) { .index = index, .settings = a.settings, .dir = m->state_dir };
        memcpy(j->pf, d->name, sizeof(j->pf));
        memcpy(j->ifname, ifname, sizeof(j->ifname));
        if (a.persist && (r = vf_settings_record(m, d, index, &a, &j->record)) < 0) {
                configure_job_free(j);
                return r;
        }
        /* the PF and the VF are held while the driver takes the settings */
        size_t vf = iovirt_vf_find(m->host, pf, index);
        int groups[2], n = 0;
        if (d->iommu_group >= 0)
                groups[n++] = d->iommu_group;
        if (vf != IOVIRT_NONE && m->host->devices[vf].iommu_group >= 0 &&
            m->host->devices[vf].iommu_group != d->iommu_group)
                groups[n++] = m->host->devices[vf].iommu_group;
        r = job_start(m, msg, groups, (size_t) n, configure_work, configure_done, j, configure_job_free);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not start setting VF %u of %s: %m", index, d->name);
        return 1;
}

/* ---- start-up ---- */

/* The persisted settings of rec's VFs with an index below `below` */
static int restore_vf_settings(const IovirtSriovRecord *rec, const IovirtDevice *pf, unsigned below) {
        char ifname[IF_NAMESIZE + 1];
        bool any = false;
        for (size_t i = 0; i < rec->n_vfs; i++)
                any = any || rec->vfs[i].index < below;
        if (!any)
                return 0;
        int r = iovirt_pf_netdev(pf, ifname, sizeof(ifname));
        if (r < 0)
                return log_warning_errno(r, "%s: its VF settings cannot be put back, it has no network interface now",
                                         rec->pf);
        for (size_t i = 0; i < rec->n_vfs; i++) {
                const IovirtVfConfig *v = &rec->vfs[i];
                if (v->index >= below)
                        continue;
                IovirtVfSettings s = { .set_mac = v->set_mac, .set_vlan = v->set_vlan, .vlan = v->vlan,
                                       .set_spoofchk = v->spoofchk >= 0, .spoofchk = v->spoofchk > 0,
                                       .set_trust = v->trust >= 0, .trust = v->trust > 0 };
                memcpy(s.mac, v->mac, 6);
                _cleanup_free_ char *reason = NULL;
                r = iovirt_vf_configure(ifname, v->index, &s, &reason);
                if (r < 0)
                        log_warning_errno(r, "%s: could not put back VF %u's settings: %s", rec->pf, v->index,
                                          strna(reason));
        }
        return 0;
}

/* Puts r (taken) with the records kept; its own pf names it.  (Not
 * sriov_put(m, rec->pf, TAKE_PTR(rec)): the order in which arguments are
 * evaluated is unspecified, and rec may be NULL by the time rec->pf is
 * read.) */
static int keep(Manager *m, IovirtSriovRecord *r) {
        return sriov_put(m, r->pf, r);
}

/* A record whose change was cut short, once it is carried out (or could
 * not be): what the change leaves, persisted without pending, or gone
 * when it was not to be persisted.  Takes rec. */
static int settle_pending(Manager *m, IovirtSriovRecord *taken) {
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *rec = taken;
        int r;
        rec->pending = false;
        if (!rec->persist) {
                r = iovirt_sriov_record_remove(m->state_dir, rec->pf);
                if (r < 0)
                        log_warning_errno(r, "%s: its finished change could not be removed from %s (%m); the next "
                                          "start finishes it again", rec->pf, m->state_dir);
                return 0;
        }
        r = iovirt_sriov_record_save(m->state_dir, rec);
        if (r < 0)
                log_warning_errno(r, "%s: its finished change could not be recorded in %s (%m); the next start "
                                  "finishes it again", rec->pf, m->state_dir);
        return keep(m, TAKE_PTR(rec));
}

/* One PF's record (taken): its VFs and settings back as persisted, or the
 * change a crash cut short (pending) carried out.  Negative only when
 * memory ran out; 1 when the host changed. */
static int restore_one(Manager *m, IovirtSriovRecord *taken, const char *boot_id) {
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *rec = taken;
        _cleanup_(iovirt_sriov_plan_freep) IovirtSriovPlan *p = NULL;
        _cleanup_free_ char *reason = NULL;
        const char *what = rec->pending ? "VFs of an interrupted change" : "persisted VFs";
        bool changed = false;
        size_t pf;
        int r;

        if (rec->pending && boot_id && strcmp(rec->boot_id, boot_id) != 0) {
                /* cut short in an earlier boot, which took its VFs along: a change to be persisted
                 * stands as persisted; one that was not is not made in this boot */
                log_warning("%s: a change to %u VFs was cut short in an earlier boot%s", rec->pf, rec->num_vfs,
                            rec->persist ? "; its VFs are put back as persisted" : ", and was not to be kept: "
                                                                                    "it is left undone");
                rec->pending = false;
                if (rec->persist && iovirt_sriov_record_save(m->state_dir, rec) < 0)
                        log_warning("%s: its record in %s still says pending; the next start looks again", rec->pf,
                                    m->state_dir);
        }
        if (!rec->persist && !rec->pending) {
                /* settings made without persist are not kept past a start */
                (void) iovirt_sriov_record_remove(m->state_dir, rec->pf);
                return 0;
        }
        r = iovirt_pf_lookup(m->host, rec->pf, &pf, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_warning("%s: its %s cannot be put back, it cannot take them now: %s", rec->pf, what,
                            strna(reason));
                return rec->pending ? settle_pending(m, TAKE_PTR(rec)) : keep(m, TAKE_PTR(rec));
        }
        const IovirtSriovInput in = { .host = m->host, .state = m->state, .pf = pf, .count = rec->num_vfs,
                                      .autoprobe = rec->autoprobe,
                                      .autoprobe_now = iovirt_sriov_read_autoprobe(&m->host->devices[pf]) };
        r = iovirt_sriov_plan(&in, &p);
        if (r < 0)
                return log_error_errno(r, "Failed to plan %s's %s: %m", rec->pf, what);
        const IovirtPlanCheck *refusal = iovirt_checks_refusal(p->checks, p->n_checks);
        if (refusal) {
                log_warning("%s: its %u %s are not put back: %s", rec->pf, rec->num_vfs, what, refusal->message);
                return rec->pending ? settle_pending(m, TAKE_PTR(rec)) : keep(m, TAKE_PTR(rec));
        }
        if (!p->done) {
                uint64_t usec = 0;
                r = iovirt_sriov_execute(p, &usec, &reason);
                if (r < 0) {
                        log_error_errno(r, "%s: its %u %s could not be put back: %s", rec->pf, rec->num_vfs, what,
                                        strna(reason));
                        return rec->pending ? settle_pending(m, TAKE_PTR(rec)) : keep(m, TAKE_PTR(rec));
                }
                log_device_info(rec->pf, "%s: %u -> %u VFs, as %s, in %.1f ms", rec->pf, p->from, p->to,
                                rec->pending ? "a change cut short by a crash asked" : "persisted", usec / 1000.0);
                changed = true;
        } else if (rec->pending)
                log_device_info(rec->pf, "%s: the change to %u VFs cut short by a crash was made already", rec->pf,
                                rec->num_vfs);
        if (rec->persist)
                (void) restore_vf_settings(rec, &m->host->devices[pf], rec->num_vfs);
        r = rec->pending ? settle_pending(m, TAKE_PTR(rec)) : keep(m, TAKE_PTR(rec));
        return r < 0 ? r : changed;
}

int manager_restore_sriov(Manager *m) {
        IovirtSriovRecord **recs = NULL;
        char **problems = NULL;
        size_t n = 0, n_problems = 0;
        bool changed = false;
        int r;

        /* which boot a pending change was cut short in (unreadable: every one is taken as this boot's) */
        _cleanup_free_ char *boot_id = NULL;
        r = iovirt_boot_id(&boot_id);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                log_warning_errno(r, "Cannot read the kernel's boot id: %m; SR-IOV changes cut short are finished "
                                  "as this boot's");
        r = iovirt_sriov_records_load(m->state_dir, &recs, &n, &problems, &n_problems);
        for (size_t i = 0; i < n_problems; i++) {
                log_full_errno(LOG_CRIT, 0, NULL, "%s", problems[i]);
                free(problems[i]);
        }
        free(problems);
        if (r < 0)
                return log_error_errno(r, "Failed to read the SR-IOV records in %s: %m", m->state_dir);
        r = 0;
        for (size_t i = 0; i < n; i++) {
                if (r < 0) {                  /* out of memory: the rest is only freed */
                        iovirt_sriov_record_free(recs[i]);
                        continue;
                }
                r = restore_one(m, recs[i], boot_id);
                changed = changed || r > 0;
        }
        free(recs);
        if (r < 0)
                return r;
        /* the kernel made the VFs before its writes returned: read them */
        return changed ? manager_refresh(m) : 0;
}
