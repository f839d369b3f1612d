/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <time.h>

#include "iovirt-fault.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-sriov.h"
#include "iovirt-sysfs.h"

/* ---- selectors ---- */

void iovirt_selector_clear(IovirtSelector *s) {
        if (!s)
                return;
        s->pf = mfree(s->pf);
        s->ranges = mfree(s->ranges);
        s->n_ranges = 0;
}

_printf_(3, 4) static int selector_fail(char **reason, const char *s, const char *fmt, ...) {
        _cleanup_free_ char *why = NULL;
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&why, fmt, ap);
        va_end(ap);
        if (l < 0)
                return -ENOMEM;
        return iovirt_set_reason(reason, -EINVAL,
                                 "'%s' is not a VF selector: %s; write PF#RANGE, e.g. enp5s0f0#0-3 or "
                                 "0000:05:00.0#0,2-7", s, why);
}

/* One index: decimal digits, no sign, no leading zero, at most IOVIRT_VF_INDEX_MAX */
static int take_index(const char **p, unsigned *ret) {
        size_t n = strspn(*p, "0123456789");
        if (n == 0 || n > 5 || ((*p)[0] == '0' && n > 1))
                return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (unsigned) ((*p)[i] - '0');
        if (v > IOVIRT_VF_INDEX_MAX)
                return -ERANGE;
        *p += n;
        *ret = v;
        return 0;
}

int iovirt_selector_parse(const char *s, IovirtSelector *ret, char **reason) {
        const char *hash = strchr(s, '#');
        if (!hash)
                return 0;
        if (hash == s)
                return selector_fail(reason, s, "no PF before '#'");
        if (strchr(hash + 1, '#'))
                return selector_fail(reason, s, "it has more than one '#'");
        if (!hash[1])
                return selector_fail(reason, s, "the range after '#' is empty");

        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        size_t allocated = 0;
        if (!(sel.pf = strndup(s, (size_t) (hash - s))))
                return -ENOMEM;
        for (const char *p = hash + 1;;) {
                const char *start = p;
                unsigned first, last;
                int k = take_index(&p, &first);
                last = first;
                if (k >= 0 && *p == '-') {
                        p++;
                        k = take_index(&p, &last);
                }
                size_t len = strcspn(start, ",");
                _cleanup_free_ char *part = strndup(start, len);
                if (!part)
                        return -ENOMEM;
                if (k == -ERANGE)
                        return selector_fail(reason, s, "'%s' names an index above 65534, which no PF has", part);
                if (k < 0 || (*p && *p != ','))
                        return len ? selector_fail(reason, s,
                                                   "'%s' is not an index N or a range N-M (decimal, no sign)", part)
                                   : selector_fail(reason, s, "an empty range between commas");
                if (first > last)
                        return selector_fail(reason, s, "'%s' is reversed: write the lower index first", part);
                IovirtVfRange *r = GROW(sel.ranges, sel.n_ranges, allocated);
                if (!r)
                        return -ENOMEM;
                *r = (IovirtVfRange) { first, last };
                if (!*p)
                        break;
                p++;
                if (!*p)
                        return selector_fail(reason, s, "it ends with a comma");
        }
        *ret = sel;
        sel = (IovirtSelector) {};
        return 1;
}

bool iovirt_selector_has(const IovirtSelector *s, unsigned index) {
        for (size_t i = 0; i < s->n_ranges; i++)
                if (index >= s->ranges[i].first && index <= s->ranges[i].last)
                        return true;
        return false;
}

unsigned iovirt_selector_max(const IovirtSelector *s) {
        unsigned m = 0;
        for (size_t i = 0; i < s->n_ranges; i++)
                m = s->ranges[i].last > m ? s->ranges[i].last : m;
        return m;
}

/* Steps from range to range rather than index to index: at most two steps
 * per range, so the time goes with what was written, not with the highest
 * index (index by index, a 4 KiB selector of 2,000 ranges ending at 65534
 * cost iovirtd 0.1 s of CPU per call, fuzz-selector found). */
