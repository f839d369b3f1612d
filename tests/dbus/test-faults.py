#!/usr/bin/python3
"""test-faults.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: faults of the
machine around iovirtd (issue 15), through the real bus on emulated hosts.
TAP output.

  - the state directory full (a small tmpfs, filled): Assign, Release,
    ReleaseConsumer and SR-IOV SetVfs --persist are refused naming the
    directory, the cause and what to do; nothing on the host changes, no
    temporary file stays, the records stay as they were; with one page
    left, an Assign whose intent fits but whose commit does not is rolled
    back; once there is room the same calls work;
  - the state directory read-only (the tmpfs remounted ro): the same
    refusals; iovirtd starts on it and serves, and says it cannot record;
    a state directory that cannot be made there stops iovirtd at once,
    naming it;
  - a udev event overflow (the emulator's "overflow monitor uevents": the
    monitor's next receive fails with ENOBUFS): a change the daemon missed
    (its uevent lost) is seen after the resync, which the log explains;
  - polkitd killed while it holds CheckAuthorization: the callers are
    answered at once with NotAuthorized naming polkit and why, nothing
    changes, iovirtd keeps serving, and the next polkit (or none) is used.

(polkit absent from the start for a non-root caller: tests/dbus/test-authz.py.)
The whole file runs in a private mount namespace of its own (it re-executes
itself under unshare -m), so a crash never leaves a tmpfs mounted.
"""

import errno
import json
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
PAGE = os.sysconf("SC_PAGE_SIZE")
t = Tap()


def Env(host, **extra):
    return harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, host, **extra)


def error_of(res):
    """(error name, message) of a failed gdbus call"""
    m = re.search(r"GDBus\.Error:([\w.]+): (.*)", res[2], re.S)
    return (m.group(1), m.group(2).strip()) if m else (None, res[2])


# ---- the state directory on a tmpfs of its own ----

