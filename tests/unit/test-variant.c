/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "iovirt-names.h"
#include "iovirt-util.h"
#include "iovirt-variant.h"

/* A ConnectX VF (15b3:101e), Ethernet controller, as discovery leaves it */
static IovirtDevice device(uint16_t vendor, uint16_t dev, uint16_t sv, uint16_t sd, uint32_t class_code) {
        IovirtDevice d = {
                .vendor = vendor,
                .device = dev,
                .subsys_vendor = sv,
                .subsys_device = sd,
                .class_code = class_code,
                .ids_known = true,
                .parent = IOVIRT_NONE,
                .physfn = IOVIRT_NONE,
                .group = IOVIRT_NONE,
                .iommu_group = -1,
        };
        d.caps.header_known = true;
        snprintf(d.name, sizeof(d.name), "0000:05:00.1");
        return d;
}

static IovirtDevice cx_vf(void) {
        return device(0x15b3, 0x101e, 0x15b3, 0x0051, 0x020000);
}

#define HEADER "# Aliases extracted from modules themselves.\n"
#define CATCH_ALL "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
#define MLX5 "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n"

/* The text in a buffer of exactly its length, with no NUL after it, so
 * that a sanitizer build catches any read past the end. */
static int choose_exact(const char *text, size_t len, const IovirtDevice *d, IovirtVariantChoice *c) {
        char *copy = len ? malloc(len) : NULL;
        if (len) {
                assert_non_null(copy);
                memcpy(copy, text, len);
        }
        int r = iovirt_variant_choose(copy, len, d, c);
        free(copy);
        return r;
}

static void choose(const char *text, const IovirtDevice *d, IovirtVariantChoice *c) {
        *c = (IovirtVariantChoice) {};
        int r = choose_exact(text, text ? strlen(text) : 0, d, c);
        if (r < 0)
                fail_msg("choose failed: %s (%s)", strerror(-r), strna(c->why));
        assert_non_null(c->why);
        assert_non_null(c->driver);
        assert_non_null(c->module);
}

static void assert_contains(const char *s, const char *part) {
        if (!s || !strstr(s, part))
                fail_msg("'%s' lacks '%s'", strna(s), part);
}

static void assert_vfio_pci(const char *text, const IovirtDevice *d, bool catch_all) {
        IovirtVariantChoice c;
        choose(text, d, &c);
        assert_string_equal(c.driver, "vfio-pci");
        assert_string_equal(c.module, "vfio_pci");
        assert_false(c.variant);
        if (catch_all) {
                assert_string_equal(c.alias, "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci");
                assert_contains(c.why, "catch-all");
        } else
                assert_null(c.alias);
        char ids[16];
        snprintf(ids, sizeof(ids), "%04x:%04x", d->vendor, d->device);
        assert_contains(c.why, "vfio-pci: no VFIO variant driver of this kernel matches");
        assert_contains(c.why, ids);
        iovirt_variant_choice_clear(&c);
}

static void assert_variant(const char *text, const IovirtDevice *d, const char *driver, const char *alias,
                           unsigned wildcards) {
        IovirtVariantChoice c;
        choose(text, d, &c);
        assert_string_equal(c.driver, driver);
        assert_string_equal(c.module, driver);
        assert_true(c.variant);
        assert_string_equal(c.alias, alias);
        assert_int_equal(c.wildcards, wildcards);
        assert_contains(c.why, driver);
        assert_contains(c.why, "libvirt's rule");
        iovirt_variant_choice_clear(&c);
}

static void test_no_vfio_lines(void **state) {
        IovirtDevice d = cx_vf();
        assert_vfio_pci(HEADER "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
                               "alias pci:v*d*sv*sd*bc02sc00i* some_nic\n",
                        &d, false);
        /* an older kernel: vfio_pci without its own alias */
        assert_vfio_pci(HEADER "alias vfio-pci vfio_pci\n", &d, false);
}

static void test_catch_all_only(void **state) {
        IovirtDevice d = cx_vf();
        assert_vfio_pci(HEADER CATCH_ALL, &d, true);
}

