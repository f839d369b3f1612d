"""The emulated hosts the tests run against.  Each function returns a
testbed.Host; build-host writes it out.  Addresses, IDs and register values
are those of real parts where it matters (ACS, SR-IOV, PCIe port types)."""

from testbed import Host, ACS_RR, ACS_CR, ENDPOINT, RC_END, PCIE_PCI_BRIDGE, fmt_addr


def desktop():
    """A desktop: GPU with its HDMI audio function in one group behind an
    ACS root port, an NVMe disk, a NIC, integrated devices on the root bus."""
    h = Host("desktop", cpus=8, mounts=[("nvme0n1p2", "/"), ("nvme0n1p1", "/boot/efi")])
    h.host_bridge("00:00.0")
    rp1 = h.root_port("00:01.0", (1, 1))
    g = h.new_group()
    h.add("01:00.0", 0x10de, 0x1b80, 0x030000, parent=rp1, pcie_type=ENDPOINT, multifunction=True,
          driver="nouveau", group=g, link=(3, 16, 3, 16), reset_method="bus", boot_vga=0)
    h.add("01:00.1", 0x10de, 0x10f0, 0x040300, parent=rp1, pcie_type=ENDPOINT, multifunction=True,
          driver="snd_hda_intel", group=g, link=(3, 16, 3, 16), reset_method="bus")
    h.add("00:02.0", 0x8086, 0x3e92, 0x030000, pcie_type=RC_END, driver="i915", flr=True,
          reset_method="flr", boot_vga=1, fb="fb0")
    rp2 = h.root_port("00:1b.0", (2, 2))
    h.add("02:00.0", 0x144d, 0xa808, 0x010802, parent=rp2, pcie_type=ENDPOINT, driver="nvme",
          flr=True, reset_method="flr bus", link=(3, 4, 3, 4), block=("nvme0n1", 259, ["nvme0n1p1", "nvme0n1p2"]))
    rp3 = h.root_port("00:1c.0", (3, 3))
    h.add("03:00.0", 0x8086, 0x10d3, 0x020000, parent=rp3, pcie_type=ENDPOINT, driver="e1000e",
          flr=True, reset_method="flr pm bus", link=(1, 1, 1, 1), net="enp3s0")
    rp4 = h.root_port("00:1c.4", (4, 4))
    h.add("04:00.0", 0x1b21, 0x2142, 0x0c0330, parent=rp4, pcie_type=ENDPOINT, driver=None,
          reset_method="pm bus", link=(2, 2, 2, 2))
    h.add("00:14.0", 0x8086, 0xa36d, 0x0c0330, pcie_type=RC_END, driver="xhci_hcd", reset_method="pm")
    return h


def dual_socket():
    """Two NUMA nodes, two root complexes, an SR-IOV NIC (Intel X710-like)
    with VFs enabled on node 1, a GPU on node 0."""
    h = Host("dual-socket", numa_nodes=2, cpus=32)
    h.host_bridge("00:00.0", numa=0)
    h.host_bridge("80:00.0", numa=1)
    rp = h.root_port("00:03.0", (0x3b, 0x3b), numa=0)
    h.add("3b:00.0", 0x10de, 0x1eb8, 0x030200, parent=rp, pcie_type=ENDPOINT, driver="vfio-pci",
          numa=0, reset_method="bus", link=(3, 16, 3, 16))
    rp1 = h.root_port("80:02.0", (0x81, 0x81), numa=1)
    h.sriov_pf("81:00.0", rp1, 0x8086, 0x1572, 0x154c, total=64, num=4, offset=16, stride=1,
               driver="i40e", vf_driver="iavf", numa=1, multifunction=True,
               acs=(ACS_RR | ACS_CR, ACS_RR | ACS_CR), reset_method="flr", net="ens1f0")
    h.sriov_pf("81:00.1", rp1, 0x8086, 0x1572, 0x154c, total=64, num=0, offset=79, stride=1,
               driver="i40e", vf_driver="iavf", numa=1, multifunction=True,
               acs=(ACS_RR | ACS_CR, ACS_RR | ACS_CR), reset_method="flr", net="ens1f1")
    # make the third VF a vfio-pci one, as if assigned
    h.by_addr["0000:81:02.2"].driver = "vfio-pci"
    rp2 = h.root_port("80:03.0", (0x82, 0x82), numa=1)
    h.add("82:00.0", 0x15b3, 0x1017, 0x020000, parent=rp2, pcie_type=ENDPOINT, driver="mlx5_core",
          numa=1, flr=True, reset_method="flr")
    return h


