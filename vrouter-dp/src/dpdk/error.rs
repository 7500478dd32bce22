//! Errors of the DPDK wrappers: one variant per failing operation, with DPDK's errno.

use thiserror::Error;

/// An error from a DPDK operation.
#[derive(Debug, Error)]
pub enum DpdkError {
    /// `Eal::init` was called a second time in this process.
    #[error("EAL is already initialised in this process (DPDK cannot re-initialise it)")]
    EalAlreadyInitialised,
    /// `rte_eal_init` failed.
    #[error("EAL initialisation failed: {reason} (rte_errno {errno})")]
    EalInit {
        /// rte_errno after the failure.
        errno: i32,
        /// DPDK's text for it.
        reason: String,
    },
    /// An argument for DPDK contained a NUL byte.
    #[error("argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// Creating a mempool failed.
    #[error("mempool {name}: creation failed: {reason} (rte_errno {errno})")]
    MempoolCreate {
        /// Pool name.
        name: String,
        /// rte_errno after the failure.
        errno: i32,
        /// DPDK's text for it.
        reason: String,
    },
    /// A DPDK FIB (`rte_fib` / `rte_fib6`) operation failed.
    #[error("{op} failed: {reason} (errno {errno})")]
    Fib {
        /// The operation, e.g. "rte_fib_create".
        op: &'static str,
        /// The errno DPDK reported.
        errno: i32,
        /// DPDK's text for it.
        reason: String,
    },
    /// No ethdev port has this name.
    #[error("no ethdev port named {0:?}")]
    NoSuchPort(String),
    /// An ethdev operation failed.
    #[error("port {port}: {op} failed: {reason} (errno {errno})")]
    Port {
        /// Port id.
        port: u16,
        /// The operation, e.g. "rte_eth_dev_configure".
        op: &'static str,
        /// Negative errno DPDK returned.
        errno: i32,
        /// DPDK's text for it.
        reason: String,
    },
    /// A port configuration value is out of the device's range.
    #[error("port {port}: {field}: {reason}")]
    PortConf {
        /// Port id.
        port: u16,
        /// The configuration field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Launching work on an lcore failed.
    #[error("lcore {lcore}: launch failed: {reason}")]
    Launch {
        /// The lcore id.
        lcore: u32,
        /// Why.
        reason: String,
    },
    /// The closure run on an lcore panicked.
    #[error("lcore {0}: the launched closure panicked")]
    LcorePanicked(u32),
    /// Device hot-plug or removal failed.
    #[error("device {devargs:?}: {op} failed: {reason} (errno {errno})")]
    Device {
        /// The device arguments or name.
        devargs: String,
        /// "probe" or "remove".
        op: &'static str,
        /// Negative errno DPDK returned.
        errno: i32,
        /// DPDK's text for it.
        reason: String,
    },
}

impl DpdkError {
    pub(crate) fn port(port: u16, op: &'static str, ret: i32) -> Self {
        DpdkError::Port {
            port,
            op,
            errno: ret,
            reason: super::strerror(ret),
        }
    }
}
