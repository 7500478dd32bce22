//! Golden vectors: frames built and dissected by scapy (tests/golden/gen_vectors.py,
//! output in tests/golden/vectors.json). The packet layer must read the same fields,
//! re-emit the same bytes, and produce byte-identical encapsulations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod packet_common;

use packet_common::{mac, opt_u64, params_of, s, u, unhex, vectors};
use vrouter_dp::packet::{
    arp, ethernet, extract_ethernet, icmp, ipv4, ipv6, strip_control_word, tcp, udp, ArpRepr,
    Decapsulator, EncapMeta, EtherType, EthernetRepr, FragmentKind, HeapBuf, IcmpRepr, IpPair,
    IpProtocol, Ipv4Repr, Ipv6Repr, L2Header, NdRepr, PacketBuf, TcpRepr, TunnelEncap, TunnelKind,
    UdpRepr, VlanRepr, VrfId,
};

/// Rebuild `frame` from the parsed reprs into a zeroed buffer holding only the
/// application payload, and return it.
fn reemit(frame: &[u8]) -> Vec<u8> {
    let l2 = L2Header::parse(frame).unwrap();
    let eth = EthernetRepr::parse(&ethernet::Frame::new_checked(frame).unwrap()).unwrap();
    let mut out = vec![0u8; frame.len()];
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]))
        .unwrap();
    let mut off = ethernet::HEADER_LEN;
    while off < l2.header_len {
        let tag = VlanRepr::parse(&ethernet::VlanTag::new_checked(&frame[off..]).unwrap()).unwrap();
        tag.emit(&mut ethernet::VlanTag::new_unchecked(&mut out[off..]))
            .unwrap();
        off += ethernet::VLAN_TAG_LEN;
    }
    match l2.ethertype {
        EtherType::ARP => {
            let r = ArpRepr::parse(&arp::Packet::new_checked(&frame[off..]).unwrap()).unwrap();
            r.emit(&mut arp::Packet::new_unchecked(&mut out[off..]))
                .unwrap();
            out[off + arp::PACKET_LEN..].copy_from_slice(&frame[off + arp::PACKET_LEN..]);
        }
        EtherType::IPV4 => {
            let ip = ipv4::Packet::new_checked(&frame[off..]).unwrap();
            let r = Ipv4Repr::parse(&ip).unwrap();
            let l4 = off + ip.header_len();
            let pair = IpPair::V4(r.src_addr, r.dst_addr);
            emit_l4(frame, &mut out, l4, r.protocol, &pair);
            r.emit(&mut ipv4::Packet::new_unchecked(&mut out[off..]))
                .unwrap();
        }
        EtherType::IPV6 => {
            let ip = ipv6::Packet::new_checked(&frame[off..]).unwrap();
            let r = Ipv6Repr::parse(&ip).unwrap();
            let t = ip.transport().unwrap();
            assert_eq!(
                t.offset,
                ipv6::HEADER_LEN,
                "re-emit covers no extension headers"
            );
            let pair = IpPair::V6(r.src_addr, r.dst_addr);
            emit_l4(frame, &mut out, off + t.offset, t.protocol, &pair);
            r.emit(&mut ipv6::Packet::new_unchecked(&mut out[off..]))
                .unwrap();
        }
        other => panic!("unexpected ethertype {other:?}"),
    }
    out
}

fn emit_l4(frame: &[u8], out: &mut [u8], l4: usize, proto: IpProtocol, pair: &IpPair) {
    match proto {
        IpProtocol::UDP => {
            let p = udp::Packet::new_checked(&frame[l4..]).unwrap();
            let r = UdpRepr::parse(&p, pair).unwrap();
            let end = l4 + usize::from(p.len());
            out[l4 + 8..end].copy_from_slice(&frame[l4 + 8..end]);
            r.emit(
                &mut udp::Packet::new_unchecked(&mut out[l4..end]),
                Some(pair),
            )
            .unwrap();
        }
        IpProtocol::TCP => {
            let p = tcp::Packet::new_checked(&frame[l4..]).unwrap();
            let r = TcpRepr::parse(&p, pair).unwrap();
            assert_eq!(p.header_len(), tcp::HEADER_LEN);
            out[l4 + 20..].copy_from_slice(&frame[l4 + 20..]);
            r.emit(&mut tcp::Packet::new_unchecked(&mut out[l4..]), pair)
                .unwrap();
        }
        IpProtocol::ICMP => {
            let p = icmp::Packet::new_checked(&frame[l4..]).unwrap();
            let r = IcmpRepr::parse_v4(&p).unwrap();
            out[l4 + 8..].copy_from_slice(&frame[l4 + 8..]);
            r.emit_v4(&mut icmp::Packet::new_unchecked(&mut out[l4..]))
                .unwrap();
        }
        IpProtocol::ICMPV6 => {
            let IpPair::V6(src, dst) = pair else {
                panic!("ICMPv6 over IPv4")
            };
            let p = icmp::Packet::new_checked(&frame[l4..]).unwrap();
            let r = IcmpRepr::parse_v6(&p, src, dst).unwrap();
            out[l4 + 8..].copy_from_slice(&frame[l4 + 8..]);
            r.emit_v6(&mut icmp::Packet::new_unchecked(&mut out[l4..]), src, dst)
                .unwrap();
        }
        other => panic!("unexpected protocol {other:?}"),
    }
}

