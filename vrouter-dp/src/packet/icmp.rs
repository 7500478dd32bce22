//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages, including Neighbor Discovery
//! (RFC 4861) solicitations and advertisements.
//!
//! Both families share the 8-byte header layout (type, code, checksum, 4 bytes of
//! message-specific data), so one view serves both; ICMPv6 checksums include the IPv6
//! pseudo-header and ICMPv4 checksums do not.

use std::net::Ipv6Addr;

use super::checksum;
use super::error::{Error, Result};
use super::ethernet::EthernetAddress;
use super::ip::IpProtocol;
use super::{rd16, rd32, wr16};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ_NO: usize = 6;
    pub const BODY: usize = 8;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

/// Length of the common ICMP header.
pub const HEADER_LEN: usize = field::BODY;
/// Length of a neighbor solicitation/advertisement without options.
pub const ND_LEN: usize = field::ND_OPTIONS;

/// ICMPv4 message types used by the data plane.
pub mod v4_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// ICMPv6 message types used by the data plane.
pub mod v6_type {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
}

/// Neighbor advertisement flag bits (first byte of the message data).
pub mod na_flags {
    /// Router.
    pub const ROUTER: u8 = 0x80;
    /// Solicited.
    pub const SOLICITED: u8 = 0x40;
    /// Override.
    pub const OVERRIDE: u8 = 0x20;
}

/// ND option type: source link-layer address.
pub const ND_OPT_SOURCE_LLADDR: u8 = 1;
/// ND option type: target link-layer address.
pub const ND_OPT_TARGET_LLADDR: u8 = 2;

/// A read/write view of an ICMPv4 or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
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
    /// Validate: the 8-byte header is there ([`Error::TooShort`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::TooShort)
        } else {
            Ok(())
        }
    }
    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The 4 message-specific header bytes as one word.
    #[inline]
    pub fn rest(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::REST)
    }
    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::IDENT)
    }
    /// Echo sequence number.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::SEQ_NO)
    }
    /// The message body after the 8-byte header.
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..]
    }
    /// Whether an ICMPv4 checksum (over the whole buffer) verifies.
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
    /// Whether an ICMPv6 checksum (pseudo-header + whole buffer) verifies.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, len),
            checksum::data(b),
        ]) == 0xffff
    }
    /// The ND target address of a neighbor solicitation or advertisement.
    /// [`Error::TooShort`] when the message is shorter than 24 bytes.
    #[inline]
    pub fn nd_target(&self) -> Result<Ipv6Addr> {
        let b = self
            .buffer
            .as_ref()
            .get(field::ND_TARGET..field::ND_OPTIONS)
            .ok_or(Error::TooShort)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Ipv6Addr::from(a))
    }
    /// Neighbor advertisement flags ([`na_flags`]).
    #[inline]
    pub fn na_flags(&self) -> u8 {
        self.buffer.as_ref()[field::REST]
    }
    /// The first source/target link-layer address option of an NS/NA, if any.
    /// Malformed options (zero length, running past the end) give [`Error::BadHeaderLength`].
    pub fn nd_lladdr(&self) -> Result<Option<(u8, EthernetAddress)>> {
        let b = self.buffer.as_ref();
        let mut off = field::ND_OPTIONS;
        while off < b.len() {
            let hdr = b.get(off..off + 2).ok_or(Error::BadHeaderLength)?;
            let (ty, len8) = (hdr[0], usize::from(hdr[1]));
            if len8 == 0 {
                return Err(Error::BadHeaderLength);
            }
            let opt = b.get(off..off + len8 * 8).ok_or(Error::BadHeaderLength)?;
            if ty == ND_OPT_SOURCE_LLADDR || ty == ND_OPT_TARGET_LLADDR {
                let mac = EthernetAddress::from_bytes(&opt[2..]).ok_or(Error::BadHeaderLength)?;
                return Ok(Some((ty, mac)));
            }
            off += len8 * 8;
        }
        Ok(None)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Set the code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the 4 message-specific header bytes.
    #[inline]
    pub fn set_rest(&mut self, v: u32) {
        self.buffer.as_mut()[field::REST..field::BODY].copy_from_slice(&v.to_be_bytes());
    }
    /// Set the echo identifier (checksum not updated).
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Set the echo sequence number (checksum not updated).
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::SEQ_NO, v);
    }
    /// Compute the ICMPv4 checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::data(self.buffer.as_ref()));
        self.set_checksum(c);
    }
    /// Compute the ICMPv6 checksum (pseudo-header + whole buffer).
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let s = checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, len),
            checksum::data(b),
        ]);
        self.set_checksum(checksum::finish(s));
    }
    /// Rewrite the echo identifier (ICMP NAT), updating the checksum incrementally.
    #[inline]
    pub fn rewrite_echo_ident(&mut self, v: u16) {
        let old = self.echo_ident();
        self.set_echo_ident(v);
        let c = checksum::update16(self.checksum(), old, v);
        self.set_checksum(c);
    }
    /// The body, writable.
    #[inline]
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY..]
    }
}

