//! A chunked copy-on-write vector.
//!
//! The vector is a list of fixed-size chunks, each behind an `Arc`. Cloning the vector
//! clones only the chunk pointers; writing to an element copies that element's chunk
//! if another version still shares it. A batch of updates therefore costs time and
//! memory proportional to the chunks it touches, not to the size of the table, and
//! untouched chunks stay shared between snapshot versions.
//!
//! Chunks are fixed-size arrays: the chunk list holds thin pointers (8 bytes a chunk,
//! so the list of a large table stays in cache) and an element's offset in its chunk
//! needs no bounds check.

use std::sync::Arc;

/// log2 of the number of elements per chunk.
pub const CHUNK_BITS: u32 = 10;
/// Elements per chunk.
pub const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: usize = CHUNK_LEN - 1;

/// One chunk of a [`CowVec`].
pub type Chunk<T> = Arc<[T; CHUNK_LEN]>;

/// A chunk holding a copy of `src` (built in place on the heap, not on the stack).
fn chunk_from<T: Clone>(src: &[T]) -> Option<Chunk<T>> {
    let a: Arc<[T]> = Arc::from(src);
    a.try_into().ok()
}

/// A vector of `T` split into `Arc`-shared chunks of [`CHUNK_LEN`] elements.
#[derive(Debug, Clone)]
pub struct CowVec<T: Clone> {
    chunks: Vec<Chunk<T>>,
    fill: T,
    len: usize,
}

impl<T: Clone> CowVec<T> {
    /// A vector of `len` copies of `fill`. All chunks share one allocation until they
    /// are written.
    pub fn filled(len: usize, fill: T) -> Self {
        let n = len.div_ceil(CHUNK_LEN);
        let shared = Self::uniform_chunk(fill.clone());
        Self {
            chunks: vec![shared; n],
            fill,
            len,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vector is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.chunks.get(i >> CHUNK_BITS)?.get(i & CHUNK_MASK)
    }

    /// The element at `i` for a reader that only needs `i` to be inside the chunk
    /// list: one bounds check instead of two. Past the length, inside the last
    /// chunk, it is the fill value: every write stays below the length.
    #[inline(always)]
    pub fn slot(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS).map(|c| &c[i & CHUNK_MASK])
    }

    /// The chunk list as an array of exactly `N` chunks (None when the vector has
    /// another number of chunks). A reader that indexes it with a value known to be
    /// below `N` (e.g. the top bits of an address) needs no bounds check at all.
    #[inline(always)]
    pub fn chunk_array<const N: usize>(&self) -> Option<&[Chunk<T>; N]> {
        self.chunks.as_slice().try_into().ok()
    }

