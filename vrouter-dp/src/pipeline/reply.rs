//! Replies built in place in the received buffer (no allocation): ARP proxy replies,
//! neighbour advertisements, ICMP "fragmentation needed" / ICMPv6 "packet too big",
//! and the header that traps a packet to the agent. Each returns `false`, leaving
//! the packet in an unspecified but valid state, when the buffer is too short or
//! lacks room; the caller then drops it.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::fib::MacAddr;
use crate::packet::{checksum, PacketBuf};

const ETH: usize = 14;

/// Turn the ARP request in `buf` (untagged Ethernet) into the reply "`target` is at
/// `mac`", addressed back to the requester.
pub fn arp_reply<B: PacketBuf>(buf: &mut B, mac: MacAddr) -> bool {
    let d = buf.data_mut();
    let Some(arp) = d.get_mut(ETH..ETH + 28) else {
        return false;
    };
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&arp[8..14]);
    let mut spa = [0u8; 4];
    spa.copy_from_slice(&arp[14..18]);
    let mut tpa = [0u8; 4];
    tpa.copy_from_slice(&arp[24..28]);
    arp[6..8].copy_from_slice(&2u16.to_be_bytes());
    arp[8..14].copy_from_slice(&mac.0);
    arp[14..18].copy_from_slice(&tpa);
    arp[18..24].copy_from_slice(&sha);
    arp[24..28].copy_from_slice(&spa);
    d[0..6].copy_from_slice(&sha);
    d[6..12].copy_from_slice(&mac.0);
    true
}

/// Set the length of `buf` to exactly `len` bytes (trimming or appending).
fn set_len<B: PacketBuf>(buf: &mut B, len: usize) -> bool {
    let cur = buf.len();
    if len <= cur {
        buf.trim(cur - len).is_ok()
    } else {
        buf.append(len - cur).is_ok()
    }
}

/// Replace the neighbour solicitation in `buf` with a solicited neighbour
/// advertisement "`target` is at `mac`" from `target` to the soliciting node.
pub fn nd_advert<B: PacketBuf>(buf: &mut B, target: Ipv6Addr, mac: MacAddr) -> bool {
    let (src_mac, src_ip) = {
        let d = buf.data();
        let (Some(m), Some(s)) = (d.get(6..12), d.get(ETH + 8..ETH + 24)) else {
            return false;
        };
        let mut mm = [0u8; 6];
        mm.copy_from_slice(m);
        let mut ss = [0u8; 16];
        ss.copy_from_slice(s);
        (mm, Ipv6Addr::from(ss))
    };
    // Answer DAD probes (unspecified source) to all-nodes.
    let dst_ip = if src_ip.is_unspecified() {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
    } else {
        src_ip
    };
    const ICMP_LEN: usize = 24 + 8;
    if !set_len(buf, ETH + 40 + ICMP_LEN) {
        return false;
    }
    let d = buf.data_mut();
    d[0..6].copy_from_slice(&src_mac);
    d[6..12].copy_from_slice(&mac.0);
    d[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut d[ETH..ETH + 40];
    ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    ip[4..6].copy_from_slice(&(ICMP_LEN as u16).to_be_bytes());
    ip[6] = 58;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&target.octets());
    ip[24..40].copy_from_slice(&dst_ip.octets());
    let icmp = &mut d[ETH + 40..ETH + 40 + ICMP_LEN];
    icmp[0] = 136;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    // Router | Solicited | Override; not Solicited for a DAD probe (RFC 4861
    // 7.2.4: such an answer goes to all-nodes with the flag clear).
    let flags: u32 = if src_ip.is_unspecified() {
        0xa000_0000
    } else {
        0xe000_0000
    };
    icmp[4..8].copy_from_slice(&flags.to_be_bytes());
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = 2;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac.0);
    let sum = checksum::combine(&[
        checksum::pseudo_header_v6(&target, &dst_ip, 58, ICMP_LEN as u32),
        checksum::data(icmp),
    ]);
    icmp[2..4].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    true
}

