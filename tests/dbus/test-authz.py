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
    test says so);
  - with python-dbusmock's polkitd, every guarded method of the table (a
    method without a case here fails the test): polkit allowing nothing,
    nobody's call is refused NotAuthorized naming its action ("polkit says
    no"), polkit was asked exactly that, and nothing changed; polkit
    allowing that action, the call succeeds and the host changed as asked
    (then it is undone).  The release methods twice: nobody's own
    assignment needs org.iovirt1.release, root's org.iovirt1.release-any,
    and release alone is not enough for root's;
  - the bus policy on the real bus: nobody and daemon (uid 1) cannot own
    org.iovirt1 (AccessDenied), root can (with iovirtd stopped); nobody's
    calls to an interface the policy does not name are denied by the bus,
    and the Properties it names are read-only.
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


start_polkit_mock = harness.start_polkit_mock


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


# ---- polkit says no, then yes: every guarded method ----

def mock_call(env, method, *args):
    return subprocess.run(["gdbus", "call", "--system", "--dest", "org.freedesktop.PolicyKit1", "--object-path",
                           "/org/freedesktop/PolicyKit1/Authority", "--method", "org.freedesktop.DBus.Mock." + method]
                          + list(args), env=env.bus.env(), capture_output=True, text=True, timeout=60)


def allow(env, *actions):
    """polkit allows exactly these actions from now on; its record of calls is cleared"""
    res = mock_call(env, "SetAllowed", "[%s]" % ", ".join("'%s'" % a for a in actions) if actions else "@as []")
    mock_call(env, "ClearCalls")
    return res.returncode == 0


def asked(env):
    """The actions polkit was asked about since the last allow()"""
    import re
    out = mock_call(env, "GetMethodCalls", "CheckAuthorization").stdout
    return re.findall(r"'(org\.iovirt1\.[\w.-]+)'", out)


def doc_of(res):
    try:
        return json.loads(ast.literal_eval(res[1].strip())[0]) if res[0] == 0 else {}
    except (ValueError, SyntaxError, IndexError, TypeError):
        return {}


def group_drivers(env, addr):
    full = addr if addr.count(":") == 2 else "0000:" + addr
    return {a: env.driver(a) for a in env.members(env.group_of(full))}


XML = ("\"<domain><name>%s</name><memory unit='MiB'>64</memory><devices><hostdev mode='subsystem' type='pci' "
       "managed='no'><source><address domain='0' bus='4' slot='0' function='0'/></source></hostdev></devices>"
       "</domain>\"")
FREE = "04:00.0"        # desktop: an assignable group nobody holds (a USB controller with no driver)


class Case:
    """One guarded method as nobody: setup() makes what the call needs as
    root (no polkit for root), call() is nobody's call, done(res) says
    whether the host changed as asked, undo() gives it back as root."""

    def __init__(self, env, method, action, owner=None):
        self.env, self.method, self.action, self.owner = env, method, action, owner

    def run(self, live):
        env = self.env
        what = "%s%s" % (self.method, " of %s's" % self.owner if self.owner else "")
        self.setup()
        try:
            allow(env)
            before = state_of(env)
            res = self.call()
            name, msg = error_of(res)
            t.ok(name == "org.iovirt1.Error.NotAuthorized" and "(polkit action %s)" % self.action in msg and
                 "polkit says no" in msg and asked(env) == [self.action] and state_of(env) == before and
                 not self.done_now(),
                 "polkit allowing nothing: nobody's %s is refused naming %s, polkit was asked that, nothing changed"
                 % (what, self.action), (res, asked(env)))
            allow(env, self.action)
            res = self.call()
            ok = res[0] == 0 and asked(env) == [self.action] and self.done(res)
            t.ok(ok, "polkit allowing %s: nobody's %s succeeds and %s" % (self.action, what, self.effect),
                 (res, asked(env)))
        finally:
            self.undo()


