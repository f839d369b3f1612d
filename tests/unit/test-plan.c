/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "alloc-fail.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-plan.h"
#include "iovirt-transaction.h"
#include "iovirt-variant.h"
#include "model-builder.h"

/* The plan on hand-built hosts: one test per check and per reason, the
 * seam for extra rules, and allocation failures at every step. */

/* A root port with an isolated NIC, a two-function GPU (shared), a switch
 * whose downstream ports lack ACS (leaky), and a port whose ACS cannot be read. */
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
        { "00:04.0", NULL, 9, ROOT_PORT, ACS_UNREADABLE, false, "pcieport" },
        { "07:00.0", "00:04.0", 10, ENDPOINT, NO_ACS, false, "ixgbe" },
};

typedef struct Fixture {
        IovirtHost *host;
        IovirtVerdicts *verdicts;
        IovirtUsage usage;
        IovirtState state;
        IovirtPlanInput in;
        IovirtPlanDriver drivers[4];      /* the VFIO driver choices, as the daemon makes them */
        size_t n_drivers;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        f->host = build(host_specs, ELEMENTSOF(host_specs));
        assert_int_equal(iovirt_verdicts_compute(f->host, &f->verdicts), 0);
        f->in = (IovirtPlanInput) { .host = f->host, .verdicts = f->verdicts, .usage = &f->usage, .state = &f->state,
                                    .consumer = "vm1", .device = IOVIRT_NONE };
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        for (size_t i = 0; i < f->state.n_records; i++)
                iovirt_record_free(f->state.records[i]);
        free(f->state.records);
        for (size_t i = 0; i < f->usage.n_uses; i++)
                free(f->usage.uses[i].what);
        for (size_t i = 0; i < f->usage.n_blind; i++)
                free(f->usage.blind[i].source);
        free(f->usage.uses);
        free(f->usage.blind);
        for (size_t i = 0; i < f->n_drivers; i++)
                iovirt_variant_choice_clear(&f->drivers[i].choice);
        iovirt_verdicts_free(f->verdicts);
        iovirt_host_free(f->host);
        free(f);
        return 0;
}

static size_t device_of(const IovirtHost *h, const char *addr) {
        IovirtAddress a;
        assert_int_equal(iovirt_address_parse(addr, &a, NULL), 0);
        size_t i = iovirt_host_find_address(h, &a);
        assert_true(i != IOVIRT_NONE);
        return i;
}

static IovirtPlan *plan_for(Fixture *f, const char *target) {
        IovirtPlan *p = NULL;
        _cleanup_free_ char *reason = NULL;
        assert_int_equal(iovirt_target_resolve(f->host, target, &f->in.group, &f->in.device, &reason), 0);
        assert_int_equal(iovirt_plan_assign(&f->in, NULL, 0, &p), 0);
        assert_non_null(p);
        return p;
}

static const IovirtPlanCheck *check(const IovirtPlan *p, const char *id) {
        for (size_t i = 0; i < p->n_checks; i++)
                if (streq_ptr(p->checks[i].id, id))
                        return &p->checks[i];
        return NULL;
}

static void assert_check(const IovirtPlan *p, const char *id, IovirtPlanStatus status, IovirtReason reason,
                         const char *words) {
        const IovirtPlanCheck *c = check(p, id);
        if (!c)
                fail_msg("no check %s", id);
        if (c->status != status || c->reason != reason || (words && !strstr(c->message, words)))
                fail_msg("check %s: %s/%s \"%s\"; expected %s/%s with \"%s\"", id, iovirt_plan_status_name(c->status),
                         strna(iovirt_reason_name(c->reason)), c->message, iovirt_plan_status_name(status),
                         strna(iovirt_reason_name(reason)), strna(words));
}

/* vfio_driver NULL: a record as made before variant drivers (vfio-pci) */
static void add_record_on(Fixture *f, int group, const char *consumer, IovirtPhase phase, const char *addr,
                          const char *vfio_driver) {
        IovirtRecord *r = calloc(1, sizeof(IovirtRecord));
        r->group = group;
        r->consumer = strdup(consumer);
        r->phase = phase;
        r->functions = calloc(1, sizeof(IovirtFunctionRecord));
        r->n_functions = 1;
        snprintf(r->functions[0].address, IOVIRT_ADDRESS_MAX, "%s", addr);
        r->functions[0].driver = strdup("e1000e");
        r->functions[0].original_known = true;
        r->functions[0].vfio_driver = vfio_driver ? strdup(vfio_driver) : NULL;
        assert_int_equal(iovirt_state_put(&f->state, r), 0);
}

static void add_record(Fixture *f, int group, const char *consumer, IovirtPhase phase, const char *addr) {
        add_record_on(f, group, consumer, phase, addr, NULL);
}

