#!/usr/bin/env python3
"""fuzz-bus-corpus.py DIR: writes the seed corpus of tests/fuzz/fuzz-bus.c.

One input per method of org.iovirt1.Manager with valid arguments on the
fuzzer's emulated host (tests/hosts/hosts.py's "sriov"), and some with bad
ones; the format is described at the top of fuzz-bus.c.  Method indexes
follow the vtable's order (iovirtd --list-methods), then the standard
interfaces fuzz-bus.c adds; regenerate after adding a method."""
import os
import struct
import sys

METHODS = ["ListGroups", "ListDevices", "DescribeGroups", "DescribeDevices", "DescribeDevice", "DescribeTree",
           "CheckHost", "Reload", "PlanAssign", "Assign", "Release", "ReleaseConsumer", "ListAssignments",
           "DescribeAssignments", "DescribePolicy", "DescribeStatus", "DescribeSriov", "PrepareDomain",
           "StartedDomain", "ReleaseDomain", "SetVfs", "ConfigureVf",
           "Properties.Get", "Properties.GetAll", "Properties.Set", "Introspect", "Ping"]
UNKNOWN = len(METHODS)
VARIANT = ["s", "b", "u", "i", "y", "q", "n", "x", "t", "d", "o", "g", "as", "ay", "a{sv}", "a{ss}", "(su)", "v"]
NOBODY, RAW = 1, 2
# polkit's answers, for a caller that is not root
YES, CHALLENGE, NO, ABSENT, FAILS, GARBLED = range(6)


def s(text):
    b = text.encode()
    if len(b) < 0xf0:
        return bytes([len(b)]) + b
    return bytes([0xf0]) + struct.pack("<H", len(b)) + b


def b(v):
    return bytes([1 if v else 0])


def u(v):
    return struct.pack("<I", v)


def a_s(items):
    return bytes([len(items)]) + b"".join(s(i) for i in items)


def v(typ, value):
    return bytes([VARIANT.index(typ)]) + value


def a_sv(entries):
    return bytes([len(entries)]) + b"".join(s(k) + val for k, val in entries)


def call(method, args=b"", flags=0, polkit=b"", raw_sig=None):
    head = bytes([flags | (RAW if raw_sig is not None else 0), METHODS.index(method) if method in METHODS else UNKNOWN])
    if method not in METHODS:
        head += s(method)
    if raw_sig is not None or method not in METHODS:
        head += s(raw_sig or "")
    return head + args + polkit


DOMAIN_XML = """<domain type='kvm'><name>fuzz-vm</name><uuid>6c1b7a1e-6f4b-4a8e-9d4c-1a2b3c4d5e6f</uuid>
<memory unit='MiB'>1024</memory><devices><hostdev mode='subsystem' type='pci' managed='no'><source>
<address domain='0x0000' bus='0x84' slot='0x00' function='0x0'/></source></hostdev></devices></domain>"""

