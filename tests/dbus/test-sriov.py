#!/usr/bin/env python3
"""test-sriov.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: SR-IOV through
`iovirtctl sriov`, selectors and the claim rules, against iovirtd on the
emulated "sriov" host, whose sysfs behaves like the kernel's
(tests/emulator: sriov_numvfs creates and removes VFs, refuses a change
between two non-zero counts with EBUSY and a PF whose driver has no
sriov_configure with ENOENT, and probes new VFs unless
sriov_drivers_autoprobe is 0).  The testbed's sysfs is the oracle for every
change.  TAP output.

  - usage: every malformed count, selector, MAC, VLAN and on/off value, and
    every option that does not go with another, exits 2 before the bus is
    contacted (a socket that counts connections), as text and as one JSON
    error object named "usage";
  - the PF and its VFs described as sysfs has them;
  - 0 -> N, and N -> M through 0; a count above the total, a function that
    is no PF, a VF where a PF is expected, a PF whose driver cannot make VFs
    (the kernel's ENOENT named): refused and nothing changed;
  - claims: a shrink that would remove an assigned VF, a PF while one of
    its VFs is assigned (reason sriov-claimed), a VF while its PF is
    assigned; released, each claim is lifted;
  - selectors: the lowest free VF of a range, then the next; an index at or
    above the total is a usage error, found out from iovirtd;
  - --autoprobe no: VFs without a driver; MAC and VLAN on a PF without a
    network interface refused with the reason;
  - --persist: the count back after a reboot of the emulated host (the VFs
    removed behind iovirtd's back, a new boot id), restored before the
    assignments are reconciled;
  - a VFIO variant driver (mlx5_vfio_pci) chosen for a ConnectX-like VF
    and named in the plan with its reason, bound and released; --driver
    vfio-pci over it, and a host driver refused as --driver.
"""

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
from cli_errors import error_object  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
t = Tap()
ERR = "org.iovirt1.Error."


