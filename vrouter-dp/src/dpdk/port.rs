//! Ethdev ports and their RX/TX queues.

use std::ffi::{CStr, CString};

use super::burst::MbufBurst;
use super::error::DpdkError;
use super::mempool::Mempool;

/// An ethdev port id.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A queue index on a port.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

/// What to configure on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConf {
    /// RX queues (spread by RSS when more than one and the device supports it).
    pub rx_queues: u16,
    /// TX queues (one per worker that sends on the port).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
    /// Enable promiscuous mode.
    pub promiscuous: bool,
}

impl Default for PortConf {
    fn default() -> Self {
        PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: true,
        }
    }
}

/// Link state of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device dropped because RX queues were full.
    pub rx_missed: u64,
    /// RX errors.
    pub rx_errors: u64,
    /// TX errors.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// The result of one TX call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Packets the device accepted.
    pub sent: usize,
    /// Packets it refused; they were freed.
    pub dropped: usize,
}

/// Offloads and capabilities found on the device at configure time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCaps {
    /// RSS enabled over several RX queues.
    pub rss: bool,
    /// RX IPv4/UDP/TCP checksum offload enabled.
    pub rx_checksum: bool,
    /// TX IPv4 header checksum offload enabled.
    pub tx_ipv4_checksum: bool,
    /// TX UDP checksum offload enabled.
    pub tx_udp_checksum: bool,
}

/// An ethdev port, stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    name: String,
    started: bool,
    configured: bool,
    caps: PortCaps,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
}

fn check(port: u16, op: &'static str, ret: i32) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::port(port, op, ret))
    } else {
        Ok(())
    }
}