def switch_no_acs():
    """A PLX switch whose downstream ports lack ACS: Linux gives each port's
    subtree its own group, but peer-to-peer between them is not blocked."""
    h = Host("switch-no-acs", cpus=8, swaps=["nvme0n1p2"],
             arrays=[("md0", None, 9, 0, ["nvme0n1p1"]), ("dm-0", "vg0-vms", 253, 0, ["md0"])])
    h.host_bridge("00:00.0")
    rp = h.root_port("00:01.0", (1, 5))
    up, ports = h.switch("01:00.0", rp, (2, 5), [("02:01.0", 3), ("02:02.0", 4), ("02:03.0", 5)],
                         acs=False)
    # Linux's grouping: upstream port alone, each downstream port with its subtree
    for p, addr, dev in ((ports[0], "03:00.0", 0x10d3), (ports[1], "04:00.0", 0x10d3)):
        h.add(addr, 0x8086, dev, 0x020000, parent=p, pcie_type=ENDPOINT, driver="e1000e",
              group=p.group, flr=True, reset_method="flr")
    h.add("05:00.0", 0x144d, 0xa808, 0x010802, parent=ports[2], pcie_type=ENDPOINT, driver="nvme",
          group=ports[2].group, flr=True, reset_method="flr", block=("nvme0n1", 259, ["nvme0n1p1", "nvme0n1p2"]))
    # a second, well-behaved root port for contrast
    rp2 = h.root_port("00:1c.0", (6, 6))
    h.add("06:00.0", 0x8086, 0x1533, 0x020000, parent=rp2, pcie_type=ENDPOINT, driver="igb",
          flr=True, reset_method="flr")
    return h


def pci_bridge():
    """A PCIe-to-PCI bridge with two conventional devices behind it: one
    requester ID for all, one group.  A Debian 11 kernel (5.10): no
    reset_method attribute, so reset methods are decoded from capabilities."""
    h = Host("pci-bridge", cpus=4, osrelease="5.10.0-28-amd64")
    h.host_bridge("00:00.0")
    rp = h.root_port("00:1c.0", (1, 2))
    g = h.new_group()
    br = h.add("01:00.0", 0x1b21, 0x1080, 0x060400, parent=rp, bridge=True,
               pcie_type=PCIE_PCI_BRIDGE, secondary=(2, 2), group=g, numa=-1)
    h.add("02:04.0", 0x1102, 0x0002, 0x040100, parent=br, driver="snd_emu10k1", group=g, pm=True)
    h.add("02:05.0", 0x10ec, 0x8139, 0x020000, parent=br, driver="8139too", group=g, pm=True,
          no_soft_reset=True)
    return h


def multifunction():
    """A four-port NIC (Intel I350-like layout) without ACS: the kernel
    puts all four functions in one group."""
    h = Host("multifunction", cpus=8)
    h.host_bridge("00:00.0")
    rp = h.root_port("00:01.0", (1, 1))
    g = h.new_group()
    for fn in range(4):
        h.add("01:00.%d" % fn, 0x8086, 0x1521, 0x020000, parent=rp, pcie_type=ENDPOINT,
              multifunction=True, driver="igb", group=g, flr=True, reset_method="flr",
              net="enp1s0f%d" % fn)
    rp2 = h.root_port("00:1d.0", (2, 2))
    h.add("02:00.0", 0x8086, 0x2522, 0x010802, parent=rp2, pcie_type=ENDPOINT, driver="nvme",
          flr=True, reset_method="flr")
    return h


