#!/usr/bin/python3
"""Writes the input pcaps of the whole-data-plane run (benches/pktgen/run.sh).

usage: gen_pcaps.py OUT_DIR KIND FLOWS SIZE [SHARD/SHARDS]

Prints the path of the pcap, which is written only when it does not exist yet
(OUT_DIR/in-KIND-SIZE-FLOWS[-sSHARDofSHARDS].pcap, so every input is generated
once and reused across runs).

KIND    pod      pod -> gateway frames (the input of io, vxlan, mplsudp, mplsgre,
                 local): Ether 02:00:00:00:00:01 -> 00:00:5e:00:01:00 (the
                 vRouter gateway MAC), IPv4 10.244.0.0+2+(i % 65000) ->
                 10.245.0.10, UDP 10000 + i // 65000 -> 8080, TTL 64.
        vxlan    fabric frames for this node: Ether 02:bb:00:00:00:12 ->
                 02:aa:00:00:00:11, IPv4 10.10.0.12 -> 10.10.0.11 (the node's
                 underlay address), UDP entropy port -> 4789, VXLAN VNI 100, and
                 inside an Ethernet frame 02:00:00:00:00:99 -> 00:00:5e:00:01:00,
                 IPv4 10.245.0.0+2+(i % 65000) -> 10.244.0.10, UDP
                 10000 + i // 65000 -> 8080.
        mplsudp  the same outer headers to UDP port 6635, one MPLS label (100,
                 bottom of stack, TTL 64) and the inner IPv4/UDP packet (no
                 inner Ethernet header).
        mplsgre  the same outer Ethernet and IPv4 headers with protocol 47, a
                 4-byte GRE header (no checksum, key or sequence; protocol
                 0x8847), the same label and inner IPv4/UDP packet.
FLOWS   number of distinct inner 5-tuples; flow i is the i-th tuple above.
SIZE    64: every inner frame is 64 bytes on the wire (60 + FCS);
        imix: inner frames of 64, 570 and 1518 bytes (with FCS) in the ratio
        7:4:1, interleaved in a fixed 12-packet pattern.
SHARD/SHARDS  only the flows i with i % SHARDS == SHARD (one pcap per RX port
        when several workers poll one port each); with FLOWS < SHARDS every
        shard holds all flows.

A pcap holds FLOWS packets for SIZE 64 and max(FLOWS, 12) rounded up to a
multiple of 12 for imix (packet j carries flow j % FLOWS and size
pattern[j % 12]), so each flow is in it (nearly) once: with net_pcap's
infinite_rx every flow recurs once per pass over the file. Headers are packed
with struct from a template (no per-packet scapy objects): a million packets
take a few seconds. All IPv4 header and inner UDP checksums are valid; outer
UDP checksums are zero, as tunnel endpoints send them.
"""
import os
import struct
import sys

POD_BASE = struct.unpack("!I", bytes([10, 244, 0, 0]))[0]
REMOTE_BASE = struct.unpack("!I", bytes([10, 245, 0, 0]))[0]
IMIX = [60, 566, 60, 60, 566, 60, 1514, 60, 566, 60, 60, 566]  # 7:4:1 without FCS

GW_MAC = bytes.fromhex("00005e000100")
POD_MAC = bytes.fromhex("020000000001")
REMOTE_POD_MAC = bytes.fromhex("020000000099")
NODE_MAC = bytes.fromhex("02aa00000011")
PEER_MAC = bytes.fromhex("02bb00000012")
NODE_IP = bytes([10, 10, 0, 11])
PEER_IP = bytes([10, 10, 0, 12])
VNI = 100
LABEL = 100


def fold(s):
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_words(b):
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def ipv4_header(total, proto, src, dst, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, ttl, proto, 0, src, dst)
    c = 0xFFFF - fold(ip_words(h))
    return h[:10] + struct.pack("!H", c) + h[12:]


def tuple_of(i, base):
    return base + 2 + (i % 65000), 10000 + i // 65000