static void set_driver(Fixture *f, const char *addr, const char *driver) {
        IovirtDevice *d = &f->host->devices[device_of(f->host, addr)];
        free(d->driver);
        d->driver = strdup(driver);
}

/* ---- iommu ---- */

static void test_iommu_off(void **state) {
        Fixture *f = *state;
        size_t n_groups = f->host->n_groups;
        f->host->n_groups = 0;            /* as a host without an IOMMU reads */
        f->in.group = -1;
        f->in.device = device_of(f->host, "01:00.0");
        IovirtPlan *p = NULL;
        assert_int_equal(iovirt_plan_assign(&f->in, NULL, 0, &p), 0);
        f->host->n_groups = n_groups;
        assert_int_equal(p->n_checks, 1);
        assert_check(p, "iommu", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NO_IOMMU, "The IOMMU is off");
        assert_int_equal(p->n_steps, 0);
        assert_ptr_equal(iovirt_plan_refusal(p), &p->checks[0]);
        iovirt_plan_free(p);
}

static void test_device_without_group(void **state) {
        Fixture *f = *state;
        f->host->devices[device_of(f->host, "01:00.0")].iommu_group = -1;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "iommu", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NO_IOMMU, "0000:01:00.0 is in no IOMMU group");
        iovirt_plan_free(p);
}

static void test_no_such_group(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = NULL;
        f->in.group = 99;
        assert_int_equal(iovirt_plan_assign(&f->in, NULL, 0, &p), 0);
        assert_check(p, "iommu", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NO_SUCH_GROUP, "no IOMMU group 99");
        assert_int_equal(p->n_checks, 1);
        iovirt_plan_free(p);
}

static void test_target_resolve(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r1 = NULL, *r2 = NULL, *r3 = NULL;
        int group;
        size_t device;
        assert_int_equal(iovirt_target_resolve(f->host, "group:x", &group, &device, &r1), -EINVAL);
        assert_non_null(strstr(r1, "group:N"));
        assert_int_equal(iovirt_target_resolve(f->host, "group:42", &group, &device, &r2), -ENODEV);
        assert_non_null(strstr(r2, "no IOMMU group 42"));
        assert_int_equal(iovirt_target_resolve(f->host, "0000:09:00.0", &group, &device, &r3), -ENODEV);
        assert_int_equal(iovirt_target_resolve(f->host, "group:4", &group, &device, &r3), 0);
        assert_int_equal(group, 4);
        assert_int_equal(device, IOVIRT_NONE);
}

/* ---- a plan that passes ---- */

static void test_isolated_passes(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "iommu", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "0000:01:00.0 is in group 2");
        assert_check(p, "ownership", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "not assigned");
        assert_check(p, "whole-group", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "1 function of group 2 moves");
        assert_check(p, "isolation", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "isolated");
        assert_check(p, "host-critical", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL);
        assert_null(check(p, "host-readable"));  /* everything read: nothing to say */
        assert_null(check(p, "reset"));          /* reset methods unknown: nothing to say */
        assert_null(iovirt_plan_refusal(p));
        assert_null(iovirt_plan_refusal_text(p));
        assert_false(p->done);
        assert_int_equal(p->n_steps, 1);
        assert_string_equal(p->steps[0].address, "0000:01:00.0");
        assert_string_equal(p->steps[0].from, "e1000e");
        assert_true(p->steps[0].moves);

        _cleanup_(json_object_putp) json_object *o = iovirt_plan_to_json(p);
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        assert_non_null(strstr(text, "\"allowed\":true"));
        assert_non_null(strstr(text, "\"done\":false"));
        assert_non_null(strstr(text, "\"reason\":null"));
        iovirt_plan_free(p);
}

static void test_shared_group_moves_together(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "02:00.1");
        assert_check(p, "isolation", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "shared by several functions");
        assert_check(p, "whole-group", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE,
                     "2 functions of group 4 move together: 0000:02:00.0, 0000:02:00.1");
        assert_int_equal(p->n_steps, 2);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

/* ---- ownership ---- */

static void test_in_use(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm2", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, "already assigned to vm2");
        assert_false(p->done);
        iovirt_plan_free(p);
}

static void test_in_use_damaged_record(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, "an unknown consumer (its state record");
        iovirt_plan_free(p);
}

static void test_already_assigned_is_done(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm1", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0");
        set_driver(f, "01:00.0", DRIVER_VFIO_PCI);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_PASS, IOVIRT_REASON_ALREADY_ASSIGNED, "nothing to do");
        assert_true(p->done);
        assert_false(p->steps[0].moves);
        assert_null(iovirt_plan_refusal(p));
        _cleanup_(json_object_putp) json_object *o = iovirt_plan_to_json(p);
        assert_non_null(strstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "\"done\":true"));
        iovirt_plan_free(p);
}

