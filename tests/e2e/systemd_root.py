#!/usr/bin/python3
"""Prepares the e2e guest's root for systemd as PID 1 (the systemd boot of
tests/e2e/run-e2e.py); tests/e2e/init runs it chrooted into the host's root
(read-only over virtio-9p), then switch_roots to /lib/systemd/systemd.

What systemd, dbus-daemon, polkitd and libvirtd write gets a tmpfs: /tmp,
/var (with the folders they expect), and an overlay with a tmpfs upper on
/etc. iovirt is installed as meson install puts it: the host ran meson
install --destdir, and its files are copied here to the paths meson
introspect --installed names, each folder they land in made writable by an
overlay (a tmpfs upper over the host's folder, so that what is there stays
visible): exactly the folders the install writes to. The guest kernel's
modules are bind-mounted on /lib/modules, so that modprobe (iovirtd's, for
vfio-pci) finds them. Then the units of the boot: iovirt-e2e.target as the
default target, iovirt-e2e.service running the checks and powering off,
iovirtd's watchdog shortened by a drop-in, and units masked that would
fail or waste time in this guest. argv[1] is the config the host wrote.
"""

import json
import os
import shutil
import subprocess
import sys

CONFIG = json.load(open(sys.argv[1]))
RESULTS = os.path.dirname(sys.argv[1])
KEEP = "/run/iovirt-e2e-keep"      # the folders under test, held while a tmpfs covers where they are
RW = "/run/iovirt-e2e-rw"           # uppers and work folders of the overlays (tmpfs: /run)
# what the guest's iovirtd is given as its watchdog (iovirtd.service says
# 3min): short enough that a boot sees many periods go by
WATCHDOG_SEC = 10
UNITS = "/etc/systemd/system"
# units that would fail or waste time here: no network, no terminals to log
# in at, nothing to sync or clean up, and an /etc that is the host's copy
MASKED = ["getty.target", "serial-getty@ttyS0.service", "systemd-timesyncd.service", "systemd-pstore.service",
          "systemd-remount-fs.service", "systemd-firstboot.service", "systemd-hwdb-update.service",
          "ldconfig.service", "systemd-journal-catalog-update.service", "systemd-update-done.service",
          "systemd-sysusers.service", "systemd-repart.service", "systemd-machine-id-commit.service",
          "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "systemd-modules-load.service",
          "e2scrub_reap.service", "timers.target", "remote-fs.target", "postgresql.service",
          "libvirt-guests.service", "networking.service", "ssh.service", "cron.service", "apparmor.service",
          "console-setup.service", "keyboard-setup.service", "systemd-networkd.service", "NetworkManager.service"]
# libvirtd as DESIGN.md says it runs in the guest: QEMU as root with no
# security driver, namespaces or cgroups, its stdio to a file (the same
# settings as the libvirt boot's, tests/e2e/guest.py)
QEMU_CONF = ('user = "root"\ngroup = "root"\nsecurity_driver = "none"\nnamespaces = [ ]\n'
             'stdio_handler = "file"\ncgroup_controllers = [ ]\n')
LIBVIRTD_CONF = ('log_filters = "1:qemu.qemu_hotplug 1:qemu.qemu_process 1:util.hook 1:hostdev 1:util.pci 3:*"\n'
                 'log_outputs = "1:file:/var/log/libvirt/libvirtd.log"\n')


def say(*what):
    print(*what, flush=True)


def run(*cmd):
    say("+", " ".join(cmd))
    subprocess.run(cmd, check=True)


def overlay(path):
    """PATH, a folder of the read-only root, made writable with what it holds
    still there: an overlay whose upper is a tmpfs folder"""
    n = len(os.listdir(RW)) if os.path.isdir(RW) else 0
    upper, work = os.path.join(RW, str(n), "upper"), os.path.join(RW, str(n), "work")
    os.makedirs(upper)
    os.makedirs(work)
    run("mount", "-t", "overlay", "overlay-" + os.path.basename(path), "-o",
        "lowerdir=%s,upperdir=%s,workdir=%s" % (path, upper, work), path)


def deepest(directory):
    """the deepest folder of DIRECTORY that exists, links resolved (/lib is
    usr/lib on a merged /usr)"""
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    return os.path.realpath(directory)


def writable(directories):
    """every folder of DIRECTORIES exists and is writable: the deepest
    existing folder of each is given an overlay when it is read-only, the
    outermost first and each once (an overlay on a folder hides those
    below it)"""
    covered = []
    for d in sorted({deepest(d) for d in directories}, key=len):
        if not any(d == c or d.startswith(c.rstrip("/") + "/") for c in covered) and not os.access(d, os.W_OK):
            overlay(d)
            covered.append(d)
    for d in directories:
        os.makedirs(d, exist_ok=True)