unsigned iovirt_selector_count(const IovirtSelector *s) {
        unsigned n = 0;
        for (unsigned i = 0;;) {
                /* the furthest a range holding i reaches; else where the next range starts */
                unsigned reach = 0, next = UINT_MAX;
                bool held = false;
                for (size_t k = 0; k < s->n_ranges; k++) {
                        const IovirtVfRange *r = &s->ranges[k];
                        if (r->first <= i && i <= r->last) {
                                held = true;
                                reach = r->last > reach ? r->last : reach;
                        } else if (r->first > i && r->first < next)
                                next = r->first;
                }
                if (held) {
                        n += reach - i + 1;
                        i = reach + 1;          /* indexes end at IOVIRT_VF_INDEX_MAX: no overflow */
                } else if (next != UINT_MAX)
                        i = next;
                else
                        return n;
        }
}

/* ---- VFs of a PF ---- */

static unsigned routing_id(const IovirtAddress *a) {
        return ((unsigned) a->bus << 8) | ((unsigned) a->dev << 3) | a->fn;
}

int iovirt_vf_index(const IovirtHost *h, size_t vf) {
        const IovirtDevice *d = &h->devices[vf];
        if (!iovirt_device_is_vf(d))
                return -1;
        const IovirtDevice *pf = &h->devices[d->physfn];
        unsigned base = routing_id(&pf->addr) + pf->sriov_offset, rid = routing_id(&d->addr);
        if (rid < base)
                return -1;
        if (pf->sriov_stride == 0)
                return rid == base ? 0 : -1;
        if ((rid - base) % pf->sriov_stride)
                return -1;
        return (int) ((rid - base) / pf->sriov_stride);
}

size_t iovirt_vf_find(const IovirtHost *h, size_t pf, unsigned index) {
        const IovirtDevice *p = &h->devices[pf];
        for (size_t i = 0; i < p->n_vfs; i++)
                if (iovirt_vf_index(h, p->vfs[i]) == (int) index)
                        return p->vfs[i];
        return IOVIRT_NONE;
}

int iovirt_pf_lookup(const IovirtHost *h, const char *spec, size_t *ret, char **reason) {
        size_t i;
        int r = iovirt_host_lookup(h, spec, &i, reason);
        if (r < 0)
                return r;
        const IovirtDevice *d = &h->devices[i];
        if (iovirt_device_is_vf(d))
                return iovirt_set_reason(reason, -EINVAL,
                                         "%s is a VF (of %s), given where a PF is expected; name its PF, or the VF "
                                         "as %s#%d", d->name, h->devices[d->physfn].name, h->devices[d->physfn].name,
                                         iovirt_vf_index(h, i));
        if (!d->sriov)
                return iovirt_set_reason(reason, -EINVAL,
                                         "%s has no SR-IOV capability, so it has no VFs to create; 'iovirtctl "
                                         "list-devices' shows which functions do", d->name);
        *ret = i;
        return 0;
}

int iovirt_selector_resolve(const IovirtHost *h, const IovirtSelector *sel, size_t *pf, size_t **ret, size_t *n_ret,
                            char **reason) {
        size_t p;
        int r = iovirt_pf_lookup(h, sel->pf, &p, reason);
        if (r < 0)
                return r;
        const IovirtDevice *d = &h->devices[p];
        unsigned max = iovirt_selector_max(sel);
        if (max >= d->sriov_total)
                return iovirt_set_reason(reason, -ERANGE,
                                         "VF %u is out of range: %s has %u VFs at most, numbered 0-%u", max, d->name,
                                         d->sriov_total, d->sriov_total ? d->sriov_total - 1 : 0);
        _cleanup_free_ size_t *vfs = calloc(d->n_vfs + 1, sizeof(size_t));
        size_t n = 0;
        if (!vfs)
                return -ENOMEM;
        for (unsigned i = 0; i <= max; i++) {
                if (!iovirt_selector_has(sel, i))
                        continue;
                size_t v = iovirt_vf_find(h, p, i);
                if (v != IOVIRT_NONE && n < d->n_vfs)
                        vfs[n++] = v;
        }
        *pf = p;
        *ret = TAKE_PTR(vfs);
        *n_ret = n;
        return 0;
}

/* ---- the plan of a count change ---- */

