#!/usr/bin/env python3
"""test-emulate.py IOVIRT_EMULATE IOVIRTD IOVIRTCTL KERNEL_EMU: data/iovirt-emulate
--daemon, with the real dbus-daemon, iovirtd, kernel-behaviour emulator and
iovirtctl.  TAP output.

  - an assignment tried as the README shows it: assigned, listed, released,
    through iovirtd (COMMAND runs outside the umockdev preload);
  - after every run, nothing is left: no process that carries the run's
    private TMPDIR in its environment or command line (every process the
    script starts inherits it), and no folder in that TMPDIR;
  - COMMAND's exit status is passed through; a COMMAND that is not there;
  - an iovirtd that fails, or never gets ready: its log shown, COMMAND not
    run; an emulator that is not built: refused, saying how to build it;
  - SIGTERM while iovirtd starts and while COMMAND runs, Ctrl-C (SIGINT to
    the process group) while COMMAND runs, Ctrl-C in the shell on a terminal
    (the shell keeps the emulated host);
  - the shell, reading commands from stdin, and its exit status;
  - as a user other than root: root of a user namespace of one's own, or a
    refusal that says why;
  - the default iovirtd is the build's, and says so; the mode without
    --daemon is unchanged.
What the script does is read from its output; only another process's exec
(COMMAND becoming sleep) is looked at repeatedly, with a deadline."""

import atexit
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402

EMULATE, IOVIRTD, IOVIRTCTL, EMU = (os.path.abspath(a) for a in sys.argv[1:5])
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
WAIT = 120      # seconds a run may take before the check fails

t = Tap()
scratch = tempfile.mkdtemp(prefix="iovirt-test-emulate.")    # fakes and fifos: never in TMP below
atexit.register(shutil.rmtree, scratch, True)
TMP = os.path.join(scratch, "tmp")                            # the TMPDIR of every run
os.makedirs(TMP)
os.chmod(scratch, 0o755)
os.chmod(TMP, 0o777)


