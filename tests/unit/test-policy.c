/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include "iovirt-names.h"
#include "iovirt-policy.h"
#include "iovirt-util.h"

#define PATH "/etc/iovirt/policy.d/50-test.conf"

static IovirtPolicy *parse_ok(const char *text) {
        IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL;
        assert_non_null(p);
        int r = iovirt_policy_parse_text(p, PATH, text, &error);
        if (r < 0)
                fail_msg("unexpected error %d: %s", r, strna(error));
        assert_null(error);
        return p;
}

/* The file is refused at line with a message holding part. */
static void assert_error(const char *text, unsigned line, const char *part) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL, *prefix = NULL;
        assert_non_null(p);
        int r = iovirt_policy_parse_text(p, PATH, text, &error);
        if (r != -EINVAL || !error)
                fail_msg("for:\n%s\nresult %d, error '%s'", text, r, strna(error));
        assert_true(asprintf(&prefix, "%s:%u: ", PATH, line) > 0);
        if (strncmp(error, prefix, strlen(prefix)) != 0 || !strstr(error, part))
                fail_msg("for:\n%s\nerror '%s' is not '%s...%s'", text, error, prefix, part);
        /* rejected as a whole: nothing of it is in p */
        assert_int_equal(p->n_pools, 0);
        assert_int_equal(p->n_files, 0);
        assert_int_equal(p->n_warnings, 0);
        assert_false(iovirt_policy_origin_set(p->reserve_origin));
}

static void assert_origin(IovirtPolicyOrigin o, const char *file, unsigned line) {
        assert_non_null(o.file);
        assert_string_equal(o.file, file);
        assert_int_equal(o.line, line);
}

/* ---- sizes ---- */

static void assert_size(const char *s, uint64_t v) {
        uint64_t r = 1;
        const char *why = NULL;
        if (iovirt_size_parse(s, &r, &why) < 0)
                fail_msg("'%s': %s", s, why);
        assert_int_equal(r, v);
}

static void assert_size_bad(const char *s, int err, const char *part) {
        uint64_t r = 12345;
        const char *why = NULL;
        assert_int_equal(iovirt_size_parse(s, &r, &why), err);
        assert_int_equal(r, 12345);
        assert_non_null(why);
        if (!strstr(why, part))
                fail_msg("'%s': '%s' lacks '%s'", strna(s), why, part);
}

static void test_sizes(void **state) {
        assert_size("0", 0);
        assert_size("4096", 4096);
        assert_size("4096B", 4096);
        assert_size("512K", 512 * 1024);
        assert_size("4096M", UINT64_C(4) << 30);
        assert_size("4G", UINT64_C(4) << 30);
        assert_size("4GiB", UINT64_C(4) << 30);
        assert_size("2T", UINT64_C(2) << 40);
        assert_size("1P", UINT64_C(1) << 50);
        assert_size("15E", UINT64_C(15) << 60);
        assert_size("18446744073709551615", UINT64_MAX);
        assert_size("17179869183G", UINT64_C(17179869183) << 30);

        assert_size_bad(NULL, -EINVAL, "empty");
        assert_size_bad("", -EINVAL, "empty");
        assert_size_bad("G", -EINVAL, "whole number");
        assert_size_bad("-1", -EINVAL, "whole number");
        assert_size_bad(" 4G", -EINVAL, "whole number");
        assert_size_bad("+4G", -EINVAL, "whole number");
        assert_size_bad("1.5G", -EINVAL, "1536M");
        assert_size_bad("4g", -EINVAL, "unknown unit");
        assert_size_bad("4GB", -EINVAL, "unknown unit");
        assert_size_bad("4 G", -EINVAL, "unknown unit");
        assert_size_bad("4Gi", -EINVAL, "unknown unit");
        assert_size_bad("4X", -EINVAL, "unknown unit");
        assert_size_bad("18446744073709551616", -ERANGE, "too large");
        assert_size_bad("99999999999999999999999", -ERANGE, "too large");
        assert_size_bad("16E", -ERANGE, "too large");
        assert_size_bad("17179869184G", -ERANGE, "too large");
}

static void test_percent(void **state) {
        unsigned bp;
        const char *why;
        assert_int_equal(iovirt_percent_parse("5%", &bp, &why), 0);
        assert_int_equal(bp, 500);
        assert_int_equal(iovirt_percent_parse("2.5%", &bp, &why), 0);
        assert_int_equal(bp, 250);
        assert_int_equal(iovirt_percent_parse("0.25%", &bp, &why), 0);
        assert_int_equal(bp, 25);
        assert_int_equal(iovirt_percent_parse("99.99%", &bp, &why), 0);
        assert_int_equal(bp, 9999);
        const char *bad[] = { "0%", "0.00%", "100%", "150%", "1000000000000%", "5", "%", "5.%", "5.123%", "-5%", "5 %", "5%%" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                why = NULL;
                if (iovirt_percent_parse(bad[i], &bp, &why) != -EINVAL || !why)
                        fail_msg("'%s' accepted", bad[i]);
        }
}

/* ---- defaults ---- */

