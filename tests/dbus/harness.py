"""A private system bus and iovirtd on it, for the daemon tests and benchmarks."""

import os
import socket
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = "libumockdev-preload.so.0"


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
        env.update(UMOCKDEV_DIR=testbed, IOVIRT_ROOT=testbed, LD_PRELOAD=preload,
                   STATE_DIRECTORY=os.path.join(os.path.dirname(testbed), "state"))
    wrapper = extra.pop("wrapper", [])
    env.update(extra)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(notify)
    s.settimeout(60)
    log = open(os.path.join(bus.dir, "iovirtd.log"), "a")
    p = subprocess.Popen(wrapper + [iovirtd, "--debug"], env=bus.env(**env), stderr=log, text=True)
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
            self.daemon.wait(10)
        if self.bus:
            self.bus.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        return False
