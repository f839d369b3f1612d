#!/usr/bin/env python3
"""test-host.py IOVIRTCTL HOST: every command against one emulated host.

Builds the host as a umockdev testbed, runs iovirtctl under the preload, and
checks (TAP output):
  - the text and JSON of every command against golden files in
    tests/golden/HOST/, the commands and files listed in goldens.py, and no
    golden file left that no command writes (IOVIRT_UPDATE_GOLDEN=1 rewrites
    them instead of comparing, and is refused when CI is set);
  - facts about the host stated here independently of the golden files
    (verdicts, peers, members, exit codes, error messages);
  - lspci -vvv run in the same testbed as an oracle: IDs, ACS registers and
    SR-IOV counts must agree with 'iovirtctl tree --json'.
"""

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import goldens  # noqa: E402
import verdicts  # noqa: E402
import wrapper  # noqa: E402
from hosts import HOSTS  # noqa: E402
from lspci import disagreements, parse_lspci  # noqa: E402
from tap import Tap  # noqa: E402

PRELOAD = "libumockdev-preload.so.0"



class Host:
    def __init__(self, ctl, name, root):
        self.ctl, self.name, self.root = ctl, name, root
        HOSTS[name]().write(root)
        self.env = dict(os.environ, UMOCKDEV_DIR=root, IOVIRT_ROOT=root, LD_PRELOAD=PRELOAD, COLUMNS="80",
                        LC_ALL="C")
        # no iovirtd here, whatever system bus this machine has: iovirtctl
        # reads the testbed (and says so on stderr)
        self.env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent/iovirt-test-bus"

    def run(self, *args):
        # IOVIRT_TEST_WRAPPER (meson test --setup valgrind) goes in front of iovirtctl only, never lspci
        p = subprocess.run(wrapper.prefix("iovirtctl") + [self.ctl] + list(args), env=self.env,
                           capture_output=True, text=True, timeout=120 * wrapper.SLOW)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args):
        rc, out, err = self.run("--json", *args)
        if rc not in (0, 1):
            raise RuntimeError("iovirtctl %s: exit %d: %s" % (" ".join(args), rc, err))
        return json.loads(out)

    def lspci(self):
        env = dict(self.env)
        p = subprocess.run(["lspci", "-vvv", "-nn", "-D"], env=env, capture_output=True, text=True, timeout=300)
        return p.stdout


def golden(tap, host, name, args, expect_rc=0):
    """iovirtctl ARGS against the golden file NAME (goldens.commands()).
    With IOVIRT_UPDATE_GOLDEN set it rewrites the file instead, and the check
    says "rewritten", never "matches": comparing with what it just wrote
    would pass by construction.  Under CI (CI set) it refuses to rewrite,
    and the check fails."""
    rc, out, err = host.run(*args)
    path = goldens.path(host.name, name)
    cmd = "%s: iovirtctl %s" % (host.name, " ".join(args))
    tap.ok(rc == expect_rc, "%s exits %d" % (cmd, expect_rc), "exit %d\nstderr: %s" % (rc, err))
    try:
        with open(path) as f:
            want = f.read()
    except FileNotFoundError:
        want = None
    diff = "" if want is None else "".join(difflib.unified_diff(want.splitlines(True), out.splitlines(True),
                                                                 "golden", "now"))
    if os.environ.get("IOVIRT_UPDATE_GOLDEN"):
        if os.environ.get("CI"):
            if want is None:
                now = "the golden file is missing"
            elif diff:
                now = "the output differs from the golden file:\n" + diff
            else:
                now = "the output matches the golden file"
            tap.ok(False, "%s: %s not rewritten: golden files are not rewritten under CI" % (cmd, name),
                   "IOVIRT_UPDATE_GOLDEN and CI are both set; " + now)
            return out
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(out)
        what = "created" if want is None else "changed" if diff else "unchanged"
        tap.ok(True, "%s: %s rewritten (%s), not compared" % (cmd, name, what))
        for line in diff.splitlines()[:60]:
            print("#   " + line)
        return out
    if want is None:
        tap.ok(False, "%s: golden file %s exists" % (host.name, name), "run with IOVIRT_UPDATE_GOLDEN=1")
        return out
    tap.ok(out == want, "%s matches %s" % (cmd, name), diff)
    return out


# ---- facts about each host, stated independently of the golden files ----

def group_of(groups, addr):
    for g in groups["groups"]:
        if any(d["address"] == addr for d in g["devices"]):
            return g
    return None


