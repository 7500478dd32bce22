//! UDP headers (RFC 768) with pseudo-header checksums for IPv4 and IPv6.

use super::checksum;
use super::error::{Error, Result};
use super::ip::{IpPair, IpProtocol};
use super::{rd16, wr16};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of a UDP datagram.
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
    /// Validate: 8 header bytes ([`Error::TooShort`]) and `8 <= length <= buffer`
    /// ([`Error::BadTotalLength`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > b.len() {
            return Err(Error::BadTotalLength);
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
    /// Length field (header plus payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Checksum field (0: none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The payload, `8..length`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// Whether the checksum verifies against `addrs` (a zero checksum counts as valid:
    /// IPv4 allows it, and IPv6 tunnels may use it per RFC 6935).
    #[inline]
    pub fn verify_checksum(&self, addrs: &IpPair) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let l = self.len();
        let b = &self.buffer.as_ref()[..usize::from(l)];
        checksum::combine(&[
            addrs.pseudo_header(IpProtocol::UDP, u32::from(l)),
            checksum::data(b),
        ]) == 0xffff
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
    /// Set the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        wr16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Compute and write the checksum over header and payload (`0..length`).
    #[inline]
    pub fn fill_checksum(&mut self, addrs: &IpPair) {
        self.set_checksum(0);
        let l = self.len();
        let s = checksum::combine(&[
            addrs.pseudo_header(IpProtocol::UDP, u32::from(l)),
            checksum::data(&self.buffer.as_ref()[..usize::from(l)]),
        ]);
        self.set_checksum(checksum::udp_wire(checksum::finish(s)));
    }
    /// Rewrite the source port (NAT/PAT), updating a non-zero checksum incrementally.
    #[inline]
    pub fn rewrite_src_port(&mut self, v: u16) {
        let old = self.src_port();
        self.set_src_port(v);
        self.update_checksum16(old, v);
    }
    /// Rewrite the destination port, updating a non-zero checksum incrementally.
    #[inline]
    pub fn rewrite_dst_port(&mut self, v: u16) {
        let old = self.dst_port();
        self.set_dst_port(v);
        self.update_checksum16(old, v);
    }
    /// Account for a 16-bit change elsewhere (ports, or a pseudo-header word) in a
    /// non-zero checksum.
    #[inline]
    pub fn update_checksum16(&mut self, old: u16, new: u16) {
        let c = self.checksum();
        if c != 0 {
            self.set_checksum(checksum::udp_wire(checksum::update16(c, old, new)));
        }
    }
    /// Account for a 32-bit change in the pseudo-header (an IPv4 NAT address rewrite).
    #[inline]
    pub fn update_checksum32(&mut self, old: u32, new: u32) {
        let c = self.checksum();
        if c != 0 {
            self.set_checksum(checksum::udp_wire(checksum::update32(c, old, new)));
        }
    }
    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

/// The owned form of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Read a header, verifying a non-zero checksum against `addrs` ([`Error::BadChecksum`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, addrs: &IpPair) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum(addrs) {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: usize::from(p.len()) - HEADER_LEN,
        })
    }
    /// Header bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write the header. The payload must already follow it in the buffer when
    /// `addrs` is given (the checksum covers it); with `None` the checksum is 0.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        addrs: Option<&IpPair>,
    ) -> Result<()> {
        let len =
            u16::try_from(self.payload_len + HEADER_LEN).map_err(|_| Error::BadTotalLength)?;
        if p.buffer.as_ref().len() < usize::from(len) {
            return Err(Error::TooShort);
        }
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        match addrs {
            Some(a) => p.fill_checksum(a),
            None => p.set_checksum(0),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn checksum_and_roundtrip() {
        let addrs = IpPair::V4(Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 2));
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"abcd");
        let r = UdpRepr {
            src_port: 1234,
            dst_port: 53,
            payload_len: 4,
        };
        r.emit(&mut Packet::new_unchecked(&mut b[..]), Some(&addrs))
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&addrs));
        assert_eq!(UdpRepr::parse(&p, &addrs).unwrap(), r);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_src_port(40000);
        assert!(p.verify_checksum(&addrs));
        b[9] ^= 0x40;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, &addrs).unwrap_err(), Error::BadChecksum);
    }

    #[test]
    fn bad_lengths() {
        let mut b = [0u8; 12];
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::TooShort);
        b[5] = 7;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadTotalLength
        );
        b[5] = 13;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadTotalLength
        );
        b[5] = 12;
        assert!(Packet::new_checked(&b[..]).is_ok());
    }
}
