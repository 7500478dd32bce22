//! Raw bindings to the system DPDK, generated at build time by bindgen from
//! `pkg-config libdpdk`.
//!
//! DPDK's fast path is `static inline` in its headers; those functions are reached
//! through C wrappers that bindgen generates and `build.rs` compiles, with the suffix
//! `_w` (for example [`rte_eth_rx_burst_w`], [`rte_pktmbuf_free_w`],
//! [`rte_lcore_id_w`]). `rte_errno` is a thread-local macro: read it with
//! [`vr_rte_errno`]. Nothing here is safe API: see `vrouter-dp`'s `dpdk` module.
#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(dead_code)]
#![allow(improper_ctypes)]
#![allow(clippy::all)]
#![allow(clippy::undocumented_unsafe_blocks)]
#![allow(unsafe_op_in_unsafe_fn)]
#![allow(rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