/// The owned form of an ICMP header: type, code and the 4 message-specific bytes.
/// The body (echo data, the quoted packet of an error) is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpRepr {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// The 4 message-specific header bytes (echo: ident << 16 | seq).
    pub rest: u32,
}

impl IcmpRepr {
    /// An echo request/reply header.
    pub const fn echo(msg_type: u8, ident: u16, seq_no: u16) -> Self {
        Self {
            msg_type,
            code: 0,
            rest: ((ident as u32) << 16) | seq_no as u32,
        }
    }
    /// Read an ICMPv4 header, verifying the checksum.
    pub fn parse_v4<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum_v4() {
            return Err(Error::BadChecksum);
        }
        Ok(Self::read(p))
    }
    /// Read an ICMPv6 header, verifying the checksum against the addresses.
    pub fn parse_v6<T: AsRef<[u8]>>(p: &Packet<T>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum_v6(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(Self::read(p))
    }
    fn read<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            msg_type: p.msg_type(),
            code: p.code(),
            rest: p.rest(),
        }
    }
    /// Header bytes the emitters write.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    fn write<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        p.check_len()?;
        p.set_msg_type(self.msg_type);
        p.set_code(self.code);
        p.set_rest(self.rest);
        Ok(())
    }
    /// Write an ICMPv4 header; the checksum covers the whole buffer (body in place).
    pub fn emit_v4<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.write(p)?;
        p.fill_checksum_v4();
        Ok(())
    }
    /// Write an ICMPv6 header; the checksum covers the pseudo-header and the whole buffer.
    pub fn emit_v6<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<()> {
        self.write(p)?;
        p.fill_checksum_v6(src, dst);
        Ok(())
    }
}