# ---- usage: before the bus, with nothing to answer ----
def usage():
    tmp = tempfile.mkdtemp(prefix="iovirt-sriov-usage.")
    path = os.path.join(tmp, "system_bus_socket")
    bus = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bus.bind(path)
    bus.listen(16)
    bus.setblocking(False)
    env = dict(os.environ, LC_ALL="C", DBUS_SYSTEM_BUS_ADDRESS="unix:path=" + path,
               UMOCKDEV_DIR="/nonexistent-testbed")
    env.pop("IOVIRT_ROOT", None)

    def run(args):
        try:
            p = subprocess.run([IOVIRTCTL] + args, env=env, capture_output=True, text=True, timeout=20)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = None, "", "timed out (waiting for a bus?)"
        conns = 0
        while True:
            try:
                bus.accept()[0].close()
                conns += 1
            except BlockingIOError:
                return rc, out, err, conns

    cases = [
        (["sriov", "enp5s0f0", "--vfs", "-1"], "--vfs wants a number of VFs"),
        (["sriov", "enp5s0f0", "--vfs", "x"], "--vfs wants a number of VFs"),
        (["sriov", "enp5s0f0", "--vfs", ""], "--vfs wants a number of VFs"),
        (["sriov", "enp5s0f0", "--vfs", "+1"], "--vfs wants a number of VFs"),
        (["sriov", "enp5s0f0", "--vfs", "0x4"], "--vfs wants a number of VFs"),
        (["sriov", "enp5s0f0", "--vfs", "99999999999"], "--vfs wants a number of VFs"),
        (["sriov", "enp5s0f0", "--vfs", "65536"], "at most 65535"),
        (["sriov", "enp5s0f0", "--vfs"], "--vfs needs a value"),
        (["sriov", "enp5s0f0#0", "--vfs", "2"], "--vfs wants a PF, not the VF selector 'enp5s0f0#0'"),
        (["sriov", "0000:05:00.0#1-2", "--vfs", "2"], "--vfs wants a PF"),
        (["sriov", "enp5s0f0", "--mac", "02:00:00:00:00:01"], "name it as PF#N"),
        (["sriov", "enp5s0f0", "--vlan", "5"], "name it as PF#N"),
        (["sriov", "enp5s0f0", "--trust", "on"], "name it as PF#N"),
        (["sriov", "enp5s0f0", "--vfs", "2", "--mac", "02:00:00:00:00:01"], "one of them at a time"),
        (["sriov", "enp5s0f0#0-1", "--mac", "02:00:00:00:00:01"], "names 2 VFs"),
        (["sriov", "enp5s0f0#0,3", "--spoofchk", "off"], "names 2 VFs"),
        (["sriov", "enp5s0f0#0", "--mac", "zz:00:00:00:00:01"], "--mac 'zz:00:00:00:00:01'"),
        (["sriov", "enp5s0f0#0", "--mac", "02:00:00:00:01"], "--mac '02:00:00:00:01'"),
        (["sriov", "enp5s0f0#0", "--mac", "01:00:5e:00:00:01"], "unicast"),
        (["sriov", "enp5s0f0#0", "--mac", "ff:ff:ff:ff:ff:ff"], "unicast"),
        (["sriov", "enp5s0f0#0", "--vlan", "4096"], "--vlan '4096'"),
        (["sriov", "enp5s0f0#0", "--vlan", "-1"], "--vlan '-1'"),
        (["sriov", "enp5s0f0#0", "--vlan", "x"], "--vlan 'x'"),
        (["sriov", "enp5s0f0#0", "--spoofchk", "maybe"], "--spoofchk wants on or off"),
        (["sriov", "enp5s0f0#0", "--trust", ""], "--trust wants on or off"),
        (["sriov", "enp5s0f0", "--vfs", "2", "--autoprobe", "maybe"], "--autoprobe wants yes or no"),
        (["sriov", "enp5s0f0", "--autoprobe", "no"], "--autoprobe goes with --vfs N"),
        (["sriov", "enp5s0f0", "--persist"], "--persist goes with --vfs N or a VF's settings"),
        (["sriov", "enp5s0f0", "--no-persist"], "--no-persist goes with --vfs N"),
        (["sriov", "enp5s0f0#0", "--mac", "02:00:00:00:00:01", "--no-persist"], "--no-persist goes with --vfs N"),
        (["sriov", "enp5s0f0", "--vfs", "1", "--persist", "--no-persist"], "contradict each other"),
        (["sriov", "enp5s0f0#0"], "'enp5s0f0#0' is a VF"),
        (["sriov"], "usage: iovirtctl sriov"),
        (["sriov", "a", "b"], "usage: iovirtctl sriov"),
        (["sriov", "enp5s0f0", "--direct"], "cannot be done --direct"),
        (["sriov", "99:99.9"], "device number is out of range"),
        (["sriov", "enp5s0f0", "--to", "vm"], "assign only"),
        (["list-groups", "--vfs", "2"], "go with sriov only"),
        (["assign", "05:00.0", "--to", "vm", "--persist"], "go with sriov only"),
        (["show", "05:00.0", "--mac", "02:00:00:00:00:01"], "go with sriov only"),
        # selectors, wherever a TARGET or a DEVICE is taken
        (["assign", "enp5s0f0#", "--to", "vm"], "the range after '#' is empty"),
        (["assign", "enp5s0f0#3-1", "--to", "vm"], "reversed"),
        (["assign", "enp5s0f0#a", "--to", "vm"], "not a VF selector"),
        (["assign", "enp5s0f0#-1", "--to", "vm"], "not a VF selector"),
        (["assign", "enp5s0f0#1-", "--to", "vm"], "not a VF selector"),
        (["assign", "enp5s0f0#0,,1", "--to", "vm"], "not a VF selector"),
        (["assign", "enp5s0f0#+1", "--to", "vm"], "not a VF selector"),
        (["assign", "enp5s0f0#99999999", "--to", "vm"], "not a VF selector"),
        (["assign", "0000:05:00.0#0,2-", "--to", "vm"], "not a VF selector"),
        (["assign", "99:99.9#0", "--to", "vm"], "device number is out of range"),
        (["assign", "group:3#0", "--to", "vm"], "not a valid PCI address"),
        (["assign", "enp5s0f0#0", "--to", "vm", "--dry-run", "--mac", "02:00:00:00:00:01"], "go with sriov only"),
        (["release", "enp5s0f0#x"], "not a VF selector"),
        (["release", "enp5s0f0#2-0"], "reversed"),
        (["show", "enp5s0f0#"], "the range after '#' is empty"),
        (["show", "enp5s0f0#0-3"], "names 4 VFs"),
        (["show", "enp5s0f0#0,1"], "names 2 VFs"),
    ]
    for args, text in cases:
        rc, out, err, conns = run(args)
        t.ok(rc == 2 and text in err and not out and not conns,
             "usage: iovirtctl %s: exit 2 before the bus" % " ".join(repr(a) if not a else a for a in args),
             "want '%s'; exit %s, %d connections\nstdout: %s\nstderr: %s" % (text, rc, conns, out, err))
        if args[-1] in ("--vfs",):
            continue
        rc, out, err, conns = run(["--json"] + args)
        e = error_object(out)
        t.ok(rc == 2 and e and e["name"] == "usage" and text in e["message"] and not err and not conns,
             "usage: iovirtctl --json %s: one error object named usage" % " ".join(args),
             "exit %s, %d connections\nstdout: %s\nstderr: %s" % (rc, conns, out, err))
    # well formed: these do reach for the bus, which is what the above are told apart from
    for args in (["sriov", "enp5s0f0", "--vfs", "4", "--autoprobe", "no", "--persist", "--no-ask-password"],
                 ["sriov", "enp5s0f0#3", "--mac", "02:00:00:00:00:01", "--vlan", "4095", "--spoofchk", "on",
                  "--trust", "off", "--persist"],
                 ["assign", "enp5s0f0#0,2-7", "--to", "vm"], ["show", "0000:05:00.0#1"]):
        p = subprocess.Popen([IOVIRTCTL] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            conn = None
            if select.select([bus], [], [], 20)[0]:
                conn = bus.accept()[0]
        finally:
            p.kill()
            p.communicate()
        t.ok(conn is not None, "iovirtctl %s is well formed: it contacts the bus" % " ".join(args))
        if conn:
            conn.close()
    bus.close()
    shutil.rmtree(tmp, ignore_errors=True)


# ---- the emulated host ----
class Host:
    """What the sriov host holds, found from its description (tests/hosts)"""

    def __init__(self, desc):
        pfs = [d for d in desc.devices if d.sriov and not d.is_vf]
        vfio = lambda m: m == "vfio-pci" or m.endswith("_vfio_pci")  # noqa: E731
        variants = {m for _, m in getattr(desc, "aliases", ()) if vfio(m)}

        def one(pred):
            found = [d for d in pfs if pred(d)]
            return found[0] if found else None
        self.nocfg = one(lambda d: d.sriov.get("sriov_configure") is False)
        self.big = one(lambda d: d.sriov["total"] >= 256)
        self.cx = one(lambda d: d.vendor == 0x15b3 and variants and d.sriov.get("sriov_configure", True))
        self.nic = one(lambda d: d.net and d.sriov["total"] == 8 and d.sriov.get("sriov_configure", True)
                       and d is not self.cx)
        self.nonet = one(lambda d: not d.net and d.sriov.get("sriov_configure", True) and d is not self.big
                         and d is not self.cx)
        # an endpoint without SR-IOV (class 06: bridges)
        self.plain = next((d for d in desc.devices if not d.sriov and not d.is_vf and d.cls >> 16 != 0x06), None)
        self.variants = variants

    def missing(self):
        return [n for n in ("nic", "nocfg", "nonet", "big", "cx", "plain") if getattr(self, n) is None]


def Env(host):
    return harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host)


