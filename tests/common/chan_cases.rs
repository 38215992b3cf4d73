//! Channels and `select!` (issue 4's acceptance list), run on 1 P by `tests/chan_1p.rs` and on
//! 2 Ps by `tests/chan_np.rs`: the same bodies on both, as `timer_cases.rs` is shared by
//! `timers_1p`/`timers_np`. The binaries include this file with `#[path]` next to `mod common;`
//! and wrap each case with [`chan_tests!`] (watchdog, `init(procs)`, [`Mode`]).
//!
//! # What is covered
//!
//! * **Ping-pong** over a rendezvous channel between two Gs (one channel used both ways, and a
//!   ball moved over two channels), and between a G and a plain thread.
//! * **10 000-G pipelines**: fan-in (10 000 producers, one consumer), fan-out (one producer,
//!   10 000 consumers), a daisy chain of 10 000 Gs, and a source → 10 000 workers → sink
//!   pipeline, each on a rendezvous, a buffered and an unbounded channel. Values are [`Tracked`]:
//!   each counts its creation and its drop in a per-test [`Ledger`], and a [`Seen`] table counts
//!   each id received. At the end: every id received exactly once (none lost, none duplicated),
//!   and `dropped == created` (all dropped once). Values left in the buffer when the channel is
//!   dropped and values handed back in `SendError` are counted the same way.
//! * **Gs and plain OS threads** sending and receiving on the same channel (`bounded(0)`,
//!   `bounded(4)`, `unbounded`).
//! * **Close semantics**, `try_*` outcomes, FIFO service of blocked receivers and senders (exact
//!   on 1 P), **timeouts and deadlines** (both outcomes; a deadline already past returns at once,
//!   without parking; a timed-out waiter leaves nothing queued).
//! * **`select!`**: fairness over 100 000 selections (in a G and on a plain thread), `default`,
//!   `default(timeout)`, closed channels, send arms (a losing send is not sent), recv and send
//!   on one channel, one channel in two arms, a multiplexer over producer channels until all
//!   close, a select woken by a plain thread, and a timeout racing a sender at the deadline.
//! * **Two proptests**, described next.
//!
//! # The proptests
//!
//! [`ops_match_sequential_model`]: one actor (a G, or a plain thread) runs a random program of
//! channel operations on one channel of random capacity: `send`, `try_send`, `send_timeout`,
//! `send_deadline` (past), `recv`, `try_recv`, `recv_timeout`, `recv_deadline` (past), `close`,
//! clone/drop of a `Sender` or a `Receiver`, `len`, and `select!`s with `default` or
//! `default(timeout)` over a recv arm, a send arm, or both on the channel. With one actor the
//! channel is a plain FIFO buffer, so the model is exact: a `VecDeque`, `closed` (set by `close`
//! or by dropping the last `Sender`), `rx_gone` (the last `Receiver` dropped), and the capacity
//! (0: no value is ever buffered, and with nobody else around every send finds no receiver).
//! Every result is compared with the model's (values by id; a value handed back in an error must
//! be the one sent). Blocking `send`/`recv` run only when the model says they complete at once
//! (otherwise they would wait forever); the timed forms run always and must time out exactly
//! when the model says the operation cannot complete. A `select!` with several ready arms may
//! choose any of them: the model checks the chosen arm was ready and applies it. After every
//! operation the number of live tracked values equals the model's buffer length (nothing is
//! held anywhere but in the channel), and once every handle is gone, everything was dropped.
//!
//! [`concurrent_ops_keep_invariants`]: 2–4 Gs run random programs (blocking, non-blocking and
//! timed sends and receives, `close`, dropping their `Sender` or `Receiver`, `select!` with a
//! send and a recv arm on the channel, or with `default`/`default(timeout)`, `len`, yields) on
//! one shared channel of random capacity. Every operation is stamped with a global counter
//! before it starts and after it returns, so "A returned before B started" is known. The outcome
//! is not unique, so instead of replaying a model the checker verifies what any linearizable
//! channel guarantees:
//!
//! 1. every value received was sent by a send that returned `Ok`, and was received at most once;
//!    a failed send got back the very value it offered, and that value was never received;
//! 2. when a receiver lives to the end (the driver keeps one in about half the cases and drains
//!    the channel after the programs end), every value sent `Ok` was received; otherwise the
//!    values sent `Ok` and never received (left in the buffer when the last receiver went) are
//!    at most the capacity, and none for a rendezvous channel;
//! 3. per-producer FIFO: the values a receiver got from one producer came in the order sent;
//! 4. causality: a receive returns after its value's send started; on a rendezvous channel the
//!    send and the receive of one value overlap in time (the hand-off happens inside both);
//! 5. once a receive observed `Disconnected` (closed and empty), every operation that started
//!    later saw the channel closed and empty: receives get `Disconnected` (never a value,
//!    `Empty`, a timeout, or a `select!` default), sends fail with `Disconnected`, `len` is 0;
//! 6. once a `close()` returned, every send that started later failed with `Disconnected` (not
//!    `Full`, not a timeout, not `Ok`);
//! 7. an unbounded channel never reports `Full` and never times out a send; `len` never
//!    exceeds the capacity;
//! 8. once everything is gone, the ledger counts as many drops as values created (values
//!    received, handed back in errors, still buffered when the channel went, and offered by a
//!    `select!` send arm that lost or timed out); with 1 this means each was dropped once.
//!
//! Liveness: a program may block for good (every G receiving, nobody sending). The driver holds
//! a `Sender` and closes the channel once no operation completed for [`STALL`]; a close is a
//! legal step of any program, so checks 1–8 hold whenever it happens (an early rescue only
//! changes which outcomes are seen). Because the driver's `Sender` lives until the programs end,
//! the channel closes by "last `Sender` dropped" only at the very end in this proptest; that
//! path is covered by the sequential model and the plain tests.
//!
//! # Rules
//!
//! No sleep is used as synchronisation: Gs wait with channels themselves, [`Gate`] or
//! [`wait_until`] loops; a timeout test sleeps or waits only because time passing is the thing
//! under test. Timing assertions are lower bounds ("did not return before the timeout") and
//! generous upper bounds ([`GENEROUS`]). Gs never block in a std call (on 1 P that would stall
//! the only P); plain threads are joined from the test's own thread, or report back over a weft
//! channel. Every test runs under a watchdog ([`run_chan_test`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use weft::chan::{
    bounded, unbounded, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender,
    TryRecvError, TrySendError,
};
use weft::{go, select};

use crate::common::{note, wait_until, Gate, Mode, TEST_TIMEOUT};

/// Upper bound on `yield_now` rounds in a wait loop. Generous: the watchdog is the real limit.
const ROUNDS: u64 = 100_000_000;

/// "At once" and "soon", for assertions about time: generous on purpose.
pub const GENEROUS: Duration = Duration::from_secs(5);

/// A timeout that must not expire in a passing test (the watchdog is shorter).
const LONG: Duration = Duration::from_secs(120);

/// Generated cases per proptest unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 24;

/// The concurrent proptest closes the channel after this long without progress (module doc).
pub const STALL: Duration = Duration::from_millis(20);

/// Gs in the 10 000-G pipelines.
const MANY: usize = 10_000;

/// Generate one `#[test]` per case for a binary with `$procs` Ps.
macro_rules! chan_tests {
    ($procs:expr) => {
        $crate::chan_cases::chan_tests!(@each $procs, Shared;
            ping_pong_rendezvous,
            ping_pong_ball_two_channels,
            ping_pong_g_and_thread,
            buffered_values_dropped_once,
            gs_and_threads_mixed,
            close_drains_then_disconnects,
            blocked_receivers_woken_by_close,
            blocked_senders_fail_when_receivers_drop,
            close_fails_blocked_senders,
            send_on_closed_returns_value,
            try_send_full_vs_disconnected,
            try_recv_empty_vs_disconnected,
            iterators_and_sizes,
            waiters_served_fifo,
            recv_timeout_both_outcomes,
            send_timeout_both_outcomes,
            deadline_in_past_returns_at_once,
            timed_waits_woken_by_disconnect,
            select_fairness_two_ready_arms,
            select_default_arm,
            select_default_timeout,
            select_closed_channel,
            select_send_arm_loser_not_sent,
            select_recv_and_send_same_channel,
            select_same_channel_two_arms,
            select_multiplexer_until_all_close,
            select_woken_by_plain_thread,
            select_timeout_races_sender,
        );
        $crate::chan_cases::chan_tests!(@each $procs, Exclusive;
            fan_in_10k_gs,
            fan_out_10k_gs,
            daisy_chain_10k_gs,
            pipeline_10k_workers,
            fan_in_10k_receiver_leaves,
            ops_match_sequential_model,
            concurrent_ops_keep_invariants,
        );
    };
    (@each $procs:expr, $mode:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::chan_cases::run_chan_test(
                    $procs,
                    $crate::common::Mode::$mode,
                    stringify!($name),
                    $crate::chan_cases::$name,
                );
            }
        )*
    };
}
pub(crate) use chan_tests;

/// Run one case (`common::run_test` with [`time_limit`]), timing it.
pub fn run_chan_test(procs: usize, mode: Mode, name: &str, body: fn()) {
    crate::common::run_test_limit(procs, mode, name, time_limit(name), || {
        let t = Instant::now();
        body();
        note(format_args!("{name}: {:?}", t.elapsed()));
    });
}

/// Generated cases per proptest: `PROPTEST_CASES`, or [`CASES`].
fn cases() -> u32 {
    crate::common::proptest_cases(CASES)
}

/// The watchdog's limit for case `name`: [`TEST_TIMEOUT`], raised for the proptests when
/// `PROPTEST_CASES` asks for a long soak.
pub fn time_limit(name: &str) -> Duration {
    match name {
        "ops_match_sequential_model" | "concurrent_ops_keep_invariants" => {
            TEST_TIMEOUT.max(Duration::from_millis(400) * cases() + Duration::from_secs(40))
        }
        _ => TEST_TIMEOUT,
    }
}

// ---------------------------------------------------------------------------------------------
// Tracked values
// ---------------------------------------------------------------------------------------------

/// Creation and drop counters of one test's [`Tracked`] values (leaked: `'static`, so a value can
/// reach it from any G or thread with no reference counting; one small leak per test or case).
pub struct Ledger {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

impl Ledger {
    pub fn leak() -> &'static Ledger {
        Box::leak(Box::new(Ledger {
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }))
    }

    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }

    /// Values created and not dropped yet.
    pub fn live(&self) -> usize {
        self.created() - self.dropped()
    }

    /// Every value created was dropped, once.
    #[track_caller]
    pub fn assert_all_dropped(&self, what: &str) {
        let (c, d) = (self.created(), self.dropped());
        assert_eq!(d, c, "{what}: {c} values created, {d} drops");
    }
}

/// A channel value that counts its creation and its drop in a [`Ledger`]. Not `Clone`: a value
/// that reached two places would be dropped twice (and show up in the ledger).
pub struct Tracked {
    pub id: u64,
    ledger: &'static Ledger,
}

impl Tracked {
    pub fn new(ledger: &'static Ledger, id: u64) -> Tracked {
        ledger.created.fetch_add(1, SeqCst);
        Tracked { id, ledger }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ledger.dropped.fetch_add(1, SeqCst);
    }
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tracked({:#x})", self.id)
    }
}

/// How many times each id in `0..n` was received.
pub struct Seen(Vec<AtomicU8>);

impl Seen {
    pub fn new(n: usize) -> Seen {
        Seen((0..n).map(|_| AtomicU8::new(0)).collect())
    }

    /// Count one receipt of `id`.
    pub fn mark(&self, id: u64) {
        let slot = self
            .0
            .get(id as usize)
            .unwrap_or_else(|| panic!("received id {id} that was never sent"));
        slot.fetch_add(1, SeqCst);
    }

    /// Every id was received exactly once.
    #[track_caller]
    pub fn assert_each_once(&self, what: &str) {
        let lost = self.0.iter().filter(|c| c.load(SeqCst) == 0).count();
        let dup = self.0.iter().filter(|c| c.load(SeqCst) > 1).count();
        assert!(
            lost == 0 && dup == 0,
            "{what}: of {} values, {lost} never received, {dup} received more than once",
            self.0.len()
        );
    }
}

/// The id of producer `p`'s `seq`-th value.
fn pid(p: usize, seq: u64) -> u64 {
    ((p as u64) << 32) | seq
}

/// `(producer, seq)` of an id made by [`pid`].
fn split(id: u64) -> (usize, u64) {
    ((id >> 32) as usize, id & 0xFFFF_FFFF)
}

/// A channel of capacity `cap` (`None`: unbounded).
fn make<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    match cap {
        Some(c) => bounded(c),
        None => unbounded(),
    }
}

/// Per-producer FIFO as seen by one receiver: feed it the ids it got, in order.
#[derive(Default)]
struct Fifo {
    last: HashMap<usize, u64>,
}

impl Fifo {
    #[track_caller]
    fn check(&mut self, id: u64, who: &str) {
        let (p, s) = split(id);
        if let Some(&prev) = self.last.get(&p) {
            assert!(
                s > prev,
                "{who}: producer {p}'s value {s} arrived after its value {prev}"
            );
        }
        self.last.insert(p, s);
    }
}

/// A `select!` arm that must not complete (a function, not `panic!`, so that the arm has the
/// select's type).
#[track_caller]
fn unexpected<T>(what: &str) -> T {
    panic!("select: unexpected arm: {what}")
}

/// Let Gs that were just made runnable get to their blocking call (and park): a few rounds of
/// `yield_now`. Not a synchronisation: the tests' outcomes are the same whether they parked yet
/// or not; this only makes the park path the common one.
fn settle() {
    for _ in 0..200 {
        weft::yield_now();
    }
}