static void test_defaults(void **state) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        assert_non_null(p);
        assert_int_equal(p->n_pools, 0);
        assert_int_equal(p->n_files, 0);
        assert_true(p->reserve.percent);
        assert_int_equal(p->reserve.basis_points, 500);
        assert_int_equal(p->memory_cgroup, IOVIRT_MEMORY_CGROUP_WARN);
        assert_true(p->watch_process_exit);
        assert_int_equal(p->numa_default_policy, IOVIRT_NUMA_LEGACY);
        assert_true(p->numa_allow_policy_choice);
        assert_false(iovirt_policy_origin_set(p->reserve_origin));

        /* 5% of MemTotal, at least 512 MiB */
        assert_int_equal(iovirt_policy_reserve_bytes(p, UINT64_C(4) << 30), UINT64_C(512) << 20);
        assert_int_equal(iovirt_policy_reserve_bytes(p, UINT64_C(64) << 30), (UINT64_C(64) << 30) / 20);
        assert_int_equal(iovirt_policy_reserve_bytes(p, UINT64_MAX), UINT64_MAX / 10000 * 500 + UINT64_MAX % 10000 * 500 / 10000);

        /* a percentage given has no floor; bytes are bytes */
        IovirtPolicy *q = parse_ok("[Memory]\nReserve=1%\n");
        assert_int_equal(iovirt_policy_reserve_bytes(q, UINT64_C(4) << 30), (UINT64_C(4) << 30) / 100);
        iovirt_policy_free(q);
        q = parse_ok("[Memory]\nReserve=2G\n");
        assert_int_equal(iovirt_policy_reserve_bytes(q, UINT64_C(4) << 30), UINT64_C(2) << 30);
        iovirt_policy_free(q);

        /* an empty file, or one of comments, changes nothing */
        q = parse_ok("");
        assert_int_equal(q->n_files, 1);
        assert_int_equal(q->n_pools, 0);
        iovirt_policy_free(q);
        q = parse_ok("# a comment\n; another\n\n   \n");
        assert_int_equal(q->n_pools, 0);
        iovirt_policy_free(q);
}

/* ---- every key ---- */

static const char full[] =
        "# Every key\n"                                                      /* 1 */
        "[Memory]\n"                                                          /* 2 */
        "Reserve=8G\n"                                                        /* 3 */
        "MemoryCgroup=refuse\n"                                               /* 4 */
        "\n"                                                                  /* 5 */
        "[Consumers]\n"                                                       /* 6 */
        "WatchProcessExit=no\n"                                               /* 7 */
        "\n"                                                                  /* 8 */
        "[Numa]\n"                                                            /* 9 */
        "DefaultPolicy=preferred\n"                                           /* 10 */
        "AllowPolicyChoice=false\n"                                           /* 11 */
        "\n"                                                                  /* 12 */
        "[Pool nics]\n"                                                       /* 13 */
        "Devices=8086:154c 8086:* class=0x0200, class=net 0000:81:*\n"        /* 14 */
        "        81:00.* 0000:81:00.1 enp5s0f0#0-7 0000:81:00.0#3 driver=igb\n" /* 15 */
        "  class=0x02 class=0x010802 class=nvme\n"                            /* 16 */
        "Consumers=vm-* pid:*\n"                                              /* 17 */
        "  Users=alice 1000 _svc$\n"                                          /* 18 */
        "Groups=kvm,0\n"                                                      /* 19 */
        "Isolation=accept-leaky ; a comment\n"                                /* 20 */
        "NumaPolicy=required\n"                                               /* 21 */
        "AllowNumaPolicyChoice=yes\n"                                         /* 22 */
        "MemlockHardLimit=4096M\n"                                            /* 23 */
        "Memory=2G\n"                                                         /* 24 */
        "  [Pool gpus]\n"                                                     /* 25 */
        "Devices=10de:*\n";                                                   /* 26 */

