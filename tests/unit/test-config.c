/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config-builder.h"
#include "iovirt-config.h"
#include "iovirt-util.h"

#define ACS_ALL (PCI_ACS_CTRL_VALID | PCI_ACS_CTRL_BLOCK | PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED | \
                 PCI_ACS_CTRL_FORWARD)

static void decode(const Cfg *c, unsigned len, IovirtCaps *caps) {
        static IovirtConfig cfg;
        iovirt_config_init_bytes(&cfg, c->b, len);
        iovirt_config_decode(&cfg, caps);
}

static void test_header(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x10d3, 0x020000, 0x80);
        put16(&c, PCI_SUBSYSTEM_VENDOR_ID, 0x1028);
        put16(&c, PCI_SUBSYSTEM_ID, 0x0abc);
        decode(&c, 4096, &k);
        assert_true(k.header_known);
        assert_int_equal(k.vendor, 0x8086);
        assert_int_equal(k.device, 0x10d3);
        assert_int_equal(k.class_code, 0x020000);
        assert_int_equal(k.revision, 2);
        assert_true(k.multifunction);
        assert_int_equal(k.header_type, PCI_HEADER_TYPE_NORMAL);
        assert_int_equal(k.subsys_vendor, 0x1028);
        assert_int_equal(k.subsys_device, 0x0abc);
        /* no capability list: everything is known to be absent */
        assert_int_equal(k.pcie, IOVIRT_ABSENT);
        assert_int_equal(k.pm, IOVIRT_ABSENT);
        assert_int_equal(k.acs, IOVIRT_ABSENT);
        assert_int_equal(k.sriov, IOVIRT_ABSENT);
        assert_null(k.problem);
}

static void test_bridge_header(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x1901, 0x060400, PCI_HEADER_TYPE_BRIDGE);
        c.b[PCI_SECONDARY_BUS] = 3;
        c.b[PCI_SUBORDINATE_BUS] = 5;
        decode(&c, 4096, &k);
        assert_int_equal(k.header_type, PCI_HEADER_TYPE_BRIDGE);
        assert_false(k.multifunction);
        assert_int_equal(k.secondary_bus, 3);
        assert_int_equal(k.subordinate_bus, 5);
}

static void test_pcie_link_flr_acs_sriov(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x1572, 0x020000, 0x80);
        unsigned pm = cfg_cap(&c, PCI_CAP_ID_PM, 8);
        put16(&c, pm + PCI_PM_CTRL, PCI_PM_CTRL_NO_SOFT_RST);
        cfg_pcie(&c, PCI_EXP_TYPE_ENDPOINT, PCI_EXP_DEVCAP_FLRESET);
        cfg_ecap(&c, PCI_EXT_CAP_ID_AER, 0x48);
        cfg_acs(&c, PCI_ACS_CAP_REQ_RED | PCI_ACS_CAP_CMPLT_RED, PCI_ACS_CTRL_REQ_RED);
        unsigned iov = cfg_ecap(&c, PCI_EXT_CAP_ID_SRIOV, 0x40);
        put16(&c, iov + PCI_IOV_CTRL, PCI_IOV_CTRL_VFE | PCI_IOV_CTRL_MSE);
        put16(&c, iov + PCI_IOV_INITIALVF, 64);
        put16(&c, iov + PCI_IOV_TOTALVF, 64);
        put16(&c, iov + PCI_IOV_NUMVF, 8);
        put16(&c, iov + PCI_IOV_OFFSET, 0x80);
        put16(&c, iov + PCI_IOV_STRIDE, 2);
        put16(&c, iov + PCI_IOV_DID, 0x154c);

        decode(&c, 4096, &k);
        assert_null(k.problem);
        assert_int_equal(k.pm, IOVIRT_PRESENT);
        assert_true(k.pm_no_soft_reset);
        assert_int_equal(k.pcie, IOVIRT_PRESENT);
        assert_int_equal(k.pcie_type, PCI_EXP_TYPE_ENDPOINT);
        assert_true(k.devcap & PCI_EXP_DEVCAP_FLRESET);
        assert_true(k.has_link);
        assert_string_equal(iovirt_link_speed_name(k.lnkcap & PCI_EXP_LNKCAP_SPEED), "8GT/s");
        assert_int_equal((k.lnkcap & PCI_EXP_LNKCAP_WIDTH) >> 4, 16);
        assert_string_equal(iovirt_link_speed_name(k.lnksta & PCI_EXP_LNKSTA_SPEED), "5GT/s");
        assert_int_equal((k.lnksta & PCI_EXP_LNKSTA_WIDTH) >> 4, 8);
        assert_int_equal(k.acs, IOVIRT_PRESENT);
        assert_int_equal(k.acs_cap, PCI_ACS_CAP_REQ_RED | PCI_ACS_CAP_CMPLT_RED);
        assert_int_equal(k.acs_ctl, PCI_ACS_CTRL_REQ_RED);
        assert_int_equal(k.sriov, IOVIRT_PRESENT);
        assert_int_equal(k.iov_total, 64);
        assert_int_equal(k.iov_num, 8);
        assert_int_equal(k.iov_offset, 0x80);
        assert_int_equal(k.iov_stride, 2);
        assert_int_equal(k.iov_did, 0x154c);
        assert_int_equal(k.af, IOVIRT_ABSENT);
}