impl Port {
    /// The port of the device with this name (a vdev name such as `net_null0`, or a
    /// PCI address).
    pub fn by_name(name: &str) -> Result<Port, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
        let mut id: u16 = 0;
        // SAFETY: cname is a valid C string, id a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(DpdkError::NoSuchPort(name.to_owned()));
        }
        Ok(Port::from_id(PortId(id), name.to_owned()))
    }

    /// The port with this id, if valid.
    pub fn by_id(id: PortId) -> Result<Port, DpdkError> {
        // SAFETY: plain lookup, DPDK range-checks the id.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(DpdkError::NoSuchPort(format!("port {}", id.0)));
        }
        let mut buf = [0 as std::ffi::c_char; 64];
        // SAFETY: buf is a valid writable buffer of 64 bytes (RTE_ETH_NAME_MAX_LEN).
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
        let name = if ret == 0 {
            // SAFETY: DPDK wrote a NUL-terminated name into buf.
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            format!("port{}", id.0)
        };
        Ok(Port::from_id(id, name))
    }

    fn from_id(id: PortId, name: String) -> Port {
        Port {
            id,
            name,
            started: false,
            configured: false,
            caps: PortCaps::default(),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
        }
    }

    /// Number of ports DPDK knows about.
    pub fn count() -> u16 {
        // SAFETY: plain read.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offloads enabled at configure time.
    pub fn caps(&self) -> PortCaps {
        self.caps
    }

    /// The NUMA socket of the device (`None` when unknown, e.g. vdevs).
    pub fn socket(&self) -> Option<u32> {
        // SAFETY: plain read, DPDK range-checks the id.
        let s = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id.0) };
        u32::try_from(s).ok()
    }

    fn dev_info(&self) -> Result<dpdk_sys::rte_eth_dev_info, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid, writable rte_eth_dev_info.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.id.0, &mut info) };
        check(self.id.0, "rte_eth_dev_info_get", ret)?;
        Ok(info)
    }

    /// The most RX and TX queues the device supports.
    pub fn max_queues(&self) -> Result<(u16, u16), DpdkError> {
        let info = self.dev_info()?;
        Ok((info.max_rx_queues, info.max_tx_queues))
    }

    /// The driver name (e.g. `net_null`).
    pub fn driver_name(&self) -> String {
        match self.dev_info() {
            Ok(info) if !info.driver_name.is_null() => {
                // SAFETY: driver_name points to the driver's static NUL-terminated name.
                unsafe { CStr::from_ptr(info.driver_name) }
                    .to_string_lossy()
                    .into_owned()
            }
            _ => String::from("unknown"),
        }
    }

    /// Configures queues, descriptors, MTU and the offloads the device has (RSS over
    /// several RX queues, RX checksum, TX IPv4/UDP checksum), sets up every queue with
    /// `pool` for RX buffers on the device's socket, and leaves the port stopped.
    #[cold]
    pub fn configure(&mut self, conf: &PortConf, pool: &Mempool) -> Result<(), DpdkError> {
        let port = self.id.0;
        let info = self.dev_info()?;
        if conf.rx_queues == 0 || conf.rx_queues > info.max_rx_queues {
            return Err(DpdkError::PortConf {
                port,
                field: "rx_queues",
                reason: format!(
                    "{} is outside 1..={} for this device",
                    conf.rx_queues, info.max_rx_queues
                ),
            });
        }
        if conf.tx_queues == 0 || conf.tx_queues > info.max_tx_queues {
            return Err(DpdkError::PortConf {
                port,
                field: "tx_queues",
                reason: format!(
                    "{} is outside 1..={} for this device",
                    conf.tx_queues, info.max_tx_queues
                ),
            });
        }
        let mut eth_conf = dpdk_sys::rte_eth_conf::default();
        let mut caps = PortCaps::default();
        let rss_hf = info.flow_type_rss_offloads
            & u64::from(
                dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_UDP | dpdk_sys::RTE_ETH_RSS_TCP,
            );
        if conf.rx_queues > 1 && rss_hf != 0 {
            eth_conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            eth_conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
            caps.rss = true;
        }
        let rx_ck = u64::from(dpdk_sys::RTE_ETH_RX_OFFLOAD_CHECKSUM);
        if info.rx_offload_capa & rx_ck == rx_ck {
            eth_conf.rxmode.offloads |= rx_ck;
            caps.rx_checksum = true;
        }
        let rss_hash_off = u64::from(dpdk_sys::RTE_ETH_RX_OFFLOAD_RSS_HASH);
        if caps.rss && info.rx_offload_capa & rss_hash_off != 0 {
            eth_conf.rxmode.offloads |= rss_hash_off;
        }
        let tx_ip = u64::from(dpdk_sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
        if info.tx_offload_capa & tx_ip != 0 {
            eth_conf.txmode.offloads |= tx_ip;
            caps.tx_ipv4_checksum = true;
        }
        let tx_udp = u64::from(dpdk_sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
        if info.tx_offload_capa & tx_udp != 0 {
            eth_conf.txmode.offloads |= tx_udp;
            caps.tx_udp_checksum = true;
        }
        if let Some(mtu) = conf.mtu {
            if (info.min_mtu != 0 && mtu < info.min_mtu)
                || (info.max_mtu != 0 && mtu > info.max_mtu)
            {
                return Err(DpdkError::PortConf {
                    port,
                    field: "mtu",
                    reason: format!(
                        "{mtu} is outside {}..={} for this device",
                        info.min_mtu, info.max_mtu
                    ),
                });
            }
            eth_conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: eth_conf is a fully initialised rte_eth_conf that lives for the call.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(port, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        check(port, "rte_eth_dev_configure", ret)?;
        let mut nb_rx = conf.rx_desc;
        let mut nb_tx = conf.tx_desc;
        // SAFETY: valid out pointers to two u16 locals.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut nb_rx, &mut nb_tx) };
        check(port, "rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;
        let socket = self.socket().map_or(-1, |s| s as i32) as u32;
        let mut rxconf = info.default_rxconf;
        rxconf.offloads = eth_conf.rxmode.offloads;
        for q in 0..conf.rx_queues {
            // SAFETY: rxconf is valid for the call; pool is a live pktmbuf pool that
            // outlives the port's use of it (caller's contract: drop ports first).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(port, q, nb_rx, socket, &rxconf, pool.as_ptr())
            };
            check(port, "rte_eth_rx_queue_setup", ret)?;
        }
        let mut txconf = info.default_txconf;
        txconf.offloads = eth_conf.txmode.offloads;
        for q in 0..conf.tx_queues {
            // SAFETY: txconf is valid for the call.
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(port, q, nb_tx, socket, &txconf) };
            check(port, "rte_eth_tx_queue_setup", ret)?;
        }
        if conf.promiscuous {
            // SAFETY: plain call on a configured port. Some vdevs do not support
            // promiscuous mode; that is not an error for us.
            let _ = unsafe { dpdk_sys::rte_eth_promiscuous_enable(port) };
        }
        self.caps = caps;
        self.configured = true;
        self.rx_taken = vec![false; usize::from(conf.rx_queues)];
        self.tx_taken = vec![false; usize::from(conf.tx_queues)];
        Ok(())
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: plain call; DPDK checks the port state.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id.0) };
        check(self.id.0, "rte_eth_dev_start", ret)?;
        self.started = true;
        Ok(())
    }

    /// Stops the port (no-op when not started). Workers must have stopped polling
    /// its queues first.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if !self.started {
            return Ok(());
        }
        // SAFETY: plain call; the caller guarantees no lcore polls the port now.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id.0) };
        check(self.id.0, "rte_eth_dev_stop", ret)?;
        self.started = false;
        Ok(())
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Hands out RX queue `q` once; `None` when out of range or already taken.
    pub fn rx_queue(&mut self, q: u16) -> Option<RxQueue> {
        let slot = self.rx_taken.get_mut(usize::from(q))?;
        if *slot {
            return None;
        }
        *slot = true;
        Some(RxQueue {
            port: self.id.0,
            queue: q,
        })
    }

    /// Hands out TX queue `q` once; `None` when out of range or already taken.
    pub fn tx_queue(&mut self, q: u16) -> Option<TxQueue> {
        let slot = self.tx_taken.get_mut(usize::from(q))?;
        if *slot {
            return None;
        }
        *slot = true;
        Some(TxQueue {
            port: self.id.0,
            queue: q,
        })
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: link is a valid writable rte_eth_link.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id.0, &mut link) };
        check(self.id.0, "rte_eth_link_get_nowait", ret)?;
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: s is a valid writable rte_eth_stats.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.id.0, &mut s) };
        check(self.id.0, "rte_eth_stats_get", ret)?;
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the basic counters.
    pub fn reset_stats(&self) -> Result<(), DpdkError> {
        // SAFETY: plain call.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.id.0) };
        check(self.id.0, "rte_eth_stats_reset", ret)
    }

    /// Extended counters by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let port = self.id.0;
        // SAFETY: a NULL buffer with size 0 asks for the count only.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(port, std::ptr::null_mut(), 0) };
        check(port, "rte_eth_xstats_get_names", n)?;
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut vals = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: names has room for n entries.
        let got = unsafe { dpdk_sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32) };
        check(port, "rte_eth_xstats_get_names", got)?;
        // SAFETY: vals has room for n entries.
        let got2 = unsafe { dpdk_sys::rte_eth_xstats_get(port, vals.as_mut_ptr(), n as u32) };
        check(port, "rte_eth_xstats_get", got2)?;
        let m = (got as usize).min(got2 as usize).min(n);
        Ok(names[..m]
            .iter()
            .zip(&vals[..m])
            .map(|(nm, v)| {
                // SAFETY: DPDK NUL-terminates each 64-byte name.
                let s = unsafe { CStr::from_ptr(nm.name.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                (s, v.value)
            })
            .collect())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: a is a valid writable rte_ether_addr.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id.0, &mut a) };
        check(self.id.0, "rte_eth_macaddr_get", ret)?;
        Ok(a.addr_bytes)
    }

    /// Stops and closes the port now (the device's resources are released).
    pub fn close(mut self) -> Result<(), DpdkError> {
        self.stop()?;
        let id = self.id.0;
        std::mem::forget(self);
        // SAFETY: the port is stopped and this handle is gone; no queue handle may
        // be polled any more (DPDK's fast-path ops for a closed port are no-ops).
        let ret = unsafe { dpdk_sys::rte_eth_dev_close(id) };
        check(id, "rte_eth_dev_close", ret)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        if self.configured {
            // SAFETY: as in `close`.
            let _ = unsafe { dpdk_sys::rte_eth_dev_close(self.id.0) };
        }
    }
}

