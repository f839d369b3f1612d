/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-state.h"
#include "iovirt-sysfs.h"

#include "oom-interpose.h"

/* ---- hand-built records ---- */

typedef struct FnSpec {
        const char *addr, *driver, *override;
        bool known;
} FnSpec;

static IovirtRecord *record_new(int group, const char *consumer, IovirtPhase phase, const char *boot_id,
                                uint64_t since_usec, const FnSpec *fns, size_t n) {
        IovirtRecord *r = calloc(1, sizeof(IovirtRecord));
        assert_non_null(r);
        r->group = group;
        r->consumer = consumer ? strdup(consumer) : NULL;
        r->phase = phase;
        r->boot_id = boot_id ? strdup(boot_id) : NULL;
        r->since_usec = since_usec;
        r->functions = calloc(n, sizeof(IovirtFunctionRecord));
        assert_non_null(r->functions);
        r->n_functions = n;
        for (size_t i = 0; i < n; i++) {
                IovirtFunctionRecord *f = &r->functions[i];
                assert_true(strlen(fns[i].addr) < sizeof(f->address));
                strcpy(f->address, fns[i].addr);
                f->driver = fns[i].driver ? strdup(fns[i].driver) : NULL;
                f->driver_override = fns[i].override ? strdup(fns[i].override) : NULL;
                f->original_known = fns[i].known;
        }
        return r;
}

static const FnSpec one_fn[] = { { "0000:05:00.0", "e1000e", NULL, true } };

/* A valid record every rejection test starts from */
static IovirtRecord *record_sample(int group) {
        static const FnSpec fns[] = {
                { "0000:01:00.0", "nouveau", NULL, true },
                { "0000:01:00.1", "snd_hda_intel", "snd_hda_intel", true },
        };
        IovirtRecord *r = record_new(group, "win10-gaming", IOVIRT_PHASE_ASSIGNED,
                                     "2f1c6ce4-7b1e-4b5a-9c1d-0e8a1f6b9d31", 1700000000123456ULL, fns, ELEMENTSOF(fns));
        /* the first as records before variant drivers have it (no vfio_driver), the second with one */
        r->functions[1].vfio_driver = strdup("vfio-pci");
        return r;
}

static void assert_records_equal(const IovirtRecord *a, const IovirtRecord *b) {
        assert_int_equal(a->group, b->group);
        /* a NULL consumer is written as "" */
        assert_string_equal(a->consumer ? a->consumer : "", b->consumer);
        assert_int_equal(a->phase, b->phase);
        assert_true(streq_ptr(a->boot_id, b->boot_id));
        assert_true(a->since_usec == b->since_usec);
        assert_int_equal(a->n_functions, b->n_functions);
        assert_int_equal(a->libvirt_config, b->libvirt_config);
        assert_int_equal(a->libvirt_attach, b->libvirt_attach);
        for (size_t i = 0; i < a->n_functions; i++) {
                const IovirtFunctionRecord *x = &a->functions[i], *y = &b->functions[i];
                assert_string_equal(x->address, y->address);
                assert_true(streq_ptr(x->driver, y->driver));
                assert_true(streq_ptr(x->driver_override, y->driver_override));
                assert_int_equal(x->original_known, y->original_known);
                assert_true(streq_ptr(x->vfio_driver, y->vfio_driver));
        }
}

/* A document through text, from_json: what a file would hold */
static IovirtRecord *read_back(json_object *o, int flags) {
        const char *text = json_object_to_json_string_ext(o, flags);
        _cleanup_(json_object_putp) json_object *parsed = json_tokener_parse(text);
        assert_non_null(parsed);
        IovirtRecord *back = NULL;
        _cleanup_free_ char *reason = NULL;
        int k = iovirt_record_from_json(parsed, &back, &reason);
        if (k < 0)
                fail_msg("a saved record does not read back: %s (%s)", strna(reason), text);
        assert_non_null(back);
        return back;
}

static IovirtRecord *through_text(const IovirtRecord *r, int flags) {
        _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(r);
        assert_non_null(o);
        return read_back(o, flags);
}

static void test_record_round_trip(void **state) {
        static const FnSpec many[] = {
                { "0000:03:00.0", NULL, NULL, true },                  /* was unbound */
                { "0000:03:00.1", "nvme", "vfio-pci", true },          /* an override was set */
                { "0000:03:00.2", NULL, NULL, false },                 /* rebuilt: unknown */
                { "0000:03:00.3", "i40e", NULL, true },
                { "10000:e1:00.0", "nvme", NULL, true },               /* a VMD domain */
                { "0000:ff:1f.7", "ixgbe", "ixgbe", false },
        };
        IovirtRecord *records[] = {
                record_new(0, "vm-1", IOVIRT_PHASE_ASSIGNING, "0b5e8f6a-3e0f-4a66-9f4e-5d2a7d1c8b11", 0, one_fn,
                           ELEMENTSOF(one_fn)),
                /* UTF-8: Latin, Cyrillic, CJK and a 4-byte emoji */
                record_new(42, "Küche-виртуалка-虚拟机-🚀", IOVIRT_PHASE_ASSIGNED, "boot", UINT64_MAX, many,
                           ELEMENTSOF(many)),
                /* rebuilt after a lost record: no consumer, no boot id */
                record_new(INT_MAX, "", IOVIRT_PHASE_RELEASING, NULL, 1ULL << 63, many + 2, 1),
                record_new(7, NULL, IOVIRT_PHASE_RELEASING, NULL, (uint64_t) INT64_MAX + 1000, many, 2),
                record_sample(9),
        };
        static const int flags[] = { JSON_C_TO_STRING_PLAIN, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED };
        records[1]->libvirt_config = true;      /* assign --persistent put it in a domain's config */
        records[4]->libvirt_attach = true;      /* a pool device, attached once its domain runs */

        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                for (size_t f = 0; f < ELEMENTSOF(flags); f++) {
                        _cleanup_(iovirt_record_freep) IovirtRecord *back = through_text(records[i], flags[f]);
                        assert_records_equal(records[i], back);
                }
                iovirt_record_free(records[i]);
        }
}

/* Several functions, with drivers and overrides: what an assignment writes */
static IovirtRecord *record_busy(int group) {
        static const FnSpec fns[] = {
                { "0000:03:00.0", "nvme", "vfio-pci", true },
                { "0000:03:00.1", "snd_hda_intel", "snd_hda_intel", true },
                { "0000:03:00.2", "xhci_hcd", NULL, true },
                { "0000:03:00.3", NULL, NULL, true },                           /* was unbound */
                { "10000:e1:00.0", "i40e", "i40e", false },
        };
        IovirtRecord *r = record_new(group, "Küche-виртуалка-🚀", IOVIRT_PHASE_ASSIGNING,
                                     "2f1c6ce4-7b1e-4b5a-9c1d-0e8a1f6b9d31", 1700000000123456ULL, fns, ELEMENTSOF(fns));
        r->functions[0].vfio_driver = strdup("vfio-pci");
        r->functions[2].vfio_driver = strdup("mlx5_vfio_pci");
        return r;
}

/* Whichever allocation fails, the document is whole or there is none:
 * never a driver that became null, never a member left out. */
