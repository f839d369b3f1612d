/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "alloc-fail.h"
#include "iovirt-host.h"
#include "iovirt-verdict.h"

/* Out of memory while the host model is built: every allocation that
 * iovirt_host_discover() and iovirt_host_update_device() make is failed in
 * turn, against an emulated host.  Fail closed means: -ENOMEM and no model,
 * or a model identical to the one read without failures.  What must never
 * happen is a model that reads as safer than the host is: a driver that
 * became "no driver", a problem that became "none", a reset that became
 * possible, a VF that lost its PF, a group that lost a member.
 *
 * Run under umockdev, through data/iovirt-emulate (see meson.build):
 *   data/iovirt-emulate HOST test-host-oom HOST
 * Every allocation is failed, none skipped: the emulated hosts take 30 to
 * 75 allocations per scan and 12 to 27 per re-read, so even under
 * AddressSanitizer a host takes a few seconds and no stride is needed.
 * Allocations made inside shared libraries (libudev, libpci, umockdev's
 * preload) are not wrapped and not counted.
 *
 * IOVIRT_OOM_LEAK_EACH=1 under AddressSanitizer runs a leak check after
 * every failed allocation, to name the allocation whose failure path leaks. */

extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static const char *host_name;   /* which emulated host: what the reference must hold */
static bool leak_each;

