//! The table's memory: one region holding header, control words, slots and
//! counters, allocated once.
//!
//! Normal builds map it with `mmap`: anonymous 2 MiB hugepages
//! (`MAP_HUGETLB`) when the system has them reserved, otherwise anonymous
//! normal pages advised for transparent hugepages, or a shared mapping of a
//! named file (which lands on hugepages when the file is on hugetlbfs). Under
//! `cfg(loom)` the parts are separate heap allocations of loom atomics.

#[cfg(not(loom))]
use std::path::Path;
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::layout::{Group, Header, Layout, Slot, SlotStats};

/// Size of a hugepage the table asks for.
pub const HUGEPAGE_BYTES: usize = 2 << 20;
#[cfg(not(loom))]
const PAGE_BYTES: usize = 4096;

/// Where the table's memory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// Anonymous 2 MiB hugepages (`MAP_HUGETLB`).
    HugePages2M,
    /// Anonymous normal pages; `transparent_hugepages` tells whether the
    /// kernel accepted the `MADV_HUGEPAGE` advice.
    NormalPages {
        /// `madvise(MADV_HUGEPAGE)` succeeded.
        transparent_hugepages: bool,
    },
    /// A shared mapping of a named file.
    File {
        /// The file.
        path: PathBuf,
        /// The file is on a hugetlbfs mount (2 MiB pages).
        hugetlbfs: bool,
    },
    /// Heap allocations (only in the model-checking build).
    Heap,
}

impl std::fmt::Display for Backing {
    /// A short phrase for logs: `2 MiB hugepages`, `normal pages (transparent
    /// hugepages advised)`, `file /path (hugetlbfs)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::HugePages2M => f.write_str("2 MiB hugepages"),
            Backing::NormalPages {
                transparent_hugepages: true,
            } => f.write_str("normal pages (transparent hugepages advised)"),
            Backing::NormalPages {
                transparent_hugepages: false,
            } => f.write_str("normal pages"),
            Backing::File { path, hugetlbfs } => {
                write!(f, "file {}", path.display())?;
                if *hugetlbfs {
                    f.write_str(" (hugetlbfs)")?;
                }
                Ok(())
            }
            Backing::Heap => f.write_str("heap"),
        }
    }
}

/// Raw pointers to the parts of a region. They stay valid for as long as the
/// [`Memory`] that produced them is alive; all access goes through atomics.
#[derive(Clone, Copy)]
pub(crate) struct Parts {
    pub(crate) header: NonNull<Header>,
    pub(crate) groups: NonNull<Group>,
    pub(crate) slots: NonNull<Slot>,
    pub(crate) stats: NonNull<SlotStats>,
}

// SAFETY: the pointers refer to memory owned by the `Memory` holding these
// parts (mmap or heap, never thread-local), and every shared location in it
// is an atomic; moving or sharing the addresses between threads is sound.
unsafe impl Send for Parts {}
// SAFETY: see `Send`: all access through the pointers is atomic.
unsafe impl Sync for Parts {}

#[cfg(not(loom))]
enum Map {
    Rw(memmap2::MmapMut),
    Ro(memmap2::Mmap),
}

/// Owner of the table memory.
pub(crate) struct Memory {
    #[cfg(not(loom))]
    _map: Map,
    #[cfg(loom)]
    _boxed: (Box<Header>, Box<[Group]>, Box<[Slot]>, Box<[SlotStats]>),
    pub(crate) parts: Parts,
    /// Bytes mapped (or allocated).
    pub(crate) bytes: usize,
}

#[cfg(not(loom))]
fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

#[cfg(not(loom))]
fn parts_of(base: *const u8, layout: &Layout) -> Option<Parts> {
    // The offsets are all within the mapping (checked by callers against its
    // length) and multiples of 64 from a page-aligned base. `wrapping_add`
    // keeps this free of unsafe; the pointers are only dereferenced by
    // `Core`, whose SAFETY comments rely on this layout.
    let at = |off: usize| base.wrapping_add(off).cast_mut();
    Some(Parts {
        header: NonNull::new(at(0).cast())?,
        groups: NonNull::new(at(layout.groups_off).cast())?,
        slots: NonNull::new(at(layout.slots_off).cast())?,
        stats: NonNull::new(at(layout.stats_off).cast())?,
    })
}

