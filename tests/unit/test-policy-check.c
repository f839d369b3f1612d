/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "iovirt-memlock.h"
#include "iovirt-numa.h"
#include "iovirt-plan.h"
#include "iovirt-policy-check.h"
#include "iovirt-policy.h"
#include "model-builder.h"

/* The plan checks policy/ adds to src/'s plan ("policy", "pool", "owner",
 * "numa", "memlock", "memory-cgroup") on hand-built hosts, NUMA facts,
 * policies parsed from text and hand-made state records: each status, each
 * reason, and the words that say why. */

#define PATH "/etc/iovirt/policy.d/50-test.conf"

/* A root port with an isolated NIC, a two-function GPU (shared), a switch
 * whose downstream ports lack ACS (leaky), a NIC whose IDs could not be
 * read, a three-function accelerator (shared), and a PF with three VFs. */
static const Spec host_specs[] = {
        { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
        { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, false, "e1000e" },
        { "00:02.0", NULL, 3, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "02:00.0", "00:02.0", 4, ENDPOINT, NO_ACS, true, "nouveau" },
        { "02:00.1", "00:02.0", 4, ENDPOINT, NO_ACS, true, "snd_hda_intel" },
        { "00:03.0", NULL, 5, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "03:00.0", "00:03.0", 6, UPSTREAM, NO_ACS, false, "pcieport" },
        { "04:01.0", "03:00.0", 7, DOWNSTREAM, NO_ACS, false, "pcieport" },
        { "04:02.0", "03:00.0", 8, DOWNSTREAM, NO_ACS, false, "pcieport" },
        { "05:00.0", "04:01.0", 7, ENDPOINT, NO_ACS, false, "igb" },
        { "06:00.0", "04:02.0", 8, ENDPOINT, NO_ACS, false, "nvme" },
        { "00:04.0", NULL, 9, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "07:00.0", "00:04.0", 10, ENDPOINT, NO_ACS, false, "ixgbe" },
        { "00:05.0", NULL, 11, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "08:00.0", "00:05.0", 12, ENDPOINT, NO_ACS, true, NULL },
        { "08:00.1", "00:05.0", 12, ENDPOINT, NO_ACS, true, NULL },
        { "08:00.2", "00:05.0", 12, ENDPOINT, NO_ACS, true, NULL },
        { "00:06.0", NULL, 13, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "81:00.0", "00:06.0", 14, ENDPOINT, NO_ACS, false, "i40e" },
        { "81:10.0", "00:06.0", 15, ENDPOINT, NO_ACS, false, "iavf" },
        { "81:10.1", "00:06.0", 16, ENDPOINT, NO_ACS, false, "iavf" },
        { "81:10.2", "00:06.0", 17, ENDPOINT, NO_ACS, false, "iavf" },
};

/* IDs and class codes; bridges keep the builder's (vendor 0) */
static const struct {
        const char *addr;
        uint16_t vendor, device;
        uint32_t class_code;
} host_ids[] = {
        { "01:00.0", 0x8086, 0x10d3, 0x020000 },
        { "02:00.0", 0x10de, 0x1b80, 0x030000 },
        { "02:00.1", 0x10de, 0x10f0, 0x040300 },
        { "05:00.0", 0x8086, 0x1533, 0x020000 },
        { "06:00.0", 0x144d, 0xa808, 0x010802 },
        { "07:00.0", 0x8086, 0x10fb, 0x020000 },      /* ids_known false below */
        { "08:00.0", 0x1ded, 0x1000, 0x120000 },
        { "08:00.1", 0x1ded, 0x1001, 0x120000 },
        { "08:00.2", 0x1ded, 0x1002, 0x120000 },
        { "81:00.0", 0x8086, 0x1572, 0x020000 },
        { "81:10.0", 0x8086, 0x154c, 0x020000 },
        { "81:10.1", 0x8086, 0x154c, 0x020000 },
        { "81:10.2", 0x8086, 0x154c, 0x020000 },
};

typedef struct Fixture {
        IovirtHost *host;
        IovirtVerdicts *verdicts;
        IovirtUsage usage;
        IovirtState state;
        IovirtPlanInput in;
        IovirtPolicy *policy;
        IovirtNumaFacts *numa;
        IovirtBitmap placement;
        IovirtPolicyRequest req;
} Fixture;

static size_t device_of(const IovirtHost *h, const char *addr) {
        IovirtAddress a;
        assert_int_equal(iovirt_address_parse(addr, &a, NULL), 0);
        size_t i = iovirt_host_find_address(h, &a);
        assert_true(i != IOVIRT_NONE);
        return i;
}

/* NUMA facts by hand: node i has CPUs 4i..4i+3, sockets[i], and the
 * distances of row i of dist (n x n) */
static IovirtNumaFacts *numa_facts(size_t n, const int *sockets, const uint8_t *dist) {
        IovirtNumaFacts *f = calloc(1, sizeof(IovirtNumaFacts));
        assert_non_null(f);
        f->nodes = calloc(n, sizeof(IovirtNumaNode));
        assert_non_null(f->nodes);
        f->n_nodes = n;
        for (size_t i = 0; i < n; i++) {
                IovirtNumaNode *node = &f->nodes[i];
                node->id = (int) i;
                for (unsigned c = 0; c < 4; c++)
                        assert_int_equal(iovirt_bitmap_set(&node->cpus, (unsigned) i * 4 + c), 0);
                node->socket = sockets[i];
                node->distance = malloc(n);
                assert_non_null(node->distance);
                memcpy(node->distance, dist + i * n, n);
                node->n_distance = n;
        }
        return f;
}

static IovirtNumaFacts *one_node(void) {
        static const int sockets[] = { 0 };
        static const uint8_t dist[] = { 10 };
        return numa_facts(1, sockets, dist);
}

/* two sockets, a node each */
static IovirtNumaFacts *two_nodes(void) {
        static const int sockets[] = { 0, 1 };
        static const uint8_t dist[] = { 10, 21, 21, 10 };
        return numa_facts(2, sockets, dist);
}

/* two sockets, two nodes each (sub-NUMA clustering): 0,1 on socket 0, 2,3 on socket 1 */
static IovirtNumaFacts *four_nodes(void) {
        static const int sockets[] = { 0, 0, 1, 1 };
        static const uint8_t dist[] = { 10, 11, 21, 21, 11, 10, 21, 21, 21, 21, 10, 11, 21, 21, 11, 10 };
        return numa_facts(4, sockets, dist);
}

static void set_numa(Fixture *f, IovirtNumaFacts *facts) {
        iovirt_numa_facts_free(f->numa);
        f->numa = facts;
        f->req.numa = facts;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        f->host = build(host_specs, ELEMENTSOF(host_specs));
        for (size_t i = 0; i < ELEMENTSOF(host_ids); i++) {
                IovirtDevice *d = &f->host->devices[device_of(f->host, host_ids[i].addr)];
                d->vendor = host_ids[i].vendor;
                d->device = host_ids[i].device;
                d->class_code = host_ids[i].class_code;
        }
        for (size_t i = 0; i < f->host->n_devices; i++)
                f->host->devices[i].numa_node = 0;
        f->host->devices[device_of(f->host, "07:00.0")].ids_known = false;
        /* the SR-IOV family: VF n at routing ID 0x8100 + 0x80 + n */
        size_t pf = device_of(f->host, "81:00.0");
        IovirtDevice *d = &f->host->devices[pf];
        d->sriov = true;
        d->sriov_total = 4;
        d->sriov_num = 3;
        d->sriov_offset = 0x80;
        d->sriov_stride = 1;
        d->vfs = calloc(3, sizeof(size_t));
        assert_non_null(d->vfs);
        d->n_vfs = 3;
        static const char *const vfs[] = { "81:10.0", "81:10.1", "81:10.2" };
        for (size_t i = 0; i < ELEMENTSOF(vfs); i++) {
                d->vfs[i] = device_of(f->host, vfs[i]);
                f->host->devices[d->vfs[i]].physfn = pf;
        }
        assert_int_equal(iovirt_verdicts_compute(f->host, &f->verdicts), 0);
        f->in = (IovirtPlanInput) { .host = f->host, .verdicts = f->verdicts, .usage = &f->usage, .state = &f->state,
                                    .consumer = "vm1", .device = IOVIRT_NONE };
        f->policy = iovirt_policy_new();
        assert_non_null(f->policy);
        f->numa = one_node();
        f->req = (IovirtPolicyRequest) {
                .policy = f->policy,
                .numa_policy = -1,
                .numa = f->numa,
                .memtotal = 64 * IOVIRT_GIB,
                .cgroup_max = UINT64_MAX,
                .cgroup_path = "/machine.slice/vm1.scope",
        };
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        for (size_t i = 0; i < f->state.n_records; i++)
                iovirt_record_free(f->state.records[i]);
        free(f->state.records);
        iovirt_bitmap_clear(&f->placement);
        iovirt_numa_facts_free(f->numa);
        iovirt_policy_free(f->policy);
        iovirt_verdicts_free(f->verdicts);
        iovirt_host_free(f->host);
        free(f);
        return 0;
}

static IovirtPolicy *parse_ok(const char *text) {
        IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL;
        assert_non_null(p);
        int r = iovirt_policy_parse_text(p, PATH, text, &error);
        if (r < 0)
                fail_msg("unexpected error %d: %s", r, strna(error));
        return p;
}

static void set_policy(Fixture *f, const char *text) {
        iovirt_policy_free(f->policy);
        f->policy = parse_ok(text);
        f->req.policy = f->policy;
}

/* The consumer runs on these nodes; "" for unknown */
static void set_placement(Fixture *f, const char *nodes, const char *from) {
        assert_int_equal(iovirt_numa_nodelist_parse(nodes, &f->placement), 0);
        f->req.placement = &f->placement;
        f->req.placement_from = from;
}

static void set_node(Fixture *f, const char *addr, int node) {
        f->host->devices[device_of(f->host, addr)].numa_node = node;
}

/* The plan with policy's rules after the built-in ones */
static IovirtPlan *plan_for(Fixture *f, const char *target) {
        IovirtPlanRule rules[IOVIRT_POLICY_N_RULES];
        IovirtPlan *p = NULL;
        _cleanup_free_ char *reason = NULL;
        assert_int_equal(iovirt_policy_rules(&f->req, rules), IOVIRT_POLICY_N_RULES);
        assert_int_equal(iovirt_target_resolve(f->host, target, &f->in.group, &f->in.device, &reason), 0);
        assert_int_equal(iovirt_plan_assign(&f->in, rules, IOVIRT_POLICY_N_RULES, &p), 0);
        assert_non_null(p);
        return p;
}

static const IovirtPlanCheck *check(const IovirtPlan *p, const char *id) {
        for (size_t i = 0; i < p->n_checks; i++)
                if (streq_ptr(p->checks[i].id, id))
                        return &p->checks[i];
        return NULL;
}

/* The check says status, with reason (its name; NULL: none), and its
 * message holds each of the words (a NULL-terminated list) */
static void assert_check(const IovirtPlan *p, const char *id, IovirtPlanStatus status, const char *reason, ...) {
        const IovirtPlanCheck *c = check(p, id);
        if (!c)
                fail_msg("no check %s", id);
        if (c->status != status || !streq_ptr(iovirt_reason_name(c->reason), reason))
                fail_msg("check %s: %s/%s \"%s\"; expected %s/%s", id, iovirt_plan_status_name(c->status),
                         strna(iovirt_reason_name(c->reason)), c->message, iovirt_plan_status_name(status),
                         strna(reason));
        va_list ap;
        va_start(ap, reason);
        for (const char *w; (w = va_arg(ap, const char *));)
                if (!strstr(c->message, w))
                        fail_msg("check %s: \"%s\" does not say \"%s\"", id, c->message, w);
        va_end(ap);
}

static void assert_silent(const IovirtPlan *p, const char *id) {
        const IovirtPlanCheck *c = check(p, id);
        if (c)
                fail_msg("check %s should say nothing, says %s \"%s\"", id, iovirt_plan_status_name(c->status),
                         c->message);
}

/* A record of group for consumer with n functions and its holder */
static void add_record(Fixture *f, int group, const char *consumer, size_t n, IovirtHolder holder) {
        IovirtRecord *r = calloc(1, sizeof(IovirtRecord));
        assert_non_null(r);
        r->group = group;
        r->consumer = strdup(consumer);
        r->phase = IOVIRT_PHASE_ASSIGNED;
        r->functions = calloc(n, sizeof(IovirtFunctionRecord));
        r->n_functions = n;
        for (size_t i = 0; i < n; i++) {
                snprintf(r->functions[i].address, IOVIRT_ADDRESS_MAX, "0000:%02x:00.%zu", group, i);
                r->functions[i].original_known = true;
        }
        r->holder = holder;
        assert_int_equal(iovirt_state_put(&f->state, r), 0);
}

/* ---- pools: selectors ---- */

/* The devices the first pool of "Devices=<devices>" matches */
static void assert_matches(const IovirtHost *h, const char *devices, const char *expected) {
        _cleanup_free_ char *text = NULL;
        assert_true(asprintf(&text, "[Pool p]\nDevices=%s\n", devices) > 0);
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok(text);
        assert_int_equal(p->n_pools, 1);
        char buf[1024] = "";
        size_t l = 0;
        for (size_t i = 0; i < h->n_devices; i++)
                if (iovirt_policy_pool_matches(&p->pools[0], h, i))
                        l += (size_t) snprintf(buf + l, sizeof(buf) - l, "%s%s", l ? " " : "", h->devices[i].name);
        if (!streq_ptr(buf, expected))
                fail_msg("Devices=%s matches \"%s\", expected \"%s\"", devices, buf, expected);
}

static void test_selector_id(void **state) {
        Fixture *f = *state;
        assert_matches(f->host, "8086:10d3", "0000:01:00.0");
        assert_matches(f->host, "8086:154c", "0000:81:10.0 0000:81:10.1 0000:81:10.2");
        assert_matches(f->host, "10de:10f0", "0000:02:00.1");
        assert_matches(f->host, "8086:ffff", "");
        /* 07:00.0 is 8086:10fb too, but its IDs are not known: no match */
        assert_matches(f->host, "8086:10fb", "");
        assert_matches(f->host, "8086:*",
                       "0000:01:00.0 0000:05:00.0 0000:81:00.0 0000:81:10.0 0000:81:10.1 0000:81:10.2");
        assert_matches(f->host, "10de:*", "0000:02:00.0 0000:02:00.1");
        assert_matches(f->host, "1234:*", "");
}

static void test_selector_class(void **state) {
        Fixture *f = *state;
        static const char *const nics =
                "0000:01:00.0 0000:05:00.0 0000:81:00.0 0000:81:10.0 0000:81:10.1 0000:81:10.2";
        assert_matches(f->host, "class=0x02", nics);
        assert_matches(f->host, "class=02", nics);
        assert_matches(f->host, "class=net", nics);
        assert_matches(f->host, "class=0x0200", nics);
        assert_matches(f->host, "class=0x0201", "");
        assert_matches(f->host, "class=display", "0000:02:00.0");
        assert_matches(f->host, "class=0x0403", "0000:02:00.1");
        assert_matches(f->host, "class=multimedia", "0000:02:00.1");
        assert_matches(f->host, "class=0x010802", "0000:06:00.0");
        assert_matches(f->host, "class=nvme", "0000:06:00.0");
        assert_matches(f->host, "class=0x010801", "");
        assert_matches(f->host, "class=accelerator", "0000:08:00.0 0000:08:00.1 0000:08:00.2");
        /* the builder's bridges */
        assert_matches(f->host, "class=0x0604", "0000:00:01.0 0000:00:02.0 0000:00:03.0 0000:00:04.0 0000:00:05.0 "
                                                "0000:00:06.0 0000:03:00.0 0000:04:01.0 0000:04:02.0");
}

static void test_selector_address(void **state) {
        Fixture *f = *state;
        assert_matches(f->host, "0000:01:00.0", "0000:01:00.0");
        assert_matches(f->host, "01:00.0", "0000:01:00.0");
        assert_matches(f->host, "0000:02:00.*", "0000:02:00.0 0000:02:00.1");
        assert_matches(f->host, "08:00.*", "0000:08:00.0 0000:08:00.1 0000:08:00.2");
        assert_matches(f->host, "81:10.[01]", "0000:81:10.0 0000:81:10.1");
        assert_matches(f->host, "0000:0[45]:*", "0000:04:01.0 0000:04:02.0 0000:05:00.0");
        assert_matches(f->host, "0000:81:*", "0000:81:00.0 0000:81:10.0 0000:81:10.1 0000:81:10.2");
        assert_matches(f->host, "0001:*:*", "");
        assert_matches(f->host, "09:00.0", "");
}

static void test_selector_driver(void **state) {
        Fixture *f = *state;
        assert_matches(f->host, "driver=igb", "0000:05:00.0");
        assert_matches(f->host, "driver=iavf", "0000:81:10.0 0000:81:10.1 0000:81:10.2");
        assert_matches(f->host, "driver=ig", "");
        assert_matches(f->host, "driver=vfio-pci", "");
}

static void test_selector_pf_range(void **state) {
        Fixture *f = *state;
        assert_matches(f->host, "0000:81:00.0#0-7", "0000:81:10.0 0000:81:10.1 0000:81:10.2");
        assert_matches(f->host, "81:00.0#1-2", "0000:81:10.1 0000:81:10.2");
        assert_matches(f->host, "0000:81:00.0#0", "0000:81:10.0");
        assert_matches(f->host, "0000:81:00.0#3-7", "");
        /* not a PF: neither it nor anything else matches */
        assert_matches(f->host, "0000:01:00.0#0-7", "");
        assert_matches(f->host, "0000:81:10.0#0-7", "");
}

/* A pool matches what any of its selectors matches */
static void test_selector_union(void **state) {
        Fixture *f = *state;
        assert_matches(f->host, "driver=igb 0000:81:00.0#2 class=display",
                       "0000:02:00.0 0000:05:00.0 0000:81:10.2");
}

static void test_unmatched(void **state) {
        Fixture *f = *state;
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok("[Pool ok]\n"
                                                                 "Devices=driver=igb\n"
                                                                 "[Pool nics]\n"
                                                                 "Consumers=vm-*\n"
                                                                 "Devices=8086:10d3 8086:154d\n"
                                                                 "        class=usb\n");
        char **v = NULL;
        assert_int_equal(iovirt_policy_unmatched(p, f->host, &v), 2);
        assert_non_null(v);
        assert_string_equal(v[0], PATH ":5: pool 'nics': '8086:154d' matches no device on this host");
        assert_string_equal(v[1], PATH ":5: pool 'nics': 'class=usb' matches no device on this host");
        assert_null(v[2]);
        for (size_t i = 0; v[i]; i++)
                free(v[i]);
        free(v);

        _cleanup_(iovirt_policy_freep) IovirtPolicy *all =
                parse_ok("[Pool ok]\nDevices=driver=igb 0000:81:* 0000:00:00.0\n");
        v = NULL;
        assert_int_equal(iovirt_policy_unmatched(all, f->host, &v), 0);
        assert_true(!v || !v[0]);
        free(v);
}

/* ---- pools: the check ---- */

static void test_pool_none_silent(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_silent(p, "policy");
        assert_silent(p, "pool");
        assert_null(iovirt_plan_refusal(p));
        assert_null(iovirt_policy_pool_of(f->policy, f->host, verdict(f->host, f->verdicts, 2)));
        iovirt_plan_free(p);
}

static void test_pool_not_in_pool(void **state) {
        Fixture *f = *state;
        set_policy(f, "[Pool nvme]\nDevices=class=nvme\n");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-in-pool", "0000:01:00.0 is in no pool", "pools are defined",
                     NULL);
        assert_null(strstr(check(p, "pool")->message, "whole group"));
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "pool"));
        iovirt_plan_free(p);

        /* in it: the pool and where it was defined are named */
        set_policy(f, "# nics\n[Pool nics]\nDevices=8086:10d3\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "0000:01:00.0 is in pool 'nics' (" PATH ":2)", "admits vm1",
                     NULL);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

