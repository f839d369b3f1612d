#!/usr/bin/python3
"""test-policy.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: the policy of
issue 13 through the real bus, against iovirtd on the emulated
"dual-socket" host (tests/hosts: a GPU on NUMA node 0, a ConnectX NIC and
an X710 with VFs on node 1), whose sysfs behaves like the kernel's
(tests/emulator), with a MemTotal, a SLIT and CPU sockets of our choosing.
The oracles are the testbed's sysfs, /proc/PID/limits of a real child, the
D-Bus error names and the JSON documents.  TAP output.

  - no policy files: assignments as before; DescribePolicy shows the
    defaults, each with origin "default";
  - pools: a device in no pool, a consumer the pool does not admit
    (PolicyDenied), a match; pool:NAME picks a device of the pool, nearest
    by the NUMA policy; a pool name defined in two files makes Reload fail
    naming both places, and the last good policy stays; an unknown key is
    a warning; a file removed while its pool is in use is gone after Reload;
  - memlock on a real child (pid:PID, --memory): RLIMIT_MEMLOCK soft and
    hard raised to memory + 1 GiB, DescribeStatus tells it, Release puts
    the original back; with viommu and two groups 2 x memory + 1 GiB.
    Raising a hard limit needs CAP_SYS_RESOURCE: without it (a container
    that drops it) those checks are skipped, and the refused raise is
    checked instead (Failed, nothing changed); --hard-limit under the hard
    limit there is (only the soft one moves) is checked either way, as are
    a failed bind after the raise, a first group without memory, and one
    process under two names (pid:0PID);
  - the child exits: iovirtd releases its group by itself; also while its
    group is being bound, across a restart, while iovirtd is stopped;
    [Consumers] WatchProcessExit=no, also when Reload changes it;
  - a policy file that cannot be read at start: every assignment refused
    (PolicyDenied, policy-unreadable) until Reload reads a good one;
  - pid:PID of no process, pid:abc: InvalidArgument;
  - the host-wide pinned budget: OverBudget naming what was asked, what
    is pinned and the budget; [Memory] Reserve= changes it after Reload;
    an assignment under way counts already;
  - the memory cgroup check (memory.max of the child's cgroup): warn, or
    refuse with MemoryCgroup=refuse;
  - NUMA: required refuses a remote device naming both nodes, preferred
    warns, socket refuses another socket, a pool with
    AllowNumaPolicyChoice=no refuses a request that names a policy;
  - ownership: the record's holder is the caller's uid; nobody releasing
    root's assignment is asked for org.iovirt1.release-any, its own for
    org.iovirt1.release (python-dbusmock's polkitd records what was asked);
    nobody naming root's process as consumer is refused before polkit;
  - a plain QEMU that is not root: /dev/vfio/N goes to its user (or
    --user's) and back; a non-root caller may name only itself;
    --print-qemu-args prints the -device arguments.
"""

import ast
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
from cli_errors import error_object  # noqa: E402
import harness  # noqa: E402
from testbed import meminfo  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
t = Tap()

MIB, GIB = 1 << 20, 1 << 30
SLACK = GIB                                 # libvirt's 1 GiB on top of the guest memory
ETC = "etc/iovirt/policy.d"
USR = "usr/lib/iovirt/policy.d"
NIC = "0000:82:00.0"                        # ConnectX-5 (15b3:1017), mlx5_core, node 1
VF = "0000:81:02.0"                         # an X710 VF (8086:154c), iavf, node 1
GPU = "0000:3b:00.0"                        # 10de:1eb8, node 0 (on vfio-pci already)
ORIG_MEMLOCK = (4 * MIB, 8 * MIB)           # what the child starts with (soft, hard)

E = "org.iovirt1.Error."


# ---- calls and answers ----

class Res:
    """What a call answered: ok, doc (the JSON document of a success), name
    and message (of a refusal), raw (everything, for diagnostics)"""

    def __init__(self, ok, doc, name, message, raw):
        self.ok, self.doc, self.name, self.message, self.raw = ok, doc, name, message, raw

    def __repr__(self):
        return repr(self.raw)


def ctl(env, *args):
    """iovirtctl --json ARGS: the document, or its {"error": {...}} object"""
    rc, out, err = env.ctl("--json", "--no-ask-password", *args)
    e = error_object(out) if rc != 0 else None
    try:
        doc = json.loads(out) if rc == 0 and out.strip() else {}
    except ValueError:
        doc = {}
    return Res(rc == 0, doc, e and e["name"], (e or {}).get("message", err), (rc, out, err))


def bus(env, method, *args, user=None):
    """The method over the bus with gdbus (user="nobody": as uid 65534)"""
    rc, out, err = env.call(method, *args, user=user)
    doc = {}
    if rc == 0:
        try:
            doc = json.loads(ast.literal_eval(out.strip())[0])
        except (ValueError, SyntaxError, IndexError, TypeError):
            pass
    m = re.search(r"GDBus\.Error:([\w.]+): (.*)", err, re.S)
    return Res(rc == 0, doc, m and m.group(1), m.group(2).strip() if m else err, (rc, out, err))


def refused(what, res, error, *words):
    return t.ok(not res.ok and res.name == error and all(w in res.message for w in words),
                "%s: %s%s" % (what, error.split(".")[-1],
                              ", naming " + ", ".join(repr(w) for w in words) if words else ""), res)


OPTS = {"memory": "--memory", "hard-limit": "--hard-limit", "numa-policy": "--numa-policy",
        "numa-node": "--numa-node", "cpus": "--cpus", "driver": "--driver"}


def flags(opts):
    """Assign's accept values as iovirtctl's options"""
    out = []
    for o in opts:
        if o == "viommu":
            out.append("--viommu")
        else:
            k, v = o.split("=", 1)
            out += [OPTS[k], v]
    return out


def accept(*opts):
    return "[%s]" % ", ".join("'%s'" % o for o in opts) if opts else "@as []"


def assign(env, target, consumer, *opts, user=None):
    """iovirtctl assign (root), or Assign over the bus as user"""
    if user:
        return bus(env, "Assign", target, consumer, accept(*opts), "false", user=user)
    return ctl(env, "assign", target, "--to", consumer, *flags(opts))


def bus_assign(env, target, consumer, *opts):
    """Assign over the bus: the daemon's own argument checks, past the CLI's"""
    return bus(env, "Assign", target, consumer, accept(*opts), "false")


def plan(env, target, consumer, *opts):
    """PlanAssign's document (allowed or not, with every check)"""
    return bus(env, "PlanAssign", target, consumer, accept(*opts)).doc


def check(p, cid):
    return next((c for c in p.get("checks", []) if c.get("id") == cid), {})


def release(env, target, user=None):
    if user:
        return bus(env, "Release", target, "false", user=user)
    return ctl(env, "release", target)


def release_consumer(env, consumer, user=None):
    if user:
        return bus(env, "ReleaseConsumer", consumer, "false", user=user)
    return ctl(env, "release", "--consumer", consumer)


def reload(env):
    return ctl(env, "reload")


def describe_policy(env):
    return ctl(env, "policy").doc


def describe_status(env):
    return ctl(env, "status").doc


