/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libxml/parser.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "iovirt-domain.h"
#include "iovirt-names.h"

#include "oom-interpose.h"

/* ---- parsing, with nothing printed ---- */

/* iovirt_domain_parse with stderr caught: libxml2 must print nothing */
static int parse_n(const char *xml, size_t size, IovirtDomain **ret, char **reason) {
        int fd = memfd_create("stderr", MFD_CLOEXEC);
        assert_true(fd >= 0);
        fflush(stderr);
        int saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(fd, STDERR_FILENO) == STDERR_FILENO);

        int r = iovirt_domain_parse(xml, size, ret, reason);

        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        close(saved);
        char printed[256] = "";
        ssize_t l = pread(fd, printed, sizeof(printed) - 1, 0);
        close(fd);
        if (l != 0)
                fail_msg("parsing printed: %s", printed);
        return r;
}

static int parse(const char *xml, IovirtDomain **ret, char **reason) {
        return parse_n(xml, strlen(xml), ret, reason);
}

static IovirtDomain *parse_ok(const char *xml) {
        IovirtDomain *d = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = parse(xml, &d, &reason);
        if (r < 0)
                fail_msg("parse failed: %d (%s)\n%s", r, strna(reason), xml);
        assert_non_null(d);
        assert_null(reason);
        return d;
}

/* Fails with r and a sentence that holds want */
static void parse_fails(const char *xml, int r, const char *want) {
        IovirtDomain *d = NULL;
        _cleanup_free_ char *reason = NULL;
        int k = parse(xml, &d, &reason);
        if (k != r)
                fail_msg("expected %d, got %d (%s)\n%s", r, k, strna(reason), xml);
        assert_null(d);
        assert_non_null(reason);
        if (!strstr(reason, want))
                fail_msg("expected a reason with \"%s\", got \"%s\"", want, reason);
        /* and without a reason to fill */
        assert_int_equal(parse(xml, &d, NULL), r);
        assert_null(d);
}

static void assert_hostdev(const IovirtDomain *d, size_t i, const char *address, bool managed, bool interface) {
        char buf[IOVIRT_ADDRESS_MAX];
        assert_true(i < d->n_hostdevs);
        assert_string_equal(iovirt_address_format(&d->hostdevs[i].address, buf), address);
        assert_int_equal(d->hostdevs[i].managed, managed);
        assert_int_equal(d->hostdevs[i].interface, interface);
}

/* ---- a real domain ----
 *
 * The shape of `virsh dumpxml` of a running q35 domain under libvirt 9.0
 * (Debian 12): what the qemu hook receives on stdin. */

static const char real_domain[] =
        "<domain type='kvm' id='7' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
        "  <name>gpu-worker-1</name>\n"
        "  <uuid>6f2a9c4e-1d3b-4e8a-9f7c-2b5d8e1a3c47</uuid>\n"
        "  <title>GPU worker</title>\n"
        "  <metadata>\n"
        "    <libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n"
        "      <libosinfo:os id=\"http://debian.org/debian/12\"/>\n"
        "    </libosinfo:libosinfo>\n"
        "    <iovirt:devices xmlns:iovirt=\"https://iovirt.org/xmlns/domain/1\">\n"
        "      <iovirt:device pool=\"gpus\"/>\n"
        "      <iovirt:device pool=\"nvme-fast\"/>\n"
        "    </iovirt:devices>\n"
        "  </metadata>\n"
        "  <memory unit='KiB'>16777216</memory>\n"
        "  <currentMemory unit='KiB'>16777216</currentMemory>\n"
        "  <memtune>\n"
        "    <hard_limit unit='KiB'>20971520</hard_limit>\n"
        "    <soft_limit unit='KiB'>18874368</soft_limit>\n"
        "  </memtune>\n"
        "  <memoryBacking>\n"
        "    <hugepages/>\n"
        "    <locked/>\n"
        "  </memoryBacking>\n"
        "  <vcpu placement='static' cpuset='2-7,^4'>4</vcpu>\n"
        "  <cputune>\n"
        "    <vcpupin vcpu='0' cpuset='2'/>\n"
        "    <vcpupin vcpu='1' cpuset='3'/>\n"
        "  </cputune>\n"
        "  <numatune>\n"
        "    <memory mode='strict' nodeset='0'/>\n"
        "  </numatune>\n"
        "  <resource>\n"
        "    <partition>/machine</partition>\n"
        "  </resource>\n"
        "  <os>\n"
        "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"
        "    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"
        "    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/gpu-worker-1_VARS.fd</nvram>\n"
        "    <boot dev='hd'/>\n"
        "  </os>\n"
        "  <features>\n"
        "    <acpi/>\n"
        "    <apic/>\n"
        "    <ioapic driver='qemu'/>\n"
        "  </features>\n"
        "  <cpu mode='host-passthrough' check='none' migratable='on'/>\n"
        "  <clock offset='utc'>\n"
        "    <timer name='rtc' tickpolicy='catchup'/>\n"
        "    <timer name='pit' tickpolicy='delay'/>\n"
        "    <timer name='hpet' present='no'/>\n"
        "  </clock>\n"
        "  <on_poweroff>destroy</on_poweroff>\n"
        "  <on_reboot>restart</on_reboot>\n"
        "  <on_crash>destroy</on_crash>\n"
        "  <pm>\n"
        "    <suspend-to-mem enabled='no'/>\n"
        "    <suspend-to-disk enabled='no'/>\n"
        "  </pm>\n"
        "  <devices>\n"
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='qcow2' discard='unmap'/>\n"
        "      <source file='/var/lib/libvirt/images/gpu-worker-1.qcow2' index='1'/>\n"
        "      <backingStore/>\n"
        "      <target dev='vda' bus='virtio'/>\n"
        "      <alias name='virtio-disk0'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>\n"
        "    </disk>\n"
        "    <controller type='pci' index='0' model='pcie-root'>\n"
        "      <alias name='pcie.0'/>\n"
        "    </controller>\n"
        "    <controller type='pci' index='1' model='pcie-root-port'>\n"
        "      <model name='pcie-root-port'/>\n"
        "      <target chassis='1' port='0x10'/>\n"
        "      <alias name='pci.1'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>\n"
        "    </controller>\n"
        "    <controller type='usb' index='0' model='qemu-xhci' ports='15'>\n"
        "      <alias name='usb'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>\n"
        "    </controller>\n"
        "    <interface type='network'>\n"
        "      <mac address='52:54:00:3a:9e:01'/>\n"
        "      <source network='default' portid='0b6e5f44-5a6b-4c53-9b8c-7d1e2f3a4b5c' bridge='virbr0'/>\n"
        "      <target dev='vnet6'/>\n"
        "      <model type='virtio'/>\n"
        "      <alias name='net0'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n"
        "    </interface>\n"
        "    <interface type='hostdev' managed='yes'>\n"
        "      <mac address='52:54:00:6d:90:02'/>\n"
        "      <driver name='vfio'/>\n"
        "      <source>\n"
        "        <address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>\n"
        "      </source>\n"
        "      <vlan>\n"
        "        <tag id='42'/>\n"
        "      </vlan>\n"
        "      <alias name='hostdev2'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>\n"
        "    </interface>\n"
        "    <serial type='pty'>\n"
        "      <source path='/dev/pts/3'/>\n"
        "      <target type='isa-serial' port='0'>\n"
        "        <model name='isa-serial'/>\n"
        "      </target>\n"
        "      <alias name='serial0'/>\n"
        "    </serial>\n"
        "    <input type='keyboard' bus='ps2'>\n"
        "      <alias name='input0'/>\n"
        "    </input>\n"
        "    <hostdev mode='subsystem' type='pci' managed='no'>\n"
        "      <driver name='vfio'/>\n"
        "      <source>\n"
        "        <address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>\n"
        "      </source>\n"
        "      <alias name='hostdev0'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>\n"
        "    </hostdev>\n"
        "    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
        "      <driver name='vfio'/>\n"
        "      <source>\n"
        "        <address domain='0x0000' bus='0x65' slot='0x00' function='0x1'/>\n"
        "      </source>\n"
        "      <alias name='hostdev1'/>\n"
        "      <rom bar='off'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>\n"
        "    </hostdev>\n"
        "    <hostdev mode='subsystem' type='usb' managed='yes'>\n"
        "      <source>\n"
        "        <vendor id='0x046d'/>\n"
        "        <product id='0xc52b'/>\n"
        "        <address bus='1' device='4'/>\n"
        "      </source>\n"
        "      <alias name='hostdev3'/>\n"
        "      <address type='usb' bus='0' port='2'/>\n"
        "    </hostdev>\n"
        "    <iommu model='intel'>\n"
        "      <driver intremap='on' caching_mode='on'/>\n"
        "      <alias name='iommu0'/>\n"
        "    </iommu>\n"
        "    <memballoon model='none'/>\n"
        "  </devices>\n"
        "  <seclabel type='dynamic' model='apparmor' relabel='yes'>\n"
        "    <label>libvirt-6f2a9c4e-1d3b-4e8a-9f7c-2b5d8e1a3c47</label>\n"
        "    <imagelabel>libvirt-6f2a9c4e-1d3b-4e8a-9f7c-2b5d8e1a3c47</imagelabel>\n"
        "  </seclabel>\n"
        "  <qemu:commandline>\n"
        "    <qemu:arg value='-no-user-config'/>\n"
        "  </qemu:commandline>\n"
        "</domain>\n";