/// The owned form of a neighbor solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdRepr {
    /// Neighbor solicitation, with the optional source link-layer address.
    NeighborSolicit {
        /// Target address.
        target: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor advertisement, with the optional target link-layer address.
    NeighborAdvert {
        /// R/S/O flags ([`na_flags`]).
        flags: u8,
        /// Target address.
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdRepr {
    /// Parse an NS/NA (checksum verified). Other types give [`Error::UnsupportedProtocol`].
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Self> {
        IcmpRepr::parse_v6(p, src, dst)?;
        if p.code() != 0 {
            return Err(Error::BadField);
        }
        let target = p.nd_target()?;
        let ll = p.nd_lladdr()?;
        match p.msg_type() {
            v6_type::NEIGHBOR_SOLICIT => Ok(Self::NeighborSolicit {
                target,
                lladdr: ll
                    .filter(|(t, _)| *t == ND_OPT_SOURCE_LLADDR)
                    .map(|(_, m)| m),
            }),
            v6_type::NEIGHBOR_ADVERT => Ok(Self::NeighborAdvert {
                flags: p.na_flags() & 0xe0,
                target,
                lladdr: ll
                    .filter(|(t, _)| *t == ND_OPT_TARGET_LLADDR)
                    .map(|(_, m)| m),
            }),
            _ => Err(Error::UnsupportedProtocol),
        }
    }
    /// Message length [`Self::emit`] writes (24, or 32 with a link-layer option).
    pub fn buffer_len(&self) -> usize {
        let ll = match self {
            Self::NeighborSolicit { lladdr, .. } | Self::NeighborAdvert { lladdr, .. } => lladdr,
        };
        ND_LEN + if ll.is_some() { 8 } else { 0 }
    }
    /// Write the whole message (header, target, option) with its checksum into the first
    /// [`Self::buffer_len`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(Error::TooShort)?;
        b.fill(0);
        let (ty, rest, target, opt, ll) = match *self {
            Self::NeighborSolicit { target, lladdr } => (
                v6_type::NEIGHBOR_SOLICIT,
                0u32,
                target,
                ND_OPT_SOURCE_LLADDR,
                lladdr,
            ),
            Self::NeighborAdvert {
                flags,
                target,
                lladdr,
            } => (
                v6_type::NEIGHBOR_ADVERT,
                u32::from(flags & 0xe0) << 24,
                target,
                ND_OPT_TARGET_LLADDR,
                lladdr,
            ),
        };
        b[field::ND_TARGET..field::ND_OPTIONS].copy_from_slice(&target.octets());
        if let Some(mac) = ll {
            b[ND_LEN] = opt;
            b[ND_LEN + 1] = 1;
            b[ND_LEN + 2..ND_LEN + 8].copy_from_slice(&mac.0);
        }
        let mut p = Packet::new_unchecked(b);
        p.set_msg_type(ty);
        p.set_code(0);
        p.set_rest(rest);
        p.fill_checksum_v6(src, dst);
        Ok(())
    }
}

/// Whether an ICMPv4 type is an echo request or reply (the identifier is the flow port).
#[inline]
pub const fn is_echo_v4(msg_type: u8) -> bool {
    matches!(msg_type, v4_type::ECHO_REQUEST | v4_type::ECHO_REPLY)
}

/// Whether an ICMPv6 type is an echo request or reply.
#[inline]
pub const fn is_echo_v6(msg_type: u8) -> bool {
    matches!(msg_type, v6_type::ECHO_REQUEST | v6_type::ECHO_REPLY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_v4() {
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"ping");
        IcmpRepr::echo(v4_type::ECHO_REQUEST, 0x1234, 7)
            .emit_v4(&mut Packet::new_unchecked(&mut b[..]))
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 7);
        assert!(p.verify_checksum_v4());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_echo_ident(0x9999);
        assert!(p.verify_checksum_v4());
        assert_eq!(
            IcmpRepr::parse_v4(&p).unwrap(),
            IcmpRepr::echo(v4_type::ECHO_REQUEST, 0x9999, 7)
        );
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::TooShort);
    }

    #[test]
    fn nd_roundtrip() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        for r in [
            NdRepr::NeighborSolicit {
                target: "2001:db8::2".parse().unwrap(),
                lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
            },
            NdRepr::NeighborAdvert {
                flags: na_flags::SOLICITED | na_flags::OVERRIDE,
                target: "2001:db8::2".parse().unwrap(),
                lladdr: None,
            },
        ] {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b, &src, &dst).unwrap();
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(NdRepr::parse(&p, &src, &dst).unwrap(), r);
        }
        // Zero-length option.
        let mut b = [0u8; 32];
        b[0] = v6_type::NEIGHBOR_SOLICIT;
        b[24] = 1;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum_v6(&src, &dst);
        assert_eq!(
            NdRepr::parse(&Packet::new_checked(&b[..]).unwrap(), &src, &dst).unwrap_err(),
            Error::BadHeaderLength
        );
    }
}
