//! sysmon on 2 Ps: a proptest of random mixes of short [`weft::blocking`] calls, channel
//! ping-pong and spawns, run by several Gs at once.
//!
//! Short calls (0–200 µs) are the racy case of the hand-off protocol: sysmon's retake (a CAS of
//! the P's status from `P_SYSCALL`) lands just before, just after or not at all against the
//! returning M's own CAS, and a G whose P was taken comes back on another P or through the global
//! queue. Each generated case runs a few Gs, each executing a random program of operations whose
//! results are checked against a model (the value every operation must produce), then checks
//! that no G was lost: every G joined, and the live G count returns to its value before the case.
//!
//! And one timing test, with a generous bound: every P hogged at once, the Gs behind the hogs
//! (a 10 ms ticker) keep being served on spare Ps.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use common::{note, proptest_cases, run_test_limit, wait_until, Mode, TEST_TIMEOUT};
use weft::chan;
use weft::runtime::stats;

/// Ps of this binary.
const PROCS: usize = 2;

/// Generated cases per run unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 200;

/// Rounds of `yield_now` (on the test's plain thread) for the live count to settle after the
/// joins: `join` returns a moment before the finished G is counted out.
const SETTLE_ROUNDS: u64 = 10_000_000;

/// One step of a G's program.
#[derive(Clone, Debug)]
enum Op {
    /// `blocking(|| { thread::sleep(us); ... })`; yields `us * 3 + 1`, checked.
    Blocking(u64),
    /// Ping-pong with a fresh partner G over two rendezvous channels, `n` rounds: the partner
    /// answers `x` with `x + 1`; yields the sum of the answers.
    PingPong(u32),
    /// Spawn `n` children, each making a blocking call of `us` and returning `i * 10`; join them
    /// and yield the sum.
    Spawn(u32, u64),
    /// A receive *inside* a blocking call from a G that sends `v`: the thread blocks, the P is
    /// handed off, and the sender runs; yields `v`.
    RecvInBlocking(u64),
    /// `weft::yield_now()`; yields 0.
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..=200).prop_map(Op::Blocking),
        3 => (1u32..=20).prop_map(Op::PingPong),
        2 => (0u32..=6, 0u64..=200).prop_map(|(n, us)| Op::Spawn(n, us)),
        2 => (0u64..1_000_000).prop_map(Op::RecvInBlocking),
        1 => Just(Op::Yield),
    ]
}

/// What `op` must yield (the model).
fn expected(op: &Op) -> u64 {
    match *op {
        Op::Blocking(us) => us * 3 + 1,
        // Answers 1..=n.
        Op::PingPong(n) => (1..=n as u64).sum(),
        Op::Spawn(n, _) => (0..n as u64).map(|i| i * 10).sum(),
        Op::RecvInBlocking(v) => v,
        Op::Yield => 0,
    }
}