/// Whether 2 MiB pages suit an anonymous region of `len` bytes: rounding
/// it up to whole hugepages adds at most a sixteenth. Tables from 16k flows
/// up qualify (4.4% or less); smaller ones (at most 1 MB) take normal
/// pages. A hugepage would stay mostly empty (a 1k-flow table uses 127 KiB
/// of one: 2,048 bytes per flow instead of 128), hugepages are reserved
/// memory that the data plane's packet buffers draw on too, and a few
/// hundred 4 KiB pages fit the CPU's second-level TLB.
#[cfg(not(loom))]
pub(crate) fn hugepages_suit(len: usize) -> bool {
    round_up(len, HUGEPAGE_BYTES) - len <= len / 16
}

#[cfg(not(loom))]
impl Memory {
    /// Anonymous memory for `layout`, from hugepages when `try_hugepages`,
    /// the region is large enough for them ([`hugepages_suit`]) and the
    /// system has them, else normal pages. Zero-filled.
    pub(crate) fn anonymous(
        layout: &Layout,
        try_hugepages: bool,
    ) -> Result<(Memory, Backing), crate::CreateError> {
        use memmap2::{Advice, MmapOptions};
        if try_hugepages && hugepages_suit(layout.len) {
            let bytes = round_up(layout.len, HUGEPAGE_BYTES);
            // 21 = log2(2 MiB): MAP_HUGETLB | MAP_HUGE_2MB.
            if let Ok(map) = MmapOptions::new().len(bytes).huge(Some(21)).map_anon() {
                if let Some(parts) = parts_of(map.as_ptr(), layout) {
                    let mem = Memory {
                        _map: Map::Rw(map),
                        parts,
                        bytes,
                    };
                    return Ok((mem, Backing::HugePages2M));
                }
            }
        }
        let bytes = round_up(layout.len, PAGE_BYTES);
        let map = MmapOptions::new()
            .len(bytes)
            .map_anon()
            .map_err(|source| crate::CreateError::Map { bytes, source })?;
        let thp = try_hugepages && bytes >= HUGEPAGE_BYTES && map.advise(Advice::HugePage).is_ok();
        let parts = parts_of(map.as_ptr(), layout).ok_or_else(|| crate::CreateError::Map {
            bytes,
            source: std::io::Error::other("null mapping"),
        })?;
        Ok((
            Memory {
                _map: Map::Rw(map),
                parts,
                bytes,
            },
            Backing::NormalPages {
                transparent_hugepages: thp,
            },
        ))
    }

