//! Handing queue handles to running workers and taking them back.
//!
//! Each worker has one [`CommandChannel`]: two bounded lock-free queues
//! (`crossbeam_queue::ArrayQueue`, Vyukov's bounded MPMC array queue), one towards the
//! worker and one back. The control thread pushes [`Command`]s through the
//! [`Controller`] end; the worker polls its [`WorkerEnd`] every
//! [`POLL_EVERY`] loop iterations, applies each command to its [`QueueSet`] and
//! answers each with exactly one [`Reply`].
//!
//! On the worker side nothing locks, allocates or makes a system call: a pop from an
//! empty queue is one atomic load; the queue vectors are allocated with their full
//! capacity up front ([`MAX_RX_QUEUES`] RX queues, [`MAX_PORTS`] TX slots) and a
//! command that would grow them is refused (the handle comes back in the reply).
//!
//! Releasing a port is the fence before its removal: the worker drops every handle
//! of that port and zeroes its per-port counters, so a port id reused later starts
//! from zero. The worker sends what it routes to a port within the iteration that
//! produced it, so no buffer is queued to a port between two iterations; once the
//! release is acknowledged the worker never touches the port again, and the control
//! thread may stop, close and detach the device. Packets the pipeline still routes to
//! the released port id are freed and counted as TX drops of that port.
//!
//! The control side keeps at most one batch of commands in flight per worker and
//! waits for every reply ([`Controller::call`]), so the reply queue never overflows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use thiserror::Error;

use super::stats::{WorkerStats, MAX_PORTS};
use crate::dpdk::{Mbuf, PortId, RxQueue, TxQueue};

/// Loop iterations between two polls of the command queue.
pub const POLL_EVERY: u64 = 64;

/// Most RX queues one worker polls.
pub const MAX_RX_QUEUES: usize = 256;

/// Commands (and replies) that may be in flight per worker.
pub const CHANNEL_DEPTH: usize = 64;

/// A queue handle that belongs to one port.
pub trait PortQueue {
    /// The port the queue belongs to.
    fn port_id(&self) -> PortId;
}

impl PortQueue for RxQueue {
    #[inline]
    fn port_id(&self) -> PortId {
        self.port()
    }
}

impl PortQueue for TxQueue {
    #[inline]
    fn port_id(&self) -> PortId {
        self.port()
    }
}

/// Buffers that workers without a TX queue of a port hand to the worker that owns
/// one (multi-producer, single consumer: the owner).
pub type Inbox<B = Mbuf> = Arc<ArrayQueue<B>>;

/// Buffers one inbox holds.
pub const INBOX_DEPTH: usize = 1024;

/// A new, empty inbox of [`INBOX_DEPTH`] buffers.
pub fn new_inbox<B>() -> Inbox<B> {
    Arc::new(ArrayQueue::new(INBOX_DEPTH))
}

/// A command to a worker.
#[derive(Debug)]
pub enum Command<R = RxQueue, T = TxQueue, B = Mbuf> {
    /// Start polling this RX queue.
    AddRx(R),
    /// Send what is routed to the queue's port on this TX queue.
    AddTx(T),
    /// As [`Command::AddTx`], and also send what other workers put into `inbox`
    /// (drained every iteration).
    AddTxWithInbox {
        /// The worker's TX queue of the port.
        queue: T,
        /// What the workers without a queue of the port hand over.
        inbox: Inbox<B>,
    },
    /// The worker has no TX queue of `port`: put what it routes there into `inbox`.
    AddHandoff {
        /// The port.
        port: PortId,
        /// The inbox of the worker that owns a TX queue of the port.
        inbox: Inbox<B>,
    },
    /// Drop every handle of this port and reset its counters.
    Release(PortId),
}

/// Where a worker sends what it routes to one port.
#[derive(Debug)]
pub enum TxSlot<T = TxQueue, B = Mbuf> {
    /// Its own TX queue of the port, and the inbox it drains into that queue.
    Queue {
        /// The TX queue.
        queue: T,
        /// Buffers other workers hand over, if any do.
        inbox: Option<Inbox<B>>,
    },
    /// No queue of its own: the owner's inbox.
    Handoff(Inbox<B>),
}

