/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model-builder.h"

/* What the words promise, for every group of a computed model: isolated is
 * one endpoint with no peers, shared several with no peers, leaky comes with
 * peers, bridges is exactly a group without an endpoint, unknown names what
 * could not be read. */
static void assert_invariants(const IovirtHost *h, const IovirtVerdicts *v) {
        assert_int_equal(v->n_groups, h->n_groups);
        for (size_t i = 0; i < v->n_groups; i++) {
                const IovirtGroupVerdict *g = &v->groups[i];
                assert_int_equal(g->n_endpoints + g->n_bridges, h->groups[i].n_members);
                assert_true((g->isolation == IOVIRT_BRIDGES) == (g->n_endpoints == 0));
                switch (g->isolation) {
                case IOVIRT_ISOLATED:
                        assert_int_equal(g->n_endpoints, 1);
                        assert_int_equal(g->n_peers, 0);
                        assert_int_equal(g->unknown_device, IOVIRT_NONE);
                        break;
                case IOVIRT_SHARED:
                        assert_true(g->n_endpoints > 1);
                        assert_int_equal(g->n_peers, 0);
                        assert_int_equal(g->unknown_device, IOVIRT_NONE);
                        break;
                case IOVIRT_LEAKY:
                        assert_true(g->n_endpoints > 0);
                        assert_true(g->n_peers > 0);
                        assert_int_equal(g->unknown_device, IOVIRT_NONE);
                        break;
                case IOVIRT_BRIDGES:
                        break;
                case IOVIRT_ISOLATION_UNKNOWN:
                        assert_true(g->unknown_device != IOVIRT_NONE);
                        break;
                default:
                        fail_msg("group %d: no such verdict %d", h->groups[i].number, g->isolation);
                }
        }
}

#define RUN_CHECKED(specs, h, v) \
        RUN(specs, h, v);        \
        assert_invariants(h, v)

static void test_isolated_behind_acs_root_port(void **state) {
        static const Spec s[] = {
                { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, false, "e1000e" },
                { "00:02.0", NULL, 3, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "02:00.0", "00:02.0", 4, ENDPOINT, NO_ACS, false, "nvme" },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 2);
        assert_int_equal(g->isolation, IOVIRT_ISOLATED);
        assert_int_equal(g->n_peers, 0);
        assert_addresses(h, g->endpoints, g->n_endpoints, "0000:01:00.0");
        assert_addresses(h, g->host_bound, g->n_host_bound, "0000:01:00.0");
        assert_int_equal(verdict(h, v, 4)->isolation, IOVIRT_ISOLATED);
        /* the host bridge and the root ports hand nothing out: never "isolated" */
        assert_int_equal(verdict(h, v, 0)->isolation, IOVIRT_BRIDGES);
        assert_int_equal(verdict(h, v, 1)->isolation, IOVIRT_BRIDGES);
        assert_int_equal(verdict(h, v, 3)->isolation, IOVIRT_BRIDGES);
        assert_addresses(h, verdict(h, v, 1)->bridges, verdict(h, v, 1)->n_bridges, "0000:00:01.0");
        assert_int_equal(verdict(h, v, 1)->n_endpoints, 0);
}

static void test_multifunction_without_acs_is_shared(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, true, "nouveau" },
                { "01:00.1", "00:01.0", 2, ENDPOINT, NO_ACS, true, "vfio-pci" },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 2);
        assert_int_equal(g->isolation, IOVIRT_SHARED);
        assert_int_equal(g->n_peers, 0);
        assert_addresses(h, g->endpoints, g->n_endpoints, "0000:01:00.0 0000:01:00.1");
        /* vfio-pci is not a host driver */
        assert_addresses(h, g->host_bound, g->n_host_bound, "0000:01:00.0");
        assert_true(g->n_causes >= 1);
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_MULTIFUNCTION);
}

static void test_multifunction_split_without_acs_is_leaky(void **state) {
        /* pcie_acs_override=multifunction: the kernel split them */
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, true, "igb" },
                { "01:00.1", "00:01.0", 3, ENDPOINT, NO_ACS, true, "igb" },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 2);
        assert_int_equal(g->isolation, IOVIRT_LEAKY);
        assert_addresses(h, g->peers, g->n_peers, "0000:01:00.1");
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_MULTIFUNCTION);
}

