/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: the text of a policy file to iovirt_policy_parse_text(), the
 * parser iovirt_policy_load() runs on every file of both policy.d
 * directories (the load itself only lists the directories), as an admin
 * drop-in over a vendor file and on its own.
 * Asserts beyond "no crash": a refusal is -EINVAL with "PATH:..." and
 * leaves the policy it was merged into exactly as it was (the effective
 * policy's JSON, origins included, unchanged); a file that merges over
 * another parses on its own too; parsing is deterministic (the same JSON
 * twice); every pool is found by its name and carries its origin, and the
 * reserve is a share of 0.01% to 99.99% or a size that is not 0. */
#include <errno.h>

#include "fuzz.h"
#include "iovirt-json.h"
#include "iovirt-policy.h"

#define VENDOR IOVIRT_POLICY_VENDOR_DIR "/10-vendor.conf"
#define ADMIN IOVIRT_POLICY_ADMIN_DIR "/50-fuzz.conf"

/* What a distribution might ship beneath the file being fuzzed */
static const char vendor_text[] =
        "[Memory]\n"
        "Reserve=2G\n"
        "[Numa]\n"
        "DefaultPolicy=preferred\n"
        "[Pool vendor-gpus]\n"
        "Devices=10de:* class=display\n"
        "Consumers=vm-*\n";

/* The effective policy as `iovirtctl policy --json` shows it; NULL when
 * memory ran out */
static char *json_of(const IovirtPolicy *p) {
        _cleanup_(json_object_putp) json_object *o = iovirt_policy_to_json(p);
        if (!o)
                return NULL;
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        return s ? strdup(s) : NULL;
}

static void check_policy(const IovirtPolicy *p) {
        for (size_t i = 0; i < p->n_pools; i++) {
                const IovirtPolicyPool *pool = &p->pools[i];
                fuzz_assert(pool->name && *pool->name);
                fuzz_assert(iovirt_policy_find_pool(p, pool->name) == pool);
                fuzz_assert(iovirt_policy_origin_set(pool->origin));
                for (size_t s = 0; s < pool->n_selectors; s++) {
                        const IovirtPoolSelector *sel = &pool->selectors[s];
                        fuzz_assert(sel->text && iovirt_pool_selector_type_name(sel->type));
                        if (sel->type == IOVIRT_POOL_SELECTOR_PF_RANGE)
                                fuzz_assert(sel->vf_first <= sel->vf_last);
                }
        }
        /* a share of 0.01% to 99.99%, or a size that is not 0 */
        if (p->reserve.percent)
                fuzz_assert(p->reserve.basis_points >= 1 && p->reserve.basis_points <= 9999);
        else
                fuzz_assert(p->reserve.bytes > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* a file read as text: libinih's reader stops at a NUL anyway */
        _cleanup_free_ char *text = fuzz_string(data, size);
        if (!text)
                return 0;

        /* as a drop-in over a vendor file */
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = iovirt_policy_new();
        _cleanup_free_ char *error = NULL;
        if (!p || iovirt_policy_parse_text(p, VENDOR, vendor_text, &error) < 0) {
                fuzz_assert(!error);        /* the vendor file is good: only memory can fail it */
                return 0;
        }
        _cleanup_free_ char *before = json_of(p);
        if (!before)
                return 0;
        int r = iovirt_policy_parse_text(p, ADMIN, text, &error);
        if (r == -ENOMEM)
                return 0;
        bool merged = r >= 0;
        if (r < 0) {
                fuzz_assert(r == -EINVAL);
                fuzz_assert(error && strncmp(error, ADMIN ":", strlen(ADMIN ":")) == 0);
                _cleanup_free_ char *after = json_of(p);
                fuzz_assert(!after || streq_ptr(before, after));
        } else {
                fuzz_assert(r == 0);
                check_policy(p);
        }

        /* on its own, twice */
        _cleanup_(iovirt_policy_freep) IovirtPolicy *alone = iovirt_policy_new(), *twice = iovirt_policy_new();
        _cleanup_free_ char *e1 = NULL, *e2 = NULL;
        if (!alone || !twice)
                return 0;
        int r1 = iovirt_policy_parse_text(alone, ADMIN, text, &e1);
        int r2 = iovirt_policy_parse_text(twice, ADMIN, text, &e2);
        if (r1 == -ENOMEM || r2 == -ENOMEM)
                return 0;
        fuzz_assert(r1 == r2 && streq_ptr(e1, e2));
        if (merged)
                fuzz_assert(r1 == 0);
        if (r1 == 0) {
                check_policy(alone);
                _cleanup_free_ char *j1 = json_of(alone), *j2 = json_of(twice);
                fuzz_assert(!j1 || !j2 || streq_ptr(j1, j2));
        }
        return 0;
}
