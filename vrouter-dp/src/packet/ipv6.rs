//! IPv6 headers (RFC 8200), with extension headers walked to the transport header and
//! fragments recognised.

use std::net::Ipv6Addr;

use super::error::{Error, Result};
use super::ip::IpProtocol;
use super::{rd16, rd32, wr16};

mod field {
    use core::ops::Range;
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Most extension headers the walker follows before giving up
/// ([`Error::TooManyExtensionHeaders`]).
pub const MAX_EXT_HEADERS: usize = 8;
/// Length of a fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Fragment information from a fragment extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the transport header is, after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transport {
    /// The upper-layer protocol (the last next-header value).
    pub protocol: IpProtocol,
    /// Offset of the transport header from the start of the IPv6 header. For a later
    /// fragment (offset != 0) this is where the fragment data starts, not a header.
    pub offset: usize,
    /// The fragment header, when there is one.
    pub fragment: Option<FragmentInfo>,
}

impl Transport {
    /// Whether the transport header is present (not a later fragment, not "no next header").
    #[inline]
    pub fn has_header(&self) -> bool {
        let first = match self.fragment {
            Some(f) => f.offset == 0,
            None => true,
        };
        self.protocol != IpProtocol::IPV6_NO_NEXT && first
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checking; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap after [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validate: at least 40 bytes ([`Error::TooShort`]), version 6
    /// ([`Error::BadVersion`]), payload length within the buffer
    /// ([`Error::BadTotalLength`]). After `Ok` no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        if b[field::VER_TC_FL] >> 4 != 6 {
            return Err(Error::BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error::BadTotalLength);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// IP version.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FL] >> 4
    }
    /// Traffic class (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (rd16(self.buffer.as_ref(), field::VER_TC_FL) >> 4) as u8
    }
    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::VER_TC_FL) & 0x000f_ffff
    }
    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    /// Total length of header plus payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }
    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }
    /// Raw source address bytes.
    #[inline]
    pub fn src_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SRC_ADDR]
    }
    /// Raw destination address bytes.
    #[inline]
    pub fn dst_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DST_ADDR]
    }
    /// The payload (extension headers included), without link padding.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walk the extension headers (hop-by-hop, routing, fragment, destination options, AH,
    /// mobility, HIP, shim6) to the upper-layer header. Stops at a fragment header with a
    /// non-zero offset. Errors: [`Error::BadHeaderLength`] when an extension header runs
    /// past the payload, [`Error::TooManyExtensionHeaders`] after [`MAX_EXT_HEADERS`].
    #[inline]
    pub fn transport(&self) -> Result<Transport> {
        let b = self.buffer.as_ref();
        let end = self.total_len().min(b.len());
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = None;
        for _ in 0..MAX_EXT_HEADERS {
            let len = match nh {
                IpProtocol::HOP_BY_HOP
                | IpProtocol::IPV6_ROUTE
                | IpProtocol::IPV6_OPTS
                | IpProtocol::MOBILITY
                | IpProtocol::HIP
                | IpProtocol::SHIM6 => {
                    let l = b.get(off + 1).ok_or(Error::BadHeaderLength)?;
                    (usize::from(*l) + 1) * 8
                }
                IpProtocol::AH => {
                    let l = b.get(off + 1).ok_or(Error::BadHeaderLength)?;
                    (usize::from(*l) + 2) * 4
                }
                IpProtocol::IPV6_FRAG => FRAG_HEADER_LEN,
                _ => {
                    return Ok(Transport {
                        protocol: nh,
                        offset: off,
                        fragment,
                    })
                }
            };
            if off + len > end {
                return Err(Error::BadHeaderLength);
            }
            let next = IpProtocol(b[off]);
            if nh == IpProtocol::IPV6_FRAG {
                let fh = FragmentHeader::new_unchecked(&b[off..off + FRAG_HEADER_LEN]);
                let info = FragmentInfo {
                    offset: fh.frag_offset(),
                    more_frags: fh.more_frags(),
                    ident: fh.ident(),
                };
                fragment = Some(info);
                if info.offset != 0 {
                    return Ok(Transport {
                        protocol: next,
                        offset: off + len,
                        fragment,
                    });
                }
            }
            nh = next;
            off += len;
        }
        match nh {
            IpProtocol::HOP_BY_HOP
            | IpProtocol::IPV6_ROUTE
            | IpProtocol::IPV6_OPTS
            | IpProtocol::MOBILITY
            | IpProtocol::HIP
            | IpProtocol::SHIM6
            | IpProtocol::AH
            | IpProtocol::IPV6_FRAG => Err(Error::TooManyExtensionHeaders),
            _ => Ok(Transport {
                protocol: nh,
                offset: off,
                fragment,
            }),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version 6, traffic class and flow label in one write.
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[0..4].copy_from_slice(&w.to_be_bytes());
    }
    /// Set the traffic class, keeping the flow label.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let fl = self.flow_label();
        self.set_version_tc_flow(tc, fl);
    }
    /// Set the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        wr16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }
    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = p.0;
    }
    /// Set the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }
    /// Decrement the hop limit; [`Error::TtlExpired`] (nothing changed) when it is 0 or 1.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> Result<u8> {
        let h = self.hop_limit();
        if h <= 1 {
            return Err(Error::TtlExpired);
        }
        self.set_hop_limit(h - 1);
        Ok(h - 1)
    }
    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }
    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let tl = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..tl]
    }
}