def check_facts(tap, host):
    groups = host.json("list-groups")
    devs = host.json("tree")["devices"]
    by = {d["address"]: d for d in devs}
    n = host.name
    spec = HOSTS[n]()

    # what the description built is what discovery found
    tap.ok(sorted(by) == sorted(d.addr for d in spec.devices), "%s: every function is found" % n,
           set(by) ^ set(d.addr for d in spec.devices))
    for d in spec.devices:
        got = by.get(d.addr)
        if not got:
            continue
        if d.config_bytes is None and "config" not in d.missing_attrs:
            tap.ok(got["vendor"] == "%04x" % d.vendor and got["device"] == "%04x" % d.device,
                   "%s: %s IDs" % (n, d.addr), (got["vendor"], got["device"]))
        tap.ok(got["driver"] == d.driver, "%s: %s driver %s" % (n, d.addr, d.driver), got["driver"])
        tap.ok(got["iommu_group"] == d.group, "%s: %s group %s" % (n, d.addr, d.group), got["iommu_group"])
        want_parent = d.parent.addr if d.parent else None
        tap.ok(got["parent"] == want_parent, "%s: %s parent %s" % (n, d.addr, want_parent), got["parent"])
        if d.physfn:
            tap.ok(got["physfn"] == d.physfn.addr, "%s: %s is a VF of %s" % (n, d.addr, d.physfn.addr),
                   got["physfn"])
        if d.vfs:
            tap.ok(got["sriov"]["vfs"] == [v.addr for v in d.vfs], "%s: %s VF list" % (n, d.addr),
                   got["sriov"]["vfs"])
        numa = d.numa if d.numa >= 0 else None
        if "numa_node" not in d.missing_attrs:
            tap.ok(got["numa_node"] == numa, "%s: %s NUMA node %s" % (n, d.addr, numa), got["numa_node"])

    def verdict(addr, isolation, members=None, peers=None):
        g = group_of(groups, addr)
        if not tap.ok(g is not None, "%s: %s has a group" % (n, addr)):
            return
        tap.ok(g["isolation"] == isolation, "%s: %s is %s" % (n, addr, isolation), g["isolation"])
        if members is not None:
            got = g["viability"]["endpoints"]
            tap.ok(got == members, "%s: %s goes with %s" % (n, addr, members), got)
        if peers is not None:
            tap.ok(g["peers"] == peers, "%s: %s peers %s" % (n, addr, peers), g["peers"])

    if n == "desktop":
        verdict("0000:01:00.0", "shared", ["0000:01:00.0", "0000:01:00.1"], [])
        verdict("0000:03:00.0", "isolated", ["0000:03:00.0"], [])
        # the host bridge and the root ports, alone in their groups
        for addr in ("0000:00:00.0", "0000:00:01.0", "0000:00:1b.0", "0000:00:1c.0", "0000:00:1c.4"):
            verdict(addr, "bridges", [])
        tap.ok([g["group"] for g in groups["groups"] if g["isolation"] == "bridges"] == [0, 1, 4, 6, 8],
               "desktop: groups 0, 1, 4, 6 and 8 hold only bridges",
               [(g["group"], g["isolation"]) for g in groups["groups"]])
        g = group_of(groups, "0000:01:00.0")
        tap.ok(g["viability"]["host_bound"] == ["0000:01:00.0", "0000:01:00.1"], "desktop: GPU group host-bound")
        tap.ok(by["0000:00:02.0"]["boot_vga"] and not by["0000:01:00.0"]["boot_vga"], "desktop: boot VGA")
        tap.ok(by["0000:00:02.0"]["link"] is None, "desktop: RC integrated endpoint has no link")
        tap.ok(by["0000:01:00.0"]["link"] == {"max_speed": "8GT/s", "max_width": 16, "speed": "8GT/s",
                                               "width": 16}, "desktop: GPU link", by["0000:01:00.0"]["link"])
        tap.ok(by["0000:03:00.0"]["reset_methods"] == ["flr", "pm", "bus"], "desktop: kernel reset methods")
        tap.ok(by["0000:00:01.0"]["reset_methods"] == [], "desktop: no reset_method attribute means none")
        tap.ok(by["0000:01:00.0"]["local_cpulist"] == "0-7", "desktop: local CPUs")
    elif n == "dual-socket":
        verdict("0000:81:00.0", "isolated", ["0000:81:00.0"], [])
        verdict("0000:81:02.2", "isolated")
        g = group_of(groups, "0000:81:02.2")
        tap.ok(g["vfio_device"] and g["viability"]["host_bound"] == [], "dual-socket: VF on vfio-pci has /dev/vfio")
        pf = by["0000:81:00.0"]
        tap.ok(pf["sriov"]["total_vfs"] == 64 and pf["sriov"]["num_vfs"] == 4, "dual-socket: SR-IOV counts",
               pf["sriov"])
        tap.ok(by["0000:81:00.1"]["sriov"]["vfs"] == [], "dual-socket: PF without VFs")
        tap.ok(pf["numa_node"] == 1 and pf["local_cpulist"] == "16-31", "dual-socket: NUMA locality")
        tap.ok(by["0000:3b:00.0"]["numa_node"] == 0, "dual-socket: node 0 GPU")
        rc, out, _ = host.run("list-devices", "--numa", "1", "--class", "net")
        tap.ok(rc == 0 and "0000:3b:00.0" not in out and "0000:81:02.3" in out and "0000:82:00.0" in out,
               "dual-socket: --numa 1 --class net filters", out)
        rc, out, _ = host.run("list-devices", "--driver", "vfio-pci", "--json")
        tap.ok(rc == 0 and [d["address"] for d in json.loads(out)["devices"]] == ["0000:3b:00.0", "0000:81:02.2"],
               "dual-socket: --driver vfio-pci", out)
        rc, out, _ = host.run("--json", "list-devices", "--group", "8")
        tap.ok(rc == 0 and [d["address"] for d in json.loads(out)["devices"]] == ["0000:81:02.2"],
               "dual-socket: --group 8", out)
        rc, out, _ = host.run("show", "ens1f0", "--json")
        tap.ok(rc == 0 and json.loads(out)["address"] == "0000:81:00.0", "dual-socket: show by interface name")
        for spelled in ("81:02.1", "0000:81:02.1", "pci_0000_81_02_1",
                        "/sys/bus/pci/devices/0000:81:02.1", "/sys/devices/pci0000:80/0000:80:02.0/0000:81:02.1/"):
            rc, out, _ = host.run("show", "--json", spelled)
            tap.ok(rc == 0 and json.loads(out)["address"] == "0000:81:02.1", "dual-socket: show %s" % spelled)
    elif n == "switch-no-acs":
        verdict("0000:03:00.0", "leaky", ["0000:03:00.0"], ["0000:04:00.0", "0000:05:00.0"])
        verdict("0000:05:00.0", "leaky", ["0000:05:00.0"], ["0000:03:00.0", "0000:04:00.0"])
        verdict("0000:06:00.0", "isolated", ["0000:06:00.0"], [])
        # the upstream port alone: nothing to assign, and still reached from below
        verdict("0000:01:00.0", "bridges", [], ["0000:03:00.0", "0000:04:00.0", "0000:05:00.0"])
        tap.ok(len(group_of(groups, "0000:01:00.0")["causes"]) == 3,
               "switch-no-acs: the upstream port's group names the ports to blame",
               group_of(groups, "0000:01:00.0")["causes"])
        rc, out, _ = host.run("show", "03:00.0")
        line = verdicts.field_text(out, "Assignment:") or ""
        tap.ok(rc == 0 and line.startswith("refused") and "--accept-leaky" in line and "e1000e" in line,
               "switch-no-acs: show 03:00.0 says leaky is refused unless --accept-leaky", line)
        rc, out, _ = host.run("show", "01:00.0")
        tap.ok(rc == 0 and verdicts.field_text(out, "Isolation:").startswith("bridges") and
               "reachable by DMA from outside the group: 0000:03:00.0" in out and
               (verdicts.field_text(out, "Assignment:") or "").startswith("nothing to assign"),
               "switch-no-acs: show of the upstream port says bridges, its peers, nothing to assign", out)
        g = group_of(groups, "0000:03:00.0")
        causes = [c["address"] for c in g["causes"] if c["kind"] == "port_without_acs"]
        tap.ok("0000:02:01.0" in causes, "switch-no-acs: the port lacking ACS is named", g["causes"])
        tap.ok(by["0000:02:01.0"]["pcie_type"] == "downstream_port" and by["0000:02:01.0"]["acs"] is None,
               "switch-no-acs: downstream port without ACS")
        tap.ok(by["0000:00:01.0"]["acs"] == {"cap": 0x1f, "ctl": 0x1d}, "switch-no-acs: root port ACS registers",
               by["0000:00:01.0"]["acs"])
    elif n == "pci-bridge":
        verdict("0000:02:04.0", "shared", ["0000:02:04.0", "0000:02:05.0"], [])
        g = group_of(groups, "0000:02:04.0")
        tap.ok(g["viability"]["bridges"] == ["0000:01:00.0"], "pci-bridge: the bridge stays", g["viability"])
        tap.ok(by["0000:02:05.0"]["pcie_type"] is None and by["0000:02:05.0"]["pcie"] is False,
               "pci-bridge: conventional device")
        tap.ok(by["0000:02:05.0"]["reset_methods"] == [], "pci-bridge: PM reset ruled out by NoSoftRst")
    elif n == "multifunction":
        verdict("0000:01:00.2", "shared", ["0000:01:00.%d" % i for i in range(4)], [])
        verdict("0000:02:00.0", "isolated")
    elif n == "acs-override":
        verdict("0000:01:00.0", "leaky", ["0000:01:00.0"], ["0000:00:1f.0", "0000:01:00.1", "0000:02:00.0"])
        verdict("0000:02:00.0", "leaky", ["0000:02:00.0"], ["0000:00:1f.0", "0000:01:00.0", "0000:01:00.1"])
        checks = {c["id"]: c for c in host.json("check")["checks"]}
        tap.ok(checks["acs_override"]["status"] == "warn" and "pcie_acs_override" in checks["acs_override"]["message"],
               "acs-override: check warns of the override", checks["acs_override"])
        tap.ok(checks["interrupt_remapping"]["status"] == "warn" and
               "allow_unsafe_interrupts" in checks["interrupt_remapping"]["message"],
               "acs-override: check warns of unsafe interrupts", checks["interrupt_remapping"])
    elif n == "no-iommu":
        tap.ok(groups == {"iommu": False, "groups": []}, "no-iommu: no groups", groups)
        rc, out, _ = host.run("list-groups")
        tap.ok(rc == 0 and "No IOMMU groups" in out and "iovirtctl check" in out, "no-iommu: says so plainly", out)
        c = host.json("check")
        checks = {k["id"]: k for k in c["checks"]}
        tap.ok(c["result"] == "fail", "no-iommu: check fails")
        tap.ok(checks["iommu_firmware"]["status"] == "fail" and "firmware" in checks["iommu_firmware"]["remedy"],
               "no-iommu: firmware remedy", checks["iommu_firmware"])
        tap.ok(checks["iommu_kernel"]["status"] == "fail", "no-iommu: kernel IOMMU fails")
        tap.ok(by["0000:01:00.0"]["iommu_group"] is None and by["0000:01:00.0"]["group"] is None,
               "no-iommu: devices have no group")
    elif n == "broken":
        for addr, why in (("0000:01:00.0", "shorter than the 64-byte header"),
                          ("0000:00:1d.0", "capability list loops"),
                          ("0000:00:1f.0", "config space cannot be read")):
            tap.ok(by[addr]["problem"] and why in by[addr]["problem"], "broken: %s problem names '%s'" % (addr, why),
                   by[addr]["problem"])
            verdict(addr, "unknown")
        tap.ok(by["0000:01:00.0"]["vendor"] == "8086", "broken: IDs from the kernel when config is short")
        tap.ok(by["0000:00:1d.0"]["numa_node"] is None, "broken: missing numa_node is null")
        verdict("0000:00:1e.0", "isolated")
        c = host.json("check")
        checks = {k["id"]: k for k in c["checks"]}
        tap.ok(checks["reset"]["status"] == "warn" and "0000:00:1e.0" in checks["reset"]["message"],
               "broken: device without reset named", checks["reset"])
        tap.ok(checks["scan"]["status"] == "warn" and "3 problems" in checks["scan"]["message"],
               "broken: scan problems counted", checks["scan"])
    elif n == "large":
        tap.ok(len(devs) == 4130, "large: 4130 functions", len(devs))
        vfs = [d for d in devs if d["physfn"]]
        tap.ok(len(vfs) == 4032, "large: 4032 VFs", len(vfs))
        words = {g["isolation"] for g in groups["groups"]}
        bridges = {d["iommu_group"] for d in devs if d["bridge"]}
        tap.ok(words == {"isolated", "bridges"} and
               bridges == {g["group"] for g in groups["groups"] if g["isolation"] == "bridges"},
               "large: every group of a bridge is bridges, every other one isolated", words)
        tap.ok(len(groups["groups"]) == 4130, "large: one group per function", len(groups["groups"]))
        nodes = {d["numa_node"] for d in devs}
        tap.ok(nodes == {0, 1}, "large: two NUMA nodes", nodes)


