#!/usr/bin/python3
"""Runs inside the e2e guest (tests/e2e/run-e2e.py boots it): iovirtd and
iovirtctl against a real kernel's /sys, a real dbus-daemon and lspci.

Every assertion is checked against the kernel: /sys/kernel/iommu_groups,
the driver links, /dev/vfio, the VFIO ioctls, lspci. TAP goes to stdout,
which the run script sends to the results share; argv[1] is the config
the host wrote there.
"""

import errno
import fcntl
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

CONFIG = json.load(open(sys.argv[1]))
SOURCE, BUILD, RESULTS = CONFIG["source"], CONFIG["build"], os.path.dirname(sys.argv[1])
sys.path.insert(0, os.path.join(SOURCE, "tests", "hosts"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "dbus"))
from tap import Tap  # noqa: E402
from lspci import disagreements, parse_lspci  # noqa: E402
import harness  # noqa: E402
import verdicts  # noqa: E402

IOVIRTD = os.path.join(BUILD, "daemon", "iovirtd")
IOVIRTCTL = os.path.join(BUILD, "cli", "iovirtctl")
PCI = "/sys/bus/pci/devices"
UDEVD = "/lib/systemd/systemd-udevd"
DEST = ["--dest", "org.iovirt1", "--object-path", "/org/iovirt1", "--method"]
ADDR = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")

tap = Tap()


# ---- the kernel's truth ----

def driver(addr):
    link = os.path.join(PCI, addr, "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def group_of(addr):
    return int(os.path.basename(os.readlink(os.path.join(PCI, addr, "iommu_group"))))


def kernel_groups():
    root = "/sys/kernel/iommu_groups"
    return {int(g): sorted(os.listdir(os.path.join(root, g, "devices"))) for g in os.listdir(root)}


def below(port):
    """the functions on the secondary bus of PORT, the kernel's view"""
    return sorted(d for d in os.listdir(os.path.join(PCI, port)) if ADDR.match(d))


def kernel_bridge(addr):
    """Whether the kernel's function is a bridge, from its config header
    (header type 1 or 2) or, unreadable, the kernel's class (host bridge)."""
    try:
        with open(os.path.join(PCI, addr, "config"), "rb") as f:
            header = f.read(64)
    except OSError:
        header = b""
    with open(os.path.join(PCI, addr, "class")) as f:
        cls = int(f.read(), 16)
    return (len(header) == 64 and (header[0x0e] & 0x7f) in (1, 2)) or (cls >> 8) == 0x0600


def interfaces(addr):
    net = os.path.join(PCI, addr, "net")
    return sorted(os.listdir(net)) if os.path.isdir(net) else []


# ---- VFIO, as QEMU uses it (linux/vfio.h) ----

VFIO_GET_API_VERSION, VFIO_SET_IOMMU, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER = 0x3B64, 0x3B66, 0x3B67, 0x3B68
VFIO_TYPE1v2_IOMMU = 3
VFIO_GROUP_FLAGS_VIABLE = 1


def vfio_open(group):
    """Opens group N into a new type1 container as QEMU does. Returns
    (viable, errno of VFIO_SET_IOMMU or 0)."""
    container = os.open("/dev/vfio/vfio", os.O_RDWR)
    fd = os.open("/dev/vfio/%d" % group, os.O_RDWR)
    try:
        status = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(fd, VFIO_GROUP_GET_STATUS, status, True)
        viable = bool(struct.unpack("II", status)[1] & VFIO_GROUP_FLAGS_VIABLE)
        if not viable:
            return False, 0
        fcntl.ioctl(fd, VFIO_GROUP_SET_CONTAINER, struct.pack("i", container))
        try:
            fcntl.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)
        except OSError as e:
            return True, e.errno
        return True, 0
    finally:
        os.close(fd)
        os.close(container)


# ---- iovirt ----

