//! TCP headers (RFC 9293): ports, sequence numbers, flags, options, checksum.

use super::checksum;
use super::error::{Error, Result};
use super::ip::{IpPair, IpProtocol};
use super::{rd16, rd32, wr16};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// TCP flag bits (the low 9 bits of the offset/flags word).
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
    /// ECE.
    pub const ECE: u16 = 0x040;
    /// CWR.
    pub const CWR: u16 = 0x080;
    /// NS (historic).
    pub const NS: u16 = 0x100;
}

/// A read/write view of a TCP segment.
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
    /// Validate: 20 bytes ([`Error::TooShort`]), data offset >= 5
    /// ([`Error::BadHeaderLength`]) and within the buffer ([`Error::TooShort`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if hl > b.len() {
            return Err(Error::TooShort);
        }
        Ok(())
    }
    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::SEQ_NUM)
    }
    /// Acknowledgement number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::ACK_NUM)
    }
    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::FLAGS] >> 4) * 4
    }
    /// The 9 flag bits ([`flags`]).
    #[inline]
    pub fn flags(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::FLAGS) & 0x01ff
    }
    /// Whether SYN is set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }
    /// Whether ACK is set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }
    /// Whether FIN is set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }
    /// Whether RST is set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }
    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::WINDOW)
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::URGENT)
    }
    /// Option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Payload (everything after the header in the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum over the whole buffer verifies against `addrs`.
    #[inline]
    pub fn verify_checksum(&self, addrs: &IpPair) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        checksum::combine(&[addrs.pseudo_header(IpProtocol::TCP, len), checksum::data(b)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Set the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Set the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ_NUM..field::SEQ_NUM + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// Set the acknowledgement number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK_NUM..field::ACK_NUM + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// Set header length (bytes, multiple of 4) and flags.
    #[inline]
    pub fn set_header_len_flags(&mut self, header_len: usize, flags: u16) {
        let w = ((((header_len / 4) as u16) & 0xf) << 12) | (flags & 0x01ff);
        wr16(self.buffer.as_mut(), field::FLAGS, w);
    }
    /// Set the window.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::WINDOW, v);
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::URGENT, v);
    }
    /// Compute the checksum over the whole buffer (header + payload).
    #[inline]
    pub fn fill_checksum(&mut self, addrs: &IpPair) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let s = checksum::combine(&[addrs.pseudo_header(IpProtocol::TCP, len), checksum::data(b)]);
        self.set_checksum(checksum::finish(s));
    }
    /// Rewrite the source port, updating the checksum incrementally.
    #[inline]
    pub fn rewrite_src_port(&mut self, v: u16) {
        let old = self.src_port();
        self.set_src_port(v);
        self.update_checksum16(old, v);
    }
    /// Rewrite the destination port, updating the checksum incrementally.
    #[inline]
    pub fn rewrite_dst_port(&mut self, v: u16) {
        let old = self.dst_port();
        self.set_dst_port(v);
        self.update_checksum16(old, v);
    }
    /// Account for a 16-bit change elsewhere (e.g. in the pseudo-header).
    #[inline]
    pub fn update_checksum16(&mut self, old: u16, new: u16) {
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }
    /// Account for a 32-bit pseudo-header change (an IPv4 NAT address rewrite).
    #[inline]
    pub fn update_checksum32(&mut self, old: u32, new: u32) {
        let c = checksum::update32(self.checksum(), old, new);
        self.set_checksum(c);
    }
}

/// The owned form of a TCP header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number.
    pub ack_number: u32,
    /// Flag bits ([`flags`]).
    pub flags: u16,
    /// Window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
}

impl TcpRepr {
    /// Read a header (options skipped), verifying the checksum over the whole buffer.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, addrs: &IpPair) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(addrs) {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window_len: p.window_len(),
            urgent_at: p.urgent_at(),
        })
    }
    /// Header bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write a 20-byte header; the checksum covers the whole buffer (the payload must
    /// already be in place after the header).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        addrs: &IpPair,
    ) -> Result<()> {
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        if self.flags > 0x01ff {
            return Err(Error::BadField);
        }
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_flags(HEADER_LEN, self.flags);
        p.set_window_len(self.window_len);
        p.set_urgent_at(self.urgent_at);
        p.fill_checksum(addrs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn roundtrip_and_nat() {
        let addrs = IpPair::V6(Ipv6Addr::LOCALHOST, "2001:db8::5".parse().unwrap());
        let r = TcpRepr {
            src_port: 443,
            dst_port: 50000,
            seq_number: 0xdead_beef,
            ack_number: 7,
            flags: flags::SYN | flags::ACK,
            window_len: 65535,
            urgent_at: 0,
        };
        let mut b = [0u8; 25];
        b[20..].copy_from_slice(b"hello");
        r.emit(&mut Packet::new_unchecked(&mut b[..]), &addrs)
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.syn() && p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.payload(), b"hello");
        assert_eq!(TcpRepr::parse(&p, &addrs).unwrap(), r);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_dst_port(8080);
        assert!(p.verify_checksum(&addrs));
    }

    #[test]
    fn bad_offset() {
        let mut b = [0u8; 24];
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadHeaderLength
        );
        b[12] = 0x70;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::TooShort);
        b[12] = 0x60;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().len(), 4);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::TooShort);
    }
}