def polkit_cases(env, table):
    """A case for each (method, action) of the table on the desktop host; the
    SR-IOV methods are sriov_polkit()'s"""
    def root_assign(target, consumer):
        res = env.assign(target, consumer)
        t.ok(res[0] == 0, "root assigns %s to %s" % (target, consumer), res)

    def nobody_assign(target, consumer):
        allow(env, "org.iovirt1.assign")
        res = env.assign(target, consumer, user="nobody")
        t.ok(res[0] == 0, "nobody assigns %s to %s (polkit allowing assign)" % (target, consumer), res)

    def released(res, consumer):
        back = {a: d for a, d in group_drivers(env, FREE).items() if d == "vfio-pci"}
        return (consumer in [r.get("consumer") for r in doc_of(res).get("released", [])] and not back and
                not [r for r in env.records().values() if r.get("consumer") == consumer])

    def release_cases(method, arg, consumer, own, domain=False):
        action = "org.iovirt1.release" if own else "org.iovirt1.release-any"
        c = Case(env, method, action, None if own else "root")
        if domain:
            c.setup = lambda: (allow(env, "org.iovirt1.assign"),
                               t.ok(env.call("PrepareDomain", arg, XML % arg, "false",
                                             user="nobody" if own else None)[0] == 0,
                                    "%s prepares domain %s, its hostdev %s" % ("nobody" if own else "root", arg, FREE)))
        else:
            c.setup = (lambda: nobody_assign(FREE, consumer)) if own else (lambda: root_assign(FREE, consumer))
        c.call = lambda: env.call(method, arg, "false", user="nobody")
        c.done_now = lambda: env.driver("0000:" + FREE) != "vfio-pci"
        c.done = lambda res: released(res, consumer)
        c.effect = "the group is back on its driver, no record left"
        c.undo = lambda: env.call("ReleaseDomain" if domain else "ReleaseConsumer", arg if domain else consumer,
                                  "false")
        return c

    cases = {}
    c = Case(env, "Assign", "org.iovirt1.assign")
    c.setup = lambda: None
    c.call = lambda: env.assign(FREE, "vm-polkit", user="nobody")
    c.done_now = lambda: bool(env.records())
    c.done = lambda res: (set(group_drivers(env, FREE).values()) == {"vfio-pci"} and
                          [(r.get("consumer"), r.get("holder", {}).get("uid")) for r in env.records().values()] ==
                          [("vm-polkit", 65534)])
    c.effect = "%s's group is on vfio-pci, recorded for vm-polkit with holder uid 65534" % FREE
    c.undo = lambda: env.call("ReleaseConsumer", "vm-polkit", "false")
    cases[("Assign", "org.iovirt1.assign")] = c

    c = Case(env, "PrepareDomain", "org.iovirt1.assign")
    c.setup = lambda: None
    c.call = lambda: env.call("PrepareDomain", "db", XML % "db", "false", user="nobody")
    c.done_now = lambda: bool(env.records())
    c.done = lambda res: (env.driver("0000:" + FREE) == "vfio-pci" and
                          [r.get("consumer") for r in env.records().values()] == ["domain:db"])
    c.effect = "its hostdev %s is on vfio-pci, recorded for domain:db" % FREE
    c.undo = lambda: env.call("ReleaseDomain", "db", "false")
    cases[("PrepareDomain", "org.iovirt1.assign")] = c

    c = Case(env, "StartedDomain", "org.iovirt1.assign")
    c.setup = lambda: pooled_domain(env)
    c.call = lambda: env.call("StartedDomain", "pooled", "false", user="nobody")
    attaching = "Attaching 1 pool device to domain pooled"
    c.done_now = lambda: attaching in env.log()
    # libvirt's test driver cannot attach: what nobody may do is ask for it, which iovirtd queues and logs
    c.done = lambda res: (doc_of(res).get("queued") == [env.group_of("0000:" + FREE)] and
                          harness.wait_until(lambda: attaching in env.log(), 30))
    c.effect = "the attach of pool device %s to domain pooled is queued" % FREE

    def unpool():
        env.call("ReleaseDomain", "pooled", "false")
        os.unlink(os.path.join(env.tb, "etc/iovirt/policy.d/50-spare.conf"))
        env.ctl("--no-ask-password", "reload")
    c.undo = unpool
    cases[("StartedDomain", "org.iovirt1.assign")] = c

    c = Case(env, "Reload", "org.iovirt1.reload")
    spare = os.path.join(env.tb, "etc/iovirt/policy.d/50-polkit.conf")

    def pool_file():
        os.makedirs(os.path.dirname(spare), exist_ok=True)
        with open(spare, "w") as f:
            f.write("[Pool polkit-spare]\nDevices=0000:%s\n" % FREE)
    c.setup = pool_file
    c.call = lambda: env.call("Reload", "false", user="nobody")
    c.done_now = lambda: "polkit-spare" in env.call("DescribePolicy")[1]
    c.done = lambda res: "polkit-spare" in env.call("DescribePolicy")[1]
    c.effect = "the policy file written meanwhile is in force (DescribePolicy shows its pool)"

    def unreload():
        os.unlink(spare)
        env.ctl("--no-ask-password", "reload")
    c.undo = unreload
    cases[("Reload", "org.iovirt1.reload")] = c

    for own in (True, False):
        a = "org.iovirt1.release" if own else "org.iovirt1.release-any"
        cases[("Release", a)] = release_cases("Release", FREE, "vm-rel", own)
        cases[("ReleaseConsumer", a)] = release_cases("ReleaseConsumer", "vm-relc", "vm-relc", own)
        cases[("ReleaseDomain", a)] = release_cases("ReleaseDomain", "reldom", "domain:reldom", own, domain=True)
    return cases


