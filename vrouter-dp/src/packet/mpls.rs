//! MPLS label stack entries (RFC 3032), the label stack walk, and the optional 4-byte
//! control word (RFC 4385) in front of L2 payloads.

use super::error::{Error, Result};
use super::rd32;

/// UDP destination port of MPLS-in-UDP (RFC 7510).
pub const UDP_PORT: u16 = 6635;
/// The legacy MPLSoUDP port Tungsten Fabric also accepts on receive.
pub const UDP_PORT_LEGACY: u16 = 51234;
/// Length of one label stack entry.
pub const LSE_LEN: usize = 4;
/// Length of the control word.
pub const CONTROL_WORD_LEN: usize = 4;
/// Largest label value (20 bits).
pub const MAX_LABEL: u32 = 0x000f_ffff;
/// The label TF pops (when not bottom of stack) before looking at the next one.
pub const POP_LABEL: u32 = 0x000f_ffff;
/// Deepest label stack the walker accepts ([`Error::BadLabelStack`] beyond).
pub const MAX_STACK_DEPTH: usize = 4;

/// A read/write view of one label stack entry.
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
    /// Ensure the 4 bytes are there.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < LSE_LEN {
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
    /// The whole entry.
    #[inline]
    pub fn word(&self) -> u32 {
        rd32(self.buffer.as_ref(), 0)
    }
    /// Label (20 bits).
    #[inline]
    pub fn label(&self) -> u32 {
        self.word() >> 12
    }
    /// Traffic class (3 bits, formerly EXP).
    #[inline]
    pub fn tc(&self) -> u8 {
        ((self.word() >> 9) & 7) as u8
    }
    /// Bottom-of-stack flag.
    #[inline]
    pub fn bos(&self) -> bool {
        self.word() & 0x100 != 0
    }
    /// TTL.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.word() as u8
    }
    /// What follows this entry.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[LSE_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write the whole entry.
    #[inline]
    pub fn set_word(&mut self, w: u32) {
        self.buffer.as_mut()[..LSE_LEN].copy_from_slice(&w.to_be_bytes());
    }
    /// Set the TTL.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[3] = ttl;
    }
}

/// The owned form of a label stack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MplsRepr {
    /// Label (20 bits).
    pub label: u32,
    /// Traffic class (3 bits).
    pub tc: u8,
    /// Bottom of stack.
    pub bos: bool,
    /// TTL.
    pub ttl: u8,
}

impl MplsRepr {
    /// Read an entry.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        p.check_len()?;
        Ok(Self::from_word(p.word()))
    }
    /// Decode a 32-bit entry.
    #[inline]
    pub const fn from_word(w: u32) -> Self {
        Self {
            label: w >> 12,
            tc: ((w >> 9) & 7) as u8,
            bos: w & 0x100 != 0,
            ttl: w as u8,
        }
    }
    /// Encode as a 32-bit entry (`label << 12 | tc << 9 | S << 8 | ttl`); fields are
    /// masked to their widths.
    #[inline]
    pub const fn word(&self) -> u32 {
        ((self.label & MAX_LABEL) << 12)
            | (((self.tc & 7) as u32) << 9)
            | ((self.bos as u32) << 8)
            | self.ttl as u32
    }
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        LSE_LEN
    }
    /// Write the entry; an out-of-range label or TC gives [`Error::BadField`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        p.check_len()?;
        if self.label > MAX_LABEL || self.tc > 7 {
            return Err(Error::BadField);
        }
        p.set_word(self.word());
        Ok(())
    }
}

/// The result of walking a label stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelStack {
    /// The label that selects the next hop: the top entry, or the one after a leading
    /// non-bottom [`POP_LABEL`] entry, which is popped as TF does.
    pub top: MplsRepr,
    /// Number of entries up to and including the bottom of stack.
    pub depth: usize,
    /// Bytes of the whole stack (`depth * 4`): the payload starts here.
    pub len: usize,
}

impl LabelStack {
    /// Walk entries from the start of `bytes` to the bottom of stack. Errors:
    /// [`Error::TooShort`] when the bytes end first, [`Error::BadLabelStack`] when no
    /// bottom of stack is found within [`MAX_STACK_DEPTH`] entries.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut top: Option<MplsRepr> = None;
        for depth in 1..=MAX_STACK_DEPTH {
            let w = bytes
                .get((depth - 1) * LSE_LEN..depth * LSE_LEN)
                .ok_or(Error::TooShort)?;
            let e = MplsRepr::from_word(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            if top.is_none() && !(depth == 1 && e.label == POP_LABEL && !e.bos) {
                top = Some(e);
            }
            if e.bos {
                return match top {
                    Some(top) => Ok(Self {
                        top,
                        depth,
                        len: depth * LSE_LEN,
                    }),
                    None => Err(Error::BadLabelStack),
                };
            }
        }
        Err(Error::BadLabelStack)
    }
}

/// Whether `bytes` starts with a valid control word (first nibble 0, RFC 4385).
#[inline]
pub fn has_control_word(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(b) if b >> 4 == 0) && bytes.len() >= CONTROL_WORD_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_roundtrip() {
        let r = MplsRepr {
            label: 0xabcde,
            tc: 5,
            bos: true,
            ttl: 64,
        };
        let mut b = [0u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(b, [0xab, 0xcd, 0xeb, 0x40]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.label(), p.tc(), p.bos(), p.ttl()),
            (0xabcde, 5, true, 64)
        );
        assert_eq!(MplsRepr::parse(&p).unwrap(), r);
        let bad = MplsRepr {
            label: 1 << 20,
            ..r
        };
        assert_eq!(
            bad.emit(&mut Packet::new_unchecked(&mut b[..])),
            Err(Error::BadField)
        );
    }

    #[test]
    fn stack_walk() {
        let e = |label, bos| {
            MplsRepr {
                label,
                tc: 0,
                bos,
                ttl: 9,
            }
            .word()
            .to_be_bytes()
        };
        let one = e(100, true);
        let s = LabelStack::parse(&one).unwrap();
        assert_eq!((s.top.label, s.depth, s.len), (100, 1, 4));
        let mut two = Vec::new();
        two.extend_from_slice(&e(POP_LABEL, false));
        two.extend_from_slice(&e(200, true));
        let s = LabelStack::parse(&two).unwrap();
        assert_eq!((s.top.label, s.depth, s.len), (200, 2, 8));
        let mut t = Vec::new();
        t.extend_from_slice(&e(7, false));
        t.extend_from_slice(&e(8, true));
        assert_eq!(LabelStack::parse(&t).unwrap().top.label, 7);
        assert_eq!(LabelStack::parse(&t[..6]).unwrap_err(), Error::TooShort);
        let deep: Vec<u8> = (0..MAX_STACK_DEPTH + 1).flat_map(|_| e(1, false)).collect();
        assert_eq!(LabelStack::parse(&deep).unwrap_err(), Error::BadLabelStack);
        assert_eq!(
            LabelStack::parse(&e(POP_LABEL, true)).unwrap().top.label,
            POP_LABEL
        );
        assert!(has_control_word(&[0, 0, 0, 0]));
        assert!(!has_control_word(&[0x45, 0, 0, 0]));
        assert!(!has_control_word(&[0, 0]));
    }
}
