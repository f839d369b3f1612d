"""Builder for emulated hosts: writes a sysfs tree that umockdev's preload
library serves as /sys and /dev, plus /proc files under the same root.

A host is described in Python (see hosts.py) with real capability layouts;
write() turns it into binary 4096-byte config spaces, attribute files, the
driver / iommu_group / physfn / virtfn links, /sys/bus/pci and
/sys/kernel/iommu_groups, exactly as Linux lays them out.  The description is
what is checked in; the tree is built at test time.
"""

import os
import struct

# PCIe port types (PCI_EXP_FLAGS_TYPE)
ENDPOINT, LEG_END, ROOT_PORT, UPSTREAM, DOWNSTREAM, PCIE_PCI_BRIDGE = 0, 1, 4, 5, 6, 7
RC_END = 9

# ACS control / capability bits
ACS_SV, ACS_TB, ACS_RR, ACS_CR, ACS_UF, ACS_EC, ACS_DT = 1, 2, 4, 8, 0x10, 0x20, 0x40
ACS_PORT = ACS_SV | ACS_TB | ACS_RR | ACS_CR | ACS_UF  # what a good port offers
ACS_REQUIRED = ACS_SV | ACS_RR | ACS_CR | ACS_UF
PCI_BRIDGE = 8                                          # PCI_EXP_TYPE_PCI_BRIDGE (PCI/PCI-X to PCIe)


def is_vfio(driver):
    """vfio-pci, or a VFIO variant driver (mlx5_vfio_pci, hisi_acc_vfio_pci...):
    what makes /dev/vfio/N for its device's group"""
    return driver is not None and (driver == "vfio-pci" or driver.endswith("_vfio_pci"))


def acs_enabled(d):
    """drivers/pci/pci.c pci_acs_enabled(d, SV|RR|CR|UF), without the
    device-specific quirks: does d keep peer-to-peer traffic from bypassing
    the IOMMU?"""
    if d.pcie_type is None or d.pcie_type in (PCIE_PCI_BRIDGE, PCI_BRIDGE):
        return False
    if d.pcie_type in (DOWNSTREAM, ROOT_PORT) or \
       (d.pcie_type in (ENDPOINT, UPSTREAM, LEG_END, RC_END) and d.multifunction):
        if d.acs is None:
            return False
        cap, ctl = d.acs
        want = ACS_REQUIRED & (cap | ACS_EC)            # pci_acs_flags_enabled()
        return ctl & want == want
    return True


