"""QEMU 10 from Debian's bookworm-backports, for the boots that QEMU 7.2
cannot give (igb, an SR-IOV NIC), run beside the system's QEMU.

The packages (qemu-system-x86, -common, -data) are fetched at test time
with apt-get download through a private apt configuration: a sources list
of our own naming the machine's Debian mirror with the backports suite,
and lists and cache below WORK, so the machine's apt setup is never
touched. They are unpacked with dpkg-deb -x into WORK once, and later runs
use that copy without going to the network (a new build directory fetches
the suite's newest). The libraries they need are all Debian 12's, and the
system's QEMU 7.2 already pulls them in; SeaBIOS stays Debian 12's (1.16.2,
where the package asks for 1.16.3), which boots the guest's -kernel all
the same.

QEMU's module and firmware folders are compiled in, so the unpacked QEMU
runs in a private mount namespace (unshare -m) where its binary,
/usr/lib/x86_64-linux-gnu/qemu and /usr/share/qemu are bind-mounted over
the system's; nothing outside that namespace sees them.
"""

import glob
import os
import re
import shutil
import subprocess

from guest_kernel import Unavailable, run

PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data")
BINARY = "/usr/bin/qemu-system-x86_64"
# what the unpacked QEMU puts over the system's, inside its namespace
OVER = (BINARY, "/usr/lib/x86_64-linux-gnu/qemu", "/usr/share/qemu")
SOURCES = "/etc/apt"
# deb [option=value ...] uri suite component...
ONE_LINE = re.compile(r"^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$")


def codename():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_CODENAME" and value:
                    return value.strip('"')
    except OSError:
        pass
    raise Unavailable("/etc/os-release names no VERSION_CODENAME: this is not a Debian release with backports")


def deb822(text):
    """the paragraphs of a .sources file, each a dict of its fields"""
    paragraphs, fields, key = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, key = {}, None
        elif line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return paragraphs


def entries(root=SOURCES):
    """(uri, suites, components, signed-by or None) of every deb source"""
    found = []
    lists = [os.path.join(root, "sources.list")] + sorted(glob.glob(os.path.join(root, "sources.list.d", "*.list")))
    for path in lists:
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = ONE_LINE.match(line.split("#", 1)[0].strip())
            if not m:
                continue
            options = dict(o.partition("=")[::2] for o in (m.group(1) or "").split())
            found.append((m.group(2), [m.group(3)], m.group(4).split(), options.get("signed-by")))
    for path in sorted(glob.glob(os.path.join(root, "sources.list.d", "*.sources"))):
        try:
            text = open(path).read()
        except OSError:
            continue
        for p in deb822(text):
            if "deb" not in p.get("types", "").split() or p.get("enabled", "yes").lower() == "no":
                continue
            signed = p.get("signed-by")
            if signed and "\n" in signed:     # an inline key: not a path we can name
                signed = None
            for uri in p.get("uris", "").split():
                found.append((uri, p.get("suites", "").split(), p.get("components", "").split(), signed))
    return found


def mirror(release):
    """the machine's Debian mirror: the source that carries RELEASE's main"""
    for uri, suites, components, signed in entries():
        if release in suites and "main" in components:
            return uri.rstrip("/"), signed
    raise Unavailable("no apt source in %s carries '%s main': cannot tell the machine's Debian mirror "
                      "to fetch %s-backports from" % (SOURCES, release, release))


class Qemu:
    """The unpacked QEMU: command() wraps a QEMU command line so that it
    runs this QEMU in its own mount namespace."""

    def __init__(self, root, version):
        self.root, self.version = root, version

    def command(self, args):
        binds = " && ".join('mount --bind "$1%s" %s' % (path, path) for path in OVER)
        # without root, a user namespace of our own may mount
        unshare = ["unshare", "--mount", "--propagation", "private"] + (["--map-root-user"] if os.geteuid() != 0 else [])
        return unshare + ["sh", "-c", binds + ' && shift && exec "$@"', "sh", self.root, BINARY] + list(args)

    def check(self):
        """that it runs here and emulates igb"""
        p = subprocess.run(self.command(["-device", "help"]), capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Unavailable("QEMU %s from %s cannot run in a mount namespace of its own (unshare -m): %s"
                              % (self.version, self.root, (p.stderr or p.stdout).strip()[-500:]))
        if '"igb"' not in p.stdout:
            raise Unavailable("QEMU %s from %s has no igb device" % (self.version, self.root))
        return self


def fetch(work):
    """QEMU from the backports suite, unpacked below WORK once per version"""
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "unshare", "mount"):
        if not shutil.which(tool):
            raise Unavailable("%s is not installed" % tool)
    base = os.path.join(work, "qemu-backports")
    root = os.path.join(base, "root")
    stamp = os.path.join(base, "version")
    if os.path.exists(stamp) and os.path.exists(root + BINARY):
        return Qemu(root, open(stamp).read().strip()).check()

    release = codename()
    suite = release + "-backports"
    uri, signed = mirror(release)
    state = os.path.join(base, "apt")
    for d in ("lists/partial", "cache/archives/partial", "sources.list.d", "download"):
        os.makedirs(os.path.join(state, d), exist_ok=True)
    sources = os.path.join(state, "sources.list")
    with open(sources, "w") as f:
        f.write("deb %s%s %s main\n" % ("[signed-by=%s] " % signed if signed else "", uri, suite))
    config = ["-q", "-o", "Dir::Etc::SourceList=" + sources,
              "-o", "Dir::Etc::SourceParts=" + os.path.join(state, "sources.list.d"),
              "-o", "Dir::State::Lists=" + os.path.join(state, "lists"),
              "-o", "Dir::Cache=" + os.path.join(state, "cache"),
              "-o", "APT::Sandbox::User=root"]
    run(["apt-get"] + config + ["update"])
    version = None
    for line in run(["apt-cache"] + config + ["policy", PACKAGES[0]]).splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
    if not version or "bpo" not in version:
        raise Unavailable("%s offers no %s (candidate %s)" % (suite, PACKAGES[0], version))
    download = os.path.join(state, "download")
    for f in os.listdir(download):
        os.unlink(os.path.join(download, f))
    run(["apt-get"] + config + ["download"] + ["%s=%s" % (p, version) for p in PACKAGES], cwd=download)
    debs = sorted(os.listdir(download))
    if len(debs) != len(PACKAGES):
        raise Unavailable("apt-get download of %s %s left %s" % (", ".join(PACKAGES), version, debs))
    shutil.rmtree(root + ".tmp", ignore_errors=True)
    for deb in debs:
        run(["dpkg-deb", "-x", os.path.join(download, deb), root + ".tmp"])
    shutil.rmtree(root, ignore_errors=True)
    os.rename(root + ".tmp", root)
    shutil.rmtree(download)
    with open(stamp, "w") as f:
        f.write(version + "\n")
    return Qemu(root, version).check()