static void test_one_match(void **state) {
        IovirtDevice d = cx_vf();
        assert_variant(HEADER CATCH_ALL MLX5, &d, "mlx5_vfio_pci",
                       "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci", 5);

        IovirtVariantChoice c;
        choose(HEADER CATCH_ALL MLX5, &d, &c);
        assert_string_equal(c.why, "mlx5_vfio_pci: the kernel's vfio_pci alias v000015B3d0000101Esv*sd*bc*sc*i* "
                                   "matches 15b3:101e (libvirt's rule: the most specific variant driver, 5 of 7 "
                                   "fields wildcards; 1 other matching alias had more, or came later)");
        iovirt_variant_choice_clear(&c);
}

static void test_specific_beats_generic(void **state) {
        IovirtDevice d = cx_vf();
        const char *generic = "alias vfio_pci:v000015B3d*sv*sd*bc*sc*i* any_mellanox_vfio\n";
        const char *alias = "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci";
        char text[1024];

        /* either order: fewest wildcards, not first match */
        snprintf(text, sizeof(text), HEADER "%s" MLX5 CATCH_ALL, generic);
        assert_variant(text, &d, "mlx5_vfio_pci", alias, 5);
        snprintf(text, sizeof(text), HEADER CATCH_ALL MLX5 "%s", generic);
        assert_variant(text, &d, "mlx5_vfio_pci", alias, 5);

        /* a tie goes to the first line, as in libvirt */
        assert_variant(HEADER MLX5 "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* other_vfio_pci\n", &d,
                       "mlx5_vfio_pci", alias, 5);
        assert_variant(HEADER "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* other_vfio_pci\n" MLX5, &d,
                       "other_vfio_pci", "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* other_vfio_pci", 5);
}

static void test_subsystem(void **state) {
        IovirtDevice d = cx_vf();
        const char *text = HEADER MLX5 "alias vfio_pci:v000015B3d0000101Esv000015B3sd00000051bc*sc*i* oem_vfio_pci\n"
                                       "alias vfio_pci:v000015B3d0000101Esv000015B3sd00000099bc*sc*i* other_oem_vfio\n";
        assert_variant(text, &d, "oem_vfio_pci",
                       "alias vfio_pci:v000015B3d0000101Esv000015B3sd00000051bc*sc*i* oem_vfio_pci", 3);

        /* another subsystem: the generic one */
        IovirtDevice other = device(0x15b3, 0x101e, 0x15b3, 0x0001, 0x020000);
        assert_variant(text, &other, "mlx5_vfio_pci",
                       "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci", 5);
}

static void test_other_vendor(void **state) {
        IovirtDevice d = device(0x15b3, 0x1021, 0x15b3, 0x0051, 0x020000);
        assert_vfio_pci(HEADER CATCH_ALL MLX5, &d, true);
        IovirtDevice e = device(0x8086, 0x101e, 0x8086, 0x0000, 0x020000);
        assert_vfio_pci(HEADER MLX5, &e, false);

        IovirtVariantChoice c;
        choose(HEADER MLX5, &d, &c);
        assert_string_equal(c.why, "vfio-pci: no VFIO variant driver of this kernel matches 15b3:1021");
        iovirt_variant_choice_clear(&c);
}