static void test_drift_is_not_done(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm1", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0");   /* but still on e1000e */
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, "0000:01:00.0 is on e1000e");
        assert_false(p->done);
        iovirt_plan_free(p);
}

static void test_busy_while_locked(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm2", IOVIRT_PHASE_ASSIGNING, "0000:01:00.0");
        f->in.group_locked = true;
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, "being assigned to vm2 right now");
        iovirt_plan_free(p);
        /* the same consumer asking again while its own assign runs is not done yet */
        f->in.consumer = "vm2";
        p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, NULL);
        assert_false(p->done);
        iovirt_plan_free(p);
}

static void test_busy_assigning_record(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm2", IOVIRT_PHASE_ASSIGNING, "0000:01:00.0");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, "being assigned to vm2");
        iovirt_plan_free(p);
}

static void test_release_unfinished(void **state) {
        Fixture *f = *state;
        add_record(f, 2, "vm2", IOVIRT_PHASE_RELEASING, "0000:01:00.0");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_RELEASE_UNFINISHED,
                     "'iovirtctl release group:2' finishes it");
        iovirt_plan_free(p);
}

/* ---- the VFIO driver: libvirt's rule, --driver, and what cannot be chosen ---- */

/* A kernel's modules.alias: vfio_pci's catch-all, a variant driver for
 * ConnectX VFs, a module with a vfio_pci alias whose name does not say
 * so, and a host driver's plain alias */
static const char aliases_text[] =
        "# Aliases extracted from modules themselves.\n"
        "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
        "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n"
        "alias vfio_pci:v00001234d00005678sv*sd*bc*sc*i* oem_passthru\n"
        "alias pci:v00008086d00001533sv*sd*bc*sc*i* igb\n";
#define ALIASES_PATH "/lib/modules/6.12.0-test/modules.alias"

static void set_ids(Fixture *f, const char *addr, uint16_t vendor, uint16_t device) {
        IovirtDevice *d = &f->host->devices[device_of(f->host, addr)];
        d->vendor = vendor;
        d->device = device;
}

/* The choice for addr as the daemon makes it before planning: the
 * kernel's, by libvirt's rule, or the one asked for (--driver); with
 * file_error, the alias file could not be read */
static void choose(Fixture *f, const char *addr, const char *asked, int file_error) {
        IovirtAliases a = { .path = (char *) ALIASES_PATH, .text = (char *) aliases_text,
                            .size = sizeof(aliases_text) - 1 };
        if (file_error)
                a = (IovirtAliases) { .path = (char *) ALIASES_PATH, .error = file_error,
                                      .why = (char *) "cannot read " ALIASES_PATH ": Permission denied" };
        size_t i = device_of(f->host, addr);
        assert_true(f->n_drivers < ELEMENTSOF(f->drivers));
        IovirtPlanDriver *e = &f->drivers[f->n_drivers++];
        *e = (IovirtPlanDriver) { .device = i, .asked = asked != NULL };
        int r = asked ? iovirt_variant_asked(&a, &f->host->devices[i], asked, &e->choice)
                      : iovirt_variant_for_device_in(&a, &f->host->devices[i], &e->choice);
        assert_int_not_equal(r, -ENOMEM);
        e->error = r < 0 ? r : 0;
        f->in.drivers = f->drivers;
        f->in.n_drivers = f->n_drivers;
}

static const char *plan_text(const IovirtPlan *p, json_object **keep) {
        *keep = iovirt_plan_to_json(p);
        return json_object_to_json_string_ext(*keep, JSON_C_TO_STRING_PLAIN);
}

static void test_driver_variant_chosen(void **state) {
        Fixture *f = *state;
        set_ids(f, "01:00.0", 0x15b3, 0x101e);
        choose(f, "01:00.0", NULL, 0);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE,
                     "mlx5_vfio_pci for 0000:01:00.0: the kernel's vfio_pci alias v000015B3d0000101Esv*sd*bc*sc*i* "
                     "matches 15b3:101e (libvirt's rule");
        assert_null(iovirt_plan_refusal(p));
        assert_string_equal(p->steps[0].to, "mlx5_vfio_pci");
        assert_string_equal(p->steps[0].module, "mlx5_vfio_pci");
        assert_true(p->steps[0].moves);
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_non_null(strstr(plan_text(p, &o), "\"from\":\"e1000e\",\"to\":\"mlx5_vfio_pci\",\"moves\":true"));
        iovirt_plan_free(p);

        /* already on it: it does not move */
        set_driver(f, "01:00.0", "mlx5_vfio_pci");
        p = plan_for(f, "01:00.0");
        assert_false(p->steps[0].moves);
        iovirt_plan_free(p);
}

