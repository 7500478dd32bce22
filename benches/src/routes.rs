//! The route sets of the forwarding-table benchmarks (benches/benches/fib.rs and
//! fib_dpdk.rs): IPv4 and IPv6 prefixes shaped like a vRouter's tables, and
//! addresses inside them.

/// A xorshift generator: the same routes and addresses for every run.
pub struct Rng(pub u64);
impl Rng {
    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The first `len` of `width` bits set.
pub fn mask(len: u32, width: u32) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (width - len)) & (u128::MAX >> (128 - width))
    }
}

/// IPv4 prefixes as a vRouter sees them: 50% pod /32 host routes packed in 2048
/// pod /24 subnets, 40% /24 anywhere, 10% /16../23.
pub fn v4_routes(n: usize, seed: u64) -> Vec<(u128, u8)> {
    let mut rng = Rng(seed);
    let subnets: Vec<u32> = (0..2048)
        .map(|_| (rng.next() as u32) & 0xffff_ff00)
        .collect();
    (0..n)
        .map(|_| {
            let r = rng.next() % 10;
            let (a, len) = match r {
                0..=4 => {
                    let s = subnets[(rng.next() % 2048) as usize];
                    (s | (rng.next() as u32 & 0xff), 32)
                }
                5..=8 => (rng.next() as u32, 24),
                _ => (rng.next() as u32, 16 + (rng.next() % 8) as u32),
            };
            (u128::from(a) & mask(len, 32), len as u8)
        })
        .collect()
}

/// IPv6 prefixes: pods' /128s and /64s under a few hundred /48 sites, some /56.
pub fn v6_routes(n: usize, seed: u64) -> Vec<(u128, u8)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let site = (0xfd00u128 << 112) | (u128::from(rng.next() % 512) << 80);
            let r = rng.next() % 10;
            let len: u32 = match r {
                0..=4 => 128,
                5..=8 => 64,
                _ => 56,
            };
            let a = site | (u128::from(rng.next() & 0xffff) << 64) | u128::from(rng.next());
            (a & mask(len, 128), len as u8)
        })
        .collect()
}

/// `n` IPv4 addresses inside random routes of `routes` (random host bits).
pub fn v4_hits(routes: &[(u128, u8)], n: usize, rng: &mut Rng) -> Vec<u32> {
    (0..n)
        .map(|_| {
            let (k, l) = routes[(rng.next() as usize) % routes.len()];
            (k | (u128::from(rng.next() as u32) & !mask(u32::from(l), 32) & 0xffff_ffff)) as u32
        })
        .collect()
}

/// `n` IPv6 addresses inside random routes of `routes` (random host bits).
pub fn v6_hits(routes: &[(u128, u8)], n: usize, rng: &mut Rng) -> Vec<u128> {
    (0..n)
        .map(|_| {
            let (k, l) = routes[(rng.next() as usize) % routes.len()];
            k | ((u128::from(rng.next()) << 64 | u128::from(rng.next())) & !mask(u32::from(l), 128))
        })
        .collect()
}

/// Distinct route targets: 1000 tunnel next-hops, about 4 labels behind each.
pub const TARGETS: usize = 4096;

/// The target of the `i`-th route: one of [`TARGETS`] (next-hop, label) pairs.
pub fn target(i: usize) -> vrouter_dp::fib::RouteTarget {
    let t = i % TARGETS;
    vrouter_dp::fib::RouteTarget {
        nh: vrouter_dp::fib::NhId(1 + (t % 1000) as u32),
        label: Some(16 + t as u32),
    }
}

/// The target of the `i`-th route when every route has its own label (the worst
/// case for the shared target table).
pub fn unique_target(i: usize) -> vrouter_dp::fib::RouteTarget {
    vrouter_dp::fib::RouteTarget {
        nh: vrouter_dp::fib::NhId(1 + (i % 1000) as u32),
        label: Some(i as u32 & 0xfffff),
    }
}

/// `batch` fresh IPv4 routes (not in `base`, which is sorted).
pub fn fresh_routes(base: &[(u128, u8)], batch: usize) -> Vec<(u128, u8)> {
    let mut fresh = v4_routes(batch * 2, 1234 + batch as u64);
    fresh.sort();
    fresh.dedup();
    fresh.retain(|r| base.binary_search(r).is_err());
    fresh.truncate(batch);
    fresh
}

/// The route-update workload (the `route_update` bench, `route_update_count`): a
/// forwarding state with a fabric interface and next-hops 1..=1000 (MPLSoUDP
/// tunnels) whose VRF 1 holds `base`, the sorted and deduplicated routes of
/// `v4_routes(generate, 7)`.
pub mod churn {
    use std::net::{IpAddr, Ipv4Addr};

    use vrouter_dp::fib::{
        Fib, FibConfig, MacAddr, NhId, NhSpec, Prefix, TunnelSpec, TunnelType, Update, Vif, VifId,
        VifKind, VrfId,
    };

    /// The forwarding state and its base routes.
    pub fn setup(generate: usize) -> (Fib, Vec<(u128, u8)>) {
        let mut fib = Fib::new(FibConfig::default());
        let mut fabric = Vif::new(
            VifId(0),
            VifKind::Fabric,
            0,
            MacAddr([0, 0, 0, 0, 0, 1]),
            VrfId(0),
        );
        fabric.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
        let mut updates = vec![Update::AddVif(fabric)];
        for n in 1..=1000u32 {
            updates.push(Update::AddNh(
                NhId(n),
                NhSpec::Tunnel(TunnelSpec {
                    ty: TunnelType::MplsOverUdp,
                    src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
                    dst: IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + n)),
                    out_vif: VifId(0),
                    dmac: MacAddr([0, 0, 0, 0, 0, 2]),
                }),
            ));
        }
        fib.apply(&updates).expect("interfaces and next-hops");
        let mut base = super::v4_routes(generate, 7);
        base.sort();
        base.dedup();
        for chunk in base.chunks(100_000) {
            fib.apply(&adds(chunk)).expect("base routes");
        }
        (fib, base)
    }

    fn prefix(k: u128, l: u8) -> Prefix {
        Prefix::v4(Ipv4Addr::from(k as u32), l).expect("generated prefixes are valid")
    }

    /// Adds of `routes` in VRF 1, the `i`-th to [`super::target`]`(i)`.
    pub fn adds(routes: &[(u128, u8)]) -> Vec<Update> {
        routes
            .iter()
            .enumerate()
            .map(|(i, &(k, l))| Update::AddRoute {
                vrf: VrfId(1),
                prefix: prefix(k, l),
                target: super::target(i),
            })
            .collect()
    }

    /// Deletes of `routes` in VRF 1.
    pub fn dels(routes: &[(u128, u8)]) -> Vec<Update> {
        routes
            .iter()
            .map(|&(k, l)| Update::DelRoute {
                vrf: VrfId(1),
                prefix: prefix(k, l),
            })
            .collect()
    }
}
