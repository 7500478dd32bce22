#!/usr/bin/python3
"""Writes the pktgen-style input pcaps: flows-N.pcap holds N frames, one per
distinct IPv4/UDP 5-tuple, 60 bytes each (64 on the wire with the FCS).

Frame i: Ether 02:00:00:00:00:01 -> 00:00:5e:00:01:00 (the vRouter gateway MAC), IPv4
10.244.0.0+2+(i % 65000) -> 10.245.0.10, UDP sport 10000 + i // 65000 -> 8080,
18 zero bytes of payload, valid checksums. The same 5-tuples and sizes as the peer
baseline's pcaps, so figures compare.

usage: gen_pcaps.py OUT_DIR [N ...]      (default N: 1 1000 100000)
"""
import os
import struct
import sys

from scapy.all import IP, UDP, Ether, Raw
from scapy.utils import PcapWriter

BASE = struct.unpack("!I", bytes([10, 244, 0, 0]))[0]


def frame(i):
    src = ".".join(str(b) for b in struct.pack("!I", BASE + 2 + (i % 65000)))
    return (
        Ether(src="02:00:00:00:00:01", dst="00:00:5e:00:01:00")
        / IP(src=src, dst="10.245.0.10", ttl=64)
        / UDP(sport=10000 + i // 65000, dport=8080)
        / Raw(b"\x00" * 18)
    )


def main():
    out = sys.argv[1]
    sizes = [int(a) for a in sys.argv[2:]] or [1, 1000, 100000]
    os.makedirs(out, exist_ok=True)
    for n in sizes:
        path = os.path.join(out, f"flows-{n}.pcap")
        if os.path.exists(path):
            continue
        w = PcapWriter(path + ".tmp", linktype=1, sync=False)
        for i in range(n):
            w.write(frame(i))
        w.close()
        os.rename(path + ".tmp", path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