static void test_record_to_json_out_of_memory(void **state) {
        skip_unless_oom_usable();
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_busy(8);
        long refused = 0;
        for (long i = 0;; i++) {
                oom_fail_at(i);
                json_object *o = iovirt_record_to_json(r);
                long n = oom_stop();
                if (!o) {
                        if (n <= i)
                                fail_msg("no allocation failed, yet there is no document");
                        refused++;
                        continue;
                }
                IovirtRecord *back = read_back(o, JSON_C_TO_STRING_PLAIN);
                json_object_put(o);
                assert_records_equal(r, back);
                iovirt_record_free(back);
                if (n <= i)
                        break;
        }
        if (getenv("IOVIRT_TEST_VERBOSE"))
                print_message("to_json: %ld allocations, %ld failures refused\n", oom_count, refused);
        assert_true(refused > 0);
}

static void test_record_json_shape(void **state) {
        /* the document carries its version, names its phase and keeps null for "none" */
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_new(
                3, "vm", IOVIRT_PHASE_RELEASING, NULL, 5, (const FnSpec[]) { { "0000:05:00.0", NULL, NULL, false } }, 1);
        _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(r);
        json_object *v, *fn;
        assert_true(json_object_object_get_ex(o, "version", &v));
        assert_int_equal(json_object_get_int(v), IOVIRT_STATE_VERSION);
        assert_true(json_object_object_get_ex(o, "phase", &v));
        assert_string_equal(json_object_get_string(v), "releasing");
        assert_true(json_object_object_get_ex(o, "boot_id", &v));
        assert_null(v);
        assert_true(json_object_object_get_ex(o, "functions", &v));
        fn = json_object_array_get_idx(v, 0);
        assert_true(json_object_object_get_ex(fn, "driver", &v));
        assert_null(v);
        assert_true(json_object_object_get_ex(fn, "driver_override", &v));
        assert_null(v);

        assert_string_equal(iovirt_phase_name(IOVIRT_PHASE_ASSIGNING), "assigning");
        assert_string_equal(iovirt_phase_name(IOVIRT_PHASE_ASSIGNED), "assigned");
        assert_string_equal(iovirt_phase_name(_IOVIRT_PHASE_MAX), "invalid");
}

static void test_record_address_normalised(void **state) {
        /* the short and libvirt forms are read, and kept in the kernel's form */
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_sample(4);
        _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(r);
        json_object *fns;
        assert_true(json_object_object_get_ex(o, "functions", &fns));
        json_object_object_add(json_object_array_get_idx(fns, 0), "address", json_object_new_string("01:00.0"));
        json_object_object_add(json_object_array_get_idx(fns, 1), "address", json_object_new_string("pci_0000_01_00_1"));
        _cleanup_(iovirt_record_freep) IovirtRecord *back = NULL;
        assert_int_equal(iovirt_record_from_json(o, &back, NULL), 0);
        assert_string_equal(back->functions[0].address, "0000:01:00.0");
        assert_string_equal(back->functions[1].address, "0000:01:00.1");
}

static void test_record_copy(void **state) {
        static const FnSpec fns[] = {
                { "0000:03:00.0", NULL, NULL, false },
                { "0000:03:00.1", "nvme", "vfio-pci", true },
        };
        IovirtRecord *records[] = {
                record_sample(3),
                /* no consumer and no boot id: the copy says "" as to_json writes it, and from_json reads it */
                record_new(4, NULL, IOVIRT_PHASE_RELEASING, NULL, UINT64_MAX, fns, ELEMENTSOF(fns)),
                record_new(5, "", IOVIRT_PHASE_ASSIGNING, NULL, 0, fns, 1),
        };
        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                IovirtRecord *a = records[i], *c = NULL;
                assert_int_equal(iovirt_record_copy(a, &c), 0);
                assert_non_null(c);
                assert_records_equal(a, c);
                assert_non_null(c->consumer);
                /* deep: nothing is shared with the original */
                assert_true(c->consumer != a->consumer && c->functions != a->functions);
                assert_true(!c->boot_id || c->boot_id != a->boot_id);
                for (size_t f = 0; f < c->n_functions; f++) {
                        assert_true(!c->functions[f].driver || c->functions[f].driver != a->functions[f].driver);
                        assert_true(!c->functions[f].driver_override ||
                                    c->functions[f].driver_override != a->functions[f].driver_override);
                        assert_true(!c->functions[f].vfio_driver ||
                                    c->functions[f].vfio_driver != a->functions[f].vfio_driver);
                }
                /* and it reads back as the original does */
                IovirtRecord *back = through_text(c, JSON_C_TO_STRING_PLAIN);
                assert_records_equal(a, back);
                iovirt_record_free(back);
                iovirt_record_free(c);
                iovirt_record_free(a);
        }
}

/* ---- what from_json refuses ---- */

typedef enum Mutation { SET, DELETE } Mutation;

typedef struct Bad {
        const char *what;          /* for the failure message */
        int fn;                    /* -1: the record, else the index of a function */
        const char *key;
        Mutation mutation;
        const char *value;         /* JSON text for SET */
        const char *reason;        /* the reason must name this */
} Bad;

/* NULL when o is refused as it should be, else what went wrong */
static char *rejection_error(json_object *o, const char *what, const char *want) {
        IovirtRecord *r = NULL;
        _cleanup_free_ char *reason = NULL;
        char *msg = NULL;
        int k = iovirt_record_from_json(o, &r, &reason);
        if (k != -EBADMSG)
                assert_true(asprintf(&msg, "%s: expected -EBADMSG, got %d", what, k) > 0);
        else if (r)
                assert_true(asprintf(&msg, "%s: refused, but a record was returned", what) > 0);
        else if (!reason)
                assert_true(asprintf(&msg, "%s: refused without a reason", what) > 0);
        else if (!strstr(reason, want))
                assert_true(asprintf(&msg, "%s: the reason \"%s\" does not name \"%s\"", what, reason, want) > 0);
        iovirt_record_free(r);
        return msg;
}

static void assert_rejected(json_object *o, const char *what, const char *want) {
        _cleanup_free_ char *msg = rejection_error(o, what, want);
        if (msg)
                fail_msg("%s (%s)", msg, json_object_to_json_string(o));
}

/* Runs every case, then fails listing each that was not refused */
static void run_bad(const Bad *bad, size_t n) {
        size_t failed = 0;
        for (size_t i = 0; i < n; i++) {
                const Bad *b = &bad[i];
                _cleanup_(iovirt_record_freep) IovirtRecord *good = record_sample(5);
                _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(good);
                json_object *target = o, *fns;
                if (b->fn >= 0) {
                        assert_true(json_object_object_get_ex(o, "functions", &fns));
                        target = json_object_array_get_idx(fns, (size_t) b->fn);
                        assert_non_null(target);
                }
                if (b->mutation == DELETE)
                        json_object_object_del(target, b->key);
                else {
                        json_object *v = json_tokener_parse(b->value);
                        assert_true(v || streq_ptr(b->value, "null"));
                        json_object_object_add(target, b->key, v);
                }
                _cleanup_free_ char *msg = rejection_error(o, b->what, b->reason);
                if (msg) {
                        print_error("    %s\n", msg);
                        failed++;
                }
        }
        if (failed)
                fail_msg("%zu of %zu bad records were not refused as they should be (listed above)", failed, n);
}

