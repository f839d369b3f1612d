/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "iovirt-numa.h"
#include "iovirt-util.h"
#include "tree.h"

static IovirtBitmap nodes(const char *list) {
        IovirtBitmap b = {};
        assert_int_equal(iovirt_numa_nodelist_parse(list, &b), 0);
        return b;
}

static void assert_list(const IovirtBitmap *b, const char *expected) {
        char *s = NULL;
        assert_int_equal(iovirt_bitmap_format(b, &s), 0);
        assert_string_equal(s, expected);
        free(s);
}

static void test_lists(void **state) {
        IovirtBitmap b = {};
        assert_int_equal(iovirt_numa_cpulist_parse("0-3,8-11\n", &b), 0);
        assert_int_equal(iovirt_bitmap_count(&b), 8);
        assert_true(iovirt_bitmap_test(&b, 3));
        assert_false(iovirt_bitmap_test(&b, 4));
        assert_true(iovirt_bitmap_test(&b, 11));
        assert_int_equal(iovirt_bitmap_next(&b, 4), 8);
        assert_int_equal(iovirt_bitmap_next(&b, 12), -1);
        assert_list(&b, "0-3,8-11");
        assert_int_equal(iovirt_numa_cpulist_parse("5", &b), 0);
        assert_list(&b, "5");
        assert_int_equal(iovirt_numa_cpulist_parse("0,2,4-5,63-65,127", &b), 0);
        assert_list(&b, "0,2,4-5,63-65,127");
        assert_int_equal(iovirt_numa_cpulist_parse("", &b), 0);
        assert_int_equal(iovirt_bitmap_count(&b), 0);
        assert_list(&b, "");
        assert_int_equal(iovirt_numa_cpulist_parse("\n", &b), 0);     /* a memory-only node */
        assert_int_equal(iovirt_bitmap_count(&b), 0);

        const char *bad[] = { "3-1", "a", "1,", "1,,2", "-1", "1-", " 1", "1 ", "1\n2", "0-3:2/4", ",", "\n\n" };
        assert_int_equal(iovirt_numa_cpulist_parse("1", &b), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (iovirt_numa_cpulist_parse(bad[i], &b) != -EINVAL)
                        fail_msg("'%s' was not refused", bad[i]);
                assert_list(&b, "1");   /* untouched */
        }
        assert_int_equal(iovirt_numa_cpulist_parse(NULL, &b), -EINVAL);
        assert_int_equal(iovirt_numa_cpulist_parse("65536", &b), -ERANGE);
        assert_int_equal(iovirt_numa_cpulist_parse("0-99999999999999999999", &b), -ERANGE);
        assert_int_equal(iovirt_numa_cpulist_parse("65535", &b), 0);
        assert_int_equal(iovirt_numa_nodelist_parse("1024", &b), -ERANGE);
        assert_int_equal(iovirt_numa_nodelist_parse("0-1023", &b), 0);
        assert_int_equal(iovirt_bitmap_count(&b), 1024);
        iovirt_bitmap_clear(&b);
}

/* Two sockets, one node each */
static IovirtNumaNode two[] = {
        { .id = 0, .socket = 0, .distance = (uint8_t[]) { 10, 21 }, .n_distance = 2 },
        { .id = 1, .socket = 1, .distance = (uint8_t[]) { 21, 10 }, .n_distance = 2 },
};
static const IovirtNumaFacts two_nodes = { two, ELEMENTSOF(two) };

/* Two sockets of two sub-NUMA clusters each: nodes 0,1 on socket 0, 2,3 on 1 */
static IovirtNumaNode four[] = {
        { .id = 0, .socket = 0, .distance = (uint8_t[]) { 10, 11, 20, 22 }, .n_distance = 4 },
        { .id = 1, .socket = 0, .distance = (uint8_t[]) { 11, 10, 22, 20 }, .n_distance = 4 },
        { .id = 2, .socket = 1, .distance = (uint8_t[]) { 20, 22, 10, 11 }, .n_distance = 4 },
        { .id = 3, .socket = 1, .distance = (uint8_t[]) { 22, 20, 11, 10 }, .n_distance = 4 },
};
static const IovirtNumaFacts four_nodes = { four, ELEMENTSOF(four) };

static IovirtNumaNode one[] = { { .id = 0, .socket = 0 } };
static const IovirtNumaFacts one_node = { one, ELEMENTSOF(one) };

