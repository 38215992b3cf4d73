//! sysmon on one P: the hand-off of a P stuck in [`weft::blocking`], spare Ps lent to the Gs
//! queued behind a CPU hog, and `blocking`'s semantics (panics, `current_id`, weft operations
//! inside the call, nesting, plain threads).
//!
//! One P is the case where sysmon matters most: without the hand-off (or the spare P) every
//! other G of the process waits for the blocked (or hogging) G. The timing tests measure what
//! the other Gs saw — the largest gap between the ticks of a 10 ms ticker, echo round trips —
//! and assert generous bounds (3–6 times what they measure on an idle machine); the numbers are
//! printed with `WEFT_TEST_VERBOSE=1`. The sleeps and spins here are the *workload* (a call that
//! blocks its thread, a G that computes), never synchronisation: Gs wait for each other through
//! channels and joins. Every test runs alone ([`Mode::Exclusive`]): a gap measured while another
//! test's Gs run would mean nothing.

mod common;

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{note, payload_str, run_test, Mode, EXPECTED_PANIC};
use weft::chan;
use weft::net::{TcpListener, TcpStream};
use weft::runtime::stats;

/// The ticker's period.
const TICK: Duration = Duration::from_millis(10);

/// A G that ticks every [`TICK`] (`weft::sleep`) until `stop` is set, recording when each tick
/// returned. After `warm` ticks it sends one `()` on `ready`.
fn ticker(
    stop: Arc<AtomicBool>,
    ready: chan::Sender<()>,
    warm: usize,
) -> weft::JoinHandle<Vec<Instant>> {
    weft::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            let mut ticks = vec![Instant::now()];
            while !stop.load(SeqCst) {
                weft::sleep(TICK);
                ticks.push(Instant::now());
                if ticks.len() == warm + 1 {
                    ready.send(()).expect("ready channel");
                }
            }
            ticks
        })
        .expect("spawn ticker")
}

/// The largest gap between consecutive ticks among the pairs that overlap `[from, to]`, and how
/// many ticks fell inside it.
fn max_gap_in(ticks: &[Instant], from: Instant, to: Instant) -> (Duration, usize) {
    let gap = ticks
        .windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::ZERO);
    let inside = ticks.iter().filter(|t| **t >= from && **t <= to).count();
    (gap, inside)
}

// ---------------------------------------------------------------------------------------------
// (a) a blocking call hands its P off
// ---------------------------------------------------------------------------------------------

/// A G blocks its thread for 200 ms inside `blocking` while a 10 ms ticker runs on the same
/// (only) P: sysmon hands the P to another M, so the ticker keeps ticking (largest gap well
/// under 60 ms; without the hand-off it would be ~200 ms), and the hand-off is counted.
#[test]
fn blocking_call_hands_off_the_p() {
    run_test(1, Mode::Exclusive, "blocking_call_hands_off_the_p", || {
        let before = stats();
        let (window, ticks) = weft::run(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let (ready_tx, ready_rx) = chan::bounded::<()>(1);
            let tick = ticker(stop.clone(), ready_tx, 2);
            ready_rx.recv().expect("ticker warmed up");
            let blocker = weft::Builder::new()
                .name("blocker".into())
                .spawn(|| {
                    let t0 = Instant::now();
                    let v = weft::blocking(|| {
                        std::thread::sleep(Duration::from_millis(200));
                        7u32
                    });
                    assert_eq!(v, 7);
                    (t0, Instant::now())
                })
                .expect("spawn blocker");
            let window = blocker.join().expect("blocker");
            stop.store(true, SeqCst);
            (window, tick.join().expect("ticker"))
        });
        let after = stats();
        let (from, to) = window;
        let (gap, inside) = max_gap_in(&ticks, from, to);
        note(format_args!(
            "blocking 200 ms on 1 P: {} ticks inside, max tick gap {gap:?}, hand-offs {} -> {}",
            inside, before.blocking_handoffs, after.blocking_handoffs
        ));
        assert!(to - from >= Duration::from_millis(200), "{:?}", to - from);
        assert!(
            gap < Duration::from_millis(60),
            "ticker starved during the blocking call: max gap {gap:?} ({inside} ticks inside \
             the 200 ms call)"
        );
        assert!(inside >= 5, "only {inside} ticks during the 200 ms call");
        assert!(
            after.blocking_handoffs > before.blocking_handoffs,
            "no hand-off counted: {} -> {}",
            before.blocking_handoffs,
            after.blocking_handoffs
        );
        assert!(after.blocking_calls > before.blocking_calls);
    });
}