def attr(env, addr, name):
    """A PF's attribute as the testbed's sysfs has it (None if absent)"""
    try:
        with open(os.path.join(env.tb, "sys/bus/pci/devices", addr, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def numvfs(env, pf):
    return int(attr(env, pf, "sriov_numvfs"))


def virtfns(env, pf):
    """VF index -> address, from the PF's virtfnN links"""
    d = os.path.join(env.tb, "sys/bus/pci/devices", pf)
    return {int(n[6:]): os.path.basename(os.readlink(os.path.join(d, n)))
            for n in os.listdir(d) if re.fullmatch(r"virtfn\d+", n)}


def ctl(env, *args):
    return env.ctl("--no-ask-password", *args)


def ctl_direct(env, *args):
    """iovirtctl --direct, reading the testbed as iovirtd does"""
    p = subprocess.run([IOVIRTCTL, "--direct"] + list(args), capture_output=True, text=True, timeout=120,
                       env=env.bus.env(COLUMNS="200", UMOCKDEV_DIR=env.tb, IOVIRT_ROOT=env.tb, LD_PRELOAD=env.preload))
    return p.returncode, p.stdout, p.stderr


def jerr(out):
    return error_object(out) or {}


def refused(what, res, name, *words, rc=1):
    """iovirtctl --json ARGS: exit RC, one error object NAME naming WORDS"""
    got, out, err = res
    e = jerr(out)
    return t.ok(got == rc and e.get("name") == name and all(w in e.get("message", "") for w in words),
                "%s: exit %d, %s%s" % (what, rc, name.replace(ERR, ""),
                                        ", naming " + ", ".join(words) if words else ""),
                "exit %s\nstdout: %s\nstderr: %s" % (got, out, err))


def describe(env, pf):
    rc, out, err = ctl(env, "--json", "sriov", pf)
    try:
        return json.loads(out) if rc == 0 else None
    except ValueError:
        return None


def lifecycle(env, h):
    nic, addr = h.nic, h.nic.addr
    iface = h.nic.net
    total = h.nic.sriov["total"]

    # what it shows is what sysfs has
    doc = describe(env, iface)
    t.ok(doc and doc["pf"]["address"] == addr and doc["pf"]["interface"] == iface and
         doc["pf"]["total_vfs"] == int(attr(env, addr, "sriov_totalvfs")) == total and
         doc["pf"]["num_vfs"] == numvfs(env, addr) and len(doc["vfs"]) == numvfs(env, addr) and
         doc["pf"]["driver"] == env.driver(addr),
         "sriov %s --json: the PF as sysfs has it (%s, %d VFs in total)" % (iface, addr, total), doc)
    rc, out, err = ctl(env, "sriov", addr)
    first = out.splitlines()[0] if out else ""
    t.ok(rc == 0 and addr in first and iface in first and ("%d of %d VFs" % (numvfs(env, addr), total)) in first,
         "sriov PF: the PF's line names its address, interface and VF counts", out + err)

    # 0 -> 4
    if numvfs(env, addr):
        ctl(env, "sriov", addr, "--vfs", "0")
    rc, out, err = ctl(env, "sriov", iface, "--vfs", "4")
    vfs = virtfns(env, addr)
    t.ok(rc == 0 and numvfs(env, addr) == 4 and sorted(vfs) == [0, 1, 2, 3],
         "sriov PF --vfs 4: sriov_numvfs is 4, virtfn0-3 are there", out + err)
    t.ok(re.search(r"%s: 0 -> 4 VFs in [0-9.]+ ms" % re.escape(addr), out) and "through 0" not in out,
         "it says what changed: 0 -> 4 VFs, and how long the kernel took", out)
    rows = [line for line in out.splitlines() if re.match(r"\s*\d+\s+[0-9a-f]{4}:", line)]
    t.ok(len(rows) == 4 and all(vfs[i] in rows[i] for i in range(4)),
         "then the table: one row per VF, in index order, with its address", out)
    doc = describe(env, addr)
    got = {v["index"]: v for v in doc["vfs"]} if doc else {}
    t.ok(doc and sorted(got) == [0, 1, 2, 3] and all(got[i]["address"] == vfs[i] for i in got) and
         all(got[i]["group"] == env.group_of(vfs[i]) for i in got) and
         all(got[i]["driver"] == env.driver(vfs[i]) for i in got),
         "DescribeSriov: each VF's index, address, group and driver as sysfs has them", doc)

    # 4 -> 6: through 0, which the kernel requires (EBUSY otherwise)
    rc, out, err = ctl(env, "--json", "sriov", addr, "--vfs", "6")
    doc = json.loads(out) if rc == 0 else {}
    ch = doc.get("change", {})
    t.ok(rc == 0 and numvfs(env, addr) == 6 and sorted(virtfns(env, addr)) == list(range(6)) and
         ch.get("from") == 4 and ch.get("to") == 6 and ch.get("through_zero") is True and
         isinstance(ch.get("usec"), int),
         "--vfs 6 from 4: done through 0, and the reply says through_zero", out + err)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "5")
    t.ok(rc == 0 and numvfs(env, addr) == 5 and "6 -> 5 VFs (through 0)" in out,
         "--vfs 5 from 6 in text: '6 -> 5 VFs (through 0)'", out + err)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "5")
    t.ok(rc == 0 and numvfs(env, addr) == 5 and "already" in out, "--vfs 5 again: nothing changes, and it says so",
         out + err)

    # above the total; malformed counts against a live iovirtd
    refused("--vfs %d on a PF of %d" % (total + 1, total),
            ctl(env, "--json", "sriov", addr, "--vfs", str(total + 1)), ERR + "InvalidArgument", str(total))
    t.ok(numvfs(env, addr) == 5, "... and sriov_numvfs is still 5")
    for bad in ("-1", "four", "1e3", "99999999999"):
        rc, out, err = ctl(env, "sriov", addr, "--vfs", bad)
        t.ok(rc == 2 and numvfs(env, addr) == 5, "--vfs %s: exit 2, nothing changed" % bad, out + err)


