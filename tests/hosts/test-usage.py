#!/usr/bin/env python3
"""test-usage.py IOVIRTCTL: usage errors exit 2 with a message that names
the problem, before anything is read from the host or the bus is
contacted; with --json each one is a single {"error": ...} object on
stdout, named "usage"."""

import atexit
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile

from tap import Tap
from cli_errors import error_object
import wrapper      # IOVIRT_TEST_WRAPPER (meson test --setup valgrind) in front of iovirtctl

ctl = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="iovirt-usage.")
atexit.register(shutil.rmtree, tmp, True)
# A system bus that only counts: a client that connects to it shows up in
# accept(), and would then wait for a greeting that never comes.
bus_path = os.path.join(tmp, "system_bus_socket")
bus = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
bus.bind(bus_path)
bus.listen(16)
bus.setblocking(False)
# A host that cannot be read: discovery would fail loudly if it ran.
env = dict(os.environ, UMOCKDEV_DIR="/nonexistent-testbed", LD_PRELOAD="libumockdev-preload.so.0", LC_ALL="C",
           DBUS_SYSTEM_BUS_ADDRESS="unix:path=" + bus_path)
env.pop("IOVIRT_ROOT", None)

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
    (["--version"], 0, "iovirtctl 0.3.0"),
    (["reload", "--direct"], 2, "reload asks iovirtd; it cannot be done --direct"),
    (["reload", "now"], 2, "reload takes no arguments"),
]

# Every malformed form of every argument: exit 2, before the host or the bus
MALFORMED = [
    # DEVICE: addresses in each accepted form, sysfs paths, interface names
    (["show", "99:99.9"], "device number is out of range"),
    (["show", "05:00.8"], "function number is out of range"),
    (["show", "0000:05:00.f"], "function number is out of range"),
    (["show", "5:00.0"], "bus must be 2 hex digits"),
    (["show", "05:0.0"], "device must be 2 hex digits"),
    (["show", "000:05:00.0"], "domain must be 4 to 8 hex digits"),
    (["show", "0000:05:00"], "expected '.' between device and function"),
    (["show", "0000:05:00.0x"], "after the function number"),
    (["show", "1:2:3:4"], "not a valid PCI address"),
    (["show", "pci_0000_05_00"], "not a valid PCI address"),
    (["show", "pci_0000_05_00_9"], "function number is out of range"),
    (["show", "/sys/bus/pci/devices/nothing"], "not the sysfs path of a PCI function"),
    (["show", "/sys/bus/pci/devices/0000:05:00.9/"], "not the sysfs path of a PCI function"),
    (["show", ""], "no device given"),
    (["show", "enp5s0/x"], "neither a PCI address nor a network interface name"),
    (["show", "a-very-long-ifname0"], "neither a PCI address nor a network interface name"),
    (["show", "eth 0"], "neither a PCI address nor a network interface name"),
    (["show", ".."], "neither a PCI address nor a network interface name"),
    (["show", "x" * 5000], "too long"),
    # TARGET: group:N, or a DEVICE
    (["assign", "group:abc", "--to", "vm"], "group:N"),
    (["assign", "group:", "--to", "vm"], "group:N"),
    (["assign", "group:-1", "--to", "vm"], "group:N"),
    (["assign", "group:+1", "--to", "vm"], "group:N"),
    (["assign", "group:1x", "--to", "vm"], "group:N"),
    (["assign", "group:99999999999", "--to", "vm"], "group:N"),
    (["assign", "99:99.9", "--to", "vm"], "device number is out of range"),
    (["assign", "/sys/devices/pci0000:00/oops", "--to", "vm"], "not the sysfs path"),
    (["release", "group:x"], "group:N"),
    (["release", "0000:05:00.8"], "function number is out of range"),
    (["release", "a b"], "neither a PCI address nor a network interface name"),
    # CONSUMER, for --to and --consumer
    (["assign", "05:00.0", "--to", ""], "empty"),
    (["assign", "05:00.0", "--to", "vm\tx"], "control character"),
    (["assign", "05:00.0", "--to", "v" * 256], "255 bytes"),
    (["assign", "05:00.0", "--to", b"vm\xff".decode("utf-8", "surrogateescape")], "UTF-8"),
    (["release", "--consumer", ""], "empty"),
    (["release", "--consumer", "a\nb"], "control character"),
    # the combinations
    (["assign", "05:00.0"], "needs --to"),
    (["assign", "05:00.0", "--to", "vm", "--direct"], "cannot be done --direct"),
    (["release"], "a TARGET or --consumer"),
    (["release", "05:00.0", "--consumer", "vm"], "a TARGET or --consumer"),
    (["release", "--consumer", "vm", "--direct"], "cannot be done --direct"),
    (["status", "--direct"], "cannot be done --direct"),
    (["list-assignments", "--to", "vm"], "assign only"),
    (["show", "05:00.0", "--consumer", "vm"], "release only"),
    # list-devices filters
    (["list-devices", "--driver", ""], "--driver wants a driver name"),
    (["list-devices", "--driver", "a/b"], "--driver wants a driver name"),
    (["list-devices", "--driver", ".."], "--driver wants a driver name"),
    (["list-devices", "--group", "-1"], "--group wants a number"),
    (["list-devices", "--group", "1.5"], "--group wants a number"),
    (["list-devices", "--numa", ""], "--numa wants a number"),
    (["list-devices", "--numa", "+1"], "--numa wants a number"),
    (["list-devices", "--class", ""], "unknown class ''"),
    (["list-devices", "--class", "0200000"], "unknown class '0200000'"),
    (["list-devices", "--class", "zz"], "unknown class 'zz'"),
    # the first of several errors, wherever --json stands
    (["--frob", "show", "99:99.9"], "unknown option '--frob'"),
]

