/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* data/policy/50-example.conf (the file given as argv[1]) against the real
 * parser: as shipped it is accepted without a warning and sets nothing, and
 * with every commented-out setting switched on ("#Key=" and "#[Pool ...]"
 * lines without their '#') it is accepted without a warning too and sets
 * every key of the parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ctype.h>
#include <string.h>

#include "iovirt-policy.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"

static const char *example_path;

static char *read_example(void) {
        char *text = NULL;
        int r = iovirt_read_file(example_path, &text);
        if (r < 0)
                fail_msg("cannot read %s: %s", example_path, strerror(-r));
        return text;
}

/* Parses text as one file; fails the test on an error or a warning. */
static IovirtPolicy *parse_clean(const char *text) {
        IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL;
        assert_non_null(p);
        int r = iovirt_policy_parse_text(p, example_path, text, &error);
        if (r < 0)
                fail_msg("%s is refused (%d): %s", example_path, r, strna(error));
        assert_null(error);
        for (size_t i = 0; i < p->n_warnings; i++)
                print_error("warning: %s\n", p->warnings[i]);
        assert_int_equal(p->n_warnings, 0);
        assert_int_equal(p->n_files, 1);

        json_object *j = iovirt_policy_to_json(p);
        assert_non_null(j);
        json_object_put(j);
        return p;
}

/* A commented-out setting is '#' followed at once by a key or a section
 * header; explanations start with "# " or are a lone '#'. */
static char *uncomment(const char *text) {
        char *out = strdup(text);
        assert_non_null(out);
        char *w = out;
        for (const char *line = text; *line;) {
                size_t n = strcspn(line, "\n");
                bool setting = line[0] == '#' && n > 1 && (isupper((unsigned char) line[1]) || line[1] == '[');
                if (setting) {
                        line++;
                        n--;
                }
                memcpy(w, line, n);
                w += n;
                line += n;
                if (*line == '\n')
                        *w++ = *line++;
        }
        *w = '\0';
        return out;
}

static void test_as_shipped(void **state) {
        _cleanup_free_ char *text = read_example();
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_clean(text);

        /* installed as it is, it changes nothing: no pool, every default */
        assert_int_equal(p->n_pools, 0);
        assert_false(iovirt_policy_origin_set(p->reserve_origin));
        assert_false(iovirt_policy_origin_set(p->memory_cgroup_origin));
        assert_false(iovirt_policy_origin_set(p->watch_process_exit_origin));
        assert_false(iovirt_policy_origin_set(p->numa_default_policy_origin));
        assert_false(iovirt_policy_origin_set(p->numa_allow_policy_choice_origin));
}

static void test_every_setting_on(void **state) {
        _cleanup_free_ char *text = read_example(), *on = uncomment(text);
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = parse_clean(on);

        assert_true(iovirt_policy_origin_set(p->reserve_origin));
        assert_true(iovirt_policy_origin_set(p->memory_cgroup_origin));
        assert_true(iovirt_policy_origin_set(p->watch_process_exit_origin));
        assert_true(iovirt_policy_origin_set(p->numa_default_policy_origin));
        assert_true(iovirt_policy_origin_set(p->numa_allow_policy_choice_origin));

        /* each pool key is shown in at least one pool */
        bool consumers = false, users = false, groups = false, isolation = false, numa = false, choice = false,
             memlock = false, memory = false;
        assert_true(p->n_pools >= 1);
        for (size_t i = 0; i < p->n_pools; i++) {
                const IovirtPolicyPool *pool = &p->pools[i];
                assert_true(pool->n_selectors > 0);
                consumers |= iovirt_policy_origin_set(pool->consumers_origin);
                users |= iovirt_policy_origin_set(pool->users_origin);
                groups |= iovirt_policy_origin_set(pool->groups_origin);
                isolation |= iovirt_policy_origin_set(pool->isolation_origin);
                numa |= iovirt_policy_origin_set(pool->numa_policy_origin);
                choice |= iovirt_policy_origin_set(pool->allow_numa_policy_choice_origin);
                memlock |= iovirt_policy_origin_set(pool->memlock_hard_limit_origin);
                memory |= iovirt_policy_origin_set(pool->guest_memory_origin);
        }
        assert_true(consumers);
        assert_true(users);
        assert_true(groups);
        assert_true(isolation);
        assert_true(numa);
        assert_true(choice);
        assert_true(memlock);
        assert_true(memory);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s data/policy/50-example.conf\n", argv[0]);
                return 2;
        }
        example_path = argv[1];

        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_as_shipped),
                cmocka_unit_test(test_every_setting_on),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
