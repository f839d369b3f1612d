/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>

#include "iovirt-address.h"
#include "iovirt-policy.h"
#include "iovirt-sysfs.h"

/* libinih splits lines into sections and Key=Value pairs; this file reads
 * the text to libinih line by line (ini_parse_stream), which gives every
 * pair its line number without INI_HANDLER_LINENO (Debian's libinih is
 * built without it, and the handler's type must match the library's).
 * The reader also sees section headers, so that an empty or unknown
 * section is noticed, and keeps libinih's continuation rule (an indented
 * line continues the value above) to lists: an indented Key= or [Section]
 * line is handed over without its indentation. */

/* ---- names ---- */

static const char *const isolation_names[_IOVIRT_POLICY_ISOLATION_MAX] = {
        [IOVIRT_POLICY_ISOLATION_STRICT] = "strict",
        [IOVIRT_POLICY_ISOLATION_ACCEPT_LEAKY] = "accept-leaky",
};

static const char *const memory_cgroup_names[_IOVIRT_MEMORY_CGROUP_MAX] = {
        [IOVIRT_MEMORY_CGROUP_WARN] = "warn",
        [IOVIRT_MEMORY_CGROUP_REFUSE] = "refuse",
};

static const char *const selector_type_names[_IOVIRT_POOL_SELECTOR_TYPE_MAX] = {
        [IOVIRT_POOL_SELECTOR_ID] = "id",
        [IOVIRT_POOL_SELECTOR_CLASS] = "class",
        [IOVIRT_POOL_SELECTOR_ADDRESS] = "address",
        [IOVIRT_POOL_SELECTOR_PF_RANGE] = "pf-range",
        [IOVIRT_POOL_SELECTOR_DRIVER] = "driver",
};

const char *iovirt_policy_isolation_name(IovirtPolicyIsolation i) {
        return (unsigned) i < _IOVIRT_POLICY_ISOLATION_MAX ? isolation_names[i] : NULL;
}

const char *iovirt_memory_cgroup_mode_name(IovirtMemoryCgroupMode m) {
        return (unsigned) m < _IOVIRT_MEMORY_CGROUP_MAX ? memory_cgroup_names[m] : NULL;
}

const char *iovirt_pool_selector_type_name(IovirtPoolSelectorType t) {
        return (unsigned) t < _IOVIRT_POOL_SELECTOR_TYPE_MAX ? selector_type_names[t] : NULL;
}

/* ---- sizes ---- */

int iovirt_size_parse(const char *s, uint64_t *ret, const char **reason) {
        static const char units[] = "KMGTPE";
        const char *why = NULL;
        uint64_t v = 0;
        unsigned shift = 0;
        const char *p = s;

        if (!s || !*s) {
                why = "the size is empty";
                goto invalid;
        }
        if (!isdigit((unsigned char) *p)) {
                why = "a size is a whole number of bytes, or one with a unit: 4G, 4096M, 512K";
                goto invalid;
        }
        for (; isdigit((unsigned char) *p); p++) {
                unsigned d = (unsigned) (*p - '0');
                if (v > (UINT64_MAX - d) / 10) {
                        if (reason)
                                *reason = "the size is too large";
                        return -ERANGE;
                }
                v = v * 10 + d;
        }
        if (*p == '.' || *p == ',') {
                why = "a size must be a whole number: 1536M rather than 1.5G";
                goto invalid;
        }
        if (*p && strchr(units, *p)) {
                shift = 10 * (unsigned) (strchr(units, *p) - units + 1);
                p++;
                if (streq_ptr(p, "iB"))
                        p += 2;
        } else if (*p == 'B')
                p++;
        if (*p) {
                why = "unknown unit: use K, M, G, T, P or E (powers of 1024, optionally followed by iB), or bytes";
                goto invalid;
        }
        if (shift && v > (UINT64_MAX >> shift)) {
                if (reason)
                        *reason = "the size is too large";
                return -ERANGE;
        }
        *ret = v << shift;
        return 0;

invalid:
        if (reason)
                *reason = why;
        return -EINVAL;
}

int iovirt_percent_parse(const char *s, unsigned *ret_basis_points, const char **reason) {
        const char *why = NULL;
        unsigned whole = 0, frac = 0, n_frac = 0;
        const char *p = s;

        if (!s || !isdigit((unsigned char) *p)) {
                why = "a percentage is a number followed by %: 5%, 2.5%";
                goto invalid;
        }
        for (; isdigit((unsigned char) *p); p++) {
                whole = whole * 10 + (unsigned) (*p - '0');
                if (whole > 100) {
                        why = "a percentage must be below 100%";
                        goto invalid;
                }
        }
        if (*p == '.') {
                p++;
                for (; isdigit((unsigned char) *p); p++) {
                        if (++n_frac > 2) {
                                why = "a percentage takes at most two decimals";
                                goto invalid;
                        }
                        frac = frac * 10 + (unsigned) (*p - '0');
                }
                if (n_frac == 0) {
                        why = "a digit must follow the decimal point";
                        goto invalid;
                }
                if (n_frac == 1)
                        frac *= 10;
        }
        if (!streq_ptr(p, "%")) {
                why = "a percentage is a number followed by %: 5%, 2.5%";
                goto invalid;
        }
        unsigned bp = whole * 100 + frac;
        if (bp == 0) {
                why = "a percentage must be above 0%";
                goto invalid;
        }
        if (bp >= 10000) {
                why = "a percentage must be below 100%";
                goto invalid;
        }
        *ret_basis_points = bp;
        return 0;

invalid:
        if (reason)
                *reason = why;
        return -EINVAL;
}

/* ---- the model ---- */

static void selector_clear(IovirtPoolSelector *s) {
        free(s->text);
        free(s->pattern);
}

static void ids_free(IovirtPolicyId *ids, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(ids[i].name);
        free(ids);
}

static void pool_clear(IovirtPolicyPool *pool) {
        free(pool->name);
        for (size_t i = 0; i < pool->n_selectors; i++)
                selector_clear(&pool->selectors[i]);
        free(pool->selectors);
        for (size_t i = 0; i < pool->n_consumers; i++)
                free(pool->consumers[i]);
        free(pool->consumers);
        ids_free(pool->users, pool->n_users);
        ids_free(pool->groups, pool->n_groups);
}

IovirtPolicy *iovirt_policy_free(IovirtPolicy *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_files; i++) {
                free(p->files[i].path);
                free(p->files[i].overrides);
        }
        free(p->files);
        for (size_t i = 0; i < p->n_pools; i++)
                pool_clear(&p->pools[i]);
        free(p->pools);
        for (size_t i = 0; i < p->n_warnings; i++)
                free(p->warnings[i]);
        free(p->warnings);
        return mfree(p);
}

