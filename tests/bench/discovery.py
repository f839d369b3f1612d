#!/usr/bin/env python3
"""discovery.py IOVIRTCTL [ROUNDS]: cold discovery against lspci -vvv.

For emulated hosts of about 100, 1,000 and 4,000 functions, runs
'iovirtctl --direct --json list-devices' and 'lspci -vvv' alternately in the
same umockdev testbed, ROUNDS times each, and reports the median wall time,
the ratio iovirtctl/lspci (target: <= 1.0), the peak RSS of each (target:
iovirtctl < 32 MiB at 4,000 functions) and the time per function (growth
should be linear).  A report, not a test: it never fails on a number."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from hosts import HOSTS  # noqa: E402


def run(argv, env):
    """Wall time in seconds and peak RSS in KiB of one run.

    The RSS comes from GNU time: a child of this Python process would
    inherit Python's high-water mark across execve, a child of time does not."""
    with tempfile.NamedTemporaryFile("r") as f:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-o", f.name, "-f", "%M"] + argv, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit("%s failed (%d)" % (argv[0], p.returncode))
        return t, int(f.read().split()[-1])


def main():
    ctl = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print("%-10s %6s %10s %10s %6s %9s %9s %12s" % ("host", "funcs", "iovirtctl", "lspci", "ratio",
                                                   "RSS ours", "RSS lspci", "us/function"))
    for name in ("scale-100", "scale-1000", "large"):
        root = tempfile.mkdtemp(prefix="iovirt-bench.")
        try:
            host = HOSTS[name]()
            host.write(root)
            n = len(host.devices)
            env = dict(os.environ, UMOCKDEV_DIR=root, IOVIRT_ROOT=root, LD_PRELOAD="libumockdev-preload.so.0")
            ours, theirs, rss_ours, rss_theirs = [], [], 0, 0
            run([ctl, "--direct", "--json", "list-devices"], env)     # warm the page cache for both
            run(["lspci", "-vvv"], env)
            for _ in range(rounds):
                t, r = run([ctl, "--direct", "--json", "list-devices"], env)
                ours.append(t)
                rss_ours = max(rss_ours, r)
                t, r = run(["lspci", "-vvv"], env)
                theirs.append(t)
                rss_theirs = max(rss_theirs, r)
            mo, mt = statistics.median(ours), statistics.median(theirs)
            print("%-10s %6d %9.3fs %9.3fs %6.2f %7.1fMiB %7.1fMiB %12.1f" % (
                name, n, mo, mt, mo / mt, rss_ours / 1024, rss_theirs / 1024, mo / n * 1e6))
            sys.stdout.flush()
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