static void test_pool_whole_group(void **state) {
        Fixture *f = *state;
        const IovirtGroupVerdict *gv = verdict(f->host, f->verdicts, 4);
        assert_int_equal(gv->n_endpoints, 2);

        set_policy(f, "[Pool gpu]\nDevices=0000:02:00.0\n");
        assert_null(iovirt_policy_pool_of(f->policy, f->host, gv));
        IovirtPlan *p = plan_for(f, "02:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-in-pool",
                     "0000:02:00.0 is in no pool that holds its whole group",
                     NULL);
        iovirt_plan_free(p);

        /* each function in a pool, but no pool holds both */
        set_policy(f, "[Pool video]\nDevices=class=display\n[Pool audio]\nDevices=class=multimedia\n");
        assert_null(iovirt_policy_pool_of(f->policy, f->host, gv));
        p = plan_for(f, "group:4");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-in-pool",
                     "0000:02:00.0 is in no pool that holds its whole group",
                     NULL);
        iovirt_plan_free(p);

        /* the first pool holding both */
        set_policy(f, "[Pool video]\nDevices=class=display\n[Pool gpu]\nDevices=0000:02:00.0 0000:02:00.1\n"
                      "[Pool nvidia]\nDevices=10de:*\n");
        const IovirtPolicyPool *pool = iovirt_policy_pool_of(f->policy, f->host, gv);
        assert_non_null(pool);
        assert_string_equal(pool->name, "gpu");
        p = plan_for(f, "02:00.1");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "0000:02:00.1 is in pool 'gpu'", NULL);
        iovirt_plan_free(p);
}