/// Where each worker sends what it routes to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPlan {
    /// On the port's TX queue of this index.
    Queue(u16),
    /// Into the inbox of the worker of this index (an owner of a queue).
    Handoff(usize),
}

/// Maps `workers` workers onto a port's `queues` TX queues: worker `w` owns queue
/// `w` while `w < queues`; each further worker hands over to worker `w % queues`.
/// Empty when the port has no TX queue.
pub fn tx_plan(workers: usize, queues: u16) -> Vec<TxPlan> {
    let q = usize::from(queues);
    if q == 0 {
        return Vec::new();
    }
    (0..workers)
        .map(|w| match u16::try_from(w) {
            Ok(i) if w < q => TxPlan::Queue(i),
            _ => TxPlan::Handoff(w % q),
        })
        .collect()
}

/// Puts `bufs` into `inbox`; each buffer that does not fit goes to `full`.
/// Returns how many went to `full`. Lock-free, no allocation.
#[inline]
pub fn hand_off<B>(
    inbox: &ArrayQueue<B>,
    bufs: impl IntoIterator<Item = B>,
    mut full: impl FnMut(B),
) -> usize {
    let mut n = 0;
    for b in bufs {
        if let Err(b) = inbox.push(b) {
            full(b);
            n += 1;
        }
    }
    n
}

/// Takes up to `max` buffers out of `inbox`, in order, each to `f`; returns how
/// many. Lock-free, no allocation.
#[inline]
pub fn take_from<B>(inbox: &ArrayQueue<B>, max: usize, mut f: impl FnMut(B)) -> usize {
    let mut n = 0;
    while n < max {
        match inbox.pop() {
            Some(b) => {
                f(b);
                n += 1;
            }
            None => break,
        }
    }
    n
}

/// A worker's answer to one [`Command`].
#[derive(Debug)]
pub enum Reply<R = RxQueue, T = TxQueue, B = Mbuf> {
    /// The command was applied.
    Done,
    /// The port's handles were dropped: `rx` RX queues and `tx` TX queues.
    Released {
        /// The port.
        port: PortId,
        /// RX queues dropped.
        rx: usize,
        /// TX queues dropped (a hand-off counts none).
        tx: usize,
    },
    /// The command could not be applied (no room, or port id out of range); the
    /// command comes back with its handle.
    Refused(Command<R, T, B>),
}

/// The queues one worker polls and sends on.
#[derive(Debug)]
pub struct QueueSet<R = RxQueue, T = TxQueue, B = Mbuf> {
    /// RX queues polled, in order of addition (capacity [`MAX_RX_QUEUES`]).
    pub rx: Vec<R>,
    /// Where to send, per port id (length [`MAX_PORTS`]).
    pub tx: Vec<Option<TxSlot<T, B>>>,
    /// Port ids whose slot is a queue with an inbox (capacity [`MAX_PORTS`]).
    inboxes: Vec<u16>,
}

impl<R: PortQueue, T: PortQueue, B> QueueSet<R, T, B> {
    /// An empty set with its full capacity allocated.
    pub fn new() -> Self {
        let mut tx = Vec::with_capacity(MAX_PORTS);
        tx.resize_with(MAX_PORTS, || None);
        Self {
            rx: Vec::with_capacity(MAX_RX_QUEUES),
            tx,
            inboxes: Vec::with_capacity(MAX_PORTS),
        }
    }

    /// Calls `f` with each TX queue that has an inbox, and the inbox (no
    /// allocation).
    #[inline]
    pub fn for_each_inbox(&mut self, mut f: impl FnMut(&mut T, &ArrayQueue<B>)) {
        for &p in &self.inboxes {
            if let Some(Some(TxSlot::Queue {
                queue,
                inbox: Some(i),
            })) = self.tx.get_mut(usize::from(p))
            {
                f(queue, i);
            }
        }
    }

