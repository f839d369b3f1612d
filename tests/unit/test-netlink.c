/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <limits.h>
#include <arpa/inet.h>
#include <net/if_arp.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "iovirt-netlink.h"
#include "iovirt-util.h"

#define assert_contains(s, part)                                                       \
        do {                                                                           \
                const char *s_ = (s);                                                  \
                if (!s_ || !strstr(s_, (part)))                                        \
                        fail_msg("'%s' lacks '%s'", s_ ? s_ : "(null)", (part));       \
        } while (0)

/* ---- user input ---- */

static void assert_mac(const char *s, const uint8_t expected[6]) {
        uint8_t mac[6];
        const char *why = NULL;
        assert_int_equal(iovirt_mac_parse(s, mac, &why), 0);
        assert_null(why);
        assert_memory_equal(mac, expected, 6);
}

static void assert_mac_rejected(const char *s, const char *reason_part) {
        uint8_t mac[6] = { 1, 2, 3, 4, 5, 6 }, before[6] = { 1, 2, 3, 4, 5, 6 };
        const char *why = NULL;
        assert_int_equal(iovirt_mac_parse(s, mac, &why), -EINVAL);
        if (!why || !strstr(why, reason_part))
                fail_msg("'%s': reason '%s' lacks '%s'", s ? s : "(null)", why ? why : "(null)", reason_part);
        assert_memory_equal(mac, before, 6);   /* untouched on failure */
}

static void test_mac_parse(void **state) {
        assert_mac("02:00:00:00:00:01", (const uint8_t[6]) { 0x02, 0, 0, 0, 0, 0x01 });
        assert_mac("52:54:00:Ab:cD:ef", (const uint8_t[6]) { 0x52, 0x54, 0, 0xab, 0xcd, 0xef });
        assert_mac("02-aa-bb-cc-dd-ee", (const uint8_t[6]) { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee });
        assert_mac("00:00:00:00:00:00", (const uint8_t[6]) { 0 });       /* the driver chooses */
        assert_mac("fe:ff:ff:ff:ff:ff", (const uint8_t[6]) { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff });

        assert_mac_rejected(NULL, "empty");
        assert_mac_rejected("", "empty");
        assert_mac_rejected("02:00:00:00:00", "six octets");
        assert_mac_rejected("02:00:00:00:00:", "two hex digits");
        assert_mac_rejected("02:00:00:00:00:01:02", "not more");
        assert_mac_rejected("02:00:00:00:00:011", "unexpected characters");
        assert_mac_rejected("02:00:00:00:00:01 ", "unexpected characters");
        assert_mac_rejected("2:00:00:00:00:01", "two hex digits");
        assert_mac_rejected("02:00:00:00:00:0g", "two hex digits");
        assert_mac_rejected("0200.0000.0001", "separated by ':'");
        assert_mac_rejected("02.00.00.00.00.01", "separated by ':'");
        assert_mac_rejected("02:00-00:00:00:01", "mixed");
        assert_mac_rejected("01:00:5e:00:00:01", "a VF needs a unicast address: the first octet's lowest bit is set");
        assert_mac_rejected("33:33:00:00:00:01", "lowest bit");
        assert_mac_rejected("ff:ff:ff:ff:ff:ff", "broadcast");
        assert_mac_rejected("FF-FF-FF-FF-FF-FF", "unicast");
}

static void assert_vlan(const char *s, unsigned expected) {
        unsigned v = 9999;
        const char *why = NULL;
        assert_int_equal(iovirt_vlan_parse(s, &v, &why), 0);
        assert_null(why);
        assert_int_equal(v, expected);
}

static void assert_vlan_rejected(const char *s, const char *reason_part) {
        unsigned v = 9999;
        const char *why = NULL;
        assert_int_equal(iovirt_vlan_parse(s, &v, &why), -EINVAL);
        if (!why || !strstr(why, reason_part))
                fail_msg("'%s': reason '%s' lacks '%s'", s ? s : "(null)", why ? why : "(null)", reason_part);
        assert_int_equal(v, 9999);
}

static void test_vlan_parse(void **state) {
        assert_vlan("0", 0);
        assert_vlan("1", 1);
        assert_vlan("100", 100);
        assert_vlan("4095", 4095);
        assert_vlan("0042", 42);   /* decimal, whatever the leading zeros */

        assert_vlan_rejected(NULL, "empty");
        assert_vlan_rejected("", "empty");
        assert_vlan_rejected("-1", "negative");
        assert_vlan_rejected("-0", "negative");
        assert_vlan_rejected("4096", "at most 4095");
        assert_vlan_rejected("65536", "at most 4095");
        assert_vlan_rejected("4294967297", "at most 4095");          /* 2^32 + 1 wraps to 1 */
        assert_vlan_rejected("99999999999999999999999999", "at most 4095");
        assert_vlan_rejected("12a", "decimal number");
        assert_vlan_rejected("0x10", "decimal number");
        assert_vlan_rejected("+1", "decimal number");
        assert_vlan_rejected(" 1", "decimal number");
        assert_vlan_rejected("1 ", "decimal number");
        assert_vlan_rejected("1.5", "decimal number");
        assert_vlan_rejected("vlan", "decimal number");
}