static void test_pool_consumers(void **state) {
        Fixture *f = *state;
        set_policy(f, "[Pool nics]\nDevices=8086:*\nConsumers=vm-* pid:*\n");
        static const char *const admitted[] = { "vm-web", "vm-", "pid:1234" };
        for (size_t i = 0; i < ELEMENTSOF(admitted); i++) {
                f->in.consumer = admitted[i];
                IovirtPlan *p = plan_for(f, "01:00.0");
                assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", admitted[i], NULL);
                iovirt_plan_free(p);
        }
        static const char *const refused[] = { "web", "vm1", "libvirt:vm-web", "xvm-web" };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_free_ char *quoted = NULL;
                assert_true(asprintf(&quoted, "does not admit '%s'", refused[i]) > 0);
                f->in.consumer = refused[i];
                IovirtPlan *p = plan_for(f, "01:00.0");
                assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-admitted",
                             "in pool 'nics', whose Consumers= (" PATH ":3)",
                             quoted, NULL);
                iovirt_plan_free(p);
        }

        /* one pattern is a pattern too */
        set_policy(f, "[Pool web]\nDevices=8086:*\nConsumers=libvirt:web-?\n");
        f->in.consumer = "libvirt:web-1";
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'web'", "admits libvirt:web-1", NULL);
        iovirt_plan_free(p);
        f->in.consumer = "libvirt:web-10";
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-admitted", "does not admit 'libvirt:web-10'", NULL);
        iovirt_plan_free(p);
}

