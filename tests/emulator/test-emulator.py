#!/usr/bin/env python3
"""test-emulator.py KERNEL_EMU SYSFS_WRITE: the kernel-behaviour emulator
does what Linux does on writes to PCI sysfs files (drivers/base/bus.c,
drivers/pci/pci-driver.c, drivers/vfio), including the failures, and
announces each bind and unbind as a uevent."""

import os
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from hosts import HOSTS  # noqa: E402
from tap import Tap  # noqa: E402

emu, writer = sys.argv[1], sys.argv[2]
t = Tap()
root = tempfile.mkdtemp(prefix="iovirt-emu.")
HOSTS["desktop"]().write(root)
env = dict(os.environ, UMOCKDEV_DIR=root, LD_PRELOAD=emu + " libumockdev-preload.so.0")
NIC, NVME = "0000:03:00.0", "0000:02:00.0"
DEV = "/sys/bus/pci/devices/"
DRV = "/sys/bus/pci/drivers/"

# a monitor of our own, where umockdev's preload would put one
events = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
events.bind(os.path.join(root, "event99"))
events.settimeout(5)


writes = [0]


def write(path, text):
    out = subprocess.run([writer, path, text], env=env, capture_output=True, text=True).stdout.strip()
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
    with open(tb("/emulator/faults"), "w") as f:
        f.write(text)


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
faults("vanish %s unbind\n" % NVME)
t.ok(write(DRV + "nvme/unbind", NVME) == "ENODEV" and not os.path.exists(tb(DEV + NVME)),
     "a device that vanishes takes its links with it")
t.ok(write(DEV + NVME + "/driver_override", "vfio-pci") in ("open: ENOENT", "ENODEV"),
     "a vanished device's files are gone")
ops, ns = map(int, open(tb("/emulator/stats")).read().split())
t.ok(ops == writes[0] and ns > 0, "the emulator accounts for its time (%d operations, %d us)" % (ops, ns // 1000))
sys.exit(t.done())