def refusals(env, h):
    addr = h.nic.addr
    # a function that is no PF, a VF where a PF is expected
    refused("sriov of a function without SR-IOV (%s)" % h.plain.addr,
            ctl(env, "--json", "sriov", h.plain.addr), ERR + "InvalidArgument", "SR-IOV")
    refused("--vfs on a function without SR-IOV, by its interface (%s)" % h.plain.net,
            ctl(env, "--json", "sriov", h.plain.net or h.plain.addr, "--vfs", "1"), ERR + "InvalidArgument", "SR-IOV")
    vf0 = virtfns(env, addr)[0]
    refused("--vfs on a VF (%s)" % vf0, ctl(env, "--json", "sriov", vf0, "--vfs", "2"), ERR + "InvalidArgument",
            "VF")
    refused("sriov of a VF", ctl(env, "--json", "sriov", vf0), ERR + "InvalidArgument", "VF")
    refused("sriov of a device that is not there", ctl(env, "--json", "sriov", "0000:7f:00.0"), "no-such-device",)
    # a PF whose driver has no sriov_configure: the kernel's ENOENT, named
    pf = h.nocfg.addr
    before = numvfs(env, pf)
    rc, out, err = ctl(env, "--json", "sriov", pf, "--vfs", "2")
    e = jerr(out)
    t.ok(rc == 1 and e.get("name", "").startswith(ERR) and
         re.search(r"ENOENT|No such file or directory", e.get("message", "")) and numvfs(env, pf) == before,
         "--vfs on %s, whose driver %s cannot make VFs: refused naming the kernel's ENOENT, nothing changed" %
         (pf, h.nocfg.driver), out + err)
    rc, out, err = ctl(env, "sriov", pf, "--vfs", "2")
    t.ok(rc == 1 and err.rstrip().splitlines()[-1].startswith("iovirtctl: D-Bus error: " + ERR),
         "in text, the refusal ends with its D-Bus error name", err)
    # the options as D-Bus callers other than iovirtctl may get them wrong
    before = numvfs(env, addr)
    for method, args, words in (
            ("SetVfs", (addr, "1", "{'nope': <true>}", "false"), "Unknown option 'nope'"),
            ("SetVfs", (addr, "1", "{'persist': <'yes'>}", "false"), "persist takes a boolean"),
            ("ConfigureVf", (addr + "#0", "{'mac': <'zz'>}", "false"), "Invalid MAC address"),
            ("ConfigureVf", (addr + "#0", "{'vlan': <uint32 4096>}", "false"), "0-4095"),
            ("ConfigureVf", (addr + "#0", "{'trust': <'on'>}", "false"), "trust takes a boolean"),
            ("ConfigureVf", (addr + "#0", "{'persist': <true>}", "false"), "Nothing to set"),
            ("ConfigureVf", (addr + "#0", "{'colour': <'red'>}", "false"), "Unknown setting 'colour'")):
        rc, out, err = env.call(method, *args)
        t.ok(rc != 0 and ERR + "InvalidArgument" in err and words in err and numvfs(env, addr) == before,
             "%s %s: InvalidArgument, %s" % (method, args[2], words), err)


def claims(env, h):
    addr, iface = h.nic.addr, h.nic.net
    ctl(env, "sriov", addr, "--vfs", "4")
    vfs = virtfns(env, addr)
    rc, out, err = ctl(env, "assign", "%s#3" % iface, "--to", "vm-a")
    t.ok(rc == 0 and env.driver(vfs[3]) == "vfio-pci", "assign %s#3 --to vm-a: VF 3 is on vfio-pci" % iface,
         out + err)
    # a shrink that would remove VF 3, a grow that goes through 0
    for n in (2, 0, 6):
        before = (numvfs(env, addr), env.snapshot())
        refused("--vfs %d while VF 3 is assigned" % n, ctl(env, "--json", "sriov", addr, "--vfs", str(n)),
                ERR + "InUse", "vm-a")
        t.ok((numvfs(env, addr), env.snapshot()) == before, "... and nothing changed: sriov_numvfs is still 4")
    rc, out, err = ctl(env, "sriov", addr)
    row = [line for line in out.splitlines() if vfs[3] in line]
    t.ok(rc == 0 and row and "vm-a" in row[0] and "vfio-pci" in row[0], "the table shows VF 3 with vm-a", out)
    # the PF while one of its VFs is assigned
    rc, out, err = ctl(env, "--json", "assign", addr, "--to", "vm-b", "--dry-run")
    plan = json.loads(out) if out else {}
    claim = [c for c in plan.get("checks", []) if c.get("reason") == "sriov-claimed"]
    t.ok(rc == 1 and claim and claim[0]["status"] == "fail" and "vm-a" in claim[0]["message"],
         "assign PF --dry-run while a VF is assigned: the plan fails with reason sriov-claimed, naming vm-a", out + err)
    before = env.snapshot()
    rc, out, err = ctl(env, "--json", "assign", addr, "--to", "vm-b")
    e = jerr(out)
    t.ok(rc == 1 and e.get("name", "").startswith(ERR) and
         any(c.get("reason") == "sriov-claimed" for c in e.get("checks", [])) and env.snapshot() == before,
         "assign PF while a VF is assigned: refused, the error's checks say sriov-claimed, nothing changed", out + err)
    # released: the claims are lifted
    rc, out, err = ctl(env, "release", "--consumer", "vm-a")
    t.ok(rc == 0 and env.driver(vfs[3]) == h.nic.sriov["vf_driver"], "release vm-a: VF 3 back on %s" %
         h.nic.sriov["vf_driver"], out + err)
    rc, out, err = ctl(env, "--json", "assign", addr, "--to", "vm-b", "--dry-run")
    plan = json.loads(out) if out else {}
    t.ok(not [c for c in plan.get("checks", []) if c.get("reason") == "sriov-claimed"],
         "after the release, the PF is not claimed any more", out + err)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "2")
    t.ok(rc == 0 and numvfs(env, addr) == 2, "and the count can shrink again: 4 -> 2", out + err)

    # a VF while its PF is assigned: no VFs, the PF to vm-p, then VFs made
    # behind iovirtd's back (vfio-pci can, with enable_sriov)
    ctl(env, "sriov", addr, "--vfs", "0")
    rc, out, err = ctl(env, "assign", addr, "--to", "vm-p")
    t.ok(rc == 0 and env.driver(addr) == "vfio-pci", "with no VFs, the PF goes to vm-p", out + err)
    refused("--vfs 2 on a PF assigned to vm-p", ctl(env, "--json", "sriov", addr, "--vfs", "2"), ERR + "InUse", "vm-p")
    t.ok(numvfs(env, addr) == 0, "... and it has still no VFs")
    env.write("/sys/bus/pci/devices/%s/sriov_numvfs" % addr, "1")
    env.ctl("reload")
    vfs = virtfns(env, addr)
    t.ok(vfs, "vfio-pci, the PF's driver now, made a VF behind iovirtd's back (it has sriov_configure)",
         numvfs(env, addr))
    if vfs:
        before = env.snapshot()
        rc, out, err = ctl(env, "--json", "assign", "%s#0" % addr, "--to", "vm-q")
        e = jerr(out)
        t.ok(rc == 1 and any(c.get("reason") == "sriov-claimed" and "vm-p" in c.get("message", "")
                             for c in e.get("checks", [])) and env.snapshot() == before and
             not [r for r in env.records().values() if r["consumer"] == "vm-q"],
             "assign VF 0 while its PF is with vm-p: refused, sriov-claimed naming vm-p", out + err)
        env.write("/sys/bus/pci/devices/%s/sriov_numvfs" % addr, "0")
    rc, out, err = ctl(env, "release", "--consumer", "vm-p")
    t.ok(rc == 0 and env.driver(addr) == h.nic.driver, "release vm-p: the PF is back on %s" % h.nic.driver, out + err)