def assignments(env):
    return bus(env, "DescribeAssignments").doc.get("assignments")


def being_assigned(env, consumer):
    """Whether a group of consumer is recorded as being assigned (the
    placeholder that goes in before the bind)"""
    return any(a.get("consumer") == consumer and a.get("phase") == "assigning" for a in assignments(env) or [])


def consumer_status(env, consumer):
    return next((c for c in describe_status(env).get("consumers", []) if c.get("consumer") == consumer), {})


def write_policy(env, name, text, where=ETC):
    d = os.path.join(env.tb, where)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".new"), "w") as f:
        f.write(text)
    os.rename(os.path.join(d, name + ".new"), os.path.join(d, name))


def remove_policies(env):
    for where in (ETC, USR):
        shutil.rmtree(os.path.join(env.tb, where), ignore_errors=True)


def set_memtotal(env, memtotal):
    with open(os.path.join(env.tb, "proc/meminfo.new"), "w") as f:
        f.write(meminfo(memtotal))
    os.rename(os.path.join(env.tb, "proc/meminfo.new"), os.path.join(env.tb, "proc/meminfo"))


def origins(o, path=""):
    """Every "origin" of a DescribePolicy document: (path, origin)"""
    out = []
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "origin":
                out.append((path, v))
            else:
                out += origins(v, path + "." + k)
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += origins(v, "%s[%d]" % (path, i))
    return out


# ---- a real child as a pid: consumer ----

def Child(env, **how):
    """a consumer process starting at ORIG_MEMLOCK (harness.Child)"""
    return harness.Child(env, ORIG_MEMLOCK, **how)

def write_memory_max(env, cgroup, value):
    d = os.path.join(env.tb, "sys/fs/cgroup", cgroup.lstrip("/"))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "memory.max"), "w") as f:
        f.write(value + "\n")


def unused_pid():
    """A PID no process has (nor the testbed)"""
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


# ---- the emulated host ----

def host():
    from hosts import HOSTS
    h = HOSTS["dual-socket"]()
    h.memtotal = 64 * GIB
    h.numa_distance = [[10, 21], [21, 10]]
    h.sockets = [0, 1]
    return h


# ---- 1. no policy files ----

def defaults(env):
    doc = describe_policy(env)
    t.ok(doc.get("loaded") is True and doc.get("files") == [] and doc.get("pools") == [] and
         doc.get("warnings") == [] and doc.get("error") is None,
         "no policy files: DescribePolicy has no files, no pools, no warnings", doc)
    orig = origins(doc)
    t.ok(len(orig) >= 5 and all(o == "default" for _, o in orig),
         "every setting's origin is \"default\" (%d settings)" % len(orig), orig)
    t.ok(doc.get("numa", {}).get("default_policy", {}).get("value") == "legacy" and
         doc.get("consumers", {}).get("watch_process_exit", {}).get("value") is True and
         doc.get("memory", {}).get("memory_cgroup", {}).get("value") == "warn",
         "the defaults: NUMA legacy, watch process exit, memory cgroup warn", doc)
    rc, out, err = env.ctl("policy")
    lines = [line for line in out.splitlines() if "=" in line]
    t.ok(rc == 0 and lines and all(line.rstrip().endswith("default") for line in lines),
         "iovirtctl policy: every setting's origin is \"default\"", out + err)
    res = assign(env, NIC, "vm-plain")
    t.ok(res.ok and env.driver(NIC) == "vfio-pci", "Assign %s to vm-plain as before: on vfio-pci" % NIC,
         res)
    rec = list(env.records().values())
    t.ok(len(rec) == 1 and rec[0].get("holder", {}).get("uid") == 0,
         "the record names its holder: uid 0, the caller", rec)
    res = release(env, NIC)
    t.ok(res.ok and env.driver(NIC) == "mlx5_core" and not env.records(),
         "released: back on mlx5_core", res)


# ---- 2. pools ----

NICS = "[Pool nics]\nDevices=15b3:1017\nConsumers=vm-*\n"


