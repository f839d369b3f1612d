#!/usr/bin/python3
"""The end-to-end suite: iovirtd and iovirtctl on a real Linux kernel.

Boots Debian's own kernel under QEMU (TCG: no KVM needed) with an emulated
Intel IOMMU and topologies of our own, with the host's root as the guest's
root over virtio-9p, so the guest runs this build's binaries, dbus-daemon
and lspci. tests/e2e/guest.py runs the scenarios inside and writes TAP to a
second 9p share; this script relays it, one boot after another. A guest
that hangs is killed after a bounded time and its console log is attached.
The boots that need a device QEMU 7.2 lacks (igb) run QEMU 10 from
bookworm-backports (tests/e2e/backports.py), fetched like the kernel. The
libvirt boot runs this machine's libvirtd inside the guest, with iovirt's
qemu hook. The systemd boot runs systemd as the guest's PID 1, with what
meson install puts on a host (into a DESTDIR here, copied into place in the
guest by tests/e2e/systemd_root.py), and iovirtd in its unit's sandbox.

Usage: run-e2e.py SOURCE_DIR BUILD_DIR
IOVIRT_E2E_BOOTS=numa,main (names from BOOTS, comma-separated) runs only
those boots, in BOOTS' order; unset or empty runs all of them, and a name
that is no boot fails the run.
Skips visibly where QEMU, busybox-static or Debian's kernel cannot be had
(the igb boot alone where QEMU 10 cannot, the libvirt boot where libvirt is
not installed), unless IOVIRT_E2E_REQUIRED=1 (as in .ci/run), where that
fails.
"""

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import backports  # noqa: E402
import guest_kernel  # noqa: E402

QEMU = "qemu-system-x86_64"
# the guest sees the host's root except these, which it mounts itself
GUEST_OWN = ("/proc", "/sys", "/dev", "/run")
SANITIZER_OPTIONS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
GUEST_MEMORY = 1024         # MiB
BOOT_TIMEOUT = 360          # seconds; the main boot takes 60-90 s under TCG, 200 s under ASan on a busy machine
# boots that take longer: systemd's takes 250-300 s (80 s of it to reach its
# checks, 60 s a libvirt domain's start), and more on a busy machine
BOOT_TIMEOUTS = {"systemd": 600}

# fixed slots on pcie.0, so that the guest can find each part by its port
HOSTROOT_SLOT, RESULTS_SLOT = 0x03, 0x04
PORTS = {"nic": 0x10, "uplink": 0x11, "multi": 0x12, "switch": 0x13, "nvme": 0x14, "igb": 0x15, "nic2": 0x17}
# the numa boot's expander bridge (pxb-pcie, a host bridge of its own on NUMA
# node 1) sits in this slot of pcie.0 and numbers its buses from PXB_BUS; its
# root port "remote" is the first function of that bus
PXB_SLOT, PXB_BUS = 0x16, 0x80
BEHIND_PXB = {"remote": PXB_BUS}


def root_port(name, chassis):
    return ["-device", "pcie-root-port,id=%s,bus=pcie.0,addr=0x%x,chassis=%d" % (name, PORTS[name], chassis)]


def nvme_port(work, chassis):
    """an SR-IOV NVMe controller (2 VFs) with a namespace, on root port nvme"""
    disk = os.path.join(work, "nvme.img")
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    return root_port("nvme", chassis) + ["-drive", "file=%s,if=none,format=raw,id=nvm0" % disk,
                                         "-device", "nvme-subsys,id=ss0,nqn=ss0",
                                         "-device", "nvme,id=nvme0,serial=iovirt0,subsys=ss0,bus=nvme,sriov_max_vfs=2,"
                                                    "sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=8",
                                         "-device", "nvme-ns,drive=nvm0,bus=nvme0"]


def main_topology(work):
    """ACS root ports, a switch without ACS, a multifunction endpoint, an
    SR-IOV NVMe controller, and a NIC with a network behind it.
    Returns the root ports used and QEMU's arguments."""
    nic = "e1000e,romfile="
    return ["nic", "uplink", "multi", "switch", "nvme"], (root_port("nic", 1) + ["-device", nic + ",bus=nic"] +
            root_port("uplink", 2) + ["-netdev", "user,id=net0", "-device", nic + ",bus=uplink,netdev=net0"] +
            root_port("multi", 3) + ["-device", nic + ",bus=multi,addr=0.0,multifunction=on",
                                     "-device", nic + ",bus=multi,addr=0.1"] +
            root_port("switch", 4) + ["-device", "x3130-upstream,id=up,bus=switch",
                                      "-device", "xio3130-downstream,id=down1,bus=up,chassis=11,slot=0",
                                      "-device", "xio3130-downstream,id=down2,bus=up,chassis=12,slot=1",
                                      "-device", nic + ",bus=down1", "-device", nic + ",bus=down2"] +
            nvme_port(work, 5))


