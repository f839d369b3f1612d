#!/usr/bin/env python3
"""test-variant.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: VFIO variant
drivers through the real bus, against iovirtd on the emulated "sriov" host
(tests/hosts), whose modules.alias has a vfio_pci alias of mlx5_vfio_pci
for ConnectX VFs (15b3:101e) and whose sysfs behaves like the kernel's
(tests/emulator: a driver named vfio-pci or *_vfio_pci is a VFIO driver
and makes /dev/vfio/N).  The testbed's sysfs is the oracle.  TAP output.

  - VFs made on the ConnectX-like PF with SetVfs; PlanAssign of one names
    mlx5_vfio_pci as its "to", and the driver check says why (the alias,
    libvirt's rule); iovirtctl's plan says "-> mlx5_vfio_pci";
  - Assign binds it: the driver link is mlx5_vfio_pci, by driver_override,
    /dev/vfio/N is there, the record names the VFIO driver; a repeat is
    done; asking for vfio-pci while it is held on the variant is refused;
  - drift is told against the variant (a function moved to vfio-pci by
    hand); Release gives it back to mlx5_core, every attribute as before;
  - --driver vfio-pci binds vfio-pci in its place, and says so;
  - a host driver as --driver (mlx5_core, igb) is refused, nothing
    changes; a malformed name is refused before any plan;
  - a modules.alias that cannot be read refuses the plan (Failed, naming
    the file); --driver vfio-pci still works;
  - the variant's module is loaded with $IOVIRT_MODPROBE when its driver
    is not there, and a modprobe that cannot load it is a BindFailed with
    nothing changed.
"""

import ast
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
from cli_errors import error_object  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
VARIANT = "mlx5_vfio_pci"
t = Tap()


def is_vfio(m):
    return m == "vfio-pci" or m.endswith("_vfio_pci")


def ctl(env, *args):
    return env.ctl("--no-ask-password", *args)


def answer(res):
    """The JSON document of a gdbus call that succeeded, else {}"""
    try:
        return json.loads(ast.literal_eval(res[1].strip())[0]) if res[0] == 0 else {}
    except (ValueError, SyntaxError, IndexError):
        return {}


def error_of(res):
    """(error name, message) of a failed gdbus call"""
    m = re.search(r"GDBus\.Error:([\w.]+): (.*)", res[2], re.S)
    return (m.group(1), m.group(2).strip()) if m else (None, res[2])


def refused(what, res, error, *words):
    got, msg = error_of(res)
    return t.ok(res[0] != 0 and got == error and all(w in msg for w in words),
                "%s: %s, naming %s" % (what, error.split(".")[-1], ", ".join(words)), "%s\n%s" % (got, msg))


def virtfns(env, pf):
    d = os.path.join(env.tb, "sys/bus/pci/devices", pf)
    return {int(n[6:]): os.path.basename(os.readlink(os.path.join(d, n)))
            for n in os.listdir(d) if re.fullmatch(r"virtfn\d+", n)}


def override(env, addr):
    with open(os.path.join(env.tb, "sys/bus/pci/devices", addr, "driver_override")) as f:
        return f.read().strip()


def node(env, addr):
    return os.path.exists(os.path.join(env.tb, "dev/vfio", str(env.group_of(addr))))


def driver_check(plan):
    return next((c for c in plan.get("checks", []) if c.get("id") == "driver"), {})


def tos(plan):
    return [f.get("to") for f in plan.get("functions", [])]


def rebind(env, addr, driver):
    """What an operator does by hand: override, unbind, probe"""
    env.write("/sys/bus/pci/devices/%s/driver_override" % addr, driver)
    now = env.driver(addr)
    if now:
        env.write("/sys/bus/pci/drivers/%s/unbind" % now, addr)
    env.write("/sys/bus/pci/drivers_probe", addr)


# ---- the emulated host ----
try:
    from hosts import HOSTS  # noqa: E402
    desc = HOSTS["sriov"]()