static void test_onoff_parse(void **state) {
        static const char *on[] = { "on", "yes", "true", "1", "ON", "Yes", "TRUE" };
        static const char *off[] = { "off", "no", "false", "0", "OFF", "No", "False" };
        static const char *junk[] = { "", "2", "y", "n", "enable", "onn", " on", "on ", "-1", "of" };
        bool b;

        for (size_t i = 0; i < ELEMENTSOF(on); i++) {
                b = false;
                assert_int_equal(iovirt_onoff_parse(on[i], &b), 0);
                assert_true(b);
        }
        for (size_t i = 0; i < ELEMENTSOF(off); i++) {
                b = true;
                assert_int_equal(iovirt_onoff_parse(off[i], &b), 0);
                assert_false(b);
        }
        for (size_t i = 0; i < ELEMENTSOF(junk); i++)
                assert_int_equal(iovirt_onoff_parse(junk[i], &b), -EINVAL);
        assert_int_equal(iovirt_onoff_parse(NULL, &b), -EINVAL);
}

static void test_mac_format(void **state) {
        char buf[IOVIRT_MAC_STRING_MAX];
        assert_string_equal(iovirt_mac_format((const uint8_t[6]) { 0x02, 0xAB, 0, 0xff, 0x10, 1 }, buf),
                            "02:ab:00:ff:10:01");
        assert_string_equal(iovirt_mac_format((const uint8_t[6]) { 0 }, buf), "00:00:00:00:00:00");
        uint8_t back[6];
        assert_int_equal(iovirt_mac_parse(buf, back, NULL), 0);
}

static void test_ifname_check(void **state) {
        const char *why;
        assert_int_equal(iovirt_ifname_check("eth0", NULL), 0);
        assert_int_equal(iovirt_ifname_check("enp94s0f1np1", NULL), 0);
        assert_int_equal(iovirt_ifname_check("abcdefghijklmno", NULL), 0);   /* 15 */

        static const struct {
                const char *name, *why;
        } bad[] = {
                { "", "empty" },
                { "abcdefghijklmnop", "at most 15" },   /* 16 */
                { ".", "not interface names" },
                { "..", "not interface names" },
                { "a/b", "no '/'" },
                { "eth0:1", "no '/', ':'" },
                { "eth 0", "spaces" },
                { "eth\t0", "spaces" },
                { "eth\x01", "control characters" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                why = NULL;
                assert_int_equal(iovirt_ifname_check(bad[i].name, &why), -EINVAL);
                assert_contains(why, bad[i].why);
        }
        assert_int_equal(iovirt_ifname_check(NULL, &why), -EINVAL);
}

/* ---- building requests ---- */

static _Alignas(struct nlmsghdr) uint8_t buf[IOVIRT_NETLINK_REQUEST_MAX];

/* Checks the header and ifinfomsg of a request. */
static void assert_link_request(const struct nlmsghdr *nlh, int len, uint16_t type, uint32_t seq) {
        assert_int_equal(len, nlh->nlmsg_len);
        assert_int_equal(nlh->nlmsg_type, type);
        assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_int_equal(nlh->nlmsg_seq, seq);
        assert_true(mnl_nlmsg_ok(nlh, len));
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        assert_int_equal(ifi->ifi_family, AF_UNSPEC);
        assert_int_equal(ifi->ifi_index, 0);
}

static void test_getlink_build(void **state) {
        int len = iovirt_vf_getlink_build(buf, sizeof(buf), 7, "enp5s0f0");
        assert_true(len > 0);
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) buf;
        assert_link_request(nlh, len, RTM_GETLINK, 7);

        bool name = false, mask = false;
        const struct nlattr *a;
        mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg)) {
                switch (mnl_attr_get_type(a)) {
                case IFLA_IFNAME:
                        assert_int_equal(mnl_attr_validate(a, MNL_TYPE_NUL_STRING), 0);
                        assert_string_equal(mnl_attr_get_str(a), "enp5s0f0");
                        name = true;
                        break;
                case IFLA_EXT_MASK:
                        assert_int_equal(mnl_attr_validate(a, MNL_TYPE_U32), 0);
                        assert_true(mnl_attr_get_u32(a) & RTEXT_FILTER_VF);
                        mask = true;
                        break;
                default:
                        fail_msg("unexpected attribute %u", mnl_attr_get_type(a));
                }
        }
        assert_true(name && mask);

        assert_int_equal(iovirt_vf_getlink_build(buf, sizeof(buf), 7, "bad/name"), -EINVAL);
        assert_int_equal(iovirt_vf_getlink_build(buf, 8, 7, "eth0"), -ENOBUFS);
        assert_int_equal(iovirt_vf_getlink_build(buf, (size_t) len - 1, 7, "enp5s0f0"), -ENOBUFS);
        assert_int_equal(iovirt_vf_getlink_build(buf, (size_t) len, 7, "enp5s0f0"), len);
}

