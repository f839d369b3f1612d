#!/usr/bin/env python3
"""test-assign.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: assignment
through the real bus, against emulated hosts whose sysfs behaves like the
kernel's (tests/emulator).  TAP output.

  - round trips: every assignable group of every emulated host, assigned and
    released, leaves every function exactly as before (driver, override,
    /dev/vfio node);
  - every refusal: its error name, and a message that names the reason;
  - 50 concurrent assigns of one group: exactly one wins;
  - crash safety: iovirtd killed at every fault-injection point of an assign
    and a release (test-crash.py kills at the SR-IOV and memlock ones), restarted,
    and the host converged (each function with its consumer or back on its
    original driver, no function left without a driver, state readable);
  - bad input and damaged state.
"""

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from hosts import HOSTS  # noqa: E402
from tap import Tap  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]


def Env(host, **extra):
    return harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host, **extra)
SOURCE = os.path.join(HERE, "..", "..")


t = Tap()
USED_POINTS, LISTED_POINTS = harness.fault_points(SOURCE)
t.ok(USED_POINTS and sorted(USED_POINTS) == sorted(LISTED_POINTS) and len(set(LISTED_POINTS)) == len(LISTED_POINTS),
     "src/iovirt-fault.h lists every fault point the C sources reach, once (%d)" % len(USED_POINTS),
     "in the code only: %s; listed only: %s" % (sorted(USED_POINTS - set(LISTED_POINTS)),
                                                 sorted(set(LISTED_POINTS) - USED_POINTS)))
# this file's matrix kills at the points of a group's assign and release;
# tests/dbus/test-crash.py kills at the others (SR-IOV, memlock)
ALL_POINTS = [p for p in LISTED_POINTS if p in USED_POINTS] + sorted(USED_POINTS - set(LISTED_POINTS))
FAULT_POINTS = [p for p in ALL_POINTS if p.startswith(("assign.", "release."))]


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
        # a retry by the consumer that holds it: success, the same plan, marked done, nothing changed
        before, recs = env.snapshot(), env.records()
        res = env.assign("group:%d" % env.group_of("0000:03:00.0"), "vm-a")
        plan = json.loads(ast.literal_eval(res[1].strip())[0]) if res[0] == 0 else {}
        t.ok(res[0] == 0 and plan.get("done") is True and not any(f["moves"] for f in plan["functions"]) and
             env.snapshot() == before and env.records() == recs,
             "assigning a group again to the consumer that holds it succeeds, marked done, and changes nothing",
             res)
        rc, out, err = env.ctl("assign", "03:00.0", "--to", "vm-a")
        t.ok(rc == 0 and "assigned to vm-a already; nothing changed" in out, "iovirtctl says the retry changed nothing",
             out + err)
        refused(env, "release of a group not assigned", env.call("Release", "02:00.0", "false"),
                "org.iovirt1.Error.NotAssigned", "not assigned")
        res = env.call("ReleaseConsumer", "vm-z", "false")
        t.ok(res[0] == 0 and json.loads(ast.literal_eval(res[1].strip())[0]) == {"released": []},
             "releasing a consumer that holds nothing succeeds with an empty list (a retry)", res)
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

    # the host's NIC as a port of a bridge that holds the address, as on most libvirt hosts
    setup = ("ip link add enp3s0 type veth peer name peer0 && ip link add br0 type bridge && "
             "ip link set enp3s0 master br0 && ip addr add 192.0.2.20/24 dev br0 && ip link set enp3s0 up && "
             "ip link set peer0 up && ip link set br0 up && ip route add default via 192.0.2.1 dev br0 && "
             "exec \"$@\"")
    host = HOSTS["desktop"]()
    env = Env(host, wrapper=["unshare", "-n", "sh", "-c", setup, "sh"])
    try:
        # the testbed's sysfs, as the kernel shows a bridge: a virtual device with lower_ links
        br = os.path.join(env.tb, "sys/devices/virtual/net/br0")
        os.makedirs(br)
        os.symlink("../../devices/virtual/net/br0", os.path.join(env.tb, "sys/class/net/br0"))
        nic = os.readlink(os.path.join(env.tb, "sys/class/net/enp3s0"))
        os.symlink(os.path.relpath(os.path.normpath(os.path.join(env.tb, "sys/class/net", nic)), br),
                   os.path.join(br, "lower_enp3s0"))
        refused(env, "a NIC that is a port of a bridge with the address and the default route",
                env.assign("03:00.0", "vm"), "org.iovirt1.Error.HostCritical", "br0", "192.0.2.20", "default route")
    finally:
        env.close()