/// Replace the IPv4 packet in `buf` (after an untagged Ethernet header) with an
/// ICMP "fragmentation needed" (type 3 code 4) carrying `mtu`, sent from `from` back
/// to the packet's source with `router_mac` as the Ethernet source.
pub fn icmp4_frag_needed<B: PacketBuf>(
    buf: &mut B,
    mtu: u16,
    from: Ipv4Addr,
    router_mac: MacAddr,
) -> bool {
    let mut quote = [0u8; 68];
    let (q, src_mac, src_ip) = {
        let d = buf.data();
        let Some(ip) = d.get(ETH..) else { return false };
        let Some(&vihl) = ip.first() else {
            return false;
        };
        let ihl = usize::from(vihl & 0xf) * 4;
        let q = (ihl + 8).min(ip.len());
        if ihl < 20 || q < 20 {
            return false;
        }
        quote[..q].copy_from_slice(&ip[..q]);
        let mut m = [0u8; 6];
        m.copy_from_slice(&d[6..12]);
        let s = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        (q, m, s)
    };
    let total = 20 + 8 + q;
    if !set_len(buf, ETH + total) {
        return false;
    }
    let d = buf.data_mut();
    d[0..6].copy_from_slice(&src_mac);
    d[6..12].copy_from_slice(&router_mac.0);
    d[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut d[ETH..ETH + 20];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&from.octets());
    ip[16..20].copy_from_slice(&src_ip.octets());
    let c = checksum::finish(checksum::data(ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let icmp = &mut d[ETH + 20..ETH + total];
    icmp[0] = 3;
    icmp[1] = 4;
    icmp[2..6].fill(0);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..].copy_from_slice(&quote[..q]);
    let c = checksum::finish(checksum::data(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Replace the IPv6 packet in `buf` with an ICMPv6 "packet too big" carrying `mtu`
/// from `from` to the packet's source, quoting as much of it as fits in 1280 bytes.
pub fn icmp6_too_big<B: PacketBuf>(
    buf: &mut B,
    mtu: u32,
    from: Ipv6Addr,
    router_mac: MacAddr,
) -> bool {
    const MAX_QUOTE: usize = 1280 - 48;
    let (q, src_mac, src_ip) = {
        let d = buf.data();
        let Some(ip) = d.get(ETH..) else { return false };
        if ip.len() < 40 {
            return false;
        }
        let mut m = [0u8; 6];
        m.copy_from_slice(&d[6..12]);
        let mut s = [0u8; 16];
        s.copy_from_slice(&ip[8..24]);
        (ip.len().min(MAX_QUOTE), m, Ipv6Addr::from(s))
    };
    let icmp_len = 8 + q;
    let new_len = ETH + 40 + icmp_len;
    if new_len > buf.len() && !set_len(buf, new_len) {
        return false;
    }
    // Move the quoted packet behind the new headers, then fix the length.
    buf.data_mut().copy_within(ETH..ETH + q, ETH + 48);
    if !set_len(buf, new_len) {
        return false;
    }
    let d = buf.data_mut();
    d[0..6].copy_from_slice(&src_mac);
    d[6..12].copy_from_slice(&router_mac.0);
    d[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut d[ETH..ETH + 40];
    ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    ip[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
    ip[6] = 58;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&from.octets());
    ip[24..40].copy_from_slice(&src_ip.octets());
    let icmp = &mut d[ETH + 40..new_len];
    icmp[0] = 2;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    let sum = checksum::combine(&[
        checksum::pseudo_header_v6(&from, &src_ip, 58, icmp_len as u32),
        checksum::data(icmp),
    ]);
    icmp[2..4].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    true
}

/// Agent trap codes (TF's `AGENT_TRAP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Trap {
    /// ARP for one of the node's addresses.
    Arp = 2,
    /// DHCP.
    L3Protocols = 7,
    /// Neighbour solicitation for one of the node's addresses.
    L2Protocols = 3,
}

/// Length of the agent header (TF's packed `agent_hdr`).
pub const AGENT_HDR_LEN: usize = 30;
/// EtherType of frames on the agent packet interface.
pub const AGENT_ETHERTYPE: u16 = 0x88b5;

/// Prepend the Ethernet header of the agent interface and TF's 30-byte `agent_hdr`
/// (`ifindex`, `vrf`, `cmd`, then zeroes) to the frame in `buf`.
pub fn agent_trap<B: PacketBuf>(
    buf: &mut B,
    agent_mac: MacAddr,
    router_mac: MacAddr,
    ifindex: u16,
    vrf: u16,
    cmd: Trap,
) -> bool {
    let Ok(h) = buf.prepend(ETH + AGENT_HDR_LEN) else {
        return false;
    };
    h.fill(0);
    h[0..6].copy_from_slice(&agent_mac.0);
    h[6..12].copy_from_slice(&router_mac.0);
    h[12..14].copy_from_slice(&AGENT_ETHERTYPE.to_be_bytes());
    h[14..16].copy_from_slice(&ifindex.to_be_bytes());
    h[16..18].copy_from_slice(&vrf.to_be_bytes());
    h[18..20].copy_from_slice(&(cmd as u16).to_be_bytes());
    true
}