def selectors(env, h):
    addr, iface, total = h.nic.addr, h.nic.net, h.nic.sriov["total"]
    ctl(env, "sriov", addr, "--vfs", "4")
    vfs = virtfns(env, addr)
    rc, out, err = ctl(env, "--json", "assign", "%s#0-3" % iface, "--to", "c1")
    rc2, out2, err2 = ctl(env, "--json", "assign", "%s#0-3" % iface, "--to", "c2")
    t.ok(rc == 0 and env.driver(vfs[0]) == "vfio-pci" and
         [f["address"] for f in json.loads(out)["functions"]] == [vfs[0]],
         "assign %s#0-3 --to c1 takes VF 0, the lowest free one" % iface, out + err)
    t.ok(rc2 == 0 and env.driver(vfs[1]) == "vfio-pci" and env.driver(vfs[2]) != "vfio-pci" and
         [f["address"] for f in json.loads(out2)["functions"]] == [vfs[1]],
         "a second assign of the same range --to c2 takes VF 1", out2 + err2)
    before = env.snapshot()
    rc, out, err = ctl(env, "--json", "assign", "%s#0-3" % iface, "--to", "c1")
    plan = json.loads(out) if rc == 0 else {}
    t.ok(rc == 0 and plan.get("done") is True and [f["address"] for f in plan["functions"]] == [vfs[0]] and
         env.snapshot() == before, "the same assign again by c1 gets VF 0 back, done, nothing changed", out + err)
    rc, out, err = ctl(env, "assign", "%s#0,1" % addr, "--to", "c3")
    t.ok(rc == 1 and env.driver(vfs[2]) != "vfio-pci", "assign PF#0,1 when both are taken: refused (exit 1)",
         out + err)
    rc, out, err = ctl(env, "--json", "show", "%s#1" % iface)
    t.ok(rc == 0 and json.loads(out)["address"] == vfs[1], "show PF#1 is VF 1", out + err)
    rc, out, err = ctl_direct(env, "--json", "show", "%s#1" % addr)
    t.ok(rc == 0 and json.loads(out)["address"] == vfs[1] if rc == 0 else False, "show --direct PF#1 is VF 1",
         out + err)
    # indexes at and above the total: usage errors, once iovirtd says the total
    before = env.snapshot()
    for sel in ("%s#%d" % (iface, total), "%s#0-%d" % (addr, total), "%s#2,%d" % (iface, total + 5)):
        rc, out, err = ctl(env, "--json", "assign", sel, "--to", "c4")
        e = jerr(out)
        t.ok(rc == 2 and e.get("name") == "usage" and str(total) in e.get("message", ""),
             "assign %s: exit 2, a usage error naming the total (%d)" % (sel, total), out + err)
    rc, out, err = ctl(env, "show", "%s#%d" % (iface, total))
    t.ok(rc == 2 and str(total) in err, "show PF#%d: exit 2 naming the total" % total, out + err)
    rc, out, err = ctl(env, "sriov", "%s#%d" % (iface, total), "--vlan", "5")
    t.ok(rc == 2 and str(total) in err, "sriov PF#%d --vlan 5: exit 2 naming the total" % total, out + err)
    rc, out, err = ctl(env, "release", "%s#%d" % (iface, total))
    t.ok(rc == 2 and str(total) in err, "release PF#%d: exit 2 naming the total" % total, out + err)
    t.ok(env.snapshot() == before, "none of them changed anything")
    # within the total but not enabled: the daemon's to say (exit 1)
    rc, out, err = ctl(env, "assign", "%s#%d" % (iface, total - 1), "--to", "c4")
    t.ok(rc == 1 and env.snapshot() == before, "assign of a VF index not enabled now: exit 1, nothing changed",
         out + err)
    for sel in ("%s#" % iface, "%s#3-1" % iface, "%s#x" % iface, "%s#1,,2" % iface):
        rc, out, err = ctl(env, "assign", sel, "--to", "c4")
        t.ok(rc == 2 and env.snapshot() == before, "assign %s: exit 2" % sel, out + err)
    rc, out, err = ctl(env, "release", "--consumer", "c1")
    rc2, out2, err2 = ctl(env, "release", "%s#1" % iface)
    t.ok(rc == 0 and rc2 == 0 and env.driver(vfs[0]) != "vfio-pci" and env.driver(vfs[1]) != "vfio-pci",
         "release --consumer c1 and release PF#1 give both VFs back", out + err + out2 + err2)