IovirtSriovPlan *iovirt_sriov_plan_free(IovirtSriovPlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_checks; i++)
                free(p->checks[i].message);
        free(p->checks);
        free(p);
        return NULL;
}

static IovirtPlanCheck *plan_check(IovirtSriovPlan *p, const char *id) {
        IovirtPlanCheck *c = GROW(p->checks, p->n_checks, p->allocated_checks);
        if (c)
                c->id = id;
        return c;
}

static const char *consumer_name(const IovirtRecord *rec) {
        return rec->consumer && rec->consumer[0] ? rec->consumer : "an unknown consumer";
}

static int check_count(IovirtSriovPlan *p, const IovirtDevice *d) {
        IovirtPlanCheck *c = plan_check(p, "count");
        if (!c)
                return -ENOMEM;
        if (p->to > d->sriov_total)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_INVALID, NULL,
                                        "%s offers %u VFs at most (sriov_totalvfs); %u were asked for", d->name,
                                        d->sriov_total, p->to);
        if (p->done)
                return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL, "%s has %u VFs already%s",
                                        d->name, p->to, p->autoprobe == IOVIRT_AUTOPROBE_KEEP ? "" : ", autoprobe as asked");
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL, "%s: %u to %u VFs of %u%s", d->name,
                                p->from, p->to, d->sriov_total,
                                p->through_zero ? " (through 0: the kernel changes a non-zero count only from 0)" : "");
}

static int check_claims(IovirtSriovPlan *p, const IovirtSriovInput *in) {
        const IovirtHost *h = in->host;
        const IovirtDevice *d = &h->devices[in->pf];
        IovirtPlanCheck *c = plan_check(p, "claims");
        if (!c)
                return -ENOMEM;
        const IovirtRecord *rec = d->iommu_group >= 0 ? iovirt_state_find(in->state, d->iommu_group) : NULL;
        if (rec)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_SRIOV_CLAIMED, NULL,
                                        "%s is assigned to %s: a PF's VF count cannot change while it is assigned; "
                                        "release it first", d->name, consumer_name(rec));
        if (d->iommu_group >= 0 && in->group_locked && in->group_locked(d->iommu_group, in->userdata))
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, NULL,
                                        "%s is in a transaction right now; try again when it has finished", d->name);
        /* what goes: VFs from the new count up, or every one through 0 */
        unsigned keep = p->through_zero ? 0 : p->to;
        for (size_t i = 0; i < d->n_vfs; i++) {
                const IovirtDevice *vf = &h->devices[d->vfs[i]];
                int index = iovirt_vf_index(h, d->vfs[i]);
                if (index >= 0 && (unsigned) index < keep)
                        continue;
                if (vf->iommu_group < 0)
                        continue;
                const IovirtRecord *vrec = iovirt_state_find(in->state, vf->iommu_group);
                if (vrec)
                        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_SRIOV_CLAIMED, NULL,
                                                "VF %d of %s (%s) is assigned to %s, and %s would remove it; "
                                                "release it first (iovirtctl release %s)", index, d->name, vf->name,
                                                consumer_name(vrec),
                                                p->through_zero ? "changing the count (which goes through 0)"
                                                                : "shrinking",
                                                vf->name);
                if (in->group_locked && in->group_locked(vf->iommu_group, in->userdata))
                        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, NULL,
                                                "VF %d of %s (%s) is in a transaction right now; try again when it "
                                                "has finished", index, d->name, vf->name);
        }
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "Neither %s nor a VF that would go is assigned", d->name);
}

