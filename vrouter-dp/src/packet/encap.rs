//! Tunnel encapsulation into a buffer's headroom and decapsulation by stripping.
//!
//! Encapsulation uses a precomputed rewrite: [`TunnelEncap::new`] builds the whole outer
//! header (Ethernet, optional VLAN tag, IPv4 or IPv6, UDP or GRE, VXLAN or MPLS) once from
//! [`TunnelParams`]; per packet [`TunnelEncap::encap`] prepends it, copies it in one go and
//! patches only what depends on the packet: lengths, the IPv4 id and header checksum
//! (from a precomputed partial sum), the DSCP/ECN copied from the inner header, the outer
//! UDP source port (flow entropy), the IPv6 flow label and the MPLS TC/TTL.
//!
//! Wire formats follow Tungsten Fabric's vRouter: VXLAN on UDP 4789 with the I flag
//! (RFC 7348); MPLSoUDP on UDP 6635 (RFC 7510; 51234 also accepted on receive); MPLSoGRE
//! with a 4-byte GRE header, protocol 0x8847 (GRE checksum/key/sequence tolerated on
//! receive); one MPLS label with S=1; an optional all-zero control word before L2
//! payloads. The outer IPv4 UDP checksum is 0; over IPv6 it is computed in software,
//! left to the NIC, or sent as zero (RFC 6935/6936), as [`UdpChecksum`] says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::buf::{ol, PacketBuf};
use super::checksum;
use super::error::{Error, Result};
use super::ethernet::{self, EtherType, EthernetAddress};
use super::flow::entropy_port;
use super::gre;
use super::ip::IpProtocol;
use super::ipv4;
use super::ipv6;
use super::mpls::{self, LabelStack, MplsRepr};
use super::udp;
use super::vxlan;
use super::{rd16, wr16};

/// The encapsulation of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN over UDP 4789 (L2 payload).
    Vxlan,
    /// MPLS over UDP 6635.
    MplsOverUdp,
    /// MPLS over GRE.
    MplsOverGre,
}

impl TunnelKind {
    /// A stable name for counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::MplsOverUdp => "mpls_o_udp",
            Self::MplsOverGre => "mpls_o_gre",
        }
    }
}

/// What the tunnel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// An Ethernet frame (VXLAN, or MPLS for EVPN-style bridging).
    L2,
    /// An IP packet (MPLS only).
    L3,
}

/// How the outer UDP checksum is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdpChecksum {
    /// Send 0: what TF sends over an IPv4 underlay; over IPv6 only where zero-checksum
    /// UDP tunnels are allowed (RFC 6935/6936).
    Zero,
    /// Compute it in software over the whole packet.
    Software,
    /// Write the pseudo-header sum and set `ol::TX_UDP_CKSUM` plus the header lengths so
    /// the NIC completes it.
    Offload,
}

/// The parameters of a tunnel next-hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelParams {
    /// Encapsulation.
    pub kind: TunnelKind,
    /// Payload carried (VXLAN requires [`Payload::L2`]).
    pub payload: Payload,
    /// Outer source MAC (this node's fabric MAC).
    pub src_mac: EthernetAddress,
    /// Outer destination MAC (the underlay next hop).
    pub dst_mac: EthernetAddress,
    /// Outer 802.1Q tag control information, for a VLAN fabric.
    pub vlan_tci: Option<u16>,
    /// Outer source address (this node's underlay address).
    pub src_ip: IpAddr,
    /// Outer destination address (the remote endpoint); same family as `src_ip`.
    pub dst_ip: IpAddr,
    /// VNI (24 bits) for VXLAN, label (20 bits) for MPLS.
    pub vni_or_label: u32,
    /// Outer TTL / hop limit (TF uses 64); also the MPLS TTL for L2 payloads.
    pub ttl: u8,
    /// Set the IPv4 don't-fragment flag.
    pub df: bool,
    /// Put the 4-byte control word between the label and an L2 payload.
    pub control_word: bool,
    /// Outer UDP checksum for an IPv6 underlay (an IPv4 underlay honours
    /// [`UdpChecksum::Offload`] and [`UdpChecksum::Software`] too).
    pub udp_checksum: UdpChecksum,
}

/// Longest outer header: Ethernet + VLAN + IPv6 + UDP + VXLAN (78), or + MPLS + control word.
pub const MAX_ENCAP_LEN: usize = 80;

/// A precomputed outer header for one tunnel next-hop.
#[derive(Debug, Clone)]
pub struct TunnelEncap {
    hdr: [u8; MAX_ENCAP_LEN],
    len: usize,
    l2_len: usize,
    params: TunnelParams,
    v6: bool,
    /// IPv4: partial sum of the header with TOS, length, id and checksum zero.
    /// IPv6: partial sum of the UDP pseudo-header without the length.
    base_sum: u16,
    /// Offset of the MPLS entry in `hdr` (0 when none).
    mpls_off: usize,
}

/// Per-packet encapsulation inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncapMeta {
    /// The inner flow hash (gives the UDP source port and the IPv6 flow label).
    pub flow_hash: u32,
    /// The outer IPv4 identification (the caller keeps a counter; ignored for IPv6).
    pub ip_id: u16,
}

/// TOS/traffic class and TTL of the IP packet at the start of `p`, if it is one.
#[inline]
fn ip_tos_ttl(p: &[u8]) -> Option<(u8, u8)> {
    match p.first()? >> 4 {
        4 if p.len() >= ipv4::HEADER_LEN => Some((p[1], p[8])),
        6 if p.len() >= ipv6::HEADER_LEN => Some((((rd16(p, 0) >> 4) & 0xff) as u8, p[7])),
        _ => None,
    }
}

