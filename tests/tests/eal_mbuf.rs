//! The Mbuf wrapper: prepend/adj/trim/append bounds never corrupt, drop frees, bursts
//! free in bulk, lcore launch/join, and vdev hot-plug/removal at run time.

use vrouter_dp::dpdk::{
    dev, lcore, DpdkError, Eal, LcoreId, Mbuf, MbufBurst, Mempool, PortConf, SocketId, BURST,
};
use vrouter_dp::packet::{BufError, PacketBuf};
use vrouter_tests::{eal_args, require_hugepages};

fn mbuf_bounds(pool: &Mempool) {
    let mut m = Mbuf::from_bytes(pool, &[1, 2, 3, 4, 5, 6]).expect("alloc");
    let head = m.headroom();
    assert_eq!(head, 128, "RTE_PKTMBUF_HEADROOM");
    // Prepend and adj move the front only: the tailroom stays, the packet length
    // follows, and DPDK's own append agrees on the tailroom to the byte.
    let tail0 = m.tailroom();
    m.prepend(14).expect("prepend").fill(0xab);
    assert_eq!((m.headroom(), m.len(), m.pkt_len()), (head - 14, 20, 20));
    assert_eq!(m.tailroom(), tail0);
    m.adj(14).expect("adj");
    assert_eq!(
        (m.headroom(), m.data(), m.pkt_len()),
        (head, &[1, 2, 3, 4, 5, 6][..], 6)
    );
    assert_eq!(m.tailroom(), tail0);
    m.append(tail0).expect("append exactly the tailroom");
    assert_eq!((m.tailroom(), m.pkt_len() as usize), (0, 6 + tail0));
    m.trim(tail0).expect("trim it back");
    assert_eq!((m.tailroom(), m.data()), (tail0, &[1, 2, 3, 4, 5, 6][..]));
    // Beyond the headroom: an error, nothing changes.
    assert_eq!(
        m.prepend(head + 1).unwrap_err(),
        BufError::NoHeadroom {
            need: head + 1,
            have: head
        }
    );
    assert_eq!(m.data(), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(m.headroom(), head);
    // Exactly the headroom works.
    m.prepend(head).expect("prepend all headroom").fill(0xee);
    assert_eq!(m.len(), head + 6);
    assert_eq!(&m.data()[head..], &[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        m.prepend(1).unwrap_err(),
        BufError::NoHeadroom { need: 1, have: 0 }
    );
    m.adj(head).expect("adj back");
    assert_eq!(m.data(), &[1, 2, 3, 4, 5, 6]);
    // adj/trim beyond the length fail without change.
    assert_eq!(
        m.adj(7).unwrap_err(),
        BufError::TooShort { need: 7, have: 6 }
    );
    assert_eq!(
        m.trim(7).unwrap_err(),
        BufError::TooShort { need: 7, have: 6 }
    );
    assert_eq!(m.data(), &[1, 2, 3, 4, 5, 6]);
    m.trim(2).expect("trim");
    m.adj(1).expect("adj");
    assert_eq!(m.data(), &[2, 3, 4]);
    assert_eq!(m.pkt_len(), 3);
    let tail = m.tailroom();
    assert_eq!(
        m.append(tail + 1).unwrap_err(),
        BufError::NoTailroom {
            need: tail + 1,
            have: tail
        }
    );
    m.append(2).expect("append").copy_from_slice(&[9, 9]);
    assert_eq!(m.data(), &[2, 3, 4, 9, 9]);
    // Writes through data_mut land in the packet.
    m.data_mut()[0] = 7;
    assert_eq!(m.data()[0], 7);
    assert_eq!(m.refcnt(), 1);
    assert_eq!(m.rss_hash(), None);
    drop(m);
    assert_eq!(pool.in_use(), 0, "drop returned the mbuf");
}

fn bursts_free(pool: &Mempool) {
    let mut b = MbufBurst::new();
    for i in 0..BURST {
        b.push(Mbuf::from_bytes(pool, &[i as u8; 64]).expect("alloc"))
            .expect("room");
    }
    assert!(b.is_full());
    let extra = Mbuf::alloc(pool).expect("alloc");
    let back = b.push(extra).expect_err("full burst gives the mbuf back");
    drop(back);
    assert_eq!(pool.in_use() as usize, BURST);
    // Partial drain: consumed ones freed by their drop, the rest by the iterator.
    let mut d = b.drain();
    let first = d.next().expect("one");
    assert_eq!(first.data(), &[0u8; 64][..]);
    drop(first);
    drop(d);
    assert!(b.is_empty());
    assert_eq!(pool.in_use(), 0, "drain freed everything");
    for _ in 0..5 {
        b.push(Mbuf::alloc(pool).expect("alloc")).expect("room");
    }
    drop(b);
    assert_eq!(pool.in_use(), 0, "burst drop freed in bulk");
}

fn launch_and_join(eal: &Eal) {
    let workers = eal.worker_lcores();
    assert_eq!(workers, vec![LcoreId(1)]);
    let h = lcore::launch(eal, LcoreId(1), || lcore::current_lcore().0 * 10 + 7).expect("launch");
    assert_eq!(h.join().expect("join"), 17);
    let h = lcore::launch(eal, LcoreId(1), || -> u32 { panic!("boom") }).expect("launch");
    assert!(matches!(h.join(), Err(DpdkError::LcorePanicked(1))));
    // The main lcore is not a worker: launching there fails.
    assert!(lcore::launch(eal, eal.main_lcore(), || 0).is_err());
}

fn hotplug(pool: &Mempool) {
    let before = vrouter_dp::dpdk::Port::count();
    let mut p = dev::probe("net_ring_hp0").expect("probe net_ring_hp0");
    assert_eq!(vrouter_dp::dpdk::Port::count(), before + 1);
    p.configure(&PortConf::default(), pool).expect("configure");
    p.start().expect("start");
    let mut tx = p.tx_queue(0).expect("txq");
    let mut rx = p.rx_queue(0).expect("rxq");
    let mut b = MbufBurst::new();
    b.push(Mbuf::from_bytes(pool, b"hot-plugged").expect("alloc"))
        .expect("room");
    assert_eq!(tx.tx(&mut b).sent, 1);
    assert_eq!(rx.rx(&mut b), 1);
    assert_eq!(b.as_slice()[0].data(), b"hot-plugged");
    b.free_all();
    dev::remove(p).expect("remove");
    assert_eq!(vrouter_dp::dpdk::Port::count(), before);
    assert!(matches!(
        dev::probe("net_bogus_driver0"),
        Err(DpdkError::Device { .. })
    ));
}

#[test]
fn mbuf_wrapper_lcores_and_hotplug() {
    require_hugepages(64);
    let eal = Eal::init(eal_args("mbuf", "0,1", true, &[])).expect("EAL init");
    let pool = Mempool::new("mbuf_t", 1023, 0, Mempool::DEFAULT_DATA_ROOM, SocketId::ANY)
        .expect("mempool");
    mbuf_bounds(&pool);
    bursts_free(&pool);
    launch_and_join(&eal);
    hotplug(&pool);
    assert_eq!(pool.in_use(), 0);
    drop(pool);
    drop(eal);
}