static void test_multifunction_with_acs_is_isolated(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED, true, "i40e" },
                { "01:00.1", "00:01.0", 3, ENDPOINT, PCI_ACS_CTRL_REQ_RED | PCI_ACS_CTRL_CMPLT_RED, true, "i40e" },
        };
        static const Spec t[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                /* capable of RR and CR but only RR enabled: not enough */
                { "01:00.0", "00:01.0", 2, ENDPOINT, PCI_ACS_CTRL_REQ_RED, true, "i40e" },
                { "01:00.1", "00:01.0", 3, ENDPOINT, PCI_ACS_CTRL_REQ_RED, true, "i40e" },
        };
        {
                RUN_CHECKED(s, h, v);
                assert_int_equal(verdict(h, v, 2)->isolation, IOVIRT_ISOLATED);
                assert_int_equal(verdict(h, v, 3)->isolation, IOVIRT_ISOLATED);
        }
        {
                RUN_CHECKED(t, h, v);
                assert_int_equal(verdict(h, v, 2)->isolation, IOVIRT_LEAKY);
        }
}

static void test_switch_without_acs_is_leaky(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, UPSTREAM, NO_ACS, false, "pcieport" },
                { "02:01.0", "01:00.0", 3, DOWNSTREAM, NO_ACS, false, "pcieport" },
                { "02:02.0", "01:00.0", 4, DOWNSTREAM, ACS_OK & ~PCI_ACS_CTRL_FORWARD, false, "pcieport" },
                { "03:00.0", "02:01.0", 3, ENDPOINT, NO_ACS, false, "e1000e" },
                { "04:00.0", "02:02.0", 4, ENDPOINT, NO_ACS, false, "nvme" },
                { "00:1c.0", NULL, 5, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "05:00.0", "00:1c.0", 6, ENDPOINT, NO_ACS, false, "igb" },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 3);
        assert_int_equal(g->isolation, IOVIRT_LEAKY);
        assert_addresses(h, g->peers, g->n_peers, "0000:04:00.0");
        assert_addresses(h, g->endpoints, g->n_endpoints, "0000:03:00.0");
        assert_addresses(h, g->bridges, g->n_bridges, "0000:02:01.0");
        /* both ports are named, each with what it lacks */
        assert_int_equal(g->n_causes, 2);
        assert_string_equal(h->devices[g->causes[0].device].name, "0000:02:01.0");
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_PORT_WITHOUT_ACS);
        assert_string_equal(h->devices[g->causes[1].device].name, "0000:02:02.0");
        assert_int_equal(g->causes[1].kind, IOVIRT_CAUSE_PORT_ACS_DISABLED);
        assert_int_equal(g->causes[1].missing, PCI_ACS_CTRL_FORWARD);
        assert_int_equal(verdict(h, v, 4)->isolation, IOVIRT_LEAKY);
        /* the other root port is not affected */
        assert_int_equal(verdict(h, v, 6)->isolation, IOVIRT_ISOLATED);
        /* the upstream port hands nothing out, but what reaches it from
         * below is still said: never under a word that says it is safe */
        g = verdict(h, v, 2);
        assert_int_equal(g->isolation, IOVIRT_BRIDGES);
        assert_addresses(h, g->peers, g->n_peers, "0000:03:00.0 0000:04:00.0");
        assert_addresses(h, g->bridges, g->n_bridges, "0000:01:00.0");
        assert_int_equal(g->n_causes, 2);
}

