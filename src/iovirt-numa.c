/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>

#include "iovirt-names.h"
#include "iovirt-numa.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"

/* ---- bitmaps ---- */

int iovirt_bitmap_set(IovirtBitmap *b, unsigned i) {
        size_t w = i / 64;
        if (w >= b->n_words) {
                uint64_t *p = realloc(b->words, (w + 1) * sizeof(uint64_t));
                if (!p)
                        return -ENOMEM;
                memset(p + b->n_words, 0, (w + 1 - b->n_words) * sizeof(uint64_t));
                b->words = p;
                b->n_words = w + 1;
        }
        b->words[w] |= UINT64_C(1) << (i % 64);
        return 0;
}

bool iovirt_bitmap_test(const IovirtBitmap *b, unsigned i) {
        return b && i / 64 < b->n_words && (b->words[i / 64] >> (i % 64)) & 1;
}

unsigned iovirt_bitmap_count(const IovirtBitmap *b) {
        unsigned n = 0;
        for (size_t w = 0; b && w < b->n_words; w++)
                n += (unsigned) __builtin_popcountll(b->words[w]);
        return n;
}

int iovirt_bitmap_next(const IovirtBitmap *b, unsigned from) {
        if (!b)
                return -1;
        for (size_t w = from / 64; w < b->n_words; w++) {
                uint64_t bits = b->words[w];
                if (w == from / 64)
                        bits &= ~UINT64_C(0) << (from % 64);
                if (bits)
                        return (int) (w * 64 + (size_t) __builtin_ctzll(bits));
        }
        return -1;
}

void iovirt_bitmap_clear(IovirtBitmap *b) {
        b->words = mfree(b->words);
        b->n_words = 0;
}

int iovirt_bitmap_format(const IovirtBitmap *b, char **ret) {
        IovirtText t = {};
        iovirt_text_add(&t, "%s", "");
        for (int i = iovirt_bitmap_next(b, 0); i >= 0;) {
                int j = i;
                while (iovirt_bitmap_test(b, (unsigned) j + 1))
                        j++;
                if (j == i)
                        iovirt_text_add(&t, "%s%d", t.len ? "," : "", i);
                else
                        iovirt_text_add(&t, "%s%d-%d", t.len ? "," : "", i, j);
                i = iovirt_bitmap_next(b, (unsigned) j + 1);
        }
        if (t.failed)
                return -ENOMEM;
        *ret = t.s ? TAKE_PTR(t.s) : strdup("");
        return *ret ? 0 : -ENOMEM;
}

static int parse_number(const char **s, unsigned max, unsigned *ret) {
        const char *p = *s;
        unsigned long v = 0;
        if (*p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (unsigned long) (*p - '0');
                if (v >= max)
                        return -ERANGE;
        }
        *s = p;
        *ret = (unsigned) v;
        return 0;
}

static int list_parse(const char *s, unsigned max, IovirtBitmap *ret) {
        IovirtBitmap b = {};
        int r = 0;

        if (!s)
                return -EINVAL;
        const char *p = s;
        if (*p != '\0' && *p != '\n')
                for (;;) {
                        unsigned lo, hi;
                        if ((r = parse_number(&p, max, &lo)) < 0)
                                break;
                        hi = lo;
                        if (*p == '-') {
                                p++;
                                if ((r = parse_number(&p, max, &hi)) < 0)
                                        break;
                                if (hi < lo) {
                                        r = -EINVAL;
                                        break;
                                }
                        }
                        for (unsigned i = lo; i <= hi && r == 0; i++)
                                r = iovirt_bitmap_set(&b, i);
                        if (r < 0)
                                break;
                        if (*p == ',') {
                                p++;
                                continue;
                        }
                        if (*p == '\n')
                                p++;
                        if (*p != '\0')
                                r = -EINVAL;
                        break;
                }
        else if (*p == '\n' && p[1] != '\0')
                r = -EINVAL;
        if (r < 0) {
                iovirt_bitmap_clear(&b);
                return r;
        }
        iovirt_bitmap_clear(ret);
        *ret = b;
        return 0;
}

int iovirt_numa_cpulist_parse(const char *s, IovirtBitmap *ret) {
        return list_parse(s, IOVIRT_NUMA_CPUS_MAX, ret);
}

