"""The golden files of the emulated hosts: which iovirtctl command writes
each one, and the exit code it must have.

test-host.py checks them reading the testbed directly, test-daemon.py
through iovirtd; both take the list from here.  A golden file that no
command writes is stale (or its command was lost): uncovered() names it,
and both tests fail on it."""

import os

GOLDEN = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))

# every host, every command
COMMANDS = [
    ("list-groups.txt", ["list-groups"]),
    ("list-groups.json", ["list-groups", "--json"]),
    ("list-devices.txt", ["list-devices"]),
    ("list-devices.json", ["--json", "list-devices"]),
    ("tree.txt", ["tree"]),
    ("check.txt", ["check"]),
    ("check.json", ["check", "--json"]),
]

# 'show', in the spellings each host is checked with
SHOW = {
    "desktop": ["0000:01:00.0", "00:02.0", "enp3s0"],
    "dual-socket": ["81:00.0", "81:02.2", "3b:00.0"],
    "switch-no-acs": ["03:00.0", "02:01.0"],
    "pci-bridge": ["02:05.0", "01:00.0"],
    "multifunction": ["01:00.1"],
    "no-iommu": ["01:00.0"],
    "acs-override": ["01:00.0"],
    "broken": ["01:00.0", "00:1d.0", "00:1e.0", "00:1f.0"],
}

# hosts on which 'iovirtctl check' finds a failing check, and exits 1
CHECK_FAILS = {"no-iommu"}


def commands(host):
    """[(golden file name, iovirtctl arguments, expected exit code)] for the
    emulated host named HOST."""
    check_rc = 1 if host in CHECK_FAILS else 0
    out = [(name, args, check_rc if "check" in args else 0) for name, args in COMMANDS]
    for dev in SHOW.get(host, []):
        safe = dev.replace(":", "_").replace("/", "_")
        out.append(("show-%s.txt" % safe, ["show", dev], 0))
        out.append(("show-%s.json" % safe, ["show", dev, "--json"], 0))
    return out


def path(host, name):
    return os.path.join(GOLDEN, host, name)


def hosts():
    """The hosts that have a golden directory, sorted."""
    return sorted(d for d in os.listdir(GOLDEN) if os.path.isdir(os.path.join(GOLDEN, d)))


def uncovered(host):
    """The files in HOST's golden directory that no command writes."""
    d = os.path.join(GOLDEN, host)
    if not os.path.isdir(d):
        return []
    written = {name for name, _, _ in commands(host)}
    return sorted(f for f in os.listdir(d) if f not in written)
