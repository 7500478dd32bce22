//! Errors of the forwarding-state module. Each names the object, the field and the
//! reason; a batch that fails changes nothing.

use std::net::IpAddr;

use thiserror::Error;

use super::{Label, MacAddr, NhId, Prefix, VifId, Vni, VrfId};

/// Why an update (or a whole batch) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FibError {
    /// A prefix length longer than the address.
    #[error("prefix length {len} is too long for {addr}")]
    PrefixLength {
        /// The address.
        addr: IpAddr,
        /// The length given.
        len: u8,
    },
    /// A prefix with bits set past its length.
    #[error("prefix {addr}/{len} has host bits set")]
    HostBits {
        /// The address.
        addr: IpAddr,
        /// The length given.
        len: u8,
    },
    /// An id past the configured table size.
    #[error("{what} {id} is out of range (the table holds {max})")]
    OutOfRange {
        /// The kind of object ("vif", "next-hop", "vrf", "label", "vni", "port").
        what: &'static str,
        /// The id given.
        id: u64,
        /// The table size.
        max: u64,
    },
    /// A reference to an object that does not exist.
    #[error("{field}: {what} {id} does not exist")]
    Missing {
        /// The field that holds the reference.
        field: &'static str,
        /// The kind of object.
        what: &'static str,
        /// The id.
        id: u64,
    },
    /// A next-hop that is still referenced cannot be deleted.
    #[error("{nh} is used by {users}")]
    NhInUse {
        /// The next-hop.
        nh: NhId,
        /// The users, e.g. `route vrf 1 10.0.0.0/24, label 17`.
        users: String,
    },
    /// An interface that is still referenced cannot be deleted.
    #[error("{vif} is used by {users}")]
    VifInUse {
        /// The interface.
        vif: VifId,
        /// The users, e.g. `next-hop 4`.
        users: String,
    },
    /// Next-hop 0 is the fixed discard next-hop.
    #[error("next-hop 0 is the fixed discard next-hop and cannot be changed")]
    ReservedNh,
    /// A route that does not exist was deleted.
    #[error("no route {prefix} in {vrf}")]
    NoRoute {
        /// The VRF.
        vrf: VrfId,
        /// The prefix.
        prefix: Prefix,
    },
    /// A bridge entry that does not exist was deleted.
    #[error("no bridge entry {mac} in {vrf}")]
    NoBridgeEntry {
        /// The VRF.
        vrf: VrfId,
        /// The MAC address.
        mac: MacAddr,
    },
    /// A label that is not mapped was deleted.
    #[error("{0} is not mapped")]
    NoLabel(Label),
    /// A VNI that is not mapped was deleted.
    #[error("{0} is not mapped")]
    NoVni(Vni),
    /// A field value that is not valid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The reason.
        reason: String,
    },
    /// The LPM table of a VRF has no room for another route or group.
    #[error("route table of {vrf} is full ({what})")]
    TableFull {
        /// The VRF.
        vrf: VrfId,
        /// Which resource ran out.
        what: &'static str,
    },
}