def install():
    """the files meson install put in DESTDIR, to the paths it names"""
    destdir = CONFIG["destdir"]
    writable([os.path.dirname(dest) for dest in CONFIG["installed"]])
    for dest in sorted(CONFIG["installed"]):
        src = destdir + dest
        if os.path.lexists(dest):
            os.unlink(dest)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dest)
        else:
            shutil.copy2(src, dest)
        say("installed", dest)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def units():
    write(os.path.join(UNITS, "iovirt-e2e.target"),
          "[Unit]\nDescription=iovirt e2e: the checks, and nothing else\n"
          "Requires=basic.target iovirt-e2e.service\nAfter=basic.target iovirt-e2e.service\nAllowIsolate=yes\n")
    os.symlink("iovirt-e2e.target", os.path.join(UNITS, "default.target"))
    # a plain service with none of iovirtd's sandbox: what it sees of iovirtd
    # is what root on a host sees
    write(os.path.join(UNITS, "iovirt-e2e.service"),
          "[Unit]\nDescription=iovirt e2e checks (tests/e2e/guest_systemd.py)\n"
          "Requires=dbus.socket systemd-udevd.service\n"
          "After=basic.target dbus.socket systemd-udevd.service systemd-udev-trigger.service\n"
          "SuccessAction=poweroff-force\nFailureAction=poweroff-force\n"
          "[Service]\nType=oneshot\nExecStart=/run/iovirt-e2e/run\nTimeoutStartSec=infinity\n")
    write(os.path.join(UNITS, "iovirtd.service.d", "e2e-watchdog.conf"),
          "# tests/e2e/systemd_root.py: many watchdog periods within one boot\n"
          "[Service]\nWatchdogSec=%d\n" % WATCHDOG_SEC)
    for unit in MASKED:
        path = os.path.join(UNITS, unit)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink("/dev/null", path)
    write("/etc/fstab", "# the e2e guest: systemd mounts nothing of its own\n")
    # no status lines redrawn on the serial console (each costs TCG time)
    write("/etc/systemd/system.conf.d/iovirt-e2e.conf", "[Manager]\nShowStatus=no\n")
    write("/etc/hostname", "iovirt-e2e\n")


def var():
    """tmpfs /var with what systemd, dbus-daemon, polkitd and libvirtd
    expect to find there (systemd-tmpfiles makes the rest)"""
    run("mount", "-t", "tmpfs", "-o", "mode=0755", "var", "/var")
    for d in ("lib/systemd", "lib/dbus", "cache", "log", "spool", "lib/libvirt/qemu", "lib/libvirt/images",
              "lib/libvirt/boot", "log/libvirt/qemu", "cache/libvirt/qemu", "lib/polkit-1"):
        os.makedirs(os.path.join("/var", d), exist_ok=True)
    os.makedirs("/var/tmp", mode=0o1777)
    os.chmod("/var/tmp", 0o1777)
    os.symlink("/run", "/var/run")
    os.symlink("/run/lock", "/var/lock")


def libvirt():
    """libvirtd's configuration (it is started by its own socket unit, later)"""
    write("/etc/libvirt/qemu.conf", QEMU_CONF, 0o600)
    write("/etc/libvirt/libvirtd.conf", LIBVIRTD_CONF)
    autostart = "/etc/libvirt/qemu/networks/autostart"          # no default network to start
    for link in os.listdir(autostart) if os.path.isdir(autostart) else []:
        os.unlink(os.path.join(autostart, link))


def held_below(cover):
    """The folders under test (the source and the build, outermost only)
    that a tmpfs on COVER would hide: a CI's clone is often in /tmp.  Each
    is bound to a holding folder in /run first; put_back() binds it again
    into the new tmpfs, read-only as the host's root is.  systemd-tmpfiles,
    which empties /tmp at boot, stops at mount points."""
    paths = sorted({CONFIG["source"], CONFIG["build"]}, key=len)
    outer = [p for i, p in enumerate(paths) if not any(p.startswith(q.rstrip("/") + "/") for q in paths[:i])]
    held = []
    for p in outer:
        if p.startswith(cover.rstrip("/") + "/"):
            hold = os.path.join(KEEP, str(len(os.listdir(KEEP)) if os.path.isdir(KEEP) else 0))
            os.makedirs(hold)
            run("mount", "--bind", p, hold)
            held.append((p, hold))
    return held


def put_back(held):
    for p, hold in held:
        os.makedirs(p, exist_ok=True)
        run("mount", "--bind", hold, p)


def main():
    held = held_below("/tmp")
    run("mount", "-t", "tmpfs", "-o", "mode=1777", "tmp", "/tmp")
    put_back(held)
    held = held_below("/var")
    var()
    put_back(held)
    # overlayfs first (the host may have no /lib/modules to bind over)
    release = os.listdir(CONFIG["modules"])[0]
    run("insmod", os.path.join(CONFIG["modules"], release, "kernel", "fs", "overlayfs", "overlay.ko"))
    os.makedirs(RW)
    overlay("/etc")
    writable(["/lib/modules"])
    run("mount", "--bind", CONFIG["modules"], "/lib/modules")
    install()
    units()
    libvirt()
    say("the root is ready for systemd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