/// Wait (yielding) until `n` reaches `want`, failing loudly instead of hanging.
#[track_caller]
fn wait_count(n: &AtomicUsize, want: usize, what: &str) {
    assert!(
        wait_until(ROUNDS, || n.load(SeqCst) >= want),
        "{what}: {} of {want}",
        n.load(SeqCst)
    );
}

// ---------------------------------------------------------------------------------------------
// Ping-pong
// ---------------------------------------------------------------------------------------------

/// Two Gs take turns on one rendezvous channel: A sends `2k`, B receives it and sends `2k + 1`,
/// A receives that. With a rendezvous channel the turns are strict (A's send returns only once
/// B has the value, so A's receive can only be matched by B's reply).
pub fn ping_pong_rendezvous() {
    const TRIPS: u64 = 20_000;
    let t = Instant::now();
    weft::run(|| {
        let (tx, rx) = bounded::<u64>(0);
        let (tx2, rx2) = (tx.clone(), rx.clone());
        let echo = go!(move || {
            let mut n = 0u64;
            while let Ok(v) = rx2.recv() {
                assert_eq!(v, 2 * n, "echo got a value out of turn");
                tx2.send(v + 1).expect("echo's reply");
                n += 1;
            }
            n
        });
        for k in 0..TRIPS {
            tx.send(2 * k).expect("ping");
            assert_eq!(rx.recv(), Ok(2 * k + 1), "pong out of turn");
        }
        tx.close();
        assert_eq!(echo.join().unwrap(), TRIPS);
    });
    note(format_args!(
        "ping_pong_rendezvous ({} P): {TRIPS} round trips in {:?}",
        weft::max_procs(),
        t.elapsed()
    ));
}

/// A tracked ball moved back and forth over two rendezvous channels by two spawned Gs: one value
/// created, one drop, hits counted on both sides.
pub fn ping_pong_ball_two_channels() {
    const TRIPS: u64 = 10_000;
    let ledger = Ledger::leak();
    weft::run(move || {
        let (ping_tx, ping_rx) = bounded::<Tracked>(0);
        let (pong_tx, pong_rx) = bounded::<Tracked>(0);
        let a = go!(move || {
            let mut ball = Tracked::new(ledger, 0);
            for k in 0..TRIPS {
                ball.id += 1;
                ping_tx.send(ball).expect("ping");
                ball = pong_rx.recv().expect("pong");
                assert_eq!(ball.id, 2 * k + 2);
            }
            ball
        });
        let b = go!(move || {
            let mut hits = 0u64;
            for mut ball in ping_rx.iter() {
                hits += 1;
                assert_eq!(ball.id, 2 * hits - 1);
                ball.id += 1;
                pong_tx.send(ball).expect("pong back");
            }
            hits
        });
        let ball = a.join().unwrap();
        assert_eq!(ball.id, 2 * TRIPS);
        assert_eq!(b.join().unwrap(), TRIPS);
        assert_eq!(ledger.created(), 1);
        assert_eq!(ledger.dropped(), 0);
    });
    ledger.assert_all_dropped("ping-pong ball");
}

/// Ping-pong between a G and a plain OS thread over rendezvous channels: the thread blocks in
/// the channel (not a G), the G parks; each side wakes the other.
pub fn ping_pong_g_and_thread() {
    const TRIPS: u64 = 5_000;
    let (to_t, from_g) = bounded::<u64>(0);
    let (to_g, from_t) = bounded::<u64>(0);
    let t = thread::spawn(move || {
        let mut n = 0;
        for v in from_g.iter() {
            assert_eq!(v, 3 * n);
            to_g.send(v + 1).expect("thread's reply");
            n += 1;
        }
        n
    });
    weft::run(move || {
        for k in 0..TRIPS {
            to_t.send(3 * k).expect("to thread");
            assert_eq!(from_t.recv(), Ok(3 * k + 1));
        }
    });
    assert_eq!(t.join().unwrap(), TRIPS);
}

// ---------------------------------------------------------------------------------------------
// 10 000-G pipelines, every value counted
// ---------------------------------------------------------------------------------------------

/// 10 000 producer Gs, 10 values each, one consumer; on a rendezvous, a buffered and an
/// unbounded channel. The consumer checks per-producer order; every value once; all dropped.
pub fn fan_in_10k_gs() {
    for cap in [Some(0), Some(64), None] {
        let t = Instant::now();
        fan_in(cap, MANY, 10);
        note(format_args!(
            "fan_in cap {cap:?} ({} P): {MANY} Gs x 10 values in {:?}",
            weft::max_procs(),
            t.elapsed()
        ));
    }
}