class Env:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="iovirt-e2e.")
        self.state = os.path.join(self.root, "state")
        self.bus = harness.Bus(self.root)
        self.daemon = None
        self.stops = []             # exit status of each daemon stopped with SIGTERM
        self.defaults = {}          # environment of every later start (a boot's own settings); EXTRA adds to it
        self.policy = None          # a policy.d the test writes, when iovirtd has a root of its own

    def start(self, **extra):
        self.daemon = harness.start_iovirtd(IOVIRTD, self.bus, None, STATE_DIRECTORY=self.state,
                                            **dict(self.defaults, **extra))

    def stop(self):
        """SIGTERM; a daemon that exits unclean (or leaks, under ASan) is noted"""
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(30)
            self.stops.append(self.daemon.returncode)

    def ctl(self, *args):
        p = subprocess.run([IOVIRTCTL] + list(args), env=self.bus.env(COLUMNS="200"), capture_output=True,
                           text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args, codes=(0,)):
        rc, out, err = self.ctl("--json", *args)
        if rc not in codes:
            raise RuntimeError("iovirtctl --json %s: exit %d: %s" % (" ".join(args), rc, err))
        return json.loads(out)

    def call(self, method, *args):
        """gdbus prints the D-Bus error name, which refusals are checked on"""
        p = subprocess.run(["gdbus", "call", "--system"] + DEST + ["org.iovirt1.Manager." + method] +
                           [str(a) for a in args], env=self.bus.env(), capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout + p.stderr

    def log(self):
        with open(self.daemon.log_path) as f:
            return f.read()


def daemon_groups(env):
    """iovirtd's groups, shaped as kernel_groups() returns the kernel's"""
    return {g["group"]: sorted(d["address"] for d in g["devices"]) for g in env.json("list-groups")["groups"]}


def refused(env, name, target, error, *words):
    """Assign TARGET is refused with ERROR naming WORDS, and the kernel's
    driver links of its group do not change."""
    members = kernel_groups()[group_of(target)]
    before = {a: driver(a) for a in members}
    rc, text = env.call("Assign", target, "vm-e2e", "[]", "false")
    after = {a: driver(a) for a in members}
    missing = [w for w in (error,) + words if w not in text]
    tap.ok(rc != 0 and not missing and before == after, "%s is refused (%s)" % (name, error.split(".")[-1]),
           "exit %d, missing %s, drivers %s -> %s\n%s" % (rc, missing, before, after, text))


# ---- scenarios ----

def discovery(env, topo):
    groups = kernel_groups()
    ours = env.json("list-groups")
    got = {g["group"]: sorted(d["address"] for d in g["devices"]) for g in ours["groups"]}
    tap.ok(ours["iommu"] and got == groups, "list-groups equals /sys/kernel/iommu_groups (%d groups)" % len(groups),
           "ours %s\nkernel %s" % (got, groups))
    direct = env.json("--direct", "list-groups")
    tap.ok(direct["groups"] == ours["groups"], "iovirtctl --direct and iovirtd agree on every group")

    tree = {d["address"]: d for d in env.json("tree")["devices"]}
    lspci = subprocess.run(["lspci", "-vvv", "-nn", "-D"], capture_output=True, text=True, timeout=120).stdout
    theirs = parse_lspci(lspci)
    shown = {addr: env.json("show", addr) for addr in tree}
    bad = disagreements(shown, theirs)
    tap.ok(not bad, "show agrees with lspci -vvv on IDs, ACS and SR-IOV for all %d functions" % len(theirs),
           "\n".join(bad))

    ports_with_acs = [a for a in topo["ports"].values() if tree[a]["acs"]]
    tap.ok(len(ports_with_acs) == len(topo["ports"]), "every pcie-root-port carries ACS, as lspci says",
           "without: %s" % sorted(set(topo["ports"].values()) - set(ports_with_acs)))
    sriov = [tree[a]["sriov"] for a in below(topo["ports"]["nvme"])]
    tap.ok(len(sriov) == 1 and sriov[0] and sriov[0]["total_vfs"] == 2,
           "the NVMe controller offers 2 VFs (SR-IOV capability read from config space)", sriov)

    verdict = {g["group"]: g for g in ours["groups"]}

    def isolation(addr):
        return verdict[group_of(addr)]["isolation"]
    nic = below(topo["ports"]["nic"])
    tap.ok(len(nic) == 1 and isolation(nic[0]) == "isolated",
           "a NIC on its own ACS root port is isolated", [(a, isolation(a)) for a in nic])
    multi = below(topo["ports"]["multi"])
    same = len({group_of(a) for a in multi}) == 1
    tap.ok(len(multi) == 2 and same and isolation(multi[0]) == "shared",
           "a two-function endpoint without ACS is one group, shared",
           [(a, group_of(a), isolation(a)) for a in multi])
    up = below(topo["ports"]["switch"])
    downs = below(up[0]) if len(up) == 1 else []
    behind = [a for d in downs for a in below(d)]
    tap.ok(len(behind) == 2 and len({group_of(a) for a in behind}) == 2,
           "the kernel gives each switch downstream port's subtree its own group", [(a, group_of(a)) for a in behind])
    leaky = [a for a in behind if isolation(a) == "leaky"]
    causes = " ".join(str(verdict[group_of(a)]["causes"]) for a in behind)
    tap.ok(len(leaky) == 2 and all(d in causes for d in downs),
           "endpoints below downstream ports without ACS are leaky, naming the ports",
           [(a, isolation(a), verdict[group_of(a)]["causes"]) for a in behind])
    verdict_words(env, ours, groups)


def verdict_words(env, ours, groups):
    """The words keep their promise on the kernel's own groups: a group of
    bridges only (the kernel's header types) is bridges and nothing else
    is; the host bridge's group is one; and the rules of verdicts.py hold
    for every group, in list-groups, tree and show, through iovirtd."""
    only_bridges = sorted(g for g, members in groups.items() if all(kernel_bridge(a) for a in members))
    said = sorted(g["group"] for g in ours["groups"] if g["isolation"] == "bridges")
    tap.ok(only_bridges and said == only_bridges,
           "the groups the kernel gives only bridges are bridges, and no other (%d)" % len(said),
           "bridges only: %s\nsaid bridges: %s" % (only_bridges, said))
    host_bridges = [a for a in os.listdir(PCI) if int(open(os.path.join(PCI, a, "class")).read(), 16) >> 8 == 0x0600]
    words = {a: [g["isolation"] for g in ours["groups"] if g["group"] == group_of(a)] for a in host_bridges}
    tap.ok(host_bridges and all(w == ["bridges"] for w in words.values()),
           "the host bridge's group is bridges, not isolated", words)

    def show(addr):
        rc, out, err = env.ctl("show", addr)
        return out if rc == 0 else "exit %d: %s" % (rc, err)
    _, table, _ = env.ctl("list-groups")
    _, tree, _ = env.ctl("tree")
    bad = verdicts.problems(ours, env.json("tree")["devices"], table, tree, show)
    for rule, title in verdicts.RULES:
        tap.ok(not bad[rule], title, bad[rule])


def check_interrupts(env, want):
    checks = {c["id"]: c for c in env.json("check", codes=(0, 1))["checks"]}    # 1: something FAILs
    ir = checks.get("interrupt_remapping", {})
    tap.ok(ir.get("status") == want, "check says %s for interrupt remapping" % want.upper(), ir)
    return ir


def round_trip(env, topo):
    nic = below(topo["ports"]["nic"])[0]
    group = group_of(nic)
    was, names = driver(nic), interfaces(nic)
    tap.ok(was == "e1000e" and names, "the NIC starts on e1000e with an interface", (was, names))
    plan = env.json("assign", nic, "--to", "vm-e2e", "--dry-run")
    tap.ok(plan["allowed"] and [f["address"] for f in plan["functions"]] == [nic] and driver(nic) == was,
           "--dry-run plans the NIC's group and changes nothing", plan)
    rc, out, err = env.ctl("assign", nic, "--to", "vm-e2e")
    tap.ok(rc == 0 and driver(nic) == "vfio-pci" and os.path.exists("/dev/vfio/%d" % group),
           "assign: the driver link is vfio-pci and /dev/vfio/%d exists" % group, (rc, out, err, driver(nic)))
    viable, err_no = vfio_open(group)
    tap.ok(viable and err_no == 0, "the group is viable and a type1 container takes it (VFIO_SET_IOMMU)",
           (viable, errno.errorcode.get(err_no)))
    listed = env.json("list-assignments")["assignments"]
    tap.ok([(a["group"], a["consumer"], a["drift"]) for a in listed] == [(group, "vm-e2e", [])],
           "list-assignments shows it, with no drift", listed)
    rc, out, err = env.ctl("release", nic)
    tap.ok(rc == 0 and driver(nic) == was and not os.path.exists("/dev/vfio/%d" % group),
           "release: e1000e is back and /dev/vfio/%d is gone" % group, (rc, out, err, driver(nic)))
    tap.ok(interfaces(nic) != [], "the interface reappears (%s)" % " ".join(interfaces(nic)), interfaces(nic))
    logged = re.findall(re.escape(nic) + r" went to (\S+) in [0-9.]+ ms", env.log())
    tap.ok(logged[-2:] == ["vfio-pci", "e1000e"], "iovirtd logged the kernel's time for both moves", logged)


def whole_groups(env, topo):
    multi = below(topo["ports"]["multi"])
    group = group_of(multi[0])
    rc, out, err = env.ctl("assign", multi[1], "--to", "vm-e2e")
    tap.ok(rc == 0 and [driver(a) for a in multi] == ["vfio-pci", "vfio-pci"],
           "assigning one function of a two-function group moves both", (rc, err, [driver(a) for a in multi]))
    viable, _ = vfio_open(group)
    tap.ok(viable, "the kernel calls the group viable once both are on vfio-pci")
    rc, out, err = env.ctl("release", "group:%d" % group)
    tap.ok(rc == 0 and [driver(a) for a in multi] == ["e1000e", "e1000e"],
           "release gives both back to e1000e", (rc, err, [driver(a) for a in multi]))

    # none: one function is host-critical, so neither moves
    iface = interfaces(multi[1])[0]
    ip(["addr", "add", "198.51.100.7/24", "dev", iface])
    ip(["link", "set", iface, "up"])
    refused(env, "a group whose second function carries an address", multi[0], "org.iovirt1.Error.HostCritical",
            iface, "198.51.100.7")
    ip(["addr", "flush", "dev", iface])
    ip(["link", "set", iface, "down"])


def retries_and_parallel(env, topo):
    """What hooks and orchestrators do: repeat themselves, and act at once"""
    nic = below(topo["ports"]["nic"])[0]
    multi = below(topo["ports"]["multi"])
    rc, out, err = env.ctl("assign", nic, "--to", "vm-e2e")
    node = "/dev/vfio/%d" % group_of(nic)
    ino = os.stat(node).st_ino if rc == 0 and os.path.exists(node) else None
    again = env.json("assign", nic, "--to", "vm-e2e")
    tap.ok(rc == 0 and again["done"] and driver(nic) == "vfio-pci" and os.stat(node).st_ino == ino,
           "assigning the NIC again to its holder: done, nothing moved, the same /dev/vfio node", (rc, err, again))
    rc, out, err = env.ctl("release", "--consumer", "vm-e2e")
    rc2, out2, err2 = env.ctl("release", "--consumer", "vm-e2e")
    tap.ok(rc == 0 and rc2 == 0 and "nothing changed" in out2 and driver(nic) == "e1000e",
           "releasing the consumer twice: the second time says nothing was held", (out, err, out2, err2))

    # two groups at once, each transaction on its own thread, on real sysfs
    procs = [subprocess.Popen([IOVIRTCTL, "assign", target, "--to", "vm-%d" % i], env=env.bus.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, target in enumerate((nic, multi[0]))]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    moved = [driver(a) for a in [nic] + multi]
    tap.ok([r for r, _ in results] == [0, 0] and moved == ["vfio-pci"] * 3,
           "two groups assigned at the same time both land on vfio-pci", (results, moved))
    for i in (0, 1):
        env.ctl("release", "--consumer", "vm-%d" % i)
    moved = [driver(a) for a in [nic] + multi]
    tap.ok(moved == ["e1000e"] * 3 and not env.json("list-assignments")["assignments"],
           "and both go back to e1000e", moved)


def ip(args):
    subprocess.run(["ip"] + args, check=True, capture_output=True, timeout=30)


def host_guard(env, topo):
    root = topo["hostroot"]
    refused(env, "the virtio-9p device under the guest's root", root, "org.iovirt1.Error.HostCritical",
            "mounted at /", "hostroot")
    uplink = below(topo["ports"]["uplink"])[0]
    iface = interfaces(uplink)[0]
    ip(["link", "set", iface, "up"])
    ip(["addr", "add", "10.0.2.15/24", "dev", iface])
    ip(["route", "add", "default", "via", "10.0.2.2", "dev", iface])
    refused(env, "the NIC with the address and the default route", uplink, "org.iovirt1.Error.HostCritical",
            iface, "10.0.2.15", "default route")


def qemu_as_nobody(addr, memlock):
    """QEMU with ADDR as nobody, without CAP_IPC_LOCK, under RLIMIT_MEMLOCK;
    -daemonize returns 0 only once the machine (and its VFIO mappings) is
    up. Returns (exit status, stderr, pid of the running QEMU or None)."""
    import pwd
    import resource
    nobody = pwd.getpwnam("nobody")
    rundir = tempfile.mkdtemp(prefix="qemu.")
    os.chmod(rundir, 0o777)         # nobody writes the pidfile
    pidfile = os.path.join(rundir, "pid")

    def drop():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    p = subprocess.run(["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "64", "-nodefaults",
                        "-display", "none", "-S", "-daemonize", "-pidfile", pidfile, "-device", "vfio-pci,host=" + addr],
                       preexec_fn=drop, capture_output=True, text=True, timeout=120, cwd=rundir)
    pid = int(open(pidfile).read()) if p.returncode == 0 and os.path.exists(pidfile) else None
    return p.returncode, p.stderr.strip(), pid


def gone(pid, seconds=30):
    """waits until PID has exited (a zombie has closed its files)"""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if open("/proc/%d/stat" % pid).read().split(") ", 1)[1].startswith("Z"):
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def real_qemu(env, topo):
    nic = below(topo["ports"]["nic"])[0]
    group = group_of(nic)
    rc, _, err = env.ctl("assign", nic, "--to", "vm-qemu")
    if not tap.ok(rc == 0, "the NIC is assigned for a real QEMU", err):
        return
    # what libvirt does for its unprivileged QEMU: the group's node is the VM user's
    import pwd
    nobody = pwd.getpwnam("nobody")
    os.chown("/dev/vfio/%d" % group, nobody.pw_uid, nobody.pw_gid)
    rc, err, pid = qemu_as_nobody(nic, 16 << 20)
    tap.ok(rc != 0 and "VFIO_MAP_DMA failed: Cannot allocate memory" in err,
           "an unprivileged QEMU with RLIMIT_MEMLOCK 16 MiB cannot map its 64 MiB for the device", (rc, err))
    rc, err, pid = qemu_as_nobody(nic, 1 << 30)
    tap.ok(rc == 0 and pid, "with RLIMIT_MEMLOCK 1 GiB the same QEMU starts with the device", (rc, err))
    if pid:
        os.kill(pid, 9)
        tap.ok(gone(pid), "QEMU exits when killed, closing the group")
    rc, _, err = env.ctl("release", nic)
    tap.ok(rc == 0 and driver(nic) == "e1000e", "release after QEMU: e1000e is back", (rc, err, driver(nic)))


MEMLOCK_64M = (64 << 20) + (1 << 30)    # libvirt's rule for 64 MiB of guest memory and one VFIO group: 1140850688


def memlock_of(pid):
    """RLIMIT_MEMLOCK of PID as /proc/PID/limits shows it: (soft, hard),
    each bytes or "unlimited"; None when PID is gone or the line missing"""
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max locked memory"):
                    soft, hard = line[len("Max locked memory"):].split()[:2]
                    return tuple(int(v) if v.isdigit() else v for v in (soft, hard))
    except OSError:
        pass
    return None


def vm_locked(pid):
    """VmLck of /proc/PID/status in bytes: what VFIO has pinned and
    charged to the process's locked_vm; None when unreadable"""
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^VmLck:\s+(\d+) kB$", f.read(), re.M)
        return int(m.group(1)) << 10 if m else None
    except OSError:
        return None


class WaitingQemu:
    """A process as nobody under RLIMIT_MEMLOCK MEMLOCK (without
    CAP_IPC_LOCK) that waits for a line on its stdin and then execs QEMU
    with ADDR, in the foreground, stopped (-S), with QMP on a socket: its
    PID is QEMU's before QEMU maps anything, so that iovirt can be given
    pid:PID first. start() lets it exec and waits for QMP to answer
    (VFIO maps guest memory while the device is realized, before QMP is
    served: an answer means the mapping held)."""

    def __init__(self, addr, memlock):
        import pwd
        import resource
        nobody = pwd.getpwnam("nobody")
        self.rundir = tempfile.mkdtemp(prefix="qemu.")
        os.chmod(self.rundir, 0o777)        # nobody writes its QMP socket and stderr there
        self.qmp = os.path.join(self.rundir, "qmp")
        self.log = os.path.join(self.rundir, "stderr")

        def drop():
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        qemu = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "64", "-nodefaults",
                "-display", "none", "-S", "-qmp", "unix:%s,server=on,wait=off" % self.qmp,
                "-device", "vfio-pci,host=" + addr]
        with open(self.log, "w") as err:
            os.chmod(self.log, 0o666)
            self.p = subprocess.Popen(["/bin/sh", "-c", 'read go && exec "$@"', "sh"] + qemu, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=err, preexec_fn=drop, cwd=self.rundir)
        self.pid = self.p.pid

    def start(self, seconds=120):
        """execs QEMU; returns (QMP's status, e.g. "prelaunch", or None when
        QEMU exited or did not answer in SECONDS, and QEMU's stderr)"""
        import socket
        self.p.stdin.write(b"go\n")
        self.p.stdin.close()
        end = time.monotonic() + seconds
        status = None
        while status is None and time.monotonic() < end and self.p.poll() is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(max(end - time.monotonic(), 0.1))
                s.connect(self.qmp)
                f = s.makefile("rw")
                f.readline()                                    # the greeting
                for command in ("qmp_capabilities", "query-status"):
                    f.write(json.dumps({"execute": command}) + "\n")
                    f.flush()
                    while True:                                 # events may come first
                        reply = json.loads(f.readline() or "{}")
                        if not reply or "return" in reply or "error" in reply:
                            break
                status = reply.get("return", {}).get("status") if reply else None
            except (OSError, ValueError):
                time.sleep(0.2)                                 # not listening yet
            finally:
                s.close()
        return status, self.stderr()

    def stderr(self):
        with open(self.log, errors="replace") as f:
            return f.read().strip()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(60)


def until(seconds, what):
    """polls WHAT() until it returns something true or SECONDS pass;
    returns its last value"""
    end = time.monotonic() + seconds
    while True:
        got = what()
        if got or time.monotonic() >= end:
            return got
        time.sleep(0.2)


def memlock_raised(env, topo):
    """iovirt raises the RLIMIT_MEMLOCK of a plain QEMU named as pid:PID
    (libvirt's rule), so that the QEMU that failed with 16 MiB above starts;
    and it releases the group by itself once that QEMU exits."""
    import pwd
    nic = below(topo["ports"]["nic"])[0]
    group = group_of(nic)
    node = "/dev/vfio/%d" % group
    titles = ["assign %s --to pid:PID --memory 64M, PID a waiting process as nobody: iovirt binds it to vfio-pci "
              "and %s exists" % (nic, node),
              "its /proc/PID/limits shows Max locked memory %d soft and hard (64 MiB + 1 GiB, libvirt's rule), "
              "raised from 16 MiB" % MEMLOCK_64M,
              "list-assignments lists group %d for pid:PID" % group,
              "the process execs QEMU with the device under the raised limit, and it starts (QMP answers; "
              "VmLck, what VFIO pinned, is above the 16 MiB it was allowed before)",
              "QEMU killed: iovirtd releases group %d by itself (list-assignments no longer lists it, e1000e is "
              "back, %s is gone)" % (group, node),
              "iovirtd gave %s to the process's user, nobody, as libvirt gives it to its QEMU's" % node]
    qemu = WaitingQemu(nic, 16 << 20)
    try:
        pid = qemu.pid
        before = memlock_of(pid)
        rc, out, err = env.ctl("assign", nic, "--to", "pid:%d" % pid, "--memory", "64M")
        if not tap.ok(rc == 0 and driver(nic) == "vfio-pci" and os.path.exists(node), titles[0],
                      (rc, out, err, driver(nic))):
            return fail_all(titles[1:], "the NIC was not assigned to pid:%d" % pid)
        limits = memlock_of(pid)
        tap.ok(before == (16 << 20, 16 << 20) and limits == (MEMLOCK_64M, MEMLOCK_64M), titles[1],
               "before %s, after %s" % (before, limits))
        listed = env.json("list-assignments")["assignments"]
        tap.ok([a["consumer"] for a in listed if a["group"] == group] == ["pid:%d" % pid], titles[2], listed)
        nobody = pwd.getpwnam("nobody")
        owner = os.stat(node).st_uid
        tap.ok(owner == nobody.pw_uid, titles[5], "%s is owned by uid %d" % (node, owner))
        status, stderr = qemu.start()
        locked = vm_locked(pid)
        tap.ok(status == "prelaunch" and locked is not None and locked > 16 << 20, titles[3],
               "QMP status %s, VmLck %s, limits %s\n%s" % (status, locked, memlock_of(pid), stderr))
        qemu.kill()

        def released():
            """the kernel first (cheap), then iovirtd"""
            return (driver(nic) == "e1000e" and not os.path.exists(node) and
                    not [a for a in env.json("list-assignments")["assignments"] if a["group"] == group])
        ok = until(60, released)
        tap.ok(ok, titles[4], "after 60 s: assignments %s, driver %s, %s %s" % (
            env.json("list-assignments")["assignments"], driver(nic), node, os.path.exists(node)))
    finally:
        qemu.kill()
        if driver(nic) == "vfio-pci":
            env.ctl("release", nic)


def converged(addrs, original):
    """every function fully on vfio-pci, or every one back on its driver"""
    now = [driver(a) for a in addrs]
    return now == [original] * len(addrs) or now == ["vfio-pci"] * len(addrs), now


def crash(env, point, target, addrs, original, before=None, want="back", at_kill=None):
    """Kills iovirtd at POINT during an assign (or, with before="assign",
    during the release of an assignment), restarts it, and asks the kernel
    where TARGET's functions are. AT_KILL, if given, looks at the host
    while the daemon is dead."""
    env.stop()
    if before == "assign":
        env.start()
        env.ctl("assign", target, "--to", "vm-crash")
        env.stop()
    env.start(IOVIRT_FAULT=point)
    verb = ["release", target] if before == "assign" else ["assign", target, "--to", "vm-crash"]
    rc, _, _ = env.ctl(*verb)
    try:
        env.daemon.wait(60)
        killed = env.daemon.returncode == -9
    except subprocess.TimeoutExpired:
        killed = False
    mid = [driver(a) for a in addrs]
    if at_kill:
        at_kill(mid)
    env.stop()
    env.start()
    ok, now = converged(addrs, original)
    listed = env.json("list-assignments")["assignments"]
    if want == "back":
        ok = ok and now[0] == original and not listed
    else:
        ok = ok and now[0] == "vfio-pci" and [a["consumer"] for a in listed] == ["vm-crash"]
    tap.ok(killed and ok, "SIGKILL at %s (%s), restart: the kernel's links show %s" % (
        point, " ".join(verb[:1]), "every function back on " + original if want == "back" else "the assignment whole"),
        "killed %s, at the kill %s, after restart %s, assignments %s" % (killed, mid, now, listed))
    if listed:
        env.ctl("release", target)


def crash_safety(env, topo):
    nic = below(topo["ports"]["nic"])[0]
    multi = below(topo["ports"]["multi"])
    crash(env, "assign.unbind", nic, [nic], "e1000e")
    def half_moved(mid):
        viable, _ = vfio_open(group_of(multi[0]))
        tap.ok(mid == ["vfio-pci", "e1000e"] and not viable,
               "half-way, one function on vfio-pci and one on e1000e, the kernel calls the group not viable",
               (mid, viable))
    crash(env, "assign.bound:1", multi[0], multi, "e1000e", at_kill=half_moved)
    crash(env, "assign.bound:2", multi[0], multi, "e1000e")
    crash(env, "assign.commit", nic, [nic], "e1000e", want="assigned")
    crash(env, "release.unbind", nic, [nic], "e1000e", before="assign")


def unsafe_interrupts(env, topo):
    nic = below(topo["ports"]["nic"])[0]
    group = group_of(nic)
    tap.ok("IR-" not in open("/proc/interrupts").read(), "with intremap=off, /proc/interrupts has no IR- domain")
    check_interrupts(env, "fail")
    rc, _, err = env.ctl("assign", nic, "--to", "vm-e2e")
    viable, err_no = vfio_open(group) if rc == 0 else (False, 0)
    tap.ok(rc == 0 and viable and err_no == errno.EPERM,
           "VFIO refuses the container (VFIO_SET_IOMMU: EPERM), as the FAIL said it would",
           (rc, err, viable, errno.errorcode.get(err_no)))
    with open("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "w") as f:
        f.write("1")
    check_interrupts(env, "warn")
    viable, err_no = vfio_open(group)
    tap.ok(viable and err_no == 0, "with allow_unsafe_interrupts=1 VFIO takes the container, and check WARNs",
           errno.errorcode.get(err_no))
    rc, _, err = env.ctl("release", nic)
    tap.ok(rc == 0 and driver(nic) == "e1000e", "release gives the NIC back", err)


class Lines:
    """A process's stdout, read line by line as it comes. The pipe is read
    with os.read and split here: a buffered reader would keep lines that
    select() then cannot see. Each line is kept with the time it was read
    (for timing what a monitor reports)."""

    def __init__(self, cmd, env=None):
        self.p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE)
        self.pending = ""
        self.lines = []             # (monotonic time read, line)
        self.next = 0               # the first line wait_for has not passed yet
        self.read_at = None         # when the line wait_for last returned was read

    def wait_for(self, *words, seconds=60):
        """the first line not passed yet holding every word (passing it and
        those before), or None after SECONDS"""
        import select
        end = time.monotonic() + seconds
        while True:
            for i in range(self.next, len(self.lines)):
                if all(w in self.lines[i][1] for w in words):
                    self.next = i + 1
                    self.read_at = self.lines[i][0]
                    return self.lines[i][1]
            self.next = len(self.lines)
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return None
            now = time.monotonic()
            self.pending += chunk.decode(errors="replace")
            while "\n" in self.pending:
                line, self.pending = self.pending.split("\n", 1)
                self.lines.append((now, line))

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


class Signals(Lines):
    """gdbus monitor on iovirtd's signals"""

    def __init__(self, env):
        super().__init__(["gdbus", "monitor", "--system", "--dest", "org.iovirt1"], env.bus.env())
        self.wait_for("is owned by")        # printed once it is subscribed


def live(env, topo):
    """Real hot-remove and rescan, through the kernel's uevents and udevd:
    iovirtd follows, and its groups stay the kernel's."""
    if not os.path.exists(UDEVD):
        tap.skip("hot-remove and rescan reach iovirtd", "%s is not installed (Debian: udev)" % UDEVD)
        return
    up = below(topo["ports"]["switch"])
    victim = below(below(up[0])[1])[0]
    signals = Signals(env)
    try:
        with open(os.path.join(PCI, victim, "remove"), "w") as f:
            f.write("1")
        seen = signals.wait_for("DeviceRemoved", victim)
        got = daemon_groups(env)
        tap.ok(seen and got == kernel_groups() and not os.path.exists(os.path.join(PCI, victim)),
               "hot-remove of %s: iovirtd signals DeviceRemoved and its groups are the kernel's" % victim,
               (seen, got, kernel_groups()))
        with open("/sys/bus/pci/rescan", "w") as f:
            f.write("1")
        seen = signals.wait_for("DeviceAdded", victim)
        shown = env.json("show", victim)
        if shown["driver"] != driver(victim):   # added before e1000e took it: a DeviceChanged follows
            signals.wait_for("DeviceChanged", victim, seconds=30)
            shown = env.json("show", victim)
        got = daemon_groups(env)
        tap.ok(seen and got == kernel_groups() and shown["driver"] == driver(victim) == "e1000e",
               "rescan: DeviceAdded, and iovirtd has it back in the kernel's group on e1000e",
               (seen, shown.get("driver"), driver(victim), got, kernel_groups()))
    finally:
        signals.close()


def median_seconds(cmd, env=None, runs=5):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=True)
        times.append(time.monotonic() - t0)
    return sorted(times)[runs // 2]


def discovery_speed(env, topo):
    """Reading the host on a real kernel, where each config dword is a config
    transaction: ours against lspci -vvv, for the host to report."""
    speed = {"functions": len(os.listdir(PCI)),
             "iovirtctl_direct": median_seconds([IOVIRTCTL, "--direct", "--json", "list-devices"]),
             "iovirtctl_daemon": median_seconds([IOVIRTCTL, "--json", "list-devices"], env.bus.env()),
             "lspci_vvv": median_seconds(["lspci", "-vvv", "-nn", "-D"])}
    with open(os.path.join(RESULTS, "discovery.json"), "w") as f:
        json.dump(speed, f)


# ---- SR-IOV ----

def sysfs(addr, attr):
    with open(os.path.join(PCI, addr, attr)) as f:
        return f.read().strip()


def set_numvfs(pf, n, attr="sriov_numvfs"):
    """writes N as echo N > sriov_numvfs does; returns (errno or 0, seconds)"""
    fd = os.open(os.path.join(PCI, pf, attr), os.O_WRONLY)
    t0 = time.monotonic()
    try:
        os.write(fd, b"%d\n" % n)
        err = 0
    except OSError as e:
        err = e.errno
    finally:
        os.close(fd)
    return err, time.monotonic() - t0


def kernel_vfs(pf):
    """PF's VFs in index order, from its virtfnN links"""
    links = sorted((int(n[6:]), n) for n in os.listdir(os.path.join(PCI, pf)) if re.match(r"^virtfn\d+$", n))
    return [os.path.basename(os.readlink(os.path.join(PCI, pf, n))) for _, n in links]


def ip_vfs(iface):
    """ip link show IFACE's vf lines: {index: {mac, vlan, spoofchk, trust, link_state, text}}"""
    out = subprocess.run(["ip", "link", "show", iface], capture_output=True, text=True, timeout=30).stdout
    vfs = {}
    for line in out.splitlines():
        m = re.match(r"^\s+vf (\d+)\s+(.*)$", line)
        if not m:
            continue
        text = m.group(2)

        def word(pattern):
            w = re.search(pattern, text)
            return w.group(1) if w else None
        onoff = {"on": True, "off": False, None: None}
        vlan = word(r"\bvlan (\d+)")
        vfs[int(m.group(1))] = {"mac": word(r"link/ether ([0-9a-f:]{17})"), "vlan": int(vlan) if vlan else 0,
                                "spoofchk": onoff[word(r"spoof checking (on|off)")],
                                "trust": onoff[word(r"trust (on|off)")], "link_state": word(r"link-state (\w+)"),
                                "text": text}
    return vfs


def sriov_missing(env):
    """None when iovirtctl has the sriov verb; a failure, not a skip, when
    it has not: every SR-IOV check then fails with the reason"""
    rc, out, err = env.ctl("sriov", "--help")
    if rc == 0 and re.search(r"^\s+sriov\b", out + err, re.M):
        return None
    return "iovirtctl has no sriov verb ('iovirtctl sriov --help' lists none)"


def ctl_json(env, *args):
    """exit status and the --json document: the reply, or {"error": ...}"""
    rc, out, err = env.ctl("--json", *args)
    try:
        return rc, json.loads(out)
    except ValueError:
        return rc, {"unparsed": out, "stderr": err}


def fail_all(titles, why):
    """Every check of a scenario that cannot run: failed, with why"""
    for title in titles:
        tap.ok(False, title, why)


def sriov_nvme(env, topo):
    """The NVMe controller's 2 VFs through iovirtctl sriov, and the claim
    rule between a PF and its VFs (OpenStack Nova's)"""
    pf = below(topo["ports"]["nvme"])[0]
    titles = ["sriov NVME --vfs 2: the kernel has 2 VFs and the reply names them with the kernel's groups",
              "list-groups lists both VFs, each in the kernel's group, and equals /sys/kernel/iommu_groups",
              "assign NVME#0: VF 0 is on vfio-pci and its /dev/vfio node exists",
              "the PF is refused while its VF is assigned, with reason sriov-claimed in --json",
              "sriov NVME --vfs 0 is refused while VF 0 is assigned (InUse, naming vm-e2e)",
              "release NVME#0: VF 0 leaves vfio-pci and its /dev/vfio node goes",
              "sriov NVME --vfs 0 removes the VFs: gone from sysfs and from list-groups"]
    why = sriov_missing(env)
    if why:
        return fail_all(titles, why)
    try:
        rc, doc = ctl_json(env, "sriov", pf, "--vfs", "2")
        vfs = kernel_vfs(pf)
        want = [(i, a, group_of(a)) for i, a in enumerate(vfs)]
        got = [(v.get("index"), v.get("address"), v.get("group")) for v in doc.get("vfs", [])]
        tap.ok(rc == 0 and len(vfs) == 2 and sysfs(pf, "sriov_numvfs") == "2" and got == want and
               doc.get("change", {}).get("to") == 2, titles[0], (rc, want, doc))
        if len(vfs) != 2:
            return fail_all(titles[1:], "the VFs were not created")
        groups, ours = kernel_groups(), daemon_groups(env)
        tap.ok(ours == groups and all(ours.get(group_of(v)) == [v] for v in vfs), titles[1],
               "VFs %s\nours %s\nkernel %s" % ([(v, group_of(v)) for v in vfs], ours, groups))
        vf0, g0 = vfs[0], group_of(vfs[0])
        rc, out, err = env.ctl("assign", pf + "#0", "--to", "vm-e2e")
        tap.ok(rc == 0 and driver(vf0) == "vfio-pci" and os.path.exists("/dev/vfio/%d" % g0), titles[2],
               (rc, out, err, driver(vf0)))
        was = driver(pf)
        rc, doc = ctl_json(env, "assign", pf, "--to", "vm-other")
        checks = doc.get("error", {}).get("checks", [])
        tap.ok(rc == 1 and any(c.get("reason") == "sriov-claimed" and "vm-e2e" in c.get("message", "")
                               for c in checks) and driver(pf) == was, titles[3], (rc, doc, driver(pf)))
        rc, doc = ctl_json(env, "sriov", pf, "--vfs", "0")
        error = doc.get("error", {})
        tap.ok(rc == 1 and error.get("name") == "org.iovirt1.Error.InUse" and "vm-e2e" in error.get("message", "")
               and kernel_vfs(pf) == vfs and driver(vf0) == "vfio-pci", titles[4], (rc, doc, kernel_vfs(pf)))
        rc, out, err = env.ctl("release", pf + "#0")
        tap.ok(rc == 0 and driver(vf0) != "vfio-pci" and not os.path.exists("/dev/vfio/%d" % g0), titles[5],
               (rc, out, err, driver(vf0)))
        rc, doc = ctl_json(env, "sriov", pf, "--vfs", "0")
        left = [v for v in vfs if os.path.exists(os.path.join(PCI, v))]
        ours = daemon_groups(env)
        listed = [a for members in ours.values() for a in members if a in vfs]
        tap.ok(rc == 0 and sysfs(pf, "sriov_numvfs") == "0" and not left and not listed and ours == kernel_groups(),
               titles[6], (rc, doc, left, listed))
    finally:
        env.ctl("release", "--consumer", "vm-e2e")
        if sysfs(pf, "sriov_numvfs") != "0":
            set_numvfs(pf, 0)


SRIOV_TIMES = {}        # for the host to report (timings())
TIMING_RUNS = 3
PCI_EXT_CAP_ID_SRIOV, PCI_SRIOV_TOTAL_VF = 0x10, 0x0e


def config_total_vfs(addr):
    """TotalVFs of ADDR's SR-IOV capability, read from config space"""
    with open(os.path.join(PCI, addr, "config"), "rb") as f:
        config = f.read(4096)
    pos, seen = 0x100, set()
    while 0x100 <= pos < len(config) - 4 and pos not in seen:
        seen.add(pos)
        header, = struct.unpack_from("<I", config, pos)
        if header & 0xffff == PCI_EXT_CAP_ID_SRIOV:
            return struct.unpack_from("<H", config, pos + PCI_SRIOV_TOTAL_VF)[0]
        pos = header >> 20
    return None


def igb_kernel(env, topo):
    """What the kernel does with QEMU 10's igb, by hand, before iovirt is
    asked anything: the facts its SR-IOV code stands on."""
    pf = below(topo["ports"]["igb"])[0]
    iface = interfaces(pf)
    tap.ok(driver(pf) == "igb" and sysfs(pf, "sriov_totalvfs") == "7" and sysfs(pf, "sriov_numvfs") == "0" and
           len(iface) == 1, "igb binds the 82576 PF (%s), which offers 7 VFs" % " ".join(iface),
           (driver(pf), sysfs(pf, "sriov_totalvfs"), iface))
    total = config_total_vfs(pf)
    tap.ok(total == 8, "its config space says TotalVFs 8: sriov_totalvfs (7) is igb's limit, and the one that holds",
           total)
    err, _ = set_numvfs(pf, 7)
    vfs = kernel_vfs(pf)
    groups = kernel_groups()
    tap.ok(err == 0 and len(vfs) == 7 and all(driver(v) == "igbvf" for v in vfs) and
           all(groups[group_of(v)] == [v] for v in vfs),
           "echo 7 > sriov_numvfs: 7 VFs, igbvf binds each, each alone in its own group",
           (errno.errorcode.get(err), [(v, driver(v), group_of(v)) for v in vfs]))
    shown = ip_vfs(iface[0]) if iface else {}
    fresh = [i for i, v in shown.items() if v["mac"] and v["spoofchk"] is True and v["trust"] is False and
             v["link_state"] == "auto" and v["vlan"] == 0]
    tap.ok(sorted(shown) == list(range(7)) and sorted(fresh) == list(range(7)),
           "ip link show lists vf 0-6, each with link/ether, spoof checking on, link-state auto, trust off",
           "\n".join("vf %d %s" % (i, v["text"]) for i, v in sorted(shown.items())))
    busy, _ = set_numvfs(pf, 3)
    over, _ = set_numvfs(pf, 8)
    tap.ok(busy == errno.EBUSY and over == errno.ERANGE and sysfs(pf, "sriov_numvfs") == "7",
           "the kernel refuses 7 -> 3 (EBUSY: only through 0) and 8 (ERANGE, above sriov_totalvfs)",
           (errno.errorcode.get(busy), errno.errorcode.get(over), sysfs(pf, "sriov_numvfs")))
    set_numvfs(pf, 0)
    tap.ok(not kernel_vfs(pf), "echo 0 > sriov_numvfs removes them", kernel_vfs(pf))


def sriov_igb(env, topo):
    """iovirtctl sriov on a NIC: VFs, their settings as ip link shows
    them, the lowest free VF of a range, and counts changed through 0"""
    pf = below(topo["ports"]["igb"])[0]
    iface = interfaces(pf)[0]
    mac = "02:00:00:00:00:03"
    titles = ["sriov %s: the PF by its interface name, igb, 7 VFs in total, none enabled" % iface,
              "sriov %s --vfs 8 is refused (InvalidArgument, naming the total, 7), nothing changes" % iface,
              "sriov %s --vfs 7 --autoprobe no: 7 VFs with no driver, sriov_drivers_autoprobe reads 0" % iface,
              "the reply names the 7 VFs with the kernel's addresses and groups",
              "sriov %s#3 --mac %s --vlan 100 --spoofchk off --trust on: ip link shows them on vf 3" % (iface, mac),
              "sriov %s --json agrees with ip link on every VF's MAC, VLAN, spoof check and trust" % iface,
              "assign %s#0-6 --to vm-a takes VF 0, the lowest free" % iface,
              "assign %s#0-6 --to vm-b then takes VF 1" % iface,
              "sriov %s --vfs 4 is refused while VFs are assigned (InUse, naming vm-a), 7 VFs stay" % iface,
              "release of vm-a and vm-b leaves VFs 0 and 1 without a driver, their /dev/vfio nodes gone",
              "sriov %s --vfs 4 from 7 with none assigned: 4 VFs, the change going through 0" % iface,
              "sriov %s --vfs 0 removes them" % iface]
    why = sriov_missing(env)
    if why:
        return fail_all(titles, why)
    ok = tap.ok
    try:
        rc, doc = ctl_json(env, "sriov", iface)
        p = doc.get("pf", {})
        ok(rc == 0 and p.get("address") == pf and p.get("interface") == iface and p.get("driver") == "igb" and
           p.get("total_vfs") == 7 and p.get("num_vfs") == 0 and doc.get("vfs") == [], titles[0], (rc, doc))

        rc, doc = ctl_json(env, "sriov", iface, "--vfs", "8")
        error = doc.get("error", {})
        ok(rc == 1 and error.get("name") == "org.iovirt1.Error.InvalidArgument" and "7" in error.get("message", "")
           and sysfs(pf, "sriov_numvfs") == "0", titles[1], (rc, doc))

        rc, doc = ctl_json(env, "sriov", iface, "--vfs", "7", "--autoprobe", "no")
        vfs = kernel_vfs(pf)
        ok(rc == 0 and len(vfs) == 7 and sysfs(pf, "sriov_drivers_autoprobe") == "0" and
           not any(driver(v) for v in vfs), titles[2],
           (rc, sysfs(pf, "sriov_drivers_autoprobe"), [(v, driver(v)) for v in vfs], doc))
        want = [(i, a, group_of(a), None) for i, a in enumerate(vfs)]
        got = [(v.get("index"), v.get("address"), v.get("group"), v.get("driver")) for v in doc.get("vfs", [])]
        ok(got == want and doc.get("pf", {}).get("autoprobe") is False, titles[3], (want, got))
        if len(vfs) != 7:
            return fail_all(titles[4:], "the VFs were not created")

        rc, out, err = env.ctl("sriov", iface + "#3", "--mac", mac, "--vlan", "100", "--spoofchk", "off",
                               "--trust", "on")
        shown = ip_vfs(iface)
        vf3 = shown.get(3, {})
        ok(rc == 0 and vf3.get("mac") == mac and vf3.get("vlan") == 100 and vf3.get("spoofchk") is False and
           vf3.get("trust") is True and all(shown[i]["spoofchk"] and not shown[i]["trust"] for i in shown if i != 3),
           titles[4], (rc, out, err, "\n".join("vf %d %s" % (i, v["text"]) for i, v in sorted(shown.items()))))
        rc, doc = ctl_json(env, "sriov", iface)
        theirs = {i: (v["mac"], v["vlan"], v["spoofchk"], v["trust"]) for i, v in shown.items()}
        zero = "00:00:00:00:00:00"
        ours = {v.get("index"): (v.get("mac") or (zero if theirs.get(v.get("index"), [None])[0] == zero else None),
                                 v.get("vlan"), v.get("spoofchk"), v.get("trust")) for v in doc.get("vfs", [])}
        ok(rc == 0 and doc.get("vf_settings") == "read" and ours == theirs, titles[5],
           "iovirtctl %s\nip link %s\n%s" % (ours, theirs, doc))

        rc, out, err = env.ctl("assign", iface + "#0-6", "--to", "vm-a")
        ok(rc == 0 and [driver(v) for v in vfs[:2]] == ["vfio-pci", None] and
           os.path.exists("/dev/vfio/%d" % group_of(vfs[0])), titles[6], (rc, out, err, [driver(v) for v in vfs]))
        rc, out, err = env.ctl("assign", iface + "#0-6", "--to", "vm-b")
        ok(rc == 0 and [driver(v) for v in vfs[:3]] == ["vfio-pci", "vfio-pci", None], titles[7],
           (rc, out, err, [driver(v) for v in vfs]))
        assigned = env.json("list-assignments")["assignments"]

        rc, doc = ctl_json(env, "sriov", iface, "--vfs", "4")
        error = doc.get("error", {})
        ok(rc == 1 and error.get("name") == "org.iovirt1.Error.InUse" and "vm-a" in error.get("message", "") and
           kernel_vfs(pf) == vfs and driver(vfs[0]) == "vfio-pci", titles[8], (rc, doc, kernel_vfs(pf), assigned))

        r1, _, e1 = env.ctl("release", "--consumer", "vm-a")
        r2, _, e2 = env.ctl("release", "--consumer", "vm-b")
        ok(r1 == r2 == 0 and not driver(vfs[0]) and not driver(vfs[1]) and
           not any(os.path.exists("/dev/vfio/%d" % group_of(v)) for v in vfs[:2]), titles[9],
           (e1, e2, [driver(v) for v in vfs]))

        rc, doc = ctl_json(env, "sriov", iface, "--vfs", "4")
        change = doc.get("change", {})
        ok(rc == 0 and sysfs(pf, "sriov_numvfs") == "4" and len(kernel_vfs(pf)) == 4 and
           (change.get("from"), change.get("to"), change.get("through_zero")) == (7, 4, True), titles[10], (rc, doc))
        rc, doc = ctl_json(env, "sriov", iface, "--vfs", "0")
        ok(rc == 0 and sysfs(pf, "sriov_numvfs") == "0" and not kernel_vfs(pf) and
           not [a for members in daemon_groups(env).values() for a in members if a in vfs], titles[11], (rc, doc))
    finally:
        restore_igb(env, pf)


def restore_igb(env, pf):
    for consumer in ("vm-a", "vm-b"):
        env.ctl("release", "--consumer", consumer)
    if sysfs(pf, "sriov_numvfs") != "0":
        set_numvfs(pf, 0)
    set_numvfs(pf, 1, "sriov_drivers_autoprobe")


def sriov_timing(env, topo):
    """iovirtctl sriov IFACE --vfs 7 from 0 against echo 7 > sriov_numvfs
    by hand (the floor), in turns, so that both meet the same guest; with
    sriov_drivers_autoprobe 0, so that both time SR-IOV and not igbvf
    (whose probe and removal would make this scenario 4 times longer)"""
    pf = below(topo["ports"]["igb"])[0]
    iface = interfaces(pf)[0]
    title = "iovirtctl sriov %s --vfs 7 from 0, %d times: 7 VFs, and no driver (the PF's autoprobe 0 holds)" % (
        iface, TIMING_RUNS)
    why = sriov_missing(env)
    floor, times, bad = [], [], []
    try:
        set_numvfs(pf, 0, "sriov_drivers_autoprobe")
        for _ in range(TIMING_RUNS):
            err, seconds = set_numvfs(pf, 7)
            floor.append(seconds)
            if err or len(kernel_vfs(pf)) != 7 or set_numvfs(pf, 0)[0]:
                bad.append(("by hand", errno.errorcode.get(err), kernel_vfs(pf)))
            if why:
                continue
            t0 = time.monotonic()
            rc, out, err = env.ctl("sriov", iface, "--vfs", "7")
            times.append(time.monotonic() - t0)
            vfs = kernel_vfs(pf)
            if rc != 0 or len(vfs) != 7 or any(driver(v) for v in vfs):
                bad.append((rc, out, err, [(v, driver(v)) for v in vfs]))
            rc, out, err = env.ctl("sriov", iface, "--vfs", "0")
            if rc != 0 or kernel_vfs(pf):
                bad.append(("--vfs 0", rc, out, err))
    finally:
        restore_igb(env, pf)
    tap.ok(not why and not bad, title, why or bad)
    SRIOV_TIMES.update(by_hand=floor, iovirtctl=times)
    median = (lambda xs: sorted(xs)[len(xs) // 2] if xs else None)
    ours, theirs = median(times), median(floor)
    print("# sriov_numvfs 0 -> 7 on igb (median of %d): iovirtctl sriov %s --vfs 7 %s, echo 7 > sriov_numvfs %s"
          % (TIMING_RUNS, iface, "%.3f s" % ours if ours is not None else "not measured (%s)" % why,
             "%.3f s" % theirs), flush=True)


def sriov_persist(env, topo):
    """--persist on igb: the count, autoprobe and a VF's settings come back
    when iovirtd starts and finds the PF as a reboot leaves it (0 VFs,
    autoprobe 1); checked against sysfs and ip link, not iovirtd"""
    pf = below(topo["ports"]["igb"])[0]
    iface = interfaces(pf)[0]
    name = "sriov-%s.json" % pf
    record = os.path.join(env.state, name)
    mac = "02:00:00:00:01:01"
    titles = ["sriov %s --vfs 3 --autoprobe no --persist, and %s#1 --mac %s --vlan 42 --trust on --persist: "
              "ip link shows them on vf 1, --json shows both persisted" % (iface, iface, mac),
              "sriov %s#2 --vlan 7 without --persist: ip link shows it, and %s keeps only VF 1's settings "
              "(not VF 2's, nor those set without --persist in the scenarios before)" % (iface, name),
              "iovirtd stopped, echo 0 > sriov_numvfs and 1 > sriov_drivers_autoprobe (a reboot's state): "
              "the VFs are gone",
              "iovirtd started again: sriov_numvfs 3, sriov_drivers_autoprobe 0, no driver on the VFs",
              "and ip link shows vf 1 with %s, vlan 42, trust on again" % mac,
              "and vf 2 without vlan 7 (not persisted); no other VF's settings are put back",
              "iovirtd logs that it restored %s as persisted" % pf,
              "sriov %s --vfs 0 --persist, iovirtd restarted: sriov_numvfs stays 0, nothing logged about the VFs"
              % iface,
              "sriov %s --vfs 0 --no-persist forgets the PF: %s is gone and --json shows persisted null"
              % (iface, name)]
    why = sriov_missing(env)
    if why:
        return fail_all(titles, why)
    ok = tap.ok

    def kernel():
        """the kernel's view of the PF, for diagnostics"""
        vfs = kernel_vfs(pf)
        return "sriov_numvfs %s, sriov_drivers_autoprobe %s, VFs %s\n%s" % (
            sysfs(pf, "sriov_numvfs"), sysfs(pf, "sriov_drivers_autoprobe"), [(v, driver(v)) for v in vfs],
            "\n".join("vf %d %s" % (i, v["text"]) for i, v in sorted(ip_vfs(iface).items())))

    def vf1_set():
        vf1 = ip_vfs(iface).get(1, {})
        return vf1.get("mac") == mac and vf1.get("vlan") == 42 and vf1.get("trust") is True

    def restart(meanwhile=None):
        """stops iovirtd, runs MEANWHILE, starts it on the same state
        directory; returns what it logged while starting and its time"""
        env.stop()
        with open(env.daemon.log_path) as f:
            f.seek(0, os.SEEK_END)
            start = f.tell()
        if meanwhile:
            meanwhile()
        t0 = time.monotonic()
        env.start()
        ready = time.monotonic() - t0
        with open(env.daemon.log_path) as f:
            f.seek(start)
            return f.read(), ready

    def about_pf(logged):
        return "\n".join(line for line in logged.splitlines() if pf in line or iface in line)

    try:
        r1, o1, e1 = env.ctl("sriov", iface, "--vfs", "3", "--autoprobe", "no", "--persist")
        r2, o2, e2 = env.ctl("sriov", iface + "#1", "--mac", mac, "--vlan", "42", "--trust", "on", "--persist")
        rc, doc = ctl_json(env, "sriov", iface)
        vfs = doc.get("vfs", [])
        kept = vfs[1].get("persisted") or {} if len(vfs) == 3 else {}
        ok(r1 == r2 == rc == 0 and len(kernel_vfs(pf)) == 3 and vf1_set() and
           doc.get("pf", {}).get("persisted") == {"num_vfs": 3, "autoprobe": False} and
           kept.get("mac") == mac and kept.get("vlan") == 42 and kept.get("trust") is True and
           os.path.exists(record), titles[0],
           "%s\n%s%s\n%s%s\n--json %s\n%s: %s" % (kernel(), o1, e1, o2, e2, doc, record, os.path.exists(record)))

        rc, out, err = env.ctl("sriov", iface + "#2", "--vlan", "7")
        try:
            with open(record) as f:
                kept = json.load(f)
        except (OSError, ValueError) as e:
            kept = {"unreadable": str(e)}
        indexes = [v.get("index") for v in kept.get("vfs", [])]
        ok(rc == 0 and ip_vfs(iface).get(2, {}).get("vlan") == 7 and indexes == [1], titles[1],
           "%s%s\n%s\n%s: VFs %s\n%s" % (out, err, kernel(), record, indexes, kept))

        gone = []

        def reboot():
            """what a reboot leaves: no VFs, the kernel's default autoprobe"""
            e0, seconds = set_numvfs(pf, 0)
            ea, _ = set_numvfs(pf, 1, "sriov_drivers_autoprobe")
            gone.append(e0 == ea == 0 and not kernel_vfs(pf) and sysfs(pf, "sriov_numvfs") == "0" and
                        sysfs(pf, "sriov_drivers_autoprobe") == "1")
            gone.append("%s, %s (%.1f s)\n%s" % (errno.errorcode.get(e0), errno.errorcode.get(ea), seconds, kernel()))
        logged, ready = restart(reboot)
        ok(gone[0], titles[2], gone[1])
        vfs = kernel_vfs(pf)
        ok(sysfs(pf, "sriov_numvfs") == "3" and len(vfs) == 3 and sysfs(pf, "sriov_drivers_autoprobe") == "0" and
           not any(driver(v) for v in vfs), titles[3] + " (ready in %.1f s)" % ready,
           "%s\nwhat it logged of %s:\n%s" % (kernel(), pf, about_pf(logged)))
        ok(vf1_set(), titles[4], "%s\nwhat it logged of %s:\n%s" % (kernel(), pf, about_pf(logged)))
        ok(ip_vfs(iface).get(2, {}).get("vlan") == 0 and "put back" not in logged, titles[5],
           "%s\nwhat it logged of %s:\n%s" % (kernel(), pf, about_pf(logged)))
        ok(re.search(re.escape(pf) + r": 0 -> 3 VFs, as persisted", logged), titles[6], about_pf(logged))

        rc, out, err = env.ctl("sriov", iface, "--vfs", "0", "--persist")
        logged, _ = restart() if rc == 0 else ("", 0)
        noise = [line for line in logged.splitlines() if re.search(r"put back|persisted", line)]
        ok(rc == 0 and sysfs(pf, "sriov_numvfs") == "0" and not kernel_vfs(pf) and not noise, titles[7],
           "%s%s\n%s\nwhat it logged of %s:\n%s" % (out, err, kernel(), pf, about_pf(logged)))

        rc, text, err = env.ctl("sriov", iface, "--vfs", "0", "--no-persist")
        rc2, doc = ctl_json(env, "sriov", iface)
        ok(rc == rc2 == 0 and not os.path.exists(record) and "persisted" in doc.get("pf", {}) and
           doc["pf"]["persisted"] is None, titles[8], (text, os.listdir(env.state), doc))
    finally:
        if env.daemon.poll() is not None:
            env.start()
        if os.path.exists(record):      # forgotten, so that no later start brings the VFs back
            env.ctl("sriov", iface, "--vfs", "0", "--no-persist")
        restore_igb(env, pf)


# ---- NUMA (the numa boot: CPU 0 on node 0, CPU 1 on node 1, a NIC behind a
# pxb-pcie expander bridge on node 1) ----

NODES = "/sys/devices/system/node"


def kernel_nodes():
    """{node: its cpulist}, from /sys/devices/system/node"""
    if not os.path.isdir(NODES):
        return {}
    return {int(n[4:]): open(os.path.join(NODES, n, "cpulist")).read().strip()
            for n in os.listdir(NODES) if re.match(r"^node\d+$", n)}


def numa_node(addr):
    """the kernel's numa_node of ADDR; -1 for none"""
    return int(sysfs(addr, "numa_node"))


def numa_facts(env, topo):
    """What the boot's topology gives the kernel, and that iovirtctl reads
    the same: the facts the NUMA policies stand on."""
    nodes = kernel_nodes()
    tap.ok(nodes == {0: "0", 1: "1"}, "%s has node0 (CPU 0) and node1 (CPU 1)" % NODES, nodes)
    remote, local = below(topo["ports"]["remote"]), below(topo["ports"]["nic"])
    tap.ok(len(remote) == 1 and numa_node(remote[0]) == 1 and driver(remote[0]) == "e1000e",
           "the NIC behind the pxb-pcie expander bridge reads numa_node 1 and is on e1000e",
           [(a, numa_node(a), driver(a)) for a in remote])
    tap.ok(len(local) == 1 and numa_node(local[0]) in (-1, 0),
           "the NIC on a root port of pcie.0 is not on node 1 (numa_node %s)" % (
               " ".join(str(numa_node(a)) for a in local) or "-"), [(a, numa_node(a)) for a in local])
    if not remote:
        return
    addr = remote[0]
    shown = env.json("show", addr)
    rc, text, err = env.ctl("show", addr)
    tap.ok(shown.get("numa_node") == 1 and rc == 0 and re.search(r"NUMA node:\s+1 \(CPUs 1\)", text),
           "iovirtctl show %s says NUMA node 1 (CPUs 1), in --json and in text" % addr,
           "json numa_node %s\n%s%s" % (shown.get("numa_node"), text, err))
    kernel = {a: numa_node(a) for a in os.listdir(PCI)}
    for how in ([], ["--direct"]):
        listed = {d["address"]: d["numa_node"] for d in env.json(*how, "list-devices")["devices"]}
        ours = {a: -1 if n is None else n for a, n in listed.items()}
        on1 = sorted(d["address"] for d in env.json(*how, "list-devices", "--numa", "1")["devices"])
        tap.ok(ours == kernel and on1 == sorted(a for a, n in kernel.items() if n == 1) and addr in on1,
               "list-devices%s --json agrees with every function's numa_node (%d functions), and --numa 1 lists "
               "what the kernel puts on node 1" % (" " + how[0] if how else "", len(kernel)),
               "ours %s\nkernel %s\n--numa 1 %s" % (ours, kernel, on1))
    groups = {g["group"]: g for g in env.json("list-groups")["groups"]}
    g = groups.get(group_of(addr), {})
    tap.ok(kernel_groups()[group_of(addr)] == [addr] and g.get("isolation") == "isolated",
           "the remote NIC is alone in its group, isolated (the root port on the expander bridge carries ACS)",
           (kernel_groups()[group_of(addr)], g))
    # the IOMMU translates behind the expander bridge too: a named VM (where
    # it runs unknown, which the default policy, legacy, lets pass) gets the
    # remote NIC as any other, so that only NUMA tells them apart below
    group = group_of(addr)
    rc, out, err = env.ctl("assign", addr, "--to", "vm-e2e")
    viable, err_no = vfio_open(group) if rc == 0 and os.path.exists("/dev/vfio/%d" % group) else (False, 0)
    r2, out2, err2 = env.ctl("release", addr)
    tap.ok(rc == 0 and viable and err_no == 0 and r2 == 0 and driver(addr) == "e1000e",
           "assign %s --to vm-e2e: a type1 container takes its group (the IOMMU translates behind the expander "
           "bridge); release: e1000e is back" % addr,
           (rc, out, err, viable, errno.errorcode.get(err_no), r2, out2, err2, driver(addr)))


class Sleeper:
    """A real process to name as pid:PID, under RLIMIT_MEMLOCK 16 MiB"""

    def __init__(self, memlock=16 << 20):
        import resource
        self.p = subprocess.Popen(["sleep", "600"], preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_MEMLOCK, (memlock, memlock)))
        self.pid, self.consumer = self.p.pid, "pid:%d" % self.p.pid

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(30)


def names_nodes(text, device_node, consumer_node):
    """the refusal names the device's node and the consumer's"""
    return (re.search(r"\bnode %d\b" % device_node, text) and
            re.search(r"\bnodes? (?:[0-9,-]+, )?%d\b" % consumer_node, text))


def numa_policy(env, topo):
    """Nova's PCI NUMA affinity policies for a process consumer, against the
    kernel's own numa_node: a NIC on node 1 for pid:PID placed on node 0
    or node 1 (--numa-node, --cpus, or where the kernel lets it run); and
    the NIC on pcie.0, which the kernel puts on no node."""
    remote, local = below(topo["ports"]["remote"])[0], below(topo["ports"]["nic"])[0]
    sleeper = Sleeper()
    pid, consumer = sleeper.pid, sleeper.consumer

    def assign(addr, *extra):
        return ["assign", addr, "--to", consumer, "--memory", "64M"] + list(extra)

    def refused(title, addr, reason, *extra):
        """exit 1 naming the nodes (the remote NIC's refusal), PolicyDenied
        with the numa check's REASON under --json, and nothing moves"""
        node = "/dev/vfio/%d" % group_of(addr)
        rc, out, err = env.ctl(*assign(addr, *extra))
        rj, doc = ctl_json(env, *assign(addr, *extra))
        error = doc.get("error", {})
        numa = [c for c in error.get("checks", []) if c.get("id") == "numa"]
        named = names_nodes(out + err, 1, 0) if reason == "numa-remote" else True
        tap.ok(rc == 1 and named and driver(addr) == "e1000e" and not os.path.exists(node) and
               rj == 1 and error.get("name") == "org.iovirt1.Error.PolicyDenied" and
               [c.get("reason") for c in numa] == [reason], title,
               "exit %d: %s%s\n--json exit %d: %s\ndriver %s" % (rc, out, err, rj, doc, driver(addr)))

    def allowed(title, addr, *extra):
        """assigned (vfio-pci, the /dev/vfio node, RLIMIT_MEMLOCK raised to
        libvirt's rule), then released (e1000e back, the limit restored)"""
        node = "/dev/vfio/%d" % group_of(addr)
        rc, out, err = env.ctl(*assign(addr, *extra))
        on = driver(addr)
        exists = os.path.exists(node)
        raised = memlock_of(pid)
        r2, out2, err2 = env.ctl("release", addr)
        restored = memlock_of(pid)
        tap.ok(rc == 0 and on == "vfio-pci" and exists and raised == (MEMLOCK_64M, MEMLOCK_64M) and
               r2 == 0 and driver(addr) == "e1000e" and not os.path.exists(node) and
               restored == (16 << 20, 16 << 20),
               title + "; RLIMIT_MEMLOCK %d while assigned; release: e1000e is back, 16 MiB again" % MEMLOCK_64M,
               "assign exit %d: %s%s\non %s, %s %s, limits %s\nrelease exit %d: %s%s\ndriver %s, limits %s" % (
                   rc, out, err, on, node, exists, raised, r2, out2, err2, driver(addr), restored))
    try:
        refused("assign %s (node 1) --to pid:PID --memory 64M --numa-policy required --numa-node 0 is refused "
                "(exit 1, naming node 1 and node 0; PolicyDenied, numa-remote), nothing moves" % remote,
                remote, "numa-remote", "--numa-policy", "required", "--numa-node", "0")
        allowed("the same with --numa-policy preferred is allowed", remote,
                "--numa-policy", "preferred", "--numa-node", "0")
        allowed("--numa-policy required --numa-node 1 is allowed", remote,
                "--numa-policy", "required", "--numa-node", "1")
        allowed("--numa-policy required --cpus 1 (CPU 1 is on node 1) is allowed", remote,
                "--numa-policy", "required", "--cpus", "1")
        refused("--numa-policy required --cpus 0 (CPU 0 is on node 0) is refused the same way", remote,
                "numa-remote", "--numa-policy", "required", "--cpus", "0")
        os.sched_setaffinity(pid, {0})
        refused("with neither, the process pinned to CPU 0 (sched_setaffinity): required is refused, iovirtd "
                "reading where it runs from /proc/PID/status", remote, "numa-remote", "--numa-policy", "required")
        os.sched_setaffinity(pid, {1})
        allowed("pinned to CPU 1 instead: required is allowed", remote, "--numa-policy", "required")
        if numa_node(local) < 0:
            refused("%s, on no node (numa_node -1): required --numa-node 0 is refused (numa-unknown)" % local,
                    local, "numa-unknown", "--numa-policy", "required", "--numa-node", "0")
            allowed("and legacy --numa-node 0 allows it (Nova's legacy: a device of unknown node goes)", local,
                    "--numa-policy", "legacy", "--numa-node", "0")
        else:
            tap.skip("a device on no node under required and legacy", "the kernel puts %s on node %d" % (
                local, numa_node(local)))
    finally:
        env.ctl("release", "--consumer", consumer)
        sleeper.kill()


# ---- libvirt (the libvirt boot): Debian's libvirtd in the guest, its qemu
# hook the one this build configured, calling this build's iovirtctl ----

LIBVIRT_URI = "qemu:///system"
SANITIZER_OPTIONS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
# DESIGN.md's recipe: QEMU as root, with no security driver, mount namespace
# or cgroups (the guest has no AppArmor policy or cgroup tree for it), its
# stdio to a file (no virtlogd)
QEMU_CONF = ('user = "root"\ngroup = "root"\nsecurity_driver = "none"\nnamespaces = [ ]\n'
             'stdio_handler = "file"\ncgroup_controllers = [ ]\n')
# what libvirtd did about hotplug, QEMU's events and hooks, with times,
# for whoever reads a failure
LIBVIRTD_LOG = "/var/log/libvirt/libvirtd.log"
LIBVIRTD_CONF = ('log_filters = "1:qemu.qemu_hotplug 1:qemu.qemu_process 1:util.hook 1:hostdev 1:util.pci 3:*"\n'
                 'log_outputs = "1:file:%s"\n' % LIBVIRTD_LOG)
# libvirt's qemu hook operations around a start and a stop (DESIGN.md)
HOOK_START = ["prepare begin", "start begin", "started begin"]
HOOK_STOP = ["stopped end", "release end"]


class Libvirtd:
    """Debian's libvirtd in the guest, set up as DESIGN.md says it runs
    there: tmpfs on /var/log, /var/cache and /var/lib (the guest must not
    write the host's), and a private copy of /etc/libvirt bind-mounted over
    it, holding our qemu.conf and iovirt's hook, which libvirtd reads only
    when it starts. libvirt runs a hook with a cleaned environment, so the
    installed hook is this build's configured one (its iovirtctl this
    build's) behind lines that give it the test's system bus and the
    sanitizer options; it also notes each call in hook.log."""

    def __init__(self):
        self.p = None
        self.why = "libvirtd was not started"       # why the libvirt scenarios cannot run; None once it runs
        self.dir = self.hook_log = None

    def setup(self, env):
        self.dir = os.path.join(env.root, "libvirt")
        etc = os.path.join(self.dir, "etc")
        self.hook_log = os.path.join(self.dir, "hook.log")
        for d in ("/var/log", "/var/cache", "/var/lib"):
            mount("-t", "tmpfs", "-o", "mode=0755", "iovirt-e2e", d)
        for d in ("/var/log/libvirt/qemu", "/var/cache/libvirt/qemu", "/var/lib/libvirt/qemu",
                  "/var/lib/libvirt/images", "/var/lib/libvirt/boot"):
            os.makedirs(d)
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        autostart = os.path.join(etc, "qemu", "networks", "autostart")     # no default network to start
        for link in os.listdir(autostart) if os.path.isdir(autostart) else []:
            os.unlink(os.path.join(autostart, link))
        for conf, text in (("qemu.conf", QEMU_CONF), ("libvirtd.conf", LIBVIRTD_CONF)):
            with open(os.path.join(etc, conf), "w") as f:
                f.write(text)
        hooks = os.path.join(etc, "hooks", "qemu.d")
        os.makedirs(hooks, exist_ok=True)
        with open(os.path.join(hooks, "iovirt"), "w") as f:
            f.write(self.hook(env))
        os.chmod(os.path.join(hooks, "iovirt"), 0o755)
        open(self.hook_log, "w").close()
        mount("--bind", etc, "/etc/libvirt")

    def hook(self, env):
        """the configured hook (BUILD/data/iovirt) with this build's
        iovirtctl, behind the environment libvirt does not pass"""
        with open(os.path.join(BUILD, "data", "iovirt")) as f:
            shipped = f.read()
        paths = re.findall(r"^iovirtctl=(\S+)$", shipped, re.M)
        if len(paths) != 1 or not shipped.startswith("#!/bin/sh\n"):
            raise RuntimeError("%s/data/iovirt is not the hook data/libvirt/hooks/qemu.d/iovirt makes:\n%s" % (
                BUILD, shipped))
        body = shipped.split("\n", 1)[1].replace("iovirtctl=" + paths[0], "iovirtctl=" + shlex.quote(IOVIRTCTL), 1)
        env_vars = [("DBUS_SYSTEM_BUS_ADDRESS", env.bus.address)]
        env_vars += [(k, os.environ[k]) for k in SANITIZER_OPTIONS if k in os.environ]
        return ("#!/bin/sh\n# tests/e2e/guest.py: libvirt runs hooks with a cleaned environment\n" +
                "".join("export %s=%s\n" % (k, shlex.quote(v)) for k, v in env_vars) +
                'echo "$1 $2 $3" >>%s\n' % shlex.quote(self.hook_log) + body)

    def start(self, seconds=120):
        """libvirtd in the foreground (so that it is ours to stop), ready
        once virsh connects; returns whether it is"""
        with open(os.path.join(self.dir, "libvirtd.stderr"), "w") as err:
            self.p = subprocess.Popen(["libvirtd"], env=libvirt_env(), stdout=err, stderr=subprocess.STDOUT)
        up = until(seconds, lambda: self.p.poll() is not None or self.virsh("uri")[0] == 0)
        return up and self.p.poll() is None

    def virsh(self, *args, timeout=120):
        p = subprocess.run(["virsh", "-c", LIBVIRT_URI] + list(args), env=libvirt_env(), capture_output=True,
                           text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def stop(self, seconds=60):
        """SIGTERM; returns libvirtd's exit status, or None when it did not
        exit within SECONDS (then it is killed)"""
        if not self.p:
            return None
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(seconds)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode

    def hook_calls(self):
        """the hook's calls so far, "NAME OPERATION SUB-OPERATION" each"""
        with open(self.hook_log) as f:
            return f.read().splitlines()

    def log(self):
        """what libvirtd logged, for a failure's detail"""
        return "\n".join(read_tail(p, 40) for p in (os.path.join(self.dir, "libvirtd.stderr"), LIBVIRTD_LOG))

    def create(self, name, xml, *flags):
        """virsh create of XML (written beside the hook); (exit, stdout, stderr)"""
        path = os.path.join(self.dir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        return self.virsh("create", path, *flags)

    def destroy(self, name):
        """virsh destroy NAME, when it runs"""
        rc, out, _ = self.virsh("list", "--name")
        if name in out.split():
            return self.virsh("destroy", name)
        return 0, "", "not running"


LIBVIRTD = Libvirtd()


def libvirt_env():
    """Ours without the test's bus: libvirtd and virsh find no system bus
    (and so no systemd-machined or firewalld to ask), as DESIGN.md's recipe
    was measured; the hook is given the bus by its own lines."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DBUS_")}


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True, capture_output=True, timeout=60)


def read_tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return "%s:\n%s" % (path, "\n".join(f.read().splitlines()[-n:]))
    except OSError as e:
        return "%s: %s" % (path, e)


def address_xml(addr):
    """a PCI address as libvirt's <address/>"""
    dom, bus, rest = addr.split(":")
    slot, function = rest.split(".")
    return "<address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>" % (dom, bus, slot, function)


def hostdev_xml(addr, managed):
    return ("<hostdev mode='subsystem' type='pci' managed='%s'><source>%s</source></hostdev>\n" % (
        "yes" if managed else "no", address_xml(addr)))


def domain_xml(name, machine="q35", devices="", extra=""):
    """A type='qemu' domain (TCG: the guest has no KVM) of 64 MiB with no
    disk, no OS and nothing libvirt would add on its own that QEMU then has
    to emulate (USB, balloon); DEVICES go into its <devices>, EXTRA after
    them."""
    return ("<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
            "  <name>%s</name>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n"
            "  <os><type arch='x86_64' machine='%s'>hvm</type></os>\n"
            "  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
            "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n%s  </devices>\n%s"
            "</domain>\n") % (name, machine, devices, extra)


def qemu_pid(name):
    """the pid of domain NAME's QEMU, from libvirt's pidfile; None without one"""
    try:
        with open("/run/libvirt/qemu/%s.pid" % name) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def vfio_open_by(pid):
    """the /dev/vfio group nodes PID holds open"""
    fds = "/proc/%d/fd" % pid
    held = set()
    try:
        for fd in os.listdir(fds):
            try:
                target = os.readlink(os.path.join(fds, fd))
            except OSError:
                continue
            if re.match(r"^/dev/vfio/\d+$", target):
                held.add(target)
    except OSError:
        pass
    return held


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def qemu_processes():
    """the pids of every QEMU running in the guest"""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().startswith("qemu-system"):
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def consumers(env):
    """{consumer: its groups}, from list-assignments"""
    held = {}
    for a in env.json("list-assignments")["assignments"]:
        held.setdefault(a["consumer"], []).append(a["group"])
    return held


def libvirtd_start(env, topo):
    """libvirtd starts with iovirt's hook in place, and virsh reaches it"""
    title = ("Debian's libvirtd starts in the guest (tmpfs /var/log, /var/cache, /var/lib; a private /etc/libvirt "
             "holding our qemu.conf and iovirt's hook) and virsh connects to %s" % LIBVIRT_URI)
    if not os.path.exists("/usr/sbin/libvirtd"):
        LIBVIRTD.why = "libvirtd is not installed (Debian: libvirt-daemon-system)"
        return tap.ok(False, title, LIBVIRTD.why)
    libvirt_iovirtd(env)
    policy = env.json("policy")
    tap.ok(env.daemon.poll() is None and policy["loaded"] and not policy["files"] and not policy["pools"],
           "iovirtd restarted with IOVIRT_DETACH_TIMEOUT=%d and a policy directory of the test's, empty for now "
           "(no file, no pool)" % DETACH_TIMEOUT, policy)
    t0 = time.monotonic()
    LIBVIRTD.setup(env)
    up = LIBVIRTD.start()
    ready = time.monotonic() - t0
    rc, out, err = LIBVIRTD.virsh("version") if up else (None, "", "")
    if tap.ok(up and rc == 0, title + " (%.1f s; virsh version %.1f s later)" % (ready, time.monotonic() - t0 - ready),
              "%s%s\n%s" % (out, err, LIBVIRTD.log())):
        LIBVIRTD.why = None
    else:
        LIBVIRTD.why = "libvirtd did not start"


def libvirtd_stop(env, topo):
    """libvirtd stops on SIGTERM, leaving no domain and no QEMU behind"""
    if LIBVIRTD.p is None:
        return tap.ok(False, "libvirtd stops cleanly", LIBVIRTD.why)
    _, left, _ = LIBVIRTD.virsh("list", "--all", "--name")
    for name in left.split():
        LIBVIRTD.destroy(name)
    t0 = time.monotonic()
    status = LIBVIRTD.stop()
    qemus = qemu_processes()
    tap.ok(status == 0 and not left.split() and not qemus,
           "no domain left, libvirtd stops on SIGTERM (exit 0, %.1f s) and no QEMU runs" % (time.monotonic() - t0),
           "exit status %s, domains left %s, QEMUs %s\n%s" % (status, left.split(), qemus, LIBVIRTD.log()))


def libvirt_unmanaged(env, topo):
    """A domain with a managed='no' hostdev of a NIC still on e1000e starts:
    the hook has iovirtd bind it to vfio-pci for domain:NAME before libvirt
    looks at it; the QEMU holds its group under libvirt's memlock; and
    destroying the domain gives the NIC back through the release hook."""
    nic = below(topo["ports"]["nic"])[0]
    group = group_of(nic)
    node, name = "/dev/vfio/%d" % group, "e2e-unmanaged"
    consumer = "domain:" + name
    titles = ["virsh create --paused of a type='qemu' domain with a managed='no' hostdev of %s (on e1000e): "
              "it starts, the hook bound %s to vfio-pci (%s exists)" % (nic, nic, node),
              "list-assignments shows group %d for %s, and status shows %s with 64 MiB" % (group, consumer, consumer),
              "its QEMU holds %s open and names %s on its command line" % (node, nic),
              "its QEMU runs with RLIMIT_MEMLOCK %d soft and hard (64 MiB + 1 GiB, libvirt's rule)" % MEMLOCK_64M,
              "virsh destroy: the release hook gives %s back to e1000e, %s is gone, list-assignments is empty" % (
                  nic, node),
              "libvirt called the hook with %s, then %s" % (", ".join(HOOK_START), ", ".join(HOOK_STOP))]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    was = len(LIBVIRTD.hook_calls())
    try:
        before = driver(nic)
        rc, out, err = LIBVIRTD.create(name, domain_xml(name, devices=hostdev_xml(nic, False)), "--paused")
        pid = qemu_pid(name)
        tap.ok(before == "e1000e" and rc == 0 and pid and driver(nic) == "vfio-pci" and os.path.exists(node),
               titles[0], "driver before %s, after %s; virsh exit %s: %s%s\n%s" % (
                   before, driver(nic), rc, out, err, LIBVIRTD.log()))
        held = consumers(env)
        status = {c["consumer"]: c for c in env.json("status")["consumers"]}.get(consumer, {})
        tap.ok(held == {consumer: [group]} and status.get("memory") == 64 << 20, titles[1],
               "assignments %s\nstatus %s" % (held, status))
        if pid is None:
            return fail_all(titles[2:], "domain %s has no QEMU" % name)
        tap.ok(node in vfio_open_by(pid) and nic in cmdline(pid), titles[2],
               "open: %s\n%s" % (vfio_open_by(pid), cmdline(pid)))
        limits = memlock_of(pid)
        tap.ok(limits == (MEMLOCK_64M, MEMLOCK_64M), titles[3],
               "QEMU %d: %s; iovirt's memlock for %s: %s" % (pid, limits, consumer, status.get("memlock")))
        rc, out, err = LIBVIRTD.virsh("destroy", name)

        def back():
            return driver(nic) == "e1000e" and not os.path.exists(node) and not consumers(env)
        tap.ok(rc == 0 and until(30, back), titles[4], "virsh exit %d: %s%s\ndriver %s, %s %s, assignments %s" % (
            rc, out, err, driver(nic), node, os.path.exists(node), consumers(env)))
        calls = LIBVIRTD.hook_calls()[was:]
        tap.ok(calls == ["%s %s" % (name, op) for op in HOOK_START + HOOK_STOP], titles[5], calls)
    finally:
        LIBVIRTD.destroy(name)
        env.ctl("release", "--consumer", consumer)


def libvirt_refused(env, topo):
    """A domain whose managed='yes' hostdev is the virtio-9p device the
    guest's root is on does not start: the hook refuses it before libvirt
    would unbind it, virsh's error carries the hook's reason, and the
    device keeps its driver."""
    root = topo["hostroot"]
    name = "e2e-critical"
    members = kernel_groups()[group_of(root)]
    titles = ["virsh create of a domain with a managed='yes' hostdev of %s (the guest's root filesystem) fails, "
              "its error giving iovirt's reason (HostCritical, mounted at /)" % root,
              "the driver links of %s's group are as they were, no domain runs and iovirtd holds nothing" % root]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    try:
        before = {a: driver(a) for a in members}
        rc, out, err = LIBVIRTD.create(name, domain_xml(name, devices=hostdev_xml(root, True)), "--paused")
        after = {a: driver(a) for a in members}
        tap.ok(rc != 0 and "HostCritical" in err and "mounted at /" in err and root in err, titles[0],
               "virsh exit %s: %s%s\n%s" % (rc, out, err, LIBVIRTD.log()))
        _, running, _ = LIBVIRTD.virsh("list", "--all", "--name")
        tap.ok(before == after and all(after.values()) and name not in running.split() and not consumers(env),
               titles[1], "drivers %s -> %s; domains %s; assignments %s" % (before, after, running.split(),
                                                                             consumers(env)))
    finally:
        LIBVIRTD.destroy(name)


def libvirt_plain(env, topo):
    """A domain with no hostdev starts through the hook without iovirtd
    being asked anything: the hook answers from the XML alone."""
    name = "e2e-plain"
    titles = ["virsh create --paused of a domain without a hostdev: it starts, and libvirt called the hook (%s)"
              % ", ".join(HOOK_START),
              "iovirtd was not asked: nothing in its log names %s, it holds nothing" % name]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    was = len(LIBVIRTD.hook_calls())
    logged = len(env.log())
    try:
        rc, out, err = LIBVIRTD.create(name, domain_xml(name), "--paused")
        calls = LIBVIRTD.hook_calls()[was:]
        pid = qemu_pid(name)
        tap.ok(rc == 0 and pid and calls == ["%s %s" % (name, op) for op in HOOK_START], titles[0],
               "virsh exit %s: %s%s\nhook calls %s\n%s" % (rc, out, err, calls, LIBVIRTD.log()))
        said = env.log()[logged:]
        tap.ok(name not in said and not consumers(env), titles[1], "iovirtd logged:\n%s" % said[-3000:])
    finally:
        LIBVIRTD.destroy(name)


# ---- libvirt domains as consumers: iovirtctl assign --to domain:NAME
# attaches the group (live, or to the config), release detaches it first
# and waits for the guest, and the hook hands out pool devices ----

# the time libvirt's detach API waits for QEMU's DEVICE_DELETED before it
# returns anyway, saying 'Device detached successfully'
UNPLUG_TIMEOUT = 5
# IOVIRT_DETACH_TIMEOUT of this boot's iovirtd (30 s by default): how long
# release waits, once libvirt's detach has returned, for a guest to let go
DETACH_TIMEOUT = 8
# what iovirtd reads below its root (IOVIRT_ROOT) besides its policy: /proc,
# /sys/fs/cgroup, /dev/vfio and /lib/modules, the guest's own through links
ROOT_LINKS = ("proc", "sys", "dev", "lib")
LIBVIRT_TIMES = []      # (what, seconds), for the host to report (timings())
ACPI = "  <features><acpi/></features>\n"
# libvirt adds no pcie-root-port for hotplug (it says 'No more available PCI
# slots'); it numbers a q35 domain's controllers in their order, so
# pcie-root comes first
SPARE_PORT = ("    <controller type='pci' index='0' model='pcie-root'/>\n"
              "    <controller type='pci' model='pcie-root-port'/>\n")
# QEMU 7.2's q35 hotplugs through ACPI by default, on pcie-root-ports too,
# and a guest without an OS never completes an ACPI unplug; this gives the
# root ports their native PCIe hotplug back, whose unplug QEMU completes
# on its own (DEVICE_DELETED within a second)
NATIVE = ("  <qemu:commandline><qemu:arg value='-global'/>"
          "<qemu:arg value='ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'/></qemu:commandline>\n")
POOL_REQUEST = "<iovirt:device xmlns:iovirt='https://iovirt.org/xmlns/domain/1' pool='%s'/>"


def libvirt_iovirtd(env):
    """iovirtd again, as the libvirt scenarios need it: IOVIRT_DETACH_TIMEOUT
    short, and a root of its own (IOVIRT_ROOT) whose /etc/iovirt/policy.d
    is the test's to write (the guest's /etc is the host's, read-only),
    with the guest's /proc, /sys, /dev and /lib linked in. Later restarts
    keep both."""
    root = os.path.join(env.root, "iovirt-root")
    env.policy = os.path.join(root, "etc", "iovirt", "policy.d")
    os.makedirs(env.policy)
    for d in ROOT_LINKS:
        os.symlink("/" + d, os.path.join(root, d))
    env.defaults = {"IOVIRT_DETACH_TIMEOUT": str(DETACH_TIMEOUT), "IOVIRT_ROOT": root}
    env.stop()
    env.start()


def hotplug_xml(name, native=True, metadata=""):
    """domain_xml's q35 domain with a spare pcie-root-port to hotplug into,
    native PCIe hotplug on it when NATIVE (else QEMU 7.2's ACPI hotplug),
    and METADATA in its <metadata>"""
    extra = ACPI + (NATIVE if native else "")
    if metadata:
        extra += "  <metadata>%s</metadata>\n" % metadata
    return domain_xml(name, "q35", SPARE_PORT, extra)


def start_domain(name, xml, running=False):
    """virsh create --paused of XML, then virsh resume when RUNNING; (its
    QEMU's pid, or None when it did not start, and what virsh said)"""
    rc, out, err = LIBVIRTD.create(name, xml, "--paused")
    said = "virsh create exit %d: %s%s" % (rc, out, err)
    if rc == 0 and running:
        rc, out, err = LIBVIRTD.virsh("resume", name)
        said += "virsh resume exit %d: %s%s" % (rc, out, err)
    return (qemu_pid(name) if rc == 0 else None), said


def domain_hostdevs(name, *flags):
    """the PCI addresses of domain NAME's hostdevs in virsh dumpxml FLAGS;
    None when libvirt has no such domain"""
    import xml.etree.ElementTree as ET
    rc, out, _ = LIBVIRTD.virsh("dumpxml", name, *flags)
    if rc != 0:
        return None
    found = []
    for h in ET.fromstring(out).iter("hostdev"):
        a = h.find("source/address")
        if a is not None:
            found.append("%04x:%02x:%02x.%x" % tuple(int(a.get(k), 16) for k in ("domain", "bus", "slot", "function")))
    return found


def where(env, nic, name, pid, inactive=False):
    """Where NIC is: its driver link and /dev/vfio node (the kernel), whether
    domain NAME's QEMU (PID) holds the node open, the hostdevs of virsh
    dumpxml (and with INACTIVE, of dumpxml --inactive), and iovirtd's
    records of its group"""
    group = group_of(nic)
    node = "/dev/vfio/%d" % group
    w = {"driver": driver(nic), "node": os.path.exists(node), "qemu holds it": bool(pid) and node in vfio_open_by(pid),
         "hostdevs": domain_hostdevs(name),
         "record": [(a["consumer"], a["phase"]) for a in env.json("list-assignments")["assignments"]
                    if a["group"] == group]}
    if inactive:
        w["config"] = domain_hostdevs(name, "--inactive")
    return w


def held(nic, name, phase="assigned", **more):
    """where() of NIC in running domain NAME's hands"""
    return dict({"driver": "vfio-pci", "node": True, "qemu holds it": True, "hostdevs": [nic],
                 "record": [("domain:" + name, phase)]}, **more)


def back(hostdevs, **more):
    """where() of a NIC on e1000e again, with what dumpxml then has"""
    return dict({"driver": "e1000e", "node": False, "qemu holds it": False, "hostdevs": hostdevs, "record": []},
                **more)


def error_of(doc):
    """(name, message) of an iovirtctl --json error document"""
    e = doc.get("error", {})
    return e.get("name"), e.get("message", "")


def domain_cleanup(env, name, pid, defined=False):
    """whatever a scenario left: domain NAME destroyed (and undefined), its
    QEMU gone, and what iovirtd still holds for it given back"""
    import signal
    if pid:
        try:
            os.kill(pid, signal.SIGCONT)        # one stopped on purpose would take libvirt 10 s to kill
        except OSError:
            pass
    LIBVIRTD.destroy(name)
    if defined:
        LIBVIRTD.virsh("undefine", name)
    if pid:
        gone(pid)
    if "domain:" + name in consumers(env):
        env.ctl("release", "--consumer", "domain:" + name)


def timed(what, f, *args):
    """F(ARGS), its time noted as WHAT for the report; returns (result, seconds)"""
    t0 = time.monotonic()
    result = f(*args)
    seconds = time.monotonic() - t0
    LIBVIRT_TIMES.append((what, round(seconds, 2)))
    return result, seconds


def domain_live(env, topo):
    """assign --to domain:NAME of a running domain attaches the group live
    and reports its QEMU's RLIMIT_MEMLOCK; release detaches it first and
    gives it back once libvirt reports it removed"""
    nic = below(topo["ports"]["nic2"])[0]
    node = "/dev/vfio/%d" % group_of(nic)
    name = "e2e-live"
    consumer = "domain:" + name
    titles = ["assign %s --to %s, a running q35 domain with native PCIe hotplug and a spare pcie-root-port: exit 0, "
              "consumer %s, attached live" % (nic, consumer, consumer),
              "its answer says RLIMIT_MEMLOCK need = have = %d (64 MiB + 1 GiB), covered, as /proc/PID/limits of the "
              "domain's QEMU says" % MEMLOCK_64M,
              "%s is on vfio-pci, the domain's QEMU holds %s, virsh dumpxml has the hostdev, and list-assignments "
              "records it for %s" % (nic, node, consumer),
              "release %s: exit 0 once the guest has let go: the hostdev has left dumpxml, the QEMU closed %s, e1000e "
              "is back and nothing is recorded" % (nic, node)]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    pid = None
    try:
        pid, said = start_domain(name, hotplug_xml(name), running=True)
        if not pid:
            return fail_all(titles, "%s\n%s" % (said, LIBVIRTD.log()))
        (rc, doc), _ = timed("assign --to domain:NAME, attached live", ctl_json, env, "assign", nic, "--to", consumer)
        lv = doc.get("libvirt", {})
        uuid = LIBVIRTD.virsh("domuuid", name)[1].strip()
        tap.ok(rc == 0 and doc.get("consumer") == consumer and lv.get("domain") == name and lv.get("uuid") == uuid and
               lv.get("attached") == ["live"], titles[0], "exit %d: %s\nvirsh domuuid: %s" % (rc, doc, uuid))
        limits = memlock_of(pid)
        tap.ok(lv.get("memlock") == {"need": MEMLOCK_64M, "have": MEMLOCK_64M, "covers": True} and
               limits == (MEMLOCK_64M, MEMLOCK_64M), titles[1], "answer %s\n/proc/%d/limits: %s" % (lv, pid, limits))
        now = where(env, nic, name, pid)
        tap.ok(now == held(nic, name), titles[2], now)
        (rc, out, err), took = timed("release, the guest letting go (DEVICE_REMOVED)", env.ctl, "release", nic)
        until(10, lambda: where(env, nic, name, pid) == back([]))     # QEMU may close the group just after
        now = where(env, nic, name, pid)
        tap.ok(rc == 0 and now == back([]), titles[3] + " (%.1f s)" % took,
               "exit %d: %s%s\n%s\n%s" % (rc, out, err, now, LIBVIRTD.log()))
    finally:
        domain_cleanup(env, name, pid)


def define_domain(name, xml):
    """virsh define of XML (written beside the hook); (exit, what virsh said)"""
    path = os.path.join(LIBVIRTD.dir, name + ".xml")
    with open(path, "w") as f:
        f.write(xml)
    rc, out, err = LIBVIRTD.virsh("define", path)
    return rc, "virsh define exit %d: %s%s" % (rc, out, err)


def domain_persistent(env, topo):
    """--persistent on a defined domain that runs: live and config, and
    release takes it out of both. A defined domain that does not run gets
    the group in its config, starts with it (the hook finds it held for
    the domain already), and gives it back when destroyed. Two domains:
    iovirtd answers a request with what libvirt said of the same name up
    to 10 s before (iovirtd-domain.c, SEEN_FRESH_USEC), even for another
    request, so one domain destroyed and assigned again at once would be
    taken as still running, and its assign refused ('The domain stopped
    while its device was being bound')."""
    nic = below(topo["ports"]["nic2"])[0]
    node = "/dev/vfio/%d" % group_of(nic)
    running, defined = "e2e-persist", "e2e-defined"
    titles = ["assign %s --to domain:%s --persistent, a defined domain that runs: exit 0, 'Attached to domain %s: "
              "live, and to its persistent config', its QEMU's RLIMIT_MEMLOCK covering libvirt's rule" % (
                  nic, running, running),
              "its QEMU holds %s, virsh dumpxml and dumpxml --inactive have the hostdev, list-assignments records it"
              % node,
              "release %s: exit 0, the hostdev is out of the running domain and out of its config, e1000e is back, "
              "nothing is recorded" % nic,
              "assign %s --to domain:%s, a defined domain that does not run: exit 0, attached to its config only (and "
              "no memlock: there is no QEMU), %s on vfio-pci and recorded" % (nic, defined, nic),
              "virsh start --paused: the hook finds the hostdev held for domain:%s already, the domain starts and its "
              "QEMU holds %s under RLIMIT_MEMLOCK %d" % (defined, node, MEMLOCK_64M),
              "virsh destroy: the release end hook gives %s back to e1000e and iovirtd forgets it; the config keeps "
              "the hostdev (the hook calls no libvirt), and release %s then says NotAssigned" % (nic, nic)]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    pid = pid2 = None
    try:
        rc, said = define_domain(running, hotplug_xml(running))
        rc2, out, err = LIBVIRTD.virsh("start", running, "--paused")
        pid = qemu_pid(running)
        if rc != 0 or rc2 != 0 or not pid:
            fail_all(titles[:3], "%s\nvirsh start exit %d: %s%s\n%s" % (said, rc2, out, err, LIBVIRTD.log()))
        else:
            rc, out, err = env.ctl("assign", nic, "--to", "domain:" + running, "--persistent")
            tap.ok(rc == 0 and "Attached to domain %s: live, and to its persistent config." % running in out and
                   "RLIMIT_MEMLOCK of its QEMU:" in out and "covering" in out, titles[0],
                   "exit %d: %s%s" % (rc, out, err))
            now = where(env, nic, running, pid, inactive=True)
            tap.ok(now == held(nic, running, config=[nic]), titles[1], now)
            rc, out, err = env.ctl("release", nic)
            until(10, lambda: where(env, nic, running, pid, inactive=True) == back([], config=[]))
            now = where(env, nic, running, pid, inactive=True)
            tap.ok(rc == 0 and now == back([], config=[]), titles[2], "exit %d: %s%s\n%s" % (rc, out, err, now))
        domain_cleanup(env, running, pid, defined=True)
        pid = None

        rc, said = define_domain(defined, hotplug_xml(defined))
        rc2, doc = ctl_json(env, "assign", nic, "--to", "domain:" + defined)
        lv = doc.get("libvirt", {})
        now = where(env, nic, defined, None, inactive=True)
        tap.ok(rc == 0 and rc2 == 0 and lv.get("attached") == ["config"] and "memlock" not in lv and
               "memlock_unknown" not in lv and
               now == dict(held(nic, defined, config=[nic]), **{"qemu holds it": False}),
               titles[3], "%s\nassign exit %d: %s\n%s" % (said, rc2, doc, now))
        rc, out, err = LIBVIRTD.virsh("start", defined, "--paused")
        pid2 = qemu_pid(defined) if rc == 0 else None
        now = where(env, nic, defined, pid2, inactive=True)
        limits = memlock_of(pid2) if pid2 else None
        tap.ok(rc == 0 and pid2 and now == held(nic, defined, config=[nic]) and limits == (MEMLOCK_64M, MEMLOCK_64M),
               titles[4], "virsh start exit %d: %s%s\n%s\nlimits %s\n%s" % (
                   rc, out, err, now, limits, LIBVIRTD.log()))
        rc, out, err = LIBVIRTD.virsh("destroy", defined)
        ok = until(30, lambda: where(env, nic, defined, None, inactive=True) == back([nic], config=[nic]))
        now = where(env, nic, defined, None, inactive=True)
        rc2, doc = ctl_json(env, "release", nic)
        tap.ok(rc == 0 and ok and rc2 == 1 and error_of(doc)[0] == "org.iovirt1.Error.NotAssigned", titles[5],
               "virsh destroy exit %d: %s%s\n%s\nrelease exit %d: %s" % (rc, out, err, now, rc2, doc))
    finally:
        domain_cleanup(env, running, pid, defined=True)
        domain_cleanup(env, defined, pid2, defined=True)


def domain_detach_refused(env, topo):
    """A guest that never lets go (ACPI hotplug, no OS to answer it):
    release waits IOVIRT_DETACH_TIMEOUT, refuses and moves nothing; the
    domain's end gives the device back through the hook"""
    nic = below(topo["ports"]["nic2"])[0]
    node = "/dev/vfio/%d" % group_of(nic)
    name = "e2e-stuck"
    consumer = "domain:" + name
    titles = ["assign %s --to %s, a running q35 domain with ACPI hotplug (QEMU 7.2's default): exit 0, 'Attached to "
              "domain %s: live', its QEMU's RLIMIT_MEMLOCK covering libvirt's rule" % (nic, consumer, name),
              "release %s, which the guest (no OS) never lets go: exit 1 after libvirt's %d s and IOVIRT_DETACH_TIMEOUT"
              "=%d s, saying the guest did not let go within %d s" % (nic, UNPLUG_TIMEOUT, DETACH_TIMEOUT,
                                                                    DETACH_TIMEOUT),
              "and nothing moved: %s stays on vfio-pci, the QEMU holds %s, dumpxml has the hostdev, list-assignments "
              "still records it for %s" % (nic, node, consumer),
              "virsh destroy: the release end hook gives %s back to e1000e, %s is gone, nothing is recorded" % (
                  nic, node)]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    pid = None
    try:
        pid, said = start_domain(name, hotplug_xml(name, native=False), running=True)
        if not pid:
            return fail_all(titles, "%s\n%s" % (said, LIBVIRTD.log()))
        rc, out, err = env.ctl("assign", nic, "--to", consumer)
        if not tap.ok(rc == 0 and "Attached to domain %s: live" % name in out and "RLIMIT_MEMLOCK of its QEMU:" in out
                      and "covering" in out, titles[0], "exit %d: %s%s" % (rc, out, err)):
            return fail_all(titles[1:], "not attached")
        (rc, out, err), took = timed("release refused, the guest not letting go", env.ctl, "release", nic)
        tap.ok(rc == 1 and "did not let go" in err and "within %d s" % DETACH_TIMEOUT in err and
               DETACH_TIMEOUT <= took <= DETACH_TIMEOUT + UNPLUG_TIMEOUT + 15, titles[1] + " (%.1f s)" % took,
               "exit %d after %.1f s: %s%s" % (rc, took, out, err))
        now = where(env, nic, name, pid)
        tap.ok(now == held(nic, name), titles[2], now)
        rc, out, err = LIBVIRTD.virsh("destroy", name)
        ok = until(30, lambda: where(env, nic, name, pid) == back(None))
        tap.ok(rc == 0 and ok, titles[3], "virsh destroy exit %d: %s%s\n%s" % (
            rc, out, err, where(env, nic, name, pid)))
    finally:
        domain_cleanup(env, name, pid)


def domain_bad_input(env, topo):
    """A domain libvirt does not have; a domain without a free slot (the
    attach fails, so the group goes back); a domain that stops during the
    assign: during libvirt's attach (its QEMU stopped, so that the attach
    cannot finish before it is killed). One that stops earlier, while
    iovirt binds, is not run: libvirt's release end hook then waits for
    the assign, whose next libvirt call waits for the hook (libvirt holds
    the domain while its hook runs), until the hook gives up after 300 s,
    all of libvirtd stuck meanwhile."""
    import signal
    nic = below(topo["ports"]["nic2"])[0]
    group = group_of(nic)
    node = "/dev/vfio/%d" % group
    titles = ["assign %s --to domain:nosuch, a domain libvirt does not have: exit 1, InvalidArgument, \"has no "
              "domain 'nosuch'\"; nothing moves, nothing is recorded" % nic,
              "assign %s --to a q35 domain without a spare pcie-root-port: exit 1, org.iovirt1.Error.Libvirt "
              "giving libvirt's 'No more available PCI slots' and that the group went back; %s is on e1000e again, "
              "nothing recorded" % (nic, nic),
              "a domain that stops during assign (its QEMU stopped with SIGSTOP, so that libvirt's attach cannot "
              "finish, and killed once iovirt has bound %s and libvirt has begun attaching it): assign exits 1, "
              "org.iovirt1.Error.Libvirt, saying the group went back" % nic,
              "and %s is on e1000e again, %s is gone, nothing is recorded, and the domain is gone" % (nic, node)]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    rc, doc = ctl_json(env, "assign", nic, "--to", "domain:nosuch")
    error, message = error_of(doc)
    tap.ok(rc == 1 and error == "org.iovirt1.Error.InvalidArgument" and "has no domain 'nosuch'" in message and
           driver(nic) == "e1000e" and not os.path.exists(node) and not consumers(env), titles[0],
           "exit %d: %s\ndriver %s, assignments %s" % (rc, doc, driver(nic), consumers(env)))

    name, pid = "e2e-noslot", None
    try:
        pid, said = start_domain(name, domain_xml(name, "q35", "", ACPI + NATIVE))
        if pid:
            rc, doc = ctl_json(env, "assign", nic, "--to", "domain:" + name)
            error, message = error_of(doc)
            now = where(env, nic, name, pid)
            tap.ok(rc == 1 and error == "org.iovirt1.Error.Libvirt" and "No more available PCI slots" in message and
                   "went back to its host driver" in message and now == back([]), titles[1],
                   "exit %d: %s\n%s" % (rc, doc, now))
        else:
            tap.ok(False, titles[1], "%s\n%s" % (said, LIBVIRTD.log()))
    finally:
        domain_cleanup(env, name, pid)

    name, pid = "e2e-dies", None
    p = None
    try:
        pid, said = start_domain(name, hotplug_xml(name))
        if not pid:
            return fail_all(titles[2:], "%s\n%s" % (said, LIBVIRTD.log()))
        os.kill(pid, signal.SIGSTOP)
        since = len(env.log()), log_size(LIBVIRTD_LOG)
        t0 = time.monotonic()
        p = subprocess.Popen([IOVIRTCTL, "--json", "assign", nic, "--to", "domain:" + name], env=env.bus.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # libvirt's attach has begun (it holds the domain's job, so that its
        # stop waits for the attach to fail), and cannot finish
        attaching = "Setting driver and domain information for PCI device " + nic
        until(60, lambda: attaching in read_from(LIBVIRTD_LOG, since[1]) or p.poll() is not None)
        at_kill = (driver(nic), p.poll(), attaching in read_from(LIBVIRTD_LOG, since[1]),
                   round(time.monotonic() - t0, 2))
        stuck = ""
        if at_kill[1:3] == (None, False):
            stuck = "libvirt had not begun the attach within 60 s:\n" + stuck_report(env, *since)
        os.kill(pid, signal.SIGKILL)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stuck += "assign had not returned 60 s after the kill:\n" + stuck_report(env, *since, unblock=True)
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
        took = round(time.monotonic() - t0, 2)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = {"unparsed": out}
        error, message = error_of(doc)
        tap.ok(at_kill[:3] == ("vfio-pci", None, True) and not stuck and p.returncode == 1 and
               error == "org.iovirt1.Error.Libvirt" and "went back to its host driver" in message, titles[2],
               "at the kill (driver, assign's exit, libvirt attaching, seconds): %s\nexit %s after %.1f s: %s\n%s\n%s"
               % (at_kill, p.returncode, took, doc, err, stuck or LIBVIRTD.log()))

        def settled():
            _, running, _ = LIBVIRTD.virsh("list", "--all", "--name", timeout=30)
            return where(env, nic, name, None) == back(None) and name not in running.split()
        tap.ok(until(30, settled), titles[3], "%s\n%s" % (where(env, nic, name, None), env.log()[-3000:]))
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        domain_cleanup(env, name, pid)


def log_size(path):
    """PATH's size, 0 when it is not there yet"""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_from(path, offset):
    """what PATH holds from OFFSET on"""
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return ""


def stuck_report(env, iovirtd_since, libvirtd_since, unblock=False):
    """For a call that does not return: the hooks running (and how long),
    whether libvirtd answers, and what iovirtd and libvirtd logged since;
    with UNBLOCK, the hooks are then killed, so that a libvirtd waiting on
    one goes on (libvirt ignores what release end exits with)."""
    import signal
    ps = subprocess.run(["ps", "-eo", "pid,etimes,args"], capture_output=True, text=True, timeout=30).stdout
    hooks = [line.strip() for line in ps.splitlines() if "libvirt-hook" in line]
    try:
        rc, out, err = LIBVIRTD.virsh("list", "--all", timeout=5)
        answer = "virsh list exit %d: %s%s" % (rc, out, err)
    except subprocess.TimeoutExpired:
        answer = "virsh list: no answer within 5 s"
    libvirtd = [line for line in read_from(LIBVIRTD_LOG, libvirtd_since).splitlines()
                if "virPCIDevice" not in line][-25:]
    if unblock:
        for line in hooks:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    return "hooks running (pid, seconds, command)%s: %s\n%s\niovirtd logged:\n%s\nlibvirtd logged:\n%s\n" % (
        ", killed" if unblock and hooks else "", hooks, answer, env.log()[iovirtd_since:][-2500:], "\n".join(libvirtd))


def domain_pool(env, topo):
    """A domain whose metadata asks for a device of a pool gets one: bound
    by the hook at prepare begin, attached live by the job it queues at
    started begin; and given back when the domain is destroyed"""
    nic = below(topo["ports"]["nic2"])[0]
    group = group_of(nic)
    node = "/dev/vfio/%d" % group
    name = "e2e-pool"
    consumer = "domain:" + name
    conf = os.path.join(env.policy or "/nonexistent", "50-e2e.conf")
    titles = ["a policy file with pool 'spare' holding %s, read by iovirtctl reload" % nic,
              "virsh create --paused of a domain whose metadata asks for a device of pool spare: it starts",
              "the attach the hook queued gives it %s: its QEMU holds %s, and iovirtd logs 'Attached group %d, a pool "
              "device, to domain %s'" % (nic, node, group, name),
              "dumpxml has the hostdev, list-assignments records it for %s, the QEMU's RLIMIT_MEMLOCK is %d, and "
              "iovirtd warned of no shortfall" % (consumer, MEMLOCK_64M),
              "virsh destroy: the release end hook gives %s back to e1000e, %s is gone, nothing is recorded" % (
                  nic, node),
              "the policy file removed and read again (iovirtctl reload): no file, no pool"]
    if LIBVIRTD.why or not env.policy:
        return fail_all(titles, LIBVIRTD.why or "iovirtd has no policy directory of the test's")
    pid = None
    try:
        with open(conf, "w") as f:
            f.write("[Pool spare]\nDevices=%s\n" % nic)
        rc, out, err = env.ctl("reload")
        policy = env.json("policy")
        if not tap.ok(rc == 0 and [p["name"] for p in policy["pools"]] == ["spare"], titles[0],
                      "reload exit %d: %s%s\n%s" % (rc, out, err, policy)):
            return fail_all(titles[1:-1], "no pool")
        logged = len(env.log())
        pid, said = start_domain(name, hotplug_xml(name, metadata=POOL_REQUEST % "spare"))
        t0 = time.monotonic()
        if not tap.ok(pid, titles[1], "%s\n%s" % (said, LIBVIRTD.log())):
            return fail_all(titles[2:-1], "the domain did not start")
        attached = "Attached group %d, a pool device, to domain %s" % (group, name)
        ok = until(60, lambda: node in vfio_open_by(pid) and attached in env.log()[logged:])
        LIBVIRT_TIMES.append(("the pool device attached, after virsh create returned", round(time.monotonic() - t0, 2)))
        said = env.log()[logged:]
        tap.ok(ok, titles[2], "QEMU holds %s\niovirtd logged:\n%s" % (vfio_open_by(pid), said[-3000:]))
        now = where(env, nic, name, pid)
        limits = memlock_of(pid)
        warned = [line for line in said.splitlines() if "RLIMIT_MEMLOCK" in line or "cannot be told" in line]
        tap.ok(now == held(nic, name) and limits == (MEMLOCK_64M, MEMLOCK_64M) and not warned, titles[3],
               "%s\nlimits %s\nwarnings %s" % (now, limits, warned))
        rc, out, err = LIBVIRTD.virsh("destroy", name)
        ok = until(30, lambda: where(env, nic, name, pid) == back(None))
        tap.ok(rc == 0 and ok, titles[4], "virsh destroy exit %d: %s%s\n%s" % (
            rc, out, err, where(env, nic, name, pid)))
    finally:
        domain_cleanup(env, name, pid)
        if os.path.exists(conf):
            os.unlink(conf)
        rc, out, err = env.ctl("reload")
        policy = env.json("policy")
        tap.ok(rc == 0 and not policy["pools"] and not policy["files"], titles[-1],
               "reload exit %d: %s%s\n%s" % (rc, out, err, policy))


def domain_managed(env, topo):
    """A managed='yes' hostdev of a free NIC: libvirt binds it itself, the
    hook records it for the domain (phase libvirt), iovirt refuses it to
    others and does not move it; destroyed, libvirt gives it back and the
    record goes"""
    nic = below(topo["ports"]["nic"])[0]
    group = group_of(nic)
    node = "/dev/vfio/%d" % group
    name = "e2e-managed"
    consumer = "domain:" + name
    titles = ["virsh create --paused of a domain with a managed='yes' hostdev of %s (on e1000e, not host-critical): "
              "it starts, libvirt bound %s to vfio-pci, its QEMU holds %s" % (nic, nic, node),
              "list-assignments records group %d for %s in phase libvirt" % (group, consumer),
              "assign %s --to vm-other is refused (InUse, naming %s), and so is release %s; nothing moves" % (
                  nic, consumer, nic),
              "virsh destroy: libvirt gives %s back to e1000e, and the release end hook has iovirtd forget it" % nic]
    if LIBVIRTD.why:
        return fail_all(titles, LIBVIRTD.why)
    pid = None
    try:
        pid, said = start_domain(name, domain_xml(name, devices=hostdev_xml(nic, True)))
        now = where(env, nic, name, pid)
        tap.ok(pid and now["driver"] == "vfio-pci" and now["qemu holds it"] and now["hostdevs"] == [nic], titles[0],
               "%s\n%s\n%s" % (said, now, LIBVIRTD.log()))
        tap.ok(now["record"] == [(consumer, "libvirt")], titles[1], now)
        rc, doc = ctl_json(env, "assign", nic, "--to", "vm-other")
        rc2, doc2 = ctl_json(env, "release", nic)
        after = where(env, nic, name, pid)
        refusals = [error_of(doc), error_of(doc2)]
        tap.ok(rc == 1 and rc2 == 1 and all(e == "org.iovirt1.Error.InUse" and consumer in m for e, m in refusals) and
               after == now, titles[2], "assign exit %d, release exit %d: %s\n%s" % (rc, rc2, refusals, after))
        rc, out, err = LIBVIRTD.virsh("destroy", name)
        ok = until(30, lambda: where(env, nic, name, pid) == back(None))
        tap.ok(rc == 0 and ok, titles[3], "virsh destroy exit %d: %s%s\n%s\n%s" % (
            rc, out, err, where(env, nic, name, pid), LIBVIRTD.log()))
    finally:
        domain_cleanup(env, name, pid)


SCENARIO_TIMES = []     # (scenario, seconds), for the host to report (timings())


def keep_logs(env):
    """iovirtd's log, and libvirtd's and the hook's when libvirtd ran, into
    the results share, and TAP's details out: after every scenario, so that
    a guest killed for taking too long still leaves them"""
    sys.stdout.flush()
    paths = [env.daemon.log_path] if env.daemon else []
    if LIBVIRTD.dir:
        paths += [LIBVIRTD_LOG, os.path.join(LIBVIRTD.dir, "libvirtd.stderr"), LIBVIRTD.hook_log]
    for path in paths:
        if os.path.exists(path):
            shutil.copy(path, os.path.join(RESULTS, os.path.basename(path)))


def timings(env):
    """what iovirtd logged of the kernel's bind times, the scenarios' times,
    and the SR-IOV and libvirt timings, for the host to report"""
    moves = re.findall(r"(\S+) went to (\S+(?: driver)?) in ([0-9.]+) ms", env.log())
    with open(os.path.join(RESULTS, "timings.json"), "w") as f:
        json.dump([{"address": a, "to": t, "ms": float(ms)} for a, t, ms in moves], f)
    if SRIOV_TIMES:
        with open(os.path.join(RESULTS, "sriov.json"), "w") as f:
            json.dump(SRIOV_TIMES, f)
    with open(os.path.join(RESULTS, "scenarios.json"), "w") as f:
        json.dump(SCENARIO_TIMES, f)
    if LIBVIRT_TIMES:
        with open(os.path.join(RESULTS, "libvirt.json"), "w") as f:
            json.dump(LIBVIRT_TIMES, f)


SCENARIOS = {
    "main": [("discovery", discovery), ("interrupts", lambda e, t: check_interrupts(e, "pass")),
             ("round trip", round_trip), ("whole groups", whole_groups),
             ("retries and parallel transactions", retries_and_parallel), ("host guard", host_guard),
             ("real QEMU", real_qemu), ("memlock raised by iovirt", memlock_raised),
             ("crash safety", crash_safety), ("hotplug", live),
             ("SR-IOV on the NVMe controller", sriov_nvme), ("discovery speed", discovery_speed)],
    "intremap-off": [("unsafe interrupts", unsafe_interrupts)],
    "igb": [("igb's VFs by hand", igb_kernel), ("SR-IOV on igb", sriov_igb), ("SR-IOV timing", sriov_timing),
            ("SR-IOV persisted across restarts", sriov_persist)],
    "numa": [("NUMA facts", numa_facts), ("NUMA policies for a process", numa_policy)],
    # the managed='yes' domain first: libvirt 9.0 keeps a device it has seen
    # managed='no' on its list of inactive devices, marked unmanaged, and
    # then never gives it back to its host driver after a managed='yes'
    # domain ('Not reattaching unmanaged PCI device' in libvirtd.log)
    "libvirt": [("libvirtd starts", libvirtd_start),
                ("a managed='yes' hostdev recorded for its domain", domain_managed),
                ("a domain with a managed='no' hostdev", libvirt_unmanaged),
                ("a domain with a host-critical managed='yes' hostdev", libvirt_refused),
                ("a domain without a hostdev", libvirt_plain),
                ("assign --to domain:NAME, attached live, and release", domain_live),
                ("assign --to domain:NAME --persistent, and to a domain that does not run", domain_persistent),
                ("a detach the guest never completes", domain_detach_refused),
                ("a domain that does not exist, has no free slot, or stops during assign", domain_bad_input),
                ("a pool device handed out through the hook", domain_pool),
                ("libvirtd stops", libvirtd_stop)],
}


def main():
    topo = CONFIG["topology"]
    env = Env()
    udevd = None
    if os.path.exists(UDEVD):       # what turns the kernel's uevents into the ones iovirtd hears
        udevd = subprocess.Popen([UDEVD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["udevadm", "settle", "--timeout=60"], capture_output=True)
    try:
        t0 = time.monotonic()
        env.start()
        ready = time.monotonic() - t0
        rc, _, err = env.ctl("list-groups")
        tap.ok(env.daemon.poll() is None and rc == 0, "iovirtd is ready on the real kernel (%.1f s) and answers"
               % ready, err)
        for name, scenario in SCENARIOS[CONFIG["boot"]]:
            t0 = time.monotonic()
            try:
                scenario(env, topo)
            except Exception:      # one broken scenario must not hide the others
                import traceback
                tap.ok(False, "%s ran to its end" % name, traceback.format_exc())
                if env.daemon is None or env.daemon.poll() is not None:
                    env.start()
            SCENARIO_TIMES.append((name, round(time.monotonic() - t0, 1)))
            keep_logs(env)
            print("scenario %s: %.1f s" % (name, time.monotonic() - t0), file=sys.stderr, flush=True)
        timings(env)
        env.stop()
        tap.ok(env.stops and not any(env.stops), "iovirtd exited cleanly each of the %d times it was stopped" %
               len(env.stops), "exit statuses %s; its log says why" % env.stops)
    finally:
        env.stop()
        env.bus.stop()
        if udevd:
            udevd.terminate()
        keep_logs(env)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