def autoprobe_and_settings(env, h):
    addr = h.nic.addr
    ctl(env, "sriov", addr, "--vfs", "0")
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "2", "--autoprobe", "no")
    vfs = virtfns(env, addr)
    t.ok(rc == 0 and sorted(vfs) == [0, 1] and all(env.driver(a) is None for a in vfs.values()) and
         attr(env, addr, "sriov_drivers_autoprobe") == "0",
         "--vfs 2 --autoprobe no: two VFs without a driver; sriov_drivers_autoprobe reads 0", out + err)
    t.ok("autoprobe off" in out.splitlines()[0] if out else False, "and the first line says autoprobe off", out)
    doc = describe(env, addr)
    t.ok(doc and doc["pf"]["autoprobe"] is False and all(v["driver"] is None for v in doc["vfs"]),
         "DescribeSriov: autoprobe false, the VFs without a driver", doc)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "0", "--autoprobe", "yes")
    t.ok(rc == 0 and numvfs(env, addr) == 0 and attr(env, addr, "sriov_drivers_autoprobe") == "1",
         "--vfs 0 --autoprobe yes: sriov_drivers_autoprobe reads 1 again", out + err)

    # MAC and VLAN go through the PF's network interface: the NVMe-like PF has none
    pf = h.nonet.addr
    rc, out, err = ctl(env, "sriov", pf, "--vfs", "1")
    t.ok(rc == 0 and numvfs(env, pf) == 1, "%s (no network interface): --vfs 1" % pf, out + err)
    doc = describe(env, pf)
    t.ok(doc and doc["pf"]["interface"] is None and doc["vf_settings"] != "read" and doc["vfs"][0]["mac"] is None,
         "DescribeSriov of a PF without an interface: vf_settings says why, the MAC is null", doc)
    rc, out, err = ctl(env, "sriov", pf)
    t.ok(rc == 0 and "interface -" in out and doc and " ".join(doc["vf_settings"].split()) in " ".join(out.split()),
         "in text: interface -, and the sentence why the settings are unknown", out)
    # the NIC's interface is not in this network namespace: refused, never guessed
    ctl(env, "sriov", h.nic.addr, "--vfs", "1")
    rc, out, err = ctl(env, "--json", "sriov", "%s#0" % h.nic.net, "--vlan", "5", "--persist")
    e = jerr(out)
    doc = describe(env, h.nic.addr)
    t.ok(rc == 1 and e.get("name", "").startswith(ERR) and h.nic.net in e.get("message", "") and doc and
         doc["vfs"][0]["persisted"] is None, "--vlan on a VF whose PF's interface cannot be reached: refused naming "
         "it, and nothing persisted", out + err)
    ctl(env, "sriov", h.nic.addr, "--vfs", "0")
    before = env.snapshot()
    rc, out, err = ctl(env, "--json", "sriov", "%s#0" % pf, "--mac", "02:00:00:00:00:01", "--vlan", "5")
    e = jerr(out)
    t.ok(rc == 1 and e.get("name") == ERR + "InvalidArgument" and len(e.get("message", "")) > 20 and
         env.snapshot() == before, "--mac and --vlan on a VF of a PF without an interface: refused with the reason",
         out + err)
    ctl(env, "sriov", pf, "--vfs", "0")


def persistence(env, h):
    addr = h.nic.addr
    ctl(env, "sriov", addr, "--vfs", "0")
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "3", "--persist")
    t.ok(rc == 0 and numvfs(env, addr) == 3 and "persisted" in (out.splitlines() or [""])[0],
         "--vfs 3 --persist: 3 VFs, and it says persisted", out + err)
    doc = describe(env, addr)
    t.ok(doc and (doc["pf"]["persisted"] or {}).get("num_vfs") == 3, "DescribeSriov: persisted num_vfs 3", doc)
    rc, out, err = ctl(env, "sriov", addr)
    t.ok("persisted (3 VFs" in out, "the PF's line says persisted (3 VFs ...)", out)
    # a VF assigned before the reboot: its record belongs to the old boot
    ctl(env, "assign", "%s#0" % addr, "--to", "vm-r")
    env.stop()
    # the reboot: the kernel forgets the VFs and the boot id changes
    env.write("/sys/bus/pci/devices/%s/sriov_numvfs" % addr, "0")
    t.ok(numvfs(env, addr) == 0 and not virtfns(env, addr), "behind iovirtd's back: sriov_numvfs 0, the VFs gone")
    with open(os.path.join(env.tb, "proc/sys/kernel/random/boot_id"), "w") as f:
        f.write("00000000-aaaa-bbbb-cccc-000000000001\n")
    env.start()
    vfs = virtfns(env, addr)
    t.ok(numvfs(env, addr) == 3 and sorted(vfs) == [0, 1, 2], "iovirtd started: sriov_numvfs is 3 again",
         env.log()[-1500:])
    log = env.log()
    restore = [m.start() for m in re.finditer(r"%s: 0 -> 3 VFs, as persisted" % re.escape(addr), log)]
    dropped = log.find("restarted since", restore[-1]) if restore else -1
    t.ok(restore and dropped > restore[-1],
         "the log says the PF was restored, before the old boot's assignments were dealt with", log[-1500:])
    rc, out, err = ctl(env, "--json", "list-assignments")
    t.ok(rc == 0 and json.loads(out)["assignments"] == [] and env.driver(vfs[0]) != "vfio-pci",
         "the old boot's assignment of VF 0 is gone", out + err)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "0", "--persist")
    env.stop()
    env.start()
    t.ok(rc == 0 and numvfs(env, addr) == 0, "--vfs 0 --persist, and a restart keeps 0", out + err)
    record = os.path.join(env.state, "sriov-%s.json" % addr)
    had = os.path.exists(record)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "2", "--no-persist")
    doc = describe(env, addr)
    t.ok(rc == 0 and had and not os.path.exists(record) and doc and doc["pf"]["persisted"] is None and
         "no longer persisted" in out and numvfs(env, addr) == 2,
         "--no-persist: the record is gone, DescribeSriov says not persisted", (had, out, err, doc))
    env.stop()
    env.write("/sys/bus/pci/devices/%s/sriov_numvfs" % addr, "0")
    env.start()
    t.ok(numvfs(env, addr) == 0, "and a restart after a reboot leaves the PF as the kernel has it (0 VFs)")