static void test_class(void **state) {
        IovirtDevice nvme = device(0x144d, 0xa808, 0x144d, 0xa801, 0x010802);
        IovirtDevice nic = cx_vf();

        assert_variant(HEADER CATCH_ALL "alias vfio_pci:v*d*sv*sd*bc01sc08i* nvme_vfio_pci\n", &nvme, "nvme_vfio_pci",
                       "alias vfio_pci:v*d*sv*sd*bc01sc08i* nvme_vfio_pci", 5);
        assert_vfio_pci(HEADER CATCH_ALL "alias vfio_pci:v*d*sv*sd*bc01sc08i* nvme_vfio_pci\n", &nic, true);
        /* vendor and class beat class alone */
        assert_variant(HEADER "alias vfio_pci:v*d*sv*sd*bc01sc08i* nvme_vfio_pci\n"
                              "alias vfio_pci:v0000144Dd*sv*sd*bc01sc08i* samsung_vfio_pci\n",
                       &nvme, "samsung_vfio_pci", "alias vfio_pci:v0000144Dd*sv*sd*bc01sc08i* samsung_vfio_pci", 4);
        /* The kernel ends a pinned interface with '*' ("i02*"); libvirt
         * compares the field as it is, so it never matches. */
        assert_vfio_pci(HEADER "alias vfio_pci:v*d*sv*sd*bc01sc08i02* nvme_vfio_pci\n", &nvme, false);
        /* no other globbing either: partial wildcards, '?', lower case */
        assert_vfio_pci(HEADER "alias vfio_pci:v0000144Dd0000A8*sv*sd*bc*sc*i* a_vfio_pci\n"
                               "alias vfio_pci:v0000144Dd0000A80?sv*sd*bc*sc*i* b_vfio_pci\n"
                               "alias vfio_pci:v0000144Dd0000A80[0-9]sv*sd*bc*sc*i* c_vfio_pci\n"
                               "alias vfio_pci:v0000144dd0000a808sv*sd*bc*sc*i* d_vfio_pci\n",
                        &nvme, false);
}

static void test_malformed(void **state) {
        IovirtDevice d = cx_vf();
        static const char text[] = HEADER
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc* missing_i\n"
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*\n"                     /* no module */
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* two modules\n"
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* ../../evil\n"
                "alias vfio_pci:v000015B3dsv*sd*bc*sc*i* empty_d\n"
                "alias vfio_pci:d0000101Ev000015B3sv*sd*bc*sc*i* wrong_order\n"
                "alias  vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* two_spaces\n"
                " alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* indented\n"
                "alias vfio_pci:v000015B3d0000101E\n"
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* \n"                    /* blank module */
                "alias vfio_pci:\n"
                "alias vfio_pci:v000015B3d0000101Esv*\x01sd*bc*sc*i* control\n"
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*\tnul\0_after\n"
                "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*"                       /* cut short, no newline */;
        IovirtVariantChoice c = {};
        assert_int_equal(choose_exact(text, sizeof(text) - 1, &d, &c), 0);
        assert_string_equal(c.driver, "vfio-pci");
        assert_null(c.alias);
        iovirt_variant_choice_clear(&c);

        /* a good line among them still counts, with a trailing blank or a tab */
        assert_variant(HEADER "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc* missing_i\n"
                              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*\tmlx5_vfio_pci \r\n"
                              "garbage\n",
                       &d, "mlx5_vfio_pci", "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*\tmlx5_vfio_pci", 5);
        /* the first line is a line too, and the last needs no newline */
        assert_variant("alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci", &d, "mlx5_vfio_pci",
                       "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci", 5);
}

static void test_not_nul_terminated(void **state) {
        IovirtDevice d = cx_vf();
        /* the length ends the text in the middle of the module name */
        static const char text[] = HEADER "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pciXXXX";
        IovirtVariantChoice c = {};
        assert_int_equal(choose_exact(text, sizeof(text) - 1 - 4, &d, &c), 0);
        assert_string_equal(c.driver, "mlx5_vfio_pci");
        iovirt_variant_choice_clear(&c);
}

/* Appends without sprintf's int: GCC 12 under ASan cannot follow a cast
 * of its result and warns about every write after it */
static size_t put(char *at, const char *s) {
        size_t l = strlen(s);
        memcpy(at, s, l);
        return l;
}

static void fill(char *at, char c, size_t n) {
        for (size_t i = 0; i < n; i++)
                at[i] = c;
}

