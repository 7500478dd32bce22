//! What the table stores per flow besides the key, and the handles it returns.
//!
//! # Encoding
//!
//! A [`FlowValue`] is two 64-bit words in the slot:
//!
//! | word | content |
//! |------|---------|
//! | A    | bits 0..8 action kind, 8..16 TCP state, 16..32 flags, 32..64 reverse flow index (`u32::MAX` = none) |
//! | B    | bits 0..32 next-hop id, 32..64 NAT rewrite reference or mirror id |
//!
//! Action kinds: 0 drop, 1 forward, 2 hold, 3 NAT, 4 mirror. Zero is "drop"
//! so that an unknown kind (a corrupt mapped file) fails closed.

use crate::key::FlowKey;

/// Id of a next hop in the data plane's next-hop table.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NexthopId(pub u32);

/// Reference to a NAT rewrite (an index into the data plane's rewrite table).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NatRef(pub u32);

/// Id of a mirror destination.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MirrorId(pub u32);

/// Index of a flow's slot in the table (stable for the flow's lifetime; it is
/// what a reverse-flow reference stores).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowIndex(pub u32);

/// Handle of one flow incarnation: slot index plus the slot's generation.
/// Once the flow is removed the generation no longer matches and every
/// operation taking a `FlowId` reports the flow as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId {
    /// Slot index.
    pub index: FlowIndex,
    /// Generation of the slot when this flow was inserted.
    pub generation: u32,
}

/// What the data plane does with the packets of a flow.
///
/// The discriminants are the action kinds of the slot encoding, so that
/// decoding a value is a range check rather than a table lookup.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowAction {
    /// Forward to a next hop.
    Forward {
        /// The next hop.
        nexthop: NexthopId,
    } = 1,
    /// Drop.
    Drop = 0,
    /// Hold: queue the first packets while the agent decides.
    Hold = 2,
    /// Rewrite addresses/ports with a NAT rewrite, then forward.
    Nat {
        /// The next hop after the rewrite.
        nexthop: NexthopId,
        /// The rewrite to apply.
        rewrite: NatRef,
    } = 3,
    /// Forward and send a copy to a mirror destination.
    Mirror {
        /// The next hop.
        nexthop: NexthopId,
        /// Where the copy goes.
        mirror: MirrorId,
    } = 4,
}

/// Per-flow flag bits (opaque to the table).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowFlags(pub u16);

impl FlowFlags {
    /// No flags.
    pub const EMPTY: FlowFlags = FlowFlags(0);
    /// The flow was learnt by the data plane and awaits the agent's decision.
    pub const NEW: FlowFlags = FlowFlags(1 << 0);
    /// The flow is a candidate for eviction.
    pub const EVICT_CANDIDATE: FlowFlags = FlowFlags(1 << 1);
    /// The flow was installed by the agent.
    pub const AGENT: FlowFlags = FlowFlags(1 << 2);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: FlowFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union of both flag sets.
    pub const fn union(self, other: FlowFlags) -> FlowFlags {
        FlowFlags(self.0 | other.0)
    }
}

/// TCP connection state tracked per flow.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpState {
    /// Not TCP, or nothing seen yet.
    #[default]
    None = 0,
    /// SYN seen.
    SynSent = 1,
    /// SYN-ACK seen.
    SynReceived = 2,
    /// Handshake completed.
    Established = 3,
    /// One side sent FIN.
    FinWait = 4,
    /// Both FINs or a RST seen: the flow ages with the short timeout.
    Closed = 5,
}

impl TcpState {
    fn from_u8(v: u8) -> TcpState {
        match v {
            1 => TcpState::SynSent,
            2 => TcpState::SynReceived,
            3 => TcpState::Established,
            4 => TcpState::FinWait,
            5 => TcpState::Closed,
            _ => TcpState::None,
        }
    }
}

/// The mutable part of a flow, returned by value (a consistent snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowValue {
    /// What to do with the flow's packets.
    pub action: FlowAction,
    /// Slot index of the reverse flow, if known.
    pub reverse: Option<FlowIndex>,
    /// Flag bits.
    pub flags: FlowFlags,
    /// TCP state.
    pub tcp_state: TcpState,
}