def pools(env):
    write_policy(env, "50-nics.conf", NICS)
    res = reload(env)
    doc = describe_policy(env)
    pool = (doc.get("pools") or [{}])[0]
    t.ok(res.ok and pool.get("name") == "nics" and
         pool.get("origin") == "/%s/50-nics.conf:1" % ETC and
         pool.get("devices", {}).get("origin") == "/%s/50-nics.conf:2" % ETC,
         "Reload reads [Pool nics]; DescribePolicy names it with file:line origins", (res, doc))
    before = env.snapshot()
    refused("Assign %s (no pool holds it) to vm-a" % VF, assign(env, VF, "vm-a"), E + "PolicyDenied",
            "in no pool")
    refused("Assign %s to web-1 (Consumers=vm-*)" % NIC, assign(env, NIC, "web-1"), E + "PolicyDenied",
            "does not admit", "'web-1'", "nics")
    t.ok(env.snapshot() == before and not env.records(), "the refusals changed nothing in sysfs")
    p = plan(env, NIC, "web-1")
    t.ok(check(p, "pool").get("reason") == "not-admitted" and p.get("allowed") is False,
         "PlanAssign: the pool check fails, reason not-admitted", check(p, "pool"))
    res = assign(env, NIC, "vm-a")
    t.ok(res.ok and env.driver(NIC) == "vfio-pci" and check(res.doc, "pool").get("status") == "pass",
         "Assign %s to vm-a: the pool admits it, on vfio-pci" % NIC, res)
    release(env, NIC)
    res = assign(env, "pool:nics", "vm-b")
    doc = res.doc
    t.ok(res.ok and [f.get("address") for f in doc.get("functions", [])] == [NIC] and
         env.driver(NIC) == "vfio-pci", "Assign pool:nics to vm-b: the pool's device, %s" % NIC, res)
    res = assign(env, "pool:nics", "vm-b")
    t.ok(res.ok and res.doc.get("done") is True, "again: done, nothing moves (a retry is safe)", res)
    refused("pool:nics for vm-c while its only device is held", assign(env, "pool:nics", "vm-c"), E + "InUse")
    refused("Assign pool:nope", bus_assign(env, "pool:nope", "vm-b"), E + "NoSuchDevice", "no pool 'nope'")
    refused("iovirtctl assign pool:nope (the CLI's name for NoSuchDevice)", assign(env, "pool:nope", "vm-b"),
            "no-such-device", "no pool 'nope'")
    release(env, NIC)

    # a pool's Memory=: the guest memory of a request that names none
    write_policy(env, "50-nics.conf", NICS + "Memory=2G\n")
    reload(env)
    res = assign(env, NIC, "vm-m")
    st = consumer_status(env, "vm-m")
    t.ok(res.ok and st.get("memory") == 2 * GIB and st.get("pinned") == 2 * GIB,
         "pool Memory=2G: vm-m, assigned without memory=, counts 2 GiB pinned", (res, st))
    release(env, NIC)
    write_policy(env, "50-nics.conf", NICS)
    reload(env)

    # the nearest device of a pool, by its NUMA policy (40- is read before
    # 50-nics.conf: a device belongs to the first pool that holds it)
    write_policy(env, "40-mixed.conf", "[Pool mixed]\nDevices=10de:1eb8 15b3:1017\nNumaPolicy=preferred\n")
    reload(env)
    p0, p1 = (plan(env, "pool:mixed", "vm-n", "numa-node=%d" % n) for n in (0, 1))
    t.ok([f.get("address") for f in p0.get("functions", [])] == [GPU] and
         [f.get("address") for f in p1.get("functions", [])] == [NIC],
         "pool:mixed picks the device of the consumer's node: %s for node 0, %s for node 1" % (GPU, NIC),
         (p0.get("functions"), p1.get("functions")))
    c1 = check(p1, "choice")
    t.ok(c1.get("status") == "pass" and all(w in c1.get("message", "") for w in (
         NIC, "of 2 candidates", "NUMA policy 'preferred', nearest first", "node 1")),
         "and the plan says why that one: a choice check naming the candidates, the policy and the node", c1)
    os.unlink(os.path.join(env.tb, ETC, "40-mixed.conf"))

    # the same pool name in two files: refused, naming both places; the last good policy stays
    reload(env)
    good = describe_policy(env)
    write_policy(env, "60-dup.conf", "# another nics\n[Pool nics]\nDevices=8086:154c\n")
    res = reload(env)
    refused("Reload with [Pool nics] in two files", res, E + "InvalidArgument",
            "/%s/50-nics.conf:1" % ETC, "/%s/60-dup.conf:2" % ETC)
    after = describe_policy(env)
    t.ok({k: v for k, v in after.items() if k != "error"} == {k: v for k, v in good.items() if k != "error"} and
         "60-dup.conf:2" in (after.get("error") or "") and after.get("loaded") is True,
         "DescribePolicy is unchanged but for the error of the reload: the last good policy stays", (good, after))
    refused("%s still in no pool (the refused file's pool would hold it)" % VF, assign(env, VF, "vm-a"),
            E + "PolicyDenied", "in no pool")
    os.unlink(os.path.join(env.tb, ETC, "60-dup.conf"))

    # an unknown key: a warning, with its line
    write_policy(env, "70-warn.conf", "[Consumers]\nWatchProcessExit=yes\nColour=blue\n")
    res = reload(env)
    warnings = describe_policy(env).get("warnings", [])
    t.ok(res.ok and any("/%s/70-warn.conf:3" % ETC in w and "Colour" in w for w in warnings),
         "an unknown key is a warning in DescribePolicy, with file:line", (res, warnings))
    os.unlink(os.path.join(env.tb, ETC, "70-warn.conf"))

    # a vendor file overridden by the admin's of the same name
    write_policy(env, "50-nics.conf", "[Pool nics]\nDevices=8086:154c\n", where=USR)
    reload(env)
    doc = describe_policy(env)
    t.ok([f.get("path") for f in doc.get("files", [])] == ["/%s/50-nics.conf" % ETC] and
         (doc["files"][0].get("overrides") if doc.get("files") else None) == "/%s/50-nics.conf" % USR and
         [d.get("selector") for d in doc["pools"][0]["devices"]["value"]] == ["15b3:1017"],
         "/etc's 50-nics.conf replaces /usr/lib's", doc.get("files"))

    # an empty file, or a link to /dev/null, in /etc masks the vendor file
    for mask in ("empty", "/dev/null"):
        etc = os.path.join(env.tb, ETC, "50-nics.conf")
        os.rename(etc, etc + ".saved")
        if mask == "empty":
            open(etc, "w").close()
        else:
            os.symlink("/dev/null", etc)
        res = reload(env)
        doc = describe_policy(env)
        t.ok(res.ok and doc.get("pools") == [], "/etc's 50-nics.conf %s masks /usr/lib's: no pool" % mask,
             (res, doc.get("pools"), doc.get("files")))
        os.unlink(etc)
        os.rename(etc + ".saved", etc)
    reload(env)

    # a selector that matches nothing on this host: said, with its file and line
    write_policy(env, "80-gpus.conf", "[Pool gpus]\nDevices=10de:9999\n")
    res = reload(env)
    doc = describe_policy(env)
    said = [w for w in doc.get("warnings", []) + [json.dumps(u) for u in doc.get("unmatched", [])]
            if "10de:9999" in w and "80-gpus.conf:2" in w]
    t.ok(res.ok and said, "Devices=10de:9999 matches no device: DescribePolicy says so, with file:line",
         (res, doc.get("warnings"), doc.get("unmatched")))
    os.unlink(os.path.join(env.tb, ETC, "80-gpus.conf"))
    reload(env)

    # a file removed while its pool is in use
    res = assign(env, NIC, "vm-a")
    t.ok(res.ok, "Assign %s to vm-a from pool nics" % NIC, res)
    os.unlink(os.path.join(env.tb, ETC, "50-nics.conf"))
    os.unlink(os.path.join(env.tb, USR, "50-nics.conf"))
    res = reload(env)
    doc = describe_policy(env)
    t.ok(res.ok and doc.get("pools") == [] and doc.get("files") == [],
         "50-nics.conf removed, Reload: no pool any more", (res, doc))
    t.ok([a.get("consumer") for a in assignments(env) or []] == ["vm-a"] and env.driver(NIC) == "vfio-pci",
         "vm-a keeps what it holds", assignments(env))
    res = assign(env, VF, "web-1")
    t.ok(res.ok and env.driver(VF) == "vfio-pci", "%s may go to web-1 now: no pools, no pool rule" % VF, res)
    release(env, VF)
    release(env, NIC)
    t.ok(not env.records() and env.driver(NIC) == "mlx5_core" and env.driver(VF) == "iavf",
         "released: both back on their host drivers")


# ---- 3. memlock on a real child ----

def can_raise_limits():
    """CAP_SYS_RESOURCE (bit 24) in our effective set: without it (a
    container that drops it) no process may raise another's hard limit,
    iovirtd included"""
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff & (1 << 24))


# numa-node=1: where the child runs, told; its own Cpus_allowed_list is
# this machine's, which the emulated host's nodes know nothing of
NODE1 = "numa-node=1"