static void test_driver_vfio_pci_for_each_function(void **state) {
        Fixture *f = *state;
        set_ids(f, "02:00.0", 0x10de, 0x1b80);
        set_ids(f, "02:00.1", 0x10de, 0x10f0);
        choose(f, "02:00.0", NULL, 0);
        choose(f, "02:00.1", NULL, 0);
        IovirtPlan *p = plan_for(f, "02:00.1");
        assert_check(p, "driver", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE,
                     "vfio-pci for 0000:02:00.0: no VFIO variant driver of this kernel matches 10de:1b80 (only "
                     "vfio_pci's own catch-all alias); vfio-pci for 0000:02:00.1: no VFIO variant driver");
        assert_string_equal(p->steps[0].to, DRIVER_VFIO_PCI);
        assert_string_equal(p->steps[1].to, DRIVER_VFIO_PCI);
        assert_string_equal(p->steps[1].module, "vfio_pci");
        iovirt_plan_free(p);
}

static void test_driver_without_choices(void **state) {
        Fixture *f = *state;
        /* a plan made by hand, with no choice at all: vfio-pci, and it says so */
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "no VFIO variant driver was looked for");
        assert_string_equal(p->steps[0].to, DRIVER_VFIO_PCI);
        iovirt_plan_free(p);

        /* choices for some functions but not this one: refused, not guessed */
        choose(f, "06:00.0", NULL, 0);
        p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_FAIL, IOVIRT_REASON_DRIVER_UNKNOWN,
                     "No VFIO driver was chosen for 0000:01:00.0");
        assert_null(p->steps[0].to);
        iovirt_plan_free(p);
}

static void test_driver_asked(void **state) {
        Fixture *f = *state;
        set_ids(f, "01:00.0", 0x15b3, 0x101e);
        choose(f, "01:00.0", DRIVER_VFIO_PCI, 0);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE,
                     "vfio-pci for 0000:01:00.0: as asked (--driver), in place of the kernel's own choice, "
                     "mlx5_vfio_pci");
        assert_string_equal(p->steps[0].to, DRIVER_VFIO_PCI);
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);

        /* the module's spelling, a variant by its name, one by its alias */
        static const struct { const char *asked, *driver, *module, *words; } cases[] = {
                { "vfio_pci", DRIVER_VFIO_PCI, "vfio_pci", "in place of" },
                { "mlx5_vfio_pci", "mlx5_vfio_pci", "mlx5_vfio_pci", "also the kernel's own choice" },
                { "mlx5-vfio-pci", "mlx5_vfio_pci", "mlx5_vfio_pci", "also the kernel's own choice" },
                { "oem_passthru", "oem_passthru", "oem_passthru", "as asked (--driver)" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                iovirt_variant_choice_clear(&f->drivers[0].choice);
                f->n_drivers = 0;
                choose(f, "01:00.0", cases[i].asked, 0);
                p = plan_for(f, "01:00.0");
                assert_check(p, "driver", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, cases[i].words);
                assert_string_equal(p->steps[0].to, cases[i].driver);
                assert_string_equal(p->steps[0].module, cases[i].module);
                iovirt_plan_free(p);
        }

        /* vfio-pci needs no file to be known for what it is */
        iovirt_variant_choice_clear(&f->drivers[0].choice);
        f->n_drivers = 0;
        choose(f, "01:00.0", DRIVER_VFIO_PCI, -EACCES);
        p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "vfio-pci for 0000:01:00.0: as asked (--driver)");
        iovirt_plan_free(p);
}