#[test]
fn parse_vectors_match_scapy() {
    let v = vectors();
    let list = v["parse"].as_array().unwrap();
    assert!(list.len() >= 12);
    for vec in list {
        let name = s(&vec["name"]);
        let frame = unhex(s(&vec["hex"]));
        let e = &vec["expect"];
        let l2 = L2Header::parse(&frame).unwrap();
        assert_eq!(u64::from(l2.ethertype.0), u(&e["ethertype"]), "{name}");
        assert_eq!(
            l2.outer_vid().map(u64::from),
            opt_u64(&e["outer_vid"]),
            "{name}"
        );
        assert_eq!(
            l2.inner_vid().map(u64::from),
            opt_u64(&e["inner_vid"]),
            "{name}"
        );
        assert_eq!(l2.header_len as u64, u(&e["l3_offset"]), "{name}");
        let l3 = &frame[l2.header_len..];

        if let Some(fam) = e["family"].as_u64() {
            let fi = extract_ethernet(VrfId(7), &frame).unwrap();
            let k = fi.key;
            assert_eq!(k.vrf, VrfId(7));
            assert_eq!(
                k.src_ip(),
                s(&e["src"]).parse::<IpAddr>().unwrap(),
                "{name}"
            );
            assert_eq!(
                k.dst_ip(),
                s(&e["dst"]).parse::<IpAddr>().unwrap(),
                "{name}"
            );
            assert_eq!(u64::from(k.proto), u(&e["proto"]), "{name}");
            assert_eq!(u64::from(k.src_port), u(&e["src_port"]), "{name}");
            assert_eq!(u64::from(k.dst_port), u(&e["dst_port"]), "{name}");
            assert_eq!(u64::from(fi.ttl), u(&e["ttl"]), "{name}");
            assert_eq!(u64::from(fi.tos), u(&e["tos"]), "{name}");
            assert_eq!(u64::from(fi.l3_offset), u(&e["l3_offset"]), "{name}");
            assert_eq!(u64::from(fi.l4_offset), u(&e["l4_offset"]), "{name}");
            let frag = match fi.fragment {
                FragmentKind::None => "none",
                FragmentKind::First => "first",
                FragmentKind::Later => "later",
            };
            assert_eq!(frag, s(&e["fragment"]), "{name}");
            let l4 = &frame[usize::from(fi.l4_offset)..];
            if fam == 4 {
                let ip = ipv4::Packet::new_checked(l3).unwrap();
                assert!(ip.verify_checksum(), "{name}");
                assert_eq!(ip.header_len() as u64, u(&e["ip_header_len"]), "{name}");
                assert_eq!(u64::from(ip.total_len()), u(&e["ip_total_len"]), "{name}");
                assert_eq!(ip.options(), &unhex(s(&e["ip_options"]))[..], "{name}");
                assert_eq!(u64::from(ip.ident()), u(&e["ident"]), "{name}");
                assert_eq!(ip.dont_frag(), e["df"].as_bool().unwrap(), "{name}");
                assert_eq!(ip.more_frags(), e["mf"].as_bool().unwrap(), "{name}");
                assert_eq!(u64::from(ip.frag_offset()), u(&e["frag_offset"]), "{name}");
                assert_eq!(ip.is_fragment(), frag != "none", "{name}");
                if frag == "none" {
                    let pair = IpPair::V4(ip.src_addr(), ip.dst_addr());
                    let l4 = &l4[..ip.payload().len()];
                    match ip.protocol() {
                        IpProtocol::UDP => {
                            assert!(udp::Packet::new_checked(l4).unwrap().verify_checksum(&pair))
                        }
                        IpProtocol::TCP => {
                            assert!(tcp::Packet::new_checked(l4).unwrap().verify_checksum(&pair))
                        }
                        IpProtocol::ICMP => {
                            assert!(icmp::Packet::new_checked(l4).unwrap().verify_checksum_v4())
                        }
                        _ => {}
                    }
                }
            } else {
                let ip = ipv6::Packet::new_checked(l3).unwrap();
                assert_eq!(u64::from(ip.flow_label()), u(&e["flow_label"]), "{name}");
                assert_eq!(u64::from(ip.payload_len()), u(&e["payload_len"]), "{name}");
                let t = ip.transport().unwrap();
                assert_eq!(u64::from(t.protocol.0), u(&e["proto"]), "{name}");
                if frag == "none" {
                    let (src, dst) = (ip.src_addr(), ip.dst_addr());
                    let pair = IpPair::V6(src, dst);
                    let l4 = &l3[t.offset..ip.total_len()];
                    match t.protocol {
                        IpProtocol::UDP => {
                            assert!(udp::Packet::new_checked(l4).unwrap().verify_checksum(&pair))
                        }
                        IpProtocol::TCP => {
                            assert!(tcp::Packet::new_checked(l4).unwrap().verify_checksum(&pair))
                        }
                        IpProtocol::ICMPV6 => {
                            let p = icmp::Packet::new_checked(l4).unwrap();
                            assert!(p.verify_checksum_v6(&src, &dst), "{name}");
                            if let Some(ty) = e["nd_type"].as_u64() {
                                assert_eq!(u64::from(p.msg_type()), ty);
                                let nd = NdRepr::parse(&p, &src, &dst).unwrap();
                                let (target, ll) = match nd {
                                    NdRepr::NeighborSolicit { target, lladdr } => (target, lladdr),
                                    NdRepr::NeighborAdvert {
                                        target,
                                        lladdr,
                                        flags,
                                    } => {
                                        assert_eq!(
                                            flags,
                                            icmp::na_flags::SOLICITED | icmp::na_flags::OVERRIDE
                                        );
                                        (target, lladdr)
                                    }
                                };
                                assert_eq!(target, s(&e["nd_target"]).parse::<Ipv6Addr>().unwrap());
                                assert_eq!(ll, Some(mac(s(&e["nd_lladdr"]))), "{name}");
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if let Some(op) = e["arp_op"].as_u64() {
            let r = ArpRepr::parse(&arp::Packet::new_checked(l3).unwrap()).unwrap();
            assert_eq!(u64::from(r.operation.value()), op);
            assert_eq!(r.source_hardware_addr, mac(s(&e["arp_sha"])));
            assert_eq!(r.target_hardware_addr, mac(s(&e["arp_tha"])));
            assert_eq!(
                r.source_protocol_addr,
                s(&e["arp_spa"]).parse::<Ipv4Addr>().unwrap()
            );
            assert_eq!(
                r.target_protocol_addr,
                s(&e["arp_tpa"]).parse::<Ipv4Addr>().unwrap()
            );
            assert!(extract_ethernet(VrfId(0), &frame).is_err());
        }
        if e["emit"].as_bool() == Some(true) {
            assert_eq!(
                reemit(&frame),
                frame,
                "{name}: emitted bytes differ from scapy's"
            );
        }
    }
}

#[test]
fn encap_vectors_match_scapy_and_decap_restores_inner() {
    let v = vectors();
    let list = v["encap"].as_array().unwrap();
    assert_eq!(list.len(), 12);
    for vec in list {
        let name = s(&vec["name"]);
        let p = params_of(vec);
        let inner = unhex(s(&vec["inner_hex"]));
        let outer = unhex(s(&vec["outer_hex"]));
        let enc = TunnelEncap::new(&p).unwrap();
        let mut buf = HeapBuf::from_bytes(&inner);
        enc.encap(
            &mut buf,
            EncapMeta {
                flow_hash: u(&vec["flow_hash"]) as u32,
                ip_id: u(&vec["ip_id"]) as u16,
            },
        )
        .unwrap();
        assert_eq!(
            buf.data(),
            &outer[..],
            "{name}: encapsulated bytes differ from scapy's"
        );

        // Decapsulate scapy's frame (not ours) and get the inner frame back.
        let (v4, v6) = match p.dst_ip {
            IpAddr::V4(a) => (Some(a), None),
            IpAddr::V6(a) => (None, Some(a)),
        };
        let dec = Decapsulator::new(v4, v6);
        let mut rx = HeapBuf::from_bytes(&outer);
        let d = dec.decap(&mut rx).unwrap();
        assert_eq!(d.kind, p.kind, "{name}");
        assert_eq!(d.outer_src, p.src_ip, "{name}");
        assert_eq!(d.outer_vlan_tci, p.vlan_tci, "{name}");
        match p.kind {
            TunnelKind::Vxlan => {
                assert_eq!(d.vni(), Some(p.vni_or_label));
                assert_eq!(d.inner_is_l2(), Some(true));
            }
            _ => {
                let l = d.label().unwrap();
                assert_eq!(l.label, p.vni_or_label, "{name}");
                assert!(l.bos);
            }
        }
        if p.kind != TunnelKind::MplsOverGre {
            assert_eq!(u64::from(d.udp_src_port), u(&vec["udp_src_port"]), "{name}");
        }
        if p.control_word {
            strip_control_word(&mut rx).unwrap();
        }
        assert_eq!(
            rx.data(),
            &inner[..],
            "{name}: decap did not restore the inner frame"
        );
    }
}
