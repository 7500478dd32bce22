//! GRE headers (RFC 2784) with the key and sequence-number extensions (RFC 2890).

use super::checksum;
use super::error::{Error, Result};
use super::ethernet::EtherType;
use super::{rd16, rd32, wr16};

/// Checksum-present flag.
pub const FLAG_C: u16 = 0x8000;
/// Routing-present flag (RFC 1701; rejected).
pub const FLAG_R: u16 = 0x4000;
/// Key-present flag.
pub const FLAG_K: u16 = 0x2000;
/// Sequence-number-present flag.
pub const FLAG_S: u16 = 0x1000;
/// Bits that must be zero (strict source route, recursion control, reserved0).
pub const RESERVED_MASK: u16 = 0x0ff8;
/// Version bits (must be 0).
pub const VERSION_MASK: u16 = 0x0007;
/// Length of the base GRE header.
pub const BASE_LEN: usize = 4;
/// Longest GRE header (checksum, key and sequence present).
pub const MAX_LEN: usize = 16;

/// A read/write view of a GRE header and its payload.
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
    /// Validate: base header present ([`Error::TooShort`]); routing flag clear, reserved
    /// bits zero and version 0 ([`Error::BadGreFlags`]); optional fields present
    /// ([`Error::TooShort`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < BASE_LEN {
            return Err(Error::TooShort);
        }
        let f = self.flags();
        if f & (FLAG_R | RESERVED_MASK | VERSION_MASK) != 0 {
            return Err(Error::BadGreFlags);
        }
        if b.len() < self.header_len() {
            return Err(Error::TooShort);
        }
        Ok(())
    }
    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The flags and version word.
    #[inline]
    pub fn flags(&self) -> u16 {
        rd16(self.buffer.as_ref(), 0)
    }
    /// Protocol type of the payload.
    #[inline]
    pub fn protocol(&self) -> EtherType {
        EtherType(rd16(self.buffer.as_ref(), 2))
    }
    /// Whether the checksum is present.
    #[inline]
    pub fn has_checksum(&self) -> bool {
        self.flags() & FLAG_C != 0
    }
    /// Whether the key is present.
    #[inline]
    pub fn has_key(&self) -> bool {
        self.flags() & FLAG_K != 0
    }
    /// Whether the sequence number is present.
    #[inline]
    pub fn has_seq(&self) -> bool {
        self.flags() & FLAG_S != 0
    }
    /// Header length implied by the flags (4, 8, 12 or 16).
    #[inline]
    pub fn header_len(&self) -> usize {
        BASE_LEN
            + 4 * (usize::from(self.has_checksum())
                + usize::from(self.has_key())
                + usize::from(self.has_seq()))
    }
    /// The checksum field, when present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.has_checksum()
            .then(|| rd16(self.buffer.as_ref(), BASE_LEN))
    }
    /// The key, when present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        let off = BASE_LEN + 4 * usize::from(self.has_checksum());
        self.has_key().then(|| rd32(self.buffer.as_ref(), off))
    }
    /// The sequence number, when present.
    #[inline]
    pub fn seq(&self) -> Option<u32> {
        let off = BASE_LEN + 4 * (usize::from(self.has_checksum()) + usize::from(self.has_key()));
        self.has_seq().then(|| rd32(self.buffer.as_ref(), off))
    }
    /// Whether the checksum (over header and payload) verifies; true when absent.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::data(self.buffer.as_ref()) == 0xffff
    }
    /// The payload after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the flags/version word.
    #[inline]
    pub fn set_flags(&mut self, f: u16) {
        wr16(self.buffer.as_mut(), 0, f);
    }
    /// Set the protocol type.
    #[inline]
    pub fn set_protocol(&mut self, p: EtherType) {
        wr16(self.buffer.as_mut(), 2, p.0);
    }
}

/// The owned form of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// Protocol type of the payload.
    pub protocol: EtherType,
    /// Whether to carry (or whether the packet carried) a checksum.
    pub checksum: bool,
    /// Key (RFC 2890).
    pub key: Option<u32>,
    /// Sequence number (RFC 2890).
    pub seq: Option<u32>,
}

impl GreRepr {
    /// Read a header; a present checksum must verify ([`Error::BadChecksum`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            protocol: p.protocol(),
            checksum: p.has_checksum(),
            key: p.key(),
            seq: p.seq(),
        })
    }
    /// Header bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        BASE_LEN
            + 4 * (self.checksum as usize
                + self.key.is_some() as usize
                + self.seq.is_some() as usize)
    }
    /// Write the header. With `checksum` the payload must already follow the header in
    /// the buffer: the checksum covers the whole buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let hl = self.buffer_len();
        if p.buffer.as_ref().len() < hl {
            return Err(Error::TooShort);
        }
        let mut f = 0u16;
        if self.checksum {
            f |= FLAG_C;
        }
        if self.key.is_some() {
            f |= FLAG_K;
        }
        if self.seq.is_some() {
            f |= FLAG_S;
        }
        p.set_flags(f);
        p.set_protocol(self.protocol);
        let b = p.buffer.as_mut();
        let mut off = BASE_LEN;
        if self.checksum {
            b[off..off + 4].fill(0);
            off += 4;
        }
        if let Some(k) = self.key {
            b[off..off + 4].copy_from_slice(&k.to_be_bytes());
            off += 4;
        }
        if let Some(s) = self.seq {
            b[off..off + 4].copy_from_slice(&s.to_be_bytes());
        }
        if self.checksum {
            let c = checksum::finish(checksum::data(b));
            wr16(b, BASE_LEN, c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_options_roundtrip() {
        let r = GreRepr {
            protocol: EtherType::MPLS,
            checksum: true,
            key: Some(0x0102_0304),
            seq: Some(99),
        };
        let mut b = [0u8; 16 + 4];
        b[16..].copy_from_slice(&[0, 0x06, 0x41, 0x40]);
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.key(), Some(0x0102_0304));
        assert_eq!(p.seq(), Some(99));
        assert!(p.verify_checksum());
        assert_eq!(GreRepr::parse(&p).unwrap(), r);
        assert_eq!(p.payload(), &[0, 0x06, 0x41, 0x40]);
        b[19] ^= 1;
        assert_eq!(
            GreRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Error::BadChecksum
        );
    }

    #[test]
    fn bad_flags() {
        for f in [FLAG_R, 0x0800, 0x0100, 0x0008, 0x0001] {
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&f.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&b[..]).unwrap_err(),
                Error::BadGreFlags,
                "{f:#x}"
            );
        }
        let b = [0x20, 0, 0x88, 0x47, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::TooShort);
    }
}
