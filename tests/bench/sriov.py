#!/usr/bin/python3
"""sriov.py IOVIRTD IOVIRTCTL KERNEL_EMU [ROUNDS]: how long iovirtd takes
to make 256 VFs, against the emulated kernel's own time for them.

On the emulated "sriov" host, run as an operator runs it
(data/iovirt-emulate --daemon sriov: iovirtd on a private bus, sysfs that
behaves like the kernel's through tests/emulator), each of ROUNDS (default
3) rounds times `iovirtctl sriov 81:00.0 --vfs 256` from its start until it
returns (iovirtd answers SetVfs once it has seen the VFs appear), then
`--vfs 0` the same way, and reads the emulator's accounted time for the
sysfs writes of the same call ($TESTBED/emulator/stats: the wall-clock time
of each write inside the emulated kernel, here the creation or removal of
256 devices with their links, groups, uevents and probes, less what it
waited for iovirtd to read its uevents: a unix datagram queue holds 10, a
udev monitor's buffer far more).  The emulator's time is the floor: what
the call would take with a daemon that costs nothing.  The testbed is on
tmpfs when /dev/shm is there (sysfs is in memory; on a disk, creating
files would be most of the floor).  Reports, per direction, the median of iovirtctl's time, of the
emulator's, and their ratio (iovirtd time / emulator floor).  A report: it
never fails on a number.

It fails (exit 1) when the run does not measure what it says: a call that
fails, or a PF whose sriov_numvfs and virtfnN links in the testbed are not
the count asked for when the call returns."""

import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATE = os.path.normpath(os.path.join(HERE, "..", "..", "data", "iovirt-emulate"))
HOST, PF, VFS = "sriov", "0000:81:00.0", 256


class Invalid(Exception):
    """The run does not measure what it claims to"""


def stats(testbed):
    try:
        with open(os.path.join(testbed, "emulator", "stats")) as f:
            ops, ns = map(int, f.read().split())
    except FileNotFoundError:
        ops, ns = 0, 0
    return ops, ns


def kernel_count(testbed):
    d = os.path.join(testbed, "sys/bus/pci/devices", PF)
    with open(os.path.join(d, "sriov_numvfs")) as f:
        num = int(f.read())
    return num, sum(1 for n in os.listdir(d) if n.startswith("virtfn"))


def one(ctl, testbed, count):
    """(iovirtctl's seconds, the emulator's seconds, its writes, the daemon's own figures)"""
    ops0, ns0 = stats(testbed)
    t0 = time.monotonic()
    p = subprocess.run([ctl, "--json", "--no-ask-password", "sriov", PF, "--vfs", str(count)],
                       capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    ops1, ns1 = stats(testbed)
    if p.returncode != 0:
        raise Invalid("iovirtctl sriov %s --vfs %d: exit %d\n%s%s" % (PF, count, p.returncode, p.stdout, p.stderr))
    got = kernel_count(testbed)
    if got != (count, count):
        raise Invalid("after --vfs %d the testbed has sriov_numvfs %d and %d virtfn links" % ((count,) + got))
    try:
        change = json.loads(p.stdout).get("change") or {}
    except ValueError:
        change = {}
    return took, (ns1 - ns0) / 1e9, ops1 - ops0, change


def inner(ctl, rounds):
    """Under iovirt-emulate: the testbed is the only one below our TMPDIR"""
    found = glob.glob(os.path.join(os.environ["TMPDIR"], "iovirt-daemon-%s.*" % HOST, "testbed"))
    if len(found) != 1:
        raise Invalid("no single testbed below %s: %s" % (os.environ["TMPDIR"], found))
    testbed = found[0]
    if kernel_count(testbed) != (0, 0):
        raise Invalid("%s does not start without VFs" % PF)
    rows = {VFS: [], 0: []}
    for r in range(rounds):
        for count in (VFS, 0):
            took, floor, ops, change = one(ctl, testbed, count)
            rows[count].append((took, floor))
            print("  round %d, %3d -> %3d VFs: iovirtctl %.3f s, emulator %.3f s (%d writes), ratio %.2f%s" % (
                r + 1, VFS - count, count, took, floor, ops, took / floor if floor else float("inf"),
                "; iovirtd says kernel %.3f s of %.3f s" % (change["kernel_usec"] / 1e6, change["usec"] / 1e6)
                if "kernel_usec" in change and "usec" in change else ""), flush=True)
    for count, label in ((VFS, "0 -> %d VFs" % VFS), (0, "%d -> 0 VFs" % VFS)):
        took = statistics.median(x for x, _ in rows[count])
        floor = statistics.median(y for _, y in rows[count])
        print("%s, median of %d: iovirtctl %.3f s, emulator floor %.3f s, iovirtd's share %.3f s, "
              "ratio %.2f" % (label, rounds, took, floor, took - floor, took / floor if floor else float("inf")))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--inner":
        try:
            inner(sys.argv[2], int(sys.argv[3]))
        except (Invalid, subprocess.TimeoutExpired) as e:
            sys.stderr.write("sriov: invalid run: %s\n" % e)
            return 1
        return 0
    if len(sys.argv) not in (4, 5):
        sys.stderr.write("usage: sriov.py IOVIRTD IOVIRTCTL KERNEL_EMU [ROUNDS]\n")
        return 2
    iovirtd, ctl, emu = (os.path.abspath(a) for a in sys.argv[1:4])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    # iovirt-emulate's folder goes below a TMPDIR of our own, where the
    # inner run finds the testbed and its stats; on tmpfs when there is one,
    # as sysfs is in memory: a disk's file creation would be most of the floor
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    private = tempfile.mkdtemp(prefix="iovirt-bench-sriov.", dir=shm)
    try:
        print("iovirtd on the emulated '%s' host (testbed in %s), %s: %d VFs made and removed, %d rounds"
              % (HOST, private, PF, VFS, rounds), flush=True)
        env = dict(os.environ, TMPDIR=private, IOVIRTD=iovirtd, IOVIRT_KERNEL_EMU=emu)
        p = subprocess.run([EMULATE, "--daemon", HOST, sys.executable, os.path.abspath(__file__), "--inner", ctl,
                            str(rounds)], env=env, timeout=1200)
        return p.returncode
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
