#!/usr/bin/env python3
"""test-readme.py README IOVIRTCTL: the README's command table is one table
(no blank line splits it, or Markdown ends it there) with a row for every
command of `iovirtctl --help`, and no row for a command that is not."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from tap import Tap  # noqa: E402

readme, ctl = sys.argv[1:3]
t = Tap()
_tap_ok = t.ok


def _ok(cond, name, detail=""):
    """t.ok, and the detail on stderr too: what meson test --print-errorlogs shows"""
    if not _tap_ok(cond, name, detail):
        sys.stderr.write("%s:\n%s\n" % (name, detail))
    return cond


t.ok = _ok

out = subprocess.run([ctl, "--help"], capture_output=True, text=True, timeout=30).stdout
commands, section = [], False
for line in out.splitlines():
    if line == "Commands:":
        section = True
    elif section:
        if not line:
            break
        m = re.match(r"  ([a-z][a-z0-9-]*)", line)
        if m:
            commands.append(m.group(1))
t.ok(commands, "iovirtctl --help lists commands", out)

lines = open(readme, encoding="utf-8").read().splitlines()
header = next((i for i, line in enumerate(lines) if re.match(r"\|\s*command\s*\|", line)), None)
t.ok(header is not None, "the README has a command table ('| command | what |')")
rows = []
if header is not None:
    i = header + 2                       # past the | --- | line
    while i < len(lines) and lines[i].startswith("|"):
        rows.append(lines[i])
        i += 1
    # rows resuming after blank lines are the rest of a table cut in two
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    stray = []
    while j > i and j < len(lines) and lines[j].startswith("|"):
        stray.append(lines[j])
        j += 1
    t.ok(not stray, "the command table is not cut in two (a blank line ends a Markdown table)",
         "rows after the table ended:\n" + "\n".join(stray))
# the commands a row names: each `...` in its first cell, first word
named = set()
for row in rows:
    first = re.split(r"(?<!\\)\|", row)[1]
    named |= {m.split()[0] for m in re.findall(r"`([^`]+)`", first)}
missing = [c for c in commands if c not in named]
t.ok(not missing, "every command of iovirtctl --help has a row in the README's table", "missing: %s" % missing)
extra = sorted(named - set(commands))
t.ok(not extra, "every row of the README's table is a command iovirtctl has", "unknown: %s" % extra)
sys.exit(t.done())