fn fan_in(cap: Option<usize>, producers: usize, per: u64) {
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = make::<Tracked>(cap);
        let hs: Vec<_> = (0..producers)
            .map(|p| {
                let tx = tx.clone();
                go!(move || {
                    for s in 0..per {
                        tx.send(Tracked::new(ledger, pid(p, s)))
                            .expect("the consumer is alive");
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = vec![0u64; producers];
        let mut got = 0usize;
        // Ends when every producer has dropped its Sender and the buffer is drained.
        for v in rx.iter() {
            let (p, s) = split(v.id);
            assert_eq!(
                s, next[p],
                "producer {p}: out of order, or duplicated, or lost"
            );
            next[p] += 1;
            got += 1;
        }
        assert!(
            next.iter().all(|&n| n == per),
            "a producer's values went missing"
        );
        assert_eq!(got, producers * per as usize);
        for h in hs {
            h.join().expect("producer");
        }
        assert_eq!(ledger.created(), got);
    });
    ledger.assert_all_dropped("fan-in");
}

/// One producer G, 100 000 values, 10 000 consumer Gs; each consumer checks it got the
/// producer's values in order; together they got each once.
pub fn fan_out_10k_gs() {
    for cap in [Some(0), Some(64), None] {
        let t = Instant::now();
        fan_out(cap, MANY, 100_000);
        note(format_args!(
            "fan_out cap {cap:?} ({} P): 100000 values to {MANY} Gs in {:?}",
            weft::max_procs(),
            t.elapsed()
        ));
    }
}

fn fan_out(cap: Option<usize>, consumers: usize, values: u64) {
    let ledger = Ledger::leak();
    let seen = Arc::new(Seen::new(values as usize));
    let s2 = Arc::clone(&seen);
    weft::run(move || {
        let (tx, rx) = make::<Tracked>(cap);
        let cs: Vec<_> = (0..consumers)
            .map(|_| {
                let rx = rx.clone();
                let seen = Arc::clone(&s2);
                go!(move || {
                    let mut last = None;
                    let mut n = 0usize;
                    for v in rx.iter() {
                        assert!(last < Some(v.id), "a consumer got values out of order");
                        last = Some(v.id);
                        seen.mark(v.id);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        drop(rx);
        let producer = go!(move || {
            for i in 0..values {
                tx.send(Tracked::new(ledger, i)).expect("consumers alive");
            }
        });
        producer.join().unwrap();
        let total: usize = cs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, values as usize);
    });
    seen.assert_each_once("fan-out");
    assert_eq!(ledger.created(), values as usize);
    ledger.assert_all_dropped("fan-out");
}

/// Go's daisy chain: 10 000 Gs, G *i* receives from its left neighbour and sends the value + 1
/// to its right. Three values pass through; closing the leftmost channel closes the chain one
/// link at a time (each G drops its Sender when its receive fails).
pub fn daisy_chain_10k_gs() {
    for cap in [Some(0), Some(1), None] {
        let t = Instant::now();
        weft::run(move || {
            let (first_tx, mut left) = make::<u64>(cap);
            let mut hs = Vec::with_capacity(MANY);
            for _ in 0..MANY {
                let (tx, rx) = make::<u64>(cap);
                let l = std::mem::replace(&mut left, rx);
                hs.push(go!(move || {
                    let mut n = 0;
                    for v in l.iter() {
                        tx.send(v + 1).expect("right neighbour alive");
                        n += 1;
                    }
                    n
                }));
            }
            for round in 0..3u64 {
                first_tx.send(round * 1_000_000).unwrap();
                assert_eq!(left.recv(), Ok(round * 1_000_000 + MANY as u64));
            }
            drop(first_tx);
            assert_eq!(
                left.recv(),
                Err(RecvError),
                "the close did not travel the chain"
            );
            for h in hs {
                assert_eq!(h.join().unwrap(), 3);
            }
        });
        note(format_args!(
            "daisy chain cap {cap:?} ({} P): {MANY} Gs in {:?}",
            weft::max_procs(),
            t.elapsed()
        ));
    }
}

/// A source G → channel → 10 000 worker Gs → channel → the sink: every value passes through one
/// worker (moved, not copied) and reaches the sink once.
pub fn pipeline_10k_workers() {
    const VALUES: u64 = 50_000;
    for (c1, c2) in [(Some(8), Some(0)), (Some(0), None), (None, Some(16))] {
        let ledger = Ledger::leak();
        let t = Instant::now();
        let (seen, per_worker) = weft::run(move || {
            let (src_tx, work_rx) = make::<Tracked>(c1);
            let (out_tx, sink_rx) = make::<Tracked>(c2);
            let workers: Vec<_> = (0..MANY)
                .map(|_| {
                    let (rx, tx) = (work_rx.clone(), out_tx.clone());
                    go!(move || {
                        let mut n = 0u64;
                        for v in rx.iter() {
                            tx.send(v).expect("sink alive");
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            drop((work_rx, out_tx));
            let source = go!(move || {
                for i in 0..VALUES {
                    src_tx.send(Tracked::new(ledger, i)).expect("workers alive");
                }
            });
            let seen = Seen::new(VALUES as usize);
            for v in sink_rx.iter() {
                seen.mark(v.id);
            }
            source.join().unwrap();
            let per: Vec<u64> = workers.into_iter().map(|h| h.join().unwrap()).collect();
            (seen, per)
        });
        seen.assert_each_once("pipeline");
        assert_eq!(per_worker.iter().sum::<u64>(), VALUES);
        ledger.assert_all_dropped("pipeline");
        note(format_args!(
            "pipeline {c1:?}->{c2:?} ({} P): {VALUES} values, {} of {MANY} workers busy, {:?}",
            weft::max_procs(),
            per_worker.iter().filter(|&&n| n > 0).count(),
            t.elapsed()
        ));
    }
}

/// 10 000 producers, 5 values each; the consumer takes half of them and drops its Receiver.
/// Producers blocked in `send` wake with `SendError` holding their own value, later sends fail
/// at once; what was buffered stays in the channel until the last handle goes, then is dropped
/// once. Accounting: received + handed back + buffered = created, and drops match at each step.
pub fn fan_in_10k_receiver_leaves() {
    const PER: u64 = 5;
    for cap in [Some(0), Some(100), None] {
        let ledger = Ledger::leak();
        let (received, errs, buffered) = weft::run(move || {
            let (tx, rx) = make::<Tracked>(cap);
            let errs = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..MANY)
                .map(|p| {
                    let (tx, errs) = (tx.clone(), Arc::clone(&errs));
                    go!(move || {
                        let mut failed = false;
                        for s in 0..PER {
                            let id = pid(p, s);
                            match tx.send(Tracked::new(ledger, id)) {
                                Ok(()) => assert!(!failed, "a send succeeded after one failed"),
                                Err(SendError(v)) => {
                                    assert_eq!(v.id, id, "SendError holds another value");
                                    failed = true;
                                    errs.fetch_add(1, SeqCst);
                                }
                            }
                        }
                    })
                })
                .collect();
            let keep = tx; // keeps the channel (and what it buffers) alive after the consumer
            let take = MANY * PER as usize / 2;
            let mut fifo = Fifo::default();
            for _ in 0..take {
                let v = rx.recv().expect("producers alive");
                fifo.check(v.id, "consumer");
            }
            drop(rx);
            for h in hs {
                h.join().unwrap();
            }
            let errs = errs.load(SeqCst);
            let buffered = keep.len();
            assert_eq!(
                ledger.dropped(),
                take + errs,
                "received and handed-back values are dropped, buffered ones not yet"
            );
            drop(keep); // the last handle: the buffer goes now
            (take, errs, buffered)
        });
        assert_eq!(received + errs + buffered, MANY * PER as usize);
        if let Some(c) = cap {
            assert!(buffered <= c, "{buffered} buffered in a channel of {c}");
        }
        ledger.assert_all_dropped("fan-in, receiver left");
        note(format_args!(
            "fan_in_10k_receiver_leaves cap {cap:?}: {received} received, {errs} handed back, \
             {buffered} buffered at the end"
        ));
    }
}

/// Values left in the buffer are dropped once, when the last handle goes (whichever side);
/// values handed back in errors are the caller's to drop.
pub fn buffered_values_dropped_once() {
    let ledger = Ledger::leak();
    weft::run(move || {
        // Receiver gone first: the buffer survives it, sends fail with the value back.
        let (tx, rx) = bounded::<Tracked>(100);
        for i in 0..100 {
            tx.send(Tracked::new(ledger, i)).unwrap();
        }
        for i in 0..10 {
            assert_eq!(rx.recv().unwrap().id, i);
        }
        drop(rx);
        assert_eq!(ledger.dropped(), 10);
        assert_eq!(tx.len(), 90);
        match tx.send(Tracked::new(ledger, 1000)) {
            Err(SendError(v)) => assert_eq!(v.id, 1000),
            Ok(()) => panic!("send with no receiver succeeded"),
        }
        assert_eq!(ledger.dropped(), 11);
        let tx2 = tx.clone();
        drop(tx);
        assert_eq!(
            ledger.dropped(),
            11,
            "buffer dropped while a Sender is alive"
        );
        drop(tx2);
        assert_eq!(ledger.dropped(), 101);

        // Senders gone first (closed): receivers still drain; the rest goes with the Receiver.
        let (tx, rx) = unbounded::<Tracked>();
        for i in 0..10_000 {
            tx.send(Tracked::new(ledger, i)).unwrap();
        }
        drop(tx);
        for i in 0..5 {
            assert_eq!(rx.recv().unwrap().id, i);
        }
        let before = ledger.dropped();
        drop(rx);
        assert_eq!(ledger.dropped(), before + 9_995);

        // A value parked in a blocked sender comes back in SendError when the receiver goes.
        let (tx, rx) = bounded::<Tracked>(0);
        let entered = Arc::new(AtomicUsize::new(0));
        let e2 = Arc::clone(&entered);
        let h = go!(move || {
            e2.fetch_add(1, SeqCst);
            match tx.send(Tracked::new(ledger, 77)) {
                Err(SendError(v)) => v.id,
                Ok(()) => panic!("rendezvous send with no receiver succeeded"),
            }
        });
        wait_count(&entered, 1, "sender started");
        settle();
        drop(rx);
        assert_eq!(h.join().unwrap(), 77);
    });
    ledger.assert_all_dropped("buffered values");
}

// ---------------------------------------------------------------------------------------------
// Gs and plain threads
// ---------------------------------------------------------------------------------------------

/// 3 G senders + 3 thread senders, 3 G receivers + 3 thread receivers on one channel, for
/// `bounded(0)`, `bounded(4)` and `unbounded`. Senders alternate `send` and `send_timeout`,
/// receivers `recv` and `recv_timeout` (timeouts long enough never to expire). Each value is
/// received once; per receiver, each producer's values come in order; all dropped once.
pub fn gs_and_threads_mixed() {
    for cap in [Some(0), Some(4), None] {
        let t = Instant::now();
        mixed(cap);
        note(format_args!(
            "gs_and_threads_mixed cap {cap:?} ({} P): {:?}",
            weft::max_procs(),
            t.elapsed()
        ));
    }
}

fn mixed(cap: Option<usize>) {
    const SEND: usize = 3;
    const RECV: usize = 3;
    const PER: u64 = 2_000;
    let ledger = Ledger::leak();
    let (tx, rx) = make::<Tracked>(cap);

    fn produce(tx: Sender<Tracked>, ledger: &'static Ledger, p: usize) {
        for s in 0..PER {
            let v = Tracked::new(ledger, pid(p, s));
            if s % 2 == 0 {
                tx.send(v).expect("receivers alive");
            } else if let Err(e) = tx.send_timeout(v, LONG) {
                panic!("send_timeout: {e}");
            }
        }
    }
    fn consume(rx: Receiver<Tracked>, who: &str) -> Vec<u64> {
        let mut got = Vec::new();
        let mut fifo = Fifo::default();
        loop {
            let r = if got.len() % 2 == 0 {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(LONG)
            };
            match r {
                Ok(v) => {
                    fifo.check(v.id, who);
                    got.push(v.id);
                }
                Err(RecvTimeoutError::Disconnected) => return got,
                Err(RecvTimeoutError::Timeout) => panic!("{who}: recv_timeout expired"),
            }
        }
    }

    let t_send: Vec<_> = (0..SEND)
        .map(|i| {
            let tx = tx.clone();
            thread::spawn(move || produce(tx, ledger, SEND + i))
        })
        .collect();
    let t_recv: Vec<_> = (0..RECV)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || consume(rx, "thread receiver"))
        })
        .collect();
    let mut lists = weft::run(move || {
        let g_send: Vec<_> = (0..SEND)
            .map(|p| {
                let tx = tx.clone();
                go!(move || produce(tx, ledger, p))
            })
            .collect();
        let g_recv: Vec<_> = (0..RECV)
            .map(|_| {
                let rx = rx.clone();
                go!(move || consume(rx, "G receiver"))
            })
            .collect();
        drop((tx, rx));
        for h in g_send {
            h.join().unwrap();
        }
        g_recv
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for t in t_send {
        t.join().unwrap();
    }
    lists.extend(t_recv.into_iter().map(|t| t.join().unwrap()));
    let mut count: HashMap<u64, usize> = HashMap::new();
    for id in lists.iter().flatten() {
        *count.entry(*id).or_default() += 1;
    }
    let total = 2 * SEND * PER as usize;
    assert_eq!(count.len(), total, "values lost");
    assert!(
        count.values().all(|&n| n == 1),
        "a value was received twice"
    );
    for p in 0..2 * SEND {
        for s in 0..PER {
            assert!(
                count.contains_key(&pid(p, s)),
                "value {s} of producer {p} lost"
            );
        }
    }
    assert!(
        lists.iter().filter(|l| !l.is_empty()).count() >= 2,
        "only one receiver ever got anything"
    );
    assert_eq!(ledger.created(), total);
    ledger.assert_all_dropped("mixed Gs and threads");
}

// ---------------------------------------------------------------------------------------------
// Close semantics
// ---------------------------------------------------------------------------------------------

/// After every Sender is dropped, or one calls `close()` while others live, receivers get what
/// was buffered, in order, then `Disconnected` from every receive form, at once.
pub fn close_drains_then_disconnects() {
    weft::run(|| {
        for cap in [Some(5), None] {
            for explicit in [false, true] {
                let (tx, rx) = make::<u32>(cap);
                let tx2 = tx.clone();
                for i in 0..3 {
                    tx.send(i).unwrap();
                }
                if explicit {
                    tx.close();
                    assert!(matches!(tx2.send(9), Err(SendError(9))));
                    tx.close(); // idempotent
                } else {
                    drop((tx, tx2));
                }
                let rx2 = rx.clone();
                assert_eq!(rx.recv(), Ok(0));
                assert_eq!(rx2.try_recv(), Ok(1));
                assert_eq!(rx.recv_timeout(LONG), Ok(2));
                let t = Instant::now();
                assert_eq!(rx.recv(), Err(RecvError));
                assert_eq!(rx2.try_recv(), Err(TryRecvError::Disconnected));
                assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Disconnected));
                assert_eq!(
                    rx.recv_deadline(Instant::now() + LONG),
                    Err(RecvTimeoutError::Disconnected)
                );
                assert_eq!(rx.iter().count(), 0);
                assert!(t.elapsed() < GENEROUS, "disconnected receives waited");
            }
        }
        // Rendezvous: nothing buffered, Disconnected at once.
        let (tx, rx) = bounded::<u32>(0);
        drop(tx);
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// Receivers blocked in `recv`, `recv_timeout` and `select!` (Gs and a plain thread) all wake
/// with `Disconnected` when the channel closes: by `close()` with other Senders alive, or by the
/// last Sender being dropped.
pub fn blocked_receivers_woken_by_close() {
    for explicit in [true, false] {
        for cap in [Some(0), Some(2)] {
            let (tx, rx) = make::<u32>(cap);
            let keep_tx = tx.clone();
            let rx_t = rx.clone();
            let t = thread::spawn(move || rx_t.recv());
            let outcomes = weft::run(move || {
                let entered = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..30)
                    .map(|i| {
                        let (rx, entered) = (rx.clone(), Arc::clone(&entered));
                        go!(move || {
                            entered.fetch_add(1, SeqCst);
                            match i % 3 {
                                0 => rx.recv().is_err(),
                                1 => rx.recv_timeout(LONG) == Err(RecvTimeoutError::Disconnected),
                                _ => select! {
                                    recv(rx) -> r => r.is_err(),
                                },
                            }
                        })
                    })
                    .collect();
                wait_count(&entered, 30, "receivers started");
                settle();
                if explicit {
                    tx.close();
                    drop(keep_tx);
                } else {
                    drop(keep_tx);
                    drop(tx);
                }
                hs.into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            });
            assert!(outcomes.iter().all(|&d| d), "a receiver got something else");
            assert_eq!(t.join().unwrap(), Err(RecvError));
        }
    }
}

/// Senders blocked on a full channel (Gs in `send`, `send_timeout` and `select!`, and a plain
/// thread) wake with their own value in the error when the last Receiver is dropped. The value
/// that was buffered is dropped with the channel.
pub fn blocked_senders_fail_when_receivers_drop() {
    for cap in [Some(0), Some(1)] {
        let ledger = Ledger::leak();
        let (tx, rx) = make::<Tracked>(cap);
        if cap == Some(1) {
            tx.send(Tracked::new(ledger, 999)).unwrap();
        }
        let tx_t = tx.clone();
        let t = thread::spawn(move || match tx_t.send(Tracked::new(ledger, 500)) {
            Err(SendError(v)) => v.id,
            Ok(()) => panic!("thread's send succeeded with no receiver"),
        });
        weft::run(move || {
            let entered = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..30u64)
                .map(|i| {
                    let (tx, entered) = (tx.clone(), Arc::clone(&entered));
                    go!(move || {
                        entered.fetch_add(1, SeqCst);
                        let v = Tracked::new(ledger, i);
                        let back = match i % 3 {
                            0 => tx.send(v).err().map(|e| e.0.id),
                            1 => match tx.send_timeout(v, LONG) {
                                Err(SendTimeoutError::Disconnected(v)) => Some(v.id),
                                _ => None,
                            },
                            _ => select! {
                                send(tx, v) -> r => r.err().map(|e| e.0.id),
                            },
                        };
                        assert_eq!(back, Some(i), "sender {i} did not get its value back");
                    })
                })
                .collect();
            wait_count(&entered, 30, "senders started");
            settle();
            drop(rx);
            for h in hs {
                h.join().unwrap();
            }
            drop(tx);
        });
        assert_eq!(t.join().unwrap(), 500);
        ledger.assert_all_dropped("blocked senders");
    }
}

/// `Sender::close` with senders blocked on a full channel: they fail with their value; receivers
/// then drain what was buffered before the close, then get `Disconnected`.
pub fn close_fails_blocked_senders() {
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = bounded::<Tracked>(2);
        tx.send(Tracked::new(ledger, 0)).unwrap();
        tx.send(Tracked::new(ledger, 1)).unwrap();
        let entered = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (10..20u64)
            .map(|i| {
                let (tx, entered) = (tx.clone(), Arc::clone(&entered));
                go!(move || {
                    entered.fetch_add(1, SeqCst);
                    match tx.send(Tracked::new(ledger, i)) {
                        Err(SendError(v)) => assert_eq!(v.id, i),
                        Ok(()) => panic!("a send into a full, then closed, channel succeeded"),
                    }
                })
            })
            .collect();
        wait_count(&entered, 10, "senders started");
        settle();
        tx.close();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(rx.recv().unwrap().id, 0);
        assert_eq!(rx.recv().unwrap().id, 1);
        assert_eq!(rx.recv().map(|v| v.id), Err(RecvError));
    });
    ledger.assert_all_dropped("close with blocked senders");
}

/// Every send form on a closed channel, or one without receivers, fails at once and hands back
/// the very value offered.
pub fn send_on_closed_returns_value() {
    let ledger = Ledger::leak();
    weft::run(move || {
        for receivers_gone in [false, true] {
            for cap in [Some(0), Some(3), None] {
                let (tx, rx) = make::<Tracked>(cap);
                if receivers_gone {
                    drop(rx);
                } else {
                    tx.close();
                    assert_eq!(rx.try_recv().map(|v| v.id), Err(TryRecvError::Disconnected));
                }
                let t = Instant::now();
                match tx.send(Tracked::new(ledger, 1)) {
                    Err(SendError(v)) => assert_eq!(v.id, 1),
                    Ok(()) => panic!("send succeeded"),
                }
                match tx.try_send(Tracked::new(ledger, 2)) {
                    Err(TrySendError::Disconnected(v)) => assert_eq!(v.id, 2),
                    other => panic!("try_send: {other:?}"),
                }
                match tx.send_timeout(Tracked::new(ledger, 3), LONG) {
                    Err(SendTimeoutError::Disconnected(v)) => assert_eq!(v.id, 3),
                    other => panic!("send_timeout: {other:?}"),
                }
                match tx.send_deadline(Tracked::new(ledger, 4), Instant::now() + LONG) {
                    Err(e @ SendTimeoutError::Disconnected(_)) => {
                        assert_eq!(e.into_inner().id, 4)
                    }
                    other => panic!("send_deadline: {other:?}"),
                }
                assert!(t.elapsed() < GENEROUS, "failing sends waited");
                assert_eq!(tx.len(), 0);
            }
        }
    });
    assert_eq!(ledger.created(), 24);
    ledger.assert_all_dropped("sends on closed channels");
}

/// `try_send`: `Full` (value back) when the buffer is full or, on a rendezvous channel, when no
/// receiver waits; `Ok` once one does; `Disconnected` (value back) without receivers. Unbounded
/// channels are never full.
pub fn try_send_full_vs_disconnected() {
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = bounded::<Tracked>(1);
        assert!(tx.try_send(Tracked::new(ledger, 1)).is_ok());
        match tx.try_send(Tracked::new(ledger, 2)) {
            Err(TrySendError::Full(v)) => assert_eq!(v.id, 2),
            other => panic!("try_send on a full channel: {other:?}"),
        }
        assert_eq!(rx.recv().unwrap().id, 1);
        assert!(tx.try_send(Tracked::new(ledger, 3)).is_ok());
        drop(rx);
        match tx.try_send(Tracked::new(ledger, 4)) {
            Err(e @ TrySendError::Disconnected(_)) => {
                assert!(e.is_disconnected());
                assert_eq!(e.into_inner().id, 4);
            }
            other => panic!("try_send without receivers: {other:?}"),
        }
        drop(tx);

        // Rendezvous: Full until a receiver waits, then the value goes straight to it.
        let (tx, rx) = bounded::<Tracked>(0);
        match tx.try_send(Tracked::new(ledger, 5)) {
            Err(e @ TrySendError::Full(_)) => assert!(e.is_full()),
            other => panic!("try_send, rendezvous, nobody waiting: {other:?}"),
        }
        let r = go!(move || rx.recv().map(|v| v.id));
        let mut v = Tracked::new(ledger, 6);
        let mut fulls = 0u64;
        loop {
            match tx.try_send(v) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    assert_eq!(back.id, 6);
                    v = back;
                    fulls += 1;
                    assert!(fulls < ROUNDS, "the receiver never came");
                    weft::yield_now();
                }
                Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
            }
        }
        assert_eq!(r.join().unwrap(), Ok(6));
        drop(tx);

        let (tx, _rx) = unbounded::<Tracked>();
        for i in 0..10_000 {
            assert!(tx.try_send(Tracked::new(ledger, i)).is_ok());
        }
        assert_eq!(tx.len(), 10_000);
    });
    ledger.assert_all_dropped("try_send");
}

/// `try_recv`: `Empty` while open and empty (also with a sender waiting to be born);
/// a value from the buffer or from a waiting rendezvous sender; `Disconnected` once closed and
/// drained.
pub fn try_recv_empty_vs_disconnected() {
    weft::run(|| {
        let (tx, rx) = bounded::<u32>(2);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(2).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

        // Rendezvous: a parked sender's value is taken by try_recv.
        let (tx, rx) = bounded::<u32>(0);
        let s = go!(move || {
            tx.send(7).unwrap();
            tx // keep the channel open until joined
        });
        let got = loop {
            match rx.try_recv() {
                Ok(v) => break v,
                Err(TryRecvError::Empty) => weft::yield_now(),
                Err(TryRecvError::Disconnected) => panic!("sender gone"),
            }
        };
        assert_eq!(got, 7);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let tx = s.join().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.try_iter().count(), 0);
    });
}

/// `iter`, `try_iter`, `into_iter`, `len`, `is_empty`, `capacity`.
pub fn iterators_and_sizes() {
    weft::run(|| {
        let (tx, rx) = bounded::<u32>(4);
        assert_eq!((tx.capacity(), rx.capacity()), (Some(4), Some(4)));
        assert_eq!(bounded::<u32>(0).0.capacity(), Some(0));
        assert_eq!(unbounded::<u32>().1.capacity(), None);
        assert!(tx.is_empty() && rx.is_empty());
        for i in 0..4 {
            tx.send(i).unwrap();
        }
        assert_eq!((tx.len(), rx.len()), (4, 4));
        assert_eq!(rx.try_iter().take(2).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
        let h = go!(move || {
            for i in 10..20 {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(rx.iter().take(5).collect::<Vec<_>>(), [10, 11, 12, 13, 14]);
        let mut rest = Vec::new();
        for v in &rx {
            rest.push(v);
        }
        assert_eq!(rest, [15, 16, 17, 18, 19]);
        h.join().unwrap();
        let (tx, rx) = unbounded::<u32>();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        assert_eq!(rx.into_iter().collect::<Vec<_>>(), [1, 2]);
    });
}

/// Blocked receivers are served in the order they blocked, and so are blocked senders (Go's
/// FIFO `recvq`/`sendq`; a receiver on a full buffer takes the head and the first blocked
/// sender's value goes to the tail). On 1 P the order in which the Gs block is known exactly
/// (a G runs from its count to its park without yielding, and nothing preempts it), so the
/// order is asserted; on N Ps a G may count and be overtaken before it parks, so only "each
/// value once" is.
pub fn waiters_served_fifo() {
    const N: usize = 50;
    let exact = weft::max_procs() == 1;
    weft::run(move || {
        for cap in [0usize, 2] {
            let (tx, rx) = bounded::<usize>(cap);
            let entered = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    let (rx, e2) = (rx.clone(), Arc::clone(&entered));
                    let h = go!(move || {
                        e2.fetch_add(1, SeqCst);
                        rx.recv().unwrap()
                    });
                    wait_count(&entered, i + 1, "receivers blocked");
                    h
                })
                .collect();
            settle();
            for v in 0..N {
                tx.send(v).unwrap();
            }
            let mut got: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            if !exact {
                got.sort_unstable();
            }
            assert_eq!(
                got,
                (0..N).collect::<Vec<_>>(),
                "receivers served out of order"
            );

            let (tx, rx) = bounded::<usize>(cap);
            for v in 0..cap {
                tx.send(1000 + v).unwrap();
            }
            let entered = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    let (tx, e2) = (tx.clone(), Arc::clone(&entered));
                    let h = go!(move || {
                        e2.fetch_add(1, SeqCst);
                        tx.send(i).unwrap();
                    });
                    wait_count(&entered, i + 1, "senders blocked");
                    h
                })
                .collect();
            settle();
            let mut got: Vec<usize> = (0..cap + N).map(|_| rx.recv().unwrap()).collect();
            let mut want: Vec<usize> = (1000..1000 + cap).collect();
            want.extend(0..N);
            if !exact {
                got[cap..].sort_unstable();
            }
            assert_eq!(got, want, "senders served out of order");
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Timeouts and deadlines
// ---------------------------------------------------------------------------------------------

/// `recv_timeout`: `Timeout`, not before the timeout, when nothing comes (in a G and on a plain
/// thread; rendezvous and buffered); the value when a peer sends before the deadline (a G peer,
/// a plain-thread peer). A timed-out receiver leaves nothing behind in the channel's queues: a
/// later `try_send` on a rendezvous channel is `Full`.
pub fn recv_timeout_both_outcomes() {
    const D: Duration = Duration::from_millis(20);
    fn times_out(cap: Option<usize>) {
        let (tx, rx) = make::<u32>(cap);
        let t = Instant::now();
        assert_eq!(rx.recv_timeout(D), Err(RecvTimeoutError::Timeout));
        let took = t.elapsed();
        assert!(took >= D, "recv_timeout({D:?}) returned after {took:?}");
        assert!(took < GENEROUS, "recv_timeout({D:?}) took {took:?}");
        for _ in 0..50 {
            assert_eq!(
                rx.recv_timeout(Duration::from_micros(100)),
                Err(RecvTimeoutError::Timeout)
            );
        }
        if cap == Some(0) {
            // No stale receiver left queued: nobody waits, so the send cannot complete.
            assert!(matches!(tx.try_send(5), Err(TrySendError::Full(5))));
        } else {
            tx.send(5).unwrap();
            assert_eq!(rx.recv_timeout(D), Ok(5));
        }
    }
    for cap in [Some(0), Some(1)] {
        weft::run(move || times_out(cap));
        thread::spawn(move || times_out(cap)).join().unwrap();
    }

    // A G peer sends while the G waits.
    weft::run(|| {
        for cap in [Some(0), Some(1)] {
            let (tx, rx) = make::<u32>(cap);
            let p = go!(move || {
                settle();
                tx.send(42).unwrap();
            });
            let t = Instant::now();
            assert_eq!(rx.recv_timeout(LONG), Ok(42));
            assert!(t.elapsed() < GENEROUS);
            p.join().unwrap();
        }
    });
    // A plain thread sends to a waiting G, and a G to a waiting plain thread.
    let (tx, rx) = bounded::<u32>(0);
    let t = thread::spawn(move || tx.send(1).unwrap());
    assert_eq!(weft::run(move || rx.recv_timeout(LONG)), Ok(1));
    t.join().unwrap();
    let (tx, rx) = bounded::<u32>(0);
    let t = thread::spawn(move || rx.recv_timeout(LONG));
    weft::run(move || tx.send(2).unwrap());
    assert_eq!(t.join().unwrap(), Ok(2));
}

/// `send_timeout`: `Timeout` with the value back, not before the timeout, when no room comes
/// (full buffer; rendezvous without a receiver); success when a receiver comes before the
/// deadline. A timed-out sender leaves nothing behind: `try_recv` is `Empty` afterwards.
pub fn send_timeout_both_outcomes() {
    const D: Duration = Duration::from_millis(20);
    let ledger = Ledger::leak();
    fn times_out(cap: usize, ledger: &'static Ledger) {
        let (tx, rx) = bounded::<Tracked>(cap);
        for i in 0..cap as u64 {
            tx.send(Tracked::new(ledger, 100 + i)).unwrap();
        }
        let t = Instant::now();
        match tx.send_timeout(Tracked::new(ledger, 1), D) {
            Err(SendTimeoutError::Timeout(v)) => assert_eq!(v.id, 1),
            other => panic!("send_timeout: {other:?}"),
        }
        let took = t.elapsed();
        assert!(took >= D, "send_timeout({D:?}) returned after {took:?}");
        assert!(took < GENEROUS, "send_timeout({D:?}) took {took:?}");
        for i in 0..50 {
            match tx.send_timeout(Tracked::new(ledger, 2 + i), Duration::from_micros(100)) {
                Err(SendTimeoutError::Timeout(v)) => assert_eq!(v.id, 2 + i),
                other => panic!("short send_timeout: {other:?}"),
            }
        }
        assert_eq!(tx.len(), cap);
        for i in 0..cap as u64 {
            assert_eq!(rx.try_recv().unwrap().id, 100 + i);
        }
        assert_eq!(
            rx.try_recv().map(|v| v.id),
            Err(TryRecvError::Empty),
            "a timed-out sender left its value behind"
        );
    }
    for cap in [0, 1] {
        weft::run(move || times_out(cap, ledger));
        thread::spawn(move || times_out(cap, ledger))
            .join()
            .unwrap();
    }
    weft::run(move || {
        for cap in [0, 1] {
            let (tx, rx) = bounded::<Tracked>(cap);
            for i in 0..cap as u64 {
                tx.send(Tracked::new(ledger, 200 + i)).unwrap();
            }
            let r = go!(move || {
                settle();
                rx.iter().map(|v| v.id).collect::<Vec<_>>()
            });
            let t = Instant::now();
            tx.send_timeout(Tracked::new(ledger, 300), LONG)
                .expect("a receiver came");
            assert!(t.elapsed() < GENEROUS);
            drop(tx);
            let mut want: Vec<u64> = (0..cap as u64).map(|i| 200 + i).collect();
            want.push(300);
            assert_eq!(r.join().unwrap(), want);
        }
    });
    // A plain thread blocked in send_timeout, served by a G.
    let (tx, rx) = bounded::<Tracked>(0);
    let t = thread::spawn(move || tx.send_timeout(Tracked::new(ledger, 400), LONG).is_ok());
    assert_eq!(weft::run(move || rx.recv().map(|v| v.id)), Ok(400));
    assert!(t.join().unwrap());
    ledger.assert_all_dropped("send_timeout");
}

/// A deadline already past (or a zero timeout): `Timeout` at once, without parking. On 1 P a G
/// spawned just before would run if the caller parked or yielded, so it must not have run. The
/// immediate attempt still comes first: a value already there is returned.
pub fn deadline_in_past_returns_at_once() {
    let one_p = weft::max_procs() == 1;
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = bounded::<Tracked>(1);
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let other = go!(move || r.store(true, SeqCst));
        let t = Instant::now();
        let past = t - Duration::from_millis(5);
        assert_eq!(
            rx.recv_deadline(past).map(|v| v.id),
            Err(RecvTimeoutError::Timeout)
        );
        if let Some(long_ago) = t.checked_sub(Duration::from_secs(3600)) {
            assert_eq!(
                rx.recv_deadline(long_ago).map(|v| v.id),
                Err(RecvTimeoutError::Timeout)
            );
        }
        assert_eq!(
            rx.recv_timeout(Duration::ZERO).map(|v| v.id),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(Tracked::new(ledger, 1)).unwrap();
        match tx.send_deadline(Tracked::new(ledger, 2), past) {
            Err(SendTimeoutError::Timeout(v)) => assert_eq!(v.id, 2),
            other => panic!("send_deadline(past) on a full channel: {other:?}"),
        }
        match tx.send_timeout(Tracked::new(ledger, 3), Duration::ZERO) {
            Err(SendTimeoutError::Timeout(v)) => assert_eq!(v.id, 3),
            other => panic!("send_timeout(0) on a full channel: {other:?}"),
        }
        // A zero timeout still polls the arms first: the recv arm is ready (1 is buffered).
        let sel = select! {
            recv(rx) -> v => v.map(|v| v.id).ok(),
            send(tx, Tracked::new(ledger, 4)) -> _ => unexpected("send arm ready on a full channel"),
            default(Duration::ZERO) => None,
        };
        assert_eq!(sel, Some(1));
        let sel = select! {
            recv(rx) -> _ => "recv",
            default(Duration::ZERO) => "timeout",
        };
        assert_eq!(sel, "timeout");
        let took = t.elapsed();
        if one_p {
            assert!(
                !ran.load(SeqCst),
                "a past deadline let another G run: the caller parked or yielded"
            );
        }
        assert!(took < GENEROUS, "past deadlines took {took:?}");
        other.join().unwrap();
    });
    ledger.assert_all_dropped("past deadlines");
}

/// Timed waits end early, with `Disconnected`, when the other side goes away.
pub fn timed_waits_woken_by_disconnect() {
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = bounded::<Tracked>(0);
        let r = go!(move || {
            let t = Instant::now();
            (rx.recv_timeout(LONG).map(|v| v.id), t.elapsed())
        });
        settle();
        drop(tx);
        let (res, took) = r.join().unwrap();
        assert_eq!(res, Err(RecvTimeoutError::Disconnected));
        assert!(took < GENEROUS);

        let (tx, rx) = bounded::<Tracked>(1);
        tx.send(Tracked::new(ledger, 0)).unwrap();
        let s = go!(move || {
            let t = Instant::now();
            match tx.send_deadline(Tracked::new(ledger, 1), Instant::now() + LONG) {
                Err(SendTimeoutError::Disconnected(v)) => (v.id, t.elapsed()),
                other => panic!("send_deadline: {other:?}"),
            }
        });
        settle();
        drop(rx);
        let (id, took) = s.join().unwrap();
        assert_eq!(id, 1);
        assert!(took < GENEROUS);
    });
    ledger.assert_all_dropped("timed waits");
}

// ---------------------------------------------------------------------------------------------
// select!
// ---------------------------------------------------------------------------------------------

/// Check that each count is within `[lo, hi]` of `n`.
#[track_caller]
fn assert_band(counts: &[usize], n: usize, lo: f64, hi: f64, what: &str) {
    for (i, &c) in counts.iter().enumerate() {
        let f = c as f64 / n as f64;
        assert!(
            (lo..=hi).contains(&f),
            "{what}: arm {i} chosen {c} of {n} times ({:.1}%), outside {:.0}–{:.0}%: {counts:?}",
            100.0 * f,
            100.0 * lo,
            100.0 * hi
        );
    }
}

/// 100 000 selections with two always-ready recv arms (two channels each prefilled with 100 000
/// values), with two always-ready send arms (unbounded), and 3 arms mixing both. Each arm within
/// 45–55% (three arms: 1/3 ± 5%). Run in a G and on a plain thread (different random sources).
/// Received values come in channel order.
pub fn select_fairness_two_ready_arms() {
    const N: usize = 100_000;
    fn fair() -> ([usize; 2], [usize; 2], [usize; 3]) {
        let (tx1, rx1) = unbounded::<usize>();
        let (tx2, rx2) = unbounded::<usize>();
        for i in 0..N {
            tx1.send(i).unwrap();
            tx2.send(i).unwrap();
        }
        let mut got = [0usize; 2];
        for _ in 0..N {
            select! {
                recv(rx1) -> v => { assert_eq!(v, Ok(got[0])); got[0] += 1; }
                recv(rx2) -> v => { assert_eq!(v, Ok(got[1])); got[1] += 1; }
            }
        }
        let (sx1, sr1) = unbounded::<usize>();
        let (sx2, sr2) = unbounded::<usize>();
        let mut send = [0usize; 2];
        for i in 0..N {
            select! {
                send(sx1, i) -> r => { r.unwrap(); send[0] += 1; }
                send(sx2, i) -> r => { r.unwrap(); send[1] += 1; }
            }
        }
        assert_eq!((sr1.len(), sr2.len()), (send[0], send[1]));
        drop((sr1, sr2));
        // Three arms: the two recv channels still hold values (each lost < N of them above),
        // refill to be sure, plus a send arm.
        for i in 0..N {
            tx1.send(N + i).unwrap();
            tx2.send(N + i).unwrap();
        }
        let (sx3, _sr3) = unbounded::<usize>();
        let mut three = [0usize; 3];
        for i in 0..N {
            select! {
                recv(rx1) -> v => { v.unwrap(); three[0] += 1; }
                recv(rx2) -> v => { v.unwrap(); three[1] += 1; }
                send(sx3, i) -> r => { r.unwrap(); three[2] += 1; }
            }
        }
        (got, send, three)
    }
    let in_g = weft::run(fair);
    let on_thread = thread::spawn(fair).join().unwrap();
    for (ctx, (recv, send, three)) in [("G", in_g), ("thread", on_thread)] {
        note(format_args!(
            "select fairness ({ctx}, {} P): recv {recv:?}, send {send:?}, three {three:?}",
            weft::max_procs()
        ));
        assert_band(&recv, N, 0.45, 0.55, &format!("two recv arms ({ctx})"));
        assert_band(&send, N, 0.45, 0.55, &format!("two send arms ({ctx})"));
        assert_band(&three, N, 1.0 / 3.0 - 0.05, 1.0 / 3.0 + 0.05, "three arms");
    }
}

/// `default =>` runs when nothing is ready, without parking (on 1 P a G spawned just before has
/// not run); never when an arm is ready (a buffered value, a closed channel, a waiting sender);
/// and a select of only `default` returns it.
pub fn select_default_arm() {
    let one_p = weft::max_procs() == 1;
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = bounded::<Tracked>(0);
        let (tx1, rx1) = bounded::<Tracked>(1);
        tx1.send(Tracked::new(ledger, 0)).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let other = go!(move || r.store(true, SeqCst));
        for _ in 0..100 {
            let d = select! {
                recv(rx) -> _ => false,
                send(tx1, Tracked::new(ledger, 1)) -> _ => false,
                send(tx, Tracked::new(ledger, 2)) -> _ => false,
                default => true,
            };
            assert!(d, "an arm completed with nothing ready");
        }
        if one_p {
            assert!(!ran.load(SeqCst), "select with default parked or yielded");
        }
        other.join().unwrap();
        assert_eq!(rx1.len(), 1, "a losing send arm was sent");
        assert_eq!(ledger.dropped(), 200, "losing send values not dropped once");
        assert_eq!(select! { default => 5 }, 5);

        // A ready arm always wins over default.
        for _ in 0..100 {
            let got = select! {
                recv(rx) -> _ => None,
                recv(rx1) -> v => Some(v.unwrap().id),
                default => None,
            };
            assert_eq!(got, Some(0));
            tx1.send(Tracked::new(ledger, 0)).unwrap();
        }
        // A sender waiting on a rendezvous channel makes the recv arm ready.
        let s = go!(move || {
            tx.send(Tracked::new(ledger, 9)).unwrap();
        });
        let mut spins = 0u64;
        let id = loop {
            let got = select! {
                recv(rx) -> v => Some(v.unwrap().id),
                default => None,
            };
            if let Some(id) = got {
                break id;
            }
            spins += 1;
            assert!(spins < ROUNDS, "the sender never arrived");
            weft::yield_now();
        };
        assert_eq!(id, 9);
        s.join().unwrap();
        // Now closed (the sender's G dropped tx): the recv arm is ready with an error.
        let closed = select! {
            recv(rx) -> v => v.is_err(),
            default => false,
        };
        assert!(closed, "default ran although the channel is closed");
    });
    ledger.assert_all_dropped("select default");
}

/// `default(timeout) =>` fires, not before the timeout, when nothing comes; an arm completed by
/// a peer before the deadline wins; a zero timeout polls; `Duration::MAX` waits for good; a
/// select of only `default(timeout)` sleeps.
pub fn select_default_timeout() {
    const D: Duration = Duration::from_millis(20);
    fn times_out() {
        let (tx, rx) = bounded::<u32>(0);
        let (tx2, rx2) = bounded::<u32>(0);
        let t = Instant::now();
        let r = select! {
            recv(rx) -> _ => "recv",
            send(tx2, 1) -> _ => "send",
            default(D) => "timeout",
        };
        let took = t.elapsed();
        assert_eq!(r, "timeout");
        assert!(took >= D, "default({D:?}) fired after {took:?}");
        assert!(took < GENEROUS, "default({D:?}) fired after {took:?}");
        // Nothing left behind: no stale receiver or sender queued on the rendezvous channels.
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx2.try_recv(), Err(TryRecvError::Empty));
        let t = Instant::now();
        let r = select! { default(D) => "slept" };
        assert_eq!(r, "slept");
        assert!(t.elapsed() >= D);
        let r = select! {
            recv(rx) -> _ => "recv",
            default(Duration::ZERO) => "poll",
        };
        assert_eq!(r, "poll");
    }
    weft::run(times_out);
    thread::spawn(times_out).join().unwrap();

    weft::run(|| {
        let (tx, rx) = bounded::<u32>(0);
        let p = go!(move || {
            settle();
            tx.send(8).unwrap();
            tx
        });
        let t = Instant::now();
        let r = select! {
            recv(rx) -> v => v.ok(),
            default(LONG) => None,
        };
        assert_eq!(r, Some(8));
        assert!(t.elapsed() < GENEROUS);
        let tx = p.join().unwrap();
        // Duration::MAX overflows the deadline: it blocks until an arm completes.
        let p = go!(move || {
            settle();
            tx.send(9).unwrap();
        });
        let r = select! {
            recv(rx) -> v => v.ok(),
            default(Duration::MAX) => None,
        };
        assert_eq!(r, Some(9));
        p.join().unwrap();
    });
}