/// TOS and TTL of the inner packet (through an Ethernet header and VLAN tags for L2).
#[inline(always)]
fn inner_tos_ttl(inner: &[u8], payload: Payload) -> Option<(u8, u8)> {
    match payload {
        Payload::L3 => ip_tos_ttl(inner),
        Payload::L2 => {
            // Untagged IPv4, read at constant offsets.
            if let Some(h) = inner.get(..ethernet::HEADER_LEN + ipv4::HEADER_LEN) {
                if h[12] == 0x08 && h[13] == 0x00 && h[14] >> 4 == 4 {
                    return Some((h[15], h[22]));
                }
            }
            let mut off = ethernet::HEADER_LEN;
            let mut et = EtherType(rd16(inner.get(..off)?, 12));
            for _ in 0..2 {
                if !et.is_vlan_tpid() {
                    break;
                }
                et = EtherType(rd16(inner.get(off..off + 4)?, 2));
                off += 4;
            }
            match et {
                EtherType::IPV4 | EtherType::IPV6 => ip_tos_ttl(inner.get(off..)?),
                _ => None,
            }
        }
    }
}

/// Copy the first `dst.len()` bytes of `src` into `dst`. Every outer-header length is
/// listed so the copy compiles to fixed-size moves instead of a `memcpy` call.
#[inline(always)]
fn copy_header(dst: &mut [u8], src: &[u8; MAX_ENCAP_LEN]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match dst.len() {
                $($n => dst.copy_from_slice(&src[..$n]),)*
                n => {
                    let m = n.min(MAX_ENCAP_LEN);
                    dst[..m].copy_from_slice(&src[..m]);
                }
            }
        };
    }
    // {14, 18} Ethernet + {20, 40} IP + {8, 12, 16} UDP/GRE + VXLAN/MPLS (+ control word).
    fixed!(42 46 50 54 62 66 70 74);
}