static void test_record_rejects_bad_fields(void **state) {
        static const Bad bad[] = {
                { "no version", -1, "version", DELETE, NULL, "version" },
                { "version 2", -1, "version", SET, "2", "version" },
                { "version 0", -1, "version", SET, "0", "version" },
                { "version null", -1, "version", SET, "null", "version" },
                { "no group", -1, "group", DELETE, NULL, "group" },
                { "group -1", -1, "group", SET, "-1", "group" },
                { "group as a string", -1, "group", SET, "\"5\"", "group" },
                { "group as a float", -1, "group", SET, "5.5", "group" },
                { "group null", -1, "group", SET, "null", "group" },
                { "no consumer", -1, "consumer", DELETE, NULL, "consumer" },
                { "consumer null", -1, "consumer", SET, "null", "consumer" },
                { "consumer as a number", -1, "consumer", SET, "17", "consumer" },
                { "consumer with a newline", -1, "consumer", SET, "\"vm\\nroot\"", "consumer" },
                { "consumer with an escape", -1, "consumer", SET, "\"vm\\u001b[2J\"", "consumer" },
                { "consumer with a C1 control", -1, "consumer", SET, "\"vm\\u0085\"", "consumer" },
                { "no phase", -1, "phase", DELETE, NULL, "phase" },
                { "libvirt_config as a string", -1, "libvirt_config", SET, "\"yes\"", "libvirt_config" },
                { "libvirt_config as a number", -1, "libvirt_config", SET, "1", "libvirt_config" },
                { "libvirt_attach as a string", -1, "libvirt_attach", SET, "\"no\"", "libvirt_attach" },
                { "unknown phase", -1, "phase", SET, "\"done\"", "phase" },
                { "phase \"invalid\"", -1, "phase", SET, "\"invalid\"", "phase" },
                { "phase in capitals", -1, "phase", SET, "\"ASSIGNED\"", "phase" },
                { "phase as a number", -1, "phase", SET, "1", "phase" },
                { "no boot_id", -1, "boot_id", DELETE, NULL, "boot_id" },
                { "boot_id as a number", -1, "boot_id", SET, "1", "boot_id" },
                { "no since_usec", -1, "since_usec", DELETE, NULL, "since_usec" },
                { "since_usec as a string", -1, "since_usec", SET, "\"12\"", "since_usec" },
                { "since_usec as a float", -1, "since_usec", SET, "1.5", "since_usec" },
                { "since_usec null", -1, "since_usec", SET, "null", "since_usec" },
                { "no functions", -1, "functions", DELETE, NULL, "functions" },
                { "no function", -1, "functions", SET, "[]", "functions" },
                { "functions as an object", -1, "functions", SET, "{}", "functions" },
                { "a function that is a number", -1, "functions", SET, "[5]", "address" },
                { "an empty function", -1, "functions", SET, "[{}]", "address" },
                { "no address", 1, "address", DELETE, NULL, "address" },
                { "address null", 0, "address", SET, "null", "address" },
                { "address as a number", 0, "address", SET, "5", "address" },
                { "address that does not parse", 0, "address", SET, "\"nonsense\"", "address" },
                { "address with device 0x20", 0, "address", SET, "\"0000:05:20.0\"", "address" },
                { "address with function 8", 1, "address", SET, "\"0000:05:00.8\"", "address" },
                { "address with a path", 1, "address", SET, "\"../0000:05:00.0\"", "address" },
                { "empty address", 1, "address", SET, "\"\"", "address" },
                { "no driver", 0, "driver", DELETE, NULL, "driver" },
                { "driver as a number", 1, "driver", SET, "0", "driver" },
                { "no driver_override", 1, "driver_override", DELETE, NULL, "driver_override" },
                { "driver_override as a boolean", 0, "driver_override", SET, "false", "driver_override" },
                { "no original_known", 0, "original_known", DELETE, NULL, "original_known" },
                { "original_known as a string", 1, "original_known", SET, "\"true\"", "original_known" },
                { "original_known as a number", 1, "original_known", SET, "1", "original_known" },
                /* optional, but a driver name when there */
                { "vfio_driver null", 1, "vfio_driver", SET, "null", "vfio_driver" },
                { "vfio_driver as a number", 1, "vfio_driver", SET, "5", "vfio_driver" },
                { "vfio_driver as a boolean", 0, "vfio_driver", SET, "true", "vfio_driver" },
                { "empty vfio_driver", 0, "vfio_driver", SET, "\"\"", "vfio_driver" },
                { "vfio_driver with a path", 1, "vfio_driver", SET, "\"../vfio-pci\"", "vfio_driver" },
                { "vfio_driver like an option", 1, "vfio_driver", SET, "\"-r\"", "vfio_driver" },
                { "vfio_driver with a space", 1, "vfio_driver", SET, "\"mlx5 vfio\"", "vfio_driver" },
                { "vfio_driver of 56 characters", 1, "vfio_driver", SET,
                  "\"a1234567890123456789012345678901234567890123456789012345\"", "vfio_driver" },
        };
        run_bad(bad, ELEMENTSOF(bad));
}

static void test_record_rejects_non_objects(void **state) {
        static const char *const docs[] = { "[]", "\"group-1\"", "1", "true" };
        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                _cleanup_(json_object_putp) json_object *o = json_tokener_parse(docs[i]);
                assert_rejected(o, docs[i], "object");
        }
        assert_rejected(NULL, "null", "object");
}

/* Found by these tests: wrong-typed and out-of-range fields that json-c
 * converts instead of refusing.  Each is a record no version of iovirt
 * writes; reading it as something else is guessing. */
static void test_record_rejects_converted_values(void **state) {
        static const Bad bad[] = {
                /* json_object_get_int() converts strings, floats and booleans */
                { "version as a string", -1, "version", SET, "\"1\"", "version" },
                { "version as a float", -1, "version", SET, "1.9", "version" },
                { "version as a boolean", -1, "version", SET, "true", "version" },
                /* json_object_get_int() clamps to INT32_MAX */
                { "group past INT_MAX", -1, "group", SET, "4294967296", "group" },
                /* json_object_get_uint64() turns negative numbers into 0 */
                { "negative since_usec", -1, "since_usec", SET, "-1", "since_usec" },
                { "group one past INT_MAX", -1, "group", SET, "2147483648", "group" },
                { "version 1.0", -1, "version", SET, "1.0", "version" },
                /* C strings end at a NUL: what follows it would be dropped */
                { "consumer with a NUL", -1, "consumer", SET, "\"vm\\u0000root\"", "consumer" },
                { "driver with a NUL", 0, "driver", SET, "\"nouveau\\u0000x\"", "driver" },
                { "vfio_driver with a NUL", 1, "vfio_driver", SET, "\"vfio-pci\\u0000x\"", "vfio_driver" },
        };
        run_bad(bad, ELEMENTSOF(bad));
}

/* ---- the VFIO driver of each function ---- */

/* A record as iovirt wrote it before variant drivers: no vfio_driver,
 * which means vfio-pci; it loads, and is written back without one */