IovirtPolicy *iovirt_policy_new(void) {
        IovirtPolicy *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->reserve = (IovirtPolicyReserve) {
                .percent = true,
                .basis_points = IOVIRT_POLICY_RESERVE_DEFAULT_BASIS_POINTS,
        };
        p->memory_cgroup = IOVIRT_MEMORY_CGROUP_WARN;
        p->watch_process_exit = true;
        p->numa_default_policy = IOVIRT_NUMA_LEGACY;
        p->numa_allow_policy_choice = true;
        return p;
}

IovirtNumaPolicy iovirt_policy_pool_numa_policy(const IovirtPolicy *p, const IovirtPolicyPool *pool,
                                                IovirtPolicyOrigin *ret_origin) {
        bool own = pool && iovirt_policy_origin_set(pool->numa_policy_origin);
        if (ret_origin)
                *ret_origin = own ? pool->numa_policy_origin : p->numa_default_policy_origin;
        return own ? pool->numa_policy : p->numa_default_policy;
}

bool iovirt_policy_pool_allow_numa_choice(const IovirtPolicy *p, const IovirtPolicyPool *pool,
                                          IovirtPolicyOrigin *ret_origin) {
        bool own = pool && iovirt_policy_origin_set(pool->allow_numa_policy_choice_origin);
        if (ret_origin)
                *ret_origin = own ? pool->allow_numa_policy_choice_origin : p->numa_allow_policy_choice_origin;
        return own ? pool->allow_numa_policy_choice : p->numa_allow_policy_choice;
}

uint64_t iovirt_policy_reserve_bytes(const IovirtPolicy *p, uint64_t mem_total) {
        if (!p->reserve.percent)
                return p->reserve.bytes;
        /* mem_total / 10000 * bp + remainder, without overflowing 64 bits */
        uint64_t r = mem_total / 10000 * p->reserve.basis_points +
                     mem_total % 10000 * p->reserve.basis_points / 10000;
        if (!iovirt_policy_origin_set(p->reserve_origin) && r < IOVIRT_POLICY_RESERVE_MIN_DEFAULT)
                r = IOVIRT_POLICY_RESERVE_MIN_DEFAULT;
        return r;
}

const IovirtPolicyPool *iovirt_policy_find_pool(const IovirtPolicy *p, const char *name) {
        for (size_t i = 0; i < p->n_pools; i++)
                if (streq_ptr(p->pools[i].name, name))
                        return &p->pools[i];
        return NULL;
}

/* ---- the parser ---- */

typedef enum SectionKind {
        SECTION_NONE,          /* before the first header */
        SECTION_POOL,
        SECTION_MEMORY,
        SECTION_CONSUMERS,
        SECTION_NUMA,
        SECTION_BROKEN,        /* a header libinih refuses: its error is reported */
} SectionKind;

typedef struct Parser Parser;
typedef struct KeyDef KeyDef;

/* Parses value (one line of it: continuation says it continues the key
 * above) into the setting; returns 0 or fails the parser. */
typedef int (*KeyParse)(Parser *c, const KeyDef *k, void *base, const char *value);

struct KeyDef {
        SectionKind section;
        const char *name;
        bool list;
        size_t origin_offset;   /* of the IovirtPolicyOrigin in the pool or the policy */
        KeyParse parse;
};

struct Parser {
        IovirtPolicy *p;        /* this file's own, merged when the whole file is good */
        const char *path;
        const char *text;       /* what the reader has not read yet */
        unsigned line;
        char raw[256];          /* the current line, trimmed, for messages */
        bool indented;          /* libinih gets the current line indented */
        bool key_in_section;    /* libinih continues indented lines (its prev_name) */
        SectionKind section;
        char section_name[128];
        unsigned section_line;
        size_t pool;            /* SECTION_POOL: index in p->pools */
        const KeyDef *last_key; /* continued by indented lines; NULL after an unknown key */
        int r;                  /* the first error */
        unsigned error_line;
        char *error;
};

_printf_(3, 4)
static int fail_at(Parser *c, unsigned line, const char *fmt, ...) {
        if (c->r < 0)
                return 0;
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (l < 0)
                msg = NULL;
        c->error_line = line;
        if (l < 0 || asprintf(&c->error, "%s:%u: %s", c->path, line, msg) < 0) {
                c->error = NULL;
                c->r = -ENOMEM;
        } else
                c->r = -EINVAL;
        return 0;     /* a libinih handler's "error" */
}

#define fail(c, ...) fail_at((c), (c)->line, __VA_ARGS__)

static int oom(Parser *c) {
        if (c->r >= 0) {
                c->r = -ENOMEM;
                c->error_line = c->line;
        }
        return 0;
}

static IovirtPolicyPool *current_pool(Parser *c) {
        return &c->p->pools[c->pool];
}

static IovirtPolicyOrigin here(Parser *c) {
        return (IovirtPolicyOrigin) { .file = c->path, .line = c->line };
}

/* Splits a list value at whitespace and commas; calls fn for each word. */
static int for_each_word(Parser *c, const char *value, int (*fn)(Parser *c, void *base, const char *word),
                         void *base) {
        while (*value && c->r >= 0) {
                value += strspn(value, " \t,");
                size_t l = strcspn(value, " \t,");
                if (l == 0)
                        break;
                _cleanup_free_ char *w = strndup(value, l);
                if (!w)
                        return oom(c);
                fn(c, base, w);
                value += l;
        }
        return c->r >= 0;
}

static void allowed_list(char *buf, size_t size, const char *const *names, size_t n) {
        size_t o = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && o < size; i++)
                o += (size_t) snprintf(buf + o, size - o, "%s%s", i ? ", " : "", names[i]);
}

static int parse_enum(Parser *c, const KeyDef *k, const char *value, const char *const *names, size_t n,
                      int *ret) {
        for (size_t i = 0; i < n; i++)
                if (streq_ptr(value, names[i])) {
                        *ret = (int) i;
                        return 1;
                }
        char allowed[256];
        allowed_list(allowed, sizeof(allowed), names, n);
        if (!*value)
                return fail(c, "%s= is empty; allowed: %s", k->name, allowed);
        return fail(c, "'%s' is not a valid %s=; allowed: %s", value, k->name, allowed);
}

static int parse_bool(Parser *c, const KeyDef *k, const char *value, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(value, yes[i]) == 0) {
                        *ret = true;
                        return 1;
                }
                if (strcasecmp(value, no[i]) == 0) {
                        *ret = false;
                        return 1;
                }
        }
        if (!*value)
                return fail(c, "%s= is empty; allowed: yes, no", k->name);
        return fail(c, "'%s' is not a valid %s=; allowed: yes, no (or true/false, on/off, 1/0)", value, k->name);
}

