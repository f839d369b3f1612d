/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "iovirt-address.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-state.h"
#include "iovirt-sysfs.h"
#include "iovirt-variant.h"

static const char *const phase_names[_IOVIRT_PHASE_MAX] = {
        [IOVIRT_PHASE_ASSIGNING] = "assigning",
        [IOVIRT_PHASE_ASSIGNED] = "assigned",
        [IOVIRT_PHASE_RELEASING] = "releasing",
        [IOVIRT_PHASE_LIBVIRT] = "libvirt",
};

const char *iovirt_function_vfio_driver(const IovirtFunctionRecord *f) {
        return f->vfio_driver ? f->vfio_driver : DRIVER_VFIO_PCI;
}

const char *iovirt_phase_name(IovirtPhase p) {
        return p >= 0 && p < _IOVIRT_PHASE_MAX ? phase_names[p] : "invalid";
}

IovirtRecord *iovirt_record_free(IovirtRecord *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_functions; i++) {
                free(r->functions[i].driver);
                free(r->functions[i].driver_override);
                free(r->functions[i].vfio_driver);
        }
        free(r->functions);
        free(r->consumer);
        free(r->boot_id);
        free(r);
        return NULL;
}

int iovirt_record_addresses(const IovirtRecord *r, IovirtAddress **ret) {
        _cleanup_free_ IovirtAddress *a = calloc(r->n_functions + 1, sizeof(IovirtAddress));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_functions; i++)
                if (iovirt_address_parse(r->functions[i].address, &a[i], NULL) < 0)
                        return -EINVAL;
        *ret = TAKE_PTR(a);
        return 0;
}

