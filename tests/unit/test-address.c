/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "iovirt-address.h"
#include "iovirt-util.h"

static void assert_parses(const char *s, uint32_t domain, uint8_t bus, uint8_t dev, uint8_t fn) {
        IovirtAddress a;
        const char *why = NULL;
        assert_int_equal(iovirt_address_parse(s, &a, &why), 0);
        assert_null(why);
        assert_int_equal(a.domain, domain);
        assert_int_equal(a.bus, bus);
        assert_int_equal(a.dev, dev);
        assert_int_equal(a.fn, fn);
}

static void assert_rejects(const char *s, const char *reason_part) {
        IovirtAddress a;
        const char *why = NULL;
        assert_int_equal(iovirt_address_parse(s, &a, &why), -EINVAL);
        assert_non_null(why);
        if (!strstr(why, reason_part))
                fail_msg("'%s': reason '%s' lacks '%s'", s ? s : "(null)", why, reason_part);
}

static void test_accepted_forms(void **state) {
        assert_parses("0000:05:00.0", 0, 5, 0, 0);
        assert_parses("05:00.0", 0, 5, 0, 0);
        assert_parses("0000:ff:1f.7", 0, 0xff, 0x1f, 7);
        assert_parses("0001:3B:00.1", 1, 0x3b, 0, 1);           /* upper case hex */
        assert_parses("10000:00:02.0", 0x10000, 0, 2, 0);        /* VMD domains */
        assert_parses("pci_0000_81_02_3", 0, 0x81, 2, 3);        /* libvirt node device */
}

static void test_malformed(void **state) {
        assert_rejects(NULL, "empty");
        assert_rejects("", "empty");
        assert_rejects("05", "expected");
        assert_rejects("0000:05:00:0.0", "expected");
        assert_rejects("5:00.0", "bus must be 2 hex digits");
        assert_rejects("005:00.0", "bus must be 2 hex digits");
        assert_rejects("000:05:00.0", "domain must be 4 to 8");
        assert_rejects("123456789:05:00.0", "domain must be 4 to 8");
        assert_rejects("05:0.0", "device must be 2 hex digits");
        assert_rejects("05:20.0", "device number is out of range");
        assert_rejects("05:00.8", "function number is out of range");
        assert_rejects("05:00.", "function must be one digit");
        assert_rejects("05:00.00", "function must be one digit");
        assert_rejects("05:00-0", "expected '.'");
        assert_rejects("05:00.0 ", "unexpected characters");
        assert_rejects("0g:00.0", "bus must be 2 hex digits");
        assert_rejects("pci_0000_05_00", "expected");
        assert_rejects("pci_05_00_0", "domain must be 4 to 8");
}

static void test_format_and_compare(void **state) {
        IovirtAddress a = { 0x10000, 0x3b, 0x1f, 7 }, b = { 0, 0x3b, 0, 1 }, c = { 0, 0x3b, 0, 1 };
        char buf[IOVIRT_ADDRESS_MAX];
        assert_string_equal(iovirt_address_format(&a, buf), "10000:3b:1f.7");
        assert_string_equal(iovirt_address_format(&b, buf), "0000:3b:00.1");
        assert_true(iovirt_address_compare(&b, &a) < 0);
        assert_true(iovirt_address_compare(&a, &b) > 0);
        assert_int_equal(iovirt_address_compare(&b, &c), 0);
        assert_true(iovirt_address_equal(&b, &c));
        IovirtAddress d = { 0, 0x3b, 0, 2 }, e = { 0, 0x3c, 0, 0 }, f = { 0, 0x3b, 1, 0 };
        assert_true(iovirt_address_compare(&b, &d) < 0);
        assert_true(iovirt_address_compare(&d, &f) < 0);
        assert_true(iovirt_address_compare(&f, &e) < 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepted_forms),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_format_and_compare),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
