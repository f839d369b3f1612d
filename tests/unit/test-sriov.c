/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-sriov.h"
#include "model-builder.h"

/* SR-IOV on hand-built hosts: selectors and each bad form, VF indexes from
 * routing IDs, the count plan and its claim rules, the assignment plan's
 * claim check, and the record kept of a PF. */

/* A NIC PF (total 4, offset 2, stride 1) with three VFs in groups of their
 * own, and a plain NIC without SR-IOV. */
static const Spec specs[] = {
        { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
        { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, false, "igb" },
        { "01:00.2", "00:01.0", 3, ENDPOINT, NO_ACS, false, "igbvf" },
        { "01:00.3", "00:01.0", 4, ENDPOINT, NO_ACS, false, "igbvf" },
        { "01:00.4", "00:01.0", 5, ENDPOINT, NO_ACS, false, "igbvf" },
        { "00:02.0", NULL, 6, ROOT_PORT, ACS_OK, false, "pcieport" },
        { "02:00.0", "00:02.0", 7, ENDPOINT, NO_ACS, false, "e1000e" },
};

enum { PF = 3, VF0, VF1, VF2, NIC };     /* in address order */

typedef struct Fixture {
        IovirtHost *host;
        IovirtVerdicts *verdicts;
        IovirtUsage usage;
        IovirtState state;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        f->host = build(specs, ELEMENTSOF(specs));
        IovirtDevice *pf = &f->host->devices[PF];
        pf->sriov = true;
        pf->sriov_total = 4;
        pf->sriov_num = 3;
        pf->sriov_offset = 2;
        pf->sriov_stride = 1;
        pf->vfs = calloc(3, sizeof(size_t));
        for (size_t i = 0; i < 3; i++) {
                pf->vfs[pf->n_vfs++] = VF0 + i;
                f->host->devices[VF0 + i].physfn = PF;
        }
        assert_int_equal(iovirt_verdicts_compute(f->host, &f->verdicts), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        for (size_t i = 0; i < f->state.n_records; i++)
                iovirt_record_free(f->state.records[i]);
        free(f->state.records);
        iovirt_verdicts_free(f->verdicts);
        iovirt_host_free(f->host);
        free(f);
        return 0;
}

static void assign(Fixture *f, int group, const char *consumer, const char *address) {
        IovirtRecord *r = calloc(1, sizeof(IovirtRecord));
        r->group = group;
        r->consumer = strdup(consumer);
        r->phase = IOVIRT_PHASE_ASSIGNED;
        r->functions = calloc(1, sizeof(IovirtFunctionRecord));
        r->n_functions = 1;
        strcpy(r->functions[0].address, address);
        assert_int_equal(iovirt_state_put(&f->state, r), 0);
}

/* ---- selectors ---- */

static void test_selector_forms(void **state) {
        IovirtSelector s = {};
        char *reason = NULL;

        assert_int_equal(iovirt_selector_parse("0000:05:00.0", &s, &reason), 0);
        assert_null(s.pf);

        assert_int_equal(iovirt_selector_parse("enp5s0f0#0-3", &s, &reason), 1);
        assert_string_equal(s.pf, "enp5s0f0");
        assert_int_equal(s.n_ranges, 1);
        assert_int_equal(iovirt_selector_count(&s), 4);
        assert_int_equal(iovirt_selector_max(&s), 3);
        iovirt_selector_clear(&s);

        assert_int_equal(iovirt_selector_parse("0000:05:00.0#0,2-7", &s, &reason), 1);
        assert_string_equal(s.pf, "0000:05:00.0");
        assert_int_equal(iovirt_selector_count(&s), 7);
        assert_true(iovirt_selector_has(&s, 0));
        assert_false(iovirt_selector_has(&s, 1));
        assert_true(iovirt_selector_has(&s, 7));
        assert_false(iovirt_selector_has(&s, 8));
        iovirt_selector_clear(&s);

        /* overlaps are counted once */
        assert_int_equal(iovirt_selector_parse("pf#1-3,2-4,4", &s, &reason), 1);
        assert_int_equal(iovirt_selector_count(&s), 4);
        iovirt_selector_clear(&s);
        assert_null(reason);
}

static void test_selector_bad_forms(void **state) {
        static const struct {
                const char *text, *says;
        } bad[] = {
                { "#1", "no PF" },           { "pf#", "empty" },          { "pf#3-1", "reversed" },
                { "pf#1,,2", "empty range" }, { "pf#1,", "comma" },       { "pf#a", "'a'" },
                { "pf#-1", "'-1'" },         { "pf#01", "'01'" },         { "pf#1#2", "more than one" },
                { "pf#70000", "65534" },     { "pf#1-", "'1-'" },         { "pf#1 ", "'1 '" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                IovirtSelector s = {};
                char *reason = NULL;
                assert_int_equal(iovirt_selector_parse(bad[i].text, &s, &reason), -EINVAL);
                assert_non_null(reason);
                if (!strstr(reason, bad[i].says) || !strstr(reason, "PF#RANGE"))
                        fail_msg("'%s': %s", bad[i].text, reason);
                assert_null(s.pf);
                free(reason);
        }
}

/* ---- VFs of a PF ---- */

static void test_vf_index_and_resolve(void **state) {
        Fixture *f = *state;
        IovirtSelector s = {};
        char *reason = NULL;
        size_t pf, *vfs = NULL, n;

        assert_int_equal(iovirt_vf_index(f->host, VF0), 0);
        assert_int_equal(iovirt_vf_index(f->host, VF2), 2);
        assert_int_equal(iovirt_vf_index(f->host, PF), -1);
        assert_int_equal(iovirt_vf_find(f->host, PF, 1), VF1);
        assert_int_equal(iovirt_vf_find(f->host, PF, 3), IOVIRT_NONE);

        /* VF 3 is within the total but not enabled: left out */
        assert_int_equal(iovirt_selector_parse("01:00.0#1-3", &s, &reason), 1);
        assert_int_equal(iovirt_selector_resolve(f->host, &s, &pf, &vfs, &n, &reason), 0);
        assert_int_equal(pf, PF);
        assert_int_equal(n, 2);
        assert_int_equal(vfs[0], VF1);
        assert_int_equal(vfs[1], VF2);
        free(vfs);
        iovirt_selector_clear(&s);

        /* out of range names the total */
        assert_int_equal(iovirt_selector_parse("01:00.0#2-4", &s, &reason), 1);
        assert_int_equal(iovirt_selector_resolve(f->host, &s, &pf, &vfs, &n, &reason), -ERANGE);
        assert_non_null(strstr(reason, "4 VFs at most"));
        free(reason);
        reason = NULL;
        iovirt_selector_clear(&s);

        /* a VF where a PF is expected, and a function without SR-IOV */
        assert_int_equal(iovirt_pf_lookup(f->host, "01:00.3", &pf, &reason), -EINVAL);
        assert_non_null(strstr(reason, "where a PF is expected"));
        assert_non_null(strstr(reason, "0000:01:00.0#1"));
        free(reason);
        reason = NULL;
        assert_int_equal(iovirt_pf_lookup(f->host, "02:00.0", &pf, &reason), -EINVAL);
        assert_non_null(strstr(reason, "no SR-IOV capability"));
        free(reason);
        reason = NULL;
        assert_int_equal(iovirt_pf_lookup(f->host, "09:00.0", &pf, &reason), -ENODEV);
        free(reason);
}

/* ---- the count plan ---- */

static int locked_group = -1;

static bool is_locked(int group, void *userdata) {
        return group == locked_group;
}

static IovirtSriovPlan *plan_autoprobe(Fixture *f, unsigned count, IovirtAutoprobe autoprobe, int now) {
        const IovirtSriovInput in = { .host = f->host, .state = &f->state, .pf = PF, .count = count,
                                      .autoprobe = autoprobe, .autoprobe_now = now, .group_locked = is_locked };
        IovirtSriovPlan *p = NULL;
        assert_int_equal(iovirt_sriov_plan(&in, &p), 0);
        return p;
}

static IovirtSriovPlan *plan(Fixture *f, unsigned count) {
        return plan_autoprobe(f, count, IOVIRT_AUTOPROBE_KEEP, 1);
}

static const IovirtPlanCheck *refusal(const IovirtSriovPlan *p) {
        return iovirt_checks_refusal(p->checks, p->n_checks);
}

static void test_count_plan(void **state) {
        Fixture *f = *state;
        IovirtSriovPlan *p;

        p = plan(f, 5);
        assert_non_null(refusal(p));
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_INVALID);
        assert_non_null(strstr(refusal(p)->message, "4 VFs at most"));
        iovirt_sriov_plan_free(p);

        p = plan(f, 3);
        assert_true(p->done);
        assert_null(refusal(p));
        iovirt_sriov_plan_free(p);

        p = plan(f, 4);          /* 3 -> 4: through 0 */
        assert_true(p->through_zero);
        assert_false(p->done);
        assert_null(refusal(p));
        iovirt_sriov_plan_free(p);

        p = plan(f, 0);
        assert_false(p->through_zero);
        assert_null(refusal(p));
        iovirt_sriov_plan_free(p);
}

static void test_autoprobe_and_busy(void **state) {
        Fixture *f = *state;
        IovirtSriovPlan *p;

        /* as it is already: nothing to write */
        p = plan_autoprobe(f, 3, IOVIRT_AUTOPROBE_ON, 1);
        assert_true(p->done);
        assert_int_equal(p->autoprobe, IOVIRT_AUTOPROBE_KEEP);
        iovirt_sriov_plan_free(p);
        p = plan_autoprobe(f, 3, IOVIRT_AUTOPROBE_OFF, 1);
        assert_false(p->done);
        assert_null(refusal(p));
        iovirt_sriov_plan_free(p);

        /* fail closed: a change of a value that could not be read could not be undone */
        p = plan_autoprobe(f, 0, IOVIRT_AUTOPROBE_OFF, -EIO);
        assert_non_null(refusal(p));
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_HOST_UNREADABLE);
        assert_non_null(strstr(refusal(p)->message, "could not be undone"));
        iovirt_sriov_plan_free(p);
        p = plan_autoprobe(f, 0, IOVIRT_AUTOPROBE_OFF, -ENOENT);
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_INVALID);
        assert_non_null(strstr(refusal(p)->message, "4.12"));
        iovirt_sriov_plan_free(p);
        /* unreadable but not to be changed: no matter */
        p = plan_autoprobe(f, 0, IOVIRT_AUTOPROBE_KEEP, -EIO);
        assert_null(refusal(p));
        iovirt_sriov_plan_free(p);

        /* a transaction on a VF that would go, or on the PF: Busy */
        locked_group = 5;
        p = plan(f, 0);
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_BUSY);
        assert_non_null(strstr(refusal(p)->message, "0000:01:00.4"));
        iovirt_sriov_plan_free(p);
        locked_group = 2;
        p = plan(f, 0);
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_BUSY);
        iovirt_sriov_plan_free(p);
        locked_group = -1;
}

