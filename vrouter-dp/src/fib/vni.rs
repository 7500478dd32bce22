//! The VXLAN VNI table: VNI -> next-hop, indexed directly.
//!
//! A VNI is 24 bits. The table is two levels of 4,096 entries: the top 12 bits
//! pick a chunk, the low 12 bits an entry in it. A chunk exists only once a VNI in
//! its range is set, so an empty table is the top array alone (32 KiB) and each
//! chunk in use adds 16 KiB. A lookup is three dependent loads (the top array,
//! the chunk pointer, the entry) and no hashing: about 20 fewer instructions than
//! a hash map's 30-36 (BENCHMARKS.md, "A direct index for VNIs").
//!
//! Both levels are behind `Arc`s and copied on write, as the other tables of a
//! snapshot are: cloning the table is one reference-count increment, and a batch
//! that sets VNIs copies the top array and the chunks it writes, once each.

use std::sync::Arc;

use super::NhId;

/// log2 of the entries per chunk (and of the chunks).
const BITS: u32 = 12;
/// Entries per chunk, and chunks.
const LEN: usize = 1 << BITS;
const MASK: usize = LEN - 1;

/// A chunk's entries: the next-hop id plus one, 0 for none (4 bytes an entry,
/// where `Option<NhId>` takes 8).
type Chunk = [u32; LEN];

/// VNI -> next-hop for every 24-bit VNI.
#[derive(Clone)]
pub struct VniTable {
    /// Fixed-size arrays at both levels: an index masked below [`LEN`] needs no
    /// bounds check.
    top: Arc<[Option<Arc<Chunk>>; LEN]>,
}

impl Default for VniTable {
    fn default() -> Self {
        Self {
            top: Arc::new(std::array::from_fn(|_| None)),
        }
    }
}

impl VniTable {
    /// The next-hop of `vni`, if it is set. VNIs above 24 bits are never set.
    #[inline]
    pub fn get(&self, vni: u32) -> Option<NhId> {
        let v = vni as usize;
        if v >> (2 * BITS) != 0 {
            return None;
        }
        let chunk = self.top.get((v >> BITS) & MASK)?.as_deref()?;
        let e = *chunk.get(v & MASK)?;
        e.checked_sub(1).map(NhId)
    }

    /// Number of VNIs set (counted: a control-side question).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no VNI is set.
    pub fn is_empty(&self) -> bool {
        self.top.iter().all(Option::is_none)
    }

    /// Sets `vni` to `nh`, returning the next-hop it had. `None` and no change
    /// for a VNI above 24 bits or the next-hop id `u32::MAX`, which the entry
    /// encoding cannot hold: the FIB checks both first (VNIs against
    /// [`super::Vni::MAX`], next-hops against its `u32` table size).
    pub fn insert(&mut self, vni: u32, nh: NhId) -> Option<NhId> {
        let v = vni as usize;
        let e = nh.0.checked_add(1)?;
        if v >> (2 * BITS) != 0 {
            return None;
        }
        let slot = Arc::make_mut(&mut self.top).get_mut(v >> BITS)?;
        let chunk = Arc::make_mut(slot.get_or_insert_with(|| Arc::new([0; LEN])));
        let old = std::mem::replace(chunk.get_mut(v & MASK)?, e);
        old.checked_sub(1).map(NhId)
    }

    /// Clears `vni`, returning the next-hop it had. A chunk left empty is freed.
    pub fn remove(&mut self, vni: u32) -> Option<NhId> {
        let old = self.get(vni)?;
        let v = vni as usize;
        let slot = Arc::make_mut(&mut self.top).get_mut(v >> BITS)?;
        let chunk = Arc::make_mut(slot.as_mut()?);
        if let Some(e) = chunk.get_mut(v & MASK) {
            *e = 0;
        }
        if chunk.iter().all(|&e| e == 0) {
            *slot = None;
        }
        Some(old)
    }

    /// The VNIs set and their next-hops, in VNI order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, NhId)> + '_ {
        self.top.iter().enumerate().flat_map(|(c, chunk)| {
            chunk.iter().flat_map(move |chunk| {
                chunk.iter().enumerate().filter_map(move |(i, &e)| {
                    let nh = e.checked_sub(1)?;
                    Some((((c << BITS) | i) as u32, NhId(nh)))
                })
            })
        })
    }
}

impl std::fmt::Debug for VniTable {
    /// The VNIs set, as a map (not the 4,096-entry arrays).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for VniTable {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for VniTable {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::Vni;

    #[test]
    fn set_get_replace_remove_across_chunks() {
        let mut t = VniTable::default();
        assert!(t.is_empty());
        assert_eq!(t.get(5000), None);
        assert_eq!(t.insert(5000, NhId(13)), None);
        assert_eq!(t.insert(0, NhId(0)), None);
        assert_eq!(t.insert(Vni::MAX, NhId(7)), None);
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(5000), Some(NhId(13)));
        assert_eq!(t.get(0), Some(NhId(0)));
        assert_eq!(t.get(Vni::MAX), Some(NhId(7)));
        assert_eq!(t.get(5001), None);
        // Replacing returns the old next-hop and keeps the count.
        assert_eq!(t.insert(5000, NhId(14)), Some(NhId(13)));
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![(0, NhId(0)), (5000, NhId(14)), (Vni::MAX, NhId(7))]
        );
        assert_eq!(t.remove(5000), Some(NhId(14)));
        assert_eq!(t.remove(5000), None);
        assert_eq!(t.get(5000), None);
        assert_eq!(t.len(), 2);
        // The emptied chunk is gone; the others stay.
        assert!(t.top.get(5000 >> BITS).is_some_and(Option::is_none));
        assert_eq!(t.get(0), Some(NhId(0)));
    }

    #[test]
    fn out_of_range_changes_nothing() {
        let mut t = VniTable::default();
        assert_eq!(t.insert(Vni::MAX + 1, NhId(1)), None);
        assert_eq!(t.insert(u32::MAX, NhId(1)), None);
        assert_eq!(t.insert(1, NhId(u32::MAX)), None);
        assert!(t.is_empty());
        assert_eq!(t.get(Vni::MAX + 1), None);
        assert_eq!(t.get(u32::MAX), None);
        assert_eq!(t.remove(u32::MAX), None);
    }

    #[test]
    fn clones_share_until_written() {
        let mut a = VniTable::default();
        a.insert(100, NhId(1));
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.top, &b.top));
        a.insert(100, NhId(2));
        a.insert(1 << 20, NhId(3));
        assert_eq!(b.get(100), Some(NhId(1)));
        assert_eq!(b.get(1 << 20), None);
        assert_eq!(a.get(100), Some(NhId(2)));
        assert_ne!(a, b);
        let mut c = b.clone();
        c.insert(100, NhId(2));
        c.insert(1 << 20, NhId(3));
        assert_eq!(a, c);
        assert_eq!(format!("{a:?}"), "{100: NhId(2), 1048576: NhId(3)}");
    }
}