static void test_root_ports_without_acs_leak_across_root_bus(void **state) {
        static const Spec s[] = {
                { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
                { "00:1c.0", NULL, 1, ROOT_PORT, NO_ACS, false, "pcieport" },
                { "00:1c.1", NULL, 2, ROOT_PORT, NO_ACS, false, "pcieport" },
                { "01:00.0", "00:1c.0", 3, ENDPOINT, NO_ACS, false, "igb" },
                { "02:00.0", "00:1c.1", 4, ENDPOINT, NO_ACS, false, "xhci_hcd" },
                { "80:01.0", NULL, 5, ROOT_PORT, ACS_OK, false, "pcieport" },   /* another root bus */
                { "81:00.0", "80:01.0", 6, ENDPOINT, NO_ACS, false, "nvme" },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 3);
        assert_int_equal(g->isolation, IOVIRT_LEAKY);
        assert_addresses(h, g->peers, g->n_peers, "0000:02:00.0");   /* not the host bridge */
        assert_int_equal(verdict(h, v, 6)->isolation, IOVIRT_ISOLATED);
}

static void test_conventional_bridge(void **state) {
        static const Spec whole[] = {
                { "00:1c.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:1c.0", 2, PCI_BRIDGE, NO_ACS, false, NULL },
                { "02:04.0", "01:00.0", 2, CONVENTIONAL, NO_ACS, false, "snd_emu10k1" },
                { "02:05.0", "01:00.0", 2, CONVENTIONAL, NO_ACS, false, NULL },
        };
        static const Spec split[] = {
                { "00:1c.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:1c.0", 2, PCI_BRIDGE, NO_ACS, false, NULL },
                { "02:04.0", "01:00.0", 3, CONVENTIONAL, NO_ACS, false, "snd_emu10k1" },
                { "02:05.0", "01:00.0", 4, CONVENTIONAL, NO_ACS, false, NULL },
        };
        {
                RUN_CHECKED(whole, h, v);
                const IovirtGroupVerdict *g = verdict(h, v, 2);
                assert_int_equal(g->isolation, IOVIRT_SHARED);
                assert_addresses(h, g->endpoints, g->n_endpoints, "0000:02:04.0 0000:02:05.0");
                assert_addresses(h, g->bridges, g->n_bridges, "0000:01:00.0");
                assert_addresses(h, g->host_bound, g->n_host_bound, "0000:02:04.0");
                assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_PCI_BRIDGE);
        }
        {
                RUN_CHECKED(split, h, v);
                const IovirtGroupVerdict *g = verdict(h, v, 3);
                assert_int_equal(g->isolation, IOVIRT_LEAKY);
                assert_addresses(h, g->peers, g->n_peers, "0000:02:05.0");
        }
}

static void test_unreadable_port_makes_unknown(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_UNREADABLE, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, ENDPOINT, NO_ACS, false, "e1000e" },
                { "00:02.0", NULL, 3, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "02:00.0", "00:02.0", 4, ENDPOINT, NO_ACS, false, "nvme" },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 2);
        assert_int_equal(g->isolation, IOVIRT_ISOLATION_UNKNOWN);
        assert_string_equal(h->devices[g->unknown_device].name, "0000:00:01.0");
        assert_int_equal(verdict(h, v, 4)->isolation, IOVIRT_ISOLATED);
}

static void test_bridges_alone(void **state) {
        static const Spec s[] = {
                /* root ports without ACS: the host bridge's group is reached from below */
                { "00:00.0", NULL, 0, HOST_BRIDGE, NO_ACS, false, NULL },
                { "00:1c.0", NULL, 1, ROOT_PORT, NO_ACS, false, "pcieport" },
                { "00:1c.1", NULL, 2, ROOT_PORT, NO_ACS, false, "pcieport" },
                { "01:00.0", "00:1c.0", 3, ENDPOINT, NO_ACS, false, "igb" },
                { "02:00.0", "00:1c.1", 4, ENDPOINT, NO_ACS, false, "xhci_hcd" },
                /* a root port whose ACS could not be read, with nothing below it */
                { "40:01.0", NULL, 5, ROOT_PORT, ACS_UNREADABLE, false, "pcieport" },
                /* a PCIe-to-PCI bridge alone in its group, its devices split apart */
                { "80:01.0", NULL, 6, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "81:00.0", "80:01.0", 7, PCI_BRIDGE, NO_ACS, false, NULL },
                { "82:00.0", "81:00.0", 8, CONVENTIONAL, NO_ACS, false, NULL },
                { "82:01.0", "81:00.0", 9, CONVENTIONAL, NO_ACS, false, NULL },
        };
        RUN_CHECKED(s, h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 0);
        assert_int_equal(g->isolation, IOVIRT_BRIDGES);
        assert_int_equal(g->n_endpoints, 0);
        assert_addresses(h, g->bridges, g->n_bridges, "0000:00:00.0");
        assert_addresses(h, g->peers, g->n_peers, "0000:01:00.0 0000:02:00.0");
        assert_int_equal(g->n_causes, 2);
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_PORT_WITHOUT_ACS);
        assert_int_equal(verdict(h, v, 1)->isolation, IOVIRT_BRIDGES);
        assert_int_equal(verdict(h, v, 3)->isolation, IOVIRT_LEAKY);
        /* bridges even when unreadable: nothing in it is handed out; what
         * could not be read is still named */
        g = verdict(h, v, 5);
        assert_int_equal(g->isolation, IOVIRT_BRIDGES);
        assert_string_equal(h->devices[g->unknown_device].name, "0000:40:01.0");
        assert_int_equal(verdict(h, v, 6)->isolation, IOVIRT_BRIDGES);
        /* the bridge is reached by what is behind it */
        g = verdict(h, v, 7);
        assert_int_equal(g->isolation, IOVIRT_BRIDGES);
        assert_addresses(h, g->peers, g->n_peers, "0000:82:00.0 0000:82:01.0");
        assert_int_equal(g->causes[0].kind, IOVIRT_CAUSE_PCI_BRIDGE);
        g = verdict(h, v, 8);
        assert_int_equal(g->isolation, IOVIRT_LEAKY);
        assert_addresses(h, g->peers, g->n_peers, "0000:82:01.0");
}