def meminfo(memtotal):
    """/proc/meminfo's first lines for a host of memtotal bytes, as the
    kernel prints them (kB is KiB)"""
    kib = memtotal // 1024
    return "MemTotal:       %8d kB\nMemFree:        %8d kB\nMemAvailable:   %8d kB\n" % (kib, kib // 2, kib // 2)


def parse_addr(addr):
    if addr.count(":") == 1:
        addr = "0000:" + addr
    dom, bus, rest = addr.split(":")
    dev, fn = rest.split(".")
    return int(dom, 16), int(bus, 16), int(dev, 16), int(fn, 16)


def fmt_addr(dom, bus, dev, fn):
    return "%04x:%02x:%02x.%x" % (dom, bus, dev, fn)


class Config:
    """A 4096-byte config space built capability by capability."""

    def __init__(self, size=4096):
        self.b = bytearray(size)
        self.last_cap = None      # offset of the last standard capability
        self.next_cap = 0x40
        self.last_ecap = None
        self.next_ecap = 0x100

    def w8(self, off, v):
        self.b[off] = v & 0xff

    def w16(self, off, v):
        struct.pack_into("<H", self.b, off, v & 0xffff)

    def w32(self, off, v):
        struct.pack_into("<I", self.b, off, v & 0xffffffff)

    def cap(self, cap_id, length):
        off = self.next_cap
        self.next_cap = (off + length + 3) & ~3
        self.w8(off, cap_id)
        self.w8(off + 1, 0)
        if self.last_cap is None:
            self.w8(0x34, off)
            self.w16(0x06, self.b[0x06] | 0x10)   # status: capability list
        else:
            self.w8(self.last_cap + 1, off)
        self.last_cap = off
        return off

    def ecap(self, cap_id, version, length):
        off = self.next_ecap
        self.next_ecap = (off + length + 3) & ~3
        self.w32(off, cap_id | (version << 16))
        if self.last_ecap is not None:
            hdr = struct.unpack_from("<I", self.b, self.last_ecap)[0]
            self.w32(self.last_ecap, (hdr & 0xfffff) | (off << 20))
        self.last_ecap = off
        return off


class Device:
    def __init__(self, host, addr, vendor, device, cls, parent=None, **kw):
        self.host = host
        self.addr = addr
        self.dom, self.bus, self.dev, self.fn = parse_addr(addr)
        self.vendor, self.device, self.cls = vendor, device, cls
        self.parent = parent
        self.driver = kw.get("driver")
        # the driver whose ID table matches (what drivers_probe picks without an override)
        self.native = kw.get("native", self.driver if self.driver != "vfio-pci" else None)
        self.group = kw.get("group")
        self.numa = kw.get("numa", -1)
        self.cpulist = kw.get("cpulist", host.cpulist_for(self.numa))
        self.revision = kw.get("revision", 1)
        self.subsys = kw.get("subsys", (vendor, 0))
        self.multifunction = kw.get("multifunction", False)
        self.bridge = kw.get("bridge", False)
        self.pcie_type = kw.get("pcie_type")            # None: conventional PCI
        self.acs = kw.get("acs")                        # (cap, ctl) or None
        self.flr = kw.get("flr", False)
        self.af_flr = kw.get("af_flr", False)
        self.pm = kw.get("pm", True)
        self.no_soft_reset = kw.get("no_soft_reset", False)
        self.link = kw.get("link", (3, 4, 3, 4))        # cap speed, width, sta speed, width
        self.reset_method = kw.get("reset_method")      # sysfs attribute text or None
        self.sriov = kw.get("sriov")                    # dict, PF only
        self.physfn = None
        self.vfs = []
        self.secondary = kw.get("secondary")            # bridges: (secondary, subordinate)
        self.boot_vga = kw.get("boot_vga")
        self.config_bytes = kw.get("config_bytes")      # raw override (bad-input hosts)
        self.extra_attrs = kw.get("attrs", {})
        self.missing_attrs = set(kw.get("missing_attrs", ()))
        self.net = kw.get("net")                        # interface name
        self.block = kw.get("block")                    # (disk, major, [partitions]) below it
        self.fb = kw.get("fb")                          # framebuffer name (fb0) it drives
        self.virtio_9p = kw.get("virtio_9p")            # mount tag of the virtio-9p device it is
        self.children = []
        if parent is not None:
            parent.children.append(self)

    @property
    def is_vf(self):
        return self.physfn is not None

    def vf_addr(self, i):
        """The address of VF i of this PF: routing ID + offset + i * stride,
        as drivers/pci/iov.c computes it (the bus may be another one)."""
        s = self.sriov
        vrid = ((self.bus << 8) | (self.dev << 3) | self.fn) + s["offset"] + i * s["stride"]
        return fmt_addr(self.dom, vrid >> 8, (vrid >> 3) & 0x1f, vrid & 7)

    def syspath(self):
        chain = []
        d = self
        while d is not None:
            chain.append(d.addr)
            d = d.parent
        root = "pci%04x:%02x" % (self.dom, self.host.root_bus_of(self))
        return "/sys/devices/" + root + "/" + "/".join(reversed(chain))

    def config(self):
        if self.config_bytes is not None:
            return bytes(self.config_bytes)
        c = Config()
        if self.is_vf:
            c.w16(0x00, 0xffff)                         # VFs read 0xffff IDs (SR-IOV spec)
            c.w16(0x02, 0xffff)
        else:
            c.w16(0x00, self.vendor)
            c.w16(0x02, self.device)
        c.w16(0x04, 0x0406 if not self.is_vf else 0x0400)
        c.w8(0x08, self.revision)
        c.w8(0x09, self.cls & 0xff)
        c.w16(0x0a, self.cls >> 8)
        hdr = 1 if self.bridge else 0
        c.w8(0x0e, hdr | (0x80 if self.multifunction else 0))
        if self.bridge:
            sec, sub = self.secondary or (0, 0)
            c.w8(0x18, self.bus)
            c.w8(0x19, sec)
            c.w8(0x1a, sub)
        else:
            c.w16(0x2c, self.subsys[0])
            c.w16(0x2e, self.subsys[1])
            c.w8(0x3d, 1)
        if self.pm and not self.is_vf:
            off = c.cap(0x01, 8)
            c.w16(off + 2, 0x0003)
            c.w16(off + 4, 0x0008 if self.no_soft_reset else 0)
        if self.pcie_type is not None:
            off = c.cap(0x10, 0x3c)
            c.w16(off + 2, 0x0002 | (self.pcie_type << 4) |
                  (0x0100 if self.pcie_type in (ROOT_PORT, DOWNSTREAM) else 0))
            c.w32(off + 4, 0x00008000 | (0x10000000 if self.flr else 0))
            if self.pcie_type not in (RC_END,):
                cs, cw, ss, sw = self.link
                c.w32(off + 0x0c, cs | (cw << 4) | (self.dev << 24))
                c.w16(off + 0x12, ss | (sw << 4))
        if self.af_flr:
            off = c.cap(0x13, 6)
            c.w8(off + 2, 6)
            c.w8(off + 3, 0x03)                         # TP + FLR
        if self.pcie_type is not None:
            off = c.ecap(0x0001, 2, 0x48)               # AER, for a realistic chain
            if self.acs is not None:
                off = c.ecap(0x000d, 1, 8)
                c.w16(off + 4, self.acs[0])
                c.w16(off + 6, self.acs[1])
            if self.sriov is not None:
                s = self.sriov
                off = c.ecap(0x0010, 1, 0x40)
                c.w32(off + 0x04, 0)
                c.w16(off + 0x08, 0x19 if s["num"] else 0x10)   # VF Enable, MSE, ARI
                c.w16(off + 0x0c, s["total"])
                c.w16(off + 0x0e, s["total"])
                c.w16(off + 0x10, s["num"])
                c.w16(off + 0x14, s["offset"])
                c.w16(off + 0x16, s["stride"])
                c.w16(off + 0x1a, s["vf_device"])
                c.w32(off + 0x1c, 0x553)
                c.w32(off + 0x20, 1)
        return bytes(c.b)


class Host:
    def __init__(self, name, iommu=True, numa_nodes=1, cpus=8, cmdline=None,
                 firmware=("DMAR",), intremap=True, modules=("vfio", "vfio_pci", "vfio_iommu_type1"),
                 allow_unsafe_interrupts=False, osrelease="6.1.0-28-amd64", mounts=(), swaps=(), arrays=(),
                 aliases=(), drivers=(), vfio_enable_sriov=None):
        self.name = name
        self.iommu = iommu
        self.numa_nodes = numa_nodes
        self.cpus = cpus
        self.devices = []
        self.by_addr = {}
        self.cmdline = cmdline if cmdline is not None else (
            "BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro quiet" + (" intel_iommu=on iommu=pt" if iommu else ""))
        self.firmware = firmware
        self.intremap = intremap
        self.modules = modules
        self.allow_unsafe_interrupts = allow_unsafe_interrupts
        self.osrelease = osrelease
        self.mounts = mounts          # (block device name or "9p:TAG", mount point)
        self.swaps = swaps            # block device names used as swap
        self.arrays = arrays          # (dm-N or mdN, dm name or None, major, minor, [slave names])
        # modules.alias: (pattern, module), e.g. ("vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*", "mlx5_vfio_pci");
        # written before the catch-all vfio_pci line.  Variant modules in modules are loaded: their
        # drivers are in /sys/bus/pci/drivers
        self.aliases = aliases
        self.drivers = drivers        # more loaded drivers, bound to nothing
        self.vfio_enable_sriov = vfio_enable_sriov   # vfio_pci's enable_sriov parameter; None: no such file
        self.boot_id = "4b1f6c2e-8a0d-4f3e-9c71-2d5e8f1a0b36"
        # Facts for the policy's checks (None: not written):
        # memtotal, bytes, for /proc/meminfo's MemTotal (the pinned budget);
        # numa_distance, a row per node for nodeN/distance (the SLIT);
        # sockets, the physical_package_id of each node's CPUs, for
        # devices/system/cpu/cpuN/topology/physical_package_id.
        self.memtotal = 32 << 30          # a host has memory: the budget of a domain or a --memory needs it
        self.numa_distance = None
        self.sockets = None
        self.next_group = 0
        self.root_buses = {}

    def cpulist_for(self, numa):
        per = self.cpus // max(self.numa_nodes, 1)
        node = max(numa, 0)
        if numa < 0:
            return "0-%d" % (self.cpus - 1)
        return "%d-%d" % (node * per, node * per + per - 1)

    def root_bus_of(self, dev):
        d = dev
        while d.parent is not None:
            d = d.parent
        return d.bus

    def add(self, addr, vendor, device, cls, parent=None, **kw):
        if ":" in addr and addr.count(":") == 1:
            addr = "0000:" + addr
        if "group" not in kw and self.iommu:
            kw["group"] = self.new_group()
        elif not self.iommu:
            kw["group"] = None
        d = Device(self, addr, vendor, device, cls, parent, **kw)
        self.devices.append(d)
        self.by_addr[addr] = d
        return d

    def new_group(self):
        g = self.next_group
        self.next_group += 1
        return g

    # Building blocks with the register layouts real parts have.
    def host_bridge(self, addr, numa=-1, **kw):
        return self.add(addr, 0x8086, 0x3e30, 0x060000, pm=False, numa=numa, **kw)

    def root_port(self, addr, secondary, acs=True, numa=-1, **kw):
        acs_regs = kw.pop("acs_regs", (ACS_PORT, ACS_REQUIRED) if acs else None)
        return self.add(addr, 0x8086, 0x1901, 0x060400, bridge=True, pcie_type=ROOT_PORT,
                        acs=acs_regs, secondary=secondary, driver="pcieport", numa=numa,
                        reset_method=None, **kw)

    def switch(self, up_addr, parent, bus_range, downstream, acs=True, numa=-1, group=None):
        """A PCIe switch: upstream port on parent's secondary bus, downstream
        ports at (addr, secondary bus) on the upstream port's secondary bus."""
        up = self.add(up_addr, 0x10b5, 0x8747, 0x060400, parent=parent, bridge=True,
                      pcie_type=UPSTREAM, secondary=bus_range, driver="pcieport", numa=numa,
                      **({"group": group} if group is not None else {}))
        ports = []
        for addr, sec in downstream:
            ports.append(self.add(addr, 0x10b5, 0x8747, 0x060400, parent=up, bridge=True,
                                  pcie_type=DOWNSTREAM, secondary=(sec, sec), driver="pcieport",
                                  acs=(ACS_PORT, ACS_REQUIRED) if acs else None, numa=numa,
                                  **({"group": group} if group is not None else {})))
        return up, ports

    def sriov_pf(self, addr, parent, vendor, device, vf_device, total, num, offset, stride,
                 driver, vf_driver, numa=-1, cls=0x020000, sriov_configure=True, **kw):
        """An SR-IOV PF with num of its total VFs enabled.  vf_driver binds
        the VFs built here and is the one whose ID table matches every VF
        the emulator creates later; sriov_configure=False: the PF's own
        driver has no sriov_configure (as mlx4_core), so a write to
        sriov_numvfs fails with ENOENT while it is bound to it."""
        pf = self.add(addr, vendor, device, cls, parent=parent, pcie_type=ENDPOINT,
                      driver=driver, numa=numa, flr=True,
                      sriov={"total": total, "num": num, "offset": offset, "stride": stride,
                             "vf_device": vf_device, "vf_driver": vf_driver,
                             "sriov_configure": sriov_configure}, **kw)
        for i in range(num):
            vf = self.add(pf.vf_addr(i), vendor, vf_device, cls, parent=parent, pcie_type=ENDPOINT,
                          driver=vf_driver, numa=numa, flr=True, pm=False,
                          subsys=pf.subsys, reset_method="flr")
            vf.physfn = pf
            pf.vfs.append(vf)
        return pf

    # ---- writing the tree ----
    def write(self, root):
        sysd = os.path.join(root, "sys")
        for d in ("devices", "bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups",
                  "module", "firmware/acpi/tables", "class/net", "class/block"):
            os.makedirs(os.path.join(sysd, d), exist_ok=True)
        os.makedirs(os.path.join(root, "dev"), exist_ok=True)
        os.makedirs(os.path.join(root, "proc/sys/kernel"), exist_ok=True)
        os.makedirs(os.path.join(sysd, "devices/system/cpu"), exist_ok=True)
        with open(os.path.join(sysd, "devices/system/cpu/online"), "w") as f:
            f.write("0-%d\n" % (self.cpus - 1))
        for n in range(self.numa_nodes):
            os.makedirs(os.path.join(sysd, "devices/system/node/node%d" % n), exist_ok=True)
            with open(os.path.join(sysd, "devices/system/node/node%d/cpulist" % n), "w") as f:
                f.write(self.cpulist_for(n) + "\n")
            if self.numa_distance is not None:
                with open(os.path.join(sysd, "devices/system/node/node%d/distance" % n), "w") as f:
                    f.write(" ".join("%d" % d for d in self.numa_distance[n]) + "\n")
            if self.sockets is not None:
                first, last = (int(x) for x in self.cpulist_for(n).split("-"))
                for cpu in range(first, last + 1):
                    tdir = os.path.join(sysd, "devices/system/cpu/cpu%d/topology" % cpu)
                    os.makedirs(tdir, exist_ok=True)
                    with open(os.path.join(tdir, "physical_package_id"), "w") as f:
                        f.write("%d\n" % self.sockets[n])
        self._write_proc(root)
        for t in self.firmware:
            with open(os.path.join(sysd, "firmware/acpi/tables", t), "wb") as f:
                f.write(t.encode() + b"\0" * 44)
        for m in self.modules:
            os.makedirs(os.path.join(sysd, "module", m, "parameters"), exist_ok=True)
            if m == "vfio_iommu_type1":
                with open(os.path.join(sysd, "module", m, "parameters/allow_unsafe_interrupts"), "w") as f:
                    f.write("Y\n" if self.allow_unsafe_interrupts else "N\n")
            if m == "vfio_pci" and self.vfio_enable_sriov is not None:
                with open(os.path.join(sysd, "module", m, "parameters/enable_sriov"), "w") as f:
                    f.write("Y\n" if self.vfio_enable_sriov else "N\n")
            if is_vfio(m):          # a loaded variant: its driver, as /sys/module/M/drivers/pci:M
                os.makedirs(os.path.join(sysd, "module", m, "drivers"))
                os.symlink("../../../bus/pci/drivers/" + m, os.path.join(sysd, "module", m, "drivers", "pci:" + m))
        if "vfio" in self.modules:
            os.makedirs(os.path.join(root, "dev/vfio"), exist_ok=True)
            open(os.path.join(root, "dev/vfio/vfio"), "w").close()
        self._write_block(root)
        drivers = {"vfio-pci"} if "vfio_pci" in self.modules else set()
        drivers.update(m for m in self.modules if is_vfio(m))
        drivers.update(self.drivers)
        for d in self.devices:
            self._write_device(root, d)
            drivers.update(x for x in (d.driver, d.native) if x)
            if d.sriov and not d.is_vf and self._vf_native(d):
                drivers.add(self._vf_native(d))
        for drv in drivers:
            ddir = os.path.join(sysd, "bus/pci/drivers", drv)
            os.makedirs(ddir, exist_ok=True)
            for name in ("bind", "unbind", "new_id", "remove_id"):
                open(os.path.join(ddir, name), "w").close()
        for name in ("drivers_probe", "rescan"):
            open(os.path.join(sysd, "bus/pci", name), "w").close()
        with open(os.path.join(sysd, "bus/pci/drivers_autoprobe"), "w") as f:
            f.write("1\n")
        # for the kernel-behaviour emulator (tests/emulator): the ID tables
        os.makedirs(os.path.join(root, "emulator"), exist_ok=True)
        with open(os.path.join(root, "emulator/native"), "w") as f:
            f.writelines("%s %s\n" % (d.addr, d.native) for d in self.devices if d.native)
            # the VFs the emulator may create, for sriov_numvfs
            for pf in self.devices:
                if pf.sriov and not pf.is_vf and self._vf_native(pf):
                    f.writelines("%s %s\n" % (a, self._vf_native(pf)) for a in
                                 (pf.vf_addr(i) for i in range(pf.sriov["total"])) if a not in self.by_addr)
        for pf in self.devices:
            if pf.sriov and not pf.is_vf:
                self._write_vf_templates(root, pf)
        for d in self.devices:
            rel = os.path.relpath(os.path.join(root, d.syspath()[1:]), os.path.join(sysd, "bus/pci/devices"))
            os.symlink(rel, os.path.join(sysd, "bus/pci/devices", d.addr))
            if d.driver:
                ddir = os.path.join(sysd, "bus/pci/drivers", d.driver)
                os.symlink(os.path.relpath(os.path.join(root, d.syspath()[1:]), ddir),
                           os.path.join(ddir, d.addr))
        groups = {}
        for d in self.devices:
            if d.group is not None:
                groups.setdefault(d.group, []).append(d)
        for g, members in groups.items():
            gdir = os.path.join(sysd, "kernel/iommu_groups", str(g), "devices")
            os.makedirs(gdir, exist_ok=True)
            for d in members:
                os.symlink(os.path.relpath(os.path.join(root, d.syspath()[1:]), gdir),
                           os.path.join(gdir, d.addr))
            if all(is_vfio(m.driver) for m in members if not m.bridge) and \
               any(is_vfio(m.driver) for m in members):
                open(os.path.join(root, "dev/vfio", str(g)), "w").close()

    def _write_block(self, root):
        """Disks below their controllers, dm/md arrays on top, and the
        /proc files that say what is mounted and swapped on."""
        sysd = os.path.join(root, "sys")
        for d in ("class/block", "dev/block", "class/graphics", "devices/virtual/block"):
            os.makedirs(os.path.join(sysd, d), exist_ok=True)
        devnums = {}

        def blockdev(path, name, major, minor):
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "dev"), "w") as f:
                f.write("%d:%d\n" % (major, minor))
            os.symlink(os.path.relpath(path, os.path.join(sysd, "class/block")), os.path.join(sysd, "class/block", name))
            os.symlink(os.path.relpath(path, os.path.join(sysd, "dev/block")),
                       os.path.join(sysd, "dev/block", "%d:%d" % (major, minor)))
            devnums[name] = "%d:%d" % (major, minor)
        paths = {}
        for d in self.devices:
            if d.block:
                disk, major, parts = d.block
                dpath = os.path.join(root, d.syspath()[1:], "host0", "block", disk)
                blockdev(dpath, disk, major, 0)
                paths[disk] = dpath
                for i, part in enumerate(parts):
                    blockdev(os.path.join(dpath, part), part, major, i + 1)
                    paths[part] = os.path.join(dpath, part)
            if d.virtio_9p:
                vdir = os.path.join(root, d.syspath()[1:], "virtio0")
                os.makedirs(vdir)
                with open(os.path.join(vdir, "mount_tag"), "w") as f:
                    f.write(d.virtio_9p + "\n")
                os.makedirs(os.path.join(sysd, "bus/virtio/devices"), exist_ok=True)
                os.symlink(os.path.relpath(vdir, os.path.join(sysd, "bus/virtio/devices")),
                           os.path.join(sysd, "bus/virtio/devices/virtio0"))
            if d.fb:
                fdir = os.path.join(root, d.syspath()[1:], "graphics", d.fb)
                os.makedirs(fdir, exist_ok=True)
                os.symlink("../../../" + d.addr, os.path.join(fdir, "device"))
                os.symlink(os.path.relpath(fdir, os.path.join(sysd, "class/graphics")),
                           os.path.join(sysd, "class/graphics", d.fb))
        for name, dmname, major, minor, slaves in self.arrays:
            apath = os.path.join(sysd, "devices/virtual/block", name)
            blockdev(apath, name, major, minor)
            paths[name] = apath
            os.makedirs(os.path.join(apath, "slaves"))
            for sl in slaves:
                os.symlink(os.path.relpath(paths[sl], os.path.join(apath, "slaves")), os.path.join(apath, "slaves", sl))
            if dmname:
                os.makedirs(os.path.join(apath, "dm"))
                with open(os.path.join(apath, "dm/name"), "w") as f:
                    f.write(dmname + "\n")
        os.makedirs(os.path.join(root, "proc/self"), exist_ok=True)
        with open(os.path.join(root, "proc/self/mountinfo"), "w") as f:
            f.write("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")
            for i, (name, mnt) in enumerate(self.mounts):
                if name.startswith("9p:"):        # no block device: the source is the virtio mount tag
                    f.write("%d 1 0:%d / %s rw,relatime - 9p %s rw,access=client,trans=virtio\n" % (
                        30 + i, 60 + i, mnt.replace(" ", "\\040"), name[3:]))
                    continue
                f.write("%d 1 %s / %s rw,relatime shared:1 - ext4 /dev/%s rw\n" % (30 + i, devnums[name],
                                                                                 mnt.replace(" ", "\\040"), name))
        with open(os.path.join(root, "proc/swaps"), "w") as f:
            f.write("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
            for name in self.swaps:
                f.write("/dev/%s                               partition\t8388604\t\t0\t\t-2\n" % name)

    def _write_proc(self, root):
        def put(rel, text):
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        put("proc/cmdline", self.cmdline + "\n")
        if self.memtotal is not None:
            put("proc/meminfo", meminfo(self.memtotal))
        put("proc/sys/kernel/osrelease", self.osrelease + "\n")
        os.makedirs(os.path.join(root, "proc/sys/kernel/random"), exist_ok=True)
        put("proc/sys/kernel/random/boot_id", self.boot_id + "\n")
        chip = "IR-PCI-MSI" if self.intremap else "PCI-MSI"
        put("proc/interrupts",
            "           CPU0       CPU1\n"
            "  0:         25          0   IO-APIC   2-edge      timer\n"
            " 24:       1200          0  %s 65536-edge      eth0\n" % chip)
        mods = "".join("%s 16384 0 - Live 0x0000000000000000\n" % m for m in self.modules)
        put("proc/modules", mods)
        moddir = os.path.join(root, "lib/modules", self.osrelease)
        os.makedirs(moddir, exist_ok=True)
        # variant VFIO modules installed: those named by an alias, and those loaded
        variants = [m for m in dict.fromkeys([m for _, m in self.aliases] + list(self.modules)) if is_vfio(m)]
        variant_deps = "".join("kernel/drivers/vfio/pci/%s/%s.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko "
                               "kernel/drivers/vfio/vfio.ko\n" % (m.split("_")[0], m.replace("_", "-"))
                               for m in variants)
        put(os.path.join("lib/modules", self.osrelease, "modules.dep"),
            "kernel/drivers/vfio/vfio.ko:\n"
            "kernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko\n"
            "kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/vfio.ko\n"
            + variant_deps)
        put(os.path.join("lib/modules", self.osrelease, "modules.builtin"), "")
        # as depmod writes it; vfio_pci's own table matches any device (driver_override only)
        put(os.path.join("lib/modules", self.osrelease, "modules.alias"),
            "# Aliases extracted from modules themselves.\n" +
            "".join("alias %s %s\n" % a for a in self.aliases) +
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n")

    def _attrs(self, d):
        """d's attribute files (name: text), without config"""
        cls = d.cls
        attrs = {
            "vendor": "0x%04x\n" % d.vendor,
            "device": "0x%04x\n" % d.device,
            "subsystem_vendor": "0x%04x\n" % d.subsys[0],
            "subsystem_device": "0x%04x\n" % d.subsys[1],
            "class": "0x%06x\n" % cls,
            "revision": "0x%02x\n" % d.revision,
            "irq": "0\n",
            "enable": "1\n" if d.driver else "0\n",
            "numa_node": "%d\n" % d.numa,
            "local_cpulist": d.cpulist + "\n",
            "driver_override": "(null)\n",
            "resource": "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 13,
            "uevent": "%sPCI_CLASS=%X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\n"
                      "MODALIAS=pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n" % (
                          ("DRIVER=%s\n" % d.driver) if d.driver else "", cls, d.vendor, d.device,
                          d.subsys[0], d.subsys[1], d.addr, d.vendor, d.device, d.subsys[0],
                          d.subsys[1], cls >> 16, (cls >> 8) & 0xff, cls & 0xff),
        }
        if d.reset_method:
            attrs["reset_method"] = d.reset_method + "\n"
        if d.boot_vga is not None:
            attrs["boot_vga"] = "%d\n" % d.boot_vga
        if d.sriov:
            s = d.sriov
            attrs.update({"sriov_totalvfs": "%d\n" % s["total"], "sriov_numvfs": "%d\n" % s["num"],
                          "sriov_offset": "%d\n" % s["offset"], "sriov_stride": "%d\n" % s["stride"],
                          "sriov_vf_device": "%x\n" % s["vf_device"],
                          "sriov_drivers_autoprobe": "1\n"})
        attrs.update(d.extra_attrs)
        return {name: text for name, text in attrs.items() if name not in d.missing_attrs}

    def _write_device(self, root, d):
        path = os.path.join(root, d.syspath()[1:])
        os.makedirs(path, exist_ok=True)
        busdir = os.path.dirname(path)
        while os.path.basename(busdir).count(":") != 2 and not os.path.exists(os.path.join(busdir, "uevent")):
            # the pciDDDD:BB host bridge directory
            with open(os.path.join(busdir, "uevent"), "w") as f:
                f.write("")
            break
        for name, text in self._attrs(d).items():
            with open(os.path.join(path, name), "w") as f:
                f.write(text)
        if "config" not in d.missing_attrs:
            with open(os.path.join(path, "config"), "wb") as f:
                f.write(d.config())
        sysd = os.path.join(root, "sys")

        def link(name, target):
            os.symlink(os.path.relpath(os.path.join(sysd, target), path), os.path.join(path, name))
        link("subsystem", "bus/pci")
        if d.driver:
            link("driver", "bus/pci/drivers/" + d.driver)
        if d.group is not None:
            link("iommu_group", "kernel/iommu_groups/%d" % d.group)
        if d.physfn is not None:
            os.symlink("../" + d.physfn.addr, os.path.join(path, "physfn"))
        for i, vf in enumerate(d.vfs):
            os.symlink("../" + vf.addr, os.path.join(path, "virtfn%d" % i))
        if d.net:
            ndir = os.path.join(path, "net", d.net)
            os.makedirs(ndir, exist_ok=True)
            os.symlink("../../../" + d.addr, os.path.join(ndir, "device"))
            with open(os.path.join(ndir, "uevent"), "w") as f:
                f.write("INTERFACE=%s\n" % d.net)
            os.symlink(os.path.relpath(ndir, os.path.join(sysd, "class/net")),
                       os.path.join(sysd, "class/net", d.net))

    # ---- what the emulator needs to create VFs (tests/emulator/kernel-emu.c) ----
    def _vf_native(self, pf):
        """The driver whose ID table matches pf's VFs (vfio-pci matches none)"""
        drv = pf.sriov.get("vf_driver")
        return drv if drv and not is_vfio(drv) else None

    def _vf_group(self, pf):
        """Where drivers/iommu/iommu.c pci_device_group() puts a new VF of pf:
        "new" (a group of its own: the lowest free number, when it appears),
        the group of the first bridge above it whose path to the root is not
        isolated by ACS, or "-" without an IOMMU.  A VF is no multifunction
        device and aliases nothing."""
        if not self.iommu:
            return "-"
        p = pf.parent
        if p is None:
            return "new"
        q = p
        while q is not None:
            if not acs_enabled(q):
                return str(p.group)
            q = q.parent
        return "new"

    def _write_vf_templates(self, root, pf):
        """$ROOT/emulator/sriov/PF/: template/ holds the attribute files and
        config space every VF of pf starts with (its uevent names VF 0; the
        emulator puts each VF's address in PCI_SLOT_NAME); vfs has a line
        "INDEX ADDRESS GROUP SYSPATH" for each VF the kernel could create
        (one whose bus is beyond the bridge's range is left out: enabling
        it fails with ENOMEM); no-configure names the driver of pf that has
        no sriov_configure."""
        s = pf.sriov
        edir = os.path.join(root, "emulator/sriov", pf.addr)
        tdir = os.path.join(edir, "template")
        os.makedirs(tdir)
        proto = Device(self, pf.vf_addr(0), pf.vendor, s["vf_device"], pf.cls, None, pcie_type=ENDPOINT,
                       driver=None, numa=pf.numa, cpulist=pf.cpulist, flr=True, pm=False, subsys=pf.subsys,
                       reset_method="flr", group=None)
        proto.parent, proto.physfn = pf.parent, pf
        for name, text in self._attrs(proto).items():
            with open(os.path.join(tdir, name), "w") as f:
                f.write(text)
        with open(os.path.join(tdir, "config"), "wb") as f:
            f.write(proto.config())
        group = self._vf_group(pf)
        top = pf.parent.secondary[1] if pf.parent is not None and pf.parent.secondary else 0xff
        here = os.path.dirname(pf.syspath())
        with open(os.path.join(edir, "vfs"), "w") as f:
            for i in range(s["total"]):
                a = pf.vf_addr(i)
                if parse_addr(a)[1] <= top:
                    f.write("%d %s %s %s/%s\n" % (i, a, group, here, a))
        if not s.get("sriov_configure", True):
            with open(os.path.join(edir, "no-configure"), "w") as f:
                f.write("%s\n" % (pf.native or pf.driver))