/// A recv arm on a closed channel is ready with `Err(RecvError)`; a send arm on a channel
/// without receivers with `Err(SendError(v))`, `v` the value offered; a select blocked on such
/// arms wakes when the channel closes / the receivers go.
pub fn select_closed_channel() {
    let ledger = Ledger::leak();
    weft::run(move || {
        let (_never_tx, never) = bounded::<Tracked>(0);
        let (tx, rx) = bounded::<Tracked>(1);
        drop(tx);
        for _ in 0..10 {
            let r = select! {
                recv(never) -> _ => unexpected("never"),
                recv(rx) -> v => v.map(|v| v.id),
            };
            assert_eq!(r, Err(RecvError));
        }
        let (tx, rx) = bounded::<Tracked>(0);
        drop(rx);
        let r = select! {
            recv(never) -> _ => unexpected("never"),
            send(tx, Tracked::new(ledger, 5)) -> r => r.map_err(|SendError(v)| v.id),
        };
        assert_eq!(r, Err(5));

        // Blocked, then the channel closes (explicit close, last Sender dropped).
        for explicit in [true, false] {
            let (tx, rx) = bounded::<Tracked>(0);
            let never = never.clone();
            let h = go!(move || {
                select! {
                    recv(never) -> _ => unexpected("never"),
                    recv(rx) -> v => v.map(|v| v.id),
                }
            });
            settle();
            if explicit {
                tx.close();
            }
            drop(tx);
            assert_eq!(h.join().unwrap(), Err(RecvError));
        }
        // Blocked in a send arm, then the receivers go: the value comes back.
        let (tx, rx) = bounded::<Tracked>(0);
        let (_never_tx2, never2) = bounded::<Tracked>(0);
        let h = go!(move || {
            select! {
                recv(never2) -> _ => unexpected("never"),
                send(tx, Tracked::new(ledger, 6)) -> r => r.map_err(|SendError(v)| v.id),
            }
        });
        settle();
        drop(rx);
        assert_eq!(h.join().unwrap(), Err(6));
        // A send arm blocked on a full channel, then `close()`: fails with its value.
        let (tx, rx) = bounded::<Tracked>(1);
        tx.send(Tracked::new(ledger, 7)).unwrap();
        let tx2 = tx.clone();
        let h = go!(move || {
            select! {
                send(tx2, Tracked::new(ledger, 8)) -> r => r.map_err(|SendError(v)| v.id),
            }
        });
        settle();
        tx.close();
        assert_eq!(h.join().unwrap(), Err(8));
        assert_eq!(rx.recv().map(|v| v.id), Ok(7));
        assert_eq!(rx.recv().map(|v| v.id), Err(RecvError));
    });
    ledger.assert_all_dropped("select on closed channels");
}

