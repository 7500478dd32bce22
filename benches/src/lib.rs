//! Shared helpers for the benchmarks.

pub mod flow_keys;
pub mod routes;

use memmap2::{Advice, MmapMut, MmapOptions};

/// A zeroed anonymous mapping of `bytes` for the memory examples, from 2 MiB
/// hugepages when the kernel has them, otherwise from normal pages advised for
/// transparent hugepages; with a description of which it got.
pub fn map_large(bytes: usize) -> (MmapMut, &'static str) {
    if let Ok(m) = MmapOptions::new().len(bytes).huge(Some(21)).map_anon() {
        return (m, "2 MiB hugepages");
    }
    #[allow(clippy::expect_used)] // measurement tools: no mapping, no measurement
    let m = MmapOptions::new()
        .len(bytes)
        .map_anon()
        .expect("anonymous mapping");
    let kind = if m.advise(Advice::HugePage).is_ok() {
        "normal pages, transparent hugepages advised"
    } else {
        "normal pages"
    };
    (m, kind)
}

pub mod pipeline_fixture {
    //! The forwarding state and frames of the pipeline benchmarks: a pod (port 3,
    //! VRF 1, policy and anti-spoofing on) sending UDP to 10.3.0.0/16, routed over
    //! VXLAN to a remote node through the fabric (port 0).

    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use flow_table::{FlowTable, FlowTableConfig};
    use vrouter_dp::fib::{
        Fib, FibConfig, FibSnapshot, MacAddr, NhId, NhSpec, PolicyAction, PolicyRule, Prefix,
        RouteTarget, TunnelSpec, TunnelType, Update, Vif, VifId, VifKind, VrfId,
    };
    use vrouter_dp::packet::checksum;

    pub const ROUTER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
    pub const POD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    pub const FLOWS: u32 = 1 << 20;

    /// A 64-byte frame (60 + FCS) pod -> 10.3.x.y UDP, flow number `i`.
    pub fn frame(i: u32, out: &mut [u8; 60]) {
        out.fill(0);
        out[0..6].copy_from_slice(&ROUTER);
        out[6..12].copy_from_slice(&POD_MAC);
        out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut out[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&46u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 1, 0, 3]);
        ip[16..20].copy_from_slice(&[10, 3, (i >> 8) as u8, i as u8]);
        let c = !checksum::data(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let u = &mut out[34..42];
        u[0..2].copy_from_slice(&(1024 + (i >> 16) as u16).to_be_bytes());
        u[2..4].copy_from_slice(&5201u16.to_be_bytes());
        u[4..6].copy_from_slice(&26u16.to_be_bytes());
    }

    pub fn setup(capacity: usize) -> (Arc<FibSnapshot>, FlowTable) {
        let mut fib = Fib::new(FibConfig::default());
        let mut fabric = Vif::new(
            VifId(0),
            VifKind::Fabric,
            0,
            MacAddr([0x52, 0x54, 0, 0, 0, 1]),
            VrfId(0),
        );
        fabric.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
        let mut pod = Vif::new(VifId(3), VifKind::PodVhost, 3, MacAddr(POD_MAC), VrfId(1));
        pod.ipv4 = vec![Ipv4Addr::new(10, 1, 0, 3)];
        pod.anti_spoof = true;
        pod.policy = true;
        pod.rules = Arc::from(vec![
            PolicyRule {
                proto: Some(6),
                ..PolicyRule::any(PolicyAction::Deny)
            },
            PolicyRule::any(PolicyAction::Allow),
        ]);
        let snap = fib
            .apply(&[
                Update::AddVif(fabric),
                Update::AddVif(pod),
                Update::AddNh(
                    NhId(20),
                    NhSpec::Tunnel(TunnelSpec {
                        ty: TunnelType::Vxlan,
                        src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
                        dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2)),
                        out_vif: VifId(0),
                        dmac: MacAddr([0x52, 0x54, 0, 0, 0, 2]),
                    }),
                ),
                Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: Prefix::v4(Ipv4Addr::new(10, 3, 0, 0), 16).expect("prefix"),
                    target: RouteTarget {
                        nh: NhId(20),
                        label: Some(5001),
                    },
                },
            ])
            .expect("bench state is valid");
        let flows = FlowTable::new(&FlowTableConfig {
            capacity,
            hugepages: true,
            file: None,
        })
        .expect("flow table");
        (snap, flows)
    }
}