int iovirt_record_copy(const IovirtRecord *r, IovirtRecord **ret) {
        _cleanup_(iovirt_record_freep) IovirtRecord *c = calloc(1, sizeof(IovirtRecord));
        if (!c)
                return -ENOMEM;
        *c = (IovirtRecord) { .group = r->group, .phase = r->phase, .since_usec = r->since_usec, .holder = r->holder,
                              .node_given = r->node_given, .node_uid = r->node_uid, .node_old_uid = r->node_old_uid,
                              .node_old_gid = r->node_old_gid, .libvirt_config = r->libvirt_config,
                              .libvirt_attach = r->libvirt_attach };
        /* no consumer is "", as to_json writes it and from_json reads it back */
        if (!(c->consumer = strdup(r->consumer ? r->consumer : "")) || (r->boot_id && !(c->boot_id = strdup(r->boot_id))))
                return -ENOMEM;
        if (r->n_functions && !(c->functions = calloc(r->n_functions, sizeof(IovirtFunctionRecord))))
                return -ENOMEM;
        for (; c->n_functions < r->n_functions; c->n_functions++) {
                const IovirtFunctionRecord *f = &r->functions[c->n_functions];
                IovirtFunctionRecord *g = &c->functions[c->n_functions];
                *g = (IovirtFunctionRecord) { .original_known = f->original_known };
                memcpy(g->address, f->address, sizeof(g->address));
                if ((f->driver && !(g->driver = strdup(f->driver))) ||
                    (f->driver_override && !(g->driver_override = strdup(f->driver_override))) ||
                    (f->vfio_driver && !(g->vfio_driver = strdup(f->vfio_driver)))) {
                        c->n_functions++;      /* what was allocated is freed with it */
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(c);
        return 0;
}

/* Adds v as o's member key.  The key is a literal, which json-c keeps
 * without copying (one allocation fewer to fail).  json-c takes v only when
 * the add succeeds; when it fails v is put here, so that the caller owns
 * nothing either way. */
static int add_member(json_object *o, const char *key, json_object *v) {
        if (json_object_object_add_ex(o, key, v, JSON_C_OBJECT_ADD_CONSTANT_KEY) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* v was just made: NULL means that failed, never JSON null */
static int add_new(json_object *o, const char *key, json_object *v) {
        return v ? add_member(o, key, v) : -ENOMEM;
}

/* s, or null for none: a string json-c could not make is an error, not
 * "none" (a driver written as null is a function left without one) */
static int add_string_or_null(json_object *o, const char *key, const char *s) {
        return s ? add_new(o, key, json_object_new_string(s)) : add_member(o, key, NULL);
}

static int add_function(json_object *fns, const IovirtFunctionRecord *f) {
        json_object *fo = json_object_new_object();
        if (!fo)
                return -ENOMEM;
        if (json_object_array_add(fns, fo) < 0) {
                json_object_put(fo);
                return -ENOMEM;
        }
        if (add_new(fo, "address", json_object_new_string(f->address)) < 0 ||
            add_string_or_null(fo, "driver", f->driver) < 0 ||
            add_string_or_null(fo, "driver_override", f->driver_override) < 0 ||
            add_new(fo, "original_known", json_object_new_boolean(f->original_known)) < 0)
                return -ENOMEM;
        /* absent in records made before variant drivers: vfio-pci */
        if (f->vfio_driver && add_new(fo, "vfio_driver", json_object_new_string(f->vfio_driver)) < 0)
                return -ENOMEM;
        return 0;
}

static int add_holder(json_object *o, const IovirtHolder *h) {
        json_object *ho = json_object_new_object();
        if (add_new(o, "holder", ho) < 0 ||
            add_new(ho, "uid", json_object_new_uint64(h->uid)) < 0 ||
            add_new(ho, "pid", json_object_new_int(h->pid)) < 0 ||
            add_new(ho, "pid_start", json_object_new_uint64(h->pid_start)) < 0 ||
            add_new(ho, "memory", json_object_new_uint64(h->memory)) < 0 ||
            add_new(ho, "viommu", json_object_new_boolean(h->viommu)) < 0 ||
            add_new(ho, "memlock", json_object_new_uint64(h->memlock)) < 0)
                return -ENOMEM;
        if (!h->memlock_saved)
                return 0;
        json_object *before = json_object_new_object();
        if (add_new(ho, "memlock_before", before) < 0 ||
            add_new(before, "soft", json_object_new_uint64(h->memlock_soft)) < 0 ||
            add_new(before, "hard", json_object_new_uint64(h->memlock_hard)) < 0)
                return -ENOMEM;
        return 0;
}

/* The whole document, or NULL when memory ran out: never one with a member
 * missing or turned into null */
json_object *iovirt_record_to_json(const IovirtRecord *r) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *fns;

        if (!o || add_new(o, "version", json_object_new_int(IOVIRT_STATE_VERSION)) < 0 ||
            add_new(o, "group", json_object_new_int(r->group)) < 0 ||
            add_new(o, "consumer", json_object_new_string(r->consumer ? r->consumer : "")) < 0 ||
            add_new(o, "phase", json_object_new_string(iovirt_phase_name(r->phase))) < 0 ||
            add_string_or_null(o, "boot_id", r->boot_id) < 0 ||
            add_new(o, "since_usec", json_object_new_uint64(r->since_usec)) < 0)
                return NULL;
        fns = json_object_new_array();
        if (add_new(o, "functions", fns) < 0)
                return NULL;
        for (size_t i = 0; i < r->n_functions; i++)
                if (add_function(fns, &r->functions[i]) < 0)
                        return NULL;
        if (r->holder.known && add_holder(o, &r->holder) < 0)
                return NULL;
        if (r->node_given) {
                json_object *n = json_object_new_object();
                if (add_new(o, "vfio_node", n) < 0 || add_new(n, "given_to", json_object_new_uint64(r->node_uid)) < 0 ||
                    add_new(n, "uid", json_object_new_uint64(r->node_old_uid)) < 0 ||
                    add_new(n, "gid", json_object_new_uint64(r->node_old_gid)) < 0)
                        return NULL;
        }
        if (r->libvirt_config && add_new(o, "libvirt_config", json_object_new_boolean(true)) < 0)
                return NULL;
        if (r->libvirt_attach && add_new(o, "libvirt_attach", json_object_new_boolean(true)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

int iovirt_json_get_u64(json_object *o, const char *key, uint64_t max, uint64_t *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        errno = 0;
        uint64_t u = json_object_get_uint64(v);
        /* json-c reads a negative number as 0, with errno set */
        if (errno != 0 || u > max || (u == 0 && json_object_get_int64(v) < 0))
                return -EBADMSG;
        *ret = u;
        return 0;
}

static int holder_from_json(json_object *o, IovirtHolder *h) {
        json_object *v, *before;
        uint64_t uid, pid;
        *h = (IovirtHolder) { .known = true };
        if (!json_object_is_type(o, json_type_object) || iovirt_json_get_u64(o, "uid", UINT32_MAX - 1, &uid) < 0 ||
            iovirt_json_get_u64(o, "pid", INT32_MAX, &pid) < 0 || iovirt_json_get_u64(o, "pid_start", UINT64_MAX, &h->pid_start) < 0 ||
            iovirt_json_get_u64(o, "memory", UINT64_MAX, &h->memory) < 0 ||
            iovirt_json_get_u64(o, "memlock", UINT64_MAX, &h->memlock) < 0 ||
            !json_object_object_get_ex(o, "viommu", &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        h->uid = (uint32_t) uid;
        h->pid = (int32_t) pid;
        h->viommu = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "memlock_before", &before)) {
                if (!json_object_is_type(before, json_type_object) ||
                    iovirt_json_get_u64(before, "soft", UINT64_MAX, &h->memlock_soft) < 0 ||
                    iovirt_json_get_u64(before, "hard", UINT64_MAX, &h->memlock_hard) < 0)
                        return -EBADMSG;
                h->memlock_saved = true;
        }
        return 0;
}

static int bad(char **reason, const char *what) {
        if (reason)
                *reason = strdup(what);
        return -EBADMSG;
}

/* An integer member in [min, max].  json_object_get_int() and friends
 * convert instead of refusing (strings, doubles and booleans are read as
 * numbers, values out of range are clamped), so the type and the range are
 * checked first.  Values past INT64_MAX read as INT64_MAX: max must be
 * below it. */
static int get_int64(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t i = json_object_get_int64(v);
        if (i < min || i > max)
                return -EBADMSG;
        *ret = i;
        return 0;
}

/* A string member (without an embedded NUL, which C would cut it at), or
 * NULL for null where allowed; -EBADMSG for anything else */
static int get_string(json_object *o, const char *key, bool nullable, char **ret) {
        json_object *v;
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v))
                return -EBADMSG;
        if (!v)
                return nullable ? 0 : -EBADMSG;
        if (!json_object_is_type(v, json_type_string) ||
            strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return -EBADMSG;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

/* An allocation that failed stays -ENOMEM: a good record must not be set
 * aside as damaged because memory ran out while reading it */
static int bad_unless_oom(int k, char **reason, const char *what) {
        return k == -ENOMEM ? k : bad(reason, what);
}

int iovirt_record_from_json(json_object *o, IovirtRecord **ret, char **reason) {
        _cleanup_(iovirt_record_freep) IovirtRecord *r = calloc(1, sizeof(IovirtRecord));
        _cleanup_free_ char *phase = NULL;
        json_object *v, *fns;
        int64_t num;
        int k;

        if (!r)
                return -ENOMEM;
        if (!json_object_is_type(o, json_type_object))
                return bad(reason, "not a JSON object");
        if (get_int64(o, "version", IOVIRT_STATE_VERSION, IOVIRT_STATE_VERSION, &num) < 0)
                return bad(reason, "no \"version\": " STRINGIFY(IOVIRT_STATE_VERSION));
        if (get_int64(o, "group", 0, INT_MAX, &num) < 0)
                return bad(reason, "no valid \"group\"");
        r->group = (int) num;
        k = get_string(o, "consumer", false, &r->consumer);
        if (k < 0 || (r->consumer[0] && iovirt_consumer_valid(r->consumer, NULL) < 0))
                return bad_unless_oom(k, reason, "no valid \"consumer\"");
        k = get_string(o, "phase", false, &phase);
        if (k < 0)
                return bad_unless_oom(k, reason, "no \"phase\"");
        r->phase = _IOVIRT_PHASE_MAX;
        for (IovirtPhase p = 0; p < _IOVIRT_PHASE_MAX; p++)
                if (streq_ptr(phase, phase_names[p]))
                        r->phase = p;
        if (r->phase == _IOVIRT_PHASE_MAX)
                return bad(reason, "unknown \"phase\"");
        k = get_string(o, "boot_id", true, &r->boot_id);
        if (k < 0)
                return bad_unless_oom(k, reason, "no \"boot_id\"");
        /* written as an unsigned 64-bit number: json_object_get_int64() reads
         * the half past INT64_MAX as INT64_MAX (not negative, so accepted
         * here), json_object_get_uint64() negative numbers as 0 */
        if (!json_object_object_get_ex(o, "since_usec", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0)
                return bad(reason, "no valid \"since_usec\" (microseconds, not negative)");
        r->since_usec = json_object_get_uint64(v);
        if (!json_object_object_get_ex(o, "functions", &fns) || !json_object_is_type(fns, json_type_array) ||
            json_object_array_length(fns) == 0)
                return bad(reason, "no \"functions\"");

        size_t n = json_object_array_length(fns);
        r->functions = calloc(n, sizeof(IovirtFunctionRecord));
        if (!r->functions)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *fo = json_object_array_get_idx(fns, i);
                IovirtFunctionRecord *f = &r->functions[r->n_functions++];
                _cleanup_free_ char *addr = NULL;
                IovirtAddress a;
                k = json_object_is_type(fo, json_type_object) ? get_string(fo, "address", false, &addr) : -EBADMSG;
                if (k < 0 || iovirt_address_parse(addr, &a, NULL) < 0)
                        return bad_unless_oom(k, reason, "a function without a valid \"address\"");
                iovirt_address_format(&a, f->address);
                k = get_string(fo, "driver", true, &f->driver);
                if (k >= 0)
                        k = get_string(fo, "driver_override", true, &f->driver_override);
                if (k < 0)
                        return bad_unless_oom(k, reason, "a function without \"driver\" or \"driver_override\"");
                if (!json_object_object_get_ex(fo, "original_known", &v) ||
                    !json_object_is_type(v, json_type_boolean))
                        return bad(reason, "a function without \"original_known\"");
                f->original_known = json_object_get_boolean(v);
                /* optional (older records have none: vfio-pci), but a driver name when there */
                if (json_object_object_get_ex(fo, "vfio_driver", NULL)) {
                        k = get_string(fo, "vfio_driver", false, &f->vfio_driver);
                        if (k < 0 || !iovirt_variant_name_valid(f->vfio_driver))
                                return bad_unless_oom(k, reason, "a function with an invalid \"vfio_driver\"");
                }
        }
        if (json_object_object_get_ex(o, "vfio_node", &v)) {
                uint64_t to, uid, gid;
                if (!json_object_is_type(v, json_type_object) || iovirt_json_get_u64(v, "given_to", UINT32_MAX - 1, &to) < 0 ||
                    iovirt_json_get_u64(v, "uid", UINT32_MAX - 1, &uid) < 0 || iovirt_json_get_u64(v, "gid", UINT32_MAX - 1, &gid) < 0)
                        return bad(reason, "an invalid \"vfio_node\" (given_to, uid, gid)");
                r->node_given = true;
                r->node_uid = (uint32_t) to;
                r->node_old_uid = (uint32_t) uid;
                r->node_old_gid = (uint32_t) gid;
        }
        if (json_object_object_get_ex(o, "libvirt_config", &v)) {
                if (!json_object_is_type(v, json_type_boolean))
                        return bad(reason, "an invalid \"libvirt_config\" (true or false)");
                r->libvirt_config = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(o, "libvirt_attach", &v)) {
                if (!json_object_is_type(v, json_type_boolean))
                        return bad(reason, "an invalid \"libvirt_attach\" (true or false)");
                r->libvirt_attach = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(o, "holder", &v)) {
                k = holder_from_json(v, &r->holder);
                if (k < 0)
                        return bad(reason, "an invalid \"holder\" (uid, pid, pid_start, memory, viommu, memlock)");
        }
        *ret = TAKE_PTR(r);
        return 0;
}

const char *iovirt_state_dir(void) {
        const char *d = getenv(IOVIRT_ENV_STATE_DIRECTORY);
        /* systemd may list several, separated by ':'; ours is the only one */
        return d && *d && !strchr(d, ':') ? d : IOVIRT_STATE_DIR;
}

/* "group-N.json": a record's file name in the state directory */
static char *record_name(char buf[static 32], int group) {
        snprintf(buf, 32, "group-%d.json", group);
        return buf;
}

static int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

static int write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t l = write(fd, s, n);
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += l;
                n -= (size_t) l;
        }
        return 0;
}

static bool holders_equal(const IovirtHolder *a, const IovirtHolder *b) {
        if (a->known != b->known)
                return false;
        return !a->known ||
               (a->uid == b->uid && a->pid == b->pid && a->pid_start == b->pid_start && a->memory == b->memory &&
                a->viommu == b->viommu && a->memlock == b->memlock && a->memlock_saved == b->memlock_saved &&
                (!a->memlock_saved || (a->memlock_soft == b->memlock_soft && a->memlock_hard == b->memlock_hard)));
}

/* Equal as load sees them: a NULL consumer is written as "" */
static bool records_equal(const IovirtRecord *a, const IovirtRecord *b) {
        if (a->group != b->group || a->phase != b->phase || a->since_usec != b->since_usec ||
            !streq_ptr(a->consumer ? a->consumer : "", b->consumer) || !streq_ptr(a->boot_id, b->boot_id) ||
            a->n_functions != b->n_functions || !holders_equal(&a->holder, &b->holder) ||
            a->node_given != b->node_given || a->libvirt_config != b->libvirt_config ||
            a->libvirt_attach != b->libvirt_attach ||
            (a->node_given && (a->node_uid != b->node_uid || a->node_old_uid != b->node_old_uid ||
                               a->node_old_gid != b->node_old_gid)))
                return false;
        for (size_t i = 0; i < a->n_functions; i++) {
                const IovirtFunctionRecord *x = &a->functions[i], *y = &b->functions[i];
                if (strcmp(x->address, y->address) != 0 || !streq_ptr(x->driver, y->driver) ||
                    !streq_ptr(x->driver_override, y->driver_override) || x->original_known != y->original_known ||
                    !streq_ptr(x->vfio_driver, y->vfio_driver))
                        return false;
        }
        return true;
}


/* Reads text back as load will, before it is written: it must be r.
 * -ENOMEM when memory ran out on the way; -EINVAL when r is not a record
 * load would take (no function, an address or consumer it refuses), which
 * written would only be set aside as damaged. */
static int check_reads_back(const char *text, size_t size, const IovirtRecord *r) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_(iovirt_record_freep) IovirtRecord *back = NULL;
        _cleanup_free_ char *reason = NULL;
        int k = iovirt_json_text_parse(text, size, &o, &reason);
        if (k >= 0)
                k = iovirt_record_from_json(o, &back, &reason);
        if (k == -ENOMEM)
                return k;
        return k >= 0 && records_equal(r, back) ? 0 : -EINVAL;
}

int iovirt_file_save_atomic(const char *dir, const char *name, const char *text, size_t size) {
        char path[PATH_MAX], tmp[PATH_MAX];
        int k;

        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path) ||
            snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        k = write_all(fd, text, size);
        if (k >= 0)
                k = write_all(fd, "\n", 1);
        if (k >= 0 && fchmod(fd, 0644) < 0)
                k = -errno;
        if (k >= 0 && fsync(fd) < 0)
                k = -errno;
        if (k >= 0 && rename(tmp, path) < 0)
                k = -errno;
        if (k < 0) {
                unlink(tmp);
                return k;
        }
        return fsync_dir(dir);
}

int iovirt_json_text(json_object *o, const char **ret, size_t *size) {
        /* json-c (0.16 at least) carries on past an append that failed and
         * returns the text without it: "driver": "" instead of the name.
         * errno is the only sign (nothing in its writer clears it); the
         * callers' reading the text back is the second. */
        errno = 0;
        const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED,
                                                             size);
        if (!text || errno == ENOMEM)
                return -ENOMEM;
        *ret = text;
        return 0;
}

int iovirt_record_save(const char *dir, const IovirtRecord *r) {
        char name[32];
        size_t size = 0;
        int k;

        record_name(name, r->group);
        _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(r);
        const char *text;
        if (!o)
                return -ENOMEM;
        k = iovirt_json_text(o, &text, &size);
        if (k >= 0)
                k = check_reads_back(text, size, r);
        if (k < 0)
                return k;
        return iovirt_file_save_atomic(dir, name, text, size);
}

/* What the operator can do about a state directory that could not be
 * written: the sentence that follows "...; nothing was changed" */
const char *iovirt_state_write_advice(int r) {
        switch (-r) {
        case ENOSPC:
        case EDQUOT:
                return ". Free space there, then call again";
        case EROFS:
                return ". It is on a read-only filesystem: remount it read-write, then call again";
        case EACCES:
        case EPERM:
                return ". iovirtd may not write there: check its owner and mode, then call again";
        default:
                return "";
        }
}

int iovirt_file_remove(const char *dir, const char *name) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        if (unlink(path) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync_dir(dir);
}

int iovirt_record_remove(const char *dir, int group) {
        char name[32];
        return iovirt_file_remove(dir, record_name(name, group));
}

IovirtState *iovirt_state_free(IovirtState *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_records; i++)
                iovirt_record_free(s->records[i]);
        for (size_t i = 0; i < s->n_problems; i++)
                free(s->problems[i]);
        free(s->records);
        free(s->problems);
        free(s->damaged_groups);
        free(s);
        return NULL;
}

