#!/usr/bin/python3
"""load.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE LOAD_CLIENT [SECONDS]:
iovirtd under 200 clients, throughput and latency against Peer.Ping.

The run of tests/dbus/test-load.py, longer (SECONDS, default 60): on the
emulated "large" host (4,130 functions; sysfs that behaves like the
kernel's), load-client opens 200 bus connections in one process with one
call in flight on each: 156 readers (ListGroups, DescribeDevice,
DescribeSriov, DescribeStatus, DescribeAssignments, ListAssignments,
PlanAssign in turn), 32 clients assigning and releasing a VF of their own,
4 changing the VF count of a PF of their own (2, 0, 3, 1), and 8 calling
Peer.Ping, the floor, in the same run against the same daemon.  Reports
the calls answered per second, and per method the count, p50, p99 and max
and the ratios to Peer.Ping's p50 and p99.  A report: it never fails on a
number.

It fails (exit 1) when the run does not measure what it says: a call not
answered, an answer that was wrong (load-client checks each one), or a
method that was never called."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
sys.path.insert(0, os.path.join(HERE, "..", "dbus"))
import harness  # noqa: E402

spec = importlib.util.spec_from_file_location("test_load", os.path.join(HERE, "..", "dbus", "test-load.py"))
test_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(test_load)

ORDER = ("Peer.Ping",) + test_load.READS + ("Assign", "Release", "ReleaseConsumer", "SetVfs")


def main():
    if len(sys.argv) not in (6, 7):
        sys.stderr.write("usage: load.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE LOAD_CLIENT [SECONDS]\n")
        return 2
    iovirtd, iovirtctl, emu, writer, client = sys.argv[1:6]
    seconds = sys.argv[6] if len(sys.argv) > 6 else "60"
    if os.access("/dev/shm", os.W_OK):
        tempfile.tempdir = "/dev/shm"
    env = harness.Env(iovirtd, iovirtctl, emu, writer, "large")
    try:
        lines, roles, pfs = test_load.make_plan(env)
        plan = os.path.join(env.root, "plan")
        with open(plan, "w") as f:
            f.write("\n".join(lines) + "\n")
        for pf in roles["sriov"]:
            rc, out, err = env.ctl("sriov", pf, "--vfs", "0")
            if rc != 0:
                sys.stderr.write("load: invalid run: sriov %s --vfs 0 failed: %s\n" % (pf, out + err))
                return 1
        t0 = time.monotonic()
        p = subprocess.run([client, env.tb, seconds, plan], env=env.bus.env(), capture_output=True, text=True,
                           timeout=float(seconds) + 600)
        wall = time.monotonic() - t0
    finally:
        env.close()
    methods, final, totals = test_load.parse(p.stdout)
    problems = []
    if p.returncode != 0 or totals.get("failures") != 0 or totals.get("lost") != 0:
        problems.append("load-client: exit %d, %s failures, %s lost" % (p.returncode, totals.get("failures"),
                                                                        totals.get("lost")))
    for name in ORDER:
        m = methods.get(name, {})
        if not m.get("answered") or m["sent"] != m["answered"] or m["failed"]:
            problems.append("%s: %s" % (name, m or "never called"))
    if problems:
        sys.stderr.write("load: invalid run:\n  %s\n%s\n" % ("\n  ".join(problems), p.stderr[-4000:]))
        return 1

    elapsed = totals["elapsed"]
    answered = sum(m["answered"] for m in methods.values())
    ping = methods["Peer.Ping"]
    print("200 clients for %s s (calls stop then; the last answered %.1f s after the start, %.1f s with connecting)"
          % (seconds, elapsed, wall))
    print("on the emulated large host (%d functions), kernel-behaviour emulator, one load-client process"
          % sum(1 for _ in env.hostdesc.devices))
    print("throughput: %d calls answered, %.0f calls/s; %d assign/release cycles, %d VF count changes"
          % (answered, answered / elapsed, methods["Assign"]["answered"], methods["SetVfs"]["answered"]))
    print("%-20s %7s %10s %10s %10s %9s %9s" % ("method", "calls", "p50 us", "p99 us", "max us", "p50/Ping",
                                                  "p99/Ping"))
    for name in ORDER:
        m = methods[name]
        print("%-20s %7d %10.0f %10.0f %10.0f %8.2fx %8.2fx" % (name, m["answered"], m["p50"], m["p99"], m["max"],
                                                                m["p50"] / ping["p50"], m["p99"] / ping["p99"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