# ---- what the verdict words promise, on every host ----

def check_verdicts(tap, host, groups, devs, show_all=True):
    """The rules of verdicts.py, one check per rule, listing every group
    that breaks it."""
    def show(addr):
        rc, out, err = host.run("show", addr)
        return out if rc == 0 else "exit %d: %s" % (rc, err)
    _, table, _ = host.run("list-groups")
    _, tree, _ = host.run("tree")
    bad = verdicts.problems(groups, devs, table, tree, show, show_all)
    for rule, title in verdicts.RULES:
        tap.ok(not bad[rule], "%s: %s" % (host.name, title), bad[rule])


# ---- lspci as the oracle ----

def check_oracle(tap, host):
    ours = {d["address"]: d for d in host.json("tree")["devices"]}
    theirs = parse_lspci(host.lspci())
    mismatches = disagreements(ours, theirs)
    tap.ok(not mismatches, "%s: lspci agrees on IDs, ACS and SR-IOV for %d functions" % (host.name, len(theirs)),
           "\n".join(mismatches))
    tap.ok(sum("acs_cap" in t for t in theirs.values()) == sum(1 for o in ours.values() if o["acs"]),
           "%s: same number of ACS capabilities" % host.name)


def check_vanish(tap, ctl, shim):
    """A function unplugged between udev's listing and our reading is
    reported by name and skipped; the rest of the scan goes on."""
    root = tempfile.mkdtemp(prefix="iovirt-test-vanish.")
    try:
        host = Host(ctl, "desktop", root)
        victim = [d for d in HOSTS["desktop"]().devices if d.addr == "0000:03:00.0"][0]
        host.env["LD_PRELOAD"] = PRELOAD + " " + shim
        host.env["IOVIRT_TEST_VANISH"] = victim.syspath()
        rc, out, err = host.run("--json", "list-devices")
        addrs = [d["address"] for d in json.loads(out)["devices"]] if rc == 0 else []
        tap.ok(rc == 0, "vanish: the scan goes on", err)
        tap.ok("0000:03:00.0" not in addrs and "0000:04:00.0" in addrs and len(addrs) == 11,
               "vanish: the vanished function is skipped, the others listed", addrs)
        tap.ok("0000:03:00.0 vanished during the scan" in err, "vanish: stderr names it", err)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_large_commands(tap, host):
    """Every command on the 4,130-function host, asserted by shape (its
    golden files would be megabytes)."""
    rc, out, _ = host.run("list-devices")
    lines = out.splitlines()
    tap.ok(rc == 0 and len(lines) == 4131 and lines[0].startswith("ADDRESS"), "large: list-devices rows",
           len(lines))
    tap.ok(all(len(l) <= 80 for l in lines), "large: list-devices fits 80 columns")
    rc, out, _ = host.run("list-groups")
    rows = [l for l in out.splitlines() if re.match(r"^ *\d+  (isolated|bridges) ", l)]
    tap.ok(rc == 0 and len(rows) == 4130, "large: list-groups rows", len(rows))
    rc, out, _ = host.run("tree")
    lines = out.splitlines()
    tap.ok(rc == 0 and lines.count("pci0000:00") == 1 and lines.count("pci0000:80") == 1 and len(lines) == 4132,
           "large: tree has both root buses and every function", len(lines))
    rc, out, _ = host.run("check")
    tap.ok(rc == 0 and "PASS Device scan: 4130 PCI functions read without problems" in out,
           "large: check passes", out)
    # the last VF of the last PF: 0x9001 + offset 0x80 + 62 * stride 2 = 90:1f.5
    rc, out, _ = host.run("show", "0000:90:1f.5")
    tap.ok(rc == 0 and "Physical fn:   0000:90:00.1" in out, "large: show the last VF", out)