static void assert_real_domain(const IovirtDomain *d) {
        assert_string_equal(d->name, "gpu-worker-1");
        assert_string_equal(d->uuid, "6f2a9c4e-1d3b-4e8a-9f7c-2b5d8e1a3c47");
        assert_true(d->memory == UINT64_C(16) << 30);
        assert_true(d->max_memory == 0);        /* no memory hotplug */
        assert_true(d->hard_limit == UINT64_C(20) << 30);
        assert_true(d->locked);
        assert_true(d->viommu);
        assert_string_equal(d->cpuset, "2-7,^4");
        assert_string_equal(d->nodeset, "0");
        /* the host's addresses (<source>), never the guest's; hostdevs, then interfaces; no USB */
        assert_int_equal(d->n_hostdevs, 3);
        assert_hostdev(d, 0, "0000:05:00.0", false, false);
        assert_hostdev(d, 1, "0000:65:00.1", true, false);
        assert_hostdev(d, 2, "0000:3b:02.1", true, true);
        assert_int_equal(d->n_pools, 2);
        assert_string_equal(d->pools[0], "gpus");
        assert_string_equal(d->pools[1], "nvme-fast");
}

static void test_real_domain(void **state) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = parse_ok(real_domain);
        assert_real_domain(d);

        /* an XML declaration, as virDomainGetXMLDesc callers sometimes save it */
        _cleanup_free_ char *declared = NULL;
        assert_true(asprintf(&declared, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n%s", real_domain) > 0);
        _cleanup_(iovirt_domain_freep) IovirtDomain *e = parse_ok(declared);
        assert_real_domain(e);
}

/* ---- a small domain, with a piece in its devices or the rest of it ---- */

static char *domain_with(const char *head, const char *devices) {
        char *s;
        assert_true(asprintf(&s,
                             "<domain type='kvm'>\n"
                             "  <name>vm</name>\n"
                             "  <memory unit='KiB'>1048576</memory>\n"
                             "%s\n"
                             "  <devices>\n"
                             "%s\n"
                             "  </devices>\n"
                             "</domain>\n",
                             head, devices) > 0);
        return s;
}

static void test_minimal(void **state) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d =
                parse_ok("<domain type='qemu'><name>tiny</name><memory>65536</memory></domain>");
        assert_string_equal(d->name, "tiny");
        assert_null(d->uuid);
        assert_true(d->memory == UINT64_C(64) << 20);   /* no unit: KiB */
        assert_true(d->hard_limit == 0);
        assert_false(d->locked);
        assert_false(d->viommu);
        assert_null(d->cpuset);
        assert_null(d->nodeset);
        assert_int_equal(d->n_hostdevs, 0);
        assert_null(d->hostdevs);
        assert_int_equal(d->n_pools, 0);
        assert_null(d->pools);

        /* placement='auto' has no cpuset or nodeset; an empty <devices> has nothing */
        _cleanup_free_ char *x = domain_with("  <vcpu placement='auto'>2</vcpu>\n"
                                             "  <numatune><memory mode='strict' placement='auto'/></numatune>\n"
                                             "  <memoryBacking><hugepages/></memoryBacking>\n"
                                             "  <metadata/>", "");
        _cleanup_(iovirt_domain_freep) IovirtDomain *e = parse_ok(x);
        assert_null(e->cpuset);
        assert_null(e->nodeset);
        assert_false(e->locked);
        assert_int_equal(e->n_pools, 0);
}

/* ---- memory: every unit libvirt knows ---- */

static uint64_t memory_of(const char *memory) {
        _cleanup_free_ char *xml = NULL;
        assert_true(asprintf(&xml, "<domain><name>m</name>%s</domain>", memory) > 0);
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = parse_ok(xml);
        return d->memory;
}

