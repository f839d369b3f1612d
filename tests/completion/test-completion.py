#!/usr/bin/env python3
"""test-completion.py COMPLETION IOVIRTCTL IOVIRTD KERNEL_EMU SYSFS_WRITE:
data/bash-completion/iovirtctl against the binary and emulated hosts.

  - without iovirtd (data/iovirt-emulate HOST bash -c ...; iovirtctl reads
    the host itself): commands from a prefix, each command's options, the
    host's device addresses (all their forms) and interfaces after show,
    group:N after assign (groups that hold more than bridges), classes,
    drivers, groups and NUMA nodes after the list-devices filters;
  - the options it offers for each command are exactly those the binary
    accepts with it, and together every option of --help; every class it
    offers is one the binary takes;
  - SR-IOV: the PFs (addresses and interfaces, as `iovirtctl --json tree`
    has them) after sriov, PF#N for each enabled VF after PF# (sriov,
    assign, show), a PF's options or a VF's after the argument, and the
    values of --autoprobe, --spoofchk and --trust;
  - with iovirtd (a private bus, the kernel-behaviour emulator): consumers
    after --consumer and --to, quoted as the shell needs them and never
    expanded; what release can give back;
  - nothing on stderr, ever; nothing at all without iovirtctl on PATH;
  - in a real interactive bash (a pty), TAB turns 0000:03:0 into
    0000:03:00.0 and group:1 into group:10: the word bash splits at ':'
    and '=' is put back together.

Each completion is driven as bash drives it: COMP_WORDS split at
COMP_WORDBREAKS, COMP_LINE, COMP_POINT and the arguments (command, word,
previous word), and each reply applied to the line as readline would."""

import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "hosts"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "dbus"))
from tap import Tap  # noqa: E402

COMPLETION, IOVIRTCTL, IOVIRTD, EMU, WRITER = [os.path.abspath(a) for a in sys.argv[1:6]]
EMULATE = os.path.join(SOURCE, "data", "iovirt-emulate")
WORDBREAKS = " \t\n\"'@><=;|&(:"            # bash's default
BREAK_CHARS = set("@><=;|&(:")
NO_BUS = "unix:path=/nonexistent/iovirt-test-no-bus"
BASH = shutil.which("bash")
t = Tap()