/* -- selectors -- */

static const struct {
        const char *name;
        uint32_t value, mask;
} class_names[] = {
        { "storage",     0x010000, 0xff0000 },
        { "nvme",        0x010802, 0xffffff },
        { "net",         0x020000, 0xff0000 },
        { "display",     0x030000, 0xff0000 },
        { "multimedia",  0x040000, 0xff0000 },
        { "usb",         0x0c0300, 0xffff00 },
        { "crypto",      0x100000, 0xff0000 },
        { "accelerator", 0x120000, 0xff0000 },
};

static bool all_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (iovirt_hex_digit(s[i]) < 0)
                        return false;
        return true;
}

static uint32_t hex_value(const char *s, size_t n) {
        uint32_t v = 0;
        for (size_t i = 0; i < n; i++)
                v = v << 4 | (uint32_t) iovirt_hex_digit(s[i]);
        return v;
}

static bool valid_ifname(const char *s, size_t n) {
        if (n == 0 || n >= 16 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '/' || s[i] == ':' || isspace((unsigned char) s[i]) || !isprint((unsigned char) s[i]))
                        return false;
        return true;
}

static int parse_vf_index(const char *s, size_t n, unsigned *ret) {
        if (n == 0 || n > 5 || strspn(s, "0123456789") < n)
                return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (unsigned) (s[i] - '0');
        if (v > 65535)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* Fills s (text excepted) from word; returns a static sentence on error. */
static const char *selector_parse(const char *word, IovirtPoolSelector *s) {
        const char *why = NULL;

        if (strncmp(word, "class=", 6) == 0) {
                const char *v = word + 6;
                s->type = IOVIRT_POOL_SELECTOR_CLASS;
                for (size_t i = 0; i < ELEMENTSOF(class_names); i++)
                        if (streq_ptr(v, class_names[i].name)) {
                                s->class_value = class_names[i].value;
                                s->class_mask = class_names[i].mask;
                                return NULL;
                        }
                if (strncmp(v, "0x", 2) == 0 || strncmp(v, "0X", 2) == 0)
                        v += 2;
                size_t n = strlen(v);
                if ((n != 2 && n != 4 && n != 6) || !all_hex(v, n))
                        return "class= takes 2, 4 or 6 hex digits (class=0x02, class=0x0200, class=0x010802) "
                               "or a name: storage, nvme, net, display, multimedia, usb, crypto, accelerator";
                unsigned shift = (unsigned) (6 - n) * 4;
                s->class_value = hex_value(v, n) << shift;
                s->class_mask = (0xffffffu << shift) & 0xffffff;
                return NULL;
        }

        if (strncmp(word, "driver=", 7) == 0) {
                const char *v = word + 7;
                s->type = IOVIRT_POOL_SELECTOR_DRIVER;
                size_t n = strlen(v);
                if (n == 0 || n > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") < n)
                        return "driver= takes a kernel driver's name (letters, digits, '_' and '-')";
                s->pattern = strdup(v);
                return s->pattern ? NULL : "out of memory";
        }

        const char *hash = strchr(word, '#');
        if (hash) {
                s->type = IOVIRT_POOL_SELECTOR_PF_RANGE;
                size_t n = (size_t) (hash - word);
                const char *range = hash + 1, *dash = strchr(range, '-');
                if (memchr(word, ':', n)) {
                        IovirtAddress a;
                        char buf[IOVIRT_ADDRESS_MAX];
                        _cleanup_free_ char *addr = strndup(word, n);
                        if (!addr)
                                return "out of memory";
                        if (iovirt_address_parse(addr, &a, &why) < 0)
                                return "the PF before '#' is not a valid PCI address";
                        s->pattern = strdup(iovirt_address_format(&a, buf));
                } else if (valid_ifname(word, n))
                        s->pattern = strndup(word, n);
                else
                        return "the PF before '#' must be a network interface name or a PCI address (enp5s0f0#0-7)";
                if (!s->pattern)
                        return "out of memory";
                int r = dash ? parse_vf_index(range, (size_t) (dash - range), &s->vf_first)
                             : parse_vf_index(range, strlen(range), &s->vf_first);
                if (r >= 0 && dash)
                        r = parse_vf_index(dash + 1, strlen(dash + 1), &s->vf_last);
                else if (r >= 0)
                        s->vf_last = s->vf_first;
                if (r == -ERANGE)
                        return "a VF index is at most 65535";
                if (r < 0)
                        return "'#' is followed by a VF index or a range of them: #3 or #0-7";
                if (s->vf_first > s->vf_last)
                        return "the range's first VF is above its last";
                return NULL;
        }

        size_t n = strlen(word);
        if (n == 9 && word[4] == ':' && all_hex(word, 4) && all_hex(word + 5, 4)) {
                s->type = IOVIRT_POOL_SELECTOR_ID;
                s->vendor = (uint16_t) hex_value(word, 4);
                s->device = (uint16_t) hex_value(word + 5, 4);
                return NULL;
        }
        if (n == 6 && word[4] == ':' && word[5] == '*' && all_hex(word, 4)) {
                s->type = IOVIRT_POOL_SELECTOR_ID;
                s->vendor = (uint16_t) hex_value(word, 4);
                s->any_device = true;
                return NULL;
        }

        size_t colons = 0;
        for (const char *q = word; *q; q++)
                colons += *q == ':';
        if (colons == 1 && n >= 5 && word[4] == ':' && all_hex(word, 4) && !strpbrk(word, ".*?["))
                return "vendor:device takes 4 hex digits on each side (8086:154c), or * for any device (8086:*)";

        if (colons > 0) {
                s->type = IOVIRT_POOL_SELECTOR_ADDRESS;
                if (strspn(word, "0123456789abcdefABCDEF:.*?[]!-") < n)
                        return "an address glob holds hex digits, ':', '.', and the glob characters * ? [ ] ! -";
                if (!strpbrk(word, "*?[")) {
                        IovirtAddress a;
                        char buf[IOVIRT_ADDRESS_MAX];
                        if (iovirt_address_parse(word, &a, &why) < 0)
                                return why ? why : "not a valid PCI address";
                        s->pattern = strdup(iovirt_address_format(&a, buf));
                        return s->pattern ? NULL : "out of memory";
                }
                if (colons > 2)
                        return "an address has at most two ':' (0000:81:00.*)";
                if (asprintf(&s->pattern, "%s%s", colons == 1 ? "0000:" : "", word) < 0) {
                        s->pattern = NULL;
                        return "out of memory";
                }
                for (char *q = s->pattern; *q; q++)
                        *q = (char) tolower((unsigned char) *q);
                return NULL;
        }

        return "a selector is vendor:device (8086:154c, 8086:*), class=0x0200 or class=net, "
               "an address or a glob of one (0000:81:*), PF#first-last (enp5s0f0#0-7) or driver=NAME";
}

static int add_selector(Parser *c, void *base, const char *word) {
        IovirtPolicyPool *pool = base;
        IovirtPoolSelector s = {};
        const char *why = selector_parse(word, &s);
        if (why) {
                selector_clear(&s);
                if (streq_ptr(why, "out of memory"))
                        return oom(c);
                return fail(c, "'%s' is not a valid device selector: %s", word, why);
        }
        for (size_t i = 0; i < pool->n_selectors; i++)
                if (streq_ptr(pool->selectors[i].text, word)) {
                        selector_clear(&s);
                        return fail(c, "the selector '%s' is listed twice", word);
                }
        s.text = strdup(word);
        IovirtPoolSelector *e = s.text ? GROW(pool->selectors, pool->n_selectors, pool->allocated_selectors) : NULL;
        if (!e) {
                selector_clear(&s);
                return oom(c);
        }
        *e = s;
        return 1;
}

static int parse_devices(Parser *c, const KeyDef *k, void *base, const char *value) {
        return for_each_word(c, value, add_selector, base);
}

static int add_consumer(Parser *c, void *base, const char *word) {
        IovirtPolicyPool *pool = base;
        for (const char *q = word; *q; q++)
                if (!isprint((unsigned char) *q))
                        return fail(c, "the consumer pattern '%s' holds a control character", word);
        if (iovirt_strv_pushf(&pool->consumers, &pool->n_consumers, "%s", word) < 0)
                return oom(c);
        return 1;
}

static int parse_consumers(Parser *c, const KeyDef *k, void *base, const char *value) {
        return for_each_word(c, value, add_consumer, base);
}

static int parse_id(Parser *c, const char *what, const char *word, IovirtPolicyId *ret) {
        size_t n = strlen(word);
        if (strspn(word, "0123456789") == n) {
                errno = 0;
                char *end;
                unsigned long long v = strtoull(word, &end, 10);
                if (errno == ERANGE || v >= UINT32_MAX || n > 10)
                        return fail(c, "'%s' is not a valid %s id (0 to 4294967294)", word, what);
                *ret = (IovirtPolicyId) { .id = (uint32_t) v };
                return 1;
        }
        bool ok = n > 0 && n <= 256 && (isalpha((unsigned char) word[0]) || word[0] == '_');
        for (size_t i = 1; ok && i < n; i++)
                ok = isalnum((unsigned char) word[i]) || strchr("_.-", word[i]) ||
                     (word[i] == '$' && i == n - 1);
        if (!ok)
                return fail(c, "'%s' is not a valid %s name or number", word, what);
        *ret = (IovirtPolicyId) { .name = strdup(word) };
        return ret->name ? 1 : oom(c);
}

static int add_id(Parser *c, IovirtPolicyId **ids, size_t *n, size_t *allocated, const char *what,
                  const char *word) {
        IovirtPolicyId id;
        if (parse_id(c, what, word, &id) <= 0)
                return 0;
        for (size_t i = 0; i < *n; i++)
                if (streq_ptr((*ids)[i].name, id.name) && (id.name || (*ids)[i].id == id.id)) {
                        free(id.name);
                        return fail(c, "the %s '%s' is listed twice", what, word);
                }
        IovirtPolicyId *e = iovirt_grow((void **) ids, n, allocated, sizeof(**ids));
        if (!e) {
                free(id.name);
                return oom(c);
        }
        *e = id;
        return 1;
}

static int add_user(Parser *c, void *base, const char *word) {
        IovirtPolicyPool *pool = base;
        return add_id(c, &pool->users, &pool->n_users, &pool->allocated_users, "user", word);
}

static int add_group(Parser *c, void *base, const char *word) {
        IovirtPolicyPool *pool = base;
        return add_id(c, &pool->groups, &pool->n_groups, &pool->allocated_groups, "group", word);
}

static int parse_users(Parser *c, const KeyDef *k, void *base, const char *value) {
        return for_each_word(c, value, add_user, base);
}

static int parse_groups(Parser *c, const KeyDef *k, void *base, const char *value) {
        return for_each_word(c, value, add_group, base);
}

static int parse_isolation(Parser *c, const KeyDef *k, void *base, const char *value) {
        int v;
        if (parse_enum(c, k, value, isolation_names, _IOVIRT_POLICY_ISOLATION_MAX, &v) <= 0)
                return 0;
        ((IovirtPolicyPool *) base)->isolation = (IovirtPolicyIsolation) v;
        return 1;
}

static int parse_numa_policy(Parser *c, const KeyDef *k, void *base, const char *value) {
        int v;
        if (parse_enum(c, k, value, iovirt_numa_policy_names, _IOVIRT_NUMA_POLICY_MAX, &v) <= 0)
                return 0;
        if (k->section == SECTION_POOL)
                ((IovirtPolicyPool *) base)->numa_policy = (IovirtNumaPolicy) v;
        else
                ((IovirtPolicy *) base)->numa_default_policy = (IovirtNumaPolicy) v;
        return 1;
}

static int parse_allow_choice(Parser *c, const KeyDef *k, void *base, const char *value) {
        bool v;
        if (parse_bool(c, k, value, &v) <= 0)
                return 0;
        if (k->section == SECTION_POOL)
                ((IovirtPolicyPool *) base)->allow_numa_policy_choice = v;
        else
                ((IovirtPolicy *) base)->numa_allow_policy_choice = v;
        return 1;
}

static int parse_size_value(Parser *c, const KeyDef *k, const char *value, uint64_t *ret) {
        const char *why = NULL;
        int r = iovirt_size_parse(value, ret, &why);
        if (r < 0)
                return fail(c, "'%s' is not a valid %s=: %s", value, k->name, why);
        return 1;
}

static int parse_memlock(Parser *c, const KeyDef *k, void *base, const char *value) {
        uint64_t v;
        if (parse_size_value(c, k, value, &v) <= 0)
                return 0;
        if (v == 0)
                return fail(c, "MemlockHardLimit=0 would let the guest pin nothing; "
                            "leave it out to use libvirt's rule (guest memory x factor + 1G)");
        ((IovirtPolicyPool *) base)->memlock_hard_limit = v;
        return 1;
}

static int parse_guest_memory(Parser *c, const KeyDef *k, void *base, const char *value) {
        uint64_t v;
        if (parse_size_value(c, k, value, &v) <= 0)
                return 0;
        if (v == 0)
                return fail(c, "Memory=0 is no guest; give the guest memory of the pool's consumers (4G), "
                            "or leave it out to take it from each request's --memory");
        ((IovirtPolicyPool *) base)->guest_memory = v;
        return 1;
}

static int parse_reserve(Parser *c, const KeyDef *k, void *base, const char *value) {
        IovirtPolicy *p = base;
        size_t n = strlen(value);
        if (n > 0 && value[n - 1] == '%') {
                const char *why = NULL;
                unsigned bp;
                if (iovirt_percent_parse(value, &bp, &why) < 0)
                        return fail(c, "'%s' is not a valid Reserve=: %s", value, why);
                p->reserve = (IovirtPolicyReserve) { .percent = true, .basis_points = bp };
                return 1;
        }
        uint64_t v;
        if (parse_size_value(c, k, value, &v) <= 0)
                return 0;
        if (v == 0)
                return fail(c, "Reserve=0 would let pinned memory take all of the host's; "
                            "give a size (2G) or a share of MemTotal (5%%)");
        p->reserve = (IovirtPolicyReserve) { .bytes = v };
        return 1;
}

static int parse_memory_cgroup(Parser *c, const KeyDef *k, void *base, const char *value) {
        int v;
        if (parse_enum(c, k, value, memory_cgroup_names, _IOVIRT_MEMORY_CGROUP_MAX, &v) <= 0)
                return 0;
        ((IovirtPolicy *) base)->memory_cgroup = (IovirtMemoryCgroupMode) v;
        return 1;
}

static int parse_watch(Parser *c, const KeyDef *k, void *base, const char *value) {
        return parse_bool(c, k, value, &((IovirtPolicy *) base)->watch_process_exit);
}

#define POOL_KEY(n, l, field, fn) { SECTION_POOL, n, l, offsetof(IovirtPolicyPool, field), fn }
#define GLOBAL_KEY(s, n, field, fn) { s, n, false, offsetof(IovirtPolicy, field), fn }

static const KeyDef keys[] = {
        POOL_KEY("Devices", true, devices_origin, parse_devices),
        POOL_KEY("Consumers", true, consumers_origin, parse_consumers),
        POOL_KEY("Users", true, users_origin, parse_users),
        POOL_KEY("Groups", true, groups_origin, parse_groups),
        POOL_KEY("Isolation", false, isolation_origin, parse_isolation),
        POOL_KEY("NumaPolicy", false, numa_policy_origin, parse_numa_policy),
        POOL_KEY("AllowNumaPolicyChoice", false, allow_numa_policy_choice_origin, parse_allow_choice),
        POOL_KEY("MemlockHardLimit", false, memlock_hard_limit_origin, parse_memlock),
        POOL_KEY("Memory", false, guest_memory_origin, parse_guest_memory),
        GLOBAL_KEY(SECTION_MEMORY, "Reserve", reserve_origin, parse_reserve),
        GLOBAL_KEY(SECTION_MEMORY, "MemoryCgroup", memory_cgroup_origin, parse_memory_cgroup),
        GLOBAL_KEY(SECTION_CONSUMERS, "WatchProcessExit", watch_process_exit_origin, parse_watch),
        GLOBAL_KEY(SECTION_NUMA, "DefaultPolicy", numa_default_policy_origin, parse_numa_policy),
        GLOBAL_KEY(SECTION_NUMA, "AllowPolicyChoice", numa_allow_policy_choice_origin, parse_allow_choice),
};

static const char *section_display(Parser *c) {
        return c->section_name;
}

static bool valid_key_name(const char *s) {
        if (!isalpha((unsigned char) *s))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s))
                        return false;
        return true;
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        Parser *c = userdata;
        if (c->r < 0 || c->section == SECTION_BROKEN)
                return c->r >= 0;

        bool continuation = c->indented && c->key_in_section;
        const KeyDef *k = NULL;
        if (continuation) {
                k = c->last_key;
                if (!k)
                        return 1;    /* continues an unknown key: warned about already */
                if (!k->list)
                        return fail(c, "%s= takes one value, and this indented line would continue it; "
                                    "start keys at the beginning of a line", k->name);
        } else {
                c->key_in_section = true;
                c->last_key = NULL;
                if (!valid_key_name(name))
                        return fail(c, "expected Key=Value, found '%s' (a list continues on indented lines)",
                                    c->raw);
                if (c->section == SECTION_NONE)
                        return fail(c, "%s= is outside of any section; it belongs under "
                                    "[Pool NAME], [Memory], [Consumers] or [Numa]", name);
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (keys[i].section == c->section && streq_ptr(keys[i].name, name)) {
                                k = &keys[i];
                                break;
                        }
                if (!k) {
                        const char *hint = NULL;
                        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                                if (keys[i].section == c->section && strcasecmp(keys[i].name, name) == 0)
                                        hint = keys[i].name;
                        int r = iovirt_strv_pushf(&c->p->warnings, &c->p->n_warnings,
                                                  "%s:%u: unknown key '%s' in [%s], ignored%s%s%s",
                                                  c->path, c->line, name, section_display(c),
                                                  hint ? " (did you mean '" : "", strempty(hint),
                                                  hint ? "='?)" : "");
                        return r < 0 ? oom(c) : 1;
                }
        }

        void *base = c->section == SECTION_POOL ? (void *) current_pool(c) : (void *) c->p;
        IovirtPolicyOrigin *origin = (IovirtPolicyOrigin *) ((char *) base + k->origin_offset);
        if (!continuation) {
                if (iovirt_policy_origin_set(*origin))
                        return fail(c, "%s= is given twice in [%s] (first at line %u)", k->name,
                                    section_display(c), origin->line);
                *origin = here(c);
                c->last_key = k;
        }
        if (k->list) {
                /* libinih strips " ;comment" from key lines only */
                _cleanup_free_ char *v = continuation ? strdup(value) : NULL;
                if (continuation) {
                        if (!v)
                                return oom(c);
                        for (char *q = v; *q; q++)
                                if (*q == ';' && (q == v || isspace((unsigned char) q[-1]))) {
                                        *q = '\0';
                                        break;
                                }
                        value = v;
                }
                k->parse(c, k, base, value);
                return c->r >= 0;
        }
        return k->parse(c, k, base, value) > 0;
}

