#!/usr/bin/env python3
"""test-libvirt.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: libvirt domains
as consumers (assign --to domain:NAME), through libvirt's client API against
libvirt's own test driver (test:///tests/dbus/libvirt-host.xml: in
libvirt.so, no daemon; it cannot attach or detach, which is what the failure
paths use) and iovirtd on the emulated "desktop" host whose sysfs behaves
like the kernel's.  The real attach and detach, with Debian's libvirtd and
QEMU, are the real-kernel suite's (tests/e2e, the "libvirt" boot).  The
oracles: the testbed's driver links, the state records, the D-Bus error
names and iovirtctl's words.  TAP output.

  1. lookup: domain:NAME, domain:UUID and a bare name libvirt knows all
     mean domain:NAME; the plan is judged with the domain's own memory and
     vIOMMU (2 GiB, two VFIO functions with the one it has: 4 GiB pinned);
     options that the domain's definition answers are refused;
  2. an attach libvirt refuses (the test driver has none): Libvirt error
     naming libvirt's reason, the group back on its host driver, no record;
     the same for a domain that is not running (its persistent config);
  3. bad input: a domain libvirt does not have (InvalidArgument naming it),
     'persistent' for a consumer that is no domain, a bare name libvirt
     does not know stays a name;
  4. release of a domain's group (by device, by domain:NAME, by the bare
     name): its running guest has the device and libvirt cannot detach it:
     refused (Libvirt), the device stays bound and recorded; a domain
     libvirt no longer has: released;
  4b. a domain that stops while its group is being bound (a 3 s bind of
     the emulator's): refused (Libvirt) naming that, the group back;
  5. libvirtd down (a socket nobody listens on): domain:NAME refused with
     "cannot be reached", a bare name is a name, reading works; a release
     of a domain's group is refused, the device stays;
  6. libvirtd stalled (a socket that accepts and never answers): the
     assign waits on a thread while list-groups is answered; after
     IOVIRT_LIBVIRT_TIMEOUT it is refused (Libvirt) and nothing changed; a
     bare name is then a name.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
t = Tap()

E = "org.iovirt1.Error."
NIC = "0000:03:00.0"          # e1000e: in lv-web's definition as a managed='no' hostdev
USB = "0000:00:14.0"          # xhci_hcd, a group of its own
GPU = "0000:01:00.0"          # nouveau, with its HDMI audio function
WEB_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def ctl(env, *args):
    return env.ctl("--no-ask-password", *args)


def ctl_json(env, *args):
    rc, out, err = env.ctl("--no-ask-password", "--json", *args)
    try:
        return rc, json.loads(out) if out.strip() else {}, err
    except ValueError:
        return rc, {}, err


def state(env):
    return env.snapshot(), env.records()


def unchanged(what, before, env, rc, err, *words):
    missing = [w for w in words if w not in err]
    after = state(env)
    return t.ok(rc != 0 and not missing and after == before,
                "%s: refused naming %s, nothing changed" % (what, ", ".join(repr(w) for w in words)),
                "exit %d\n%s\nmissing %s, changed %s" % (rc, err, missing, after != before))


def prepared_by_hook(env, name, xml):
    """What libvirt's hook does at prepare begin: a group recorded for domain:NAME"""
    p = subprocess.run([env.iovirtctl, "--no-ask-password", "libvirt-hook", "--", name, "prepare", "begin"],
                       input=xml, env=env.bus.env(), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stderr


def web_xml():
    with open(os.path.join(HERE, "libvirt-host.xml")) as f:
        text = f.read()
    start = text.index("<domain type='test'>")
    return text[start:text.index("</domain>", start) + len("</domain>")]


# ---- 1. lookup ----

def lookup(env):
    for name, consumer in (("by name", "domain:lv-web"), ("by UUID", "domain:" + WEB_UUID), ("bare", "lv-web")):
        rc, plan, err = ctl_json(env, "assign", USB, "--to", consumer, "--dry-run")
        memlock = next((c["message"] for c in plan.get("checks", []) if c["id"] == "memlock"), "")
        t.ok(rc == 0 and plan.get("consumer") == "domain:lv-web" and "4.0 GiB" in memlock and "vIOMMU" in memlock,
             "%s (%s): the plan is for domain:lv-web, its 2 GiB and vIOMMU pinned for two functions (4.0 GiB)"
             % (name, consumer), (rc, plan.get("consumer"), memlock, err))
    before = state(env)
    for opt in (["--memory", "1G"], ["--viommu"], ["--cpus", "0-1"]):
        rc, _, err = ctl(env, "assign", USB, "--to", "domain:lv-web", *opt)
        unchanged("domain:lv-web with %s" % opt[0], before, env, rc, err, "read from its definition", "virsh edit")


# ---- 2. an attach libvirt refuses ----

def attach_refused(env):
    before = state(env)
    rc, _, err = ctl(env, "assign", USB, "--to", "domain:lv-web")
    unchanged("attach to running lv-web, which the test driver cannot do", before, env, rc, err,
              "refused to attach 0000:00:14.0", "not supported", "went back to its host driver", "Error.Libvirt")
    t.ok(env.driver(USB) == "xhci_hcd", "the USB controller is on xhci_hcd again", env.driver(USB))
    rc, _, err = ctl(env, "assign", USB, "--to", "lv-idle")
    unchanged("attach to lv-idle, shut off: its persistent config", before, env, rc, err,
              "to the domain's persistent config", "went back to its host driver")
    t.ok("Assigning group" in env.log() and "failed: libvirt refused to attach" in env.log(),
         "iovirtd's log says the attach failed and why")


# ---- 3. bad input ----

def bad_input(env):
    before = state(env)
    rc, _, err = ctl(env, "assign", USB, "--to", "domain:nosuch")
    unchanged("domain:nosuch", before, env, rc, err, "has no domain 'nosuch'", "virsh list --all",
              "InvalidArgument")
    rc, _, err = ctl(env, "assign", USB, "--to", "domain:")
    unchanged("domain: with no name", before, env, rc, err, "names no domain")
    rc, _, err = ctl(env, "assign", USB, "--to", "vm-plain", "--persistent")
    unchanged("--persistent for vm-plain, no domain", before, env, rc, err, "'persistent' is for a libvirt domain")
    rc, plan, err = ctl_json(env, "assign", USB, "--to", "vm-plain")
    t.ok(rc == 0 and plan.get("consumer") == "vm-plain" and env.driver(USB) == "vfio-pci",
         "a bare name libvirt does not know is a name: vm-plain gets the group", (rc, plan.get("consumer"), err))
    rc, _, err = ctl(env, "release", USB)
    t.ok(rc == 0 and env.driver(USB) == "xhci_hcd", "vm-plain's release: back on xhci_hcd", (rc, err))


# ---- 4. release of a domain's group ----

def release(env):
    rc, err = prepared_by_hook(env, "lv-web", web_xml())
    t.ok(rc == 0 and env.driver(NIC) == "vfio-pci", "the hook prepares lv-web's NIC (domain:lv-web)", (rc, err))
    before = state(env)
    rc, _, err = ctl(env, "release", NIC)
    unchanged("release of the NIC lv-web's running guest has, which libvirt cannot detach", before, env, rc, err,
              "stays with domain lv-web", "refused to detach 0000:03:00.0", "not supported", "Error.Libvirt")
    t.ok(env.driver(NIC) == "vfio-pci", "the NIC stays on vfio-pci: never unbound under a guest", env.driver(NIC))
    rc, _, err = ctl(env, "release", "--consumer", "domain:lv-web")
    unchanged("release --consumer domain:lv-web", before, env, rc, err, "stays with domain lv-web")
    rc, _, err = ctl(env, "release", "--consumer", "lv-web")
    unchanged("release --consumer lv-web, the bare name: the domain's groups", before, env, rc, err,
              "stays with domain lv-web")

    # a domain libvirt no longer has: nothing to detach from
    rc, err = prepared_by_hook(env, "lv-gone", web_xml().replace("lv-web", "lv-gone").replace(WEB_UUID[:8], "00000000")
                               .replace("0x03", "0x00").replace("slot='0x00'", "slot='0x14'"))
    t.ok(rc == 0 and env.driver(USB) == "vfio-pci", "the hook prepares lv-gone's USB controller", (rc, err))
    rc, _, err = ctl(env, "release", USB)
    t.ok(rc == 0 and env.driver(USB) == "xhci_hcd", "a domain libvirt does not have: its group is released",
         (rc, err))


# ---- 4b. a domain that stops during the assign ----

def stops_during_assign(env, root):
    """The test driver reads its file at each connection: lv-web runs when
    looked up, and is shut off (runstate 5) by the time the slow bind is
    over and the attach connects"""
    node = os.path.join(root, "libvirt-host.xml")
    shutil.copy(os.path.join(HERE, "libvirt-host.xml"), node)
    env.stop()
    env.start(IOVIRT_LIBVIRT_URI="test://" + node)
    before = state(env)
    env.faults("slow %s 3000\n" % USB)
    try:
        p = subprocess.Popen([env.iovirtctl, "--no-ask-password", "assign", USB, "--to", "domain:lv-web"],
                             env=env.bus.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        binding = harness.wait_until(lambda: any(r.get("consumer") == "domain:lv-web" and
                                                 USB in [f.get("address") for f in r.get("functions", [])]
                                                 for r in env.records().values()))
        with open(node) as f:
            text = f.read()
        with open(node + ".new", "w") as f:
            f.write(text.replace("<domain type='test'>\n    <name>lv-web</name>",
                                 "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
                                 "    <test:runstate>5</test:runstate>\n    <name>lv-web</name>"))
        os.rename(node + ".new", node)
        out, err = p.communicate(timeout=60)
    finally:
        env.faults("")
    t.ok(binding, "the bind for domain:lv-web was under way when lv-web was shut off")
    unchanged("lv-web stopped while its device was being bound", before, env, p.returncode, err,
              "stopped while its device was being bound", "went back to its host driver", "Error.Libvirt")
    env.stop()
    env.start()


# ---- 5. libvirtd down ----

def libvirt_down(env, root):
    env.stop()
    env.start(IOVIRT_LIBVIRT_URI="qemu+unix:///system?socket=" + os.path.join(root, "nobody-listens"))
    before = state(env)
    rc, _, err = ctl(env, "assign", USB, "--to", "domain:lv-web")
    unchanged("domain:lv-web with libvirtd down", before, env, rc, err, "libvirt cannot be reached",
              "is libvirtd (or virtqemud) running")
    rc, _, err = ctl(env, "list-groups")
    t.ok(rc == 0, "list-groups answers with libvirtd down", err)
    before = state(env)
    rc, _, err = ctl(env, "release", NIC)
    unchanged("release of lv-web's NIC with libvirtd down: whether the guest has it cannot be told", before, env,
              rc, err, "stays with domain lv-web", "libvirt cannot be reached")
    rc, plan, err = ctl_json(env, "assign", USB, "--to", "vm-plain")
    t.ok(rc == 0 and plan.get("consumer") == "vm-plain", "a bare name is a name while libvirtd is down",
         (rc, plan.get("consumer"), err))
    ctl(env, "release", USB)


# ---- 6. libvirtd stalled ----

def libvirt_stalled(env, root):
    path = os.path.join(root, "stalled")
    stalled = harness.Stalled(path)
    waiting = None
    try:
        env.stop()
        env.start(IOVIRT_LIBVIRT_URI="qemu+unix:///system?socket=" + path, IOVIRT_LIBVIRT_TIMEOUT="3")
        before = state(env)
        waiting = subprocess.Popen([env.iovirtctl, "--no-ask-password", "assign", USB, "--to", "domain:lv-web"],
                                   env=env.bus.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t.ok(harness.wait_until(lambda: stalled.conns), "the assign's lookup reached the stalled libvirt")
        t0 = time.monotonic()
        rc, _, err = ctl(env, "list-groups")
        took = time.monotonic() - t0
        t.ok(rc == 0 and waiting.poll() is None,
             "list-groups is answered (%.2f s) while the lookup waits on libvirt" % took, (rc, err, waiting.poll()))
        out, err = waiting.communicate(timeout=60)
        unchanged("the waiting assign, after IOVIRT_LIBVIRT_TIMEOUT=3", before, env, waiting.returncode, err,
                  "did not answer within 3 s", "Error.Libvirt")
        rc, plan, err = ctl_json(env, "assign", GPU, "--to", "vm-other", "--dry-run")
        t.ok(rc == 0 and plan.get("consumer") == "vm-other",
             "a bare name is a name when libvirt does not answer", (rc, plan.get("consumer"), err))
        t.ok("did not answer within 3 s" in env.log(), "iovirtd's log says libvirt did not answer")
    finally:
        stalled.close()
        if waiting and waiting.poll() is None:
            waiting.kill()
            waiting.communicate()


def main():
    root = tempfile.mkdtemp(prefix="iovirt-libvirt.")
    try:
        env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "desktop")
        try:
            for part in (lookup, attach_refused, bad_input, release):
                try:
                    part(env)
                except Exception:
                    import traceback
                    t.ok(False, "%s ran to its end" % part.__name__, traceback.format_exc())
            for part in (stops_during_assign, libvirt_down, libvirt_stalled):
                try:
                    part(env, root)
                except Exception:
                    import traceback
                    t.ok(False, "%s ran to its end" % part.__name__, traceback.format_exc())
            t.ok(env.daemon.poll() is None, "iovirtd is still up")
        finally:
            env.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
