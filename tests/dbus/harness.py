"""A private system bus and iovirtd on it, for the daemon tests and benchmarks."""

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOSTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts")
if os.path.realpath(HOSTS_DIR) not in map(os.path.realpath, sys.path):
    sys.path.append(HOSTS_DIR)
import wrapper as testwrap  # noqa: E402   IOVIRT_TEST_WRAPPER (meson test --setup valgrind)

# iovirtd under the wrapper: its errors fail the test at exit, whoever stopped it
testwrap.judge_at_exit()

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = "libumockdev-preload.so.0"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
GDBUS_CALL = ["gdbus", "call", "--system", "--dest", "org.iovirt1", "--object-path", "/org/iovirt1"]
if testwrap.active():
    # a call's reply waits as long as the wrapped iovirtd is slower (gdbus's own bound is 25 s)
    GDBUS_CALL += ["--timeout", str(25 * testwrap.SLOW)]


class Bus:
    def __init__(self, root):
        self.dir = os.path.join(root, "bus")
        os.makedirs(self.dir)
        os.chmod(root, 0o755)
        os.chmod(self.dir, 0o755)
        sock = os.path.join(self.dir, "system_bus_socket")
        conf = os.path.join(self.dir, "system.conf")
        with open(os.path.join(HERE, "system-bus.conf.in")) as f:
            text = f.read().replace("@SOCKET@", sock).replace(
                "@POLICY@", os.path.join(HERE, "..", "..", "data", "dbus-1", "system.d", "org.iovirt1.conf"))
        with open(conf, "w") as f:
            f.write(text)
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip()     # printed once it listens
        os.chmod(sock, 0o777)

    def env(self, **extra):
        e = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address, LC_ALL="C")
        e.update(extra)
        return e

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


LIBVIRT_TEST_URI = "test://" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "libvirt-host.xml")


def start_iovirtd(iovirtd, bus, testbed, preload=PRELOAD, **extra):
    """Starts iovirtd and waits for READY=1 on a notify socket of our own.
    On an emulated host its state lives beside the testbed (never in
    /var/lib/iovirt); with testbed None it reads the real /sys, and the
    caller names STATE_DIRECTORY."""
    notify = os.path.join(bus.dir, "notify")
    if os.path.exists(notify):
        os.unlink(notify)
    env = dict(NOTIFY_SOCKET=notify)
    if testbed:
        # libvirt too is emulated: the test driver with the domains of libvirt-host.xml
        env.update(UMOCKDEV_DIR=testbed, IOVIRT_ROOT=testbed, LD_PRELOAD=preload,
                   STATE_DIRECTORY=os.path.join(os.path.dirname(testbed), "state"), IOVIRT_LIBVIRT_URI=LIBVIRT_TEST_URI)
    wrapper = extra.pop("wrapper", [])
    if testwrap.active() and "IOVIRT_SRIOV_TIMEOUT" not in os.environ:
        # SetVfs waits for the VFs' uevents, which the wrapped iovirtd reads that much slower
        # (a test that names its own bound keeps it)
        env["IOVIRT_SRIOV_TIMEOUT"] = str(min(3600, 60 * testwrap.SLOW))
    env.update(extra)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(notify)
    s.settimeout(60 * testwrap.SLOW)
    log = open(os.path.join(bus.dir, "iovirtd.log"), "a")
    # the test's own wrapper (unshare ...), then IOVIRT_TEST_WRAPPER's, right before iovirtd
    p = subprocess.Popen(wrapper + testwrap.prefix("iovirtd") + [iovirtd, "--debug"],
                         env=bus.env(**env), stderr=log, text=True)
    testwrap.started(p)
    p.log_path = log.name
    try:
        while b"READY=1" not in s.recv(4096):
            pass
    except socket.timeout:
        p.kill()
        p.wait()
        raise SystemExit("iovirtd did not become ready: " + open(p.log_path).read())
    finally:
        s.close()
    return p


class Daemon:
    """with Daemon(iovirtd, host) as (bus, daemon, testbed): a private bus
    and iovirtd on the emulated HOST (a testbed.Host), torn down after."""

    def __init__(self, iovirtd, host, preload=PRELOAD, **extra):
        self.iovirtd, self.host, self.preload, self.extra = iovirtd, host, preload, extra

    def __enter__(self):
        import tempfile
        self.root = tempfile.mkdtemp(prefix="iovirt-daemon.")
        self.bus = self.daemon = None
        try:
            testbed = os.path.join(self.root, "testbed")
            os.makedirs(testbed)
            self.host.write(testbed)
            self.bus = Bus(self.root)
            self.daemon = start_iovirtd(self.iovirtd, self.bus, testbed, self.preload, **self.extra)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.bus, self.daemon, testbed

    def __exit__(self, *exc):
        import shutil
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(10 * testwrap.SLOW)
        if self.bus:
            self.bus.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        return False