static bool valid_pool_name(const char *s) {
        size_t n = strlen(s);
        return n > 0 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* At the end of a section: what it must hold. */
static void section_end(Parser *c) {
        if (c->r < 0 || c->section != SECTION_POOL)
                return;
        IovirtPolicyPool *pool = current_pool(c);
        if (!iovirt_policy_origin_set(pool->devices_origin))
                fail_at(c, pool->origin.line, "pool '%s' has no Devices=: a pool selects devices", pool->name);
        else if (pool->n_selectors == 0)
                fail_at(c, pool->devices_origin.line, "Devices= lists no selector");
        else if (iovirt_policy_origin_set(pool->consumers_origin) && pool->n_consumers == 0)
                fail_at(c, pool->consumers_origin.line, "Consumers= lists no pattern; leave it out for any consumer");
        else if (iovirt_policy_origin_set(pool->users_origin) && pool->n_users == 0)
                fail_at(c, pool->users_origin.line, "Users= lists no user");
        else if (iovirt_policy_origin_set(pool->groups_origin) && pool->n_groups == 0)
                fail_at(c, pool->groups_origin.line, "Groups= lists no group");
}

static const char *const section_names[] = { "Memory", "Consumers", "Numa", "Pool" };

/* A header line, already without indentation: "[Name] ; comment". */
static void section_begin(Parser *c, const char *t, size_t len) {
        const char *close = memchr(t, ']', len);
        section_end(c);
        c->key_in_section = false;
        c->last_key = NULL;
        if (!close) {
                c->section = SECTION_BROKEN;     /* libinih reports it */
                return;
        }
        const char *after = close + 1;
        after += strspn(after, " \t\r");
        if (after < t + len && *after != ';' && *after != '#')
                return (void) fail(c, "unexpected text after the section header");

        const char *s = t + 1;
        size_t n = (size_t) (close - s);
        while (n > 0 && isspace((unsigned char) *s))
                s++, n--;
        while (n > 0 && isspace((unsigned char) s[n - 1]))
                n--;
        if (n >= sizeof(c->section_name))
                return (void) fail(c, "the section name is too long");
        memcpy(c->section_name, s, n);
        c->section_name[n] = '\0';
        c->section_line = c->line;

        if (streq_ptr(c->section_name, "Memory"))
                c->section = SECTION_MEMORY;
        else if (streq_ptr(c->section_name, "Consumers"))
                c->section = SECTION_CONSUMERS;
        else if (streq_ptr(c->section_name, "Numa"))
                c->section = SECTION_NUMA;
        else if (strncmp(c->section_name, "Pool", 4) == 0 &&
                 (c->section_name[4] == '\0' || isspace((unsigned char) c->section_name[4]))) {
                const char *name = c->section_name + 4;
                name += strspn(name, " \t");
                if (!*name)
                        return (void) fail(c, "[Pool] needs a name: [Pool NAME]");
                if (!valid_pool_name(name))
                        return (void) fail(c, "'%s' is not a valid pool name (letters, digits, '_', '.' and '-', "
                                           "at most 64)", name);
                const IovirtPolicyPool *other = iovirt_policy_find_pool(c->p, name);
                if (other)
                        return (void) fail(c, "pool '%s' is already defined at line %u", name, other->origin.line);
                IovirtPolicyPool *pool = GROW(c->p->pools, c->p->n_pools, c->p->allocated_pools);
                if (!pool)
                        return (void) oom(c);
                pool->name = strdup(name);
                if (!pool->name) {
                        c->p->n_pools--;
                        return (void) oom(c);
                }
                pool->origin = here(c);
                pool->isolation = IOVIRT_POLICY_ISOLATION_STRICT;
                c->pool = c->p->n_pools - 1;
                c->section = SECTION_POOL;
        } else {
                const char *hint = NULL;
                for (size_t i = 0; i < ELEMENTSOF(section_names); i++)
                        if (strncasecmp(c->section_name, section_names[i], strlen(section_names[i])) == 0)
                                hint = section_names[i];
                c->section = SECTION_BROKEN;
                fail(c, "unknown section [%s]; allowed: [Pool NAME], [Memory], [Consumers], [Numa]%s%s%s",
                     c->section_name, hint ? " (did you mean [" : "", strempty(hint),
                     hint && streq_ptr(hint, "Pool") ? " NAME]?)" : hint ? "]?)" : "");
        }
}

/* A key line: "Key =" with Key of letters and digits, starting upper case. */
static bool looks_like_key(const char *t, size_t len) {
        size_t i = 0;
        if (len == 0 || !isupper((unsigned char) t[0]))
                return false;
        while (i < len && isalnum((unsigned char) t[i]))
                i++;
        while (i < len && (t[i] == ' ' || t[i] == '\t'))
                i++;
        return i < len && t[i] == '=';
}

static char *reader(char *buf, int size, void *userdata) {
        Parser *c = userdata;
        if (c->r < 0 || !*c->text)
                return NULL;

        const char *s = c->text;
        size_t len = strcspn(s, "\n");
        bool nl = s[len] == '\n';
        c->text += len + nl;
        c->line++;
        if (c->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0 && len >= 3)
                s += 3, len -= 3;

        size_t ws = 0;
        while (ws < len && (s[ws] == ' ' || s[ws] == '\t'))
                ws++;
        const char *t = s + ws;
        size_t tl = len - ws;
        while (tl > 0 && isspace((unsigned char) t[tl - 1]))
                tl--;
        snprintf(c->raw, sizeof(c->raw), "%.*s", (int) tl, t);

        bool header = tl > 0 && *t == '[';
        if (ws > 0 && (header || looks_like_key(t, tl))) {
                s = t;
                len -= ws;
                ws = 0;
        }
        c->indented = ws > 0 && tl > 0;

        if (size < 3 || len + 2 > (size_t) size) {
                fail(c, "the line is longer than %d characters; continue a list on indented lines", size - 2);
                return NULL;
        }
        memcpy(buf, s, len);
        buf[len] = '\n';
        buf[len + 1] = '\0';

        if (header)
                section_begin(c, t, tl);
        return c->r < 0 ? NULL : buf;
}

/* ---- files ---- */

static int ensure(void **array, size_t *allocated, size_t need, size_t size) {
        if (need <= *allocated)
                return 0;
        void *a = reallocarray(*array, need, size);
        if (!a)
                return -ENOMEM;
        *array = a;
        *allocated = need;
        return 0;
}

#define SET_ORIGIN(dst, src, field, ofield)                                    \
        do {                                                                   \
                if (iovirt_policy_origin_set((src)->ofield)) {                 \
                        (dst)->field = (src)->field;                           \
                        (dst)->ofield = (src)->ofield;                         \
                }                                                              \
        } while (0)

/* Moves the good file f into p; p is unchanged on error. */
static int merge(IovirtPolicy *p, IovirtPolicy *f, char **error) {
        for (size_t i = 0; i < f->n_pools; i++) {
                const IovirtPolicyPool *other = iovirt_policy_find_pool(p, f->pools[i].name);
                if (other)
                        return iovirt_set_reason(error, -EINVAL, "%s:%u: pool '%s' is already defined at %s:%u",
                                                 f->pools[i].origin.file, f->pools[i].origin.line,
                                                 f->pools[i].name, other->origin.file, other->origin.line);
        }
        size_t allocated_warnings = p->n_warnings;
        if (ensure((void **) &p->files, &p->allocated_files, p->n_files + f->n_files, sizeof(*p->files)) < 0 ||
            ensure((void **) &p->pools, &p->allocated_pools, p->n_pools + f->n_pools, sizeof(*p->pools)) < 0 ||
            ensure((void **) &p->warnings, &allocated_warnings, p->n_warnings + f->n_warnings,
                   sizeof(*p->warnings)) < 0)
                return -ENOMEM;

        memcpy(p->files + p->n_files, f->files, f->n_files * sizeof(*f->files));
        p->n_files += f->n_files;
        f->n_files = 0;
        if (f->n_pools)
                memcpy(p->pools + p->n_pools, f->pools, f->n_pools * sizeof(*f->pools));
        p->n_pools += f->n_pools;
        f->n_pools = 0;
        if (f->n_warnings)
                memcpy(p->warnings + p->n_warnings, f->warnings, f->n_warnings * sizeof(*f->warnings));
        p->n_warnings += f->n_warnings;
        f->n_warnings = 0;

        /* A later file's setting replaces an earlier one's (drop-ins). */
        SET_ORIGIN(p, f, reserve, reserve_origin);
        SET_ORIGIN(p, f, memory_cgroup, memory_cgroup_origin);
        SET_ORIGIN(p, f, watch_process_exit, watch_process_exit_origin);
        SET_ORIGIN(p, f, numa_default_policy, numa_default_policy_origin);
        SET_ORIGIN(p, f, numa_allow_policy_choice, numa_allow_policy_choice_origin);
        return 0;
}

int iovirt_policy_parse_text(IovirtPolicy *p, const char *path, const char *text, char **error) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *f = iovirt_policy_new();
        if (!f)
                return -ENOMEM;
        IovirtPolicyFile *file = GROW(f->files, f->n_files, f->allocated_files);
        if (!file || !(file->path = strdup(path)))
                return -ENOMEM;

        Parser c = {
                .p = f,
                .path = file->path,
                .text = text,
                .section = SECTION_NONE,
        };
        int r = ini_parse_stream(reader, &c, handler, &c);
        if (c.r >= 0)
                section_end(&c);

        if (r == -2 || c.r == -ENOMEM) {
                free(c.error);
                return -ENOMEM;
        }
        if (r > 0 && (c.r >= 0 || (unsigned) r < c.error_line)) {
                free(c.error);
                return iovirt_set_reason(error, -EINVAL,
                                         "%s:%d: expected [Section], Key=Value or a comment (';' or '#')",
                                         path, r);
        }
        if (c.r < 0) {
                if (error) {
                        free(*error);
                        *error = c.error;
                } else
                        free(c.error);
                return c.r;
        }
        if (r != 0)
                return iovirt_set_reason(error, -EINVAL, "%s: cannot be parsed", path);
        return merge(p, f, error);
}