static void test_long_lines(void **state) {
        IovirtDevice d = cx_vf();
        size_t big = 1 << 20;
        char *text = malloc(4 * big);
        assert_non_null(text);
        size_t n = 0;

        n += put(text + n, HEADER "alias vfio_pci:v000015B3d");
        fill(text + n, '0', big);          /* a 1 MiB device field */
        n += big;
        n += put(text + n, "101Esv*sd*bc*sc*i* long_field\n");
        n += put(text + n, "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* ");
        fill(text + n, 'm', big);          /* a 1 MiB module name */
        n += big;
        text[n++] = '\n';
        n += put(text + n, "alias pci:v*d*sv*sd*bc*sc*i* ");
        fill(text + n, 'x', big);          /* some other long line */
        n += big;
        text[n++] = '\n';
        n += put(text + n, "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* ");
        fill(text + n, 'm', 56);           /* one past the kernel's module name limit */
        n += 56;
        text[n++] = '\n';

        IovirtVariantChoice c = {};
        assert_int_equal(choose_exact(text, n, &d, &c), 0);
        assert_false(c.variant);
        iovirt_variant_choice_clear(&c);

        n += put(text + n, MLX5);
        assert_int_equal(choose_exact(text, n, &d, &c), 0);
        assert_string_equal(c.driver, "mlx5_vfio_pci");
        iovirt_variant_choice_clear(&c);
        free(text);
}

static void test_empty(void **state) {
        IovirtDevice d = cx_vf();
        assert_vfio_pci("", &d, false);
        assert_vfio_pci("\n\n", &d, false);
        assert_vfio_pci(HEADER, &d, false);
        assert_vfio_pci(NULL, &d, false);
}

static void test_unknown_ids(void **state) {
        IovirtDevice d = cx_vf();
        IovirtVariantChoice c = {};

        d.ids_known = false;
        assert_int_equal(iovirt_variant_choose(MLX5, strlen(MLX5), &d, &c), -ENODATA);
        assert_null(c.driver);
        assert_contains(c.why, "0000:05:00.1");
        iovirt_variant_choice_clear(&c);

        /* header unreadable: subsystem and class unknown, vendor and device
         * from the kernel's attributes */
        d = cx_vf();
        d.caps.header_known = false;
        assert_variant(HEADER CATCH_ALL MLX5, &d, "mlx5_vfio_pci",
                       "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci", 5);
        /* an alias that pins them cannot be judged: refuse, do not guess */
        const char *text = HEADER MLX5 "alias vfio_pci:v000015B3d0000101Esv000015B3sd00000051bc*sc*i* oem_vfio_pci\n";
        assert_int_equal(iovirt_variant_choose(text, strlen(text), &d, &c), -ENODATA);
        assert_null(c.driver);
        assert_contains(c.why, "oem_vfio_pci");
        assert_contains(c.why, "could not be read");
        iovirt_variant_choice_clear(&c);
        /* unless it does not match on vendor and device anyway */
        IovirtDevice other = device(0x15b3, 0x1021, 0, 0, 0);
        other.caps.header_known = false;
        assert_vfio_pci(text, &other, false);
}