IovirtRecord *iovirt_state_find(const IovirtState *s, int group) {
        for (size_t i = 0; i < s->n_records; i++)
                if (s->records[i]->group == group)
                        return s->records[i];
        return NULL;
}

int iovirt_state_put(IovirtState *s, IovirtRecord *r) {
        for (size_t i = 0; i < s->n_records; i++)
                if (s->records[i]->group == r->group) {
                        if (s->records[i] != r)
                                iovirt_record_free(s->records[i]);
                        s->records[i] = r;
                        return 0;
                }
        IovirtRecord **p = reallocarray(s->records, s->n_records + 1, sizeof(IovirtRecord *));
        if (!p)
                return -ENOMEM;
        s->records = p;
        s->records[s->n_records++] = r;
        return 0;
}

void iovirt_state_drop(IovirtState *s, int group) {
        for (size_t i = 0; i < s->n_records; i++)
                if (s->records[i]->group == group) {
                        iovirt_record_free(s->records[i]);
                        memmove(s->records + i, s->records + i + 1, (s->n_records - i - 1) * sizeof(IovirtRecord *));
                        s->n_records--;
                        return;
                }
}

/* A damaged record: what happened, and which group lost its record */
static int add_problem(IovirtState *s, int group, const char *text) {
        int *g = reallocarray(s->damaged_groups, s->n_damaged + 1, sizeof(int));
        if (!g)
                return -ENOMEM;
        s->damaged_groups = g;
        int r = iovirt_strv_pushf(&s->problems, &s->n_problems, "%s", text);
        if (r < 0)
                return r;
        g[s->n_damaged++] = group;
        return 0;
}

