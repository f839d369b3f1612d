#!/usr/bin/env python3
"""test-load.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE LOAD_CLIENT: 200
clients at once against iovirtd on the emulated "large" host (4,130
functions, 64 SR-IOV PFs with 63 VFs each), whose sysfs behaves like the
kernel's (tests/emulator).  TAP output.

load-client (tests/dbus/load-client.c) opens 200 bus connections in one
process, one call in flight on each, for LOAD_SECONDS (default 20):

  - 156 readers: ListGroups, DescribeDevice, DescribeSriov, DescribeStatus,
    DescribeAssignments, ListAssignments, PlanAssign in turn, each answer
    checked against what the host and the other clients allow (a device in
    its group on its driver, a PF with its 63 VFs, no assignment but the
    assign clients' own, a free VF's plan allowed);
  - 32 assign clients, each with a VF of its own PF (a distinct group):
    Assign, then Release or ReleaseConsumer, in a loop; after every answer
    the testbed's driver link says the same (vfio-pci, then iavf again);
  - 4 SR-IOV clients, each with a PF of its own (set to 0 VFs first):
    SetVfs 2, 0, 3, 1 (3 -> 1 through 0), in a loop; after every answer sriov_numvfs and the virtfn links
    say the same;
  - 8 clients calling Peer.Ping.

Then: every call answered (sent = answered, none failed, none lost), every
answer right; and no drift, with the assignments where the deadline left
them: the state records, DescribeStatus, list-assignments, the testbed's
driver links and /dev/vfio agree on what is assigned; iovirtd's model (its
device list with drivers, each PF's VF count) is the testbed's; and once
everything is released, every function but the SR-IOV PFs' VFs has the
driver and override it had before the run.

Speed is not asserted here: tests/bench/load.py reports throughput and p99
against Peer.Ping from the same client."""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import harness  # noqa: E402

# 4,130 functions are ~100,000 files: on tmpfs when there is one (sysfs is in
# memory too); on a disk, writing and removing them is most of the run
if os.access("/dev/shm", os.W_OK):
    tempfile.tempdir = "/dev/shm"
SECONDS = os.environ.get("LOAD_SECONDS", "20")
N_PING, N_ASSIGN, N_SRIOV, N_CLIENTS = 8, 32, 4, 200
COUNTS = (2, 0, 3, 1)
READS = ("ListGroups", "DescribeDevice", "DescribeSriov", "DescribeStatus", "DescribeAssignments",
         "ListAssignments", "PlanAssign")
t = Tap()


def make_plan(env):
    """Roles over the large host: which PF, VF and group each client owns"""
    pfs = sorted((d for d in env.hostdesc.devices if d.vfs), key=lambda d: d.addr)
    assign_pfs, sriov_pfs, quiet_pfs = pfs[:N_ASSIGN], pfs[-N_SRIOV:], pfs[N_ASSIGN:-N_SRIOV]
    lines, roles = [], {"assign": [], "sriov": []}
    for i, pf in enumerate(assign_pfs):
        vf = pf.vfs[i % len(pf.vfs)]
        lines.append("assign %s %d %s load-%d" % (vf.addr, env.group_of(vf.addr), env.driver(vf.addr), i))
        roles["assign"].append((vf.addr, "load-%d" % i))
    for pf in sriov_pfs:
        lines.append("sriov %s %s" % (pf.addr, ",".join(str(c) for c in COUNTS)))
        roles["sriov"].append(pf.addr)
    lines += ["ping"] * N_PING
    for i in range(N_CLIENTS - len(lines)):
        # readers look at what nobody changes: the quiet PFs and their VFs
        pf = quiet_pfs[i % len(quiet_pfs)]
        dev = pf if i % 5 == 0 else pf.vfs[(i * 7) % len(pf.vfs)]
        free_vf = quiet_pfs[(i + 1) % len(quiet_pfs)].vfs[i % len(pf.vfs)]
        lines.append("read %s %d %s %s %d %s" % (dev.addr, env.group_of(dev.addr), env.driver(dev.addr),
                                                pf.addr, len(pf.vfs), free_vf.addr))
    return lines, roles, {pf.addr: len(pf.vfs) for pf in pfs}


