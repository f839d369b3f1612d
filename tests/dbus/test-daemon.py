#!/usr/bin/python3
"""test-daemon.py IOVIRTD IOVIRTCTL: iovirtd on a real dbus-daemon.

A private system bus (tests/dbus/system-bus.conf.in, with iovirt's own bus
policy included), iovirtd against an emulated host under umockdev, and three
independent clients: busctl, gdbus and iovirtctl --direct as the reference.
Authorization is tested with no polkit on the bus and with python-dbusmock's
polkitd template.  Then iovirtd on each emulated host that has golden files,
and iovirtctl through it against every one of them.  TAP output.  Readiness
comes from sd_notify, never from sleeping."""

import ast
import difflib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
import goldens  # noqa: E402
from hosts import HOSTS  # noqa: E402
from tap import Tap  # noqa: E402
import uevent  # noqa: E402
from harness import Bus, Daemon, start_iovirtd, PRELOAD  # noqa: E402
import select  # noqa: E402

DEST = ["org.iovirt1", "/org/iovirt1", "org.iovirt1.Manager"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]



def busctl(bus, *args, user=None):
    argv = (NOBODY if user == "nobody" else []) + ["busctl", "--system", "--json=short"] + list(args)
    p = subprocess.run(argv, env=bus.env(), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def call(bus, method, sig="", *args, user=None):
    return busctl(bus, "call", *DEST, method, *([sig] + list(args) if sig else []), user=user)


def gdbus(bus, method, *args, user=None):
    p = subprocess.run((NOBODY if user == "nobody" else []) + ["gdbus", "call", "--system", "--dest", DEST[0], "--object-path", DEST[1],
                        "--method", DEST[2] + "." + method] + list(args),
                       env=bus.env(), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def gvariant_string(out):
    """gdbus prints ('...',): the one string of the tuple."""
    return ast.literal_eval(out.strip())[0]


def interface_shape(xml_text):
    """Methods, signals and properties of org.iovirt1.Manager, with their
    argument names, types and directions, from introspection XML."""
    import xml.etree.ElementTree as ET
    for iface in ET.fromstring(xml_text).iter("interface"):
        if iface.get("name") == "org.iovirt1.Manager":
            shape = []
            for el in iface:
                args = tuple((a.get("name"), a.get("type"), a.get("direction")) for a in el.iter("arg"))
                shape.append((el.tag, el.get("name"), el.get("type"), el.get("access"), args))
            return sorted(shape)
    return None


class SignalWatch:
    """gdbus monitor on org.iovirt1: waits for a signal line, bounded.
    Reads the raw pipe with its own buffer: select() on a buffered file
    would miss lines already read into the buffer."""

    def __init__(self, bus):
        self.p = subprocess.Popen(["gdbus", "monitor", "--system", "--dest", "org.iovirt1"], env=bus.env(),
                                  stdout=subprocess.PIPE)
        self.fd = self.p.stdout.fileno()
        self.pending = b""
        # gdbus subscribes only after it prints the owner: make a signal
        # happen (Reload emits PropertiesChanged) and wait for it to show
        ok, seen = self.expect("is owned by")
        for _ in range(20):
            call(bus, "Reload", "b", "false")
            ok, seen = self.expect("PropertiesChanged", timeout=2)
            if ok:
                break
        if not ok:
            raise SystemExit("gdbus monitor did not start: " + seen)

    def expect(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                line = line.decode(errors="replace")
                seen.append(line)
                if text in line:
                    return True, "\n".join(seen)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return False, "\n".join(seen)
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return False, "\n".join(seen)
            self.pending += chunk

    def stop(self):
        self.p.terminate()
        self.p.wait(10)


def daemon_log(bus):
    with open(os.path.join(bus.dir, "iovirtd.log")) as f:
        return "iovirtd's log:\n" + "".join(f.readlines()[-15:])


def hotplug(tap, bus, testbed):
    """The emulated kernel changes the host; the daemon's answers follow."""
    host = HOSTS["dual-socket"]()
    dev = host.by_addr["0000:82:00.0"]
    sys_dir = os.path.join(testbed, dev.syspath()[1:])
    bus_link = os.path.join(testbed, "sys/bus/pci/devices", dev.addr)
    drivers = os.path.join(testbed, "sys/bus/pci/drivers")
    watch = SignalWatch(bus)
    try:
        # unbind from mlx5_core
        os.unlink(os.path.join(sys_dir, "driver"))
        os.unlink(os.path.join(drivers, "mlx5_core", dev.addr))
        tap.ok(uevent.send(testbed, dev.syspath(), "unbind") >= 1, "hotplug: iovirtd listens for uevents")
        ok, seen = watch.expect("DeviceChanged ('0000:82:00.0', '', 12)")
        tap.ok(ok, "hotplug: unbind -> DeviceChanged(address, '', group)", seen + "\n" + daemon_log(bus))
        # bind to vfio-pci
        os.makedirs(os.path.join(drivers, "vfio-pci"), exist_ok=True)
        os.symlink("../../../../bus/pci/drivers/vfio-pci", os.path.join(sys_dir, "driver"))
        uevent.send(testbed, dev.syspath(), "bind", DRIVER="vfio-pci")
        ok, seen = watch.expect("DeviceChanged ('0000:82:00.0', 'vfio-pci', 12)")
        tap.ok(ok, "hotplug: bind -> DeviceChanged(address, 'vfio-pci', group)", seen)
        rc, out, err = call(bus, "DescribeDevice", "s", "82:00.0")
        tap.ok(rc == 0 and json.loads(json.loads(out)["data"][0])["driver"] == "vfio-pci",
               "hotplug: the next answer has the new driver", out + err)
        # remove
        aside = os.path.join(os.path.dirname(testbed), "aside")
        os.rename(sys_dir, aside)
        os.unlink(bus_link)
        uevent.send(testbed, dev.syspath(), "remove")
        ok, seen = watch.expect("DeviceRemoved ('0000:82:00.0',)")
        tap.ok(ok, "hotplug: remove -> DeviceRemoved", seen)
        rc, out, err = call(bus, "ListGroups")
        groups = json.loads(out)["data"][0] if rc == 0 else []
        tap.ok(rc == 0 and not any("0000:82:00.0" in g[2] for g in groups) and len(groups) == 12,
               "hotplug: the group is gone from ListGroups", groups)
        rc, out, err = busctl(bus, "get-property", *DEST, "DeviceCount")
        tap.ok(rc == 0 and json.loads(out)["data"] == 12, "hotplug: DeviceCount follows", out + err)
        # add it back
        os.rename(aside, sys_dir)
        os.symlink(os.path.relpath(sys_dir, os.path.dirname(bus_link)), bus_link)
        uevent.send(testbed, dev.syspath(), "add")
        ok, seen = watch.expect("DeviceAdded ('0000:82:00.0',)")
        tap.ok(ok, "hotplug: add -> DeviceAdded", seen)
        rc, out, err = call(bus, "DescribeGroups")
        doc = json.loads(json.loads(out)["data"][0]) if rc == 0 else {}
        g = [g for g in doc.get("groups", []) if g["group"] == 12]
        tap.ok(g and g[0]["isolation"] == "isolated" and g[0]["devices"][0]["driver"] == "vfio-pci",
               "hotplug: back in its group, with its verdict", g)
        # an event for something that is not a PCI function is ignored
        uevent.send(testbed, "/sys/devices/pci0000:80/pci_bus/0000:80", "add")
        rc, out, err = busctl(bus, "get-property", *DEST, "DeviceCount")
        tap.ok(rc == 0 and json.loads(out)["data"] == 13, "hotplug: a non-function event changes nothing", out)
    finally:
        watch.stop()


def direct(ctl, testbed, *args):
    env = dict(os.environ, UMOCKDEV_DIR=testbed, IOVIRT_ROOT=testbed, LD_PRELOAD=PRELOAD, LC_ALL="C")
    p = subprocess.run([ctl, "--direct", "--json"] + list(args), env=env, capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout)


def no_iommu(tap, iovirtd, ctl):
    """The daemon starts and serves on a host without an IOMMU, and says so."""
    with Daemon(iovirtd, HOSTS["no-iommu"]()) as (bus, daemon, testbed):
        rc, out, err = busctl(bus, "get-property", *DEST, "IommuEnabled")
        tap.ok(rc == 0 and json.loads(out)["data"] is False, "no IOMMU: iovirtd serves, IommuEnabled false", err)
        rc, out, err = call(bus, "ListGroups")
        tap.ok(rc == 0 and json.loads(out)["data"][0] == [], "no IOMMU: no groups", out + err)
        p = subprocess.run([ctl, "list-groups"], env=bus.env(), capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 0 and "No IOMMU groups" in p.stdout and p.stderr == "",
               "no IOMMU: iovirtctl through iovirtd says so plainly", p.stdout + p.stderr)
        p = subprocess.run([ctl, "check", "--json"], env=bus.env(), capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 1 and json.loads(p.stdout)["result"] == "fail", "no IOMMU: check fails, exit 1",
               p.stdout + p.stderr)


def goldens_through_daemon(tap, iovirtd, ctl):
    """Every golden file of every emulated host that has them, through
    iovirtd: the CLI rebuilds the host from the daemon's JSON
    (iovirt_host_from_json) and must print, and exit with, what it does
    reading the host itself.  This is where verdicts and causes on the leaky
    and broken hosts cross the bus.  The commands and their exit codes come
    from tests/hosts/goldens.py, as in test-host.py; these golden files are
    only read here, never rewritten."""
    for name in goldens.hosts():
        if not tap.ok(name in HOSTS, "%s: the golden directory is an emulated host" % name, sorted(HOSTS)):
            continue
        stale = goldens.uncovered(name)
        tap.ok(not stale, "%s: every golden file is written by a command" % name,
               "no command writes %s: remove it, or add its command to tests/hosts/goldens.py" % ", ".join(stale))
        with Daemon(iovirtd, HOSTS[name]()) as (bus, daemon, testbed):
            # outside the testbed: a client that read this machine instead
            # of asking the daemon would not match the emulated host's files
            env = bus.env(COLUMNS="80")
            for var in ("UMOCKDEV_DIR", "IOVIRT_ROOT"):
                env.pop(var, None)
            for fname, args, rc in goldens.commands(name):
                p = subprocess.run([ctl] + args, env=env, capture_output=True, text=True, timeout=60)
                try:
                    with open(goldens.path(name, fname)) as f:
                        want = f.read()
                except FileNotFoundError:
                    want = None
                why = []
                if want is None:
                    why.append("no golden file %s" % fname)
                if p.returncode != rc:
                    why.append("exit %d, not %d" % (p.returncode, rc))
                if "directly" in p.stderr:
                    why.append("iovirtctl read the host instead of asking iovirtd")
                if want is not None and p.stdout != want:
                    why.append("".join(difflib.unified_diff(want.splitlines(True), p.stdout.splitlines(True),
                                                            "golden", "through iovirtd")))
                tap.ok(not why, "%s: iovirtctl %s through iovirtd exits %d and matches the golden %s"
                       % (name, " ".join(args), rc, fname), "\n".join(why) + "\nstderr: " + p.stderr)
            tap.ok(daemon.poll() is None, "%s: iovirtd is still up" % name, daemon_log(bus))


def main():
    iovirtd, ctl = sys.argv[1], sys.argv[2]
    flood = sys.argv[3] if len(sys.argv) > 3 else None
    tap = Tap()
    root = tempfile.mkdtemp(prefix="iovirt-dbus.")
    procs = []
    try:
        testbed = os.path.join(root, "testbed")
        os.makedirs(testbed)
        HOSTS["dual-socket"]().write(testbed)
        bus = Bus(root)
        procs.append(bus)
        daemon = start_iovirtd(iovirtd, bus, testbed)
        procs.append(daemon)

        # ---- read-only methods, through busctl, against the direct reading ----
        rc, out, err = call(bus, "ListGroups")
        ref = direct(ctl, testbed, "list-groups")
        if tap.ok(rc == 0, "busctl ListGroups", err):
            got = json.loads(out)["data"][0]
            want = [[g["group"], g["isolation"], [d["address"] for d in g["devices"]], g["peers"]]
                    for g in ref["groups"]]
            tap.ok(got == want, "ListGroups a(isasas) equals list-groups --json", (got, want))
        rc, out, err = call(bus, "ListDevices")
        if tap.ok(rc == 0, "busctl ListDevices", err):
            got = json.loads(out)["data"][0]
            want = [[d["address"], d["vendor"], d["device"], d["class"], d["driver"] or "",
                     -1 if d["iommu_group"] is None else d["iommu_group"],
                     -1 if d["numa_node"] is None else d["numa_node"]]
                    for d in direct(ctl, testbed, "list-devices")["devices"]]
            tap.ok(got == want, "ListDevices a(sssssii) equals list-devices --json", (got[:2], want[:2]))

        for method, args, ref_args in (("DescribeGroups", [], ["list-groups"]),
                                       ("DescribeDevices", [], ["list-devices"]),
                                       ("DescribeTree", [], ["tree"]),
                                       ("DescribeDevice", ["81:02.2"], ["show", "81:02.2"]),
                                       ("DescribeDevice", ["ens1f0"], ["show", "ens1f0"]),
                                       ("CheckHost", [], ["check"])):
            want = direct(ctl, testbed, *ref_args)
            rc, out, err = gdbus(bus, method, *args)
            tap.ok(rc == 0 and json.loads(gvariant_string(out)) == want,
                   "gdbus %s %s equals iovirtctl %s --json" % (method, " ".join(args), " ".join(ref_args)), err)
            rc, out, err = call(bus, method, *(["s"] + args if args else []))
            tap.ok(rc == 0 and json.loads(json.loads(out)["data"][0]) == want,
                   "busctl %s %s equals it too" % (method, " ".join(args)), err)

        rc, out, err = busctl(bus, "get-property", *DEST, "DeviceCount")
        tap.ok(rc == 0 and json.loads(out)["data"] == 13, "DeviceCount property", out + err)
        rc, out, err = busctl(bus, "get-property", *DEST, "IommuEnabled")
        tap.ok(rc == 0 and json.loads(out)["data"] is True, "IommuEnabled property", out + err)
        rc, out, err = busctl(bus, "introspect", *DEST[:2], "--xml-interface")
        if os.environ.get("IOVIRT_DUMP_INTROSPECTION"):
            with open(os.environ["IOVIRT_DUMP_INTROSPECTION"], "w") as f:
                f.write(out)
        live = interface_shape(out)
        try:
            with open(os.path.join(HERE, "..", "..", "data", "dbus-1", "interfaces", "org.iovirt1.Manager.xml")) as f:
                shipped = interface_shape(f.read())
        except FileNotFoundError:
            shipped = None
        tap.ok(rc == 0 and live and live == shipped,
               "the shipped introspection XML matches the live interface", (live, shipped))

        # ---- iovirtctl as a client (the golden files: goldens_through_daemon) ----
        p = subprocess.run([ctl, "show", "ens1f0", "--json"], env=bus.env(), capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 0 and json.loads(p.stdout)["address"] == "0000:81:00.0",
               "iovirtctl show IFACE: the daemon resolves the name", p.stderr)
        p = subprocess.run([ctl, "show", "09:00.0"], env=bus.env(), capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 1 and p.stderr.strip() == "iovirtctl: no PCI function 0000:09:00.0 on this host; "
               "'iovirtctl list-devices' shows them all", "iovirtctl show: the daemon's error, once", p.stderr)

        hotplug(tap, bus, testbed)
        tap.ok(daemon.poll() is None, "the daemon is up after hotplug")

        # ---- bad input: named errors, and the daemon stays up ----
        for arg, name, text in (("05:00.8", "org.iovirt1.Error.InvalidArgument", "function number is out of range"),
                                ("0000:09:00.0", "org.iovirt1.Error.NoSuchDevice", "no PCI function 0000:09:00.0"),
                                ("", "org.iovirt1.Error.InvalidArgument", "no device given"),
                                ("x" * 5000, "org.iovirt1.Error.InvalidArgument", "at most 4096"),
                                ("eth\x01", "org.iovirt1.Error.NoSuchDevice", "no network interface or PCI device")):
            rc, out, err = gdbus(bus, "DescribeDevice", arg)
            tap.ok(rc != 0 and name in err and text in err, "DescribeDevice(%r) -> %s" % (arg[:20], name), err)
        rc, out, err = call(bus, "DescribeDevice", "i", "5")
        tap.ok(rc != 0 and ("org.freedesktop.DBus.Error.InvalidArgs" in err or "Invalid argument" in err),
               "wrong argument type is refused", err)
        rc, out, err = call(bus, "NoSuchMethod")
        tap.ok(rc != 0 and ("UnknownMethod" in err or "Unknown method" in err), "unknown method is refused", err)
        tap.ok(daemon.poll() is None, "the daemon survives bad input")

        # floods from single connections that hang up mid-call; 120 in flight
        # each, under the bus's own limit of 128 pending replies per connection
        if flood:
            results = [subprocess.run([flood, "120"], env=bus.env(), capture_output=True, text=True, timeout=120)
                       for _ in range(10)]
            tap.ok(all(p.returncode == 0 for p in results), "10 floods of 120 calls, each hanging up mid-call",
                   "".join(p.stdout + p.stderr for p in results))
            t0 = time.monotonic()
            rc, out, err = call(bus, "DescribeDevice", "s", "81:00.0")
            tap.ok(rc == 0 and daemon.poll() is None, "after the floods the daemon answers others (%.0f ms)" %
                   ((time.monotonic() - t0) * 1000), err)

        # ---- authorization ----
        rc, out, err = call(bus, "ListGroups", user="nobody")
        tap.ok(rc == 0, "nobody may read (ListGroups)", err)
        rc, out, err = call(bus, "Reload", "b", "false")
        tap.ok(rc == 0, "root may Reload", err)
        rc, out, err = gdbus(bus, "Reload", "false", user="nobody")
        tap.ok(rc != 0 and "org.iovirt1.Error.NotAuthorized" in err and "org.iovirt1.reload" in err
               and "polkit is not running" in err, "nobody may not Reload without polkit (fail closed)", err)
        p = subprocess.run(NOBODY + [ctl, "reload", "--no-ask-password"], env=bus.env(), capture_output=True,
                           text=True, timeout=60)
        tap.ok(p.returncode == 1 and "(polkit action org.iovirt1.reload)" in p.stderr,
               "iovirtctl reload as nobody names the refused polkit action", p.stderr)
        p = subprocess.run([ctl, "reload"], env=bus.env(), capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 0 and p.stderr == "", "iovirtctl reload as root", p.stderr)

        mock = subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
                                env=bus.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(mock)
        # returns as soon as the mock owns the name
        subprocess.run(["gdbus", "wait", "--system", "--timeout", "60", "org.freedesktop.PolicyKit1"],
                       env=bus.env(), check=True, timeout=90)
        rc, out, err = gdbus(bus, "Reload", "false", user="nobody")
        tap.ok(rc != 0 and "org.iovirt1.Error.NotAuthorized" in err and "org.iovirt1.reload" in err
               and "polkit says no" in err, "nobody may not Reload when polkit says no", err)
        rc, out, err = busctl(bus, "call", "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                              "org.freedesktop.DBus.Mock", "SetAllowed", "as", "1", "org.iovirt1.reload")
        tap.ok(rc == 0, "polkit mock allows org.iovirt1.reload", err)
        rc, out, err = call(bus, "Reload", "b", "true", user="nobody")
        tap.ok(rc == 0, "nobody may Reload when polkit says yes", err)
        tap.ok(daemon.poll() is None, "the daemon is still up")

        daemon.send_signal(signal.SIGTERM)
        tap.ok(daemon.wait(30) == 0, "SIGTERM stops it cleanly")

        # ---- no daemon: read-only commands read the host, and say so ----
        env = bus.env(UMOCKDEV_DIR=testbed, IOVIRT_ROOT=testbed, LD_PRELOAD=PRELOAD, COLUMNS="80")
        p = subprocess.run([ctl, "list-groups"], env=env, capture_output=True, text=True, timeout=60)
        want = subprocess.run([ctl, "--direct", "list-groups"], env=env, capture_output=True, text=True, timeout=60)
        p2 = subprocess.run([ctl, "reload"], env=env, capture_output=True, text=True, timeout=60)
        tap.ok(p2.returncode == 1 and "iovirtd is not running" in p2.stderr and "directly" not in p2.stderr,
               "without iovirtd, reload fails and does not fall back", p2.stderr)
        tap.ok(p.returncode == 0 and p.stdout == want.stdout and want.stderr == "" and
               p.stderr.startswith("iovirtctl: iovirtd is not running (") and
               p.stderr.endswith("; reading the host directly\n") and p.stderr.count("\n") == 1,
               "without iovirtd: one note on stderr, the same answer as --direct", p.stderr)
    finally:
        for p in reversed(procs):
            if isinstance(p, Bus):
                p.stop()
            elif p.poll() is None:
                p.terminate()
                p.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    no_iommu(tap, iovirtd, ctl)
    goldens_through_daemon(tap, iovirtd, ctl)
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