int iovirt_numa_nodelist_parse(const char *s, IovirtBitmap *ret) {
        return list_parse(s, IOVIRT_NUMA_NODES_MAX, ret);
}

/* ---- facts ---- */

IovirtNumaFacts *iovirt_numa_facts_free(IovirtNumaFacts *f) {
        if (!f)
                return NULL;
        for (size_t i = 0; i < f->n_nodes; i++) {
                iovirt_bitmap_clear(&f->nodes[i].cpus);
                free(f->nodes[i].distance);
        }
        free(f->nodes);
        return mfree(f);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtNumaFacts *, iovirt_numa_facts_free);

const IovirtNumaNode *iovirt_numa_node(const IovirtNumaFacts *f, int id) {
        size_t lo = 0, hi = f ? f->n_nodes : 0;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (f->nodes[mid].id == id)
                        return &f->nodes[mid];
                if (f->nodes[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

int iovirt_numa_distance(const IovirtNumaFacts *f, int a, int b) {
        if (a < 0 || b < 0)
                return -1;
        if (a == b)
                return IOVIRT_NUMA_LOCAL_DISTANCE;
        const IovirtNumaNode *n = iovirt_numa_node(f, a);
        if (n && n->distance && (size_t) b < n->n_distance && n->distance[b] > 0)
                return n->distance[b];
        /* SLIT distances are symmetric on every real table; use the other row */
        n = iovirt_numa_node(f, b);
        if (n && n->distance && (size_t) a < n->n_distance && n->distance[a] > 0)
                return n->distance[a];
        return -1;
}

int iovirt_numa_socket(const IovirtNumaFacts *f, int id) {
        const IovirtNumaNode *n = iovirt_numa_node(f, id);
        return n ? n->socket : -1;
}

static int prefixed(char **ret, const char *prefix, const char *fmt, ...) _printf_(3, 4);
static int prefixed(char **ret, const char *prefix, const char *fmt, ...) {
        _cleanup_free_ char *tail = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&tail, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(ret, "%s%s", strempty(prefix), tail) < 0)
                return -ENOMEM;
        return 0;
}

static int cmp_node(const void *a, const void *b) {
        const IovirtNumaNode *x = a, *y = b;
        return (x->id > y->id) - (x->id < y->id);
}

static int node_read_sockets(const char *prefix, IovirtNumaNode *n) {
        n->socket = -1;
        for (int c = iovirt_bitmap_next(&n->cpus, 0); c >= 0; c = iovirt_bitmap_next(&n->cpus, (unsigned) c + 1)) {
                _cleanup_free_ char *dir = NULL;
                char buf[32];
                int v;
                if (prefixed(&dir, prefix, SYSFS_CPU "/cpu%d", c) < 0)
                        return -ENOMEM;
                if (iovirt_sysfs_read(dir, ATTR_PHYSICAL_PACKAGE_ID, buf, sizeof(buf)) < 0 ||
                    iovirt_parse_int(buf, &v) < 0 || v < 0)
                        continue;       /* an offline CPU has no topology: the others say it */
                if (n->socket < 0)
                        n->socket = v;
                else if (v != n->socket)
                        n->sockets_mixed = true;
        }
        return 0;
}

/* The distance row lists every online node, by ascending id: the nodes we
 * listed.  A row of another length leaves the node's distances unknown. */
static int node_read_distance(IovirtNumaFacts *f, const char *dir, IovirtNumaNode *n) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        if (asprintf(&path, "%s/%s", dir, ATTR_NODE_DISTANCE) < 0)
                return -ENOMEM;
        int r = iovirt_read_file(path, &text);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        size_t n_ids = (size_t) f->nodes[f->n_nodes - 1].id + 1;
        _cleanup_free_ uint8_t *d = calloc(n_ids, 1);
        if (!d)
                return -ENOMEM;
        const char *p = text;
        for (size_t i = 0; i < f->n_nodes; i++) {
                while (*p == ' ')
                        p++;
                unsigned v;
                if (parse_number(&p, 256, &v) < 0 || v == 0)
                        return 0;
                d[f->nodes[i].id] = (uint8_t) v;
        }
        while (*p == ' ' || *p == '\n')
                p++;
        if (*p)
                return 0;
        n->distance = TAKE_PTR(d);
        n->n_distance = n_ids;
        return 0;
}

int iovirt_numa_facts_read_at(const char *prefix, IovirtNumaFacts **ret) {
        _cleanup_(iovirt_numa_facts_freep) IovirtNumaFacts *f = calloc(1, sizeof(*f));
        _cleanup_free_ char *top = NULL;
        if (!f || prefixed(&top, prefix, "%s", SYSFS_NODE) < 0)
                return -ENOMEM;

        _cleanup_closedir_ DIR *d = opendir(top);
        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = TAKE_PTR(f);     /* a kernel without NUMA */
                return 0;
        }
        size_t allocated = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                int id;
                if (strncmp(de->d_name, "node", 4) != 0 || iovirt_parse_int(de->d_name + 4, &id) < 0 ||
                    id < 0 || id >= IOVIRT_NUMA_NODES_MAX || de->d_name[4] < '0' || de->d_name[4] > '9')
                        continue;
                IovirtNumaNode *n = GROW(f->nodes, f->n_nodes, allocated);
                if (!n)
                        return -ENOMEM;
                n->id = id;
                n->socket = -1;
                errno = 0;
        }
        if (errno != 0)
                return -errno;
        if (f->n_nodes == 0) {
                *ret = TAKE_PTR(f);
                return 0;
        }
        qsort(f->nodes, f->n_nodes, sizeof(f->nodes[0]), cmp_node);

        for (size_t i = 0; i < f->n_nodes; i++) {
                IovirtNumaNode *n = &f->nodes[i];
                _cleanup_free_ char *dir = NULL, *path = NULL, *list = NULL;
                if (asprintf(&dir, "%s/node%d", top, n->id) < 0 || asprintf(&path, "%s/%s", dir, ATTR_NODE_CPULIST) < 0)
                        return -ENOMEM;
                int r = iovirt_read_file(path, &list);
                if (r < 0)
                        return r;
                r = iovirt_numa_cpulist_parse(list, &n->cpus);
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
                r = node_read_sockets(prefix, n);
                if (r < 0)
                        return r;
                r = node_read_distance(f, dir, n);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

int iovirt_numa_facts_read(IovirtNumaFacts **ret) {
        return iovirt_numa_facts_read_at("", ret);
}

/* ---- placement ---- */

int iovirt_numa_process_read(pid_t pid, IovirtBitmap *cpus, IovirtBitmap *mems) {
        char rel[64];
        snprintf(rel, sizeof(rel), PROC_PID "/%d/status", (int) pid);
        _cleanup_free_ char *path = iovirt_root_path(rel), *text = NULL;
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, &text);
        if (r < 0)
                return r;
        bool have_cpus = false, have_mems = false;
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                IovirtBitmap *target = NULL;
                const char *value = NULL;
                if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
                        target = cpus;
                        value = line + 18;
                        have_cpus = true;
                } else if (strncmp(line, "Mems_allowed_list:", 18) == 0) {
                        target = mems;
                        value = line + 18;
                        have_mems = true;
                }
                if (value) {
                        while (*value == '\t' || *value == ' ')
                                value++;
                        IovirtBitmap tmp = {};
                        r = target == mems ? iovirt_numa_nodelist_parse(value, &tmp)
                                           : iovirt_numa_cpulist_parse(value, &tmp);
                        if (r < 0)
                                return r == -ENOMEM ? r : -EBADMSG;
                        if (target) {
                                iovirt_bitmap_clear(target);
                                *target = tmp;
                        } else
                                iovirt_bitmap_clear(&tmp);
                }
                line = nl ? nl + 1 : NULL;
        }
        return have_cpus && have_mems ? 0 : -EBADMSG;
}

