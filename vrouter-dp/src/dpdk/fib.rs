//! DPDK's own longest-prefix-match tables, `rte_fib` (DIR-24-8, IPv4) and `rte_fib6`
//! (trie, IPv6), wrapped so that the forwarding tables' [`crate::fib::Lpm`] can be
//! measured against them on the same routes and addresses (benches/benches/fib.rs).
//! The tables live in EAL memory (hugepages when EAL has them), so EAL must be
//! initialised first. Next-hops are 4 bytes wide, as the LPM's leaf indexes.

use std::ffi::CString;
use std::ptr::NonNull;

use super::DpdkError;

fn fib_error(op: &'static str) -> DpdkError {
    let errno = super::rte_errno();
    DpdkError::Fib {
        op,
        errno,
        reason: super::strerror(errno),
    }
}

fn ret_error(op: &'static str, ret: i32) -> DpdkError {
    DpdkError::Fib {
        op,
        errno: -ret,
        reason: super::strerror(-ret),
    }
}

fn c_name(name: &str) -> Result<CString, DpdkError> {
    CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))
}

/// Largest routes count DPDK's configuration holds.
fn routes_arg(max_routes: u32) -> i32 {
    i32::try_from(max_routes).unwrap_or(i32::MAX)
}

/// An `rte_fib` IPv4 table (DIR-24-8, 4-byte next-hops).
#[derive(Debug)]
pub struct DpdkFib4 {
    fib: NonNull<dpdk_sys::rte_fib>,
}

// SAFETY: the handle is only used through `&mut self` for changes and `&self` for
// lookups, which DPDK allows from any thread; nothing is tied to the creating thread.
unsafe impl Send for DpdkFib4 {}

impl DpdkFib4 {
    /// Creates a table for `max_routes` routes with `num_tbl8` second-level groups
    /// (each holds the 256 addresses under a /24 that has longer routes).
    pub fn new(name: &str, max_routes: u32, num_tbl8: u32) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        let mut conf = dpdk_sys::rte_fib_conf {
            type_: dpdk_sys::rte_fib_type_RTE_FIB_DIR24_8,
            default_nh: 0,
            max_routes: routes_arg(max_routes),
            rib_ext_sz: 0,
            ..Default::default()
        };
        conf.__bindgen_anon_1.dir24_8.nh_sz = dpdk_sys::rte_fib_dir24_8_nh_sz_RTE_FIB_DIR24_8_4B;
        conf.__bindgen_anon_1.dir24_8.num_tbl8 = num_tbl8;
        // SAFETY: `cname` is NUL-terminated and `conf` is a fully initialised
        // configuration; DPDK copies what it keeps. A null return is handled.
        let fib = unsafe { dpdk_sys::rte_fib_create(cname.as_ptr(), -1, &mut conf) };
        NonNull::new(fib)
            .map(|fib| Self { fib })
            .ok_or_else(|| fib_error("rte_fib_create"))
    }

    /// Adds `ip/depth` (host-order address) with next-hop `nh`.
    pub fn add(&mut self, ip: u32, depth: u8, nh: u32) -> Result<(), DpdkError> {
        // SAFETY: `self.fib` is a live table owned by `self`; `&mut self` makes this
        // the only change in progress.
        let ret = unsafe { dpdk_sys::rte_fib_add(self.fib.as_ptr(), ip, depth, u64::from(nh)) };
        if ret < 0 {
            return Err(ret_error("rte_fib_add", ret));
        }
        Ok(())
    }

    /// Looks up `ips` (host order) into `out` (0 where no route matches); as many as
    /// the shorter of the two slices.
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u64]) {
        let n = ips.len().min(out.len());
        let n_arg = i32::try_from(n).unwrap_or(i32::MAX);
        // SAFETY: `ips` and `out` hold at least `n` elements; DPDK reads `n`
        // addresses (the pointer is not const in its signature but is only read) and
        // writes `n` next-hops; the table is live for the borrow of `self`.
        unsafe {
            dpdk_sys::rte_fib_lookup_bulk(
                self.fib.as_ptr(),
                ips.as_ptr().cast_mut(),
                out.as_mut_ptr(),
                n_arg,
            );
        }
    }
}

impl Drop for DpdkFib4 {
    fn drop(&mut self) {
        // SAFETY: the table was created by `rte_fib_create` and is freed once, here.
        unsafe { dpdk_sys::rte_fib_free(self.fib.as_ptr()) }
    }
}

/// An `rte_fib6` IPv6 table (trie, 4-byte next-hops).
#[derive(Debug)]
pub struct DpdkFib6 {
    fib: NonNull<dpdk_sys::rte_fib6>,
}

// SAFETY: as for `DpdkFib4`.
unsafe impl Send for DpdkFib6 {}

impl DpdkFib6 {
    /// Creates a table for `max_routes` routes with `num_tbl8` groups below the
    /// 24-bit top level (a /128 route can take up to 13).
    pub fn new(name: &str, max_routes: u32, num_tbl8: u32) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        let mut conf = dpdk_sys::rte_fib6_conf {
            type_: dpdk_sys::rte_fib6_type_RTE_FIB6_TRIE,
            default_nh: 0,
            max_routes: routes_arg(max_routes),
            rib_ext_sz: 0,
            ..Default::default()
        };
        conf.__bindgen_anon_1.trie.nh_sz = dpdk_sys::rte_fib_trie_nh_sz_RTE_FIB6_TRIE_4B;
        conf.__bindgen_anon_1.trie.num_tbl8 = num_tbl8;
        // SAFETY: as in `DpdkFib4::new`.
        let fib = unsafe { dpdk_sys::rte_fib6_create(cname.as_ptr(), -1, &mut conf) };
        NonNull::new(fib)
            .map(|fib| Self { fib })
            .ok_or_else(|| fib_error("rte_fib6_create"))
    }

    /// Adds `ip/depth` (network-order bytes) with next-hop `nh`.
    pub fn add(&mut self, ip: &[u8; 16], depth: u8, nh: u32) -> Result<(), DpdkError> {
        // SAFETY: `ip` points at 16 readable bytes; the table is live and `&mut self`
        // makes this the only change in progress.
        let ret =
            unsafe { dpdk_sys::rte_fib6_add(self.fib.as_ptr(), ip.as_ptr(), depth, u64::from(nh)) };
        if ret < 0 {
            return Err(ret_error("rte_fib6_add", ret));
        }
        Ok(())
    }

    /// Looks up `ips` (network-order bytes) into `out` (0 where no route matches);
    /// as many as the shorter of the two slices.
    pub fn lookup_bulk(&self, ips: &[[u8; 16]], out: &mut [u64]) {
        let n = ips.len().min(out.len());
        let n_arg = i32::try_from(n).unwrap_or(i32::MAX);
        // SAFETY: `ips` holds at least `n` 16-byte addresses (the array type DPDK
        // takes), only read; `out` has room for `n` next-hops; the table is live.
        unsafe {
            dpdk_sys::rte_fib6_lookup_bulk(
                self.fib.as_ptr(),
                ips.as_ptr().cast_mut(),
                out.as_mut_ptr(),
                n_arg,
            );
        }
    }
}

impl Drop for DpdkFib6 {
    fn drop(&mut self) {
        // SAFETY: the table was created by `rte_fib6_create` and is freed once, here.
        unsafe { dpdk_sys::rte_fib6_free(self.fib.as_ptr()) }
    }
}
