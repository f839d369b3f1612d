#!/usr/bin/env python3
"""test-crash.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: iovirtd killed
(SIGKILL, by its own fault injection: $IOVIRT_FAULT=POINT[:N]) at every
step of a VF count change and of a pid: consumer's RLIMIT_MEMLOCK raise and
restore, restarted, and the host checked against the testbed's sysfs, the
state directory and /proc/PID/limits of a real child process.  The points
are read from the C sources and src/iovirt-fault.h, like test-assign.py
does: a point added in C without a case here fails.  test-assign.py kills
at the points of a group's assign and release; this file at the others
(and at those of assign and release again, with a pid: consumer, for what
they mean to its limit).  TAP output.

SR-IOV, on the emulated "sriov" host (PF 0000:05:00.0, an X710 port with
8 VFs), SetVfs through `iovirtctl sriov PF --vfs N` with and without
--persist / --no-persist / --autoprobe no, from 0 to 2, 2 to 0 and 2 to 3
(through 0).  SetVfs writes the PF's record first, marked pending, naming
the count (and autoprobe) the PF goes to; at start-up iovirtd carries a
pending record out and then makes it what the change leaves.  So, after
the restart, "converged" is, at every point (sriov.intent, .autoprobe,
.zero, .numvfs, .commit):
  - the change is finished: sriov_numvfs and sriov_drivers_autoprobe are
    the new ones (never 0 on the way from 2 to 3, never autoprobe changed
    with the old count), which is one of old and new as it must be;
  - every virtfnN link of the PF names a VF that is there, N from 0 to the
    count less one, and DescribeSriov (iovirtctl --json sriov) shows
    exactly those VFs and that count;
  - the record is what the request leaves: with --persist (or a persisted
    PF and no flag) sriov-PF.json persists the new count, without
    "pending", and DescribeSriov says persisted with that count; without
    (or with --no-persist) there is no record and DescribeSriov says not
    persisted.

Memlock, on the emulated "desktop" host (its GPU group, 0000:01:00.0 and
.1), `iovirtctl assign 01:00.0 --to pid:CHILD --memory 64M` where CHILD is
a real `sleep` with RLIMIT_MEMLOCK 4 MiB / 8 MiB: of another user (nobody)
with libvirt's rule (64 MiB + 1 GiB, soft and hard) when we hold
CAP_SYS_RESOURCE, else (a container that drops it: no process may raise a
hard limit, nor touch another user's) of our own uid with --hard-limit 6M
(the soft limit alone moves, to 6 MiB).  iovirtd writes the child's limit
from before to memlock-PID.json before raising it and drops that record
once the limit is back; at start-up a record of a running process that
holds no group has its limit put back.  "Converged" after the restart is
one of:
  - assigned: both functions on vfio-pci, the group's record assigned to
    pid:CHILD, /proc/CHILD/limits raised as asked, memlock-CHILD.json
    holding 4 MiB / 8 MiB; and a Release then puts 4 MiB / 8 MiB back and
    drops that record;
  - back: both functions on their original drivers, no group record, no
    memlock record, /proc/CHILD/limits 4 MiB / 8 MiB;
never a raised limit with no record that would put it back, never a limit
below 4 MiB / 8 MiB.  Which one each point leads to is fixed too:
memlock.intent, memlock.raised, assign.intent, memlock.undone (an assign
whose bind fails), release.commit and memlock.restored: back;
assign.commit: assigned.
"""

import json
import os
import re
import resource
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
SOURCE = os.path.join(HERE, "..", "..")
t = Tap()

MIB, GIB = 1 << 20, 1 << 30


def Env(host, **extra):
    return harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host, **extra)


def kill_at(env, point, call):
    """iovirtd restarted with IOVIRT_FAULT=point, call() made: whether it
    died of SIGKILL, what the call said; then iovirtd started again"""
    env.stop()
    env.start(IOVIRT_FAULT=point)
    res = call()
    # the call ends when iovirtd dies (its connection goes) or answers: then it is dead or will not die
    try:
        env.daemon.wait(10)
    except subprocess.TimeoutExpired:
        pass
    killed = env.daemon.returncode == -signal.SIGKILL
    if not killed:
        env.daemon.kill()        # not reached: this one goes, the check fails on killed
        env.daemon.wait(10)
    log = env.log()
    env.start()
    return killed, res, log


