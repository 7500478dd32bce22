//! Internet checksums (RFC 1071) and incremental updates (RFC 1624).
//!
//! Sums are carried as folded 16-bit one's-complement values ("partial sums", not
//! complemented); [`finish`] complements a partial sum into the value written on the wire.
//! The incremental functions take and return the *wire* checksum field.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Fold a wide one's-complement accumulator into 16 bits.
#[inline]
pub const fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The partial one's-complement sum of `data` (an odd trailing byte is padded with zero).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// The partial sum of a 20-byte header (an IPv4 header without options): two 64-bit
/// and one 32-bit one's-complement additions with end-around carry, then a fold.
#[inline(always)]
pub fn data20(h: &[u8; 20]) -> u16 {
    let a = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    let b = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let c = u64::from(u32::from_be_bytes([h[16], h[17], h[18], h[19]]));
    let (s, o) = a.overflowing_add(b);
    // `s <= u64::MAX - 1` when the add overflowed, so adding the carry cannot overflow.
    let s = s + u64::from(o);
    let (s, o) = s.overflowing_add(c);
    let s = s + u64::from(o);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// One's-complement sum of several partial sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    let mut acc: u64 = 0;
    for s in sums {
        acc += u64::from(*s);
    }
    fold(acc)
}

/// The wire value of a checksum from a partial sum (its complement).
#[inline]
pub const fn finish(sum: u16) -> u16 {
    !sum
}

/// Partial sum of the IPv4 pseudo-header (RFC 768 / RFC 793).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    let acc = u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(length);
    fold(acc)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let s = u128::from_be_bytes(src.octets());
    let d = u128::from_be_bytes(dst.octets());
    let mut acc: u64 = 0;
    for v in [s, d] {
        acc += (v >> 96) as u64 & 0xffff_ffff;
        acc += (v >> 64) as u64 & 0xffff_ffff;
        acc += (v >> 32) as u64 & 0xffff_ffff;
        acc += v as u64 & 0xffff_ffff;
    }
    acc += u64::from(next_header) + u64::from(length);
    fold(acc)
}

/// Incrementally update a wire checksum after a 16-bit field changed from `old` to `new`
/// (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
#[inline]
pub const fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = (!check) as u64 + (!old) as u64 + new as u64;
    !fold(acc)
}

/// The IPv4 header checksum after the TTL went down by one (any TTL from 1,
/// any protocol): the 16-bit word TTL|protocol fell by 0x0100, so the
/// checksum rises by 0x0100 with an end-around carry (RFC 1141). A result of
/// 0xffff becomes 0x0000, the value [`update16`] (RFC 1624 eqn. 3) and a full
/// recomputation give; the test below checks all 65,536 checksums. Three
/// instructions and a compare, against about 20 for [`update16`] on the
/// per-packet path.
#[inline]
pub const fn ttl_decrement(check: u16) -> u16 {
    let c = check as u32 + 0x0100;
    (c + (c >= 0xffff) as u32) as u16
}

/// Incrementally update a wire checksum after a 32-bit field (e.g. an IPv4 address)
/// changed from `old` to `new`.
#[inline]
pub const fn update32(check: u16, old: u32, new: u32) -> u16 {
    let acc = (!check) as u64
        + (!(old >> 16) & 0xffff) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(acc)
}

/// Incrementally update a wire checksum after an even-length byte run (e.g. an IPv6
/// address) changed from `old` to `new`. Runs of different or odd length are summed with
/// zero padding, which is only correct at an even offset; callers rewrite aligned fields.
#[inline]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let acc = u64::from(!check) + u64::from(!data(old)) + u64::from(data(new));
    !fold(acc)
}

/// A UDP checksum of zero means "no checksum": a computed zero is sent as `0xffff`.
#[inline]
pub const fn udp_wire(check: u16) -> u16 {
    if check == 0 {
        0xffff
    } else {
        check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A naive RFC 1071 reference.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
            i += 2;
        }
        if i < bytes.len() {
            sum += u32::from(bytes[i]) << 8;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn data_matches_reference_for_all_lengths() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..bytes.len() {
            assert_eq!(data(&bytes[..n]), reference(&bytes[..n]), "len {n}");
        }
        for start in 0..150 {
            let h: [u8; 20] = bytes[start..start + 20].try_into().unwrap();
            assert_eq!(data20(&h), reference(&h), "at {start}");
        }
        assert_eq!(data20(&[0xff; 20]), 0xffff);
        let ff = [0xffu8; 64];
        assert_eq!(data(&ff), 0xffff);
    }

    #[test]
    fn ipv4_header_example() {
        // RFC 1071-style worked example: a real IPv4 header with checksum 0xb861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = finish(data(&hdr));
        assert_eq!(c, 0xb861);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(data(&hdr), 0xffff);
    }

    #[test]
    fn incremental_matches_full() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        // TTL decrement: the 16-bit word TTL|proto changes.
        let old = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] -= 1;
        let new = u16::from_be_bytes([hdr[8], hdr[9]]);
        let inc = update16(0xb861, old, new);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, finish(data(&hdr)));
        // Source address rewrite.
        hdr[10..12].copy_from_slice(&inc.to_be_bytes());
        let old32 = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let new32: u32 = 0x0a00_0001;
        hdr[12..16].copy_from_slice(&new32.to_be_bytes());
        let inc2 = update32(inc, old32, new32);
        let inc3 = update_bytes(inc, &old32.to_be_bytes(), &new32.to_be_bytes());
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc2, finish(data(&hdr)));
        assert_eq!(inc3, inc2);
    }

    #[test]
    fn ttl_decrement_is_update16_for_every_checksum() {
        // The change of the TTL|protocol word is the same 0x0100 for every
        // TTL from 1 and every protocol; a few of them, all checksums.
        for (ttl, proto) in [(1u8, 6u8), (2, 17), (64, 1), (255, 0), (128, 255)] {
            let old = u16::from_be_bytes([ttl, proto]);
            let new = u16::from_be_bytes([ttl - 1, proto]);
            for check in 0..=u16::MAX {
                assert_eq!(
                    ttl_decrement(check),
                    update16(check, old, new),
                    "checksum {check:#06x}, ttl {ttl}, protocol {proto}"
                );
            }
        }
    }

    #[test]
    fn pseudo_headers() {
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(10, 0, 0, 2);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 17, 0, 30]);
        assert_eq!(pseudo_header_v4(s, d, 17, 30), data(&bytes));
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::ffff:1:2:3".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s6.octets());
        bytes.extend_from_slice(&d6.octets());
        bytes.extend_from_slice(&70000u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 58, 70000), data(&bytes));
    }
}