/// An RX queue, owned by one worker (only one handle per queue exists).
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// The port id.
    #[inline]
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue index.
    #[inline]
    pub fn queue(&self) -> QueueId {
        QueueId(self.queue)
    }

    /// Receives into the free part of `burst`; returns how many arrived.
    #[inline]
    pub fn rx(&mut self, burst: &mut MbufBurst) -> usize {
        let (ptr, room) = burst.spare_for_rx();
        if room == 0 {
            return 0;
        }
        // SAFETY: ptr points at `room` writable slots inside the burst's array; this
        // handle is the only user of (port, queue) (handed out once by Port).
        let n = unsafe { dpdk_sys::rte_eth_rx_burst(self.port, self.queue, ptr, room) };
        let n = usize::from(n).min(usize::from(room));
        burst.set_len_after_rx(n);
        n
    }
}

/// A TX queue, owned by one worker (only one handle per queue exists).
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue {
    /// The port id.
    #[inline]
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue index.
    #[inline]
    pub fn queue(&self) -> QueueId {
        QueueId(self.queue)
    }

    /// Sends everything in `burst`; what the device refuses is freed and counted.
    /// The burst is empty afterwards.
    #[inline]
    pub fn tx(&mut self, burst: &mut MbufBurst) -> TxStats {
        let (ptr, len) = burst.raw_for_tx();
        if len == 0 {
            return TxStats::default();
        }
        // SAFETY: ptr holds `len` valid mbufs owned by the burst; the driver takes
        // ownership of the first `sent`; this handle is the only user of the queue.
        let sent = unsafe { dpdk_sys::rte_eth_tx_burst(self.port, self.queue, ptr, len as u16) };
        let sent = usize::from(sent);
        let dropped = burst.consume_after_tx(sent);
        TxStats { sent, dropped }
    }
}