static void test_record_without_vfio_driver(void **state) {
        static const char old[] =
                "{ \"version\": 1, \"group\": 12, \"consumer\": \"vm1\", \"phase\": \"assigned\", "
                "\"boot_id\": \"2f1c6ce4-7b1e-4b5a-9c1d-0e8a1f6b9d31\", \"since_usec\": 1700000000123456, "
                "\"functions\": [ { \"address\": \"0000:05:00.0\", \"driver\": \"e1000e\", "
                "\"driver_override\": null, \"original_known\": true } ] }";
        _cleanup_(json_object_putp) json_object *o = NULL, *again = NULL;
        _cleanup_(iovirt_record_freep) IovirtRecord *r = NULL;
        _cleanup_free_ char *reason = NULL;
        assert_int_equal(iovirt_json_text_parse(old, sizeof(old) - 1, &o, &reason), 0);
        assert_int_equal(iovirt_record_from_json(o, &r, &reason), 0);
        assert_null(r->functions[0].vfio_driver);
        assert_string_equal(iovirt_function_vfio_driver(&r->functions[0]), "vfio-pci");
        again = iovirt_record_to_json(r);
        json_object *fns;
        assert_true(json_object_object_get_ex(again, "functions", &fns));
        assert_false(json_object_object_get_ex(json_object_array_get_idx(fns, 0), "vfio_driver", NULL));
}

static void test_record_with_vfio_driver(void **state) {
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_new(
                6, "vm", IOVIRT_PHASE_ASSIGNED, NULL, 5, (const FnSpec[]) { { "0000:05:00.2", NULL, NULL, true } }, 1);
        r->functions[0].vfio_driver = strdup("mlx5_vfio_pci");
        _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(r);
        json_object *fns, *v;
        assert_true(json_object_object_get_ex(o, "functions", &fns));
        assert_true(json_object_object_get_ex(json_object_array_get_idx(fns, 0), "vfio_driver", &v));
        assert_string_equal(json_object_get_string(v), "mlx5_vfio_pci");
        _cleanup_(iovirt_record_freep) IovirtRecord *back = through_text(r, JSON_C_TO_STRING_PLAIN);
        assert_string_equal(back->functions[0].vfio_driver, "mlx5_vfio_pci");
        assert_string_equal(iovirt_function_vfio_driver(&back->functions[0]), "mlx5_vfio_pci");
}

/* ---- consumer names ---- */

static void assert_consumer_refused(const char *name, size_t len, const char *want) {
        _cleanup_free_ char *reason = NULL, *copy = NULL;
        if (name) {
                copy = malloc(len + 1);
                assert_non_null(copy);
                memcpy(copy, name, len);
                copy[len] = '\0';
        }
        int k = iovirt_consumer_valid(copy, &reason);
        if (k != -EINVAL)
                fail_msg("consumer of %zu bytes (first 0x%02x): expected -EINVAL, got %d", len,
                         copy && len ? (unsigned char) copy[0] : 0, k);
        assert_non_null(reason);
        if (!strstr(reason, want))
                fail_msg("reason \"%s\" does not say \"%s\"", reason, want);
        /* and without a reason asked for */
        assert_int_equal(iovirt_consumer_valid(copy, NULL), -EINVAL);
}

#define REFUSED(lit, want) assert_consumer_refused(lit, sizeof(lit) - 1, want)

static void assert_consumer_accepted(const char *name) {
        _cleanup_free_ char *reason = NULL;
        int k = iovirt_consumer_valid(name, &reason);
        if (k != 0)
                fail_msg("consumer \"%s\" (%zu bytes) refused: %s", name, strlen(name), strna(reason));
        assert_null(reason);
}

static void test_consumer_accepts(void **state) {
        char buf[512];
        assert_consumer_accepted("a");
        assert_consumer_accepted("vm-01");
        assert_consumer_accepted("instance-0000a1b2 (tenant 7)");
        assert_consumer_accepted("Küche");
        assert_consumer_accepted("виртуалка");
        assert_consumer_accepted("虚拟机");
        assert_consumer_accepted("🚀");                         /* 4 bytes */
        assert_consumer_accepted("\xc2\xa0");                   /* U+00A0, the first after C1 */
        assert_consumer_accepted("~");                          /* 0x7e, before DEL */
        assert_consumer_accepted("\xef\xbf\xbd");               /* U+FFFD */
        assert_consumer_accepted("\xf4\x8f\xbf\xbf");           /* U+10FFFF, the last */
        assert_consumer_accepted("\xee\x80\x80");               /* U+E000, after the surrogates */

        memset(buf, 'a', 255);
        buf[255] = '\0';
        assert_consumer_accepted(buf);
        /* 255 bytes of 3-byte characters */
        for (size_t i = 0; i < 85; i++)
                memcpy(buf + 3 * i, "€", 3);
        buf[255] = '\0';
        assert_consumer_accepted(buf);
        /* 253 + a 2-byte character: 255 */
        memset(buf, 'b', 253);
        memcpy(buf + 253, "é", 3);
        assert_int_equal(strlen(buf), 255);
        assert_consumer_accepted(buf);
}

static void test_consumer_refuses(void **state) {
        char buf[512];

        assert_consumer_refused(NULL, 0, "empty");
        REFUSED("", "empty");

        memset(buf, 'a', 256);
        assert_consumer_refused(buf, 256, "255");
        memset(buf, 'b', 254);
        memcpy(buf + 254, "é", 2);                            /* 256 bytes, 255 characters */
        assert_consumer_refused(buf, 256, "255");
        memset(buf, 'c', 500);
        assert_consumer_refused(buf, 500, "255");

        /* C0, DEL and C1 (as UTF-8) */
        REFUSED("\x01", "control");
        REFUSED("vm\tone", "control");
        REFUSED("vm\n", "control");
        REFUSED("\rvm", "control");
        REFUSED("vm\x1b[2J", "control");
        REFUSED("vm\x1f", "control");
        REFUSED("vm\x7f", "control");
        REFUSED("vm\xc2\x80", "control");                     /* U+0080 */
        REFUSED("\xc2\x85vm", "control");                     /* U+0085 NEL */
        REFUSED("vm\xc2\x9b", "control");                     /* U+009B CSI */
        REFUSED("vm\xc2\x9f", "control");                     /* U+009F */

        /* invalid UTF-8 */
        REFUSED("\x80", "UTF-8");                             /* lone continuation bytes */
        REFUSED("vm\xbf", "UTF-8");
        REFUSED("a\x80\x80" "b", "UTF-8");
        REFUSED("\xc0\x80", "UTF-8");                         /* overlong NUL */
        REFUSED("\xc0\xaf", "UTF-8");                         /* overlong '/' */
        REFUSED("\xc1\xbf", "UTF-8");
        REFUSED("\xe0\x80\xaf", "UTF-8");
        REFUSED("\xe0\x9f\xbf", "UTF-8");                     /* overlong U+07FF */
        REFUSED("\xf0\x80\x80\xaf", "UTF-8");
        REFUSED("\xf0\x8f\xbf\xbf", "UTF-8");                 /* overlong U+FFFF */
        REFUSED("\xed\xa0\x80", "UTF-8");                     /* U+D800 */
        REFUSED("\xed\xbf\xbf", "UTF-8");                     /* U+DFFF */
        REFUSED("\xed\xa0\xbd\xed\xba\x80", "UTF-8");         /* CESU-8 for U+1F680 */
        REFUSED("\xf4\x90\x80\x80", "UTF-8");                 /* U+110000 */
        REFUSED("\xf5\x80\x80\x80", "UTF-8");
        REFUSED("\xf8\x88\x80\x80\x80", "UTF-8");             /* 5-byte forms */
        REFUSED("\xfe", "UTF-8");
        REFUSED("\xff", "UTF-8");
        REFUSED("vm\xe2\x82", "UTF-8");                       /* cut short at the end */
        REFUSED("\xe2\x82x", "UTF-8");                        /* cut short before ASCII */
        REFUSED("\xc3", "UTF-8");
        REFUSED("\xf0\x9f\x9a", "UTF-8");
        /* a valid first character does not excuse a bad later one */
        REFUSED("Küche\xff", "UTF-8");
}