static int bitmap_copy(const IovirtBitmap *src, IovirtBitmap *dst) {
        for (int i = iovirt_bitmap_next(src, 0); i >= 0; i = iovirt_bitmap_next(src, (unsigned) i + 1))
                if (iovirt_bitmap_set(dst, (unsigned) i) < 0)
                        return -ENOMEM;
        return 0;
}

int iovirt_numa_placement(const IovirtNumaFacts *f, const IovirtBitmap *cpus, const IovirtBitmap *mems,
                          IovirtBitmap *ret) {
        IovirtBitmap of_cpus = {}, both = {};
        int r = 0;

        for (size_t i = 0; f && i < f->n_nodes && r == 0; i++) {
                const IovirtNumaNode *n = &f->nodes[i];
                bool runs = false;
                for (size_t w = 0; cpus && w < cpus->n_words && w < n->cpus.n_words && !runs; w++)
                        runs = cpus->words[w] & n->cpus.words[w];
                if (!runs)
                        continue;
                r = iovirt_bitmap_set(&of_cpus, (unsigned) n->id);
                if (r == 0 && iovirt_bitmap_test(mems, (unsigned) n->id))
                        r = iovirt_bitmap_set(&both, (unsigned) n->id);
        }
        IovirtBitmap out = {};
        if (r == 0) {
                if (iovirt_bitmap_count(&both) > 0)
                        r = bitmap_copy(&both, &out);
                else if (iovirt_bitmap_count(&of_cpus) > 0)
                        r = bitmap_copy(&of_cpus, &out);
                else if (mems)
                        r = bitmap_copy(mems, &out);
        }
        iovirt_bitmap_clear(&of_cpus);
        iovirt_bitmap_clear(&both);
        if (r < 0) {
                iovirt_bitmap_clear(&out);
                return r;
        }
        iovirt_bitmap_clear(ret);
        *ret = out;
        return 0;
}