static void test_count_claims(void **state) {
        Fixture *f = *state;
        IovirtSriovPlan *p;

        assign(f, 3, "vm-a", "0000:01:00.2");       /* VF 0 */
        p = plan(f, 1);          /* 3 -> 1 goes through 0 too: VF 0 would go with the others */
        assert_true(p->through_zero);
        assert_non_null(refusal(p));
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_SRIOV_CLAIMED);
        assert_non_null(strstr(refusal(p)->message, "through 0"));
        iovirt_sriov_plan_free(p);
        p = plan(f, 0);
        assert_non_null(refusal(p));
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_SRIOV_CLAIMED);
        assert_non_null(strstr(refusal(p)->message, "vm-a"));
        assert_non_null(strstr(refusal(p)->message, "0000:01:00.2"));
        iovirt_sriov_plan_free(p);
        p = plan(f, 4);                              /* growing goes through 0 */
        assert_non_null(refusal(p));
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_SRIOV_CLAIMED);
        assert_non_null(strstr(refusal(p)->message, "through 0"));
        iovirt_sriov_plan_free(p);

        iovirt_state_drop(&f->state, 3);
        assign(f, 2, "vm-b", "0000:01:00.0");       /* the PF itself */
        p = plan(f, 1);
        assert_non_null(refusal(p));
        assert_int_equal(refusal(p)->reason, IOVIRT_REASON_SRIOV_CLAIMED);
        assert_non_null(strstr(refusal(p)->message, "vm-b"));
        iovirt_sriov_plan_free(p);
}