static void test_pool_users_groups(void **state) {
        Fixture *f = *state;
        set_policy(f, "[Pool nics]\nDevices=8086:10d3\nUsers=alice 1001\nGroups=kvm 2000\n");
        IovirtPlan *p;

        /* by uid */
        f->req.caller_uid = 1001;
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);

        /* by user name */
        f->req.caller_uid = 1005;
        f->req.caller_name = "alice";
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);

        /* by gid, a supplementary one */
        const uint32_t gids[] = { 1006, 2000 };
        f->req.caller_uid = 1006;
        f->req.caller_name = "bob";
        f->req.caller_gids = gids;
        f->req.n_caller_gids = ELEMENTSOF(gids);
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);

        /* by group name */
        const uint32_t gids2[] = { 1006, 36 };
        const char *const names2[] = { "bob", "kvm" };
        f->req.caller_gids = gids2;
        f->req.caller_group_names = names2;
        f->req.n_caller_gids = ELEMENTSOF(gids2);
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);

        /* none of them; a user name is not a group name */
        const uint32_t gids3[] = { 1007, 37 };
        const char *const names3[] = { "carol", "alice" };
        f->req.caller_uid = 1007;
        f->req.caller_name = "carol";
        f->req.caller_gids = gids3;
        f->req.caller_group_names = names3;
        f->req.n_caller_gids = ELEMENTSOF(gids3);
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-admitted", "uid 1007 (carol) may not take from",
                     "neither its Users= nor its Groups=", NULL);
        iovirt_plan_free(p);

        /* without a name: a name-only entry does not match a NULL name */
        f->req.caller_name = NULL;
        f->req.caller_group_names = NULL;
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-admitted", "uid 1007 (no user name)", NULL);
        iovirt_plan_free(p);

        /* root always */
        f->req.caller_uid = 0;
        f->req.n_caller_gids = 0;
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);

        /* a pool without Users= and Groups=: anyone */
        set_policy(f, "[Pool nics]\nDevices=8086:10d3\n");
        f->req.caller_uid = 1007;
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);
}

static void test_pool_isolation(void **state) {
        Fixture *f = *state;
        const IovirtGroupVerdict *gv = verdict(f->host, f->verdicts, 7);
        assert_int_equal(gv->isolation, IOVIRT_LEAKY);

        /* strict (the default) refuses a leaky group even when the request accepts it */
        set_policy(f, "[Pool igb]\nDevices=driver=igb\n");
        f->in.accept = IOVIRT_ACCEPT_LEAKY;
        IovirtPlan *p = plan_for(f, "05:00.0");
        assert_check(p, "isolation", IOVIRT_PLAN_ACCEPTED, "not-isolated", NULL);
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-admitted", "0000:05:00.0 is in pool 'igb'", "Isolation=strict",
                     "--accept-leaky is not honoured", NULL);
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "pool"));
        iovirt_plan_free(p);

        set_policy(f, "[Pool igb]\nDevices=driver=igb\nIsolation=strict\n");
        p = plan_for(f, "05:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, "not-admitted", "Isolation=strict", NULL);
        iovirt_plan_free(p);

        /* an isolated group in a strict pool, accepted or not, passes */
        set_policy(f, "[Pool nics]\nDevices=driver=igb 8086:10d3\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'nics'", NULL);
        iovirt_plan_free(p);

        /* accept-leaky honours the request */
        set_policy(f, "[Pool igb]\nDevices=driver=igb\nIsolation=accept-leaky\n");
        p = plan_for(f, "05:00.0");
        assert_check(p, "pool", IOVIRT_PLAN_PASS, NULL, "in pool 'igb'", NULL);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

/* ---- owner ---- */

static void test_owner(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_silent(p, "owner");       /* a name */
        iovirt_plan_free(p);

        f->in.consumer = "pid:4242";
        f->req.pid = 4242;
        f->req.process_error = -ESRCH;
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_FAIL, "consumer-gone", "no process 4242", "consumer pid:4242", NULL);
        iovirt_plan_free(p);

        f->req.process_error = -EACCES;
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_FAIL, "facts-unreadable", "Process 4242 could not be pinned or read",
                     strerror(EACCES), NULL);
        iovirt_plan_free(p);

        f->req.process_error = 0;
        f->req.process_uid = 1001;
        f->req.caller_uid = 1000;
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_FAIL, "not-owner", "Process 4242 belongs to uid 1001",
                     "uid 1000 may name only its own processes", NULL);
        iovirt_plan_free(p);

        f->req.caller_uid = 1001;
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_PASS, NULL, "pid:4242 is process 4242 of uid 1001", NULL);
        iovirt_plan_free(p);

        f->req.caller_uid = 0;
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_PASS, NULL, "process 4242 of uid 1001", "pidfd", NULL);
        iovirt_plan_free(p);

        /* records of an earlier process of the same PID: its devices and limit are not the new one's */
        f->req.process_start = 777;
        add_record(f, 4, "pid:4242", 1, (IovirtHolder) { .known = true, .pid = 4242, .pid_start = 555 });
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_FAIL, "consumer-gone", "holds group 4 for an earlier process of PID 4242",
                     "iovirtctl release --consumer pid:4242", NULL);
        iovirt_plan_free(p);
        /* the same process's own records are its own */
        f->req.process_start = 555;
        p = plan_for(f, "01:00.0");
        assert_check(p, "owner", IOVIRT_PLAN_PASS, NULL, "process 4242 of uid 1001", NULL);
        iovirt_plan_free(p);
}

/* ---- NUMA ---- */

static void test_numa_for(void **state) {
        Fixture *f = *state;
        f->req.policy = NULL;
        assert_int_equal(iovirt_policy_numa_for(&f->req, NULL), IOVIRT_NUMA_LEGACY);
        f->req.policy = f->policy;
        assert_int_equal(iovirt_policy_numa_for(&f->req, NULL), IOVIRT_NUMA_LEGACY);
        f->req.numa_policy = IOVIRT_NUMA_PREFERRED;
        assert_int_equal(iovirt_policy_numa_for(&f->req, NULL), IOVIRT_NUMA_PREFERRED);

        set_policy(f, "[Numa]\nDefaultPolicy=required\nAllowPolicyChoice=no\n"
                      "[Pool open]\nDevices=8086:*\nNumaPolicy=socket\nAllowNumaPolicyChoice=yes\n"
                      "[Pool plain]\nDevices=10de:*\n");
        const IovirtPolicyPool *open = iovirt_policy_find_pool(f->policy, "open");
        const IovirtPolicyPool *plain = iovirt_policy_find_pool(f->policy, "plain");
        assert_non_null(open);
        assert_non_null(plain);
        /* asked, not allowed: the configured one */
        assert_int_equal(iovirt_policy_numa_for(&f->req, NULL), IOVIRT_NUMA_REQUIRED);
        assert_int_equal(iovirt_policy_numa_for(&f->req, plain), IOVIRT_NUMA_REQUIRED);
        /* the pool allows a choice */
        assert_int_equal(iovirt_policy_numa_for(&f->req, open), IOVIRT_NUMA_PREFERRED);
        f->req.numa_policy = -1;
        assert_int_equal(iovirt_policy_numa_for(&f->req, open), IOVIRT_NUMA_SOCKET);
        assert_int_equal(iovirt_policy_numa_for(&f->req, plain), IOVIRT_NUMA_REQUIRED);
}

static void test_numa_none_and_one_node(void **state) {
        Fixture *f = *state;
        IovirtPlan *p;

        /* one node: nothing to choose between, even where required */
        set_policy(f, "[Numa]\nDefaultPolicy=required\n");
        set_node(f, "01:00.0", 0);
        set_placement(f, "0", "--numa-node 0");
        p = plan_for(f, "01:00.0");
        assert_silent(p, "numa");
        iovirt_plan_free(p);

        /* policy none, on two and four nodes, for a remote device */
        set_policy(f, "[Numa]\nDefaultPolicy=none\n");
        set_node(f, "01:00.0", 1);
        set_numa(f, two_nodes());
        p = plan_for(f, "01:00.0");
        assert_silent(p, "numa");
        iovirt_plan_free(p);
        set_numa(f, four_nodes());
        set_node(f, "01:00.0", 3);
        p = plan_for(f, "01:00.0");
        assert_silent(p, "numa");
        iovirt_plan_free(p);

        /* none asked for, where the policy lets a request choose */
        set_policy(f, "[Numa]\nDefaultPolicy=required\n");
        f->req.numa_policy = IOVIRT_NUMA_NONE;
        p = plan_for(f, "01:00.0");
        assert_silent(p, "numa");
        iovirt_plan_free(p);
}