def env(**extra):
    e = dict(os.environ, TMPDIR=TMP, IOVIRTD=IOVIRTD, IOVIRT_KERNEL_EMU=EMU, SHELL="/bin/sh", LC_ALL="C",
             COLUMNS="200", PATH=os.path.dirname(IOVIRTCTL) + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    for k, v in extra.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def processes():
    """Every process that carries TMP in its environment or command line,
    as (pid, comm)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            seen = b""
            for name in ("environ", "cmdline"):
                with open("/proc/%s/%s" % (pid, name), "rb") as f:
                    seen += f.read()
            with open("/proc/%s/comm" % pid) as f:
                name = f.read().strip()
        except OSError:
            continue
        if os.fsencode(TMP) in seen:
            found.append((int(pid), name))
    return found


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def wait_for(cond):
    """For what another process does on its own time: COND, looked at until WAIT s have passed."""
    end = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def leftovers():
    """What a run left behind: processes and folders; nothing is the answer."""
    return {"processes": processes(), "folders": sorted(os.listdir(TMP))}


def clean():
    """After a failed check: what was left, removed, so the next check starts clean."""
    for pid, _ in processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for name in os.listdir(TMP):
        shutil.rmtree(os.path.join(TMP, name), ignore_errors=True)


def nothing_left(what):
    left = leftovers()
    ok = t.ok(left == {"processes": [], "folders": []}, what + ": no process and no folder left", left)
    if not ok:
        clean()
    return ok


def run(*args, stdin=None, **extra):
    p = subprocess.run([EMULATE] + list(args), env=env(**extra), input=stdin, capture_output=True, text=True,
                       timeout=WAIT)
    return p.returncode, p.stdout, p.stderr


class Running:
    """iovirt-emulate in the background; line() reads its stdout with a deadline."""

    def __init__(self, *args, session=False, **extra):
        self.p = subprocess.Popen([EMULATE] + list(args), env=env(**extra), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=session)

    def line(self):
        if select.select([self.p.stdout], [], [], WAIT)[0]:
            return self.p.stdout.readline().decode().strip()
        return "(nothing within %d s)" % WAIT

    def finish(self):
        try:
            out, err = self.p.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        return self.p.returncode, out.decode(), err.decode()


def fake_iovirtd(name, body):
    path = os.path.join(scratch, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return path


def fifo(name):
    """A fifo, open for reading and writing: a writer never blocks, a reader
    never sees the end of it."""
    path = os.path.join(scratch, name)
    os.mkfifo(path)
    return path, os.open(path, os.O_RDWR)


def read_line(fd):
    """The first line written to FD, or None after WAIT s."""
    end, data = time.monotonic() + WAIT, b""
    while b"\n" not in data:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        data += os.read(fd, 4096)
    return data.decode().split("\n", 1)[0]


# An assignment tried as the README shows it, and nothing left after it
MARK = "----"
rc, out, err = run("--daemon", "desktop", "sh", "-c",
                   "iovirtctl assign 03:00.0 --to vm1 && echo %s && iovirtctl --json list-assignments && echo %s && "
                   "iovirtctl release --consumer vm1 && echo %s && iovirtctl --json list-assignments" % ((MARK,) * 3))
parts = out.split(MARK + "\n")
t.ok(rc == 0 and len(parts) == 4, "--daemon desktop: assign, list-assignments, release and list-assignments all succeed", out + err)
if len(parts) == 4:
    t.ok("Assigned group" in parts[0] and "to vm1" in parts[0] and "e1000e -> vfio-pci" in parts[0],
         "assign 03:00.0 --to vm1: the NIC goes to vfio-pci", parts[0])
    try:
        status, after = json.loads(parts[1]), json.loads(parts[3])
    except ValueError as e:
        status = after = {"error": str(e)}
    a = status.get("assignments") or [{}]
    t.ok(len(a) == 1 and a[0].get("consumer") == "vm1" and a[0].get("phase") == "assigned" and
         [(f.get("address"), f.get("driver"), f.get("original_driver")) for f in a[0].get("functions", [])] ==
         [("0000:03:00.0", "vfio-pci", "e1000e")], "--json list-assignments lists it: vm1, 0000:03:00.0 on vfio-pci", parts[1])
    t.ok(parts[2].startswith("Released group") and "vm1" in parts[2] and "0000:03:00.0" in parts[2],
         "release --consumer vm1 gives it back", parts[2])
    t.ok(after.get("assignments") == [], "and list-assignments lists nothing after it", parts[3])
t.ok("iovirtd: %s ($IOVIRTD)" % IOVIRTD in err and "kernel emulator: %s" % EMU in err and
     "reading the host directly" not in err, "it says which iovirtd and emulator it runs; iovirtctl asked iovirtd",
     err)
nothing_left("after the round trip")

rc, out, err = run("--daemon", "desktop", "sh", "-c",
                   'echo "${UMOCKDEV_DIR-none} ${IOVIRT_ROOT-none} ${LD_PRELOAD-none}"; '
                   'grep -c -e umockdev -e kernel-emu /proc/self/maps; echo "$DBUS_SYSTEM_BUS_ADDRESS"')
lines = out.splitlines()
t.ok(rc == 0 and lines[:2] == ["none none none", "0"] and lines[2].startswith("unix:path=" + TMP),
     "COMMAND runs outside the preload, with DBUS_SYSTEM_BUS_ADDRESS on the private bus", out + err)
nothing_left("after that")

# The check for processes sees what it is meant to see
r = Running("--daemon", "desktop", "sh", "-c", "echo $$; exec sleep 600")
up = r.line()
sleeping = up.isdigit() and wait_for(lambda: comm(int(up)) == "sleep")
found = processes()
during = {name for _, name in found}
netns = {name: os.readlink("/proc/%d/ns/net" % pid) for pid, name in found if name in ("iovirtd", "sleep")}
os.kill(r.p.pid, signal.SIGTERM)
rc, out, err = r.finish()
t.ok(sleeping and {"iovirtd", "dbus-daemon", "sleep"} <= during,
     "while COMMAND runs, the check finds iovirtd, dbus-daemon and COMMAND", (up, during, err))
if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode:
    t.skip("iovirtd has a network namespace of its own", "no network namespaces here")
else:
    t.ok(len(netns) == 2 and netns["iovirtd"] != netns["sleep"] and netns["sleep"] == os.readlink("/proc/self/ns/net"),
         "iovirtd has a network namespace of its own (this machine's interfaces are not the emulated host's); "
         "COMMAND keeps this machine's", netns)
t.ok(rc == 143 and "iovirtd ended" not in err, "SIGTERM while COMMAND runs: passed on to COMMAND, whose status "
     "(143) is passed through; iovirtd stops cleanly", (rc, err))
nothing_left("after SIGTERM while COMMAND runs")

# Ctrl-C: SIGINT to the whole process group, as a terminal sends it
r = Running("--daemon", "desktop", "sh", "-c", "echo $$; exec sleep 600", session=True)
up = r.line()
sleeping = up.isdigit() and wait_for(lambda: comm(int(up)) == "sleep")
os.killpg(r.p.pid, signal.SIGINT)
rc, out, err = r.finish()
t.ok(sleeping and rc == 130 and "iovirtd ended" not in err,
     "Ctrl-C while COMMAND runs: COMMAND's status (130) is passed through, iovirtd (in a session of its own) "
     "is stopped by the teardown", (up, rc, err))
nothing_left("after Ctrl-C")

# Exit statuses
rc, out, err = run("--daemon", "desktop", "sh", "-c", "exit 7")
t.ok(rc == 7, "COMMAND's exit status is passed through (7)", (rc, err))
nothing_left("after exit 7")
rc, out, err = run("--daemon", "desktop", "no-such-command-here")
t.ok(rc == 127 and "no-such-command-here" in err, "a COMMAND that is not there: 127, named", (rc, err))
nothing_left("after a COMMAND that is not there")

# The shell
rc, out, err = run("--daemon", "desktop", stdin="iovirtctl list-groups; exit 3\n")
t.ok(rc == 3 and "0000:03:00.0" in out and "e1000e" in out and "reading the host directly" not in err and
     "a shell on the emulated host 'desktop'" in err,
     "no COMMAND: a shell there, reading commands from stdin; list-groups through iovirtd; its exit status (3)",
     out + err)
nothing_left("after the shell")

# On a terminal: Ctrl-C goes to the shell's process group, which keeps the host
pid, fd = pty.fork()
if pid == 0:
    os.execve(EMULATE, [EMULATE, "--daemon", "desktop"], env())
seen = b""


def expect(what, since):
    """Reads the terminal until WHAT appears after offset SINCE; the offset past it."""
    global seen
    end = time.monotonic() + WAIT
    while seen.find(what, since) < 0:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        try:
            data = os.read(fd, 65536)
        except OSError:         # EIO: the terminal's other end has closed
            data = b""
        if not data:
            return None
        seen += data
    return seen.find(what, since) + len(what)


PROMPT = b"[iovirt-emulate desktop] $ "
at = expect(PROMPT, 0)
steps = []
if at is not None:
    os.write(fd, b"echo RE''ADY\n")           # (the echo of what was typed does not match)
    at = expect(b"READY", at)
    steps.append(at is not None and expect(PROMPT, at))
if steps and steps[-1]:
    os.write(fd, b"sh -c 'echo SLE\"\"EPING; exec sleep 600'\n")
    at = expect(b"SLEEPING", steps[-1])
    os.write(fd, b"\x03")                       # Ctrl-C: interrupts sleep, not the shell nor iovirtd
    at = at is not None and expect(PROMPT, at)
    steps.append(at)
if steps and steps[-1]:
    os.write(fd, b"iovirtctl status; echo ST''ATUS $?; exit 4\n")
    steps.append(expect(b"STATUS 0", steps[-1]))
    expect(b"\0", 0)                           # (nothing: reads until the terminal closes)
done, wstatus = os.waitpid(pid, os.WNOHANG)
if not done:
    os.kill(pid, signal.SIGTERM)
    done, wstatus = os.waitpid(pid, 0)
os.close(fd)
text = seen.decode(errors="replace")
t.ok(len(steps) == 3 and all(steps) and "not running" not in text and
     os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == 4,
     "on a terminal: the prompt says where it is; Ctrl-C stops a command there and leaves the shell and "
     "iovirtd; exit's status (4) is passed through", text[-3000:])
nothing_left("after the shell on a terminal")

# An iovirtd that fails, and one that never gets ready
touched = os.path.join(scratch, "command-ran")
failing = fake_iovirtd("iovirtd-fails", 'echo "fake iovirtd: cannot set up" >&2\nexit 3')
rc, out, err = run("--daemon", "desktop", "touch", touched, IOVIRTD=failing)
t.ok(rc == 1 and "ended with status 3" in err and "fake iovirtd: cannot set up" in err and
     not os.path.exists(touched), "an iovirtd that fails to start: its status and log shown, COMMAND not run, "
     "status 1", (rc, err))
nothing_left("after an iovirtd that fails")

started, started_fd = fifo("started")
hanging = fake_iovirtd("iovirtd-hangs", 'echo "fake iovirtd: never ready" >&2\necho started >"%s"\nexec sleep 600'
                       % started)
r = Running("--daemon", "desktop", "touch", touched, IOVIRTD=hanging)
got = read_line(started_fd)
os.close(started_fd)
os.kill(r.p.pid, signal.SIGTERM)
rc, out, err = r.finish()
t.ok(got == "started" and rc == 143 and "fake iovirtd: never ready" in err and not os.path.exists(touched),
     "SIGTERM while iovirtd starts: stopped at once (143), its log shown, COMMAND not run", (got, rc, err))
nothing_left("after SIGTERM while iovirtd starts")

rc, out, err = run("--daemon", "desktop", "true", IOVIRT_KERNEL_EMU=os.path.join(scratch, "libkernel-emu.so"))
t.ok(rc == 1 and "no kernel-behaviour emulator" in err and "meson compile" in err,
     "no emulator built: refused, saying how to build it", err)
nothing_left("after a refusal for want of the emulator")

rc, out, err = run("--daemon", "no-such-host", "true")
t.ok(rc == 2 and "no-such-host" in err and "desktop" in err, "an unknown host: exit 2, the hosts listed", err)
nothing_left("after an unknown host")

# Another user
if os.geteuid() != 0:
    t.skip("as nobody: root of a user namespace of one's own", "not root, cannot become nobody")
    t.skip("as nobody without user namespaces: refused", "not root")
elif subprocess.run(NOBODY + ["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode:
    t.skip("as nobody: root of a user namespace of one's own", "no user namespaces here")
    t.skip("as nobody without user namespaces: refused", "no user namespaces here")
else:
    plain = os.path.dirname(IOVIRTCTL) + ":/usr/local/bin:/usr/bin:/bin"    # (nobody may not read root's PATH)
    p = subprocess.run(NOBODY + [EMULATE, "--daemon", "desktop", "sh", "-c",
                                 "id -u && iovirtctl assign 03:00.0 --to vm1 && iovirtctl release --consumer vm1"],
                       env=env(HOME=TMP, PATH=plain), capture_output=True, text=True, timeout=WAIT)
    t.ok(p.returncode == 0 and p.stdout.startswith("0\n") and "Assigned group" in p.stdout and
         "Released group" in p.stdout and "user namespace" in p.stderr,
         "as nobody: root of a user namespace of one's own, and the assignment works", p.stdout + p.stderr)
    nothing_left("after a run as nobody")
    bin_dir = os.path.join(scratch, "bin")
    os.makedirs(bin_dir)
    fake_iovirtd(os.path.join("bin", "unshare"), "exit 1")
    p = subprocess.run(NOBODY + [EMULATE, "--daemon", "desktop", "true"],
                       env=env(HOME=TMP, PATH=bin_dir + ":/usr/bin:/bin"), capture_output=True, text=True,
                       timeout=WAIT)
    t.ok(p.returncode == 1 and "needs root, or user namespaces" in p.stderr,
         "as nobody without user namespaces: refused, saying why", p.stderr)
    nothing_left("after that refusal")

# The defaults
if os.path.realpath(IOVIRTD) == os.path.realpath(os.path.join(SOURCE, "build", "daemon", "iovirtd")) and \
   os.path.realpath(EMU) == os.path.realpath(os.path.join(SOURCE, "build", "tests", "emulator", "libkernel-emu.so")):
    rc, out, err = run("--daemon", "desktop", "true", IOVIRTD=None, IOVIRT_KERNEL_EMU=None)
    t.ok(rc == 0 and "(the build of this source tree)" in err, "without $IOVIRTD: the build's iovirtd, named", err)
    nothing_left("with the defaults")
else:
    t.skip("without $IOVIRTD: the build's iovirtd, named", "the build folder is not build/ of the source tree")

rc, out, err = run("desktop", "sh", "-c", 'ls /sys/bus/pci/devices; test -d "$UMOCKDEV_DIR"')
t.ok(rc == 0 and "0000:03:00.0" in out.split(), "without --daemon: COMMAND under the preload, as before", out + err)
nothing_left("without --daemon")

sys.exit(t.done())