static void test_every_key(void **state) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok(full);

        assert_false(p->reserve.percent);
        assert_int_equal(p->reserve.bytes, UINT64_C(8) << 30);
        assert_origin(p->reserve_origin, PATH, 3);
        assert_int_equal(p->memory_cgroup, IOVIRT_MEMORY_CGROUP_REFUSE);
        assert_origin(p->memory_cgroup_origin, PATH, 4);
        assert_false(p->watch_process_exit);
        assert_origin(p->watch_process_exit_origin, PATH, 7);
        assert_int_equal(p->numa_default_policy, IOVIRT_NUMA_PREFERRED);
        assert_origin(p->numa_default_policy_origin, PATH, 10);
        assert_false(p->numa_allow_policy_choice);
        assert_origin(p->numa_allow_policy_choice_origin, PATH, 11);

        assert_int_equal(p->n_pools, 2);
        const IovirtPolicyPool *n = iovirt_policy_find_pool(p, "nics");
        assert_ptr_equal(n, &p->pools[0]);
        assert_origin(n->origin, PATH, 13);
        assert_origin(n->devices_origin, PATH, 14);
        assert_int_equal(n->n_selectors, 13);
        const IovirtPoolSelector *s = n->selectors;
        assert_int_equal(s[0].type, IOVIRT_POOL_SELECTOR_ID);
        assert_int_equal(s[0].vendor, 0x8086);
        assert_int_equal(s[0].device, 0x154c);
        assert_false(s[0].any_device);
        assert_string_equal(s[0].text, "8086:154c");
        assert_int_equal(s[1].type, IOVIRT_POOL_SELECTOR_ID);
        assert_true(s[1].any_device);
        assert_int_equal(s[2].type, IOVIRT_POOL_SELECTOR_CLASS);
        assert_int_equal(s[2].class_value, 0x020000);
        assert_int_equal(s[2].class_mask, 0xffff00);
        assert_int_equal(s[3].class_value, 0x020000);
        assert_int_equal(s[3].class_mask, 0xff0000);
        assert_int_equal(s[4].type, IOVIRT_POOL_SELECTOR_ADDRESS);
        assert_string_equal(s[4].pattern, "0000:81:*");
        assert_string_equal(s[5].pattern, "0000:81:00.*");     /* the domain added */
        assert_string_equal(s[6].pattern, "0000:81:00.1");
        assert_int_equal(s[7].type, IOVIRT_POOL_SELECTOR_PF_RANGE);
        assert_string_equal(s[7].pattern, "enp5s0f0");
        assert_int_equal(s[7].vf_first, 0);
        assert_int_equal(s[7].vf_last, 7);
        assert_string_equal(s[8].pattern, "0000:81:00.0");
        assert_int_equal(s[8].vf_first, 3);
        assert_int_equal(s[8].vf_last, 3);
        assert_int_equal(s[9].type, IOVIRT_POOL_SELECTOR_DRIVER);
        assert_string_equal(s[9].pattern, "igb");
        assert_int_equal(s[10].class_value, 0x020000);
        assert_int_equal(s[10].class_mask, 0xff0000);
        assert_int_equal(s[11].class_value, 0x010802);
        assert_int_equal(s[11].class_mask, 0xffffff);
        assert_int_equal(s[12].class_value, 0x010802);

        assert_int_equal(n->n_consumers, 2);
        assert_string_equal(n->consumers[0], "vm-*");
        assert_string_equal(n->consumers[1], "pid:*");
        assert_origin(n->consumers_origin, PATH, 17);
        assert_int_equal(n->n_users, 3);
        assert_string_equal(n->users[0].name, "alice");
        assert_null(n->users[1].name);
        assert_int_equal(n->users[1].id, 1000);
        assert_string_equal(n->users[2].name, "_svc$");
        assert_origin(n->users_origin, PATH, 18);
        assert_int_equal(n->n_groups, 2);
        assert_string_equal(n->groups[0].name, "kvm");
        assert_null(n->groups[1].name);
        assert_int_equal(n->groups[1].id, 0);
        assert_int_equal(n->isolation, IOVIRT_POLICY_ISOLATION_ACCEPT_LEAKY);
        assert_origin(n->isolation_origin, PATH, 20);
        IovirtPolicyOrigin o;
        assert_int_equal(iovirt_policy_pool_numa_policy(p, n, &o), IOVIRT_NUMA_REQUIRED);
        assert_origin(o, PATH, 21);
        assert_true(iovirt_policy_pool_allow_numa_choice(p, n, &o));
        assert_origin(o, PATH, 22);
        assert_int_equal(n->memlock_hard_limit, UINT64_C(4) << 30);
        assert_origin(n->memlock_hard_limit_origin, PATH, 23);
        assert_int_equal(n->guest_memory, UINT64_C(2) << 30);
        assert_origin(n->guest_memory_origin, PATH, 24);

        /* a pool without them takes [Numa]'s, with [Numa]'s origin */
        const IovirtPolicyPool *g = iovirt_policy_find_pool(p, "gpus");
        assert_non_null(g);
        assert_origin(g->origin, PATH, 25);
        assert_int_equal(g->isolation, IOVIRT_POLICY_ISOLATION_STRICT);
        assert_false(iovirt_policy_origin_set(g->isolation_origin));
        assert_int_equal(iovirt_policy_pool_numa_policy(p, g, &o), IOVIRT_NUMA_PREFERRED);
        assert_origin(o, PATH, 10);
        assert_false(iovirt_policy_pool_allow_numa_choice(p, g, &o));
        assert_origin(o, PATH, 11);
        assert_int_equal(g->n_consumers, 0);
        assert_int_equal(g->n_users, 0);
        assert_int_equal(g->memlock_hard_limit, 0);
        assert_null(iovirt_policy_find_pool(p, "none"));
        assert_int_equal(p->n_warnings, 0);
}

static void test_values(void **state) {
        static const struct {
                const char *value;
                IovirtNumaPolicy policy;
        } numa[] = {
                { "required", IOVIRT_NUMA_REQUIRED }, { "legacy", IOVIRT_NUMA_LEGACY },
                { "preferred", IOVIRT_NUMA_PREFERRED }, { "socket", IOVIRT_NUMA_SOCKET },
                { "none", IOVIRT_NUMA_NONE },
        };
        for (size_t i = 0; i < ELEMENTSOF(numa); i++) {
                _cleanup_free_ char *t = NULL;
                assert_true(asprintf(&t, "[Numa]\nDefaultPolicy=%s\n[Pool a]\nDevices=1234:*\nNumaPolicy=%s\n",
                                     numa[i].value, numa[i].value) > 0);
                _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok(t);
                assert_int_equal(p->numa_default_policy, numa[i].policy);
                assert_int_equal(p->pools[0].numa_policy, numa[i].policy);
                assert_string_equal(iovirt_numa_policy_to_string(numa[i].policy), numa[i].value);
        }
        static const struct {
                const char *value;
                bool b;
        } bools[] = { { "yes", true }, { "no", false }, { "true", true }, { "false", false }, { "on", true },
                      { "off", false }, { "1", true }, { "0", false }, { "Yes", true }, { "NO", false } };
        for (size_t i = 0; i < ELEMENTSOF(bools); i++) {
                _cleanup_free_ char *t = NULL;
                assert_true(asprintf(&t, "[Consumers]\nWatchProcessExit=%s\n[Numa]\nAllowPolicyChoice=%s\n"
                                     "[Pool a]\nDevices=1234:*\nAllowNumaPolicyChoice=%s\n",
                                     bools[i].value, bools[i].value, bools[i].value) > 0);
                _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok(t);
                assert_int_equal(p->watch_process_exit, bools[i].b);
                assert_int_equal(p->numa_allow_policy_choice, bools[i].b);
                assert_int_equal(p->pools[0].allow_numa_policy_choice, bools[i].b);
        }
        IovirtPolicy *p = parse_ok("[Memory]\nReserve=2.5%\nMemoryCgroup=warn\n[Pool a]\nDevices=1234:*\nIsolation=strict\n");
        assert_true(p->reserve.percent);
        assert_int_equal(p->reserve.basis_points, 250);
        assert_int_equal(p->memory_cgroup, IOVIRT_MEMORY_CGROUP_WARN);
        assert_origin(p->memory_cgroup_origin, PATH, 3);
        assert_int_equal(p->pools[0].isolation, IOVIRT_POLICY_ISOLATION_STRICT);
        assert_origin(p->pools[0].isolation_origin, PATH, 6);
        iovirt_policy_free(p);

        /* two sections of the same name are one: keys in both are given twice */
        p = parse_ok("[Memory]\nReserve=1G\n[Numa]\nDefaultPolicy=none\n[Memory]\nMemoryCgroup=refuse\n");
        assert_origin(p->memory_cgroup_origin, PATH, 6);
        iovirt_policy_free(p);
        /* CRLF and a UTF-8 BOM */
        p = parse_ok("\xef\xbb\xbf[Pool a]\r\nDevices=1234:5678\r\n");
        assert_int_equal(p->n_pools, 1);
        assert_string_equal(p->pools[0].selectors[0].text, "1234:5678");
        iovirt_policy_free(p);
}