/// The owned form of the fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Read a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        Ok(Self {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }
    /// Header bytes [`Self::emit`] writes (always 40).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write the fixed header into the front of `p`'s buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        let len = u16::try_from(self.payload_len).map_err(|_| Error::BadTotalLength)?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::BadField);
        }
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(&self.src_addr);
        p.set_dst_addr(&self.dst_addr);
        Ok(())
    }
}

/// A view of an IPv6 fragment extension header.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wrap without checking.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    /// Wrap after checking the 8 bytes are there.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < FRAG_HEADER_LEN {
            return Err(Error::TooShort);
        }
        Ok(Self { buffer })
    }
    /// Next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[0])
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        rd16(self.buffer.as_ref(), 2) & 0xfff8
    }
    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        rd16(self.buffer.as_ref(), 2) & 1 != 0
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        rd32(self.buffer.as_ref(), 4)
    }
}

/// The owned form of a fragment extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    /// Next header.
    pub next_header: IpProtocol,
    /// Offset in bytes (a multiple of 8).
    pub offset: u16,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Read a checked header.
    pub fn parse<T: AsRef<[u8]>>(h: &FragmentHeader<T>) -> Self {
        Self {
            next_header: h.next_header(),
            offset: h.frag_offset(),
            more_frags: h.more_frags(),
            ident: h.ident(),
        }
    }
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        FRAG_HEADER_LEN
    }
    /// Write the header into the first 8 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b = buf.get_mut(..FRAG_HEADER_LEN).ok_or(Error::TooShort)?;
        if self.offset & 7 != 0 {
            return Err(Error::BadField);
        }
        b[0] = self.next_header.0;
        b[1] = 0;
        b[2..4].copy_from_slice(&(self.offset | u16::from(self.more_frags)).to_be_bytes());
        b[4..8].copy_from_slice(&self.ident.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_with_ext() -> Vec<u8> {
        let repr = Ipv6Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: IpProtocol::HOP_BY_HOP,
            payload_len: 8 + 24 + 8 + 8,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        };
        let mut b = vec![0u8; HEADER_LEN + repr.payload_len];
        repr.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        // Hop-by-hop: next = routing, len 0 (8 bytes), PadN.
        b[40..48].copy_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]);
        // Routing: next = fragment, len 2 (24 bytes), type 0, segments left 0.
        b[48] = 44;
        b[49] = 2;
        // Fragment: next = UDP, offset 0, M=1, id 0xabcdef01.
        FragmentRepr {
            next_header: IpProtocol::UDP,
            offset: 0,
            more_frags: true,
            ident: 0xabcd_ef01,
        }
        .emit(&mut b[72..80])
        .unwrap();
        b
    }

    #[test]
    fn walk_to_transport() {
        let b = packet_with_ext();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        let t = p.transport().unwrap();
        assert_eq!(t.protocol, IpProtocol::UDP);
        assert_eq!(t.offset, 80);
        assert_eq!(
            t.fragment,
            Some(FragmentInfo {
                offset: 0,
                more_frags: true,
                ident: 0xabcd_ef01
            })
        );
        assert!(t.has_header());
    }

    #[test]
    fn later_fragment_and_errors() {
        let mut b = packet_with_ext();
        b[74..76].copy_from_slice(&(1232u16).to_be_bytes());
        let t = Packet::new_checked(&b[..]).unwrap().transport().unwrap();
        assert!(!t.has_header());
        assert_eq!(t.fragment.unwrap().offset, 1232);
        // Routing header claims more than the payload.
        let mut b = packet_with_ext();
        b[49] = 9;
        assert_eq!(
            Packet::new_checked(&b[..])
                .unwrap()
                .transport()
                .unwrap_err(),
            Error::BadHeaderLength
        );
        let b = packet_with_ext();
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), Error::TooShort);
        assert_eq!(
            Packet::new_checked(&b[..80]).unwrap_err(),
            Error::BadTotalLength
        );
        let mut v = b.clone();
        v[0] = 0x45;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadVersion);
    }

    #[test]
    fn too_many_ext_headers() {
        let n = MAX_EXT_HEADERS + 1;
        let mut b = vec![0u8; HEADER_LEN + 8 * n];
        let repr = Ipv6Repr {
            src_addr: Ipv6Addr::LOCALHOST,
            dst_addr: Ipv6Addr::LOCALHOST,
            next_header: IpProtocol::IPV6_OPTS,
            payload_len: 8 * n,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
        };
        repr.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        for i in 0..n {
            b[40 + 8 * i] = 60;
        }
        assert_eq!(
            Packet::new_checked(&b[..])
                .unwrap()
                .transport()
                .unwrap_err(),
            Error::TooManyExtensionHeaders
        );
    }

    #[test]
    fn roundtrip() {
        let b = packet_with_ext();
        let r = Ipv6Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        let mut c = [0u8; 40];
        r.emit(&mut Packet::new_unchecked(&mut c[..])).unwrap();
        assert_eq!(&c[..], &b[..40]);
    }
}