static void test_numa_required_remote(void **state) {
        Fixture *f = *state;
        set_policy(f, "[Numa]\nDefaultPolicy=required\n");
        set_numa(f, two_nodes());
        set_node(f, "01:00.0", 1);
        set_placement(f, "0", "--numa-node 0");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-remote", "0000:01:00.0 is on NUMA node 1",
                     "vm1 (--numa-node 0) runs on node 0", "'required' requires the same node", NULL);
        assert_string_equal(check(p, "numa")->override, "--numa-policy preferred");
        iovirt_plan_free(p);

        /* local passes */
        set_node(f, "01:00.0", 0);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_PASS, NULL, "0000:01:00.0 is on NUMA node 0, where vm1", NULL);
        iovirt_plan_free(p);

        /* four nodes: node 1 is on the consumer's socket, but required wants its node; a pool names itself */
        set_policy(f, "[Pool nics]\nDevices=8086:10d3\nNumaPolicy=required\nAllowNumaPolicyChoice=no\n");
        set_numa(f, four_nodes());
        set_node(f, "01:00.0", 1);
        set_placement(f, "0", NULL);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-remote", "0000:01:00.0 is on NUMA node 1", "vm1 runs on node 0",
                     "pool 'nics' requires the same node", NULL);
        assert_null(check(p, "numa")->override);     /* no choice: nothing to ask for */
        iovirt_plan_free(p);

        /* the consumer spans nodes 2-3, the device on node 2 is local */
        set_placement(f, "2-3", "its Cpus_allowed_list");
        set_node(f, "01:00.0", 2);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_PASS, NULL, "NUMA node 2", "nodes 2-3", NULL);
        iovirt_plan_free(p);

        /* legacy refuses a known remote node too */
        set_policy(f, "");
        set_node(f, "01:00.0", 0);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-remote", "NUMA node 0", "nodes 2-3", NULL);
        iovirt_plan_free(p);
}

static void test_numa_unknown(void **state) {
        Fixture *f = *state;
        set_numa(f, two_nodes());
        set_placement(f, "0", NULL);
        set_node(f, "01:00.0", -1);

        set_policy(f, "[Numa]\nDefaultPolicy=required\n");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-unknown", "the NUMA node of 0000:01:00.0 is unknown",
                     "refuses a device of unknown node", NULL);
        iovirt_plan_free(p);

        /* a node the facts do not have is unknown too */
        set_node(f, "01:00.0", 7);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-unknown", "unknown", NULL);
        iovirt_plan_free(p);

        /* legacy (the default) allows it, and says so */
        set_node(f, "01:00.0", -1);
        set_policy(f, "");
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_WARN, "numa-unknown", "allows a device of unknown node", NULL);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);

        /* where the consumer runs is unknown */
        set_node(f, "01:00.0", 1);
        set_placement(f, "", NULL);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_WARN, "numa-unknown", "where vm1 runs is unknown", "allows it", NULL);
        iovirt_plan_free(p);
        f->req.placement = NULL;
        set_policy(f, "[Numa]\nDefaultPolicy=socket\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-unknown", "where vm1 runs is unknown", "refuses", NULL);
        iovirt_plan_free(p);
}

static void test_numa_preferred(void **state) {
        Fixture *f = *state;
        set_policy(f, "[Numa]\nDefaultPolicy=preferred\n");
        set_numa(f, two_nodes());
        set_placement(f, "0", NULL);
        set_node(f, "01:00.0", 1);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_WARN, "numa-remote", "0000:01:00.0 is on NUMA node 1", "runs on node 0",
                     "(distance 21)", "prefers the same node and takes another", NULL);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);

        /* asked for, over legacy */
        set_policy(f, "");
        f->req.numa_policy = IOVIRT_NUMA_PREFERRED;
        set_numa(f, four_nodes());
        set_node(f, "01:00.0", 1);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_WARN, "numa-remote", "(distance 11)", NULL);
        iovirt_plan_free(p);
}

static void test_numa_socket(void **state) {
        Fixture *f = *state;
        set_policy(f, "[Numa]\nDefaultPolicy=socket\n");
        set_numa(f, four_nodes());
        set_placement(f, "0", NULL);
        set_node(f, "01:00.0", 1);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_PASS, NULL, "0000:01:00.0 is on NUMA node 1 (socket 0)",
                     "vm1 runs on node 0 (socket 0)", NULL);
        iovirt_plan_free(p);

        set_node(f, "01:00.0", 2);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-remote", "NUMA node 2 (socket 1)", "node 0 (socket 0)",
                     "requires the same socket", NULL);
        iovirt_plan_free(p);

        /* two nodes, a socket each: another node is another socket */
        set_numa(f, two_nodes());
        set_node(f, "01:00.0", 1);
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "numa-remote", "(socket 1)", NULL);
        iovirt_plan_free(p);
}

static void test_numa_choice_refused(void **state) {
        Fixture *f = *state;
        set_numa(f, two_nodes());
        set_placement(f, "0", NULL);

        set_policy(f, "[Numa]\nAllowPolicyChoice=no\n");
        f->req.numa_policy = IOVIRT_NUMA_PREFERRED;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "invalid", "The policy does not let a request choose",
                     "[Numa] AllowPolicyChoice=no, /etc/iovirt/policy.d/50-test.conf:2", "drop --numa-policy", NULL);
        iovirt_plan_free(p);

        /* the pool's word wins over [Numa]'s, both ways */
        set_policy(f, "[Pool nics]\nDevices=8086:10d3\nAllowNumaPolicyChoice=no\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "invalid", "Pool 'nics' does not let a request choose",
                     "AllowNumaPolicyChoice=no, /etc/iovirt/policy.d/50-test.conf:3", NULL);
        iovirt_plan_free(p);

        set_policy(f, "[Numa]\nAllowPolicyChoice=no\n[Pool nics]\nDevices=8086:10d3\nAllowNumaPolicyChoice=yes\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_PASS, NULL, "NUMA node 0", NULL);
        iovirt_plan_free(p);

        /* asking for none is asking too */
        set_policy(f, "[Numa]\nAllowPolicyChoice=no\n");
        f->req.numa_policy = IOVIRT_NUMA_NONE;
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "invalid", "AllowPolicyChoice=no", NULL);
        iovirt_plan_free(p);

        /* nothing asked: no refusal */
        set_policy(f, "[Numa]\nAllowPolicyChoice=no\n");
        f->req.numa_policy = -1;
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_PASS, NULL, NULL);
        iovirt_plan_free(p);
}

static void test_numa_unreadable(void **state) {
        Fixture *f = *state;
        set_numa(f, NULL);
        f->req.numa_error = -EACCES;

        IovirtPlan *p = plan_for(f, "01:00.0");        /* legacy, the default */
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "facts-unreadable", "NUMA nodes could not be read",
                     strerror(EACCES), "NUMA policy 'legacy' cannot be judged", NULL);
        iovirt_plan_free(p);

        f->req.numa_policy = IOVIRT_NUMA_PREFERRED;
        p = plan_for(f, "01:00.0");
        assert_check(p, "numa", IOVIRT_PLAN_FAIL, "facts-unreadable", "'preferred'", NULL);
        iovirt_plan_free(p);

        /* no policy to judge: nothing to read */
        f->req.numa_policy = -1;
        set_policy(f, "[Numa]\nDefaultPolicy=none\n");
        p = plan_for(f, "01:00.0");
        assert_silent(p, "numa");
        iovirt_plan_free(p);
}

/* ---- pinned memory ---- */

