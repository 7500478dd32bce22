#!/usr/bin/python3
"""Generate the packet-layer golden vectors with scapy.

Writes tests/golden/vectors.json: frames built and dissected by scapy, with the fields
scapy reads from them, so the Rust tests compare the packet layer against an independent
implementation without needing scapy at run time.

Run from the repository root:  /usr/bin/python3 tests/golden/gen_vectors.py
"""

import json
import os

from scapy.all import (
    ARP, Dot1AD, Dot1Q, Ether, GRE, ICMP, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IP, IPOption_Router_Alert, IPOption_NOP,
    IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
    Raw, TCP, UDP, VXLAN, fragment, fragment6,
)
from scapy.contrib.mpls import MPLS

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def hexb(p):
    return bytes(p).hex()


def l4_offset(frame, layer):
    """Offset of `layer` in the built frame, measured by scapy."""
    raw = bytes(frame)
    return len(raw) - len(bytes(frame[layer]))


def parse_vector(name, frame, **expect):
    raw = bytes(frame)
    d = Ether(raw)  # dissect the bytes again: expectations come from scapy's decoder
    e = {"ethertype": None, "outer_vid": None, "inner_vid": None}
    # L2
    cur = d.payload
    vids = []
    ethertype = d.type
    while isinstance(cur, (Dot1Q, Dot1AD)):
        vids.append(cur.vlan)
        ethertype = cur.type
        cur = cur.payload
    e["ethertype"] = ethertype
    e["outer_vid"] = vids[0] if len(vids) > 0 else None
    e["inner_vid"] = vids[1] if len(vids) > 1 else None
    e["l3_offset"] = len(raw) - len(bytes(cur))
    if IP in d:
        ip = d[IP]
        e.update(family=4, src=ip.src, dst=ip.dst, proto=ip.proto, ttl=ip.ttl, tos=ip.tos,
                 ip_header_len=ip.ihl * 4, ip_total_len=ip.len,
                 ip_options=raw[e["l3_offset"] + 20:e["l3_offset"] + ip.ihl * 4].hex(),
                 ident=ip.id, df=bool(ip.flags & 2), mf=bool(ip.flags & 1),
                 frag_offset=ip.frag * 8)
        later = ip.frag != 0
        first = (ip.flags & 1) and ip.frag == 0
    elif IPv6 in d:
        ip = d[IPv6]
        e.update(family=6, src=ip.src, dst=ip.dst, ttl=ip.hlim, tos=ip.tc,
                 flow_label=ip.fl, payload_len=ip.plen)
        fh = d[IPv6ExtHdrFragment] if IPv6ExtHdrFragment in d else None
        later = fh is not None and fh.offset != 0
        first = fh is not None and fh.offset == 0
        # The upper-layer protocol: the last next-header value in the chain.
        layer = ip
        nh = ip.nh
        while layer.payload and hasattr(layer, "nh") and not isinstance(layer.payload, Raw):
            nh = layer.nh
            layer = layer.payload
            if isinstance(layer, IPv6ExtHdrFragment) and layer.offset != 0:
                nh = layer.nh
                break
        if hasattr(layer, "nh") and not later:
            nh = layer.nh
        e["proto"] = nh
    if "family" in e:
        e["fragment"] = "later" if later else ("first" if first else "none")
        sport = dport = 0
        l4 = None
        if not later:
            for layer in (UDP, TCP):
                if layer in d:
                    sport, dport = d[layer].sport, d[layer].dport
                    l4 = layer
            if ICMP in d:
                l4 = ICMP
                if d[ICMP].type in (0, 8):
                    sport = dport = d[ICMP].id
            if ICMPv6EchoRequest in d:
                l4 = ICMPv6EchoRequest
                sport = dport = d[ICMPv6EchoRequest].id
            for nd in (ICMPv6ND_NS, ICMPv6ND_NA):
                if nd in d:
                    l4 = nd
        e["src_port"], e["dst_port"] = sport, dport
        if l4 is not None:
            e["l4_offset"] = l4_offset(d, l4)
        elif later:
            # Later fragment: the fragment data starts after the (extension) headers.
            if IPv6ExtHdrFragment in d:
                e["l4_offset"] = len(raw) - len(bytes(d[IPv6ExtHdrFragment].payload))
            else:
                e["l4_offset"] = e["l3_offset"] + d[IP].ihl * 4
    if ARP in d:
        a = d[ARP]
        e.update(arp_op=a.op, arp_sha=a.hwsrc, arp_spa=a.psrc, arp_tha=a.hwdst, arp_tpa=a.pdst)
    if ICMPv6ND_NS in d:
        e["nd_type"] = 135
        e["nd_target"] = d[ICMPv6ND_NS].tgt
        e["nd_lladdr"] = d[ICMPv6NDOptSrcLLAddr].lladdr if ICMPv6NDOptSrcLLAddr in d else None
    if ICMPv6ND_NA in d:
        e["nd_type"] = 136
        e["nd_target"] = d[ICMPv6ND_NA].tgt
        e["nd_lladdr"] = d[ICMPv6NDOptDstLLAddr].lladdr if ICMPv6NDOptDstLLAddr in d else None
    e.update(expect)
    return {"name": name, "hex": raw.hex(), "expect": e}