except (ImportError, KeyError) as e:
    t.ok(False, "tests/hosts/hosts.py has the emulated host \"sriov\"", repr(e))
    sys.exit(t.done())
variants = {m for _, m in getattr(desc, "aliases", ()) if is_vfio(m) and m != "vfio-pci"}
cx = next((d for d in desc.devices if d.sriov and not d.is_vf and d.vendor == 0x15b3 and
           d.sriov.get("sriov_configure", True) and d.sriov.get("vf_device") == 0x101e), None)
t.ok(cx is not None and VARIANT in variants,
     "the sriov host has a ConnectX-like PF (VFs 15b3:101e) and a vfio_pci alias of %s" % VARIANT,
     "aliases: %s" % getattr(desc, "aliases", None))
if cx is None or VARIANT not in variants:
    sys.exit(t.done())
PF = cx.addr
SEL = "%s#0" % PF

env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "sriov")
try:
    # ---- VFs, through SetVfs ----
    res = env.call("SetVfs", PF, "uint32 2", "{}", "false")
    vfs = virtfns(env, PF)
    t.ok(res[0] == 0 and sorted(vfs) == [0, 1], "SetVfs(%s, 2): two VFs" % PF, res[1] + res[2])
    if sorted(vfs) != [0, 1]:
        sys.exit(t.done())
    VF = vfs[0]
    host_driver = env.driver(VF)
    t.ok(host_driver and not is_vfio(host_driver), "the new VF has its host driver (%s)" % host_driver)
    before = env.snapshot()

    # ---- the plan names the variant, and why ----
    plan = answer(env.call("PlanAssign", SEL, "vm-v", "[]"))
    chk = driver_check(plan)
    t.ok(tos(plan) == [VARIANT] and plan.get("allowed") is True,
         "PlanAssign %s: the VF goes to %s" % (SEL, VARIANT), plan)
    t.ok(chk.get("status") == "pass" and "%s for %s: the kernel's vfio_pci alias" % (VARIANT, VF) in chk["message"]
         and "v000015B3d0000101E" in chk["message"] and "15b3:101e" in chk["message"]
         and "libvirt's rule" in chk["message"],
         "its driver check says why: the alias that matched, by libvirt's rule", chk)
    rc, out, err = ctl(env, "assign", SEL, "--to", "vm-v", "--dry-run")
    t.ok(rc == 0 and re.search(r"%s\s+%s -> %s" % (re.escape(VF), re.escape(host_driver), VARIANT), out)
         and "libvirt's rule" in out, "iovirtctl assign --dry-run: \"%s -> %s\", and the why" % (host_driver, VARIANT),
         out + err)
    t.ok(env.snapshot() == before, "planning changed nothing")

    # ---- assign binds it ----
    rc, out, err = ctl(env, "assign", SEL, "--to", "vm-v")
    t.ok(rc == 0 and env.driver(VF) == VARIANT and override(env, VF) == VARIANT,
         "assigned: the VF's driver link is %s, through driver_override" % VARIANT, out + err)
    t.ok(node(env, VF), "/dev/vfio/%d is there" % env.group_of(VF))
    recs = list(env.records().values())
    t.ok(len(recs) == 1 and [f.get("vfio_driver") for f in recs[0]["functions"]] == [VARIANT]
         and recs[0]["functions"][0]["driver"] == host_driver,
         "the record names the VFIO driver it went to and the driver it came from", recs)
    t.ok("%s went to %s" % (VF, VARIANT) in env.log(), "the log says where it went", env.log()[-1000:])
    rc, out, err = ctl(env, "--json", "assign", SEL, "--to", "vm-v")
    again = json.loads(out) if rc == 0 else {}
    t.ok(rc == 0 and again.get("done") is True and tos(again) == [VARIANT]
         and [f.get("moves") for f in again["functions"]] == [False],
         "assigning it again to vm-v: done, nothing moves", out + err)
    refused("asking for vfio-pci while vm-v holds it on %s" % VARIANT,
            env.assign(SEL, "vm-v", "['driver=vfio-pci']"), "org.iovirt1.Error.InUse",
            "on %s" % VARIANT, "would put it on vfio-pci", "release")
    rc, out, err = ctl(env, "--json", "list-assignments")
    doc = json.loads(out) if rc == 0 else {}
    fns = [f for a in doc.get("assignments", []) for f in a["functions"]]
    t.ok([f.get("vfio_driver") for f in fns] == [VARIANT] and [f.get("driver") for f in fns] == [VARIANT]
         and doc["assignments"][0]["drift"] == [], "list-assignments: on %s, no drift" % VARIANT, out + err)

    # ---- drift against the variant ----
    rebind(env, VF, "vfio-pci")
    t.ok(env.driver(VF) == "vfio-pci", "moved to vfio-pci by hand, behind iovirtd's back")
    rc, out, err = ctl(env, "list-assignments")
    t.ok("%s is on vfio-pci, not on %s" % (VF, VARIANT) in out, "list-assignments tells the drift against %s"
         % VARIANT, out + err)
    refused("assigning it again while it drifted", env.assign(SEL, "vm-v"), "org.iovirt1.Error.InUse",
            "is on vfio-pci, not on %s" % VARIANT)
    rebind(env, VF, VARIANT)

    # ---- release gives it back ----
    rc, out, err = ctl(env, "release", SEL)
    t.ok(rc == 0 and env.driver(VF) == host_driver and not node(env, VF) and not env.records(),
         "released: back on %s, /dev/vfio/N gone, no record" % host_driver, out + err)
    t.ok(env.snapshot() == before, "every driver and override as before", env.snapshot())

    # ---- --driver vfio-pci in its place ----
    rc, out, err = ctl(env, "--json", "assign", SEL, "--to", "vm-v", "--driver", "vfio-pci")
    plan = json.loads(out) if rc == 0 else {}
    chk = driver_check(plan)
    t.ok(rc == 0 and tos(plan) == ["vfio-pci"] and env.driver(VF) == "vfio-pci" and node(env, VF),
         "assign --driver vfio-pci: on vfio-pci, /dev/vfio/N there", out + err)
    t.ok("vfio-pci for %s: as asked (--driver), in place of the kernel's own choice, %s" % (VF, VARIANT)
         in chk.get("message", ""), "the driver check says it was asked, and what the kernel would have chosen", chk)
    t.ok([f.get("vfio_driver") for r in env.records().values() for f in r["functions"]] == ["vfio-pci"],
         "the record names vfio-pci", env.records())
    rc, out, err = ctl(env, "release", "--consumer", "vm-v")
    t.ok(rc == 0 and env.snapshot() == before, "released, everything as before", out + err)

    # ---- a host driver is never bound this way ----
    for drv in (host_driver, "igb"):
        rc, out, err = ctl(env, "--json", "assign", SEL, "--to", "vm-v", "--driver", drv)
        e = error_object(out) or {}
        reasons = [c.get("reason") for c in e.get("checks", [])]
        t.ok(rc == 1 and e.get("name") == "org.iovirt1.Error.InvalidArgument" and "not-vfio-driver" in reasons
             and "%s is not a VFIO driver" % drv in e.get("message", ""),
             "assign --driver %s (a host driver): InvalidArgument, reason not-vfio-driver" % drv, out + err)
    refused("Assign with accept driver=igb", env.assign(SEL, "vm-v", "['driver=igb']"),
            "org.iovirt1.Error.InvalidArgument", "igb is not a VFIO driver")
    t.ok(env.snapshot() == before and not env.records(), "nothing was changed")
    refused("accept driver=-r (modprobe's option)", env.assign(SEL, "vm-v", "['driver=-r']"),
            "org.iovirt1.Error.InvalidArgument", "driver name")
    refused("accept driver= with 56 characters", env.assign(SEL, "vm-v", "['driver=%s']" % ("a" * 56)),
            "org.iovirt1.Error.InvalidArgument", "1-55 characters")
    refused("accept with two drivers", env.assign(SEL, "vm-v", "['driver=vfio-pci', 'driver=%s']" % VARIANT),
            "org.iovirt1.Error.InvalidArgument", "twice")
    rc, out, err = ctl(env, "--json", "assign", SEL, "--to", "vm-v", "--driver", "a/b")
    t.ok(rc == 2 and (error_object(out) or {}).get("name") == "usage", "--driver a/b: a usage error", out + err)
    rc, out, err = ctl(env, "--json", "list-groups", "--driver", VARIANT)
    t.ok(rc == 2 and "--driver goes with list-devices" in (error_object(out) or {}).get("message", ""),
         "--driver with list-groups: a usage error", out + err)

    # ---- a modules.alias that cannot be read: refused, not guessed ----
    release = open(os.path.join(env.tb, "proc/sys/kernel/osrelease")).read().strip()
    alias = os.path.join(env.tb, "lib/modules", release, "modules.alias")
    os.rename(alias, alias + ".saved")
    os.mkdir(alias)                       # read(2) fails with EISDIR
    try:
        plan = answer(env.call("PlanAssign", SEL, "vm-v", "[]"))
        chk = driver_check(plan)
        t.ok(plan.get("allowed") is False and chk.get("status") == "fail" and chk.get("reason") == "driver-unknown"
             and alias in chk.get("message", "") and chk.get("error") == "org.iovirt1.Error.Failed",
             "modules.alias unreadable: the plan is refused (driver-unknown), naming the file", chk)
        refused("Assign with modules.alias unreadable", env.assign(SEL, "vm-v"), "org.iovirt1.Error.Failed",
                "modules.alias", "Refused rather than guessed")
        t.ok(env.snapshot() == before and not env.records(), "nothing was changed")
        plan = answer(env.call("PlanAssign", SEL, "vm-v", "['driver=vfio-pci']"))
        t.ok(plan.get("allowed") is True and tos(plan) == ["vfio-pci"],
             "--driver vfio-pci needs no modules.alias", plan)
    finally:
        os.rmdir(alias)
        os.rename(alias + ".saved", alias)

    # ---- the variant's module, loaded when its driver is not there ----
    env.stop()
    shutil.rmtree(os.path.join(env.tb, "sys/bus/pci/drivers", VARIANT))
    shutil.rmtree(os.path.join(env.tb, "sys/module", VARIANT), ignore_errors=True)
    env.start(IOVIRT_MODPROBE="/bin/false")
    before = env.snapshot()
    refused("%s missing and modprobe failing" % VARIANT, env.assign(SEL, "vm-v"), "org.iovirt1.Error.BindFailed",
            "%s is not loaded" % VARIANT, "/bin/false %s" % VARIANT, "--driver vfio-pci")
    t.ok(env.snapshot() == before and not env.records(), "nothing was changed")
    modprobe = os.path.join(env.root, "modprobe")
    called = os.path.join(env.root, "modprobe.args")
    with open(modprobe, "w") as f:
        f.write("#!/bin/sh\necho \"$@\" >> %s\n[ \"$1\" = %s ] || exit 1\n"
                "d=\"$UMOCKDEV_DIR/sys/bus/pci/drivers/%s\"\n"
                "mkdir -p \"$d\" && touch \"$d/bind\" \"$d/unbind\" \"$d/new_id\" \"$d/remove_id\"\n"
                % (called, VARIANT, VARIANT))
    os.chmod(modprobe, 0o755)
    env.stop()
    env.start(IOVIRT_MODPROBE=modprobe)
    rc, out, err = ctl(env, "assign", SEL, "--to", "vm-v")
    args = open(called).read().split("\n") if os.path.exists(called) else []
    t.ok(rc == 0 and env.driver(VF) == VARIANT and node(env, VF) and args[:1] == [VARIANT],
         "iovirtd runs 'modprobe %s' when its driver is missing, then binds it" % VARIANT, out + err + repr(args))
    rc, out, err = ctl(env, "release", SEL)
    t.ok(rc == 0 and env.snapshot() == before, "released, everything as before", out + err)
finally:
    env.close()
sys.exit(t.done())