pub mod decap_fixture {
    //! The forwarding state and frames of the fabric -> pod benchmarks: VXLAN from a
    //! remote node (192.168.0.2) to this node (192.168.0.1, fabric port 0), VNI 100
    //! translated to VRF 1 and routed to a pod (port 3, 10.1.0.3, policy on): the
    //! `vxlan-decap` scenario of `benches/pktgen/run.sh`.

    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use flow_table::{FlowTable, FlowTableConfig};
    use vrouter_dp::fib::{
        Fib, FibConfig, FibSnapshot, MacAddr, NhId, NhSpec, PolicyAction, PolicyRule, Prefix,
        RouteTarget, Update, Vif, VifId, VifKind, Vni, VrfId,
    };
    use vrouter_dp::packet::checksum;

    use crate::pipeline_fixture::{POD_MAC, ROUTER};

    /// The fabric interface's MAC.
    pub const FABRIC_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    /// The underlay neighbour's MAC.
    pub const NEIGH_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
    /// The VNI of the pod's virtual network.
    pub const VNI: u32 = 100;
    /// Frame length: outer Ethernet, IPv4, UDP, VXLAN (50 bytes) around the 60-byte
    /// inner frame of a 64-byte packet.
    pub const LEN: usize = 50 + 60;

    fn ipv4_header(h: &mut [u8], len: u16, proto: u8, src: [u8; 4], dst: [u8; 4]) {
        h[0] = 0x45;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        h[8] = 64;
        h[9] = proto;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let c = !checksum::data(&h[..20]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// A VXLAN frame from the remote node carrying UDP 10.3.x.y -> the pod, flow
    /// number `i` (inner source address and port), entropy source port from `i`.
    pub fn frame(i: u32, out: &mut [u8; LEN]) {
        out.fill(0);
        out[0..6].copy_from_slice(&FABRIC_MAC);
        out[6..12].copy_from_slice(&NEIGH_MAC);
        out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        ipv4_header(
            &mut out[14..34],
            (LEN - 14) as u16,
            17,
            [192, 168, 0, 2],
            [192, 168, 0, 1],
        );
        let u = &mut out[34..42];
        u[0..2].copy_from_slice(&(49152 + (i & 0x3fff) as u16).to_be_bytes());
        u[2..4].copy_from_slice(&4789u16.to_be_bytes());
        u[4..6].copy_from_slice(&((LEN - 34) as u16).to_be_bytes());
        out[42] = 0x08;
        out[46..49].copy_from_slice(&VNI.to_be_bytes()[1..4]);
        let inner = &mut out[50..];
        inner[0..6].copy_from_slice(&ROUTER);
        inner[6..12].copy_from_slice(&NEIGH_MAC);
        inner[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        ipv4_header(
            &mut inner[14..34],
            46,
            17,
            [10, 3, (i >> 8) as u8, i as u8],
            [10, 1, 0, 3],
        );
        let u = &mut inner[34..42];
        u[0..2].copy_from_slice(&(1024 + (i >> 16) as u16).to_be_bytes());
        u[2..4].copy_from_slice(&5201u16.to_be_bytes());
        u[4..6].copy_from_slice(&26u16.to_be_bytes());
    }

    /// The forwarding state and a flow table of `capacity` entries.
    pub fn setup(capacity: usize) -> (Arc<FibSnapshot>, FlowTable) {
        let mut fib = Fib::new(FibConfig::default());
        let mut fabric = Vif::new(VifId(0), VifKind::Fabric, 0, MacAddr(FABRIC_MAC), VrfId(0));
        fabric.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
        let mut pod = Vif::new(VifId(3), VifKind::PodVhost, 3, MacAddr(POD_MAC), VrfId(1));
        pod.ipv4 = vec![Ipv4Addr::new(10, 1, 0, 3)];
        pod.anti_spoof = true;
        pod.policy = true;
        pod.rules = Arc::from(vec![
            PolicyRule {
                proto: Some(6),
                ..PolicyRule::any(PolicyAction::Deny)
            },
            PolicyRule::any(PolicyAction::Allow),
        ]);
        let snap = fib
            .apply(&[
                Update::AddVif(fabric),
                Update::AddVif(pod),
                Update::AddNh(
                    NhId(10),
                    NhSpec::Encap {
                        vif: VifId(3),
                        dmac: MacAddr(POD_MAC),
                    },
                ),
                Update::AddNh(NhId(30), NhSpec::VrfTranslate { vrf: VrfId(1) }),
                Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: Prefix::v4(Ipv4Addr::new(10, 1, 0, 3), 32).expect("prefix"),
                    target: RouteTarget {
                        nh: NhId(10),
                        label: None,
                    },
                },
                Update::AddVni(Vni(VNI), NhId(30)),
            ])
            .expect("bench state is valid");
        let flows = FlowTable::new(&FlowTableConfig {
            capacity,
            hugepages: true,
            file: None,
        })
        .expect("flow table");
        (snap, flows)
    }
}

/// Bursts of 32 heap-buffer frames through one [`Pipeline`], for the pipeline
/// benches and the instruction-count examples: frames of `N` bytes written by
/// `frame(i)` for flow `i`, received on `port`; what the pipeline sends or drops is
/// reused for the next burst.
///
/// [`Pipeline`]: vrouter_dp::pipeline::Pipeline
pub struct BurstRunner<const N: usize> {
    /// The pipeline (its counters tell what happened).
    pub pipe: vrouter_dp::pipeline::Pipeline,
    out: vrouter_dp::pipeline::Output<vrouter_dp::packet::HeapBuf>,
    bufs: Vec<vrouter_dp::packet::HeapBuf>,
    f: [u8; N],
    frame: fn(u32, &mut [u8; N]),
    port: u16,
    flows: u32,
    next: u32,
    /// [`BurstRunner::scattered`]: bursts of unrelated flows.
    scatter: bool,
    /// The flow whose frame `f` holds.
    written: Option<u32>,
}

impl<const N: usize> BurstRunner<N> {
    /// A runner over `flows` flows (at least 1).
    pub fn new(frame: fn(u32, &mut [u8; N]), port: u16, flows: u32) -> Self {
        use vrouter_dp::packet::HeapBuf;
        use vrouter_dp::pipeline::{Output, Pipeline, BURST};
        Self {
            pipe: Pipeline::new(64),
            out: Output::new(),
            bufs: (0..BURST)
                .map(|_| HeapBuf::with_room(&[0; N], 128, 64))
                .collect(),
            f: [0; N],
            frame,
            port,
            flows: flows.max(1),
            next: 0,
            scatter: false,
            written: None,
        }
    }

    /// The same runner, its [`BurstRunner::step`] bursts made of flows far
    /// apart in learning order (flow numbers multiplied by an odd constant
    /// modulo the flow count, a power of two: a bijection). Plain steps take
    /// 32 flows learned one after the other, whose table entries a table
    /// that allocates in learning order keeps side by side; live traffic
    /// mixes flows learned at different times.
    pub fn scattered(mut self) -> Self {
        assert!(
            self.flows.is_power_of_two(),
            "scattered bursts need 2^n flows"
        );
        self.scatter = true;
        self
    }

    /// Rewrites the burst's frames for flows `first..first + 32` (modulo the
    /// flow count), without running the pipeline. A frame is generated only when
    /// the flow changes (with one flow: once), then copied into each buffer.
    pub fn reset(&mut self, first: u32) {
        self.reset_with(first, false);
    }

    fn reset_with(&mut self, first: u32, scatter: bool) {
        for (k, b) in self.bufs.iter_mut().enumerate() {
            let mut i = (first + k as u32) % self.flows;
            if scatter {
                i = i.wrapping_mul(0x9E37_79B1) % self.flows;
            }
            if self.written != Some(i) {
                (self.frame)(i, &mut self.f);
                self.written = Some(i);
            }
            let _ = b.reset_to(&self.f, 128);
            b.set_port(self.port);
        }
    }

    /// One burst of flows `first..first + 32`.
    pub fn run(&mut self, env: &vrouter_dp::pipeline::Env<'_>, first: u32) {
        self.run_with(env, first, false);
    }

    fn run_with(&mut self, env: &vrouter_dp::pipeline::Env<'_>, first: u32, scatter: bool) {
        use vrouter_dp::pipeline::HeapPool;
        self.reset_with(first, scatter);
        self.pipe
            .process(env, &mut HeapPool, self.bufs.drain(..), &mut self.out);
        for t in self.out.tx.iter_mut() {
            self.bufs.extend(t.bufs.drain(..));
        }
        self.bufs.extend(self.out.drops.drain(..));
        self.out.tx.clear();
    }

    /// Every flow once, in order, so that the pipeline learns them.
    pub fn learn(&mut self, env: &vrouter_dp::pipeline::Env<'_>) {
        let mut i = 0u32;
        while i < self.flows {
            self.run(env, i);
            i += vrouter_dp::pipeline::BURST as u32;
        }
    }

    /// The next burst of a walk over the flows in a scattered order.
    pub fn step(&mut self, env: &vrouter_dp::pipeline::Env<'_>) {
        self.run_with(env, self.next, self.scatter);
        self.advance();
    }

    /// What [`BurstRunner::step`] costs besides the pipeline: the next burst's
    /// frames are written into the buffers, and nothing runs them.
    pub fn step_frames_only(&mut self) {
        self.reset_with(self.next, self.scatter);
        self.advance();
    }

    fn advance(&mut self) {
        self.next = self
            .next
            .wrapping_add(7919 * vrouter_dp::pipeline::BURST as u32)
            % self.flows;
    }
}

/// The driver of the instruction-count examples (`pipeline_count`, `decap_count`):
/// reads `FLOWS BURSTS [frames]` from the command line, builds the state with
/// `setup`, learns every flow (timed: the first packet of every flow, policy check
/// and the insert of the flow and its reverse), runs BURSTS bursts
/// ([`BurstRunner::step`]) and prints the counters. With `frames`, the bursts only
/// write their frames ([`BurstRunner::step_frames_only`]): the harness's own share
/// of a count, to subtract (with one flow the frame is written once, so it is
/// only the copy into each buffer; with many flows each packet's frame is built).
pub fn count_bursts<const N: usize>(
    setup: fn(
        usize,
    ) -> (
        std::sync::Arc<vrouter_dp::fib::FibSnapshot>,
        flow_table::FlowTable,
    ),
    frame: fn(u32, &mut [u8; N]),
    port: u16,
) {
    let mut args = std::env::args().skip(1);
    let flows: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let bursts: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let frames_only = match args.next().as_deref() {
        None => false,
        Some("frames") => true,
        Some(other) => {
            eprintln!("third argument: `frames` or nothing, not {other:?}");
            std::process::exit(2);
        }
    };
    let capacity = (2 * flows as usize).next_power_of_two().max(4096) * 2;
    let (snap, table) = setup(capacity);
    let env = vrouter_dp::pipeline::Env {
        fib: &snap,
        flows: &table,
        now: 1,
    };
    let mut r = BurstRunner::new(frame, port, flows);
    let t = std::time::Instant::now();
    r.learn(&env);
    let learn = t.elapsed();
    for _ in 0..bursts {
        if frames_only {
            r.step_frames_only();
        } else {
            r.step(&env);
        }
    }
    let c = r.pipe.counters();
    println!(
        "flows {flows} bursts {bursts} rx {} tx {} drops {} learned {} hits {}; \
         learning took {:.1} ms ({:.0} ns per flow)",
        c.rx,
        c.tx,
        c.total_drops(),
        c.flows_learned,
        c.flow_hits,
        learn.as_secs_f64() * 1e3,
        learn.as_nanos() as f64 / f64::from(flows.max(1))
    );
}