    /// A set holding `rx` and `tx` (the queues of the ports that exist at start).
    /// Queues beyond the capacities are given back in the error.
    pub fn with_queues(
        rx: impl IntoIterator<Item = R>,
        tx: impl IntoIterator<Item = T>,
    ) -> Result<Self, Command<R, T, B>> {
        let mut s = Self::new();
        for q in rx {
            if let Reply::Refused(c) = s.apply(Command::AddRx(q), None) {
                return Err(c);
            }
        }
        for q in tx {
            if let Reply::Refused(c) = s.apply(Command::AddTx(q), None) {
                return Err(c);
            }
        }
        Ok(s)
    }

    /// Applies one command (no allocation: the vectors never grow past the
    /// capacity reserved in [`QueueSet::new`]). `stats`, when given, has the released
    /// port's counters zeroed.
    pub fn apply(&mut self, cmd: Command<R, T, B>, stats: Option<&WorkerStats>) -> Reply<R, T, B> {
        match cmd {
            Command::AddRx(q) => {
                if self.rx.len() >= MAX_RX_QUEUES || usize::from(q.port_id().0) >= MAX_PORTS {
                    return Reply::Refused(Command::AddRx(q));
                }
                self.rx.push(q);
                Reply::Done
            }
            Command::AddTx(q) => match self.tx.get_mut(usize::from(q.port_id().0)) {
                Some(slot @ None) => {
                    *slot = Some(TxSlot::Queue {
                        queue: q,
                        inbox: None,
                    });
                    Reply::Done
                }
                _ => Reply::Refused(Command::AddTx(q)),
            },
            Command::AddTxWithInbox { queue, inbox } => {
                let p = queue.port_id().0;
                match self.tx.get_mut(usize::from(p)) {
                    // `inboxes` never holds a port twice (its slot was empty), so it
                    // stays within its MAX_PORTS capacity.
                    Some(slot @ None) if self.inboxes.len() < MAX_PORTS => {
                        *slot = Some(TxSlot::Queue {
                            queue,
                            inbox: Some(inbox),
                        });
                        self.inboxes.push(p);
                        Reply::Done
                    }
                    _ => Reply::Refused(Command::AddTxWithInbox { queue, inbox }),
                }
            }
            Command::AddHandoff { port, inbox } => match self.tx.get_mut(usize::from(port.0)) {
                Some(slot @ None) => {
                    *slot = Some(TxSlot::Handoff(inbox));
                    Reply::Done
                }
                _ => Reply::Refused(Command::AddHandoff { port, inbox }),
            },
            Command::Release(port) => {
                let before = self.rx.len();
                self.rx.retain(|q| q.port_id() != port);
                let rx = before - self.rx.len();
                self.inboxes.retain(|p| *p != port.0);
                // Dropping the slot drops this worker's reference to an inbox only;
                // the control thread holds another one (see the module docs).
                let tx = match self.tx.get_mut(usize::from(port.0)).and_then(Option::take) {
                    Some(TxSlot::Queue { .. }) => 1,
                    Some(TxSlot::Handoff(_)) | None => 0,
                };
                if let Some(s) = stats {
                    reset_port(s, port);
                }
                Reply::Released { port, rx, tx }
            }
        }
    }
}

impl<R: PortQueue, T: PortQueue, B> Default for QueueSet<R, T, B> {
    fn default() -> Self {
        Self::new()
    }
}

/// Zeroes one port's slots of a worker's counters (called by the worker, the only
/// writer of those slots).
fn reset_port(s: &WorkerStats, port: PortId) {
    let i = usize::from(port.0);
    for a in [
        s.rx.get(i),
        s.tx.get(i),
        s.tx_dropped.get(i),
        s.handed_off.get(i),
        s.handoff_full.get(i),
    ]
    .into_iter()
    .flatten()
    {
        a.store(0, Ordering::Relaxed);
    }
}

/// The two queues between the control thread and one worker.
#[derive(Debug)]
pub struct CommandChannel<R = RxQueue, T = TxQueue, B = Mbuf> {
    /// Commands, each with its sequence number.
    to_worker: ArrayQueue<(u64, Command<R, T, B>)>,
    /// Replies, each with the sequence number of its command.
    to_control: ArrayQueue<(u64, Reply<R, T, B>)>,
    /// Commands the worker has applied (written by the worker only).
    applied: AtomicU64,
}