static void test_facts_lookup(void **state) {
        assert_int_equal(iovirt_numa_distance(&four_nodes, 0, 3), 22);
        assert_int_equal(iovirt_numa_distance(&four_nodes, 3, 3), 10);
        assert_int_equal(iovirt_numa_distance(&four_nodes, 0, 7), -1);
        assert_int_equal(iovirt_numa_distance(&four_nodes, -1, 0), -1);
        assert_int_equal(iovirt_numa_distance(&one_node, 0, 1), -1);
        assert_int_equal(iovirt_numa_socket(&four_nodes, 2), 1);
        assert_int_equal(iovirt_numa_socket(&four_nodes, 9), -1);
        assert_null(iovirt_numa_node(&two_nodes, 2));
        assert_int_equal(iovirt_numa_node(&two_nodes, 1)->id, 1);
}

static void test_policy_names(void **state) {
        for (int p = 0; p < _IOVIRT_NUMA_POLICY_MAX; p++)
                assert_int_equal(iovirt_numa_policy_from_string(iovirt_numa_policy_to_string(p)), p);
        assert_int_equal(iovirt_numa_policy_from_string("strict"), -EINVAL);
        assert_int_equal(iovirt_numa_policy_from_string(NULL), -EINVAL);
        assert_null(iovirt_numa_policy_to_string(_IOVIRT_NUMA_POLICY_MAX));
        for (int r = 0; r < _IOVIRT_NUMA_REASON_MAX; r++)
                assert_non_null(iovirt_numa_reason_to_string(r));
}

static void assert_decides(const IovirtNumaFacts *f, IovirtNumaPolicy p, int dev, const char *consumer,
                           IovirtNumaReason expected) {
        IovirtBitmap c = consumer ? nodes(consumer) : (IovirtBitmap) {};
        IovirtNumaReason got = iovirt_numa_decide(f, p, dev, &c);
        if (got != expected)
                fail_msg("%s, device on %d, consumer on '%s': %s, expected %s", iovirt_numa_policy_to_string(p), dev,
                         strna(consumer), iovirt_numa_reason_to_string(got), iovirt_numa_reason_to_string(expected));
        /* judge agrees, and always says why */
        IovirtNumaVerdict v = {};
        IovirtNumaSubject s = { "0000:af:00.2", "vm-web", NULL };
        assert_int_equal(iovirt_numa_judge(f, p, dev, &c, &s, &v), 0);
        assert_int_equal(v.reason, expected);
        assert_int_equal(v.allowed, iovirt_numa_reason_allows(expected));
        assert_non_null(v.sentence);
        iovirt_numa_verdict_clear(&v);
        iovirt_bitmap_clear(&c);
}

static void test_two_nodes(void **state) {
        const IovirtNumaFacts *f = &two_nodes;
        /* local */
        assert_decides(f, IOVIRT_NUMA_NONE, 0, "0", IOVIRT_NUMA_REASON_NO_POLICY);
        assert_decides(f, IOVIRT_NUMA_LEGACY, 0, "0", IOVIRT_NUMA_REASON_LOCAL);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 0, "0", IOVIRT_NUMA_REASON_LOCAL);
        assert_decides(f, IOVIRT_NUMA_PREFERRED, 0, "0", IOVIRT_NUMA_REASON_LOCAL);
        assert_decides(f, IOVIRT_NUMA_SOCKET, 0, "0", IOVIRT_NUMA_REASON_LOCAL);
        /* remote */
        assert_decides(f, IOVIRT_NUMA_NONE, 1, "0", IOVIRT_NUMA_REASON_NO_POLICY);
        assert_decides(f, IOVIRT_NUMA_LEGACY, 1, "0", IOVIRT_NUMA_REASON_REMOTE);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 1, "0", IOVIRT_NUMA_REASON_REMOTE);
        assert_decides(f, IOVIRT_NUMA_PREFERRED, 1, "0", IOVIRT_NUMA_REASON_REMOTE_ALLOWED);
        assert_decides(f, IOVIRT_NUMA_SOCKET, 1, "0", IOVIRT_NUMA_REASON_OTHER_SOCKET);
        /* a consumer spread over both nodes */
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 1, "0-1", IOVIRT_NUMA_REASON_LOCAL);
        /* a device of unknown node (-1, or a node the host does not have) */
        assert_decides(f, IOVIRT_NUMA_NONE, -1, "0", IOVIRT_NUMA_REASON_NO_POLICY);
        assert_decides(f, IOVIRT_NUMA_LEGACY, -1, "0", IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, -1, "0", IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN);
        assert_decides(f, IOVIRT_NUMA_PREFERRED, -1, "0", IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED);
        assert_decides(f, IOVIRT_NUMA_SOCKET, -1, "0", IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 5, "0", IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN);
        /* where the consumer runs is unknown */
        assert_decides(f, IOVIRT_NUMA_LEGACY, 1, NULL, IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 1, NULL, IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN);
        assert_decides(f, IOVIRT_NUMA_PREFERRED, 1, "", IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED);
        assert_decides(f, IOVIRT_NUMA_SOCKET, 1, "", IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN);
}

