//! The table's hash of a flow key: four folded 64-bit multiplies over the
//! key's five words.
//!
//! A folded multiply takes the 128-bit product of two 64-bit values and XORs
//! its halves. Each pair of address words, XORed with secret words, is
//! folded into one word, and so is the fifth word with a secret word; the
//! three multiplies run in parallel, and a last one folds their results:
//!
//! ```text
//! a = fold(w0 ^ k0, w1 ^ k1)        source address
//! b = fold(w2 ^ k2, w3 ^ k3)        destination address
//! c = fold(w4 ^ k4, k5)             ports, VRF, family and protocol
//! h = fold(a ^ c, b ^ k6)
//! ```
//!
//! The fifth word gets a multiply of its own because a field that varies
//! over a few bits only (a destination port) moves the high half of one
//! product by less than its top bits: fed straight into the last multiply,
//! the hash's top bits (the first group) came out uneven over the
//! destination ports of one address pair (chi-square 1711 over 1024 bins,
//! the test below). The table uses three parts of `h`: bits 42..64 and
//! 0..24 pick the key's two groups, bits 24..32 are its tag.
//!
//! This is the mixing step of ahash's fallback hash and of wyhash, without
//! their length prefix and generic byte loop: the key is always 40 bytes.
//! ahash's `hash_one` of the same five words was 34 instructions on the
//! lookup path and this is about 24 (BENCHMARKS.md, "A hash for the fixed
//! 40-byte key"). The seven secret words come from the table's four seeds
//! (the header records the seeds, so a process that maps the table file
//! derives the same words).

/// The 128-bit product of `a` and `b`, its halves XORed together.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// splitmix64's output function: a bijection of `u64` that spreads every
/// input bit over the whole word.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The secret words of one table's key hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher {
    k: [u64; 7],
}