/* Walks a SETLINK request: the one IFLA_VF_INFO's attributes into tb. */
static void walk_setlink(int len, unsigned vf, const struct nlattr *tb[IFLA_VF_MAX + 1], unsigned *n_attrs) {
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) buf;
        const struct nlattr *a, *b, *c;
        unsigned lists = 0, infos = 0;

        assert_link_request(nlh, len, RTM_SETLINK, 42);
        *n_attrs = 0;
        mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg)) {
                if (mnl_attr_get_type(a) == IFLA_IFNAME) {
                        assert_string_equal(mnl_attr_get_str(a), "eth3");
                        continue;
                }
                assert_int_equal(mnl_attr_get_type(a), IFLA_VFINFO_LIST);
                assert_int_equal(mnl_attr_validate(a, MNL_TYPE_NESTED), 0);
                lists++;
                mnl_attr_for_each_nested(b, a) {
                        assert_int_equal(mnl_attr_get_type(b), IFLA_VF_INFO);
                        infos++;
                        mnl_attr_for_each_nested(c, b) {
                                assert_true(mnl_attr_get_type(c) <= IFLA_VF_MAX);
                                assert_null(tb[mnl_attr_get_type(c)]);
                                tb[mnl_attr_get_type(c)] = c;
                                (*n_attrs)++;
                                /* every VF struct starts with the VF number */
                                assert_true(mnl_attr_get_payload_len(c) >= sizeof(uint32_t));
                                uint32_t n;
                                memcpy(&n, mnl_attr_get_payload(c), sizeof(n));
                                assert_int_equal(n, vf);
                        }
                }
        }
        assert_int_equal(lists, 1);
        assert_int_equal(infos, 1);
}