// ---------------------------------------------------------------------------------------------
// (b) a CPU hog gets a spare P lent to the Gs behind it
// ---------------------------------------------------------------------------------------------

/// Bytes per echo message.
const MSG: usize = 16;

/// One echo round trip: when it started and how long it took.
type RoundTrip = (Instant, Duration);

/// A G computes for 500 ms without ever switching out, on the only P. A 10 ms ticker and an
/// echo connection (a server G, a client G sending every ~10 ms) keep being served on a spare P
/// that sysmon lends: the ticker's largest gap and every echo round trip stay under 100 ms, and
/// the hog and the spare are counted.
#[test]
fn cpu_hog_gets_a_spare_p() {
    run_test(1, Mode::Exclusive, "cpu_hog_gets_a_spare_p", || {
        let before = stats();
        let (window, ticks, trips) = weft::run(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let (ready_tx, ready_rx) = chan::bounded::<()>(2);
            let tick = ticker(stop.clone(), ready_tx.clone(), 2);

            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let server = weft::Builder::new()
                .name("echo-server".into())
                .spawn(move || -> std::io::Result<u64> {
                    let (mut conn, _) = listener.accept()?;
                    let mut buf = [0u8; 256];
                    let mut echoed = 0u64;
                    loop {
                        let n = conn.read(&mut buf)?;
                        if n == 0 {
                            return Ok(echoed);
                        }
                        conn.write_all(&buf[..n])?;
                        echoed += n as u64;
                    }
                })
                .expect("spawn server");
            let client_stop = stop.clone();
            let client = weft::Builder::new()
                .name("echo-client".into())
                .spawn(move || -> std::io::Result<Vec<RoundTrip>> {
                    let mut c = TcpStream::connect(addr)?;
                    c.set_nodelay(true)?;
                    let mut trips = Vec::new();
                    let mut seq = 0u8;
                    while !client_stop.load(SeqCst) {
                        let msg = [seq; MSG];
                        let t0 = Instant::now();
                        c.write_all(&msg)?;
                        let mut back = [0u8; MSG];
                        c.read_exact(&mut back)?;
                        trips.push((t0, t0.elapsed()));
                        assert_eq!(back, msg, "echo returned other bytes");
                        seq = seq.wrapping_add(1);
                        if trips.len() == 2 {
                            ready_tx.send(()).expect("ready channel");
                        }
                        weft::sleep(TICK);
                    }
                    Ok(trips)
                })
                .expect("spawn client");
            ready_rx.recv().expect("warm-up");
            ready_rx.recv().expect("warm-up");

            let hog = weft::Builder::new()
                .name("hog".into())
                .spawn(|| {
                    let t0 = Instant::now();
                    let mut spins = 0u64;
                    while t0.elapsed() < Duration::from_millis(500) {
                        std::hint::spin_loop();
                        spins += 1;
                    }
                    std::hint::black_box(spins);
                    (t0, Instant::now())
                })
                .expect("spawn hog");
            let window = hog.join().expect("hog");
            stop.store(true, SeqCst);
            let ticks = tick.join().expect("ticker");
            let trips = client.join().expect("client").expect("client i/o");
            let echoed = server.join().expect("server").expect("server i/o");
            assert_eq!(echoed, (trips.len() * MSG) as u64);
            (window, ticks, trips)
        });
        let after = stats();
        let (from, to) = window;
        let (gap, inside) = max_gap_in(&ticks, from, to);
        // Round trips that overlap the spin.
        let during: Vec<Duration> = trips
            .iter()
            .filter(|(t0, d)| *t0 + *d >= from && *t0 <= to)
            .map(|(_, d)| *d)
            .collect();
        let worst = during.iter().max().copied().unwrap_or_default();
        note(format_args!(
            "hog 500 ms on 1 P: {inside} ticks inside, max tick gap {gap:?}; {} round trips \
             during the spin, worst {worst:?}; hogs {} -> {}, spares lent {} -> {}",
            during.len(),
            before.hogs,
            after.hogs,
            before.spares_lent,
            after.spares_lent
        ));
        assert!(
            gap < Duration::from_millis(100),
            "ticker starved behind the hog: max gap {gap:?} ({inside} ticks in 500 ms)"
        );
        assert!(inside >= 5, "only {inside} ticks during the 500 ms spin");
        assert!(
            during.len() >= 5,
            "only {} echo round trips during the 500 ms spin",
            during.len()
        );
        assert!(
            worst < Duration::from_millis(100),
            "an echo round trip took {worst:?} during the spin (all: {during:?})"
        );
        assert!(after.hogs > before.hogs, "no hog counted");
        assert!(after.spares_lent > before.spares_lent, "no spare P lent");
    });
}