static void test_one_node(void **state) {
        /* one node, or a kernel without NUMA: -1 is that node */
        static const IovirtNumaFacts none = {};
        for (int p = IOVIRT_NUMA_LEGACY; p < _IOVIRT_NUMA_POLICY_MAX; p++) {
                assert_decides(&one_node, p, -1, "0", IOVIRT_NUMA_REASON_ONE_NODE);
                assert_decides(&one_node, p, 0, NULL, IOVIRT_NUMA_REASON_ONE_NODE);
                assert_decides(&none, p, -1, NULL, IOVIRT_NUMA_REASON_ONE_NODE);
        }
}

static void test_four_nodes(void **state) {
        const IovirtNumaFacts *f = &four_nodes;
        assert_decides(f, IOVIRT_NUMA_SOCKET, 1, "0", IOVIRT_NUMA_REASON_SAME_SOCKET);
        assert_decides(f, IOVIRT_NUMA_SOCKET, 2, "0", IOVIRT_NUMA_REASON_OTHER_SOCKET);
        assert_decides(f, IOVIRT_NUMA_SOCKET, 3, "0,2", IOVIRT_NUMA_REASON_SAME_SOCKET);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 1, "0", IOVIRT_NUMA_REASON_REMOTE);
        assert_decides(f, IOVIRT_NUMA_LEGACY, 1, "0", IOVIRT_NUMA_REASON_REMOTE);
        assert_decides(f, IOVIRT_NUMA_PREFERRED, 3, "0", IOVIRT_NUMA_REASON_REMOTE_ALLOWED);
        assert_decides(f, IOVIRT_NUMA_REQUIRED, 3, "1-3", IOVIRT_NUMA_REASON_LOCAL);
}

static void assert_judged(const IovirtNumaFacts *f, IovirtNumaPolicy p, int dev, const char *consumer,
                          const IovirtNumaSubject *s, bool allowed, const char *sentence) {
        IovirtBitmap c = consumer ? nodes(consumer) : (IovirtBitmap) {};
        IovirtNumaVerdict v = {};
        assert_int_equal(iovirt_numa_judge(f, p, dev, &c, s, &v), 0);
        assert_int_equal(v.allowed, allowed);
        assert_string_equal(v.sentence, sentence);
        iovirt_numa_verdict_clear(&v);
        iovirt_bitmap_clear(&c);
}