/// Exactly one send arm completes; the loser's value is not sent (its channel stays empty) and
/// is dropped once. Both ready (buffered), and blocking (two rendezvous channels, a receiver on
/// one of them; afterwards the other channel's receiver sees only the close).
pub fn select_send_arm_loser_not_sent() {
    const ITERS: u64 = 2_000;
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx1, rx1) = bounded::<Tracked>(1);
        let (tx2, rx2) = bounded::<Tracked>(1);
        let mut wins = [0usize; 2];
        for i in 0..ITERS {
            let arm = select! {
                send(tx1, Tracked::new(ledger, 2 * i)) -> r => { r.unwrap(); 0 }
                send(tx2, Tracked::new(ledger, 2 * i + 1)) -> r => { r.unwrap(); 1 }
            };
            wins[arm] += 1;
            let (win, lose) = if arm == 0 { (&rx1, &rx2) } else { (&rx2, &rx1) };
            assert_eq!(win.try_recv().map(|v| v.id), Ok(2 * i + arm as u64));
            assert_eq!(lose.try_recv().map(|v| v.id), Err(TryRecvError::Empty));
            assert_eq!(ledger.live(), 0, "a value is held somewhere");
        }
        assert!(wins[0] > 0 && wins[1] > 0, "{wins:?}");

        for i in 0..ITERS / 4 {
            let (tx1, rx1) = bounded::<Tracked>(0);
            let (tx2, rx2) = bounded::<Tracked>(0);
            let h = go!(move || {
                let arm = select! {
                    send(tx1, Tracked::new(ledger, 10 * i)) -> r => { r.unwrap(); 0 }
                    send(tx2, Tracked::new(ledger, 10 * i + 1)) -> r => { r.unwrap(); 1 }
                };
                arm // tx1 and tx2 are dropped here: both channels close
            });
            let pick = (i % 2) as usize;
            let (taker, other) = if pick == 0 { (rx1, rx2) } else { (rx2, rx1) };
            if i % 3 == 0 {
                settle(); // usually: the select parks first
            }
            assert_eq!(taker.recv().map(|v| v.id), Ok(10 * i + pick as u64));
            assert_eq!(h.join().unwrap(), pick);
            assert_eq!(
                other.recv().map(|v| v.id),
                Err(RecvError),
                "the losing send arm delivered its value"
            );
        }
        assert_eq!(ledger.live(), 0);
    });
    assert_eq!(
        ledger.created(),
        2 * ITERS as usize + 2 * (ITERS / 4) as usize
    );
    ledger.assert_all_dropped("select send arms");
}