static void test_pinned_tally(void **state) {
        Fixture *f = *state;
        IovirtPinnedTally t;

        assert_int_equal(iovirt_pinned_tally(&f->state, "vm1", &t), 0);
        assert_int_equal(t.mine, 0);
        assert_int_equal(t.others, 0);
        assert_null(t.my_holder);

        /* vm1: two functions with a vIOMMU, then one (the vIOMMU of any record
         * counts): 3 functions x 4 GiB */
        add_record(f, 2, "vm1", 2,
                   (IovirtHolder) { .known = true, .uid = 1000, .memory = 4 * IOVIRT_GIB, .viommu = true });
        add_record(f, 4, "vm1", 1, (IovirtHolder) { .known = true, .uid = 1000, .memory = 4 * IOVIRT_GIB });
        /* vm2: two functions, no vIOMMU: 2 GiB once */
        add_record(f, 12, "vm2", 2, (IovirtHolder) { .known = true, .memory = 2 * IOVIRT_GIB });
        /* vm3: a record from before policy: nothing known, nothing counted */
        add_record(f, 10, "vm3", 1, (IovirtHolder) {});
        /* a record rebuilt after loss: no consumer */
        add_record(f, 15, "", 1, (IovirtHolder) { .known = true, .memory = 8 * IOVIRT_GIB });

        assert_int_equal(iovirt_pinned_tally(&f->state, "vm1", &t), 0);
        assert_int_equal(t.mine, 12 * IOVIRT_GIB);
        assert_int_equal(t.others, 2 * IOVIRT_GIB);
        assert_int_equal(t.my_functions, 3);
        assert_int_equal(t.my_memory, 4 * IOVIRT_GIB);
        assert_true(t.my_viommu);
        assert_non_null(t.my_holder);
        assert_int_equal(t.my_holder->uid, 1000);

        assert_int_equal(iovirt_pinned_tally(&f->state, "vm2", &t), 0);
        assert_int_equal(t.mine, 2 * IOVIRT_GIB);
        assert_int_equal(t.others, 12 * IOVIRT_GIB);
        assert_int_equal(t.my_functions, 2);
        assert_int_equal(t.my_memory, 2 * IOVIRT_GIB);
        assert_false(t.my_viommu);
        assert_non_null(t.my_holder);

        assert_int_equal(iovirt_pinned_tally(&f->state, "vm3", &t), 0);
        assert_int_equal(t.mine, 0);
        assert_int_equal(t.others, 14 * IOVIRT_GIB);
        assert_int_equal(t.my_functions, 1);
        assert_int_equal(t.my_memory, 0);
        assert_null(t.my_holder);

        assert_int_equal(iovirt_pinned_tally(&f->state, "nobody", &t), 0);
        assert_int_equal(t.mine, 0);
        assert_int_equal(t.others, 14 * IOVIRT_GIB);
        assert_int_equal(t.my_functions, 0);
        assert_null(t.my_holder);

        /* what does not fit in 64 bits is an error, not a wrap */
        add_record(f, 16, "vm4", 1, (IovirtHolder) { .known = true, .memory = UINT64_MAX - IOVIRT_GIB });
        assert_int_equal(iovirt_pinned_tally(&f->state, "vm1", &t), -EOVERFLOW);
}

static void test_memlock_need_rule(void **state) {
        Fixture *f = *state;
        const IovirtPinnedTally none = {};
        IovirtMemlockNeed n;
        f->req.memory = 4 * IOVIRT_GIB;

        /* libvirt's rule: factor x memory + 1 GiB; factor 1 without a vIOMMU, n with one */
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 1, &n), 0);
        assert_int_equal(n.memory, 4 * IOVIRT_GIB);
        assert_int_equal(n.functions, 1);
        assert_int_equal(n.pinned, 4 * IOVIRT_GIB);
        assert_int_equal(n.limit, 5 * IOVIRT_GIB);
        assert_string_equal(n.limit_from, "libvirt's rule");

        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 3, &n), 0);
        assert_int_equal(n.functions, 3);
        assert_int_equal(n.pinned, 4 * IOVIRT_GIB);
        assert_int_equal(n.limit, 5 * IOVIRT_GIB);

        f->req.viommu = true;
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 1, &n), 0);
        assert_true(n.viommu);
        assert_int_equal(n.pinned, 4 * IOVIRT_GIB);
        assert_int_equal(n.limit, 5 * IOVIRT_GIB);

        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 3, &n), 0);
        assert_int_equal(n.pinned, 12 * IOVIRT_GIB);
        assert_int_equal(n.limit, 13 * IOVIRT_GIB);

        /* what the consumer holds counts: 2 held + 1 new, and its vIOMMU */
        f->req.viommu = false;
        const IovirtPinnedTally held = { .mine = 8 * IOVIRT_GIB, .my_functions = 2, .my_memory = 4 * IOVIRT_GIB,
                                         .my_viommu = true };
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &held, 1, &n), 0);
        assert_int_equal(n.functions, 3);
        assert_true(n.viommu);
        assert_int_equal(n.pinned, 12 * IOVIRT_GIB);
        assert_int_equal(n.limit, 13 * IOVIRT_GIB);

        /* no memory in the request: what it was assigned with */
        f->req.memory = 0;
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &held, 1, &n), 0);
        assert_int_equal(n.memory, 4 * IOVIRT_GIB);
        assert_int_equal(n.limit, 13 * IOVIRT_GIB);

        /* nothing known: no limit, nothing pinned */
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 1, &n), 0);
        assert_int_equal(n.memory, 0);
        assert_int_equal(n.limit, 0);
        assert_int_equal(n.pinned, 0);
}

static void test_memlock_need_precedence(void **state) {
        Fixture *f = *state;
        const IovirtPinnedTally none = {};
        IovirtMemlockNeed n;
        set_policy(f, "[Pool gpus]\nDevices=10de:*\nMemlockHardLimit=66G\nMemory=16G\n"
                      "[Pool nics]\nDevices=8086:*\nMemory=8G\n");
        const IovirtPolicyPool *gpus = iovirt_policy_find_pool(f->policy, "gpus");
        const IovirtPolicyPool *nics = iovirt_policy_find_pool(f->policy, "nics");
        assert_non_null(gpus);
        assert_non_null(nics);

        /* the pool's Memory= when the request has none */
        assert_int_equal(iovirt_memlock_need(&f->req, nics, &none, 1, &n), 0);
        assert_int_equal(n.memory, 8 * IOVIRT_GIB);
        assert_int_equal(n.limit, 9 * IOVIRT_GIB);
        assert_string_equal(n.limit_from, "libvirt's rule");
        /* what the consumer was assigned with over the pool's: its guest did not shrink */
        const IovirtPinnedTally held = { .my_memory = 12 * IOVIRT_GIB, .my_functions = 1 };
        assert_int_equal(iovirt_memlock_need(&f->req, nics, &held, 1, &n), 0);
        assert_int_equal(n.memory, 12 * IOVIRT_GIB);
        assert_int_equal(n.functions, 2);
        /* the request's over it */
        f->req.memory = 4 * IOVIRT_GIB;
        assert_int_equal(iovirt_memlock_need(&f->req, nics, &none, 1, &n), 0);
        assert_int_equal(n.memory, 4 * IOVIRT_GIB);
        assert_int_equal(n.limit, 5 * IOVIRT_GIB);

        /* the pool's MemlockHardLimit= beats the rule */
        assert_int_equal(iovirt_memlock_need(&f->req, gpus, &none, 2, &n), 0);
        assert_int_equal(n.limit, 66 * IOVIRT_GIB);
        assert_int_equal(n.pinned, 4 * IOVIRT_GIB);
        assert_non_null(strstr(n.limit_from, "MemlockHardLimit="));
        /* the request's hard limit beats the pool's */
        f->req.hard_limit = 20 * IOVIRT_GIB;
        assert_int_equal(iovirt_memlock_need(&f->req, gpus, &none, 2, &n), 0);
        assert_int_equal(n.limit, 20 * IOVIRT_GIB);
        assert_string_equal(n.limit_from, "--hard-limit");
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 2, &n), 0);
        assert_int_equal(n.limit, 20 * IOVIRT_GIB);
        /* a hard limit without any memory known: the limit, nothing counted */
        f->req.memory = 0;
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 1, &n), 0);
        assert_int_equal(n.memory, 0);
        assert_int_equal(n.limit, 20 * IOVIRT_GIB);
        assert_int_equal(n.pinned, 0);

        /* overflow: an error, not a wrap */
        f->req.hard_limit = 0;
        f->req.memory = UINT64_MAX / 2;
        f->req.viommu = true;
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 3, &n), -EOVERFLOW);
        f->req.viommu = false;
        f->req.memory = UINT64_MAX - 1;       /* the 1 GiB on top does not fit */
        assert_int_equal(iovirt_memlock_need(&f->req, NULL, &none, 1, &n), -EOVERFLOW);
}

