//! The 802.3ad (LACP, bonding mode 4) timers of a `net_bonding` port.
//!
//! DPDK 22.11's bonding driver has no devarg for the LACP rate; its mode-4 timing is
//! set with `rte_eth_bond_8023ad_setup` and read back with
//! `rte_eth_bond_8023ad_conf_get`. What each timer does in DPDK's state machines:
//!
//! * `fast_periodic_ms` / `slow_periodic_ms`: the interval between our LACPDUs. DPDK
//!   uses the fast one while the *partner's* LACPDUs carry the LACP Timeout bit
//!   (the partner asks for fast LACPDUs), the slow one otherwise.
//! * `short_timeout_ms` / `long_timeout_ms`: how long a partner stays current without
//!   a LACPDU. DPDK uses the short one only when *our* Timeout bit is set, and the
//!   long one otherwise (the short one also runs the EXPIRED state).
//!
//! DPDK sets our actor state once per member (`LACP_ACTIVE | AGGREGATION |
//! DEFAULTED`) and no API sets the actor's LACP Timeout bit: our LACPDUs always
//! announce the long timeout, so a standard partner sends its LACPDUs every 30 s
//! whatever we configure, and we cannot time it out sooner than the long timeout
//! without dropping the member between two of them.

use super::error::DpdkError;
use super::{strerror, PortId};

/// DPDK's mode-4 timers of a bond (`struct rte_eth_bond_8023ad_conf`), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LacpTimers {
    /// LACPDU interval while the partner asks for fast LACPDUs.
    pub fast_periodic_ms: u32,
    /// LACPDU interval while the partner asks for slow LACPDUs.
    pub slow_periodic_ms: u32,
    /// Partner timeout when our Timeout bit is set (never, see the module doc) and in
    /// the EXPIRED state.
    pub short_timeout_ms: u32,
    /// Partner timeout otherwise.
    pub long_timeout_ms: u32,
}

impl LacpTimers {
    /// DPDK's defaults (802.1AX's: 1 s / 30 s periodic, 3 s / 90 s timeouts, with
    /// DPDK's 10 % margin on the periodic ones). What `lacp_rate = slow` applies.
    pub const SLOW: LacpTimers = LacpTimers {
        fast_periodic_ms: 900,
        slow_periodic_ms: 29_000,
        short_timeout_ms: 3_000,
        long_timeout_ms: 90_000,
    };

    /// What `lacp_rate = fast` applies: a LACPDU about every second whatever the
    /// partner asks for (900 ms when it asks for fast ones, as DPDK's default; 1 s
    /// instead of 29 s when it asks for slow ones), so that a partner running the
    /// short timeout (3 s) keeps the link. The partner timeouts stay DPDK's: as our
    /// LACPDUs cannot announce the short timeout (see the module doc), a partner
    /// may send only every 30 s, and a shorter long timeout would drop the member.
    pub const FAST: LacpTimers = LacpTimers {
        fast_periodic_ms: 900,
        slow_periodic_ms: 1_000,
        short_timeout_ms: 3_000,
        long_timeout_ms: 90_000,
    };
}

impl std::fmt::Display for LacpTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LACPDU every {} ms ({} ms to a fast partner), partner timeout {} ms",
            self.slow_periodic_ms, self.fast_periodic_ms, self.long_timeout_ms
        )
    }
}

fn port_err(port: PortId, op: &'static str, rc: i32) -> DpdkError {
    DpdkError::Port {
        port: port.0,
        op,
        errno: rc,
        reason: strerror(rc),
    }
}

fn conf_get(port: PortId) -> Result<dpdk_sys::rte_eth_bond_8023ad_conf, DpdkError> {
    let mut conf = dpdk_sys::rte_eth_bond_8023ad_conf::default();
    // SAFETY: `conf` is a valid, writable, properly aligned struct of the type the
    // function fills; DPDK checks that `port` is a bonding port and returns -EINVAL
    // otherwise, without touching `conf`.
    let rc = unsafe { dpdk_sys::rte_eth_bond_8023ad_conf_get(port.0, &mut conf) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_bond_8023ad_conf_get", rc));
    }
    Ok(conf)
}

/// The mode-4 timers a bonding port runs with, as DPDK reports them.
pub fn lacp_timers(port: PortId) -> Result<LacpTimers, DpdkError> {
    let c = conf_get(port)?;
    Ok(LacpTimers {
        fast_periodic_ms: c.fast_periodic_ms,
        slow_periodic_ms: c.slow_periodic_ms,
        short_timeout_ms: c.short_timeout_ms,
        long_timeout_ms: c.long_timeout_ms,
    })
}

/// Sets the mode-4 timers of a bonding port, keeping its other mode-4 timers
/// (aggregator wait, TX period, marker period, update interval; DPDK resets the
/// aggregator selection to its default, `stable`). Call it on a
/// configured port before it starts. DPDK refuses a port that is not a bond and
/// timers that are zero or out of order (fast periodic >= slow periodic, short
/// timeout >= long timeout).
pub fn set_lacp_timers(port: PortId, t: &LacpTimers) -> Result<(), DpdkError> {
    let mut c = conf_get(port)?;
    c.fast_periodic_ms = t.fast_periodic_ms;
    c.slow_periodic_ms = t.slow_periodic_ms;
    c.short_timeout_ms = t.short_timeout_ms;
    c.long_timeout_ms = t.long_timeout_ms;
    // SAFETY: `c` is a valid conf read from the same port and only its timer fields
    // changed; DPDK validates the values and copies them (it keeps no pointer to
    // `c`). The `slowrx_cb` it carries is the port's own (none: we never set one).
    let rc = unsafe { dpdk_sys::rte_eth_bond_8023ad_setup(port.0, &mut c) };
    if rc != 0 {
        return Err(port_err(port, "rte_eth_bond_8023ad_setup", rc));
    }
    Ok(())
}