# ---- fail closed: what the guard cannot read, it does not vouch for ----
def fail_closed():
    env = Env("desktop")
    try:
        mountinfo = os.path.join(env.tb, "proc/self/mountinfo")
        os.rename(mountinfo, mountinfo + ".aside")
        os.mkdir(mountinfo)            # read(2) says EISDIR, whoever runs it
        before = env.snapshot()
        refused(env, "unreadable mountinfo", env.assign("03:00.0", "vm"), "org.iovirt1.Error.HostCritical",
                "could not read /proc/self/mountinfo: Is a directory",
                "cannot tell whether a device backs a filesystem")
        rc, out, err = env.ctl("--json", "assign", "03:00.0", "--to", "vm", "--dry-run")
        checks = {c["id"]: c for c in json.loads(out)["checks"]} if out else {}
        hc = checks.get("host-readable", {})
        t.ok(rc == 1 and hc.get("status") == "fail" and hc.get("reason") == "host-unreadable" and
             hc.get("error") == "org.iovirt1.Error.HostCritical" and "host-critical" not in checks,
             "the plan's host-readable check fails with reason host-unreadable, and host-critical does not pass",
             out + err)
        t.ok(env.snapshot() == before and not env.records(), "nothing was changed")
        os.rmdir(mountinfo)
        os.rename(mountinfo + ".aside", mountinfo)

        swaps = os.path.join(env.tb, "proc/swaps")
        os.unlink(swaps)
        refused(env, "missing /proc/swaps", env.assign("03:00.0", "vm"), "org.iovirt1.Error.HostCritical",
                "could not read /proc/swaps: No such file or directory", "whether a device backs swap")
        with open(swaps, "w") as f:
            f.write("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")

        # a mount whose block device sysfs does not know
        with open(mountinfo, "a") as f:
            f.write("99 1 8:99 / /mnt/lost rw,relatime - ext4 /dev/sdz9 rw\n")
        refused(env, "a mount whose device cannot be resolved", env.assign("03:00.0", "vm"),
                "org.iovirt1.Error.HostCritical", "/sys/dev/block/8:99 (the device of /mnt/lost)")
        with open(mountinfo) as f:
            lines = [line for line in f if "/mnt/lost" not in line]
        with open(mountinfo, "w") as f:
            f.writelines(lines)
        rc, out, err = env.ctl("assign", "03:00.0", "--to", "vm")
        t.ok(rc == 0 and env.driver("0000:03:00.0") == "vfio-pci",
             "once the guard can read everything again, the same assign goes through", out + err)

        # filesystems mountinfo gives no device number (0:N)
        with open(mountinfo) as f:
            lines = [line for line in f if " / / " not in line and "/boot/efi" not in line]
        btrfs = os.path.join(env.tb, "sys/fs/btrfs/0a1b2c3d-0000-4000-8000-000000000001/devices")
        os.makedirs(btrfs)
        os.symlink("../../../../class/block/nvme0n1p2", os.path.join(btrfs, "nvme0n1p2"))
        with open(mountinfo, "w") as f:
            f.writelines(lines + ["40 1 0:33 / / rw,relatime - btrfs /dev/nvme0n1p2 rw,ssd,subvol=/\n",
                                  "41 1 0:34 / /var/lib/docker/x rw - overlay overlay rw,lowerdir=/a\n",
                                  "42 1 0:35 / /home/u/.cache/doc rw - fuse.portal portal rw\n"])
        refused(env, "a btrfs root, which mountinfo shows as 0:N", env.assign("02:00.0", "vm"),
                "org.iovirt1.Error.HostCritical", "backs the btrfs filesystem mounted at /")
        rc, out, err = env.ctl("--json", "assign", "04:00.0", "--to", "vm", "--dry-run")
        t.ok(rc == 0 and json.loads(out)["allowed"], "overlay and FUSE mounts need no device behind them", out + err)
        with open(mountinfo, "a") as f:
            f.write("43 1 0:36 / /tank rw - zfs tank/data rw,xattr\n")
        refused(env, "a ZFS dataset, whose disks iovirt cannot follow", env.assign("04:00.0", "vm"),
                "org.iovirt1.Error.HostCritical", "the device behind the zfs filesystem tank/data mounted at /tank")
    finally:
        env.close()


