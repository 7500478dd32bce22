//! IPv4 headers (RFC 791), with options and fragments recognised.

use std::net::Ipv4Addr;

use super::checksum;
use super::error::{Error, Result};
use super::ip::IpProtocol;
use super::{rd16, rd32, wr16};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Largest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FLAG_RESERVED: u16 = 0x8000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
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

    /// Validate the header: at least 20 bytes ([`Error::TooShort`]), version 4
    /// ([`Error::BadVersion`]), IHL >= 5 and within the buffer ([`Error::BadHeaderLength`]
    /// / [`Error::TooShort`]), and `header_len <= total_len <= buffer length`
    /// ([`Error::BadTotalLength`]). After `Ok` no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if hl > b.len() {
            return Err(Error::TooShort);
        }
        let tl = usize::from(self.total_len());
        if tl < hl || tl > b.len() {
            return Err(Error::BadTotalLength);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// IP version (4 after a successful check).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    /// The TOS byte (DSCP << 2 | ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    /// DSCP.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }
    /// ECN.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 3
    }
    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::IDENT)
    }
    /// The raw flags + fragment-offset word.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::FLG_OFF)
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }
    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }
    /// Reserved ("evil") flag bit.
    #[inline]
    pub fn reserved_flag(&self) -> bool {
        self.flags_frag() & FLAG_RESERVED != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & OFFSET_MASK) << 3
    }
    /// Whether this packet is a fragment (MF set or offset non-zero).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | OFFSET_MASK) != 0
    }
    /// Whether this is a fragment other than the first (no transport header).
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.flags_frag() & OFFSET_MASK != 0
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }
    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(rd32(self.buffer.as_ref(), field::SRC_ADDR.start))
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(rd32(self.buffer.as_ref(), field::DST_ADDR.start))
    }
    /// The option bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Whether the header carries options.
    #[inline]
    pub fn has_options(&self) -> bool {
        self.header_len() > HEADER_LEN
    }
    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let hl = self.header_len();
        if let Some(h) = b
            .get(..HEADER_LEN)
            .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
        {
            if hl == HEADER_LEN {
                return checksum::data20(h) == 0xffff;
            }
        }
        checksum::data(&b[..hl]) == 0xffff
    }
    /// The payload: from the end of the header to `total_len` (link padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version 4 and the header length (a multiple of 4 in 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }
    /// Set the TOS byte.
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }
    /// Set the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        wr16(self.buffer.as_mut(), field::LENGTH, len);
    }
    /// Set the identification.
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        wr16(self.buffer.as_mut(), field::IDENT, id);
    }
    /// Set flags and fragment offset (offset in bytes, a multiple of 8).
    #[inline]
    pub fn set_flags_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut w = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            w |= FLAG_DF;
        }
        if more_frags {
            w |= FLAG_MF;
        }
        wr16(self.buffer.as_mut(), field::FLG_OFF, w);
    }
    /// Set the TTL (checksum not updated).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }
    /// Set the protocol.
    #[inline]
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.0;
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        wr16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    /// Set the source address (checksum not updated).
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }
    /// Set the destination address (checksum not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
    /// Recompute the header checksum over the whole header.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::finish(checksum::data(&self.buffer.as_ref()[..hl]));
        self.set_checksum(c);
    }
    /// Decrement the TTL and update the checksum incrementally (RFC 1624).
    /// Fails with [`Error::TtlExpired`] (and changes nothing) when the TTL is 0 or 1.
    #[inline]
    pub fn decrement_ttl(&mut self) -> Result<u8> {
        let ttl = self.ttl();
        if ttl <= 1 {
            return Err(Error::TtlExpired);
        }
        let c = checksum::ttl_decrement(self.checksum());
        self.set_ttl(ttl - 1);
        self.set_checksum(c);
        Ok(ttl - 1)
    }
    /// Rewrite the source address (NAT) and update the header checksum incrementally.
    /// Returns the old address (for the caller's L4 checksum update).
    #[inline]
    pub fn rewrite_src_addr(&mut self, a: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        let c = checksum::update32(self.checksum(), u32::from(old), u32::from(a));
        self.set_src_addr(a);
        self.set_checksum(c);
        old
    }
    /// Rewrite the destination address (NAT) and update the header checksum incrementally.
    /// Returns the old address.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, a: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        let c = checksum::update32(self.checksum(), u32::from(old), u32::from(a));
        self.set_dst_addr(a);
        self.set_checksum(c);
        old
    }
    /// Rewrite the TOS byte and update the checksum incrementally.
    #[inline]
    pub fn rewrite_tos(&mut self, tos: u8) {
        let b = self.buffer.as_ref();
        let old = rd16(b, 0);
        let new = (old & 0xff00) | u16::from(tos);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_tos(tos);
        self.set_checksum(c);
    }
    /// The option bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }
    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let tl = usize::from(self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// The owned form of an IPv4 header (options are not represented; `parse` skips them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// TOS byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Read a header, verifying its checksum ([`Error::BadChecksum`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
        })
    }
    /// Header bytes [`Self::emit`] writes (always 20).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write a 20-byte header with a correct checksum into the front of `p`'s buffer.
    /// Fails with [`Error::BadTotalLength`] when the total length does not fit 16 bits and
    /// [`Error::BadField`] for an offset that is not a multiple of 8.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        let total =
            u16::try_from(self.payload_len + HEADER_LEN).map_err(|_| Error::BadTotalLength)?;
        if self.frag_offset & 7 != 0 || self.frag_offset > (OFFSET_MASK << 3) {
            return Err(Error::BadField);
        }
        p.set_header_len(HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_flags_frag(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, UDP, ttl 64, DF, id 0x1234, 4 payload bytes, with a 4-byte
    // option (NOP NOP NOP EOL).
    fn with_options() -> Vec<u8> {
        let mut b = vec![
            0x46, 0xb8, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2, 1, 1, 1, 0, 0xde, 0xad, 0xbe, 0xef,
        ];
        let c = checksum::finish(checksum::data(&b[..24]));
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn deconstruct() {
        let b = with_options();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.has_options());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 0);
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.src_addr, Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn rejections() {
        let b = with_options();
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::TooShort);
        let mut v6 = b.clone();
        v6[0] = 0x66;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::BadVersion);
        let mut ihl = b.clone();
        ihl[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&ihl[..]).unwrap_err(),
            Error::BadHeaderLength
        );
        let mut ihl_big = b.clone();
        ihl_big[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&ihl_big[..]).unwrap_err(),
            Error::TooShort
        );
        let mut tl = b.clone();
        tl[3] = 0x1d;
        assert_eq!(
            Packet::new_checked(&tl[..]).unwrap_err(),
            Error::BadTotalLength
        );
        tl[3] = 0x10;
        assert_eq!(
            Packet::new_checked(&tl[..]).unwrap_err(),
            Error::BadTotalLength
        );
        let mut cs = b.clone();
        cs[11] ^= 1;
        assert_eq!(
            Ipv4Repr::parse(&Packet::new_checked(&cs[..]).unwrap()).unwrap_err(),
            Error::BadChecksum
        );
    }

    #[test]
    fn fragments() {
        let mut b = with_options();
        Packet::new_unchecked(&mut b[..]).set_flags_frag(false, true, 0);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && !p.is_later_fragment());
        Packet::new_unchecked(&mut b[..]).set_flags_frag(false, false, 1480);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && p.is_later_fragment());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn ttl_and_nat_incremental() {
        let mut b = with_options();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.decrement_ttl().unwrap(), 63);
        assert!(p.verify_checksum());
        p.rewrite_src_addr(Ipv4Addr::new(192, 168, 1, 77));
        p.rewrite_dst_addr(Ipv4Addr::new(172, 16, 0, 9));
        p.rewrite_tos(0x03);
        assert!(p.verify_checksum());
        p.set_ttl(1);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl().unwrap_err(), Error::TtlExpired);
        assert_eq!(p.ttl(), 1);
    }

    #[test]
    fn emit_parse_roundtrip() {
        let r = Ipv4Repr {
            src_addr: Ipv4Addr::new(1, 2, 3, 4),
            dst_addr: Ipv4Addr::new(5, 6, 7, 8),
            protocol: IpProtocol::TCP,
            payload_len: 10,
            ttl: 17,
            tos: 0x2e,
            ident: 9,
            dont_frag: false,
            more_frags: true,
            frag_offset: 64,
        };
        let mut b = [0u8; 30];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(),
            r
        );
    }
}