/* ---- policies ---- */

const char *const iovirt_numa_policy_names[_IOVIRT_NUMA_POLICY_MAX] = {
        [IOVIRT_NUMA_NONE] = "none",
        [IOVIRT_NUMA_LEGACY] = "legacy",
        [IOVIRT_NUMA_REQUIRED] = "required",
        [IOVIRT_NUMA_PREFERRED] = "preferred",
        [IOVIRT_NUMA_SOCKET] = "socket",
};

const char *iovirt_numa_policy_to_string(IovirtNumaPolicy p) {
        return (unsigned) p < _IOVIRT_NUMA_POLICY_MAX ? iovirt_numa_policy_names[p] : NULL;
}

int iovirt_numa_policy_from_string(const char *s) {
        for (int p = 0; p < _IOVIRT_NUMA_POLICY_MAX; p++)
                if (streq_ptr(s, iovirt_numa_policy_names[p]))
                        return p;
        return -EINVAL;
}

static const char *const reason_names[_IOVIRT_NUMA_REASON_MAX] = {
        [IOVIRT_NUMA_REASON_NO_POLICY] = "no-policy",
        [IOVIRT_NUMA_REASON_ONE_NODE] = "one-node",
        [IOVIRT_NUMA_REASON_LOCAL] = "local",
        [IOVIRT_NUMA_REASON_SAME_SOCKET] = "same-socket",
        [IOVIRT_NUMA_REASON_REMOTE_ALLOWED] = "remote-allowed",
        [IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED] = "device-node-unknown-allowed",
        [IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED] = "consumer-unknown-allowed",
        [IOVIRT_NUMA_REASON_REMOTE] = "remote",
        [IOVIRT_NUMA_REASON_OTHER_SOCKET] = "other-socket",
        [IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN] = "device-node-unknown",
        [IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN] = "consumer-unknown",
};

const char *iovirt_numa_reason_to_string(IovirtNumaReason r) {
        return (unsigned) r < _IOVIRT_NUMA_REASON_MAX ? reason_names[r] : NULL;
}

bool iovirt_numa_reason_allows(IovirtNumaReason r) {
        return r < IOVIRT_NUMA_REASON_REMOTE;
}

static bool same_socket(const IovirtNumaFacts *f, int device_node, const IovirtBitmap *consumer_nodes) {
        int s = iovirt_numa_socket(f, device_node);
        if (s < 0)
                return false;
        for (int c = iovirt_bitmap_next(consumer_nodes, 0); c >= 0; c = iovirt_bitmap_next(consumer_nodes, (unsigned) c + 1))
                if (iovirt_numa_socket(f, c) == s)
                        return true;
        return false;
}

