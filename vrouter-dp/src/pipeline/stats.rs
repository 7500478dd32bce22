//! Drop reasons and per-worker counters (the equivalent of TF's `dropstats`).

/// Why a packet was dropped. Each has a stable name ([`DropReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Received on a port with no interface.
    InvalidInterface = 0,
    /// Headers too short or inconsistent.
    Malformed,
    /// TTL / hop limit would reach zero (inner), or outer TTL / MPLS TTL expired.
    TtlExpired,
    /// Larger than the output MTU (an ICMP error went back when allowed).
    MtuExceeded,
    /// No route in the VRF.
    NoRoute,
    /// No bridge entry for the destination MAC.
    NoBridgeEntry,
    /// MPLS label not in the label table.
    UnknownLabel,
    /// VNI not in the VNI table.
    UnknownVni,
    /// A pod sent with a MAC or IP that is not its own.
    SpoofedSource,
    /// Denied by policy (first packet or a learned deny flow).
    PolicyDeny,
    /// The flow table had no room to learn the flow.
    FlowTableFull,
    /// Routed to a discard next-hop.
    Discard,
    /// A next-hop that is missing or cannot forward this packet.
    InvalidNh,
    /// Not enough headroom / tailroom to rewrite.
    NoRoom,
    /// The per-port TX batch was full.
    TxOverflow,
    /// ARP / neighbour solicitation for an address with no route in the VRF.
    ArpNoRoute,
    /// The buffer pool could not supply a copy for flooding.
    NoBuffer,
    /// A packet type the data plane does not forward (e.g. from the agent port).
    Unsupported,
    /// A frame received on a fabric interface with a VLAN id other than the
    /// interface's (or untagged on a VLAN fabric, or tagged on an untagged one).
    VlanMismatch,
    /// Link-scoped control from a pod that the data plane consumes without an
    /// answer: MLD reports and done messages and neighbour advertisements from
    /// its IPv6 link-local or unspecified address (not spoofing: such packets are
    /// never forwarded), neighbour solicitations for its own addresses (duplicate
    /// address detection) or for link-local ones, and ARP probes and
    /// announcements of its own IPv4 addresses.
    LinkLocal,
    /// A packet for the agent (ARP or neighbour solicitation for the node, DHCP,
    /// a router solicitation) with no agent interface configured.
    NoAgent,
    /// A packet from the fabric for the host stack (not a tunnel for this node)
    /// with no host interface configured.
    NoHost,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 22] = [
        DropReason::InvalidInterface,
        DropReason::Malformed,
        DropReason::TtlExpired,
        DropReason::MtuExceeded,
        DropReason::NoRoute,
        DropReason::NoBridgeEntry,
        DropReason::UnknownLabel,
        DropReason::UnknownVni,
        DropReason::SpoofedSource,
        DropReason::PolicyDeny,
        DropReason::FlowTableFull,
        DropReason::Discard,
        DropReason::InvalidNh,
        DropReason::NoRoom,
        DropReason::TxOverflow,
        DropReason::ArpNoRoute,
        DropReason::NoBuffer,
        DropReason::Unsupported,
        DropReason::VlanMismatch,
        DropReason::LinkLocal,
        DropReason::NoAgent,
        DropReason::NoHost,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable counter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::InvalidInterface => "invalid_interface",
            DropReason::Malformed => "malformed",
            DropReason::TtlExpired => "ttl_exceeded",
            DropReason::MtuExceeded => "mtu_exceeded",
            DropReason::NoRoute => "no_route",
            DropReason::NoBridgeEntry => "no_bridge_entry",
            DropReason::UnknownLabel => "invalid_label",
            DropReason::UnknownVni => "invalid_vnid",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::PolicyDeny => "flow_action_drop",
            DropReason::FlowTableFull => "flow_table_full",
            DropReason::Discard => "discard",
            DropReason::InvalidNh => "invalid_nh",
            DropReason::NoRoom => "no_headroom",
            DropReason::TxOverflow => "tx_overflow",
            DropReason::ArpNoRoute => "arp_no_route",
            DropReason::NoBuffer => "no_buffer",
            DropReason::Unsupported => "unsupported",
            DropReason::VlanMismatch => "vlan_mismatch",
            DropReason::LinkLocal => "link_local",
            DropReason::NoAgent => "no_agent",
            DropReason::NoHost => "no_host",
        }
    }

    /// Counter index.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Per-worker counters, on their own cache lines; the control thread sums them.
#[derive(Debug, Clone, Default)]
#[repr(align(64))]
pub struct Counters {
    /// Packets received.
    pub rx: u64,
    /// Packets (and flood copies) queued for transmission.
    pub tx: u64,
    /// Drops by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// ARP requests answered by the proxy.
    pub arp_proxied: u64,
    /// Neighbour solicitations answered by the proxy.
    pub nd_proxied: u64,
    /// ICMP errors generated (fragmentation needed / packet too big).
    pub icmp_errors: u64,
    /// Packets trapped to the agent.
    pub to_agent: u64,
    /// Packets handed to the host interface.
    pub to_host: u64,
    /// Flows learned (each forward + reverse pair counts once).
    pub flows_learned: u64,
    /// Packets that hit a learned flow.
    pub flow_hits: u64,
    /// Flood copies made.
    pub flood_copies: u64,
}

impl Counters {
    /// The drop counter of one reason.
    #[inline]
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops.get(r.index()).copied().unwrap_or(0)
    }

    #[inline]
    pub(crate) fn count_drop(&mut self, r: DropReason) {
        if let Some(c) = self.drops.get_mut(r.index()) {
            *c += 1;
        }
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Per-interface counters kept by one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VifCounters {
    /// Packets received on the interface.
    pub rx_packets: u64,
    /// Bytes received on the interface.
    pub rx_bytes: u64,
    /// Packets queued to the interface.
    pub tx_packets: u64,
    /// Bytes queued to the interface.
    pub tx_bytes: u64,
    /// Packets received on the interface and dropped.
    pub drops: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexed() {
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
