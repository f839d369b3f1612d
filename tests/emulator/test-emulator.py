#!/usr/bin/env python3
"""test-emulator.py KERNEL_EMU SYSFS_WRITE SYSFS_THREADS: the
kernel-behaviour emulator does what Linux does on writes to PCI sysfs files
(drivers/base/bus.c, drivers/pci/pci-driver.c, drivers/pci/iov.c,
drivers/vfio), including the failures, and announces each bind and unbind
(and each VF's add and remove) as a uevent; a held or slow write keeps no
other device waiting, and writes from many threads at once leave the
testbed consistent.  It leaves no folder behind: everything it
writes is below a temporary folder of its own, checked empty at the end."""

import atexit
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from hosts import HOSTS  # noqa: E402
from testbed import Host, ENDPOINT, is_vfio  # noqa: E402
from tap import Tap  # noqa: E402

emu, writer, threads = sys.argv[1], sys.argv[2], sys.argv[3]
t = Tap()
# TMPDIR for this test and what it runs: whatever is left in it is a leak
private = tempfile.mkdtemp(prefix="iovirt-emu.")
atexit.register(shutil.rmtree, private, True)           # (when the test itself fails)
tempfile.tempdir = os.environ["TMPDIR"] = private
root = tempfile.mkdtemp(prefix="desktop.")
HOSTS["desktop"]().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
NIC, NVME, IGPU = "0000:03:00.0", "0000:02:00.0", "0000:00:02.0"
GPU, AUDIO, XHCI, USB = "0000:01:00.0", "0000:01:00.1", "0000:00:14.0", "0000:04:00.0"
PROBE = "/sys/bus/pci/drivers_probe"
WAIT = 10       # seconds any awaited condition may take before the check fails
DEV = "/sys/bus/pci/devices/"
DRV = "/sys/bus/pci/drivers/"

# a monitor of our own, where umockdev's preload would put one
events = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
events.bind(os.path.join(root, "event99"))
events.settimeout(5)


writes = [0]


def write(path, text):
    try:
        out = subprocess.run([writer, path, text], env=env, capture_output=True, text=True,
                             timeout=WAIT).stdout.strip()
    except subprocess.TimeoutExpired:
        return "still waiting after %d s" % WAIT
    writes[0] += not out.startswith("open:")
    return out


def tb(path):
    return os.path.join(root, path.lstrip("/"))