static void test_setlink_build(void **state) {
        const struct nlattr *tb[IFLA_VF_MAX + 1] = {};
        unsigned n;
        IovirtVfSettings s = {
                .set_mac = true, .mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 },
                .set_vlan = true, .vlan = 100,
                .set_spoofchk = true, .spoofchk = true,
                .set_trust = true, .trust = false,
        };

        int len = iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", 5, &s);
        assert_true(len > 0);
        walk_setlink(len, 5, tb, &n);
        assert_int_equal(n, 4);

        struct ifla_vf_mac ivm;
        assert_int_equal(mnl_attr_get_payload_len(tb[IFLA_VF_MAC]), sizeof(ivm));
        memcpy(&ivm, mnl_attr_get_payload(tb[IFLA_VF_MAC]), sizeof(ivm));
        assert_memory_equal(ivm.mac, s.mac, 6);
        for (size_t i = 6; i < sizeof(ivm.mac); i++)
                assert_int_equal(ivm.mac[i], 0);

        struct ifla_vf_vlan ivv;
        assert_int_equal(mnl_attr_get_payload_len(tb[IFLA_VF_VLAN]), sizeof(ivv));
        memcpy(&ivv, mnl_attr_get_payload(tb[IFLA_VF_VLAN]), sizeof(ivv));
        assert_int_equal(ivv.vlan, 100);
        assert_int_equal(ivv.qos, 0);

        struct ifla_vf_spoofchk ivs;
        assert_int_equal(mnl_attr_get_payload_len(tb[IFLA_VF_SPOOFCHK]), sizeof(ivs));
        memcpy(&ivs, mnl_attr_get_payload(tb[IFLA_VF_SPOOFCHK]), sizeof(ivs));
        assert_int_equal(ivs.setting, 1);

        struct ifla_vf_trust ivt;
        assert_int_equal(mnl_attr_get_payload_len(tb[IFLA_VF_TRUST]), sizeof(ivt));
        memcpy(&ivt, mnl_attr_get_payload(tb[IFLA_VF_TRUST]), sizeof(ivt));
        assert_int_equal(ivt.setting, 0);

        /* only what is set */
        IovirtVfSettings one = { .set_spoofchk = true, .spoofchk = false };
        memset(tb, 0, sizeof(tb));
        len = iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", 0, &one);
        assert_true(len > 0);
        walk_setlink(len, 0, tb, &n);
        assert_int_equal(n, 1);
        assert_non_null(tb[IFLA_VF_SPOOFCHK]);
        memcpy(&ivs, mnl_attr_get_payload(tb[IFLA_VF_SPOOFCHK]), sizeof(ivs));
        assert_int_equal(ivs.setting, 0);

        /* VLAN 0 removes the VLAN; an all-zero MAC lets the driver choose */
        IovirtVfSettings clear = { .set_mac = true, .set_vlan = true, .vlan = 0 };
        memset(tb, 0, sizeof(tb));
        len = iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", INT_MAX - 1, &clear);
        assert_true(len > 0);
        walk_setlink(len, INT_MAX - 1, tb, &n);
        assert_int_equal(n, 2);

        /* refused */
        IovirtVfSettings none = {}, multicast = { .set_mac = true, .mac = { 0x01 } },
                         vlan = { .set_vlan = true, .vlan = 4096 };
        assert_int_equal(iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", 0, &none), -EINVAL);
        assert_int_equal(iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", 0, &multicast), -EINVAL);
        assert_int_equal(iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", 0, &vlan), -EINVAL);
        assert_int_equal(iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", INT_MAX, &s), -EINVAL);
        assert_int_equal(iovirt_vf_setlink_build(buf, sizeof(buf), 42, "", 0, &s), -EINVAL);
        /* every buffer too small by a byte or more */
        len = iovirt_vf_setlink_build(buf, sizeof(buf), 42, "eth3", 5, &s);
        for (size_t size = 0; size < (size_t) len; size++)
                assert_int_equal(iovirt_vf_setlink_build(buf, size, 42, "eth3", 5, &s), -ENOBUFS);

        const char *why = NULL;
        assert_int_equal(iovirt_vf_settings_check(&multicast, &why), -EINVAL);
        assert_contains(why, "unicast");
        assert_int_equal(iovirt_vf_settings_check(&vlan, &why), -EINVAL);
        assert_contains(why, "4095");
        assert_int_equal(iovirt_vf_settings_check(&s, NULL), 0);
}

/* ---- parsing RTM_NEWLINK ---- */

static _Alignas(struct nlmsghdr) uint8_t msg[4096];

static struct nlmsghdr *newlink(unsigned short type) {
        memset(msg, 0, sizeof(msg));
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(msg);
        nlh->nlmsg_type = RTM_NEWLINK;
        nlh->nlmsg_seq = 42;
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
        ifi->ifi_type = type;
        ifi->ifi_index = 4;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, "eth3");
        mnl_attr_put_u32(nlh, IFLA_MTU, 1500);
        return nlh;
}

typedef struct TestVf {
        uint32_t vf;
        uint8_t mac[6];
        uint32_t vlan, qos;
        uint32_t spoofchk, trust, link_state;
        bool no_trust;
} TestVf;

/* One IFLA_VF_INFO as rtnl_fill_vfinfo() writes it, with the attributes
 * iovirt does not read among those it does. */
static void put_vf(struct nlmsghdr *nlh, const TestVf *t) {
        struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        struct ifla_vf_mac ivm = { .vf = t->vf };
        memcpy(ivm.mac, t->mac, 6);
        mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(ivm), &ivm);
        struct ifla_vf_broadcast ivb;
        memset(ivb.broadcast, 0xff, sizeof(ivb.broadcast));
        mnl_attr_put(nlh, IFLA_VF_BROADCAST, sizeof(ivb), &ivb);
        struct ifla_vf_vlan ivv = { .vf = t->vf, .vlan = t->vlan, .qos = t->qos };
        mnl_attr_put(nlh, IFLA_VF_VLAN, sizeof(ivv), &ivv);
        struct ifla_vf_rate ivr = { .vf = t->vf, .max_tx_rate = 1000 };
        mnl_attr_put(nlh, IFLA_VF_RATE, sizeof(ivr), &ivr);
        struct ifla_vf_spoofchk ivs = { .vf = t->vf, .setting = t->spoofchk };
        mnl_attr_put(nlh, IFLA_VF_SPOOFCHK, sizeof(ivs), &ivs);
        struct ifla_vf_link_state ivl = { .vf = t->vf, .link_state = t->link_state };
        mnl_attr_put(nlh, IFLA_VF_LINK_STATE, sizeof(ivl), &ivl);
        if (!t->no_trust) {
                struct ifla_vf_trust ivt = { .vf = t->vf, .setting = t->trust };
                mnl_attr_put(nlh, IFLA_VF_TRUST, sizeof(ivt), &ivt);
        }
        struct nlattr *vlans = mnl_attr_nest_start(nlh, IFLA_VF_VLAN_LIST);
        struct ifla_vf_vlan_info ivvi = { .vf = t->vf, .vlan = t->vlan, .qos = t->qos, .vlan_proto = htons(0x8100) };
        mnl_attr_put(nlh, IFLA_VF_VLAN_INFO, sizeof(ivvi), &ivvi);
        mnl_attr_nest_end(nlh, vlans);
        mnl_attr_nest_end(nlh, info);
}

static const TestVf vf0 = {
        .vf = 0, .mac = { 0x02, 0, 0, 0, 0, 0x10 }, .vlan = 100, .qos = 3,
        .spoofchk = 1, .trust = 0, .link_state = IFLA_VF_LINK_STATE_ENABLE,
};
static const TestVf vf1 = {
        .vf = 1, .vlan = 0, .spoofchk = UINT32_MAX /* the driver did not say */,
        .link_state = IFLA_VF_LINK_STATE_AUTO, .no_trust = true,
};

static void test_info_parse(void **state) {
        struct nlmsghdr *nlh = newlink(ARPHRD_ETHER);
        mnl_attr_put_u32(nlh, IFLA_NUM_VF, 2);
        struct nlattr *list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        put_vf(nlh, &vf0);
        put_vf(nlh, &vf1);
        mnl_attr_nest_end(nlh, list);
        mnl_attr_put_u32(nlh, IFLA_GROUP, 0);

        _cleanup_free_ IovirtVfInfo *vfs = NULL;
        size_t n = 0;
        const char *why = NULL;
        assert_int_equal(iovirt_vf_info_parse(nlh, &vfs, &n, &why), 2);
        assert_null(why);
        assert_int_equal(n, 2);

        assert_int_equal(vfs[0].index, 0);
        assert_memory_equal(vfs[0].mac, vf0.mac, 6);
        assert_int_equal(vfs[0].vlan, 100);
        assert_int_equal(vfs[0].qos, 3);
        assert_int_equal(vfs[0].spoofchk, 1);
        assert_int_equal(vfs[0].trust, 0);
        assert_int_equal(vfs[0].link_state, IFLA_VF_LINK_STATE_ENABLE);

        assert_int_equal(vfs[1].index, 1);
        assert_memory_equal(vfs[1].mac, (const uint8_t[6]) { 0 }, 6);
        assert_int_equal(vfs[1].vlan, 0);
        assert_int_equal(vfs[1].spoofchk, -1);   /* (u32) -1 from the kernel */
        assert_int_equal(vfs[1].trust, -1);      /* absent */
        assert_int_equal(vfs[1].link_state, IFLA_VF_LINK_STATE_AUTO);
}

static void test_info_parse_gaps_and_empty(void **state) {
        /* a VF whose ndo_get_vf_config failed is left out by the kernel */
        struct nlmsghdr *nlh = newlink(ARPHRD_ETHER);
        mnl_attr_put_u32(nlh, IFLA_NUM_VF, 8);
        struct nlattr *list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        TestVf v7 = vf0;
        v7.vf = 7;
        v7.link_state = 17;   /* not a state iovirt knows */
        put_vf(nlh, &v7);
        mnl_attr_nest_end(nlh, list);

        _cleanup_free_ IovirtVfInfo *vfs = NULL;
        size_t n = 0;
        assert_int_equal(iovirt_vf_info_parse(nlh, &vfs, &n, NULL), 1);
        assert_int_equal(vfs[0].index, 7);
        assert_int_equal(vfs[0].link_state, -1);
        vfs = mfree(vfs);

        /* SR-IOV capable, no VFs enabled: an empty list */
        nlh = newlink(ARPHRD_ETHER);
        mnl_attr_put_u32(nlh, IFLA_NUM_VF, 0);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        mnl_attr_nest_end(nlh, list);
        n = 99;
        assert_int_equal(iovirt_vf_info_parse(nlh, &vfs, &n, NULL), 0);
        assert_null(vfs);
        assert_int_equal(n, 0);
}

static void assert_parse_fails(const struct nlmsghdr *nlh, int error, const char *reason_part) {
        IovirtVfInfo *vfs = (IovirtVfInfo *) 0x1;   /* must not be touched */
        size_t n = 99;
        const char *why = NULL;
        assert_int_equal(iovirt_vf_info_parse(nlh, &vfs, &n, &why), error);
        assert_contains(why, reason_part);
        assert_ptr_equal(vfs, (IovirtVfInfo *) 0x1);
        assert_int_equal(n, 99);
}

static void test_info_parse_refusals(void **state) {
        struct nlmsghdr *nlh;
        struct nlattr *list, *info;

        /* lo, virtual devices: no parent, so neither IFLA_NUM_VF nor a list */
        nlh = newlink(ARPHRD_LOOPBACK);
        assert_parse_fails(nlh, -EOPNOTSUPP, "no parent device");

        /* a parent device, a driver without ndo_get_vf_config */
        nlh = newlink(ARPHRD_ETHER);
        mnl_attr_put_u32(nlh, IFLA_NUM_VF, 0);
        assert_parse_fails(nlh, -EOPNOTSUPP, "ndo_get_vf_config");

        /* an InfiniBand PF: its VF MACs are not 6 bytes */
        nlh = newlink(ARPHRD_INFINIBAND);
        mnl_attr_put_u32(nlh, IFLA_NUM_VF, 1);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        put_vf(nlh, &vf0);
        mnl_attr_nest_end(nlh, list);
        assert_parse_fails(nlh, -EOPNOTSUPP, "not an Ethernet interface");

        /* not RTM_NEWLINK; too short for an ifinfomsg */
        nlh = newlink(ARPHRD_ETHER);
        nlh->nlmsg_type = RTM_NEWADDR;
        assert_parse_fails(nlh, -EBADMSG, "RTM_NEWLINK");
        nlh = newlink(ARPHRD_ETHER);
        nlh->nlmsg_len = MNL_NLMSG_HDRLEN + 8;
        assert_parse_fails(nlh, -EBADMSG, "RTM_NEWLINK");

        /* a VF without IFLA_VF_MAC */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        struct ifla_vf_trust ivt = { .vf = 0, .setting = 1 };
        mnl_attr_put(nlh, IFLA_VF_TRUST, sizeof(ivt), &ivt);
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        assert_parse_fails(nlh, -EBADMSG, "no IFLA_VF_MAC");

        /* a short IFLA_VF_MAC */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        uint8_t shortmac[10] = {};
        mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(shortmac), shortmac);
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        assert_parse_fails(nlh, -EBADMSG, "too short");

        /* a short IFLA_VF_TRUST */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        struct ifla_vf_mac ivm = { .vf = 0 };
        mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(ivm), &ivm);
        mnl_attr_put_u32(nlh, IFLA_VF_TRUST, 0);
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        assert_parse_fails(nlh, -EBADMSG, "IFLA_VF_TRUST is too short");

        /* attributes of one VF naming another */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(ivm), &ivm);
        ivt.vf = 1;
        mnl_attr_put(nlh, IFLA_VF_TRUST, sizeof(ivt), &ivt);
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        assert_parse_fails(nlh, -EBADMSG, "different VF numbers");

        /* the same VF twice */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        put_vf(nlh, &vf1);
        put_vf(nlh, &vf0);
        put_vf(nlh, &vf1);
        mnl_attr_nest_end(nlh, list);
        assert_parse_fails(nlh, -EBADMSG, "twice");

        /* an attribute inside a VF that claims more than the VF holds */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        struct nlattr *mac = mnl_nlmsg_get_payload_tail(nlh);
        mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(ivm), &ivm);
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        mac->nla_len += 8;
        assert_parse_fails(nlh, -EBADMSG, "runs past the VF's entry");

        /* the list claims more than the message holds */
        nlh = newlink(ARPHRD_ETHER);
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        put_vf(nlh, &vf0);
        mnl_attr_nest_end(nlh, list);
        list->nla_len += 4;
        assert_parse_fails(nlh, -EBADMSG, "past the end of the message");

        /* a message cut inside an attribute header */
        nlh = newlink(ARPHRD_ETHER);
        nlh->nlmsg_len -= 2;
        assert_parse_fails(nlh, -EBADMSG, "past the end of the message");
}