# ---- SR-IOV ----
PF = "0000:05:00.0"


def attr(env, name):
    try:
        with open(os.path.join(env.tb, "sys/bus/pci/devices", PF, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def virtfns(env):
    """VF index -> address, for the PF's virtfnN links whose device is there"""
    d = os.path.join(env.tb, "sys/bus/pci/devices", PF)
    out = {}
    for n in os.listdir(d):
        if re.fullmatch(r"virtfn\d+", n):
            target = os.path.join(d, n)
            out[int(n[6:])] = os.path.basename(os.readlink(target)) if os.path.exists(target) else None
    return out


def sriov_record(env):
    try:
        with open(os.path.join(env.state, "sriov-%s.json" % PF)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def describe(env):
    rc, out, err = env.ctl("--json", "sriov", PF)
    try:
        return json.loads(out) if rc == 0 else None
    except ValueError:
        return None


def setvfs(env, count, *flags):
    return env.ctl("--no-ask-password", "sriov", PF, "--vfs", str(count), *flags)


# (point, before: (count, persisted), to, flags): every step of the change,
# each kind of request that reaches it
SRIOV_CASES = [
    ("sriov.intent", (0, False), 2, ()),
    ("sriov.intent", (0, False), 2, ("--persist",)),
    ("sriov.intent", (2, True), 0, ("--no-persist",)),
    ("sriov.intent", (2, False), 3, ()),
    ("sriov.autoprobe", (0, False), 2, ("--autoprobe", "no")),
    ("sriov.autoprobe", (0, False), 2, ("--autoprobe", "no", "--persist")),
    ("sriov.zero", (2, False), 3, ()),
    ("sriov.zero", (2, True), 3, ()),
    ("sriov.numvfs", (0, False), 2, ()),
    ("sriov.numvfs", (0, False), 2, ("--persist",)),
    ("sriov.numvfs", (2, True), 0, ("--no-persist",)),
    ("sriov.numvfs", (2, False), 0, ()),
    ("sriov.commit", (0, False), 2, ("--persist",)),
    ("sriov.commit", (2, False), 0, ()),
]


def sriov_case(point, before, to, flags):
    count, persisted = before
    autoprobe = "0" if "no" in flags else "1"
    persist = "--persist" in flags or (persisted and "--no-persist" not in flags)
    title = "%s: %d -> %d%s%s" % (point, count, to, " " if flags else "", " ".join(flags))
    env = Env("sriov")
    try:
        if count or persisted:
            setvfs(env, count, *(("--persist",) if persisted else ()))
        ready = int(attr(env, "sriov_numvfs")) == count and (sriov_record(env) is not None) == persisted
        killed, res, log = kill_at(env, point, lambda: setvfs(env, to, *flags))
        num = int(attr(env, "sriov_numvfs"))
        ap = attr(env, "sriov_drivers_autoprobe")
        fns = virtfns(env)
        rec = sriov_record(env)
        doc = describe(env) or {}
        pf = doc.get("pf", {})
        one_of = (num, ap) in ((count, "1"), (to, autoprobe))
        finished = (num, ap) == (to, autoprobe)
        vfs_whole = sorted(fns) == list(range(num)) and None not in fns.values()
        described = pf.get("num_vfs") == num and sorted(v.get("address") for v in doc.get("vfs", [])) == \
            sorted(fns.values()) and pf.get("autoprobe") == (ap == "1")
        if persist:
            recorded = rec is not None and rec.get("num_vfs") == to and rec.get("persist") is True and \
                "pending" not in rec and pf.get("persisted", {}) and pf["persisted"].get("num_vfs") == to
        else:
            recorded = rec is None and pf.get("persisted") is None
        t.ok(ready and killed and one_of and finished and vfs_whole and described and recorded,
             "killed at %s, restarted: %d VFs%s, every VF whole, DescribeSriov agrees, %s" %
             (title, to, ", autoprobe off" if autoprobe == "0" else "",
              "persisted with %d" % to if persist else "no record"),
             "ready=%s killed=%s sriov_numvfs=%s autoprobe=%s virtfns=%s record=%s\ndescribe=%s\ncall=%s\n"
             "killed run:\n%s\nrestart:\n%s" % (ready, killed, num, ap, fns, rec, json.dumps(pf), res,
                                                log[-1200:], env.log()[len(log):][-1500:]))
        return killed
    finally:
        env.close()


# ---- memlock ----
GPU = ["0000:01:00.0", "0000:01:00.1"]
ORIGINAL = {"0000:01:00.0": "nouveau", "0000:01:00.1": "snd_hda_intel"}
ORIG_MEMLOCK = (4 * MIB, 8 * MIB)


def can_raise_limits():
    """CAP_SYS_RESOURCE (bit 24) in our effective set"""
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff & (1 << 24))


def Child(env, user=None):
    """a consumer process starting at ORIG_MEMLOCK, as USER (harness.Child)"""
    return harness.Child(env, ORIG_MEMLOCK, user=user)


RAISE = can_raise_limits()
USER = "nobody" if RAISE else None
OPTS = ["--memory", "64M"] + ([] if RAISE else ["--hard-limit", "6M"])
WANT = (64 * MIB + GIB,) * 2 if RAISE else (6 * MIB, ORIG_MEMLOCK[1])


def memlock_record(env, child):
    try:
        with open(os.path.join(env.state, "memlock-%d.json" % child.pid)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def memlock_state(env, child):
    """"assigned", "back", or None (neither: not converged), with what was seen"""
    drivers = {a: env.driver(a) for a in GPU}
    recs = list(env.records().values())
    limit = child.memlock()
    mrec = memlock_record(env, child)
    seen = "drivers=%s records=%s limits=%s memlock record=%s" % (drivers, recs, limit, mrec)
    if all(d == "vfio-pci" for d in drivers.values()) and len(recs) == 1 and \
            recs[0].get("consumer") == child.consumer and recs[0].get("phase") == "assigned" and limit == WANT and \
            mrec and (mrec.get("soft"), mrec.get("hard")) == ORIG_MEMLOCK and mrec.get("consumer") == child.consumer:
        return "assigned", seen
    if drivers == ORIGINAL and not recs and limit == ORIG_MEMLOCK and mrec is None:
        return "back", seen
    return None, seen


def assign(env, child):
    return env.ctl("--json", "--no-ask-password", "assign", "01:00.0", "--to", child.consumer, *OPTS)


def release(env):
    return env.ctl("--json", "--no-ask-password", "release", "01:00.0")


# (point, what is done before the kill, the call that reaches it, "assigned" or "back")
MEMLOCK_CASES = [
    ("memlock.intent", None, "assign", "back"),
    ("memlock.raised", None, "assign", "back"),
    ("assign.intent", None, "assign", "back"),
    ("assign.commit", None, "assign", "assigned"),
    ("memlock.undone", None, "assign failing", "back"),
    ("release.commit", "assign", "release", "back"),
    ("memlock.restored", "assign", "release", "back"),
]


def memlock_case(point, before, call, expect):
    env = Env("desktop")
    child = None
    try:
        child = Child(env, USER)
        ready = child.memlock() == ORIG_MEMLOCK
        if before == "assign":
            res = assign(env, child)
            ready = ready and res[0] == 0 and child.memlock() == WANT and memlock_record(env, child) is not None
        if call == "assign failing":
            env.faults("fail 0000:01:00.1 vfio-pci\n")
        killed, res, log = kill_at(env, point, lambda: (release(env) if call == "release" else assign(env, child)))
        env.faults("")
        state, seen = memlock_state(env, child)
        rc, out, err = env.ctl("--json", "list-assignments")
        t.ok(ready and killed and state == expect and rc == 0,
             "killed at %s (%s of pid:CHILD), restarted: %s" %
             (point, call, "assigned, limit raised, its limit from before recorded" if expect == "assigned"
              else "back on its drivers, limit 4 MiB / 8 MiB, no record"),
             "ready=%s killed=%s state=%s\n%s\ncall=%s\nkilled run:\n%s\nrestart:\n%s" %
             (ready, killed, state, seen, res, log[-1200:], env.log()[len(log):][-1500:]))
        if state == "assigned":
            res = release(env)
            state, seen = memlock_state(env, child)
            t.ok(res[0] == 0 and state == "back", "and Release then puts 4 MiB / 8 MiB back and drops the record",
                 "%s\n%s" % (res, seen))
        return killed
    finally:
        if child:
            child.close()
        env.close()


def earlier_boot():
    """Records a crash left in an earlier boot name nothing of this one: a
    pending SR-IOV change not to be kept is left undone (one to be kept is
    put back as persisted), and a memlock record's (pid, start) is not
    taken for this boot's process, whose limit is not touched"""
    env = Env("sriov")
    try:
        env.stop()
        with open(os.path.join(env.tb, "proc/sys/kernel/random/boot_id"), "w") as f:
            f.write("00000000-0000-4000-8000-0000000000e1\n")
        pending = {"version": 1, "pf": PF, "num_vfs": 2, "persist": False, "pending": True,
                   "boot_id": "00000000-0000-4000-8000-0000000000e0", "vfs": []}
        with open(os.path.join(env.state, "sriov-%s.json" % PF), "w") as f:
            json.dump(pending, f)
        child = Child(env)
        raised = (2 * ORIG_MEMLOCK[0], ORIG_MEMLOCK[1])
        resource.prlimit(child.pid, resource.RLIMIT_MEMLOCK, raised)          # as if raised then
        with open("/proc/%d/stat" % child.pid) as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        with open(os.path.join(env.state, "memlock-%d.json" % child.pid), "w") as f:
            json.dump({"version": 1, "pid": child.pid, "pid_start": start, "soft": ORIG_MEMLOCK[0],
                       "hard": ORIG_MEMLOCK[1], "consumer": child.consumer,
                       "boot_id": "00000000-0000-4000-8000-0000000000e0"}, f)
        env.start()
        t.ok(int(attr(env, "sriov_numvfs")) == 0 and sriov_record(env) is None and "earlier boot" in env.log(),
             "a pending change to 2 VFs not to be kept, cut short in an earlier boot: left undone, record gone",
             "sriov_numvfs=%s record=%s\n%s" % (attr(env, "sriov_numvfs"), sriov_record(env), env.log()[-800:]))
        t.ok(child.memlock() == raised and memlock_record(env, child) is None,
             "a memlock record of an earlier boot: this boot's process of the same pid and start keeps its "
             "limit, the record is dropped", "limits=%s record=%s" % (child.memlock(), memlock_record(env, child)))
        child.close()
        env.stop()
        pending["persist"] = True
        with open(os.path.join(env.state, "sriov-%s.json" % PF), "w") as f:
            json.dump(pending, f)
        env.start()
        rec = sriov_record(env) or {}
        t.ok(int(attr(env, "sriov_numvfs")) == 2 and rec.get("persist") is True and "pending" not in rec,
             "one to be kept: put back as persisted (2 VFs), no longer pending", "sriov_numvfs=%s record=%s" % (
                 attr(env, "sriov_numvfs"), rec))
    finally:
        env.close()


def main():
    used, listed = harness.fault_points(SOURCE)
    ours = [p for p in listed if p in used and not p.startswith(("assign.", "release."))] + \
        sorted(p for p in used - set(listed) if not p.startswith(("assign.", "release.")))
    cased = {c[0] for c in SRIOV_CASES} | {c[0] for c in MEMLOCK_CASES}
    t.ok(used and sorted(used) == sorted(listed) and len(set(listed)) == len(listed),
         "src/iovirt-fault.h lists every fault point the C sources reach, once (%d)" % len(used),
         "in the code only: %s; listed only: %s" % (sorted(used - set(listed)), sorted(set(listed) - used)))
    t.ok(ours and not set(ours) - cased and not cased - used,
         "every point beyond assign and release has a crash case here (%d: %s)" % (len(ours), ", ".join(ours)),
         "without a case: %s; cases of no point: %s" % (sorted(set(ours) - cased), sorted(cased - used)))
    if not RAISE:
        print("# no CAP_SYS_RESOURCE: the child is ours, with --hard-limit 6M (the soft limit alone is raised)")
    kills = 0
    for case in SRIOV_CASES:
        kills += bool(sriov_case(*case))
    for case in MEMLOCK_CASES:
        kills += bool(memlock_case(*case))
    earlier_boot()
    t.ok(kills == len(SRIOV_CASES) + len(MEMLOCK_CASES),
         "%d kills at %d points (SR-IOV and memlock)" % (kills, len(cased)))
    return t.done()


sys.exit(main())