/// The spare P lent for a hog serves the hog's queue and timers first, even while a G on the
/// spare yields in a loop. On the only P: a hog spins until two flags are set; a yielder spins
/// (`yield_now`) until then too; one flag is set by a G queued behind the hog, the other by a G
/// whose 1 ms sleep is a timer in the hog's P's heap. The spare steals the yielder first; if it
/// only looked at the hog's queue and timers when its own queue was empty, it would never get to
/// them (a regression found by tests/stress_programs). Bounded: the spinners give up after 5 s,
/// and the test fails naming the flag that was never set.
#[test]
fn spare_p_serves_the_hogs_queue_past_a_yielding_g() {
    run_test(
        1,
        Mode::Exclusive,
        "spare_p_serves_the_hogs_queue_past_a_yielding_g",
        || {
            let before = stats();
            let (queued, timed) = weft::run(|| {
                let queued = Arc::new(AtomicBool::new(false));
                let timed = Arc::new(AtomicBool::new(false));
                let both = {
                    let (q, t) = (queued.clone(), timed.clone());
                    move || q.load(SeqCst) && t.load(SeqCst)
                };
                let limit = Duration::from_secs(5);
                // The hog returns what it saw when it stopped: both flags set, or its time limit.
                let hog = {
                    let (both, q, t) = (both.clone(), queued.clone(), timed.clone());
                    weft::spawn(move || {
                        let t0 = Instant::now();
                        while !both() && t0.elapsed() < limit {
                            std::hint::spin_loop();
                        }
                        (q.load(SeqCst), t.load(SeqCst))
                    })
                };
                let yielder = {
                    let both = both.clone();
                    weft::spawn(move || {
                        let t0 = Instant::now();
                        while !both() && t0.elapsed() < limit {
                            weft::yield_now();
                        }
                    })
                };
                let setter = {
                    let q = queued.clone();
                    weft::spawn(move || q.store(true, SeqCst))
                };
                // Spawned last, so it runs first (runnext): its timer lands in the hog's P's heap.
                let sleeper = {
                    let t = timed.clone();
                    weft::spawn(move || {
                        weft::sleep(Duration::from_millis(1));
                        t.store(true, SeqCst);
                    })
                };
                let seen = hog.join().expect("hog");
                for h in [yielder, setter, sleeper] {
                    h.join().expect("G");
                }
                seen
            });
            let after = stats();
            assert!(
                queued,
                "the G queued behind the hog did not run during its 5 s spin (the spare kept to \
                 its own queue)"
            );
            assert!(
                timed,
                "the sleeper's timer on the hog's P did not fire during its 5 s spin"
            );
            assert!(after.spares_lent > before.spares_lent, "no spare P lent");
        },
    );
}