int iovirt_sriov_plan(const IovirtSriovInput *in, IovirtSriovPlan **ret) {
        const IovirtDevice *d = &in->host->devices[in->pf];
        _cleanup_(iovirt_sriov_plan_freep) IovirtSriovPlan *p = calloc(1, sizeof(IovirtSriovPlan));
        int r;

        if (!p)
                return -ENOMEM;
        memcpy(p->pf, d->name, sizeof(p->pf));
        p->from = (unsigned) d->n_vfs;
        p->to = in->count;
        p->total = d->sriov_total;
        p->autoprobe_from = in->autoprobe_now;
        p->autoprobe = in->autoprobe;
        if (p->autoprobe != IOVIRT_AUTOPROBE_KEEP && p->autoprobe_from == (int) p->autoprobe)
                p->autoprobe = IOVIRT_AUTOPROBE_KEEP;
        p->through_zero = p->from > 0 && p->to > 0 && p->from != p->to;
        p->done = p->from == p->to && p->autoprobe == IOVIRT_AUTOPROBE_KEEP;

        r = check_count(p, d);
        if (r >= 0 && p->autoprobe != IOVIRT_AUTOPROBE_KEEP && p->autoprobe_from < 0) {
                IovirtPlanCheck *c = plan_check(p, "autoprobe");
                r = !c ? -ENOMEM
                    : p->autoprobe_from == -ENOENT
                            ? iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_INVALID, NULL,
                                               "This kernel has no %s (Linux 4.12 added it), so autoprobe cannot be "
                                               "set", ATTR_SRIOV_AUTOPROBE)
                            : iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_UNREADABLE, NULL,
                                               "Cannot read %s's %s (%s), so a change of it could not be undone",
                                               d->name, ATTR_SRIOV_AUTOPROBE, strerror(-p->autoprobe_from));
        }
        if (r >= 0 && !p->done)
                r = check_claims(p, in);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- carrying it out ---- */

