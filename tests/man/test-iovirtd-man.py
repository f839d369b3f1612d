#!/usr/bin/env python3
"""test-iovirtd-man.py IOVIRTD_8 POLICY IOVIRTD: iovirtd(8) says what the
installed files and the daemon say.

- AUTHORIZATION names every polkit action of the actions file, no other,
  with exactly the file's three defaults (allow_active, allow_inactive,
  allow_any), and says nothing of "every action" that is not so;
- every method of `iovirtd --list-methods` is documented, and each guarded
  method is named under its action;
- no sentence puts what iovirtd already does (assignment) in a later release."""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from tap import Tap  # noqa: E402

page, policy, iovirtd = sys.argv[1:4]
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
    return re.sub(r"\\\((em|en|->)", " ", line)


src = open(page, encoding="utf-8").read().splitlines()
text = []            # (request, plain text) per line
for line in src:
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
            inside = s.strip('"') == name
        elif inside:
            out.append((req, s))
    return out


# The actions file
actions = {}
for a in ET.parse(policy).getroot().iter("action"):
    d = a.find("defaults")
    actions[a.get("id")] = {k: d.findtext(k).strip() for k in ("allow_active", "allow_inactive", "allow_any")}
t.ok(actions, "the actions file has actions", policy)

# AUTHORIZATION's paragraphs: a .TP whose tag is an action, up to the next paragraph
auth = section("AUTHORIZATION")
paragraphs = {}
i = 0
while i < len(auth):
    req, s = auth[i]
    if req == "TP" and i + 1 < len(auth) and re.fullmatch(r"org\.iovirt1\.[a-z-]+", auth[i + 1][1].strip()):
        name = auth[i + 1][1].strip()
        body = []
        i += 2
        while i < len(auth) and auth[i][0] not in ("TP", "PP", "P", "LP", "SH", "SS", "IP"):
            body.append(auth[i][1])
            i += 1
        paragraphs[name] = " ".join(body)
        continue
    i += 1

t.ok(set(paragraphs) == set(actions),
     "AUTHORIZATION documents exactly the actions of the actions file",
     "man page: %s\nactions file: %s" % (sorted(paragraphs), sorted(actions)))
for name, want in sorted(actions.items()):
    got = dict(("allow_" + k, v) for k, v in
               re.findall(r"\ballow_(active|inactive|any)\s+(auth_admin_keep|auth_admin|auth_self_keep|auth_self|yes|no)\b",
                          paragraphs.get(name, "")))
    t.ok(got == want, "iovirtd(8) gives %s the actions file's defaults" % name,
         "man page: %s\nactions file: %s" % (got, want))

# A sentence about every action holds for every action
values = {v for d in actions.values() for v in d.values()}
auth_text = re.sub(r"\s+", " ", " ".join(s for req, s in auth if req in ("", "B", "BR", "I")))
claims = [s for s in re.split(r"(?<=[.;])\s+", auth_text)
          if re.search(r"\b(every|all|each)\b( polkit)? actions?\b", s, re.I) and re.search(r"\bauth_|\byes\b", s)]
wrong = [s for s in claims if len(values) != 1 or set(re.findall(r"\bauth_\w+", s)) - values]
t.ok(not wrong, "no sentence gives every action one default unless the actions file does", "\n".join(wrong))

# The daemon's own table
p = subprocess.run([iovirtd, "--list-methods"], capture_output=True, text=True, timeout=30)
methods = [line.split("\t") for line in p.stdout.splitlines() if "\t" in line]
t.ok(p.returncode == 0 and methods, "iovirtd --list-methods", p.stderr)
whole = " ".join(s for _, s in text)
undocumented = [m for m, _ in methods if not re.search(r"\b%s\b" % re.escape(m), whole)]
t.ok(not undocumented, "iovirtd(8) documents every method of iovirtd --list-methods",
     "not in the page: %s" % undocumented)
# "org.iovirt1.release org.iovirt1.release-any": named under each of its actions
misplaced = ["%s (%s)" % (m, a) for m, a in methods if a != "read-only" and
             any(not re.search(r"\b%s\b" % re.escape(m), paragraphs.get(x, "")) for x in a.split())]
t.ok(not misplaced, "each guarded method is named under its polkit action in AUTHORIZATION",
     "not under their action: %s" % misplaced)

# What exists is not promised for later
sentences = re.split(r"(?<=[.;])\s+", re.sub(r"\s+", " ", " ".join(s for req, s in text if req in ("", "B", "BR", "I"))))
later = [s for s in sentences if re.search(r"later release|come next|next release", s, re.I)]
implemented = [m for m, _ in methods if m in ("Assign", "Release")]
wrong = [s for s in later if implemented and re.search(r"\bassign", s, re.I)]
t.ok(not wrong, "no sentence puts device assignment in a later release (iovirtd has %s)" % ", ".join(implemented),
     "\n".join(wrong))
sys.exit(t.done())