static void leak_check(const char *what, long k) {
        if (leak_each && __lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
                fail_msg("%s: the failure of allocation %ld leaks (stack above)", what, k);
}

static double now_sec(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

/* ---- comparing models ---- */

/* The differences found: for each field, how many devices differ in it
 * and the first of them in words */
typedef struct Diff {
        struct {
                const char *field;
                unsigned n;
                bool unsafe;    /* the model reads as safer than the host */
                char first[160];
        } fields[24];
        size_t n_fields;
        unsigned n, n_unsafe;
} Diff;

static void differs(Diff *diff, bool unsafe, const char *field, const char *fmt, ...) _printf_(4, 5);
static void differs(Diff *diff, bool unsafe, const char *field, const char *fmt, ...) {
        size_t f = 0;
        diff->n++;
        diff->n_unsafe += unsafe;
        while (f < diff->n_fields && strcmp(diff->fields[f].field, field) != 0)
                f++;
        if (f == ELEMENTSOF(diff->fields))
                return;
        if (f == diff->n_fields) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(diff->fields[f].first, sizeof(diff->fields[f].first), fmt, ap);
                va_end(ap);
                diff->fields[f].field = field;
                diff->n_fields++;
        }
        diff->fields[f].n++;
        diff->fields[f].unsafe = diff->fields[f].unsafe || unsafe;
}

/* "3 differences (1 unsafe): UNSAFE group x2 (0000:00:00.0: group -1, reference 0); ..." */
static const char *diff_text(const Diff *diff, char *buf, size_t size) {
        size_t l = (size_t) snprintf(buf, size, "%u difference%s (%u unsafe):", diff->n, diff->n == 1 ? "" : "s",
                                     diff->n_unsafe);
        for (int unsafe = 1; unsafe >= 0; unsafe--)     /* the unsafe ones first */
                for (size_t f = 0; f < diff->n_fields && l < size; f++)
                        if (diff->fields[f].unsafe == unsafe)
                                l += (size_t) snprintf(buf + l, size - l, " %s%s x%u (%s);", unsafe ? "UNSAFE " : "",
                                                       diff->fields[f].field, diff->fields[f].n, diff->fields[f].first);
        return buf;
}

static long long index_value(size_t i) {
        return i == IOVIRT_NONE ? -1 : (long long) i;      /* "none" reads as -1 */
}

#define CMP_INT(field, unsafe)                                                                              \
        do {                                                                                                \
                if ((long long) a->field != (long long) ref->field)                                         \
                        differs(diff, unsafe, #field, "%s: " #field " %lld, reference %lld", ref->name,     \
                                (long long) a->field, (long long) ref->field);                              \
        } while (0)

#define CMP_INDEX(field, unsafe)                                                                            \
        do {                                                                                                \
                if (a->field != ref->field)                                                                 \
                        differs(diff, unsafe, #field, "%s: " #field " %lld, reference %lld", ref->name,     \
                                index_value(a->field), index_value(ref->field));                            \
        } while (0)

/* NULL, "" and text are three different facts: "no driver" / "none set" /
 * "no reset" / "no problem" against what the reference read. */
#define CMP_STR(field, unsafe)                                                                              \
        do {                                                                                                \
                if (!streq_ptr(a->field, ref->field))                                                       \
                        differs(diff, unsafe, #field, "%s: " #field " %s%s%s, reference %s%s%s", ref->name, \
                                a->field ? "\"" : "", a->field ? a->field : "NULL", a->field ? "\"" : "",   \
                                ref->field ? "\"" : "", ref->field ? ref->field : "NULL",                   \
                                ref->field ? "\"" : "");                                                    \
        } while (0)

/* Reset methods read as safer than they are when methods appear that the
 * reference does not have, or when "none" ("", which plans warn about)
 * turns into "unknown" (NULL, which they do not). */
static bool resets_unsafe(const char *a, const char *ref) {
        if (a && !*a)
                return false;   /* none: the most cautious answer */
        if (!a)
                return ref && !*ref;
        return true;
}

static void device_diff(const IovirtDevice *a, const IovirtDevice *ref, Diff *diff) {
        if (strcmp(a->name, ref->name) != 0 || iovirt_address_compare(&a->addr, &ref->addr) != 0) {
                differs(diff, true, "address", "device %s where the reference has %s", a->name, ref->name);
                return;
        }
        CMP_STR(syspath, true);

        /* what the safety checks read; unsafe where a wrong value would pass a check */
        CMP_STR(driver, !a->driver);                    /* "no driver bound": nothing to unbind */
        CMP_STR(driver_override, !a->driver_override);
        CMP_INT(iommu_group, true);
        CMP_STR(problem, !a->problem);                  /* the device looks sound */
        CMP_STR(reset_methods, resets_unsafe(a->reset_methods, ref->reset_methods));
        CMP_INT(reset_source, false);
        CMP_INT(boot_vga, !a->boot_vga);                /* the boot GPU looks like any GPU */
        CMP_INT(bridge, !a->bridge);
        CMP_INT(numa_node, false);
        CMP_INT(has_numa_attr, false);
        CMP_INT(sriov, !a->sriov);
        CMP_INT(sriov_total, false);
        CMP_INT(sriov_initial, false);
        CMP_INT(sriov_num, a->sriov_num < ref->sriov_num);
        CMP_INT(sriov_offset, true);
        CMP_INT(sriov_stride, true);
        CMP_INDEX(physfn, a->physfn == IOVIRT_NONE);     /* a VF that looks like a PF */
        CMP_INT(n_vfs, a->n_vfs < ref->n_vfs);           /* a PF that looks like it has fewer VFs */
        for (size_t v = 0; v < ref->n_vfs && v < a->n_vfs; v++)
                if (a->vfs[v] != ref->vfs[v])
                        differs(diff, true, "vfs", "%s: VF %zu is device %zu, reference %zu", ref->name, v, a->vfs[v],
                                ref->vfs[v]);
        CMP_INDEX(parent, true);
        CMP_INDEX(group, true);
        CMP_INT(vanished, true);

        /* identity and config space */
        CMP_INT(vendor, false);
        CMP_INT(device, false);
        CMP_INT(subsys_vendor, false);
        CMP_INT(subsys_device, false);
        CMP_INT(class_code, true);                      /* decides boot_vga and host bridges */
        CMP_INT(revision, false);
        CMP_INT(header_type, true);
        CMP_INT(ids_known, false);
        CMP_INT(multifunction, true);
        CMP_INT(caps.header_known, true);
        CMP_INT(caps.pcie, true);
        CMP_INT(caps.pcie_type, true);
        CMP_INT(caps.devcap, true);
        CMP_INT(caps.pm, true);
        CMP_INT(caps.pm_no_soft_reset, true);
        CMP_INT(caps.af, true);
        CMP_INT(caps.af_flr, true);
        CMP_INT(caps.acs, true);
        CMP_INT(caps.acs_cap, true);
        CMP_INT(caps.acs_ctl, true);
        CMP_INT(caps.sriov, true);

        /* for the user only: shown by 'iovirtctl show' and in JSON, where NULL reads "unknown" */
        CMP_STR(local_cpulist, false);
}

#undef CMP_INT
#undef CMP_INDEX
#undef CMP_STR

/* Whether h differs from ref, and how */
static bool host_differs(const IovirtHost *h, const IovirtHost *ref, Diff *diff) {
        if (h->n_devices != ref->n_devices)
                differs(diff, true, "n_devices", "%zu devices, reference %zu", h->n_devices, ref->n_devices);
        else
                for (size_t i = 0; i < ref->n_devices; i++)
                        device_diff(&h->devices[i], &ref->devices[i], diff);
        if (h->n_groups != ref->n_groups)
                differs(diff, h->n_groups > 0, "n_groups", "%zu groups, reference %zu", h->n_groups, ref->n_groups);
        for (size_t g = 0; g < ref->n_groups && g < h->n_groups; g++) {
                const IovirtGroup *a = &h->groups[g], *b = &ref->groups[g];
                bool members_differ = a->n_members != b->n_members;
                for (size_t m = 0; m < b->n_members && !members_differ; m++)
                        members_differ = a->members[m] != b->members[m];
                if (a->number != b->number || members_differ || a->vfio_node != b->vfio_node)
                        differs(diff, true, "groups", "group %d: %zu members%s, reference group %d: %zu members%s",
                                a->number, a->n_members, a->vfio_node ? ", /dev/vfio" : "", b->number, b->n_members,
                                b->vfio_node ? ", /dev/vfio" : "");
        }
        if (h->kernel_has_reset_method != ref->kernel_has_reset_method)
                differs(diff, false, "kernel_has_reset_method", "kernel_has_reset_method %d, reference %d",
                        h->kernel_has_reset_method, ref->kernel_has_reset_method);
        if (h->config_restricted != ref->config_restricted)
                differs(diff, !h->config_restricted, "config_restricted", "config_restricted %d, reference %d",
                        h->config_restricted, ref->config_restricted);
        if (h->n_problems != ref->n_problems)
                differs(diff, h->n_problems < ref->n_problems, "n_problems", "%zu host problems, reference %zu",
                        h->n_problems, ref->n_problems);
        for (size_t p = 0; p < ref->n_problems && p < h->n_problems; p++)
                if (!streq_ptr(h->problems[p], ref->problems[p]))
                        differs(diff, true, "problems", "host problem %zu \"%s\", reference \"%s\"", p,
                                strna(h->problems[p]), strna(ref->problems[p]));
        return diff->n > 0;
}

/* What holds in any model, whole or not: device and group links that agree
 * with each other.  The first break in words, or NULL. */
static const char *host_inconsistent(const IovirtHost *h, char *buf, size_t size) {
        for (size_t i = 0; i < h->n_devices; i++) {
                const IovirtDevice *d = &h->devices[i];
                if ((d->iommu_group >= 0) != (d->group != IOVIRT_NONE))
                        return snprintf(buf, size, "%s is in IOMMU group %d but its group link is %lld", d->name,
                                        d->iommu_group, index_value(d->group)), buf;
                if (d->group != IOVIRT_NONE) {
                        if (d->group >= h->n_groups || h->groups[d->group].number != d->iommu_group)
                                return snprintf(buf, size, "%s links to group index %zu, which is not group %d",
                                                d->name, d->group, d->iommu_group), buf;
                        const IovirtGroup *g = &h->groups[d->group];
                        bool member = false;
                        for (size_t m = 0; m < g->n_members; m++)
                                member = member || g->members[m] == i;
                        if (!member)
                                return snprintf(buf, size, "%s is not among the members of group %d", d->name,
                                                g->number), buf;
                }
                if (d->parent != IOVIRT_NONE && d->parent >= h->n_devices)
                        return snprintf(buf, size, "%s has parent index %zu of %zu", d->name, d->parent,
                                        h->n_devices), buf;
                if (d->physfn != IOVIRT_NONE) {
                        bool listed = false;
                        if (d->physfn < h->n_devices)
                                for (size_t v = 0; v < h->devices[d->physfn].n_vfs; v++)
                                        listed = listed || h->devices[d->physfn].vfs[v] == i;
                        if (!listed)
                                return snprintf(buf, size, "%s is a VF its PF does not list", d->name), buf;
                }
                for (size_t v = 0; v < d->n_vfs; v++)
                        if (d->vfs[v] >= h->n_devices || h->devices[d->vfs[v]].physfn != i)
                                return snprintf(buf, size, "%s lists a VF that does not name it as its PF", d->name),
                                       buf;
        }
        for (size_t g = 0; g < h->n_groups; g++) {
                const IovirtGroup *grp = &h->groups[g];
                if (grp->n_members == 0)
                        return snprintf(buf, size, "group %d has no members", grp->number), buf;
                if (g > 0 && h->groups[g - 1].number >= grp->number)
                        return snprintf(buf, size, "groups are out of order at %d", grp->number), buf;
                for (size_t m = 0; m < grp->n_members; m++)
                        if (grp->members[m] >= h->n_devices || h->devices[grp->members[m]].group != g)
                                return snprintf(buf, size, "group %d lists a member that is not in it", grp->number),
                                       buf;
        }
        return NULL;
}

/* ---- the reference ---- */

static IovirtHost *reference(long *ret_allocations) {
        IovirtHost *ref = NULL;
        alloc_fail_at(-1);
        int r = iovirt_host_discover(&ref);
        long n = alloc_fail_stop();
        if (r < 0)
                fail_msg("iovirt_host_discover() on '%s' without failures: %s", host_name, strerror(-r));
        assert_non_null(ref);

        char why[256];
        const char *broken = host_inconsistent(ref, why, sizeof(why));
        if (broken)
                fail_msg("the reference model of '%s' is inconsistent: %s", host_name, broken);

        /* the model holds what makes the failures telling */
        size_t drivers = 0, problems = 0, vfs = 0, resets = 0, boot_vga = 0;
        for (size_t i = 0; i < ref->n_devices; i++) {
                const IovirtDevice *d = &ref->devices[i];
                drivers += !!d->driver;
                problems += !!d->problem;
                vfs += d->n_vfs;
                resets += !!d->reset_methods;
                boot_vga += d->boot_vga;
        }
        assert_true(ref->n_devices > 0);
        assert_true(ref->n_groups > 0);
        assert_true(drivers > 0);
        assert_true(resets > 0);
        assert_true(n > 0);
        if (streq_ptr(host_name, "broken"))
                assert_true(problems > 0);
        if (streq_ptr(host_name, "dual-socket"))
                assert_true(vfs > 0);
        if (streq_ptr(host_name, "desktop"))
                assert_true(boot_vga > 0);
        *ret_allocations = n;
        return ref;
}

/* ---- discovery ---- */

static void test_discover(void **state) {
        long n;
        IovirtHost *ref = reference(&n);
        unsigned failed = 0, whole = 0, bad = 0;
        double t0 = now_sec();
        char buf[4096];

        for (long k = 0; k < n; k++) {
                IovirtHost *h = NULL;
                Diff diff = {};
                alloc_fail_at(k);
                int r = iovirt_host_discover(&h);
                alloc_fail_stop();

                if (r == -ENOMEM && !h)
                        failed++;
                else if (r == 0 && h && !host_differs(h, ref, &diff))
                        whole++;      /* an allocation the model could do without: then it is whole */
                else {
                        bad++;
                        if (r == 0 && h)
                                print_message("%s: allocation %ld of %ld failed; discovery succeeded with %s\n",
                                              host_name, k, n, diff_text(&diff, buf, sizeof(buf)));
                        else
                                print_message("%s: allocation %ld of %ld failed; discovery returned %d (%s) and %s "
                                              "model\n", host_name, k, n, r, strerror(r < 0 ? -r : 0), h ? "a" : "no");
                }
                iovirt_host_free(h);
                leak_check("iovirt_host_discover()", k);
        }
        print_message("%s: iovirt_host_discover() makes %ld allocations (%zu devices, %zu groups); failing each: "
                      "%u -ENOMEM, %u whole, %u wrong; %.2f s\n",
                      host_name, n, ref->n_devices, ref->n_groups, failed, whole, bad, now_sec() - t0);
        iovirt_host_free(ref);
        if (bad)
                fail_msg("%u of %ld allocation failures in iovirt_host_discover() did not fail closed", bad, n);
}

/* ---- one device re-read ---- */

/* Which devices to re-read: a PF with VFs (its family is re-derived), a
 * VF, a device with a problem, and an endpoint with a driver; each at most
 * once, what the host has of them. */
static size_t pick_devices(const IovirtHost *ref, size_t out[4]) {
        size_t n = 0;
        for (int kind = 0; kind < 4; kind++)
                for (size_t i = 0; i < ref->n_devices; i++) {
                        const IovirtDevice *d = &ref->devices[i];
                        bool fits = kind == 0   ? d->n_vfs > 0
                                    : kind == 1 ? iovirt_device_is_vf(d)
                                    : kind == 2 ? !!d->problem
                                                : d->driver && !d->bridge;
                        bool taken = false;
                        for (size_t j = 0; j < n; j++)
                                taken = taken || out[j] == i;
                        if (fits && !taken) {
                                out[n++] = i;
                                break;
                        }
                }
        return n;
}

/* A damaged model must not be judged: verdicts refuse it */
static bool refused_by_verdicts(const IovirtHost *h) {
        IovirtVerdicts *v = NULL;
        int r = iovirt_verdicts_compute(h, &v);
        iovirt_verdicts_free(v);
        return r == -ESTALE && !v;
}

/* The device is unchanged on disk, so a re-read that succeeds leaves the
 * reference, unchanged.  One that fails (-ENOMEM) leaves the reference, or
 * a model that is consistent and says no less than the reference (nothing
 * UNSAFE in host_differs()), or a model marked damaged, which verdicts
 * refuse (the daemon then drops it, answers Busy and reads the host anew):
 * a half-linked model nobody can judge by. */
static unsigned update_device_failures(const IovirtHost *ref, const IovirtDevice *target) {
        unsigned failed = 0, whole = 0, changed = 0, damaged = 0, bad = 0;
        char buf[4096], why[256];

        /* the count, and that a re-read of an unchanged device changes nothing */
        IovirtHost *h = NULL;
        IovirtDeviceChange c = {};
        Diff diff = {};
        assert_int_equal(iovirt_host_discover(&h), 0);
        alloc_fail_at(-1);
        int r = iovirt_host_update_device(h, target->syspath, false, &c);
        long n = alloc_fail_stop();
        if (host_differs(h, ref, &diff))
                fail_msg("re-reading %s without failures changed the model: %s", target->name,
                         diff_text(&diff, buf, sizeof(buf)));
        assert_int_equal(r, 1);
        assert_int_equal(c.kind, IOVIRT_DEVICE_UNCHANGED);
        assert_true(streq_ptr(c.old_driver, target->driver) && streq_ptr(c.new_driver, target->driver));
        iovirt_device_change_clear(&c);
        iovirt_host_free(h);

        for (long k = 0; k < n; k++) {
                h = NULL;
                c = (IovirtDeviceChange) {};
                diff = (Diff) {};
                assert_int_equal(iovirt_host_discover(&h), 0);
                alloc_fail_at(k);
                r = iovirt_host_update_device(h, target->syspath, false, &c);
                alloc_fail_stop();

                bool differ = host_differs(h, ref, &diff);
                const char *broken = host_inconsistent(h, why, sizeof(why));
                if (r == 1 && !differ && c.kind == IOVIRT_DEVICE_UNCHANGED && streq_ptr(c.new_driver, target->driver))
                        whole++;
                else if (r == -ENOMEM && !differ)
                        failed++;
                else if (r == -ENOMEM && !broken && diff.n_unsafe == 0 && !h->damaged)
                        changed++;
                else if (r == -ENOMEM && h->damaged && refused_by_verdicts(h))
                        damaged++;
                else {
                        bad++;
                        if (r == -ENOMEM)
                                print_message("%s: re-reading %s, allocation %ld of %ld failed: -ENOMEM, and the model "
                                              "left behind is %s%s; %s\n",
                                              host_name, target->name, k, n, broken ? "inconsistent: " : "",
                                              broken ? broken : "consistent", diff_text(&diff, buf, sizeof(buf)));
                        else if (r == 1)
                                print_message("%s: re-reading %s, allocation %ld of %ld failed: success (change %d, "
                                              "driver %s -> %s) with %s\n",
                                              host_name, target->name, k, n, c.kind, strna(c.old_driver),
                                              strna(c.new_driver), diff_text(&diff, buf, sizeof(buf)));
                        else
                                print_message("%s: re-reading %s, allocation %ld of %ld failed: returned %d (%s)\n",
                                              host_name, target->name, k, n, r, strerror(r < 0 ? -r : 0));
                }
                iovirt_device_change_clear(&c);
                iovirt_host_free(h);
                leak_check("iovirt_host_update_device()", k);
        }
        print_message("%s: iovirt_host_update_device(%s%s%s) makes %ld allocations; failing each: %u -ENOMEM "
                      "(model unchanged), %u -ENOMEM (model changed, consistent, safe), %u -ENOMEM (model marked "
                      "damaged, refused by verdicts), %u whole, %u wrong\n",
                      host_name, target->name,
                      target->n_vfs ? ", a PF with VFs" : iovirt_device_is_vf(target) ? ", a VF" : "",
                      target->problem ? ", with a problem" : "", n, failed, changed, damaged, whole, bad);
        return bad;
}

static void test_update_device(void **state) {
        long n_discover;
        IovirtHost *ref = reference(&n_discover);
        size_t picked[4];
        size_t n_picked = pick_devices(ref, picked);
        unsigned bad = 0;
        double t0 = now_sec();

        assert_true(n_picked > 0);
        for (size_t p = 0; p < n_picked; p++)
                bad += update_device_failures(ref, &ref->devices[picked[p]]);
        print_message("%s: re-reading %zu devices, %.2f s\n", host_name, n_picked, now_sec() - t0);
        iovirt_host_free(ref);
        if (bad)
                fail_msg("%u allocation failures in iovirt_host_update_device() did not fail closed", bad);
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_discover),
                cmocka_unit_test(test_update_device),
        };

        if (argc != 2) {
                fprintf(stderr, "usage: data/iovirt-emulate HOST %s HOST\n", argv[0]);
                return 2;
        }
        if (!getenv("UMOCKDEV_DIR")) {
                fprintf(stderr, "not under umockdev: run it through data/iovirt-emulate\n");
                return 77;      /* skipped */
        }
        host_name = argv[1];
        leak_each = streq_ptr(getenv("IOVIRT_OOM_LEAK_EACH"), "1");
        return cmocka_run_group_tests_name(host_name, tests, NULL, NULL);
}