static int pf_attr_path(char path[static PATH_MAX], const char *pf, const char *attr) {
        int l = snprintf(path, PATH_MAX, SYSFS_PCI_DEVICES "/%s/%s", pf, attr);
        return l < 0 || l >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int iovirt_sriov_read_autoprobe(const IovirtDevice *pf) {
        char path[PATH_MAX], buf[16];
        int r = pf_attr_path(path, pf->name, ATTR_SRIOV_AUTOPROBE);
        if (r >= 0)
                r = iovirt_sysfs_read_at(AT_FDCWD, path, buf, sizeof(buf));
        if (r < 0)
                return r;
        return streq_ptr(buf, "0") ? 0 : streq_ptr(buf, "1") ? 1 : -EBADMSG;
}

static int write_pf(const char *pf, const char *attr, unsigned value) {
        char path[PATH_MAX], text[16];
        int r = pf_attr_path(path, pf, attr);
        if (r < 0)
                return r;
        snprintf(text, sizeof(text), "%u", value);
        return iovirt_sysfs_write(path, text);
}

/* What the kernel's answer to a sriov_numvfs write means */
static const char *numvfs_error(int r) {
        switch (r) {
        case -ENOENT:
                return "the PF has no driver, or its driver cannot create VFs through sysfs (it has no "
                       "sriov_configure); bind the vendor's PF driver";
        case -ERANGE:
                return "the count is above the PF's sriov_totalvfs";
        case -EBUSY:
                return "the kernel changes a non-zero count only from 0";
        case -ENOMEM:
        case -ENOSPC:
                return "the kernel could not find resources (bus numbers, memory windows) for that many VFs; "
                       "look at journalctl -k";
        default:
                return "the PF's driver refused; journalctl -k has its reason";
        }
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

int iovirt_sriov_execute(const IovirtSriovPlan *p, uint64_t *usec, char **reason) {
        uint64_t start = now_usec();
        bool autoprobe_written = false;
        int r;

        if (p->autoprobe != IOVIRT_AUTOPROBE_KEEP) {
                r = write_pf(p->pf, ATTR_SRIOV_AUTOPROBE, (unsigned) p->autoprobe);
                if (r < 0)
                        return iovirt_set_reason(reason, r, "Could not set %s's %s to %d: %s; nothing was changed",
                                                 p->pf, ATTR_SRIOV_AUTOPROBE, p->autoprobe, strerror(-r));
                autoprobe_written = true;
                iovirt_fault_point("sriov.autoprobe");
        }
        if (p->through_zero) {
                r = write_pf(p->pf, ATTR_SRIOV_NUMVFS, 0);
                if (r < 0) {
                        iovirt_set_reason(reason, r, "Could not remove %s's %u VFs on the way to %u: %s (%s)", p->pf,
                                          p->from, p->to, strerror(-r), numvfs_error(r));
                        goto undo_autoprobe;
                }
                iovirt_fault_point("sriov.zero");
        }
        if (p->to != p->from) {
                r = write_pf(p->pf, ATTR_SRIOV_NUMVFS, p->to);
                if (r < 0) {
                        iovirt_set_reason(reason, r, "The kernel refused %u VFs on %s: %s (%s)", p->to, p->pf,
                                          strerror(-r), numvfs_error(r));
                        /* as it was before the old VFs come back, so that they are probed as they were */
                        if (autoprobe_written)
                                (void) write_pf(p->pf, ATTR_SRIOV_AUTOPROBE, (unsigned) p->autoprobe_from);
                        autoprobe_written = false;
                        if (p->through_zero) {
                                int k = write_pf(p->pf, ATTR_SRIOV_NUMVFS, p->from);
                                _cleanup_free_ char *first = TAKE_PTR(*reason);
                                if (k < 0)
                                        iovirt_set_reason(reason, r, "%s; and its %u VFs could not be put back (%s): "
                                                          "it has none now", strna(first), p->from, strerror(-k));
                                else
                                        iovirt_set_reason(reason, r, "%s; its %u VFs were put back", strna(first),
                                                          p->from);
                        }
                        goto undo_autoprobe;
                }
                iovirt_fault_point("sriov.numvfs");
        }
        *usec = now_usec() - start;
        return 0;

undo_autoprobe:
        if (autoprobe_written)       /* written only when the old value was read */
                (void) write_pf(p->pf, ATTR_SRIOV_AUTOPROBE, (unsigned) p->autoprobe_from);
        *usec = now_usec() - start;
        return r;
}

/* ---- what is kept of a PF ---- */

IovirtSriovRecord *iovirt_sriov_record_free(IovirtSriovRecord *r) {
        if (!r)
                return NULL;
        free(r->vfs);
        free(r);
        return NULL;
}

IovirtVfConfig *iovirt_sriov_record_vf(IovirtSriovRecord *r, unsigned index) {
        for (size_t i = 0; i < r->n_vfs; i++)
                if (r->vfs[i].index == index)
                        return &r->vfs[i];
        IovirtVfConfig *v = reallocarray(r->vfs, r->n_vfs + 1, sizeof(IovirtVfConfig));
        if (!v)
                return NULL;
        r->vfs = v;
        v = &r->vfs[r->n_vfs++];
        *v = (IovirtVfConfig) { .index = index, .spoofchk = -1, .trust = -1 };
        return v;
}

static int add(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

json_object *iovirt_sriov_record_to_json(const IovirtSriovRecord *r) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *vfs = json_object_new_array();
        int k = o ? 0 : -ENOMEM;

        if (k >= 0)
                k = add(o, "vfs", vfs);
        if (k >= 0)
                k = add(o, "version", json_object_new_int(IOVIRT_STATE_VERSION));
        if (k >= 0)
                k = add(o, "pf", json_object_new_string(r->pf));
        if (k >= 0)
                k = add(o, "num_vfs", json_object_new_int((int) r->num_vfs));
        if (k >= 0)
                k = add(o, "persist", json_object_new_boolean(r->persist));
        if (k >= 0 && r->pending)
                k = add(o, "pending", json_object_new_boolean(true));
        if (k >= 0 && r->pending)
                k = add(o, "boot_id", json_object_new_string(r->boot_id));
        if (k >= 0 && r->autoprobe != IOVIRT_AUTOPROBE_KEEP)
                k = add(o, "autoprobe", json_object_new_boolean(r->autoprobe == IOVIRT_AUTOPROBE_ON));
        for (size_t i = 0; k >= 0 && i < r->n_vfs; i++) {
                const IovirtVfConfig *v = &r->vfs[i];
                json_object *vo = json_object_new_object();
                k = vo && json_object_array_add(vfs, vo) >= 0 ? 0 : -ENOMEM;
                if (k < 0) {
                        json_object_put(vo);
                        break;
                }
                k = add(vo, "index", json_object_new_int((int) v->index));
                if (k >= 0 && v->set_mac) {
                        char mac[18];
                        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", v->mac[0], v->mac[1], v->mac[2],
                                 v->mac[3], v->mac[4], v->mac[5]);
                        k = add(vo, "mac", json_object_new_string(mac));
                }
                if (k >= 0 && v->set_vlan)
                        k = add(vo, "vlan", json_object_new_int((int) v->vlan));
                if (k >= 0 && v->spoofchk >= 0)
                        k = add(vo, "spoofchk", json_object_new_boolean(v->spoofchk));
                if (k >= 0 && v->trust >= 0)
                        k = add(vo, "trust", json_object_new_boolean(v->trust));
        }
        return k < 0 ? NULL : TAKE_PTR(o);
}

static int bad(char **reason, const char *what) {
        return iovirt_set_reason(reason, -EBADMSG, "%s", what) == -EBADMSG && !*reason ? -ENOMEM : -EBADMSG;
}

static int get_uint(json_object *o, const char *key, unsigned max, bool required, unsigned *ret, bool *present) {
        json_object *v;
        if (present)
                *present = false;
        if (!json_object_object_get_ex(o, key, &v))
                return required ? -EBADMSG : 0;
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t x = json_object_get_int64(v);
        if (x < 0 || x > (int64_t) max)
                return -EBADMSG;
        *ret = (unsigned) x;
        if (present)
                *present = true;
        return 0;
}

static int get_bool(json_object *o, const char *key, int *ret) {
        json_object *v;
        *ret = -1;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
        unsigned b[6];
        char end;
        if (strlen(s) != 17 ||
            sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
                return -EBADMSG;
        for (int i = 0; i < 6; i++)
                mac[i] = (uint8_t) b[i];
        return 0;
}

int iovirt_sriov_record_from_json(json_object *o, IovirtSriovRecord **ret, char **reason) {
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *r = calloc(1, sizeof(IovirtSriovRecord));
        json_object *v, *vfs;
        IovirtAddress a;
        unsigned version;
        int persist, pending, autoprobe;

        if (!r)
                return -ENOMEM;
        if (!json_object_is_type(o, json_type_object))
                return bad(reason, "it is not a JSON object");
        if (get_uint(o, "version", INT_MAX, true, &version, NULL) < 0 || version != IOVIRT_STATE_VERSION)
                return bad(reason, "its version is missing or unknown");
        if (!json_object_object_get_ex(o, "pf", &v) || !json_object_is_type(v, json_type_string) ||
            iovirt_address_parse(json_object_get_string(v), &a, NULL) < 0)
                return bad(reason, "its pf is not a PCI address");
        iovirt_address_format(&a, r->pf);
        if (get_uint(o, "num_vfs", IOVIRT_VF_INDEX_MAX + 1, true, &r->num_vfs, NULL) < 0)
                return bad(reason, "its num_vfs is missing or out of range");
        if (get_bool(o, "persist", &persist) < 0 || persist < 0)
                return bad(reason, "its persist is missing or not a boolean");
        r->persist = persist;
        if (get_bool(o, "pending", &pending) < 0)
                return bad(reason, "its pending is not a boolean");
        r->pending = pending > 0;
        if (r->pending) {
                json_object *b;
                if (!json_object_object_get_ex(o, "boot_id", &b) || !json_object_is_type(b, json_type_string) ||
                    strlen(json_object_get_string(b)) >= sizeof(r->boot_id))
                        return bad(reason, "a pending change names no boot_id");
                strcpy(r->boot_id, json_object_get_string(b));
        }
        if (get_bool(o, "autoprobe", &autoprobe) < 0)
                return bad(reason, "its autoprobe is not a boolean");
        r->autoprobe = autoprobe < 0 ? IOVIRT_AUTOPROBE_KEEP : autoprobe ? IOVIRT_AUTOPROBE_ON : IOVIRT_AUTOPROBE_OFF;
        if (!json_object_object_get_ex(o, "vfs", &vfs) || !json_object_is_type(vfs, json_type_array))
                return bad(reason, "its vfs is missing or not a list");
        for (size_t i = 0; i < json_object_array_length(vfs); i++) {
                json_object *e = json_object_array_get_idx(vfs, i), *mac;
                unsigned index;
                if (!json_object_is_type(e, json_type_object) ||
                    get_uint(e, "index", IOVIRT_VF_INDEX_MAX, true, &index, NULL) < 0)
                        return bad(reason, "a VF's index is missing or out of range");
                for (size_t k = 0; k < r->n_vfs; k++)
                        if (r->vfs[k].index == index)
                                return bad(reason, "a VF is listed twice");
                IovirtVfConfig *c = iovirt_sriov_record_vf(r, index);
                if (!c)
                        return -ENOMEM;
                if (json_object_object_get_ex(e, "mac", &mac)) {
                        if (!json_object_is_type(mac, json_type_string) ||
                            parse_mac(json_object_get_string(mac), c->mac) < 0)
                                return bad(reason, "a VF's mac is not a MAC address");
                        c->set_mac = true;
                }
                if (get_uint(e, "vlan", 4095, false, &c->vlan, &c->set_vlan) < 0)
                        return bad(reason, "a VF's vlan is not 0-4095");
                if (get_bool(e, "spoofchk", &c->spoofchk) < 0 || get_bool(e, "trust", &c->trust) < 0)
                        return bad(reason, "a VF's spoofchk or trust is not a boolean");
        }
        *ret = TAKE_PTR(r);
        return 0;
}

bool iovirt_sriov_records_equal(const IovirtSriovRecord *a, const IovirtSriovRecord *b) {
        if (!streq_ptr(a->pf, b->pf) || a->num_vfs != b->num_vfs || a->persist != b->persist ||
            a->pending != b->pending || (a->pending && strcmp(a->boot_id, b->boot_id) != 0) ||
            a->autoprobe != b->autoprobe || a->n_vfs != b->n_vfs)
                return false;
        for (size_t i = 0; i < a->n_vfs; i++) {
                const IovirtVfConfig *x = &a->vfs[i], *y = &b->vfs[i];
                if (x->index != y->index || x->set_mac != y->set_mac || x->set_vlan != y->set_vlan ||
                    x->spoofchk != y->spoofchk || x->trust != y->trust || (x->set_mac && memcmp(x->mac, y->mac, 6)) ||
                    (x->set_vlan && x->vlan != y->vlan))
                        return false;
        }
        return true;
}

#define SRIOV_RECORD_PREFIX "sriov-"
#define SRIOV_RECORD_SUFFIX ".json"

int iovirt_sriov_record_save(const char *dir, const IovirtSriovRecord *r) {
        char name[64];
        size_t size = 0;
        snprintf(name, sizeof(name), SRIOV_RECORD_PREFIX "%s" SRIOV_RECORD_SUFFIX, r->pf);
        _cleanup_(json_object_putp) json_object *o = iovirt_sriov_record_to_json(r);
        if (!o)
                return -ENOMEM;
        const char *text;
        int k = iovirt_json_text(o, &text, &size);
        if (k < 0)
                return k;
        /* read back as load will: the same record, or it is not written */
        _cleanup_(json_object_putp) json_object *back = NULL;
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *b = NULL;
        _cleanup_free_ char *why = NULL;
        k = iovirt_json_text_parse(text, size, &back, &why);
        if (k >= 0)
                k = iovirt_sriov_record_from_json(back, &b, &why);
        if (k == -ENOMEM)
                return k;
        if (k < 0 || !iovirt_sriov_records_equal(r, b))
                return -EINVAL;
        return iovirt_file_save_atomic(dir, name, text, size);
}

int iovirt_sriov_record_remove(const char *dir, const char *pf) {
        char name[64];
        snprintf(name, sizeof(name), SRIOV_RECORD_PREFIX "%s" SRIOV_RECORD_SUFFIX, pf);
        return iovirt_file_remove(dir, name);
}

/* "sriov-0000:05:00.0.json": the address, or -EINVAL for any other name */
static int record_name_pf(const char *name, char pf[static IOVIRT_ADDRESS_MAX]) {
        size_t l = strlen(name), pl = strlen(SRIOV_RECORD_PREFIX), sl = strlen(SRIOV_RECORD_SUFFIX);
        char buf[IOVIRT_ADDRESS_MAX];
        IovirtAddress a;
        if (l <= pl + sl || l - pl - sl >= sizeof(buf) || strncmp(name, SRIOV_RECORD_PREFIX, pl) != 0 ||
            strcmp(name + l - sl, SRIOV_RECORD_SUFFIX) != 0)
                return -EINVAL;
        memcpy(buf, name + pl, l - pl - sl);
        buf[l - pl - sl] = '\0';
        if (iovirt_address_parse(buf, &a, NULL) < 0 || strcmp(iovirt_address_format(&a, pf), buf) != 0)
                return -EINVAL;
        return 0;
}

static void sriov_records_free(IovirtSriovRecord **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                iovirt_sriov_record_free(v[i]);
        free(v);
}

int iovirt_sriov_records_load(const char *dir, IovirtSriovRecord ***ret, size_t *n_ret, char ***problems,
                              size_t *n_problems) {
        IovirtSriovRecord **v = NULL;
        size_t n = 0, allocated = 0;
        int k = 0;

        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                char pf[IOVIRT_ADDRESS_MAX], path[PATH_MAX];
                if (strncmp(de->d_name, "." SRIOV_RECORD_PREFIX, strlen(SRIOV_RECORD_PREFIX) + 1) == 0) {
                        unlinkat(dirfd(d), de->d_name, 0);      /* an interrupted save */
                        continue;
                }
                if (record_name_pf(de->d_name, pf) < 0)
                        continue;
                _cleanup_free_ char *text = NULL, *why = NULL, *problem = NULL;
                _cleanup_(json_object_putp) json_object *o = NULL;
                IovirtSriovRecord *r = NULL;
                size_t size = 0;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                k = iovirt_read_file_sized(path, &text, &size);
                if (k >= 0)
                        k = iovirt_json_text_parse(text, size, &o, &why);
                if (k >= 0)
                        k = iovirt_sriov_record_from_json(o, &r, &why);
                if (k >= 0 && !streq_ptr(r->pf, pf)) {
                        r = iovirt_sriov_record_free(r);
                        k = -EBADMSG;
                        free(why);
                        why = strdup("its PF does not match its name");
                }
                if (k == -ENOMEM)
                        break;
                if (k < 0) {
                        k = iovirt_file_set_aside(dir, de->d_name, why ? why : strerror(-k), &problem);
                        if (k >= 0)
                                k = iovirt_strv_pushf(problems, n_problems, "%s", problem);
                        if (k < 0)
                                break;
                        continue;
                }
                IovirtSriovRecord **slot = GROW(v, n, allocated);
                if (!slot) {
                        iovirt_sriov_record_free(r);
                        k = -ENOMEM;
                        break;
                }
                *slot = r;
        }
        if (k < 0) {
                sriov_records_free(v, n);
                return k;
        }
        *ret = v;
        *n_ret = n;
        return 0;
}

/* A switchdev representor of a VF or SF: its phys_port_name is "pfNvfM" or
 * "pfNsfM" (the PF's own uplink is "pN"; in legacy mode there is none) */
static bool is_representor(const char *net_dir, const char *name) {
        char dir[PATH_MAX], port[64];
        if (snprintf(dir, sizeof(dir), "%s/%s", net_dir, name) >= (int) sizeof(dir) ||
            iovirt_sysfs_read(dir, "phys_port_name", port, sizeof(port)) <= 0)
                return false;
        return strncmp(port, "pf", 2) == 0 && (strstr(port, "vf") || strstr(port, "sf"));
}

int iovirt_pf_netdev(const IovirtDevice *pf, char *buf, size_t size) {
        char path[PATH_MAX];
        int l = snprintf(path, sizeof(path), "%s/net", pf->syspath);
        if (l < 0 || l >= (int) sizeof(path))
                return -ENAMETOOLONG;
        _cleanup_closedir_ DIR *d = opendir(path);
        if (!d)
                return errno == ENOENT ? -ENOENT : -errno;
        /* the first by name that is no representor: the same one every time */
        bool found = false;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.' || is_representor(path, de->d_name))
                        continue;
                if (strlen(de->d_name) >= size)
                        return -ENAMETOOLONG;
                if (!found || strcmp(de->d_name, buf) < 0)
                        strcpy(buf, de->d_name);
                found = true;
        }
        return found ? 0 : -ENOENT;
}