def driver(addr):
    link = tb(DEV + addr + "/driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def override(addr):
    return open(tb(DEV + addr + "/driver_override")).read().strip()


def next_event():
    data = events.recv(65536)
    props = dict(f.split("=", 1) for f in data[40:].decode().split("\0") if "=" in f)
    return props


def faults(text):
    # replaced, never rewritten in place: a hold must not see it empty
    with open(tb("/emulator/faults.new"), "w") as f:
        f.write(text)
    os.replace(tb("/emulator/faults.new"), tb("/emulator/faults"))


def wait_for(cond, secs=WAIT):
    end = time.monotonic() + secs
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


def stats():
    """(writes, ns) the emulator counted; none yet: no file"""
    if not os.path.exists(tb("/emulator/stats")):
        return (0, 0)
    return tuple(map(int, open(tb("/emulator/stats")).read().split()))


def drain_events():
    events.setblocking(False)
    out = []
    try:
        while True:
            data = events.recv(65536)
            out.append(dict(f.split("=", 1) for f in data[40:].decode().split("\0") if "=" in f))
    except BlockingIOError:
        pass
    events.settimeout(5)
    return out


class Running:
    """A helper process whose output is read line by line, each line awaited
    for at most WAIT seconds."""

    def __init__(self, argv, env=env):
        self.p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def line(self):
        try:
            return self.lines.get(timeout=WAIT)
        except queue.Empty:
            return None

    def running(self):
        return self.p.poll() is None

    def finish(self):
        """The rest of its output, once it has exited"""
        try:
            self.p.wait(timeout=WAIT * 3)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        rest = []
        while (line := self.line()) is not None:
            rest.append(line)
        return rest


def stress_host():
    """Eight functions in one group (a multifunction device without ACS) and
    three devices alone in theirs, one without a driver of its own"""
    h = Host("stress")
    h.host_bridge("00:00.0")
    rp = h.root_port("00:01.0", (1, 1))
    g = h.new_group()
    for fn in range(8):
        h.add("01:00.%d" % fn, 0x8086, 0x1572, 0x020000, parent=rp, pcie_type=ENDPOINT, driver="i40e",
              multifunction=True, group=g, flr=True, reset_method="flr")
    for bus, drv in ((2, "e1000e"), (3, "nvme"), (4, None)):
        rp = h.root_port("00:1c.%d" % bus, (bus, bus))
        h.add("%02x:00.0" % bus, 0x8086, 0x10d3, 0x020000, parent=rp, pcie_type=ENDPOINT, driver=drv)
    return h


def consistency(changed):
    """What is wrong with the testbed's bindings: driver links both ways, the
    uevent files of the devices in changed (the builder's own may not be
    right), and /dev/vfio/N there exactly for the groups with a device on
    vfio-pci."""
    wrong = []
    drivers = os.listdir(tb(DRV))
    for addr in sorted(os.listdir(tb(DEV))):
        d = driver(addr)
        uev = [line[7:] for line in open(tb(DEV + addr + "/uevent")).read().splitlines() if line.startswith("DRIVER=")]
        if addr in changed and uev != ([d] if d else []):
            wrong.append("%s: on %s, uevent says %s" % (addr, d, uev))
        for drv in drivers:
            back = tb(DRV + drv + "/" + addr)
            if os.path.islink(back) != (drv == d):
                wrong.append("%s: on %s, %s links it: %s" % (addr, d, drv, os.path.islink(back)))
            elif drv == d and os.path.realpath(back) != os.path.realpath(tb(DEV + addr)):
                wrong.append("%s: %s links %s" % (addr, drv, os.readlink(back)))
    groups = tb("/sys/kernel/iommu_groups")
    for g in sorted(os.listdir(groups), key=int):
        want = any(is_vfio(driver(a)) for a in os.listdir(os.path.join(groups, g, "devices")))
        if os.path.exists(tb("/dev/vfio/" + g)) != want:
            wrong.append("group %s: a device on vfio-pci: %s, /dev/vfio/%s: %s" % (g, want, g, not want))
    for node in os.listdir(tb("/dev/vfio")) if os.path.isdir(tb("/dev/vfio")) else []:
        if node.isdigit() and not os.path.isdir(os.path.join(groups, node)):
            wrong.append("/dev/vfio/%s for no group" % node)
    return wrong


group = os.path.basename(os.readlink(tb(DEV + NIC + "/iommu_group")))

# stored only
t.ok(write(DEV + NIC + "/driver_override", "vfio-pci\n") == "ok" and override(NIC) == "vfio-pci"
     and driver(NIC) == "e1000e", "driver_override is stored and changes no binding")
t.ok(write(DRV + "e1000e/bind", NIC) == "ENODEV", "bind of a bound device fails with ENODEV")
t.ok(write(DRV + "nvme/unbind", NIC) == "ENODEV", "unbind from a driver the device is not on fails with ENODEV")
t.ok(write(DRV + "e1000e/unbind", NIC) == "ok" and driver(NIC) is None, "unbind releases the device")
ev = next_event()
t.ok(ev.get("ACTION") == "unbind" and ev.get("DEVPATH", "").endswith(NIC) and "DRIVER" not in ev,
     "unbind is announced as a uevent", ev)
t.ok(write(DRV + "e1000e/unbind", NIC) == "ENODEV", "unbind of an unbound device fails")
t.ok("DRIVER=" not in open(tb(DEV + NIC + "/uevent")).read(), "the uevent file no longer names a driver")
t.ok(write(DRV + "e1000e/bind", NIC) == "ENODEV", "bind to a driver the override excludes fails with ENODEV")
t.ok(write("/sys/bus/pci/drivers_probe", NIC) == "ok" and driver(NIC) == "vfio-pci",
     "drivers_probe binds to the override")
ev = next_event()
t.ok(ev.get("ACTION") == "bind" and ev.get("DRIVER") == "vfio-pci", "bind is announced with its driver", ev)
t.ok(os.path.exists(tb("/dev/vfio/" + group)), "vfio-pci made /dev/vfio/%s" % group)
t.ok(os.path.islink(tb(DRV + "vfio-pci/" + NIC)), "the driver's directory links the device")
t.ok(write("/sys/bus/pci/drivers_probe", NIC) == "ok" and driver(NIC) == "vfio-pci",
     "drivers_probe of a bound device changes nothing")
t.ok(write(DRV + "vfio-pci/unbind", NIC) == "ok" and not os.path.exists(tb("/dev/vfio/" + group)),
     "the last unbind from vfio-pci removes /dev/vfio/%s" % group)
next_event()
t.ok(write(DEV + NIC + "/driver_override", "\n") == "ok" and override(NIC) == "(null)", "a newline clears it")
t.ok(write("/sys/bus/pci/drivers_probe", NIC) == "ok" and driver(NIC) == "e1000e",
     "without an override, drivers_probe finds the driver whose IDs match")
next_event()

# faults
faults("fail %s vfio-pci\n" % NIC)
write(DRV + "e1000e/unbind", NIC)
write(DEV + NIC + "/driver_override", "vfio-pci")
t.ok(write("/sys/bus/pci/drivers_probe", NIC) == "ok" and driver(NIC) is None,
     "a failing probe leaves the device unbound and drivers_probe still succeeds")
t.ok(write(DRV + "vfio-pci/bind", NIC) == "EIO", "the same failure through bind is the writer's error")

# holds: the NIC is unbound with its override on vfio-pci, as a transaction
# leaves it before its probe
drain_events()
faults("hold %s probe\n" % NIC)
held = tb("/emulator/held-%s-probe" % NIC)
ops0, ns0 = stats()
probe = subprocess.Popen([writer, PROBE, NIC], env=env, stdout=subprocess.PIPE, text=True)
writes[0] += 1
t.ok(wait_for(lambda: os.path.exists(held)), "a held write announces itself in emulator/held-ADDRESS-OP")
since = time.monotonic()
t.ok(probe.poll() is None and driver(NIC) is None, "the held write waits, the device still unbound")
t.ok(write(DRV + "i915/unbind", IGPU) == "ok" and driver(IGPU) is None,
     "meanwhile another process's write for a device in another group completes")
t.ok(write(DEV + NIC + "/driver_override", "vfio-pci") == "ok",
     "and so does a write of another operation on the held device")
t.ok(probe.poll() is None and os.path.exists(held), "the write is held until the hold is lifted")
lifted = time.monotonic()
faults("")
try:
    out = probe.communicate(timeout=WAIT)[0].strip()
except subprocess.TimeoutExpired:
    probe.kill()
    out = probe.communicate()[0].strip()
t.ok(out == "ok" and driver(NIC) == "vfio-pci" and os.path.exists(tb("/dev/vfio/" + group)),
     "lifting the hold lets the write do what the kernel does: the device is on vfio-pci", out)
t.ok(not os.path.exists(held), "the held- file is gone")
evs = drain_events()
t.ok([(e.get("ACTION"), e.get("DRIVER")) for e in evs] == [("unbind", None), ("bind", "vfio-pci")],
     "each write announced what it did once", evs)
ops1, ns1 = stats()
t.ok(ops1 - ops0 == 3 and ns1 - ns0 >= (lifted - since) * 1e9,
     "the emulator's time includes the hold (%d us held at least, %d us counted)"
     % ((lifted - since) * 1e6, (ns1 - ns0) // 1000))

# the same from two threads of one process, as the daemon's workers write
faults("hold %s unbind\n" % NIC)
held = tb("/emulator/held-%s-unbind" % NIC)
h = Running([threads, "beside", held, DRV + "vfio-pci/unbind", NIC, PROBE, IGPU])
writes[0] += 2
t.ok(h.line() == "second: ok" and h.line() == "first: running" and driver(IGPU) == "i915",
     "while a thread's unbind is held, another thread's probe in another group completes")
t.ok(driver(NIC) == "vfio-pci" and os.path.exists(held), "the held unbind has not happened yet")
faults("")
rest = h.finish()
t.ok(rest == ["first: ok"] and driver(NIC) is None and not os.path.exists(tb("/dev/vfio/" + group))
     and not os.path.exists(held), "once lifted, the unbind happens and /dev/vfio/%s goes" % group, rest)

# a slow probe sleeps without the lock too
faults("slow %s 5000\n" % NIC)
h = Running([threads, "beside", "sleeping", PROBE, NIC, DRV + "i915/unbind", IGPU])
writes[0] += 2
t.ok(h.line() == "second: ok" and h.line() == "first: running" and driver(IGPU) is None,
     "while a thread's probe is slow, another thread's unbind in another group completes")
rest = h.finish()
t.ok(rest == ["first: ok"] and driver(NIC) == "vfio-pci", "the slow probe then binds", rest)
faults("")
drain_events()

# a hold on driver_override, whose address is in the path, not the text
write(DRV + "vfio-pci/unbind", NIC)
faults("hold %s override\n" % NIC)
held = tb("/emulator/held-%s-override" % NIC)
clear = subprocess.Popen([writer, DEV + NIC + "/driver_override", "\n"], env=env, stdout=subprocess.PIPE, text=True)
writes[0] += 1
t.ok(wait_for(lambda: os.path.exists(held)) and clear.poll() is None and override(NIC) == "vfio-pci",
     "a write to driver_override is held too, the override unchanged")
faults("")
try:
    out = clear.communicate(timeout=WAIT)[0].strip()
except subprocess.TimeoutExpired:
    clear.kill()
    out = clear.communicate()[0].strip()
t.ok(out == "ok" and override(NIC) == "(null)" and not os.path.exists(held), "and then clears it", out)
write(PROBE, NIC)
write(PROBE, IGPU)
t.ok(driver(NIC) == "e1000e" and driver(IGPU) == "i915", "the devices are back on their drivers")
drain_events()

# many threads at once, eight of them on the functions of one group, in a
# testbed of their own
desktop = (root, env)
root = tempfile.mkdtemp(prefix="stress.")
stress_host().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
stressed = ["0000:01:00.%d" % fn for fn in range(8)] + ["0000:%02x:00.0" % bus for bus in (2, 3, 4)]
before = {a: driver(a) for a in stressed}
h = Running([threads, "stress", "30"] + stressed, env=env)
rest = h.finish()
t.ok(h.p.returncode == 0, "%d threads binding and unbinding at once see what the kernel does after each write"
     % len(stressed), "\n".join(rest))
after = {a: driver(a) for a in stressed}
t.ok(after == {a: "vfio-pci" if i % 2 == 0 else before[a] for i, a in enumerate(stressed)},
     "each device ends where its thread left it", after)
wrong = consistency(stressed)
seen = int(rest[-1].split()[1]) if rest and rest[-1].startswith("writes ") else -1
t.ok(stats()[0] == seen, "every one of the %d writes is in the emulator's stats, none lost to another" % seen,
     stats())
t.ok(not wrong, "the driver links, uevent files and /dev/vfio nodes agree", "\n".join(wrong))
shutil.rmtree(root)

# the same through fds numbered 5000 and up, as in a daemon with thousands
# open: each write is emulated, none reaches the plain file
root = tempfile.mkdtemp(prefix="stress-above.")
stress_host().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
h = Running([threads, "stress-above", "5000", "10"] + stressed, env=env)
rest = h.finish()
t.ok(h.p.returncode == 0, "through fds above 5000, %d threads binding and unbinding at once see what the kernel does"
     % len(stressed), "\n".join(rest[-12:]))
after = {a: driver(a) for a in stressed}
t.ok(after == {a: "vfio-pci" if i % 2 == 0 else before[a] for i, a in enumerate(stressed)},
     "and each device ends where its thread left it", after)
seen = int(rest[-1].split()[1]) if rest and rest[-1].startswith("writes ") else -1
t.ok(stats()[0] == seen, "every one of the %d writes is in the emulator's stats" % seen, stats())
shutil.rmtree(root)

# ---- a uevent that does not fit a listener's queue: ENOBUFS, as netlink's ----
desktop_writes = writes[0]
root = tempfile.mkdtemp(prefix="overrun.")
HOSTS["desktop"]().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
listener = subprocess.Popen([threads, "listen"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
hello = listener.stdout.readline().split()


def receive():
    """What the listener receives now, until nothing is waiting"""
    listener.stdin.write("receive\n")
    listener.stdin.flush()
    out = []
    while (line := listener.stdout.readline().strip()) not in ("end", ""):
        out.append(line)
    return out


def cycle_nic(n):
    """n writes, unbind and probe in turn; what each announces"""
    sent = []
    for i in range(n):
        if i % 2 == 0:
            r, what = write(DRV + "e1000e/unbind", NIC), "unbind " + NIC
        else:
            r, what = write(PROBE, NIC), "bind " + NIC
        sent.append(what if r == "ok" else "%s: %s" % (what, r))
    return sent


t.ok(len(hello) == 2 and hello[0] == "listening" and os.path.exists(os.path.join(root, hello[1])),
     "a monitor socket made as libudev makes it is bound to $UMOCKDEV_DIR/eventN", hello)
qlen = int(open("/proc/sys/net/unix/max_dgram_qlen").read())
sent = cycle_nic(qlen + 4)
got = receive()
t.ok(got[:1] == ["ENOBUFS"] and 0 < len(got) - 1 < len(sent),
     "%d uevents for a listener that does not read (its queue holds %d): its next receive fails with ENOBUFS, "
     "as the kernel's netlink_overrun() makes it" % (len(sent), qlen), got)
t.ok(got[1:] == sent[:len(got) - 1], "the uevents queued before the overrun are received after it, in order",
     (got, sent))
sent = cycle_nic(2)
got = receive()
t.ok(got == sent, "ENOBUFS once for the overrun: the receives after it get what was sent since, nothing else",
     (got, sent))
sent = cycle_nic(3)
t.ok(receive() == sent, "a listener that keeps up sees no ENOBUFS")
listener.stdin.close()
listener.wait(timeout=WAIT)
listener = subprocess.Popen([threads, "listen"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
again = listener.stdout.readline().split()
cycle_nic(qlen + 4)
listener.kill()
listener.wait()
listener = subprocess.Popen([threads, "listen"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
fresh = listener.stdout.readline().split()
sent = cycle_nic(2)
got = receive()
t.ok(fresh == again and got == sent, "a listener bound where one overran before (%s) has lost nothing: no ENOBUFS"
     % fresh[-1:], (again, fresh, got))
listener.stdin.close()
listener.wait(timeout=WAIT)

# umockdev's preload leaks a socket on each open() of a path below /dev/
# without an ioctl handler (9,400 fds in a minute of the load benchmark,
# whose testbed is below /dev/shm); the emulator opens those itself
write(DEV + NIC + "/driver_override", "vfio-pci")
if driver(NIC):
    write(DRV + driver(NIC) + "/unbind", NIC)
write(PROBE, NIC)
nic_group = os.path.basename(os.readlink(tb(DEV + NIC + "/iommu_group")))
for path, what in (("/dev/null", "/dev/null"), ("/dev/vfio/" + nic_group, "a node the testbed has")):
    out = subprocess.run([threads, "opens", path, "100"], env=env, capture_output=True, text=True, timeout=WAIT)
    t.ok(out.returncode == 0 and out.stdout.split("\n")[:2] == ["open: leaked 0", "fopen: leaked 0"],
         "100 open()s and fopen()s of %s leave no fd behind" % what, out.stdout + out.stderr)
if os.access("/dev/shm", os.W_OK):
    shm = tempfile.mkdtemp(prefix="iovirt-emu.", dir="/dev/shm")
    atexit.register(shutil.rmtree, shm, True)
    with open(os.path.join(shm, "file"), "w") as f:
        f.write("x\n")
    out = subprocess.run([threads, "opens", os.path.join(shm, "file"), "100"], env=env, capture_output=True, text=True,
                         timeout=WAIT)
    t.ok(out.returncode == 0 and out.stdout.split("\n")[:2] == ["open: leaked 0", "fopen: leaked 0"],
         "nor of a file below /dev/shm, where the benchmarks put their testbeds", out.stdout + out.stderr)
    shutil.rmtree(shm)
else:
    t.skip("nor of a file below /dev/shm", "/dev/shm is not writable here")
shutil.rmtree(root)
root, env = desktop
writes[0] = desktop_writes

# ---- SR-IOV (drivers/pci/iov.c), on the "sriov" host in a testbed of its own ----
desktop, desktop_events, desktop_writes = (root, env), events, writes[0]
root = tempfile.mkdtemp(prefix="sriov.")
HOSTS["sriov"]().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
events = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
events.bind(os.path.join(root, "event99"))
events.settimeout(5)
writes[0] = 0
PF, MLX4, NVMEPF, BIG, CX6 = "0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:81:00.0", "0000:83:00.0"


def numvfs(pf, text):
    return write(DEV + pf + "/sriov_numvfs", text)


def attr(addr, name):
    return open(tb(DEV + addr + "/" + name)).read().strip()


def vfs(pf):
    """The PF's VFs by its virtfnN links, in index order"""
    links = sorted((int(n[6:]), n) for n in os.listdir(tb(DEV + pf)) if n.startswith("virtfn"))
    return [os.path.basename(os.readlink(tb(DEV + pf + "/" + n))) for _, n in links]


def group_of(addr):
    return int(os.path.basename(os.readlink(tb(DEV + addr + "/iommu_group"))))


def groups():
    return sorted(int(g) for g in os.listdir(tb("/sys/kernel/iommu_groups")))


def lowest_free(n):
    live, out, g = set(groups()), [], 0
    while len(out) < n:
        if g not in live:
            out.append(g)
        g += 1
    return out


def sriov_config(pf):
    """(VF Enable, NumVFs) from the PF's config space"""
    cfg = open(tb(DEV + pf + "/config"), "rb").read()
    off = 0x100
    while off:
        hdr = int.from_bytes(cfg[off:off + 4], "little")
        if hdr & 0xffff == 0x10:
            return (int.from_bytes(cfg[off + 8:off + 10], "little") & 1,
                    int.from_bytes(cfg[off + 0x10:off + 0x12], "little"))
        off = hdr >> 20
    return None


def actions(evs):
    return [(e.get("ACTION"), os.path.basename(e.get("DEVPATH", "")), e.get("DRIVER")) for e in evs]


before_groups = groups()
t.ok(numvfs(PF, "9") == "ERANGE" and attr(PF, "sriov_numvfs") == "0", "sriov_numvfs above sriov_totalvfs: ERANGE")
junk = {text: numvfs(PF, text) for text in ("abc", "-1", "3x", "", "1\n\n", " 1")}
t.ok(set(junk.values()) == {"EINVAL"}, "what kstrtou16 refuses is EINVAL", junk)
t.ok(numvfs(PF, "65536") == "ERANGE", "a count beyond 16 bits is kstrtou16's ERANGE")
t.ok(numvfs(PF, "0") == "ok" and not vfs(PF), "the count it has already: success, nothing happens")
t.ok(not drain_events(), "and nothing is announced")

# 0 -> 3, probed as they appear (sriov_drivers_autoprobe is 1)
want = ["0000:05:02.%d" % i for i in range(3)]
free = lowest_free(3)
t.ok(numvfs(PF, "3\n") == "ok" and attr(PF, "sriov_numvfs") == "3" and vfs(PF) == want,
     "0 -> 3 creates VFs 0..2 at routing ID + offset + i * stride, linked as virtfn0..2", vfs(PF))
evs = actions(drain_events())
t.ok(evs == [x for a in want for x in (("add", a, None), ("bind", a, "iavf"))] + [("change", PF, "i40e")],
     "each VF is announced (add) and probed (bind) before the next; then the PF changes", evs)
t.ok(all(os.readlink(tb(DEV + a + "/physfn")) == "../" + PF and driver(a) == "iavf" for a in want),
     "each VF links its PF (physfn) and is on its native driver, iavf")
t.ok([group_of(a) for a in want] == free,
     "below an ACS root port each VF gets a group of its own, the lowest numbers free (%s)" % free,
     [group_of(a) for a in want])
t.ok(all(os.listdir(tb("/sys/kernel/iommu_groups/%d/devices" % g)) == [a] for g, a in zip(free, want)),
     "each new group holds its VF")
vf = want[1]
t.ok((attr(vf, "vendor"), attr(vf, "device"), attr(vf, "subsystem_vendor"), attr(vf, "subsystem_device"),
      attr(vf, "numa_node"), attr(vf, "local_cpulist")) ==
     ("0x8086", "0x154c", attr(PF, "subsystem_vendor"), attr(PF, "subsystem_device"), attr(PF, "numa_node"),
      attr(PF, "local_cpulist")), "a VF's IDs are the VF device's, its subsystem and NUMA node the PF's")
t.ok("PCI_SLOT_NAME=%s" % vf in attr(vf, "uevent") and "DRIVER=iavf" in attr(vf, "uevent"),
     "its uevent file names it and its driver")
cfg = open(tb(DEV + vf + "/config"), "rb").read()
t.ok(len(cfg) == 4096 and cfg[0:4] == b"\xff\xff\xff\xff", "its config space reads 0xffff IDs, as a VF's does")
t.ok(os.path.realpath(tb(DEV + vf + "/subsystem")) == os.path.realpath(tb("/sys/bus/pci"))
     and os.path.realpath(tb(DEV + vf)) == os.path.realpath(tb(DEV + PF + "/virtfn1")),
     "its subsystem link and /sys/bus/pci/devices entry lead where they should")
t.ok(sriov_config(PF) == (1, 3), "the PF's config space: VF Enable, NumVFs 3", sriov_config(PF))
t.ok(numvfs(PF, "3") == "ok" and not drain_events(), "writing the same count again changes nothing")
t.ok(numvfs(PF, "5") == "EBUSY" and vfs(PF) == want, "a non-zero count while VFs are enabled: EBUSY")

# -> 0: every VF goes
t.ok(numvfs(PF, "0") == "ok" and attr(PF, "sriov_numvfs") == "0" and not vfs(PF), "0 removes every VF")
evs = actions(drain_events())
t.ok(evs == [x for a in want for x in (("unbind", a, None), ("remove", a, None))],
     "each VF, in index order, is unbound, then removed", evs)
t.ok(not any(os.path.lexists(tb(DEV + a)) for a in want) and groups() == before_groups
     and not any(os.path.islink(tb(DRV + "iavf/" + a)) for a in want), "their directories, links and groups are gone",
     (groups(), before_groups, [a for a in want if os.path.lexists(tb(DEV + a))]))
t.ok(sriov_config(PF) == (0, 0), "the PF's config space: VF Enable off, NumVFs 0", sriov_config(PF))
t.ok(numvfs(PF, "0x2") == "ok" and vfs(PF) == want[:2] and [group_of(a) for a in want[:2]] == free[:2],
     "through 0 another count (written in hex) is taken; freed group numbers are taken again")
numvfs(PF, "0")
drain_events()

# sriov_drivers_autoprobe
AP = DEV + PF + "/sriov_drivers_autoprobe"
t.ok(write(AP, "maybe") == "EINVAL" and write(AP, "") == "EINVAL", "sriov_drivers_autoprobe takes kstrtobool's words")
t.ok(write(AP, "off\n") == "ok" and attr(PF, "sriov_drivers_autoprobe") == "0", "'off' is stored as 0")
t.ok(numvfs(PF, "2") == "ok" and [driver(a) for a in want[:2]] == [None, None],
     "with autoprobe 0 the VFs appear unbound")
evs = actions(drain_events())
t.ok(evs == [("add", want[0], None), ("add", want[1], None), ("change", PF, "i40e")], "and only appear", evs)
t.ok(write(PROBE, want[0]) == "ok" and driver(want[0]) is None,
     "drivers_probe leaves a VF without override alone (pci_device_can_probe)")
t.ok(write(DRV + "iavf/bind", want[0]) == "ENODEV", "and bind fails with ENODEV")
g0 = group_of(want[0])
t.ok(write(DEV + want[0] + "/driver_override", "vfio-pci") == "ok" and write(PROBE, want[0]) == "ok"
     and driver(want[0]) == "vfio-pci" and os.path.exists(tb("/dev/vfio/%d" % g0)),
     "a VF with an override is probed: vfio-pci, /dev/vfio/%d" % g0)
drain_events()
t.ok(numvfs(PF, "0") == "ok" and not os.path.exists(tb("/dev/vfio/%d" % g0)),
     "removing the VFs unbinds the vfio-pci one: /dev/vfio/%d goes with it" % g0)
evs = actions(drain_events())
t.ok(evs == [("unbind", want[0], None), ("remove", want[0], None), ("remove", want[1], None)],
     "unbind for the bound VF only, remove for each", evs)
t.ok(write(AP, "1") == "ok" and attr(PF, "sriov_drivers_autoprobe") == "1", "1 turns autoprobe back on")

# which PFs can: ENOENT
write(DRV + "nvme/unbind", NVMEPF)
t.ok(numvfs(NVMEPF, "2") == "ENOENT" and not vfs(NVMEPF), "a PF without a driver: ENOENT")
write(PROBE, NVMEPF)
t.ok(numvfs(MLX4, "2") == "ENOENT" and not vfs(MLX4), "a PF driver without sriov_configure (mlx4_core): ENOENT")
t.ok(numvfs(MLX4, "99") == "ERANGE", "ERANGE is judged before the driver")
drain_events()
write(DEV + MLX4 + "/driver_override", "vfio-pci")
write(DRV + "mlx4_core/unbind", MLX4)
write(PROBE, MLX4)
mvfs = ["0000:06:00.1", "0000:06:00.2"]
t.ok(driver(MLX4) == "vfio-pci" and numvfs(MLX4, "2") == "ok" and vfs(MLX4) == mvfs,
     "on vfio-pci, which has a sriov_configure, the same PF's VFs can be created")
t.ok([(override(a), driver(a)) for a in mvfs] == [("vfio-pci", "vfio-pci")] * 2
     and all(os.path.exists(tb("/dev/vfio/%d" % group_of(a))) for a in mvfs),
     "vfio-pci gives its PF's VFs its name as override: they bind to it, /dev/vfio/N appear",
     [(override(a), driver(a)) for a in mvfs])
mgroups = [group_of(a) for a in mvfs]
drain_events()
t.ok(write(DRV + "vfio-pci/unbind", MLX4) == "ok" and not vfs(MLX4) and attr(MLX4, "sriov_numvfs") == "0"
     and not any(os.path.exists(tb("/dev/vfio/%d" % g)) for g in mgroups),
     "unbinding the PF: its driver removes the VFs first (and their /dev/vfio nodes)")
evs = actions(drain_events())
t.ok(evs[-1] == ("unbind", MLX4, None) and [e for e in evs if e[0] == "remove"] == [("remove", a, None) for a in mvfs],
     "the VFs are removed before the PF is unbound", evs)
write(DEV + MLX4 + "/driver_override", "\n")
write(PROBE, MLX4)
with open(tb("/sys/module/vfio_pci/parameters/enable_sriov"), "w") as f:
    f.write("N\n")
write(DEV + NVMEPF + "/driver_override", "vfio-pci")
write(DRV + "nvme/unbind", NVMEPF)
write(PROBE, NVMEPF)
t.ok(driver(NVMEPF) == "vfio-pci" and numvfs(NVMEPF, "1") == "ENOENT",
     "vfio-pci refuses while its enable_sriov parameter is N: ENOENT")
os.unlink(tb("/sys/module/vfio_pci/parameters/enable_sriov"))
write(DRV + "vfio-pci/unbind", NVMEPF)
write(DEV + NVMEPF + "/driver_override", "\n")
write(PROBE, NVMEPF)
drain_events()

# a VFIO variant driver: by override only
cvfs = ["0000:83:00.2", "0000:83:00.3"]
t.ok(numvfs(CX6, "2") == "ok" and vfs(CX6) == cvfs and [driver(a) for a in cvfs] == ["mlx5_core"] * 2,
     "ConnectX VFs probe to mlx5_core, never to their variant driver mlx5_vfio_pci")
gc = group_of(cvfs[0])
write(DRV + "mlx5_core/unbind", cvfs[0])
write(DEV + cvfs[0] + "/driver_override", "mlx5_vfio_pci")
t.ok(write(PROBE, cvfs[0]) == "ok" and driver(cvfs[0]) == "mlx5_vfio_pci"
     and os.path.exists(tb("/dev/vfio/%d" % gc)), "bound to mlx5_vfio_pci by override: /dev/vfio/%d appears" % gc)
t.ok(write(DRV + "mlx5_vfio_pci/unbind", cvfs[0]) == "ok" and not os.path.exists(tb("/dev/vfio/%d" % gc)),
     "and goes with its unbind")
numvfs(CX6, "0")
drain_events()

# faults
faults("fail %s sriov\n" % PF)
t.ok(numvfs(PF, "2") == "EIO" and not vfs(PF) and attr(PF, "sriov_numvfs") == "0" and not drain_events(),
     "fail PF sriov: the PF driver's sriov_configure fails with EIO, nothing changes")
faults("")
numvfs(PF, "2")
faults("fail %s sriov\n" % PF)
t.ok(numvfs(PF, "0") == "EIO" and vfs(PF) == want[:2], "and removing the VFs fails the same way")
faults("hold %s sriov\n" % PF)
held = tb("/emulator/held-%s-sriov" % PF)
drain_events()
p = subprocess.Popen([writer, DEV + PF + "/sriov_numvfs", "0"], env=env, stdout=subprocess.PIPE, text=True)
writes[0] += 1
t.ok(wait_for(lambda: os.path.exists(held)) and p.poll() is None and vfs(PF) == want[:2],
     "hold PF sriov: the write waits (emulator/held-%s-sriov), the VFs still there" % PF)
t.ok(write(DEV + want[0] + "/driver_override", "vfio-pci") == "ok", "meanwhile a write for one of its VFs completes")
faults("")
try:
    out = p.communicate(timeout=WAIT)[0].strip()
except subprocess.TimeoutExpired:
    p.kill()
    out = p.communicate()[0].strip()
t.ok(out == "ok" and not vfs(PF) and not os.path.exists(held), "once lifted it removes them", out)
drain_events()
numvfs(NVMEPF, "2")
nvme_group = group_of(NVMEPF)
faults("vanish %s sriov\n" % NVMEPF)
t.ok(numvfs(NVMEPF, "0") == "ENODEV" and not os.path.lexists(tb(DEV + NVMEPF))
     and not any(os.path.lexists(tb(DEV + "0000:07:00.%d" % i)) for i in (1, 2)),
     "vanish PF sriov: the PF is unplugged, and its VFs with it")
faults("")
evs = actions(drain_events())
t.ok([e[:2] for e in evs if e[0] == "remove"] == [("remove", "0000:07:00.1"), ("remove", "0000:07:00.2"),
                                                  ("remove", NVMEPF)], "each removal is announced", evs)

# 256 VFs, on the next bus
ops0, ns0 = stats()
t0 = time.monotonic()
r = numvfs(BIG, "256")
took = time.monotonic() - t0
bvfs = vfs(BIG)
t.ok(r == "ok" and len(bvfs) == 256 and bvfs[0] == "0000:82:00.0" and bvfs[-1] == "0000:82:1f.7"
     and all(driver(a) == "iavf" for a in bvfs), "256 VFs on bus 82, behind their PF on bus 81 (%.2f s)" % took)
ops1, ns1 = stats()
t.ok(ops1 - ops0 == 1 and 0 < ns1 - ns0 <= took * 1e9,
     "the write's time is in the emulator's stats (%d ms)" % ((ns1 - ns0) // 1000000))
t.ok(len(set(group_of(a) for a in bvfs)) == 256, "each in a group of its own")
t.ok(numvfs(BIG, "0") == "ok" and not vfs(BIG) and groups() == [g for g in before_groups if g != nvme_group],
     "and all go again, and their groups (the vanished NVMe PF's too)")
drain_events()
wrong = consistency(["0000:05:00.0"])
t.ok(not wrong, "the driver links, uevent files and /dev/vfio nodes agree", "\n".join(wrong))
t.ok(stats()[0] == writes[0], "every write of these (%d) is in the emulator's stats" % writes[0], stats())
events.close()
shutil.rmtree(root)


def vf_host():
    """PFs alike but for what is around them: A with a VF built in, B with
    none, C below a root port without ACS (in its group), D whose VFs would
    be on a bus beyond its root port's"""
    h = Host("vfs")
    h.host_bridge("00:00.0")
    for n, (acs, offset, num) in enumerate(((True, 1, 1), (True, 1, 0), (False, 1, 0), (True, 0x100, 0))):
        rp = h.root_port("00:%02x.0" % (n + 1), (n + 1, n + 1), acs=acs)
        h.sriov_pf("%02x:00.0" % (n + 1), rp, 0x8086, 0x10fb, 0x10ed, total=2, num=num, offset=offset, stride=1,
                   driver="ixgbe", vf_driver=None, **({} if acs else {"group": rp.group}))
    return h


root = tempfile.mkdtemp(prefix="vfs.")
vf_host().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
t.ok(numvfs("0000:02:00.0", "1") == "ok", "a VF like one the builder writes")


def listing(addr):
    """name: content of a device's files (links: their target; uevent
    without its address)"""
    out, d = {}, tb(DEV + addr)
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if os.path.islink(path):
            out[name] = "link"
        else:
            out[name] = open(path, "rb").read().replace(addr.encode(), b"ADDR")
    return out


built, made = listing("0000:01:00.1"), listing("0000:02:00.1")
t.ok(built == made, "has the same files, links and contents as the one the builder wrote",
     "\n".join("%s: %r / %r" % (k, built.get(k), made.get(k)) for k in sorted(set(built) | set(made))
               if built.get(k) != made.get(k)))
rp3 = group_of("0000:00:03.0")
t.ok(numvfs("0000:03:00.0", "2") == "ok" and [group_of(a) for a in ("0000:03:00.1", "0000:03:00.2")] == [rp3, rp3],
     "below a root port without ACS the VFs join the group above them (%d)" % rp3)
t.ok(numvfs("0000:03:00.0", "0") == "ok" and os.path.isdir(tb("/sys/kernel/iommu_groups/%d" % rp3))
     and sorted(os.listdir(tb("/sys/kernel/iommu_groups/%d/devices" % rp3))) == ["0000:00:03.0", "0000:03:00.0"],
     "removing them leaves that group as it was")
t.ok(numvfs("0000:04:00.0", "1") == "ENOMEM" and not vfs("0000:04:00.0"),
     "VFs on a bus beyond the root port's range: ENOMEM, as sriov_enable() says")
shutil.rmtree(root)
root, env = desktop
events, writes[0] = desktop_events, desktop_writes

faults("vanish %s unbind\n" % NVME)
t.ok(write(DRV + "nvme/unbind", NVME) == "ENODEV" and not os.path.exists(tb(DEV + NVME)),
     "a device that vanishes takes its links with it")
t.ok(write(DEV + NVME + "/driver_override", "vfio-pci") in ("open: ENOENT", "ENODEV"),
     "a vanished device's files are gone")
ops, ns = map(int, open(tb("/emulator/stats")).read().split())
t.ok(ops == writes[0] and ns > 0, "the emulator accounts for its time (%d operations, %d us)" % (ops, ns // 1000))
events.close()
shutil.rmtree(root)
left = os.listdir(private)
t.ok(not left, "nothing is left in the test's temporary folder", left)
sys.exit(t.done())
