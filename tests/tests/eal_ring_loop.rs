//! EAL on virtual devices: 10,000 mbufs with distinct payloads go through a net_ring
//! loop (TX and RX on the same ring) and come back byte-identical and in order; the
//! port counters agree; every mbuf is back in the pool at the end; EAL refuses a
//! second initialisation.

use vrouter_dp::dpdk::{DpdkError, Eal, Mbuf, MbufBurst, Mempool, Port, PortConf, SocketId, BURST};
use vrouter_dp::packet::PacketBuf;
use vrouter_tests::{eal_args, require_hugepages};

const N: usize = 10_000;

fn payload(i: usize) -> Vec<u8> {
    let len = 60 + (i * 131) % 1400;
    let mut v = vec![0u8; len];
    v[..4].copy_from_slice(&(i as u32).to_be_bytes());
    for (k, b) in v.iter_mut().enumerate().skip(4) {
        *b = (i.wrapping_mul(31) ^ k.wrapping_mul(7)) as u8;
    }
    v
}

#[test]
fn ring_loop_returns_10k_mbufs_identical_and_in_order() {
    require_hugepages(64);
    let eal =
        Eal::init(eal_args("ring-loop", "0", true, &["--vdev", "net_ring0"])).expect("EAL init");
    assert!(matches!(
        Eal::init(["again", "--no-pci"]),
        Err(DpdkError::EalAlreadyInitialised)
    ));

    let pool = Mempool::new(
        "ring_loop",
        4095,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("mempool");
    {
        let mut port = Port::by_name("net_ring0").expect("net_ring0 port");
        port.configure(&PortConf::default(), &pool)
            .expect("configure");
        port.start().expect("start");
        port.reset_stats().expect("reset stats");
        let mut rxq = port.rx_queue(0).expect("rx queue 0");
        let mut txq = port.tx_queue(0).expect("tx queue 0");
        assert!(port.rx_queue(0).is_none(), "a queue is handed out once");

        let mut next_rx = 0usize;
        let mut total_bytes = 0u64;
        let mut rx_bytes = 0u64;
        let mut burst = MbufBurst::new();
        let mut i = 0usize;
        while i < N {
            let n = BURST.min(N - i);
            for k in 0..n {
                let p = payload(i + k);
                total_bytes += p.len() as u64;
                let m = Mbuf::from_bytes(&pool, &p).expect("alloc + copy");
                burst.push(m).expect("burst has room");
            }
            let r = txq.tx(&mut burst);
            assert_eq!(r.sent, n, "the ring accepted the whole burst");
            assert_eq!(r.dropped, 0);
            i += n;
            // Drain what came back.
            let mut spins = 0;
            while next_rx < i {
                let got = rxq.rx(&mut burst);
                for m in burst.drain() {
                    assert_eq!(
                        m.data(),
                        payload(next_rx).as_slice(),
                        "packet {next_rx} differs"
                    );
                    rx_bytes += m.len() as u64;
                    next_rx += 1;
                }
                if got == 0 {
                    spins += 1;
                    assert!(
                        spins < 1_000_000,
                        "ring stopped returning packets at {next_rx}"
                    );
                }
            }
        }
        assert_eq!(next_rx, N);
        let st = port.stats().expect("stats");
        assert_eq!(st.tx_packets, N as u64, "tx counter");
        assert_eq!(st.rx_packets, N as u64, "rx counter");
        // net_ring counts packets only (its byte counters stay 0); both directions
        // must agree either way, and the bytes received equal the bytes sent.
        assert_eq!(st.tx_bytes, st.rx_bytes, "byte counters agree");
        assert!(st.tx_bytes == 0 || st.tx_bytes == total_bytes);
        assert_eq!(rx_bytes, total_bytes, "bytes received equal bytes sent");
        assert_eq!(st.rx_missed + st.rx_errors + st.tx_errors, 0);
        let xs = port.xstats().expect("xstats");
        let x = |n: &str| xs.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(
            x("rx_good_packets"),
            Some(N as u64),
            "xstats rx_good_packets"
        );
        assert_eq!(
            x("tx_good_packets"),
            Some(N as u64),
            "xstats tx_good_packets"
        );
        assert!(port.link().expect("link").up, "a ring port's link is up");
        assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
        port.close().expect("close");
    }
    drop(pool);
    drop(eal);
}