def mount(*args):
    p = subprocess.run(["mount"] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("mount %s: %s" % (" ".join(args), p.stderr))


def on_tmpfs(env, size="64k"):
    """iovirtd again, with its state directory on a small tmpfs"""
    env.stop()
    for name in os.listdir(env.state):
        os.unlink(os.path.join(env.state, name))
    mount("-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", env.state)
    env.start()


def close(env):
    """env.close(), the mounts below it first: a mount point is not removed"""
    env.stop()
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in reversed(points):
        if point.startswith(env.root + "/"):
            subprocess.run(["umount", "-l", point], check=False)
    env.close()


def fill(env, leave=0):
    """Fills the state directory's tmpfs but for LEAVE pages"""
    path = os.path.join(env.state, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while os.write(fd, b"\0" * PAGE) == PAGE:
            pass
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    size = os.path.getsize(path) // PAGE * PAGE
    os.truncate(path, max(0, size - leave * PAGE))
    return path


def temp_files(env):
    """What an interrupted or failed save would leave: .NAME.XXXXXX"""
    return [n for n in os.listdir(env.state) if n.startswith(".")]


def json_files(env):
    out = {}
    for name in sorted(os.listdir(env.state)):
        if name.endswith(".json"):
            with open(os.path.join(env.state, name)) as f:
                out[name] = f.read()
    return out


def serving(env):
    rc, out, err = env.ctl("--json", "list-groups")
    return rc == 0 and env.daemon.poll() is None and json.loads(out).get("groups")


ADVICE = {"No space left on device": "free space", "Read-only file system": "read-write"}


def refused_by_state(env, name, res, error, cause, before):
    """Refused with ERROR, naming the state directory, the cause and what to
    do (ADVICE); the host, the records and the directory exactly as before"""
    got, msg = error_of(res)
    print("# %s: %s" % (name, msg.replace(env.state, "STATE")))
    t.ok(res[0] != 0 and got == error and env.state in msg and cause in msg and
         ADVICE[cause] in msg.lower() and "nothing was changed" in msg,
         "%s: %s, naming the state directory, %r and what to do" % (name, error.split(".")[-1], cause),
         "%s\n%s" % (got, msg))
    snap, files = before
    t.ok(env.snapshot() == snap and json_files(env) == files and not temp_files(env) and serving(env),
         "%s: the host and the state directory are as before, no temporary file, iovirtd serves" % name,
         (env.snapshot(), snap, temp_files(env)))


def state_dir_full():
    env = Env("desktop")
    try:
        on_tmpfs(env)
        start = env.snapshot()
        rc, out, err = env.ctl("assign", "03:00.0", "--to", "vm-a")
        t.ok(rc == 0 and env.driver("0000:03:00.0") == "vfio-pci", "with room: 03:00.0 goes to vm-a", out + err)

        filler = fill(env)
        before = (env.snapshot(), json_files(env))
        refused_by_state(env, "Assign with the state directory full", env.assign("04:00.0", "vm-b"),
                         "org.iovirt1.Error.BindFailed", "No space left on device", before)
        refused_by_state(env, "Release of a group assigned before it filled",
                         env.call("Release", "03:00.0", "false"), "org.iovirt1.Error.BindFailed",
                         "No space left on device", before)
        t.ok(env.driver("0000:03:00.0") == "vfio-pci" and
             any(r["consumer"] == "vm-a" for r in env.records().values()),
             "the refused release left 03:00.0 on vfio-pci with its record: the device and its record agree")
        refused_by_state(env, "ReleaseConsumer with the state directory full",
                         env.call("ReleaseConsumer", "vm-a", "false"), "org.iovirt1.Error.BindFailed",
                         "No space left on device", before)
        rc, out, err = env.ctl("assign", "04:00.0", "--to", "vm-b")
        t.ok(rc == 1 and env.state in err and "No space left on device" in err,
             "iovirtctl assign exits 1 and prints the daemon's reason", out + err)

        # one page: the intent fits, the record of the assignment does not
        os.unlink(filler)
        filler = fill(env, leave=1)
        res = env.assign("04:00.0", "vm-b")
        got, msg = error_of(res)
        print("# " + msg.replace(env.state, "STATE").replace("\n", " / "))
        t.ok(res[0] != 0 and got == "org.iovirt1.Error.BindFailed" and env.state in msg and
             "No space left on device" in msg and "put back as it was" in msg,
             "Assign whose intent fits but whose commit does not: refused, rolled back", msg)
        t.ok(env.snapshot() == before[0] and json_files(env) == before[1] and not temp_files(env) and serving(env),
             "after the rollback: 04:00.0 back on its driver, no record of it, no temporary file",
             (env.snapshot(), before[0], json_files(env).keys(), temp_files(env)))

        os.unlink(filler)
        rc, out, err = env.ctl("assign", "04:00.0", "--to", "vm-b")
        t.ok(rc == 0 and env.driver("0000:04:00.0") == "vfio-pci", "once there is room, the same Assign works",
             out + err)
        rc, out, err = env.ctl("release", "--consumer", "vm-a")
        rc2, out2, err2 = env.ctl("release", "04:00.0")
        t.ok(rc == 0 and rc2 == 0 and env.snapshot() == start and not env.records() and not temp_files(env),
             "and both releases: every function as at the start, no record left", out + err + out2 + err2)
    finally:
        close(env)


def state_dir_read_only():
    env = Env("desktop")
    try:
        on_tmpfs(env)
        start = env.snapshot()
        rc, out, err = env.ctl("assign", "03:00.0", "--to", "vm-a")
        t.ok(rc == 0, "with a writable state directory: 03:00.0 goes to vm-a", out + err)
        mount("-o", "remount,ro", env.state)
        before = (env.snapshot(), json_files(env))
        refused_by_state(env, "Assign with the state directory read-only", env.assign("04:00.0", "vm-b"),
                         "org.iovirt1.Error.BindFailed", "Read-only file system", before)
        refused_by_state(env, "Release with the state directory read-only",
                         env.call("Release", "03:00.0", "false"), "org.iovirt1.Error.BindFailed",
                         "Read-only file system", before)

        # a start on it: iovirtd serves what it reads, and says it cannot record
        env.stop()
        env.start()
        rc, out, err = env.ctl("--json", "list-assignments")
        held = [a["consumer"] for a in json.loads(out)["assignments"]] if rc == 0 else []
        t.ok(serving(env) and held == ["vm-a"], "iovirtd starts on a read-only state directory and serves its "
             "records (vm-a's group)", out + err)
        log = env.log().split("Serving org.iovirt1")[-2] if env.log().count("Serving org.iovirt1") >= 2 else ""
        t.ok(env.state in log and "read-only" in log.lower() and "refused" in log,
             "its log says at start that the state directory is read-only and changes are refused",
             log[-2000:])
        refused_by_state(env, "Assign after that start", env.assign("04:00.0", "vm-b"), "org.iovirt1.Error.BindFailed",
                         "Read-only file system", before)

        mount("-o", "remount,rw", env.state)
        rc, out, err = env.ctl("release", "03:00.0")
        t.ok(rc == 0 and env.snapshot() == start and not env.records() and not temp_files(env),
             "remounted read-write: the same Release works, every function as at the start", out + err)

        # no state directory, and none can be made: iovirtd stops at once, naming it
        ro = os.path.join(env.root, "ro")
        os.makedirs(ro)
        mount("-t", "tmpfs", "-o", "size=16k,ro", "tmpfs", ro)
        missing = os.path.join(ro, "state")
        envs = env.bus.env(UMOCKDEV_DIR=env.tb, IOVIRT_ROOT=env.tb, LD_PRELOAD=env.preload, STATE_DIRECTORY=missing,
                           IOVIRT_LIBVIRT_URI=harness.LIBVIRT_TEST_URI)
        envs.pop("NOTIFY_SOCKET", None)
        t0 = time.monotonic()
        p = subprocess.run([IOVIRTD], env=envs, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        t.ok(p.returncode == 1 and missing in p.stderr and "Read-only file system" in p.stderr,
             "no state directory on a read-only filesystem: iovirtd exits 1 naming it and the cause (%.1f s)" % took,
             p.stderr[-2000:])
        t.ok(serving(env), "the running iovirtd was not disturbed by it")
    finally:
        close(env)


def sriov_persist():
    env = Env("sriov")
    pf = "0000:05:00.0"
    numvfs = os.path.join(env.tb, "sys/bus/pci/devices", pf, "sriov_numvfs")

    def count():
        with open(numvfs) as f:
            return int(f.read())
    try:
        on_tmpfs(env)
        for how in ("full", "read-only"):
            filler = fill(env) if how == "full" else None
            if how == "read-only":
                mount("-o", "remount,ro", env.state)
            before = (env.snapshot(), json_files(env))
            cause = "No space left on device" if how == "full" else "Read-only file system"
            res = env.call("SetVfs", "05:00.0", "2", "{'persist': <true>}", "false")
            refused_by_state(env, "SetVfs --persist with the state directory %s" % how, res,
                             "org.iovirt1.Error.Failed", cause, before)
            t.ok(count() == 0, "no VF was made (sriov_numvfs 0)", count())
            if filler:
                os.unlink(filler)
            else:
                mount("-o", "remount,rw", env.state)
        res = env.call("SetVfs", "05:00.0", "2", "{'persist': <true>}", "false")
        t.ok(res[0] == 0 and count() == 2 and "sriov-%s.json" % pf in json_files(env) and not temp_files(env),
             "once it is writable with room, the same SetVfs works and is recorded", res)
        res = env.call("SetVfs", "05:00.0", "0", "{'persist': <false>}", "false")
        t.ok(res[0] == 0 and count() == 0 and not json_files(env), "and 0 VFs, not persisted, removes the record",
             res)
    finally:
        close(env)


# ---- a udev event overflow ----

def daemon_drivers(env):
    """The daemon's view: address -> driver ("" for none), from ListDevices"""
    p = subprocess.run(["busctl", "--system", "--json=short", "call", "org.iovirt1", "/org/iovirt1",
                        "org.iovirt1.Manager", "ListDevices"], env=env.bus.env(), capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        return {}
    return {d[0]: d[4] for d in json.loads(p.stdout)["data"][0]}


class Signals:
    """iovirtd's signals as gdbus monitor prints them, collected from now on"""

    def __init__(self, env):
        self.proc = subprocess.Popen(["gdbus", "monitor", "--system", "--dest", "org.iovirt1", "--object-path",
                                      "/org/iovirt1"], env=env.bus.env(), stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.ready = threading.Event()
        threading.Thread(target=self.read, daemon=True).start()
        self.ready.wait(30)

    def read(self):
        for line in self.proc.stdout:
            if "is owned by" in line:        # subscribed
                self.ready.set()
            self.lines.append(line.strip())

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def udev_overflow():
    env = Env("desktop")
    nic, usb = "0000:03:00.0", "0000:00:14.0"
    drivers = "/sys/bus/pci/drivers"
    try:
        t.ok(daemon_drivers(env).get(nic) == "e1000e", "iovirtd sees 03:00.0 on e1000e")
        # 03:00.0 leaves e1000e, and its uevent is lost
        env.faults("quiet %s uevents\n" % nic)
        t.ok(env.write(drivers + "/e1000e/unbind", nic) == "ok" and env.driver(nic) is None,
             "03:00.0 unbound behind iovirtd's back, with no uevent")
        # later events are applied, and the lost one stays lost: without a
        # resync, iovirtd would never know
        env.write(drivers + "/xhci_hcd/unbind", usb)
        seen = harness.wait_until(lambda: daemon_drivers(env).get(usb) == "")
        env.write(drivers + "/xhci_hcd/bind", usb)
        seen = seen and harness.wait_until(lambda: daemon_drivers(env).get(usb) == "xhci_hcd")
        t.ok(seen and daemon_drivers(env).get(nic) == "e1000e",
             "two later uevents (00:14.0 unbound, bound) are applied, and iovirtd still has 03:00.0 on e1000e",
             daemon_drivers(env))

        marker = os.path.join(env.tb, "emulator/overflowed")
        signals = Signals(env)
        harness.wait_until(signals.ready.is_set)     # subscribed before the overflow, so nothing is missed
        env.faults("overflow monitor uevents\n")
        env.write(drivers + "/xhci_hcd/unbind", usb)
        resynced = harness.wait_until(lambda: daemon_drivers(env).get(nic) == "")
        view = daemon_drivers(env)
        try:
            with open(marker) as f:
                who = f.read().split()
        except FileNotFoundError:
            who = []                      # the emulator never overflowed anyone
        t.ok(who and int(who[0]) == env.daemon.pid, "the emulator made iovirtd's udev monitor overflow (ENOBUFS)",
             who)
        t.ok(resynced and view.get(usb) == "" and env.snapshot()["0000:03:00.0"][0] is None,
             "after the overflow iovirtd read the host again: 03:00.0 without a driver, 00:14.0 unbound", view)
        changed = "DeviceChanged ('%s', '', %d)" % (nic, env.group_of(nic))
        try:
            t.ok(signals.ready.is_set() and harness.wait_until(lambda: any(changed in x for x in signals.lines)),
                 "the resync announces what the lost uevent would have: %s" % changed, signals.lines)
        finally:
            signals.close()
        log = env.log()
        t.ok(re.search(r"udev.*(overflow|ENOBUFS).*lost", log) and "Re-reading the host" in log,
             "the log says the monitor overflowed, events were lost, and the host was read again",
             log[-3000:])
        rc, out, err = env.ctl("--json", "list-groups")
        t.ok(rc == 0 and serving(env), "iovirtd keeps serving", err)

        # the host put back; the overflow is once: the next uevent is applied as usual
        env.faults("")
        env.write(drivers + "/e1000e/bind", nic)
        env.write(drivers + "/xhci_hcd/bind", usb)
        t.ok(harness.wait_until(lambda: daemon_drivers(env).get(nic) == "e1000e" and
                                daemon_drivers(env).get(usb) == "xhci_hcd"),
             "the uevents after it are applied one by one again", daemon_drivers(env))
    finally:
        env.close()


# ---- polkitd going away ----

start_polkit_mock = harness.start_polkit_mock
polkit_call = harness.polkit_mock_call


def as_nobody(env, *args):
    return subprocess.Popen(harness.NOBODY + harness.GDBUS_CALL + ["--method", "org.iovirt1.Manager." + args[0]] +
                            list(args[1:]), env=env.bus.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def polkit_gone():
    env = Env("desktop")
    mock = None
    try:
        mock = start_polkit_mock(env)
        held = os.path.join(env.root, "polkit-held")
        # CheckAuthorization that never answers: the mock's main loop stops in it
        code = "open(%r, 'a').write('x')\nimport time\ntime.sleep(3600)\nret = (True, False, {})\n" % held
        p = polkit_call(env, "AddMethod", "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization",
                        "(sa{sv})sa{ss}us", "(bba{ss})", code)
        t.ok(p.returncode == 0, "the polkit mock takes CheckAuthorization and never answers", p.stderr)
        before = (env.snapshot(), env.records())
        callers = [as_nobody(env, "Assign", "04:00.0", "vm-nobody", "[]", "true"),
                   as_nobody(env, "Release", "03:00.0", "true")]
        # the second is refused before polkit (not assigned): answered at once
        asked = harness.wait_until(lambda: os.path.exists(held), timeout=60)
        t.ok(asked, "nobody's Assign is waiting for polkit")
        rc, out, err = env.ctl("--json", "list-groups")
        t.ok(rc == 0, "meanwhile iovirtd answers others", err)
        t0 = time.monotonic()
        mock.kill()
        mock.wait(10)
        out, err = callers[0].communicate(timeout=60)
        took = time.monotonic() - t0
        name, msg = error_of((callers[0].returncode, out, err))
        print("# polkitd killed: the waiting caller was answered %.3f s later: %s" % (took, msg))
        t.ok(name == "org.iovirt1.Error.NotAuthorized" and "polkit" in msg and "org.iovirt1.assign" in msg and
             re.search(r"disconnected|went away|gone", msg) and took < 10 * harness.testwrap.SLOW,
             "polkitd killed mid-check: the caller is answered NotAuthorized, naming polkit and why, at once "
             "(%.2f s, not a 25 s D-Bus timeout)" % took, (took, msg))
        out, err = callers[1].communicate(timeout=60)
        name, msg = error_of((callers[1].returncode, out, err))
        t.ok(name == "org.iovirt1.Error.NotAssigned", "the release refused before polkit was answered as such",
             msg)
        t.ok((env.snapshot(), env.records()) == before and serving(env),
             "nothing changed on the host or in the records, and iovirtd serves")
        log = env.log()
        t.ok("Denied Assign" in log, "the denial is logged", log[-2000:])

        # the next polkit is asked, and says yes
        mock = start_polkit_mock(env)
        polkit_call(env, "SetAllowed", "['org.iovirt1.assign']")
        out, err = as_nobody(env, "Assign", "04:00.0", "vm-nobody", "[]", "false").communicate(timeout=120)
        t.ok(env.driver("0000:04:00.0") == "vfio-pci" and
             any(r["consumer"] == "vm-nobody" for r in env.records().values()),
             "a new polkitd answers the next call: nobody's Assign of 04:00.0 goes through", out + err)
        rc, out, err = env.ctl("release", "04:00.0")
        t.ok(rc == 0 and env.snapshot() == before[0], "root gives 04:00.0 back", out + err)

        # and with none at all: denied, naming why
        mock.kill()
        mock.wait(10)
        mock = None
        out, err = as_nobody(env, "Assign", "04:00.0", "vm-nobody", "[]", "false").communicate(timeout=120)
        name, msg = error_of((1, out, err))
        t.ok(name == "org.iovirt1.Error.NotAuthorized" and "polkit is not running" in msg and
             env.snapshot() == before[0], "polkitd gone for good: the next call is denied, polkit is not running",
             msg)
        t.ok(serving(env), "iovirtd is still up")
    finally:
        if mock:
            mock.kill()
            mock.wait(10)
        env.close()


def main():
    if os.environ.get("IOVIRT_FAULTS_NAMESPACE") != "1":
        if os.geteuid() != 0:
            print("1..0 # SKIP needs root (mounts a tmpfs in a mount namespace of its own)")
            return 0
        os.environ["IOVIRT_FAULTS_NAMESPACE"] = "1"
        # a private mount namespace: every mount goes with the process
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable] + sys.argv)
    t0 = time.monotonic()
    state_dir_full()
    state_dir_read_only()
    sriov_persist()
    udev_overflow()
    polkit_gone()
    print("# %.1f s" % (time.monotonic() - t0))
    return t.done()


sys.exit(main())
