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
