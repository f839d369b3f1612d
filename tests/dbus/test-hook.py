#!/usr/bin/env python3
"""test-hook.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE HOOK: libvirt's qemu.d
hook (data/libvirt/hooks/qemu.d/iovirt, HOOK as configure_file made it) run
the way libvirt runs it, `iovirt NAME OPERATION SUB-OPERATION -` with the
domain XML (virsh dumpxml's shape: q35, <memory unit='KiB'>, PCI hostdevs)
on stdin and libvirt's small environment, against iovirtd on the emulated
"desktop" host (tests/hosts) whose sysfs behaves like the kernel's
(tests/emulator).  The oracles: the testbed's driver links, list-assignments
--json (consumer "domain:NAME"), DescribeStatus, the exit code and stderr.
TAP output.

  1. prepare begin with a managed='no' hostdev: exit 0, the device on
     vfio-pci for domain:NAME; again (libvirt retries): exit 0, nothing
     changes; release end: back on its host driver; again: exit 0.  Also an
     <interface type='hostdev'>, and a group named by both its functions;
  2. every other operation exits 0 at once, changing nothing, with real XML,
     with garbage and with nothing on stdin, and without reading stdin;
  3. malformed XML on prepare: exit 1, stderr names the problem, nothing
     changes; an XML <name> other than argv's: refused; a hostdev address
     not on the host: refused naming it;
  4. managed='yes': checked, not bound (stays on its host driver), the start
     allowed, recorded as the domain's (phase libvirt: list-assignments and
     status show it, another consumer and iovirtctl release are refused,
     a retry changes nothing, release end forgets it); on the root filesystem's NVMe or the boot display: refused,
     naming the device and why, nothing changes (nor a managed='no' device
     of the same domain);
  4b. pool devices (<iovirt:device pool='spare'/> in the metadata): one of
     the pool bound at prepare begin, recorded to be attached; a retry the
     same; started begin answers at once, though libvirt does not answer
     (a stalled socket), and the queued attach runs after (logged, the
     device stays bound for the domain);
     two requests take both devices; more than the pool has: refused;
  5. two managed='no' hostdevs, the second's probe failing (the emulator's
     "fail ADDRESS vfio-pci"): exit 1, the first goes back too;
  6. the pinned budget (MemTotal 4 GiB: budget 3.5 GiB): a domain of 3 GiB
     prepares, a second of 1 GiB is refused (OverBudget on stderr);
     DescribeStatus lists domain:NAME with its memory; two groups of one
     domain pin its memory once, or once per function with a vIOMMU; no
     /proc/meminfo: refused, not guessed;
  7. a group another consumer holds (an iovirtctl assign, another domain):
     prepare refused naming the holder; the other's release leaves it be;
  8. a bind that takes 3 s does not hold up another domain's prepare; one
     that takes longer than sd-bus's 25 s default is waited for;
  9. names libvirt allows: one starting with '-', with a space, non-ASCII;
 10. iovirtd not running: a domain without hostdevs starts (exit 0), one
     with a hostdev does not (exit 1, "iovirtd is not running"), release end
     exits 0 -- with iovirtd off the bus, with no bus at all, and with the
     shipped D-Bus activation file failing to start it.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
from testbed import meminfo  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER, HOOK = sys.argv[1:6]
t = Tap()

MIB, GIB = 1 << 20, 1 << 30
E = "org.iovirt1.Error."
NIC = "0000:03:00.0"          # e1000e, enp3s0, a group of its own
USB = "0000:00:14.0"          # xhci_hcd, a group of its own
GPU = "0000:01:00.0"          # nouveau, one group with its HDMI audio function
GPU_AUDIO = "0000:01:00.1"    # snd_hda_intel
NVME = "0000:02:00.0"         # nvme, nvme0n1p2 mounted at /
VGA = "0000:00:02.0"          # i915, boot_vga and fb0
HOST_DRIVER = {NIC: "e1000e", USB: "xhci_hcd", GPU: "nouveau", GPU_AUDIO: "snd_hda_intel", NVME: "nvme",
               VGA: "i915"}
OTHER_OPS = [("start", "begin"), ("started", "begin"), ("stopped", "end"), ("migrate", "begin"),
             ("restore", "begin"), ("reconnect", "begin"), ("attach", "begin"), ("prepare", "end"),
             ("release", "begin"), ("frobnicate", "now")]


# ---- the hook, as libvirt runs it ----

def install_hook(root):
    """The configured hook copied to root/qemu.d/iovirt, its iovirtctl the
    build's.  None (and a failed check) when the configured file is not
    what configure_file should have made."""
    with open(HOOK) as f:
        text = f.read()
    paths = re.findall(r"^iovirtctl=(\S+/iovirtctl)$", text, re.M)
    t.ok(len(paths) == 1 and paths[0].startswith("/") and "@" not in text and 'exec "$iovirtctl"' in text,
         "the configured hook execs iovirtctl by an absolute path (%s), @bindir@ substituted" % paths, text)
    if len(paths) != 1:
        return None
    d = os.path.join(root, "qemu.d")
    os.makedirs(d)
    path = os.path.join(d, "iovirt")
    with open(path, "w") as f:
        f.write(text.replace(paths[0], os.path.abspath(IOVIRTCTL)))
    os.chmod(path, 0o755)
    return path


def libvirt_env(address):
    """What libvirt passes a hook (virCommandAddEnvPassCommon), and the
    test's system bus"""
    e = {k: os.environ[k] for k in ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR") if k in os.environ}
    e.update(LC_ALL="C", DBUS_SYSTEM_BUS_ADDRESS=address)
    return e


class Run:
    def __init__(self, rc, out, err, secs):
        self.rc, self.out, self.err, self.secs = rc, out, err, secs

    def __repr__(self):
        return "exit %s after %.1f s\nstdout: %r\nstderr: %s" % (self.rc, self.secs, self.out, self.err)


def hook(env, name, op, sub, xml, address=None, stdin=None):
    """Runs the hook as libvirt does: NAME OPERATION SUB-OPERATION -, the XML
    on stdin (str or bytes), from /"""
    data = xml.encode() if isinstance(xml, str) else xml
    start = time.monotonic()
    p = subprocess.run([HOOK_PATH, name, op, sub, "-"], input=data if stdin is None else None, stdin=stdin,
                       env=libvirt_env(address or env.bus.address), cwd="/", capture_output=True, timeout=120)
    return Run(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"),
               time.monotonic() - start)


def prepare(env, name, xml, **kw):
    return hook(env, name, "prepare", "begin", xml, **kw)


def release(env, name, xml="", **kw):
    return hook(env, name, "release", "end", xml, **kw)


# ---- domain XML, as virsh dumpxml writes it ----

def pci(addr):
    dom, bus, rest = addr.split(":")
    slot, fn = rest.split(".")
    return "domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'" % (dom, bus, slot, fn)


def hostdev(addr, managed="no", guest_bus=6):
    return ("    <hostdev mode='subsystem' type='pci' managed='%s'>\n"
            "      <driver name='vfio'/>\n"
            "      <source>\n"
            "        <address %s/>\n"
            "      </source>\n"
            "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>\n"
            "    </hostdev>\n" % (managed, pci(addr), guest_bus))


def hostdev_interface(addr, managed="no"):
    return ("    <interface type='hostdev' managed='%s'>\n"
            "      <mac address='52:54:00:6d:90:02'/>\n"
            "      <driver name='vfio'/>\n"
            "      <source>\n"
            "        <address type='pci' %s/>\n"
            "      </source>\n"
            "      <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>\n"
            "    </interface>\n" % (managed, pci(addr)))


USB_HOSTDEV = ("    <hostdev mode='subsystem' type='usb' managed='yes'>\n"
               "      <source>\n"
               "        <vendor id='0x046d'/>\n"
               "        <product id='0xc52b'/>\n"
               "      </source>\n"
               "      <address type='usb' bus='0' port='1'/>\n"
               "    </hostdev>\n")


def domain(name, devs="", memory="<memory unit='KiB'>1048576</memory>", viommu=False, metadata="",
           xml_name=None):
    """A q35 domain as `virsh dumpxml` shows a defined one; devs: hostdev()s
    (and interfaces) in <devices>"""
    current = re.sub(r"</?memory", lambda m: m.group(0).replace("memory", "currentMemory"), memory)
    return """<domain type='kvm'>
  <name>%(name)s</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>%(metadata)s
  </metadata>
  %(memory)s
  %(current)s
  <vcpu placement='static'>2</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmport state='off'/>%(ioapic)s
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='no'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/libvirt/images/%(name)s.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='1' port='0x10'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='sata' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <serial type='pty'>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes'>
      <listen type='address'/>
    </graphics>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </video>
%(devs)s    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>
    </rng>%(iommu)s
  </devices>
</domain>
""" % dict(name=xml_name if xml_name is not None else name, devs=devs, memory=memory, current=current,
           metadata=metadata,
           ioapic="\n    <ioapic driver='qemu'/>" if viommu else "",
           iommu="\n    <iommu model='intel'>\n      <driver intremap='on' caching_mode='on'/>\n    </iommu>"
           if viommu else "")


# ---- what the host says ----

def assignments(env):
    """list-assignments --json: {address: consumer} of every function held"""
    rc, out, err = env.ctl("--json", "list-assignments")
    doc = json.loads(out) if rc == 0 else {}
    return {f["address"]: a["consumer"] for a in doc.get("assignments", []) for f in a["functions"]}


def describe_status(env):
    rc, out, err = env.call("DescribeStatus")
    try:
        return json.loads(ast.literal_eval(out.strip())[0]) if rc == 0 else {}
    except (ValueError, SyntaxError, IndexError):
        return {}


def consumer_status(env, consumer):
    return next((c for c in describe_status(env).get("consumers", []) if c.get("consumer") == consumer), {})


def state(env):
    """Everything a hook could change: drivers, overrides, /dev/vfio, records"""
    return env.snapshot(), env.records()


def set_memtotal(env, memtotal):
    path = os.path.join(env.tb, "proc/meminfo")
    if memtotal is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    with open(path + ".new", "w") as f:
        f.write(meminfo(memtotal))
    os.rename(path + ".new", path)


def refused(what, res, before, env, *words):
    """exit 1, every word in stderr, and the host and state as before"""
    after = state(env)
    missing = [w for w in words if w not in res.err]
    return t.ok(res.rc == 1 and not missing and after == before,
                "%s: exit 1, stderr naming %s, nothing changed" % (what, ", ".join(repr(w) for w in words)),
                "%r\nmissing: %s\nchanged: %s" % (res, missing, after != before))


def clean(env):
    """Gives back whatever a failed part left assigned"""
    for consumer in {rec.get("consumer") for rec in env.records().values()}:
        env.ctl("--no-ask-password", "release", "--consumer", consumer)


# ---- 1. prepare, retry, release, retry ----

def round_trip(env):
    xml = domain("vm1", hostdev(NIC) + USB_HOSTDEV)
    before = state(env)
    res = prepare(env, "vm1", xml)
    t.ok(res.rc == 0 and res.err == "" and res.out == "", "prepare begin, a managed='no' hostdev: exit 0, silent",
         res)
    t.ok(env.driver(NIC) == "vfio-pci" and os.path.exists(os.path.join(env.tb, "dev/vfio", str(env.group_of(NIC)))),
         "%s is on vfio-pci, /dev/vfio/%d is there" % (NIC, env.group_of(NIC)), env.driver(NIC))
    t.ok(assignments(env) == {NIC: "domain:vm1"}, "list-assignments: %s held by domain:vm1" % NIC, assignments(env))
    held = state(env)
    res = prepare(env, "vm1", xml)
    t.ok(res.rc == 0 and res.err == "" and state(env) == held,
         "prepare begin again (libvirt retries): exit 0, nothing changes", res)
    res = release(env, "vm1", xml)
    t.ok(res.rc == 0 and res.err == "" and env.driver(NIC) == HOST_DRIVER[NIC] and assignments(env) == {},
         "release end: exit 0, %s back on %s, nothing held" % (NIC, HOST_DRIVER[NIC]), res)
    t.ok(state(env) == before, "every driver, override and /dev/vfio node as before, no record")
    res = release(env, "vm1", xml)
    t.ok(res.rc == 0 and res.err == "" and state(env) == before, "release end again: exit 0, nothing changes", res)
    # iovirtd restarted while the domain runs: its release end still gives the device back
    res = prepare(env, "vm1", xml)
    env.stop()
    env.start()
    t.ok(res.rc == 0 and assignments(env) == {NIC: "domain:vm1"}, "prepared, then iovirtd restarted: still held",
         res)
    res = release(env, "vm1", xml)
    t.ok(res.rc == 0 and state(env) == before, "release end after the restart gives it back", res)
    res = release(env, "never-prepared", domain("never-prepared"))
    t.ok(res.rc == 0 and state(env) == before, "release end of a domain that got nothing: exit 0", res)

    # <interface type='hostdev'>: prepared the same way
    xml = domain("vm-if", hostdev_interface(NIC))
    res = prepare(env, "vm-if", xml)
    t.ok(res.rc == 0 and env.driver(NIC) == "vfio-pci" and assignments(env) == {NIC: "domain:vm-if"},
         "<interface type='hostdev' managed='no'>: prepared, held by domain:vm-if", res)
    res = release(env, "vm-if", xml)
    t.ok(res.rc == 0 and state(env) == before, "and given back at release end", res)

    # a group named by both its functions: one group, both move, both come back
    xml = domain("vm-gpu", hostdev(GPU, guest_bus=6) + hostdev(GPU_AUDIO, guest_bus=7))
    res = prepare(env, "vm-gpu", xml)
    t.ok(res.rc == 0 and env.driver(GPU) == "vfio-pci" and env.driver(GPU_AUDIO) == "vfio-pci"
         and assignments(env) == {GPU: "domain:vm-gpu", GPU_AUDIO: "domain:vm-gpu"} and len(env.records()) == 1,
         "the GPU and its audio function as two hostdevs: one group, both on vfio-pci", res)
    res = release(env, "vm-gpu", xml)
    t.ok(res.rc == 0 and state(env) == before, "released: nouveau and snd_hda_intel again", res)
    # libvirt reads addresses with strtoul's base 0: bus='3' is bus 3
    xml = domain("vm-dec", hostdev(NIC).replace("bus='0x03'", "bus='3'"))
    res = prepare(env, "vm-dec", xml)
    t.ok(res.rc == 0 and assignments(env) == {NIC: "domain:vm-dec"}, "bus='3' (decimal, as libvirt reads it): %s"
         % NIC, res)
    release(env, "vm-dec")
    t.ok(state(env) == before, "released")


# ---- 2. every other operation ----

def other_operations(env):
    xml = domain("vm2", hostdev(NIC) + hostdev(NVME, "yes"))   # would be refused, were it looked at
    before = state(env)
    log = len(env.log())
    for op, sub in OTHER_OPS:
        for what, stdin in (("the domain XML", xml), ("garbage", b"\xff\xfe<<not xml\x00\x01"), ("nothing", b"")):
            res = hook(env, "vm2", op, sub, stdin)
            t.ok(res.rc == 0 and res.out == "" and res.err == "" and state(env) == before,
                 "%s %s with %s on stdin: exit 0, silent, nothing changes" % (op, sub, what), res)
    t.ok(len(env.log()) == log, "iovirtd was not called for any of them", env.log()[log:])
    # "at once": never waits for stdin (libvirt's writer, a stdin that stays open)
    for op, sub in (("start", "begin"), ("stopped", "end"), ("migrate", "begin")):
        r, w = os.pipe()
        try:
            res = hook(env, "vm2", op, sub, None, stdin=r)
        finally:
            os.close(r)
            os.close(w)
        t.ok(res.rc == 0 and res.secs < 10, "%s %s with a stdin that never ends: exit 0 at once" % (op, sub), res)
    # iovirtctl libvirt-hook itself, with no daemon and no bus
    p = subprocess.run([IOVIRTCTL, "libvirt-hook", "vm2", "started", "begin"], input=xml, text=True,
                       capture_output=True, env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent"))
    t.ok(p.returncode == 0 and p.stderr == "", "iovirtctl libvirt-hook vm2 started begin, no bus: exit 0",
         p.stderr)


# ---- 3. malformed XML, a mismatched name, an address not on the host ----

def bad_xml(env):
    before = state(env)
    good = domain("vm3", hostdev(NIC))
    cases = [
        ("truncated XML", good[:good.index("</devices>")], ["domain XML", "line "]),
        ("a mismatched end tag", good.replace("</vcpu>", "</vcpus>"),
         ["line %d" % (good[:good.index("</vcpu>")].count("\n") + 1), "Opening and ending tag mismatch"]),
        ("empty stdin", "", ["the domain XML is empty"]),
        ("not XML at all", "vm3 is a fine domain\n", ["line 1"]),
        ("bytes that are not UTF-8", b"\xff\xfe<domain", ["UTF-8"]),
        ("a <!DOCTYPE> with an entity", '<!DOCTYPE domain [<!ENTITY x "0x03">]>\n' + good.replace("bus='0x03'",
                                                                                                   "bus='&x;'"),
         ["document type declaration"]),
        ("a root that is not <domain>", "<network><name>vm3</name></network>", ["<network>", "not <domain>"]),
        ("no <memory>", re.sub(r"<(current)?[mM]emory[^<]*</(current)?[mM]emory>", "", good),
         ["no <memory>"]),
        ("<memory unit='parsecs'>", good.replace("unit='KiB'>1048576</memory>", "unit='parsecs'>1</memory>"),
         ["unit='parsecs'"]),
        ("a hostdev address without a bus", good.replace(" bus='0x03'", ""),
         ["hostdev 1 has an address without a bus"]),
        ("a hostdev with slot='0x20'", good.replace("slot='0x00' function='0x0'/>\n      </source>",
                                                    "slot='0x20' function='0x0'/>\n      </source>"),
         ["hostdev 1", "slot='0x20'", "out of range"]),
        ("managed='maybe'", good.replace("managed='no'", "managed='maybe'"), ["hostdev 1 has managed='maybe'"]),
        ("a PCI hostdev without <source>", good.replace("<source>", "<nosource>").replace("</source>",
                                                                                          "</nosource>"),
         ["hostdev 1", "no <source><address>"]),
    ]
    for what, xml, words in cases:
        res = prepare(env, "vm3", xml)
        refused("prepare begin with %s" % what, res, before, env, "vm3", *words)
    res = prepare(env, "vm3", domain("vm3", hostdev(NIC), xml_name="vm4"))
    refused("an XML whose <name> is vm4 for domain vm3", res, before, env, "vm3", "vm4", "InvalidArgument")
    res = prepare(env, "vm3", domain("vm3", hostdev(NIC) + hostdev("0000:09:00.0", guest_bus=7)))
    refused("a hostdev at 0000:09:00.0, which the host does not have", res, before, env,
            "0000:09:00.0", "not on this host")
    res = prepare(env, "vm3", domain("vm3", hostdev("0001:03:00.0")))
    refused("a hostdev in PCI domain 0001", res, before, env, "0001:03:00.0", "not on this host")
    # release end never parses: garbage is fine there
    res = release(env, "vm3", b"\xff garbage")
    t.ok(res.rc == 0 and state(env) == before, "release end with garbage on stdin: exit 0", res)


# ---- 4. managed='yes' ----

def managed(env):
    before = state(env)
    xml = domain("lv-managed", hostdev(NIC, "yes"))
    res = prepare(env, "lv-managed", xml)
    t.ok(res.rc == 0 and res.err == "", "prepare begin with a managed='yes' hostdev (%s): exit 0" % NIC, res)
    t.ok(env.driver(NIC) == HOST_DRIVER[NIC] and env.snapshot() == before[0],
         "not bound by iovirt: %s stays on %s (libvirt binds it)" % (NIC, HOST_DRIVER[NIC]), env.driver(NIC))
    records = env.records()
    held = [r for r in records.values() if r.get("consumer") == "domain:lv-managed"]
    t.ok(len(held) == 1 and held[0]["phase"] == "libvirt" and assignments(env).get(NIC) == "domain:lv-managed",
         "recorded as held by domain:lv-managed, phase libvirt, and list-assignments shows it", records)
    t.ok(consumer_status(env, "domain:lv-managed").get("memory") == GIB,
         "status counts domain:lv-managed's 1 GiB", consumer_status(env, "domain:lv-managed"))
    mid = state(env)
    rc, out, err = env.assign(NIC, "vm-other")
    t.ok(rc != 0 and E + "InUse" in err and "domain:lv-managed" in err and "managed='yes'" in err and state(env) == mid,
         "another consumer is refused the NIC: InUse, naming domain:lv-managed and managed='yes'", (rc, err))
    rc, out, err = env.ctl("--no-ask-password", "release", NIC)
    t.ok(rc != 0 and "libvirt gives it back when the domain stops" in err and state(env) == mid,
         "iovirtctl release of it is refused: libvirt's to give back", (rc, err))
    for how in ("domain:lv-managed", "lv-managed"):
        rc, out, err = env.ctl("--no-ask-password", "release", "--consumer", how)
        t.ok(rc != 0 and "libvirt gives it back when the domain stops" in err and state(env) == mid,
             "release --consumer %s is refused too" % how, (rc, err))
    rc, out, err = env.assign(NIC, "domain:lv-managed")
    t.ok(rc != 0 and E + "InUse" in err and "does not take it over" in err and state(env) == mid,
         "the domain's own Assign of it is refused: iovirt does not take over what libvirt binds", (rc, err))
    res = prepare(env, "lv-managed", domain("lv-managed", hostdev(NIC)))
    t.ok(res.rc != 0 and "managed='yes'" in res.err and state(env) == mid,
         "the same domain now naming it managed='no' is refused until it has stopped", res)
    res = prepare(env, "lv-managed", xml)
    t.ok(res.rc == 0 and state(env) == mid, "prepare begin again (a retry): exit 0, nothing changes", res)
    res = release(env, "lv-managed", xml)
    t.ok(res.rc == 0 and env.driver(NIC) == HOST_DRIVER[NIC] and state(env) == before,
         "release end: exit 0, %s untouched, the record gone" % NIC, res)
    clean(env)
    before = state(env)

    res = prepare(env, "vm-m", domain("vm-m", hostdev(NVME, "yes")))
    refused("a managed='yes' hostdev on the root filesystem's NVMe", res, before, env,
            NVME, "managed", "vm-m", "mounted at /", "nvme0n1p2", "HostCritical")
    t.ok(env.driver(NVME) == "nvme", "%s stays on nvme" % NVME)
    res = prepare(env, "vm-m", domain("vm-m", hostdev(VGA, "yes")))
    refused("a managed='yes' hostdev on the boot display", res, before, env, VGA, "boot display", "HostCritical")
    res = prepare(env, "vm-m", domain("vm-m", hostdev(NVME, "no")))
    refused("a managed='no' hostdev on the root filesystem's NVMe", res, before, env, NVME, "unmanaged",
            "mounted at /", "HostCritical")
    # one device of the domain refused: none is bound, not even the first
    res = prepare(env, "vm-m", domain("vm-m", hostdev(NIC) + hostdev(NVME, "yes", guest_bus=7)))
    refused("a managed='no' NIC and a host-critical managed='yes' NVMe", res, before, env, NVME, "mounted at /")
    t.ok(env.driver(NIC) == HOST_DRIVER[NIC], "the NIC was not bound either", env.driver(NIC))
    res = prepare(env, "vm-m", domain("vm-m", hostdev_interface(NVME, "yes")))
    refused("an <interface type='hostdev' managed='yes'> on the NVMe", res, before, env, NVME, "mounted at /")
    # one IOMMU group, both ways: it moves as one, so that is refused
    res = prepare(env, "vm-m", domain("vm-m", hostdev(GPU, "no") + hostdev(GPU_AUDIO, "yes", guest_bus=7)))
    refused("the GPU managed='no' and its audio function managed='yes'", res, before, env, "both managed='yes' and "
            "managed='no'", "InvalidArgument")
    # a domain asking for a pool the policy does not have: refused -- never started without it
    res = prepare(env, "vm-m", domain("vm-m", metadata=pool_request("gpus")))
    refused("a domain asking for a device of pool 'gpus', which the policy does not have", res, before, env,
            "vm-m", "no pool 'gpus'", "iovirtctl policy")
    clean(env)


def pool_request(*pools):
    return "".join("\n    <iovirt:device xmlns:iovirt=\"https://iovirt.org/xmlns/domain/1\" pool=\"%s\"/>" % p
                   for p in pools)


# ---- 4b. pool devices: bound at prepare begin, attached at started begin ----

def pools(env):
    policy = os.path.join(env.tb, "etc/iovirt/policy.d")
    os.makedirs(policy, exist_ok=True)
    with open(os.path.join(policy, "50-spare.conf"), "w") as f:
        f.write("[Pool spare]\nDevices=%s %s\n" % (NIC, USB))
    rc, _, err = env.ctl("--no-ask-password", "reload")
    t.ok(rc == 0, "a policy with pool 'spare' (the NIC and the USB controller) is loaded", err)
    before = state(env)
    xml = domain("vm-pool", metadata=pool_request("spare"))
    res = prepare(env, "vm-pool", xml)
    held = {a: c for a, c in assignments(env).items() if c == "domain:vm-pool"}
    records = [r for r in env.records().values() if r.get("consumer") == "domain:vm-pool"]
    t.ok(res.rc == 0 and len(held) == 1 and list(held)[0] in (NIC, USB) and env.driver(list(held)[0]) == "vfio-pci"
         and len(records) == 1 and records[0].get("libvirt_attach") is True,
         "prepare begin with a request of pool 'spare': one of its devices on vfio-pci for domain:vm-pool, its "
         "record to be attached once the domain runs", (res, held, records))
    mid = state(env)
    res = prepare(env, "vm-pool", xml)
    t.ok(res.rc == 0 and state(env) == mid, "prepare begin again (a retry): the same device, nothing changes", res)

    # started begin: queued and answered at once, though libvirt does not answer (a stalled socket): the
    # attach waits for libvirt after the hook, never the hook
    stalled = harness.Stalled(os.path.join(env.root, "stalled-libvirt"))
    try:
        env.stop()
        env.start(IOVIRT_LIBVIRT_URI="qemu+unix:///system?socket=" + os.path.join(env.root, "stalled-libvirt"),
                  IOVIRT_LIBVIRT_TIMEOUT="3")
        res = hook(env, "vm-pool", "started", "begin", xml)
        t.ok(res.rc == 0 and res.err == "" and res.secs < 2,
             "started begin with libvirt stalled: exit 0 in %.2f s (the attach is queued)" % res.secs, res)
        logged = harness.wait_until(lambda: "Could not attach group" in env.log() and "did not answer" in env.log())
        t.ok(logged and state(env) == mid, "the queued attach ran after the hook: libvirt did not answer, the log "
             "says so, and the device stays bound for the domain", env.log()[-600:])
    finally:
        stalled.close()
        env.stop()
        env.start()
    res = release(env, "vm-pool", xml)
    t.ok(res.rc == 0 and state(env) == before, "release end: the pool device back on its driver", res)

    res = prepare(env, "vm-pool", domain("vm-pool", metadata=pool_request("spare", "spare")))
    held = sorted(a for a, c in assignments(env).items() if c == "domain:vm-pool")
    t.ok(res.rc == 0 and held == sorted([NIC, USB]), "two requests of pool 'spare': both of its devices", (res, held))
    res = release(env, "vm-pool", xml)
    t.ok(res.rc == 0 and state(env) == before, "release end: both back", res)
    res = prepare(env, "vm-pool", domain("vm-pool", hostdev(NIC), metadata=pool_request("spare", "spare")))
    refused("a managed='no' NIC and two requests of pool 'spare' (which has the NIC too)", res, before, env,
            "pool 'spare'", "taken by the same request", "InUse")
    os.unlink(os.path.join(policy, "50-spare.conf"))
    env.ctl("--no-ask-password", "reload")
    clean(env)


# ---- 5. all or none ----

def all_or_none(env):
    before = state(env)
    xml = domain("vm-two", hostdev(NIC, guest_bus=6) + hostdev(USB, guest_bus=7))
    env.faults("fail %s vfio-pci\n" % USB)
    try:
        res = prepare(env, "vm-two", xml)
    finally:
        env.faults("")
    refused("two managed='no' hostdevs, vfio-pci's probe of the second (%s) failing" % USB, res, before, env,
            "vm-two", USB, "BindFailed")
    t.ok(env.driver(NIC) == HOST_DRIVER[NIC] and env.driver(USB) == HOST_DRIVER[USB] and assignments(env) == {},
         "the first (%s) went back to %s too; nothing is held" % (NIC, HOST_DRIVER[NIC]),
         (env.driver(NIC), env.driver(USB), assignments(env)))
    t.ok(re.search(r"%s went to vfio-pci.*%s went to e1000e" % (re.escape(NIC), re.escape(NIC)), env.log(), re.S),
         "the log shows %s bound and put back" % NIC, env.log()[-1500:])
    res = prepare(env, "vm-two", xml)
    t.ok(res.rc == 0 and assignments(env) == {NIC: "domain:vm-two", USB: "domain:vm-two"},
         "the fault lifted, libvirt starts it again: both held by domain:vm-two", res)
    res = release(env, "vm-two", xml)
    t.ok(res.rc == 0 and state(env) == before, "release end gives both back", res)
    clean(env)


# ---- 6. the pinned budget ----

def budget(env):
    set_memtotal(env, 4 * GIB)         # a reserve of 512 MiB (the floor): a budget of 3.5 GiB
    try:
        st = describe_status(env).get("budget", {})
        t.ok(st.get("budget") == 3584 * MIB, "MemTotal 4 GiB: a budget of 3.5 GiB", st)
        big = domain("big", hostdev(NIC), memory="<memory unit='KiB'>3145728</memory>")
        res = prepare(env, "big", big)
        t.ok(res.rc == 0 and assignments(env) == {NIC: "domain:big"}, "domain big, 3 GiB: prepared", res)
        c = consumer_status(env, "domain:big")
        t.ok(c.get("memory") == 3 * GIB and c.get("pinned") == 3 * GIB and c.get("groups") == [env.group_of(NIC)],
             "DescribeStatus lists domain:big with its memory, 3 GiB, pinned", c)
        before = state(env)
        small = domain("small", hostdev(USB), memory="<memory unit='GiB'>1</memory>")
        res = prepare(env, "small", small)
        refused("domain small, 1 GiB (unit='GiB')", res, before, env, "OverBudget", USB, "1.0 GiB asked",
                "3.0 GiB already pinned", "budget 3.5 GiB")
        t.ok(env.driver(USB) == HOST_DRIVER[USB], "%s stays on %s" % (USB, HOST_DRIVER[USB]))
        res = prepare(env, "big", big)
        t.ok(res.rc == 0 and state(env) == before, "big again (a retry) is not counted twice: exit 0", res)
        release(env, "big")
        # memory hotplug: what the guest may grow to counts, as libvirt sizes its memlock
        grow = domain("grow", hostdev(USB), memory="<memory unit='GiB'>1</memory>").replace(
            "<memory", "<maxMemory slots='4' unit='GiB'>4</maxMemory>\n  <memory", 1)
        before = state(env)
        res = prepare(env, "grow", grow)
        refused("domain grow, 1 GiB growing to <maxMemory> 4 GiB", res, before, env, "OverBudget", "4.0 GiB asked",
                "budget 3.5 GiB")
        res = prepare(env, "small", small)
        t.ok(res.rc == 0 and consumer_status(env, "domain:small").get("memory") == GIB,
             "big released: small prepares, DescribeStatus lists its 1 GiB", res)
        release(env, "small")

        # two groups of one domain: its memory pinned once (libvirt's rule) ...
        two = domain("two", hostdev(NIC) + hostdev(USB, guest_bus=7), memory="<memory unit='GiB'>3</memory>")
        res = prepare(env, "two", two)
        c = consumer_status(env, "domain:two")
        t.ok(res.rc == 0 and c.get("pinned") == 3 * GIB and sorted(c.get("groups", [])) ==
             sorted([env.group_of(NIC), env.group_of(USB)]),
             "a domain of 3 GiB with two groups: prepared, 3 GiB pinned once", (res, c))
        release(env, "two")
        # ... and once per VFIO function with a vIOMMU: 2 x 2 GiB is over 3.5 GiB
        before = state(env)
        res = prepare(env, "viommu", domain("viommu", hostdev(NIC) + hostdev(USB, guest_bus=7),
                                            memory="<memory unit='GiB'>2</memory>", viommu=True))
        c = consumer_status(env, "domain:viommu")
        refused("a domain of 2 GiB with a vIOMMU and two groups (4 GiB pinned)", res, before, env, "OverBudget")
        total = describe_status(env).get("budget", {}).get("budget") or 0
        t.ok(c.get("pinned", 0) <= total, "no budget overrun: DescribeStatus pins %s of a %s budget" %
             (c.get("pinned", 0), total), c)
        release(env, "viommu")
        res = prepare(env, "viommu1", domain("viommu1", hostdev(NIC), memory="<memory unit='GiB'>2</memory>",
                                             viommu=True))
        c = consumer_status(env, "domain:viommu1")
        t.ok(res.rc == 0 and c.get("viommu") is True and c.get("pinned") == 2 * GIB,
             "a vIOMMU domain of 2 GiB with one group: prepared, viommu in DescribeStatus", (res, c))
        release(env, "viommu1")

        # no MemTotal to judge by: refused, not guessed
        set_memtotal(env, None)
        before = state(env)
        res = prepare(env, "big", big)
        refused("no /proc/meminfo, a domain naming its memory", res, before, env, NIC, "MemTotal could not be read",
                "pinned budget")
    finally:
        set_memtotal(env, 64 * GIB)
        clean(env)


# ---- 7. a group another consumer holds ----

def held_by_other(env):
    rc, out, err = env.ctl("--no-ask-password", "assign", NIC, "--to", "vm-other")
    t.ok(rc == 0 and assignments(env) == {NIC: "vm-other"}, "iovirtctl assign %s --to vm-other" % NIC, out + err)
    before = state(env)
    for m in ("no", "yes"):
        res = prepare(env, "vm5", domain("vm5", hostdev(NIC, m)))
        refused("vm5 with managed='%s' %s, which vm-other holds" % (m, NIC), res, before, env, NIC, "vm-other",
                "InUse")
    res = release(env, "vm5")
    t.ok(res.rc == 0 and state(env) == before, "vm5's release end leaves vm-other's group be", res)
    env.ctl("--no-ask-password", "release", "--consumer", "vm-other")

    xml_a = domain("vm-a", hostdev(NIC))
    res = prepare(env, "vm-a", xml_a)
    t.ok(res.rc == 0 and assignments(env) == {NIC: "domain:vm-a"}, "vm-a prepared with %s" % NIC, res)
    before = state(env)
    res = prepare(env, "vm-b", domain("vm-b", hostdev(USB) + hostdev(NIC, guest_bus=7)))
    refused("vm-b asking for %s too" % NIC, res, before, env, NIC, "domain:vm-a", "InUse")
    t.ok(env.driver(USB) == HOST_DRIVER[USB], "vm-b's other hostdev (%s) was not bound" % USB)
    res = release(env, "vm-b")
    t.ok(res.rc == 0 and state(env) == before, "vm-b's release end leaves vm-a's group be", res)
    # a consumer name that happens to be "domain:vm-a" is vm-a: the same holder
    res = release(env, "vm-a", xml_a)
    t.ok(res.rc == 0 and assignments(env) == {}, "vm-a's release end gives it back", res)
    clean(env)


# ---- 8. a bind that takes long ----

def hook_bg(env, name, op, sub, xml):
    p = subprocess.Popen([HOOK_PATH, name, op, sub, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=libvirt_env(env.bus.address), cwd="/", text=True)
    p.stdin.write(xml)
    p.stdin.close()
    p.stdin = None          # communicate() then only reads
    return p


def slow_binds(env):
    before = state(env)
    env.faults("slow %s 3000\n" % NIC)
    try:
        p = hook_bg(env, "vm-slow", "prepare", "begin", domain("vm-slow", hostdev(NIC)))
        under_way = harness.wait_until(lambda: assignments(env).get(NIC) == "domain:vm-slow")
        res = prepare(env, "vm-fast", domain("vm-fast", hostdev(USB)))
        t.ok(under_way and res.rc == 0 and p.poll() is None and env.driver(USB) == "vfio-pci",
             "while vm-slow's bind of %s takes 3 s, vm-fast's prepare begin goes through" % NIC, res)
        out, err = p.communicate(timeout=60)
        t.ok(p.returncode == 0 and env.driver(NIC) == "vfio-pci", "then vm-slow's exits 0, %s on vfio-pci" % NIC,
             err)
    finally:
        env.faults("")
    release(env, "vm-slow")
    release(env, "vm-fast")
    t.ok(state(env) == before, "both released")
    # libvirt's release end while the prepare still binds (a prepare that timed out, a start that failed):
    # libvirt never calls it again, and holds the domain until the hook returns (a job may be waiting on
    # libvirt), so the hook is answered at once and the group goes back when the job ends
    env.faults("slow %s 3000\n" % NIC)
    try:
        p = hook_bg(env, "vm-gone", "prepare", "begin", domain("vm-gone", hostdev(NIC)))
        under_way = harness.wait_until(lambda: assignments(env).get(NIC) == "domain:vm-gone")
        res = release(env, "vm-gone")
        answered = p.poll() is None
        p.communicate(timeout=60)
    finally:
        env.faults("")
    back = harness.wait_until(lambda: not assignments(env) and env.driver(NIC) == HOST_DRIVER[NIC])
    t.ok(under_way and res.rc == 0 and answered and back,
         "release end during vm-gone's 3 s bind: answered before the bind is over, and %s goes back once it "
         "is" % NIC, (res, answered, assignments(env)))
    # longer than sd-bus's default 25 s: the hook waits, it does not leave iovirtd binding behind its back
    env.faults("slow %s 27000\n" % NIC)
    try:
        res = prepare(env, "vm-long", domain("vm-long", hostdev(NIC)))
    finally:
        env.faults("")
    t.ok(res.rc == 0 and res.secs > 25 and assignments(env) == {NIC: "domain:vm-long"},
         "a bind of 27 s (beyond sd-bus's 25 s default): the hook waits for it, exit 0", res)
    release(env, "vm-long")
    t.ok(state(env) == before, "released")
    clean(env)


# ---- 9. names libvirt allows ----

def names(env):
    before = state(env)
    for name in ("-web", "web server", "vm-\u00fc", "db.example.org"):
        res = prepare(env, name, domain(name))
        t.ok(res.rc == 0 and res.err == "", "domain %r without hostdevs: prepare begin exits 0" % name, res)
        res = prepare(env, name, domain(name, hostdev(NIC)))
        t.ok(res.rc == 0 and assignments(env) == {NIC: "domain:" + name},
             "domain %r with a hostdev: held by domain:%s" % (name, name), res)
        res = release(env, name)
        t.ok(res.rc == 0 and state(env) == before, "domain %r: release end gives it back" % name, res)
        clean(env)


# ---- 10. iovirtd not running ----

def activation_bus(root):
    """A system bus with the shipped activation file for org.iovirt1 (its
    Exec=/bin/false: what a host without systemd, or with iovirtd masked or
    failing, answers) and no helper"""
    d = os.path.join(root, "activation")
    os.makedirs(os.path.join(d, "services"))
    shutil.copy(os.path.join(HERE, "..", "..", "data", "dbus-1", "system-services", "org.iovirt1.service"),
                os.path.join(d, "services"))
    sock = os.path.join(d, "system_bus_socket")
    with open(os.path.join(HERE, "system-bus.conf.in")) as f:
        text = f.read().replace("@SOCKET@", sock).replace(
            "@POLICY@", os.path.join(HERE, "..", "..", "data", "dbus-1", "system.d", "org.iovirt1.conf"))
    text = text.replace("<auth>EXTERNAL</auth>",
                        "<auth>EXTERNAL</auth>\n  <servicedir>%s</servicedir>" % os.path.join(d, "services"))
    with open(os.path.join(d, "system.conf"), "w") as f:
        f.write(text)
    p = subprocess.Popen(["dbus-daemon", "--config-file=" + os.path.join(d, "system.conf"), "--nofork",
                          "--print-address=1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p, p.stdout.readline().strip()


def not_running(env):
    env.stop()
    before = state(env)
    plain = domain("vm7")
    one = domain("vm7", hostdev(NIC))
    act, act_address = activation_bus(env.root)
    try:
        for where, address in (("iovirtd off the bus", None), ("no system bus at all", "unix:path=/nonexistent"),
                               ("the activation file failing to start iovirtd", act_address)):
            res = prepare(env, "vm7", plain, address=address)
            t.ok(res.rc == 0 and res.err == "", "%s: a domain without hostdevs starts (exit 0)" % where, res)
            res = prepare(env, "vm7", domain("vm7", USB_HOSTDEV), address=address)
            t.ok(res.rc == 0, "%s: a domain with only a USB hostdev starts (exit 0)" % where, res)
            res = prepare(env, "vm7", one, address=address)
            t.ok(res.rc == 1 and "iovirtd is not running" in res.err and "vm7" in res.err and state(env) == before,
                 "%s: a domain with a PCI hostdev does not (exit 1, \"iovirtd is not running\")" % where, res)
            for what, xml in (("managed='yes'", domain("vm7", hostdev(NIC, "yes"))),
                              ("<interface type='hostdev'>", domain("vm7", hostdev_interface(NIC)))):
                res = prepare(env, "vm7", xml, address=address)
                t.ok(res.rc == 1 and "iovirtd is not running" in res.err,
                     "%s: nor one with a %s hostdev, which cannot be checked" % (where, what), res)
            res = release(env, "vm7", one, address=address)
            t.ok(res.rc == 0 and res.err == "", "%s: release end exits 0" % where, res)
            res = hook(env, "vm7", "stopped", "end", one, address=address)
            t.ok(res.rc == 0, "%s: stopped end exits 0" % where, res)
    finally:
        act.terminate()
        act.wait(10)
        env.start()
    t.ok(state(env) == before, "nothing changed while iovirtd was away")


def left_behind(root):
    """iovirt removed, its hook left in /etc (it goes there whatever the
    prefix): VMs without a hostdev start, one with a hostdev is refused
    saying what to do, release passes"""
    d = os.path.join(root, "orphan")
    os.makedirs(d)
    path = os.path.join(d, "iovirt")
    with open(HOOK_PATH) as f:
        text = re.sub(r"^iovirtctl=\S+$", "iovirtctl=/nonexistent/bin/iovirtctl", f.read(), flags=re.M)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)

    def run(op, sub, xml):
        p = subprocess.run([path, "vm-o", op, sub, "-"], input=xml.encode(), capture_output=True, timeout=30,
                           env=libvirt_env("unix:path=/nonexistent"), cwd="/")
        return p.returncode, p.stderr.decode()
    rc, err = run("prepare", "begin", domain("vm-o"))
    t.ok(rc == 0 and err == "", "iovirtctl gone: a domain without hostdevs still starts", (rc, err))
    rc, err = run("prepare", "begin", domain("vm-o", hostdev(NIC)))
    t.ok(rc == 1 and "/nonexistent/bin/iovirtctl is missing" in err and "remove " + path in err,
         "iovirtctl gone: one with a hostdev is refused, naming the missing program and the hook to remove", err)
    rc, err = run("release", "end", domain("vm-o", hostdev(NIC)))
    t.ok(rc == 0, "iovirtctl gone: release end exits 0", (rc, err))


def main():
    global HOOK_PATH
    root = tempfile.mkdtemp(prefix="iovirt-hook.")
    try:
        HOOK_PATH = install_hook(root)
        if not HOOK_PATH:
            return t.done()
        left_behind(root)
        from hosts import HOSTS
        host = HOSTS["desktop"]()
        host.memtotal = 64 * GIB
        env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host)
        try:
            t.ok(all(env.driver(a) == d for a, d in HOST_DRIVER.items()),
                 "the desktop host: every device on its host driver", {a: env.driver(a) for a in HOST_DRIVER})
            for part in (round_trip, other_operations, bad_xml, managed, pools, all_or_none, budget, held_by_other,
                         slow_binds, names, not_running):
                try:
                    part(env)
                except Exception:          # one part's surprise does not hide the others' results
                    import traceback
                    t.ok(False, "%s ran to its end" % part.__name__, traceback.format_exc())
                    env.faults("")
                    if env.daemon.poll() is not None:
                        env.start()
                    clean(env)
            t.ok(env.daemon.poll() is None, "iovirtd is still up")
        finally:
            env.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


sys.exit(main())