def main():
    ctl, name = sys.argv[1], sys.argv[2]
    shim = sys.argv[3] if len(sys.argv) > 3 else None
    tap = Tap()
    wrapper.judge_at_exit()     # what an exception left unjudged
    root = tempfile.mkdtemp(prefix="iovirt-test-%s." % name)
    try:
        host = Host(ctl, name, root)
        if name != "large":
            for fname, args, rc in goldens.commands(name):
                golden(tap, host, fname, args, rc)
            stale = goldens.uncovered(name)
            tap.ok(not stale, "%s: every golden file is written by a command" % name,
                   "no command writes %s: remove it, or add its command to tests/hosts/goldens.py"
                   % ", ".join(stale))
        else:
            check_large_commands(tap, host)
        check_facts(tap, host)
        check_verdicts(tap, host, host.json("list-groups"), host.json("tree")["devices"], show_all=name != "large")
        check_oracle(tap, host)
        if name == "desktop" and shim:
            check_vanish(tap, ctl, shim)
        if wrapper.VALGRIND:
            runs, unfinished, per, problems = wrapper.judge()
            tap.ok(runs and not problems and not unfinished, "%s: %s" % (name, wrapper.summary(runs, unfinished, per)),
                   "\n".join(problems) or "%d runs, %d without a whole report" % (runs, unfinished))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