def no_iommu():
    """The same kind of desktop with the IOMMU off: no groups at all."""
    h = Host("no-iommu", iommu=False, firmware=(), cpus=4, intremap=False,
             modules=())
    h.host_bridge("00:00.0")
    rp = h.root_port("00:1c.0", (1, 1))
    h.add("01:00.0", 0x8086, 0x10d3, 0x020000, parent=rp, pcie_type=ENDPOINT, driver="e1000e",
          flr=True, reset_method="flr")
    h.add("00:1f.3", 0x8086, 0xa348, 0x040300, pcie_type=RC_END, driver="snd_hda_intel",
          reset_method="flr", flr=True)
    return h


def acs_override():
    """A host booted with pcie_acs_override: the multifunction NIC's ports
    and the root ports without ACS were split into separate groups."""
    h = Host("acs-override", cpus=8,
             cmdline="BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro intel_iommu=on "
                     "pcie_acs_override=downstream,multifunction",
             intremap=False, allow_unsafe_interrupts=True)
    h.host_bridge("00:00.0")
    rp = h.root_port("00:1c.0", (1, 1), acs=False)
    rp2 = h.root_port("00:1c.1", (2, 2), acs=False)
    for fn in range(2):
        h.add("01:00.%d" % fn, 0x8086, 0x1521, 0x020000, parent=rp, pcie_type=ENDPOINT,
              multifunction=True, driver="igb", flr=True, reset_method="flr")
    h.add("02:00.0", 0x1b21, 0x2142, 0x0c0330, parent=rp2, pcie_type=ENDPOINT, driver="xhci_hcd",
          reset_method="pm bus")
    h.add("00:1f.0", 0x8086, 0xa305, 0x060100, pcie_type=RC_END, driver=None, pm=False)
    return h


def broken():
    """Bad input: truncated and garbage config space, a capability loop, a
    missing attribute, a device with no reset at all."""
    h = Host("broken", cpus=4)
    h.host_bridge("00:00.0")
    rp = h.root_port("00:1c.0", (1, 3))
    h.add("01:00.0", 0x8086, 0x10d3, 0x020000, parent=rp, pcie_type=ENDPOINT, driver="e1000e",
          config_bytes=b"\x86\x80\xd3\x10" + b"\0" * 28)            # 32 bytes only
    loop = bytearray(4096)
    loop[0:4] = b"\xde\x10\x00\x00"
    loop[0x06] = 0x10                                                 # capability list
    loop[0x0a:0x0c] = b"\x00\x02"
    loop[0x34] = 0x40
    loop[0x40:0x42] = b"\x05\x50"                                     # MSI -> 0x50
    loop[0x50:0x52] = b"\x09\x40"                                     # vendor -> 0x40: a loop
    h.add("00:1d.0", 0x10de, 0x0000, 0x020000, pcie_type=None, driver=None, config_bytes=bytes(loop),
          missing_attrs=("numa_node", "local_cpulist"))
    h.add("00:1e.0", 0x1234, 0x5678, 0x000000, driver=None, pm=False, pcie_type=RC_END)
    h.add("00:1f.0", 0x1234, 0x5679, 0x078000, driver=None, missing_attrs=("config",))
    return h


def generated(root_ports=16, vfs=63, sockets=2):
    """A large SR-IOV server: per socket, root ports each holding a dual-port
    NIC whose two PFs carry VFs.  Functions = sockets*(1 + root_ports*(1+2+2*vfs))."""
    h = Host("generated-%d" % (sockets * (1 + root_ports * (3 + 2 * vfs))), numa_nodes=sockets,
             cpus=16 * sockets)
    for s in range(sockets):
        base = 0x80 * s
        h.host_bridge(fmt_addr(0, base, 0, 0)[5:], numa=s)
        for r in range(root_ports):
            bus = base + 1 + r
            rp = h.root_port(fmt_addr(0, base, 1 + r, 0)[5:], (bus, bus), numa=s)
            for pf in range(2):
                h.sriov_pf(fmt_addr(0, bus, 0, pf)[5:], rp, 0x8086, 0x1572, 0x154c, total=64,
                           num=vfs, offset=0x80, stride=2, driver="i40e", vf_driver="iavf",
                           numa=s, multifunction=True, acs=(ACS_RR | ACS_CR, ACS_RR | ACS_CR),
                           reset_method="flr")
    return h