static void test_memory_units(void **state) {
        static const struct {
                const char *unit;
                uint64_t value, bytes;
        } cases[] = {
                { "b", 1073741824, UINT64_C(1) << 30 },
                { "B", 4096, 4096 },
                { "byte", 2048, 2048 },
                { "bytes", 1024, 1024 },
                { "Bytes", 8192, 8192 },
                { "k", 1024, UINT64_C(1) << 20 },
                { "K", 3, 3 * 1024 },
                { "KiB", 2, 2048 },
                { "kib", 2, 2048 },
                { "KB", 4096000, UINT64_C(4096000000) },
                { "kb", 1024, 1024000 },
                { "M", 512, UINT64_C(512) << 20 },
                { "MiB", 1536, UINT64_C(1536) << 20 },
                { "MB", 1024, UINT64_C(1024000000) },
                { "G", 4, UINT64_C(4) << 30 },
                { "GiB", 16, UINT64_C(16) << 30 },
                { "GB", 2, UINT64_C(2000000000) },
                { "T", 1, UINT64_C(1) << 40 },
                { "TiB", 2, UINT64_C(2) << 40 },
                { "TB", 1, UINT64_C(1000000000000) },
                { "P", 1, UINT64_C(1) << 50 },
                { "PiB", 3, UINT64_C(3) << 50 },
                { "PB", 1, UINT64_C(1000000000000000) },
                { "E", 1, UINT64_C(1) << 60 },
                { "EiB", 7, UINT64_C(7) << 60 },
                { "EB", 1, UINT64_C(1000000000000000000) },
                { "eib", 2, UINT64_C(2) << 60 },
                { "", 65536, UINT64_C(64) << 20 },    /* an empty unit is the default */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *m = NULL;
                assert_true(asprintf(&m, "<memory unit='%s'>%" PRIu64 "</memory>", cases[i].unit, cases[i].value) > 0);
                uint64_t got = memory_of(m);
                if (got != cases[i].bytes)
                        fail_msg("%s: %" PRIu64 " bytes, expected %" PRIu64, m, got, cases[i].bytes);
        }

        /* libvirt keeps KiB: a size that is not a whole number of KiB is rounded up */
        assert_true(memory_of("<memory unit='b'>1000</memory>") == 1024);
        assert_true(memory_of("<memory unit='bytes'>1025</memory>") == 2048);
        assert_true(memory_of("<memory unit='KB'>1</memory>") == 1024);
        assert_true(memory_of("<memory unit='MB'>1</memory>") == 1000448);   /* 977 KiB less 576 bytes */
        assert_true(memory_of("<memory unit='b'>0</memory>") == 0);
        /* white space around the number, as a pretty-printer leaves it */
        assert_true(memory_of("<memory unit='KiB'>\n    2048\n  </memory>") == UINT64_C(2) << 20);
        /* the first <memory> counts, as in libvirt */
        assert_true(memory_of("<memory>1</memory><memory>2</memory>") == 1024);
}

static void test_memory_bad(void **state) {
        parse_fails("<domain><name>m</name></domain>", -EBADMSG, "the domain has no <memory>");
        parse_fails("<domain><name>m</name><memory unit='KiB'></memory></domain>", -EBADMSG,
                    "the domain's <memory> is empty");
        parse_fails("<domain><name>m</name><memory unit='KiB'>  </memory></domain>", -EBADMSG,
                    "the domain's <memory> is empty");
        static const char *const units[] = { "KiBi", "x", "kbit", "iB", "Ki", "KIBB", "bb", "Z", "ZiB", "k B" };
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                _cleanup_free_ char *xml = NULL, *want = NULL;
                assert_true(asprintf(&xml, "<domain><name>m</name><memory unit='%s'>1</memory></domain>", units[i]) > 0);
                assert_true(asprintf(&want, "the domain's <memory> has unit='%s', which libvirt does not know",
                                     units[i]) > 0);
                parse_fails(xml, -EBADMSG, want);
        }
        static const char *const numbers[] = { "4G", "-1", "+1", "1.5", "0x10", "1 024", "1e6", "12abc", "½" };
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                _cleanup_free_ char *xml = NULL, *want = NULL;
                assert_true(asprintf(&xml, "<domain><name>m</name><memory>%s</memory></domain>", numbers[i]) > 0);
                assert_true(asprintf(&want, "the domain's <memory> is '%s', not a whole number", numbers[i]) > 0);
                parse_fails(xml, -EBADMSG, want);
        }
        /* a sentence quotes at most 64 bytes of a value, and never half a character */
        _cleanup_free_ char *long_value = NULL;
        assert_true(asprintf(&long_value, "<domain><name>m</name><memory>%s</memory></domain>",
                             "123456789012345678901234567890123456789012345678901234567890123é456789") > 0);
        parse_fails(long_value, -EBADMSG, "is '123456789012345678901234567890123456789012345678901234567890123...', not");
}

static void test_memory_range(void **state) {
        /* the largest libvirt takes: 2^53 - 1 KiB */
        assert_true(memory_of("<memory unit='KiB'>9007199254740991</memory>") == IOVIRT_DOMAIN_MEMORY_MAX);
        assert_true(memory_of("<memory unit='b'>9223372036854774784</memory>") == IOVIRT_DOMAIN_MEMORY_MAX);
        assert_true(memory_of("<memory unit='EiB'>7</memory>") == UINT64_C(7) << 60);

        static const char *const over[] = {
                "<memory unit='KiB'>9007199254740992</memory>",
                "<memory unit='b'>9223372036854774785</memory>",   /* rounds up to 2^53 KiB */
                "<memory unit='b'>9223372036854775807</memory>",
                "<memory unit='b'>18446744073709551615</memory>",
                "<memory unit='b'>18446744073709551616</memory>",   /* not even 64 bits */
                "<memory>99999999999999999999999999999999999999</memory>",
                "<memory unit='EiB'>8</memory>",
                "<memory unit='EB'>10</memory>",
                "<memory unit='PiB'>8192</memory>",
                "<memory unit='G'>18446744073709551615</memory>",
        };
        for (size_t i = 0; i < ELEMENTSOF(over); i++) {
                _cleanup_free_ char *xml = NULL;
                assert_true(asprintf(&xml, "<domain><name>m</name>%s</domain>", over[i]) > 0);
                parse_fails(xml, -ERANGE, "is more than libvirt takes (at most 9007199254740991 KiB)");
        }
}

