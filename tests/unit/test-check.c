/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "iovirt-check.h"

static void test_cmdline(void **state) {
        const char *cmd = "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt quiet "
                          "pcie_acs_override=downstream,multifunction\n";
        _cleanup_free_ char *v = NULL;
        assert_true(iovirt_cmdline_has(cmd, "intel_iommu", &v));
        assert_string_equal(v, "on");
        assert_true(iovirt_cmdline_has(cmd, "iommu", &v));
        assert_string_equal(v, "pt");
        assert_true(iovirt_cmdline_has(cmd, "quiet", &v));
        assert_string_equal(v, "");
        assert_true(iovirt_cmdline_has(cmd, "pcie_acs_override", &v));
        assert_string_equal(v, "downstream,multifunction");
        assert_false(iovirt_cmdline_has(cmd, "amd_iommu", NULL));
        assert_false(iovirt_cmdline_has(cmd, "intel", NULL));     /* whole words only */
        assert_false(iovirt_cmdline_has("", "iommu", NULL));
        /* the last occurrence wins, as in the kernel */
        assert_true(iovirt_cmdline_has("iommu=off iommu=pt", "iommu", &v));
        assert_string_equal(v, "pt");
}

static void test_worst(void **state) {
        IovirtCheck k[3] = { { .status = IOVIRT_CHECK_PASS }, { .status = IOVIRT_CHECK_SKIP },
                             { .status = IOVIRT_CHECK_WARN } };
        IovirtChecks c = { k, 2 };
        assert_int_equal(iovirt_checks_worst(&c), IOVIRT_CHECK_PASS);
        c.n_checks = 3;
        assert_int_equal(iovirt_checks_worst(&c), IOVIRT_CHECK_WARN);
        k[0].status = IOVIRT_CHECK_FAIL;
        assert_int_equal(iovirt_checks_worst(&c), IOVIRT_CHECK_FAIL);
        assert_string_equal(iovirt_check_status_name(IOVIRT_CHECK_SKIP), "SKIP");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cmdline),
                cmocka_unit_test(test_worst),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