/// Creates a channel for mbufs; returns its control end and its worker end.
pub fn channel<R, T>() -> (Controller<R, T>, WorkerEnd<R, T>) {
    channel_of()
}

/// Creates a channel whose inboxes carry buffers of type `B`.
pub fn channel_of<R, T, B>() -> (Controller<R, T, B>, WorkerEnd<R, T, B>) {
    let c = Arc::new(CommandChannel {
        to_worker: ArrayQueue::new(CHANNEL_DEPTH),
        to_control: ArrayQueue::new(CHANNEL_DEPTH),
        applied: AtomicU64::new(0),
    });
    (
        Controller {
            chan: Arc::clone(&c),
            next_seq: 0,
        },
        WorkerEnd(c),
    )
}

/// The worker's end of a [`CommandChannel`].
#[derive(Debug)]
pub struct WorkerEnd<R = RxQueue, T = TxQueue, B = Mbuf>(Arc<CommandChannel<R, T, B>>);

impl<R: PortQueue, T: PortQueue, B> WorkerEnd<R, T, B> {
    /// Applies every pending command to `set` and answers each. Lock-free, no
    /// allocation, no system call; returns how many commands were applied.
    #[inline]
    pub fn poll(&self, set: &mut QueueSet<R, T, B>, stats: Option<&WorkerStats>) -> usize {
        self.poll_with(set, stats, |_, _| {})
    }

    /// As [`WorkerEnd::poll`]; before a release drops a TX queue that has an
    /// inbox, `flush` gets both, to send what the inbox still holds.
    #[inline]
    pub fn poll_with(
        &self,
        set: &mut QueueSet<R, T, B>,
        stats: Option<&WorkerStats>,
        mut flush: impl FnMut(&mut T, &ArrayQueue<B>),
    ) -> usize {
        let mut n = 0;
        while let Some((seq, cmd)) = self.0.to_worker.pop() {
            if let Command::Release(port) = &cmd {
                if let Some(Some(TxSlot::Queue {
                    queue,
                    inbox: Some(i),
                })) = set.tx.get_mut(usize::from(port.0))
                {
                    flush(queue, i);
                }
            }
            let reply = set.apply(cmd, stats);
            // The control side has at most CHANNEL_DEPTH commands in flight and
            // empties the reply queue before sending more, so there is room here.
            let _ = self.0.to_control.push((seq, reply));
            n += 1;
        }
        if n > 0 {
            let a = &self.0.applied;
            a.store(a.load(Ordering::Relaxed) + n as u64, Ordering::Release);
        }
        n
    }
}

/// Why a worker did not answer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CommandError {
    /// More commands than fit in the channel at once.
    #[error("{0} commands do not fit in one call (at most {CHANNEL_DEPTH})")]
    TooMany(usize),
    /// Commands of an earlier call are still waiting for the worker.
    #[error("the worker has not taken the commands of an earlier call")]
    Busy,
    /// The worker did not answer every command in time (stopped or stuck).
    #[error("the worker answered {answered} of {sent} commands within {waited:?}")]
    Timeout {
        /// Commands sent.
        sent: usize,
        /// Replies received.
        answered: usize,
        /// How long the call waited.
        waited: Duration,
    },
}

/// The control thread's end of a [`CommandChannel`].
#[derive(Debug)]
pub struct Controller<R = RxQueue, T = TxQueue, B = Mbuf> {
    chan: Arc<CommandChannel<R, T, B>>,
    next_seq: u64,
}