SEEDS = {
    "list-groups": call("ListGroups"),
    "list-devices": call("ListDevices"),
    "describe-groups": call("DescribeGroups"),
    "describe-devices": call("DescribeDevices"),
    "describe-device": call("DescribeDevice", s("0000:05:00.0")),
    "describe-device-short": call("DescribeDevice", s("84:00.0")),
    "describe-device-bad": call("DescribeDevice", s("0000:zz:00.0")),
    "describe-device-long": call("DescribeDevice", s("0" * 4100)),
    "describe-tree": call("DescribeTree"),
    "check-host": call("CheckHost"),
    "reload": call("Reload", b(False)),
    "reload-nobody-yes": call("Reload", b(True), NOBODY, bytes([YES])),
    "reload-nobody-challenge": call("Reload", b(False), NOBODY, bytes([CHALLENGE])),
    "reload-nobody-no": call("Reload", b(False), NOBODY, bytes([NO])),
    "reload-nobody-absent": call("Reload", b(False), NOBODY, bytes([ABSENT])),
    "reload-nobody-fails": call("Reload", b(False), NOBODY, bytes([FAILS])),
    "reload-nobody-garbled": call("Reload", b(False), NOBODY, bytes([GARBLED])),
    "plan-assign": call("PlanAssign", s("0000:84:00.0") + s("vm1") + a_s([])),
    "plan-assign-accept": call("PlanAssign", s("84:00.0") + s("vm1") +
                               a_s(["leaky", "driver=vfio-pci", "memory=1G", "numa-node=1"])),
    "plan-assign-bad-accept": call("PlanAssign", s("84:00.0") + s("vm1") + a_s(["frob", "driver=-x"])),
    "plan-assign-group": call("PlanAssign", s("group:5") + s("pid:2") + a_s(["viommu", "cpus=0-3"])),
    "assign": call("Assign", s("0000:84:00.0") + s("vm1") + a_s([]) + b(False)),
    "assign-pid": call("Assign", s("0000:84:00.0") + s("pid:2") + a_s(["memory=64M"]) + b(False)),
    "assign-domain": call("Assign", s("0000:84:00.0") + s("domain:lv-web") + a_s([]) + b(False)),
    "assign-nobody-yes": call("Assign", s("0000:84:00.0") + s("vm1") + a_s([]) + b(True), NOBODY, bytes([YES])),
    "assign-pf": call("Assign", s("0000:05:00.0") + s("vm1") + a_s(["persistent"]) + b(False)),
    "assign-bad": call("Assign", s("0000:99:00.0") + s("") + a_s([]) + b(False)),
    "release": call("Release", s("0000:84:00.0") + b(False)),
    "release-nobody": call("Release", s("0000:84:00.0") + b(False), NOBODY, bytes([YES])),
    "release-consumer": call("ReleaseConsumer", s("vm1") + b(False)),
    "release-consumer-nobody": call("ReleaseConsumer", s("pid:2") + b(False), NOBODY, bytes([NO])),
    "list-assignments": call("ListAssignments"),
    "describe-assignments": call("DescribeAssignments"),
    "describe-policy": call("DescribePolicy"),
    "describe-status": call("DescribeStatus"),
    "describe-sriov": call("DescribeSriov", s("0000:05:00.0")),
    "describe-sriov-no-sriov": call("DescribeSriov", s("0000:84:00.0")),
    "prepare-domain": call("PrepareDomain", s("fuzz-vm") + s(DOMAIN_XML) + b(False)),
    "prepare-domain-bad-xml": call("PrepareDomain", s("fuzz-vm") + s("<domain><name>x</name") + b(False)),
    "prepare-domain-doctype": call("PrepareDomain", s("x") + s("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
                                                              "<domain><name>&e;</name></domain>") + b(False)),
    "started-domain": call("StartedDomain", s("lv-web") + b(False)),
    "release-domain": call("ReleaseDomain", s("fuzz-vm") + b(False)),
    "set-vfs": call("SetVfs", s("0000:05:00.0") + u(2) + a_sv([]) + b(False)),
    "set-vfs-options": call("SetVfs", s("0000:07:00.0") + u(1) +
                            a_sv([("persist", v("b", b(True))), ("autoprobe", v("b", b(False)))]) + b(False)),
    "set-vfs-over-total": call("SetVfs", s("0000:07:00.0") + u(99) + a_sv([]) + b(False)),
    "set-vfs-bad-option": call("SetVfs", s("0000:05:00.0") + u(1) + a_sv([("persist", v("s", s("yes"))),
                                                                         ("frob", v("u", u(1)))]) + b(False)),
    "set-vfs-no-configure": call("SetVfs", s("0000:06:00.0") + u(1) + a_sv([]) + b(False)),
    "set-vfs-nobody": call("SetVfs", s("0000:05:00.0") + u(0) + a_sv([]) + b(False), NOBODY, bytes([YES])),
    "configure-vf": call("ConfigureVf", s("0000:05:00.0") + a_sv([("mac", v("s", s("02:00:00:00:00:01"))),
                                                                  ("vlan", v("u", u(5))),
                                                                  ("spoofchk", v("b", b(True)))]) + b(False)),
    "configure-vf-bad": call("ConfigureVf", s("0000:05:10.0") + a_sv([("mac", v("s", s("ff:ff:ff:ff:ff:ff"))),
                                                                      ("vlan", v("u", u(5000)))]) + b(False)),
    "get-version": call("Properties.Get", s("org.iovirt1.Manager") + s("Version")),
    "get-all": call("Properties.GetAll", s("org.iovirt1.Manager")),
    "set-version": call("Properties.Set", s("org.iovirt1.Manager") + s("Version") + v("s", s("9"))),
    "introspect": call("Introspect"),
    "ping": call("Ping"),
    "unknown-method": call("Frobnicate", raw_sig="s", args=s("x")),
    "raw-assign-wrong-signature": call("Assign", s("0000:84:00.0") + u(7), raw_sig="su"),
    "raw-describe-device-no-args": call("DescribeDevice", raw_sig=""),
    "raw-set-vfs-nested": call("SetVfs", s("0000:05:00.0") + u(1) + bytes([1]) + s("persist") +
                               v("v", v("b", b(True))) + b(False), raw_sig="sua{sv}b"),
}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "bus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