static void test_sentences(void **state) {
        IovirtNumaSubject s = { "0000:af:00.2", "vm-web", "nics" }, bare = { "0000:af:00.2", "vm-web", NULL };
        assert_judged(&two_nodes, IOVIRT_NUMA_REQUIRED, 1, "0", &s, false,
                      "0000:af:00.2 is on NUMA node 1; vm-web runs on node 0; pool 'nics' requires the same node");
        assert_judged(&two_nodes, IOVIRT_NUMA_REQUIRED, 1, "0", &bare, false,
                      "0000:af:00.2 is on NUMA node 1; vm-web runs on node 0; NUMA policy 'required' requires the same node");
        assert_judged(&two_nodes, IOVIRT_NUMA_LEGACY, 1, "0-1", &s, true,
                      "0000:af:00.2 is on NUMA node 1, where vm-web runs (nodes 0-1)");
        assert_judged(&two_nodes, IOVIRT_NUMA_PREFERRED, 1, "0", &s, true,
                      "0000:af:00.2 is on NUMA node 1; vm-web runs on node 0 (distance 21); "
                      "pool 'nics' prefers the same node and takes another");
        assert_judged(&four_nodes, IOVIRT_NUMA_SOCKET, 2, "0-1", &s, false,
                      "0000:af:00.2 is on NUMA node 2 (socket 1); vm-web runs on nodes 0-1 (socket 0); "
                      "pool 'nics' requires the same socket");
        assert_judged(&four_nodes, IOVIRT_NUMA_SOCKET, 1, "0", &s, true,
                      "0000:af:00.2 is on NUMA node 1 (socket 0); vm-web runs on node 0 (socket 0); "
                      "pool 'nics' requires the same socket");
        assert_judged(&two_nodes, IOVIRT_NUMA_REQUIRED, -1, "0", &s, false,
                      "the NUMA node of 0000:af:00.2 is unknown; pool 'nics' refuses a device of unknown node");
        assert_judged(&two_nodes, IOVIRT_NUMA_REQUIRED, 1, NULL, &s, false,
                      "0000:af:00.2 is on NUMA node 1; where vm-web runs is unknown; pool 'nics' cannot be checked, so it refuses");
        assert_judged(&two_nodes, IOVIRT_NUMA_NONE, 1, "0", NULL, true, "NUMA policy 'none' has no NUMA policy");

        IovirtNumaVerdict v = {};
        assert_int_equal(iovirt_numa_judge(&two_nodes, _IOVIRT_NUMA_POLICY_MAX, 1, NULL, &s, &v), -EINVAL);
        assert_null(v.sentence);
}

static void assert_order(const IovirtNumaFacts *f, IovirtNumaPolicy p, const char *consumer, const int *devs,
                         size_t n, int allowed, const size_t *expected) {
        IovirtBitmap c = consumer ? nodes(consumer) : (IovirtBitmap) {};
        size_t order[16];
        assert_true(n <= ELEMENTSOF(order));
        int r = iovirt_numa_choose(f, p, &c, devs, n, order);
        if (r != allowed)
                fail_msg("%s: %d allowed, expected %d", iovirt_numa_policy_to_string(p), r, allowed);
        for (size_t i = 0; i < n; i++)
                if (order[i] != expected[i])
                        fail_msg("%s: position %zu holds candidate %zu, expected %zu", iovirt_numa_policy_to_string(p),
                                 i, order[i], expected[i]);
        iovirt_bitmap_clear(&c);
}

static void test_choose(void **state) {
        /* candidates on nodes 3, unknown, 1, 2, 0 for a consumer on node 0:
         * by distance 0 (10), 1 (11), 2 (20), 3 (22), then unknown */
        const int devs[] = { 3, -1, 1, 2, 0 };
        assert_order(&four_nodes, IOVIRT_NUMA_NONE, "0", devs, 5, 5, (size_t[]) { 4, 2, 3, 0, 1 });
        assert_order(&four_nodes, IOVIRT_NUMA_PREFERRED, "0", devs, 5, 5, (size_t[]) { 4, 2, 3, 0, 1 });
        assert_order(&four_nodes, IOVIRT_NUMA_REQUIRED, "0", devs, 5, 1, (size_t[]) { 4, 2, 3, 0, 1 });
        assert_order(&four_nodes, IOVIRT_NUMA_LEGACY, "0", devs, 5, 2, (size_t[]) { 4, 1, 2, 3, 0 });
        assert_order(&four_nodes, IOVIRT_NUMA_SOCKET, "0", devs, 5, 2, (size_t[]) { 4, 2, 3, 0, 1 });
        /* a consumer on node 3: 3 (10), 2 (11), 1 (20), 0 (22) */
        assert_order(&four_nodes, IOVIRT_NUMA_PREFERRED, "3", devs, 5, 5, (size_t[]) { 0, 3, 2, 4, 1 });
        assert_order(&four_nodes, IOVIRT_NUMA_SOCKET, "3", devs, 5, 2, (size_t[]) { 0, 3, 2, 4, 1 });
        /* ties keep the given order */
        const int same[] = { 1, 1, 0, 1 };
        assert_order(&two_nodes, IOVIRT_NUMA_PREFERRED, "0", same, 4, 4, (size_t[]) { 2, 0, 1, 3 });
        assert_order(&two_nodes, IOVIRT_NUMA_REQUIRED, "1", same, 4, 3, (size_t[]) { 0, 1, 3, 2 });
        /* nothing to choose from */
        assert_int_equal(iovirt_numa_choose(&two_nodes, IOVIRT_NUMA_REQUIRED, NULL, NULL, 0, NULL), 0);
}