def memlock_rule(env, child):
    """libvirt's rule, exactly, read back from /proc/PID/limits"""
    want = 64 * MIB + SLACK
    res = assign(env, NIC, child.consumer, "memory=64M", NODE1)
    t.ok(res.ok and env.driver(NIC) == "vfio-pci", "Assign %s to %s with memory=64M" % (NIC, child.consumer),
         res)
    t.ok(child.memlock() == (want, want) and want == 1140850688,
         "its Max locked memory is 64 MiB + 1 GiB = 1140850688, soft and hard", child.memlock())
    st = consumer_status(env, child.consumer)
    t.ok(st.get("memlock") == want and st.get("pinned") == 64 * MIB and st.get("pid") == child.pid and
         st.get("uid") == 0 and st.get("memory") == 64 * MIB and st.get("functions") == 1,
         "DescribeStatus: pid, uid 0, memory 64 MiB, memlock 1140850688, pinned 64 MiB", st)
    rec = list(env.records().values())
    holder = rec[0].get("holder", {}) if rec else {}
    t.ok(holder.get("pid") == child.pid and holder.get("memlock") == want and
         holder.get("memlock_before") == {"soft": ORIG_MEMLOCK[0], "hard": ORIG_MEMLOCK[1]},
         "the record keeps the limit from before", holder)
    res = assign(env, NIC, child.consumer, "memory=64M", NODE1)
    t.ok(res.ok and res.doc.get("done") is True and child.memlock() == (want, want),
         "assigning it again: done, the limit as it is", res)
    res = release(env, NIC)
    t.ok(res.ok and child.memlock() == ORIG_MEMLOCK and env.driver(NIC) == "mlx5_core",
         "Release: the limit is back to 4 MiB / 8 MiB", (res, child.memlock()))

    # vIOMMU: factor = the number of VFIO functions (libvirt's rule)
    res = assign(env, NIC, child.consumer, "memory=64M", "viommu", NODE1)
    t.ok(res.ok and child.memlock() == (want, want), "viommu, one group: 64 MiB + 1 GiB",
         (res, child.memlock()))
    res = assign(env, VF, child.consumer, "memory=64M", "viommu", NODE1)
    two = 2 * 64 * MIB + SLACK
    t.ok(res.ok and child.memlock() == (two, two),
         "viommu, the second group: 2 x 64 MiB + 1 GiB = %d" % two, (res, child.memlock()))
    st = consumer_status(env, child.consumer)
    t.ok(st.get("memlock") == two and st.get("pinned") == 128 * MIB and st.get("viommu") is True and
         st.get("functions") == 2, "DescribeStatus: memlock %d, pinned 128 MiB" % two, st)
    res = release(env, VF)
    t.ok(res.ok and child.memlock() == (two, two),
         "one group released: the limit stays (only ever raised while it holds any)", child.memlock())
    res = release_consumer(env, child.consumer)
    t.ok(res.ok and child.memlock() == ORIG_MEMLOCK and not env.records(),
         "its last group released: the original limit is back", (res, child.memlock()))


def memlock_refused(env, child):
    """Without CAP_SYS_RESOURCE the raise fails: the assignment must fail
    with nothing changed"""
    before = env.snapshot()
    refused("memory=64M where the hard limit cannot be raised (no CAP_SYS_RESOURCE)",
            assign(env, NIC, child.consumer, "memory=64M", NODE1), E + "Failed", "RLIMIT_MEMLOCK",
            "not permitted", "CAP_SYS_RESOURCE", "nothing was changed")
    t.ok(env.snapshot() == before and not env.records() and child.memlock() == ORIG_MEMLOCK,
         "nothing was changed: %s on mlx5_core, no record, the limit as it was" % NIC, env.snapshot())
    for name in ("64 MiB + 1 GiB = 1140850688 in /proc/PID/limits, then back after Release",
                 "viommu and two groups: 2 x 64 MiB + 1 GiB"):
        t.skip(name, "this sandbox has no CAP_SYS_RESOURCE: no hard limit can be raised")


def memlock(env):
    child = Child(env)
    try:
        t.ok(child.memlock() == ORIG_MEMLOCK, "the child starts with RLIMIT_MEMLOCK 4 MiB / 8 MiB",
             child.memlock())
        p = plan(env, NIC, child.consumer, "memory=64M", NODE1)
        c = check(p, "memlock")
        t.ok(check(p, "owner").get("status") == "pass" and c.get("status") == "pass" and
             "raised to 1.1 GiB (libvirt's rule, 1 VFIO function)" in c.get("message", "") and
             child.memlock() == ORIG_MEMLOCK,
             "PlanAssign: owner and memlock pass (1.1 GiB by libvirt's rule); planning changed no limit",
             p.get("checks"))
        (memlock_rule if can_raise_limits() else memlock_refused)(env, child)

        # --hard-limit below the hard limit there is: only the soft limit
        # moves, which needs no privilege
        res = assign(env, NIC, child.consumer, "memory=64M", "hard-limit=6M", NODE1)
        t.ok(res.ok and env.driver(NIC) == "vfio-pci" and child.memlock() == (6 * MIB, ORIG_MEMLOCK[1]),
             "hard-limit=6M: the soft limit is raised to 6 MiB, the hard one (8 MiB) was enough",
             (res, child.memlock()))
        st = consumer_status(env, child.consumer)
        t.ok(st.get("memlock") == 6 * MIB and st.get("pinned") == 64 * MIB and st.get("pid") == child.pid and
             st.get("uid") == 0 and st.get("memory") == 64 * MIB and st.get("functions") == 1 and
             st.get("groups") == [env.group_of(NIC)],
             "DescribeStatus: pid, uid 0, group, memory 64 MiB, memlock 6 MiB, pinned 64 MiB", st)
        rc, out, err = env.ctl("status")
        line = next((x for x in out.splitlines() if x.startswith(child.consumer)), "")
        want = r"\b%d\s+0\s+%d\s+64\.0 MiB\s+no\s+6\.0 MiB\s+64\.0 MiB" % (child.pid, env.group_of(NIC))
        t.ok(rc == 0 and re.search(want, line),
             "iovirtctl status: its line says pid, uid 0, group, 64.0 MiB, no vIOMMU, memlock 6.0 MiB, pinned 64.0 MiB",
             out + err)
        budget = describe_status(env).get("budget", {})
        t.ok(budget.get("memtotal") == 64 * GIB and budget.get("pinned") == 64 * MIB and
             budget.get("reserve") == 64 * GIB // 10000 * 500 + 64 * GIB % 10000 * 500 // 10000 and
             budget.get("budget") == 64 * GIB - budget.get("reserve", 0),
             "its budget: MemTotal 64 GiB less 5%, 64 MiB pinned", budget)
        rec = list(env.records().values())
        holder = rec[0].get("holder", {}) if rec else {}
        t.ok(holder.get("uid") == 0 and holder.get("pid") == child.pid and holder.get("memlock") == 6 * MIB and
             holder.get("memory") == 64 * MIB and
             holder.get("memlock_before") == {"soft": ORIG_MEMLOCK[0], "hard": ORIG_MEMLOCK[1]},
             "the record keeps the holder and the limit from before", holder)
        for bad in ("memory=0", "hard-limit=0", "memory=1.5G", "memory=4Q"):
            refused("accept %s" % bad, bus_assign(env, VF, child.consumer, bad), E + "InvalidArgument", "'%s'" % bad)
        refused("the same consumer with another memory=", assign(env, VF, child.consumer, "memory=128M", NODE1),
                E + "InvalidArgument", "64.0 MiB", "128.0 MiB")
        res = release(env, NIC)
        t.ok(res.ok and child.memlock() == ORIG_MEMLOCK and env.driver(NIC) == "mlx5_core",
             "Release: the limit is back to 4 MiB / 8 MiB", (res, child.memlock()))

        # the first group without memory (nothing raised), the second with: the last Release restores
        res = assign(env, NIC, child.consumer, NODE1)
        t.ok(res.ok and child.memlock() == ORIG_MEMLOCK and check(res.doc, "memlock").get("status") == "warn",
             "a first group without memory=: nothing raised, the memlock check warns", (res, child.memlock()))
        res = assign(env, VF, child.consumer, "memory=64M", "hard-limit=6M", NODE1)
        t.ok(res.ok and child.memlock() == (6 * MIB, ORIG_MEMLOCK[1]), "the second group with memory=: raised to 6 MiB",
             (res, child.memlock()))
        release(env, VF)
        res = release(env, NIC)
        t.ok(res.ok and not env.records() and child.memlock() == ORIG_MEMLOCK,
             "both released (the raised one first): the limit is back to 4 MiB / 8 MiB", (res, child.memlock()))
        resource.prlimit(child.pid, resource.RLIMIT_MEMLOCK, ORIG_MEMLOCK)      # for what follows, whatever it said

        # a second assignment that fails after its raise: the limit the first needs stays
        res = assign(env, NIC, child.consumer, "memory=64M", "hard-limit=6M", NODE1)
        env.faults("fail %s vfio-pci\n" % VF)
        try:
            res2 = assign(env, VF, child.consumer, "memory=64M", "hard-limit=7M", NODE1)
        finally:
            env.faults("")
        t.ok(res.ok and not res2.ok and env.driver(VF) == "iavf" and
             child.memlock() == (6 * MIB, ORIG_MEMLOCK[1]) and
             consumer_status(env, child.consumer).get("memlock") == 6 * MIB,
             "the second group's bind fails after raising to 7 MiB: back to the 6 MiB the first group needs, not 4 MiB",
             (res2, child.memlock(), consumer_status(env, child.consumer)))
        res = release_consumer(env, child.consumer)
        t.ok(res.ok and child.memlock() == ORIG_MEMLOCK and not env.records(), "released: 4 MiB / 8 MiB",
             (res, child.memlock()))
        resource.prlimit(child.pid, resource.RLIMIT_MEMLOCK, ORIG_MEMLOCK)

        # one process, one consumer: pid:0PID and pid:+PID are not other consumers
        for alias in ("pid:0%d" % child.pid, "pid:+%d" % child.pid, "pid: %d" % child.pid):
            res = bus_assign(env, NIC, alias, NODE1)
            names = [r.get("consumer") for r in env.records().values()]
            t.ok((not res.ok and res.name == E + "InvalidArgument") or names == [child.consumer],
                 "%r: refused, or recorded as %s (one process, one name)" % (alias, child.consumer),
                 (res.name, res.message[:200], names))
            release(env, NIC)

        # vIOMMU counted in what is pinned: factor = VFIO functions
        for target in (NIC, VF):
            assign(env, target, "vm-viommu", "memory=64M", "viommu")
        st = consumer_status(env, "vm-viommu")
        t.ok(st.get("pinned") == 128 * MIB and st.get("viommu") is True and st.get("functions") == 2 and
             st.get("memlock") is None and
             sorted(st.get("groups", [])) == sorted([env.group_of(NIC), env.group_of(VF)]),
             "vm-viommu, viommu, two groups: pinned 2 x 64 MiB, no limit to set (no process)", st)
        release_consumer(env, "vm-viommu")

        # the memory cgroup: memory.max of the child's cgroup (or a parent's)
        write_memory_max(env, "/iovirt-test.slice", "%d" % GIB)
        p = plan(env, NIC, child.consumer, "memory=64M", NODE1)
        c = check(p, "memory-cgroup")
        t.ok(p.get("allowed") is True and c.get("status") == "warn" and "/iovirt-test.slice" in c.get("message", ""),
             "memory.max 1 GiB < 64 MiB + 1 GiB: the memory-cgroup check warns (MemoryCgroup=warn)", c)
        write_policy(env, "10-memory.conf", "[Memory]\nMemoryCgroup=refuse\n")
        reload(env)
        refused("with MemoryCgroup=refuse", assign(env, NIC, child.consumer, "memory=64M", "hard-limit=6M", NODE1),
                E + "PolicyDenied", "memory.max", "/iovirt-test.slice")
        t.ok(child.memlock() == ORIG_MEMLOCK and env.driver(NIC) == "mlx5_core", "nothing was changed")
        write_memory_max(env, "/iovirt-test.slice", "max")
        write_memory_max(env, "/iovirt-test.slice/vm.scope", "%d" % (4 * GIB))
        c = check(plan(env, NIC, child.consumer, "memory=64M", NODE1), "memory-cgroup")
        t.ok(c.get("status") == "pass" and "room for" in c.get("message", ""),
             "memory.max 4 GiB: the check passes", c)
        os.unlink(os.path.join(env.tb, ETC, "10-memory.conf"))
        reload(env)
    finally:
        child.close()
        shutil.rmtree(os.path.join(env.tb, "sys/fs/cgroup"), ignore_errors=True)