/* ---- errors, each with its line ---- */

static void test_errors(void **state) {
        /* structure */
        assert_error("[Pool a]\nDevices=1234:*\n[Global]\nX=1\n", 3,
                     "unknown section [Global]; allowed: [Pool NAME], [Memory], [Consumers], [Numa]");
        assert_error("[memory]\n", 1, "did you mean [Memory]?");
        assert_error("[pool x]\n", 1, "did you mean [Pool NAME]?");
        assert_error("[Empty]\n", 1, "unknown section [Empty]");
        assert_error("[Pool]\nDevices=1234:*\n", 1, "[Pool] needs a name");
        assert_error("[Pool a/b]\nDevices=1234:*\n", 1, "'a/b' is not a valid pool name");
        assert_error("[Pool a]\nDevices=1234:*\n\n[Pool a]\nDevices=1234:*\n", 4, "pool 'a' is already defined at line 1");
        assert_error("Reserve=5%\n[Memory]\n", 1, "Reserve= is outside of any section");
        assert_error("[Memory]\nReserve=5%\nnot a pair\n", 3, "expected [Section], Key=Value or a comment");
        assert_error("[Memory\nReserve=5%\n", 1, "expected [Section], Key=Value or a comment");
        assert_error("[Memory] x\n", 1, "unexpected text after the section header");
        assert_error("[Pool a]\nDevices=1234:*\n0000:81:00.0\n", 3, "expected Key=Value, found '0000:81:00.0'");
        assert_error("[Pool a]\nDevices=1234:*\n0000:81:*=x\n", 3, "expected Key=Value, found '0000:81:*=x'");
        assert_error("[Pool a]\n\n", 1, "pool 'a' has no Devices=");
        assert_error("[Pool a]\nIsolation=strict\n[Memory]\n", 1, "pool 'a' has no Devices=");
        assert_error("[Pool a]\nDevices=\n", 2, "Devices= lists no selector");
        assert_error("[Pool a]\nDevices=1234:*\nConsumers= ,\n", 3, "Consumers= lists no pattern");
        assert_error("[Pool a]\nDevices=1234:*\nUsers=\n", 3, "Users= lists no user");
        assert_error("[Pool a]\nDevices=1234:*\nGroups=\n", 3, "Groups= lists no group");

        /* a key given twice in one section */
        assert_error("[Pool a]\nDevices=1234:*\nIsolation=strict\nIsolation=strict\n", 4,
                     "Isolation= is given twice in [Pool a] (first at line 3)");
        assert_error("[Pool a]\nDevices=1234:*\nDevices=1234:5678\n", 3, "Devices= is given twice");
        assert_error("[Memory]\nReserve=1G\n[Numa]\n[Memory]\nReserve=2G\n", 5, "Reserve= is given twice in [Memory] (first at line 2)");
        assert_error("[Pool a]\nDevices=1234:* 1234:*\n", 2, "the selector '1234:*' is listed twice");
        assert_error("[Pool a]\nDevices=1234:*\nUsers=bob 7 bob\n", 3, "the user 'bob' is listed twice");
        assert_error("[Pool a]\nDevices=1234:*\nGroups=7 7\n", 3, "the group '7' is listed twice");

        /* continuation of a single value */
        assert_error("[Pool a]\nDevices=1234:*\nIsolation=strict\n  accept-leaky\n", 4, "Isolation= takes one value");

        /* bad values, with what is allowed */
        assert_error("[Pool a]\nDevices=1234:*\nIsolation=lenient\n", 3,
                     "'lenient' is not a valid Isolation=; allowed: strict, accept-leaky");
        assert_error("[Pool a]\nDevices=1234:*\nIsolation=\n", 3, "Isolation= is empty; allowed: strict, accept-leaky");
        assert_error("[Pool a]\nDevices=1234:*\nNumaPolicy=Required\n", 3,
                     "allowed: none, legacy, required, preferred, socket");
        assert_error("[Pool a]\nDevices=1234:*\nAllowNumaPolicyChoice=maybe\n", 3, "allowed: yes, no");
        assert_error("[Pool a]\nDevices=1234:*\nMemlockHardLimit=0\n", 3, "MemlockHardLimit=0 would let the guest pin nothing");
        assert_error("[Pool a]\nDevices=1234:*\nMemlockHardLimit=4X\n", 3, "'4X' is not a valid MemlockHardLimit=: unknown unit");
        assert_error("[Pool a]\nDevices=1234:*\nMemlockHardLimit=99999999999999999999\n", 3, "too large");
        assert_error("[Pool a]\nDevices=1234:*\nMemlockHardLimit=16E\n", 3, "too large");
        assert_error("[Pool a]\nDevices=1234:*\nMemlockHardLimit=\n", 3, "empty");
        assert_error("[Pool a]\nDevices=1234:*\nMemory=0\n", 3, "Memory=0 is no guest");
        assert_error("[Pool a]\nDevices=1234:*\nMemory=2.5G\n", 3, "'2.5G' is not a valid Memory=");
        assert_error("[Memory]\nReserve=0\n", 2, "Reserve=0 would let pinned memory take all");
        assert_error("[Memory]\nReserve=0%\n", 2, "above 0%");
        assert_error("[Memory]\nReserve=100%\n", 2, "below 100%");
        assert_error("[Memory]\nReserve=1.5G\n", 2, "1536M rather than 1.5G");
        assert_error("[Memory]\nReserve=\n", 2, "empty");
        assert_error("[Memory]\nMemoryCgroup=ignore\n", 2, "allowed: warn, refuse");
        assert_error("[Consumers]\nWatchProcessExit=sometimes\n", 2, "allowed: yes, no");
        assert_error("[Numa]\nDefaultPolicy=strict\n", 2, "allowed: none, legacy, required, preferred, socket");
        assert_error("[Numa]\nAllowPolicyChoice=\n", 2, "AllowPolicyChoice= is empty");
        assert_error("[Pool a]\nDevices=1234:*\nUsers=-bob\n", 3, "'-bob' is not a valid user name or number");
        assert_error("[Pool a]\nDevices=1234:*\nUsers=4294967295\n", 3, "not a valid user id");
        assert_error("[Pool a]\nDevices=1234:*\nGroups=99999999999999999999\n", 3, "not a valid group id");
        assert_error("[Pool a]\nDevices=1234:*\nGroups=a$b\n", 3, "not a valid group name");

        /* selectors */
        static const struct {
                const char *sel, *part;
        } bad[] = {
                { "nic", "a selector is vendor:device" },
                { "8086", "a selector is vendor:device" },
                { "class=0x2", "class= takes 2, 4 or 6 hex digits" },
                { "class=0x02000000", "class= takes 2, 4 or 6" },
                { "class=gpu", "class= takes 2, 4 or 6" },
                { "class=", "class= takes" },
                { "driver=", "driver= takes a kernel driver's name" },
                { "driver=a/b", "driver= takes" },
                { "enp5s0f0#", "VF index or a range" },
                { "enp5s0f0#7-0", "first VF is above its last" },
                { "enp5s0f0#0-70000", "at most 65535" },
                { "enp5s0f0#x", "VF index or a range" },
                { "#0-3", "network interface name or a PCI address" },
                { "averyveryverylongname#0", "network interface name" },
                { "0000:81:00#0", "not a valid PCI address" },
                { "0000:81:zz.0", "hex digits" },
                { "0000:81:00.9", "function number is out of range" },
                { "0000:81:*:*", "at most two ':'" },
                { "8086:15", "vendor:device takes 4 hex digits" },
                { "8086:154", "vendor:device takes 4 hex digits" },
                { "8086:1x4c", "vendor:device takes 4 hex digits" },
                { "81:00", "expected" },
                { "a:b", "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *t = NULL, *part = NULL;
                assert_true(asprintf(&t, "[Pool a]\n# devices\nDevices=1234:5678 %s\n", bad[i].sel) > 0);
                assert_true(asprintf(&part, "'%s' is not a valid device selector: ", bad[i].sel) > 0);
                assert_error(t, 3, part);
                assert_error(t, 3, bad[i].part);
        }

        /* a line too long for libinih's buffer is refused, not cut */
        char line[400];
        memset(line, 'a', sizeof(line));
        memcpy(line, "Consumers=", 10);
        line[sizeof(line) - 1] = '\0';
        _cleanup_free_ char *t = NULL;
        assert_true(asprintf(&t, "[Pool a]\nDevices=1234:*\n%s\n", line) > 0);
        assert_error(t, 3, "the line is longer than");

        /* the earliest error wins, whoever finds it */
        assert_error("[Pool a]\nDevices=1234:*\nbroken\nIsolation=x\n", 3, "expected [Section]");
        assert_error("[Pool a]\nDevices=1234:*\nIsolation=x\nbroken\n", 3, "not a valid Isolation=");

        /* no error pointer: the code only */
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        assert_int_equal(iovirt_policy_parse_text(p, PATH, "[X]\n", NULL), -EINVAL);
        assert_int_equal(iovirt_policy_parse_text(p, PATH, "x\n", NULL), -EINVAL);
}

static void test_unknown_key_warns(void **state) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok(
                "[Pool a]\n"
                "Devices=1234:*\n"
                "devices=8086:*\n"
                "Colour=blue\n"
                "  green\n"
                "[Memory]\n"
                "Reserve=1G\n"
                "Swap=no\n");
        assert_int_equal(p->n_warnings, 3);
        assert_string_equal(p->warnings[0],
                            PATH ":3: unknown key 'devices' in [Pool a], ignored (did you mean 'Devices='?)");
        assert_string_equal(p->warnings[1], PATH ":4: unknown key 'Colour' in [Pool a], ignored");
        assert_string_equal(p->warnings[2], PATH ":8: unknown key 'Swap' in [Memory], ignored");
        assert_int_equal(p->pools[0].n_selectors, 1);
        assert_int_equal(p->reserve.bytes, UINT64_C(1) << 30);
}

