/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds: the text of a file in the state directory, read as
 * iovirt_state_load() and iovirt_sriov_records_load() read theirs: strict
 * JSON (iovirt_json_text_parse()), then a group record
 * (iovirt_record_from_json()) and an SR-IOV record
 * (iovirt_sriov_record_from_json()).  The text may hold NUL bytes, as a
 * damaged file may.
 * Asserts beyond "no crash": a refusal is -EBADMSG with a sentence; a
 * record that loads writes back (iovirt_json_text(), as save writes it),
 * and that text loads again to a record that writes the same text (and, for
 * SR-IOV records, iovirt_sriov_records_equal()); a group record's
 * functions are valid addresses in the kernel's form, a copy of it writes
 * the same text, and its consumer is one iovirt_consumer_valid() takes. */
#include <errno.h>

#include "fuzz.h"
#include "iovirt-json.h"
#include "iovirt-sriov.h"
#include "iovirt-state.h"

/* o as save writes it; a copy the caller frees */
static char *text_of(json_object *o) {
        const char *t;
        size_t size;
        fuzz_assert(o);
        if (iovirt_json_text(o, &t, &size) < 0)
                return NULL;
        fuzz_assert(strlen(t) == size);
        return strdup(t);
}

static json_object *parse_back(const char *text) {
        json_object *o = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_json_text_parse(text, strlen(text), &o, &reason);
        fuzz_assert(r == 0 && o);
        return o;
}

static void group_record(json_object *o) {
        _cleanup_(iovirt_record_freep) IovirtRecord *r = NULL, *back = NULL, *copy = NULL;
        _cleanup_free_ char *reason = NULL;
        int k = iovirt_record_from_json(o, &r, &reason);
        if (k == -ENOMEM)
                return;
        if (k < 0) {
                fuzz_assert(k == -EBADMSG && reason && *reason && !r);
                return;
        }
        fuzz_assert(k == 0 && r && r->n_functions > 0 && r->group >= 0);
        fuzz_assert(r->phase >= 0 && r->phase < _IOVIRT_PHASE_MAX && iovirt_phase_name(r->phase));
        fuzz_assert(r->consumer && (!r->consumer[0] || iovirt_consumer_valid(r->consumer, NULL) == 0));

        _cleanup_free_ IovirtAddress *addrs = NULL;
        fuzz_assert(iovirt_record_addresses(r, &addrs) == 0);
        for (size_t i = 0; i < r->n_functions; i++) {
                char buf[IOVIRT_ADDRESS_MAX];
                fuzz_assert(streq_ptr(iovirt_address_format(&addrs[i], buf), r->functions[i].address));
                fuzz_assert(iovirt_function_vfio_driver(&r->functions[i]));
        }

        _cleanup_(json_object_putp) json_object *written = iovirt_record_to_json(r);
        _cleanup_free_ char *text = text_of(written);
        if (!text)
                return;
        _cleanup_(json_object_putp) json_object *again = parse_back(text);
        _cleanup_free_ char *why = NULL;
        fuzz_assert(iovirt_record_from_json(again, &back, &why) == 0);
        _cleanup_(json_object_putp) json_object *rewritten = iovirt_record_to_json(back);
        _cleanup_free_ char *text2 = text_of(rewritten);
        fuzz_assert(text2 && streq_ptr(text, text2));

        fuzz_assert(iovirt_record_copy(r, &copy) == 0);
        _cleanup_(json_object_putp) json_object *copied = iovirt_record_to_json(copy);
        _cleanup_free_ char *text3 = text_of(copied);
        fuzz_assert(text3 && streq_ptr(text, text3));
}

static void sriov_record(json_object *o) {
        _cleanup_(iovirt_sriov_record_freep) IovirtSriovRecord *r = NULL, *back = NULL;
        _cleanup_free_ char *reason = NULL;
        int k = iovirt_sriov_record_from_json(o, &r, &reason);
        if (k == -ENOMEM)
                return;
        if (k < 0) {
                fuzz_assert(k == -EBADMSG && reason && *reason && !r);
                return;
        }
        fuzz_assert(k == 0 && r);
        IovirtAddress a;
        char buf[IOVIRT_ADDRESS_MAX];
        fuzz_assert(iovirt_address_parse(r->pf, &a, NULL) == 0 && streq_ptr(iovirt_address_format(&a, buf), r->pf));

        _cleanup_(json_object_putp) json_object *written = iovirt_sriov_record_to_json(r);
        _cleanup_free_ char *text = text_of(written);
        if (!text)
                return;
        _cleanup_(json_object_putp) json_object *again = parse_back(text);
        _cleanup_free_ char *why = NULL;
        fuzz_assert(iovirt_sriov_record_from_json(again, &back, &why) == 0);
        fuzz_assert(iovirt_sriov_records_equal(r, back));
        _cleanup_(json_object_putp) json_object *rewritten = iovirt_sriov_record_to_json(back);
        _cleanup_free_ char *text2 = text_of(rewritten);
        fuzz_assert(text2 && streq_ptr(text, text2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* as iovirt_read_file_sized() hands a file over: its bytes and a NUL */
        _cleanup_free_ char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_json_text_parse(text, size, &o, &reason);
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                fuzz_assert(r == -EBADMSG && reason && *reason && !o);
                return 0;
        }
        group_record(o);
        sriov_record(o);
        return 0;
}