/* ---- walking replies ---- */

static _Alignas(struct nlmsghdr) uint8_t dgram[4096];
static size_t dgram_len;

static struct nlmsghdr *dgram_put(uint16_t type, uint16_t flags, uint32_t seq, uint32_t portid) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(dgram + dgram_len);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = flags;
        nlh->nlmsg_seq = seq;
        nlh->nlmsg_pid = portid;
        return nlh;
}

static void dgram_end(struct nlmsghdr *nlh) {
        dgram_len += MNL_ALIGN(nlh->nlmsg_len);
}

static void put_error(int error, uint16_t flags, const char *message, const struct nlmsghdr *request) {
        struct nlmsghdr *nlh = dgram_put(NLMSG_ERROR, flags, 42, 1234);
        struct nlmsgerr *e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
        e->error = error;
        if (request) {
                /* not capped: the whole request follows */
                e->msg = *request;
                void *rest = mnl_nlmsg_put_extra_header(nlh, request->nlmsg_len - NLMSG_HDRLEN);
                memcpy(rest, (const uint8_t *) request + NLMSG_HDRLEN, request->nlmsg_len - NLMSG_HDRLEN);
        } else
                e->msg = (struct nlmsghdr) { .nlmsg_len = NLMSG_HDRLEN + 64, .nlmsg_type = RTM_SETLINK, .nlmsg_seq = 42 };
        if (message) {
                mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, message);
                mnl_attr_put_u32(nlh, NLMSGERR_ATTR_OFFS, 20);
        }
        dgram_end(nlh);
}