/// A recv arm and a send arm on the same channel. `bounded(1)`: exactly one is ready at a time,
/// so the select alternates send, recv, send... On a rendezvous channel a select never pairs
/// with itself (alone it times out) but pairs with a peer on either side.
pub fn select_recv_and_send_same_channel() {
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = bounded::<Tracked>(1);
        for i in 0..10_000u64 {
            let r = select! {
                send(tx, Tracked::new(ledger, i)) -> r => { r.unwrap(); None }
                recv(rx) -> v => Some(v.unwrap().id),
            };
            if i % 2 == 0 {
                assert_eq!(
                    r, None,
                    "step {i}: the buffer was empty, only send was ready"
                );
            } else {
                assert_eq!(
                    r,
                    Some(i - 1),
                    "step {i}: the buffer was full, only recv was ready"
                );
            }
        }

        let (tx, rx) = bounded::<Tracked>(0);
        for _ in 0..3 {
            let r = select! {
                send(tx, Tracked::new(ledger, 1)) -> _ => "send",
                recv(rx) -> _ => "recv",
                default(Duration::from_millis(5)) => "timeout",
            };
            assert_eq!(r, "timeout", "a select paired its own send and recv");
        }
        assert_eq!(ledger.live(), 0);
        for i in 0..1_000u64 {
            let (tx2, rx2) = (tx.clone(), rx.clone());
            let h = go!(move || {
                select! {
                    send(tx2, Tracked::new(ledger, 2 * i)) -> r => { r.unwrap(); None }
                    recv(rx2) -> v => Some(v.unwrap().id),
                }
            });
            if i % 4 == 0 {
                settle();
            }
            if i % 2 == 0 {
                assert_eq!(rx.recv().map(|v| v.id), Ok(2 * i));
                assert_eq!(h.join().unwrap(), None);
            } else {
                tx.send(Tracked::new(ledger, 2 * i + 1)).unwrap();
                assert_eq!(h.join().unwrap(), Some(2 * i + 1));
            }
            assert_eq!(ledger.live(), 0);
        }
    });
    ledger.assert_all_dropped("recv and send on one channel");
}

/// One channel in two arms. Two recv arms with a value buffered: one completes (each about
/// half the time), the value is received once. Blocked on two recv arms of an empty channel: a
/// single send completes exactly one. Two send arms: exactly one value is delivered.
pub fn select_same_channel_two_arms() {
    const N: usize = 10_000;
    let ledger = Ledger::leak();
    weft::run(move || {
        let (tx, rx) = unbounded::<Tracked>();
        let mut arms = [0usize; 2];
        for i in 0..N as u64 {
            tx.send(Tracked::new(ledger, i)).unwrap();
            let (arm, id) = select! {
                recv(rx) -> v => (0, v.unwrap().id),
                recv(rx) -> v => (1, v.unwrap().id),
            };
            assert_eq!(id, i);
            arms[arm] += 1;
            assert!(rx.is_empty());
        }
        assert_band(&arms, N, 0.40, 0.60, "one channel in two recv arms");

        let (tx, rx) = bounded::<Tracked>(0);
        for i in 0..500u64 {
            let rx2 = rx.clone();
            let h = go!(move || {
                select! {
                    recv(rx2) -> v => v.unwrap().id,
                    recv(rx2) -> v => v.unwrap().id,
                }
            });
            if i % 2 == 0 {
                settle();
            }
            tx.send(Tracked::new(ledger, i)).unwrap();
            assert_eq!(h.join().unwrap(), i);
            assert!(
                matches!(
                    tx.try_send(Tracked::new(ledger, 0)),
                    Err(TrySendError::Full(_))
                ),
                "a receiver of the select stayed queued"
            );
        }

        let mut arms = [0usize; 2];
        for i in 0..500u64 {
            let (tx, rx) = bounded::<Tracked>(0);
            let h = go!(move || {
                select! {
                    send(tx, Tracked::new(ledger, 2 * i)) -> r => { r.unwrap(); 0 }
                    send(tx, Tracked::new(ledger, 2 * i + 1)) -> r => { r.unwrap(); 1 }
                }
            });
            if i % 2 == 0 {
                settle();
            }
            let id = rx.recv().unwrap().id;
            let arm = h.join().unwrap();
            assert_eq!(id, 2 * i + arm as u64);
            assert_eq!(
                rx.recv().map(|v| v.id),
                Err(RecvError),
                "both send arms delivered"
            );
            arms[arm] += 1;
        }
        assert!(arms[0] > 0 && arms[1] > 0, "{arms:?}");
    });
    ledger.assert_all_dropped("one channel, two arms");
}

/// A select loop multiplexing four producer channels (rendezvous, 1, 7, unbounded; three G
/// producers and one plain thread) until all close. A closed arm is replaced by a channel that
/// never delivers. Per-producer order, every value once, all dropped.
pub fn select_multiplexer_until_all_close() {
    const PER: u64 = 5_000;
    let ledger = Ledger::leak();
    let caps = [Some(0), Some(1), Some(7), None];
    let mut rxs = Vec::new();
    let mut txs = Vec::new();
    for cap in caps {
        let (tx, rx) = make::<Tracked>(cap);
        txs.push(tx);
        rxs.push(rx);
    }
    fn produce(tx: Sender<Tracked>, ledger: &'static Ledger, p: usize) {
        for s in 0..PER {
            tx.send(Tracked::new(ledger, pid(p, s))).unwrap();
        }
    }
    let tx3 = txs.pop().unwrap();
    let t = thread::spawn(move || produce(tx3, ledger, 3));
    let counts = weft::run(move || {
        let hs: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(p, tx)| go!(move || produce(tx, ledger, p)))
            .collect();
        let (_never_tx, never) = bounded::<Tracked>(0);
        let mut next = [0u64; 4];
        let mut open = [true; 4];
        let mut selects = 0usize;
        while open.iter().any(|&o| o) {
            let (arm, r) = select! {
                recv(rxs[0]) -> r => (0, r),
                recv(rxs[1]) -> r => (1, r),
                recv(rxs[2]) -> r => (2, r),
                recv(rxs[3]) -> r => (3, r),
            };
            selects += 1;
            match r {
                Ok(v) => {
                    let (p, s) = split(v.id);
                    assert_eq!(p, arm, "a value came out of another producer's channel");
                    assert_eq!(s, next[p], "producer {p}: out of order");
                    next[p] += 1;
                }
                Err(RecvError) => {
                    assert!(open[arm], "a replaced arm completed");
                    assert_eq!(next[arm], PER, "closed before all values arrived");
                    open[arm] = false;
                    rxs[arm] = never.clone();
                }
            }
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(selects, 4 * PER as usize + 4);
        next
    });
    t.join().unwrap();
    assert_eq!(counts, [PER; 4]);
    ledger.assert_all_dropped("multiplexer");
}

/// A G blocked in `select!` is woken by a plain thread's sends (on a rendezvous and an
/// unbounded channel), and a plain thread blocked in `select!` by a G's sends; per channel in
/// order, everything received, and the final closes seen.
pub fn select_woken_by_plain_thread() {
    const N: u64 = 2_000;
    fn send_alternating(a: Sender<u64>, b: Sender<u64>) {
        for i in 0..N {
            if i % 2 == 0 {
                a.send(i).unwrap();
            } else {
                b.send(i).unwrap();
            }
        }
    }
    fn select_all(mut a: Receiver<u64>, mut b: Receiver<u64>, timed: bool) -> [u64; 2] {
        let mut next = [0u64, 1];
        let mut open = [true, true];
        let (_never_tx, never) = bounded::<u64>(0);
        while open[0] || open[1] {
            let (arm, r) = if timed {
                select! {
                    recv(a) -> r => (0, r),
                    recv(b) -> r => (1, r),
                    default(LONG) => unexpected("select timed out"),
                }
            } else {
                select! {
                    recv(a) -> r => (0, r),
                    recv(b) -> r => (1, r),
                }
            };
            match r {
                Ok(v) => {
                    assert_eq!(v, next[arm], "channel {arm} out of order");
                    next[arm] += 2;
                }
                Err(RecvError) => {
                    open[arm] = false;
                    if arm == 0 {
                        a = never.clone();
                    } else {
                        b = never.clone();
                    }
                }
            }
        }
        next
    }
    for timed in [false, true] {
        let (ta, ra) = bounded::<u64>(0);
        let (tb, rb) = unbounded::<u64>();
        let t = thread::spawn(move || send_alternating(ta, tb));
        assert_eq!(weft::run(move || select_all(ra, rb, timed)), [N, N + 1]);
        t.join().unwrap();

        let (ta, ra) = bounded::<u64>(0);
        let (tb, rb) = bounded::<u64>(1);
        let t = thread::spawn(move || select_all(ra, rb, timed));
        weft::run(move || send_alternating(ta, tb));
        assert_eq!(t.join().unwrap(), [N, N + 1]);
    }
}

/// A `select!` with `default(1 ms)` (or `recv_timeout(1 ms)`) against a sender that sends at
/// about the deadline (a G or a plain thread, with delays spread around it). Exactly one outcome:
/// the value was received, and the channel is empty; or the select timed out, and the value is
/// in the channel. On a rendezvous channel with `send_timeout` on the other side: the send
/// succeeded if and only if the value was received, and a timed-out send got its value back.
pub fn select_timeout_races_sender() {
    const ITERS: u64 = 300;
    const D: Duration = Duration::from_millis(1);
    let ledger = Ledger::leak();
    let stats = weft::run(move || {
        let mut stats = [0usize; 4];
        for i in 0..ITERS {
            let (tx, rx) = bounded::<Tracked>(1);
            let (done_tx, done_rx) = bounded::<Sender<Tracked>>(1);
            let delay = Duration::from_micros((i % 7) * 300);
            let t0 = Instant::now();
            let send = move || {
                weft::sleep_until(t0 + delay);
                tx.send(Tracked::new(ledger, i)).unwrap();
                done_tx.send(tx).unwrap(); // keeps the channel open until checked
            };
            if i % 4 == 3 {
                drop(thread::spawn(send));
            } else {
                drop(go!(send));
            }
            let got = if i % 2 == 0 {
                select! {
                    recv(rx) -> v => Some(v.unwrap().id),
                    default(D) => None,
                }
            } else {
                match rx.recv_timeout(D) {
                    Ok(v) => Some(v.id),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => panic!("sender gone"),
                }
            };
            let tx = done_rx.recv().expect("the sender reports back");
            match (got, rx.try_recv()) {
                (Some(id), Err(TryRecvError::Empty)) => {
                    assert_eq!(id, i);
                    stats[0] += 1;
                }
                (None, Ok(v)) => {
                    assert_eq!(v.id, i);
                    stats[1] += 1;
                }
                (got, rest) => panic!("iteration {i}: received {got:?}, channel then {rest:?}"),
            }
            drop(tx);
        }
        for i in 0..ITERS {
            let (tx, rx) = bounded::<Tracked>(0);
            let delay = Duration::from_micros((i % 7) * 300);
            let t0 = Instant::now();
            let s = go!(move || {
                weft::sleep_until(t0 + delay);
                match tx.send_timeout(Tracked::new(ledger, 1_000 + i), D) {
                    Ok(()) => None,
                    Err(SendTimeoutError::Timeout(v)) => Some(v.id),
                    Err(SendTimeoutError::Disconnected(_)) => panic!("receiver gone"),
                }
            });
            let got = select! {
                recv(rx) -> v => Some(v.unwrap().id),
                default(D) => None,
            };
            let back = s.join().unwrap();
            match (got, back) {
                (Some(id), None) => {
                    assert_eq!(id, 1_000 + i);
                    stats[2] += 1;
                }
                (None, Some(id)) => {
                    assert_eq!(id, 1_000 + i);
                    stats[3] += 1;
                }
                (got, back) => panic!(
                    "iteration {i}: received {got:?}, sender got back {back:?}: \
                     the value was lost or duplicated"
                ),
            }
            assert_eq!(ledger.live(), 0);
        }
        stats
    });
    note(format_args!(
        "timeout races ({} P): buffered: {} received, {} left in the channel; rendezvous: {} \
         handed off, {} both timed out",
        weft::max_procs(),
        stats[0],
        stats[1],
        stats[2],
        stats[3]
    ));
    ledger.assert_all_dropped("timeout races");
}

// ---------------------------------------------------------------------------------------------
// Proptest 1: one actor against an exact sequential model
// ---------------------------------------------------------------------------------------------

/// One operation of the sequential program (durations in microseconds).
#[derive(Debug, Clone, Copy)]
pub enum SeqOp {
    Send,
    TrySend,
    SendTimeout(u16),
    SendDeadlinePast,
    Recv,
    TryRecv,
    RecvTimeout(u16),
    RecvDeadlinePast,
    Close(Index),
    CloneTx(Index),
    DropTx(Index),
    CloneRx(Index),
    DropRx(Index),
    Len,
    /// `recv` arm + `default`.
    SelRecv,
    /// `send` arm + `default`.
    SelSend,
    /// `send` and `recv` arms on the channel + `default`.
    SelBoth,
    /// `send` and `recv` arms + `default(timeout)`.
    SelBothTimeout(u16),
}

fn seq_op() -> impl Strategy<Value = SeqOp> {
    let us = || 0..2_000u16;
    prop_oneof![
        4 => Just(SeqOp::Send),
        4 => Just(SeqOp::TrySend),
        2 => us().prop_map(SeqOp::SendTimeout),
        1 => Just(SeqOp::SendDeadlinePast),
        4 => Just(SeqOp::Recv),
        4 => Just(SeqOp::TryRecv),
        2 => us().prop_map(SeqOp::RecvTimeout),
        1 => Just(SeqOp::RecvDeadlinePast),
        1 => any::<Index>().prop_map(SeqOp::Close),
        1 => any::<Index>().prop_map(SeqOp::CloneTx),
        1 => any::<Index>().prop_map(SeqOp::DropTx),
        1 => any::<Index>().prop_map(SeqOp::CloneRx),
        1 => any::<Index>().prop_map(SeqOp::DropRx),
        1 => Just(SeqOp::Len),
        2 => Just(SeqOp::SelRecv),
        2 => Just(SeqOp::SelSend),
        2 => Just(SeqOp::SelBoth),
        1 => us().prop_map(SeqOp::SelBothTimeout),
    ]
}

/// A channel capacity: rendezvous, small buffers, unbounded.
fn capacity() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        Just(Some(0)),
        Just(Some(1)),
        Just(Some(2)),
        Just(Some(3)),
        Just(None)
    ]
}

/// A sequential program: capacity, initial `Sender`s and `Receiver`s, the operations, and
/// whether a plain thread runs it (else a G).
type SeqProgram = (Option<usize>, usize, usize, Vec<SeqOp>, bool);

