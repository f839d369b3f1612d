#!/usr/bin/env python3
"""test-usage.py IOVIRTCTL: usage errors exit 2 with a message that names
the problem, before anything is read from the host."""

import os
import subprocess
import sys

ctl = sys.argv[1]
# A host that cannot be read: discovery would fail loudly if it ran.
env = dict(os.environ, UMOCKDEV_DIR="/nonexistent-testbed", LD_PRELOAD="libumockdev-preload.so.0", LC_ALL="C")

CASES = [
    ([], 2, "no command given"),
    (["frob"], 2, "unknown command 'frob'"),
    (["--frob", "list-groups"], 2, "unknown option '--frob'"),
    (["list-groups", "-x"], 2, "unknown option '-x'"),
    (["show"], 2, "usage: iovirtctl show DEVICE"),
    (["show", "a", "b"], 2, "usage: iovirtctl show DEVICE"),
    (["list-groups", "extra"], 2, "list-groups takes no arguments"),
    (["list-groups", "--class", "net"], 2, "go with list-devices only"),
    (["list-devices", "--group", "x"], 2, "--group wants a number (0 or more), not 'x'"),
    (["list-devices", "--numa=-1"], 2, "--numa wants a number"),
    (["list-devices", "--class", "bogus"], 2, "unknown class 'bogus'"),
    (["list-devices", "--class", "02x"], 2, "unknown class '02x'"),
    (["list-devices", "--group"], 2, "--group needs a value"),
    (["--version"], 0, "iovirtctl 0.2.0"),
    (["reload", "--direct"], 2, "reload asks iovirtd; it cannot be done --direct"),
    (["reload", "now"], 2, "reload takes no arguments"),
]

n = failed = 0
for args, rc, text in CASES:
    p = subprocess.run([ctl] + args, env=env, capture_output=True, text=True, timeout=30)
    n += 1
    out = p.stdout + p.stderr
    if p.returncode == rc and text in out:
        print("ok %d - iovirtctl %s" % (n, " ".join(args)))
    else:
        failed += 1
        print("not ok %d - iovirtctl %s: want exit %d and '%s'" % (n, " ".join(args), rc, text))
        print("#   exit %d: %s" % (p.returncode, out.strip()))

p = subprocess.run([ctl, "--help"], env=env, capture_output=True, text=True, timeout=30)
n += 1
verbs = ["list-groups", "list-devices", "show DEVICE", "tree", "check", "reload", "--json", "--direct",
         "--no-ask-password", "--class", "Exit status"]
missing = [v for v in verbs if v not in p.stdout]
if p.returncode == 0 and not missing:
    print("ok %d - --help lists every command and option" % n)
else:
    failed += 1
    print("not ok %d - --help lacks %s" % (n, missing))
print("1..%d" % n)
sys.exit(1 if failed else 0)
