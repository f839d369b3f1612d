#!/usr/bin/env python3
"""test-emulator.py KERNEL_EMU SYSFS_WRITE SYSFS_THREADS: the
kernel-behaviour emulator does what Linux does on writes to PCI sysfs files
(drivers/base/bus.c, drivers/pci/pci-driver.c, drivers/vfio), including the
failures, and announces each bind and unbind as a uevent; a held or slow
write keeps no other device waiting, and writes from many threads at once
leave the testbed consistent.  It leaves no folder behind: everything it
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
from testbed import Host, ENDPOINT  # noqa: E402
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
        want = any(driver(a) == "vfio-pci" for a in os.listdir(os.path.join(groups, g, "devices")))
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
root, env = desktop

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