static void test_memlock_check_limits(void **state) {
        Fixture *f = *state;
        IovirtPlan *p;
        f->in.consumer = "pid:4242";
        f->req.pid = 4242;

        set_policy(f, "[Pool nics]\nDevices=8086:*\nMemory=4G\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "RLIMIT_MEMLOCK of process 4242 is raised to 5.0 GiB",
                     "(libvirt's rule, 1 VFIO function)", "never lowered", "4.0 GiB asked, 0 B already pinned", NULL);
        iovirt_plan_free(p);

        /* three functions with a vIOMMU */
        set_policy(f, "[Pool acc]\nDevices=class=accelerator\nMemory=4G\n");
        f->req.viommu = true;
        p = plan_for(f, "group:12");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "raised to 13.0 GiB", "3 VFIO functions, vIOMMU",
                     "12.0 GiB asked", NULL);
        iovirt_plan_free(p);
        f->req.viommu = false;

        set_policy(f, "[Pool nics]\nDevices=8086:*\nMemory=4G\nMemlockHardLimit=20G\n");
        p = plan_for(f, "01:00.0");
        /* the process may pin up to its limit: that (less the slack) is what the budget counts */
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "raised to 20.0 GiB", "MemlockHardLimit=",
                     "19.0 GiB asked", NULL);
        iovirt_plan_free(p);
        /* a hard limit past the budget is refused, whatever memory the guest is said to have */
        set_policy(f, "[Pool nics]\nDevices=8086:*\nMemory=4G\nMemlockHardLimit=66G\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "over-budget", "65.0 GiB asked", "budget 60.8 GiB", NULL);
        iovirt_plan_free(p);

        f->req.hard_limit = 6 * IOVIRT_GIB;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "raised to 6.0 GiB (--hard-limit", "5.0 GiB asked", NULL);
        iovirt_plan_free(p);
        /* no memory at all, a hard limit only: counted just the same */
        set_policy(f, "[Pool nics]\nDevices=8086:*\n");
        f->req.hard_limit = 70 * IOVIRT_GIB;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "over-budget", "69.0 GiB asked", NULL);
        iovirt_plan_free(p);
        f->req.hard_limit = 6 * IOVIRT_GIB;
        set_policy(f, "[Pool nics]\nDevices=8086:*\nMemory=4G\n");

        /* a named consumer: what it pins, no limit to raise */
        f->req.hard_limit = 0;
        f->req.pid = 0;
        f->in.consumer = "vm1";
        p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "vm1 pins 4.0 GiB (1 VFIO function)", NULL);
        assert_null(strstr(check(p, "memlock")->message, "RLIMIT_MEMLOCK"));
        iovirt_plan_free(p);
}

/* Assigning again a group the consumer holds adds no function */
static void test_memlock_held_again(void **state) {
        Fixture *f = *state;
        f->in.consumer = "pid:4242";
        f->req.pid = 4242;
        add_record(f, 2, "pid:4242", 1, (IovirtHolder) { .known = true, .pid = 4242, .memory = 4 * IOVIRT_GIB });
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "raised to 5.0 GiB (libvirt's rule, 1 VFIO function)",
                     "0 B asked, 4.0 GiB already pinned", NULL);
        iovirt_plan_free(p);

        /* another group is one more */
        f->req.viommu = true;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL,
                     "raised to 9.0 GiB (libvirt's rule, 2 VFIO functions, vIOMMU)",
                     "4.0 GiB asked, 4.0 GiB already pinned", NULL);
        iovirt_plan_free(p);
}

static void test_memlock_budget(void **state) {
        Fixture *f = *state;
        f->req.memtotal = 4 * IOVIRT_GIB;      /* 5% is below the 512 MiB floor: the budget is 3.5 GiB */
        f->req.memory = 3 * IOVIRT_GIB;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "vm1 pins 3.0 GiB", "3.0 GiB asked, 0 B already pinned",
                     "budget 3.5 GiB (MemTotal 4.0 GiB less a 512.0 MiB reserve): 512.0 MiB left", NULL);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);

        /* vm1 got it; vm2 asks 1 GiB more */
        add_record(f, 2, "vm1", 1, (IovirtHolder) { .known = true, .memory = 3 * IOVIRT_GIB });
        f->in.consumer = "vm2";
        f->req.memory = IOVIRT_GIB;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "over-budget",
                     "Pinning the guest memory of vm2 would break the host's pinned budget",
                     "1.0 GiB asked, 3.0 GiB already pinned, budget 3.5 GiB", NULL);
        iovirt_plan_free(p);

        /* what fits still does */
        f->req.memory = 512 * IOVIRT_MIB;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "0 B left", NULL);
        iovirt_plan_free(p);

        /* vm1 taking one more function without a vIOMMU pins nothing more */
        f->in.consumer = "vm1";
        f->req.memory = 3 * IOVIRT_GIB;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "vm1 pins 3.0 GiB (2 VFIO functions)",
                     "0 B asked, 3.0 GiB already pinned", NULL);
        iovirt_plan_free(p);
        /* ... with one, twice as much */
        f->req.viommu = true;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "over-budget", "3.0 GiB asked, 3.0 GiB already pinned", NULL);
        iovirt_plan_free(p);

        /* a configured reserve has no floor */
        f->req.viommu = false;
        set_policy(f, "[Memory]\nReserve=1%\n");
        f->in.consumer = "vm2";
        f->req.memory = 512 * IOVIRT_MIB;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "less a 41.0 MiB reserve", NULL);
        iovirt_plan_free(p);
}

static void test_memlock_memory_mismatch(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm1", 1, (IovirtHolder) { .known = true, .memory = 4 * IOVIRT_GIB });
        f->req.memory = 8 * IOVIRT_GIB;
        IovirtPlan *p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "invalid", "vm1 holds devices with a guest memory of 4.0 GiB",
                     "must name the same (or none), not 8.0 GiB", NULL);
        iovirt_plan_free(p);

        f->req.memory = 4 * IOVIRT_GIB;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "vm1 pins 4.0 GiB (2 VFIO functions)", NULL);
        iovirt_plan_free(p);

        f->req.memory = 0;
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_PASS, NULL, "vm1 pins 4.0 GiB (2 VFIO functions)", NULL);
        iovirt_plan_free(p);
}

static void test_memlock_memtotal_unreadable(void **state) {
        Fixture *f = *state;
        f->req.memtotal = 0;
        f->req.memtotal_error = -ENOENT;
        f->req.memory = 4 * IOVIRT_GIB;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "facts-unreadable", "MemTotal could not be read",
                     strerror(ENOENT), "pinned budget cannot be checked", NULL);
        iovirt_plan_free(p);
}

static void test_memlock_memory_unknown(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_silent(p, "memlock");             /* a name: nothing to raise, nothing to count */
        iovirt_plan_free(p);

        f->in.consumer = "pid:4242";
        f->req.pid = 4242;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_WARN, NULL, "The guest memory of pid:4242 is not known",
                     "RLIMIT_MEMLOCK stays as it is", NULL);
        assert_string_equal(check(p, "memlock")->override, "--memory SIZE");
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

