//! VXLAN headers (RFC 7348).

use super::error::{Error, Result};
use super::rd32;

/// The IANA UDP port for VXLAN.
pub const UDP_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag (VNI valid), in the first byte.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// A read/write view of a VXLAN header and its payload (the inner Ethernet frame).
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
    /// Wrap a received header: 8 bytes ([`Error::TooShort`]) and the I flag set
    /// ([`Error::BadVxlanFlags`]), as RFC 7348 requires of receivers. Other flag and
    /// reserved bits are ignored.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        if !p.i_flag() {
            return Err(Error::BadVxlanFlags);
        }
        Ok(p)
    }
    /// Ensure the 8 bytes are there.
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
    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Whether the I flag (VNI valid) is set.
    #[inline]
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }
    /// The 24-bit VNI.
    #[inline]
    pub fn vni(&self) -> u32 {
        rd32(self.buffer.as_ref(), 4) >> 8
    }
    /// The inner frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write flags `I`, zero reserved bits and the VNI (truncated to 24 bits).
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        b[0..4].copy_from_slice(&[FLAG_I, 0, 0, 0]);
        b[4..8].copy_from_slice(&((vni & MAX_VNI) << 8).to_be_bytes());
    }
}

/// The owned form of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
}

impl VxlanRepr {
    /// Read a received header (I flag required).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        if !p.i_flag() {
            return Err(Error::BadVxlanFlags);
        }
        Ok(Self { vni: p.vni() })
    }
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write the header; a VNI wider than 24 bits gives [`Error::BadField`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        p.check_len()?;
        if self.vni > MAX_VNI {
            return Err(Error::BadField);
        }
        p.set_vni(self.vni);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_and_i_flag() {
        let mut b = [0u8; 8];
        VxlanRepr { vni: 0x123456 }
            .emit(&mut Packet::new_unchecked(&mut b[..]))
            .unwrap();
        assert_eq!(b, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().vni(), 0x123456);
        b[0] = 0;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadVxlanFlags
        );
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::TooShort);
        assert_eq!(
            VxlanRepr { vni: 1 << 24 }.emit(&mut Packet::new_unchecked(&mut b[..])),
            Err(Error::BadField)
        );
    }
}