def base_env(**extra):
    """iovirtctl of this build first on PATH, iovirtd unreachable unless
    the caller names a bus"""
    env = dict(os.environ, LC_ALL="C.UTF-8", DBUS_SYSTEM_BUS_ADDRESS=NO_BUS,
               PATH=os.path.dirname(IOVIRTCTL) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
    env.pop("BASH_ENV", None)
    env.pop("ENV", None)
    env.update(extra)
    return env


# ---- bash's view of a line ----
def split_words(line):
    """COMP_WORDS as bash makes them: whitespace separates, a run of break
    characters is a word of its own, quotes and backslashes hold a word
    together; a line that ends in whitespace has an empty last word."""
    words, cur, quote, i = [], "", None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch == "\\" or ch in "\"'":
            if cur and all(c in BREAK_CHARS for c in cur):
                words.append(cur)
                cur = ""
            if ch == "\\":
                cur += line[i:i + 2]
                i += 1
            else:
                cur += ch
                quote = ch
        elif ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        elif ch in BREAK_CHARS:
            if cur and not all(c in BREAK_CHARS for c in cur):
                words.append(cur)
                cur = ""
            cur += ch
        else:
            if cur and all(c in BREAK_CHARS for c in cur):
                words.append(cur)
                cur = ""
            cur += ch
        i += 1
    if cur or (line and line[-1].isspace()) or not words:
        words.append(cur)
    return words


def word_start(line):
    """Where readline's word (the text a reply replaces) begins"""
    start, quote = 0, None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch == "\\":
            i += 1
        elif ch in "\"'":
            quote = ch
            start = i + 1
        elif ch.isspace() or ch in BREAK_CHARS:
            start = i + 1
        i += 1
    return start, quote


def bash_case(n, line):
    """The bash that completes LINE as bash would, printing R<n>\\t<reply>"""
    words = split_words(line)
    start, _ = word_start(line)
    cur = line[start:]
    prev = words[-2] if len(words) > 1 else ""
    return ("COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=%s; COMP_POINT=%d; COMPREPLY=(BOGUS)\n"
            "_iovirtctl iovirtctl %s %s\n"
            "for r in \"${COMPREPLY[@]}\"; do printf 'R%d\\t%%s\\n' \"$r\"; done; echo 'E%d'\n"
            % (" ".join(shlex.quote(w) for w in words), len(words) - 1, shlex.quote(line), len(line),
               shlex.quote(cur), shlex.quote(prev), n, n))


def final_words(line, replies):
    """The word the cursor is in once each reply is applied, unquoted"""
    start, quote = word_start(line)
    out = set()
    for r in replies:
        new = line[:start] + r + (quote or "")
        try:
            out.add(shlex.split(new)[-1])
        except ValueError:
            out.add("<unparsable: %r>" % new)
    return out


def complete(cases, host=None, env=None, prologue=""):
    """Runs every (line) of CASES in one bash, on the emulated HOST unless
    env says otherwise; returns ({line: set of resulting words}, raw
    replies, stdout noise, stderr)"""
    script = "source %s\n%s\n" % (shlex.quote(COMPLETION), prologue)
    for n, line in enumerate(cases):
        script += bash_case(n, line)
    argv = [BASH, "--norc", "--noprofile", "-c", script]
    if host:
        argv = [EMULATE, host] + argv
    p = subprocess.run(argv, env=env or base_env(), capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    replies = {n: [] for n in range(len(cases))}
    noise, done = [], set()
    for out_line in p.stdout.splitlines():
        m = re.fullmatch(r"R(\d+)\t(.*)", out_line)
        if m:
            replies[int(m.group(1))].append(m.group(2))
        elif re.fullmatch(r"E(\d+)", out_line):
            done.add(int(out_line[1:]))
        else:
            noise.append(out_line)
    if len(done) != len(cases):
        noise.append("only %d of %d completions ran (exit %d)" % (len(done), len(cases), p.returncode))
    return ({cases[n]: final_words(cases[n], r) for n, r in replies.items()},
            {cases[n]: r for n, r in replies.items()}, noise, p.stderr)


def check(results, line, want, name=None):
    got = results[0][line]
    t.ok(got == set(want), name or "%r completes to %s" % (line, " ".join(sorted(want)) or "nothing"),
         "got:  %s\nwant: %s" % (sorted(got), sorted(want)))


def quiet(results, what):
    _, _, noise, err = results
    t.ok(not err and not noise, "%s: nothing on stderr, nothing but replies on stdout" % what,
         "stderr: %s\nstdout: %s" % (err, "\n".join(noise)))


# ---- the host, as iovirtctl itself reports it ----
def host_facts(host):
    script = ("iovirtctl --direct --json list-devices; echo '<<>>'; "
              "for f in /sys/class/net/*; do n=${f##*/}; "
              "iovirtctl --direct show \"$n\" >/dev/null 2>&1 && echo \"$n\"; done; echo '<<>>'; "
              "iovirtctl --direct --json tree; "
              "for f in /sys/class/net/*; do n=${f##*/}; echo \"<<>>$n\"; "
              "iovirtctl --direct --json show \"$n\" 2>/dev/null; done")
    p = subprocess.run([EMULATE, host, "sh", "-c", script], env=base_env(), capture_output=True, text=True,
                       timeout=120)
    doc, ifaces, tree, *shown = p.stdout.split("<<>>")
    devices = json.loads(doc)["devices"]
    # SR-IOV PFs (address: enabled VFs), and the interfaces that are PFs, as iovirtctl says
    pfs = {d["address"]: d["sriov"]["num_vfs"] for d in json.loads(tree)["devices"] if d.get("sriov")}
    by_iface = {}
    for part in shown:
        name, _, text = part.partition("\n")
        if text.strip():
            by_iface[name] = json.loads(text)["address"]
    return dict(
        pfs=pfs,
        pf_ifaces={i: pfs[a] for i, a in by_iface.items() if a in pfs},
        addresses={d["address"] for d in devices},
        groups={str(d["iommu_group"]) for d in devices if d["iommu_group"] is not None},
        targets={"group:%d" % d["iommu_group"] for d in devices
                 if d["iommu_group"] is not None and not d["bridge"]},
        drivers={d["driver"] for d in devices if d["driver"]} | {"none"},
        numa={str(d["numa_node"]) for d in devices if d["numa_node"] is not None},
        interfaces=set(ifaces.split()))


def help_text():
    return subprocess.run([IOVIRTCTL, "--help"], env=base_env(), capture_output=True, text=True, timeout=30).stdout


HELP = help_text()
COMMANDS = []
section = False
for help_line in HELP.splitlines():
    if help_line == "Commands:":
        section = True
    elif section:
        if not help_line:
            break
        m = re.match(r"  ([a-z][a-z0-9-]*)", help_line)
        if m:
            COMMANDS.append(m.group(1))
HELP_OPTIONS = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", HELP))
t.ok({"list-groups", "list-devices", "show", "tree", "check", "reload", "assign", "release",
      "list-assignments", "status"} <= set(COMMANDS) and HELP_OPTIONS,
     "iovirtctl --help lists the commands and options", HELP)

# ---- without iovirtd, on emulated hosts ----
desktop = host_facts("desktop")
t.ok(desktop["addresses"] and desktop["interfaces"] and desktop["targets"],
     "the desktop host has devices, interfaces and groups to complete", desktop)
d = desktop
cases = {
    "iovirtctl ": set(COMMANDS),
    "iovirtctl sh": {"show"},
    "iovirtctl list-": {c for c in COMMANDS if c.startswith("list-")},
    "iovirtctl --json li": {c for c in COMMANDS if c.startswith("li")},
    "iovirtctl st": {c for c in COMMANDS if c.startswith("st")},
    "iovirtctl --js": {"--json"},
    "iovirtctl show ": d["addresses"] | d["interfaces"],
    "iovirtctl show 0000:03:": {a for a in d["addresses"] if a.startswith("0000:03:")},
    "iovirtctl show 0000:03:0": {a for a in d["addresses"] if a.startswith("0000:03:0")},
    "iovirtctl show 03": {a[5:] for a in d["addresses"] if a.startswith("0000:03")},
    "iovirtctl show en": {i for i in d["interfaces"] if i.startswith("en")},
    "iovirtctl show pci_0000_03": {"pci_" + re.sub(r"[:.]", "_", a) for a in d["addresses"]
                                   if a.startswith("0000:03")},
    "iovirtctl show /sys/bus/pci/devices/0000:03": {"/sys/bus/pci/devices/" + a for a in d["addresses"]
                                                    if a.startswith("0000:03")},
    "iovirtctl --direct show 0000:0": {a for a in d["addresses"] if a.startswith("0000:0")},
    "iovirtctl show 0000:03:00.0 ": set(),
    "iovirtctl show zz": set(),
    "iovirtctl assign group:": d["targets"],
    "iovirtctl assign gr": d["targets"],
    "iovirtctl assign group:1": {g for g in d["targets"] if g.startswith("group:1")},
    "iovirtctl --json assign --to vm1 group:": d["targets"],
    "iovirtctl assign ": d["addresses"] | d["interfaces"] | d["targets"],
    "iovirtctl assign 0000:03:00.0 --to vm1 ": {"--dry-run", "--accept-leaky", "--driver", "--memory", "--viommu",
                                                "--hard-limit", "--numa-policy", "--numa-node", "--cpus", "--user", "--persistent",
                                                "--print-qemu-args"},
    "iovirtctl assign 0000:03:00.0 --to vm1 --numa-policy ": {"required", "legacy", "preferred", "socket", "none"},
    "iovirtctl assign 0000:03:00.0 --to vm1 --driver ": {"vfio-pci"},
    "iovirtctl list-devices --class n": {"net", "network"},
    "iovirtctl list-devices --class=netw": {"--class=network"},
    "iovirtctl list-devices --driver ": d["drivers"],
    "iovirtctl list-devices --driver=e": {"--driver=" + x for x in d["drivers"] if x.startswith("e")},
    "iovirtctl list-devices --group ": d["groups"],
    "iovirtctl list-devices --group 1": {g for g in d["groups"] if g.startswith("1")},
    "iovirtctl tree ": set(),
    "iovirtctl release --consumer ": set(),      # iovirtd is not there to say
    "iovirtctl release ": set(),
    "iovirtctl -- --j": set(),
    "iovirtctl sriov ": set(),                   # no SR-IOV on the desktop
    "iovirtctl sriov enp3s0#": set(),
    "iovirtctl libvirt-hook ": set(),            # the domain: libvirt's to say
    "iovirtctl libvirt-hook vm1 ": {"prepare", "release"},
    "iovirtctl libvirt-hook vm1 p": {"prepare"},
    "iovirtctl libvirt-hook vm1 prepare ": {"begin"},
    "iovirtctl libvirt-hook vm1 release ": {"end"},
    "iovirtctl libvirt-hook vm1 release end ": set(),
}
res = complete(list(cases), "desktop")
for line, want in cases.items():
    check(res, line, want)
quiet(res, "desktop without iovirtd")

dual = host_facts("dual-socket")
pf_addr = sorted(a for a, n in dual["pfs"].items() if n > 0)
pf_if = sorted(i for i, n in dual["pf_ifaces"].items() if n > 0)
cases = {
    "iovirtctl list-devices --numa ": dual["numa"],
    "iovirtctl show ens1": {i for i in dual["interfaces"] if i.startswith("ens1")},
    "iovirtctl assign group:": dual["targets"],
    "iovirtctl sriov ": set(dual["pfs"]) | set(dual["pf_ifaces"]),
    "iovirtctl --json sriov ens": {i for i in dual["pf_ifaces"] if i.startswith("ens")},
}
if pf_addr and pf_if:
    a, i = pf_addr[0], pf_if[0]
    cases.update({
        "iovirtctl sriov %s#" % i: {"%s#%d" % (i, n) for n in range(dual["pf_ifaces"][i])},
        "iovirtctl sriov %s#" % a: {"%s#%d" % (a, n) for n in range(dual["pfs"][a])},
        "iovirtctl assign %s#" % a[5:]: {"%s#%d" % (a[5:], n) for n in range(dual["pfs"][a])},
        "iovirtctl show %s#1" % i: {"%s#1" % i} | {"%s#%d" % (i, n) for n in range(10, dual["pf_ifaces"][i])},
        "iovirtctl sriov %s " % i: {"--vfs", "--autoprobe", "--persist", "--no-persist"},
        "iovirtctl sriov %s --vfs 2 --persist " % i: {"--autoprobe"},
        "iovirtctl sriov %s#0 " % i: {"--mac", "--vlan", "--spoofchk", "--trust", "--persist"},
        "iovirtctl sriov %s --vfs 2 --autoprobe " % i: {"yes", "no"},
        "iovirtctl sriov %s#0 --spoofchk o" % i: {"on", "off"},
        "iovirtctl sriov %s#0 --trust=of" % i: {"--trust=off"},
        "iovirtctl sriov %s#0 --mac 52:54:00:12:34:56 --vlan 5 " % i: {"--spoofchk", "--trust", "--persist"},
    })
t.ok(pf_addr and pf_if, "dual-socket has SR-IOV PFs with VFs, by address and by interface", dual["pfs"])
t.ok(len(dual["numa"]) == 2, "dual-socket has two NUMA nodes to complete", dual["numa"])
res = complete(list(cases), "dual-socket")
for line, want in cases.items():
    check(res, line, want)
quiet(res, "dual-socket without iovirtd")

# The form the issue gives: COMP_WORDS and COMP_CWORD only, no arguments
p = subprocess.run([BASH, "--norc", "--noprofile", "-c",
                    "source \"$1\"; COMP_WORDS=(iovirtctl sh); COMP_CWORD=1; _iovirtctl; "
                    "printf '%s\\n' \"${COMPREPLY[@]}\"", "-", COMPLETION],
                   env=base_env(), capture_output=True, text=True, timeout=60)
t.ok(p.stdout == "show\n" and not p.stderr, "_iovirtctl with only COMP_WORDS and COMP_CWORD set",
     p.stdout + p.stderr)

# ---- options: what it offers is what the binary accepts ----
VALUES = {"--class": "net", "--driver": "none", "--group": "0", "--numa": "0", "--to": "vm1",
          "--consumer": "vm1", "--vfs": "1", "--autoprobe": "no", "--mac": "52:54:00:12:34:56", "--vlan": "5",
          "--spoofchk": "on", "--trust": "off", "--memory": "4G", "--hard-limit": "5G", "--numa-policy": "none",
          "--numa-node": "0", "--cpus": "0-1", "--user": "root"}
BASE = {"show": ["0000:03:00.0"], "assign": ["0000:03:00.0", "--to", "vm1"], "release": ["0000:03:00.0"],
        "sriov": ["0000:03:00.0"],
        # an operation the hook passes at once: exit 0 without iovirtd, unless an option is refused
        "libvirt-hook": ["vm1", "started", "begin"]}
# sriov: the VF settings want a VF (PF#N); --autoprobe and --persist a change to go with
SRIOV_BASE = {"--mac": ["0000:03:00.0#0"], "--vlan": ["0000:03:00.0#0"], "--spoofchk": ["0000:03:00.0#0"],
              "--trust": ["0000:03:00.0#0"], "--autoprobe": ["0000:03:00.0", "--vfs", "1"],
              "--persist": ["0000:03:00.0", "--vfs", "1"], "--no-persist": ["0000:03:00.0", "--vfs", "1"]}
lines = ["iovirtctl %s --" % c for c in COMMANDS] + ["iovirtctl --"]
res = complete(lines, "desktop")
quiet(res, "options")
offered = {line.split()[1]: words for line, words in res[0].items() if len(line.split()) > 2}
offered_all = set().union(*res[0].values())
t.ok(offered_all == HELP_OPTIONS, "the options offered are the options of iovirtctl --help",
     "offered only: %s\nin --help only: %s" % (sorted(offered_all - HELP_OPTIONS), sorted(HELP_OPTIONS - offered_all)))
t.ok(res[0]["iovirtctl --"] <= offered_all and "--to" not in res[0]["iovirtctl --"],
     "before a command: the global options only", res[0]["iovirtctl --"])
script = ""
probes = []
for c in COMMANDS:
    for o in sorted(HELP_OPTIONS):
        base = list(BASE.get(c, []))
        if c == "sriov" and o in SRIOV_BASE:
            base = list(SRIOV_BASE[o])
        if c == "assign" and o == "--to":
            base = base[:1]
        if c == "release" and o == "--consumer":
            base = []
        value = "vfio-pci" if (c, o) == ("assign", "--driver") else VALUES.get(o)
        argv = [c] + base + [o] + ([value] if value else [])
        probes.append((c, o, argv))
        script += "timeout 20 iovirtctl %s >/dev/null 2>&1; echo $?\n" % " ".join(shlex.quote(a) for a in argv)
p = subprocess.run([EMULATE, "desktop", "sh", "-c", script], env=base_env(), capture_output=True, text=True,
                   timeout=600)
codes = p.stdout.split()
wrong = []
for (c, o, argv), rc in zip(probes, codes):
    accepted = rc != "2"
    if accepted != (o in offered.get(c, set())):
        wrong.append("iovirtctl %s: exit %s, %s" % (" ".join(argv), rc, "offered" if not accepted else "not offered"))
t.ok(len(codes) == len(probes) and not wrong,
     "each command is offered exactly the options iovirtctl accepts with it (%d probes)" % len(probes),
     "\n".join(wrong) or p.stderr)

res = complete(["iovirtctl list-devices --class "], "desktop")
classes = res[0]["iovirtctl list-devices --class "]
script = "".join("iovirtctl --direct list-devices --class %s >/dev/null 2>&1 || echo %s\n" % (c, c)
                 for c in sorted(classes))
p = subprocess.run([EMULATE, "desktop", "sh", "-c", script], env=base_env(), capture_output=True, text=True,
                   timeout=300)
t.ok(len(classes) > 5 and not p.stdout.split(), "every class offered after --class is one iovirtctl takes",
     "refused: %s" % p.stdout.split())
p = subprocess.run([IOVIRTCTL, "list-devices", "--class", "no-such-class"], env=base_env(),
                   capture_output=True, text=True, timeout=30)
m = re.search(r"one of ([a-z ]+),", p.stderr + p.stdout)
if m:
    t.ok(set(m.group(1).split()) == classes, "the classes offered are the ones iovirtctl names",
         "iovirtctl: %s\noffered: %s" % (sorted(m.group(1).split()), sorted(classes)))
else:
    t.skip("the classes offered are the ones iovirtctl names", "iovirtctl's message lists none")

# ---- the script itself ----
if shutil.which("shellcheck"):
    p = subprocess.run(["shellcheck", "-s", "bash", COMPLETION], capture_output=True, text=True, timeout=60)
    t.ok(p.returncode == 0, "shellcheck finds nothing", p.stdout + p.stderr)
else:
    t.skip("shellcheck finds nothing", "shellcheck is not installed")

# ---- no iovirtctl at all ----
res = complete(["iovirtctl ", "iovirtctl show "], env=dict(base_env(), PATH="/nonexistent"))
check(res, "iovirtctl ", set(), "without iovirtctl on PATH nothing is offered")
quiet(res, "without iovirtctl")

# ---- with iovirtd: consumers ----
import harness  # noqa: E402

NASTY = "$(touch PWNED) x\"y"
env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "desktop")
work = tempfile.mkdtemp(prefix="iovirt-completion.")
try:
    a1 = env.assign("group:7", "vm one")
    a2 = env.assign("group:9", NASTY)
    t.ok(a1[0] == 0 and a2[0] == 0, "iovirtd assigned group 7 to 'vm one' and group 9 to %r" % NASTY,
         a1[2] + a2[2])
    denv = base_env(DBUS_SYSTEM_BUS_ADDRESS=env.bus.address, UMOCKDEV_DIR=env.tb, IOVIRT_ROOT=env.tb,
                    LD_PRELOAD=env.preload)
    cases = {
        "iovirtctl release --consumer ": {"vm one", NASTY},
        "iovirtctl release --consumer v": {"vm one"},
        "iovirtctl release --consumer vm\\ o": {"vm one"},
        "iovirtctl release --consumer \"vm": {"vm one"},
        "iovirtctl release --consumer '$(t": {NASTY},
        "iovirtctl release --consumer=v": {"--consumer=vm one"},
        "iovirtctl release --consumer=\"vm": {"--consumer=vm one"},
        "iovirtctl assign 0000:02:00.0 --to ": {"vm one", NASTY},
        "iovirtctl release ": {"group:7", "group:9", "0000:03:00.0", "0000:04:00.0"},
        "iovirtctl release group:": {"group:7", "group:9"},
        "iovirtctl release --consumer vm1 ": set(),
        "iovirtctl release group:7 ": set(),         # a TARGET or --consumer, not both
        "iovirtctl show 0000:03:": {"0000:03:00.0"},
        "iovirtctl --direct release --consumer ": set(),     # --direct: iovirtd is not asked
    }
    p = subprocess.run([BASH, "--norc", "--noprofile", "-c",
                        "cd \"$1\" && source \"$2\" && " + "".join(bash_case(n, line) for n, line in enumerate(cases)),
                        "-", work, COMPLETION], env=denv, capture_output=True, text=True, timeout=300)
    replies = {n: [] for n in range(len(cases))}
    for out_line in p.stdout.splitlines():
        m = re.fullmatch(r"R(\d+)\t(.*)", out_line)
        if m:
            replies[int(m.group(1))].append(m.group(2))
    lines = list(cases)
    res = ({lines[n]: final_words(lines[n], r) for n, r in replies.items()}, replies,
           [x for x in p.stdout.splitlines() if not re.fullmatch(r"R\d+\t.*|E\d+", x)], p.stderr)
    for line, want in cases.items():
        check(res, line, want)
    quiet(res, "with iovirtd")
    t.ok(not os.listdir(work) and not os.path.exists(os.path.join(SOURCE, "PWNED")),
         "a consumer's name is never run: no PWNED file", os.listdir(work))
finally:
    env.close()
    shutil.rmtree(work, ignore_errors=True)


# ---- a real interactive bash ----
def interactive(host, lines):
    """Types each line and TAB into an interactive bash on HOST; returns
    the line readline holds afterwards (read back through bind -x)."""
    pid, fd = pty.fork()
    if pid == 0:
        env = base_env(PS1="$ ", INPUTRC="/dev/null", TERM="dumb", HISTFILE="/dev/null")
        os.execvpe(EMULATE, [EMULATE, host, BASH, "--norc", "--noprofile", "-i"], env)
    buf = b""

    def read_until(pattern, timeout=30):
        nonlocal buf
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, buf, re.S)
            if m:
                buf = buf[m.end():]
                return m
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    buf += os.read(fd, 65536)
                except OSError:
                    break
        return None

    out = {}
    try:
        os.write(fd, ("source %s; bind 'set bell-style none'; "
                      "bind -x '\"\\ez\": printf \"<<LINE[%%s]>>\\n\" \"$READLINE_LINE\"'; echo READY\n"
                      % shlex.quote(COMPLETION)).encode())
        if not read_until(rb"\nREADY"):
            return None
        for line in lines:
            os.write(fd, line.encode() + b"\t")
            time.sleep(0.2)
            os.write(fd, b"\x1bz")
            m = read_until(rb"<<LINE\[(.*?)\]>>")
            out[line] = m.group(1).decode() if m else None
            os.write(fd, b"\x15")        # ^U: the line is emptied again
        os.write(fd, b"exit\n")
        # until bash and iovirt-emulate are gone (it removes its testbed on exit)
        end = time.time() + 30
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            try:
                if r and not os.read(fd, 65536):
                    break
            except OSError:
                break
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return out


TYPED = {
    "iovirtctl sho": "iovirtctl show ",
    "iovirtctl show 0000:03:0": "iovirtctl show 0000:03:00.0 ",
    "iovirtctl show 03:0": "iovirtctl show 03:00.0 ",
    "iovirtctl assign group:1": "iovirtctl assign group:10 ",
    "iovirtctl list-devices --class=netw": "iovirtctl list-devices --class=network ",
    "iovirtctl show enp": "iovirtctl show enp3s0 ",
}
got = interactive("desktop", list(TYPED))
if got is None:
    t.ok(False, "an interactive bash started under data/iovirt-emulate")
else:
    for line, want in TYPED.items():
        t.ok(got.get(line) == want, "interactive bash: %r + TAB gives %r" % (line, want), "got %r" % got.get(line))

sys.exit(t.done())
