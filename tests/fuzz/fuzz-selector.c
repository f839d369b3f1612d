/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: a string to iovirt_selector_parse() ("PF#range", as `iovirtctl
 * sriov`, assign targets and SetVfs take them).
 * Asserts beyond "no crash": 0 exactly when there is no '#'; a refusal is
 * -EINVAL with a sentence; a parsed selector keeps the PF as written before
 * '#', every range is ordered and within IOVIRT_VF_INDEX_MAX, has() holds
 * at the ends of every range and nowhere past max(), count() is between 1
 * and max()+1 and is what counting index by index gives, and the ranges
 * written out again parse to the same ranges. */
#include <errno.h>

#include "fuzz.h"
#include "iovirt-sriov.h"
#include "iovirt-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = fuzz_string(data, size);
        if (!s)
                return 0;

        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_selector_parse(s, &sel, &reason);
        if (!strchr(s, '#')) {
                fuzz_assert(r == 0 && !sel.pf && !reason);
                return 0;
        }
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                fuzz_assert(r == -EINVAL);
                fuzz_assert(reason && *reason);
                fuzz_assert(!sel.pf && !sel.ranges);
                return 0;
        }
        fuzz_assert(r == 1 && !reason);
        fuzz_assert(sel.pf && *sel.pf && strlen(sel.pf) == (size_t) (strchr(s, '#') - s));
        fuzz_assert(strncmp(sel.pf, s, strlen(sel.pf)) == 0);
        fuzz_assert(sel.n_ranges >= 1);

        unsigned max = 0;
        for (size_t i = 0; i < sel.n_ranges; i++) {
                const IovirtVfRange *v = &sel.ranges[i];
                fuzz_assert(v->first <= v->last && v->last <= IOVIRT_VF_INDEX_MAX);
                fuzz_assert(iovirt_selector_has(&sel, v->first) && iovirt_selector_has(&sel, v->last));
                max = v->last > max ? v->last : max;
        }
        fuzz_assert(iovirt_selector_max(&sel) == max);
        fuzz_assert(!iovirt_selector_has(&sel, max + 1));
        unsigned count = iovirt_selector_count(&sel);
        fuzz_assert(count >= 1 && count <= max + 1);
        /* against counting index by index, where that is cheap */
        if ((uint64_t) (max + 1) * sel.n_ranges <= 1000000) {
                unsigned slow = 0;
                for (unsigned i = 0; i <= max; i++)
                        slow += iovirt_selector_has(&sel, i);
                fuzz_assert(count == slow);
        }

        /* written out as the documentation writes selectors: the same ranges */
        _cleanup_free_ char *text = NULL;
        size_t text_size = 0;
        FILE *f = open_memstream(&text, &text_size);
        fuzz_assert(f);
        fputs(sel.pf, f);
        for (size_t i = 0; i < sel.n_ranges; i++) {
                const IovirtVfRange *v = &sel.ranges[i];
                fprintf(f, "%c%u", i ? ',' : '#', v->first);
                if (v->first != v->last)
                        fprintf(f, "-%u", v->last);
        }
        fuzz_assert(fclose(f) == 0 && text);
        _cleanup_(iovirt_selector_clear) IovirtSelector back = {};
        fuzz_assert(iovirt_selector_parse(text, &back, NULL) == 1);
        fuzz_assert(streq_ptr(back.pf, sel.pf) && back.n_ranges == sel.n_ranges);
        fuzz_assert(memcmp(back.ranges, sel.ranges, sel.n_ranges * sizeof(IovirtVfRange)) == 0);
        return 0;
}