static void test_driver_host_driver_refused(void **state) {
        Fixture *f = *state;
        static const struct { const char *asked; int file_error; IovirtReason reason; const char *words; } cases[] = {
                { "igb", 0, IOVIRT_REASON_NOT_VFIO_DRIVER, "Refused to bind 0000:01:00.0: igb is not a VFIO driver" },
                { "e1000e", 0, IOVIRT_REASON_NOT_VFIO_DRIVER, "e1000e is not a VFIO driver" },
                { "vfio_pci_core", 0, IOVIRT_REASON_NOT_VFIO_DRIVER, "vfio_pci_core is not a VFIO driver" },
                { "-r_vfio_pci", 0, IOVIRT_REASON_NOT_VFIO_DRIVER, "is not a driver name" },
                { "../vfio-pci", 0, IOVIRT_REASON_NOT_VFIO_DRIVER, "is not a driver name" },
                /* the name does not say, and the file that would cannot be read */
                { "igb", -EACCES, IOVIRT_REASON_DRIVER_UNKNOWN, "cannot tell whether igb is a VFIO driver" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                iovirt_variant_choice_clear(&f->drivers[0].choice);
                f->n_drivers = 0;
                choose(f, "01:00.0", cases[i].asked, cases[i].file_error);
                IovirtPlan *p = plan_for(f, "01:00.0");
                assert_check(p, "driver", IOVIRT_PLAN_FAIL, cases[i].reason, cases[i].words);
                assert_string_equal(iovirt_plan_refusal(p)->id, "driver");
                assert_null(p->steps[0].to);
                _cleanup_(json_object_putp) json_object *o = NULL;
                assert_non_null(strstr(plan_text(p, &o), "\"to\":null"));
                iovirt_plan_free(p);
        }
}

static void test_driver_aliases_unreadable(void **state) {
        Fixture *f = *state;
        choose(f, "01:00.0", NULL, -EACCES);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_FAIL, IOVIRT_REASON_DRIVER_UNKNOWN,
                     "The VFIO driver of 0000:01:00.0 cannot be chosen: cannot read " ALIASES_PATH
                     ": Permission denied. Refused rather than guessed");
        assert_string_equal(check(p, "driver")->override, "--driver NAME");
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "driver"));
        assert_false(p->done);
        iovirt_plan_free(p);

        /* nor a device whose IDs could not be read */
        iovirt_variant_choice_clear(&f->drivers[0].choice);
        f->n_drivers = 0;
        f->host->devices[device_of(f->host, "01:00.0")].ids_known = false;
        choose(f, "01:00.0", NULL, 0);
        p = plan_for(f, "01:00.0");
        assert_check(p, "driver", IOVIRT_PLAN_FAIL, IOVIRT_REASON_DRIVER_UNKNOWN, "could not be read");
        iovirt_plan_free(p);
}

static void test_held_on_variant(void **state) {
        Fixture *f = *state;
        set_ids(f, "01:00.0", 0x15b3, 0x101e);
        add_record_on(f, 2, "vm1", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0", "mlx5_vfio_pci");
        set_driver(f, "01:00.0", "mlx5_vfio_pci");
        choose(f, "01:00.0", NULL, 0);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_PASS, IOVIRT_REASON_ALREADY_ASSIGNED, "nothing to do");
        assert_true(p->done);
        assert_false(p->steps[0].moves);
        iovirt_plan_free(p);

        /* on vfio-pci, its record says mlx5_vfio_pci: somebody rebound it */
        set_driver(f, "01:00.0", DRIVER_VFIO_PCI);
        p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE,
                     "0000:01:00.0 is on vfio-pci, not on mlx5_vfio_pci: somebody rebound it");
        assert_false(p->done);
        iovirt_plan_free(p);

        /* held whole on mlx5_vfio_pci, asked for vfio-pci: not done, and not silently moved */
        set_driver(f, "01:00.0", "mlx5_vfio_pci");
        iovirt_variant_choice_clear(&f->drivers[0].choice);
        f->n_drivers = 0;
        choose(f, "01:00.0", DRIVER_VFIO_PCI, 0);
        p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE,
                     "with 0000:01:00.0 on mlx5_vfio_pci; this request would put it on vfio-pci");
        assert_false(p->done);
        iovirt_plan_free(p);
}

