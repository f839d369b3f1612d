"""lspci -vvv -nn -D as an oracle: what it says of IDs, ACS and SR-IOV."""

import re


def parse_lspci(text):
    """address -> {vendor, device, acs_cap, acs_ctl, iov_initial, iov_total, iov_num}"""
    out = {}
    cur = None
    flag_bits = {"SrcValid": 0x01, "TransBlk": 0x02, "ReqRedir": 0x04, "CmpltRedir": 0x08,
                 "UpstreamFwd": 0x10, "EgressCtrl": 0x20, "DirectTrans": 0x40}
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*\[([0-9a-f]{4}):([0-9a-f]{4})\]", line)
        if m:
            cur = out.setdefault(m.group(1), {})
            cur["vendor"], cur["device"] = m.group(2), m.group(3)
            continue
        if cur is None:
            continue
        m = re.match(r"^\s+(ACSCap|ACSCtl):\s+(.*)$", line)
        if m:
            v = 0
            for word in m.group(2).split():
                if word[:-1] in flag_bits and word.endswith("+"):
                    v |= flag_bits[word[:-1]]
            cur["acs_cap" if m.group(1) == "ACSCap" else "acs_ctl"] = v
            continue
        m = re.match(r"^\s+Initial VFs: (\d+), Total VFs: (\d+), Number of VFs: (\d+)", line)
        if m:
            cur["iov_initial"], cur["iov_total"], cur["iov_num"] = map(int, m.groups())
    return out


def disagreements(ours, theirs):
    """Where iovirtctl's devices (address -> its JSON for the function) and
    parse_lspci()'s disagree on IDs, ACS or SR-IOV: one line each."""
    bad = []
    for addr, t in sorted(theirs.items()):
        o = ours.get(addr)
        if o is None:
            bad.append("%s: lspci sees it, iovirtctl does not" % addr)
            continue
        if o["problem"] and "config space" in o["problem"]:
            continue          # lspci prints what it can of broken devices; we say unknown
        if (o["vendor"], o["device"]) != (t["vendor"], t["device"]):
            bad.append("%s: IDs %s:%s vs lspci %s:%s" % (addr, o["vendor"], o["device"], t["vendor"], t["device"]))
        lacs = (t["acs_cap"], t["acs_ctl"]) if "acs_cap" in t else None
        oacs = (o["acs"]["cap"] & 0x7f, o["acs"]["ctl"] & 0x7f) if o["acs"] else None
        if lacs != oacs:
            bad.append("%s: ACS %s vs lspci %s" % (addr, oacs, lacs))
        liov = (t["iov_initial"], t["iov_total"], t["iov_num"]) if "iov_total" in t else None
        oiov = (o["sriov"]["initial_vfs"], o["sriov"]["total_vfs"], o["sriov"]["num_vfs"]) if o["sriov"] else None
        if liov != oiov:
            bad.append("%s: SR-IOV %s vs lspci %s" % (addr, oiov, liov))
    missing = set(ours) - set(theirs)
    if missing:
        bad.append("iovirtctl sees, lspci does not: %s" % sorted(missing))
    return bad
