//! Ethernet II frames, 802.1Q VLAN tags and 802.1ad QinQ stacks.

use core::fmt;

use super::error::{Error, Result};
use super::{rd16, wr16};

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// The all-zero address.
    pub const ZERO: Self = Self([0; 6]);

    /// Build from the first 6 bytes of `b`; `None` when `b` is shorter.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let a: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(Self(a))
    }
    /// The address bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
    /// Whether the group bit is set (multicast or broadcast).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    /// Whether this is the broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// Whether this is a unicast address.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An EtherType value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: Self = Self(0x0800);
    /// ARP.
    pub const ARP: Self = Self(0x0806);
    /// 802.1Q customer VLAN tag.
    pub const VLAN: Self = Self(0x8100);
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: Self = Self(0x88a8);
    /// Pre-standard QinQ outer tag still seen in the field.
    pub const QINQ_LEGACY: Self = Self(0x9100);
    /// IPv6.
    pub const IPV6: Self = Self(0x86dd);
    /// MPLS unicast.
    pub const MPLS: Self = Self(0x8847);
    /// MPLS multicast.
    pub const MPLS_MULTICAST: Self = Self(0x8848);
    /// Transparent Ethernet bridging (Ethernet over GRE).
    pub const TEB: Self = Self(0x6558);

    /// Whether this value introduces a VLAN tag.
    #[inline]
    pub const fn is_vlan_tpid(self) -> bool {
        matches!(self.0, 0x8100 | 0x88a8 | 0x9100)
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checking its length; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    /// Wrap a buffer after [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    /// Ensure the buffer holds the whole header; after `Ok` no accessor panics.
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
    /// Header length (always [`HEADER_LEN`]).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }
    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let b = self.buffer.as_ref();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[field::DESTINATION]);
        EthernetAddress(a)
    }
    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let b = self.buffer.as_ref();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[field::SOURCE]);
        EthernetAddress(a)
    }
    /// The EtherType (or TPID of the first VLAN tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(rd16(self.buffer.as_ref(), field::ETHERTYPE))
    }
    /// The bytes after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }
    /// Set the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }
    /// Set the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        wr16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }
    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The owned form of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src_addr: EthernetAddress,
    /// Destination MAC.
    pub dst_addr: EthernetAddress,
    /// EtherType (a VLAN TPID when tags follow).
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Read the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(Self {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write the header into the first [`Self::buffer_len`] bytes of `frame`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<()> {
        frame.check_len()?;
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }
}

mod vfield {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Length of one VLAN tag after the TPID (TCI + inner EtherType).
pub const VLAN_TAG_LEN: usize = vfield::PAYLOAD;

/// A view of the 4 bytes that follow a VLAN TPID: the TCI and the encapsulated EtherType.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wrap without checking; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    /// Wrap after [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }
    /// Ensure the 4 bytes are there.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
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
    /// The whole tag control information.
    #[inline]
    pub fn tci(&self) -> u16 {
        rd16(self.buffer.as_ref(), vfield::TCI)
    }
    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }
    /// VLAN id (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    /// The EtherType after the tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(rd16(self.buffer.as_ref(), vfield::ETHERTYPE))
    }
    /// The bytes after the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[vfield::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Set the TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        wr16(self.buffer.as_mut(), vfield::TCI, tci);
    }
    /// Set the VLAN id, keeping PCP and DEI.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }
    /// Set the encapsulated EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        wr16(self.buffer.as_mut(), vfield::ETHERTYPE, t.0);
    }
}

/// The owned form of a VLAN tag (the TPID belongs to the preceding header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id (0..=4095).
    pub vid: u16,
    /// EtherType after the tag.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// Read a checked tag.
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<Self> {
        tag.check_len()?;
        Ok(Self {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        VLAN_TAG_LEN
    }
    /// Write the tag; fails with [`Error::BadField`] for an out-of-range PCP or VID.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) -> Result<()> {
        tag.check_len()?;
        if self.pcp > 7 || self.vid > 0x0fff {
            return Err(Error::BadField);
        }
        let tci = (u16::from(self.pcp) << 13) | (u16::from(self.dei) << 12) | self.vid;
        tag.set_tci(tci);
        tag.set_ethertype(self.ethertype);
        Ok(())
    }
}