/// A G that calls `sleep` on a lent spare P leaves its timer in the spare's heap. When the hog
/// switches out and the spare goes back to the pool, that timer must move to a P that runs:
/// here the one P is kept busy by two Gs ping-ponging on rendezvous channels (it always has local
/// work, so it never looks at other Ps' timers), and the ping-pong only stops when the sleeper
/// wakes. Before the fix the sleeper slept forever (found by tests/stress_programs on 1 P under
/// the randomized scheduler). Bounded: the ping-pong gives up after 5 s and the test says so.
#[test]
fn spare_ps_timers_move_when_it_is_returned() {
    run_test(
        1,
        Mode::Exclusive,
        "spare_ps_timers_move_when_it_is_returned",
        || {
            let before = stats();
            let (slept_on_spare, woke_in_time) = weft::run(|| {
                let about_to_sleep = Arc::new(AtomicBool::new(false));
                let woke = Arc::new(AtomicBool::new(false));
                let limit = Duration::from_secs(5);
                let (ping_tx, ping_rx) = chan::bounded::<u32>(0);
                let (pong_tx, pong_rx) = chan::bounded::<u32>(0);
                let sleeper = {
                    let (a, w) = (about_to_sleep.clone(), woke.clone());
                    weft::spawn(move || {
                        a.store(true, SeqCst);
                        weft::sleep(Duration::from_millis(20));
                        w.store(true, SeqCst);
                    })
                };
                // Returns whether the sleeper woke before the limit.
                let pinger = {
                    let w = woke.clone();
                    weft::spawn(move || {
                        let t0 = Instant::now();
                        while !w.load(SeqCst) && t0.elapsed() < limit {
                            ping_tx.send(1).expect("ponger gone");
                            pong_rx.recv().expect("ponger gone");
                        }
                        w.load(SeqCst)
                    })
                };
                let ponger = weft::spawn(move || {
                    for v in ping_rx.iter() {
                        if pong_tx.send(v).is_err() {
                            break;
                        }
                    }
                });
                // Spawned last, so it runs first (runnext): it spins until the sleeper runs,
                // which only a spare P lent for it can do.
                let hog = {
                    let a = about_to_sleep.clone();
                    weft::spawn(move || {
                        let t0 = Instant::now();
                        while !a.load(SeqCst) && t0.elapsed() < limit {
                            std::hint::spin_loop();
                        }
                        a.load(SeqCst)
                    })
                };
                let slept_on_spare = hog.join().expect("hog");
                let woke_in_time = pinger.join().expect("pinger");
                ponger.join().expect("ponger");
                sleeper.join().expect("sleeper");
                (slept_on_spare, woke_in_time)
            });
            let after = stats();
            assert!(after.spares_lent > before.spares_lent, "no spare P lent");
            assert!(
                slept_on_spare,
                "the sleeper never ran during the hog's 5 s spin"
            );
            assert!(
                woke_in_time,
                "a 20 ms sleep begun on a spare P did not end within 5 s once the spare was \
                 returned (its timer stayed in the idle spare's heap)"
            );
        },
    );
}

// ---------------------------------------------------------------------------------------------
// (c) blocking's semantics
// ---------------------------------------------------------------------------------------------

/// A panic inside `f` comes out of `blocking` (caught here with `catch_unwind`), and the G goes
/// on normally afterwards: it parks on a channel, is woken, and makes more blocking calls.
#[test]
fn blocking_panic_propagates_and_g_goes_on() {
    run_test(
        1,
        Mode::Exclusive,
        "blocking_panic_propagates_and_g_goes_on",
        || {
            let out = weft::run(|| {
                let id = weft::current_id().expect("main G has an id");
                let r = catch_unwind(AssertUnwindSafe(|| {
                    weft::blocking(|| -> u32 {
                        std::panic::panic_any(format!("{EXPECTED_PANIC}: inside blocking"))
                    })
                }));
                let p = r.expect_err("the panic in f must propagate");
                assert!(
                    payload_str(&*p).contains("inside blocking"),
                    "payload: {:?}",
                    payload_str(&*p)
                );
                // Still the same G, back on a P: it can park and be woken.
                assert_eq!(weft::current_id(), Some(id));
                let (tx, rx) = chan::bounded::<u32>(0);
                let sender = weft::spawn(move || tx.send(41).expect("send"));
                let v = rx.recv().expect("recv after the panic");
                sender.join().expect("sender");
                assert_eq!(weft::current_id(), Some(id));
                // And more blocking calls work.
                let w = weft::blocking(|| v + 1);
                // A second panic, from a spawned G, comes out of its join too.
                let h = weft::spawn(|| {
                    weft::blocking(|| std::panic::panic_any(format!("{EXPECTED_PANIC}: again")))
                });
                let e = h.join().expect_err("panic in a G's blocking call");
                assert!(payload_str(&*e).contains("again"));
                w
            });
            assert_eq!(out, 42);
        },
    );
}

/// Inside `f` the thread is a plain thread (`current_id()` is `None`); afterwards the G has its
/// id back. Nested `blocking` just runs the inner closure.
#[test]
fn blocking_current_id_and_nesting() {
    run_test(
        1,
        Mode::Exclusive,
        "blocking_current_id_and_nesting",
        || {
            weft::run(|| {
                let id = weft::current_id();
                assert!(id.is_some());
                let (inside, nested) = weft::blocking(|| {
                    let inside = weft::current_id();
                    let nested = weft::blocking(|| {
                        assert!(weft::current_id().is_none());
                        weft::blocking(|| 3u32) * 2
                    });
                    assert!(weft::current_id().is_none());
                    (inside, nested)
                });
                assert_eq!(inside, None, "current_id inside blocking");
                assert_eq!(nested, 6);
                assert_eq!(weft::current_id(), id, "current_id after blocking");
                // Also on a G that is not the main one.
                let h = weft::spawn(|| {
                    let me = weft::current_id();
                    let inside = weft::blocking(weft::current_id);
                    (me, inside, weft::current_id())
                });
                let hid = h.id();
                let (me, inside, after) = h.join().expect("G");
                assert_eq!(me, Some(hid));
                assert_eq!(inside, None);
                assert_eq!(after, me);
            });
        },
    );
}