int iovirt_file_set_aside(const char *dir, const char *name, const char *why, char **problem) {
        char from[PATH_MAX], to[PATH_MAX];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(from, sizeof(from), "%s/%s", dir, name);
        snprintf(to, sizeof(to), "%s/%s.damaged-%lld", dir, name, (long long) ts.tv_sec);
        int l;
        if (rename(from, to) < 0)
                l = asprintf(problem, "%s is damaged (%s) and could not be set aside: %s", from, why, strerror(errno));
        else {
                (void) fsync_dir(dir);
                l = asprintf(problem, "%s is damaged (%s); it was kept as %s", from, why, to);
        }
        return l < 0 ? -ENOMEM : 0;
}

/* A record that cannot be used: keep the bytes aside for the operator. */
static int set_aside(IovirtState *s, const char *dir, const char *name, int group, const char *why) {
        _cleanup_free_ char *text = NULL;
        int k = iovirt_file_set_aside(dir, name, why, &text);
        return k < 0 ? k : add_problem(s, group, text);
}

/* The group a file name gives when it is a record's name: exactly what
 * record_name() gives, "group-N.json" with N in decimal without a sign or
 * a leading zero.  -1 for any other name, which is not a record and is left
 * alone: "group-007.json" read as group 7 would never be removed by
 * iovirt_record_remove(dir, 7), and would come back on every load. */