impl TunnelEncap {
    /// Build the outer header. [`Error::BadTunnelParams`] when the address families differ,
    /// VXLAN is asked for an L3 payload, or a control word for an L3 payload;
    /// [`Error::BadField`] for a VNI/label/VLAN out of range.
    pub fn new(p: &TunnelParams) -> Result<Self> {
        let mut hdr = [0u8; MAX_ENCAP_LEN];
        let v6 = match (p.src_ip, p.dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => return Err(Error::BadTunnelParams),
        };
        match (p.kind, p.payload) {
            (TunnelKind::Vxlan, Payload::L3) => return Err(Error::BadTunnelParams),
            (TunnelKind::Vxlan, Payload::L2) if p.control_word => {
                return Err(Error::BadTunnelParams)
            }
            (_, Payload::L3) if p.control_word => return Err(Error::BadTunnelParams),
            (TunnelKind::Vxlan, _) if p.vni_or_label > vxlan::MAX_VNI => {
                return Err(Error::BadField)
            }
            (TunnelKind::MplsOverUdp | TunnelKind::MplsOverGre, _)
                if p.vni_or_label > mpls::MAX_LABEL =>
            {
                return Err(Error::BadField)
            }
            _ => {}
        }
        let ip_et = if v6 { EtherType::IPV6 } else { EtherType::IPV4 };
        // Ethernet (+ VLAN).
        hdr[0..6].copy_from_slice(&p.dst_mac.0);
        hdr[6..12].copy_from_slice(&p.src_mac.0);
        let mut off = ethernet::HEADER_LEN;
        if let Some(tci) = p.vlan_tci {
            wr16(&mut hdr, 12, EtherType::VLAN.0);
            wr16(&mut hdr, 14, tci);
            wr16(&mut hdr, 16, ip_et.0);
            off += ethernet::VLAN_TAG_LEN;
        } else {
            wr16(&mut hdr, 12, ip_et.0);
        }
        let l2_len = off;
        let l3_len = if v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        };
        let proto = match p.kind {
            TunnelKind::MplsOverGre => IpProtocol::GRE,
            _ => IpProtocol::UDP,
        };
        // IP, with zero length / TOS / id / checksum (patched per packet).
        match (p.src_ip, p.dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut ip = ipv4::Packet::new_unchecked(&mut hdr[off..off + l3_len]);
                ip.set_header_len(ipv4::HEADER_LEN);
                ip.set_flags_frag(p.df, false, 0);
                ip.set_ttl(p.ttl);
                ip.set_protocol(proto);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ip = ipv6::Packet::new_unchecked(&mut hdr[off..off + l3_len]);
                ip.set_version_tc_flow(0, 0);
                ip.set_next_header(proto);
                ip.set_hop_limit(p.ttl);
                ip.set_src_addr(&s);
                ip.set_dst_addr(&d);
            }
            _ => return Err(Error::BadTunnelParams),
        }
        // IPv4: the header sum with per-packet fields zero. IPv6: the UDP pseudo-header
        // sum without the length.
        let base_sum = match (p.src_ip, p.dst_ip) {
            (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(&s, &d, 17, 0),
            _ => checksum::data(&hdr[off..off + l3_len]),
        };
        off += l3_len;
        // UDP or GRE.
        let mut mpls_off = 0;
        match p.kind {
            TunnelKind::Vxlan | TunnelKind::MplsOverUdp => {
                let port = if p.kind == TunnelKind::Vxlan {
                    vxlan::UDP_PORT
                } else {
                    mpls::UDP_PORT
                };
                let mut u = udp::Packet::new_unchecked(&mut hdr[off..off + udp::HEADER_LEN]);
                u.set_dst_port(port);
                off += udp::HEADER_LEN;
            }
            TunnelKind::MplsOverGre => {
                let mut g = gre::Packet::new_unchecked(&mut hdr[off..off + gre::BASE_LEN]);
                g.set_flags(0);
                g.set_protocol(EtherType::MPLS);
                off += gre::BASE_LEN;
            }
        }
        // VXLAN or MPLS (+ control word).
        match p.kind {
            TunnelKind::Vxlan => {
                vxlan::Packet::new_unchecked(&mut hdr[off..off + vxlan::HEADER_LEN])
                    .set_vni(p.vni_or_label);
                off += vxlan::HEADER_LEN;
            }
            TunnelKind::MplsOverUdp | TunnelKind::MplsOverGre => {
                mpls_off = off;
                let e = MplsRepr {
                    label: p.vni_or_label,
                    tc: 0,
                    bos: true,
                    ttl: p.ttl,
                };
                mpls::Packet::new_unchecked(&mut hdr[off..off + mpls::LSE_LEN]).set_word(e.word());
                off += mpls::LSE_LEN;
                if p.control_word {
                    hdr[off..off + mpls::CONTROL_WORD_LEN].fill(0);
                    off += mpls::CONTROL_WORD_LEN;
                }
            }
        }
        Ok(Self {
            hdr,
            len: off,
            l2_len,
            params: *p,
            v6,
            base_sum,
            mpls_off,
        })
    }

    /// Bytes prepended per packet.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }
    /// The precomputed outer header (lengths, checksums and per-packet fields zero).
    pub fn header(&self) -> &[u8] {
        &self.hdr[..self.len]
    }
    /// The parameters it was built from.
    pub fn params(&self) -> &TunnelParams {
        &self.params
    }

    /// Encapsulate the packet in `buf` (an Ethernet frame for [`Payload::L2`], an IP
    /// packet for [`Payload::L3`]) into its headroom. Errors, with `buf` unchanged:
    /// [`Error::NoHeadroom`], [`Error::BadTotalLength`] (the result would exceed 65535
    /// bytes of IP).
    #[inline]
    pub fn encap<B: PacketBuf + ?Sized>(&self, buf: &mut B, meta: EncapMeta) -> Result<()> {
        // Specialise on the outer L2/L3 sizes so every patched offset is a constant.
        match (self.l2_len, self.v6) {
            (14, false) => self.encap_at::<B, 14, 20, 42>(buf, meta),
            (18, false) => self.encap_at::<B, 18, 20, 46>(buf, meta),
            (14, true) => self.encap_at::<B, 14, 40, 62>(buf, meta),
            _ => self.encap_at::<B, 18, 40, 66>(buf, meta),
        }
    }

    /// [`Self::encap`] for an outer header of `L2` + `L3` bytes; `FRONT` is `L2 + L3 + 8`,
    /// the part every encapsulation has (UDP, or GRE plus one label).
    #[inline(always)]
    fn encap_at<B: PacketBuf + ?Sized, const L2: usize, const L3: usize, const FRONT: usize>(
        &self,
        buf: &mut B,
        meta: EncapMeta,
    ) -> Result<()> {
        let inner_len = buf.len();
        let (tos, inner_ttl) = match inner_tos_ttl(buf.data(), self.params.payload) {
            Some(v) => v,
            None => (0, self.params.ttl),
        };
        let ip_len = self.len - L2 + inner_len;
        let ip_len16 = u16::try_from(ip_len).map_err(|_| Error::BadTotalLength)?;
        let l4_len = (ip_len - L3) as u16;
        let h = buf.prepend(self.len).map_err(|_| Error::NoHeadroom)?;
        copy_header(h, &self.hdr);
        if self.mpls_off != 0 {
            // TC from the DSCP class selector; TTL from the inner IP packet for L3.
            if let Some(e) = h.get_mut(self.mpls_off + 2..self.mpls_off + 4) {
                e[0] = (e[0] & 0xf1) | ((tos >> 5) << 1);
                e[1] = match self.params.payload {
                    Payload::L3 => inner_ttl,
                    Payload::L2 => self.params.ttl,
                };
            }
        }
        let Some(front) = h
            .get_mut(..FRONT)
            .and_then(|f| <&mut [u8; FRONT]>::try_from(f).ok())
        else {
            // Unreachable: every outer header is at least FRONT bytes long.
            let _ = buf.adj(self.len);
            return Err(Error::BadTunnelParams);
        };
        if L3 == ipv6::HEADER_LEN {
            let w = (6u32 << 28) | (u32::from(tos) << 20) | (meta.flow_hash & 0x000f_ffff);
            front[L2..L2 + 4].copy_from_slice(&w.to_be_bytes());
            front[L2 + 4..L2 + 6].copy_from_slice(&l4_len.to_be_bytes());
        } else {
            front[L2 + 1] = tos;
            front[L2 + 2..L2 + 4].copy_from_slice(&ip_len16.to_be_bytes());
            front[L2 + 4..L2 + 6].copy_from_slice(&meta.ip_id.to_be_bytes());
            let s = u64::from(self.base_sum)
                + u64::from(tos)
                + u64::from(ip_len16)
                + u64::from(meta.ip_id);
            front[L2 + 10..L2 + 12].copy_from_slice(&(!checksum::fold(s)).to_be_bytes());
        }
        if self.params.kind == TunnelKind::MplsOverGre {
            return Ok(());
        }
        let l4 = L2 + L3;
        front[l4..l4 + 2].copy_from_slice(&entropy_port(meta.flow_hash).to_be_bytes());
        front[l4 + 4..l4 + 6].copy_from_slice(&l4_len.to_be_bytes());
        match self.params.udp_checksum {
            UdpChecksum::Zero => {}
            UdpChecksum::Software => {
                let pseudo = self.pseudo_sum(&front[..], L2, l4_len);
                let d = buf.data();
                let s = checksum::combine(&[pseudo, checksum::data(d.get(l4..).unwrap_or(&[]))]);
                let c = checksum::udp_wire(checksum::finish(s));
                if let Some(f) = buf.data_mut().get_mut(l4 + 6..l4 + 8) {
                    f.copy_from_slice(&c.to_be_bytes());
                }
            }
            UdpChecksum::Offload => {
                let pseudo = self.pseudo_sum(&front[..], L2, l4_len);
                front[l4 + 6..l4 + 8].copy_from_slice(&pseudo.to_be_bytes());
                let fam = if L3 == ipv6::HEADER_LEN {
                    ol::TX_IPV6
                } else {
                    ol::TX_IPV4
                };
                let f = buf.ol_flags() | ol::TX_UDP_CKSUM | fam;
                buf.set_ol_flags(f);
                buf.set_tx_lens(L2 as u16, L3 as u16, udp::HEADER_LEN as u16);
            }
        }
        Ok(())
    }

    /// Partial sum of the outer UDP pseudo-header for a UDP length.
    #[inline]
    fn pseudo_sum(&self, h: &[u8], l2: usize, l4_len: u16) -> u16 {
        if self.v6 {
            checksum::combine(&[self.base_sum, l4_len])
        } else {
            let s = checksum::data(&h[l2 + 12..l2 + 20]);
            checksum::combine(&[s, 17, l4_len])
        }
    }
}

