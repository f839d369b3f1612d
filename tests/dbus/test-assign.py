#!/usr/bin/env python3
"""test-assign.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: assignment
through the real bus, against emulated hosts whose sysfs behaves like the
kernel's (tests/emulator).  TAP output.

  - round trips: every assignable group of every emulated host, assigned and
    released, leaves every function exactly as before (driver, override,
    /dev/vfio node);
  - every refusal: its error name, and a message that names the reason;
  - 50 concurrent assigns of one group: exactly one wins;
  - crash safety: iovirtd killed at every fault-injection point, restarted,
    and the host converged (each function with its consumer or back on its
    original driver, no function left without a driver, state readable);
  - bad input and damaged state.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from hosts import HOSTS  # noqa: E402
from tap import Tap  # noqa: E402
from harness import Bus, start_iovirtd  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
PRELOAD = EMU + " libumockdev-preload.so.0"
DEST = ["--dest", "org.iovirt1", "--object-path", "/org/iovirt1"]
FAULT_POINTS = ["assign.intent", "assign.override", "assign.unbind", "assign.probe", "assign.bound",
                "assign.node", "assign.commit", "assign.rollback", "release.intent", "release.unbind",
                "release.override", "release.probe", "release.restored", "release.commit"]
t = Tap()


class Env:
    """A private bus, an emulated host and iovirtd on it; restartable."""

    def __init__(self, host, **extra):
        self.root = tempfile.mkdtemp(prefix="iovirt-assign.")
        self.tb = os.path.join(self.root, "testbed")
        self.state = os.path.join(self.root, "state")
        self.hostdesc = HOSTS[host]() if isinstance(host, str) else host
        self.hostdesc.write(self.tb)
        self.bus = Bus(self.root)
        self.extra = extra
        self.daemon = None
        self.start()

    def start(self, **extra):
        env = dict(self.extra)
        env.update(extra)
        self.daemon = start_iovirtd(IOVIRTD, self.bus, self.tb, PRELOAD, **env)

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(10)

    def close(self):
        self.stop()
        self.bus.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self):
        return open(self.daemon.log_path).read()

    def ctl(self, *args):
        p = subprocess.run([IOVIRTCTL] + list(args), env=self.bus.env(COLUMNS="200"), capture_output=True,
                           text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def call(self, method, *args):
        """gdbus prints the D-Bus error name, which is what refusals are tested on."""
        p = subprocess.run(["gdbus", "call", "--system"] + DEST + ["--method", "org.iovirt1.Manager." + method] +
                           [str(a) for a in args], env=self.bus.env(), capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def assign(self, target, consumer, accept="[]"):
        return self.call("Assign", target, consumer, accept, "false")

    def faults(self, text):
        with open(os.path.join(self.tb, "emulator/faults"), "w") as f:
            f.write(text)

    def write(self, path, text):
        return subprocess.run([WRITER, path, text], env=dict(os.environ, UMOCKDEV_DIR=self.tb, LD_PRELOAD=PRELOAD),
                              capture_output=True, text=True).stdout.strip()

    # the kernel's truth, read from the testbed
    def driver(self, addr):
        link = os.path.join(self.tb, "sys/bus/pci/devices", addr, "driver")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def snapshot(self):
        snap = {}
        devdir = os.path.join(self.tb, "sys/bus/pci/devices")
        for addr in sorted(os.listdir(devdir)):
            with open(os.path.join(devdir, addr, "driver_override")) as f:
                snap[addr] = (self.driver(addr), f.read().strip())
        snap["/dev/vfio"] = sorted(os.listdir(os.path.join(self.tb, "dev/vfio")))
        return snap

    def group_of(self, addr):
        return int(os.path.basename(os.readlink(os.path.join(self.tb, "sys/bus/pci/devices", addr, "iommu_group"))))

    def members(self, group):
        return sorted(os.listdir(os.path.join(self.tb, "sys/kernel/iommu_groups", str(group), "devices")))

    def records(self):
        out = {}
        for name in os.listdir(self.state):
            if re.fullmatch(r"group-\d+\.json", name):
                with open(os.path.join(self.state, name)) as f:
                    out[name] = json.load(f)
        return out


def error_of(res):
    """(error name, message) of a failed gdbus call"""
    m = re.search(r"GDBus\.Error:([\w.]+): (.*)", res[2], re.S)
    return (m.group(1), m.group(2).strip()) if m else (None, res[2])


def refused(env, name, res, error, *words):
    got, msg = error_of(res)
    t.ok(res[0] != 0 and got == error and all(w in msg for w in words),
         "%s: %s, naming %s" % (name, error.split(".")[-1], ", ".join(words)), "%s\n%s" % (got, msg))


# ---- round trips on every emulated host ----
def round_trips():
    for host in ["desktop", "dual-socket", "switch-no-acs", "pci-bridge", "multifunction", "acs-override", "broken"]:
        env = Env(host)
        try:
            rc, out, err = env.ctl("--json", "list-groups")
            groups = json.loads(out)["groups"]
            before = env.snapshot()
            done, refusals = 0, 0
            for g in groups:
                rc, out, err = env.ctl("--json", "assign", "group:%d" % g["group"], "--to", "vm-rt", "--dry-run",
                                       "--accept-leaky")
                plan = json.loads(out)
                if not plan["allowed"]:
                    refusals += 1
                    continue
                rc, out, err = env.ctl("assign", "group:%d" % g["group"], "--to", "vm-rt", "--accept-leaky")
                moved = [f["address"] for f in plan["functions"]]
                on_vfio = all(env.driver(a) == "vfio-pci" for a in moved)
                node = os.path.exists(os.path.join(env.tb, "dev/vfio", str(g["group"])))
                rc2, out2, err2 = env.ctl("release", "group:%d" % g["group"])
                if not (rc == 0 and on_vfio and node and rc2 == 0):
                    t.ok(False, "%s: group %d round trip" % (host, g["group"]), out + err + out2 + err2)
                    continue
                done += 1
            after = env.snapshot()
            diff = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
            t.ok(done > 0 and not diff and not env.records(),
                 "%s: %d groups assigned and released leave every function as before (%d refused)" %
                 (host, done, refusals), diff)
        finally:
            env.close()


# ---- refusals ----
def refusals():
    host = HOSTS["desktop"]()
    # a share from a hypervisor: virtio-9p has no block device, only its tag
    host.add("00:05.0", 0x1af4, 0x1009, 0x000200, driver="virtio-pci", virtio_9p="hostshare")
    host.mounts = list(host.mounts) + [("9p:hostshare", "/srv/share")]
    env = Env(host)
    try:
        refused(env, "unknown device", env.assign("09:00.0", "vm"), "org.iovirt1.Error.NoSuchDevice", "09:00.0")
        refused(env, "group that does not exist", env.assign("group:999", "vm"), "org.iovirt1.Error.NoSuchDevice",
                "no IOMMU group 999")
        refused(env, "malformed group", env.assign("group:x1", "vm"), "org.iovirt1.Error.InvalidArgument", "group:N")
        refused(env, "empty consumer", env.assign("03:00.0", ""), "org.iovirt1.Error.InvalidArgument", "empty")
        refused(env, "consumer with a control character", env.assign("03:00.0", "vm\tx"),
                "org.iovirt1.Error.InvalidArgument", "control character")
        refused(env, "consumer over 255 bytes", env.assign("03:00.0", "v" * 256), "org.iovirt1.Error.InvalidArgument",
                "255 bytes")
        refused(env, "unknown accept value", env.assign("03:00.0", "vm", "['everything']"),
                "org.iovirt1.Error.InvalidArgument", "leaky")
        refused(env, "root filesystem", env.assign("02:00.0", "vm"), "org.iovirt1.Error.HostCritical",
                "mounted at /", "nvme0n1p2")
        refused(env, "virtio-9p filesystem", env.assign("00:05.0", "vm"), "org.iovirt1.Error.HostCritical",
                "mounted at /srv/share", "virtio-9p hostshare")
        refused(env, "boot display", env.assign("00:02.0", "vm"), "org.iovirt1.Error.HostCritical", "boot display",
                "fb0")
        refused(env, "bridge-only group", env.assign("00:01.0", "vm"), "org.iovirt1.Error.InvalidArgument",
                "only bridges")
        t.ok(env.assign("03:00.0", "vm-a")[0] == 0, "03:00.0 goes to vm-a")
        refused(env, "group assigned to another consumer", env.assign("03:00.0", "vm-b"), "org.iovirt1.Error.InUse",
                "vm-a")
        refused(env, "group assigned to the same consumer", env.assign("group:%d" % env.group_of("0000:03:00.0"),
                                                                        "vm-a"), "org.iovirt1.Error.InUse", "vm-a")
        refused(env, "release of a group not assigned", env.call("Release", "02:00.0", "false"),
                "org.iovirt1.Error.NotAssigned", "not assigned")
        refused(env, "release for a consumer with nothing", env.call("ReleaseConsumer", "vm-z", "false"),
                "org.iovirt1.Error.NotAssigned", "vm-z")
        rc, out, err = env.ctl("release", "--consumer", "vm-a")
        t.ok(rc == 0 and "Released group" in out and env.driver("0000:03:00.0") == "e1000e",
             "release --consumer gives vm-a's group back", out + err)

        rc, out, err = env.ctl("assign", "03:00.0")
        t.ok(rc == 2 and "--to" in err, "assign without --to is a usage error", err)
        rc, out, err = env.ctl("release")
        t.ok(rc == 2 and "TARGET or --consumer" in err, "release needs a target or --consumer", err)
        rc, out, err = env.ctl("list-groups", "--to", "x")
        t.ok(rc == 2 and "assign only" in err, "--to goes with assign only", err)

        # a probe that fails: rolled back, both functions where they were
        env.faults("fail 0000:01:00.1 vfio-pci\n")
        before = env.snapshot()
        res = env.assign("01:00.0", "vm-gpu")
        refused(env, "a probe that fails", res, "org.iovirt1.Error.BindFailed", "0000:01:00.1", "put back")
        t.ok(env.snapshot() == before and not env.records(), "the failed assign left the host and state as before")
        # a device that vanishes mid-transaction
        env.faults("vanish 0000:01:00.1 unbind\n")
        res = env.assign("01:00.0", "vm-gpu")
        refused(env, "a device that vanishes", res, "org.iovirt1.Error.BindFailed", "0000:01:00.1", "gone away")
        t.ok(env.driver("0000:01:00.0") == "nouveau" and not env.records(),
             "the other function is back on nouveau and nothing is recorded")
        env.faults("")
    finally:
        env.close()

    env = Env("switch-no-acs")
    try:
        refused(env, "leaky group", env.assign("03:00.0", "vm"), "org.iovirt1.Error.NotIsolated",
                "leaky", "0000:04:00.0", "0000:02:01.0", "has no ACS", "--accept-leaky")
        res = env.assign("05:00.0", "vm", "['leaky']")
        refused(env, "swap, md and dm behind an accepted leaky group", res, "org.iovirt1.Error.HostCritical",
                "swap device /dev/nvme0n1p2", "md array md0", "dm-0 (vg0-vms)")
        rc, out, err = env.ctl("--json", "assign", "03:00.0", "--to", "vm", "--accept-leaky")
        checks = {c["id"]: c["status"] for c in json.loads(out)["checks"]} if rc == 0 else {}
        t.ok(rc == 0 and checks.get("isolation") == "accepted" and env.driver("0000:03:00.0") == "vfio-pci",
             "--accept-leaky assigns a leaky group, and the plan says it was accepted", out + err)
    finally:
        env.close()

    env = Env("no-iommu")
    try:
        rc, out, err = env.ctl("--json", "list-devices")
        addr = [d["address"] for d in json.loads(out)["devices"] if not d.get("bridge")][-1]
        refused(env, "host without an IOMMU", env.assign(addr, "vm"), "org.iovirt1.Error.NoIommu", "IOMMU is off")
    finally:
        env.close()

    env = Env("broken")
    try:
        rc, out, err = env.ctl("--json", "list-groups")
        unknown = [g for g in json.loads(out)["groups"] if g["isolation"] == "unknown"]
        if unknown:
            refused(env, "group of unknown isolation", env.assign("group:%d" % unknown[0]["group"], "vm"),
                    "org.iovirt1.Error.NotIsolated", "unknown")
        else:
            t.ok(False, "the broken host has a group of unknown isolation", out)
    finally:
        env.close()

    # a network interface that is up with an address and the default route, in
    # a network namespace of its own whose veth carries the testbed NIC's name
    setup = ("ip link add enp3s0 type veth peer name peer0 && ip addr add 192.0.2.10/24 dev enp3s0 && "
             "ip link set enp3s0 up && ip link set peer0 up && ip route add default via 192.0.2.1 dev enp3s0 && "
             "exec \"$@\"")
    if subprocess.run(["unshare", "-n", "sh", "-c", setup, "sh", "true"], capture_output=True).returncode != 0:
        t.skip("interface up with an address and the default route", "no network namespaces here (unshare -n)")
        return
    env = Env("desktop", wrapper=["unshare", "-n", "sh", "-c", setup, "sh"])
    try:
        refused(env, "interface up with an address and the default route", env.assign("enp3s0", "vm"),
                "org.iovirt1.Error.HostCritical", "enp3s0", "192.0.2.10", "default route")
    finally:
        env.close()


# ---- concurrency ----
def concurrency():
    env = Env("desktop")
    try:
        results = [None] * 50

        def one(i):
            results[i] = env.assign("01:00.0", "vm-%d" % i)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        winners = [i for i, r in enumerate(results) if r[0] == 0]
        losers = [error_of(r) for r in results if r[0] != 0]
        owner = "vm-%d" % winners[0] if len(winners) == 1 else None
        t.ok(len(winners) == 1, "50 concurrent assigns of one group: exactly one wins", winners)
        t.ok(owner and all(e in ("org.iovirt1.Error.InUse", "org.iovirt1.Error.Busy") and owner in m
                           for e, m in losers), "the 49 others are told InUse or Busy, naming %s" % owner,
             losers[:3])
        recs = env.records()
        t.ok(len(recs) == 1 and list(recs.values())[0]["consumer"] == owner, "one record, for the winner", recs)
    finally:
        env.close()


# ---- crash safety ----
GPU = ["0000:01:00.0", "0000:01:00.1"]
ORIGINAL = {"0000:01:00.0": "nouveau", "0000:01:00.1": "snd_hda_intel"}


def converged(env, consumer):
    """each function with its consumer or back on its original driver"""
    drivers = {a: env.driver(a) for a in GPU}
    recs = env.records()
    assigned = all(d == "vfio-pci" for d in drivers.values()) and len(recs) == 1 and \
        list(recs.values())[0]["consumer"] == consumer and list(recs.values())[0]["phase"] == "assigned"
    back = drivers == ORIGINAL and not recs
    return (assigned or back), drivers, recs


def crashes():
    covered = 0
    for point in FAULT_POINTS:
        for nth in (1, 2):
            if nth == 2 and point in ("assign.intent", "assign.node", "assign.commit", "assign.rollback",
                                      "release.intent", "release.commit"):
                continue      # reached once per transaction
            env = Env("desktop")
            try:
                releasing = point.startswith("release.")
                if releasing:
                    env.assign("01:00.0", "vm-crash")
                if point == "assign.rollback":
                    env.faults("fail 0000:01:00.1 vfio-pci\n")
                env.stop()
                env.start(IOVIRT_FAULT="%s:%d" % (point, nth))
                if releasing:
                    res = env.call("Release", "01:00.0", "false")
                else:
                    res = env.assign("01:00.0", "vm-crash")
                env.daemon.wait(30)
                killed = env.daemon.returncode == -signal.SIGKILL
                env.faults("")
                env.start()
                ok, drivers, recs = converged(env, "vm-crash")
                unbound = [a for a, d in drivers.items() if d is None]
                rc, out, err = env.ctl("--json", "list-assignments")
                t.ok(killed and ok and not unbound and rc == 0,
                     "killed at %s:%d, restarted: converged (%s)" % (point, nth,
                                                                     "with its consumer" if recs else "back on its drivers"),
                     "killed=%s drivers=%s records=%s call=%s\n%s" % (killed, drivers, recs, res, env.log()[-1500:]))
                covered += killed
            finally:
                env.close()
    t.ok(covered >= len(FAULT_POINTS), "%d kills at %d named injection points" % (covered, len(FAULT_POINTS)))


# ---- state across restarts, reboots and damage ----
def state():
    env = Env("desktop")
    try:
        env.assign("03:00.0", "vm-keep")
        env.assign("01:00.0", "vm-gpu")
        env.stop()
        env.start()
        rc, out, err = env.ctl("--json", "list-assignments")
        t.ok(rc == 0 and sorted(a["consumer"] for a in json.loads(out)["assignments"]) == ["vm-gpu", "vm-keep"],
             "assignments survive a daemon restart", out + err)

        # drift: somebody gives the NIC back by hand
        env.write("/sys/bus/pci/devices/0000:03:00.0/driver_override", "\n")
        env.write("/sys/bus/pci/drivers/vfio-pci/unbind", "0000:03:00.0")
        env.write("/sys/bus/pci/drivers_probe", "0000:03:00.0")
        env.ctl("reload")
        rc, out, err = env.ctl("list-assignments")
        t.ok("drift" in out and "on e1000e" in out, "a function rebound by hand is reported as drift", out)
        rc, out, err = env.ctl("release", "03:00.0")
        t.ok(rc == 0 and env.driver("0000:03:00.0") == "e1000e", "releasing a drifted group completes", out + err)

        # a damaged record and a valid one
        env.stop()
        gpu_group = env.group_of("0000:01:00.0")
        with open(os.path.join(env.state, "group-%d.json" % gpu_group), "r+") as f:
            text = f.read()
            f.seek(0)
            f.truncate()
            f.write(text[:len(text) // 2])
        with open(os.path.join(env.state, "group-77.json"), "w") as f:
            f.write("{ not json")
        env.start()
        log = env.log()
        aside = [n for n in os.listdir(env.state) if ".damaged-" in n]
        t.ok(len(aside) == 2 and "damaged" in log and env.daemon.poll() is None,
             "damaged records are set aside, logged, and the daemon runs", "%s\n%s" % (aside, log[-1500:]))
        rc, out, err = env.ctl("--json", "list-assignments")
        held = [a for a in json.loads(out)["assignments"] if a["group"] == gpu_group] if rc == 0 else []
        t.ok(held and held[0]["consumer"] == "" and all(env.driver(a) == "vfio-pci" for a in GPU),
             "the damaged group's functions stay held for an unknown consumer", out + err)
        rc, out, err = env.ctl("release", "group:%d" % gpu_group)
        t.ok(rc == 0 and {a: env.driver(a) for a in GPU} == ORIGINAL,
             "releasing it lets the kernel give the functions their drivers back", out + err)

        # a valid record survives damage next to it
        env.assign("03:00.0", "vm-keep")
        env.stop()
        with open(os.path.join(env.state, "group-%d.json" % gpu_group), "w") as f:
            f.write("")
        env.start()
        rc, out, err = env.ctl("--json", "list-assignments")
        t.ok(rc == 0 and [a["consumer"] for a in json.loads(out)["assignments"]] == ["vm-keep"],
             "a valid record is never lost to a damaged one beside it", out + err)

        # a reboot: the kernel forgot, and so do we
        env.stop()
        with open(os.path.join(env.tb, "proc/sys/kernel/random/boot_id"), "w") as f:
            f.write("00000000-1111-2222-3333-444444444444\n")
        env.start()
        t.ok(not env.records() and "restarted since" in env.log(),
             "assignments of an earlier boot are dropped, and the log says so", env.log()[-800:])
    finally:
        env.close()


# ---- what the operator has to fix: a function on a third driver, no vfio-pci module ----
def operator_errors():
    nic = "0000:03:00.0"
    env = Env("desktop")
    try:
        env.assign("03:00.0", "vm-a")
        # somebody moves the NIC to a third driver by hand
        env.write("/sys/bus/pci/devices/%s/driver_override" % nic, "nvme")
        env.write("/sys/bus/pci/drivers/vfio-pci/unbind", nic)
        env.write("/sys/bus/pci/drivers_probe", nic)
        res = env.call("Release", "03:00.0", "false")
        refused(env, "release of a function on a third driver", res, "org.iovirt1.Error.BindFailed",
                "is on nvme, which iovirt did not bind", "release group:")
        rec = list(env.records().values())
        t.ok(env.driver(nic) == "nvme" and len(rec) == 1 and rec[0]["phase"] == "releasing",
             "the function is left on nvme and its record is kept for a retry", rec)
        refused(env, "assign of a group still being given back", env.assign("03:00.0", "vm-b"),
                "org.iovirt1.Error.Busy", "still being given back by vm-a", "release group:")
        env.write("/sys/bus/pci/drivers/nvme/unbind", nic)
        env.write("/sys/bus/pci/devices/%s/driver_override" % nic, "\n")
        env.write("/sys/bus/pci/drivers_probe", nic)
        rc, out, err = env.ctl("release", "03:00.0")
        t.ok(rc == 0 and env.driver(nic) == "e1000e" and not env.records(),
             "once it is fixed by hand, the same release finishes", out + err)

        # vfio-pci not loaded, and modprobe cannot load it
        env.stop()
        shutil.rmtree(os.path.join(env.tb, "sys/bus/pci/drivers/vfio-pci"))
        env.start(IOVIRT_MODPROBE="/bin/false")
        before = env.snapshot()
        refused(env, "vfio-pci missing and modprobe failing", env.assign("03:00.0", "vm-a"),
                "org.iovirt1.Error.BindFailed", "vfio-pci driver is not loaded", "/bin/false vfio-pci")
        t.ok(env.snapshot() == before and not env.records(), "nothing was changed")
        # a modprobe that loads it (creates the driver, as the kernel would)
        modprobe = os.path.join(env.root, "modprobe")
        with open(modprobe, "w") as f:
            f.write("#!/bin/sh\n[ \"$1\" = vfio-pci ] || exit 1\nd=\"$UMOCKDEV_DIR/sys/bus/pci/drivers/vfio-pci\"\n"
                    "mkdir -p \"$d\" && touch \"$d/bind\" \"$d/unbind\" \"$d/new_id\" \"$d/remove_id\"\n")
        os.chmod(modprobe, 0o755)
        env.stop()
        env.start(IOVIRT_MODPROBE=modprobe)
        rc, out, err = env.ctl("assign", "03:00.0", "--to", "vm-a")
        t.ok(rc == 0 and env.driver(nic) == "vfio-pci", "iovirtd loads vfio-pci with modprobe when it is missing",
             out + err)
    finally:
        env.close()


round_trips()
operator_errors()
refusals()
concurrency()
crashes()
state()
sys.exit(t.done())