def entropy_port(h):
    return 49152 + ((h * 16384) >> 32)


def inner_l2(v6=False, tos=0xb8, ttl=33):
    if v6:
        return (Ether(src=MAC_A, dst=MAC_B) /
                IPv6(src="2001:db8:1::1", dst="2001:db8:1::2", tc=tos, hlim=ttl, fl=7) /
                TCP(sport=40000, dport=443, flags="S", seq=1) / Raw(b"inner-v6"))
    return (Ether(src=MAC_A, dst=MAC_B) /
            IP(src="192.168.1.1", dst="192.168.1.2", tos=tos, ttl=ttl, id=1) /
            UDP(sport=4096, dport=80) / Raw(b"inner payload"))


def encap_vector(name, kind, payload, underlay, inner, flow_hash, ip_id, label_or_vni,
                 control_word=False, vlan_tci=None, udp_checksum="zero", df=True, ttl=64):
    inner_bytes = bytes(inner)
    if payload == "l3":
        inner_bytes = inner_bytes[14:]
    # What the outer header copies from the inner packet.
    ip_start = 14 if payload == "l2" else 0
    first = inner_bytes[ip_start]
    if first >> 4 == 4:
        tos, inner_ttl = inner_bytes[ip_start + 1], inner_bytes[ip_start + 8]
    else:
        tos = ((inner_bytes[ip_start] & 0x0F) << 4) | (inner_bytes[ip_start + 1] >> 4)
        inner_ttl = inner_bytes[ip_start + 7]
    src_mac, dst_mac = "00:11:22:33:44:55", "00:66:77:88:99:aa"
    if underlay == "v4":
        src_ip, dst_ip = "172.16.0.1", "172.16.0.2"
    else:
        src_ip, dst_ip = "fd00::1", "fd00::2"
    proto = 47 if kind == "mpls_o_gre" else 17
    outer = Ether(src=src_mac, dst=dst_mac)
    if vlan_tci is not None:
        outer = outer / Dot1Q(prio=vlan_tci >> 13, id=(vlan_tci >> 12) & 1, vlan=vlan_tci & 0xFFF)
    if underlay == "v4":
        outer = outer / IP(src=src_ip, dst=dst_ip, tos=tos, id=ip_id,
                           flags="DF" if df else 0, ttl=ttl, proto=proto)
    else:
        outer = outer / IPv6(src=src_ip, dst=dst_ip, tc=tos, fl=flow_hash & 0xFFFFF,
                             hlim=ttl, nh=proto)
    sport = entropy_port(flow_hash)
    if kind == "vxlan":
        udp = UDP(sport=sport, dport=4789)
        if udp_checksum == "zero":
            udp.chksum = 0
        outer = outer / udp / VXLAN(flags=0x08, vni=label_or_vni)
    else:
        mpls_ttl = inner_ttl if payload == "l3" else ttl
        lse = MPLS(label=label_or_vni, cos=tos >> 5, s=1, ttl=mpls_ttl)
        if kind == "mpls_o_udp":
            udp = UDP(sport=sport, dport=6635)
            if udp_checksum == "zero":
                udp.chksum = 0
            outer = outer / udp / lse
        else:
            outer = outer / GRE(proto=0x8847) / lse
        if control_word:
            outer = outer / Raw(b"\x00\x00\x00\x00")
    frame = outer / Raw(inner_bytes)
    raw = bytes(frame)
    return {
        "name": name, "kind": kind, "payload": payload, "underlay": underlay,
        "src_mac": src_mac, "dst_mac": dst_mac, "src_ip": src_ip, "dst_ip": dst_ip,
        "vni_or_label": label_or_vni, "ttl": ttl, "df": df, "control_word": control_word,
        "vlan_tci": vlan_tci, "udp_checksum": udp_checksum, "flow_hash": flow_hash,
        "ip_id": ip_id, "udp_src_port": sport,
        "inner_hex": inner_bytes.hex(), "outer_hex": raw.hex(),
    }


