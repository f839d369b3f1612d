#!/usr/bin/env python3
"""test-cli-errors.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: errors a
script can read.  Through a real bus and iovirtd on emulated hosts, every
failure of iovirtctl --json is one {"error": {"name", "message", ...}}
object on stdout, with the exit codes of the text form: a refusal from
iovirtd carries its D-Bus error name and, for assign, the plan's failed
checks; a device that is not there is no-such-device whoever finds out; no
iovirtd is no-daemon.  The text form ends a refusal with its D-Bus name.
TAP output."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import harness  # noqa: E402
from cli_errors import error_object  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
t = Tap()


def Env(host):
    return harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host)


def ctl(env, *args, user=None, extra=None):
    e = env.bus.env(COLUMNS="200")
    e.update(extra or {})
    p = subprocess.run((harness.NOBODY if user == "nobody" else []) + [IOVIRTCTL] + list(args), env=e,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def json_error(env, what, args, name, rc=1, words=(), user=None, extra=None):
    """iovirtctl --json ARGS fails with exit RC and one error object named
    NAME whose message has WORDS, and nothing on stderr; returns it"""
    got, out, err = ctl(env, "--json", *args, user=user, extra=extra)
    e = error_object(out)
    t.ok(got == rc and e is not None and e["name"] == name and all(w in e["message"] for w in words) and not err,
         "%s: exit %d, error %s" % (what, rc, name), "exit %d\nstdout: %s\nstderr: %s" % (got, out, err))
    return e or {}


def failed_checks(e, check_id, reason, error, *words):
    checks = e.get("checks")
    ok = isinstance(checks, list) and checks and all(c.get("status") == "fail" for c in checks)
    mine = [c for c in checks if c.get("id") == check_id] if ok else []
    return (ok and len(mine) == 1 and mine[0].get("reason") == reason and mine[0].get("error") == error and
            all(w in mine[0].get("message", "") for w in words) and "override" in mine[0])


def text_refusal(env, what, args, name, *words, user=None):
    """The text form: the message on stderr, then the D-Bus name, last"""
    got, out, err = ctl(env, *args, user=user)
    lines = err.rstrip("\n").split("\n")
    t.ok(got == 1 and not out and lines[-1] == "iovirtctl: D-Bus error: " + name and
         all(w in err for w in words) and err.startswith("iovirtctl: "),
         "%s, as text: the message, then 'iovirtctl: D-Bus error: %s'" % (what, name), out + err)


# ---- a leaky group, and the plan's failed check in the error ----
env = Env("switch-no-acs")
try:
    before = env.snapshot()
    e = json_error(env, "assign of a leaky group", ["assign", "03:00.0", "--to", "vm"],
                   "org.iovirt1.Error.NotIsolated", words=["0000:04:00.0"])
    t.ok(failed_checks(e, "isolation", "not-isolated", "org.iovirt1.Error.NotIsolated", "0000:04:00.0",
                       "0000:02:01.0") and [c["override"] for c in e["checks"] if c["id"] == "isolation"] ==
         ["--accept-leaky"],
         "its checks: isolation failed, not-isolated, naming the peers and the port, --accept-leaky overrides it", e)
    text_refusal(env, "assign of a leaky group", ["assign", "03:00.0", "--to", "vm"], "org.iovirt1.Error.NotIsolated",
                 "0000:04:00.0", "--accept-leaky")
    t.ok(env.snapshot() == before and not env.records(), "the refusals changed nothing")
    # the dry run's answer is its plan, one document, not an error
    got, out, err = ctl(env, "--json", "assign", "03:00.0", "--to", "vm", "--dry-run")
    plan = json.loads(out) if got == 1 else {}
    t.ok(got == 1 and plan.get("allowed") is False and "error" not in plan and not err,
         "a refused --dry-run prints its plan (allowed false), exit 1, and no error object", out + err)
finally:
    env.close()

# ---- the host's disk, a group held by another, nothing to release, no device ----
env = Env("desktop")
try:
    e = json_error(env, "assign of the root disk", ["assign", "02:00.0", "--to", "vm"],
                   "org.iovirt1.Error.HostCritical", words=["mounted at /"])
    t.ok(failed_checks(e, "host-critical", "host-critical", "org.iovirt1.Error.HostCritical", "mounted at /",
                       "nvme0n1p2"),
         "its checks: host-critical failed, naming the mount point and the partition", e)
    text_refusal(env, "assign of the root disk", ["assign", "02:00.0", "--to", "vm"], "org.iovirt1.Error.HostCritical",
                 "mounted at /")

    got, out, err = ctl(env, "assign", "03:00.0", "--to", "vm-a")
    t.ok(got == 0, "03:00.0 goes to vm-a", out + err)
    e = json_error(env, "assign of a group held by vm-a", ["assign", "03:00.0", "--to", "vm-b"],
                   "org.iovirt1.Error.InUse", words=["vm-a"])
    t.ok(failed_checks(e, "ownership", "in-use", "org.iovirt1.Error.InUse", "vm-a"),
         "its checks: ownership failed, in-use, naming the owner", e)
    got, out, err = ctl(env, "--json", "assign", "03:00.0", "--to", "vm-a")
    t.ok(got == 0 and json.loads(out).get("done") is True and "error" not in json.loads(out),
         "a retry by the owner succeeds: the plan, done, no error", out + err)

    e = json_error(env, "release of a group nobody holds", ["release", "04:00.0"], "org.iovirt1.Error.NotAssigned",
                   words=["not assigned"])
    t.ok(set(e) == {"name", "message"}, "a refusal without a plan carries name and message only", e)
    text_refusal(env, "release of a group nobody holds", ["release", "04:00.0"], "org.iovirt1.Error.NotAssigned",
                 "not assigned")

    # not there: the same word whether iovirtd or iovirtctl finds out
    json_error(env, "assign of a function not on the host", ["assign", "09:00.0", "--to", "vm"], "no-such-device",
               words=["09:00.0"])
    json_error(env, "assign of a group not on the host", ["assign", "group:999", "--to", "vm"], "no-such-device",
               words=["no IOMMU group 999"])
    json_error(env, "release of a group not on the host", ["release", "group:999"], "no-such-device",
               words=["999"])
    json_error(env, "show of a function not on the host, through iovirtd", ["show", "09:00.0"], "no-such-device",
               words=["no PCI function 0000:09:00.0"])
    json_error(env, "show of an interface not on the host, through iovirtd", ["show", "wlan7"], "no-such-device",
               words=["wlan7"])
    direct = dict(UMOCKDEV_DIR=env.tb, IOVIRT_ROOT=env.tb, LD_PRELOAD=harness.PRELOAD)
    json_error(env, "show of a function not on the host, read directly", ["--direct", "show", "09:00.0"],
               "no-such-device", words=["no PCI function 0000:09:00.0"], extra=direct)
    json_error(env, "show of an interface not on the host, read directly", ["--direct", "show", "wlan7"],
               "no-such-device", words=["wlan7"], extra=direct)
    got, out, err = ctl(env, "--direct", "show", "09:00.0", extra=direct)
    t.ok(got == 1 and not out and err == "iovirtctl: no PCI function 0000:09:00.0 on this host; "
         "'iovirtctl list-devices' shows them all\n", "as text, read directly: one line on stderr, exit 1", out + err)
    got, out, err = ctl(env, "--direct", "--json", "show", "03:00.0", extra=direct)
    t.ok(got == 0 and json.loads(out).get("address") == "0000:03:00.0", "a function that is there is shown",
         out + err)

    # usage comes before iovirtd is asked, with iovirtd up as well
    json_error(env, "a malformed address, iovirtd running", ["show", "99:99.9"], "usage", rc=2,
               words=["device number is out of range"])
    json_error(env, "a malformed group, iovirtd running", ["assign", "group:abc", "--to", "vm"], "usage", rc=2,
               words=["group:N"])

    # polkit: not a refusal of the plan, so no checks
    e = json_error(env, "assign by nobody without polkit", ["--no-ask-password", "assign", "04:00.0", "--to", "vm"],
                   "org.iovirt1.Error.NotAuthorized", words=["org.iovirt1.assign"], user="nobody")
    t.ok(set(e) == {"name", "message"}, "NotAuthorized carries no failed checks (the plan would pass)", e)
    text_refusal(env, "assign by nobody without polkit", ["--no-ask-password", "assign", "04:00.0", "--to", "vm"],
                 "org.iovirt1.Error.NotAuthorized", "org.iovirt1.assign", user="nobody")
    json_error(env, "reload by nobody without polkit", ["--no-ask-password", "reload"],
               "org.iovirt1.Error.NotAuthorized", words=["org.iovirt1.reload"], user="nobody")

    got, out, err = ctl(env, "release", "--consumer", "vm-a")
    t.ok(got == 0 and env.driver("0000:03:00.0") == "e1000e", "vm-a's group goes back", out + err)

    # iovirtd gone from a live bus
    env.stop()
    for args in (["assign", "03:00.0", "--to", "vm"], ["release", "--consumer", "vm"], ["reload"],
                 ["list-assignments"]):
        json_error(env, "%s with iovirtd not on the bus" % args[0], args, "no-daemon", words=["iovirtd is not running"])
    got, out, err = ctl(env, "assign", "03:00.0", "--to", "vm")
    t.ok(got == 1 and not out and err == "iovirtctl: iovirtd is not running; start it with 'systemctl start iovirtd'\n",
         "as text: one line that says so, and no D-Bus name", out + err)
finally:
    env.close()

sys.exit(t.done())