class Inner:
    """The inner IPv4/UDP packet of one size: header templates and the constant
    parts of both checksums, patched per flow."""

    def __init__(self, frame_len, src_base, dst):
        self.ip_len = frame_len - 14
        udp_len = self.ip_len - 20
        self.dst = dst
        self.src_base = src_base
        self.payload = bytes(udp_len - 8)
        hdr = ipv4_header(self.ip_len, 17, b"\0\0\0\0", dst)
        self.ip_tmpl = bytearray(hdr)
        self.ip_tmpl[10:12] = b"\0\0"
        self.ip_sum = ip_words(bytes(self.ip_tmpl))
        # pseudo header (dst, proto, length) + UDP dport and length; src and sport vary
        self.udp_sum = ip_words(dst) + 17 + udp_len + 8080 + udp_len
        self.udp_len = udp_len

    def packet(self, i):
        src, sport = tuple_of(i, self.src_base)
        hi, lo = src >> 16, src & 0xFFFF
        ip = self.ip_tmpl
        struct.pack_into("!HI", ip, 10, 0xFFFF - fold(self.ip_sum + hi + lo), src)
        uc = 0xFFFF - fold(self.udp_sum + hi + lo + sport)
        return bytes(ip) + struct.pack("!HHHH", sport, 8080, self.udp_len, uc or 0xFFFF) + self.payload


def entropy(i):
    # a per-flow outer UDP source port in 49152..65535, as a sender hashes it
    return 49152 + ((i * 2654435761) >> 8) % 16384


class Builder:
    def __init__(self, kind, frame_len):
        self.kind = kind
        if kind == "pod":
            self.inner = Inner(frame_len, POD_BASE, bytes([10, 245, 0, 10]))
            self.l2 = GW_MAC + POD_MAC + b"\x08\x00"
            return
        self.inner = Inner(frame_len, REMOTE_BASE, bytes([10, 244, 0, 10]))
        if kind == "vxlan":
            shim = struct.pack("!BBHI", 0x08, 0, 0, VNI << 8)
            self.payload_prefix = shim + GW_MAC + REMOTE_POD_MAC + b"\x08\x00"
            dport = 4789
        elif kind in ("mplsudp", "mplsgre"):
            self.payload_prefix = struct.pack("!I", (LABEL << 12) | (1 << 8) | 64)
            dport = 6635
        else:
            raise SystemExit(f"unknown kind {kind}")
        l2 = NODE_MAC + PEER_MAC + b"\x08\x00"
        if kind == "mplsgre":
            # GRE without checksum, key or sequence number, carrying MPLS unicast
            self.payload_prefix = struct.pack("!HH", 0, 0x8847) + self.payload_prefix
            ip_len = 20 + len(self.payload_prefix) + self.inner.ip_len
            self.outer = l2 + ipv4_header(ip_len, 47, PEER_IP, NODE_IP)
            return
        udp_len = 8 + len(self.payload_prefix) + self.inner.ip_len
        self.outer = l2 + ipv4_header(20 + udp_len, 17, PEER_IP, NODE_IP)
        self.dport = dport
        self.udp_len = udp_len

    def frame(self, i):
        if self.kind == "pod":
            return self.l2 + self.inner.packet(i)
        if self.kind == "mplsgre":
            return self.outer + self.payload_prefix + self.inner.packet(i)
        udp = struct.pack("!HHHH", entropy(i), self.dport, self.udp_len, 0)
        return self.outer + udp + self.payload_prefix + self.inner.packet(i)


def main():
    if len(sys.argv) not in (5, 6):
        raise SystemExit(__doc__)
    out, kind, flows, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    shard, shards = 0, 1
    if len(sys.argv) == 6:
        shard, shards = (int(x) for x in sys.argv[5].split("/"))
    if size not in ("64", "imix") or flows < 1 or not 0 <= shard < shards:
        raise SystemExit(__doc__)
    name = f"in-{kind}-{size}-{flows}" + (f"-s{shard}of{shards}" if shards > 1 else "") + ".pcap"
    path = os.path.join(out, name)
    print(path)
    if os.path.exists(path):
        return
    os.makedirs(out, exist_ok=True)
    ids = range(flows) if flows < shards else range(shard, flows, shards)
    ids = list(ids)
    sizes = [60] if size == "64" else IMIX
    builders = {n: Builder(kind, n) for n in set(sizes)}
    count = len(ids) if size == "64" else -(-max(len(ids), 12) // 12) * 12
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        rec = struct.Struct("<IIII")
        for j in range(count):
            b = builders[sizes[j % len(sizes)]].frame(ids[j % len(ids)])
            f.write(rec.pack(0, j % 1000000, len(b), len(b)))
            f.write(b)
    os.rename(tmp, path)


if __name__ == "__main__":
    main()
