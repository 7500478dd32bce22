//! The flow-table workload shared by the criterion bench (`benches/flow_table.rs`)
//! and the instruction-count example (`examples/ft_ops.rs`): the same keys, values
//! and fixed pseudo-random order in both, so their figures describe one workload.

use std::net::Ipv4Addr;

use flow_table::{
    FlowAction, FlowKey, FlowTable, FlowValue, InsertError, NexthopId, VrfId, PROTO_TCP,
};

/// Flow `i`'s key; `miss` gives a key of the same shape that is never inserted.
pub fn key(i: u32, miss: bool) -> FlowKey {
    FlowKey::v4(
        VrfId::new(i & 0xF).unwrap_or_default(),
        Ipv4Addr::from(0x0A00_0000u32.wrapping_add(i)),
        Ipv4Addr::new(172, 16, 0, 1),
        PROTO_TCP,
        (i >> 8) as u16,
        if miss { 8443 } else { 443 },
    )
}

/// Flow `i`'s value.
pub fn value(i: u32) -> FlowValue {
    FlowValue::new(FlowAction::Forward {
        nexthop: NexthopId(i),
    })
}

/// `0..n` in a fixed pseudo-random order.
pub fn shuffled(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

/// Inserts flows `ids` (keys and values as above, last seen at `now`) with
/// `insert_batch`, 32 at a time; the number added.
pub fn fill(table: &FlowTable, ids: impl IntoIterator<Item = u32>, now: u64) -> usize {
    const BURST: usize = 32;
    let ids: Vec<u32> = ids.into_iter().collect();
    let mut out = [Err(InsertError::Full); BURST];
    let mut added = 0;
    for c in ids.chunks(BURST) {
        let keys: Vec<FlowKey> = c.iter().map(|&i| key(i, false)).collect();
        let values: Vec<FlowValue> = c.iter().map(|&i| value(i)).collect();
        added += table.insert_batch(&keys, &values, now, &mut out);
    }
    added
}