/* Files merged in order: later globals replace earlier ones, pools add up,
 * a pool of the same name is an error naming both places. */
static void test_several_files(void **state) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL;
        assert_int_equal(iovirt_policy_parse_text(p, "/usr/lib/iovirt/policy.d/10-a.conf",
                                                  "[Memory]\nReserve=1G\nMemoryCgroup=refuse\n[Pool a]\nDevices=1234:*\n",
                                                  &error), 0);
        assert_int_equal(iovirt_policy_parse_text(p, "/etc/iovirt/policy.d/20-b.conf",
                                                  "\n[Memory]\nReserve=3%\n[Pool b]\nDevices=1234:*\nUnknown=1\n",
                                                  &error), 0);
        assert_null(error);
        assert_int_equal(p->n_files, 2);
        assert_int_equal(p->n_pools, 2);
        assert_true(p->reserve.percent);
        assert_origin(p->reserve_origin, "/etc/iovirt/policy.d/20-b.conf", 3);
        assert_origin(p->memory_cgroup_origin, "/usr/lib/iovirt/policy.d/10-a.conf", 3);
        assert_origin(p->pools[0].origin, "/usr/lib/iovirt/policy.d/10-a.conf", 4);
        assert_origin(p->pools[1].origin, "/etc/iovirt/policy.d/20-b.conf", 4);
        assert_int_equal(p->n_warnings, 1);

        assert_int_equal(iovirt_policy_parse_text(p, "/etc/iovirt/policy.d/30-c.conf",
                                                  "[Numa]\nDefaultPolicy=none\n[Pool c]\nDevices=1234:*\n\n[Pool a]\nDevices=0001:0002\n",
                                                  &error), -EINVAL);
        assert_string_equal(error, "/etc/iovirt/policy.d/30-c.conf:6: pool 'a' is already defined at "
                                   "/usr/lib/iovirt/policy.d/10-a.conf:4");
        /* nothing of the refused file */
        assert_int_equal(p->n_files, 2);
        assert_int_equal(p->n_pools, 2);
        assert_int_equal(p->numa_default_policy, IOVIRT_NUMA_LEGACY);
        assert_false(iovirt_policy_origin_set(p->numa_default_policy_origin));
        assert_int_equal(p->n_warnings, 1);
}