static void test_placement(void **state) {
        IovirtNumaNode n[] = {
                { .id = 0, .socket = 0 },
                { .id = 1, .socket = 1 },
        };
        assert_int_equal(iovirt_numa_cpulist_parse("0-3", &n[0].cpus), 0);
        assert_int_equal(iovirt_numa_cpulist_parse("4-7", &n[1].cpus), 0);
        IovirtNumaFacts f = { n, 2 };
        IovirtBitmap cpus = {}, mems = {}, out = {};

        assert_int_equal(iovirt_numa_cpulist_parse("0-1", &cpus), 0);
        mems = nodes("0-1");
        assert_int_equal(iovirt_numa_placement(&f, &cpus, &mems, &out), 0);
        assert_list(&out, "0");
        assert_int_equal(iovirt_numa_cpulist_parse("0-7", &cpus), 0);
        assert_int_equal(iovirt_numa_placement(&f, &cpus, &mems, &out), 0);
        assert_list(&out, "0-1");
        /* memory bound to node 1: narrowed to it */
        assert_int_equal(iovirt_numa_nodelist_parse("1", &mems), 0);
        assert_int_equal(iovirt_numa_placement(&f, &cpus, &mems, &out), 0);
        assert_list(&out, "1");
        /* CPUs on node 0, memory on node 1: the CPUs' node */
        assert_int_equal(iovirt_numa_cpulist_parse("2", &cpus), 0);
        assert_int_equal(iovirt_numa_placement(&f, &cpus, &mems, &out), 0);
        assert_list(&out, "0");
        assert_int_equal(iovirt_numa_placement(&f, &cpus, NULL, &out), 0);
        assert_list(&out, "0");
        /* CPUs that map to no node: the memory nodes */
        assert_int_equal(iovirt_numa_cpulist_parse("100", &cpus), 0);
        assert_int_equal(iovirt_numa_placement(&f, &cpus, &mems, &out), 0);
        assert_list(&out, "1");
        assert_int_equal(iovirt_numa_placement(&f, NULL, NULL, &out), 0);
        assert_list(&out, "");

        iovirt_bitmap_clear(&cpus);
        iovirt_bitmap_clear(&mems);
        iovirt_bitmap_clear(&out);
        iovirt_bitmap_clear(&n[0].cpus);
        iovirt_bitmap_clear(&n[1].cpus);
}