typedef struct Entry {
        char *name;
        bool admin;
        bool overrides;   /* an admin file that replaces a vendor file */
} Entry;

static void entries_free(Entry *e, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(e[i].name);
        free(e);
}

static int entry_compare(const void *a, const void *b) {
        return strcmp(((const Entry *) a)->name, ((const Entry *) b)->name);
}

static bool policy_file_name(const char *name) {
        size_t n = strlen(name), s = strlen(IOVIRT_POLICY_SUFFIX);
        return name[0] != '.' && n > s && streq_ptr(name + n - s, IOVIRT_POLICY_SUFFIX);
}

static int read_dir(const char *dir, bool admin, Entry **entries, size_t *n, size_t *allocated, char **error) {
        _cleanup_free_ char *real = iovirt_root_path(dir);
        if (!real)
                return -ENOMEM;
        _cleanup_closedir_ DIR *d = opendir(real);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                int r = -errno;
                return iovirt_set_reason(error, r, "%s: cannot read the directory: %s", dir, strerror(-r));
        }
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno == 0)
                                break;
                        int r = -errno;
                        return iovirt_set_reason(error, r, "%s: cannot read the directory: %s", dir, strerror(-r));
                }
                if (!policy_file_name(de->d_name))
                        continue;
                Entry *e = NULL;
                for (size_t i = 0; i < *n; i++)
                        if (streq_ptr((*entries)[i].name, de->d_name))
                                e = &(*entries)[i];
                if (e) {
                        e->overrides = admin && !e->admin;
                        e->admin = admin;
                        continue;
                }
                e = iovirt_grow((void **) entries, n, allocated, sizeof(Entry));
                if (!e)
                        return -ENOMEM;
                e->admin = admin;
                if (!(e->name = strdup(de->d_name))) {
                        (*n)--;
                        return -ENOMEM;
                }
        }
        return 0;
}

