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
use crate::dpdk::{PortId, RxQueue, TxQueue};

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

/// A command to a worker.
#[derive(Debug)]
pub enum Command<R = RxQueue, T = TxQueue> {
    /// Start polling this RX queue.
    AddRx(R),
    /// Send what is routed to the queue's port on this TX queue.
    AddTx(T),
    /// Drop every handle of this port and reset its counters.
    Release(PortId),
}

/// A worker's answer to one [`Command`].
#[derive(Debug)]
pub enum Reply<R = RxQueue, T = TxQueue> {
    /// The command was applied.
    Done,
    /// The port's handles were dropped: `rx` RX queues and `tx` TX queues.
    Released {
        /// The port.
        port: PortId,
        /// RX queues dropped.
        rx: usize,
        /// TX queues dropped.
        tx: usize,
    },
    /// The command could not be applied (no room, or port id out of range); the
    /// command comes back with its handle.
    Refused(Command<R, T>),
}

/// The queues one worker polls and sends on.
#[derive(Debug)]
pub struct QueueSet<R = RxQueue, T = TxQueue> {
    /// RX queues polled, in order of addition (capacity [`MAX_RX_QUEUES`]).
    pub rx: Vec<R>,
    /// TX queue per port id (length [`MAX_PORTS`]).
    pub tx: Vec<Option<T>>,
}

impl<R: PortQueue, T: PortQueue> QueueSet<R, T> {
    /// An empty set with its full capacity allocated.
    pub fn new() -> Self {
        let mut tx = Vec::with_capacity(MAX_PORTS);
        tx.resize_with(MAX_PORTS, || None);
        Self {
            rx: Vec::with_capacity(MAX_RX_QUEUES),
            tx,
        }
    }

    /// A set holding `rx` and `tx` (the queues of the ports that exist at start).
    /// Queues beyond the capacities are given back in the error.
    pub fn with_queues(
        rx: impl IntoIterator<Item = R>,
        tx: impl IntoIterator<Item = T>,
    ) -> Result<Self, Command<R, T>> {
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
    pub fn apply(&mut self, cmd: Command<R, T>, stats: Option<&WorkerStats>) -> Reply<R, T> {
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
                    *slot = Some(q);
                    Reply::Done
                }
                _ => Reply::Refused(Command::AddTx(q)),
            },
            Command::Release(port) => {
                let before = self.rx.len();
                self.rx.retain(|q| q.port_id() != port);
                let rx = before - self.rx.len();
                let tx = self
                    .tx
                    .get_mut(usize::from(port.0))
                    .and_then(Option::take)
                    .map_or(0, |_| 1);
                if let Some(s) = stats {
                    reset_port(s, port);
                }
                Reply::Released { port, rx, tx }
            }
        }
    }
}

impl<R: PortQueue, T: PortQueue> Default for QueueSet<R, T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Zeroes one port's slots of a worker's counters (called by the worker, the only
/// writer of those slots).
fn reset_port(s: &WorkerStats, port: PortId) {
    let i = usize::from(port.0);
    for a in [s.rx.get(i), s.tx.get(i), s.tx_dropped.get(i)]
        .into_iter()
        .flatten()
    {
        a.store(0, Ordering::Relaxed);
    }
}

/// The two queues between the control thread and one worker.
#[derive(Debug)]
pub struct CommandChannel<R = RxQueue, T = TxQueue> {
    /// Commands, each with its sequence number.
    to_worker: ArrayQueue<(u64, Command<R, T>)>,
    /// Replies, each with the sequence number of its command.
    to_control: ArrayQueue<(u64, Reply<R, T>)>,
    /// Commands the worker has applied (written by the worker only).
    applied: AtomicU64,
}

/// Creates a channel; returns its control end and its worker end.
pub fn channel<R, T>() -> (Controller<R, T>, WorkerEnd<R, T>) {
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
pub struct WorkerEnd<R = RxQueue, T = TxQueue>(Arc<CommandChannel<R, T>>);

impl<R: PortQueue, T: PortQueue> WorkerEnd<R, T> {
    /// Applies every pending command to `set` and answers each. Lock-free, no
    /// allocation, no system call; returns how many commands were applied.
    #[inline]
    pub fn poll(&self, set: &mut QueueSet<R, T>, stats: Option<&WorkerStats>) -> usize {
        let mut n = 0;
        while let Some((seq, cmd)) = self.0.to_worker.pop() {
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
pub struct Controller<R = RxQueue, T = TxQueue> {
    chan: Arc<CommandChannel<R, T>>,
    next_seq: u64,
}

impl<R, T> Controller<R, T> {
    /// Sends `cmds` and waits up to `timeout` for one reply each; returns the
    /// replies in command order. Replies to the commands of an earlier timed-out call
    /// are told apart by sequence number and discarded.
    pub fn call(
        &mut self,
        cmds: Vec<Command<R, T>>,
        timeout: Duration,
    ) -> Result<Vec<Reply<R, T>>, CommandError> {
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
}
