#!/usr/bin/env python3
"""test-man-render.py MANDIR: every man page in MANDIR renders without a
single troff warning, as man(1) renders it on an 80-column terminal.

groff comes from Debian's groff-base (man-db depends on it). The options are
man-db's for an 80-column terminal (line length 78n, tbl, preconv), plus
-ww: every warning troff has, which includes man-db's default set."""

import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from tap import Tap  # noqa: E402

MANWIDTH = 80
mandir = sys.argv[1]
t = Tap()

pages = sorted(p for p in glob.glob(os.path.join(mandir, "*.[1-9]")) if os.path.isfile(p))
t.ok(pages, "man pages found in %s" % mandir)

groff = shutil.which("groff")
if not groff:
    t.ok(False, "groff is installed", "groff not found: install groff-base (Debian), which renders man pages")
    sys.exit(t.done())

env = dict(os.environ, LC_ALL="C.UTF-8")
env.pop("GROFF_TMAC_PATH", None)
ll = "%dn" % (MANWIDTH - 2)     # man-db's line length for a MANWIDTH-column terminal
for page in pages:
    p = subprocess.run([groff, "-mandoc", "-t", "-k", "-Tutf8", "-ww", "-z",
                        "-rLL=" + ll, "-rLT=" + ll, page],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if not t.ok(p.returncode == 0 and not p.stderr.strip(),
                "%s renders at %d columns without warnings" % (os.path.basename(page), MANWIDTH),
                "groff exited %d:\n%s" % (p.returncode, p.stderr)):
        sys.stderr.write(p.stderr)      # what meson test --print-errorlogs shows
sys.exit(t.done())