# ---- 4. the child exits ----

def child_exits(env):
    child = Child(env)
    try:
        res = assign(env, NIC, child.consumer, "memory=64M", "hard-limit=6M", NODE1)
        t.ok(res.ok and env.driver(NIC) == "vfio-pci", "Assign %s to %s" % (NIC, child.consumer), res)
        child.kill()
        t0 = time.monotonic()
        gone = harness.wait_until(lambda: assignments(env) == [])
        took = time.monotonic() - t0
        t.ok(gone, "the child killed: iovirtd releases its group by itself (%.1f s)" % took, assignments(env))
        t.ok(env.driver(NIC) == "mlx5_core" and not env.records() and
             not os.path.exists(os.path.join(env.tb, "dev/vfio", str(env.group_of(NIC)))),
             "%s is back on mlx5_core, no record, no /dev/vfio node" % NIC, env.snapshot())
        t.ok("has exited" in env.log(), "the log says why", env.log()[-2000:])
        t.ok(describe_status(env).get("consumers") == [], "DescribeStatus: no consumer left")
    finally:
        child.close()


def exits_around(env):
    """The child's exit while iovirtd binds, while iovirtd is stopped, after
    a restart; a bind that fails after the raise; WatchProcessExit=no"""
    opts = ("memory=64M", "hard-limit=6M", NODE1)

    # a bind that fails after the limit was raised: the limit goes back
    child = Child(env)
    try:
        env.faults("fail %s vfio-pci\n" % NIC)
        res = assign(env, NIC, child.consumer, *opts)
        env.faults("")
        t.ok(not res.ok and env.driver(NIC) == "mlx5_core" and not env.records() and
             child.memlock() == ORIG_MEMLOCK,
             "vfio-pci failing to probe: the assignment fails, the limit is back to 4 MiB / 8 MiB",
             (res, child.memlock()))

        # the child exits while its group is being bound (a slow probe)
        env.faults("slow %s 3000\n" % NIC)
        p = subprocess.Popen([env.iovirtctl, "--json", "assign", NIC, "--to", child.consumer] + flags(opts),
                             env=env.bus.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        binding = harness.wait_until(lambda: being_assigned(env, child.consumer))
        child.kill()
        out, err = p.communicate(timeout=60)
        env.faults("")
        gone = harness.wait_until(lambda: assignments(env) == [] and env.driver(NIC) == "mlx5_core")
        t.ok(binding and gone and not env.records(),
             "the child killed while its group was being bound: released once the bind is done (assign said %d)"
             % p.returncode, (out, err, assignments(env), env.driver(NIC)))
    finally:
        env.faults("")
        child.close()

    # a restart: the new iovirtd watches the child again
    child = Child(env)
    try:
        res = assign(env, NIC, child.consumer, *opts)
        t.ok(res.ok and child.memlock() == (6 * MIB, ORIG_MEMLOCK[1]), "Assign %s to %s" % (NIC, child.consumer),
             res)
        env.stop()
        env.start()
        t.ok(env.driver(NIC) == "vfio-pci" and [a.get("consumer") for a in assignments(env) or []] == [child.consumer],
             "iovirtd restarted: it still holds %s for %s" % (NIC, child.consumer), assignments(env))
        res = release(env, NIC)
        t.ok(res.ok and child.memlock() == ORIG_MEMLOCK,
             "Release after the restart: the limit from before the raise is back (kept in the record)",
             (res, child.memlock()))
        res = assign(env, NIC, child.consumer, *opts)
        env.stop()
        env.start()
        child.kill()
        gone = harness.wait_until(lambda: assignments(env) == [] and env.driver(NIC) == "mlx5_core")
        t.ok(res.ok and gone and not env.records(), "the child killed after a restart: its group is released",
             (res, assignments(env)))
    finally:
        child.close()

    # the child exits while iovirtd is not running
    child = Child(env)
    try:
        res = assign(env, NIC, child.consumer, *opts)
        env.stop()
        child.kill()
        env.start()
        gone = harness.wait_until(lambda: assignments(env) == [] and env.driver(NIC) == "mlx5_core")
        t.ok(res.ok and gone and not env.records() and "exited while iovirtd was not running" in env.log(),
             "the child gone while iovirtd was stopped: released when it starts, and the log says so",
             (res, assignments(env), env.log()[-1500:]))
    finally:
        child.close()

    # [Consumers] WatchProcessExit=no
    write_policy(env, "30-nowatch.conf", "[Consumers]\nWatchProcessExit=no\n")
    reload(env)
    child = Child(env)
    try:
        res = assign(env, NIC, child.consumer, *opts)
        child.kill()
        time.sleep(2)
        t.ok(res.ok and [a.get("consumer") for a in assignments(env) or []] == [child.consumer] and
             env.driver(NIC) == "vfio-pci",
             "WatchProcessExit=no: the child's exit releases nothing (2 s later)", assignments(env))
        res = release(env, NIC)
        t.ok(res.ok and env.driver(NIC) == "mlx5_core" and not env.records(),
             "Release of an exited consumer's group: done", res)
    finally:
        child.close()
        os.unlink(os.path.join(env.tb, ETC, "30-nowatch.conf"))
        reload(env)

    # WatchProcessExit=no read after the assignment: the watch is dropped too
    child = Child(env)
    try:
        res = assign(env, NIC, child.consumer, *opts)
        write_policy(env, "30-nowatch.conf", "[Consumers]\nWatchProcessExit=no\n")
        reload(env)
        child.kill()
        time.sleep(2)
        t.ok(res.ok and [a.get("consumer") for a in assignments(env) or []] == [child.consumer],
             "WatchProcessExit=no by Reload after the assignment: the exit releases nothing either",
             assignments(env))
    finally:
        child.close()
        os.unlink(os.path.join(env.tb, ETC, "30-nowatch.conf"))
        reload(env)
        release_consumer(env, child.consumer)


    # WatchProcessExit=yes by Reload after an assignment made under no
    write_policy(env, "30-nowatch.conf", "[Consumers]\nWatchProcessExit=no\n")
    reload(env)
    child = Child(env)
    try:
        res = assign(env, NIC, child.consumer, *opts)
        os.unlink(os.path.join(env.tb, ETC, "30-nowatch.conf"))
        reload(env)
        child.kill()
        gone = harness.wait_until(lambda: assignments(env) == [])
        t.ok(res.ok and gone, "WatchProcessExit=yes by Reload after the assignment: the exit releases it",
             assignments(env))
    finally:
        child.close()
        release_consumer(env, child.consumer)


# ---- 4b. a policy that cannot be read ----

def unreadable(env):
    write_policy(env, "50-bad.conf", "[Pool nics]\nDevices=15b3:1017\nIsolation=lenient\n")
    env.stop()
    env.start()
    doc = describe_policy(env)
    t.ok(doc.get("loaded") is False and "/%s/50-bad.conf:3" % ETC in (doc.get("error") or "") and
         "lenient" in (doc.get("error") or ""),
         "iovirtd started with a bad file: DescribePolicy says none is loaded, naming file:line", doc)
    before = env.snapshot()
    res = assign(env, NIC, "vm-a")
    refused("Assign with no policy loaded", res, E + "PolicyDenied", "could not be read", "50-bad.conf:3")
    t.ok(check(plan(env, NIC, "vm-a"), "policy").get("reason") == "policy-unreadable" and env.snapshot() == before,
         "the plan's policy check: policy-unreadable; nothing was changed")
    res = reload(env)
    t.ok(not res.ok and res.name == E + "InvalidArgument" and "every assignment is refused" in res.message,
         "Reload with the file still bad: InvalidArgument, assignments still refused", res)
    os.unlink(os.path.join(env.tb, ETC, "50-bad.conf"))
    res = reload(env)
    t.ok(res.ok and describe_policy(env).get("loaded") is True, "the file removed, Reload: the defaults are loaded",
         res)
    res = assign(env, NIC, "vm-a")
    t.ok(res.ok and env.driver(NIC) == "vfio-pci", "and Assign works again", res)
    release(env, NIC)


# ---- 5. no such process ----

def no_process(env):
    pid = unused_pid()
    before = env.snapshot()
    refused("pid:%d (no such process)" % pid, assign(env, NIC, "pid:%d" % pid), E + "InvalidArgument",
            "no process")
    refused("iovirtctl assign --to pid:abc", assign(env, NIC, "pid:abc"), E + "InvalidArgument", "names no process")
    for bad in ("pid:abc", "pid:0", "pid:-1", "pid:", "pid:12x"):
        refused("Assign to %s over the bus" % bad, bus_assign(env, NIC, bad), E + "InvalidArgument", "pid:PID")
    t.ok(env.snapshot() == before and not env.records(), "nothing was changed")


# ---- 6. the pinned budget ----

def budget(env):
    set_memtotal(env, 4 * GIB)          # reserve: 5% is 204.8 MiB, the floor 512 MiB: budget 3.5 GiB
    st = describe_status(env).get("budget", {})
    t.ok(st.get("memtotal") == 4 * GIB and st.get("reserve") == 512 * MIB and st.get("budget") == 3584 * MIB,
         "MemTotal 4 GiB: reserve 512 MiB (the floor), budget 3.5 GiB", st)
    res = assign(env, NIC, "vm-big", "memory=3G")
    t.ok(res.ok and env.driver(NIC) == "vfio-pci", "vm-big, memory=3G: within the budget", res)
    before = env.snapshot()
    res = assign(env, VF, "vm-small", "memory=768M")
    refused("vm-small, memory=768M", res, E + "OverBudget", "768.0 MiB asked", "3.0 GiB already pinned",
            "budget 3.5 GiB")
    t.ok(env.snapshot() == before, "nothing was changed")
    t.ok(check(plan(env, VF, "vm-small", "memory=768M"), "memlock").get("reason") == "over-budget",
         "the plan's memlock check: over-budget")
    write_policy(env, "20-reserve.conf", "[Memory]\nReserve=256M\n")
    res = reload(env)
    doc = describe_policy(env)
    t.ok(res.ok and doc.get("memory", {}).get("reserve", {}).get("origin") == "/%s/20-reserve.conf:2" % ETC,
         "Reserve=256M: DescribePolicy names its file and line", doc.get("memory"))
    st = describe_status(env).get("budget", {})
    t.ok(st.get("reserve") == 256 * MIB and st.get("budget") == 3840 * MIB, "budget 3.75 GiB now", st)
    res = assign(env, VF, "vm-small", "memory=768M")
    t.ok(res.ok and env.driver(VF) == "vfio-pci", "vm-small, memory=768M fits now (3.75 GiB exactly)", res)
    refused("a third consumer, memory=1K", assign(env, GPU, "vm-third", "memory=1K"), E + "OverBudget")
    release_consumer(env, "vm-small")
    release_consumer(env, "vm-big")

    # two at once: what is being assigned counts already
    env.faults("slow %s 3000\n" % NIC)
    try:
        p = subprocess.Popen([env.iovirtctl, "--json", "assign", NIC, "--to", "vm-big", "--memory", "3G"],
                             env=env.bus.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        binding = harness.wait_until(lambda: being_assigned(env, "vm-big"))
        res = assign(env, VF, "vm-small", "memory=1G")
        out, err = p.communicate(timeout=60)
    finally:
        env.faults("")
    t.ok(binding, "vm-big's assignment is under way (slow probe)")
    refused("vm-small, memory=1G, while vm-big's 3G is being bound", res, E + "OverBudget", "3.0 GiB already pinned")
    t.ok(p.returncode == 0 and env.driver(NIC) == "vfio-pci" and env.driver(VF) == "iavf",
         "vm-big's assignment went through", out + err)
    release_consumer(env, "vm-big")
    os.unlink(os.path.join(env.tb, ETC, "20-reserve.conf"))
    reload(env)
    set_memtotal(env, 64 * GIB)
    t.ok(not env.records(), "released")


# ---- 7. NUMA ----

def numa(env):
    before = env.snapshot()
    res = assign(env, NIC, "vm-n", "numa-policy=required", "numa-node=0")
    refused("numa-policy=required, numa-node=0, %s on node 1" % NIC, res, E + "PolicyDenied", "node 1", "node 0")
    t.ok(env.snapshot() == before, "nothing was changed")
    c = check(plan(env, NIC, "vm-n", "numa-policy=required", "numa-node=0"), "numa")
    t.ok(c.get("status") == "fail" and c.get("reason") == "numa-remote",
         "the plan's numa check fails, reason numa-remote", c)
    refused("numa-policy=required, cpus=0-3 (node 0)", assign(env, NIC, "vm-n", "numa-policy=required", "cpus=0-3"),
            E + "PolicyDenied", "node 1", "node 0", "--cpus 0-3")
    c = check(plan(env, NIC, "vm-n", "numa-policy=required", "cpus=16-19"), "numa")
    t.ok(c.get("status") == "pass", "numa-policy=required, cpus=16-19 (node 1): passes", c)
    p = plan(env, NIC, "vm-n", "numa-policy=preferred", "numa-node=0")
    c = check(p, "numa")
    t.ok(p.get("allowed") is True and c.get("status") == "warn" and "distance 21" in c.get("message", ""),
         "numa-policy=preferred: allowed with a warning, naming the distance (21, from the SLIT)", c)
    res = assign(env, NIC, "vm-n", "numa-policy=preferred", "numa-node=0")
    t.ok(res.ok and env.driver(NIC) == "vfio-pci", "and Assign does it", res)
    release(env, NIC)
    refused("numa-policy=socket, numa-node=0", assign(env, NIC, "vm-n", "numa-policy=socket", "numa-node=0"),
            E + "PolicyDenied", "socket 1", "socket 0")
    # a pid: consumer's placement: its Cpus_allowed_list (CPU 0 is on node 0 of the emulated host)
    child = Child(env, cpus="0")
    try:
        refused("%s on CPU 0, NUMA legacy (the default), %s on node 1" % (child.consumer, NIC),
                assign(env, NIC, child.consumer), E + "PolicyDenied", "node 1", "Cpus_allowed_list", "node 0")
        c = check(plan(env, GPU, child.consumer), "numa")
        t.ok(c.get("status") == "pass" and "node 0" in c.get("message", ""),
             "%s (node 0) for it: the numa check passes" % GPU, c)
    finally:
        child.close()
    refused("accept numa-node= and cpus= together", bus_assign(env, NIC, "vm-n", "numa-node=0", "cpus=0-3"),
            E + "InvalidArgument", "numa-node=", "cpus=")
    refused("accept numa-policy=nearby", bus_assign(env, NIC, "vm-n", "numa-policy=nearby"), E + "InvalidArgument",
            "required, legacy, preferred, socket and none")
    refused("accept numa-node=1024", bus_assign(env, NIC, "vm-n", "numa-node=1024"), E + "InvalidArgument",
            "0 to 1023")
    refused("accept cpus=3-1", bus_assign(env, NIC, "vm-n", "cpus=3-1"), E + "InvalidArgument", "CPU list")
    for args, word in ((["--numa-node", "0", "--cpus", "0-3"], "--cpus"), (["--numa-policy", "nearby"], "nearby")):
        rc, out, err = env.ctl("--json", "assign", NIC, "--to", "vm-n", *args)
        t.ok(rc == 2 and (error_object(out) or {}).get("name") == "usage" and word in out,
             "iovirtctl assign %s: a usage error, before the bus" % " ".join(args), out + err)

    write_policy(env, "50-nics.conf", NICS + "NumaPolicy=preferred\nAllowNumaPolicyChoice=no\n")
    reload(env)
    refused("a request naming numa-policy in a pool with AllowNumaPolicyChoice=no",
            assign(env, NIC, "vm-n", "numa-policy=required", "numa-node=1"), E + "InvalidArgument",
            "AllowNumaPolicyChoice=no")
    res = assign(env, NIC, "vm-n", "numa-node=0")
    t.ok(res.ok and check(res.doc, "numa").get("status") == "warn",
         "without numa-policy: the pool's (preferred) applies, a remote device with a warning", res)
    release(env, NIC)
    os.unlink(os.path.join(env.tb, ETC, "50-nics.conf"))
    reload(env)
    t.ok(env.snapshot() == before and not env.records(), "everything as before")


# ---- 8. ownership ----

polkit_mock = harness.start_polkit_mock
mock_call = harness.polkit_mock_call


def asked(env):
    """The actions polkit was asked about since the last call"""
    out = mock_call(env, "GetMethodCalls", "CheckAuthorization").stdout
    mock_call(env, "ClearCalls")
    return re.findall(r"'(org\.iovirt1\.[\w.-]+)'", out)


def ownership(env):
    res = assign(env, NIC, "vm-root")
    t.ok(res.ok, "root assigns %s to vm-root" % NIC, res)
    recs = list(env.records().values())
    t.ok(len(recs) == 1 and recs[0].get("holder", {}).get("uid") == 0 and
         consumer_status(env, "vm-root").get("uid") == 0,
         "its record and DescribeStatus name uid 0 as the holder", recs)
    before = env.snapshot()
    refused("nobody releasing root's assignment, without polkit", release(env, NIC, user="nobody"),
            E + "NotAuthorized", "org.iovirt1.release-any")
    refused("nobody's ReleaseConsumer of root's vm-root, without polkit",
            release_consumer(env, "vm-root", user="nobody"), E + "NotAuthorized", "org.iovirt1.release-any")
    t.ok(env.snapshot() == before and len(env.records()) == 1, "nothing was released")

    child = Child(env)
    try:
        refused("nobody naming root's process %s as consumer" % child.consumer,
                assign(env, VF, child.consumer, user="nobody"), E + "NotAuthorized", "uid 0")
    finally:
        child.close()

    write_policy(env, "50-nics.conf", "[Pool nics]\nDevices=8086:154c 15b3:1017\nUsers=daemon\n")
    reload(env)
    refused("nobody's Assign from a pool with Users=daemon (answered before polkit, which is not running)",
            assign(env, VF, "vm-nobody", user="nobody"), E + "PolicyDenied", "uid 65534 (nobody)", "Users=")

    mock = polkit_mock(env)
    try:
        mock_call(env, "SetAllowed", "['org.iovirt1.assign', 'org.iovirt1.release']")
        write_policy(env, "50-nics.conf", "[Pool nics]\nDevices=8086:154c 15b3:1017\nUsers=daemon\nGroups=nogroup\n")
        reload(env)
        mock_call(env, "ClearCalls")
        res = assign(env, VF, "vm-nobody", user="nobody")
        t.ok(res.ok and env.driver(VF) == "vfio-pci" and asked(env) == ["org.iovirt1.assign"],
             "polkit allowing assign and release, the pool Groups=nogroup: nobody assigns %s to vm-nobody" % VF, res)
        rec = next((r for r in env.records().values() if r.get("consumer") == "vm-nobody"), {})
        t.ok(rec.get("holder", {}).get("uid") == 65534 and consumer_status(env, "vm-nobody").get("uid") == 65534,
             "its record and DescribeStatus name uid 65534, the caller", rec)
        res = release(env, NIC, user="nobody")
        t.ok(not res.ok and res.name == E + "NotAuthorized" and env.driver(NIC) == "vfio-pci" and
             asked(env) == ["org.iovirt1.release-any"],
             "nobody releasing root's group: polkit is asked for org.iovirt1.release-any, which it denies", res)
        res = release_consumer(env, "vm-root", user="nobody")
        t.ok(not res.ok and asked(env) == ["org.iovirt1.release-any"],
             "nobody's ReleaseConsumer of vm-root: org.iovirt1.release-any", res)
        res = release(env, VF, user="nobody")
        t.ok(res.ok and env.driver(VF) == "iavf" and asked(env) == ["org.iovirt1.release"],
             "nobody releasing its own group: org.iovirt1.release, allowed; back on iavf", res)
        os.unlink(os.path.join(env.tb, ETC, "50-nics.conf"))
        reload(env)
        mock_call(env, "SetAllowed", "['org.iovirt1.release-any']")
        res = release(env, NIC, user="nobody")
        t.ok(res.ok and env.driver(NIC) == "mlx5_core" and asked(env) == ["org.iovirt1.release-any"],
             "with org.iovirt1.release-any allowed, nobody releases root's group", res)
    finally:
        mock.terminate()
        mock.wait(10)
    t.ok(not env.records(), "nothing left assigned", env.records())


def node_owner(env, address):
    """The owner of the group's /dev/vfio/N in the testbed, None when there is none"""
    group = ctl(env, "show", address).doc["iommu_group"]
    try:
        return os.stat(os.path.join(env.tb, "dev/vfio", str(group))).st_uid
    except FileNotFoundError:
        return None


def plain_qemu(env):
    """A plain QEMU that is not root needs its group's node: iovirtd gives
    /dev/vfio/N to the process's user (or --user's), as libvirt gives it to
    its QEMU's, and takes it back on release; --print-qemu-args prints the
    -device arguments for QEMU's command line."""
    import pwd
    nobody, daemon = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("daemon").pw_uid
    child = Child(env, user="nobody")
    try:
        # the child runs where this machine's CPUs are, node 0 of the emulated host: no NUMA rule here
        p = plan(env, NIC, child.consumer, "numa-policy=none")
        t.ok(p.get("allowed") and p.get("node_owner") == nobody,
             "the plan for pid:PID of nobody gives /dev/vfio/N to uid %d (node_owner)" % nobody, p)
        rc, out, err = env.ctl("assign", NIC, "--to", child.consumer, "--numa-policy", "none", "--print-qemu-args")
        t.ok(rc == 0 and out == "-device vfio-pci,host=%s\n" % NIC,
             "assign --print-qemu-args prints only QEMU's -device vfio-pci,host=%s" % NIC, (rc, out, err))
        t.ok(node_owner(env, NIC) == nobody, "the group's node is nobody's while assigned",
             node_owner(env, NIC))
        rec = [r for r in env.records().values() if r.get("consumer") == child.consumer]
        t.ok(rec and rec[0].get("vfio_node", {}).get("given_to") == nobody and rec[0]["vfio_node"].get("uid") == 0,
             "the record keeps whom it was given to and its owner before (root)", rec)
        res = release(env, NIC)
        t.ok(res.ok and node_owner(env, NIC) is None, "release: the node is gone with the group's last unbind", res)
    finally:
        child.close()

    res = ctl(env, "assign", NIC, "--to", "vm-plain", "--user", "daemon")
    t.ok(res.ok and res.doc.get("node_owner") == daemon and node_owner(env, NIC) == daemon,
         "assign --user daemon to a named consumer: the node is daemon's", (res, node_owner(env, NIC)))
    release(env, NIC)
    refused("--user of no such user", ctl(env, "assign", NIC, "--to", "vm-plain", "--user", "nosuchuser"),
            E + "InvalidArgument", "no user 'nosuchuser'")
    refused("nobody giving the node to root", bus(env, "Assign", NIC, "vm-nobody", accept("user=root"), "false",
                                                 user="nobody"),
            E + "NotAuthorized", "only to itself")
    t.ok(node_owner(env, NIC) is None and not env.records(), "nothing was bound by the refusals", env.records())
    rc, out, err = env.ctl("--json", "assign", NIC, "--to", "vm-plain", "--print-qemu-args")
    t.ok(rc == 2 and not env.records(), "--print-qemu-args with --json: a usage error, nothing assigned", (rc, out))


def main():
    env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host())
    try:
        for part in (defaults, pools, memlock, child_exits, exits_around, no_process, budget, numa, ownership,
                     plain_qemu, unreadable):
            try:
                part(env)
            except Exception:              # one part's surprise does not hide the others' results
                import traceback
                t.ok(False, "%s ran to its end" % part.__name__, traceback.format_exc())
                remove_policies(env)
                reload(env)
                for consumer in {rec.get("consumer") for rec in env.records().values()}:
                    release_consumer(env, consumer)
        t.ok(env.daemon.poll() is None, "iovirtd is still up")
    finally:
        env.close()
    return t.done()


sys.exit(main())