impl KeyHasher {
    /// The hasher of a table with these seeds. Word `i` is splitmix64 of
    /// seed `i mod 4` plus `i + 1` times the golden ratio, so the seven
    /// words differ even where seeds repeat.
    pub(crate) fn new(seeds: [u64; 4]) -> KeyHasher {
        KeyHasher {
            k: core::array::from_fn(|i| {
                let s = seeds[i % seeds.len()];
                mix64(s.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            }),
        }
    }

    /// The 64-bit hash of a key's five words.
    #[inline(always)]
    pub(crate) fn hash(&self, w: &[u64; 5]) -> u64 {
        let [k0, k1, k2, k3, k4, k5, k6] = self.k;
        let a = fold_mul(w[0] ^ k0, w[1] ^ k1);
        let b = fold_mul(w[2] ^ k2, w[3] ^ k3);
        let c = fold_mul(w[4] ^ k4, k5);
        fold_mul(a ^ c, b ^ k6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SEEDS;
    use crate::key::{FlowKey, VrfId, PROTO_TCP, PROTO_UDP};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Chi-square statistic of `values` over `bins` equal bins.
    fn chi_square(values: impl Iterator<Item = usize>, bins: usize) -> f64 {
        let mut count = vec![0u64; bins];
        let mut n = 0u64;
        for v in values {
            count[v % bins] += 1;
            n += 1;
        }
        let expect = n as f64 / bins as f64;
        count
            .iter()
            .map(|&c| (c as f64 - expect).powi(2) / expect)
            .sum()
    }

    fn vrf(i: u32) -> VrfId {
        VrfId::new(i).expect("vrf in range")
    }

    /// Families of keys that differ only in one field, counted up: what a
    /// node's flows look like (many ports of one pair of addresses, many
    /// addresses of one subnet, one 5-tuple in many VRFs).
    fn families() -> Vec<(&'static str, Vec<FlowKey>)> {
        const N: u32 = 1 << 16;
        let a = Ipv4Addr::new(10, 1, 0, 3);
        let b = Ipv4Addr::new(10, 2, 0, 9);
        let a6 = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 3);
        let b6 = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 9);
        let each = |f: &dyn Fn(u32) -> FlowKey| (0..N).map(f).collect::<Vec<_>>();
        let net = |i: u32| Ipv4Addr::from(0x0a00_0000 + i);
        let (tcp, udp) = (PROTO_TCP, PROTO_UDP);
        vec![
            (
                "source port",
                each(&|i| FlowKey::v4(vrf(1), a, b, tcp, i as u16, 80)),
            ),
            (
                "destination port",
                each(&|i| FlowKey::v4(vrf(1), a, b, udp, 4789, i as u16)),
            ),
            (
                "source address",
                each(&|i| FlowKey::v4(vrf(1), net(i), b, tcp, 40000, 80)),
            ),
            (
                "destination address",
                each(&|i| FlowKey::v4(vrf(1), a, net(i), tcp, 40000, 80)),
            ),
            ("vrf", each(&|i| FlowKey::v4(vrf(i), a, b, tcp, 40000, 80))),
            (
                "IPv6 source address, low bits",
                each(&|i| {
                    let src = Ipv6Addr::from(u128::from(a6) + u128::from(i));
                    FlowKey::v6(vrf(1), src, b6, tcp, 40000, 80)
                }),
            ),
            (
                "IPv6 destination prefix, high bits",
                each(&|i| {
                    let dst = Ipv6Addr::from(u128::from(b6) + (u128::from(i) << 80));
                    FlowKey::v6(vrf(1), a6, dst, tcp, 40000, 80)
                }),
            ),
        ]
    }

    /// The parts of the hash the table uses, the first group (top bits),
    /// the second group (bits 0..24, the top of the hash rotated left by
    /// 40) and the tag (bits 24..32), are spread evenly over every family,
    /// alone and in pairs: chi-square over 1024 bins (1023 degrees of
    /// freedom, mean 1023, standard deviation 45) below 1300, about six
    /// deviations (over 256 bins for the tag alone: below 391). The inputs
    /// and seeds are fixed, so the figures are too; a hash that ignored one
    /// key word, or parts that repeated each other, scores in the tens of
    /// thousands for some family. (Three multiplies, the fifth word XORed
    /// into the last one's input, scored 1711 for the first group over the
    /// destination ports.)
    #[test]
    fn groups_and_tags_are_even_for_structured_keys() {
        let h = KeyHasher::new(SEEDS);
        // Five bits of each part, for the pairs.
        let g1 = |x: u64| x >> 59;
        let g2 = |x: u64| (x >> 19) & 31;
        let tag = |x: u64| (x >> 27) & 31;
        for (name, keys) in families() {
            let hashes: Vec<u64> = keys.iter().map(|k| h.hash(k.as_words())).collect();
            let chi = |f: &dyn Fn(u64) -> u64, bins| {
                chi_square(hashes.iter().map(|&x| f(x) as usize), bins)
            };
            let parts = [
                ("first group", chi(&|x| x >> 54, 1024), 1300.0),
                ("second group", chi(&|x| (x >> 14) & 1023, 1024), 1300.0),
                ("tag", chi(&|x| (x >> 24) & 255, 256), 391.0),
                ("both groups", chi(&|x| g1(x) << 5 | g2(x), 1024), 1300.0),
                (
                    "first group and tag",
                    chi(&|x| g1(x) << 5 | tag(x), 1024),
                    1300.0,
                ),
                (
                    "second group and tag",
                    chi(&|x| g2(x) << 5 | tag(x), 1024),
                    1300.0,
                ),
            ];
            for (what, chi, limit) in parts {
                assert!(chi < limit, "{name}: {what} chi-square {chi:.0}");
            }
        }
    }

    /// Every bit of every key word changes the hash.
    #[test]
    fn every_key_bit_changes_the_hash() {
        let h = KeyHasher::new(SEEDS);
        let base = FlowKey::v6(
            vrf(77),
            Ipv6Addr::new(0xfd00, 1, 2, 3, 4, 5, 6, 7),
            Ipv6Addr::new(0xfd00, 8, 9, 10, 11, 12, 13, 14),
            PROTO_TCP,
            40000,
            443,
        );
        let w = *base.as_words();
        let hb = h.hash(&w);
        for word in 0..5 {
            for bit in 0..64 {
                let mut v = w;
                v[word] ^= 1 << bit;
                assert_ne!(h.hash(&v), hb, "word {word} bit {bit}");
            }
        }
    }

    /// The secret words depend on every seed, and differ from each other.
    #[test]
    fn secret_words_come_from_every_seed() {
        let base = KeyHasher::new(SEEDS);
        let mut all: Vec<u64> = base.k.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 7);
        for i in 0..4 {
            let mut s = SEEDS;
            s[i] ^= 1;
            let other = KeyHasher::new(s);
            assert!(
                other.k.iter().zip(&base.k).any(|(a, b)| a != b),
                "seed {i} unused"
            );
        }
        let same = [7u64; 4];
        let mut k = KeyHasher::new(same).k.to_vec();
        k.sort_unstable();
        k.dedup();
        assert_eq!(k.len(), 7, "equal seeds still give seven different words");
    }
}
