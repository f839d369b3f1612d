#!/usr/bin/env python3
"""assign.py IOVIRTD ASSIGN_CYCLES KERNEL_EMU [ROUNDS]: assign+release
cycles per second for a one-function and an eight-function IOMMU group,
iovirtd on a private bus against the kernel-behaviour emulator, and the
daemon's own share of each cycle (the emulated kernel's time, which the
emulator accounts for, taken out).  Target: under 2 ms per function."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
sys.path.insert(0, os.path.join(HERE, "..", "dbus"))
from testbed import Host, ENDPOINT  # noqa: E402
from harness import Daemon  # noqa: E402

iovirtd, cycles, emu = sys.argv[1:4]
rounds = sys.argv[4] if len(sys.argv) > 4 else "100"


def host():
    h = Host("bench", cpus=8)
    h.host_bridge("00:00.0")
    rp = h.root_port("00:01.0", (1, 1))
    h.add("01:00.0", 0x8086, 0x10d3, 0x020000, parent=rp, pcie_type=ENDPOINT, driver="e1000e", flr=True,
          reset_method="flr")
    rp2 = h.root_port("00:02.0", (2, 2))
    g = h.new_group()
    for fn in range(8):           # an eight-function device without ACS: one group
        h.add("02:00.%d" % fn, 0x8086, 0x1572, 0x020000, parent=rp2, pcie_type=ENDPOINT, driver="i40e",
              multifunction=True, group=g, flr=True, reset_method="flr")
    return h


import shutil  # noqa: E402
import tempfile  # noqa: E402

# The state is fsynced twice per assign and twice per release (the intent,
# then the outcome): once with it on the disk beside the testbed, once on
# tmpfs, where fsync is free, to tell that cost from the daemon's work.
shm = tempfile.mkdtemp(prefix="iovirt-bench-state.", dir="/dev/shm") if os.path.isdir("/dev/shm") else None
try:
    for where, extra in (("state on disk", {}), ("state on tmpfs", {"STATE_DIRECTORY": shm} if shm else None)):
        if extra is None:
            continue
        print(where + ":")
        with Daemon(iovirtd, host(), emu + " libumockdev-preload.so.0", **extra) as (bus, daemon, testbed):
            stats = os.path.join(testbed, "emulator", "stats")
            for target, n in (("01:00.0", "1"), ("02:00.0", "8")):
                out = subprocess.run([cycles, rounds, target, n, stats], env=bus.env(), capture_output=True, text=True)
                sys.stdout.write("  " + out.stdout + out.stderr)
                if out.returncode != 0:
                    sys.exit(1)
finally:
    if shm:
        shutil.rmtree(shm, ignore_errors=True)
