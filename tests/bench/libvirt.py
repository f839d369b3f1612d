#!/usr/bin/env python3
"""libvirt.py IOVIRTD BUS_LATENCY ROUNDS: what asking libvirt costs an
Assign.  A consumer named "domain:NAME", or a bare name, is looked up in
libvirt (on a job's thread) before the plan is made, once per call.
PlanAssign of one device on the emulated desktop host, to a name libvirt
is never asked about, to a new bare name each time, and to domain:lv-web
(a domain libvirt has), against Peer.Ping on the
same bus: once with libvirt's test driver answering (tests/dbus/
libvirt-host.xml, in process), once with a libvirt socket nobody listens
on (libvirtd down: no domain, so no domain:lv-web).  A report, not a pass/fail: the numbers are ratios to
Ping and differences to the name that is never looked up."""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
sys.path.insert(0, os.path.join(HERE, "..", "dbus"))
from hosts import HOSTS  # noqa: E402
from harness import Daemon  # noqa: E402

iovirtd, latency, rounds = sys.argv[1:4]
DEVICE = "0000:00:14.0"       # the desktop's USB controller, a group of its own


def run(label, domain=None, **extra):
    with Daemon(iovirtd, HOSTS["desktop"](), **extra) as (bus, daemon, testbed):
        out = subprocess.run([latency, "--consumers", rounds, DEVICE] + ([domain] if domain else []), env=bus.env(),
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.stdout.write(out.stdout + out.stderr)
            sys.exit(1)
    p50 = {}
    for line in out.stdout.splitlines():
        name, rest = line.split(" p50 ")
        p50[name] = float(rest.split()[0])
    ping, kept = p50["Peer.Ping"], p50["PlanAssign bench:kept"]
    print("%s:" % label)
    for name, v in p50.items():
        extra = "" if name == "Peer.Ping" else "  %+8.1f us against bench:kept" % (v - kept)
        print("  %-26s p50 %8.1f us  %6.1fx Ping%s" % (name.replace("DOMAIN", domain or ""), v, v / ping, extra))


run("libvirt's test driver answering", "domain:lv-web")
with tempfile.TemporaryDirectory(prefix="iovirt-bench-libvirt.") as d:
    run("libvirtd down (nobody listens at the URI)",
        IOVIRT_LIBVIRT_URI="qemu+unix:///system?socket=" + os.path.join(d, "nobody"))