/* ---- files on disk ---- */

typedef struct Root {
        char dir[64];
} Root;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int root_setup(void **state) {
        Root *r = calloc(1, sizeof(Root));
        assert_non_null(r);
        strcpy(r->dir, "/tmp/test-policy-XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        setenv(IOVIRT_ENV_ROOT, r->dir, 1);
        *state = r;
        return 0;
}

static int root_teardown(void **state) {
        Root *r = *state;
        nftw(r->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        unsetenv(IOVIRT_ENV_ROOT);
        free(r);
        return 0;
}

static void mkdirs(Root *r, const char *dir) {
        _cleanup_free_ char *cmd = NULL;
        assert_true(asprintf(&cmd, "mkdir -p '%s%s'", r->dir, dir) > 0);
        assert_int_equal(system(cmd), 0);
}

static void put(Root *r, const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = NULL;
        mkdirs(r, dir);
        assert_true(asprintf(&path, "%s%s/%s", r->dir, dir, name) > 0);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void link_to(Root *r, const char *dir, const char *name, const char *target) {
        _cleanup_free_ char *path = NULL;
        mkdirs(r, dir);
        assert_true(asprintf(&path, "%s%s/%s", r->dir, dir, name) > 0);
        assert_int_equal(symlink(target, path), 0);
}

#define VENDOR IOVIRT_POLICY_VENDOR_DIR
#define ADMIN IOVIRT_POLICY_ADMIN_DIR

static void test_load_none(void **state) {
        IovirtPolicy *p = NULL;
        _cleanup_free_ char *error = NULL;
        assert_int_equal(iovirt_policy_load(&p, &error), 0);
        assert_non_null(p);
        assert_int_equal(p->n_files, 0);
        assert_int_equal(p->n_pools, 0);
        assert_int_equal(p->numa_default_policy, IOVIRT_NUMA_LEGACY);
        iovirt_policy_free(p);

        /* empty directories, and files that are not policy files */
        Root *r = *state;
        mkdirs(r, VENDOR);
        put(r, ADMIN, "README", "not read");
        put(r, ADMIN, ".hidden.conf", "not read either");
        put(r, ADMIN, "x.conf.orig", "[Broken");
        assert_int_equal(iovirt_policy_load(&p, &error), 0);
        assert_int_equal(p->n_files, 0);
        iovirt_policy_free(p);
}

static void test_load_order_and_override(void **state) {
        Root *r = *state;
        put(r, VENDOR, "50-nics.conf", "[Pool vendor-nics]\nDevices=8086:*\n");
        put(r, VENDOR, "10-base.conf", "[Memory]\nReserve=1G\n[Numa]\nDefaultPolicy=socket\n");
        put(r, VENDOR, "90-mask.conf", "[Pool masked]\nDevices=0001:0002\n");
        put(r, ADMIN, "50-nics.conf", "[Pool admin-nics]\nDevices=8086:1572\n");
        put(r, ADMIN, "20-site.conf", "[Memory]\nReserve=2G\n");
        put(r, ADMIN, "05-early.conf", "[Pool early]\nDevices=0001:0003\n");
        link_to(r, ADMIN, "90-mask.conf", "/dev/null");

        IovirtPolicy *p = NULL;
        _cleanup_free_ char *error = NULL;
        int k = iovirt_policy_load(&p, &error);
        if (k < 0)
                fail_msg("%s", strna(error));
        assert_int_equal(p->n_files, 5);
        assert_string_equal(p->files[0].path, ADMIN "/05-early.conf");
        assert_null(p->files[0].overrides);
        assert_string_equal(p->files[1].path, VENDOR "/10-base.conf");
        assert_string_equal(p->files[2].path, ADMIN "/20-site.conf");
        assert_string_equal(p->files[3].path, ADMIN "/50-nics.conf");
        assert_string_equal(p->files[3].overrides, VENDOR "/50-nics.conf");
        assert_string_equal(p->files[4].path, ADMIN "/90-mask.conf");
        assert_string_equal(p->files[4].overrides, VENDOR "/90-mask.conf");

        assert_int_equal(p->n_pools, 2);
        assert_string_equal(p->pools[0].name, "early");
        assert_string_equal(p->pools[1].name, "admin-nics");
        assert_null(iovirt_policy_find_pool(p, "vendor-nics"));
        assert_null(iovirt_policy_find_pool(p, "masked"));
        /* 20-site.conf comes after 10-base.conf */
        assert_int_equal(p->reserve.bytes, UINT64_C(2) << 30);
        assert_origin(p->reserve_origin, ADMIN "/20-site.conf", 2);
        assert_int_equal(p->numa_default_policy, IOVIRT_NUMA_SOCKET);
        assert_origin(p->numa_default_policy_origin, VENDOR "/10-base.conf", 4);
        iovirt_policy_free(p);
}

static void test_load_errors(void **state) {
        Root *r = *state;
        IovirtPolicy *p = NULL;
        _cleanup_free_ char *error = NULL;

        /* a duplicate pool across files */
        put(r, VENDOR, "10-a.conf", "[Pool a]\nDevices=0001:*\n");
        put(r, ADMIN, "20-b.conf", "# b\n[Pool a]\nDevices=0002:*\n");
        assert_int_equal(iovirt_policy_load(&p, &error), -EINVAL);
        assert_null(p);
        assert_string_equal(error, ADMIN "/20-b.conf:2: pool 'a' is already defined at " VENDOR "/10-a.conf:1");

        /* overriding the first file by one of the same name resolves it */
        put(r, ADMIN, "10-a.conf", "");
        assert_int_equal(iovirt_policy_load(&p, &error), 0);
        assert_int_equal(p->n_pools, 1);
        assert_origin(p->pools[0].origin, ADMIN "/20-b.conf", 2);
        p = iovirt_policy_free(p);

        /* a bad file fails the whole load, naming the file and line */
        put(r, ADMIN, "30-c.conf", "[Memory]\nReserve=lots\n");
        assert_int_equal(iovirt_policy_load(&p, &error), -EINVAL);
        assert_null(p);
        assert_non_null(strstr(error, ADMIN "/30-c.conf:2: 'lots' is not a valid Reserve=: a size is"));
        put(r, ADMIN, "30-c.conf", "[Memory]\nReserve=3%\n");

        /* an unreadable file: fail closed, naming it */
        link_to(r, ADMIN, "40-dangling.conf", "/nonexistent/policy.conf");
        assert_int_equal(iovirt_policy_load(&p, &error), -ENOENT);
        assert_null(p);
        assert_string_equal(error, ADMIN "/40-dangling.conf: cannot read: No such file or directory");
        _cleanup_free_ char *path = NULL;
        assert_true(asprintf(&path, "%s%s/40-dangling.conf", r->dir, ADMIN) > 0);
        assert_int_equal(unlink(path), 0);

        mkdirs(r, ADMIN "/50-dir.conf");
        assert_int_equal(iovirt_policy_load(&p, &error), -EISDIR);
        assert_string_equal(error, ADMIN "/50-dir.conf: cannot read: Is a directory");
        free(path);
        assert_true(asprintf(&path, "%s%s/50-dir.conf", r->dir, ADMIN) > 0);
        assert_int_equal(rmdir(path), 0);

        /* a NUL byte */
        free(path);
        assert_true(asprintf(&path, "%s%s/60-nul.conf", r->dir, ADMIN) > 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "[Memory]\n\0Reserve=1G\n", 21), 21);
        close(fd);
        assert_int_equal(iovirt_policy_load(&p, &error), -EINVAL);
        assert_string_equal(error, ADMIN "/60-nul.conf: holds a NUL byte; a policy file is text");
        assert_int_equal(unlink(path), 0);

        /* a policy directory that is not one */
        free(path);
        assert_true(asprintf(&path, "%s/etc/iovirt/policy.d", r->dir) > 0);
        _cleanup_free_ char *cmd = NULL;
        assert_true(asprintf(&cmd, "rm -rf '%s' && touch '%s'", path, path) > 0);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(iovirt_policy_load(&p, &error), -ENOTDIR);
        assert_string_equal(error, ADMIN ": cannot read the directory: Not a directory");

        /* and back to good */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(iovirt_policy_load(&p, &error), 0);
        assert_int_equal(p->n_pools, 1);
        iovirt_policy_free(p);
}

/* ---- JSON ---- */

static void test_json(void **state) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL;

        json_object *j = iovirt_policy_to_json(p);
        assert_non_null(j);
        assert_string_equal(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                            "{\"files\":[],\"warnings\":[],"
                            "\"memory\":{\"reserve\":{\"value\":{\"percent\":5.0,\"minimum_bytes\":536870912},"
                            "\"origin\":\"default\"},\"memory_cgroup\":{\"value\":\"warn\",\"origin\":\"default\"}},"
                            "\"consumers\":{\"watch_process_exit\":{\"value\":true,\"origin\":\"default\"}},"
                            "\"numa\":{\"default_policy\":{\"value\":\"legacy\",\"origin\":\"default\"},"
                            "\"allow_policy_choice\":{\"value\":true,\"origin\":\"default\"}},"
                            "\"pools\":[]}");
        json_object_put(j);

        assert_int_equal(iovirt_policy_parse_text(p, PATH,
                                                  "[Numa]\n"
                                                  "DefaultPolicy=required\n"
                                                  "[Memory]\n"
                                                  "Reserve=4G\n"
                                                  "[Pool nics]\n"
                                                  "Devices=8086:154c enp5s0f0#0-7\n"
                                                  "Users=alice 1001\n"
                                                  "Bogus=1\n"
                                                  "MemlockHardLimit=8G\n",
                                                  &error), 0);
        j = iovirt_policy_to_json(p);
        assert_non_null(j);
        assert_string_equal(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                            "{\"files\":[{\"path\":\"" PATH "\",\"overrides\":null}],"
                            "\"warnings\":[\"" PATH ":8: unknown key 'Bogus' in [Pool nics], ignored\"],"
                            "\"memory\":{\"reserve\":{\"value\":{\"bytes\":4294967296},\"origin\":\"" PATH ":4\"},"
                            "\"memory_cgroup\":{\"value\":\"warn\",\"origin\":\"default\"}},"
                            "\"consumers\":{\"watch_process_exit\":{\"value\":true,\"origin\":\"default\"}},"
                            "\"numa\":{\"default_policy\":{\"value\":\"required\",\"origin\":\"" PATH ":2\"},"
                            "\"allow_policy_choice\":{\"value\":true,\"origin\":\"default\"}},"
                            "\"pools\":[{\"name\":\"nics\",\"origin\":\"" PATH ":5\","
                            "\"devices\":{\"value\":[{\"type\":\"id\",\"selector\":\"8086:154c\"},"
                            "{\"type\":\"pf-range\",\"selector\":\"enp5s0f0#0-7\"}],\"origin\":\"" PATH ":6\"},"
                            "\"consumers\":{\"value\":null,\"origin\":\"default\"},"
                            "\"users\":{\"value\":[\"alice\",1001],\"origin\":\"" PATH ":7\"},"
                            "\"groups\":{\"value\":null,\"origin\":\"default\"},"
                            "\"isolation\":{\"value\":\"strict\",\"origin\":\"default\"},"
                            "\"numa_policy\":{\"value\":\"required\",\"origin\":\"" PATH ":2\"},"
                            "\"allow_numa_policy_choice\":{\"value\":true,\"origin\":\"default\"},"
                            "\"memlock_hard_limit\":{\"value\":8589934592,\"origin\":\"" PATH ":9\"},"
                            "\"memory\":{\"value\":null,\"origin\":\"default\"}}]}");
        json_object_put(j);
}

/* The example of policy/README.md, as written there. */
static void test_readme_example(void **state) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_ok(
                "# /etc/iovirt/policy.d/50-nics.conf\n"
                "[Memory]\n"
                "Reserve=8G\n"
                "MemoryCgroup=refuse\n"
                "\n"
                "[Numa]\n"
                "DefaultPolicy=preferred\n"
                "\n"
                "[Pool nics]\n"
                "Devices=enp5s0f0#0-7 enp5s0f1#0-7\n"
                "        0000:81:*            ; everything behind that root port\n"
                "Consumers=vm-* pid:*\n"
                "Users=alice 1001\n"
                "Groups=kvm\n"
                "NumaPolicy=required\n"
                "AllowNumaPolicyChoice=no\n"
                "\n"
                "[Pool gpus]\n"
                "Devices=10de:* class=display\n"
                "Consumers=vm-render-*\n"
                "Isolation=accept-leaky\n"
                "MemlockHardLimit=66G\n");
        assert_int_equal(p->n_pools, 2);
        assert_int_equal(p->pools[0].n_selectors, 3);
        assert_string_equal(p->pools[0].selectors[2].pattern, "0000:81:*");
        assert_int_equal(p->pools[1].memlock_hard_limit, UINT64_C(66) << 30);
        assert_int_equal(p->n_warnings, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_percent),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_every_key),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_unknown_key_warns),
                cmocka_unit_test(test_several_files),
                cmocka_unit_test_setup_teardown(test_load_none, root_setup, root_teardown),
                cmocka_unit_test_setup_teardown(test_load_order_and_override, root_setup, root_teardown),
                cmocka_unit_test_setup_teardown(test_load_errors, root_setup, root_teardown),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_readme_example),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
