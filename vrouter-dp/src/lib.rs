//! vrouter-dp: a userspace vRouter data plane on DPDK.
//!
//! Module map (see DESIGN.md in the repository for the whole picture):
//!
//! * [`dpdk`]: safe wrappers over `dpdk-sys` (EAL, mempools, mbufs, ethdev ports,
//!   lcores, vdev hot-plug). The only module allowed to use `unsafe`.
//! * [`packet`]: wire formats as zero-copy views, checksums, flow keys, encap/decap.
//!   Pure Rust, generic over [`packet::PacketBuf`].
//! * [`fib`]: forwarding state (vifs, next-hops, per-VRF LPM and bridge tables,
//!   MPLS labels, VXLAN VNIs) and its RCU publication to the workers.
//! * [`pipeline`]: what happens to one received burst, with drop reasons.
//! * [`control`]: the agent API (gRPC over a Unix socket), `vrouterctl`'s client,
//!   and the Prometheus exporter.
//! * [`worker`]: the poll loops of pinned lcores and their counters.
//! * [`runtime`]: config -> EAL -> ports -> workers -> stats -> shutdown.
#![deny(unsafe_code)]

pub mod control;
#[allow(unsafe_code)]
pub mod dpdk;
pub mod fib;
pub mod packet;
pub mod pipeline;
pub mod runtime;
pub mod worker;