/// Run `op` in the calling G and return what it yields.
fn exec(op: &Op) -> u64 {
    match *op {
        Op::Blocking(us) => weft::blocking(|| {
            assert!(weft::current_id().is_none(), "current_id inside blocking");
            std::thread::sleep(Duration::from_micros(us));
            us * 3 + 1
        }),
        Op::PingPong(n) => {
            let (to_tx, to_rx) = chan::bounded::<u64>(0);
            let (back_tx, back_rx) = chan::bounded::<u64>(0);
            let partner = weft::spawn(move || {
                let mut answered = 0u32;
                for x in to_rx.iter() {
                    back_tx.send(x + 1).expect("answer");
                    answered += 1;
                }
                answered
            });
            let mut sum = 0;
            for i in 0..n as u64 {
                to_tx.send(i).expect("ping");
                let a = back_rx.recv().expect("pong");
                assert_eq!(a, i + 1, "wrong answer");
                sum += a;
            }
            drop(to_tx);
            assert_eq!(partner.join().expect("partner"), n);
            sum
        }
        Op::Spawn(n, us) => {
            let hs: Vec<_> = (0..n as u64)
                .map(|i| {
                    weft::spawn(move || {
                        weft::blocking(|| std::thread::sleep(Duration::from_micros(us)));
                        i * 10
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("child")).sum()
        }
        Op::RecvInBlocking(v) => {
            let (tx, rx) = chan::bounded::<u64>(0);
            let sender = weft::spawn(move || tx.send(v).expect("send"));
            let got = weft::blocking(|| rx.recv().expect("recv inside blocking"));
            sender.join().expect("sender");
            got
        }
        Op::Yield => {
            weft::yield_now();
            0
        }
    }
}

/// Several Gs at once, each running its program; every op's result checked; no G lost.
#[test]
fn blocking_chan_spawn_mix() {
    let cases = proptest_cases(CASES);
    // A case takes a few ms; allow ~0.5 s each in the worst case, on top of the usual limit.
    let limit = TEST_TIMEOUT + Duration::from_millis(500) * cases;
    run_test_limit(
        PROCS,
        Mode::Exclusive,
        "blocking_chan_spawn_mix",
        limit,
        || {
            let mut runner = TestRunner::new(Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            });
            let before = stats();
            let programs = vec(vec(op(), 1..12), 1..8);
            runner
                .run(&programs, |progs| {
                    let base = stats().goroutines;
                    let hs: Vec<_> = progs
                        .iter()
                        .cloned()
                        .map(|prog| {
                            weft::spawn(move || prog.iter().map(exec).collect::<Vec<u64>>())
                        })
                        .collect();
                    for (h, prog) in hs.into_iter().zip(&progs) {
                        let got = h
                            .join()
                            .map_err(|p| TestCaseError::fail(format!("a G panicked: {p:?}")))?;
                        let want: Vec<u64> = prog.iter().map(expected).collect();
                        prop_assert_eq!(got, want, "program {:?}", prog);
                    }
                    let settled = wait_until(SETTLE_ROUNDS, || stats().goroutines == base);
                    prop_assert!(
                        settled,
                        "live Gs {} after every join, {} before the case",
                        stats().goroutines,
                        base
                    );
                    Ok(())
                })
                .unwrap();
            let after = stats();
            note(format_args!(
                "{cases} cases: blocking calls {}, hand-offs {}, requeued {}, spawned {}",
                after.blocking_calls - before.blocking_calls,
                after.blocking_handoffs - before.blocking_handoffs,
                after.blocking_requeued - before.blocking_requeued,
                after.spawned - before.spawned
            ));
            // The mix made blocking calls, and the calls were not all trivially fast: sysmon took a
            // P from at least one of them.
            assert!(after.blocking_calls > before.blocking_calls);
            assert!(after.blocking_handoffs > before.blocking_handoffs);
            assert_eq!(after.in_blocking, 0, "a G still counted inside blocking");
            assert_eq!(
                after.threads_in_blocking, 0,
                "an M still counted inside blocking"
            );
        },
    );
}

/// Every P hogged at once: two Gs spin 300 ms each on the 2 Ps while a 10 ms ticker runs. Each
/// hog gets a spare lent (at most `max_procs` spares), so the ticker keeps ticking: its largest
/// gap over the time both spin stays under 100 ms (generous: ~15 ms measured).
#[test]
fn every_p_hogged_ticker_served() {
    run_test_limit(
        PROCS,
        Mode::Exclusive,
        "every_p_hogged_ticker_served",
        TEST_TIMEOUT,
        || {
            let before = stats();
            let (ticks, spans) = weft::run(|| {
                let stop = Arc::new(AtomicBool::new(false));
                let (ready_tx, ready_rx) = chan::bounded::<()>(1);
                let s = stop.clone();
                let ticker = weft::spawn(move || {
                    let mut ticks = vec![Instant::now()];
                    while !s.load(SeqCst) {
                        weft::sleep(Duration::from_millis(10));
                        ticks.push(Instant::now());
                        if ticks.len() == 3 {
                            ready_tx.send(()).expect("ready");
                        }
                    }
                    ticks
                });
                ready_rx.recv().expect("ticker warmed up");
                let hogs: Vec<_> = (0..PROCS)
                    .map(|_| {
                        weft::spawn(|| {
                            let t0 = Instant::now();
                            while t0.elapsed() < Duration::from_millis(300) {
                                std::hint::spin_loop();
                            }
                            (t0, Instant::now())
                        })
                    })
                    .collect();
                let spans: Vec<_> = hogs.into_iter().map(|h| h.join().expect("hog")).collect();
                stop.store(true, SeqCst);
                (ticker.join().expect("ticker"), spans)
            });
            let after = stats();
            // The time every hog was spinning at once.
            let from = spans.iter().map(|s| s.0).max().expect("hogs");
            let to = spans.iter().map(|s| s.1).min().expect("hogs");
            let gap = ticks
                .windows(2)
                .filter(|w| w[1] >= from && w[0] <= to)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default();
            note(format_args!(
                "{PROCS} hogs: overlap {:?}, max tick gap {gap:?}, hogs {}, spares lent {}",
                to.saturating_duration_since(from),
                after.hogs - before.hogs,
                after.spares_lent - before.spares_lent
            ));
            // 2 Ps, 2 runnable hogs: they run at once (else the window below is empty).
            assert!(
                to > from + Duration::from_millis(200),
                "the hogs did not spin at the same time: {spans:?}"
            );
            let inside = ticks.iter().filter(|t| **t >= from && **t <= to).count();
            assert!(inside >= 5, "only {inside} ticks while every P was hogged");
            assert!(
                gap < Duration::from_millis(100),
                "ticker starved while every P was hogged: max gap {gap:?}"
            );
            assert!(
                after.hogs >= before.hogs + PROCS as u64,
                "each P's hog counted: {} -> {}",
                before.hogs,
                after.hogs
            );
            assert!(after.spares_lent > before.spares_lent, "no spare lent");
        },
    );
}