def nic_topology(work):
    return ["nic"], root_port("nic", 1) + ["-device", "e1000e,romfile=,bus=nic"]


def libvirt_topology(work):
    """two NICs, each on its own ACS root port: one ("nic") for the hostdevs
    domains start with, one ("nic2") for iovirtctl assign --to domain:NAME
    and the policy's pool"""
    return ["nic", "nic2"], (root_port("nic", 1) + ["-device", "e1000e,romfile=,bus=nic"] +
                             root_port("nic2", 2) + ["-device", "e1000e,romfile=,bus=nic2"])


def systemd_topology(work):
    """a NIC on its own ACS root port (assigned to a process, to a domain of
    the guest's libvirtd, and moved to vfio-pci after it was unloaded) and
    the SR-IOV NVMe controller (VFs created and assigned)"""
    return ["nic", "nvme"], root_port("nic", 1) + ["-device", "e1000e,romfile=,bus=nic"] + nvme_port(work, 2)


def igb_topology(work):
    """an 82576 with SR-IOV (7 VFs) on its own ACS root port (QEMU 10)"""
    return ["igb"], root_port("igb", 1) + ["-device", "igb,bus=igb"]


def numa_topology(work):
    """Two NUMA nodes (CPU 0 and 512 MiB on node 0, CPU 1 and 512 MiB on
    node 1), a NIC on a root port of pcie.0 ("nic": no node, as ACPI gives
    pcie.0 no proximity), and a NIC on a root port ("remote") of a pxb-pcie
    expander bridge that ACPI places on node 1. The guest's memory (-m) and
    CPUs (-smp) are the common ones; the nodes split them."""
    half = "%dM" % (GUEST_MEMORY // 2)
    nodes = ["-object", "memory-backend-ram,id=mem0,size=" + half, "-numa", "node,nodeid=0,cpus=0,memdev=mem0",
             "-object", "memory-backend-ram,id=mem1,size=" + half, "-numa", "node,nodeid=1,cpus=1,memdev=mem1"]
    pxb = ["-device", "pxb-pcie,id=pxb1,bus=pcie.0,addr=0x%x,bus_nr=%d,numa_node=1" % (PXB_SLOT, PXB_BUS),
           "-device", "pcie-root-port,id=remote,bus=pxb1,addr=0x0,chassis=2",
           "-device", "e1000e,romfile=,bus=remote"]
    return ["nic", "remote"], nodes + root_port("nic", 1) + ["-device", "e1000e,romfile=,bus=nic"] + pxb


# name (guest.py's SCENARIOS says what runs in it), the intel-iommu device,
# the topology, and the QEMU: the system's (Debian 12: 7.2) or backports' (10)
BOOTS = [
    ("main", "intel-iommu,caching-mode=on", main_topology, "system"),
    ("intremap-off", "intel-iommu,caching-mode=on,intremap=off", nic_topology, "system"),
    ("igb", "intel-iommu,caching-mode=on", igb_topology, "backports"),
    ("numa", "intel-iommu,caching-mode=on", numa_topology, "system"),
    ("libvirt", "intel-iommu,caching-mode=on", libvirt_topology, "system"),
    # systemd as PID 1, iovirtd installed as meson install puts it and
    # started by D-Bus activation through its unit (tests/e2e/systemd_root.py
    # prepares the root, tests/e2e/guest_systemd.py checks)
    ("systemd", "intel-iommu,caching-mode=on", systemd_topology, "system"),
]


# what a boot runs in the guest beyond the suite's own needs (the guest's
# root is this machine's), and the Debian package that has it
BOOT_NEEDS = {"libvirt": [("/usr/sbin/libvirtd", "libvirt-daemon-system"), ("/usr/bin/virsh", "libvirt-clients")],
              "systemd": [("/lib/systemd/systemd", "systemd"), ("/usr/bin/dbus-daemon", "dbus-daemon"),
                          ("/usr/lib/polkit-1/polkitd", "polkitd"), ("/usr/bin/pkaction", "polkitd"),
                          ("/sbin/modprobe", "kmod"), ("/usr/bin/nsenter", "util-linux"),
                          ("/usr/sbin/libvirtd", "libvirt-daemon-system"), ("/usr/bin/virsh", "libvirt-clients")]}
# what the systemd boot covers with its own tmpfs (or an overlay of one); a
# source or build folder below them is bound into it again
# (tests/e2e/systemd_root.py), but these themselves cannot be
SYSTEMD_COVERS = ("/tmp", "/var", "/etc")


def boot_missing(name):
    """why boot NAME cannot run here, or None"""
    missing = ["%s (Debian: %s)" % (path, package) for path, package in BOOT_NEEDS.get(name, [])
               if not os.access(path, os.X_OK)]
    return "%s not installed" % ", ".join(missing) if missing else None


def topology_names(ports):
    return {"hostroot": "0000:00:%02x.0" % HOSTROOT_SLOT,
            "ports": {n: "0000:%02x:00.0" % BEHIND_PXB[n] if n in BEHIND_PXB else "0000:00:%02x.0" % PORTS[n]
                      for n in ports}}


def selected(boots, names):
    """BOOTS narrowed to NAMES (IOVIRT_E2E_BOOTS: comma-separated; empty: all).
    Returns (boots, names that are no boot)."""
    want = [n.strip() for n in names.split(",") if n.strip()]
    if not want:
        return boots, []
    known = [b[0] for b in boots]
    return [b for b in boots if b[0] in want], [n for n in want if n not in known]


class Boot:
    def __init__(self, name, seconds, results, console, timed_out):
        self.name, self.seconds, self.console, self.timed_out = name, seconds, console, timed_out
        self.where = "the guest's files are in %s (iovirtd.log, guest.log, tap)" % results
        self.tap = read(os.path.join(results, "tap"))
        self.guest_log = read(os.path.join(results, "guest.log"))
        self.timings = read_json(os.path.join(results, "timings.json"), [])
        self.discovery = read_json(os.path.join(results, "discovery.json"), None)
        self.sriov = read_json(os.path.join(results, "sriov.json"), None)
        self.scenarios = read_json(os.path.join(results, "scenarios.json"), [])
        self.libvirt = read_json(os.path.join(results, "libvirt.json"), [])
        self.systemd = read_json(os.path.join(results, "systemd.json"), None)


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def meson_install(build, work):
    """meson install of BUILD into a DESTDIR below WORK, as a packager runs
    it: returns (DESTDIR, {installed path: what the build made}), the paths
    as meson introspect --installed names them, below /"""
    meson = shutil.which("meson")
    if not meson:
        raise guest_kernel.Unavailable("meson is not on PATH")
    destdir = os.path.join(work, "install-systemd")
    shutil.rmtree(destdir, ignore_errors=True)
    guest_kernel.run([meson, "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", destdir])
    installed = json.loads(guest_kernel.run([meson, "introspect", "--installed", build]))
    return destdir, {dest: built for built, dest in installed.items()}


def boot(kernel, initrd, work, source, build, name, iommu, topology, qemu):
    """QEMU is a function from QEMU's arguments to the command line"""
    results = os.path.join(work, "results-" + name)
    shutil.rmtree(results, ignore_errors=True)
    os.makedirs(results)
    used, devices = topology(work)
    config = {"boot": name, "source": source, "build": build, "topology": topology_names(used)}
    guest = "guest.py"
    if name == "systemd":
        # the guest's init runs PREPARE in the host's root, then makes
        # systemd PID 1 there (tests/e2e/init)
        config["destdir"], config["installed"] = meson_install(build, work)
        config["modules"] = os.path.dirname(kernel.modules)
        guest = "guest_systemd.py"
        with open(os.path.join(results, "prepare"), "w") as f:
            f.write("#!/bin/sh\n# written by tests/e2e/run-e2e.py; run by the guest's init before systemd\n"
                    "exec /usr/bin/python3 -B %s /run/iovirt-e2e/config.json >/run/iovirt-e2e/prepare.log 2>&1\n" %
                    os.path.join(source, "tests", "e2e", "systemd_root.py"))
        os.chmod(os.path.join(results, "prepare"), 0o755)
    with open(os.path.join(results, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(results, "run"), "w") as f:
        f.write("#!/bin/sh\n# written by tests/e2e/run-e2e.py; run by the guest's init (or, in the systemd boot, "
                "by its iovirt-e2e.service)\nexport TMPDIR=/run/tmp\n")
        for var in SANITIZER_OPTIONS:          # a sanitizer build behaves in the guest as it does here
            if var in os.environ:
                f.write("export %s=%s\n" % (var, shlex.quote(os.environ[var])))
        f.write("exec /usr/bin/python3 -B %s /run/iovirt-e2e/config.json "
                ">/run/iovirt-e2e/tap 2>/run/iovirt-e2e/guest.log\n" % os.path.join(source, "tests", "e2e", guest))
    os.chmod(os.path.join(results, "run"), 0o755)
    console = os.path.join(work, "console-%s.log" % name)
    if os.path.exists(console):
        os.unlink(console)
    args = ["-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", str(GUEST_MEMORY), "-smp", "2",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-device", iommu,             # before any PCI device it translates
            "-kernel", kernel.vmlinuz, "-initrd", initrd,
            "-append", "console=ttyS0 intel_iommu=on iommu=pt panic=-1 loglevel=4 net.ifnames=0",
            "-serial", "file:" + console,
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,bus=pcie.0,addr=0x%x" % HOSTROOT_SLOT,
            "-fsdev", "local,id=results,path=%s,security_model=none" % results,
            "-device", "virtio-9p-pci,fsdev=results,mount_tag=results,bus=pcie.0,addr=0x%x" % RESULTS_SLOT] + devices
    cmd = qemu(args)
    t0 = time.monotonic()
    timed_out = False
    with open(os.path.join(work, "qemu-%s.log" % name), "w") as qlog:
        p = subprocess.Popen(cmd, stdout=qlog, stderr=subprocess.STDOUT)
        try:
            p.wait(BOOT_TIMEOUTS.get(name, BOOT_TIMEOUT))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            timed_out = True
    return Boot(name, time.monotonic() - t0, results, read(console) + read(qlog.name), timed_out)


def relay(tap, b):
    """The guest's TAP as ours, each name prefixed with its boot."""
    lines = b.tap.splitlines()
    finished = any(line.startswith("1..") for line in lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not (line.startswith("ok ") or line.startswith("not ok ")):
            continue
        detail = []
        while i < len(lines) and lines[i].startswith("#"):
            detail.append(lines[i][1:].strip())
            i += 1
        name = line.split(" - ", 1)[1] if " - " in line else line
        if " # SKIP " in name:
            what, why = name.split(" # SKIP ", 1)
            tap.skip("%s: %s" % (b.name, what), why)
        else:
            tap.ok(line.startswith("ok "), "%s: %s" % (b.name, name),
                   "\n".join(detail + [b.where, b.guest_log[-3000:]]))
    tail = "\n".join(b.console.splitlines()[-40:])
    if b.timed_out:
        tap.ok(False, "%s: the guest finished within %d s" % (b.name, BOOT_TIMEOUTS.get(b.name, BOOT_TIMEOUT)),
               "%s\nconsole:\n%s" % (b.where, tail))
    else:
        tap.ok(finished, "%s: the guest ran every scenario and powered off (%.1f s)" % (b.name, b.seconds),
               "guest stderr:\n%s\nconsole:\n%s" % (b.guest_log[-3000:], tail))


def report(boots, total):
    print("# e2e wall time %.1f s: %s" % (total, ", ".join("boot %s %.1f s" % (b.name, b.seconds) for b in boots)))
    moves = [m for b in boots for m in b.timings]
    for to in sorted({m["to"] for m in moves}):
        ms = [m["ms"] for m in moves if m["to"] == to]
        print("# iovirtd measured the kernel moving a function to %s: median %.1f ms, max %.1f ms (%d moves)" % (
            to, statistics.median(ms), max(ms), len(ms)))
    sanitized = "a sanitized build, " if "ASAN_OPTIONS" in os.environ else ""
    for b in boots:
        d = b.discovery
        if d:
            print("# %s%s: listing %d functions (median of 5): iovirtctl --direct %.0f ms, through iovirtd %.0f ms, "
                  "lspci -vvv %.0f ms; iovirtctl --direct / lspci = %.2f" % (
                      sanitized, b.name, d["functions"], d["iovirtctl_direct"] * 1e3, d["iovirtctl_daemon"] * 1e3,
                      d["lspci_vvv"] * 1e3, d["iovirtctl_direct"] / d["lspci_vvv"]))
        if b.scenarios:
            print("# %s%s: scenarios: %s" % (sanitized, b.name,
                                             "; ".join("%s %.1f s" % (n, t) for n, t in b.scenarios)))
        if b.libvirt:
            print("# %s%s: %s" % (sanitized, b.name, "; ".join("%s: %.1f s" % (w, t) for w, t in b.libvirt)))
        if b.systemd:
            print("# %s%s: %s" % (sanitized, b.name, "; ".join("%s: %s" % (w, v) for w, v in b.systemd)))
        s = b.sriov
        if s:
            ours, floor = s.get("iovirtctl"), s.get("by_hand")
            print("# %s%s: sriov_numvfs 0 -> 7 (median of %d): iovirtctl sriov --vfs 7 %s, echo 7 > sriov_numvfs "
                  "by hand %s%s" % (
                      sanitized, b.name, len(floor or ours or []),
                      "%.0f ms" % (statistics.median(ours) * 1e3) if ours else "not measured",
                      "%.0f ms" % (statistics.median(floor) * 1e3) if floor else "not measured",
                      "; iovirtctl / by hand = %.2f" % (statistics.median(ours) / statistics.median(floor))
                      if ours and floor else ""))


def main():
    source, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = os.path.join(build, "tests", "e2e", "work")
    os.makedirs(work, exist_ok=True)
    tap = Tap()
    required = os.environ.get("IOVIRT_E2E_REQUIRED") == "1"
    chosen, unknown = selected(BOOTS, os.environ.get("IOVIRT_E2E_BOOTS", ""))
    if unknown:
        tap.ok(False, "IOVIRT_E2E_BOOTS names boots that exist", "no boot %s; the boots are %s" % (
            ", ".join(unknown), ", ".join(b[0] for b in BOOTS)))
        return tap.done()
    t0 = time.monotonic()
    try:
        for path in (source, build):
            if any(path == d or path.startswith(d + "/") for d in GUEST_OWN):
                raise guest_kernel.Unavailable("%s is under %s, which the guest mounts its own; build "
                                               "elsewhere to run the e2e suite" % (path, ", ".join(GUEST_OWN)))
        if not shutil.which(QEMU):
            raise guest_kernel.Unavailable("%s is not installed (Debian: qemu-system-x86)" % QEMU)
        kernel = guest_kernel.fetch(work)
        initrd = guest_kernel.initramfs(kernel, work)
    except guest_kernel.Unavailable as e:
        if required:
            tap.ok(False, "the guest kernel and QEMU are at hand", str(e))
        else:
            tap.skip("boot a real kernel under QEMU", str(e))
        return tap.done()
    print("# guest kernel %s (fetched and prepared in %.1f s)" % (kernel.release, time.monotonic() - t0))
    # each QEMU's command line, or why it cannot be had; backports' is
    # fetched when a boot first needs it
    qemus = {"system": lambda args: [QEMU] + args}
    boots = []
    for name, iommu, topology, which in chosen:
        why = boot_missing(name)
        if not why and name == "systemd":
            covered = [p for p in (source, build) for d in SYSTEMD_COVERS if p == d]
            if covered:
                why = "the source or build is %s itself, which the systemd boot covers with its own; build " \
                      "in a folder of it" % covered[0]
        if why:
            if required:
                tap.ok(False, "%s: what the boot runs in the guest is installed" % name, why)
            else:
                tap.skip("%s: boot" % name, why)
            continue
        if which not in qemus:
            t1 = time.monotonic()
            try:
                q = backports.fetch(work)
                qemus[which] = q.command
                print("# QEMU %s from bookworm-backports (fetched, unpacked and checked in %.1f s)" % (
                    q.version, time.monotonic() - t1))
            except guest_kernel.Unavailable as e:
                qemus[which] = e
        if isinstance(qemus[which], guest_kernel.Unavailable):
            if required:
                tap.ok(False, "%s: QEMU 10 from bookworm-backports is at hand" % name, str(qemus[which]))
            else:
                tap.skip("%s: boot with QEMU 10 from bookworm-backports" % name, str(qemus[which]))
            continue
        try:
            b = boot(kernel, initrd, work, source, build, name, iommu, topology, qemus[which])
        except guest_kernel.Unavailable as e:        # the systemd boot's meson install
            tap.ok(False, "%s: the build installs (meson install --destdir)" % name, str(e))
            continue
        relay(tap, b)
        boots.append(b)
    report(boots, time.monotonic() - t0)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
