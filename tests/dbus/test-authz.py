#!/usr/bin/python3
"""test-authz.py IOVIRTD IOVIRTCTL KERNEL_EMU SYSFS_WRITE: what needs
authorization, checked against iovirtd's one table.  TAP output.

  - `iovirtd --list-methods` (the vtable against the bouncer's table) names
    every method of the live interface, each read-only or with its polkit
    action; the shipped polkit actions and bus policy agree with it;
  - every read-only method, called as nobody, changes nothing on the host
    (sysfs bindings, /dev/vfio, the state records): a method that changes
    something and is not in the table fails here;
  - every guarded method, called as nobody without polkit, is denied with
    its action named, and changes nothing;
  - refusals come before polkit: a request that would be refused anyway is
    answered with its reason, not with a password prompt;
  - the plan is made again after authorization: the host may have changed
    while the password was typed (a polkit mock that answers only when the
    test says so).
"""

import ast
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
from tap import Tap  # noqa: E402
import harness  # noqa: E402

IOVIRTD, IOVIRTCTL, EMU, WRITER = sys.argv[1:5]
DATA = os.path.join(HERE, "..", "..", "data")
t = Tap()

# A value for each argument name of the interface.  A method with an
# argument named otherwise fails the test until a value is added here:
# nobody can add a method that this test does not call.
SAMPLES = {"device": "03:00.0", "target": "03:00.0", "consumer": "vm-authz", "accept": "[]",
           "interactive": "false",
           # SR-IOV's: a PF of the "sriov" host (on "desktop" they are refused before polkit)
           "pf": "05:00.0", "count": "2", "options": "{}", "vf": "05:00.0#0",
           "settings": "{'mac': <'02:00:00:00:00:01'>}",
           # libvirt's hook: a domain with an unmanaged hostdev nobody holds
           "name": "web",
           "xml": "\"<domain><name>web</name><memory unit='MiB'>64</memory><devices><hostdev mode='subsystem' "
                  "type='pci' managed='no'><source><address domain='0' bus='4' slot='0' function='0'/></source>"
                  "</hostdev></devices></domain>\""}
SRIOV_ARGS = ("pf", "vf")


def list_methods():
    p = subprocess.run([IOVIRTD, "--list-methods"], capture_output=True, text=True, timeout=30)
    return p.returncode, dict(line.split("\t", 1) for line in p.stdout.splitlines() if "\t" in line)


def live_methods(env):
    p = subprocess.run(["busctl", "--system", "introspect", "org.iovirt1", "/org/iovirt1", "--xml-interface"],
                       env=env.bus.env(), capture_output=True, text=True, timeout=60)
    for iface in ET.fromstring(p.stdout).iter("interface"):
        if iface.get("name") == "org.iovirt1.Manager":
            return {m.get("name"): [a.get("name") for a in m.iter("arg") if a.get("direction") != "out"]
                    for m in iface.iter("method")}
    return {}


def state_of(env):
    """Everything a method could change: bindings, overrides, /dev/vfio, records"""
    return env.snapshot(), env.records()


def error_of(res):
    import re
    m = re.search(r"GDBus\.Error:([\w.]+): (.*)", res[2], re.S)
    return (m.group(1), m.group(2).strip()) if m else (None, res[2])


def table_checks(env):
    rc, table = list_methods()
    t.ok(rc == 0 and table, "iovirtd --list-methods prints the table", table)
    live = live_methods(env)
    t.ok(live and sorted(live) == sorted(table),
         "it names every method of the live interface, and no other (%d)" % len(live), (sorted(live), sorted(table)))
    denied = [m for m, a in table.items() if a != "read-only" and not a.startswith("org.iovirt1.")]
    t.ok(not denied, "every guarded method has a polkit action in the table", denied)
    # "org.iovirt1.release org.iovirt1.release-any": the second for another uid's assignments
    actions = {x for a in table.values() for x in a.split() if x.startswith("org.iovirt1.")}

    shipped = {a.get("id") for a in ET.parse(os.path.join(DATA, "polkit-1", "actions", "org.iovirt1.policy")).iter("action")}
    t.ok(shipped == actions, "the polkit actions file defines exactly the table's actions", (shipped, actions))

    policy = ET.parse(os.path.join(DATA, "dbus-1", "system.d", "org.iovirt1.conf")).getroot()
    owners = [(p.attrib, a.get("own")) for p in policy.iter("policy") for a in p.iter("allow") if a.get("own")]
    t.ok(owners == [({"user": "root"}, "org.iovirt1")], "the bus policy lets only root own org.iovirt1", owners)
    default = [a.attrib for p in policy.iter("policy") if p.get("context") == "default" for a in p.iter("allow")]
    t.ok({"send_destination": "org.iovirt1", "send_interface": "org.iovirt1.Manager"} in default and
         not [d for p in policy.iter("policy") for d in p.iter("deny")],
         "the bus policy lets everyone call the interface: polkit decides per method, from the table", default)
    return table, live