static void test_hard_limit(void **state) {
        static const struct {
                const char *memtune;
                uint64_t bytes;
        } cases[] = {
                { "", 0 },
                { "<memtune><soft_limit unit='G'>2</soft_limit></memtune>", 0 },
                { "<memtune><hard_limit unit='G'>3</hard_limit></memtune>", UINT64_C(3) << 30 },
                { "<memtune><hard_limit>1048576</hard_limit></memtune>", UINT64_C(1) << 30 },
                { "<memtune><hard_limit unit='MB'>2000</hard_limit></memtune>", UINT64_C(2000000000) },
                { "<memtune><hard_limit unit='b'>1</hard_limit></memtune>", 1024 },
                /* libvirt's "unlimited", and an empty one: no limit */
                { "<memtune><hard_limit unit='KiB'>9007199254740991</hard_limit></memtune>", 0 },
                { "<memtune><hard_limit unit='KiB'></hard_limit></memtune>", 0 },
                { "<memtune><hard_limit unit='KiB'>9007199254740990</hard_limit></memtune>",
                  IOVIRT_DOMAIN_MEMORY_MAX - 1024 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *xml = domain_with(cases[i].memtune, "");
                _cleanup_(iovirt_domain_freep) IovirtDomain *d = parse_ok(xml);
                if (d->hard_limit != cases[i].bytes)
                        fail_msg("%s: %" PRIu64 ", expected %" PRIu64, cases[i].memtune, d->hard_limit,
                                 cases[i].bytes);
                assert_true(d->memory == UINT64_C(1) << 30);
        }

        _cleanup_free_ char *unit = domain_with("<memtune><hard_limit unit='GiBs'>3</hard_limit></memtune>", "");
        parse_fails(unit, -EBADMSG, "the domain's <memtune><hard_limit> has unit='GiBs', which libvirt does not know");
        _cleanup_free_ char *nan = domain_with("<memtune><hard_limit>lots</hard_limit></memtune>", "");
        parse_fails(nan, -EBADMSG, "the domain's <memtune><hard_limit> is 'lots', not a whole number");
        _cleanup_free_ char *over = domain_with("<memtune><hard_limit unit='E'>8</hard_limit></memtune>", "");
        parse_fails(over, -ERANGE, "the domain's <memtune><hard_limit> of 8 E is more than libvirt takes");
}

/* memory hotplug: what the guest may grow to */
static void test_max_memory(void **state) {
        _cleanup_free_ char *xml = domain_with("<maxMemory slots='16' unit='GiB'>8</maxMemory>", "");
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = parse_ok(xml);
        assert_true(d->max_memory == UINT64_C(8) << 30);
        assert_true(d->memory == UINT64_C(1) << 30);
        _cleanup_free_ char *bad = domain_with("<maxMemory slots='16' unit='GiB'>many</maxMemory>", "");
        parse_fails(bad, -EBADMSG, "the domain's <maxMemory> is 'many', not a whole number");
}

/* ---- XML that is not a domain ---- */

static void test_malformed(void **state) {
        parse_fails("<domain type='kvm'>\n"
                    "  <name>vm</name>\n"
                    "  <memory unit='KiB'>1024</memroy>\n"
                    "</domain>\n",
                    -EBADMSG, "line 3: Opening and ending tag mismatch: memory line 3 and memroy");
        parse_fails("<domain type='kvm'>\n  <name>vm</name>\n  <memory>1024</memory>\n", -EBADMSG,
                    "line 4: Premature end of data in tag domain line 1");
        parse_fails("name=vm memory=1024", -EBADMSG, "line 1: Start tag expected, '<' not found");
        parse_fails("<domain><name>vm</name><memory>1</memory></domain><domain/>", -EBADMSG,
                    "line 1: Extra content at the end of the document");
        parse_fails("<domain type=kvm><name>vm</name></domain>", -EBADMSG, "line 1: AttValue: \" or ' expected");
        parse_fails("<domain><name>a &amp b</name><memory>1</memory></domain>", -EBADMSG, "line 1: ");
        /* an entity that is not declared: there is no DTD to declare it */
        parse_fails("<domain><name>&vm;</name><memory>1</memory></domain>", -EBADMSG,
                    "line 1: Entity 'vm' not defined");
        /* a prefix no xmlns declares: libxml2 goes on, iovirt does not */
        parse_fails("<domain><name>vm</name><memory>1</memory><metadata><iovirt:device pool='x'/></metadata></domain>",
                    -EBADMSG, "line 1: Namespace prefix iovirt on device is not defined");
        /* not UTF-8 although it says nothing else; libxml2's message, on one line */
        parse_fails("<domain><name>caf\xe9</name><memory>1</memory></domain>", -EBADMSG,
                    "line 1: Input is not proper UTF-8, indicate encoding ! Bytes: 0xE9 0x3C 0x2F 0x6E");
        parse_fails("", -EBADMSG, "the domain XML is empty");
        parse_fails("   \n", -EBADMSG, "line 2: ");

        /* the buffer's size counts, not a NUL */
        static const char cut[] = "<domain><name>vm</name><memory>1</memory></domain>GARBAGE";
        IovirtDomain *d = NULL;
        assert_int_equal(parse_n(cut, strlen(cut) - strlen("GARBAGE"), &d, NULL), 0);
        assert_string_equal(d->name, "vm");
        d = iovirt_domain_free(d);
        _cleanup_free_ char *reason = NULL;
        assert_int_equal(parse_n(cut, 20, &d, &reason), -EBADMSG);
        assert_null(d);
        assert_non_null(strstr(reason, "line 1: "));
}

static void test_not_a_domain(void **state) {
        parse_fails("<network><name>default</name></network>", -EBADMSG,
                    "the root element is <network>, not <domain>: this is not a libvirt domain");
        parse_fails("<domainsnapshot><name>s1</name></domainsnapshot>", -EBADMSG, "the root element is <domainsnapshot>");
        parse_fails("<Domain><name>vm</name><memory>1</memory></Domain>", -EBADMSG, "the root element is <Domain>");
        parse_fails("<x:domain xmlns:x='urn:x'><name>vm</name><memory>1</memory></x:domain>", -EBADMSG,
                    "the root element <domain> is in the namespace 'urn:x'; libvirt's is in none");
        parse_fails("<domain xmlns='http://libvirt.org/schemas/domain'><name>vm</name><memory>1</memory></domain>",
                    -EBADMSG, "is in the namespace 'http://libvirt.org/schemas/domain'");

        parse_fails("<domain type='kvm'><uuid>6f2a9c4e-1d3b-4e8a-9f7c-2b5d8e1a3c47</uuid><memory>1</memory></domain>",
                    -EBADMSG, "the domain has no <name>");
        parse_fails("<domain><name></name><memory>1</memory></domain>", -EBADMSG, "the domain's <name> is empty");
        parse_fails("<domain><name/><memory>1</memory></domain>", -EBADMSG, "the domain's <name> is empty");
        /* a <name> elsewhere is not the domain's */
        parse_fails("<domain><memory>1</memory><devices><name>vm</name></devices></domain>", -EBADMSG,
                    "the domain has no <name>");
        parse_fails("<domain><memory>1</memory><x:name xmlns:x='urn:x'>vm</x:name></domain>", -EBADMSG,
                    "the domain has no <name>");

        /* character references are plain text; the first <name> counts, as in libvirt */
        _cleanup_(iovirt_domain_freep) IovirtDomain *d =
                parse_ok("<domain><name>vm&#45;&lt;1&gt;</name><name>other</name><uuid></uuid><memory>1</memory></domain>");
        assert_string_equal(d->name, "vm-<1>");
        assert_null(d->uuid);
        _cleanup_(iovirt_domain_freep) IovirtDomain *e =
                parse_ok("<domain><name><![CDATA[Küche-виртуалка-虚拟机]]></name><memory>1</memory></domain>");
        assert_string_equal(e->name, "Küche-виртуалка-虚拟机");
}

/* ---- hostdevs ---- */

static IovirtDomain *devices_ok(const char *devices) {
        _cleanup_free_ char *xml = domain_with("", devices);
        return parse_ok(xml);
}

static void devices_fail(const char *devices, const char *want) {
        _cleanup_free_ char *xml = domain_with("", devices);
        parse_fails(xml, -EBADMSG, want);
}

#define PCI_HOSTDEV(managed, address)                                                     \
        "<hostdev mode='subsystem' type='pci'" managed "><source><address " address "/>" \
        "</source></hostdev>"

static void test_addresses(void **state) {
        static const struct {
                const char *attrs, *address;
        } good[] = {
                { "domain='0x0000' bus='0x05' slot='0x00' function='0x0'", "0000:05:00.0" },
                { "domain='0' bus='5' slot='31' function='7'", "0000:05:1f.7" },        /* decimal */
                { "domain='0X0000' bus='0XFF' slot='0X1F' function='0X7'", "0000:ff:1f.7" },
                { "domain='0x10000' bus='0xe1' slot='0x00' function='0x0'", "10000:e1:00.0" }, /* VMD */
                { "domain='0xffffffff' bus='0x00' slot='0x01' function='0x0'", "ffffffff:00:01.0" },
                { "domain='0' bus='010' slot='017' function='07'", "0000:08:0f.7" },    /* octal, as strtoul reads it */
                { "domain=' 0' bus=' 0x3' slot='+2' function='0'", "0000:03:02.0" },     /* as strtoul reads it too */
                { "function='0x1' slot='0x00' bus='0x65' domain='0x0000' multifunction='on'", "0000:65:00.1" },
                { "domain='0x0000' bus='0x00' slot='0x00' function='0x0'", "0000:00:00.0" },
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_free_ char *dev = NULL;
                assert_true(asprintf(&dev, "<hostdev mode='subsystem' type='pci' managed='no'><source><address %s/>"
                                     "</source></hostdev>", good[i].attrs) > 0);
                _cleanup_(iovirt_domain_freep) IovirtDomain *d = devices_ok(dev);
                assert_int_equal(d->n_hostdevs, 1);
                assert_hostdev(d, 0, good[i].address, false, false);
        }

        static const struct {
                const char *attrs, *why;
        } bad[] = {
                { "domain='0x0000' slot='0x00' function='0x0'", "hostdev 1 has an address without a bus" },
                { "bus='0x05' slot='0x00' function='0x0'", "hostdev 1 has an address without a domain" },
                { "domain='0x0000' bus='0x05' function='0x0'", "hostdev 1 has an address without a slot" },
                { "domain='0x0000' bus='0x05' slot='0x00'", "hostdev 1 has an address without a function" },
                { "", "hostdev 1 has an address without a domain" },
                { "domain='0x0000' bus='0x100' slot='0x00' function='0x0'",
                  "hostdev 1 has an address with bus='0x100', out of range (at most 0xff)" },
                { "domain='0x0000' bus='0x05' slot='0x20' function='0x0'",
                  "hostdev 1 has an address with slot='0x20', out of range (at most 0x1f)" },
                { "domain='0x0000' bus='0x05' slot='0x00' function='8'",
                  "hostdev 1 has an address with function='8', out of range (at most 0x7)" },
                { "domain='0x100000000' bus='0x05' slot='0x00' function='0'",
                  "hostdev 1 has an address with domain='0x100000000', out of range (at most 0xffffffff)" },
                { "domain='0' bus='0x05' slot='0x00' function='99999999999999999999999'",
                  "hostdev 1 has an address with function='99999999999999999999999', out of range" },
                { "domain='0' bus='-1' slot='0x00' function='0'",
                  "hostdev 1 has an address with bus='-1', which is not a number" },
                { "domain='0' bus='0x-1' slot='0x00' function='0'", "with bus='0x-1', which is not a number" },
                { "domain='0' bus='' slot='0x00' function='0'", "hostdev 1 has an address with bus='', which is not a number" },
                { "domain='0' bus='0x' slot='0x00' function='0'", "with bus='0x', which is not a number" },
                { "domain='0' bus='0x0g' slot='0x00' function='0'", "with bus='0x0g', which is not a number" },
                { "domain='0' bus='08' slot='0x00' function='0'", "with bus='08', which is not a number" },  /* octal */
                { "domain='0' bus='5 ' slot='0x00' function='0'", "with bus='5 ', which is not a number" },
                { "domain='0' bus='five' slot='0x00' function='0'", "with bus='five', which is not a number" },
                { "domain='0' bus='0x05' slot='0x00' function='0.0'", "with function='0.0', which is not a number" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *dev = NULL;
                assert_true(asprintf(&dev, "<hostdev mode='subsystem' type='pci' managed='no'><source><address %s/>"
                                     "</source></hostdev>", bad[i].attrs) > 0);
                devices_fail(dev, bad[i].why);
        }

        /* the same for an interface */
        devices_fail("<interface type='hostdev'><source><address type='pci' domain='0' bus='0x3b' slot='0x40' "
                     "function='1'/></source></interface>",
                     "interface 1 (type='hostdev') has an address with slot='0x40', out of range (at most 0x1f)");
        devices_fail("<interface type='hostdev'><source><address type='pci' domain='0' slot='2' function='1'/>"
                     "</source></interface>", "interface 1 (type='hostdev') has an address without a bus");
}

static void test_managed(void **state) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = devices_ok(
                PCI_HOSTDEV("", "domain='0' bus='1' slot='0' function='0'")
                PCI_HOSTDEV(" managed='no'", "domain='0' bus='2' slot='0' function='0'")
                PCI_HOSTDEV(" managed='yes'", "domain='0' bus='3' slot='0' function='0'")
                "<interface type='hostdev'><source><address type='pci' domain='0' bus='4' slot='0' function='0'/>"
                "</source></interface>"
                "<interface type='hostdev' managed='no'><source><address type='pci' domain='0' bus='5' slot='0' "
                "function='0'/></source></interface>"
                "<interface type='hostdev' managed='yes'><source><address type='pci' domain='0' bus='6' slot='0' "
                "function='0'/></source></interface>");
        assert_int_equal(d->n_hostdevs, 6);
        assert_hostdev(d, 0, "0000:01:00.0", false, false);   /* omitted: libvirt's default is no */
        assert_hostdev(d, 1, "0000:02:00.0", false, false);
        assert_hostdev(d, 2, "0000:03:00.0", true, false);
        assert_hostdev(d, 3, "0000:04:00.0", false, true);    /* for an interface too */
        assert_hostdev(d, 4, "0000:05:00.0", false, true);
        assert_hostdev(d, 5, "0000:06:00.0", true, true);

        devices_fail(PCI_HOSTDEV(" managed='true'", "domain='0' bus='1' slot='0' function='0'"),
                     "hostdev 1 has managed='true'; libvirt knows 'yes' and 'no'");
        devices_fail(PCI_HOSTDEV(" managed='YES'", "domain='0' bus='1' slot='0' function='0'"),
                     "hostdev 1 has managed='YES'");
        devices_fail(PCI_HOSTDEV(" managed=''", "domain='0' bus='1' slot='0' function='0'"), "hostdev 1 has managed=''");
        devices_fail("<interface type='hostdev' managed='1'><source><address type='pci' domain='0' bus='4' slot='0' "
                     "function='0'/></source></interface>",
                     "interface 1 (type='hostdev') has managed='1'");
}

/* A running domain's live XML names each device; the hostdev XML iovirt
 * attaches reads back as the function it was written for */
static void test_aliases_and_hostdev_xml(void **state) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = devices_ok(
                "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x03' "
                "slot='0x00' function='0x0'/></source><alias name='hostdev0'/></hostdev>"
                PCI_HOSTDEV("", "domain='0' bus='4' slot='0' function='1'")
                "<interface type='hostdev'><source><address type='pci' domain='0' bus='5' slot='0' function='0'/>"
                "</source><alias name='hostdev1'/></interface>"
                "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='6' slot='0' function='0'/>"
                "</source><alias name=''/></hostdev>");
        assert_int_equal(d->n_hostdevs, 4);
        assert_string_equal(d->hostdevs[0].alias, "hostdev0");
        assert_null(d->hostdevs[1].alias);
        assert_null(d->hostdevs[2].alias);          /* an empty name is none */
        assert_string_equal(d->hostdevs[3].alias, "hostdev1");   /* interfaces come after the hostdevs */

        IovirtAddress a = { .domain = 0, .bus = 4, .dev = 0, .fn = 1 }, missing = { .bus = 9 };
        assert_ptr_equal(iovirt_domain_find_hostdev(d, &a), &d->hostdevs[1]);
        assert_null(iovirt_domain_find_hostdev(d, &missing));

        IovirtAddress far = { .domain = 0x10000, .bus = 0xff, .dev = 0x1f, .fn = 7 };
        _cleanup_free_ char *xml = iovirt_domain_hostdev_xml(&far);
        assert_non_null(xml);
        _cleanup_(iovirt_domain_freep) IovirtDomain *back = devices_ok(xml);
        assert_int_equal(back->n_hostdevs, 1);
        assert_false(back->hostdevs[0].managed);
        assert_true(iovirt_address_equal(&back->hostdevs[0].address, &far));
}

