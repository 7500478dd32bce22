//! Property tests for the packet layer: emit-then-parse returns the same repr,
//! encap-then-decap returns the original frame byte for byte, and incremental checksum
//! updates equal a full recomputation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vrouter_dp::packet::{
    arp, checksum, ethernet, gre, icmp, ipv4, ipv6, mpls, strip_control_word, tcp, udp, vxlan,
    ArpOperation, ArpRepr, Decapsulator, EncapMeta, EtherType, EthernetAddress, EthernetRepr,
    GreRepr, HeapBuf, IcmpRepr, IpPair, IpProtocol, Ipv4Repr, Ipv6Repr, MplsRepr, PacketBuf,
    Payload, TcpRepr, TunnelEncap, TunnelKind, TunnelParams, UdpChecksum, UdpRepr, VlanRepr,
    VxlanRepr,
};

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}
fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

prop_compose! {
    fn ipv4_repr()(src in v4(), dst in v4(), proto in any::<u8>(), payload_len in 0usize..1500,
                   ttl in any::<u8>(), tos in any::<u8>(), ident in any::<u16>(),
                   dont_frag in any::<bool>(), more_frags in any::<bool>(), frag in 0u16..8192)
                   -> Ipv4Repr {
        Ipv4Repr { src_addr: src, dst_addr: dst, protocol: IpProtocol(proto), payload_len, ttl,
                   tos, ident, dont_frag, more_frags, frag_offset: frag * 8 }
    }
}