def release_alone_not_enough(env):
    """polkit allowing release (not release-any): nobody still cannot
    release what root holds, by any of the three methods"""
    res = env.assign(FREE, "vm-root")
    dom = env.call("PrepareDomain", "rootdom", (XML % "rootdom").replace("bus='4' slot='0'", "bus='0' slot='20'"),
                   "false")
    t.ok(res[0] == 0 and dom[0] == 0, "root assigns %s to vm-root and prepares domain rootdom's 00:14.0" % FREE,
         (res, dom))
    for method, arg in (("Release", FREE), ("ReleaseConsumer", "vm-root"), ("ReleaseDomain", "rootdom")):
        allow(env, "org.iovirt1.release")
        before = state_of(env)
        name, msg = error_of(env.call(method, arg, "false", user="nobody"))
        t.ok(name == "org.iovirt1.Error.NotAuthorized" and "org.iovirt1.release-any" in msg and
             asked(env) == ["org.iovirt1.release-any"] and state_of(env) == before,
             "polkit allowing release only: nobody's %s of root's %s is refused, release-any asked" % (method, arg),
             msg)
    env.call("ReleaseConsumer", "vm-root", "false")
    env.call("ReleaseDomain", "rootdom", "false")


def polkit_says(env, table):
    mock = start_polkit_mock(env)
    driver = env.driver("0000:" + FREE)
    try:
        cases = polkit_cases(env, table)
        wanted = [(m, a) for m, kinds in sorted(table.items()) if kinds != "read-only" for a in kinds.split()
                  if m not in ("SetVfs", "ConfigureVf")]
        missing = [w for w in wanted if w not in cases]
        t.ok(not missing and sorted(cases) == sorted(wanted),
             "a polkit case for every guarded method and action of the table (%d)" % len(wanted), (missing, sorted(cases)))
        for key in wanted:
            if key in cases:
                cases[key].run(None)
        release_alone_not_enough(env)
        t.ok(not env.records() and env.driver("0000:" + FREE) == driver,
             "every case undone: %s back on %s" % (FREE, driver or "no driver"), env.records())
    finally:
        mock.terminate()
        mock.wait(10)


def sriov_polkit(table):
    """SetVfs and ConfigureVf with polkit saying no, then yes, on the sriov host"""
    env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "sriov")
    mock = start_polkit_mock(env)
    pf = "0000:05:00.0"

    def numvfs():
        with open(os.path.join(env.tb, "sys/bus/pci/devices", pf, "sriov_numvfs")) as f:
            return int(f.read())
    try:
        methods = sorted(m for m, a in table.items() if a != "read-only" and m in ("SetVfs", "ConfigureVf"))
        t.ok(methods == ["ConfigureVf", "SetVfs"] and table["SetVfs"] == table["ConfigureVf"] ==
             "org.iovirt1.manage-sriov", "SetVfs and ConfigureVf: org.iovirt1.manage-sriov", table)
        c = Case(env, "SetVfs", "org.iovirt1.manage-sriov")
        c.setup = lambda: None
        c.call = lambda: env.call("SetVfs", "05:00.0", "2", "{}", "false", user="nobody")
        c.done_now = lambda: numvfs() != 0
        c.done = lambda res: numvfs() == 2 and doc_of(res).get("pf", {}).get("num_vfs") == 2
        c.effect = "sriov_numvfs is 2"
        c.undo = lambda: env.call("SetVfs", "05:00.0", "0", "{}", "false")
        c.run(None)

        env.call("SetVfs", "05:00.0", "1", "{}", "false")
        c = Case(env, "ConfigureVf", "org.iovirt1.manage-sriov")
        c.setup = lambda: None
        c.call = lambda: env.call("ConfigureVf", "05:00.0#0", SAMPLES["settings"], "false", user="nobody")
        c.done_now = lambda: False
        # the PF's interface enp5s0f0 lives in the testbed, not in this network namespace: past polkit, the
        # kernel's netlink is asked and answers that there is no such interface (tests/e2e sets a real igb VF)
        c.done = lambda res: False
        c.undo = lambda: env.call("SetVfs", "05:00.0", "0", "{}", "false")
        allow(env)
        before = state_of(env)
        name, msg = error_of(c.call())
        t.ok(name == "org.iovirt1.Error.NotAuthorized" and "org.iovirt1.manage-sriov" in msg and
             "polkit says no" in msg and asked(env) == ["org.iovirt1.manage-sriov"] and state_of(env) == before,
             "polkit allowing nothing: nobody's ConfigureVf is refused naming org.iovirt1.manage-sriov, nothing "
             "changed", msg)
        allow(env, "org.iovirt1.manage-sriov")
        name, msg = error_of(c.call())
        t.ok(name not in (None, "org.iovirt1.Error.NotAuthorized") and "enp5s0f0" in msg and
             asked(env) == ["org.iovirt1.manage-sriov"] and state_of(env) == before,
             "polkit allowing manage-sriov: nobody's ConfigureVf gets past polkit to the PF's interface enp5s0f0 "
             "(not in this network namespace: %s)" % (name or "").split(".")[-1], msg)
        c.undo()
        t.ok(numvfs() == 0, "undone: 05:00.0 back at 0 VFs")
    finally:
        mock.terminate()
        mock.wait(10)
        env.close()