IovirtNumaReason iovirt_numa_decide(const IovirtNumaFacts *f, IovirtNumaPolicy policy, int device_node,
                                    const IovirtBitmap *consumer_nodes) {
        bool lenient = policy == IOVIRT_NUMA_LEGACY || policy == IOVIRT_NUMA_PREFERRED;

        if (policy == IOVIRT_NUMA_NONE)
                return IOVIRT_NUMA_REASON_NO_POLICY;
        /* firmware gives no proximity on most one-node machines: -1 is node 0 there */
        if (!f || f->n_nodes <= 1)
                return IOVIRT_NUMA_REASON_ONE_NODE;
        if (device_node < 0 || !iovirt_numa_node(f, device_node))
                return lenient ? IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED : IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN;
        if (iovirt_bitmap_count(consumer_nodes) == 0)
                return lenient ? IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED : IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN;
        if (iovirt_bitmap_test(consumer_nodes, (unsigned) device_node))
                return IOVIRT_NUMA_REASON_LOCAL;
        switch (policy) {
        case IOVIRT_NUMA_PREFERRED:
                return IOVIRT_NUMA_REASON_REMOTE_ALLOWED;
        case IOVIRT_NUMA_SOCKET:
                return same_socket(f, device_node, consumer_nodes) ? IOVIRT_NUMA_REASON_SAME_SOCKET
                                                                   : IOVIRT_NUMA_REASON_OTHER_SOCKET;
        default:
                return IOVIRT_NUMA_REASON_REMOTE;
        }
}

void iovirt_numa_verdict_clear(IovirtNumaVerdict *v) {
        v->sentence = mfree(v->sentence);
}

/* "node 0", "nodes 0-1" */
static void add_nodes(IovirtText *t, const IovirtBitmap *nodes) {
        _cleanup_free_ char *list = NULL;
        if (iovirt_bitmap_format(nodes, &list) < 0) {
                t->failed = true;
                return;
        }
        iovirt_text_add(t, "%s %s", iovirt_bitmap_count(nodes) == 1 ? "node" : "nodes", list);
}

/* "socket 0", "sockets 0,1" */
static void add_sockets(IovirtText *t, const IovirtNumaFacts *f, const IovirtBitmap *nodes) {
        IovirtBitmap s = {};
        for (int c = iovirt_bitmap_next(nodes, 0); c >= 0; c = iovirt_bitmap_next(nodes, (unsigned) c + 1)) {
                int k = iovirt_numa_socket(f, c);
                if (k >= 0 && iovirt_bitmap_set(&s, (unsigned) k) < 0)
                        t->failed = true;
        }
        _cleanup_free_ char *list = NULL;
        if (iovirt_bitmap_count(&s) == 0)
                iovirt_text_add(t, "no known socket");
        else if (iovirt_bitmap_format(&s, &list) < 0)
                t->failed = true;
        else
                iovirt_text_add(t, "%s %s", iovirt_bitmap_count(&s) == 1 ? "socket" : "sockets", list);
        iovirt_bitmap_clear(&s);
}