static void test_driver_spelling(void **state) {
        Fixture *f = *state;
        /* a driver the kernel spells with '-' (as vfio-pci): the same as its module's name */
        set_ids(f, "01:00.0", 0x1234, 0x5678);
        add_record_on(f, 2, "vm1", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0", "oem-passthru");
        set_driver(f, "01:00.0", "oem-passthru");
        choose(f, "01:00.0", NULL, 0);
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_string_equal(p->steps[0].to, "oem_passthru");
        assert_false(p->steps[0].moves);
        assert_true(p->done);
        iovirt_plan_free(p);
}

static void test_old_record_means_vfio_pci(void **state) {
        Fixture *f = *state;
        /* a record made before variant drivers names none: vfio-pci */
        add_record(f, 2, "vm1", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0");
        set_driver(f, "01:00.0", "mlx5_vfio_pci");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, "is on mlx5_vfio_pci, not on vfio-pci");
        iovirt_plan_free(p);
}

static const char *drift_of(Fixture *f, json_object **keep) {
        *keep = iovirt_assignments_to_json(f->host, &f->state);
        return json_object_to_json_string_ext(*keep, JSON_C_TO_STRING_PLAIN);
}

static void test_drift_against_variant(void **state) {
        Fixture *f = *state;
        add_record_on(f, 2, "vm1", IOVIRT_PHASE_ASSIGNED, "0000:01:00.0", "mlx5_vfio_pci");
        add_record(f, 8, "vm2", IOVIRT_PHASE_ASSIGNED, "0000:06:00.0");
        set_driver(f, "01:00.0", "mlx5_vfio_pci");
        set_driver(f, "06:00.0", DRIVER_VFIO_PCI);
        _cleanup_(json_object_putp) json_object *a = NULL, *b = NULL;
        const char *text = drift_of(f, &a);
        assert_null(strstr(text, "somebody rebound it"));
        assert_non_null(strstr(text, "\"driver\":\"mlx5_vfio_pci\",\"vfio_driver\":\"mlx5_vfio_pci\""));
        assert_non_null(strstr(text, "\"driver\":\"vfio-pci\",\"vfio_driver\":\"vfio-pci\""));

        /* each against its own: the variant's function on vfio-pci, the old record's on a variant */
        set_driver(f, "01:00.0", DRIVER_VFIO_PCI);
        set_driver(f, "06:00.0", "mlx5_vfio_pci");
        text = drift_of(f, &b);
        assert_non_null(strstr(text, "0000:01:00.0 is on vfio-pci, not on mlx5_vfio_pci: somebody rebound it"));
        assert_non_null(strstr(text, "0000:06:00.0 is on mlx5_vfio_pci, not on vfio-pci: somebody rebound it"));
}

/* ---- whole group, isolation ---- */

static void test_bridges_only(void **state) {
        Fixture *f = *state;
        /* a root port alone; the switch's upstream port alone, which the
         * endpoints below its ports reach by DMA; a root port whose ACS
         * could not be read: none of them is called isolated */
        static const char *const targets[] = { "00:01.0", "group:6", "group:9" };
        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                IovirtPlan *p = plan_for(f, targets[i]);
                assert_check(p, "whole-group", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOTHING_TO_ASSIGN, "only bridges");
                assert_check(p, "isolation", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOTHING_TO_ASSIGN, "only bridges");
                assert_null(strstr(check(p, "isolation")->message, "is isolated"));
                assert_null(check(p, "isolation")->override);    /* nothing may accept it */
                /* the first refusal, which the daemon answers with, is whole-group's */
                assert_string_equal(iovirt_plan_refusal(p)->id, "whole-group");
                assert_int_equal(p->n_steps, 0);
                iovirt_plan_free(p);
        }
}

static void test_leaky_refused_unless_accepted(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "05:00.0");
        assert_check(p, "isolation", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_ISOLATED, "0000:06:00.0");
        assert_string_equal(check(p, "isolation")->override, "--accept-leaky");
        _cleanup_free_ char *text = iovirt_plan_refusal_text(p);
        assert_non_null(strstr(text, "(--accept-leaky allows it)"));
        assert_non_null(strstr(text, "0000:04:01.0"));        /* the port to blame */
        iovirt_plan_free(p);

        f->in.accept = IOVIRT_ACCEPT_LEAKY;
        p = plan_for(f, "05:00.0");
        assert_check(p, "isolation", IOVIRT_PLAN_ACCEPTED, IOVIRT_REASON_NOT_ISOLATED, "accepted by the request");
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

static void test_isolation_unknown(void **state) {
        Fixture *f = *state;
        IovirtPlan *p = plan_for(f, "07:00.0");
        assert_check(p, "isolation", IOVIRT_PLAN_FAIL, IOVIRT_REASON_ISOLATION_UNKNOWN, "unknown");
        assert_null(check(p, "isolation")->override);         /* nothing may accept it */
        iovirt_plan_free(p);
}

/* ---- the host's own use ---- */

static void add_use(Fixture *f, const char *addr, const char *what) {
        f->usage.uses = realloc(f->usage.uses, (f->usage.n_uses + 1) * sizeof(IovirtUse));
        f->usage.uses[f->usage.n_uses++] = (IovirtUse) { device_of(f->host, addr), strdup(what) };
}

static void add_blind_spot(Fixture *f, const char *source, int error, const char *unknown) {
        f->usage.blind = realloc(f->usage.blind, (f->usage.n_blind + 1) * sizeof(IovirtBlindSpot));
        f->usage.blind[f->usage.n_blind++] = (IovirtBlindSpot) { strdup(source), error, unknown };
}

static void test_host_critical(void **state) {
        Fixture *f = *state;
        add_use(f, "06:00.0", "backs the filesystem mounted at / (nvme0n1p2)");
        IovirtPlan *p = plan_for(f, "06:00.0");
        assert_check(p, "host-critical", IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_CRITICAL,
                     "0000:06:00.0 backs the filesystem mounted at / (nvme0n1p2)");
        iovirt_plan_free(p);
        /* another group does not care */
        p = plan_for(f, "01:00.0");
        assert_check(p, "host-critical", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL);
        iovirt_plan_free(p);
}

static void test_host_unreadable(void **state) {
        Fixture *f = *state;
        add_blind_spot(f, "/proc/self/mountinfo", EACCES, "whether a device backs a filesystem");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "host-readable", IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_UNREADABLE,
                     "could not read /proc/self/mountinfo: Permission denied; cannot tell whether a device backs a "
                     "filesystem");
        assert_null(check(p, "host-critical"));     /* no use found, but it does not pass blind */
        assert_non_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