def read_only_change_nothing(env, table, live):
    env.assign("01:00.0", "vm-held")        # so that assignment queries have something to show
    for method, kind in sorted(table.items()):
        if kind != "read-only":
            continue
        missing = [a for a in live.get(method, []) if a not in SAMPLES]
        if missing:
            t.ok(False, "%s: a sample value for its arguments" % method, "add %s to SAMPLES" % missing)
            continue
        before = state_of(env)
        res = env.call(method, *[SAMPLES[a] for a in live[method]], user="nobody")
        name, _ = error_of(res)
        t.ok(name not in ("org.iovirt1.Error.NotAuthorized", "org.freedesktop.DBus.Error.AccessDenied") and
             state_of(env) == before, "read-only %s as nobody: answered, and nothing on the host changed" % method,
             res)


def pooled_domain(env):
    """Root prepares domain "pooled", whose metadata asks for the one device
    of pool "spare" (04:00.0): a pool device StartedDomain would attach"""
    policy = os.path.join(env.tb, "etc/iovirt/policy.d")
    os.makedirs(policy, exist_ok=True)
    with open(os.path.join(policy, "50-spare.conf"), "w") as f:
        f.write("[Pool spare]\nDevices=0000:04:00.0\n")
    env.ctl("--no-ask-password", "reload")
    xml = ("<domain><name>pooled</name><memory unit='MiB'>64</memory><metadata><iovirt:device "
           "xmlns:iovirt='https://iovirt.org/xmlns/domain/1' pool='spare'/></metadata></domain>")
    res = env.call("PrepareDomain", "pooled", '"%s"' % xml, "false")
    t.ok(res[0] == 0 and any(r.get("consumer") == "domain:pooled" for r in env.records().values()),
         "root prepares domain pooled, its pool device 04:00.0", res)
    return "pooled"


def guarded_denied(env, table, live):
    # Release, ReleaseConsumer and ReleaseDomain need something to give back
    env.assign("03:00.0", "vm-authz")
    res = env.call("PrepareDomain", "web", SAMPLES["xml"].replace("bus='4' slot='0'", "bus='0' slot='20'"), "false")
    t.ok(res[0] == 0, "root prepares domain web's hostdev 00:14.0 (no polkit needed)", res)
    for method, action in sorted(table.items()):
        if action == "read-only":
            continue
        if any(a in SRIOV_ARGS for a in live[method]):
            continue                      # sriov_denied(), on a host with a PF
        args = [SAMPLES[a] for a in live[method]]
        if method == "Assign":
            args[0] = "04:00.0"           # an assignable group nobody holds
        if method == "PrepareDomain":     # another domain than the one root prepared, with 04:00.0
            args = ["db", SAMPLES["xml"].replace("<name>web</name>", "<name>db</name>")]  + args[2:]
        if method == "StartedDomain":     # a domain with a pool device to attach, which root prepared
            args = [pooled_domain(env)] + args[1:]
        # root assigned what nobody would release: that is another uid's, the second action
        action = action.split()[-1]
        before = state_of(env)
        res = env.call(method, *args, user="nobody")
        name, msg = error_of(res)
        t.ok(name == "org.iovirt1.Error.NotAuthorized" and "(polkit action %s)" % action in msg and
             "polkit is not running" in msg and
             state_of(env) == before, "%s as nobody without polkit: denied naming %s, nothing changed" % (method, action),
             res)
    res = env.call("ReleaseDomain", "web", "false")
    t.ok(res[0] == 0, "root releases domain web's hostdev again", res)
    res = env.call("ReleaseDomain", "pooled", "false")
    t.ok(res[0] == 0, "root releases domain pooled's pool device again", res)
    os.unlink(os.path.join(env.tb, "etc/iovirt/policy.d/50-spare.conf"))    # pools defined restrict the rest
    env.ctl("--no-ask-password", "reload")


def sriov_denied(table, live):
    """SetVfs and ConfigureVf as nobody without polkit, on a host whose PF
    would take the change: denied naming their action, nothing changed"""
    env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "sriov")
    try:
        res = env.call("SetVfs", "05:00.0", "1", "{}", "false")
        t.ok(res[0] == 0, "root creates a VF on the sriov host (no polkit needed)", res)
        methods = [m for m, a in sorted(table.items()) if a != "read-only" and
                   any(x in SRIOV_ARGS for x in live[m])]
        t.ok(sorted(methods) == ["ConfigureVf", "SetVfs"], "the SR-IOV methods are guarded", methods)
        for method in methods:
            before = state_of(env)
            res = env.call(method, *[SAMPLES[a] for a in live[method]], user="nobody")
            name, msg = error_of(res)
            t.ok(name == "org.iovirt1.Error.NotAuthorized" and table[method] in msg and
                 "polkit is not running" in msg and state_of(env) == before,
                 "%s as nobody without polkit: denied naming %s, nothing changed" % (method, table[method]), res)
        # refused before polkit: a count above the total needs no password to be told so
        name, msg = error_of(env.call("SetVfs", "05:00.0", "9", "{}", "false", user="nobody"))
        t.ok(name == "org.iovirt1.Error.InvalidArgument" and "8 VFs at most" in msg,
             "nobody's SetVfs above the total is answered before polkit is asked", msg)
    finally:
        env.close()