static void test_facts_reader(void **state) {
        char *root = tree_new();
        IovirtNumaFacts *f = NULL;
        assert_non_null(root);

        /* no node directory: a kernel without NUMA */
        assert_int_equal(iovirt_numa_facts_read_at(root, &f), 0);
        assert_int_equal(f->n_nodes, 0);
        f = iovirt_numa_facts_free(f);

        /* nodes 0 and 2 with CPUs on sockets 0 and 1, memory-only node 1 (CXL) */
        const char *files[][2] = {
                { "sys/devices/system/node/node0/cpulist", "0-1\n" },
                { "sys/devices/system/node/node0/distance", "10 21 20\n" },
                { "sys/devices/system/node/node1/cpulist", "\n" },
                { "sys/devices/system/node/node1/distance", "21 10 21\n" },
                { "sys/devices/system/node/node2/cpulist", "2-3\n" },
                { "sys/devices/system/node/node2/distance", "20 21 10\n" },
                { "sys/devices/system/node/online", "0-2\n" },
                { "sys/devices/system/node/has_cpu", "0,2\n" },
                { "sys/devices/system/cpu/cpu0/topology/physical_package_id", "0\n" },
                { "sys/devices/system/cpu/cpu1/topology/physical_package_id", "0\n" },
                { "sys/devices/system/cpu/cpu2/topology/physical_package_id", "1\n" },
                /* cpu3 offline: no topology */
                { "sys/devices/system/cpu/cpu3/online", "0\n" },
        };
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                assert_int_equal(tree_write(root, files[i][0], files[i][1]), 0);
        assert_int_equal(iovirt_numa_facts_read_at(root, &f), 0);
        assert_int_equal(f->n_nodes, 3);
        assert_int_equal(f->nodes[0].id, 0);
        assert_int_equal(f->nodes[2].id, 2);
        assert_list(&f->nodes[0].cpus, "0-1");
        assert_list(&f->nodes[1].cpus, "");
        assert_list(&f->nodes[2].cpus, "2-3");
        assert_int_equal(iovirt_numa_socket(f, 0), 0);
        assert_int_equal(iovirt_numa_socket(f, 1), -1);
        assert_int_equal(iovirt_numa_socket(f, 2), 1);
        assert_false(f->nodes[2].sockets_mixed);
        assert_int_equal(iovirt_numa_distance(f, 0, 2), 20);
        assert_int_equal(iovirt_numa_distance(f, 1, 0), 21);
        /* the judge on what was read */
        assert_decides(f, IOVIRT_NUMA_SOCKET, 1, "0", IOVIRT_NUMA_REASON_OTHER_SOCKET);
        assert_decides(f, IOVIRT_NUMA_PREFERRED, 2, "0", IOVIRT_NUMA_REASON_REMOTE_ALLOWED);
        f = iovirt_numa_facts_free(f);

        /* a distance row of the wrong length: that node's distances are unknown */
        assert_int_equal(tree_write(root, "sys/devices/system/node/node2/distance", "20 10\n"), 0);
        assert_int_equal(tree_write(root, "sys/devices/system/cpu/cpu3/topology/physical_package_id", "0\n"), 0);
        assert_int_equal(iovirt_numa_facts_read_at(root, &f), 0);
        assert_null(f->nodes[2].distance);
        assert_int_equal(iovirt_numa_distance(f, 2, 0), 20);     /* node 0's row still says */
        assert_true(f->nodes[2].sockets_mixed);
        f = iovirt_numa_facts_free(f);

        /* an unreadable cpulist fails the read */
        char path[4096];
        snprintf(path, sizeof(path), "%s/sys/devices/system/node/node1/cpulist", root);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(iovirt_numa_facts_read_at(root, &f), -ENOENT);
        assert_int_equal(tree_write(root, "sys/devices/system/node/node1/cpulist", "zero\n"), 0);
        assert_int_equal(iovirt_numa_facts_read_at(root, &f), -EBADMSG);
        assert_null(f);

        /* this host's own */
        assert_int_equal(iovirt_numa_facts_read(&f), 0);
        f = iovirt_numa_facts_free(f);
        tree_free(root);
}

static void test_process_reader(void **state) {
        char *root = tree_new();
        IovirtBitmap cpus = {}, mems = {};
        assert_non_null(root);
        assert_int_equal(setenv("IOVIRT_ROOT", root, 1), 0);

        assert_int_equal(iovirt_numa_process_read(77, &cpus, &mems), -ENOENT);
        assert_int_equal(tree_write(root, "proc/77/status",
                                    "Name:\tqemu-system-x86\nCpus_allowed:\tff00\nCpus_allowed_list:\t8-15\n"
                                    "Mems_allowed:\t00000000,00000002\nMems_allowed_list:\t1\n"), 0);
        assert_int_equal(iovirt_numa_process_read(77, &cpus, &mems), 0);
        assert_list(&cpus, "8-15");
        assert_list(&mems, "1");
        assert_int_equal(tree_write(root, "proc/78/status", "Name:\tx\nCpus_allowed_list:\t0-3\n"), 0);
        assert_int_equal(iovirt_numa_process_read(78, &cpus, &mems), -EBADMSG);
        assert_int_equal(tree_write(root, "proc/79/status", "Cpus_allowed_list:\t0-\nMems_allowed_list:\t0\n"), 0);
        assert_int_equal(iovirt_numa_process_read(79, &cpus, &mems), -EBADMSG);

        /* ourselves, for real */
        unsetenv("IOVIRT_ROOT");
        assert_int_equal(iovirt_numa_process_read(getpid(), &cpus, &mems), 0);
        assert_true(iovirt_bitmap_count(&cpus) >= 1);
        assert_true(iovirt_bitmap_count(&mems) >= 1);
        iovirt_bitmap_clear(&cpus);
        iovirt_bitmap_clear(&mems);
        tree_free(root);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lists),
                cmocka_unit_test(test_facts_lookup),
                cmocka_unit_test(test_policy_names),
                cmocka_unit_test(test_two_nodes),
                cmocka_unit_test(test_one_node),
                cmocka_unit_test(test_four_nodes),
                cmocka_unit_test(test_sentences),
                cmocka_unit_test(test_choose),
                cmocka_unit_test(test_placement),
                cmocka_unit_test(test_facts_reader),
                cmocka_unit_test(test_process_reader),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