static void test_af_flr_and_rc_endpoint(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0xa36d, 0x0c0330, 0);
        cfg_pcie(&c, PCI_EXP_TYPE_ROOT_INT_EP, 0);
        unsigned af = cfg_cap(&c, PCI_CAP_ID_AF, 6);
        c.b[af + PCI_AF_CAP] = PCI_AF_CAP_TP | PCI_AF_CAP_FLR;
        decode(&c, 4096, &k);
        assert_int_equal(k.af, IOVIRT_PRESENT);
        assert_true(k.af_flr);
        assert_false(k.has_link);   /* RC integrated endpoints have no link */
        assert_string_equal(iovirt_pcie_type_name(k.pcie_type), "rc_integrated_endpoint");
        /* AF FLR needs Transactions Pending too */
        c.b[af + PCI_AF_CAP] = PCI_AF_CAP_FLR;
        decode(&c, 4096, &k);
        assert_false(k.af_flr);
}

static void test_port_acs_rule(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x10b5, 0x8747, 0x060400, PCI_HEADER_TYPE_BRIDGE);
        cfg_pcie(&c, PCI_EXP_TYPE_DOWNSTREAM, 0);
        decode(&c, 4096, &k);
        assert_true(iovirt_caps_is_port(&k));
        assert_int_equal(k.acs, IOVIRT_ABSENT);
        assert_int_equal(iovirt_acs_missing(&k), IOVIRT_ACS_REQUIRED);

        cfg_acs(&c, ACS_ALL, ACS_ALL & ~PCI_ACS_CTRL_FORWARD);
        decode(&c, 4096, &k);
        assert_int_equal(iovirt_acs_missing(&k), PCI_ACS_CTRL_FORWARD);

        put16(&c, 0x100 + PCI_ACS_CTRL, ACS_ALL);
        decode(&c, 4096, &k);
        assert_int_equal(iovirt_acs_missing(&k), 0);
        /* Translation Blocking is not required */
        put16(&c, 0x100 + PCI_ACS_CTRL, IOVIRT_ACS_REQUIRED);
        decode(&c, 4096, &k);
        assert_int_equal(iovirt_acs_missing(&k), 0);
}

static void test_unprivileged_view(void **state) {
        /* Non-root reads 64 bytes: the header is known, capabilities are not */
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x1572, 0x020000, 0);
        cfg_pcie(&c, PCI_EXP_TYPE_ENDPOINT, PCI_EXP_DEVCAP_FLRESET);
        cfg_acs(&c, 0x1f, 0x1f);
        decode(&c, 64, &k);
        assert_true(k.header_known);
        assert_int_equal(k.vendor, 0x8086);
        assert_int_equal(k.pcie, IOVIRT_UNKNOWN);
        assert_int_equal(k.pm, IOVIRT_UNKNOWN);
        assert_int_equal(k.acs, IOVIRT_UNKNOWN);
        assert_int_equal(k.sriov, IOVIRT_UNKNOWN);
        assert_non_null(k.problem);
        assert_non_null(strstr(k.problem, "needs root"));
}

static void test_conventional_256(void **state) {
        /* 256 bytes readable, PCIe capability present: no extended space */
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x1b21, 0x1080, 0x060400, PCI_HEADER_TYPE_BRIDGE);
        cfg_pcie(&c, PCI_EXP_TYPE_PCI_BRIDGE, 0);
        decode(&c, 256, &k);
        assert_int_equal(k.pcie, IOVIRT_PRESENT);
        assert_int_equal(k.acs, IOVIRT_ABSENT);
        assert_int_equal(k.sriov, IOVIRT_ABSENT);
}

static void test_truncated_header(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x10d3, 0x020000, 0);
        decode(&c, 32, &k);
        assert_false(k.header_known);
        assert_int_equal(k.pcie, IOVIRT_UNKNOWN);
        assert_non_null(strstr(k.problem, "shorter than the 64-byte header"));
}

static void test_all_ones(void **state) {
        Cfg c;
        IovirtCaps k;
        memset(c.b, 0xff, sizeof(c.b));
        decode(&c, 4096, &k);
        assert_false(k.header_known);
        assert_non_null(strstr(k.problem, "all ones"));
}

static void test_capability_loop(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x10de, 0, 0x020000, 0);
        unsigned a = cfg_cap(&c, 0x05, 8);   /* MSI */
        cfg_cap(&c, 0x09, 8);                /* vendor specific */
        c.b[c.last_cap + 1] = (uint8_t) a;   /* ... pointing back */
        decode(&c, 4096, &k);
        assert_non_null(strstr(k.problem, "loops"));
        assert_int_equal(k.problem_offset, a);
        /* the list never ended: what it did not show is unknown, not absent */
        assert_int_equal(k.pcie, IOVIRT_UNKNOWN);
        assert_int_equal(k.acs, IOVIRT_UNKNOWN);
}