/* --driver NAME: what is a VFIO driver, by name or by alias, and what is not */
static void test_asked(void **state) {
        static const char text[] = HEADER CATCH_ALL MLX5 "alias vfio_pci:v00001234d00005678sv*sd*bc*sc*i* oem_passthru\n"
                                   "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n";
        IovirtAliases a = { .path = (char *) "/lib/modules/6.12.0-test/modules.alias", .text = (char *) text,
                            .size = sizeof(text) - 1 };
        IovirtAliases missing = { .path = a.path };
        IovirtAliases unreadable = { .path = a.path, .error = -EACCES, .why = (char *) "cannot read it" };
        IovirtDevice d = cx_vf();
        const struct {
                const IovirtAliases *a;
                const char *name;
                int r;
                const char *driver, *module, *words;
        } cases[] = {
                { &a, "vfio-pci", 0, "vfio-pci", "vfio_pci", "in place of the kernel's own choice, mlx5_vfio_pci" },
                { &a, "vfio_pci", 0, "vfio-pci", "vfio_pci", "as asked (--driver)" },
                { &a, "mlx5_vfio_pci", 0, "mlx5_vfio_pci", "mlx5_vfio_pci", "also the kernel's own choice" },
                { &a, "mlx5-vfio-pci", 0, "mlx5_vfio_pci", "mlx5_vfio_pci", "also the kernel's own choice" },
                { &a, "oem_passthru", 0, "oem_passthru", "oem_passthru", "as asked (--driver)" },
                { &missing, "hisi_acc_vfio_pci", 0, "hisi_acc_vfio_pci", "hisi_acc_vfio_pci", "as asked" },
                { &unreadable, "vfio-pci", 0, "vfio-pci", "vfio_pci", "vfio-pci: as asked (--driver)" },
                /* host drivers, whatever aliases they have */
                { &a, "mlx5_core", -EINVAL, NULL, NULL, "mlx5_core is not a VFIO driver" },
                { &a, "vfio_pci_core", -EINVAL, NULL, NULL, "is not a VFIO driver" },
                { &missing, "oem_passthru", -EINVAL, NULL, NULL, "is not a VFIO driver" },
                { &unreadable, "oem_passthru", -EACCES, NULL, NULL, "cannot tell whether oem_passthru" },
                { &a, "", -EINVAL, NULL, NULL, "is not a driver name" },
                { &a, "-v_vfio_pci", -EINVAL, NULL, NULL, "not starting with '-'" },
                { &a, "a/b_vfio_pci", -EINVAL, NULL, NULL, "is not a driver name" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                IovirtVariantChoice c = {};
                int r = iovirt_variant_asked(cases[i].a, &d, cases[i].name, &c);
                if (r != cases[i].r || !streq_ptr(c.driver, cases[i].driver) ||
                    !streq_ptr(c.module, r < 0 ? NULL : cases[i].module) || !c.why ||
                    !strstr(c.why, cases[i].words))
                        fail_msg("--driver '%s': %d %s/%s \"%s\"; expected %d %s with \"%s\"", cases[i].name, r,
                                 strna(c.driver), strna(c.module), strna(c.why), cases[i].r, strna(cases[i].driver),
                                 cases[i].words);
                iovirt_variant_choice_clear(&c);
        }
}

static void test_names(void **state) {
        assert_true(iovirt_variant_is_vfio("vfio-pci"));
        assert_true(iovirt_variant_is_vfio("mlx5_vfio_pci"));
        assert_false(iovirt_variant_is_vfio("_vfio_pci"));
        assert_false(iovirt_variant_is_vfio("vfio_pci_core"));
        assert_false(iovirt_variant_is_vfio("pci-stub"));
        assert_false(iovirt_variant_is_vfio(NULL));
        assert_true(iovirt_variant_name_valid("nvgrace-gpu-vfio-pci"));
        assert_true(iovirt_variant_name_valid("a234567890123456789012345678901234567890123456789012345"));
        assert_false(iovirt_variant_name_valid("a2345678901234567890123456789012345678901234567890123456"));
        assert_false(iovirt_variant_name_valid("-r"));
        assert_false(iovirt_variant_name_valid("mlx5 vfio"));
        assert_false(iovirt_variant_name_valid(""));
        assert_false(iovirt_variant_name_valid(NULL));
}

/* iovirt_variant_for_device against a testbed below $IOVIRT_ROOT */

static char root[] = "/tmp/iovirt-test-variant-XXXXXX";

static void write_file(const char *rel, const char *text) {
        char path[512], cmd[1024];
        snprintf(path, sizeof(path), "%s%s", root, rel);
        snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
        assert_int_equal(system(cmd), 0);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static int setup_root(void **state) {
        if (!mkdtemp(root))
                return -1;
        setenv(IOVIRT_ENV_ROOT, root, 1);
        return 0;
}

static int teardown_root(void **state) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        unsetenv(IOVIRT_ENV_ROOT);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_for_device(void **state) {
        IovirtDevice d = cx_vf();
        IovirtVariantChoice c = {};

        /* no modules.alias: vfio-pci, and the why says so */
        write_file(PROC_OSRELEASE, "6.12.0-test\n");
        assert_int_equal(iovirt_variant_for_device(&d, &c), 0);
        assert_string_equal(c.driver, "vfio-pci");
        assert_null(c.alias);
        assert_contains(c.why, "/lib/modules/6.12.0-test/modules.alias is not there");
        iovirt_variant_choice_clear(&c);

        write_file(LIB_MODULES "/6.12.0-test/" MODULES_ALIAS, HEADER CATCH_ALL MLX5);
        assert_int_equal(iovirt_variant_for_device(&d, &c), 0);
        assert_string_equal(c.driver, "mlx5_vfio_pci");
        iovirt_variant_choice_clear(&c);

        /* another release: another file */
        write_file(PROC_OSRELEASE, "6.13.0-other\n");
        write_file(LIB_MODULES "/6.13.0-other/" MODULES_ALIAS, HEADER CATCH_ALL);
        assert_int_equal(iovirt_variant_for_device(&d, &c), 0);
        assert_string_equal(c.driver, "vfio-pci");
        assert_non_null(c.alias);
        iovirt_variant_choice_clear(&c);

        /* no osrelease in the testbed: uname(2)'s release */
        char path[512];
        snprintf(path, sizeof(path), "%s%s", root, PROC_OSRELEASE);
        assert_int_equal(unlink(path), 0);
        struct utsname u;
        assert_int_equal(uname(&u), 0);
        assert_int_equal(iovirt_variant_for_device(&d, &c), 0);
        assert_string_equal(c.driver, "vfio-pci");
        assert_contains(c.why, u.release);
        iovirt_variant_choice_clear(&c);

        /* a release that is no directory name */
        write_file(PROC_OSRELEASE, "../../etc\n");
        assert_int_equal(iovirt_variant_for_device(&d, &c), -EINVAL);
        assert_null(c.driver);
        assert_contains(c.why, "../../etc");
        iovirt_variant_choice_clear(&c);
}

static void test_for_device_unreadable(void **state) {
        IovirtDevice d = cx_vf();
        IovirtVariantChoice c = {};
        char path[512];

        /* a modules.alias that cannot be read fails closed, with its path
         * (a directory: EISDIR even for root, whom permissions do not stop) */
        write_file(PROC_OSRELEASE, "6.14.0-broken\n");
        snprintf(path, sizeof(path), "%s%s/6.14.0-broken/%s", root, LIB_MODULES, MODULES_ALIAS);
        write_file(LIB_MODULES "/6.14.0-broken/placeholder", "");
        assert_int_equal(mkdir(path, 0755), 0);
        assert_int_equal(iovirt_variant_for_device(&d, &c), -EISDIR);
        assert_null(c.driver);
        assert_contains(c.why, path);
        iovirt_variant_choice_clear(&c);

        /* /lib/modules/RELEASE is a file: ENOTDIR is not "missing" */
        write_file(PROC_OSRELEASE, "6.15.0-file\n");
        write_file(LIB_MODULES "/6.15.0-file", "not a directory");
        assert_int_equal(iovirt_variant_for_device(&d, &c), -ENOTDIR);
        assert_null(c.driver);
        assert_contains(c.why, "6.15.0-file/modules.alias");
        iovirt_variant_choice_clear(&c);

        /* read once for several choices: the same error, for each */
        IovirtAliases a = {};
        assert_int_equal(iovirt_variant_aliases_read(&a), 0);
        assert_int_equal(a.error, -ENOTDIR);
        assert_null(a.text);
        for (int k = 0; k < 2; k++) {
                assert_int_equal(iovirt_variant_for_device_in(&a, &d, &c), -ENOTDIR);
                assert_contains(c.why, "6.15.0-file/modules.alias");
                iovirt_variant_choice_clear(&c);
        }
        iovirt_variant_aliases_clear(&a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_vfio_lines),
                cmocka_unit_test(test_catch_all_only),
                cmocka_unit_test(test_one_match),
                cmocka_unit_test(test_specific_beats_generic),
                cmocka_unit_test(test_subsystem),
                cmocka_unit_test(test_other_vendor),
                cmocka_unit_test(test_class),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_not_nul_terminated),
                cmocka_unit_test(test_long_lines),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_unknown_ids),
                cmocka_unit_test(test_asked),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_for_device),
                cmocka_unit_test(test_for_device_unreadable),
        };
        return cmocka_run_group_tests(tests, setup_root, teardown_root);
}