def main():
    parse = []
    parse.append(parse_vector(
        "eth_ipv4_udp",
        Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64, tos=0x10) /
        UDP(sport=12345, dport=53) / Raw(b"abcdefgh"), emit=True))
    parse.append(parse_vector(
        "eth_ipv4_tcp",
        Ether(src=MAC_A, dst=MAC_B) / IP(src="10.1.2.3", dst="10.4.5.6", ttl=3, flags="DF", id=99) /
        TCP(sport=33000, dport=22, flags="PA", seq=1000, ack=2000, window=512) / Raw(b"ssh"),
        emit=True))
    parse.append(parse_vector(
        "vlan_ipv4_icmp_echo",
        Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=100, prio=3) /
        IP(src="10.0.0.1", dst="10.0.0.9") / ICMP(type=8, id=0x4242, seq=1) / Raw(b"ping"),
        emit=True))
    parse.append(parse_vector(
        "qinq_ipv6_udp",
        Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=10) / Dot1Q(vlan=20) /
        IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x28, fl=0xabcde, hlim=255) /
        UDP(sport=5353, dport=5353) / Raw(b"mdns"), emit=True))
    parse.append(parse_vector(
        "ipv4_options_udp",
        Ether(src=MAC_A, dst=MAC_B) /
        IP(src="10.0.0.1", dst="224.0.0.22", ttl=1,
           options=[IPOption_Router_Alert(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
                    IPOption_NOP()]) /
        UDP(sport=1000, dport=2000) / Raw(b"opts"), emit=False))
    frags = fragment(Ether(src=MAC_A, dst=MAC_B) /
                     IP(src="10.9.9.1", dst="10.9.9.2", id=0x1111) /
                     UDP(sport=7000, dport=7001) / Raw(b"x" * 100), fragsize=64)
    parse.append(parse_vector("ipv4_fragment_first", frags[0], emit=False))
    parse.append(parse_vector("ipv4_fragment_later", frags[1], emit=False))
    parse.append(parse_vector(
        "ipv6_ext_headers_tcp",
        Ether(src=MAC_A, dst=MAC_B) / IPv6(src="2001:db8::10", dst="2001:db8::20") /
        IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=["2001:db8::30"], segleft=0) /
        IPv6ExtHdrDestOpt() / TCP(sport=51000, dport=8080, flags="S") , emit=False))
    f6 = fragment6(IPv6(src="2001:db8::a", dst="2001:db8::b") / IPv6ExtHdrFragment(id=0x99) /
                   UDP(sport=9000, dport=9001) / Raw(b"y" * 120), 80)
    parse.append(parse_vector("ipv6_fragment_first", Ether(src=MAC_A, dst=MAC_B) / f6[0], emit=False))
    parse.append(parse_vector("ipv6_fragment_later", Ether(src=MAC_A, dst=MAC_B) / f6[1], emit=False))
    parse.append(parse_vector(
        "ipv6_icmpv6_echo",
        Ether(src=MAC_A, dst=MAC_B) / IPv6(src="fe80::1", dst="fe80::2", hlim=64) /
        ICMPv6EchoRequest(id=0x77, seq=3, data=b"hello"), emit=True))
    parse.append(parse_vector(
        "ipv6_nd_ns",
        Ether(src=MAC_A, dst="33:33:ff:00:00:02") /
        IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255) /
        ICMPv6ND_NS(tgt="2001:db8::2") / ICMPv6NDOptSrcLLAddr(lladdr=MAC_A), emit=False))
    parse.append(parse_vector(
        "ipv6_nd_na",
        Ether(src=MAC_B, dst=MAC_A) / IPv6(src="2001:db8::2", dst="fe80::1", hlim=255) /
        ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=MAC_B),
        emit=False))
    parse.append(parse_vector(
        "arp_request",
        Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") /
        ARP(op=1, hwsrc=MAC_A, psrc="10.0.0.1", hwdst="00:00:00:00:00:00", pdst="10.0.0.2"),
        emit=True))

    encap = []
    for underlay in ("v4", "v6"):
        cs = "zero" if underlay == "v4" else "software"
        vlan = None if underlay == "v4" else 0x6064
        encap.append(encap_vector(f"vxlan_{underlay}", "vxlan", "l2", underlay, inner_l2(),
                                  0x1234_5678, 0x0102, 5000, udp_checksum=cs, vlan_tci=vlan))
        encap.append(encap_vector(f"vxlan_{underlay}_inner_v6", "vxlan", "l2", underlay,
                                  inner_l2(v6=True, tos=0x2e), 0xfedc_ba98, 0x0103, 0xABCDEF,
                                  udp_checksum=cs))
        encap.append(encap_vector(f"mpls_o_udp_l3_{underlay}", "mpls_o_udp", "l3", underlay,
                                  inner_l2(), 0x0000_0001, 0x0104, 17, udp_checksum=cs))
        encap.append(encap_vector(f"mpls_o_udp_l2_cw_{underlay}", "mpls_o_udp", "l2", underlay,
                                  inner_l2(tos=0x00), 0x8000_0000, 0x0105, 1 << 19,
                                  control_word=True, udp_checksum=cs))
        encap.append(encap_vector(f"mpls_o_gre_l3_{underlay}", "mpls_o_gre", "l3", underlay,
                                  inner_l2(v6=True), 0xffff_ffff, 0x0106, 1048575,
                                  udp_checksum=cs, vlan_tci=vlan))
        encap.append(encap_vector(f"mpls_o_gre_l2_{underlay}", "mpls_o_gre", "l2", underlay,
                                  inner_l2(tos=0xe0), 0x0bad_cafe, 0x0107, 100, df=False,
                                  udp_checksum=cs))

    out = {"generator": "tests/golden/gen_vectors.py (scapy)", "parse": parse, "encap": encap}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(parse)} parse and {len(encap)} encap vectors to {path}")


if __name__ == "__main__":
    main()