def while_changing(env, h):
    """A PF whose VFs are changing is busy until they are in the model:
    nothing else plans on it or its VFs meanwhile"""
    addr = h.nic.addr
    ctl(env, "sriov", addr, "--vfs", "0")
    ctl(env, "sriov", addr, "--vfs", "2")
    held = os.path.join(env.tb, "emulator/held-%s-sriov" % addr)
    env.faults("hold %s sriov\n" % addr)
    change = subprocess.Popen([IOVIRTCTL, "--no-ask-password", "sriov", addr, "--vfs", "3"], env=env.bus.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(held) and time.monotonic() < deadline and change.poll() is None:
        time.sleep(0.02)
    t.ok(os.path.exists(held), "--vfs 3 is held inside the emulated kernel's sriov_numvfs write")
    refused("assign of VF 0 meanwhile", ctl(env, "--json", "assign", "%s#0" % addr, "--to", "vm-x"), ERR + "Busy",
            addr, "being changed")
    refused("another --vfs meanwhile", ctl(env, "--json", "sriov", addr, "--vfs", "1"), ERR + "Busy", addr)
    refused("VF settings meanwhile", ctl(env, "--json", "sriov", "%s#1" % addr, "--mac", "02:00:00:00:00:09"),
            ERR + "Busy", addr)
    rc, out, err = ctl(env, "sriov", addr)
    t.ok(rc == 0 and addr in out, "reads are answered meanwhile", out + err)
    env.faults("")
    out, err = change.communicate(timeout=60)
    t.ok(change.returncode == 0 and numvfs(env, addr) == 3 and "(through 0)" in out,
         "once let go, --vfs 3 ends: 3 VFs, through 0", out + err)
    rc, out, err = ctl(env, "--json", "assign", "%s#0" % addr, "--to", "vm-x")
    t.ok(rc == 0, "and VF 0 can be assigned again", out + err)
    ctl(env, "release", "%s#0" % addr)

    # the record is written before the kernel, and put back when it refuses
    record = os.path.join(env.state, "sriov-%s.json" % addr)
    ctl(env, "sriov", addr, "--vfs", "1", "--persist")
    with open(record) as f:
        before = json.load(f)
    env.faults("fail %s sriov\n" % addr)
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "4", "--persist")
    env.faults("")
    with open(record) as f:
        after = json.load(f)
    t.ok(rc == 1 and "Input/output error" in err and numvfs(env, addr) == 1 and after == before and
         before["num_vfs"] == 1, "the kernel refuses --vfs 4 --persist: the persisted count stays 1, on disk",
         (out, err, before, after))
    ctl(env, "sriov", addr, "--vfs", "0", "--no-persist")
    t.ok(not os.path.exists(record) and numvfs(env, addr) == 0, "--no-persist: no record left")


