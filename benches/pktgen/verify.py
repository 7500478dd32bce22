#!/usr/bin/python3
"""Checks what vrouter-dp sent for one pass over an input pcap (run.sh VERIFY=1).

usage: verify.py SCENARIO IN_PCAP OUT_PCAP

Every input frame must come out once, in the scenario's encapsulation, with valid
IPv4 header checksums and the same inner 5-tuples as the input:
  io             the input frames, unchanged
  vxlan          Eth 02:aa:00:00:00:11 -> 02:bb:00:00:00:12, IPv4 10.10.0.11 ->
                 10.10.0.12, UDP -> 4789, VNI 100, inner TTL 63
  mplsudp        the same outer addresses, UDP -> 6635, label 100 (bottom of
                 stack), inner TTL 63
  mplsgre        the same outer addresses, GRE (0x8847), label 100, inner TTL 63
  vxlan-decap,   Eth 00:00:5e:00:01:00 -> 02:00:00:00:00:02 (the pod), the inner
  mplsudp-decap, IPv4/UDP packet of the input
  mplsgre-decap
  local          Eth 00:00:5e:00:01:00 -> 02:00:00:00:00:02, TTL 63
Prints "ok: N frames" or the problems found (exit status 1).
"""
import collections
import sys

from scapy.all import GRE, IP, UDP, Ether, PcapReader, raw
from scapy.contrib.mpls import MPLS
from scapy.layers.vxlan import VXLAN

GW = "00:00:5e:00:01:00"
POD2 = "02:00:00:00:00:02"
NODE, PEER = "10.10.0.11", "10.10.0.12"
NODE_MAC, PEER_MAC = "02:aa:00:00:00:11", "02:bb:00:00:00:12"


def tuple5(ip):
    u = ip[UDP]
    return (ip.src, ip.dst, ip.proto, u.sport, u.dport)


def inner_ip(p):
    """The innermost IPv4 packet (scapy decodes VXLAN, MPLS over UDP and GRE)."""
    ips = [lay for lay in p.iterpayloads() if isinstance(lay, IP)]
    return ips[-1] if ips else None


def header_checksum_ok(ip):
    h = bytearray(raw(ip)[: ip.ihl * 4])
    s = sum(int.from_bytes(h[i : i + 2], "big") for i in range(0, len(h), 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def check(sc, p, problems):
    def want(cond, what):
        if not cond:
            problems[what] += 1

    if sc == "io":
        return
    if sc in ("vxlan", "mplsudp", "mplsgre"):
        want(p[Ether].src == NODE_MAC and p[Ether].dst == PEER_MAC, "outer MACs")
        o = p[IP]
        want(o.src == NODE and o.dst == PEER, "outer addresses")
        want(header_checksum_ok(o), "outer IPv4 checksum")
        if sc == "vxlan":
            want(VXLAN in p and p[VXLAN].vni == 100 and p[UDP].dport == 4789, "VXLAN 4789 VNI 100")
            want(p[UDP].sport >= 49152, "outer UDP entropy port")
        elif sc == "mplsudp":
            want(o.proto == 17 and p[UDP].dport == 6635, "UDP 6635")
        else:
            want(o.proto == 47 and GRE in p and p[GRE].proto == 0x8847, "GRE 0x8847")
        if sc != "vxlan":
            want(MPLS in p and p[MPLS].label == 100 and p[MPLS].s == 1, "label 100 bottom of stack")
        i = inner_ip(p)
        want(i is not None and i is not o and i.ttl == 63, "inner TTL 63")
    else:
        want(p[Ether].src == GW and p[Ether].dst == POD2, "pod MACs")
        if sc == "local":
            want(p[IP].ttl == 63, "TTL 63")


def main():
    sc, inp, outp = sys.argv[1:4]
    want_tuples = collections.Counter()
    n_in = 0
    for p in PcapReader(inp):
        n_in += 1
        i = inner_ip(Ether(raw(p)))
        want_tuples[tuple5(i)] += 1
    got = collections.Counter()
    problems = collections.Counter()
    n_out = 0
    for p in PcapReader(outp):
        n_out += 1
        p = Ether(raw(p))
        i = inner_ip(p)
        if i is None or UDP not in i:
            problems["no inner IPv4/UDP"] += 1
            continue
        if not header_checksum_ok(i):
            problems["inner IPv4 checksum"] += 1
        got[tuple5(i)] += 1
        check(sc, p, problems)
    if n_out != n_in:
        problems[f"{n_in} frames in, {n_out} out"] += 1
    if got != want_tuples:
        problems["inner 5-tuples differ from the input's"] += 1
    if problems:
        print("FAIL: " + "; ".join(f"{k} ({v})" for k, v in problems.items()))
        sys.exit(1)
    print(f"ok: {n_out} frames")


if __name__ == "__main__":
    main()
