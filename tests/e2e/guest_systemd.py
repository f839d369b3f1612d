#!/usr/bin/python3
"""Runs inside the e2e guest's systemd boot (tests/e2e/run-e2e.py; the root
was prepared by tests/e2e/systemd_root.py): systemd is PID 1, iovirt is
installed where meson install puts it, and iovirtd runs only as systemd
starts it, by D-Bus activation through its unit, inside that unit's
sandbox. This script is iovirt-e2e.service, a plain root service.

It checks that the unit, as shipped, lets iovirtd do its work on a real
kernel (assign and release, VFs, a process of another user, libvirtd,
vfio-pci loaded when missing), that the sandbox denies what it should
(writes outside the unit's ReadWritePaths=, IP traffic, device nodes), and
reports systemd-analyze security. Evidence is the kernel's: driver links,
/sys/kernel/iommu_groups, /sys/module, /proc/PID/limits, errno values.
argv[1] is the config the host wrote (as for guest.py, whose helpers and
scenarios this reuses with an Env that is the installed unit).
"""

import errno
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import tempfile
import time

import guest
from guest import tap, driver, group_of, below, until, memlock_of, fail_all, MEMLOCK_64M, PCI

CONFIG = guest.CONFIG
RESULTS = guest.RESULTS
INSTALLED = CONFIG["installed"]          # {installed path: what the build made}
UNIT = "iovirtd.service"
WATCHDOG_SEC = 10                        # tests/e2e/systemd_root.py's drop-in
FIGURES = []                            # (what, value) for the host's report


def installed(suffix):
    """the installed path of the build's SUFFIX (cli/iovirtctl, ...)"""
    found = [dest for dest, built in INSTALLED.items() if built.endswith("/" + suffix)]
    if len(found) != 1:
        raise RuntimeError("meson introspect --installed names %s %d times: %s" % (suffix, len(found), INSTALLED))
    return found[0]


IOVIRTCTL = installed("cli/iovirtctl")
IOVIRTD = installed("daemon/iovirtd")