typedef struct Seen {
        unsigned links;
        uint32_t last_seq;
} Seen;

static int count_links(const struct nlmsghdr *nlh, void *userdata) {
        Seen *s = userdata;
        assert_int_equal(nlh->nlmsg_type, RTM_NEWLINK);
        s->links++;
        s->last_seq = nlh->nlmsg_seq;
        return 0;
}

static void test_reply_ack(void **state) {
        Seen seen = {};
        IovirtNetlinkReply r = { .seq = 42, .portid = 1234, .handler = count_links, .userdata = &seen };
        struct nlmsghdr *nlh;

        dgram_len = 0;
        dgram_end(dgram_put(RTM_NEWLINK, 0, 41, 1234));   /* an earlier request's */
        dgram_end(dgram_put(RTM_NEWLINK, 0, 42, 999));    /* another socket's */
        dgram_end(dgram_put(NLMSG_NOOP, 0, 42, 1234));
        nlh = dgram_put(RTM_NEWLINK, 0, 42, 1234);
        mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
        dgram_end(nlh);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_false(r.done);
        assert_int_equal(seen.links, 1);
        assert_int_equal(seen.last_seq, 42);

        /* the ack, then anything after it is not looked at */
        dgram_len = 0;
        put_error(0, NLM_F_CAPPED, NULL, NULL);
        dgram_end(dgram_put(RTM_NEWLINK, 0, 42, 1234));
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_true(r.done);
        assert_int_equal(r.error, 0);
        assert_null(r.message);
        assert_int_equal(seen.links, 1);
        iovirt_netlink_reply_clear(&r);
}