int iovirt_policy_load(IovirtPolicy **ret, char **error) {
        Entry *entries = NULL;
        size_t n = 0, allocated = 0;
        int r;

        r = read_dir(IOVIRT_POLICY_VENDOR_DIR, false, &entries, &n, &allocated, error);
        if (r >= 0)
                r = read_dir(IOVIRT_POLICY_ADMIN_DIR, true, &entries, &n, &allocated, error);
        if (r < 0) {
                entries_free(entries, n);
                return r;
        }
        if (n > 0)
                qsort(entries, n, sizeof(Entry), entry_compare);

        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        if (!p) {
                entries_free(entries, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *path = NULL, *real = NULL, *text = NULL, *vendor = NULL;
                size_t size;
                if (asprintf(&path, "%s/%s", entries[i].admin ? IOVIRT_POLICY_ADMIN_DIR : IOVIRT_POLICY_VENDOR_DIR,
                             entries[i].name) < 0) {
                        path = NULL;
                        r = -ENOMEM;
                        break;
                }
                real = iovirt_root_path(path);
                if (!real) {
                        r = -ENOMEM;
                        break;
                }
                r = iovirt_read_file_sized(real, &text, &size);
                if (r == -EFBIG)
                        r = iovirt_set_reason(error, r, "%s: larger than 16 MiB, refused", path);
                else if (r < 0)
                        r = iovirt_set_reason(error, r, "%s: cannot read: %s", path, strerror(-r));
                else if (memchr(text, '\0', size))
                        r = iovirt_set_reason(error, -EINVAL, "%s: holds a NUL byte; a policy file is text", path);
                else
                        r = iovirt_policy_parse_text(p, path, text, error);
                if (r >= 0 && entries[i].overrides) {
                        if (asprintf(&vendor, "%s/%s", IOVIRT_POLICY_VENDOR_DIR, entries[i].name) < 0)
                                r = -ENOMEM;
                        else
                                p->files[p->n_files - 1].overrides = TAKE_PTR(vendor);
                }
        }
        entries_free(entries, n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- JSON ---- */

typedef struct Json {
        bool failed;
} Json;

static json_object *checked(Json *j, json_object *o) {
        if (!o)
                j->failed = true;
        return o;
}

static void add(Json *j, json_object *o, const char *key, json_object *v) {
        if (!o || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                j->failed = true;
        }
}

static void push(Json *j, json_object *a, json_object *v) {
        if (!a || !v || json_object_array_add(a, v) < 0) {
                json_object_put(v);
                j->failed = true;
        }
}

/* "file:line", or "default" for a built-in value */
static json_object *origin_json(Json *j, IovirtPolicyOrigin o) {
        _cleanup_free_ char *s = NULL;
        if (!iovirt_policy_origin_set(o))
                return checked(j, json_object_new_string("default"));
        if (asprintf(&s, "%s:%u", o.file, o.line) < 0) {
                s = NULL;
                j->failed = true;
                return NULL;
        }
        return checked(j, json_object_new_string(s));
}

/* {"value":v,"origin":"file:line"|"default"}; a NULL v is JSON null. */
static json_object *setting(Json *j, json_object *v, IovirtPolicyOrigin o) {
        json_object *s = checked(j, json_object_new_object());
        add(j, s, "value", v);
        add(j, s, "origin", origin_json(j, o));
        return s;
}

static json_object *string(Json *j, const char *s) {
        return s ? checked(j, json_object_new_string(s)) : NULL;
}

static json_object *ids(Json *j, const IovirtPolicyId *v, size_t n) {
        json_object *a = checked(j, json_object_new_array());
        for (size_t i = 0; i < n; i++)
                push(j, a, v[i].name ? string(j, v[i].name) : checked(j, json_object_new_int64(v[i].id)));
        return a;
}

static json_object *pool_json(Json *j, const IovirtPolicy *p, const IovirtPolicyPool *pool) {
        json_object *o = checked(j, json_object_new_object());
        IovirtPolicyOrigin origin;

        add(j, o, "name", string(j, pool->name));
        add(j, o, "origin", origin_json(j, pool->origin));
        json_object *devs = checked(j, json_object_new_array());
        for (size_t i = 0; i < pool->n_selectors; i++) {
                json_object *d = checked(j, json_object_new_object());
                add(j, d, "type", string(j, iovirt_pool_selector_type_name(pool->selectors[i].type)));
                add(j, d, "selector", string(j, pool->selectors[i].text));
                push(j, devs, d);
        }
        add(j, o, "devices", setting(j, devs, pool->devices_origin));

        json_object *cons = NULL;
        if (pool->n_consumers > 0) {
                cons = checked(j, json_object_new_array());
                for (size_t i = 0; i < pool->n_consumers; i++)
                        push(j, cons, string(j, pool->consumers[i]));
        }
        add(j, o, "consumers", setting(j, cons, pool->consumers_origin));
        add(j, o, "users", setting(j, pool->n_users ? ids(j, pool->users, pool->n_users) : NULL, pool->users_origin));
        add(j, o, "groups", setting(j, pool->n_groups ? ids(j, pool->groups, pool->n_groups) : NULL,
                                    pool->groups_origin));
        add(j, o, "isolation", setting(j, string(j, iovirt_policy_isolation_name(pool->isolation)),
                                       pool->isolation_origin));
        IovirtNumaPolicy np = iovirt_policy_pool_numa_policy(p, pool, &origin);
        add(j, o, "numa_policy", setting(j, string(j, iovirt_numa_policy_to_string(np)), origin));
        bool choice = iovirt_policy_pool_allow_numa_choice(p, pool, &origin);
        add(j, o, "allow_numa_policy_choice", setting(j, checked(j, json_object_new_boolean(choice)), origin));
        add(j, o, "memlock_hard_limit",
            setting(j, pool->memlock_hard_limit ? checked(j, json_object_new_uint64(pool->memlock_hard_limit)) : NULL,
                    pool->memlock_hard_limit_origin));
        add(j, o, "memory",
            setting(j, pool->guest_memory ? checked(j, json_object_new_uint64(pool->guest_memory)) : NULL,
                    pool->guest_memory_origin));
        return o;
}

json_object *iovirt_policy_to_json(const IovirtPolicy *p) {
        Json j = {};
        json_object *o = checked(&j, json_object_new_object());

        json_object *files = checked(&j, json_object_new_array());
        for (size_t i = 0; i < p->n_files; i++) {
                json_object *f = checked(&j, json_object_new_object());
                add(&j, f, "path", string(&j, p->files[i].path));
                add(&j, f, "overrides", string(&j, p->files[i].overrides));
                push(&j, files, f);
        }
        add(&j, o, "files", files);

        json_object *warnings = checked(&j, json_object_new_array());
        for (size_t i = 0; i < p->n_warnings; i++)
                push(&j, warnings, string(&j, p->warnings[i]));
        add(&j, o, "warnings", warnings);

        json_object *mem = checked(&j, json_object_new_object()), *reserve = checked(&j, json_object_new_object());
        if (p->reserve.percent)
                add(&j, reserve, "percent", checked(&j, json_object_new_double(p->reserve.basis_points / 100.0)));
        else
                add(&j, reserve, "bytes", checked(&j, json_object_new_uint64(p->reserve.bytes)));
        if (!iovirt_policy_origin_set(p->reserve_origin))
                add(&j, reserve, "minimum_bytes", checked(&j, json_object_new_uint64(IOVIRT_POLICY_RESERVE_MIN_DEFAULT)));
        add(&j, mem, "reserve", setting(&j, reserve, p->reserve_origin));
        add(&j, mem, "memory_cgroup", setting(&j, string(&j, iovirt_memory_cgroup_mode_name(p->memory_cgroup)),
                                              p->memory_cgroup_origin));
        add(&j, o, "memory", mem);

        json_object *consumers = checked(&j, json_object_new_object());
        add(&j, consumers, "watch_process_exit",
            setting(&j, checked(&j, json_object_new_boolean(p->watch_process_exit)), p->watch_process_exit_origin));
        add(&j, o, "consumers", consumers);

        json_object *numa = checked(&j, json_object_new_object());
        add(&j, numa, "default_policy", setting(&j, string(&j, iovirt_numa_policy_to_string(p->numa_default_policy)),
                                                p->numa_default_policy_origin));
        add(&j, numa, "allow_policy_choice",
            setting(&j, checked(&j, json_object_new_boolean(p->numa_allow_policy_choice)),
                    p->numa_allow_policy_choice_origin));
        add(&j, o, "numa", numa);

        json_object *pools = checked(&j, json_object_new_array());
        for (size_t i = 0; i < p->n_pools; i++)
                push(&j, pools, pool_json(&j, p, &p->pools[i]));
        add(&j, o, "pools", pools);

        if (j.failed) {
                json_object_put(o);
                return NULL;
        }
        return o;
}
