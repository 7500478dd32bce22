//! A bounded, deterministic fuzz harness that runs on stable Rust in CI: random and
//! mutated-golden inputs go through every parser, flow-key extraction and decapsulation.
//! The property is that nothing panics (no out-of-bounds access, no arithmetic overflow
//! in debug builds) and that everything returns. `FUZZ_ITERATIONS` overrides the count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod packet_common;

use std::net::{Ipv4Addr, Ipv6Addr};

use packet_common::{s, unhex, vectors};
use vrouter_dp::packet::{
    arp, ethernet, extract_ethernet, extract_ip, extract_ipv4, gre, icmp, ipv4, ipv6, mpls, ol,
    strip_control_word, tcp, udp, vxlan, ArpRepr, Decapsulator, GreRepr, HeapBuf, IcmpRepr, IpPair,
    Ipv4Repr, Ipv6Repr, L2Header, LabelStack, MplsRepr, NdRepr, PacketBuf, TcpRepr, UdpRepr, VrfId,
    VxlanRepr,
};

/// xorshift64*: deterministic, seeded, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let v = vectors();
    let mut c = Vec::new();
    for p in v["parse"].as_array().unwrap() {
        c.push(unhex(s(&p["hex"])));
    }
    for e in v["encap"].as_array().unwrap() {
        c.push(unhex(s(&e["outer_hex"])));
        c.push(unhex(s(&e["inner_hex"])));
    }
    c
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
            2 if !b.is_empty() => {
                let n = rng.below(b.len());
                b.truncate(n);
            }
            3 => {
                for _ in 0..rng.below(16) {
                    b.push(rng.byte());
                }
            }
            4 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.insert(i, rng.byte());
            }
            5 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.remove(i);
            }
            _ if b.len() > 2 => {
                // Interesting values at interesting places: lengths and flags.
                let i = rng.below(b.len() - 1);
                let v: u16 = [0, 1, 0xff, 0xffff, 0x8000, 5, 14, 20, 40][rng.below(9)];
                b[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    b
}

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(160);
    let mut b: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
    // Steer some inputs past the first checks.
    if b.len() > 15 && rng.below(2) == 0 {
        let et: [u16; 5] = [0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806];
        b[12..14].copy_from_slice(&et[rng.below(5)].to_be_bytes());
        b[14] = if rng.below(2) == 0 { 0x45 } else { 0x60 };
    }
    b
}

fn exercise_views(b: &[u8]) {
    let pair4 = IpPair::V4(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    if let Ok(f) = ethernet::Frame::new_checked(b) {
        let _ = (f.src_addr(), f.dst_addr(), f.ethertype(), f.payload().len());
    }
    if let Ok(t) = ethernet::VlanTag::new_checked(b) {
        let _ = (t.pcp(), t.dei(), t.vid(), t.ethertype(), t.payload().len());
    }
    if let Ok(p) = ipv4::Packet::new_checked(b) {
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
            p.frag_offset(),
        );
        let _ = Ipv4Repr::parse(&p);
    }
    if let Ok(p) = ipv6::Packet::new_checked(b) {
        let _ = (
            p.payload().len(),
            p.flow_label(),
            p.traffic_class(),
            p.transport(),
        );
        let _ = Ipv6Repr::parse(&p);
    }
    if let Ok(p) = udp::Packet::new_checked(b) {
        let _ = (p.payload().len(), p.verify_checksum(&pair4));
        let _ = UdpRepr::parse(&p, &pair4);
    }
    if let Ok(p) = tcp::Packet::new_checked(b) {
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.flags(),
            p.verify_checksum(&pair4),
        );
        let _ = TcpRepr::parse(&p, &pair4);
    }
    if let Ok(p) = icmp::Packet::new_checked(b) {
        let _ = (p.body().len(), p.nd_target(), p.nd_lladdr(), p.echo_ident());
        let _ = IcmpRepr::parse_v4(&p);
        let _ = NdRepr::parse(&p, &s6, &d6);
    }
    if let Ok(p) = gre::Packet::new_checked(b) {
        let _ = (
            p.key(),
            p.seq(),
            p.checksum(),
            p.payload().len(),
            p.verify_checksum(),
        );
        let _ = GreRepr::parse(&p);
    }
    if let Ok(p) = vxlan::Packet::new_checked(b) {
        let _ = (p.vni(), p.payload().len());
        let _ = VxlanRepr::parse(&p);
    }
    if let Ok(p) = mpls::Packet::new_checked(b) {
        let _ = (p.label(), p.payload().len());
        let _ = MplsRepr::parse(&p);
    }
    if let Ok(p) = arp::Packet::new_checked(b) {
        let _ = ArpRepr::parse(&p);
    }
    let _ = LabelStack::parse(b);
    let _ = mpls::has_control_word(b);
}

fn run_one(dec: &Decapsulator, b: &[u8], flags: u64) -> bool {
    let _ = L2Header::parse(b);
    let flow = extract_ethernet(VrfId(1), b);
    if b.len() >= 14 && b[12..14] == [0x08, 0x00] {
        // The untagged-IPv4 fast path must agree with the general IPv4 path.
        assert_eq!(flow, extract_ipv4(VrfId(1), &b[14..], 14));
    }
    let _ = extract_ip(VrfId(1), b);
    for off in [14usize, 18, 22] {
        if let Some(rest) = b.get(off..) {
            let _ = extract_ip(VrfId(1), rest);
            exercise_views(rest);
        }
    }
    exercise_views(b);
    // The decap fast path must agree with the general header walk.
    assert_eq!(dec.parse(b, flags), dec.parse_general(b, flags));
    let mut buf = HeapBuf::from_bytes(b);
    match dec.decap(&mut buf) {
        Ok(d) => {
            assert_eq!(buf.len(), d.inner_len);
            let inner = buf.data().to_vec();
            let _ = extract_ethernet(VrfId(2), &inner);
            let _ = extract_ip(VrfId(2), &inner);
            let _ = strip_control_word(&mut buf);
            true
        }
        Err(_) => {
            assert_eq!(
                buf.data(),
                b,
                "a failed decap must leave the buffer unchanged"
            );
            false
        }
    }
}

#[test]
fn fuzz_parse_flow_key_and_decap() {
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let corpus = corpus();
    let dec = Decapsulator::new(
        Some(Ipv4Addr::new(172, 16, 0, 2)),
        Some("fd00::2".parse().unwrap()),
    );
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let flag_choices = [
        0,
        ol::RX_IP_CKSUM_GOOD,
        ol::RX_IP_CKSUM_BAD,
        ol::RX_L4_CKSUM_BAD,
    ];
    let mut decapped = 0usize;
    for _ in 0..iterations {
        let input = if rng.below(3) == 0 {
            random_input(&mut rng)
        } else {
            let base = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, base)
        };
        let flags = flag_choices[rng.below(flag_choices.len())];
        if run_one(&dec, &input, flags) {
            decapped += 1;
        }
    }
    // Unmutated corpus entries still decapsulate.
    for c in &corpus {
        run_one(&dec, c, 0);
    }
    // The harness must reach the deep paths, not only the early rejections.
    assert!(
        decapped * 100 > iterations,
        "only {decapped} of {iterations} inputs decapsulated"
    );
}