def sh(*cmd, timeout=120):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def show(*props, unit=UNIT):
    """systemctl show UNIT's PROPS: {name: value}"""
    _, out, _ = sh("systemctl", "show", unit, "-p", ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(*args):
    return sh("journalctl", "-b", "--no-pager", "-o", "cat", *args)[1]


def unit_journal():
    """the end of iovirtd.service's journal, systemd's lines about it included,
    with times: what iovirtd did before a watchdog timeout"""
    return sh("journalctl", "-b", "--no-pager", "-o", "short-monotonic", "-u", UNIT)[1][-2500:]


def name_owner_pid():
    """the pid owning org.iovirt1 on the system bus, or None"""
    rc, out, _ = sh("busctl", "--system", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                    "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", "org.iovirt1")
    return int(out.split()[1]) if rc == 0 else None


class UnitEnv:
    """guest.py's Env, for the installed iovirtd: the system bus, the unit,
    its journal"""

    def __init__(self):
        self.daemon = None
        self.stops = []

    def ctl(self, *args):
        p = subprocess.run([IOVIRTCTL] + list(args), env=dict(os.environ, COLUMNS="200"), capture_output=True,
                           text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args, codes=(0,)):
        rc, out, err = self.ctl("--json", *args)
        if rc not in codes:
            raise RuntimeError("iovirtctl --json %s: exit %d: %s" % (" ".join(args), rc, err))
        return json.loads(out)

    def call(self, method, *args):
        p = subprocess.run(["gdbus", "call", "--system"] + guest.DEST + ["org.iovirt1.Manager." + method] +
                           [str(a) for a in args], capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout + p.stderr

    def log(self):
        return journal("-u", UNIT)


ACTIVATION = {}         # what activation() saw: MainPID, for the checks that it never changed


# ---- the install ----

def install_read(env, topo):
    """what meson install put where the host's own daemons read it"""
    unit = installed("data/iovirtd.service")
    s = show("FragmentPath", "ExecStart", "LoadState")
    same = False
    try:
        same = open(s.get("FragmentPath", "")).read() == open(INSTALLED[unit]).read()
    except OSError:
        pass
    tap.ok(s.get("LoadState") == "loaded" and os.path.realpath(s.get("FragmentPath", "")) == os.path.realpath(unit)
           and same and "path=%s " % IOVIRTD in s.get("ExecStart", ""),
           "systemd loads %s from %s, the built unit, running %s" % (UNIT, unit, IOVIRTD), s)
    policy = installed("polkit-1/actions/org.iovirt1.policy")
    actions = sorted(re.findall(r'<action id="([^"]+)"', open(policy).read()))
    rc, out, err = sh("pkaction")
    known = sorted(a for a in out.split() if a.startswith("org.iovirt1."))
    tap.ok(actions and known == actions,
           "polkitd knows iovirt's %d actions (pkaction), read from the installed %s" % (len(actions), policy),
           "pkaction lists %s; the file has %s\n%s" % (known, actions, err))
    rc, out, err = sh("busctl", "--system", "list", "--activatable", "--no-legend")
    tap.ok(any(line.split()[:1] == ["org.iovirt1"] for line in out.splitlines()),
           "dbus-daemon lists org.iovirt1 as activatable (the installed service file)", out + err)


# ---- activation and the watchdog ----

def unload_vfio(env, topo):
    """vfio-pci as a host without it: not loaded when iovirtd starts"""
    rc, out, err = sh("modprobe", "-r", "vfio-pci", "vfio_iommu_type1")
    gone = not os.path.exists("/sys/module/vfio_pci") and not os.path.exists("/sys/bus/pci/drivers/vfio-pci")
    tap.ok(rc == 0 and gone, "modprobe -r vfio-pci: the guest kernel has no vfio-pci driver before iovirtd starts",
           (rc, out, err))


def activation(env, topo):
    before = show("ActiveState", "MainPID")
    owner = name_owner_pid()
    tap.ok(before == {"ActiveState": "inactive", "MainPID": "0"} and owner is None,
           "before any iovirtctl call, iovirtd.service is inactive and nobody owns org.iovirt1", (before, owner))
    t0 = time.monotonic()
    rc, out, err = env.ctl("list-groups")
    took = time.monotonic() - t0
    FIGURES.append(("first iovirtctl call, activation included", "%.1f s" % took))
    s = show("ActiveState", "SubState", "Type", "MainPID", "NRestarts", "WatchdogUSec", "StatusText", "Result")
    pid = int(s.get("MainPID", "0"))
    exe = os.readlink("/proc/%d/exe" % pid) if pid else None
    ACTIVATION.update(pid=pid)
    tap.ok(rc == 0 and "directly" not in err and s.get("ActiveState") == "active" and s.get("SubState") == "running"
           and s.get("Type") == "notify" and s.get("StatusText") == "Serving org.iovirt1" and exe == IOVIRTD and
           name_owner_pid() == pid,
           "the first iovirtctl call starts iovirtd through its unit (Type=notify, READY and STATUS reached; the "
           "main pid runs %s and owns org.iovirt1) (%.1f s)" % (IOVIRTD, took), (rc, err, s, exe))
    bus = journal("-u", "dbus.service")
    tap.ok("Activating via systemd: service name='org.iovirt1' unit='iovirtd.service'" in bus and
           "Serving org.iovirt1" in env.log(),
           "dbus-daemon activated it via systemd, and iovirtd's own lines are in the journal of its unit",
           "dbus:\n%s\niovirtd:\n%s" % (bus[-2000:], env.log()[-2000:]))
    tap.ok(s.get("NRestarts") == "0" and s.get("WatchdogUSec") == "%ds" % WATCHDOG_SEC,
           "WatchdogSec=%d (the test's drop-in), no restart" % WATCHDOG_SEC, s)
    m = show("ActiveState", "Result", unit="modprobe@vfio.service")
    tap.ok(m.get("Result") == "success" and os.path.exists("/sys/module/vfio") and
           not os.path.exists("/sys/module/vfio_pci"),
           "systemd loaded the vfio core before iovirtd (modprobe@vfio.service), so that DeviceAllow=char-vfio "
           "resolves; vfio-pci is still not loaded", (m, os.path.exists("/sys/module/vfio")))


def watchdog(env, topo, periods=2):
    """iovirtd pings the watchdog: systemd's WatchdogTimestamp moves on for
    PERIODS watchdog periods (polled, with a deadline), with no restart"""
    def stamp():
        return int(show("WatchdogTimestampMonotonic").get("WatchdogTimestampMonotonic", "0") or 0)
    first = stamp()
    seen = {first}
    end = time.monotonic() + periods * WATCHDOG_SEC + 30

    def fed():
        seen.add(stamp())
        return first and max(seen) - first >= periods * WATCHDOG_SEC * 1000000
    ok = until(end - time.monotonic(), fed)
    s = show("ActiveState", "MainPID", "NRestarts")
    tap.ok(ok and s == {"ActiveState": "active", "MainPID": str(ACTIVATION.get("pid")), "NRestarts": "0"},
           "the watchdog is fed: systemd saw %d pings over %d periods of %d s, the same main pid, no restart" % (
               len(seen), periods, WATCHDOG_SEC), "%s %s\n%s" % (sorted(seen), s, unit_journal()))


# ---- inside the sandbox ----

def bind_by_hand(addr, drv):
    """ADDR onto DRV as driverctl does it (override, unbind, probe), outside
    iovirtd; returns the driver it ends on"""
    with open(os.path.join(PCI, addr, "driver_override"), "w") as f:
        f.write(drv if drv == "vfio-pci" else "\n")
    if driver(addr):
        with open(os.path.join(PCI, addr, "driver", "unbind"), "w") as f:
            f.write(addr)
    with open("/sys/bus/pci/drivers_probe", "w") as f:
        f.write(addr)
    return driver(addr)


def nodes_seen(env, topo):
    """a device node the kernel makes after iovirtd started (a VFIO group's,
    the NIC bound to vfio-pci by hand) is there in iovirtd's mount namespace"""
    nic = below(topo["ports"]["nic"])[0]
    node = "/dev/vfio/%d" % group_of(nic)
    pid = show("MainPID")["MainPID"]
    sh("modprobe", "vfio-pci")
    try:
        bound = bind_by_hand(nic, "vfio-pci")
        here = until(10, lambda: os.path.exists(node))
        rc, out, err = sh("nsenter", "-t", pid, "-m", "--", "sh", "-c",
                          "ls -la /dev/vfio; test -e %s; echo exists=$?; findmnt -R -o TARGET,SOURCE,FSTYPE,OPTIONS /dev"
                          % node)
        tap.ok(bound == "vfio-pci" and here and "exists=0" in out,
               "%s, made by the kernel after iovirtd started, is there in iovirtd's mount namespace" % node,
               (bound, here, rc, out, err))
        # access(F_OK), as iovirtd waits for the node: the kernel asks the
        # device cgroup (DevicePolicy=) even for F_OK, and a vfio major that
        # was not loaded when the unit started is in none of its rules
        seen, where = in_cgroup(unit_procs(), ACCESS_PROBE, node)
        tap.ok(UNIT in where and seen == {"access F_OK": True},
               "and a process in iovirtd's cgroup sees it: access(%s, F_OK) succeeds under DevicePolicy=closed" % node,
               (seen, where))
    finally:
        bind_by_hand(nic, "e1000e")


def vfio_by_iovirtd(env, topo):
    """vfio-pci missing: iovirtd's modprobe, run inside the unit's sandbox
    (CAP_SYS_MODULE, @module), loads it during an assign"""
    nic = below(topo["ports"]["nic"])[0]
    missing = not os.path.exists("/sys/module/vfio_pci")
    rc, out, err = env.ctl("assign", nic, "--to", "vm-modprobe")
    tap.ok(missing and rc == 0 and os.path.exists("/sys/module/vfio_pci") and driver(nic) == "vfio-pci" and
           os.path.exists("/dev/vfio/%d" % group_of(nic)),
           "assign with vfio-pci unloaded: iovirtd loads it, %s's driver link is vfio-pci, /dev/vfio/%d exists" % (
               nic, group_of(nic)), (missing, rc, out, err, driver(nic)))
    rc, out, err = env.ctl("release", nic)
    tap.ok(rc == 0 and driver(nic) == "e1000e", "release: e1000e is back", (rc, out, err, driver(nic)))


def memlock_other_user(env, topo):
    """pid:PID of a process of nobody: its RLIMIT_MEMLOCK raised by iovirtd
    (prlimit: CAP_SYS_RESOURCE) and /dev/vfio/N given to nobody (chown),
    both given back on release"""
    import resource
    nic = below(topo["ports"]["nic"])[0]
    node = "/dev/vfio/%d" % group_of(nic)
    nobody = pwd.getpwnam("nobody")

    def drop():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (16 << 20, 16 << 20))
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    p = subprocess.Popen(["sleep", "600"], preexec_fn=drop)
    titles = ["assign %s --to pid:PID --memory 64M, PID a process of nobody: exit 0, vfio-pci, %s owned by nobody" % (
                  nic, node),
              "/proc/PID/limits: Max locked memory raised from 16 MiB to %d soft and hard" % MEMLOCK_64M,
              "release: /proc/PID/limits is back to 16 MiB, e1000e is back and %s is gone" % node]
    try:
        before = memlock_of(p.pid)
        rc, out, err = env.ctl("assign", nic, "--to", "pid:%d" % p.pid, "--memory", "64M")
        owner = os.stat(node).st_uid if os.path.exists(node) else None
        if not tap.ok(rc == 0 and driver(nic) == "vfio-pci" and owner == nobody.pw_uid, titles[0],
                      (rc, out, err, driver(nic), owner, journal("-u", UNIT)[-1500:])):
            return fail_all(titles[1:], "not assigned")
        raised = memlock_of(p.pid)
        tap.ok(before == (16 << 20, 16 << 20) and raised == (MEMLOCK_64M, MEMLOCK_64M), titles[1], (before, raised))
        rc, out, err = env.ctl("release", nic)
        after = memlock_of(p.pid)
        tap.ok(rc == 0 and after == before and driver(nic) == "e1000e" and not os.path.exists(node), titles[2],
               (rc, out, err, after, driver(nic)))
    finally:
        p.kill()
        p.wait()
        if driver(nic) == "vfio-pci":
            env.ctl("release", nic)


def libvirtd(env, topo):
    """libvirtd started by its own units (socket and service), reached from
    iovirtd's sandbox: assign --to domain:NAME of a running domain attaches
    live, release detaches (guest.py's domain_live, on this boot's NIC)"""
    rc, out, err = sh("systemctl", "start", "libvirtd.service", timeout=180)
    up = until(60, lambda: guest.LIBVIRTD.virsh("uri")[0] == 0) if rc == 0 else False
    guest.LIBVIRTD.dir = tempfile.mkdtemp(prefix="libvirt.")
    guest.LIBVIRTD.why = None if up else "libvirtd.service did not start: %s%s\n%s" % (
        out, err, journal("-u", "libvirtd.service")[-2000:])
    tap.ok(up, "libvirtd.service starts (its socket units, our qemu.conf) and virsh reaches it", guest.LIBVIRTD.why)
    guest.domain_live(env, dict(topo, ports=dict(topo["ports"], nic2=topo["ports"]["nic"])))


def sriov(env, topo):
    guest.sriov_nvme(env, topo)


# ---- what the sandbox denies ----

# run in iovirtd's mount namespace (nsenter -m: root with every capability,
# so that EROFS is the namespace's doing): errno of writing each path, 0 when
# it may be written (access W_OK; a real file create for the folders)
MOUNT_PROBE = r'''
import errno, json, os, sys
out = {}
for path in sys.argv[1:]:
    if os.path.isdir(path):
        probe = os.path.join(path, ".iovirt-e2e-probe")
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
            out[path] = 0
        except OSError as e:
            out[path] = e.errno
    else:
        out[path] = 0 if os.access(path, os.W_OK) else errno.EROFS if os.path.exists(path) else errno.ENOENT
        if not os.access(path, os.W_OK) and os.path.exists(path):
            try:
                os.close(os.open(path, os.O_WRONLY))
            except OSError as e:
                out[path] = e.errno
print(json.dumps(out))
'''

# run in iovirtd's cgroup (its pid written to the unit's cgroup.procs):
# errno of each attempt, 0 when it worked
CGROUP_PROBE = r'''
import errno, json, os, socket, sys
sys.stdin.readline()                    # moved into the cgroup by now
port = int(sys.argv[1])
out = {}
def attempt(name, f):
    try:
        f()
        out[name] = 0
    except socket.timeout:
        out[name] = errno.ETIMEDOUT
    except OSError as e:
        out[name] = e.errno
def tcp():
    # a SYN the cgroup's egress filter drops is retransmitted, not refused:
    # such a connect never completes
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", port))
def unix():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("/run/dbus/system_bus_socket")
def dev(path):
    return lambda: os.close(os.open(path, os.O_RDONLY))
attempt("tcp 127.0.0.1", tcp)
attempt("udp 127.0.0.1", udp)
attempt("unix /run/dbus/system_bus_socket", unix)
attempt("open /dev/nvme0n1", dev("/dev/nvme0n1"))
attempt("open /dev/null", dev("/dev/null"))
print(json.dumps(out), flush=True)
'''


def in_cgroup(cgroup_procs, code, *args):
    """python CODE ARGS run in the cgroup of CGROUP_PROCS (None: the test's
    own), moved there before it reads its first line; returns (its JSON
    answer, its /proc/PID/cgroup)"""
    p = subprocess.Popen([sys.executable, "-c", code] + list(args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if cgroup_procs:
        with open(cgroup_procs, "w") as f:
            f.write(str(p.pid))
    where = open("/proc/%d/cgroup" % p.pid).read().strip()
    out, err = p.communicate("go\n", timeout=60)
    try:
        return json.loads(out), where
    except ValueError:
        return {"unparsed": out + err}, where


def unit_procs():
    """cgroup.procs of iovirtd.service's cgroup"""
    return os.path.join("/sys/fs/cgroup", show("ControlGroup").get("ControlGroup", "/nonexistent").lstrip("/"),
                        "cgroup.procs")


ACCESS_PROBE = r'''
import json, os, sys
sys.stdin.readline()
try:
    os.stat(sys.argv[1])
    seen = os.access(sys.argv[1], os.F_OK)
except OSError as e:
    seen = str(e)
print(json.dumps({"access F_OK": seen}))
'''


def probe_cgroup(cgroup_procs):
    """CGROUP_PROBE's answers, run in the cgroup of CGROUP_PROCS (None: the
    test's own), against a TCP listener of the test's"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        return in_cgroup(cgroup_procs, CGROUP_PROBE, str(listener.getsockname()[1]))


def names(result):
    return {k: errno.errorcode.get(v, v) if v else "ok" for k, v in result.items()}


def denials(env, topo):
    nic = below(topo["ports"]["nic"])[0]
    pf = below(topo["ports"]["nvme"])[0]
    s = show("MainPID", "ControlGroup")
    pid = int(s.get("MainPID", "0"))
    allowed = ["/var/lib/iovirt", "/sys/bus/pci/drivers_probe", os.path.join(PCI, nic, "driver_override"),
               os.path.join(PCI, pf, "sriov_numvfs"), "/sys/bus/pci/rescan"]
    denied = ["/etc", "/usr/local", "/var/lib", "/sys/module/vfio_iommu_type1/parameters/"
              "allow_unsafe_interrupts", "/sys/kernel/mm/transparent_hugepage/enabled", "/proc/sys/kernel/modprobe",
              "/sys/fs/cgroup/cgroup.procs"]
    rc, out, err = sh("nsenter", "-t", str(pid), "-m", "--", sys.executable, "-c", MOUNT_PROBE, *(allowed + denied))
    try:
        got = json.loads(out)
    except ValueError:
        got = {}
    tap.ok(rc == 0 and all(got.get(p) == 0 for p in allowed),
           "in iovirtd's mount namespace the unit's ReadWritePaths= and StateDirectory= are writable: %s" % (
               ", ".join(allowed)), (rc, names(got), err))
    tap.ok(rc == 0 and all(got.get(p) == errno.EROFS for p in denied),
           "and everything else is read-only (EROFS, as root with every capability): %s" % ", ".join(denied),
           (rc, names(got), err))

    procs = unit_procs()
    ours, where_ours = probe_cgroup(None)
    theirs, where = probe_cgroup(procs)
    tap.ok(ours.get("tcp 127.0.0.1") == 0 and ours.get("udp 127.0.0.1") == 0 and
           ours.get("open /dev/nvme0n1") == 0,
           "outside iovirtd's cgroup, TCP and UDP to 127.0.0.1 and opening /dev/nvme0n1 work (the control)",
           (names(ours), where_ours))
    tap.ok(UNIT in where and theirs.get("tcp 127.0.0.1") == errno.ETIMEDOUT and
           theirs.get("udp 127.0.0.1") == errno.EPERM and theirs.get("unix /run/dbus/system_bus_socket") == 0,
           "a process moved into iovirtd.service's cgroup (IPAddressDeny=any): UDP sendto to 127.0.0.1 fails with "
           "EPERM, a TCP connect to it never completes (its SYNs dropped; 5 s), AF_UNIX to the system bus works",
           (names(theirs), where))
    tap.ok(theirs.get("open /dev/nvme0n1") == errno.EPERM and theirs.get("open /dev/null") == 0,
           "and opening the NVMe namespace /dev/nvme0n1 fails with EPERM (DevicePolicy=closed), /dev/null opens",
           (names(theirs), where))

    status = open("/proc/%d/status" % pid).read()
    fields = dict(re.findall(r"^(CapBnd|CapEff|Seccomp|NoNewPrivs):\s+(\S+)$", status, re.M))
    caps = capabilities(int(fields.get("CapBnd", "0"), 16))
    FIGURES.append(("iovirtd's bounding set", " ".join(caps)))
    tap.ok(fields.get("Seccomp") == "2" and fields.get("NoNewPrivs") == "1" and caps == sorted(unit_caps()),
           "iovirtd runs under a seccomp filter, with no_new_privs, bounded to the unit's capabilities (%s)" % (
               " ".join(caps)), fields)


def capabilities(mask):
    """names of the capabilities in MASK (linux/capability.h's numbers)"""
    table = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
             "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
             "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
             "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
             "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
             "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
             "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
             "CAP_CHECKPOINT_RESTORE"]
    return sorted(name for i, name in enumerate(table) if mask >> i & 1)


def unit_caps():
    text = open(installed("data/iovirtd.service")).read()
    return [c for line in re.findall(r"^CapabilityBoundingSet=(.*)$", text, re.M) for c in line.split()]


# ---- the rating, and the end ----

def security(env, topo):
    rc, out, err = sh("systemd-analyze", "security", "--no-pager", UNIT)
    with open(os.path.join(RESULTS, "security.txt"), "w") as f:
        f.write(out + err)
    m = re.search(r"Overall exposure level for %s: ([0-9.]+) (\S+)" % re.escape(UNIT), out)
    FIGURES.append(("systemd-analyze security", "%s %s" % (m.group(1), m.group(2)) if m else "not rated"))
    exposed = [line.split()[1] for line in out.splitlines() if line.startswith("✗")]
    tap.ok(m is not None, "systemd-analyze security rates the running unit: %s (%d exposures; security.txt)" % (
        "%s %s" % (m.group(1), m.group(2)) if m else "?", len(exposed)), out[-3000:] + err)


def stopped(env, topo):
    """at the end: the same iovirtd ran throughout, never restarted or
    timed out, and stops cleanly"""
    s = show("MainPID", "NRestarts", "ActiveState")
    log = env.log()
    tap.ok(s == {"MainPID": str(ACTIVATION.get("pid")), "NRestarts": "0", "ActiveState": "active"} and
           "Watchdog timeout" not in journal("-u", UNIT, "-o", "short"),
           "after every check, the same iovirtd (pid %s) is active: no restart, no watchdog timeout" %
           ACTIVATION.get("pid"), "%s\n%s" % (s, unit_journal()))
    rc, out, err = sh("systemctl", "stop", UNIT, timeout=120)
    s = show("ActiveState", "Result", "ExecMainStatus")
    tap.ok(rc == 0 and s == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"},
           "systemctl stop iovirtd: it exits 0 and the unit's result is success", (rc, err, s, log[-1500:]))


SCENARIOS = [("installed", install_read), ("vfio-pci unloaded", unload_vfio), ("activation", activation),
             ("vfio-pci loaded by iovirtd", vfio_by_iovirtd), ("device nodes", nodes_seen),
             ("round trip", guest.round_trip),
             ("a process of another user", memlock_other_user), ("SR-IOV", sriov), ("libvirtd", libvirtd),
             ("denials", denials), ("watchdog", watchdog), ("security", security), ("stop", stopped)]


def main():
    topo = CONFIG["topology"]
    env = UnitEnv()
    FIGURES.append(("systemd reached the checks", "%.1f s after the kernel started" %
                    float(open("/proc/uptime").read().split()[0])))
    try:
        for name, scenario in SCENARIOS:
            t0 = time.monotonic()
            try:
                scenario(env, topo)
            except Exception:      # one broken scenario must not hide the others
                import traceback
                tap.ok(False, "%s ran to its end" % name, traceback.format_exc())
            guest.SCENARIO_TIMES.append((name, round(time.monotonic() - t0, 1)))
            print("scenario %s: %.1f s" % (name, time.monotonic() - t0), file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        with open(os.path.join(RESULTS, "journal.txt"), "w") as f:
            f.write(sh("journalctl", "-b", "--no-pager", "-o", "short-monotonic")[1])
        with open(os.path.join(RESULTS, "scenarios.json"), "w") as f:
            json.dump(guest.SCENARIO_TIMES, f)
        with open(os.path.join(RESULTS, "systemd.json"), "w") as f:
            json.dump(FIGURES, f)
        if guest.LIBVIRT_TIMES:
            with open(os.path.join(RESULTS, "libvirt.json"), "w") as f:
                json.dump(guest.LIBVIRT_TIMES, f)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