impl FlowValue {
    /// A value with the given action and nothing else set.
    pub const fn new(action: FlowAction) -> Self {
        FlowValue {
            action,
            reverse: None,
            flags: FlowFlags::EMPTY,
            tcp_state: TcpState::None,
        }
    }

    pub(crate) fn encode(&self) -> [u64; 2] {
        let (kind, arg0, arg1) = match self.action {
            FlowAction::Drop => (0u64, 0u32, 0u32),
            FlowAction::Forward { nexthop } => (1, nexthop.0, 0),
            FlowAction::Hold => (2, 0, 0),
            FlowAction::Nat { nexthop, rewrite } => (3, nexthop.0, rewrite.0),
            FlowAction::Mirror { nexthop, mirror } => (4, nexthop.0, mirror.0),
        };
        let reverse = self.reverse.map_or(u32::MAX, |r| r.0);
        let a = kind
            | (u64::from(self.tcp_state as u8) << 8)
            | (u64::from(self.flags.0) << 16)
            | (u64::from(reverse) << 32);
        let b = u64::from(arg0) | (u64::from(arg1) << 32);
        [a, b]
    }

    pub(crate) fn decode(words: [u64; 2]) -> Self {
        let [a, _] = words;
        let reverse = (a >> 32) as u32;
        FlowValue {
            action: FlowValue::decode_action(words),
            reverse: (reverse != u32::MAX).then_some(FlowIndex(reverse)),
            flags: FlowFlags((a >> 16) as u16),
            tcp_state: TcpState::from_u8((a >> 8) as u8),
        }
    }

    /// The action of encoded `words`.
    #[inline]
    pub(crate) fn decode_action(words: [u64; 2]) -> FlowAction {
        let [a, b] = words;
        let arg0 = b as u32;
        let arg1 = (b >> 32) as u32;
        match a as u8 {
            1 => FlowAction::Forward {
                nexthop: NexthopId(arg0),
            },
            2 => FlowAction::Hold,
            3 => FlowAction::Nat {
                nexthop: NexthopId(arg0),
                rewrite: NatRef(arg1),
            },
            4 => FlowAction::Mirror {
                nexthop: NexthopId(arg0),
                mirror: MirrorId(arg1),
            },
            _ => FlowAction::Drop,
        }
    }
}

/// A lookup result: the flow's handle and a snapshot of its value.
///
/// The value is kept as the slot's two words and decoded when asked for:
/// [`FlowEntry::value`] decodes all of it, [`FlowEntry::action`] only the
/// action. A lookup then copies two words instead of building a
/// [`FlowValue`], which callers that only test the action (a data plane's
/// flow hit) never need: 24 fewer instructions per batch hit (BENCHMARKS.md,
/// "Lookups return the value undecoded").
#[derive(Clone, Copy)]
pub struct FlowEntry {
    /// Handle for [`crate::FlowTable::touch`] and the by-id operations.
    pub id: FlowId,
    /// The value at the time of the lookup, as [`FlowValue::encode`] wrote it.
    words: [u64; 2],
}

impl FlowEntry {
    /// An entry for `id` holding `value` (as a lookup would return it).
    pub fn new(id: FlowId, value: FlowValue) -> Self {
        FlowEntry {
            id,
            words: value.encode(),
        }
    }

    /// An entry from a slot's value words.
    #[inline]
    pub(crate) fn from_words(id: FlowId, words: [u64; 2]) -> Self {
        FlowEntry { id, words }
    }

    /// The value at the time of the lookup.
    #[inline]
    pub fn value(&self) -> FlowValue {
        FlowValue::decode(self.words)
    }

    /// The action at the time of the lookup (the value's other fields are
    /// not decoded).
    #[inline]
    pub fn action(&self) -> FlowAction {
        FlowValue::decode_action(self.words)
    }
}