static void test_pointer_into_header(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x10de, 0, 0x020000, 0);
        cfg_pcie(&c, PCI_EXP_TYPE_ENDPOINT, 0);
        c.b[c.last_cap + 1] = 0x20;
        decode(&c, 4096, &k);
        assert_non_null(strstr(k.problem, "into the header"));
        assert_int_equal(k.pcie, IOVIRT_PRESENT);     /* found before the bad pointer */
        assert_int_equal(k.pm, IOVIRT_UNKNOWN);
}

static void test_ext_loop_and_bad_pointer(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x1572, 0x020000, 0);
        cfg_pcie(&c, PCI_EXP_TYPE_ENDPOINT, 0);
        cfg_ecap(&c, PCI_EXT_CAP_ID_AER, 0x48);
        unsigned second = cfg_ecap(&c, PCI_EXT_CAP_ID_DSN, 0xc);
        put32(&c, second, PCI_EXT_CAP_ID_DSN | 1u << 16 | 0x100u << 20);   /* back to the first */
        decode(&c, 4096, &k);
        assert_non_null(strstr(k.problem, "extended capability list loops"));
        assert_int_equal(k.acs, IOVIRT_UNKNOWN);

        put32(&c, second, PCI_EXT_CAP_ID_DSN | 1u << 16 | 0x80u << 20);
        decode(&c, 4096, &k);
        assert_non_null(strstr(k.problem, "below 0x100"));
}

static void test_empty_ext_space(void **state) {
        Cfg c;
        IovirtCaps k;
        cfg_init(&c, 0x8086, 0x10d3, 0x020000, 0);
        cfg_pcie(&c, PCI_EXP_TYPE_ENDPOINT, 0);
        put32(&c, 0x100, 0xffffffff);
        decode(&c, 4096, &k);
        assert_null(k.problem);
        assert_int_equal(k.acs, IOVIRT_ABSENT);
}

/* The reader is asked only for what the walk needs, and each range once */
typedef struct Counting {
        const uint8_t *bytes;
        unsigned calls, bytes_read;
} Counting;

static int counting_reader(void *userdata, unsigned pos, uint8_t *buf, unsigned len) {
        Counting *c = userdata;
        c->calls++;
        c->bytes_read += len;
        memcpy(buf, c->bytes + pos, len);
        return 0;
}

static void test_reads_only_what_it_needs(void **state) {
        Cfg c;
        IovirtCaps k;
        static IovirtConfig cfg;
        cfg_init(&c, 0x8086, 0x10d3, 0x020000, 0);
        cfg_pcie(&c, PCI_EXP_TYPE_ENDPOINT, 0);
        cfg_acs(&c, 0, 0);
        Counting counting = { c.b, 0, 0 };
        iovirt_config_init(&cfg, counting_reader, &counting);
        iovirt_config_decode(&cfg, &k);
        assert_int_equal(k.acs, IOVIRT_PRESENT);
        /* header 64 + PCIe (4 then 16 more) + ACS header 4 + ACS regs 4 */
        assert_int_equal(counting.bytes_read, 64 + 4 + 16 + 4 + 4);
        assert_int_equal(counting.calls, 5);
        /* asking again reads nothing */
        assert_int_equal(iovirt_config_fetch(&cfg, 0, 64), 0);
        assert_int_equal(counting.calls, 5);
        assert_int_equal(iovirt_config_fetch(&cfg, 4090, 10), -ERANGE);
}

static int failing_reader(void *userdata, unsigned pos, uint8_t *buf, unsigned len) {
        return pos >= 64 ? -EIO : counting_reader(userdata, pos, buf, len);
}

static void test_failed_read_stops_later_reads(void **state) {
        Cfg c;
        static IovirtConfig cfg;
        cfg_init(&c, 0x8086, 0x10d3, 0x020000, 0);
        Counting counting = { c.b, 0, 0 };
        iovirt_config_init(&cfg, failing_reader, &counting);
        assert_int_equal(iovirt_config_fetch(&cfg, 0, 64), 0);
        assert_int_equal(iovirt_config_fetch(&cfg, 0x40, 4), -ENODATA);
        assert_int_equal(cfg.limit, 64);
        unsigned calls = counting.calls;
        assert_int_equal(iovirt_config_fetch(&cfg, 0x100, 4), -ENODATA);
        assert_int_equal(counting.calls, calls);   /* not asked again */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header),
                cmocka_unit_test(test_bridge_header),
                cmocka_unit_test(test_pcie_link_flr_acs_sriov),
                cmocka_unit_test(test_af_flr_and_rc_endpoint),
                cmocka_unit_test(test_port_acs_rule),
                cmocka_unit_test(test_unprivileged_view),
                cmocka_unit_test(test_conventional_256),
                cmocka_unit_test(test_truncated_header),
                cmocka_unit_test(test_all_ones),
                cmocka_unit_test(test_capability_loop),
                cmocka_unit_test(test_pointer_into_header),
                cmocka_unit_test(test_ext_loop_and_bad_pointer),
                cmocka_unit_test(test_empty_ext_space),
                cmocka_unit_test(test_reads_only_what_it_needs),
                cmocka_unit_test(test_failed_read_stops_later_reads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