# ---- the bus policy, on the real bus ----

def request_name(env, user):
    who = {"nobody": harness.NOBODY, "daemon": ["setpriv", "--reuid=1", "--regid=1", "--clear-groups", "--"],
           "root": []}[user]
    return subprocess.run(who + ["gdbus", "call", "--system", "--dest", "org.freedesktop.DBus", "--object-path",
                                 "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.RequestName",
                                 "org.iovirt1", "4"], env=env.bus.env(), capture_output=True, text=True, timeout=60)


def bus_policy(env):
    """data/dbus-1/system.d/org.iovirt1.conf as the test's dbus-daemon
    enforces it"""
    env.stop()
    try:
        for user in ("nobody", "daemon"):
            res = request_name(env, user)
            name, msg = error_of((res.returncode, res.stdout, res.stderr))
            t.ok(name == "org.freedesktop.DBus.Error.AccessDenied" and "org.iovirt1" in msg,
                 "with iovirtd stopped, %s cannot own org.iovirt1: AccessDenied" % user, res)
        res = request_name(env, "root")
        # 1: DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER (released again as gdbus disconnects)
        t.ok(res.returncode == 0 and res.stdout.strip() == "(uint32 1,)", "root may own org.iovirt1", res)
    finally:
        env.start()
    for iface, method, args in (("org.freedesktop.DBus.ObjectManager", "GetManagedObjects", []),
                                ("org.iovirt1.Private", "Assign", [FREE, "vm-x", "[]", "false"])):
        argv = harness.GDBUS_CALL + ["--method", iface + "." + method] + args
        res = subprocess.run(harness.NOBODY + argv, env=env.bus.env(), capture_output=True, text=True, timeout=60)
        name, msg = error_of((res.returncode, res.stdout, res.stderr))
        root = subprocess.run(argv, env=env.bus.env(), capture_output=True, text=True, timeout=60)
        rname, _ = error_of((root.returncode, root.stdout, root.stderr))
        t.ok(name == "org.freedesktop.DBus.Error.AccessDenied" and rname not in (None, name) and not env.records(),
             "nobody's call to %s, an interface the policy does not name, is denied by the bus (root's reaches "
             "iovirtd: %s)" % (iface, (rname or "").split(".")[-1]), (msg, rname))
    get = subprocess.run(harness.GDBUS_CALL + ["--method", "org.freedesktop.DBus.Properties.Get", "org.iovirt1.Manager",
                                              "Version"], env=env.bus.env(), capture_output=True, text=True, timeout=60)
    res = subprocess.run(harness.NOBODY + harness.GDBUS_CALL + ["--method", "org.freedesktop.DBus.Properties.Set",
                                                               "org.iovirt1.Manager", "Version", "<'9.9'>"],
                         env=env.bus.env(), capture_output=True, text=True, timeout=60)
    name, msg = error_of((res.returncode, res.stdout, res.stderr))
    again = subprocess.run(harness.GDBUS_CALL + ["--method", "org.freedesktop.DBus.Properties.Get",
                                                "org.iovirt1.Manager", "Version"], env=env.bus.env(),
                           capture_output=True, text=True, timeout=60)
    t.ok(res.returncode != 0 and name == "org.freedesktop.DBus.Error.PropertyReadOnly" and get.returncode == 0 and
         again.stdout == get.stdout,
         "nobody may send Properties.Set (the policy names the interface), and iovirtd refuses it: read-only",
         (msg, get.stdout, again.stdout))


def main():
    env = harness.Env(IOVIRTD, IOVIRTCTL, EMU, WRITER, "desktop")
    try:
        table, live = table_checks(env)
        read_only_change_nothing(env, table, live)
        guarded_denied(env, table, live)
        sriov_denied(table, live)
        refusals_before_polkit(env)
        replan_after_authorization(env)
        for consumer in ("vm-held", "vm-authz", "vm-first"):
            env.call("ReleaseConsumer", consumer, "false")
        polkit_says(env, table)
        bus_policy(env)
        t.ok(env.daemon.poll() is None, "iovirtd is still up")
    finally:
        env.close()
    sriov_polkit(table)
    return t.done()


sys.exit(main())
