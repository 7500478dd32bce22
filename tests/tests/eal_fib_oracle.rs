//! The forwarding tables' LPM against DPDK's own `rte_fib` (IPv4, DIR-24-8) and
//! `rte_fib6` (IPv6, trie) as an oracle: the same random routes (every prefix
//! length, nested and overlapping, some replaced and some deleted) go into both, and
//! every looked-up address must give the same next-hop, batch and single lookups
//! alike. Needs EAL (hugepages); fails when they are missing.

use vrouter_dp::dpdk::fib::{DpdkFib4, DpdkFib6};
use vrouter_dp::dpdk::Eal;
use vrouter_dp::fib::{Lpm, LpmIndex, NhId, RouteTarget};
use vrouter_tests::{eal_args, require_hugepages};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mask(len: u8, width: u32) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (128 - u32::from(len))) >> (128 - width)
    }
}

fn target(nh: u32) -> RouteTarget {
    RouteTarget {
        nh: NhId(nh),
        label: None,
    }
}

/// Routes of every length under a few /8s (v4) or /16s (v6), so that they nest.
fn routes(rng: &mut Rng, n: usize, v6: bool) -> Vec<(u128, u8, u32)> {
    let width = if v6 { 128 } else { 32 };
    (0..n)
        .map(|i| {
            let len = if v6 {
                [16, 32, 48, 56, 64, 80, 96, 112, 120, 127, 128][(rng.next() % 11) as usize]
                    - (rng.next() % 3) as u8
            } else {
                (8 + rng.next() % 25) as u8
            };
            let top = u128::from(rng.next() % 4);
            let raw = if v6 {
                (0x2001_0db8u128 + top) << 96
                    | u128::from(rng.next()) << 32
                    | u128::from(rng.next())
            } else {
                u128::from((10 + top as u32) << 24 | (rng.next() as u32 & 0x00ff_ffff))
            };
            let key = raw & mask(len, width);
            (key, len, 1 + (i as u32 % 5000))
        })
        .collect()
}

/// Addresses inside random routes, with random host bits, plus some anywhere.
fn addresses(rng: &mut Rng, rs: &[(u128, u8, u32)], n: usize, v6: bool) -> Vec<u128> {
    let width = if v6 { 128 } else { 32 };
    let all = if v6 { u128::MAX } else { 0xffff_ffff };
    (0..n)
        .map(|i| {
            let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
            if i % 10 == 0 {
                return r & all;
            }
            let (k, l, _) = rs[(rng.next() as usize) % rs.len()];
            k | (r & !mask(l, width) & all)
        })
        .collect()
}

#[test]
fn lpm_agrees_with_rte_fib_and_rte_fib6() {
    require_hugepages(160);
    let _eal = Eal::init(eal_args("fib-oracle", "0", true, &[])).expect("EAL init");
    let mut rng = Rng(0x5eed_1234_abcd_0001);

    // IPv4: 20k routes, then 2k replaced (new next-hop) and 2k deleted in ours; the
    // oracle gets the final set.
    let v4 = routes(&mut rng, 20_000, false);
    let (mut lpm, mut idx) = (Lpm::new_v4(), LpmIndex::new_v4());
    for &(k, l, nh) in &v4 {
        idx.insert(&mut lpm, k, l, target(nh)).expect("insert");
    }
    for &(k, l, nh) in v4.iter().take(2000) {
        idx.insert(&mut lpm, k, l, target(nh + 7000))
            .expect("replace");
    }
    for &(k, l, _) in v4.iter().skip(2000).take(2000) {
        idx.remove(&mut lpm, k, l);
    }
    let mut fib = DpdkFib4::new("oracle4", 32_768, 8192).expect("rte_fib_create");
    for (k, l, t) in idx.iter() {
        fib.add(k as u32, l, t.nh.0).expect("rte_fib_add");
    }
    let ips: Vec<u32> = addresses(&mut rng, &v4, 100_000, false)
        .into_iter()
        .map(|a| a as u32)
        .collect();
    let mut hits = 0usize;
    for chunk in ips.chunks(32) {
        let mut ours = [None; 32];
        let mut theirs = [0u64; 32];
        lpm.lookup_v4_batch(chunk, &mut ours);
        fib.lookup_bulk(chunk, &mut theirs);
        for (j, ip) in chunk.iter().enumerate() {
            let o = ours[j].map_or(0, |t| u64::from(t.nh.0));
            assert_eq!(
                lpm.lookup_v4(*ip).map_or(0, |t| u64::from(t.nh.0)),
                o,
                "single and batch lookups of {ip:#010x} differ"
            );
            assert_eq!(
                o,
                theirs[j],
                "{}: ours nh {o}, rte_fib nh {}",
                std::net::Ipv4Addr::from(*ip),
                theirs[j]
            );
            hits += usize::from(o != 0);
        }
    }
    assert!(
        hits > ips.len() / 2,
        "only {hits} of {} hit a route",
        ips.len()
    );

    // IPv6: 5k routes of every length class, 500 replaced, 500 deleted.
    let v6 = routes(&mut rng, 5000, true);
    let (mut lpm6, mut idx6) = (Lpm::new_v6(), LpmIndex::new_v6());
    for &(k, l, nh) in &v6 {
        idx6.insert(&mut lpm6, k, l, target(nh)).expect("insert");
    }
    for &(k, l, nh) in v6.iter().take(500) {
        idx6.insert(&mut lpm6, k, l, target(nh + 7000))
            .expect("replace");
    }
    for &(k, l, _) in v6.iter().skip(500).take(500) {
        idx6.remove(&mut lpm6, k, l);
    }
    let mut fib6 = DpdkFib6::new("oracle6", 8192, 65_536).expect("rte_fib6_create");
    for (k, l, t) in idx6.iter() {
        fib6.add(&k.to_be_bytes(), l, t.nh.0).expect("rte_fib6_add");
    }
    let ips6 = addresses(&mut rng, &v6, 50_000, true);
    let bytes6: Vec<[u8; 16]> = ips6.iter().map(|a| a.to_be_bytes()).collect();
    let mut hits = 0usize;
    for (chunk, bchunk) in ips6.chunks(32).zip(bytes6.chunks(32)) {
        let mut ours = [None; 32];
        let mut theirs = [0u64; 32];
        lpm6.lookup_v6_batch(chunk, &mut ours);
        fib6.lookup_bulk(bchunk, &mut theirs);
        for (j, ip) in chunk.iter().enumerate() {
            let o = ours[j].map_or(0, |t| u64::from(t.nh.0));
            assert_eq!(
                lpm6.lookup_v6(*ip).map_or(0, |t| u64::from(t.nh.0)),
                o,
                "single and batch lookups of {ip:#034x} differ"
            );
            assert_eq!(
                o,
                theirs[j],
                "{}: ours nh {o}, rte_fib6 nh {}",
                std::net::Ipv6Addr::from(*ip),
                theirs[j]
            );
            hits += usize::from(o != 0);
        }
    }
    assert!(
        hits > ips6.len() / 2,
        "only {hits} of {} hit a route",
        ips6.len()
    );
}