/* ---- the state directory ---- */

typedef struct Dir {
        char path[PATH_MAX];
} Dir;

/* Best effort: a failed test may leave anything behind */
static void rm_rf(const char *dir) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (streq_ptr(de->d_name, ".") || streq_ptr(de->d_name, ".."))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && (errno == EISDIR || errno == EPERM)) {
                        _cleanup_free_ char *sub = NULL;
                        if (asprintf(&sub, "%s/%s", dir, de->d_name) > 0)
                                rm_rf(sub);
                }
        }
        (void) rmdir(dir);
}

static int dir_setup(void **state) {
        Dir *d = calloc(1, sizeof(Dir));
        const char *tmp = getenv("TMPDIR");
        if (!d)
                return -1;
        snprintf(d->path, sizeof(d->path), "%s/iovirt-test-state.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(d->path)) {
                free(d);
                return -1;
        }
        *state = d;
        return 0;
}

static int dir_teardown(void **state) {
        Dir *d = *state;
        rm_rf(d->path);
        int r = access(d->path, F_OK) == 0 ? -1 : 0;
        free(d);
        return r;
}

/* dir/name, allocated */
static char *path_of(const char *dir, const char *name) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void write_file(const char *dir, const char *name, const char *text, size_t len) {
        _cleanup_free_ char *path = path_of(dir, name);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t) len);
}

static char *read_whole(const char *dir, const char *name) {
        _cleanup_free_ char *path = path_of(dir, name);
        char *text = NULL;
        assert_int_equal(iovirt_read_file(path, &text), 0);
        return text;
}

static bool exists(const char *dir, const char *name) {
        _cleanup_free_ char *path = path_of(dir, name);
        return access(path, F_OK) == 0;
}

/* The names in dir, sorted, space-separated */
static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *listing(const char *dir) {
        char *names[64], *out = calloc(1, 4096);
        size_t n = 0, l = 0;
        _cleanup_closedir_ DIR *d = opendir(dir);
        assert_non_null(d);
        assert_non_null(out);
        struct dirent *de;
        while ((de = readdir(d)))
                if (!streq_ptr(de->d_name, ".") && !streq_ptr(de->d_name, "..")) {
                        assert_true(n < ELEMENTSOF(names));
                        names[n++] = strdup(de->d_name);
                }
        qsort(names, n, sizeof(char *), compare_strings);
        for (size_t i = 0; i < n; i++) {
                l += (size_t) snprintf(out + l, 4096 - l, "%s%s", i ? " " : "", names[i]);
                free(names[i]);
        }
        return out;
}

/* The name of the one entry starting with prefix, or fail */
static char *find_entry(const char *dir, const char *prefix) {
        char *found = NULL;
        _cleanup_closedir_ DIR *d = opendir(dir);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
                        if (found)
                                fail_msg("two entries start with %s: %s and %s", prefix, found, de->d_name);
                        found = strdup(de->d_name);
                }
        if (!found)
                fail_msg("no entry starts with %s in %s", prefix, dir);
        return found;
}