def refusals_before_polkit(env):
    before = state_of(env)
    for target, error, words in (("00:01.0", "org.iovirt1.Error.InvalidArgument", "only bridges"),
                                 ("02:00.0", "org.iovirt1.Error.HostCritical", "mounted at /"),
                                 ("03:00.0", "org.iovirt1.Error.InUse", "vm-authz"),
                                 ("09:00.0", "org.iovirt1.Error.NoSuchDevice", "09:00.0")):
        name, msg = error_of(env.assign(target, "vm-nobody", user="nobody"))
        t.ok(name == error and words in msg,
             "nobody's Assign of %s is answered %s before polkit is asked" % (target, error.split(".")[-1]), msg)
    res = env.assign("03:00.0", "vm-authz", user="nobody")
    plan = json.loads(ast.literal_eval(res[1].strip())[0]) if res[0] == 0 else {}
    t.ok(plan.get("done") is True, "a retry by nobody of what is done already needs no polkit either", res)
    name, msg = error_of(env.call("Release", "02:00.0", "false", user="nobody"))
    t.ok(name == "org.iovirt1.Error.NotAssigned", "nobody's Release of a group not assigned: NotAssigned", msg)
    t.ok(state_of(env) == before, "none of these changed anything")


def start_polkit_mock(env):
    mock = subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
                            env=env.bus.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["gdbus", "wait", "--system", "--timeout", "60", "org.freedesktop.PolicyKit1"],
                   env=env.bus.env(), check=True, timeout=90)
    return mock


def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def replan_after_authorization(env):
    """polkit answers only when the test says so; meanwhile root takes the group"""
    mock = start_polkit_mock(env)
    held, go = os.path.join(env.root, "polkit-held"), os.path.join(env.root, "polkit-go")
    code = ("import os, time\n"
            "open(%r, 'w').close()\n"
            "deadline = time.monotonic() + 60\n"
            "while not os.path.exists(%r) and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
            "ret = (True, False, {})\n") % (held, go)
    try:
        subprocess.run(["gdbus", "call", "--system", "--dest", "org.freedesktop.PolicyKit1", "--object-path",
                        "/org/freedesktop/PolicyKit1/Authority", "--method", "org.freedesktop.DBus.Mock.AddMethod",
                        "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization", "(sa{sv})sa{ss}us",
                        "(bba{ss})", code], env=env.bus.env(), check=True, capture_output=True, timeout=60)
        late = subprocess.Popen(harness.NOBODY + harness.GDBUS_CALL + ["--method", "org.iovirt1.Manager.Assign",
                                "04:00.0", "vm-late", "[]", "true"], env=env.bus.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        asked = wait_for(held)
        t.ok(asked, "nobody's Assign of a free group waits for polkit")
        rc, out, err = env.ctl("assign", "04:00.0", "--to", "vm-first")
        t.ok(rc == 0, "meanwhile root assigns the same group to vm-first", out + err)
        open(go, "w").close()
        out, err = late.communicate(timeout=60)
        name, msg = error_of((late.returncode, out, err))
        recs = [r["consumer"] for r in env.records().values()]
        t.ok(name == "org.iovirt1.Error.InUse" and "vm-first" in msg and "vm-late" not in recs,
             "once polkit says yes, the plan is made again and refuses: InUse, naming vm-first", (msg, recs))

        # iovirtd stops while polkit still thinks: the caller is answered, not left hanging
        os.unlink(held)
        os.unlink(go)
        waiting = subprocess.Popen(harness.NOBODY + harness.GDBUS_CALL + ["--method", "org.iovirt1.Manager.Assign",
                                   "00:14.0", "vm-late", "[]", "true"], env=env.bus.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        asked = wait_for(held)
        before = state_of(env)
        env.daemon.terminate()
        stopped = env.daemon.wait(30)
        out, err = waiting.communicate(timeout=60)
        name, msg = error_of((waiting.returncode, out, err))
        t.ok(asked and stopped == 0 and name == "org.iovirt1.Error.Busy" and "before polkit answered" in msg and
             state_of(env) == before, "SIGTERM while polkit is asked: the caller gets Busy, nothing changes, "
             "iovirtd exits 0", (asked, stopped, msg))
        open(go, "w").close()
        env.start()
    finally:
        mock.terminate()
        mock.wait(10)


def main():
    env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "desktop")
    try:
        table, live = table_checks(env)
        read_only_change_nothing(env, table, live)
        guarded_denied(env, table, live)
        sriov_denied(table, live)
        refusals_before_polkit(env)
        replan_after_authorization(env)
        t.ok(env.daemon.poll() is None, "iovirtd is still up")
    finally:
        env.close()
    return t.done()


sys.exit(main())