static void test_host_critical_and_blind(void **state) {
        Fixture *f = *state;
        add_blind_spot(f, "/proc/swaps", ENOENT, "whether a device backs swap");
        add_use(f, "01:00.0", "carries the network interface enp1s0, which is up");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "host-critical", IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_CRITICAL, "enp1s0");
        assert_check(p, "host-readable", IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_UNREADABLE, "/proc/swaps");
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "host-critical"));
        iovirt_plan_free(p);
}

static void test_no_reset_warns(void **state) {
        Fixture *f = *state;
        IovirtDevice *d = &f->host->devices[device_of(f->host, "01:00.0")];
        d->reset_methods = strdup("");
        IovirtPlan *p = plan_for(f, "01:00.0");
        assert_check(p, "reset", IOVIRT_PLAN_WARN, IOVIRT_REASON_NO_RESET, "0000:01:00.0 cannot be reset");
        assert_null(iovirt_plan_refusal(p));
        iovirt_plan_free(p);
}

/* ---- every check runs, each failure is listed ---- */

static void test_every_failure_listed(void **state) {
        Fixture *f = *state;
        add_record(f, 7, "vm2", IOVIRT_PHASE_ASSIGNED, "0000:05:00.0");
        add_use(f, "05:00.0", "carries the network interface enp5s0, which is up");
        IovirtPlan *p = plan_for(f, "05:00.0");
        assert_check(p, "ownership", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, NULL);
        assert_check(p, "isolation", IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_ISOLATED, NULL);
        assert_check(p, "host-critical", IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_CRITICAL, NULL);
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "ownership"));
        _cleanup_free_ char *text = iovirt_plan_refusal_text(p);
        assert_non_null(strstr(text, "vm2"));
        assert_non_null(strstr(text, "leaky"));
        assert_non_null(strstr(text, "enp5s0"));
        iovirt_plan_free(p);
}

/* ---- rules from above src/ ---- */

static int rule_quiet(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        (*(int *) userdata)++;
        return 0;
}

static int rule_pool(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        (*(int *) userdata)++;
        if (ctx->verdict->n_endpoints > 1)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, NULL,
                                        "%s may not have group %d: it is not in the consumer's pool", ctx->in->consumer,
                                        ctx->in->group);
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL, "group %d is in the pool",
                                ctx->in->group);
}

static int rule_broken(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        return -EIO;
}

static void test_extra_rules(void **state) {
        Fixture *f = *state;
        int quiet = 0, pool = 0;
        const IovirtPlanRule extra[] = { { "quiet", rule_quiet, &quiet }, { "pool", rule_pool, &pool } };
        IovirtPlan *p = NULL;
        _cleanup_free_ char *reason = NULL;

        assert_int_equal(iovirt_target_resolve(f->host, "01:00.0", &f->in.group, &f->in.device, &reason), 0);
        assert_int_equal(iovirt_plan_assign(&f->in, extra, ELEMENTSOF(extra), &p), 0);
        assert_int_equal(quiet, 1);
        assert_int_equal(pool, 1);
        assert_null(check(p, "quiet"));
        assert_check(p, "pool", IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, "in the pool");
        assert_ptr_equal(check(p, "pool"), &p->checks[p->n_checks - 1]);    /* after the built-in ones */
        iovirt_plan_free(p);

        assert_int_equal(iovirt_target_resolve(f->host, "02:00.0", &f->in.group, &f->in.device, &reason), 0);
        assert_int_equal(iovirt_plan_assign(&f->in, extra, ELEMENTSOF(extra), &p), 0);
        assert_check(p, "pool", IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, "not in the consumer's pool");
        assert_ptr_equal(iovirt_plan_refusal(p), check(p, "pool"));
        iovirt_plan_free(p);

        /* a rule that cannot decide fails the plan: no plan without it */
        const IovirtPlanRule broken[] = { { "broken", rule_broken, NULL } };
        p = NULL;
        assert_int_equal(iovirt_plan_assign(&f->in, broken, 1, &p), -EIO);
        assert_null(p);

        /* a failed IOMMU check ends the plan before any rule runs */
        f->in.group = 99;
        quiet = 0;
        assert_int_equal(iovirt_plan_assign(&f->in, extra, ELEMENTSOF(extra), &p), 0);
        assert_int_equal(quiet, 0);
        iovirt_plan_free(p);
}

