"""Debian's own kernel and a small initramfs for the e2e guest.

The kernel is fetched at test time with apt-get download and unpacked with
dpkg -x into the build directory (never into the source tree), then depmod
writes the modules.dep the package leaves to its postinst. The initramfs is
busybox-static, the modules the guest needs (with their dependencies, in
load order, from modules.dep) and tests/e2e/init.
"""

import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

# what init loads: the host's root has no modules for this kernel, so
# everything the guest uses is loaded before it is mounted (igb for the PF
# of the igb boot, igbvf for its VFs, which it binds as they are created)
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "e1000e", "igb", "igbvf", "nvme", "vfio-pci", "vfio_iommu_type1"]


class Unavailable(Exception):
    """The kernel or a tool to boot it cannot be had on this machine."""


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise Unavailable("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, (p.stderr or p.stdout).strip()))
    return p.stdout


def kernel_package():
    """linux-image-amd64 is a metapackage; its dependency names the kernel."""
    for line in run(["apt-cache", "depends", "linux-image-amd64"]).splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-") and line.endswith("-amd64"):
            return line.split()[1]
    raise Unavailable("apt-cache depends linux-image-amd64 names no kernel (run apt-get update)")


class Kernel:
    def __init__(self, root, release):
        self.root = root                    # the unpacked package
        self.release = release              # 6.1.0-N-amd64
        self.vmlinuz = os.path.join(root, "boot", "vmlinuz-" + release)
        self.modules = os.path.join(root, "lib", "modules", release)

    def module_path(self, name):
        """modules.dep's path for module NAME (- and _ are the same)"""
        want = name.replace("-", "_")
        with open(os.path.join(self.modules, "modules.dep")) as f:
            for line in f:
                path = line.split(":", 1)[0]
                if os.path.basename(path)[:-3].replace("-", "_") == want:
                    return path
        raise Unavailable("module %s is not in %s/modules.dep" % (name, self.modules))

    def load_order(self, names):
        """NAMES and their dependencies, each after what it needs"""
        deps = {}
        with open(os.path.join(self.modules, "modules.dep")) as f:
            for line in f:
                path, _, rest = line.partition(":")
                deps[path] = rest.split()
        order = []

        def visit(path):
            if path in order:
                return
            for d in reversed(deps.get(path, [])):
                visit(d)
            order.append(path)
        for n in names:
            visit(self.module_path(n))
        return order


def fetch(work):
    """The kernel, downloaded and unpacked below WORK once per version."""
    for tool in ("apt-get", "apt-cache", "dpkg", "depmod"):
        if not shutil.which(tool):
            raise Unavailable("%s is not installed" % tool)
    package = kernel_package()
    release = package[len("linux-image-"):]
    root = os.path.join(work, package)
    kernel = Kernel(root, release)
    if os.path.exists(os.path.join(kernel.modules, "modules.dep")) and os.path.exists(kernel.vmlinuz):
        return kernel
    shutil.rmtree(root, ignore_errors=True)
    download = os.path.join(work, "download")
    shutil.rmtree(download, ignore_errors=True)
    os.makedirs(download)
    run(["apt-get", "download", package], cwd=download)
    debs = [f for f in os.listdir(download) if f.endswith(".deb")]
    if len(debs) != 1:
        raise Unavailable("apt-get download %s left %s" % (package, debs))
    run(["dpkg", "-x", os.path.join(download, debs[0]), root + ".tmp"])
    run(["depmod", "-b", root + ".tmp", release])
    os.rename(root + ".tmp", root)
    shutil.rmtree(download)
    return kernel


def is_static(path):
    """An ELF64 file with no PT_INTERP program header"""
    import struct
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:5] != b"\x7fELF\x02":
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                if struct.unpack("<I", f.read(4))[0] == 3:
                    return False
            return True
    except OSError:
        return False


def initramfs(kernel, work):
    """A newc cpio of busybox, the boot modules and init; rebuilt each run
    (it takes well under a second)."""
    busybox = "/bin/busybox"
    if not is_static(busybox):
        raise Unavailable("%s is missing or dynamically linked: install busybox-static" % busybox)
    tree = os.path.join(work, "initramfs")
    shutil.rmtree(tree, ignore_errors=True)
    for d in ("bin", "dev", "proc", "sys", "modules"):
        os.makedirs(os.path.join(tree, d))
    shutil.copy(busybox, os.path.join(tree, "bin", "busybox"))
    shutil.copy(os.path.join(HERE, "init"), os.path.join(tree, "init"))
    os.chmod(os.path.join(tree, "init"), 0o755)
    with open(os.path.join(tree, "modules.list"), "w") as f:
        for path in kernel.load_order(BOOT_MODULES):
            shutil.copy(os.path.join(kernel.modules, path), os.path.join(tree, "modules"))
            f.write(os.path.basename(path) + "\n")
    image = os.path.join(work, "initramfs.cpio")
    files = subprocess.run(["find", "."], cwd=tree, capture_output=True, text=True, check=True).stdout
    with open(image, "wb") as out:
        p = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=tree, input=files.encode(),
                           stdout=out, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Unavailable("cpio failed: %s" % p.stderr.decode().strip())
    return image