prop_compose! {
    fn ipv6_repr()(src in v6(), dst in v6(), nh in any::<u8>(), payload_len in 0usize..1500,
                   hop_limit in any::<u8>(), tc in any::<u8>(), fl in 0u32..0x10_0000)
                   -> Ipv6Repr {
        Ipv6Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol(nh), payload_len,
                   hop_limit, traffic_class: tc, flow_label: fl }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ethernet_and_vlan_roundtrip(src in mac(), dst in mac(), et in any::<u16>(),
                                   pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096) {
        let r = EthernetRepr { src_addr: src, dst_addr: dst, ethertype: EtherType(et) };
        let mut b = [0u8; 18];
        r.emit(&mut ethernet::Frame::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&ethernet::Frame::new_checked(&b[..]).unwrap()).unwrap(), r);
        let t = VlanRepr { pcp, dei, vid, ethertype: EtherType(et) };
        t.emit(&mut ethernet::VlanTag::new_unchecked(&mut b[14..])).unwrap();
        prop_assert_eq!(VlanRepr::parse(&ethernet::VlanTag::new_checked(&b[14..]).unwrap()).unwrap(), t);
    }

    #[test]
    fn ipv4_roundtrip(r in ipv4_repr()) {
        let mut b = vec![0u8; ipv4::HEADER_LEN + r.payload_len];
        r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(Ipv4Repr::parse(&ipv4::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv6_roundtrip(r in ipv6_repr()) {
        let mut b = vec![0u8; ipv6::HEADER_LEN + r.payload_len];
        r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&ipv6::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn udp_tcp_icmp_roundtrip(s4 in v4(), d4 in v4(), s6 in v6(), d6 in v6(), six in any::<bool>(),
                              sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(),
                              ack in any::<u32>(), flags in 0u16..0x200, win in any::<u16>(),
                              payload in proptest::collection::vec(any::<u8>(), 0..64),
                              ty in any::<u8>(), code in any::<u8>(), rest in any::<u32>()) {
        let pair = if six { IpPair::V6(s6, d6) } else { IpPair::V4(s4, d4) };
        let ur = UdpRepr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut b = vec![0u8; 8 + payload.len()];
        b[8..].copy_from_slice(&payload);
        ur.emit(&mut udp::Packet::new_unchecked(&mut b[..]), Some(&pair)).unwrap();
        prop_assert_eq!(UdpRepr::parse(&udp::Packet::new_checked(&b[..]).unwrap(), &pair).unwrap(), ur);

        let tr = TcpRepr { src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack, flags,
                           window_len: win, urgent_at: 0 };
        let mut b = vec![0u8; 20 + payload.len()];
        b[20..].copy_from_slice(&payload);
        tr.emit(&mut tcp::Packet::new_unchecked(&mut b[..]), &pair).unwrap();
        prop_assert_eq!(TcpRepr::parse(&tcp::Packet::new_checked(&b[..]).unwrap(), &pair).unwrap(), tr);

        let ir = IcmpRepr { msg_type: ty, code, rest };
        let mut b = vec![0u8; 8 + payload.len()];
        b[8..].copy_from_slice(&payload);
        ir.emit_v4(&mut icmp::Packet::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(IcmpRepr::parse_v4(&icmp::Packet::new_checked(&b[..]).unwrap()).unwrap(), ir);
        ir.emit_v6(&mut icmp::Packet::new_unchecked(&mut b[..]), &s6, &d6).unwrap();
        prop_assert_eq!(IcmpRepr::parse_v6(&icmp::Packet::new_checked(&b[..]).unwrap(), &s6, &d6).unwrap(), ir);
    }

    #[test]
    fn tunnel_headers_roundtrip(vni in 0u32..=vxlan::MAX_VNI, label in 0u32..=mpls::MAX_LABEL,
                                tc in 0u8..8, bos in any::<bool>(), ttl in any::<u8>(),
                                csum in any::<bool>(), key in proptest::option::of(any::<u32>()),
                                seq in proptest::option::of(any::<u32>()), proto in any::<u16>(),
                                payload in proptest::collection::vec(any::<u8>(), 0..32)) {
        let mut b = [0u8; 8];
        let vr = VxlanRepr { vni };
        vr.emit(&mut vxlan::Packet::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(VxlanRepr::parse(&vxlan::Packet::new_checked(&b[..]).unwrap()).unwrap(), vr);

        let mr = MplsRepr { label, tc, bos, ttl };
        mr.emit(&mut mpls::Packet::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(MplsRepr::parse(&mpls::Packet::new_checked(&b[..]).unwrap()).unwrap(), mr);

        let gr = GreRepr { protocol: EtherType(proto), checksum: csum, key, seq };
        let mut g = vec![0u8; gr.buffer_len() + payload.len()];
        let hl = gr.buffer_len();
        g[hl..].copy_from_slice(&payload);
        gr.emit(&mut gre::Packet::new_unchecked(&mut g[..])).unwrap();
        let p = gre::Packet::new_checked(&g[..]).unwrap();
        prop_assert_eq!(p.payload(), &payload[..]);
        prop_assert_eq!(GreRepr::parse(&p).unwrap(), gr);
    }

    #[test]
    fn arp_roundtrip(req in any::<bool>(), sha in mac(), spa in v4(), tha in mac(), tpa in v4()) {
        let r = ArpRepr {
            operation: if req { ArpOperation::Request } else { ArpOperation::Reply },
            source_hardware_addr: sha, source_protocol_addr: spa,
            target_hardware_addr: tha, target_protocol_addr: tpa,
        };
        let mut b = [0u8; 28];
        r.emit(&mut arp::Packet::new_unchecked(&mut b[..])).unwrap();
        prop_assert_eq!(ArpRepr::parse(&arp::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }
}

#[derive(Debug, Clone)]
struct EncapCase {
    params: TunnelParams,
    inner: Vec<u8>,
    meta: EncapMeta,
}

fn inner_frame(payload: Payload) -> impl Strategy<Value = Vec<u8>> {
    // An IP packet (IPv4 or IPv6, TTL >= 2 so the MPLS TTL check passes) or arbitrary
    // bytes, wrapped in Ethernet for L2 payloads.
    let ip = (
        any::<bool>(),
        2u8..=255,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(six, ttl, tos, body)| {
            if six {
                let r = Ipv6Repr {
                    src_addr: Ipv6Addr::LOCALHOST,
                    dst_addr: Ipv6Addr::UNSPECIFIED,
                    next_header: IpProtocol::UDP,
                    payload_len: body.len(),
                    hop_limit: ttl,
                    traffic_class: tos,
                    flow_label: 0,
                };
                let mut b = vec![0u8; 40 + body.len()];
                r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]))
                    .unwrap();
                b[40..].copy_from_slice(&body);
                b
            } else {
                let r = Ipv4Repr {
                    src_addr: Ipv4Addr::new(10, 0, 0, 1),
                    dst_addr: Ipv4Addr::new(10, 0, 0, 2),
                    protocol: IpProtocol::UDP,
                    payload_len: body.len(),
                    ttl,
                    tos,
                    ident: 0,
                    dont_frag: false,
                    more_frags: false,
                    frag_offset: 0,
                };
                let mut b = vec![0u8; 20 + body.len()];
                r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]))
                    .unwrap();
                b[20..].copy_from_slice(&body);
                b
            }
        });
    let raw = proptest::collection::vec(any::<u8>(), 1..200).prop_map(|mut b| {
        // Not an IP version nibble, so the MPLS TTL comes from the tunnel.
        b[0] &= 0x0f;
        b
    });
    let l3 = prop_oneof![3 => ip, 1 => raw];
    match payload {
        Payload::L3 => l3.boxed(),
        Payload::L2 => (mac(), mac(), any::<bool>(), l3, any::<u16>())
            .prop_map(|(s, d, vlan, l3, tci)| {
                let mut f = Vec::new();
                f.extend_from_slice(&d.0);
                f.extend_from_slice(&s.0);
                if vlan {
                    f.extend_from_slice(&[0x81, 0x00]);
                    f.extend_from_slice(&tci.to_be_bytes());
                }
                let et: u16 = match l3[0] >> 4 {
                    4 => 0x0800,
                    6 => 0x86dd,
                    _ => 0x88b5,
                };
                f.extend_from_slice(&et.to_be_bytes());
                f.extend_from_slice(&l3);
                f
            })
            .boxed(),
    }
}

fn encap_case() -> impl Strategy<Value = EncapCase> {
    let kind = prop_oneof![
        Just((TunnelKind::Vxlan, Payload::L2)),
        Just((TunnelKind::MplsOverUdp, Payload::L2)),
        Just((TunnelKind::MplsOverUdp, Payload::L3)),
        Just((TunnelKind::MplsOverGre, Payload::L2)),
        Just((TunnelKind::MplsOverGre, Payload::L3)),
    ];
    let addrs = (any::<bool>(), v4(), v4(), v6(), v6());
    let macs = (mac(), mac());
    let cs = prop_oneof![
        Just(UdpChecksum::Zero),
        Just(UdpChecksum::Software),
        Just(UdpChecksum::Offload)
    ];
    (
        kind,
        addrs,
        macs,
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<u16>()),
        ),
        (0u32..=mpls::MAX_LABEL, 1u8..=255, cs),
        (any::<u32>(), any::<u16>()),
    )
        .prop_flat_map(
            |(
                (kind, payload),
                (six, s4, d4, s6, d6),
                (sm, dm),
                (df, cw, vlan),
                (id, ttl, cs),
                (h, ipid),
            )| {
                let (src_ip, dst_ip) = if six {
                    (IpAddr::V6(s6), IpAddr::V6(d6))
                } else {
                    (IpAddr::V4(s4), IpAddr::V4(d4))
                };
                let params = TunnelParams {
                    kind,
                    payload,
                    src_mac: sm,
                    dst_mac: dm,
                    vlan_tci: vlan,
                    src_ip,
                    dst_ip,
                    vni_or_label: id,
                    // MPLS TTL <= 1 is rejected on receive (as TF does), so keep it >= 2.
                    ttl: ttl.max(2),
                    df,
                    control_word: cw && payload == Payload::L2 && kind != TunnelKind::Vxlan,
                    udp_checksum: cs,
                };
                inner_frame(payload).prop_map(move |inner| EncapCase {
                    params,
                    inner,
                    meta: EncapMeta {
                        flow_hash: h,
                        ip_id: ipid,
                    },
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn encap_then_decap_is_identity(c in encap_case()) {
        let enc = TunnelEncap::new(&c.params).unwrap();
        let mut b = HeapBuf::from_bytes(&c.inner);
        enc.encap(&mut b, c.meta).unwrap();
        prop_assert_eq!(b.len(), c.inner.len() + enc.len());
        let (l4, l6) = match c.params.dst_ip {
            IpAddr::V4(a) => (Some(a), None),
            IpAddr::V6(a) => (None, Some(a)),
        };
        let dec = Decapsulator::new(l4, l6);
        prop_assert_eq!(dec.parse(b.data(), 0), dec.parse_general(b.data(), 0));
        let d = dec.decap(&mut b).unwrap();
        prop_assert_eq!(d.kind, c.params.kind);
        prop_assert_eq!(d.outer_src, c.params.src_ip);
        match d.kind {
            TunnelKind::Vxlan => prop_assert_eq!(d.vni(), Some(c.params.vni_or_label & vxlan::MAX_VNI)),
            _ => prop_assert_eq!(d.label().unwrap().label, c.params.vni_or_label),
        }
        if c.params.control_word {
            strip_control_word(&mut b).unwrap();
        }
        prop_assert_eq!(b.data(), &c.inner[..]);
    }

    #[test]
    fn incremental_checksum_equals_full(r in ipv4_repr(), new_ttl_dec in any::<bool>(),
                                        new_src in v4(), new_dst in v4(), tos in any::<u8>(),
                                        sp in any::<u16>(), dp in any::<u16>(),
                                        payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        // IPv4 header: TTL decrement, source/destination NAT, TOS rewrite.
        let r = Ipv4Repr { protocol: IpProtocol::UDP, payload_len: 8 + payload.len(), ..r };
        let mut b = vec![0u8; 20 + 8 + payload.len()];
        b[28..].copy_from_slice(&payload);
        r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..])).unwrap();
        let pair = IpPair::V4(r.src_addr, r.dst_addr);
        UdpRepr { src_port: 1, dst_port: 2, payload_len: payload.len() }
            .emit(&mut udp::Packet::new_unchecked(&mut b[20..]), Some(&pair)).unwrap();
        {
            let mut ip = ipv4::Packet::new_checked(&mut b[..]).unwrap();
            if new_ttl_dec {
                let _ = ip.decrement_ttl();
            }
            let old_src = ip.rewrite_src_addr(new_src);
            let old_dst = ip.rewrite_dst_addr(new_dst);
            ip.rewrite_tos(tos);
            let inc = ip.checksum();
            ip.fill_checksum();
            prop_assert_eq!(inc, ip.checksum());
            // UDP: the pseudo-header changed with the addresses; ports rewritten too.
            let mut u = udp::Packet::new_checked(&mut b[20..]).unwrap();
            u.update_checksum32(u32::from(old_src), u32::from(new_src));
            u.update_checksum32(u32::from(old_dst), u32::from(new_dst));
            u.rewrite_src_port(sp);
            u.rewrite_dst_port(dp);
            let inc = u.checksum();
            u.fill_checksum(&IpPair::V4(new_src, new_dst));
            let full = u.checksum();
            // 0x0000 and 0xffff are the same one's-complement value; a UDP checksum is
            // never sent as 0, so compare modulo that.
            let norm = |c: u16| if c == 0 { 0xffff } else { c };
            prop_assert_eq!(norm(inc), norm(full));
            prop_assert!(u.verify_checksum(&IpPair::V4(new_src, new_dst)));
        }
    }

    #[test]
    fn incremental_update_bytes_equals_full(data in proptest::collection::vec(any::<u8>(), 2..128),
                                             at in any::<prop::sample::Index>(),
                                             new in any::<[u8; 16]>()) {
        // Rewrite an aligned 16-byte (or shorter) run anywhere in a buffer.
        let mut d = data.clone();
        if d.len() % 2 == 1 { d.push(0); }
        let words = d.len() / 2;
        let start = 2 * at.index(words);
        let end = (start + 16).min(d.len());
        let old_sum = checksum::finish(checksum::data(&d));
        let old = d[start..end].to_vec();
        d[start..end].copy_from_slice(&new[..end - start]);
        let inc = checksum::update_bytes(old_sum, &old, &d[start..end]);
        let full = checksum::finish(checksum::data(&d));
        let norm = |c: u16| if c == 0xffff { 0 } else { c };
        prop_assert_eq!(norm(inc), norm(full));
    }
}