def lost_uevents(env, h):
    """The kernel makes the VFs but udev never reports one: SetVfs ends
    after IOVIRT_SRIOV_TIMEOUT naming it, and a reload finds it"""
    addr = h.nic.addr
    ctl(env, "sriov", addr, "--vfs", "0")
    with open(os.path.join(env.tb, "emulator/sriov", addr, "vfs")) as f:
        vf1 = [line.split()[1] for line in f if line.split()[0] == "1"][0]
    env.stop()
    env.start(IOVIRT_SRIOV_TIMEOUT="2")
    env.faults("quiet %s uevents\n" % vf1)
    start = time.monotonic()
    rc, out, err = ctl(env, "sriov", addr, "--vfs", "2")
    took = time.monotonic() - start
    t.ok(rc == 1 and "after 2 s udev has not reported VF 1" in err and "org.iovirt1.Error.Failed" in err and
         numvfs(env, addr) == 2 and 2 <= took < 30,
         "a VF whose uevent never comes: Failed after IOVIRT_SRIOV_TIMEOUT, naming VF 1; the kernel has both",
         (rc, out, err, took))
    doc = describe(env, addr)
    t.ok(doc and [v["index"] for v in doc["vfs"]] == [0], "the model has only what udev reported", doc)
    env.faults("")
    rc, out, err = ctl(env, "reload")
    doc = describe(env, addr)
    t.ok(rc == 0 and doc and [v["address"] for v in doc["vfs"]][1:] == [vf1], "iovirtctl reload finds VF 1",
         (out, err, doc))
    ctl(env, "sriov", addr, "--vfs", "0")

    # iovirtd stopping while a call waits for its VFs: answered, not dropped
    env.stop()
    env.start(IOVIRT_SRIOV_TIMEOUT="600")
    env.faults("quiet %s uevents\n" % vf1)
    waiting = subprocess.Popen([IOVIRTCTL, "--no-ask-password", "sriov", addr, "--vfs", "2"], env=env.bus.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while numvfs(env, addr) != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    # the request reached iovirtd (the kernel has the VFs); whether its job
    # has ended yet or not, SIGTERM lets it end, then answers the wait
    env.daemon.terminate()
    out, err = waiting.communicate(timeout=60)
    env.daemon.wait(30)
    t.ok(waiting.returncode == 1 and ERR + "Busy" in err and "stopped while waiting for %s's VFs" % addr in err and
         env.daemon.returncode == 0, "SIGTERM while --vfs waits for a VF's uevent: the call gets Busy saying so, "
         "iovirtd exits 0", (out, err, env.daemon.returncode))
    env.faults("")
    env.start()
    ctl(env, "sriov", addr, "--vfs", "0")
    env.stop()
    env.start()


def variant(env, h):
    pf = h.cx.addr
    rc, out, err = ctl(env, "sriov", pf, "--vfs", "1")
    vfs = virtfns(env, pf)
    t.ok(rc == 0 and sorted(vfs) == [0], "%s (ConnectX-like): --vfs 1" % pf, out + err)
    rc, out, err = ctl(env, "--json", "assign", "%s#0" % pf, "--to", "vm-cx", "--dry-run")
    plan = json.loads(out) if out.startswith("{") else {}
    fns = plan.get("functions", [])
    drv = [c for c in plan.get("checks", []) if c.get("id") == "driver"]
    t.ok(rc == 0 and [f.get("to") for f in fns] == ["mlx5_vfio_pci"] and drv and drv[0]["status"] == "pass" and
         "mlx5_vfio_pci" in drv[0]["message"] and "alias" in drv[0]["message"],
         "assign of a ConnectX-like VF: the plan binds it to mlx5_vfio_pci, and its driver check says why (the "
         "alias that matched)", out + err)
    rc, out, err = ctl(env, "assign", "%s#0" % pf, "--to", "vm-cx", "--dry-run")
    t.ok(rc == 0 and re.search(r"%s\s+mlx5_core -> mlx5_vfio_pci" % re.escape(vfs.get(0, "?")), out),
         "in text, the plan's function line says -> mlx5_vfio_pci", out + err)
    rc, out, err = ctl(env, "--json", "assign", "%s#0" % pf, "--to", "vm-cx", "--dry-run", "--driver", "vfio-pci")
    plan = json.loads(out) if out.startswith("{") else {}
    t.ok(rc == 0 and [f.get("to") for f in plan.get("functions", [])] == ["vfio-pci"],
         "assign --driver vfio-pci overrides the variant", out + err)
    rc, out, err = ctl(env, "--json", "assign", "%s#0" % pf, "--to", "vm-cx", "--dry-run", "--driver", "mlx5_core")
    e = jerr(out) if not out.startswith("{\n  \"consumer") else {}
    plan = json.loads(out) if out.startswith("{") else {}
    bad = [c for c in plan.get("checks", []) if c.get("reason") == "not-vfio-driver"]
    t.ok(rc in (1, 2) and (bad or e.get("name") == "usage"), "assign --driver mlx5_core (a host driver): refused",
         out + err)
    rc, out, err = ctl(env, "assign", "%s#0" % pf, "--to", "vm-cx")
    t.ok(rc == 0 and vfs and env.driver(vfs[0]) == "mlx5_vfio_pci" and
         os.path.exists(os.path.join(env.tb, "dev/vfio", str(env.group_of(vfs[0])))),
         "assigned, the VF is on mlx5_vfio_pci (sysfs) and /dev/vfio/N is there", out + err)
    rc, out, err = ctl(env, "release", "--consumer", "vm-cx")
    t.ok(rc == 0 and env.driver(vfs[0]) == "mlx5_core", "released, it is back on mlx5_core", out + err)
    ctl(env, "sriov", pf, "--vfs", "0")


def big(env, h):
    pf, total = h.big.addr, h.big.sriov["total"]
    rc, out, err = ctl(env, "--json", "sriov", pf, "--vfs", str(total))
    t.ok(rc == 0 and numvfs(env, pf) == total and len(virtfns(env, pf)) == total and
         len(json.loads(out)["vfs"]) == total, "%s: --vfs %d, every VF there and described" % (pf, total),
         out[-500:] + err)
    rc, out, err = ctl(env, "sriov", pf, "--vfs", "0")
    t.ok(rc == 0 and numvfs(env, pf) == 0 and not virtfns(env, pf), "and back to 0", out[-300:] + err)


usage()
try:
    from hosts import HOSTS  # noqa: E402
except ImportError as e:
    HOSTS = {}
    t.ok(False, "tests/hosts/hosts.py imports", e)
if "sriov" not in HOSTS:
    t.ok(False, "tests/hosts/hosts.py has the emulated host \"sriov\"", sorted(HOSTS))
    sys.exit(t.done())
h = Host(HOSTS["sriov"]())
t.ok(not h.missing(), "the sriov host has a NIC PF, a PF whose driver cannot make VFs, one without an interface, "
     "one of 256 VFs, a ConnectX-like one and a function without SR-IOV", "missing: %s" % h.missing())
if h.missing():
    sys.exit(t.done())
env = Env("sriov")
try:
    for part in (lifecycle, refusals, claims, selectors, autoprobe_and_settings, big, variant, while_changing,
                 lost_uevents, persistence):
        try:
            part(env, h)
        except Exception as exc:            # one part's surprise must not hide the others' results
            import traceback
            t.ok(False, "%s ran to its end" % part.__name__, traceback.format_exc() + "\n" + env.log()[-1500:])
            if env.daemon.poll() is not None:
                env.start()
finally:
    env.close()
sys.exit(t.done())