// Equality, hashing and the debug form go through the decoded value, so two
// entries whose words differ only in bits the decoding ignores (a corrupt
// mapped file's unknown action kind, say) are the same entry.
impl PartialEq for FlowEntry {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.value() == other.value()
    }
}

impl Eq for FlowEntry {}

impl core::hash::Hash for FlowEntry {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.value().hash(state);
    }
}

impl core::fmt::Debug for FlowEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowEntry")
            .field("id", &self.id)
            .field("value", &self.value())
            .finish()
    }
}

/// Per-flow counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowCounters {
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
    /// Time of the last packet (or of the insert), in the caller's clock.
    pub last_seen: u64,
}

/// One flow as reported by iteration (dumps) and ageing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowRecord {
    /// The flow's handle.
    pub id: FlowId,
    /// The key.
    pub key: FlowKey,
    /// The value.
    pub value: FlowValue,
    /// The counters (read after the key/value snapshot, relaxed).
    pub counters: FlowCounters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip_every_action() {
        let actions = [
            FlowAction::Drop,
            FlowAction::Hold,
            FlowAction::Forward {
                nexthop: NexthopId(u32::MAX - 1),
            },
            FlowAction::Nat {
                nexthop: NexthopId(9),
                rewrite: NatRef(0xDEAD_BEEF),
            },
            FlowAction::Mirror {
                nexthop: NexthopId(1),
                mirror: MirrorId(2),
            },
        ];
        for action in actions {
            for reverse in [None, Some(FlowIndex(0)), Some(FlowIndex(12345))] {
                let v = FlowValue {
                    action,
                    reverse,
                    flags: FlowFlags::NEW.union(FlowFlags(0x8000)),
                    tcp_state: TcpState::FinWait,
                };
                assert_eq!(FlowValue::decode(v.encode()), v);
            }
        }
    }

    #[test]
    fn unknown_kind_fails_closed() {
        let v = FlowValue::decode([0xFF, 7]);
        assert_eq!(v.action, FlowAction::Drop);
        assert_eq!(
            FlowValue::decode([0x0000_0000_0000_0900, 0]).tcp_state,
            TcpState::None
        );
    }

    #[test]
    fn entry_decodes_its_words_on_demand() {
        let id = FlowId {
            index: FlowIndex(9),
            generation: 4,
        };
        let v = FlowValue {
            action: FlowAction::Nat {
                nexthop: NexthopId(3),
                rewrite: NatRef(0xDEAD_BEEF),
            },
            reverse: Some(FlowIndex(77)),
            flags: FlowFlags::AGENT,
            tcp_state: TcpState::Established,
        };
        let e = FlowEntry::new(id, v);
        assert_eq!(e.id, id);
        assert_eq!(e.value(), v);
        assert_eq!(e.action(), v.action);
        assert_eq!(FlowEntry::from_words(id, v.encode()), e);
        // Entries compare by their decoded value: an unknown action kind and
        // TCP state with a stray argument decode to a plain dropping entry.
        let drop = FlowEntry::new(id, FlowValue::new(FlowAction::Drop));
        let odd = FlowEntry::from_words(id, [0x0907 | (u64::from(u32::MAX) << 32), 5]);
        assert_eq!(odd.action(), FlowAction::Drop);
        assert_eq!(odd, drop);
        let fwd = FlowEntry::new(
            id,
            FlowValue::new(FlowAction::Forward {
                nexthop: NexthopId(5),
            }),
        );
        assert_ne!(fwd, drop);
        let other_id = FlowEntry::new(
            FlowId {
                index: FlowIndex(9),
                generation: 5,
            },
            FlowValue::new(FlowAction::Drop),
        );
        assert_ne!(other_id, drop);
        assert!(format!("{e:?}").contains("Nat"));
    }

    #[test]
    fn flags_ops() {
        let f = FlowFlags::NEW.union(FlowFlags::AGENT);
        assert!(f.contains(FlowFlags::NEW));
        assert!(f.contains(FlowFlags::AGENT));
        assert!(!f.contains(FlowFlags::EVICT_CANDIDATE));
    }
}