static void test_reason_names(void **state) {
        assert_null(iovirt_reason_name(IOVIRT_REASON_NONE));
        for (int i = 1; i < _IOVIRT_REASON_MAX; i++) {
                assert_non_null(iovirt_reason_name(i));
                for (int k = 1; k < i; k++)
                        assert_string_not_equal(iovirt_reason_name(i), iovirt_reason_name(k));
        }
        assert_null(iovirt_reason_name(_IOVIRT_REASON_MAX));
        assert_string_equal(iovirt_plan_status_name(IOVIRT_PLAN_ACCEPTED), "accepted");
}

/* ---- out of memory: every check, or no plan ---- */

static bool plans_equal(const IovirtPlan *a, const IovirtPlan *b) {
        if (a->n_checks != b->n_checks || a->n_steps != b->n_steps || a->n_staying != b->n_staying || a->done != b->done)
                return false;
        for (size_t i = 0; i < a->n_checks; i++)
                if (!streq_ptr(a->checks[i].id, b->checks[i].id) || a->checks[i].status != b->checks[i].status ||
                    a->checks[i].reason != b->checks[i].reason || !streq_ptr(a->checks[i].message, b->checks[i].message))
                        return false;
        for (size_t i = 0; i < a->n_steps; i++)
                if (!streq_ptr(a->steps[i].from, b->steps[i].from) || !streq_ptr(a->steps[i].to, b->steps[i].to) ||
                    !streq_ptr(a->steps[i].module, b->steps[i].module) || a->steps[i].moves != b->steps[i].moves)
                        return false;
        return true;
}

static void test_allocation_failures(void **state) {
        Fixture *f = *state;
        /* as many checks with as many sentences as can be had */
        add_use(f, "04:01.0", "is a bridge the guard saw");
        add_blind_spot(f, "/proc/swaps", ENOENT, "whether a device backs swap");
        f->host->devices[device_of(f->host, "05:00.0")].reset_methods = strdup("");
        set_ids(f, "05:00.0", 0x15b3, 0x101e);
        choose(f, "05:00.0", NULL, 0);            /* and the driver check, with a variant */
        _cleanup_free_ char *reason = NULL;
        assert_int_equal(iovirt_target_resolve(f->host, "05:00.0", &f->in.group, &f->in.device, &reason), 0);

        IovirtPlan *ref = NULL;
        alloc_fail_at(-1);
        assert_int_equal(iovirt_plan_assign(&f->in, NULL, 0, &ref), 0);
        long n = alloc_fail_stop();
        assert_true(n > 10);
        assert_true(ref->n_checks >= 7);
        assert_string_equal(ref->steps[0].to, "mlx5_vfio_pci");

        for (long k = 0; k < n; k++) {
                IovirtPlan *p = NULL;
                alloc_fail_at(k);
                int r = iovirt_plan_assign(&f->in, NULL, 0, &p);
                alloc_fail_stop();
                if (r == 0) {
                        /* an allocation the plan could do without: then it is whole */
                        if (!plans_equal(p, ref))
                                fail_msg("allocation %ld failed and the plan came back with something missing", k);
                        iovirt_plan_free(p);
                        continue;
                }
                if (r != -ENOMEM || p)
                        fail_msg("allocation %ld failed: returned %d and %s plan", k, r, p ? "a" : "no");
        }
        /* and the refusal text: whole, or none (the refusal itself is still there) */
        for (long k = 0;; k++) {
                alloc_fail_at(k);
                char *text = iovirt_plan_refusal_text(ref);
                long used = alloc_fail_stop();
                _cleanup_free_ char *whole = iovirt_plan_refusal_text(ref);
                assert_true(!text || streq_ptr(text, whole));
                free(text);
                if (k >= used)
                        break;
        }
        iovirt_plan_free(ref);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_iommu_off, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_without_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_such_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_target_resolve, setup, teardown),
                cmocka_unit_test_setup_teardown(test_isolated_passes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_shared_group_moves_together, setup, teardown),
                cmocka_unit_test_setup_teardown(test_in_use, setup, teardown),
                cmocka_unit_test_setup_teardown(test_in_use_damaged_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_already_assigned_is_done, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drift_is_not_done, setup, teardown),
                cmocka_unit_test_setup_teardown(test_busy_while_locked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_busy_assigning_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_release_unfinished, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_variant_chosen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_vfio_pci_for_each_function, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_without_choices, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_asked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_host_driver_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_aliases_unreadable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_held_on_variant, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_spelling, setup, teardown),
                cmocka_unit_test_setup_teardown(test_old_record_means_vfio_pci, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drift_against_variant, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bridges_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_leaky_refused_unless_accepted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_isolation_unknown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_host_critical, setup, teardown),
                cmocka_unit_test_setup_teardown(test_host_unreadable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_host_critical_and_blind, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_reset_warns, setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_failure_listed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_extra_rules, setup, teardown),
                cmocka_unit_test(test_reason_names),
                cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