static void test_save_load_remove(void **state) {
        Dir *dir = *state;
        static const FnSpec fns[] = {
                { "0000:03:00.0", NULL, NULL, true },
                { "0000:03:00.1", "nvme", "vfio-pci", false },
        };
        _cleanup_(iovirt_record_freep) IovirtRecord *a = record_sample(3);
        _cleanup_(iovirt_record_freep) IovirtRecord *b = record_new(12, "Küche-🚀", IOVIRT_PHASE_ASSIGNING, NULL,
                                                                    UINT64_MAX, fns, ELEMENTSOF(fns));

        assert_int_equal(iovirt_record_save(dir->path, a), 0);
        assert_int_equal(iovirt_record_save(dir->path, b), 0);
        {
                /* exactly the two records: no temporary file stays behind */
                _cleanup_free_ char *l = listing(dir->path);
                assert_string_equal(l, "group-12.json group-3.json");
                _cleanup_free_ char *path = path_of(dir->path, "group-3.json");
                struct stat st;
                assert_int_equal(stat(path, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0644);
                /* a text file, ending in a newline */
                _cleanup_free_ char *text = read_whole(dir->path, "group-12.json");
                assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
        }
        {
                _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
                assert_int_equal(iovirt_state_load(dir->path, &s), 0);
                assert_int_equal(s->n_records, 2);
                assert_int_equal(s->n_problems, 0);
                assert_int_equal(s->n_damaged, 0);
                assert_non_null(iovirt_state_find(s, 3));
                assert_non_null(iovirt_state_find(s, 12));
                assert_null(iovirt_state_find(s, 4));
                assert_records_equal(a, iovirt_state_find(s, 3));
                assert_records_equal(b, iovirt_state_find(s, 12));
        }

        /* saving again replaces the file, atomically */
        b->phase = IOVIRT_PHASE_ASSIGNED;
        free(b->consumer);
        b->consumer = strdup("other");
        assert_int_equal(iovirt_record_save(dir->path, b), 0);
        {
                _cleanup_free_ char *l = listing(dir->path);
                assert_string_equal(l, "group-12.json group-3.json");
                _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
                assert_int_equal(iovirt_state_load(dir->path, &s), 0);
                assert_int_equal(s->n_records, 2);
                assert_records_equal(b, iovirt_state_find(s, 12));
        }

        assert_int_equal(iovirt_record_remove(dir->path, 3), 0);
        assert_false(exists(dir->path, "group-3.json"));
        /* removing what is not there is no error: a retry */
        assert_int_equal(iovirt_record_remove(dir->path, 3), 0);
        assert_int_equal(iovirt_record_remove(dir->path, 99), 0);
        {
                _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
                assert_int_equal(iovirt_state_load(dir->path, &s), 0);
                assert_int_equal(s->n_records, 1);
                assert_null(iovirt_state_find(s, 3));
                assert_records_equal(b, iovirt_state_find(s, 12));
        }
        assert_int_equal(iovirt_record_remove(dir->path, 12), 0);
        _cleanup_free_ char *l = listing(dir->path);
        assert_string_equal(l, "");
}

static void test_load_creates_directory(void **state) {
        Dir *dir = *state;
        _cleanup_free_ char *sub = path_of(dir->path, "state");
        _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
        assert_int_equal(iovirt_state_load(sub, &s), 0);
        assert_int_equal(s->n_records, 0);
        assert_int_equal(s->n_problems, 0);
        struct stat st;
        assert_int_equal(stat(sub, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(rmdir(sub), 0);
}

static void test_save_fails_cleanly(void **state) {
        Dir *dir = *state;
        _cleanup_free_ char *missing = path_of(dir->path, "does-not-exist");
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_sample(3);
        assert_int_equal(iovirt_record_save(missing, r), -ENOENT);
        assert_false(exists(dir->path, "does-not-exist"));

        /* a rename that fails (the target is a non-empty directory) leaves no temporary file */
        _cleanup_free_ char *target = path_of(dir->path, "group-3.json");
        assert_int_equal(mkdir(target, 0755), 0);
        write_file(target, "keep", "x", 1);
        assert_true(iovirt_record_save(dir->path, r) < 0);
        _cleanup_free_ char *l = listing(dir->path);
        assert_string_equal(l, "group-3.json");
}

typedef struct Damage {
        int group;
        const char *text;
} Damage;

static bool has_group(const int *groups, size_t n, int group) {
        for (size_t i = 0; i < n; i++)
                if (groups[i] == group)
                        return true;
        return false;
}

static void test_damaged_records_are_set_aside(void **state) {
        Dir *dir = *state;
        _cleanup_(iovirt_record_freep) IovirtRecord *good = record_sample(3);
        _cleanup_(iovirt_record_freep) IovirtRecord *other = record_sample(10);
        assert_int_equal(iovirt_record_save(dir->path, good), 0);

        _cleanup_free_ char *full = read_whole(dir->path, "group-3.json");
        _cleanup_(json_object_putp) json_object *wrong_version = iovirt_record_to_json(good);
        json_object_object_add(wrong_version, "version", json_object_new_int(99));
        _cleanup_(json_object_putp) json_object *mismatch = iovirt_record_to_json(other);   /* says group 10 */

        _cleanup_free_ char *truncated = strndup(full, strlen(full) / 2);
        assert_non_null(truncated);
        const Damage damage[] = {
                { 5, truncated },                                        /* a torn write */
                { 6, "" },                                               /* an empty file */
                { 7, "this is not JSON\n" },
                { 8, json_object_to_json_string(wrong_version) },        /* JSON, not a record */
                { 9, json_object_to_json_string(mismatch) },             /* a record of another group */
                { 11, "[1, 2, 3]" },
                { 13, "{\"version\": 1," },
                { 14, "null" },                                          /* JSON, but nothing */
        };
        char name[64];
        for (size_t i = 0; i < ELEMENTSOF(damage); i++) {
                snprintf(name, sizeof(name), "group-%d.json", damage[i].group);
                write_file(dir->path, name, damage[i].text, strlen(damage[i].text));
        }

        {
                _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
                assert_int_equal(iovirt_state_load(dir->path, &s), 0);
                /* the valid record beside them still loads */
                assert_int_equal(s->n_records, 1);
                assert_records_equal(good, iovirt_state_find(s, 3));
                assert_null(iovirt_state_find(s, 10));
                assert_int_equal(s->n_damaged, ELEMENTSOF(damage));
                assert_int_equal(s->n_problems, ELEMENTSOF(damage));
                for (size_t i = 0; i < ELEMENTSOF(damage); i++) {
                        int g = damage[i].group;
                        assert_true(has_group(s->damaged_groups, s->n_damaged, g));
                        assert_null(iovirt_state_find(s, g));

                        /* the file was set aside, with its bytes */
                        snprintf(name, sizeof(name), "group-%d.json", g);
                        assert_false(exists(dir->path, name));
                        snprintf(name, sizeof(name), "group-%d.json.damaged-", g);
                        _cleanup_free_ char *kept = find_entry(dir->path, name);
                        _cleanup_free_ char *bytes = read_whole(dir->path, kept);
                        assert_string_equal(bytes, damage[i].text);

                        /* and the problem names the file, and where it went */
                        snprintf(name, sizeof(name), "/group-%d.json ", g);
                        bool named = false;
                        for (size_t p = 0; p < s->n_problems; p++)
                                if (strstr(s->problems[p], name) && strstr(s->problems[p], kept))
                                        named = true;
                        if (!named)
                                fail_msg("no problem names %s and %s", name, kept);
                }
                for (size_t p = 0; p < s->n_problems; p++) {
                        if (getenv("IOVIRT_TEST_VERBOSE"))
                                print_message("%s\n", s->problems[p]);
                        assert_non_null(strstr(s->problems[p], "damaged"));
                }
                bool said_mismatch = false, said_null = false;
                for (size_t p = 0; p < s->n_problems; p++) {
                        said_mismatch = said_mismatch || (strstr(s->problems[p], "group-9.json ") &&
                                                          strstr(s->problems[p], "group does not match"));
                        /* JSON null parses "successfully": the problem says what is wrong all the same */
                        said_null = said_null || (strstr(s->problems[p], "group-14.json ") &&
                                                  strstr(s->problems[p], "not a JSON object"));
                        if (strstr(s->problems[p], "(success)"))
                                fail_msg("a problem that does not say what is wrong: %s", s->problems[p]);
                }
                assert_true(said_mismatch);
                assert_true(said_null);
        }
        {
                /* set aside once: the next load finds no problem, and the record is still there */
                _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
                assert_int_equal(iovirt_state_load(dir->path, &s), 0);
                assert_int_equal(s->n_records, 1);
                assert_int_equal(s->n_problems, 0);
                assert_int_equal(s->n_damaged, 0);
                assert_records_equal(good, iovirt_state_find(s, 3));
        }
}

static void test_interrupted_save_is_cleaned_up(void **state) {
        Dir *dir = *state;
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_sample(4);
        assert_int_equal(iovirt_record_save(dir->path, r), 0);

        /* what save leaves when killed between mkostemp() and rename(): the
         * name it gives its temporary files */
        _cleanup_(json_object_putp) json_object *o = iovirt_record_to_json(r);
        const char *text = json_object_to_json_string(o);
        write_file(dir->path, ".group-4.json.Ab12Cd", text, strlen(text) / 3);
        write_file(dir->path, ".group-6.json.zZ9yY8", text, strlen(text));
        /* files that are not records are none of its business */
        write_file(dir->path, "README", "x", 1);
        write_file(dir->path, "group-x.json", "x", 1);
        write_file(dir->path, "group-4.json.bak", "x", 1);

        _cleanup_(iovirt_state_freep) IovirtState *s = NULL;
        assert_int_equal(iovirt_state_load(dir->path, &s), 0);
        assert_int_equal(s->n_records, 1);
        assert_records_equal(r, iovirt_state_find(s, 4));
        assert_null(iovirt_state_find(s, 6));
        assert_int_equal(s->n_problems, 0);
        assert_int_equal(s->n_damaged, 0);
        _cleanup_free_ char *l = listing(dir->path);
        assert_string_equal(l, "README group-4.json group-4.json.bak group-x.json");
}

/* Found by these tests: a record followed by anything else is not what
 * save writes, yet json_tokener_parse_verbose() stops after the first value
 * and the rest is never looked at. */
static void test_trailing_bytes_are_damage(void **state) {
        Dir *dir = *state;
        IovirtRecord *r = record_sample(3);
        assert_int_equal(iovirt_record_save(dir->path, r), 0);
        iovirt_record_free(r);
        char *text = read_whole(dir->path, "group-3.json"), *bad = NULL;
        assert_true(asprintf(&bad, "%s{\"version\": 1, \"gro", text) > 0);
        write_file(dir->path, "group-3.json", bad, strlen(bad));
        free(text);
        free(bad);

        IovirtState *s = NULL;
        assert_int_equal(iovirt_state_load(dir->path, &s), 0);
        bool loaded = iovirt_state_find(s, 3), damaged = s->n_damaged == 1 && s->damaged_groups[0] == 3;
        iovirt_state_free(s);          /* before failing: a failure jumps past cleanups */
        assert_false(loaded);
        assert_true(damaged);
}

/* Found by these tests: "group-007.json" (or "group-+7.json") is read as
 * group 7's record, but iovirt_record_remove(dir, 7) removes
 * "group-7.json": the record comes back on every load. */
static void test_only_canonical_names_are_records(void **state) {
        Dir *dir = *state;
        IovirtRecord *r = record_sample(7);
        json_object *o = iovirt_record_to_json(r);
        const char *text = json_object_to_json_string(o);
        write_file(dir->path, "group-007.json", text, strlen(text));
        write_file(dir->path, "group-+7.json", text, strlen(text));
        json_object_put(o);
        iovirt_record_free(r);
        assert_int_equal(iovirt_record_remove(dir->path, 7), 0);

        IovirtState *s = NULL;
        assert_int_equal(iovirt_state_load(dir->path, &s), 0);
        bool loaded = iovirt_state_find(s, 7);
        iovirt_state_free(s);
        assert_false(loaded);
}

/* What may follow a record: whitespace, as save writes it (a newline);
 * nothing else, not even after a NUL, where C would stop reading. */
static void test_what_may_follow_a_record(void **state) {
        Dir *dir = *state;
        static const struct {
                const char *tail;
                size_t len;
                bool damage;
        } tails[] = {
                { "", 0, false },
                { "\n", 1, false },
                { " \t\r\n\n  ", 7, false },
                { "x", 1, true },
                { "\n{}", 3, true },
                { "\n1", 2, true },
                { "null", 4, true },
                { "\0", 1, true },
                { "\n\0{\"version\": 1}", 17, true },
        };
        for (size_t t = 0; t < ELEMENTSOF(tails); t++) {
                IovirtRecord *r = record_sample(3);
                json_object *o = iovirt_record_to_json(r);
                const char *text = json_object_to_json_string(o);
                size_t len = strlen(text);
                char *bytes = malloc(len + tails[t].len);
                assert_non_null(bytes);
                memcpy(bytes, text, len);
                memcpy(bytes + len, tails[t].tail, tails[t].len);
                write_file(dir->path, "group-3.json", bytes, len + tails[t].len);
                free(bytes);
                json_object_put(o);

                IovirtState *s = NULL;
                assert_int_equal(iovirt_state_load(dir->path, &s), 0);
                const IovirtRecord *back = iovirt_state_find(s, 3);
                bool loaded = back, equal = back && streq_ptr(back->consumer, r->consumer) &&
                                            back->n_functions == r->n_functions;
                size_t damaged = s->n_damaged;
                iovirt_state_free(s);
                iovirt_record_free(r);
                if (loaded == tails[t].damage || damaged != tails[t].damage || (loaded && !equal))
                        fail_msg("a record followed by %zu bytes (case %zu): %s", tails[t].len, t,
                                 loaded ? "loaded" : "set aside");
                assert_int_equal(iovirt_record_remove(dir->path, 3), 0);
        }
}

/* Only the names save gives are records; others are left where they are,
 * unread and unreported, like any file that is not a record. */
static void test_record_names(void **state) {
        Dir *dir = *state;
        static const char *const others[] = {
                "group-07.json", "group--7.json", "group- 7.json", "group-0x7.json", "group-7.JSON",
                "group-7.json~", "group-7", "group-.json", "group-2147483648.json", "group-99999999999.json",
                "group-00.json",
        };
        IovirtRecord *r = record_sample(7);
        json_object *o = iovirt_record_to_json(r);
        const char *text = json_object_to_json_string(o);
        for (size_t i = 0; i < ELEMENTSOF(others); i++)
                write_file(dir->path, others[i], text, strlen(text));
        json_object_put(o);
        iovirt_record_free(r);
        /* group 0 and the largest group are records, named as save names them */
        IovirtRecord *zero = record_sample(0), *top = record_sample(INT_MAX);
        assert_int_equal(iovirt_record_save(dir->path, zero), 0);
        assert_int_equal(iovirt_record_save(dir->path, top), 0);
        iovirt_record_free(zero);
        iovirt_record_free(top);
        char *before = listing(dir->path);

        IovirtState *s = NULL;
        assert_int_equal(iovirt_state_load(dir->path, &s), 0);
        size_t n = s->n_records, problems = s->n_problems;
        bool seven = iovirt_state_find(s, 7), has_zero = iovirt_state_find(s, 0), has_top = iovirt_state_find(s, INT_MAX);
        iovirt_state_free(s);
        char *after = listing(dir->path);
        bool untouched = streq_ptr(before, after);
        free(before);
        free(after);
        assert_false(seven);
        assert_true(has_zero);
        assert_true(has_top);
        assert_int_equal(n, 2);
        assert_int_equal(problems, 0);
        assert_true(untouched);
}

/* The one record in dir, as load reads it: r */
static void assert_saved(const char *dir, const IovirtRecord *r) {
        IovirtState *s = NULL;
        assert_int_equal(iovirt_state_load(dir, &s), 0);
        bool one = s->n_records == 1 && s->n_problems == 0 && s->n_damaged == 0;
        const IovirtRecord *back = iovirt_state_find(s, r->group);
        if (!one || !back) {
                iovirt_state_free(s);
                fail_msg("the record of group %d does not load back alone", r->group);
        }
        assert_records_equal(r, back);
        iovirt_state_free(s);
}

/* Whichever allocation fails while the intent is written, save says
 * -ENOMEM and leaves the previous version as it was, with no temporary
 * file; or it says 0 and the file reads back as the record.  Never a
 * record with a driver that became null or "", which release would act on. */
static void test_save_out_of_memory(void **state) {
        Dir *dir = *state;
        skip_unless_oom_usable();
        _cleanup_(iovirt_record_freep) IovirtRecord *r = record_busy(8);
        _cleanup_(iovirt_record_freep) IovirtRecord *previous = record_new(8, "vm-1", IOVIRT_PHASE_RELEASING, NULL, 5,
                                                                           one_fn, ELEMENTSOF(one_fn));
        assert_int_equal(iovirt_record_save(dir->path, previous), 0);
        _cleanup_free_ char *previous_text = read_whole(dir->path, "group-8.json");
        long refused = 0;
        for (long i = 0;; i++) {
                oom_fail_at(i);
                int k = iovirt_record_save(dir->path, r);
                long n = oom_stop();
                _cleanup_free_ char *l = listing(dir->path);
                if (!streq_ptr(l, "group-8.json"))
                        fail_msg("allocation %ld of %ld failed, save returned %d, and left \"%s\"", i, n, k, l);
                if (k == -ENOMEM && n > i) {
                        _cleanup_free_ char *text = read_whole(dir->path, "group-8.json");
                        assert_string_equal(text, previous_text);
                        refused++;
                        continue;
                }
                if (k != 0)
                        fail_msg("allocation %ld of %ld failed: save returned %d (%s)", i, n, k, strerror(-k));
                assert_saved(dir->path, r);
                if (n <= i)
                        break;
                assert_int_equal(iovirt_record_save(dir->path, previous), 0);
        }
        if (getenv("IOVIRT_TEST_VERBOSE"))
                print_message("save: %ld allocations, %ld failures refused\n", oom_count, refused);
        assert_true(refused > 0);
}

/* Whichever allocation fails while the records are read, load says
 * -ENOMEM and sets nothing aside: a good record is never "damaged" because
 * memory ran out.  Or it says 0 with every record as it was saved. */
static void test_load_out_of_memory(void **state) {
        Dir *dir = *state;
        skip_unless_oom_usable();
        IovirtRecord *records[] = {
                record_busy(8),
                record_sample(3),
                record_new(12, NULL, IOVIRT_PHASE_RELEASING, NULL, UINT64_MAX, one_fn, ELEMENTSOF(one_fn)),
        };
        for (size_t j = 0; j < ELEMENTSOF(records); j++)
                assert_int_equal(iovirt_record_save(dir->path, records[j]), 0);
        _cleanup_free_ char *before = listing(dir->path);
        long refused = 0;
        for (long i = 0;; i++) {
                IovirtState *s = NULL;
                oom_fail_at(i);
                int k = iovirt_state_load(dir->path, &s);
                long n = oom_stop();
                _cleanup_free_ char *l = listing(dir->path);
                if (!streq_ptr(l, before)) {
                        iovirt_state_free(s);
                        fail_msg("allocation %ld of %ld failed, load returned %d, and the directory holds \"%s\"", i,
                                 n, k, l);
                }
                if (k == -ENOMEM && n > i) {
                        assert_null(s);
                        refused++;
                        continue;
                }
                if (k != 0)
                        fail_msg("allocation %ld of %ld failed: load returned %d (%s)", i, n, k, strerror(-k));
                bool whole = s->n_records == ELEMENTSOF(records) && s->n_problems == 0 && s->n_damaged == 0;
                for (size_t j = 0; whole && j < ELEMENTSOF(records); j++)
                        whole = iovirt_state_find(s, records[j]->group);
                if (!whole) {
                        iovirt_state_free(s);
                        fail_msg("allocation %ld of %ld failed: load returned 0 without every record", i, n);
                }
                for (size_t j = 0; j < ELEMENTSOF(records); j++)
                        assert_records_equal(records[j], iovirt_state_find(s, records[j]->group));
                iovirt_state_free(s);
                if (n <= i)
                        break;
        }
        for (size_t j = 0; j < ELEMENTSOF(records); j++)
                iovirt_record_free(records[j]);
        if (getenv("IOVIRT_TEST_VERBOSE"))
                print_message("load: %ld allocations, %ld failures refused\n", oom_count, refused);
        assert_true(refused > 0);
}

/* ---- the in-memory state ---- */

static void test_state_put_find_drop(void **state) {
        _cleanup_(iovirt_state_freep) IovirtState *s = calloc(1, sizeof(IovirtState));
        assert_non_null(s);
        assert_null(iovirt_state_find(s, 1));
        iovirt_state_drop(s, 1);        /* nothing to drop: nothing happens */

        IovirtRecord *a = record_sample(1), *b = record_sample(2), *c = record_sample(3);
        assert_int_equal(iovirt_state_put(s, a), 0);
        assert_int_equal(iovirt_state_put(s, b), 0);
        assert_int_equal(iovirt_state_put(s, c), 0);
        assert_int_equal(s->n_records, 3);
        assert_ptr_equal(iovirt_state_find(s, 1), a);
        assert_ptr_equal(iovirt_state_find(s, 2), b);
        assert_ptr_equal(iovirt_state_find(s, 3), c);

        /* a record of the same group replaces the old one (which is freed: valgrind) */
        IovirtRecord *b2 = record_new(2, "new-owner", IOVIRT_PHASE_RELEASING, NULL, 1, one_fn, 1);
        assert_int_equal(iovirt_state_put(s, b2), 0);
        assert_int_equal(s->n_records, 3);
        assert_ptr_equal(iovirt_state_find(s, 2), b2);
        assert_string_equal(iovirt_state_find(s, 2)->consumer, "new-owner");
        /* putting the same record again changes nothing */
        assert_int_equal(iovirt_state_put(s, b2), 0);
        assert_int_equal(s->n_records, 3);
        assert_ptr_equal(iovirt_state_find(s, 2), b2);

        /* dropping the middle keeps the others */
        iovirt_state_drop(s, 2);
        assert_int_equal(s->n_records, 2);
        assert_null(iovirt_state_find(s, 2));
        assert_ptr_equal(iovirt_state_find(s, 1), a);
        assert_ptr_equal(iovirt_state_find(s, 3), c);
        iovirt_state_drop(s, 2);
        assert_int_equal(s->n_records, 2);
        iovirt_state_drop(s, 3);
        iovirt_state_drop(s, 1);
        assert_int_equal(s->n_records, 0);
        assert_null(iovirt_state_find(s, 1));

        assert_null(iovirt_state_free(NULL));
        assert_null(iovirt_record_free(NULL));
}

static void test_state_dir(void **state) {
        const char *saved = getenv(IOVIRT_ENV_STATE_DIRECTORY);
        _cleanup_free_ char *copy = saved ? strdup(saved) : NULL;

        setenv(IOVIRT_ENV_STATE_DIRECTORY, "/run/test-iovirt", 1);
        assert_string_equal(iovirt_state_dir(), "/run/test-iovirt");
        setenv(IOVIRT_ENV_STATE_DIRECTORY, "", 1);
        assert_string_equal(iovirt_state_dir(), IOVIRT_STATE_DIR);
        /* systemd's list of several: ours is the only one, so this is not ours */
        setenv(IOVIRT_ENV_STATE_DIRECTORY, "/a:/b", 1);
        assert_string_equal(iovirt_state_dir(), IOVIRT_STATE_DIR);
        unsetenv(IOVIRT_ENV_STATE_DIRECTORY);
        assert_string_equal(iovirt_state_dir(), IOVIRT_STATE_DIR);
        if (copy)
                setenv(IOVIRT_ENV_STATE_DIRECTORY, copy, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_record_round_trip),
                cmocka_unit_test(test_record_json_shape),
                cmocka_unit_test(test_record_address_normalised),
                cmocka_unit_test(test_record_copy),
                cmocka_unit_test(test_record_rejects_bad_fields),
                cmocka_unit_test(test_record_rejects_non_objects),
                cmocka_unit_test(test_record_rejects_converted_values),
                cmocka_unit_test(test_record_without_vfio_driver),
                cmocka_unit_test(test_record_with_vfio_driver),
                cmocka_unit_test(test_consumer_accepts),
                cmocka_unit_test(test_consumer_refuses),
                cmocka_unit_test_setup_teardown(test_save_load_remove, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_load_creates_directory, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_save_fails_cleanly, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_damaged_records_are_set_aside, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_interrupted_save_is_cleaned_up, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_trailing_bytes_are_damage, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_only_canonical_names_are_records, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_what_may_follow_a_record, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_record_names, dir_setup, dir_teardown),
                cmocka_unit_test(test_record_to_json_out_of_memory),
                cmocka_unit_test_setup_teardown(test_save_out_of_memory, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_load_out_of_memory, dir_setup, dir_teardown),
                cmocka_unit_test(test_state_put_find_drop),
                cmocka_unit_test(test_state_dir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
