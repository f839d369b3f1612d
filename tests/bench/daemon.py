#!/usr/bin/python3
"""daemon.py IOVIRTD BUS_LATENCY [ROUNDS]: iovirtd's latency and memory.

For the ~100-function and the 4,130-function emulated hosts: starts a
private system bus and iovirtd, reports its RSS once idle, then round trips
(p50/p99) of ListGroups and of a one-device lookup next to Peer.Ping to the
same daemon on the same bus (the floor), and the time from a uevent to the
DeviceChanged signal that follows the model's update.  Targets: lookup
within 2x Ping, ListGroups on ~100 functions within 3x, uevent -> model
under 5 ms, idle RSS under 16 MiB at 4,000 functions.  A report: it never
fails on a number."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
sys.path.insert(0, os.path.join(HERE, "..", "dbus"))
from hosts import HOSTS  # noqa: E402
from harness import Daemon  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    iovirtd, client = sys.argv[1], sys.argv[2]
    rounds = sys.argv[3] if len(sys.argv) > 3 else "2000"
    for name in ("scale-100", "large"):
        host = HOSTS[name]()
        dev = [d for d in host.devices if d.physfn][-1]     # the last VF: deep in the model
        with Daemon(iovirtd, host) as (bus, daemon, testbed):
            os.makedirs(os.path.join(testbed, "sys/bus/pci/drivers/vfio-pci"), exist_ok=True)
            print("== %s: %d functions; iovirtd idle RSS %.1f MiB" % (name, len(host.devices),
                                                                       rss_kib(daemon.pid) / 1024))
            sys.stdout.flush()
            subprocess.run([client, rounds, dev.addr, testbed, dev.syspath()], env=bus.env(), check=True,
                           timeout=600)
            print("   iovirtd RSS after the run %.1f MiB" % (rss_kib(daemon.pid) / 1024))


if __name__ == "__main__":
    main()