static int record_name_group(const char *name) {
        if (strncmp(name, "group-", 6) != 0)
                return -1;
        const char *p = name + 6;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 10 || (p[0] == '0' && digits > 1) || strcmp(p + digits, ".json") != 0)
                return -1;
        long long g = 0;
        for (size_t i = 0; i < digits; i++)
                g = g * 10 + (p[i] - '0');
        return g <= INT_MAX ? (int) g : -1;
}

static void json_tokener_freep(json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

/* What save writes: one JSON value, then nothing but whitespace.
 * json_tokener_parse() stops after the first value and never looks at the
 * rest.  *ret is NULL for JSON null (which iovirt_record_from_json()
 * refuses, saying so).  -EBADMSG with *reason when it is not that;
 * -ENOMEM when memory ran out, which says nothing about the text.
 *
 * json-c (0.16 at least) does not say when memory runs out while parsing:
 * a member it could not add is left out, a string it could not copy comes
 * out short or empty, the value can be NULL with "success", and a key it
 * could not copy crashes it further on.  What it cannot hide is errno,
 * which a failed allocation sets to ENOMEM, so the text is fed one
 * character at a time, errno checked after each, and nothing more fed once
 * an allocation failed.  A character is never enough to go from a failure
 * to the crash; and the tokener's only reset of errno (to 0, converting a
 * number on the character after its last digit) comes before what it
 * allocates for that character, except a duplocale() whose failure it
 * gets by without.  (A glibc malloc() that succeeds by mmap() after brk()
 * failed leaves ENOMEM too: then load says -ENOMEM, which is safe.) */
int iovirt_json_text_parse(const char *text, size_t size, json_object **ret, char **reason) {
        if (strspn(text, " \t\n\r") == size) {
                *reason = strdup("it is empty");
                return *reason ? -EBADMSG : -ENOMEM;
        }
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        _cleanup_(json_object_putp) json_object *o = NULL;
        enum json_tokener_error jerr = json_tokener_continue;
        size_t end = 0;
        /* the NUL after the text is given too: it ends a value at the end of
         * the text, as in json_tokener_parse() */
        for (size_t p = 0; p <= size && jerr == json_tokener_continue; p++) {
                errno = 0;
                o = json_tokener_parse_ex(tok, text + p, 1);
                if (errno == ENOMEM)
                        return -ENOMEM;
                jerr = json_tokener_get_error(tok);
                end = p + json_tokener_get_parse_end(tok);
        }
#if JSON_C_VERSION_NUM >= 0x001100
        if (jerr == json_tokener_error_memory)      /* json-c 0.17 says so itself, at times */
                return -ENOMEM;
#endif
        if (jerr != json_tokener_success) {
                if (asprintf(reason, "not JSON: %s",
                             jerr == json_tokener_continue ? "it ends too soon" : json_tokener_error_desc(jerr)) < 0)
                        return -ENOMEM;
                return -EBADMSG;
        }
        for (size_t p = end; p < size; p++)
                if (!strchr(" \t\n\r", text[p]) || text[p] == '\0') {
                        *reason = strdup("more follows the JSON value");
                        return *reason ? -EBADMSG : -ENOMEM;
                }
        *ret = TAKE_PTR(o);
        return 0;
}

int iovirt_state_load(const char *dir, IovirtState **ret) {
        _cleanup_(iovirt_state_freep) IovirtState *s = calloc(1, sizeof(IovirtState));
        int k;

        if (!s)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, ".group-", 7) == 0) {      /* an interrupted save */
                        unlinkat(dirfd(d), de->d_name, 0);
                        continue;
                }
                int group = record_name_group(de->d_name);
                if (group < 0)
                        continue;

                char path[PATH_MAX];
                _cleanup_free_ char *text = NULL, *reason = NULL;
                size_t size = 0;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                k = iovirt_read_file_sized(path, &text, &size);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        k = set_aside(s, dir, de->d_name, group, strerror(-k));
                        if (k < 0)
                                return k;
                        continue;
                }
                _cleanup_(json_object_putp) json_object *o = NULL;
                const char *why = NULL;
                IovirtRecord *r = NULL;
                k = iovirt_json_text_parse(text, size, &o, &reason);
                if (k == -ENOMEM)
                        return k;
                if (k >= 0) {
                        k = iovirt_record_from_json(o, &r, &reason);
                        if (k == -ENOMEM)
                                return k;
                }
                if (r && r->group != group) {
                        r = iovirt_record_free(r);
                        why = "its group does not match its name";
                }
                if (!r) {
                        k = set_aside(s, dir, de->d_name, group, why ? why : reason ? reason : "unreadable");
                        if (k < 0)
                                return k;
                        continue;
                }
                k = iovirt_state_put(s, r);
                if (k < 0) {
                        iovirt_record_free(r);
                        return k;
                }
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* Strict UTF-8 (no overlong forms, no surrogates); returns the sequence
 * length at p, 0 when it is not valid. */