impl<R, T, B> Controller<R, T, B> {
    /// Sends `cmds` and waits up to `timeout` for one reply each; returns the
    /// replies in command order. Replies to the commands of an earlier timed-out call
    /// are told apart by sequence number and discarded.
    pub fn call(
        &mut self,
        cmds: Vec<Command<R, T, B>>,
        timeout: Duration,
    ) -> Result<Vec<Reply<R, T, B>>, CommandError> {
        let sent = cmds.len();
        if sent > CHANNEL_DEPTH {
            return Err(CommandError::TooMany(sent));
        }
        while self.chan.to_control.pop().is_some() {}
        if self.chan.to_worker.capacity() - self.chan.to_worker.len() < sent {
            return Err(CommandError::Busy);
        }
        let first = self.next_seq;
        for c in cmds {
            // Room was checked above and only this end pushes.
            if self.chan.to_worker.push((self.next_seq, c)).is_err() {
                return Err(CommandError::Busy);
            }
            self.next_seq += 1;
        }
        let start = Instant::now();
        let mut out = Vec::with_capacity(sent);
        while out.len() < sent {
            match self.chan.to_control.pop() {
                Some((seq, r)) if seq >= first => out.push(r),
                Some(_) => {}
                None => {
                    let waited = start.elapsed();
                    if waited >= timeout {
                        return Err(CommandError::Timeout {
                            sent,
                            answered: out.len(),
                            waited,
                        });
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        Ok(out)
    }

    /// Commands the worker has applied so far.
    pub fn applied(&self) -> u64 {
        self.chan.applied.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BURST_FOR_TESTS: usize = 32;

    #[derive(Debug, PartialEq, Eq)]
    struct Q(u16, u16);
    impl PortQueue for Q {
        fn port_id(&self) -> PortId {
            PortId(self.0)
        }
    }

    #[test]
    fn add_and_release_keep_capacity_and_reset_counters() {
        let mut s: QueueSet<Q, Q> = QueueSet::new();
        let cap = (s.rx.capacity(), s.tx.capacity());
        assert!(matches!(
            s.apply(Command::AddRx(Q(3, 0)), None),
            Reply::Done
        ));
        assert!(matches!(
            s.apply(Command::AddRx(Q(4, 0)), None),
            Reply::Done
        ));
        assert!(matches!(
            s.apply(Command::AddRx(Q(3, 1)), None),
            Reply::Done
        ));
        assert!(matches!(
            s.apply(Command::AddTx(Q(3, 2)), None),
            Reply::Done
        ));
        // A second TX queue for the same port is refused and handed back.
        match s.apply(Command::AddTx(Q(3, 5)), None) {
            Reply::Refused(Command::AddTx(q)) => assert_eq!(q, Q(3, 5)),
            r => panic!("unexpected {r:?}"),
        }
        let st = WorkerStats::default();
        st.rx[3].store(10, Ordering::Relaxed);
        st.tx[3].store(11, Ordering::Relaxed);
        st.tx_dropped[3].store(12, Ordering::Relaxed);
        st.rx[4].store(7, Ordering::Relaxed);
        match s.apply(Command::Release(PortId(3)), Some(&st)) {
            Reply::Released { port, rx, tx } => assert_eq!((port, rx, tx), (PortId(3), 2, 1)),
            r => panic!("unexpected {r:?}"),
        }
        assert_eq!(s.rx, vec![Q(4, 0)]);
        assert!(s.tx[3].is_none());
        let snap = st.snapshot();
        assert_eq!((snap.rx[3], snap.tx[3], snap.tx_dropped[3]), (0, 0, 0));
        assert_eq!(snap.rx[4], 7);
        assert_eq!((s.rx.capacity(), s.tx.capacity()), cap);
        // Releasing an unknown port is acknowledged with nothing dropped.
        assert!(matches!(
            s.apply(Command::Release(PortId(9)), None),
            Reply::Released { rx: 0, tx: 0, .. }
        ));
    }

    #[test]
    fn refuses_out_of_range_ports_and_a_full_rx_set() {
        let mut s: QueueSet<Q, Q> = QueueSet::new();
        let big = MAX_PORTS as u16;
        assert!(matches!(
            s.apply(Command::AddRx(Q(big, 0)), None),
            Reply::Refused(Command::AddRx(Q(_, 0)))
        ));
        assert!(matches!(
            s.apply(Command::AddTx(Q(big, 0)), None),
            Reply::Refused(_)
        ));
        for i in 0..MAX_RX_QUEUES {
            let r = s.apply(Command::AddRx(Q(1, i as u16)), None);
            assert!(matches!(r, Reply::Done));
        }
        assert!(matches!(
            s.apply(Command::AddRx(Q(1, 999)), None),
            Reply::Refused(_)
        ));
        assert_eq!(s.rx.capacity(), MAX_RX_QUEUES);
        assert!(
            QueueSet::<Q, Q>::with_queues((0..=MAX_RX_QUEUES).map(|i| Q(0, i as u16)), []).is_err()
        );
    }

    #[test]
    fn commands_cross_threads_and_time_out_without_a_worker() {
        let (mut ctl, end) = channel::<Q, Q>();
        // Nobody polls: a bounded wait with a clear error.
        let e = ctl
            .call(vec![Command::Release(PortId(1))], Duration::from_millis(20))
            .unwrap_err();
        assert!(matches!(
            e,
            CommandError::Timeout {
                sent: 1,
                answered: 0,
                ..
            }
        ));
        assert!(e.to_string().contains("answered 0 of 1"));
        assert!(matches!(
            ctl.call(
                (0..=CHANNEL_DEPTH)
                    .map(|_| Command::Release(PortId(0)))
                    .collect(),
                Duration::ZERO
            ),
            Err(CommandError::TooMany(_))
        ));

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let worker = std::thread::spawn(move || {
            let mut set: QueueSet<Q, Q> = QueueSet::new();
            while !stop2.load(Ordering::Relaxed) {
                end.poll(&mut set, None);
                std::hint::spin_loop();
            }
            set
        });
        let r = ctl
            .call(
                vec![
                    Command::AddRx(Q(2, 0)),
                    Command::AddRx(Q(2, 1)),
                    Command::AddTx(Q(2, 0)),
                ],
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|r| matches!(r, Reply::Done)));
        let r = ctl
            .call(vec![Command::Release(PortId(2))], Duration::from_secs(10))
            .unwrap();
        assert!(matches!(
            r.as_slice(),
            [Reply::Released { rx: 2, tx: 1, .. }]
        ));
        // The stale command of the timed-out call was applied too.
        assert_eq!(ctl.applied(), 5);
        stop.store(true, Ordering::Relaxed);
        let set = worker.join().unwrap();
        assert!(set.rx.is_empty() && set.tx.iter().all(Option::is_none));
    }

    #[test]
    fn tx_plan_maps_workers_onto_the_queues() {
        use TxPlan::{Handoff, Queue};
        assert_eq!(tx_plan(2, 1), vec![Queue(0), Handoff(0)]);
        assert_eq!(tx_plan(2, 2), vec![Queue(0), Queue(1)]);
        assert_eq!(tx_plan(2, 4), vec![Queue(0), Queue(1)]);
        assert_eq!(
            tx_plan(5, 2),
            vec![Queue(0), Queue(1), Handoff(0), Handoff(1), Handoff(0)]
        );
        assert_eq!(tx_plan(1, 1), vec![Queue(0)]);
        assert!(tx_plan(3, 0).is_empty());
        assert!(tx_plan(0, 2).is_empty());
        // Every worker either owns a queue or hands over to one that does.
        for workers in 1..9usize {
            for queues in 1..9u16 {
                let plan = tx_plan(workers, queues);
                assert_eq!(plan.len(), workers);
                for (w, p) in plan.iter().enumerate() {
                    match *p {
                        Queue(q) => assert_eq!(usize::from(q), w),
                        Handoff(o) => {
                            assert!(w >= usize::from(queues));
                            assert_eq!(plan[o], Queue(o as u16));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn hand_off_fills_the_inbox_and_gives_back_what_does_not_fit() {
        let inbox: ArrayQueue<u32> = ArrayQueue::new(4);
        let mut back = Vec::new();
        assert_eq!(hand_off(&inbox, 0..3, |b| back.push(b)), 0);
        assert_eq!(hand_off(&inbox, 3..6, |b| back.push(b)), 2);
        assert_eq!(back, vec![4, 5]);
        let mut got = Vec::new();
        assert_eq!(take_from(&inbox, 3, |b| got.push(b)), 3);
        assert_eq!(take_from(&inbox, 3, |b| got.push(b)), 1);
        assert_eq!(take_from(&inbox, 3, |b| got.push(b)), 0);
        assert_eq!(got, vec![0, 1, 2, 3]);
    }

    #[test]
    fn inbox_slots_are_applied_drained_and_released() {
        let mut s: QueueSet<Q, Q, u32> = QueueSet::new();
        let inbox: Inbox<u32> = new_inbox();
        assert!(matches!(
            s.apply(
                Command::AddTxWithInbox {
                    queue: Q(2, 0),
                    inbox: Arc::clone(&inbox)
                },
                None
            ),
            Reply::Done
        ));
        assert!(matches!(
            s.apply(Command::AddTx(Q(3, 0)), None),
            Reply::Done
        ));
        // A second slot for port 2 is refused, with the inbox handed back.
        match s.apply(
            Command::AddHandoff {
                port: PortId(2),
                inbox: Arc::clone(&inbox),
            },
            None,
        ) {
            Reply::Refused(Command::AddHandoff { port, .. }) => assert_eq!(port, PortId(2)),
            r => panic!("unexpected {r:?}"),
        }
        assert!(matches!(
            s.apply(
                Command::AddHandoff {
                    port: PortId(9),
                    inbox: new_inbox()
                },
                None
            ),
            Reply::Done
        ));
        assert!(matches!(s.tx[9], Some(TxSlot::Handoff(_))));
        inbox.push(7).unwrap();
        let mut seen = Vec::new();
        s.for_each_inbox(|q, i| {
            let port = q.0;
            take_from(i, BURST_FOR_TESTS, |b| seen.push((port, b)));
        });
        assert_eq!(seen, vec![(2, 7)]);
        assert_eq!(Arc::strong_count(&inbox), 2);
        match s.apply(Command::Release(PortId(2)), None) {
            Reply::Released { rx, tx, .. } => assert_eq!((rx, tx), (0, 1)),
            r => panic!("unexpected {r:?}"),
        }
        // The worker let go of its reference; the caller's is the last one.
        assert_eq!(Arc::strong_count(&inbox), 1);
        let mut n = 0;
        s.for_each_inbox(|_, _| n += 1);
        assert_eq!(n, 0);
        assert!(matches!(
            s.apply(Command::Release(PortId(9)), None),
            Reply::Released { tx: 0, .. }
        ));
        assert_eq!(s.inboxes.capacity(), MAX_PORTS);
    }

    #[test]
    fn a_release_flushes_the_inbox_into_the_queue_first() {
        let (mut ctl, end) = channel_of::<Q, Q, u32>();
        let mut set: QueueSet<Q, Q, u32> = QueueSet::new();
        let inbox: Inbox<u32> = new_inbox();
        set.apply(
            Command::AddTxWithInbox {
                queue: Q(4, 1),
                inbox: Arc::clone(&inbox),
            },
            None,
        );
        inbox.push(1).unwrap();
        inbox.push(2).unwrap();
        let worker = std::thread::spawn(move || {
            let mut flushed = Vec::new();
            while flushed.is_empty() {
                end.poll_with(&mut set, None, |q, i| {
                    take_from(i, usize::MAX, |b| flushed.push((q.0, q.1, b)));
                });
            }
            (set, flushed)
        });
        ctl.call(vec![Command::Release(PortId(4))], Duration::from_secs(10))
            .unwrap();
        let (set, flushed) = worker.join().unwrap();
        assert_eq!(flushed, vec![(4, 1, 1), (4, 1, 2)]);
        assert!(inbox.is_empty());
        assert!(set.tx[4].is_none());
    }

    /// A buffer stand-in that counts how often it is freed.
    #[derive(Debug)]
    struct Token(Arc<AtomicU64>);
    impl Drop for Token {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A TX queue stand-in that counts what it sends (and frees it).
    #[derive(Debug)]
    struct CountingTx(u16, Arc<AtomicU64>);
    impl PortQueue for CountingTx {
        fn port_id(&self) -> PortId {
            PortId(self.0)
        }
    }
    impl CountingTx {
        fn send(&mut self, t: Token) {
            self.1.fetch_add(1, Ordering::Relaxed);
            drop(t);
        }
    }

    /// Three workers hand over to one owner through a small inbox while the port is
    /// released under traffic (hand-off workers first, as the port manager does):
    /// every buffer is either sent, refused on a full inbox, or freed with the
    /// inbox, exactly once; nothing is sent after the owner's release.
    #[test]
    fn concurrent_hand_off_loses_and_leaks_nothing_across_a_release() {
        type Set = QueueSet<Q, CountingTx, Token>;
        const PORT: u16 = 6;
        let freed = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let inbox: Inbox<Token> = Arc::new(ArrayQueue::new(64));

        let (mut owner_ctl, owner_end) = channel_of::<Q, CountingTx, Token>();
        let stop_o = Arc::clone(&stop);
        let owner = std::thread::spawn(move || {
            let mut set: Set = QueueSet::new();
            while !stop_o.load(Ordering::Relaxed) {
                set.for_each_inbox(|q, i| {
                    take_from(i, 32, |t| q.send(t));
                });
                owner_end.poll_with(&mut set, None, |q, i| {
                    take_from(i, usize::MAX, |t| q.send(t));
                });
            }
        });
        let mut producers = Vec::new();
        let mut producer_ctls = Vec::new();
        for _ in 0..3 {
            let (ctl, end) = channel_of::<Q, CountingTx, Token>();
            producer_ctls.push(ctl);
            let stop_p = Arc::clone(&stop);
            let freed_p = Arc::clone(&freed);
            producers.push(std::thread::spawn(move || {
                let mut set: Set = QueueSet::new();
                let (mut made, mut full, mut unrouted) = (0u64, 0u64, 0u64);
                while !stop_p.load(Ordering::Relaxed) {
                    end.poll(&mut set, None);
                    let batch = (0..8).map(|_| Token(Arc::clone(&freed_p)));
                    made += 8;
                    match set.tx.get(usize::from(PORT)).and_then(Option::as_ref) {
                        Some(TxSlot::Handoff(i)) => {
                            full += hand_off(i, batch, drop) as u64;
                        }
                        _ => {
                            // Not (or no longer) routed there: freed at once.
                            unrouted += batch.count() as u64;
                        }
                    }
                }
                (made, full, unrouted)
            }));
        }
        let t = Duration::from_secs(10);
        let queue = CountingTx(PORT, Arc::clone(&sent));
        let r = owner_ctl
            .call(
                vec![Command::AddTxWithInbox {
                    queue,
                    inbox: Arc::clone(&inbox),
                }],
                t,
            )
            .unwrap();
        assert!(matches!(r.as_slice(), [Reply::Done]));
        for c in &mut producer_ctls {
            let cmd = Command::AddHandoff {
                port: PortId(PORT),
                inbox: Arc::clone(&inbox),
            };
            assert!(matches!(
                c.call(vec![cmd], t).unwrap().as_slice(),
                [Reply::Done]
            ));
        }
        // Traffic until the owner has sent a good amount.
        let start = Instant::now();
        while sent.load(Ordering::Relaxed) < 20_000 && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(1));
        }
        for c in &mut producer_ctls {
            let r = c.call(vec![Command::Release(PortId(PORT))], t).unwrap();
            assert!(matches!(r.as_slice(), [Reply::Released { tx: 0, .. }]));
        }
        let r = owner_ctl
            .call(vec![Command::Release(PortId(PORT))], t)
            .unwrap();
        assert!(matches!(r.as_slice(), [Reply::Released { tx: 1, .. }]));
        // The owner's last drain took everything handed over before the release.
        assert!(inbox.is_empty(), "{} left in the inbox", inbox.len());
        stop.store(true, Ordering::Relaxed);
        owner.join().unwrap();
        let (mut made, mut full, mut unrouted) = (0, 0, 0);
        for p in producers {
            let (m, f, u) = p.join().unwrap();
            made += m;
            full += f;
            unrouted += u;
        }
        assert_eq!(
            Arc::strong_count(&inbox),
            1,
            "only the control end holds it"
        );
        drop(inbox);
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent > 0);
        assert_eq!(sent + full + unrouted, made);
        assert_eq!(freed.load(Ordering::Relaxed), made, "each token freed once");
    }
}