/// The sequential model of one channel (module doc).
struct Model {
    cap: usize,
    buf: VecDeque<u64>,
    closed: bool,
    senders: usize,
    receivers: usize,
}

/// What a send would do now.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum MSend {
    Ok,
    Full,
    Disconnected,
}

/// What a receive would do now.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum MRecv {
    Value(u64),
    Empty,
    Disconnected,
}

impl Model {
    fn send_now(&self) -> MSend {
        if self.closed || self.receivers == 0 {
            MSend::Disconnected
        } else if self.buf.len() < self.cap {
            MSend::Ok
        } else {
            MSend::Full
        }
    }

    fn recv_now(&self) -> MRecv {
        match self.buf.front() {
            Some(&v) => MRecv::Value(v),
            None if self.closed => MRecv::Disconnected,
            None => MRecv::Empty,
        }
    }

    /// Apply a send that the model says completes (`Ok` pushes).
    fn apply_send(&mut self, id: u64) {
        if self.send_now() == MSend::Ok {
            self.buf.push_back(id);
        }
    }

    fn apply_recv(&mut self) {
        self.buf.pop_front();
    }

    /// Handles dropped: the channel goes with the last one, and its buffer with it.
    fn after_drop(&mut self) {
        if self.senders == 0 {
            self.closed = true;
        }
        if self.senders == 0 && self.receivers == 0 {
            self.buf.clear();
        }
    }
}

/// What a send form returned: `Ok`, or a failure with the id of the value handed back.
fn send_result(
    r: Result<(), (MSend, u64)>,
    want: MSend,
    id: u64,
    what: &str,
) -> Result<(), String> {
    match (r, want) {
        (Ok(()), MSend::Ok) => Ok(()),
        (Err((got, back)), w) if got == w => {
            if back == id {
                Ok(())
            } else {
                Err(format!("{what}: handed back {back} instead of {id}"))
            }
        }
        (r, w) => Err(format!("{what}: got {r:?}, model says {w:?}")),
    }
}

/// Run one sequential program; `Err` describes the first divergence from the model.
fn run_seq(prog: &SeqProgram, ledger: &'static Ledger) -> Result<usize, String> {
    let (cap, n_tx, n_rx, ref ops, _) = *prog;
    let (tx, rx) = make::<Tracked>(cap);
    let mut txs = vec![tx; n_tx];
    let mut rxs = vec![rx; n_rx];
    let mut m = Model {
        cap: cap.unwrap_or(usize::MAX),
        buf: VecDeque::new(),
        closed: false,
        senders: n_tx,
        receivers: n_rx,
    };
    let mut executed = 0usize;
    let past = || Instant::now() - Duration::from_millis(1);
    for (step, &op) in ops.iter().enumerate() {
        let what = format!("step {step} ({op:?})");
        let id = step as u64;
        let want_send = m.send_now();
        let want_recv = m.recv_now();
        let tx = txs.first();
        let rx = rxs.first();
        match op {
            SeqOp::Send | SeqOp::TrySend | SeqOp::SendTimeout(_) | SeqOp::SendDeadlinePast
                if tx.is_some() =>
            {
                let tx = tx.unwrap();
                let v = Tracked::new(ledger, id);
                let r = match op {
                    // A blocking send runs only when it completes at once.
                    SeqOp::Send if want_send == MSend::Full => continue,
                    SeqOp::Send => tx
                        .send(v)
                        .map_err(|SendError(v)| (MSend::Disconnected, v.id)),
                    SeqOp::TrySend => tx.try_send(v).map_err(|e| match e {
                        TrySendError::Full(v) => (MSend::Full, v.id),
                        TrySendError::Disconnected(v) => (MSend::Disconnected, v.id),
                    }),
                    _ => {
                        let t = Instant::now();
                        let (r, min) = match op {
                            SeqOp::SendTimeout(us) => {
                                let d = Duration::from_micros(us.into());
                                (tx.send_timeout(v, d), d)
                            }
                            _ => (tx.send_deadline(v, past()), Duration::ZERO),
                        };
                        if matches!(r, Err(SendTimeoutError::Timeout(_))) && t.elapsed() < min {
                            return Err(format!("{what}: timed out early"));
                        }
                        r.map_err(|e| match e {
                            SendTimeoutError::Timeout(v) => (MSend::Full, v.id),
                            SendTimeoutError::Disconnected(v) => (MSend::Disconnected, v.id),
                        })
                    }
                };
                send_result(r, want_send, id, &what)?;
                m.apply_send(id);
            }
            SeqOp::Recv | SeqOp::TryRecv | SeqOp::RecvTimeout(_) | SeqOp::RecvDeadlinePast
                if rx.is_some() =>
            {
                let rx = rx.unwrap();
                let got = match op {
                    SeqOp::Recv if want_recv == MRecv::Empty => continue,
                    SeqOp::Recv => match rx.recv() {
                        Ok(v) => MRecv::Value(v.id),
                        Err(RecvError) => MRecv::Disconnected,
                    },
                    SeqOp::TryRecv => match rx.try_recv() {
                        Ok(v) => MRecv::Value(v.id),
                        Err(TryRecvError::Empty) => MRecv::Empty,
                        Err(TryRecvError::Disconnected) => MRecv::Disconnected,
                    },
                    _ => {
                        let t = Instant::now();
                        let (r, min) = match op {
                            SeqOp::RecvTimeout(us) => {
                                let d = Duration::from_micros(us.into());
                                (rx.recv_timeout(d), d)
                            }
                            _ => (rx.recv_deadline(past()), Duration::ZERO),
                        };
                        if r.as_ref().err() == Some(&RecvTimeoutError::Timeout) && t.elapsed() < min
                        {
                            return Err(format!("{what}: timed out early"));
                        }
                        match r {
                            Ok(v) => MRecv::Value(v.id),
                            Err(RecvTimeoutError::Timeout) => MRecv::Empty,
                            Err(RecvTimeoutError::Disconnected) => MRecv::Disconnected,
                        }
                    }
                };
                if got != want_recv {
                    return Err(format!("{what}: got {got:?}, model says {want_recv:?}"));
                }
                m.apply_recv();
            }
            SeqOp::Close(ix) if !txs.is_empty() => {
                txs[ix.index(txs.len())].close();
                m.closed = true;
            }
            SeqOp::CloneTx(ix) if !txs.is_empty() => {
                let t = txs[ix.index(txs.len())].clone();
                txs.push(t);
                m.senders += 1;
            }
            SeqOp::DropTx(ix) if !txs.is_empty() => {
                txs.swap_remove(ix.index(txs.len()));
                m.senders -= 1;
                m.after_drop();
            }
            SeqOp::CloneRx(ix) if !rxs.is_empty() => {
                let r = rxs[ix.index(rxs.len())].clone();
                rxs.push(r);
                m.receivers += 1;
            }
            SeqOp::DropRx(ix) if !rxs.is_empty() => {
                rxs.swap_remove(ix.index(rxs.len()));
                m.receivers -= 1;
                m.after_drop();
            }
            SeqOp::Len => {
                let n = match (tx, rx) {
                    (Some(t), _) => t.len(),
                    (None, Some(r)) => r.len(),
                    (None, None) => 0,
                };
                if n != m.buf.len() {
                    return Err(format!("{what}: len {n}, model {}", m.buf.len()));
                }
            }
            SeqOp::SelRecv if rx.is_some() => {
                let rx = rx.unwrap();
                let got = select! {
                    recv(rx) -> r => match r {
                        Ok(v) => MRecv::Value(v.id),
                        Err(RecvError) => MRecv::Disconnected,
                    },
                    default => MRecv::Empty,
                };
                if got != want_recv {
                    return Err(format!("{what}: got {got:?}, model says {want_recv:?}"));
                }
                m.apply_recv();
            }
            SeqOp::SelSend if tx.is_some() => {
                let tx = tx.unwrap();
                let r = select! {
                    send(tx, Tracked::new(ledger, id)) -> r => r.map_err(|SendError(v)| (MSend::Disconnected, v.id)),
                    default => Err((MSend::Full, id)),
                };
                send_result(r, want_send, id, &what)?;
                m.apply_send(id);
            }
            SeqOp::SelBoth | SeqOp::SelBothTimeout(_) if tx.is_some() && rx.is_some() => {
                let (tx, rx) = (tx.unwrap(), rx.unwrap());
                /// Which arm completed, and how.
                #[derive(Debug)]
                enum Sel {
                    Sent(Result<(), u64>),
                    Got(MRecv),
                    Default,
                }
                let to_got = |r: Result<Tracked, RecvError>| match r {
                    Ok(v) => Sel::Got(MRecv::Value(v.id)),
                    Err(RecvError) => Sel::Got(MRecv::Disconnected),
                };
                let t = Instant::now();
                let (sel, min) = match op {
                    SeqOp::SelBothTimeout(us) => {
                        let d = Duration::from_micros(us.into());
                        let s = select! {
                            send(tx, Tracked::new(ledger, id)) -> r => Sel::Sent(r.map_err(|SendError(v)| v.id)),
                            recv(rx) -> r => to_got(r),
                            default(d) => Sel::Default,
                        };
                        (s, d)
                    }
                    _ => {
                        let s = select! {
                            send(tx, Tracked::new(ledger, id)) -> r => Sel::Sent(r.map_err(|SendError(v)| v.id)),
                            recv(rx) -> r => to_got(r),
                            default => Sel::Default,
                        };
                        (s, Duration::ZERO)
                    }
                };
                let send_ready = want_send != MSend::Full;
                let recv_ready = want_recv != MRecv::Empty;
                match sel {
                    Sel::Sent(r) if send_ready => {
                        let r = r.map_err(|back| (MSend::Disconnected, back));
                        send_result(r, want_send, id, &what)?;
                        m.apply_send(id);
                    }
                    Sel::Got(g) if recv_ready => {
                        if g != want_recv {
                            return Err(format!("{what}: got {g:?}, model says {want_recv:?}"));
                        }
                        m.apply_recv();
                    }
                    Sel::Default if !send_ready && !recv_ready => {
                        if t.elapsed() < min {
                            return Err(format!("{what}: timed out early"));
                        }
                    }
                    s => {
                        return Err(format!(
                            "{what}: chose {s:?}; model: send {want_send:?}, recv {want_recv:?}"
                        ))
                    }
                }
            }
            _ => continue, // the handle it needs is gone: skipped
        }
        executed += 1;
        // Nothing holds a value but the channel.
        if ledger.live() != m.buf.len() {
            return Err(format!(
                "{what}: {} values alive, model buffers {}",
                ledger.live(),
                m.buf.len()
            ));
        }
    }
    drop((txs, rxs));
    if ledger.live() != 0 {
        return Err(format!(
            "{} values alive after the channel went",
            ledger.live()
        ));
    }
    Ok(executed)
}

/// The sequential proptest (module doc): a program of up to 60 operations, run by a G or by a
/// plain thread, compared step by step with the model.
pub fn ops_match_sequential_model() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_time: 20_000,
        ..Config::default()
    });
    let strategy = (
        capacity(),
        1..=3usize,
        1..=3usize,
        vec(seq_op(), 1..60),
        any::<bool>(),
    );
    let stats = std::sync::Mutex::new((0usize, 0usize, 0usize));
    let result = runner.run(&strategy, |prog| {
        let ledger = Ledger::leak();
        let on_thread = prog.4;
        let p = prog.clone();
        let r = if on_thread {
            thread::spawn(move || run_seq(&p, ledger))
                .join()
                .map_err(|_| TestCaseError::fail("the program panicked"))?
        } else {
            weft::run(move || run_seq(&p, ledger))
        };
        let executed = r.map_err(TestCaseError::fail)?;
        let mut s = stats.lock().unwrap();
        s.0 += 1;
        s.1 += prog.3.len();
        s.2 += executed;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (n, ops, executed) = *stats.lock().unwrap();
    note(format_args!(
        "ops_match_sequential_model: {n} runs, {executed} of {ops} operations executed (the \
         rest needed a handle already dropped)"
    ));
}

// ---------------------------------------------------------------------------------------------
// Proptest 2: several Gs, checked against invariants
// ---------------------------------------------------------------------------------------------

/// One operation of a concurrent program (durations in microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum COp {
    Send,
    TrySend,
    SendTimeout(u16),
    Recv,
    TryRecv,
    RecvTimeout(u16),
    Close,
    DropTx,
    DropRx,
    /// `send` and `recv` arms on the channel, blocking.
    SelBoth,
    /// `recv` arm + `default`.
    SelRecvDefault,
    /// `send` arm + `default(timeout)`.
    SelSendTimeout(u16),
    Len,
    Yield,
}

fn c_op() -> impl Strategy<Value = COp> {
    let us = || 0..3_000u16;
    prop_oneof![
        6 => Just(COp::Send),
        3 => Just(COp::TrySend),
        2 => us().prop_map(COp::SendTimeout),
        6 => Just(COp::Recv),
        3 => Just(COp::TryRecv),
        2 => us().prop_map(COp::RecvTimeout),
        1 => Just(COp::Close),
        1 => Just(COp::DropTx),
        1 => Just(COp::DropRx),
        3 => Just(COp::SelBoth),
        2 => Just(COp::SelRecvDefault),
        2 => us().prop_map(COp::SelSendTimeout),
        1 => Just(COp::Len),
        2 => Just(COp::Yield),
    ]
}

/// How a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    Full,
    Timeout,
    Disconnected,
}

/// What one operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Sent(u64),
    SendFailed(u64, Fail),
    Got(u64),
    Disconnected,
    /// `try_recv` found nothing, or a select's `default` ran.
    Empty,
    Expired,
    Closed,
    Len(usize),
    /// Drops, yields, and operations whose handle was dropped.
    Other,
    /// A failed send handed back a value that was not the one offered.
    Bad(String),
}