    /// The element at `i`, writable; copies its chunk first if it is shared.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        self.chunk_mut(i >> CHUNK_BITS)?.get_mut(i & CHUNK_MASK)
    }

    /// Set element `i`; returns false when `i` is out of range.
    pub fn set(&mut self, i: usize, v: T) -> bool {
        match self.get_mut(i) {
            Some(slot) => {
                *slot = v;
                true
            }
            None => false,
        }
    }

    /// Set elements `start..start + n` to `v`, taking each chunk writable once (a
    /// per-element [`CowVec::set`] checks the chunk's sharing every time). Returns
    /// false when the range is out of bounds, and then changes nothing.
    pub fn fill(&mut self, start: usize, n: usize, v: T) -> bool {
        let Some(end) = start.checked_add(n).filter(|&e| e <= self.len) else {
            return false;
        };
        let mut i = start;
        while i < end {
            let (c, off) = (i >> CHUNK_BITS, i & CHUNK_MASK);
            let take = (CHUNK_LEN - off).min(end - i);
            if let Some(part) = self.chunk_mut(c).and_then(|ch| ch.get_mut(off..off + take)) {
                part.fill(v.clone());
            }
            i += take;
        }
        true
    }

    /// Set element `i` to `v` for each `(i, v)`, in order, taking a chunk writable
    /// once per run of writes into it (a per-element [`CowVec::set`] checks the
    /// chunk's sharing every time). Indexes out of range are skipped.
    pub fn set_each(&mut self, writes: impl IntoIterator<Item = (usize, T)>) {
        let len = self.len;
        let mut cur: Option<(usize, &mut [T])> = None;
        for (i, v) in writes.into_iter().filter(|(i, _)| *i < len) {
            let c = i >> CHUNK_BITS;
            if cur.as_ref().map(|(held, _)| *held) != Some(c) {
                cur = self.chunk_mut(c).map(|s| (c, s));
            }
            if let Some(x) = cur.as_mut().and_then(|(_, s)| s.get_mut(i & CHUNK_MASK)) {
                *x = v;
            }
        }
    }

    /// Chunk `c`, writable, copied first if shared.
    pub fn chunk_mut(&mut self, c: usize) -> Option<&mut [T]> {
        let arc = self.chunks.get_mut(c)?;
        // The counts are plain loads; `Arc::get_mut` is a locked compare-exchange,
        // taken once here instead of once to test and once to borrow. Chunks never
        // have weak references, and no other owner can appear while `self` is
        // borrowed mutably, so a count of one cannot change before `get_mut`.
        if Arc::strong_count(arc) != 1 || Arc::weak_count(arc) != 0 {
            *arc = chunk_from(&arc[..])?;
        }
        Arc::get_mut(arc).map(|a| &mut a[..])
    }

    /// Replace chunk `c` with `chunk`, e.g. one shared [`CowVec::uniform_chunk`].
    /// Returns false when out of range.
    pub fn set_chunk(&mut self, c: usize, chunk: Chunk<T>) -> bool {
        match self.chunks.get_mut(c) {
            Some(slot) => {
                *slot = chunk;
                true
            }
            None => false,
        }
    }

    /// A chunk holding [`CHUNK_LEN`] copies of `v`, to share with [`CowVec::set_chunk`].
    pub fn uniform_chunk(v: T) -> Chunk<T> {
        chunk_from(&vec![v.clone(); CHUNK_LEN])
            .unwrap_or_else(|| Arc::new(std::array::from_fn(|_| v.clone())))
    }

    /// Chunk `c`, read-only.
    pub fn chunk(&self, c: usize) -> Option<&[T]> {
        self.chunks.get(c).map(|a| &a[..])
    }

    /// Grow by `n` elements of the fill value; returns the index of the first new one.
    pub fn grow(&mut self, n: usize) -> usize {
        let first = self.len;
        self.len += n;
        let need = self.len.div_ceil(CHUNK_LEN);
        while self.chunks.len() < need {
            self.chunks.push(Self::uniform_chunk(self.fill.clone()));
        }
        first
    }

    /// Whether chunk `c` is stored in the same allocation as `other`'s chunk `c`.
    pub fn shares_chunk_with(&self, other: &Self, c: usize) -> bool {
        match (self.chunks.get(c), other.chunks.get(c)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_each_writes_in_order_and_keeps_old_version() {
        let mut a = CowVec::filled(2 * CHUNK_LEN, 0u32);
        let b = a.clone();
        // Back and forth between two chunks, a repeat, and one out of range.
        a.set_each([
            (1, 7),
            (CHUNK_LEN + 1, 8),
            (2, 9),
            (1, 6),
            (2 * CHUNK_LEN, 5),
        ]);
        assert_eq!(a.get(1), Some(&6));
        assert_eq!(a.get(2), Some(&9));
        assert_eq!(a.get(CHUNK_LEN + 1), Some(&8));
        assert_eq!(a.get(2 * CHUNK_LEN), None);
        for i in [1, 2, CHUNK_LEN + 1] {
            assert_eq!(b.get(i), Some(&0));
        }
        assert!(!a.shares_chunk_with(&b, 0));
        assert!(!a.shares_chunk_with(&b, 1));
    }

    #[test]
    fn copy_on_write_keeps_old_version() {
        let mut a = CowVec::filled(3 * CHUNK_LEN + 5, 0u32);
        assert_eq!(a.len(), 3 * CHUNK_LEN + 5);
        assert_eq!(a.get(3 * CHUNK_LEN + 5), None);
        let b = a.clone();
        assert!(a.set(CHUNK_LEN + 7, 9));
        assert_eq!(a.get(CHUNK_LEN + 7), Some(&9));
        assert_eq!(b.get(CHUNK_LEN + 7), Some(&0));
        assert!(a.shares_chunk_with(&b, 0));
        assert!(!a.shares_chunk_with(&b, 1));
        assert!(!a.set(3 * CHUNK_LEN + 5, 1));
        // A fill across a chunk boundary, and one out of range.
        let c = a.clone();
        assert!(a.fill(CHUNK_LEN - 2, 4, 5));
        assert_eq!(a.get(CHUNK_LEN - 3), Some(&0));
        assert_eq!(a.get(CHUNK_LEN - 2), Some(&5));
        assert_eq!(a.get(CHUNK_LEN + 1), Some(&5));
        assert_eq!(a.get(CHUNK_LEN + 2), Some(&0));
        assert_eq!(c.get(CHUNK_LEN - 2), Some(&0));
        assert!(!a.fill(3 * CHUNK_LEN, 6, 1));
        assert_eq!(a.get(3 * CHUNK_LEN), Some(&0));
        let first = a.grow(CHUNK_LEN);
        assert_eq!(first, 3 * CHUNK_LEN + 5);
        assert_eq!(a.get(4 * CHUNK_LEN + 4), Some(&0));
    }
}
