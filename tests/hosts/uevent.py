"""Sends uevents into a umockdev testbed the way udevd announces them:
a "libudev" header carrying the subsystem's MurmurHash2 (for the socket
filter libudev installs), then NUL-separated properties, to every event
socket the preload library opened for a monitoring process
($UMOCKDEV_DIR/event<N>)."""

import glob
import os
import socket
import struct

_seqnum = [1000]


def _murmur2(data):
    """MurmurHash2, as systemd's string_hash32 (seed: the length)."""
    m, r = 0x5bd1e995, 24
    h = len(data) & 0xffffffff
    i = 0
    while len(data) - i >= 4:
        k = struct.unpack_from("<I", data, i)[0]
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff
        h ^= k
        i += 4
    rest = len(data) - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def send(root, syspath, action, subsystem="pci", **props):
    """Announces ACTION for the device at SYSPATH (/sys/devices/...) to every
    monitor in the testbed at ROOT.  Returns how many listeners got it."""
    _seqnum[0] += 1
    fields = [("ACTION", action), ("DEVPATH", syspath[len("/sys"):]), ("SUBSYSTEM", subsystem),
              ("SEQNUM", str(_seqnum[0]))] + list(props.items())
    body = b"".join(("%s=%s" % kv).encode() + b"\0" for kv in fields)
    header_size = 8 + 8 * 4
    header = b"libudev\0" + struct.pack("!I", 0xfeedcafe) + struct.pack("=III", header_size, header_size, len(body)) + \
        struct.pack("!I", _murmur2(subsystem.encode())) + struct.pack("=III", 0, 0, 0)
    sent = 0
    for path in glob.glob(os.path.join(root, "event[0-9]*")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_RAW)
        try:
            s.connect(path)
            s.send(header + body)
            sent += 1
        except ConnectionRefusedError:
            pass              # a monitor that closed
        finally:
            s.close()
    return sent