    /// Creates (or truncates) `path`, sizes it for `layout` and maps it
    /// shared, read-write. The file reads as zeros.
    pub(crate) fn create_file(
        path: &Path,
        layout: &Layout,
    ) -> Result<(Memory, Backing), crate::CreateError> {
        let err = |source| crate::CreateError::File {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(err)?;
        // Sized in whole hugepages so the same code works on hugetlbfs; on a
        // normal file system the tail is sparse.
        let bytes = round_up(layout.len, HUGEPAGE_BYTES);
        file.set_len(bytes as u64).map_err(err)?;
        // SAFETY: the file was just created and sized by us; the mapping is
        // only accessed through atomics, so another process mapping the same
        // file (the intended use) cannot cause a data race in Rust terms. A
        // process that truncates the file would make accesses fault: the file
        // is owned by the data plane and must not be truncated while mapped.
        let map = unsafe { memmap2::MmapOptions::new().len(bytes).map_mut(&file) }.map_err(err)?;
        let parts = parts_of(map.as_ptr(), layout)
            .ok_or_else(|| err(std::io::Error::other("null mapping")))?;
        let backing = Backing::File {
            path: path.to_path_buf(),
            hugetlbfs: is_hugetlbfs(path),
        };
        Ok((
            Memory {
                _map: Map::Rw(map),
                parts,
                bytes,
            },
            backing,
        ))
    }

    /// Maps an existing table file and checks that its header describes a
    /// layout that fits the file. Returns the memory and the layout.
    pub(crate) fn open_file(
        path: &Path,
        writable: bool,
    ) -> Result<(Memory, Layout, Backing), crate::OpenError> {
        use crate::layout::{FORMAT_VERSION, HEADER_BYTES, MAGIC};
        use crate::OpenError;
        let err = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(err)?;
        let file_len = file.metadata().map_err(err)?.len();
        if file_len < HEADER_BYTES as u64 {
            return Err(OpenError::Truncated {
                expected: HEADER_BYTES as u64,
                actual: file_len,
            });
        }
        let bytes =
            usize::try_from(file_len).map_err(|_| OpenError::BadHeader("file too large"))?;
        let map = if writable {
            // SAFETY: as in `create_file`: all access is atomic, and the file
            // must not be truncated while mapped.
            Map::Rw(unsafe { memmap2::MmapOptions::new().map_mut(&file) }.map_err(err)?)
        } else {
            // SAFETY: read-only shared mapping accessed only with atomic
            // loads; concurrent writers in another process are the intended
            // use and are synchronised by the table protocol.
            Map::Ro(unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(err)?)
        };
        let base = match &map {
            Map::Rw(m) => m.as_ptr(),
            Map::Ro(m) => m.as_ptr(),
        };
        let header_parts = parts_of(base, &Layout::new(crate::MIN_CAPACITY))
            .ok_or(OpenError::BadHeader("null mapping"))?;
        // SAFETY: the mapping is at least HEADER_BYTES long (checked above),
        // page-aligned, and the header is made of atomics, valid for any bit
        // pattern; the reference does not outlive `map`.
        let header = unsafe { header_parts.header.as_ref() };
        use crate::sync::Ordering::Acquire;
        let magic = header.magic.load(Acquire);
        if magic != MAGIC {
            return Err(OpenError::BadMagic(magic));
        }
        let format = header.format.load(Acquire);
        if format != FORMAT_VERSION {
            return Err(OpenError::UnsupportedVersion(format));
        }
        let capacity = usize::try_from(header.capacity.load(Acquire))
            .map_err(|_| OpenError::BadHeader("capacity"))?;
        if !crate::valid_capacity(capacity) {
            return Err(OpenError::BadHeader("capacity"));
        }
        let layout = Layout::new(capacity);
        if header.groups.load(Acquire) != layout.groups as u64 {
            return Err(OpenError::BadHeader("group count"));
        }
        if (file_len as u128) < layout.len as u128 {
            return Err(OpenError::Truncated {
                expected: layout.len as u64,
                actual: file_len,
            });
        }
        let parts = parts_of(base, &layout).ok_or(OpenError::BadHeader("null mapping"))?;
        let backing = Backing::File {
            path: path.to_path_buf(),
            hugetlbfs: is_hugetlbfs(path),
        };
        Ok((
            Memory {
                _map: map,
                parts,
                bytes,
            },
            layout,
            backing,
        ))
    }
}

#[cfg(not(loom))]
fn is_hugetlbfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable
    // memory of the right type; statfs only writes into it.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: statfs returned 0, so it initialised the struct (it was also
    // zeroed beforehand, so every field is initialised either way).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    let f_type = st.f_type as u64;
    f_type == HUGETLBFS_MAGIC
}

#[cfg(loom)]
impl Memory {
    /// Heap memory for the model-checking build.
    pub(crate) fn anonymous(
        layout: &Layout,
        _try_hugepages: bool,
    ) -> Result<(Memory, Backing), crate::CreateError> {
        let header = Box::new(Header::new());
        let groups: Box<[Group]> = (0..layout.groups)
            .map(|_| crate::sync::zeroed_atomic())
            .collect();
        let slots: Box<[Slot]> = (0..layout.slots).map(|_| Slot::new()).collect();
        let stats: Box<[SlotStats]> = (0..layout.slots).map(|_| SlotStats::new()).collect();
        let parts = Parts {
            header: NonNull::from(&*header),
            groups: NonNull::from(&*groups).cast(),
            slots: NonNull::from(&*slots).cast(),
            stats: NonNull::from(&*stats).cast(),
        };
        Ok((
            Memory {
                _boxed: (header, groups, slots, stats),
                parts,
                bytes: layout.len,
            },
            Backing::Heap,
        ))
    }
}