def parse(out):
    methods, final, totals = {}, {"assign": {}, "sriov": {}}, {}
    for line in out.splitlines():
        w = line.split()
        if len(w) == 13 and w[1] == "sent":
            methods[w[0]] = {w[k]: float(w[k + 1]) for k in range(1, 13, 2)}
        elif w[:2] == ["final", "assign"]:
            final["assign"][w[2]] = (int(w[3]), w[4], w[5] == "assigned")
        elif w[:2] == ["final", "sriov"]:
            final["sriov"][w[2]] = int(w[3])
        elif len(w) == 2:
            totals[w[0]] = float(w[1])
    return methods, final, totals


def sysfs_vfs(env, pf):
    d = os.path.join(env.tb, "sys/bus/pci/devices", pf)
    with open(os.path.join(d, "sriov_numvfs")) as f:
        num = int(f.read())
    return num, sorted(os.path.basename(os.readlink(os.path.join(d, n))) for n in os.listdir(d)
                       if n.startswith("virtfn"))


def ctl_json(env, *args):
    rc, out, err = env.ctl("--json", *args)
    try:
        return json.loads(out) if rc == 0 else {"rc": rc, "err": err}
    except ValueError:
        return {"rc": rc, "out": out}


def model_devices(env):
    """iovirtd's model: every function with its driver (ListDevices)"""
    rc, out, err = env.ctl("--json", "list-devices")
    doc = json.loads(out) if rc == 0 else {}
    devs = doc.get("devices", doc) if isinstance(doc, dict) else doc
    return {d["address"]: d.get("driver") for d in devs}


def sysfs_devices(env):
    return {a: env.driver(a) for a in os.listdir(os.path.join(env.tb, "sys/bus/pci/devices"))}


def no_drift(env, final, pfs):
    """What the deadline left: the client's last answers, the records,
    status, list-assignments, sysfs and the model all agree"""
    held = {c: (g, vf) for c, (g, vf, assigned) in final["assign"].items() if assigned}
    recs = {r["consumer"]: (r["group"], [f["address"] for f in r.get("functions", [])])
            for r in env.records().values()}
    t.ok(recs == {c: (g, [vf]) for c, (g, vf) in held.items()},
         "the state records are exactly what the clients last were told is assigned (%d of %d)"
         % (len(held), N_ASSIGN), (recs, held))
    status = ctl_json(env, "status")
    t.ok(sorted((c["consumer"], c["groups"]) for c in status.get("consumers", [])) ==
         sorted((c, [g]) for c, (g, vf) in held.items()), "iovirtctl status names the same consumers and groups",
         status)
    la = ctl_json(env, "list-assignments")
    rows = la.get("assignments", []) if isinstance(la, dict) else la
    t.ok(sorted((a.get("consumer"), a.get("group"), a.get("phase")) for a in rows) ==
         sorted((c, g, "assigned") for c, (g, vf) in held.items()) and
         not [a for a in rows if a.get("drift")], "list-assignments: the same, every one assigned, no drift", la)
    on_vfio = sorted(a for a, d in sysfs_devices(env).items() if d == "vfio-pci")
    t.ok(on_vfio == sorted(vf for g, vf in held.values()),
         "sysfs: exactly the held VFs are on vfio-pci, nothing else (%d)" % len(on_vfio), on_vfio)
    nodes = sorted(os.listdir(os.path.join(env.tb, "dev/vfio")))
    t.ok(sorted(n for n in nodes if n != "vfio") == sorted(str(g) for g, vf in held.values()),
         "/dev/vfio has a node for each held group and no other", nodes)
    bad = {}
    for pf, count in final["sriov"].items():
        num, links = sysfs_vfs(env, pf)
        doc = json.loads(harness_call(env, "DescribeSriov", pf) or "{}")
        model = (doc.get("pf", {}).get("num_vfs"), sorted(v["address"] for v in doc.get("vfs", [])))
        drivers = {env.driver(v) for v in links}
        if not (num == count == len(links) and model == (count, links) and drivers <= {"iavf"}):
            bad[pf] = (count, num, links, model, drivers)
    t.ok(final["sriov"] and not bad, "each SR-IOV PF: its last answered count = sriov_numvfs = virtfn links = "
         "iovirtd's VFs, each VF on iavf (%s)" % ", ".join("%s %d" % kv for kv in sorted(final["sriov"].items())), bad)
    def model_diff():
        model, truth = model_devices(env), sysfs_devices(env)
        return {a: (model.get(a, "absent"), truth.get(a, "absent")) for a in set(model) | set(truth)
                if model.get(a, "absent") != truth.get(a, "absent")} if model else {"model": "empty"}
    # a resync after lost uevents (ENOBUFS) may still be under way: polled, not waited for blindly
    diff = model_diff()
    if diff and harness.wait_until(lambda: not model_diff(), 30, 1):
        diff = {}
    t.ok(not diff, "iovirtd's model is the testbed: %d functions, each on the same driver"
         % len(sysfs_devices(env)), dict(sorted(diff.items())[:20]))