static void test_memlock_overflow(void **state) {
        Fixture *f = *state;
        f->in.consumer = "pid:4242";
        f->req.pid = 4242;
        f->req.memory = UINT64_MAX / 2;
        f->req.viommu = true;
        f->req.cgroup_max = 4 * IOVIRT_GIB;
        IovirtPlan *p = plan_for(f, "group:12");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "invalid", "The pinned memory of pid:4242 does not fit in 64 bits",
                     "--memory", NULL);
        assert_silent(p, "memory-cgroup");       /* memlock says so */
        iovirt_plan_free(p);
        f->req.memory = UINT64_MAX - IOVIRT_GIB;
        p = plan_for(f, "group:12");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "invalid", "does not fit in 64 bits", NULL);
        iovirt_plan_free(p);

        /* another consumer's record that does not fit: refused, not wrapped */
        f->req.memory = 4 * IOVIRT_GIB;
        f->req.viommu = false;
        add_record(f, 2, "vm9", 3, (IovirtHolder) { .known = true, .memory = UINT64_MAX / 2, .viommu = true });
        p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "invalid", "does not fit in 64 bits", NULL);
        iovirt_plan_free(p);
}

/* Two consumers' pinned memory, each of which fits in 64 bits, whose sum
 * does not: the budget check must refuse, not see a wrapped sum. */
static void test_memlock_sum_overflow(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm1", 1, (IovirtHolder) { .known = true, .memory = UINT64_C(1) << 63 });
        add_record(f, 4, "vm2", 1, (IovirtHolder) { .known = true, .memory = UINT64_C(1) << 63 });
        f->req.memory = UINT64_C(1) << 63;
        IovirtPlan *p = plan_for(f, "07:00.0");
        assert_check(p, "memlock", IOVIRT_PLAN_FAIL, "invalid", "does not fit in 64 bits", NULL);
        iovirt_plan_free(p);
}

/* ---- memory cgroup ---- */

static void test_memory_cgroup(void **state) {
        Fixture *f = *state;
        IovirtPlan *p;
        f->req.memory = 4 * IOVIRT_GIB;

        /* a name: no process, no cgroup */
        f->req.cgroup_error = -EOPNOTSUPP;
        p = plan_for(f, "01:00.0");
        assert_silent(p, "memory-cgroup");
        iovirt_plan_free(p);

        f->in.consumer = "pid:4242";
        f->req.pid = 4242;
        f->req.cgroup_reason = "the memory controller is in a cgroup v1 hierarchy";
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_WARN, "memory-cgroup",
                     "The memory cgroup of process 4242 cannot be checked: the memory controller is in a cgroup v1",
                     NULL);
        assert_null(strstr(check(p, "memory-cgroup")->message, "refuse"));
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);

        f->req.cgroup_reason = NULL;
        set_policy(f, "[Memory]\nMemoryCgroup=refuse\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_FAIL, "memory-cgroup", "cannot be checked",
                     strerror(EOPNOTSUPP), "(MemoryCgroup=refuse)", NULL);
        iovirt_plan_free(p);

        /* a v2 cgroup that cannot be read: not a host that cannot say, a check
         * that cannot be made: refused whatever MemoryCgroup= says */
        set_policy(f, "[Memory]\nMemoryCgroup=warn\n");
        f->req.cgroup_error = -EACCES;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_FAIL, "facts-unreadable", "could not be read",
                     strerror(EACCES), NULL);
        iovirt_plan_free(p);
        set_policy(f, "[Memory]\nMemoryCgroup=refuse\n");

        /* memory.max below memory + 1 GiB */
        f->req.cgroup_error = 0;
        f->req.cgroup_max = 4 * IOVIRT_GIB + 512 * IOVIRT_MIB;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_FAIL, "memory-cgroup",
                     "cgroup /machine.slice/vm1.scope has memory.max 4.5 GiB, less than the 5.0 GiB",
                     "(MemoryCgroup=refuse)", NULL);
        iovirt_plan_free(p);
        set_policy(f, "[Memory]\nMemoryCgroup=warn\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_WARN, "memory-cgroup", "memory.max 4.5 GiB, less than the 5.0 GiB",
                     NULL);
        iovirt_plan_free(p);

        /* exactly enough, more, and none */
        f->req.cgroup_max = 5 * IOVIRT_GIB;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_PASS, NULL, "room for 4.0 GiB", NULL);
        iovirt_plan_free(p);
        f->req.cgroup_max = 64 * IOVIRT_GIB;
        set_policy(f, "[Memory]\nMemoryCgroup=refuse\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_PASS, NULL, "memory.max 64.0 GiB, room for 4.0 GiB", NULL);
        iovirt_plan_free(p);
        f->req.cgroup_max = UINT64_MAX;
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_PASS, NULL, "has no memory.max", NULL);
        iovirt_plan_free(p);

        /* the memory from the pool */
        f->req.memory = 0;
        f->req.cgroup_max = 4 * IOVIRT_GIB;
        set_policy(f, "[Pool nics]\nDevices=8086:*\nMemory=8G\n");
        p = plan_for(f, "01:00.0");
        assert_check(p, "memory-cgroup", IOVIRT_PLAN_WARN, "memory-cgroup", "less than the 9.0 GiB", NULL);
        iovirt_plan_free(p);

        /* no memory known: nothing to check */
        set_policy(f, "");
        p = plan_for(f, "01:00.0");
        assert_silent(p, "memory-cgroup");
        iovirt_plan_free(p);

        /* a process that could not be read: owner says so */
        f->req.memory = 4 * IOVIRT_GIB;
        f->req.process_error = -ESRCH;
        p = plan_for(f, "01:00.0");
        assert_silent(p, "memory-cgroup");
        assert_check(p, "owner", IOVIRT_PLAN_FAIL, "consumer-gone", NULL);
        iovirt_plan_free(p);
}

/* ---- the policy itself ---- */

static void test_policy_unreadable(void **state) {
        Fixture *f = *state;
        f->req.policy = NULL;
        f->req.policy_error = PATH ":3: unknown section [Global]";
        f->req.memory = 4 * IOVIRT_GIB;
        f->req.memtotal = 0;
        set_numa(f, NULL);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "policy", IOVIRT_PLAN_FAIL, "policy-unreadable",
                     "The policy could not be read (" PATH ":3: unknown section [Global])", "iovirtctl reload", NULL);
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "policy"));
        /* the rest has no policy to judge by */
        assert_silent(p, "pool");
        assert_silent(p, "numa");
        assert_silent(p, "memlock");
        assert_silent(p, "memory-cgroup");
        iovirt_plan_free(p);

        f->req.policy_error = NULL;
        p = plan_for(f, "01:00.0");
        assert_check(p, "policy", IOVIRT_PLAN_FAIL, "policy-unreadable", "could not be read (n/a)", NULL);
        iovirt_plan_free(p);
}

static void test_rules_in_order(void **state) {
        Fixture *f = *state;
        IovirtPlanRule rules[IOVIRT_POLICY_N_RULES];
        static const char *const ids[] = { "policy", "pool", "owner", "numa", "memlock", "memory-cgroup" };
        assert_int_equal(iovirt_policy_rules(&f->req, rules), ELEMENTSOF(ids));
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                assert_string_equal(rules[i].id, ids[i]);
                assert_ptr_equal(rules[i].userdata, &f->req);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_selector_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_selector_class, setup, teardown),
                cmocka_unit_test_setup_teardown(test_selector_address, setup, teardown),
                cmocka_unit_test_setup_teardown(test_selector_driver, setup, teardown),
                cmocka_unit_test_setup_teardown(test_selector_pf_range, setup, teardown),
                cmocka_unit_test_setup_teardown(test_selector_union, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unmatched, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_none_silent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_not_in_pool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_whole_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_consumers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_users_groups, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_isolation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_for, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_none_and_one_node, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_required_remote, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_unknown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_preferred, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_socket, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_choice_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_numa_unreadable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pinned_tally, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_need_rule, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_need_precedence, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_check_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_held_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_budget, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_memory_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_memtotal_unreadable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_memory_unknown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_overflow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memlock_sum_overflow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memory_cgroup, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policy_unreadable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rules_in_order, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