/// A weft channel receive inside `blocking` blocks the thread (not a G) until another G sends:
/// on one P that sender can only run because the P was handed off. Then the reverse: a send
/// inside `blocking` to a G that waits.
#[test]
fn blocking_chan_recv_inside_f() {
    run_test(1, Mode::Exclusive, "blocking_chan_recv_inside_f", || {
        let before = stats();
        let got = weft::run(|| {
            let (tx, rx) = chan::bounded::<u64>(0);
            // The sender is queued on the same P and runs only after the receiver is inside
            // its blocking call (one P, and the main G does not park before `blocking`).
            let sender = weft::spawn(move || {
                for i in 0..3u64 {
                    tx.send(100 + i).expect("send");
                }
            });
            let got: Vec<u64> = weft::blocking(|| (0..3).map(|_| rx.recv().unwrap()).collect());
            sender.join().expect("sender");

            let (tx2, rx2) = chan::bounded::<u64>(0);
            let receiver = weft::spawn(move || rx2.recv().expect("recv"));
            weft::blocking(|| tx2.send(7).expect("send inside blocking"));
            assert_eq!(receiver.join().expect("receiver"), 7);
            got
        });
        assert_eq!(got, vec![100, 101, 102]);
        let after = stats();
        assert!(after.blocking_calls >= before.blocking_calls + 2);
    });
}

/// On a plain thread (no G, and not even inside `run`), `blocking` just calls `f`: same thread,
/// value returned, panic propagated.
#[test]
fn blocking_on_plain_thread() {
    run_test(1, Mode::Shared, "blocking_on_plain_thread", || {
        let outer = std::thread::current().id();
        let (v, tid, id) =
            weft::blocking(|| (5u32, std::thread::current().id(), weft::current_id()));
        assert_eq!(v, 5);
        assert_eq!(tid, outer);
        assert_eq!(id, None);
        let r = catch_unwind(|| {
            weft::blocking(|| -> () {
                std::panic::panic_any(format!("{EXPECTED_PANIC}: plain thread"))
            })
        });
        let p = r.expect_err("panic on a plain thread propagates");
        assert!(payload_str(&*p).contains("plain thread"));
        // A weft channel between a plain thread's blocking call and a G.
        let (tx, rx) = chan::bounded::<u32>(0);
        let g = weft::spawn(move || tx.send(9).expect("send"));
        assert_eq!(weft::blocking(|| rx.recv().expect("recv")), 9);
        g.join().expect("sender G");
    });
}

// ---------------------------------------------------------------------------------------------
// (d) many blocking calls at once
// ---------------------------------------------------------------------------------------------

/// 50 Gs, each blocked 50 ms in `blocking`, on one P: they finish in about one call's time
/// (each call's P is handed to a fresh M, which starts the next G), not 50 × 50 ms = 2.5 s.
#[test]
fn many_blocking_calls_run_in_parallel() {
    run_test(
        1,
        Mode::Exclusive,
        "many_blocking_calls_run_in_parallel",
        || {
            const N: u64 = 50;
            let before = stats();
            let (sum, took) = weft::run(|| {
                let t0 = Instant::now();
                let hs: Vec<_> = (0..N)
                    .map(|i| {
                        weft::spawn(move || {
                            weft::blocking(|| {
                                std::thread::sleep(Duration::from_millis(50));
                                i
                            })
                        })
                    })
                    .collect();
                let sum: u64 = hs.into_iter().map(|h| h.join().expect("G")).sum();
                (sum, t0.elapsed())
            });
            let after = stats();
            note(format_args!(
                "{N} x blocking(50 ms) on 1 P: {took:?}; hand-offs {}, requeued {}, threads {}",
                after.blocking_handoffs - before.blocking_handoffs,
                after.blocking_requeued - before.blocking_requeued,
                after.threads
            ));
            assert_eq!(sum, N * (N - 1) / 2);
            assert!(
                took < Duration::from_millis(1500),
                "{N} blocking calls of 50 ms took {took:?}: not handed off"
            );
            assert!(after.blocking_calls >= before.blocking_calls + N);
            assert!(after.blocking_handoffs > before.blocking_handoffs);
        },
    );
}