/// One operation's record: who, what, when (global stamps), outcome.
#[derive(Debug, Clone)]
struct Rec {
    who: usize,
    op: COp,
    start: u64,
    end: u64,
    out: Out,
}

/// What the Gs of one concurrent case share.
struct CShared {
    gate: Gate,
    clock: AtomicU64,
    progress: AtomicUsize,
}

impl CShared {
    fn stamp(&self) -> u64 {
        self.clock.fetch_add(1, SeqCst)
    }
}

/// A failed send's outcome, checking the value handed back is the one offered.
fn failed(id: u64, back: &Tracked, why: Fail) -> Out {
    if back.id == id {
        Out::SendFailed(id, why)
    } else {
        Out::Bad(format!("send of {id:#x} handed back {:#x}", back.id))
    }
}

/// Run worker `who`'s program.
fn run_worker(
    who: usize,
    ops: &[COp],
    mut tx: Option<Sender<Tracked>>,
    mut rx: Option<Receiver<Tracked>>,
    sh: &CShared,
    ledger: &'static Ledger,
) -> Vec<Rec> {
    sh.gate.wait();
    let mut seq = 0u64;
    let mut recs = Vec::with_capacity(ops.len());
    let us = |n: u16| Duration::from_micros(n.into());
    for &op in ops {
        let id = pid(who, seq);
        let start = sh.stamp();
        let out = match (op, &tx, &rx) {
            (COp::Send, Some(tx), _) => match tx.send(Tracked::new(ledger, id)) {
                Ok(()) => Out::Sent(id),
                Err(SendError(v)) => failed(id, &v, Fail::Disconnected),
            },
            (COp::TrySend, Some(tx), _) => match tx.try_send(Tracked::new(ledger, id)) {
                Ok(()) => Out::Sent(id),
                Err(TrySendError::Full(v)) => failed(id, &v, Fail::Full),
                Err(TrySendError::Disconnected(v)) => failed(id, &v, Fail::Disconnected),
            },
            (COp::SendTimeout(d), Some(tx), _) => {
                match tx.send_timeout(Tracked::new(ledger, id), us(d)) {
                    Ok(()) => Out::Sent(id),
                    Err(SendTimeoutError::Timeout(v)) => failed(id, &v, Fail::Timeout),
                    Err(SendTimeoutError::Disconnected(v)) => failed(id, &v, Fail::Disconnected),
                }
            }
            (COp::Recv, _, Some(rx)) => match rx.recv() {
                Ok(v) => Out::Got(v.id),
                Err(RecvError) => Out::Disconnected,
            },
            (COp::TryRecv, _, Some(rx)) => match rx.try_recv() {
                Ok(v) => Out::Got(v.id),
                Err(TryRecvError::Empty) => Out::Empty,
                Err(TryRecvError::Disconnected) => Out::Disconnected,
            },
            (COp::RecvTimeout(d), _, Some(rx)) => match rx.recv_timeout(us(d)) {
                Ok(v) => Out::Got(v.id),
                Err(RecvTimeoutError::Timeout) => Out::Expired,
                Err(RecvTimeoutError::Disconnected) => Out::Disconnected,
            },
            (COp::Close, Some(tx), _) => {
                tx.close();
                Out::Closed
            }
            (COp::DropTx, _, _) => {
                tx = None;
                Out::Other
            }
            (COp::DropRx, _, _) => {
                rx = None;
                Out::Other
            }
            (COp::SelBoth, Some(tx), Some(rx)) => select! {
                send(tx, Tracked::new(ledger, id)) -> r => match r {
                    Ok(()) => Out::Sent(id),
                    Err(SendError(v)) => failed(id, &v, Fail::Disconnected),
                },
                recv(rx) -> r => match r {
                    Ok(v) => Out::Got(v.id),
                    Err(RecvError) => Out::Disconnected,
                },
            },
            (COp::SelRecvDefault, _, Some(rx)) => select! {
                recv(rx) -> r => match r {
                    Ok(v) => Out::Got(v.id),
                    Err(RecvError) => Out::Disconnected,
                },
                default => Out::Empty,
            },
            (COp::SelSendTimeout(d), Some(tx), _) => select! {
                send(tx, Tracked::new(ledger, id)) -> r => match r {
                    Ok(()) => Out::Sent(id),
                    Err(SendError(v)) => failed(id, &v, Fail::Disconnected),
                },
                default(us(d)) => Out::SendFailed(id, Fail::Timeout),
            },
            (COp::Len, _, _) => match (&tx, &rx) {
                (Some(t), _) => Out::Len(t.len()),
                (None, Some(r)) => Out::Len(r.len()),
                (None, None) => Out::Other,
            },
            (COp::Yield, _, _) => {
                weft::yield_now();
                Out::Other
            }
            _ => Out::Other, // the handle it needs was dropped
        };
        let end = sh.stamp();
        if matches!(
            op,
            COp::Send | COp::TrySend | COp::SendTimeout(_) | COp::SelBoth | COp::SelSendTimeout(_)
        ) && tx.is_some()
        {
            seq += 1;
        }
        sh.progress.fetch_add(1, SeqCst);
        recs.push(Rec {
            who,
            op,
            start,
            end,
            out,
        });
    }
    recs
}

/// A concurrent program: the channel's capacity, whether the driver keeps a receiver and drains
/// at the end, and one op list per worker G.
type Program = (Option<usize>, bool, Vec<Vec<COp>>);

/// Run one concurrent program; return every record (the driver's, then the workers', then the
/// driver's drain) and whether the stall rescue closed the channel.
fn run_concurrent(prog: &Program, ledger: &'static Ledger) -> (Vec<Rec>, bool) {
    let (cap, keep_rx, workers) = prog.clone();
    weft::run(move || {
        let (tx, rx) = make::<Tracked>(cap);
        let sh = Arc::new(CShared {
            gate: Gate::new(),
            clock: AtomicU64::new(0),
            progress: AtomicUsize::new(0),
        });
        let n = workers.len();
        let hs: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(who, ops)| {
                let (tx, rx, sh) = (tx.clone(), rx.clone(), Arc::clone(&sh));
                go!(move || run_worker(who, &ops, Some(tx), Some(rx), &sh, ledger))
            })
            .collect();
        let drain = if keep_rx { Some(rx) } else { None };
        assert!(
            wait_until(ROUNDS, || sh.gate.registered() == n),
            "workers never reached the gate"
        );
        sh.gate.open();
        // Wait for the programs; close the channel if they stall (module doc).
        let driver = n;
        let mut recs = Vec::new();
        let mut rescued = false;
        let mut last = usize::MAX;
        let mut since = Instant::now();
        while !hs.iter().all(|h| h.is_finished()) {
            let p = sh.progress.load(SeqCst);
            if p != last {
                last = p;
                since = Instant::now();
            } else if !rescued && since.elapsed() > STALL {
                let start = sh.stamp();
                tx.close();
                let end = sh.stamp();
                recs.push(Rec {
                    who: driver,
                    op: COp::Close,
                    start,
                    end,
                    out: Out::Closed,
                });
                rescued = true;
            }
            weft::yield_now();
        }
        for h in hs {
            recs.extend(h.join().expect("a worker panicked"));
        }
        drop(tx); // with the workers' gone, this closes the channel (if not yet)
        if let Some(rx) = drain {
            loop {
                let start = sh.stamp();
                let r = rx.recv();
                let end = sh.stamp();
                let out = match r {
                    Ok(v) => Out::Got(v.id),
                    Err(RecvError) => Out::Disconnected,
                };
                let done = out == Out::Disconnected;
                recs.push(Rec {
                    who: driver,
                    op: COp::Recv,
                    start,
                    end,
                    out,
                });
                if done {
                    break;
                }
            }
        }
        (recs, rescued)
    })
}

/// Check one run's records against invariants 1–8 of the module doc.
fn check_concurrent(prog: &Program, recs: &[Rec], ledger: &'static Ledger) -> Result<(), String> {
    let (cap, keep_rx) = (prog.0, prog.1);
    let fail = |msg: String| Err(msg);
    for r in recs {
        if let Out::Bad(m) = &r.out {
            return fail(format!("{m} ({r:?})"));
        }
    }
    // 1. Received values were sent Ok, once; failed sends never received.
    let mut sent: HashMap<u64, &Rec> = HashMap::new();
    let mut failed: HashSet<u64> = HashSet::new();
    let mut attempts = 0usize;
    for r in recs {
        match r.out {
            Out::Sent(id) => {
                attempts += 1;
                sent.insert(id, r);
            }
            Out::SendFailed(id, why) => {
                attempts += 1;
                failed.insert(id);
                if cap.is_none() && why != Fail::Disconnected {
                    return fail(format!("7: unbounded channel, send failed {why:?}: {r:?}"));
                }
            }
            _ => {}
        }
    }
    let mut received: HashMap<u64, &Rec> = HashMap::new();
    for r in recs {
        if let Out::Got(id) = r.out {
            if failed.contains(&id) {
                return fail(format!("1: {id:#x} received though its send failed: {r:?}"));
            }
            let Some(s) = sent.get(&id) else {
                return fail(format!("1: {id:#x} received but never sent: {r:?}"));
            };
            if let Some(prev) = received.insert(id, r) {
                return fail(format!("1: {id:#x} received twice: {prev:?} and {r:?}"));
            }
            // 4. Causality; rendezvous overlap.
            if r.end < s.start {
                return fail(format!("4: {id:#x} received before its send started"));
            }
            if cap == Some(0) && !(s.end > r.start && r.end > s.start) {
                return fail(format!(
                    "4: rendezvous send and receive of {id:#x} do not overlap: {s:?} {r:?}"
                ));
            }
        }
    }
    // 2. Nothing lost.
    let left = sent.len() - received.len();
    if keep_rx && left != 0 {
        return fail(format!(
            "2: {left} values sent Ok never received, though a receiver drained to the end"
        ));
    }
    match cap {
        Some(c) if left > c => {
            return fail(format!(
                "2: {left} values left in a channel of capacity {c}"
            ));
        }
        _ => {}
    }
    // 3. Per-producer FIFO per receiver.
    let mut by_who: HashMap<usize, Vec<&Rec>> = HashMap::new();
    for r in recs {
        by_who.entry(r.who).or_default().push(r);
    }
    for (who, rs) in &by_who {
        let mut last: HashMap<usize, u64> = HashMap::new();
        for r in rs {
            if let Out::Got(id) = r.out {
                let (p, s) = split(id);
                if let Some(&prev) = last.get(&p) {
                    if s <= prev {
                        return fail(format!(
                            "3: receiver {who} got producer {p}'s #{s} after its #{prev}"
                        ));
                    }
                }
                last.insert(p, s);
            }
        }
    }
    // 5. Nothing after an observed Disconnected.
    let disc = recs
        .iter()
        .filter(|r| r.out == Out::Disconnected)
        .map(|r| r.end)
        .min();
    if let Some(d) = disc {
        for r in recs.iter().filter(|r| r.start > d) {
            let ok = match (&r.out, r.op) {
                (Out::Disconnected, _) => true,
                (Out::SendFailed(_, Fail::Disconnected), _) => true,
                (Out::Len(n), _) => *n == 0,
                (Out::Other | Out::Closed, _) => true,
                _ => false,
            };
            if !ok {
                return fail(format!(
                    "5: after Disconnected was observed (stamp {d}), {r:?}"
                ));
            }
        }
    }
    // 6. No send succeeds, fills or times out after a close returned.
    let closed = recs
        .iter()
        .filter(|r| r.out == Out::Closed)
        .map(|r| r.end)
        .min();
    if let Some(c) = closed {
        for r in recs.iter().filter(|r| r.start > c) {
            let bad = match r.out {
                Out::Sent(_) => true,
                Out::SendFailed(_, why) => why != Fail::Disconnected,
                _ => false,
            };
            if bad {
                return fail(format!("6: after close (stamp {c}): {r:?}"));
            }
            // A recv-only select with default may see Empty only if not closed-and-empty,
            // which 5 covers; nothing more to check here.
        }
    }
    // 7. len within capacity.
    for r in recs {
        if let (Out::Len(n), Some(c)) = (&r.out, cap) {
            if *n > c {
                return fail(format!("7: len {n} in a channel of capacity {c}"));
            }
        }
    }
    // 8. Every value created was dropped once (a select whose recv arm won created a value
    // for its send arm too: created >= attempts).
    if ledger.created() < attempts {
        return fail(format!(
            "8: {} values created, {attempts} send outcomes recorded",
            ledger.created()
        ));
    }
    if ledger.dropped() != ledger.created() {
        return fail(format!(
            "8: {} created, {} dropped",
            ledger.created(),
            ledger.dropped()
        ));
    }
    Ok(())
}

/// The concurrent proptest (module doc).
pub fn concurrent_ops_keep_invariants() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_time: 20_000,
        ..Config::default()
    });
    let strategy = (capacity(), any::<bool>(), vec(vec(c_op(), 1..20), 2..=4));
    let stats = std::sync::Mutex::new((0usize, 0usize, 0usize));
    let result = runner.run(&strategy, |prog| {
        let ledger = Ledger::leak();
        let (recs, rescued) = run_concurrent(&prog, ledger);
        {
            let mut s = stats.lock().unwrap();
            s.0 += 1;
            s.1 += rescued as usize;
            s.2 += recs.len();
        }
        check_concurrent(&prog, &recs, ledger).map_err(|e| {
            let mut log = String::new();
            let mut sorted = recs.clone();
            sorted.sort_by_key(|r| r.start);
            for r in sorted {
                log.push_str(&format!("\n  {r:?}"));
            }
            TestCaseError::fail(format!("{e}\nrecords by start:{log}"))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (n, rescued, ops) = *stats.lock().unwrap();
    note(format_args!(
        "concurrent_ops_keep_invariants ({} P): {n} runs, {ops} operations, {rescued} needed \
         the stall rescue",
        weft::max_procs()
    ));
}