int iovirt_numa_judge(const IovirtNumaFacts *f, IovirtNumaPolicy policy, int device_node,
                      const IovirtBitmap *consumer_nodes, const IovirtNumaSubject *subject,
                      IovirtNumaVerdict *ret) {
        if ((unsigned) policy >= _IOVIRT_NUMA_POLICY_MAX)
                return -EINVAL;

        IovirtNumaReason why = iovirt_numa_decide(f, policy, device_node, consumer_nodes);
        const char *dev = subject && subject->device ? subject->device : "the device";
        const char *who = subject && subject->consumer ? subject->consumer : "the consumer";
        _cleanup_free_ char *rule = NULL;
        if (subject && subject->pool ? asprintf(&rule, "pool '%s'", subject->pool) < 0
                                     : asprintf(&rule, "NUMA policy '%s'", iovirt_numa_policy_names[policy]) < 0)
                return -ENOMEM;

        IovirtText t = {};
        switch (why) {
        case IOVIRT_NUMA_REASON_NO_POLICY:
                iovirt_text_add(&t, "%s has no NUMA policy", rule);
                break;
        case IOVIRT_NUMA_REASON_ONE_NODE:
                iovirt_text_add(&t, "this host has one NUMA node: %s is local to %s", dev, who);
                break;
        case IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED:
        case IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN:
                iovirt_text_add(&t, "the NUMA node of %s is unknown; %s %s", dev, rule,
                                why == IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN ? "refuses a device of unknown node"
                                                                              : "allows a device of unknown node");
                break;
        case IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED:
        case IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN:
                iovirt_text_add(&t, "%s is on NUMA node %d; where %s runs is unknown; %s %s", dev, device_node, who, rule,
                                why == IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN ? "cannot be checked, so it refuses"
                                                                           : "allows it");
                break;
        case IOVIRT_NUMA_REASON_LOCAL:
                iovirt_text_add(&t, "%s is on NUMA node %d, where %s runs (", dev, device_node, who);
                add_nodes(&t, consumer_nodes);
                iovirt_text_add(&t, ")");
                break;
        case IOVIRT_NUMA_REASON_REMOTE_ALLOWED:
        case IOVIRT_NUMA_REASON_REMOTE: {
                iovirt_text_add(&t, "%s is on NUMA node %d; %s runs on ", dev, device_node, who);
                add_nodes(&t, consumer_nodes);
                if (why == IOVIRT_NUMA_REASON_REMOTE)
                        iovirt_text_add(&t, "; %s requires the same node", rule);
                else {
                        int best = -1;
                        for (int c = iovirt_bitmap_next(consumer_nodes, 0); c >= 0;
                             c = iovirt_bitmap_next(consumer_nodes, (unsigned) c + 1)) {
                                int d = iovirt_numa_distance(f, device_node, c);
                                if (d >= 0 && (best < 0 || d < best))
                                        best = d;
                        }
                        if (best >= 0)
                                iovirt_text_add(&t, " (distance %d)", best);
                        iovirt_text_add(&t, "; %s prefers the same node and takes another", rule);
                }
                break;
        }
        case IOVIRT_NUMA_REASON_SAME_SOCKET:
        case IOVIRT_NUMA_REASON_OTHER_SOCKET: {
                IovirtBitmap one = {};
                if (iovirt_bitmap_set(&one, (unsigned) device_node) < 0)
                        t.failed = true;
                iovirt_text_add(&t, "%s is on NUMA node %d (", dev, device_node);
                add_sockets(&t, f, &one);
                iovirt_text_add(&t, "); %s runs on ", who);
                add_nodes(&t, consumer_nodes);
                iovirt_text_add(&t, " (");
                add_sockets(&t, f, consumer_nodes);
                iovirt_text_add(&t, "); %s requires the same socket", rule);
                iovirt_bitmap_clear(&one);
                break;
        }
        default:
                return -EINVAL;
        }
        char *s = iovirt_text_take(&t);
        if (!s)
                return -ENOMEM;
        *ret = (IovirtNumaVerdict) {
                .allowed = iovirt_numa_reason_allows(why),
                .reason = why,
                .sentence = s,
        };
        return 0;
}

typedef struct Candidate {
        size_t index;
        bool allowed;
        unsigned key;   /* distance; UINT_MAX - 1 unknown distance, UINT_MAX unknown node */
} Candidate;

static int cmp_candidate(const void *a, const void *b) {
        const Candidate *x = a, *y = b;
        if (x->allowed != y->allowed)
                return x->allowed ? -1 : 1;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return (x->index > y->index) - (x->index < y->index);
}

int iovirt_numa_choose(const IovirtNumaFacts *f, IovirtNumaPolicy policy, const IovirtBitmap *consumer_nodes,
                       const int *device_nodes, size_t n, size_t *order) {
        if (n == 0)
                return 0;
        _cleanup_free_ Candidate *c = calloc(n, sizeof(Candidate));
        if (!c)
                return -ENOMEM;
        size_t allowed = 0;
        for (size_t i = 0; i < n; i++) {
                c[i].index = i;
                c[i].allowed = iovirt_numa_reason_allows(iovirt_numa_decide(f, policy, device_nodes[i], consumer_nodes));
                allowed += c[i].allowed;
                c[i].key = device_nodes[i] < 0 ? UINT_MAX : UINT_MAX - 1;
                for (int k = iovirt_bitmap_next(consumer_nodes, 0); device_nodes[i] >= 0 && k >= 0;
                     k = iovirt_bitmap_next(consumer_nodes, (unsigned) k + 1)) {
                        int d = iovirt_numa_distance(f, device_nodes[i], k);
                        if (d >= 0 && (unsigned) d < c[i].key)
                                c[i].key = (unsigned) d;
                }
        }
        qsort(c, n, sizeof(Candidate), cmp_candidate);
        for (size_t i = 0; i < n; i++)
                order[i] = c[i].index;
        return allowed > INT_MAX ? INT_MAX : (int) allowed;
}