/// The tunnel identifier found by decapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelId {
    /// A VXLAN VNI.
    Vni(u32),
    /// An MPLS label stack (the label that selects the next hop, depth, bytes).
    Mpls(LabelStack),
}

/// What decapsulation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decapped {
    /// Encapsulation.
    pub kind: TunnelKind,
    /// VNI or label.
    pub id: TunnelId,
    /// Outer source address (the remote endpoint), for source-endpoint checks.
    pub outer_src: IpAddr,
    /// Outer VLAN TCI, if the frame was tagged.
    pub outer_vlan_tci: Option<u16>,
    /// Outer TOS / traffic class.
    pub outer_tos: u8,
    /// Outer UDP source port (0 for GRE).
    pub udp_src_port: u16,
    /// Offset of the inner frame/packet in the original frame.
    pub inner_offset: usize,
    /// Length of the inner frame/packet (link padding excluded).
    pub inner_len: usize,
}

impl Decapped {
    /// The VNI, for VXLAN.
    #[inline]
    pub fn vni(&self) -> Option<u32> {
        match self.id {
            TunnelId::Vni(v) => Some(v),
            TunnelId::Mpls(_) => None,
        }
    }
    /// The label entry that selects the next hop, for MPLS.
    #[inline]
    pub fn label(&self) -> Option<MplsRepr> {
        match self.id {
            TunnelId::Mpls(s) => Some(s.top),
            TunnelId::Vni(_) => None,
        }
    }
    /// Whether the inner packet is known to be an Ethernet frame (VXLAN). For MPLS the
    /// label table decides, so this is `None`.
    #[inline]
    pub fn inner_is_l2(&self) -> Option<bool> {
        match self.kind {
            TunnelKind::Vxlan => Some(true),
            _ => None,
        }
    }
}

/// Validates and strips tunnel headers addressed to this node's underlay addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decapsulator {
    /// Local IPv4 underlay address (IPv4 tunnels are rejected when `None`).
    pub local_v4: Option<Ipv4Addr>,
    /// Local IPv6 underlay address (IPv6 tunnels are rejected when `None`).
    pub local_v6: Option<Ipv6Addr>,
}

impl Decapsulator {
    /// A decapsulator for the given local addresses.
    pub const fn new(local_v4: Option<Ipv4Addr>, local_v6: Option<Ipv6Addr>) -> Self {
        Self { local_v4, local_v6 }
    }

    /// Validate the outer headers of `frame` without changing it. `ol_flags` are the
    /// buffer's receive offload flags: `RX_IP_CKSUM_GOOD` skips the software IPv4 header
    /// check, `RX_IP_CKSUM_BAD` / `RX_L4_CKSUM_BAD` reject with [`Error::BadChecksum`].
    ///
    /// Rejections, in the order checked: [`Error::TooShort`],
    /// [`Error::UnsupportedEtherType`] (not IPv4/IPv6 after at most two VLAN tags),
    /// [`Error::BadVersion`], [`Error::BadHeaderLength`], [`Error::BadTotalLength`],
    /// [`Error::BadChecksum`], [`Error::Fragment`], [`Error::TtlExpired`] (outer TTL 0,
    /// MPLS TTL <= 1 as TF does), [`Error::WrongDestination`],
    /// [`Error::UnsupportedProtocol`] (not UDP/GRE), [`Error::UnknownUdpPort`],
    /// [`Error::BadGreFlags`], [`Error::UnsupportedGreProtocol`], [`Error::BadVxlanFlags`],
    /// [`Error::BadLabelStack`], [`Error::TooManyExtensionHeaders`].
    #[inline]
    pub fn parse(&self, frame: &[u8], ol_flags: u64) -> Result<Decapped> {
        match self.parse_fast_ipv4(frame, ol_flags) {
            Some(d) => Ok(d),
            None => self.parse_general(frame, ol_flags),
        }
    }