/// The layer-2 header of a frame with up to two VLAN tags resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L2Header {
    /// Destination MAC.
    pub dst_addr: EthernetAddress,
    /// Source MAC.
    pub src_addr: EthernetAddress,
    /// TCI of the outer (first) tag, if any.
    pub outer_tci: Option<u16>,
    /// TCI of the inner (second, QinQ) tag, if any.
    pub inner_tci: Option<u16>,
    /// The EtherType of the payload after all tags (a TPID if a third tag follows).
    pub ethertype: EtherType,
    /// Offset of the payload (14, 18 or 22).
    pub header_len: usize,
}

impl L2Header {
    /// Parse Ethernet II plus at most two VLAN tags (802.1Q, 802.1ad, 0x9100).
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let eth = Frame::new_checked(frame)?;
        let mut ethertype = eth.ethertype();
        let mut off = HEADER_LEN;
        let mut tags = [None, None];
        for slot in &mut tags {
            if !ethertype.is_vlan_tpid() {
                break;
            }
            let tag = VlanTag::new_checked(frame.get(off..).ok_or(Error::TooShort)?)?;
            *slot = Some(tag.tci());
            ethertype = tag.ethertype();
            off += VLAN_TAG_LEN;
        }
        Ok(Self {
            dst_addr: eth.dst_addr(),
            src_addr: eth.src_addr(),
            outer_tci: tags[0],
            inner_tci: tags[1],
            ethertype,
            header_len: off,
        })
    }

    /// VLAN id of the outer tag.
    pub fn outer_vid(&self) -> Option<u16> {
        self.outer_tci.map(|t| t & 0x0fff)
    }
    /// VLAN id of the inner tag.
    pub fn inner_vid(&self) -> Option<u16> {
        self.inner_tci.map(|t| t & 0x0fff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 26] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xa8, 0x20, 0x0a, 0x81, 0x00, 0x00,
        0x14, 0x08, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn deconstruct_qinq() {
        let l2 = L2Header::parse(&FRAME).unwrap();
        assert_eq!(l2.dst_addr, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(l2.src_addr.to_string(), "02:00:00:00:00:01");
        assert_eq!(l2.outer_vid(), Some(10));
        assert_eq!(l2.outer_tci.map(|t| t >> 13), Some(1));
        assert_eq!(l2.inner_vid(), Some(20));
        assert_eq!(l2.ethertype, EtherType::IPV4);
        assert_eq!(l2.header_len, 22);
    }

    #[test]
    fn construct_qinq() {
        let mut buf = [0u8; 26];
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::QINQ,
        }
        .emit(&mut Frame::new_unchecked(&mut buf[..]))
        .unwrap();
        let outer = VlanRepr {
            pcp: 1,
            dei: false,
            vid: 10,
            ethertype: EtherType::VLAN,
        };
        outer
            .emit(&mut VlanTag::new_unchecked(&mut buf[14..]))
            .unwrap();
        let inner = VlanRepr {
            pcp: 0,
            dei: false,
            vid: 20,
            ethertype: EtherType::IPV4,
        };
        inner
            .emit(&mut VlanTag::new_unchecked(&mut buf[18..]))
            .unwrap();
        buf[22..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(buf, FRAME);
        assert_eq!(
            VlanRepr::parse(&VlanTag::new_checked(&FRAME[14..]).unwrap()).unwrap(),
            outer
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&FRAME[..13]).unwrap_err(),
            Error::TooShort
        );
        assert_eq!(L2Header::parse(&FRAME[..20]).unwrap_err(), Error::TooShort);
        let bad = VlanRepr {
            pcp: 8,
            dei: false,
            vid: 1,
            ethertype: EtherType::IPV4,
        };
        let mut b = [0u8; 4];
        assert_eq!(
            bad.emit(&mut VlanTag::new_unchecked(&mut b[..])),
            Err(Error::BadField)
        );
    }
}