# ---- transactions off the event loop ----
def wait_for(cond, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def off_the_loop():
    """A bind held in the emulated kernel: everyone else is answered"""
    env = Env("desktop")
    try:
        held = os.path.join(env.tb, "emulator/held-0000:03:00.0-probe")
        env.faults("hold 0000:03:00.0 probe\n")
        slow = subprocess.Popen(harness.GDBUS_CALL + ["--method", "org.iovirt1.Manager.Assign", "03:00.0", "vm-a", "[]",
                                                      "false"], env=env.bus.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        t.ok(wait_for(lambda: os.path.exists(held)), "the assign of 03:00.0 is held at its probe, half-way")
        res = env.call("DescribeDevice", "03:00.0")
        t.ok(res[0] == 0 and slow.poll() is None, "DescribeDevice is answered while that bind waits", res)
        rc, out, err = env.ctl("--json", "list-assignments")
        moving = [a for a in json.loads(out)["assignments"] if a["consumer"] == "vm-a"] if rc == 0 else []
        t.ok(moving and moving[0]["phase"] == "assigning", "list-assignments shows it assigning to vm-a", out + err)
        refused(env, "the same group while its transaction runs", env.assign("03:00.0", "vm-b"),
                "org.iovirt1.Error.Busy", "being assigned to vm-a right now")
        refused(env, "its release while it is being assigned", env.call("Release", "03:00.0", "false"),
                "org.iovirt1.Error.Busy", "vm-a")
        rc, out, err = env.ctl("--json", "assign", "03:00.0", "--to", "vm-b", "--dry-run")
        own = [c for c in json.loads(out)["checks"] if c["id"] == "ownership"] if out else []
        t.ok(rc == 1 and own and own[0]["reason"] == "busy", "the dry run's plan says busy", out + err)
        rc, out, err = env.ctl("assign", "04:00.0", "--to", "vm-c")
        t.ok(rc == 0 and env.driver("0000:04:00.0") == "vfio-pci" and slow.poll() is None,
             "another group is assigned from start to end meanwhile", out + err)

        # SIGTERM: no new work, reads go on, and it ends when the transaction does
        env.daemon.send_signal(signal.SIGTERM)
        t.ok(wait_for(lambda: "Stopping once the running transactions have finished" in env.log()),
             "SIGTERM during a transaction: iovirtd says it waits for it", env.log()[-500:])
        refused(env, "new work while stopping", env.assign("00:14.0", "vm-d"), "org.iovirt1.Error.Busy", "stopping")
        t.ok(env.call("ListGroups")[0] == 0 and env.daemon.poll() is None, "reads are still answered while stopping")
        env.faults("")
        out, err = slow.communicate(timeout=60)
        t.ok(slow.returncode == 0 and env.driver("0000:03:00.0") == "vfio-pci",
             "the held assign completes once the kernel lets go", err)
        t.ok(env.daemon.wait(30) == 0, "and then iovirtd exits cleanly")
        recs = sorted((r["consumer"], r["phase"]) for r in env.records().values())
        t.ok(recs == [("vm-a", "assigned"), ("vm-c", "assigned")], "both assignments are recorded", recs)
        env.start()
        rc, out, err = env.ctl("release", "--consumer", "vm-a")
        rc2, out2, err2 = env.ctl("release", "--consumer", "vm-c")
        t.ok(rc == 0 and rc2 == 0 and env.driver("0000:03:00.0") == "e1000e" and env.driver("0000:04:00.0") is None
             and not env.records(), "after a restart both are released as recorded", out + err + out2 + err2)
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
fail_closed()
off_the_loop()
operator_errors()
refusals()
concurrency()
crashes()
state()
sys.exit(t.done())