    /// The common case read at constant offsets: untagged IPv4 without options, UDP
    /// (VXLAN, or MPLS with one label) or GRE without options (one label). `None` for
    /// anything else, including every frame that would be rejected: those take
    /// [`Self::parse_general`], which gives the same result for frames this accepts.
    #[inline(always)]
    fn parse_fast_ipv4(&self, frame: &[u8], ol_flags: u64) -> Option<Decapped> {
        const L3: usize = ethernet::HEADER_LEN;
        const L4: usize = L3 + ipv4::HEADER_LEN;
        if ol_flags & (ol::RX_IP_CKSUM_BAD | ol::RX_L4_CKSUM_BAD) != 0 {
            return None;
        }
        let f: &[u8; L4 + 8] = frame.get(..L4 + 8)?.try_into().ok()?;
        if f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 {
            return None;
        }
        let tl = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let end = L3 + tl;
        if tl < ipv4::HEADER_LEN + 8 || end > frame.len() {
            return None;
        }
        // Fragment bits, TTL 0, wrong destination: leave the verdict to the general path.
        if f[20] & 0x3f != 0 || f[21] != 0 || f[22] == 0 {
            return None;
        }
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        if self.local_v4 != Some(dst) {
            return None;
        }
        if ol_flags & ol::RX_IP_CKSUM_GOOD == 0 {
            let h: &[u8; ipv4::HEADER_LEN] = f[L3..L4].try_into().ok()?;
            if checksum::data20(h) != 0xffff {
                return None;
            }
        }
        let lse = |w: &[u8]| -> Option<LabelStack> {
            let e = MplsRepr::from_word(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            (e.bos && e.ttl > 1).then_some(LabelStack {
                top: e,
                depth: 1,
                len: mpls::LSE_LEN,
            })
        };
        let (kind, id, sport, inner_offset, inner_end) = match IpProtocol(f[23]) {
            IpProtocol::UDP => {
                let ulen = usize::from(u16::from_be_bytes([f[L4 + 4], f[L4 + 5]]));
                let uend = L4 + ulen;
                if ulen < udp::HEADER_LEN || uend > end {
                    return None;
                }
                let sport = u16::from_be_bytes([f[L4], f[L4 + 1]]);
                let p = L4 + udp::HEADER_LEN;
                match u16::from_be_bytes([f[L4 + 2], f[L4 + 3]]) {
                    vxlan::UDP_PORT => {
                        let inner = p + vxlan::HEADER_LEN;
                        if uend < inner + ethernet::HEADER_LEN {
                            return None;
                        }
                        let v = frame.get(p..inner)?;
                        if v[0] & vxlan::FLAG_I == 0 {
                            return None;
                        }
                        let vni = u32::from_be_bytes([0, v[4], v[5], v[6]]);
                        (TunnelKind::Vxlan, TunnelId::Vni(vni), sport, inner, uend)
                    }
                    mpls::UDP_PORT | mpls::UDP_PORT_LEGACY => {
                        let inner = p + mpls::LSE_LEN;
                        if uend < inner {
                            return None;
                        }
                        let s = lse(frame.get(p..inner)?)?;
                        (
                            TunnelKind::MplsOverUdp,
                            TunnelId::Mpls(s),
                            sport,
                            inner,
                            uend,
                        )
                    }
                    _ => return None,
                }
            }
            IpProtocol::GRE => {
                if f[L4] != 0 || f[L4 + 1] != 0 || f[L4 + 2] != 0x88 || f[L4 + 3] != 0x47 {
                    return None;
                }
                let s = lse(&f[L4 + 4..L4 + 8])?;
                (TunnelKind::MplsOverGre, TunnelId::Mpls(s), 0, L4 + 8, end)
            }
            _ => return None,
        };
        Some(Decapped {
            kind,
            id,
            outer_src: IpAddr::V4(Ipv4Addr::new(f[26], f[27], f[28], f[29])),
            outer_vlan_tci: None,
            outer_tos: f[15],
            udp_src_port: sport,
            inner_offset,
            inner_len: inner_end - inner_offset,
        })
    }

    /// [`Self::parse`] without its IPv4 fast path: every frame goes through the general
    /// header walk. The two always agree; this one is the reference.
    #[inline]
    pub fn parse_general(&self, frame: &[u8], ol_flags: u64) -> Result<Decapped> {
        if ol_flags & (ol::RX_IP_CKSUM_BAD | ol::RX_L4_CKSUM_BAD) != 0 {
            return Err(Error::BadChecksum);
        }
        let et = EtherType(rd16(
            frame.get(..ethernet::HEADER_LEN).ok_or(Error::TooShort)?,
            12,
        ));
        let (et, l3_off, vlan) = if et.is_vlan_tpid() {
            let l2 = ethernet::L2Header::parse(frame)?;
            (l2.ethertype, l2.header_len, l2.outer_tci)
        } else {
            (et, ethernet::HEADER_LEN, None)
        };
        let l3 = frame.get(l3_off..).ok_or(Error::TooShort)?;
        let (outer_src, outer_tos, proto, l4_off, ip_end) = match et {
            EtherType::IPV4 => {
                let ip = ipv4::Packet::new_checked(l3)?;
                if ol_flags & ol::RX_IP_CKSUM_GOOD == 0 && !ip.verify_checksum() {
                    return Err(Error::BadChecksum);
                }
                if ip.is_fragment() {
                    return Err(Error::Fragment);
                }
                if ip.ttl() == 0 {
                    return Err(Error::TtlExpired);
                }
                if Some(ip.dst_addr()) != self.local_v4 {
                    return Err(Error::WrongDestination);
                }
                (
                    IpAddr::V4(ip.src_addr()),
                    ip.tos(),
                    ip.protocol(),
                    l3_off + ip.header_len(),
                    l3_off + usize::from(ip.total_len()),
                )
            }
            EtherType::IPV6 => {
                let ip = ipv6::Packet::new_checked(l3)?;
                if ip.hop_limit() == 0 {
                    return Err(Error::TtlExpired);
                }
                if Some(ip.dst_addr()) != self.local_v6 {
                    return Err(Error::WrongDestination);
                }
                let t = ip.transport()?;
                if t.fragment.is_some() {
                    return Err(Error::Fragment);
                }
                (
                    IpAddr::V6(ip.src_addr()),
                    ip.traffic_class(),
                    t.protocol,
                    l3_off + t.offset,
                    l3_off + ip.total_len(),
                )
            }
            _ => return Err(Error::UnsupportedEtherType),
        };
        // ip_end <= frame.len() is guaranteed by the IP length checks.
        let l4 = frame.get(l4_off..ip_end).ok_or(Error::TooShort)?;
        let (kind, sport, payload_off, end) = match proto {
            IpProtocol::UDP => {
                let u = udp::Packet::new_checked(l4)?;
                let kind = match u.dst_port() {
                    vxlan::UDP_PORT => TunnelKind::Vxlan,
                    mpls::UDP_PORT | mpls::UDP_PORT_LEGACY => TunnelKind::MplsOverUdp,
                    _ => return Err(Error::UnknownUdpPort),
                };
                (
                    kind,
                    u.src_port(),
                    l4_off + udp::HEADER_LEN,
                    l4_off + usize::from(u.len()),
                )
            }
            IpProtocol::GRE => {
                let g = gre::Packet::new_checked(l4)?;
                if g.protocol() != EtherType::MPLS {
                    return Err(Error::UnsupportedGreProtocol);
                }
                (TunnelKind::MplsOverGre, 0, l4_off + g.header_len(), ip_end)
            }
            _ => return Err(Error::UnsupportedProtocol),
        };
        let payload = frame.get(payload_off..end).ok_or(Error::TooShort)?;
        let (id, hdr_len) = match kind {
            TunnelKind::Vxlan => {
                let v = vxlan::Packet::new_checked(payload)?;
                if payload.len() < vxlan::HEADER_LEN + ethernet::HEADER_LEN {
                    return Err(Error::TooShort);
                }
                (TunnelId::Vni(v.vni()), vxlan::HEADER_LEN)
            }
            TunnelKind::MplsOverUdp | TunnelKind::MplsOverGre => {
                let s = LabelStack::parse(payload)?;
                if s.top.ttl <= 1 {
                    return Err(Error::TtlExpired);
                }
                (TunnelId::Mpls(s), s.len)
            }
        };
        Ok(Decapped {
            kind,
            id,
            outer_src,
            outer_vlan_tci: vlan,
            outer_tos,
            udp_src_port: sport,
            inner_offset: payload_off + hdr_len,
            inner_len: end - payload_off - hdr_len,
        })
    }

    /// Validate the outer headers of the packet in `buf` ([`Self::parse`] with the
    /// buffer's offload flags) and strip them, and any link padding after the outer IP
    /// packet, leaving the inner frame (VXLAN) or whatever follows the label stack (MPLS).
    /// On error `buf` is unchanged.
    #[inline]
    pub fn decap<B: PacketBuf + ?Sized>(&self, buf: &mut B) -> Result<Decapped> {
        let d = self.parse(buf.data(), buf.ol_flags())?;
        let tail = buf.len().saturating_sub(d.inner_offset + d.inner_len);
        if tail != 0 {
            buf.trim(tail).map_err(|_| Error::TooShort)?;
        }
        buf.adj(d.inner_offset).map_err(|_| Error::TooShort)?;
        Ok(d)
    }
}

/// Strip the 4-byte MPLS control word at the front of `buf` (for labels whose next hop
/// says the L2 payload carries one). [`Error::BadControlWord`] when the first nibble is
/// not 0 or the packet is shorter than 4 bytes; `buf` is then unchanged.
#[inline]
pub fn strip_control_word<B: PacketBuf + ?Sized>(buf: &mut B) -> Result<()> {
    if !mpls::has_control_word(buf.data()) {
        return Err(Error::BadControlWord);
    }
    buf.adj(mpls::CONTROL_WORD_LEN)
        .map_err(|_| Error::BadControlWord)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;

    fn inner_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xb]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xa]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = ipv4::Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 2),
            protocol: IpProtocol::UDP,
            payload_len: 12,
            ttl: 33,
            tos: 0xb9,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        ip.emit(&mut ipv4::Packet::new_unchecked(&mut f[14..]))
            .unwrap();
        f[34..42].copy_from_slice(&[0x10, 0x00, 0x00, 0x50, 0, 12, 0, 0]);
        f[42..].copy_from_slice(b"data");
        f
    }

    fn params(kind: TunnelKind, payload: Payload, v6: bool) -> TunnelParams {
        let (src_ip, dst_ip) = if v6 {
            (
                IpAddr::V6("fd00::1".parse().unwrap()),
                IpAddr::V6("fd00::2".parse().unwrap()),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(172, 16, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2)),
            )
        };
        TunnelParams {
            kind,
            payload,
            src_mac: EthernetAddress([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
            dst_mac: EthernetAddress([0, 0x66, 0x77, 0x88, 0x99, 0xaa]),
            vlan_tci: None,
            src_ip,
            dst_ip,
            vni_or_label: 5000,
            ttl: 64,
            df: true,
            control_word: false,
            udp_checksum: if v6 {
                UdpChecksum::Software
            } else {
                UdpChecksum::Zero
            },
        }
    }

    #[test]
    fn roundtrip_all_kinds() {
        let inner = inner_frame();
        for v6 in [false, true] {
            for (kind, payload, cw) in [
                (TunnelKind::Vxlan, Payload::L2, false),
                (TunnelKind::MplsOverUdp, Payload::L2, true),
                (TunnelKind::MplsOverUdp, Payload::L3, false),
                (TunnelKind::MplsOverGre, Payload::L2, false),
                (TunnelKind::MplsOverGre, Payload::L3, false),
            ] {
                let mut p = params(kind, payload, v6);
                p.control_word = cw;
                p.vlan_tci = v6.then_some(0x2064);
                let e = TunnelEncap::new(&p).unwrap();
                let body = match payload {
                    Payload::L2 => &inner[..],
                    Payload::L3 => &inner[14..],
                };
                let mut b = HeapBuf::from_bytes(body);
                e.encap(
                    &mut b,
                    EncapMeta {
                        flow_hash: 0x1234_5678,
                        ip_id: 7,
                    },
                )
                .unwrap();
                let d = Decapsulator::new(
                    Some(Ipv4Addr::new(172, 16, 0, 2)),
                    Some("fd00::2".parse().unwrap()),
                );
                let got = d.parse(b.data(), 0).unwrap();
                assert_eq!(got.kind, kind);
                assert_eq!(got.outer_src, p.src_ip);
                assert_eq!(got.outer_tos, 0xb9);
                match kind {
                    TunnelKind::Vxlan => assert_eq!(got.vni(), Some(5000)),
                    _ => {
                        let l = got.label().unwrap();
                        assert_eq!(l.label, 5000);
                        assert!(l.bos);
                        assert_eq!(l.tc, 0xb9 >> 5);
                        let ttl = if payload == Payload::L3 { 33 } else { 64 };
                        assert_eq!(l.ttl, ttl);
                    }
                }
                if kind != TunnelKind::MplsOverGre {
                    assert_eq!(got.udp_src_port, entropy_port(0x1234_5678));
                }
                let frame = b.data().to_vec();
                if !v6 {
                    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
                    assert!(ip.verify_checksum());
                    assert!(ip.dont_frag());
                    assert_eq!(ip.ident(), 7);
                } else {
                    let ip = ipv6::Packet::new_checked(&frame[18..]).unwrap();
                    assert_eq!(ip.flow_label(), 0x45678);
                    if kind != TunnelKind::MplsOverGre {
                        let u = udp::Packet::new_checked(&frame[58..]).unwrap();
                        assert_ne!(u.checksum(), 0);
                        assert!(u.verify_checksum(&crate::packet::ip::IpPair::V6(
                            ip.src_addr(),
                            ip.dst_addr()
                        )));
                    }
                }
                d.decap(&mut b).unwrap();
                if cw {
                    strip_control_word(&mut b).unwrap();
                }
                assert_eq!(b.data(), body, "{kind:?} {payload:?} v6={v6}");
            }
        }
    }

    #[test]
    fn offload_sets_flags_and_pseudo_header() {
        let mut p = params(TunnelKind::Vxlan, Payload::L2, true);
        p.udp_checksum = UdpChecksum::Offload;
        let e = TunnelEncap::new(&p).unwrap();
        let mut b = HeapBuf::from_bytes(&inner_frame());
        e.encap(&mut b, EncapMeta::default()).unwrap();
        assert_eq!(
            b.ol_flags() & (ol::TX_UDP_CKSUM | ol::TX_IPV6),
            ol::TX_UDP_CKSUM | ol::TX_IPV6
        );
        assert_eq!(b.tx_lens(), (14, 40, 8));
        let d = b.data();
        let len = rd16(d, 54 + 4);
        let src: Ipv6Addr = "fd00::1".parse().unwrap();
        let dst: Ipv6Addr = "fd00::2".parse().unwrap();
        assert_eq!(
            rd16(d, 54 + 6),
            checksum::pseudo_header_v6(&src, &dst, 17, u32::from(len))
        );
    }

    #[test]
    fn bad_params_and_headroom() {
        let p = params(TunnelKind::Vxlan, Payload::L3, false);
        assert_eq!(TunnelEncap::new(&p).unwrap_err(), Error::BadTunnelParams);
        let mut p = params(TunnelKind::MplsOverGre, Payload::L2, false);
        p.dst_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(TunnelEncap::new(&p).unwrap_err(), Error::BadTunnelParams);
        let mut p = params(TunnelKind::MplsOverGre, Payload::L3, false);
        p.vni_or_label = 1 << 20;
        assert_eq!(TunnelEncap::new(&p).unwrap_err(), Error::BadField);
        let e = TunnelEncap::new(&params(TunnelKind::Vxlan, Payload::L2, false)).unwrap();
        let inner = inner_frame();
        let mut b = HeapBuf::with_room(&inner, 10, 0);
        assert_eq!(
            e.encap(&mut b, EncapMeta::default()).unwrap_err(),
            Error::NoHeadroom
        );
        assert_eq!(b.data(), &inner[..]);
    }

    #[test]
    fn decap_rejections() {
        let e = TunnelEncap::new(&params(TunnelKind::Vxlan, Payload::L2, false)).unwrap();
        let mut b = HeapBuf::from_bytes(&inner_frame());
        e.encap(&mut b, EncapMeta::default()).unwrap();
        let good = b.data().to_vec();
        let d = Decapsulator::new(Some(Ipv4Addr::new(172, 16, 0, 2)), None);
        assert!(d.parse(&good, 0).is_ok());
        let other = Decapsulator::new(Some(Ipv4Addr::new(172, 16, 0, 3)), None);
        assert_eq!(other.parse(&good, 0).unwrap_err(), Error::WrongDestination);
        let fix = |f: &mut Vec<u8>| {
            let mut ip = ipv4::Packet::new_unchecked(&mut f[14..34]);
            ip.fill_checksum();
        };
        let mut f = good.clone();
        f[14 + 6] = 0x20;
        fix(&mut f);
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::Fragment);
        let mut f = good.clone();
        f[14 + 8] = 0;
        fix(&mut f);
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::TtlExpired);
        let mut f = good.clone();
        f[14 + 10] ^= 0xff;
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::BadChecksum);
        assert!(d.parse(&f, ol::RX_IP_CKSUM_GOOD).is_ok());
        assert_eq!(
            d.parse(&good, ol::RX_IP_CKSUM_BAD).unwrap_err(),
            Error::BadChecksum
        );
        let mut f = good.clone();
        f[36..38].copy_from_slice(&4790u16.to_be_bytes());
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::UnknownUdpPort);
        let mut f = good.clone();
        f[42] = 0;
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::BadVxlanFlags);
        let mut f = good.clone();
        f[14 + 9] = 6;
        fix(&mut f);
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::UnsupportedProtocol);
        let mut f = good.clone();
        f[14] = 0x46;
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::BadChecksum);
        let mut f = good.clone();
        f[14] = 0x35;
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::BadVersion);
        assert_eq!(d.parse(&good[..40], 0).unwrap_err(), Error::BadTotalLength);
        assert_eq!(d.parse(&good[..10], 0).unwrap_err(), Error::TooShort);
        // Link padding is stripped.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xee; 6]);
        let mut b = HeapBuf::from_bytes(&padded);
        d.decap(&mut b).unwrap();
        assert_eq!(b.data(), &inner_frame()[..]);
        // Control word check.
        let mut b = HeapBuf::from_bytes(&[0x45, 0, 0, 0, 1]);
        assert_eq!(
            strip_control_word(&mut b).unwrap_err(),
            Error::BadControlWord
        );
    }

    #[test]
    fn gre_with_key_and_checksum_is_tolerated_and_legacy_port_accepted() {
        let e = TunnelEncap::new(&params(TunnelKind::MplsOverGre, Payload::L3, false)).unwrap();
        let inner = inner_frame();
        let mut b = HeapBuf::from_bytes(&inner[14..]);
        e.encap(&mut b, EncapMeta::default()).unwrap();
        let f = b.data().to_vec();
        // Rebuild with C and K set: insert 8 bytes after the 4-byte GRE base.
        let mut g = f[..34].to_vec();
        g.extend_from_slice(&[0xa0, 0x00, 0x88, 0x47, 0, 0, 0, 0, 0, 0, 0, 42]);
        g.extend_from_slice(&f[38..]);
        let tl = (g.len() - 14) as u16;
        let mut ip = ipv4::Packet::new_unchecked(&mut g[14..34]);
        ip.set_total_len(tl);
        ip.fill_checksum();
        let d = Decapsulator::new(Some(Ipv4Addr::new(172, 16, 0, 2)), None);
        let got = d.parse(&g, 0).unwrap();
        assert_eq!(got.label().unwrap().label, 5000);
        assert_eq!(&g[got.inner_offset..], &inner[14..]);
        let mut g2 = g.clone();
        g2[36..38].copy_from_slice(&[0x65, 0x58]);
        assert_eq!(d.parse(&g2, 0).unwrap_err(), Error::UnsupportedGreProtocol);
        g2[34] = 0x40;
        assert_eq!(d.parse(&g2, 0).unwrap_err(), Error::BadGreFlags);

        let e = TunnelEncap::new(&params(TunnelKind::MplsOverUdp, Payload::L3, false)).unwrap();
        let mut b = HeapBuf::from_bytes(&inner[14..]);
        e.encap(&mut b, EncapMeta::default()).unwrap();
        let mut f = b.data().to_vec();
        f[36..38].copy_from_slice(&mpls::UDP_PORT_LEGACY.to_be_bytes());
        assert_eq!(d.parse(&f, 0).unwrap().kind, TunnelKind::MplsOverUdp);
        f[42 + 3] = 1;
        assert_eq!(d.parse(&f, 0).unwrap_err(), Error::TtlExpired);
    }
}