/* ---- the assignment plan's claim check ---- */

static const IovirtPlanCheck *assign_check(Fixture *f, size_t device, const char *id, IovirtPlan **p) {
        const IovirtPlanInput in = { .host = f->host, .verdicts = f->verdicts, .usage = &f->usage, .state = &f->state,
                                     .consumer = "vm-c", .group = f->host->devices[device].iommu_group,
                                     .device = device };
        assert_int_equal(iovirt_plan_assign(&in, NULL, 0, p), 0);
        for (size_t i = 0; i < (*p)->n_checks; i++)
                if (streq_ptr((*p)->checks[i].id, id))
                        return &(*p)->checks[i];
        return NULL;
}

static void test_assign_claims(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = NULL;
        const IovirtPlanCheck *c;

        /* a PF with VFs enabled: vfio-pci would refuse it */
        c = assign_check(f, PF, "sriov-claim", &p);
        assert_non_null(c);
        assert_int_equal(c->reason, IOVIRT_REASON_SRIOV_ENABLED);
        assert_non_null(strstr(c->message, "--vfs 0"));
        p = iovirt_plan_free(p);

        /* a VF is assigned: the PF is claimed */
        assign(f, 4, "vm-a", "0000:01:00.3");
        c = assign_check(f, PF, "sriov-claim", &p);
        assert_int_equal(c->reason, IOVIRT_REASON_SRIOV_CLAIMED);
        assert_non_null(strstr(c->message, "vm-a"));
        p = iovirt_plan_free(p);
        /* another VF is still free */
        c = assign_check(f, VF0, "sriov-claim", &p);
        assert_int_equal(c->status, IOVIRT_PLAN_PASS);
        assert_null(iovirt_plan_refusal(p));
        p = iovirt_plan_free(p);
        iovirt_state_drop(&f->state, 4);

        /* the PF is assigned: its VFs are claimed */
        assign(f, 2, "vm-b", "0000:01:00.0");
        c = assign_check(f, VF2, "sriov-claim", &p);
        assert_int_equal(c->status, IOVIRT_PLAN_FAIL);
        assert_int_equal(c->reason, IOVIRT_REASON_SRIOV_CLAIMED);
        assert_non_null(strstr(c->message, "vm-b"));
        p = iovirt_plan_free(p);
        iovirt_state_drop(&f->state, 2);

        /* release restores availability; a NIC without SR-IOV has no such check */
        c = assign_check(f, VF2, "sriov-claim", &p);
        assert_int_equal(c->status, IOVIRT_PLAN_PASS);
        p = iovirt_plan_free(p);
        assert_null(assign_check(f, NIC, "sriov-claim", &p));
        iovirt_plan_free(p);
}