def large():
    return generated(16, 63, 2)       # 4130 functions


def sriov():
    """For the SR-IOV lifecycle: PFs with no VF enabled yet, every one below
    an ACS root port (each new VF gets a group of its own), on two NUMA
    nodes.  Node 0: an X710 port (i40e; VFs for iavf), a ConnectX-3 whose
    mlx4_core has no sriov_configure (it takes num_vfs as a module
    parameter: sriov_numvfs is ENOENT), an NVMe controller with VFs and no
    netdev.  Node 1: an E810 port with 256 VFs on the next bus (the
    benchmark's), a ConnectX-6 Dx (mlx5_core) whose VFs have a VFIO variant
    driver (mlx5_vfio_pci, loaded, in modules.alias), and a NIC without
    SR-IOV."""
    h = Host("sriov", numa_nodes=2, cpus=16,
             modules=("vfio", "vfio_pci", "vfio_iommu_type1", "mlx5_vfio_pci"),
             aliases=[("vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*", "mlx5_vfio_pci")])
    h.host_bridge("00:00.0", numa=0)
    h.host_bridge("80:00.0", numa=1)
    rp = h.root_port("00:01.0", (5, 5), numa=0)
    h.sriov_pf("05:00.0", rp, 0x8086, 0x1572, 0x154c, total=8, num=0, offset=16, stride=1,
               driver="i40e", vf_driver="iavf", numa=0, reset_method="flr", net="enp5s0f0")
    rp = h.root_port("00:02.0", (6, 6), numa=0)
    h.sriov_pf("06:00.0", rp, 0x15b3, 0x1007, 0x1004, total=16, num=0, offset=1, stride=1,
               driver="mlx4_core", vf_driver="mlx4_core", numa=0, reset_method="flr", net="enp6s0",
               sriov_configure=False)
    rp = h.root_port("00:03.0", (7, 7), numa=0)
    h.sriov_pf("07:00.0", rp, 0x144d, 0xa824, 0xa824, total=4, num=0, offset=1, stride=1,
               driver="nvme", vf_driver="nvme", numa=0, cls=0x010802, reset_method="flr")
    rp = h.root_port("80:01.0", (0x81, 0x82), numa=1)
    h.sriov_pf("81:00.0", rp, 0x8086, 0x1592, 0x1889, total=256, num=0, offset=0x100, stride=1,
               driver="ice", vf_driver="iavf", numa=1, reset_method="flr", net="enp129s0")
    rp = h.root_port("80:02.0", (0x83, 0x83), numa=1)
    h.sriov_pf("83:00.0", rp, 0x15b3, 0x101d, 0x101e, total=8, num=0, offset=2, stride=1,
               driver="mlx5_core", vf_driver="mlx5_core", numa=1, reset_method="flr", net="enp131s0f0np0")
    rp = h.root_port("80:03.0", (0x84, 0x84), numa=1)
    h.add("84:00.0", 0x8086, 0x10d3, 0x020000, parent=rp, pcie_type=ENDPOINT, driver="e1000e", numa=1,
          flr=True, reset_method="flr", net="enp132s0")
    return h


HOSTS = {
    "desktop": desktop,
    "dual-socket": dual_socket,
    "switch-no-acs": switch_no_acs,
    "pci-bridge": pci_bridge,
    "multifunction": multifunction,
    "no-iommu": no_iommu,
    "acs-override": acs_override,
    "broken": broken,
    "large": large,
    "sriov": sriov,
    # sizes for the scaling benchmark
    "scale-100": lambda: generated(4, 5, 2),        # 2*(1+4*13) = 106
    "scale-1000": lambda: generated(8, 30, 2),      # 2*(1+8*63) = 1010
}