/* A function not known to be a bridge counts as an endpoint: a group whose
 * header could not be read is unknown, never bridges. */
static void test_unreadable_function_is_not_a_bridge(void **state) {
        static const Spec s[] = {
                { "00:01.0", NULL, 1, ROOT_PORT, ACS_OK, false, "pcieport" },
                { "01:00.0", "00:01.0", 2, PCI_BRIDGE, NO_ACS, false, NULL },
        };
        _cleanup_(iovirt_host_freep) IovirtHost *h = build(s, ELEMENTSOF(s));
        _cleanup_(iovirt_verdicts_freep) IovirtVerdicts *v = NULL;
        IovirtDevice *d = &h->devices[1];
        /* as discovery leaves a function whose config could not be read */
        d->caps = (IovirtCaps) { .pcie = IOVIRT_UNKNOWN, .acs = IOVIRT_UNKNOWN, .sriov = IOVIRT_UNKNOWN };
        d->bridge = false;
        assert_int_equal(iovirt_verdicts_compute(h, &v), 0);
        assert_invariants(h, v);
        const IovirtGroupVerdict *g = verdict(h, v, 2);
        assert_int_equal(g->isolation, IOVIRT_ISOLATION_UNKNOWN);
        assert_string_equal(h->devices[g->unknown_device].name, "0000:01:00.0");
        assert_int_equal(verdict(h, v, 1)->isolation, IOVIRT_BRIDGES);
}

static void test_names(void **state) {
        char buf[64];
        assert_string_equal(iovirt_isolation_name(IOVIRT_ISOLATED), "isolated");
        assert_string_equal(iovirt_isolation_name(IOVIRT_SHARED), "shared");
        assert_string_equal(iovirt_isolation_name(IOVIRT_LEAKY), "leaky");
        assert_string_equal(iovirt_isolation_name(IOVIRT_BRIDGES), "bridges");
        assert_string_equal(iovirt_isolation_name(IOVIRT_ISOLATION_UNKNOWN), "unknown");
        assert_string_equal(iovirt_acs_bits_format(PCI_ACS_CTRL_VALID | PCI_ACS_CTRL_FORWARD, buf, sizeof(buf)), "SV UF");
        assert_string_equal(iovirt_acs_bits_format(0, buf, sizeof(buf)), "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_isolated_behind_acs_root_port),
                cmocka_unit_test(test_multifunction_without_acs_is_shared),
                cmocka_unit_test(test_multifunction_split_without_acs_is_leaky),
                cmocka_unit_test(test_multifunction_with_acs_is_isolated),
                cmocka_unit_test(test_switch_without_acs_is_leaky),
                cmocka_unit_test(test_root_ports_without_acs_leak_across_root_bus),
                cmocka_unit_test(test_conventional_bridge),
                cmocka_unit_test(test_unreadable_port_makes_unknown),
                cmocka_unit_test(test_bridges_alone),
                cmocka_unit_test(test_unreadable_function_is_not_a_bridge),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