/* ---- the record kept of a PF ---- */

static void test_record_round_trip(void **state) {
        IovirtSriovRecord r = { .pf = "0000:05:00.0", .num_vfs = 3, .persist = true, .autoprobe = IOVIRT_AUTOPROBE_OFF };
        IovirtVfConfig *v = iovirt_sriov_record_vf(&r, 2);
        v->set_mac = true;
        memcpy(v->mac, (uint8_t[]) { 0x02, 0, 0, 0, 0, 0x03 }, 6);
        v->set_vlan = true;
        v->vlan = 100;
        v->trust = 1;

        json_object *o = iovirt_sriov_record_to_json(&r);
        assert_non_null(o);
        IovirtSriovRecord *back = NULL;
        char *reason = NULL;
        assert_int_equal(iovirt_sriov_record_from_json(o, &back, &reason), 0);
        assert_string_equal(back->pf, "0000:05:00.0");
        assert_int_equal(back->num_vfs, 3);
        assert_true(back->persist);
        assert_int_equal(back->autoprobe, IOVIRT_AUTOPROBE_OFF);
        assert_int_equal(back->n_vfs, 1);
        assert_int_equal(back->vfs[0].index, 2);
        assert_memory_equal(back->vfs[0].mac, v->mac, 6);
        assert_int_equal(back->vfs[0].vlan, 100);
        assert_int_equal(back->vfs[0].spoofchk, -1);
        assert_int_equal(back->vfs[0].trust, 1);
        assert_false(back->pending);
        iovirt_sriov_record_free(back);
        json_object_put(o);

        /* a change under way (SetVfs' intent) says so; a settled record has no "pending" key at all */
        o = iovirt_sriov_record_to_json(&r);
        assert_non_null(o);
        assert_false(json_object_object_get_ex(o, "pending", NULL));
        json_object_put(o);
        r.pending = true;
        o = iovirt_sriov_record_to_json(&r);
        assert_non_null(o);
        assert_int_equal(iovirt_sriov_record_from_json(o, &back, &reason), 0);
        assert_true(back->pending);
        assert_true(iovirt_sriov_records_equal(&r, back));
        back->pending = false;
        assert_false(iovirt_sriov_records_equal(&r, back));
        iovirt_sriov_record_free(back);
        json_object_put(o);
        free(r.vfs);

        static const char *const damaged[] = {
                "{}",
                "{\"version\":1,\"pf\":\"nope\",\"num_vfs\":1,\"persist\":true,\"vfs\":[]}",
                "{\"version\":1,\"pf\":\"0000:05:00.0\",\"num_vfs\":-1,\"persist\":true,\"vfs\":[]}",
                "{\"version\":1,\"pf\":\"0000:05:00.0\",\"num_vfs\":1,\"persist\":true,\"vfs\":[{\"index\":0,\"vlan\":4096}]}",
                "{\"version\":1,\"pf\":\"0000:05:00.0\",\"num_vfs\":1,\"persist\":true,\"vfs\":[{\"index\":0},{\"index\":0}]}",
                "{\"version\":1,\"pf\":\"0000:05:00.0\",\"num_vfs\":1,\"persist\":true,\"vfs\":[{\"index\":0,\"mac\":\"zz\"}]}",
                "{\"version\":1,\"pf\":\"0000:05:00.0\",\"num_vfs\":1,\"persist\":true,\"pending\":1,\"vfs\":[]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(damaged); i++) {
                json_object *d = json_tokener_parse(damaged[i]);
                assert_int_equal(iovirt_sriov_record_from_json(d, &back, &reason), -EBADMSG);
                assert_non_null(reason);
                free(reason);
                reason = NULL;
                json_object_put(d);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_selector_forms),
                cmocka_unit_test(test_selector_bad_forms),
                cmocka_unit_test_setup_teardown(test_vf_index_and_resolve, setup, teardown),
                cmocka_unit_test_setup_teardown(test_count_plan, setup, teardown),
                cmocka_unit_test_setup_teardown(test_autoprobe_and_busy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_count_claims, setup, teardown),
                cmocka_unit_test_setup_teardown(test_assign_claims, setup, teardown),
                cmocka_unit_test(test_record_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