static void test_reply_multipart(void **state) {
        Seen seen = {};
        IovirtNetlinkReply r = { .seq = 42, .portid = 1234, .handler = count_links, .userdata = &seen };

        dgram_len = 0;
        dgram_end(dgram_put(RTM_NEWLINK, NLM_F_MULTI, 42, 1234));
        dgram_end(dgram_put(RTM_NEWLINK, NLM_F_MULTI, 42, 1234));
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_false(r.done);
        dgram_len = 0;
        dgram_end(dgram_put(RTM_NEWLINK, NLM_F_MULTI, 42, 1234));
        struct nlmsghdr *done = dgram_put(NLMSG_DONE, NLM_F_MULTI, 42, 1234);
        *(int *) mnl_nlmsg_put_extra_header(done, sizeof(int)) = 0;
        dgram_end(done);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_true(r.done);
        assert_int_equal(r.error, 0);
        assert_int_equal(seen.links, 3);

        /* a dump that fails says so in NLMSG_DONE */
        r = (IovirtNetlinkReply) { .seq = 42, .portid = 1234 };
        dgram_len = 0;
        done = dgram_put(NLMSG_DONE, NLM_F_MULTI, 42, 1234);
        *(int *) mnl_nlmsg_put_extra_header(done, sizeof(int)) = -EMSGSIZE;
        dgram_end(done);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_true(r.done);
        assert_int_equal(r.error, -EMSGSIZE);
}

static void test_reply_errors(void **state) {
        IovirtNetlinkReply r = { .seq = 42, .portid = 1234 };

        /* capped, with the kernel's message */
        dgram_len = 0;
        put_error(-EINVAL, NLM_F_CAPPED | NLM_F_ACK_TLVS, "VF 9 out of range", NULL);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_true(r.done);
        assert_int_equal(r.error, -EINVAL);
        assert_string_equal(r.message, "VF 9 out of range");
        iovirt_netlink_reply_clear(&r);
        assert_null(r.message);

        /* not capped: the request is echoed before the message */
        int len = iovirt_vf_getlink_build(buf, sizeof(buf), 42, "enp5s0f0");
        assert_true(len > 0);
        r = (IovirtNetlinkReply) { .seq = 42, .portid = 1234 };
        dgram_len = 0;
        put_error(-ENODEV, NLM_F_ACK_TLVS, "Unknown\x1b[31m device", (const struct nlmsghdr *) buf);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_int_equal(r.error, -ENODEV);
        assert_string_equal(r.message, "Unknown?[31m device");   /* no control characters */
        iovirt_netlink_reply_clear(&r);

        /* no extended ack: the error alone */
        r = (IovirtNetlinkReply) { .seq = 42, .portid = 1234 };
        dgram_len = 0;
        put_error(-EOPNOTSUPP, NLM_F_CAPPED, NULL, NULL);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_int_equal(r.error, -EOPNOTSUPP);
        assert_null(r.message);

        /* an extended ack whose message is not NUL-terminated loses the message only */
        r = (IovirtNetlinkReply) { .seq = 42, .portid = 1234 };
        dgram_len = 0;
        struct nlmsghdr *nlh = dgram_put(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 42, 1234);
        struct nlmsgerr *e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
        e->error = -EINVAL;
        e->msg = (struct nlmsghdr) { .nlmsg_len = NLMSG_HDRLEN };
        mnl_attr_put(nlh, NLMSGERR_ATTR_MSG, 4, "abcd");
        dgram_end(nlh);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), 0);
        assert_int_equal(r.error, -EINVAL);
        assert_null(r.message);

        /* an error that is not an errno; an NLMSG_ERROR too short for one */
        r = (IovirtNetlinkReply) { .seq = 42, .portid = 1234 };
        dgram_len = 0;
        put_error(5, NLM_F_CAPPED, NULL, NULL);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), -EBADMSG);
        assert_false(r.done);
        dgram_len = 0;
        nlh = dgram_put(NLMSG_ERROR, 0, 42, 1234);
        mnl_nlmsg_put_extra_header(nlh, 2);
        dgram_end(nlh);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), -EBADMSG);

        /* lost messages */
        dgram_len = 0;
        dgram_end(dgram_put(NLMSG_OVERRUN, 0, 42, 1234));
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), -ENOBUFS);
}

static int refuse(const struct nlmsghdr *nlh, void *userdata) {
        return -ENOTRECOVERABLE;
}

