//! vrouter-dp: a userspace vRouter data plane on DPDK.
//!
//! Module map (see DESIGN.md in the repository for the whole picture):
//!
//! * [`dpdk`]: safe wrappers over `dpdk-sys` (EAL, mempools, mbufs, ethdev ports,
//!   lcores, vdev hot-plug). The only module allowed to use `unsafe`.
//! * [`packet`]: wire formats as zero-copy views, checksums, flow keys, encap/decap.
//!   Pure Rust, generic over [`packet::PacketBuf`].
//! * [`xconnect`]: the L2 cross-connect worker used by the first main job.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod dpdk;
pub mod packet;