t = Tap()
wrapper.judge_at_exit()     # what an exception left unjudged


def run(args):
    """(exit code, stdout, stderr, connections made to the bus)"""
    try:
        p = subprocess.run(wrapper.prefix("iovirtctl") + [ctl] + args, env=env, capture_output=True,
                           timeout=20 * wrapper.SLOW)
        rc, out, err = p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", "timed out (waiting for a bus?)"
    connections = 0
    while True:
        try:
            conn, _ = bus.accept()
            conn.close()
            connections += 1
        except BlockingIOError:
            return rc, out, err, connections


def show(args):
    return " ".join(repr(a) if not a or " " in a or len(a) > 40 or not a.isprintable() else a
                    for a in args)[:120]


for args, rc, text in CASES:
    got, out, err, conns = run(args)
    t.ok(got == rc and text in out + err and not conns, "iovirtctl %s" % show(args),
         "want exit %d and '%s'; exit %s, %d bus connections: %s" % (rc, text, got, conns, (out + err).strip()))
    if rc != 2:
        continue
    for where in ("before", "after"):
        if where == "after" and args and args[-1] in ("--group", "--numa", "--class", "--driver", "--to", "--consumer"):
            continue        # --json would be that option's value
        jargs = ["--json"] + args if where == "before" else args + ["--json"]
        got, out, err, conns = run(jargs)
        e = error_object(out)
        t.ok(got == 2 and e and e["name"] == "usage" and text in e["message"] and not err and not conns,
             "iovirtctl %s: one JSON error named usage on stdout, nothing on stderr" % show(jargs),
             "exit %s, %d bus connections\nstdout: %s\nstderr: %s" % (got, conns, out, err))

for args, text in MALFORMED:
    got, out, err, conns = run(args)
    t.ok(got == 2 and text in err and not out and not conns and "system bus" not in err and "not running" not in err,
         "iovirtctl %s: exit 2 before the host or the bus" % show(args),
         "want '%s'; exit %s, %d bus connections\nstdout: %s\nstderr: %s" % (text, got, conns, out, err))
    got, out, err, conns = run(args + ["--json"])
    e = error_object(out)
    t.ok(got == 2 and e and e["name"] == "usage" and text in e["message"] and not err and not conns,
         "iovirtctl %s --json: the same as a usage error object" % show(args),
         "exit %s, %d bus connections\nstdout: %s\nstderr: %s" % (got, conns, out, err))

# Well formed, and so past the syntax: these do reach for the bus (and the
# host), which is what the cases above are told apart from
p = subprocess.Popen(wrapper.prefix("iovirtctl") + [ctl, "--json", "assign", "05:00.0", "--to", "vm",
                                                  "--no-ask-password"], env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
readable, _, _ = select.select([bus], [], [], 20 * wrapper.SLOW)
p.kill()
out, err = p.communicate()
if readable:
    bus.accept()[0].close()
t.ok(readable, "a well-formed assign does contact the bus (so the checks above can fail)",
     "exit %s: %s" % (p.returncode, (out + err).decode(errors="replace")))

# iovirtd not on any bus: no-daemon, exit 1, for every command that needs it
env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=" + os.path.join(tmp, "no-such-socket")
for args in (["assign", "05:00.0", "--to", "vm"], ["release", "group:3"], ["release", "--consumer", "vm"],
             ["reload"], ["list-assignments"], ["status"]):
    got, out, err, conns = run(["--json"] + args)
    e = error_object(out)
    t.ok(got == 1 and e and e["name"] == "no-daemon" and "needs iovirtd" in e["message"],
         "iovirtctl --json %s without a bus: error no-daemon, exit 1" % " ".join(args),
         "exit %s\nstdout: %s\nstderr: %s" % (got, out, err))
    got, out, err, conns = run(args)
    t.ok(got == 1 and not out and "cannot reach the system bus" in err and "needs iovirtd" in err,
         "iovirtctl %s without a bus: says so on stderr, exit 1" % " ".join(args), out + err)

got, out, err, conns = run(["--help"])
verbs = ["list-groups", "list-devices", "show DEVICE", "tree", "check", "reload", "--json", "--direct",
         "--no-ask-password", "--class", "Exit status", "\"error\""]
missing = [v for v in verbs if v not in out]
t.ok(got == 0 and not missing, "--help lists every command and option", "lacks %s" % missing)

bus.close()
if wrapper.VALGRIND:
    runs, unfinished, per, problems = wrapper.judge()
    # one run is killed on purpose (the well-formed assign, once it has connected)
    t.ok(runs and not problems and unfinished <= 1, "usage: " + wrapper.summary(runs, unfinished, per),
         "\n".join(problems) or "%d runs, %d without a whole report" % (runs, unfinished))
sys.exit(t.done())