static void test_ignored_devices(void **state) {
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = devices_ok(
                /* USB, SCSI, mediated: no PCI function of the host */
                "<hostdev mode='subsystem' type='usb' managed='yes'><source><vendor id='0x046d'/>"
                "<product id='0xc52b'/></source></hostdev>"
                "<hostdev mode='subsystem' type='scsi' managed='no'><source><adapter name='scsi_host0'/>"
                "<address bus='0' target='0' unit='0'/></source></hostdev>"
                "<hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='naa.50014057667280d8'/>"
                "</hostdev>"
                "<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='on'><source>"
                "<address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>"
                "<hostdev mode='capabilities' type='storage'><source><block>/dev/sdf1</block></source></hostdev>"
                /* mode omitted: libvirt's default is subsystem */
                "<hostdev type='pci' managed='yes'><source><address domain='0x0000' bus='0x81' slot='0x00' "
                "function='0x0'/></source></hostdev>"
                /* interfaces that are not host devices */
                "<interface type='network'><source network='default'/><model type='virtio'/></interface>"
                "<interface type='bridge'><source bridge='br0'/></interface>"
                "<interface type='direct'><source dev='enp5s0f0' mode='passthrough'/></interface>"
                "<interface><source network='default'/></interface>"
                /* a USB interface hostdev, by address type or by vendor */
                "<interface type='hostdev'><source><address type='usb' bus='1' device='2'/></source></interface>"
                "<interface type='hostdev'><source><vendor id='0x0b95'/><product id='0x1790'/></source></interface>"
                /* hostdevs outside <devices> are not the domain's */
                "</devices><hostdev type='pci'><source><address domain='0' bus='9' slot='0' function='0'/></source>"
                "</hostdev><devices>");
        assert_int_equal(d->n_hostdevs, 1);
        assert_hostdev(d, 0, "0000:81:00.0", true, false);

        devices_fail("<hostdev mode='subsystem' managed='no'><source><address domain='0' bus='1' slot='0' "
                     "function='0'/></source></hostdev>", "hostdev 1 has no type");
        devices_fail("<hostdev mode='passthrough' type='pci'><source><address domain='0' bus='1' slot='0' "
                     "function='0'/></source></hostdev>",
                     "hostdev 1 has mode='passthrough'; libvirt knows 'subsystem' and 'capabilities'");
        devices_fail("<hostdev mode='subsystem' type='pci' managed='no'/>",
                     "hostdev 1 (type='pci') has no <source><address>");
        devices_fail("<hostdev mode='subsystem' type='pci' managed='no'><source/>"
                     "<address type='pci' domain='0' bus='1' slot='0' function='0'/></hostdev>",
                     "hostdev 1 (type='pci') has no <source><address>");
        devices_fail("<interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/></interface>",
                     "interface 1 (type='hostdev') has no <source>");
        devices_fail("<interface type='hostdev'><source/></interface>",
                     "interface 1 (type='hostdev') has no <source><address>");
        devices_fail("<interface type='hostdev'><source><address domain='0' bus='1' slot='0' function='0'/>"
                     "</source></interface>",
                     "interface 1 (type='hostdev') has a source address without a type ('pci' or 'usb')");
}