def harness_call(env, method, *args):
    import ast
    rc, out, err = env.call(method, *args)
    return ast.literal_eval(out.strip())[0] if rc == 0 else None


def main():
    iovirtd, iovirtctl, emu, writer, client = sys.argv[1:6]
    t0 = time.monotonic()
    env = harness.Env(iovirtd, iovirtctl, emu, writer, "large")
    try:
        lines, roles, pfs = make_plan(env)
        plan = os.path.join(env.root, "plan")
        with open(plan, "w") as f:
            f.write("\n".join(lines) + "\n")
        t.ok(len(lines) == N_CLIENTS and
             len({ln.split()[2] for ln in lines if ln.startswith("assign")}) == N_ASSIGN,
             "%d clients, %d of them assigning %d distinct groups; the large host up in %.1f s"
             % (len(lines), N_ASSIGN, N_ASSIGN, time.monotonic() - t0))
        before = env.snapshot()
        # the SR-IOV PFs start at 0 VFs: under load they change by a few VFs
        # at a time, not by a mass removal of 63
        for pf in roles["sriov"]:
            rc, out, err = env.ctl("sriov", pf, "--vfs", "0")
            t.ok(rc == 0 and sysfs_vfs(env, pf) == (0, []), "before the load: %s at 0 VFs" % pf, out + err)

        p = subprocess.run([client, env.tb, SECONDS, plan], env=env.bus.env(), capture_output=True, text=True,
                           timeout=float(SECONDS) + 240)
        methods, final, totals = parse(p.stdout)
        t.ok(p.returncode == 0 and totals.get("failures") == 0 and totals.get("lost") == 0,
             "load-client: %d connections for %s s, every answer checked, none wrong, none lost"
             % (N_CLIENTS, SECONDS), p.stdout + p.stderr[-6000:])
        for name in ("Peer.Ping",) + READS + ("Assign", "Release", "ReleaseConsumer", "SetVfs"):
            m = methods.get(name, {})
            t.ok(m.get("answered", 0) > 0 and m["sent"] == m["answered"] and m["failed"] == 0,
                 "%s: sent %d, answered %d, failed %d" % (name, m.get("sent", 0), m.get("answered", 0),
                                                          m.get("failed", 0)), m)
        t.ok(methods.get("Assign", {}).get("answered", 0) >= N_ASSIGN and
             methods.get("SetVfs", {}).get("answered", 0) >= N_SRIOV and
             len(final["assign"]) == N_ASSIGN and len(final["sriov"]) == N_SRIOV and
             all(v >= 0 for v in final["sriov"].values()),
             "every assign client assigned at least once, every SR-IOV client changed its PF", (methods, final))
        t.ok(env.daemon.poll() is None, "iovirtd is still up")

        no_drift(env, final, pfs)

        # everything back: the host as it was
        for consumer, (g, vf, assigned) in sorted(final["assign"].items()):
            if assigned:
                rc, out, err = env.ctl("release", "--consumer", consumer)
                if rc != 0:
                    t.ok(False, "release --consumer %s" % consumer, out + err)
        # the SR-IOV PFs' VFs were checked above; the rest of the host must be as it was
        changed = {pf: set(sysfs_vfs(env, pf)[1]) for pf in final["sriov"]}
        remade = set().union(*changed.values()) | {v.addr for d in env.hostdesc.devices if d.addr in changed
                                                   for v in d.vfs}
        after = env.snapshot()
        diff = {a: (before.get(a), after.get(a)) for a in set(before) | set(after)
                if a not in remade and before.get(a) != after.get(a)}
        t.ok(not diff and not env.records(), "released: every other function's driver and override as before, "
             "/dev/vfio as before, no record (%d functions)" % len(set(after) - remade - {"/dev/vfio"}),
             dict(sorted(diff.items())[:20]))
        t.ok(env.daemon.poll() is None, "iovirtd is still up")
    finally:
        env.close()
    return t.done()


if __name__ == "__main__":      # tests/bench/load.py imports make_plan and parse
    sys.exit(main())
