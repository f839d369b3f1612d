#!/usr/bin/env python3
"""test-iovirtctl-man.py IOVIRTCTL_1 IOVIRTCTL: iovirtctl(1) says what the
binary's --help says.

- every command of `iovirtctl --help` is in SYNOPSIS and has its entry (a
  tagged paragraph) under COMMANDS;
- every option of --help is in the page as an option name: under OPTIONS, or
  tagged under its command, or in SYNOPSIS;
- the page names no command and no long option that --help does not have;
- every error word a script can see under --json (EXIT STATUS, Errors) is
  the one iovirtctl prints: each is tagged under Errors."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from tap import Tap  # noqa: E402

page, ctl = sys.argv[1:3]
t = Tap()
_tap_ok = t.ok


def _ok(cond, name, detail=""):
    """t.ok, and the detail on stderr too: what meson test --print-errorlogs shows"""
    if not _tap_ok(cond, name, detail):
        sys.stderr.write("%s:\n%s\n" % (name, detail))
    return cond


t.ok = _ok


def plain(line):
    """A troff source line as text: fonts, \\% and \\: dropped, \\- as -."""
    line = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", line)
    line = line.replace("\\%", "").replace("\\:", "").replace("\\&", "").replace("\\-", "-")
    line = re.sub(r"\\\((em|en|->|bu)", " ", line)
    return line.replace('"', "")


text = []            # (request, plain text) per line
for line in open(page, encoding="utf-8").read().splitlines():
    if line.startswith(".\\\"") or line.startswith("'\\\""):
        continue
    if line.startswith("."):
        req, _, rest = line[1:].partition(" ")
        text.append((req, plain(rest)))
    else:
        text.append(("", plain(line)))


def section(name):
    out, inside = [], False
    for req, s in text:
        if req == "SH":
            inside = s.strip() == name
        elif inside:
            out.append((req, s))
    return out


def tags(lines):
    """The tag of every tagged paragraph: the line after each .TP"""
    return [lines[i + 1][1].strip() for i, (req, _) in enumerate(lines[:-1]) if req == "TP"]


# What --help says
out = subprocess.run([ctl, "--help"], capture_output=True, text=True, timeout=30).stdout
commands, part = [], False
for line in out.splitlines():
    if line == "Commands:":
        part = True
    elif part:
        if not line:
            break
        m = re.match(r"  ([a-z][a-z0-9-]*)", line)
        if m:
            commands.append(m.group(1))
options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", out))
t.ok(commands and options, "iovirtctl --help lists commands and options", out)

synopsis = " ".join(s for _, s in section("SYNOPSIS"))
synopsis_commands = set(re.findall(r"\[\s*OPTIONS\s*\]\s+([a-z][a-z0-9-]*)", synopsis))
for s in re.findall(r"\[\s*OPTIONS\s*\]\s+[a-z][a-z0-9-]*\s*\|\s*([a-z][a-z0-9-]*)", synopsis):
    synopsis_commands.add(s)
missing = [c for c in commands if c not in synopsis_commands]
t.ok(not missing, "SYNOPSIS has every command of --help", "missing: %s" % missing)
extra = sorted(synopsis_commands - set(commands))
t.ok(not extra, "SYNOPSIS has no command that --help lacks", "unknown: %s" % extra)

entries = set()
for tag in tags(section("COMMANDS")):
    for word in re.split(r"[,\s]+", tag):
        if re.fullmatch(r"[a-z][a-z0-9-]*", word):
            entries.add(word)
missing = [c for c in commands if c not in entries]
t.ok(not missing, "every command of --help has its entry under COMMANDS", "missing: %s" % missing)

whole = "\n".join(s for _, s in text)
named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", whole))
tagged = set()
for name in ("OPTIONS", "COMMANDS"):
    for tag in tags(section(name)):
        tagged |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", tag))
documented = tagged | set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", synopsis))
missing = sorted(options - documented)
t.ok(not missing, "every option of --help is in SYNOPSIS or tagged under OPTIONS or its command",
     "missing: %s" % missing)
unknown = sorted(named - options)
t.ok(not unknown, "the page names no option --help lacks", "unknown: %s" % unknown)

# The error words: cli/iovirtctl-output.c's table, as iovirtctl prints them
errors = section("EXIT STATUS")
words = [tag for tag in tags(errors) if re.fullmatch(r"[a-z][a-z-]*", tag)]
src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cli", "iovirtctl-output.c")
printed = re.findall(r'\[CTL_ERROR_[A-Z_]+\] = "([a-z-]+)"', open(src, encoding="utf-8").read())
t.ok(printed and sorted(words) == sorted(printed), "Errors tags exactly the error words iovirtctl prints",
     "page: %s\niovirtctl: %s" % (sorted(words), sorted(printed)))
sys.exit(t.done())