static void test_reply_malformed(void **state) {
        IovirtNetlinkReply r = { .seq = 42, .portid = 1234 };

        /* a message longer than the datagram */
        dgram_len = 0;
        struct nlmsghdr *nlh = dgram_put(RTM_NEWLINK, 0, 42, 1234);
        mnl_nlmsg_put_extra_header(nlh, 16);
        dgram_end(nlh);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len - 4), -EBADMSG);
        /* a header cut short; a length shorter than a header */
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, 8), -EBADMSG);
        nlh->nlmsg_len = 8;
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), -EBADMSG);

        /* even skipped messages must fit */
        dgram_len = 0;
        nlh = dgram_put(RTM_NEWLINK, 0, 41, 1234);
        dgram_end(nlh);
        nlh->nlmsg_len = 4000;
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), -EBADMSG);

        /* the handler's error stops the walk */
        r = (IovirtNetlinkReply) { .seq = 42, .portid = 1234, .handler = refuse };
        dgram_len = 0;
        dgram_end(dgram_put(RTM_NEWLINK, 0, 42, 1234));
        put_error(0, NLM_F_CAPPED, NULL, NULL);
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, dgram_len), -ENOTRECOVERABLE);
        assert_false(r.done);

        /* an empty datagram is nothing */
        assert_int_equal(iovirt_netlink_reply_feed(&r, dgram, 0), 0);
        assert_false(r.done);
}

/* ---- the kernel, in this process's network namespace ---- */

static void test_kernel_loopback(void **state) {
        IovirtVfInfo *vfs = NULL;
        size_t n = 0;
        _cleanup_free_ char *why = NULL;

        /* lo has no parent device: rtnl_fill_vf() puts neither IFLA_NUM_VF
         * nor IFLA_VFINFO_LIST, whatever IFLA_EXT_MASK asks for */
        assert_int_equal(iovirt_vf_info_read("lo", &vfs, &n, &why), -EOPNOTSUPP);
        assert_null(vfs);
        assert_contains(why, "lo reports no VF list");
        assert_contains(why, "no parent device");
}

static void test_kernel_no_such_interface(void **state) {
        IovirtVfInfo *vfs = NULL;
        size_t n = 0;
        _cleanup_free_ char *why = NULL;

        assert_int_equal(iovirt_vf_info_read("no-such-if0", &vfs, &n, &why), -ENODEV);
        assert_null(vfs);
        assert_contains(why, "No network interface no-such-if0 in this network namespace");

        why = mfree(why);
        assert_int_equal(iovirt_vf_info_read("no/such", &vfs, &n, &why), -EINVAL);
        assert_contains(why, "Not a valid interface name");
        why = mfree(why);
        assert_int_equal(iovirt_vf_info_read("abcdefghijklmnopq", &vfs, &n, &why), -EINVAL);
        assert_contains(why, "at most 15");
}

static void test_kernel_configure(void **state) {
        _cleanup_free_ char *why = NULL;
        IovirtVfSettings mac = { .set_mac = true, .mac = { 0x02, 0, 0, 0, 0, 1 } };
        IovirtVfSettings trust = { .set_trust = true, .trust = true };

        /* Without CAP_NET_ADMIN the kernel refuses before looking anything
         * up; with it, the answer is the missing interface or ndo. */
        int r = iovirt_vf_configure("no-such-if0", 0, &trust, &why);
        if (r == -EPERM)
                assert_contains(why, "needs CAP_NET_ADMIN");
        else {
                assert_int_equal(r, -ENODEV);
                assert_contains(why, "No network interface no-such-if0");
        }
        why = mfree(why);

        r = iovirt_vf_configure("lo", 0, &mac, &why);
        if (r == -EPERM)
                assert_contains(why, "needs CAP_NET_ADMIN");
        else {
                assert_int_equal(r, -EOPNOTSUPP);
                assert_contains(why, "The driver of lo cannot set a VF's MAC address (ndo_set_vf_mac)");
        }
        why = mfree(why);

        /* refused before asking */
        IovirtVfSettings bad = { .set_vlan = true, .vlan = 5000 };
        assert_int_equal(iovirt_vf_configure("lo", 0, &bad, &why), -EINVAL);
        assert_contains(why, "at most 4095");
        why = mfree(why);
        assert_int_equal(iovirt_vf_configure("lo", INT_MAX, &mac, &why), -EINVAL);
        assert_contains(why, "out of range");
        why = mfree(why);
        IovirtVfSettings nothing = {};
        assert_int_equal(iovirt_vf_configure("no-such-if0", 0, &nothing, &why), 0);
        assert_null(why);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mac_parse),
                cmocka_unit_test(test_vlan_parse),
                cmocka_unit_test(test_onoff_parse),
                cmocka_unit_test(test_mac_format),
                cmocka_unit_test(test_ifname_check),
                cmocka_unit_test(test_getlink_build),
                cmocka_unit_test(test_setlink_build),
                cmocka_unit_test(test_info_parse),
                cmocka_unit_test(test_info_parse_gaps_and_empty),
                cmocka_unit_test(test_info_parse_refusals),
                cmocka_unit_test(test_reply_ack),
                cmocka_unit_test(test_reply_multipart),
                cmocka_unit_test(test_reply_errors),
                cmocka_unit_test(test_reply_malformed),
                cmocka_unit_test(test_kernel_loopback),
                cmocka_unit_test(test_kernel_no_such_interface),
                cmocka_unit_test(test_kernel_configure),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