class Env:
    """A private bus, an emulated host (HOST: a name in tests/hosts/hosts.py
    or a testbed.Host) whose sysfs behaves like the kernel's (EMU, the
    kernel-behaviour emulator), and iovirtd on it; restartable.  WRITER is
    tests/emulator/sysfs-write, for writing to sysfs as a third party."""

    def __init__(self, iovirtd, iovirtctl, emu, writer, host, **extra):
        from hosts import HOSTS
        self.iovirtd, self.iovirtctl, self.writer = iovirtd, iovirtctl, writer
        self.preload = emu + " " + PRELOAD
        self.root = tempfile.mkdtemp(prefix="iovirt-env.")
        self.tb = os.path.join(self.root, "testbed")
        self.state = os.path.join(self.root, "state")
        self.hostdesc = HOSTS[host]() if isinstance(host, str) else host
        self.hostdesc.write(self.tb)
        self.bus = Bus(self.root)
        self.extra = extra
        self.daemon = None
        self.start()

    def start(self, **extra):
        env = dict(self.extra)
        env.update(extra)
        self.daemon = start_iovirtd(self.iovirtd, self.bus, self.tb, self.preload, **env)

    def stop(self):
        """SIGTERM; iovirtd finishes its running transactions first (a
        libvirt call is bounded by IOVIRT_LIBVIRT_TIMEOUT), which a loaded
        machine under ASan can stretch"""
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(60 * testwrap.SLOW)

    def close(self):
        self.stop()
        self.bus.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self):
        return open(self.daemon.log_path).read()

    def ctl(self, *args):
        # IOVIRT_TEST_WRAPPER: the CLI's client side, which only the D-Bus tests reach
        p = subprocess.run(testwrap.prefix("iovirtctl") + [self.iovirtctl] + list(args),
                           env=self.bus.env(COLUMNS="200"), capture_output=True, text=True,
                           timeout=120 * testwrap.SLOW)
        return p.returncode, p.stdout, p.stderr

    def call(self, method, *args, user=None):
        """gdbus prints the D-Bus error name, which is what refusals are
        tested on.  user="nobody" calls as uid 65534."""
        p = subprocess.run((NOBODY if user == "nobody" else []) + GDBUS_CALL + [
                           "--method", "org.iovirt1.Manager." + method] + [str(a) for a in args],
                           env=self.bus.env(), capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def assign(self, target, consumer, accept="[]", user=None):
        return self.call("Assign", target, consumer, accept, "false", user=user)

    def faults(self, text):
        """Replaces the emulator's faults at once (rename): a file rewritten
        in place can be read empty mid-way, which lifts every hold."""
        path = os.path.join(self.tb, "emulator/faults")
        with open(path + ".new", "w") as f:
            f.write(text)
        os.rename(path + ".new", path)

    def write(self, path, text):
        return subprocess.run([self.writer, path, text], env=dict(os.environ, UMOCKDEV_DIR=self.tb, LD_PRELOAD=self.preload),
                              capture_output=True, text=True).stdout.strip()

    # the kernel's truth, read from the testbed
    def driver(self, addr):
        link = os.path.join(self.tb, "sys/bus/pci/devices", addr, "driver")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def snapshot(self):
        snap = {}
        devdir = os.path.join(self.tb, "sys/bus/pci/devices")
        for addr in sorted(os.listdir(devdir)):
            with open(os.path.join(devdir, addr, "driver_override")) as f:
                snap[addr] = (self.driver(addr), f.read().strip())
        snap["/dev/vfio"] = sorted(os.listdir(os.path.join(self.tb, "dev/vfio")))
        return snap

    def group_of(self, addr):
        return int(os.path.basename(os.readlink(os.path.join(self.tb, "sys/bus/pci/devices", addr, "iommu_group"))))

    def members(self, group):
        return sorted(os.listdir(os.path.join(self.tb, "sys/kernel/iommu_groups", str(group), "devices")))

    def records(self):
        out = {}
        for name in os.listdir(self.state):
            if re.fullmatch(r"group-\d+\.json", name):
                with open(os.path.join(self.state, name)) as f:
                    out[name] = json.load(f)
        return out


def wait_until(cond, timeout=20.0, step=0.05):
    """cond()'s first true value, polled every step seconds for at most
    timeout (then its last value): a bounded wait on real state"""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


class Stalled:
    """A unix socket that accepts and never answers, until closed: a stalled
    libvirtd (IOVIRT_LIBVIRT_URI=qemu+unix:///system?socket=PATH)"""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.conns = []
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def fault_points(source):
    """(every iovirt_fault_point("...") the C sources below SOURCE reach,
    the points src/iovirt-fault.h lists, in its order): a point added in C
    is crashed at by test-assign.py or test-crash.py without anyone copying
    it, and the list must name each exactly once"""
    used = set()
    for folder in ("src", "daemon"):
        for name in sorted(os.listdir(os.path.join(source, folder))):
            if name.endswith(".c"):
                with open(os.path.join(source, folder, name)) as f:
                    used |= set(re.findall(r'iovirt_fault_point\("([^"]+)"\)', f.read()))
    with open(os.path.join(source, "src", "iovirt-fault.h")) as f:
        listed = re.findall(r'"([a-z]+\.[a-z]+)"', f.read().split("#define IOVIRT_FAULT_POINTS", 1)[1].split("#if", 1)[0])
    return used, listed


class Child:
    """`sleep 600` with RLIMIT_MEMLOCK MEMLOCK (soft, hard), as USER (None:
    ours), on CPUS (None: any).  iovirtd reads
    /proc/PID/{status,stat,cgroup} below the testbed: status and stat are
    links to the real ones; cgroup is ours ("0::/CGROUP"), so that the
    memory cgroup check does not depend on how this machine mounts cgroups
    (a v1 memory controller would make it unknown)."""

    def __init__(self, env, memlock, cgroup="/iovirt-test.slice/vm.scope", cpus=None, user=None):
        self.env = env
        # a plain QEMU of another user: setpriv execs sleep as it, keeping the PID
        # (the limit set before, by prlimit(1) execing on: root cannot prlimit another uid's process here)
        as_user = (["prlimit", "--memlock=%d:%d" % memlock, "setpriv", "--reuid=" + user, "--regid=nogroup",
                    "--clear-groups"] if user else [])
        # not our stdout: a child left behind must not hold the TAP stream open
        self.proc = subprocess.Popen(as_user + (["taskset", "-c", cpus] if cpus else []) + ["sleep", "600"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.dir = os.path.join(env.tb, "proc", str(self.pid))
        try:
            if user:
                # until setpriv has become the user and exec'd sleep (bounded: it is a few syscalls away)
                import pwd
                uid = pwd.getpwnam(user).pw_uid
                wait_until(lambda: open("/proc/%d/comm" % self.pid).read().strip() == "sleep" and
                           os.stat("/proc/%d" % self.pid).st_uid == uid, timeout=10, step=0.01)
            if not user:
                resource.prlimit(self.pid, resource.RLIMIT_MEMLOCK, memlock)     # lowering needs no privilege
            os.makedirs(self.dir)
            for name in ("status", "stat"):
                os.symlink("/proc/%d/%s" % (self.pid, name), os.path.join(self.dir, name))
            with open(os.path.join(self.dir, "cgroup"), "w") as f:
                f.write("0::%s\n" % cgroup)
            # a cgroup2 mount with that cgroup in it (no memory.max yet: no limit)
            fs = os.path.join(env.tb, "sys/fs/cgroup")
            os.makedirs(os.path.join(fs, cgroup.lstrip("/")), exist_ok=True)
            with open(os.path.join(fs, "cgroup.controllers"), "w") as f:
                f.write("cpu memory pids\n")
        except BaseException:
            self.close()
            raise

    @property
    def consumer(self):
        return "pid:%d" % self.pid

    def memlock(self):
        """(soft, hard) of "Max locked memory" in /proc/PID/limits, in bytes"""
        with open("/proc/%d/limits" % self.pid) as f:
            for line in f:
                if line.startswith("Max locked memory"):
                    soft, hard = line[len("Max locked memory"):].split()[:2]
                    return tuple(-1 if v == "unlimited" else int(v) for v in (soft, hard))
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# python-dbusmock's polkitd on the test's system bus (SetAllowed, and the rest of its Mock interface)
POLKIT_MOCK = ["gdbus", "call", "--system", "--dest", "org.freedesktop.PolicyKit1", "--object-path",
               "/org/freedesktop/PolicyKit1/Authority", "--method"]


def start_polkit_mock(env):
    """python-dbusmock's polkitd template, once it owns its name"""
    mock = subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
                            env=env.bus.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["gdbus", "wait", "--system", "--timeout", "60", "org.freedesktop.PolicyKit1"],
                   env=env.bus.env(), check=True, timeout=90)
    return mock


def polkit_mock_call(env, method, *args):
    """METHOD of the mock's org.freedesktop.DBus.Mock interface (SetAllowed...)"""
    return subprocess.run(POLKIT_MOCK + ["org.freedesktop.DBus.Mock." + method] + list(args), env=env.bus.env(),
                          capture_output=True, text=True, timeout=60)