static size_t utf8_char(const unsigned char *p, uint32_t *ret) {
        size_t n;
        uint32_t c, min;
        if (p[0] < 0x80)
                return *ret = p[0], 1;
        if ((p[0] & 0xe0) == 0xc0)
                n = 2, c = p[0] & 0x1f, min = 0x80;
        else if ((p[0] & 0xf0) == 0xe0)
                n = 3, c = p[0] & 0x0f, min = 0x800;
        else if ((p[0] & 0xf8) == 0xf0)
                n = 4, c = p[0] & 0x07, min = 0x10000;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *ret = c;
        return n;
}

bool iovirt_utf8_valid(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                uint32_t c;
                size_t l = utf8_char(p, &c);
                if (l == 0)
                        return false;
                p += l;
        }
        return true;
}

int iovirt_consumer_valid(const char *name, char **reason) {
        size_t n = name ? strlen(name) : 0;
        const char *why = NULL;
        if (n == 0)
                why = "The consumer name is empty; name the VM (its libvirt domain name or its id)";
        else if (n > IOVIRT_CONSUMER_MAX)
                why = "The consumer name is longer than " STRINGIFY(IOVIRT_CONSUMER_MAX) " bytes";
        else
                for (const unsigned char *p = (const unsigned char *) name; *p;) {
                        uint32_t c;
                        size_t l = utf8_char(p, &c);
                        if (l == 0) {
                                why = "The consumer name is not valid UTF-8";
                                break;
                        }
                        if (c < 0x20 || (c >= 0x7f && c < 0xa0)) {
                                why = "The consumer name contains a control character";
                                break;
                        }
                        p += l;
                }
        if (!why)
                return 0;
        if (reason)
                *reason = strdup(why);
        return -EINVAL;
}