static void test_numbering(void **state) {
        /* hostdev N and interface N count every <hostdev> and every <interface>, from 1 */
        devices_fail("<hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source>"
                     "</hostdev>"
                     PCI_HOSTDEV(" managed='no'", "domain='0' bus='1' slot='0' function='0'")
                     "<interface type='network'><source network='default'/></interface>"
                     PCI_HOSTDEV(" managed='yes'", "domain='0' bus='2' function='0'"),
                     "hostdev 3 has an address without a slot");
        devices_fail("<interface type='network'><source network='default'/></interface>"
                     PCI_HOSTDEV(" managed='no'", "domain='0' bus='1' slot='0' function='0'")
                     "<interface type='hostdev'><source><address type='pci' domain='0' bus='2' slot='0' "
                     "function='9'/></source></interface>",
                     "interface 2 (type='hostdev') has an address with function='9', out of range (at most 0x7)");
}

static void test_viommu_placement(void **state) {
        static const struct {
                const char *head, *devices;
                bool locked, viommu;
                const char *cpuset, *nodeset;
        } cases[] = {
                { "", "<iommu model='intel'><driver intremap='on'/></iommu>", false, true, NULL, NULL },
                { "", "<iommu model='smmuv3'/>", false, true, NULL, NULL },
                { "", "<iommu model='virtio'/>", false, true, NULL, NULL },
                { "<memoryBacking><locked/></memoryBacking>", "", true, false, NULL, NULL },
                { "<memoryBacking><hugepages><page size='1' unit='G'/></hugepages><locked/></memoryBacking>", "", true,
                  false, NULL, NULL },
                { "<memoryBacking><nosharepages/></memoryBacking><locked/>", "", false, false, NULL, NULL },
                { "<vcpu placement='static' cpuset='0-3,8-11'>8</vcpu>", "", false, false, "0-3,8-11", NULL },
                { "<vcpu cpuset=''>8</vcpu>", "", false, false, NULL, NULL },
                { "<numatune><memory mode='interleave' nodeset='0-1'/><memnode cellid='0' mode='strict' nodeset='1'/>"
                  "</numatune>", "", false, false, NULL, "0-1" },
                { "<numatune><memnode cellid='0' mode='strict' nodeset='1'/></numatune>", "", false, false, NULL, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *xml = domain_with(cases[i].head, cases[i].devices);
                _cleanup_(iovirt_domain_freep) IovirtDomain *d = parse_ok(xml);
                assert_int_equal(d->locked, cases[i].locked);
                assert_int_equal(d->viommu, cases[i].viommu);
                assert_true(streq_ptr(d->cpuset, cases[i].cpuset));
                assert_true(streq_ptr(d->nodeset, cases[i].nodeset));
        }
}

/* ---- pool requests in iovirt's namespace ---- */

static void test_pools(void **state) {
        _cleanup_free_ char *xml = domain_with(
                "<metadata>"
                "<iovirt:device xmlns:iovirt='" IOVIRT_DOMAIN_XMLNS "' pool='gpus'/>"
                /* any prefix, or none, as long as the namespace is ours */
                "<x:device xmlns:x='https://iovirt.org/xmlns/domain/1' pool='gpus'/>"
                "<device xmlns='https://iovirt.org/xmlns/domain/1' pool='nics'/>"
                /* not ours: another version, another application, no namespace */
                "<v2:device xmlns:v2='https://iovirt.org/xmlns/domain/2' pool='no'/>"
                "<app:device xmlns:app='http://example.com/app' pool='no'/>"
                "<device pool='no'/>"
                /* nested below one element of the namespace, as libvirt's metadata API keeps it */
                "<iovirt:devices xmlns:iovirt='" IOVIRT_DOMAIN_XMLNS "'><iovirt:device pool='nvme'/>"
                "<iovirt:device pool='gpus' note='x'/></iovirt:devices>"
                "</metadata>"
                /* outside <metadata>: not a request */
                "<description xmlns:iovirt='" IOVIRT_DOMAIN_XMLNS "'><iovirt:device pool='no'/></description>",
                "");
        _cleanup_(iovirt_domain_freep) IovirtDomain *d = parse_ok(xml);
        static const char *const want[] = { "gpus", "gpus", "nics", "nvme", "gpus" };
        assert_int_equal(d->n_pools, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                assert_string_equal(d->pools[i], want[i]);

        _cleanup_free_ char *nameless = domain_with(
                "<metadata><iovirt:device xmlns:iovirt='" IOVIRT_DOMAIN_XMLNS "' pool='gpus'/>"
                "<iovirt:device xmlns:iovirt='" IOVIRT_DOMAIN_XMLNS "'/></metadata>", "");
        parse_fails(nameless, -EBADMSG, "iovirt metadata device 2 has no pool='NAME'");
        _cleanup_free_ char *empty = domain_with(
                "<metadata><iovirt:device xmlns:iovirt='" IOVIRT_DOMAIN_XMLNS "' pool=''/></metadata>", "");
        parse_fails(empty, -EBADMSG, "iovirt metadata device 1 has no pool='NAME'");
}

/* ---- hostile input ---- */

static void test_entities(void **state) {
        char path[] = "/tmp/iovirt-test-domain-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        static const char secret[] = "SECRET-MARKER";
        assert_true(write(fd, secret, strlen(secret)) == (ssize_t) strlen(secret));
        close(fd);
        /* whoever opens our file, libxml2 included, shows here */
        int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        assert_true(watch >= 0);
        assert_true(inotify_add_watch(watch, path, IN_OPEN | IN_ACCESS) >= 0);

        /* each the text before our file's path and after it; no path where after is NULL */
        static const struct {
                const char *before, *after;
        } docs[] = {
                /* the classic: an external entity in the name */
                { "<?xml version='1.0'?>\n"
                  "<!DOCTYPE domain [ <!ENTITY xxe SYSTEM 'file:///etc/passwd'> ]>\n"
                  "<domain type='kvm'><name>&xxe;</name><memory>1</memory></domain>", NULL },
                /* the same from our own file */
                { "<!DOCTYPE domain [ <!ENTITY xxe SYSTEM 'file://",
                  "'> ]>\n<domain type='kvm'><name>vm</name><memory>1</memory><description>&xxe;</description>"
                  "</domain>" },
                /* a parameter entity */
                { "<!DOCTYPE domain [ <!ENTITY % p SYSTEM '",
                  "'> %p; ]>\n<domain type='kvm'><name>&leak;</name><memory>1</memory></domain>" },
                /* an external DTD */
                { "<!DOCTYPE domain SYSTEM '", "'>\n<domain type='kvm'><name>&leak;</name><memory>1</memory></domain>" },
                /* over the network */
                { "<!DOCTYPE domain [ <!ENTITY xxe SYSTEM 'http://127.0.0.1:9/x'> ]>\n"
                  "<domain type='kvm'><name>&xxe;</name><memory>1</memory></domain>", NULL },
                /* an internal entity is refused too: libvirt never writes a DTD */
                { "<!DOCTYPE domain [ <!ENTITY n 'vm'> ]>\n<domain type='kvm'><name>&n;</name><memory>1</memory></domain>",
                  NULL },
                { "<!DOCTYPE domain>\n<domain type='kvm'><name>vm</name><memory>1</memory></domain>", NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                _cleanup_free_ char *xml = NULL, *reason = NULL;
                assert_true(asprintf(&xml, "%s%s%s", docs[i].before, docs[i].after ? path : "",
                                     strempty(docs[i].after)) > 0);
                IovirtDomain *d = NULL;
                int r = parse(xml, &d, &reason);
                if (r != -EBADMSG)
                        fail_msg("%s: %d (%s)", xml, r, strna(reason));
                assert_null(d);
                assert_non_null(reason);
                assert_null(strstr(reason, "root:"));
                assert_null(strstr(reason, "SECRET-MARKER"));
                /* the internal ones reach our check; libxml2 may stop a parameter entity first */
                if (strstr(reason, "line ") != reason)
                        assert_string_equal(reason, "the domain XML has a document type declaration (<!DOCTYPE>), "
                                            "which libvirt never writes");
        }
        char event[sizeof(struct inotify_event) + 256];
        assert_int_equal(read(watch, event, sizeof(event)), -1);
        assert_int_equal(errno, EAGAIN);

        /* the control: libxml2 told to substitute entities does read the file, and the watch sees it */
        _cleanup_free_ char *control = NULL;
        assert_true(asprintf(&control, "%s%s%s", docs[1].before, path, docs[1].after) > 0);
        xmlDoc *doc = xmlReadMemory(control, (int) strlen(control), NULL, NULL,
                                    XML_PARSE_NOENT | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        assert_non_null(doc);
        xmlChar *text = xmlNodeGetContent(xmlDocGetRootElement(doc));
        assert_non_null(strstr((const char *) text, "SECRET-MARKER"));
        xmlFree(text);
        xmlFreeDoc(doc);
        assert_true(read(watch, event, sizeof(event)) > 0);
        close(watch);
        unlink(path);

        /* a billion laughs: refused, quickly, without the memory */
        _cleanup_free_ char *laughs = strdup("<!DOCTYPE domain [ <!ENTITY l0 'ha'>");
        assert_non_null(laughs);
        for (int i = 1; i < 12; i++) {
                char *n;
                assert_true(asprintf(&n, "%s <!ENTITY l%d '&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;'>",
                                     laughs, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1) > 0);
                free(laughs);
                laughs = n;
        }
        char *n;
        assert_true(asprintf(&n, "%s ]><domain><name>&l11;</name><memory>1</memory></domain>", laughs) > 0);
        free(laughs);
        laughs = n;
        IovirtDomain *d = NULL;
        assert_int_equal(parse(laughs, &d, NULL), -EBADMSG);
        assert_null(d);
}

static void test_sizes(void **state) {
        /* exactly the limit: read; a byte more: refused before parsing */
        static const char head[] = "<domain type='kvm'><name>big</name><memory unit='KiB'>1024</memory>\n";
        static const char tail[] = "</domain>\n";
        size_t size = IOVIRT_DOMAIN_XML_MAX;
        _cleanup_free_ char *xml = malloc(size + 2);
        assert_non_null(xml);
        char *p = xml;
        p = mempcpy(p, head, strlen(head));
        char comment[1000];
        memset(comment, 'x', sizeof(comment));
        memcpy(comment, "<!--", 4);
        memcpy(comment + sizeof(comment) - 4, "-->\n", 4);
        while ((size_t) (p - xml) + sizeof(comment) + strlen(tail) <= size)
                p = mempcpy(p, comment, sizeof(comment));
        memset(p, ' ', size - strlen(tail) - (size_t) (p - xml));
        p = xml + size - strlen(tail);
        memcpy(p, tail, strlen(tail));
        xml[size] = ' ';
        xml[size + 1] = 0;

        IovirtDomain *d = NULL;
        _cleanup_free_ char *reason = NULL;
        assert_int_equal(parse_n(xml, size, &d, &reason), 0);
        assert_string_equal(d->name, "big");
        d = iovirt_domain_free(d);

        assert_int_equal(parse_n(xml, size + 1, &d, &reason), -EFBIG);
        assert_null(d);
        assert_string_equal(reason, "the domain XML is 16777217 bytes, more than the 16 MiB iovirt reads");
        assert_int_equal(parse_n(xml, SIZE_MAX, &d, NULL), -EFBIG);
        assert_int_equal(parse_n(NULL, (size_t) INT32_MAX + 1, &d, NULL), -EFBIG);
        assert_null(d);

        /* deeper than libxml2 goes without XML_PARSE_HUGE */
        IovirtText t = {};
        assert_int_equal(iovirt_text_add(&t, "<domain><name>deep</name><memory>1</memory><metadata>"), 0);
        for (int i = 0; i < 300; i++)
                assert_int_equal(iovirt_text_add(&t, "<a>"), 0);
        for (int i = 0; i < 300; i++)
                assert_int_equal(iovirt_text_add(&t, "</a>"), 0);
        assert_int_equal(iovirt_text_add(&t, "</metadata></domain>"), 0);
        _cleanup_free_ char *deep = iovirt_text_take(&t);
        parse_fails(deep, -EBADMSG, "line 1: Excessive depth in document: 256");
}

/* ---- running out of memory ---- */

static bool domains_equal(const IovirtDomain *a, const IovirtDomain *b) {
        if (!streq_ptr(a->name, b->name) || !streq_ptr(a->uuid, b->uuid) || a->memory != b->memory ||
            a->hard_limit != b->hard_limit || a->locked != b->locked || a->viommu != b->viommu ||
            !streq_ptr(a->cpuset, b->cpuset) || !streq_ptr(a->nodeset, b->nodeset) ||
            a->n_hostdevs != b->n_hostdevs || a->n_pools != b->n_pools)
                return false;
        for (size_t i = 0; i < a->n_hostdevs; i++)
                if (!iovirt_address_equal(&a->hostdevs[i].address, &b->hostdevs[i].address) ||
                    a->hostdevs[i].managed != b->hostdevs[i].managed ||
                    a->hostdevs[i].interface != b->hostdevs[i].interface)
                        return false;
        for (size_t i = 0; i < a->n_pools; i++)
                if (!streq_ptr(a->pools[i], b->pools[i]))
                        return false;
        return true;
}

/* Every allocation of a parse fails in turn, libxml2's included: the parse
 * is whole, or -ENOMEM with nothing returned (or the same refusal without
 * its sentence); never a domain short of a device, never a wrong sentence,
 * never a crash or a word on stderr. */
static void allocation_failures(const char *xml, int expected, const char *what) {
        IovirtDomain *ref = NULL;
        _cleanup_free_ char *ref_reason = NULL;
        oom_fail_at(LONG_MAX);   /* counts, fails none */
        int r = parse(xml, &ref, &ref_reason);
        long n = oom_stop();
        assert_int_equal(r, expected);
        assert_true(n > 0);

        long whole = 0;
        for (long k = 0; k < n; k++) {
                IovirtDomain *d = NULL;
                char *reason = NULL;
                oom_fail_at(k);
                r = parse(xml, &d, &reason);
                oom_stop();
                if (r == expected && (expected < 0 || domains_equal(d, ref)) &&
                    (expected == 0 || streq_ptr(reason, ref_reason))) {
                        whole++;
                } else if (r == expected && expected < 0 && !d && !reason) {
                        /* the refusal stands, its sentence could not be made (iovirt_set_reason) */
                } else if (r != -ENOMEM || d || reason)
                        fail_msg("%s: allocation %ld of %ld failed: returned %d, %s domain, reason %s", what, k, n, r,
                                 d ? "a" : "no", strna(reason));
                iovirt_domain_free(d);
                free(reason);
        }
        print_message("    %s: %ld allocations failed in turn, %ld parses whole anyway\n", what, n, whole);
        iovirt_domain_free(ref);
}

static void test_allocation_failures(void **state) {
        if (!oom_usable()) {
                print_message("    skipped: allocations cannot be made to fail here (%s)\n",
                              OOM_INTERPOSED ? "valgrind without --soname-synonyms=somalloc=nouserintercepts?"
                                             : "AddressSanitizer");
                skip();
        }
        allocation_failures(real_domain, 0, "the real domain");
        allocation_failures("<domain>\n<name>vm</name>\n<memory>1</memroy>\n</domain>", -EBADMSG, "malformed XML");
        _cleanup_free_ char *bad = domain_with("", PCI_HOSTDEV("", "domain='0' bus='0x100' slot='0' function='0'"));
        allocation_failures(bad, -EBADMSG, "a bad address");
}

int main(void) {
        /* libxml2 sets itself up once, outside any failing allocation */
        xmlInitParser();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_real_domain),
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_memory_units),
                cmocka_unit_test(test_memory_bad),
                cmocka_unit_test(test_memory_range),
                cmocka_unit_test(test_hard_limit),
                cmocka_unit_test(test_max_memory),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_not_a_domain),
                cmocka_unit_test(test_addresses),
                cmocka_unit_test(test_managed),
                cmocka_unit_test(test_ignored_devices),
                cmocka_unit_test(test_numbering),
                cmocka_unit_test(test_viommu_placement),
                cmocka_unit_test(test_pools),
                cmocka_unit_test(test_aliases_and_hostdev_xml),
                cmocka_unit_test(test_entities),
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_allocation_failures),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
