//! `weft::sleep` / `weft::sleep_until` and the per-P timer heaps, checked against an expiry-order
//! model; run on 1 P by `tests/timers_1p.rs` and on 2 Ps by `tests/timers_np.rs` (the same bodies
//! on both, as `rt_cases.rs` is shared by `rt_1p`/`rt_np`).
//!
//! The binaries include this file with `#[path]` next to `mod common;`, so the other test
//! binaries do not compile it; the binaries wrap each case with [`timer_tests!`].
//!
//! # The model
//!
//! A G that calls `sleep(d)` at instant `called` may not return before `called + d`; one that
//! calls `sleep_until(t)` not before `t`. Call that lower bound the G's *expiry*
//! (`max(deadline, called)`: a deadline already past expires at once). Then:
//!
//! 1. every G returns at or after its expiry (a timer never fires early);
//! 2. `sleep(0)` and `sleep_until(t)` with `t` already past return at once, without parking: on
//!    1 P no other G runs during the call (a structural check, no clock involved); on 2 Ps they
//!    return "at once" by a generous bound ([`GENEROUS`]);
//! 3. wake order follows expiry order whenever two expiries differ by more than [`ORDER_TOL`]:
//!    if `expiry_i + ORDER_TOL < expiry_j`, G *i* has returned by the time G *j* returns;
//! 4. every G finishes (the watchdog bounds the test).
//!
//! Why a tolerance in 3: the heap of one P fires its timers in expiry order, but timers added on
//! different Ps are run by different Ms, each of which notices expiry with its own latency (an
//! `epoll_wait` timeout returns a little late, an M busy running the Gs it just readied gets to
//! its next heap check later than another M that was idle). And a G readied by a timer is not
//! run at the instant it is readied: it goes to a run queue (`runnext` first, which is LIFO
//! among the Gs readied in one batch of expired timers) behind Gs readied just before. None of
//! that delays a G by more than a fraction of a millisecond on an unloaded machine; 3 ms
//! covers it.
//!
//! Property 3 is a latency property in disguise: a violation means that G *i* returned more than
//! `ORDER_TOL` after its expiry, which OS scheduling noise alone can cause (this test process
//! shares its cores with whatever else runs). So a case whose only failure is an ordering
//! violation is re-run ([`ORDER_ATTEMPTS`] times in all) and fails only if every run violates
//! the order: a runtime bug that misorders timers (a heap the poller forgets, a batch fired
//! late) reproduces on each run of the same case; noise does not. Properties 1, 2 and 4 never
//! depend on timing and are checked on every run.
//!
//! Other rules, as in `rt_cases.rs`: no sleep used as synchronisation, and no timing upper bound
//! tighter than [`GENEROUS`] (speed belongs in benchmarks); lateness is printed, not asserted.
//! Every case here needs the scheduler to itself (a lateness measured while another test's
//! 10 000 Gs wake would mean nothing), so they all run one at a time ([`run_timer_test`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::{gettid, init, wait_until, watchdog, Gate, TEST_TIMEOUT};

/// Expiries closer than this may wake in either order (see the module doc).
pub const ORDER_TOL: Duration = Duration::from_millis(3);

/// Runs of one generated case whose only failure is an ordering violation, before it fails.
pub const ORDER_ATTEMPTS: usize = 3;

/// "At once" and "within a reasonable bound", for assertions about time: generous on purpose.
pub const GENEROUS: Duration = Duration::from_secs(2);

/// How long spinning Gs wait for a sleeper before giving up (then the test fails, rather than
/// spin until the watchdog aborts the process).
const GIVE_UP: Duration = Duration::from_secs(10);

/// Generated cases per run unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 24;

/// Upper bound on `yield_now` rounds in a wait loop. Generous: the watchdog is the real limit.
const ROUNDS: u64 = 100_000_000;

/// Rounds of `yield_now` a test waits for earlier tests' coroutines to finish.
const QUIESCE_ROUNDS: u64 = 1_000_000;

/// Generate one `#[test]` per shared case for a binary with `$procs` Ps.
macro_rules! timer_tests {
    ($procs:expr) => {
        $crate::timer_cases::timer_tests!(@each $procs;
            sleep_matches_expiry_model,
            sleep_zero_and_past_do_not_park,
            sleep_on_plain_thread,
            sleep_10k_same_deadline,
            sleeper_wakes_among_yield_spinners,
            timer_fires_while_runtime_idle,
        );
    };
    (@each $procs:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::timer_cases::run_timer_test(
                    $procs,
                    stringify!($name),
                    $crate::timer_cases::time_limit(stringify!($name)),
                    $crate::timer_cases::$name,
                );
            }
        )*
    };
}
pub(crate) use timer_tests;

/// Serialises the tests of a timer binary (see the module doc).
static TIMER_LOCK: Mutex<()> = Mutex::new(());

/// Run one timer test: `init(procs)`, alone (after earlier tests' Gs finished), under a watchdog
/// of `limit` that starts once the test has the scheduler to itself.
pub fn run_timer_test(procs: usize, name: &str, limit: Duration, body: impl FnOnce()) {
    init(procs);
    let _alone = TIMER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = watchdog(name, limit);
    if !wait_until(QUIESCE_ROUNDS, || weft::num_goroutines() == 0) {
        eprintln!(
            "note: {name}: {} coroutines left alive by earlier tests",
            weft::num_goroutines()
        );
    }
    body();
}

/// Generated cases per proptest: `PROPTEST_CASES`, or [`CASES`].
fn cases() -> u32 {
    crate::common::proptest_cases(CASES)
}

/// The watchdog's limit for test `name`: [`TEST_TIMEOUT`], raised for the proptest when
/// `PROPTEST_CASES` asks for a long soak (a case takes ~40 ms, a re-run case up to 3 times that).
pub fn time_limit(name: &str) -> Duration {
    if name == "sleep_matches_expiry_model" {
        TEST_TIMEOUT.max(Duration::from_millis(150) * cases() + Duration::from_secs(40))
    } else {
        TEST_TIMEOUT
    }
}

// ---------------------------------------------------------------------------------------------
// The proptest
// ---------------------------------------------------------------------------------------------

/// What one G does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nap {
    /// `sleep(d)` (`d` may be zero).
    For(Duration),
    /// `sleep_until(t0 + off)`, `t0` being the instant all Gs were let go: Gs with the same
    /// offset share one deadline exactly; a G that gets there late finds it past.
    Until(Duration),
    /// `sleep_until(called - ago)`: a deadline already past when the G calls.
    Past(Duration),
}

/// A duration of 0–30 ms, often one of a few round values (so that many timers share one).
fn nap_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0..=30_000u64).prop_map(Duration::from_micros),
        1 => prop::sample::select(vec![0u64, 1, 5, 10, 20, 30]).prop_map(Duration::from_millis),
    ]
}

fn nap() -> impl Strategy<Value = Nap> {
    prop_oneof![
        6 => nap_duration().prop_map(Nap::For),
        3 => nap_duration().prop_map(Nap::Until),
        1 => (0..=50_000u64).prop_map(|us| Nap::Past(Duration::from_micros(us))),
    ]
}

/// Up to 200 naps: up to 160 drawn, plus up to 40 exact copies of drawn ones.
fn naps() -> impl Strategy<Value = Vec<Nap>> {
    (vec(nap(), 1..=160), vec(any::<Index>(), 0..=40)).prop_map(|(mut naps, dups)| {
        let drawn = naps.len();
        for ix in dups {
            naps.push(naps[ix.index(drawn)]);
        }
        naps
    })
}

/// What one G saw.
#[derive(Debug, Clone, Copy)]
struct Record {
    nap: Nap,
    /// Just before the call.
    called: Instant,
    /// The earliest instant the call may return (the model's expiry).
    expiry: Instant,
    /// Just after the call returned.
    returned: Instant,
    /// The call must not park (zero duration, or a deadline already past when called).
    immediate: bool,
    /// No G of the case returned from its own call while this one was in its call. On 1 P that
    /// means this G never left its thread: no other G ran.
    undisturbed: bool,
}

impl Record {
    fn lateness(&self) -> Duration {
        self.returned.saturating_duration_since(self.expiry)
    }
}

/// What the Gs of one case share.
struct Shared {
    /// All Gs start together once the gate opens.
    gate: Gate,
    /// The instant the gate opened.
    t0: OnceLock<Instant>,
    /// Bumped by each G after its call returned.
    progress: AtomicU64,
}

/// One G: wait for the start, nap, record.
fn nap_once(nap: Nap, sh: &Shared) -> Record {
    sh.gate.wait();
    let t0 = *sh.t0.get().expect("t0 is set before the gate opens");
    let before = sh.progress.load(SeqCst);
    let called = Instant::now();
    let (expiry, immediate) = match nap {
        Nap::For(d) => {
            weft::sleep(d);
            (called + d, d.is_zero())
        }
        Nap::Until(off) => {
            let t = t0 + off;
            weft::sleep_until(t);
            (t.max(called), t <= called)
        }
        Nap::Past(ago) => {
            let t = called.checked_sub(ago).unwrap_or(called);
            weft::sleep_until(t);
            (called, true)
        }
    };
    let returned = Instant::now();
    let after = sh.progress.load(SeqCst);
    sh.progress.fetch_add(1, SeqCst);
    Record {
        nap,
        called,
        expiry,
        returned,
        immediate,
        undisturbed: before == after,
    }
}

/// Run one case: one G per nap, all let go at once; return what each saw, in nap order.
fn run_naps(naps: &[Nap]) -> Vec<Record> {
    let naps = naps.to_vec();
    weft::run(move || {
        let sh = Arc::new(Shared {
            gate: Gate::new(),
            t0: OnceLock::new(),
            progress: AtomicU64::new(0),
        });
        let hs: Vec<_> = naps
            .iter()
            .map(|&nap| {
                let sh = Arc::clone(&sh);
                weft::go!(move || nap_once(nap, &sh))
            })
            .collect();
        assert!(
            wait_until(ROUNDS, || sh.gate.registered() == hs.len()),
            "Gs never reached the start gate"
        );
        sh.t0.set(Instant::now()).expect("t0 set once");
        sh.gate.open();
        hs.into_iter()
            .map(|h| h.join().expect("a napping G panicked"))
            .collect()
    })
}

/// How a run of a case failed.
enum Failure {
    /// Properties 1, 2 or 4 (never timing noise).
    Hard(String),
    /// Property 3 only.
    Order(String),
}

/// Lateness figures of one run.
#[derive(Default, Clone, Copy)]
struct Lateness {
    parked: usize,
    max: Duration,
    sum: Duration,
}

/// Check one run's records against the model.
fn check(naps: &[Nap], recs: &[Record], procs: usize) -> Result<Lateness, Failure> {
    if recs.len() != naps.len() {
        return Err(Failure::Hard(format!(
            "{} of {} Gs finished",
            recs.len(),
            naps.len()
        )));
    }
    let mut late = Lateness::default();
    for (i, r) in recs.iter().enumerate() {
        // 1. Never early.
        if r.returned < r.expiry {
            return Err(Failure::Hard(format!(
                "G {i} ({:?}) returned {:?} before its expiry",
                r.nap,
                r.expiry - r.returned
            )));
        }
        if let Nap::For(d) = r.nap {
            if r.returned - r.called < d {
                return Err(Failure::Hard(format!(
                    "G {i}: sleep({d:?}) returned after {:?}",
                    r.returned - r.called
                )));
            }
        }
        // 2. Zero and past naps return at once, without parking.
        if r.immediate {
            let took = r.returned - r.called;
            if took > GENEROUS {
                return Err(Failure::Hard(format!(
                    "G {i} ({:?}, deadline not in the future) took {took:?} to return",
                    r.nap
                )));
            }
            if procs == 1 && !r.undisturbed {
                return Err(Failure::Hard(format!(
                    "G {i} ({:?}, deadline not in the future): other Gs ran during the call, \
                     so it parked or yielded",
                    r.nap
                )));
            }
        } else {
            late.parked += 1;
            late.max = late.max.max(r.lateness());
            late.sum += r.lateness();
        }
    }
    // 3. Expiry order beyond the tolerance. Report the worst inversion.
    let mut worst: Option<(usize, usize, Duration)> = None;
    for (i, a) in recs.iter().enumerate() {
        for (j, b) in recs.iter().enumerate() {
            if a.expiry + ORDER_TOL < b.expiry && b.returned < a.returned {
                let by = a.returned - b.returned;
                if worst.is_none_or(|(_, _, w)| by > w) {
                    worst = Some((i, j, by));
                }
            }
        }
    }
    if let Some((i, j, by)) = worst {
        let (a, b) = (&recs[i], &recs[j]);
        return Err(Failure::Order(format!(
            "G {i} ({:?}) expired {:?} before G {j} ({:?}) but returned {by:?} after it; \
             G {i} was {:?} late, G {j} {:?}",
            a.nap,
            b.expiry - a.expiry,
            b.nap,
            a.lateness(),
            b.lateness()
        )));
    }
    Ok(late)
}

/// The proptest: random sets of up to 200 napping Gs against the model (module doc).
pub fn sleep_matches_expiry_model() {
    let procs = weft::max_procs();
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        // A failing case is printed (shrunk) in the panic message; nothing is written to disk.
        failure_persistence: None,
        // Each shrink step runs Gs for up to ~100 ms; stay well inside the watchdog's limit.
        max_shrink_time: 30_000,
        ..Config::default()
    });
    let total = Mutex::new((0usize, 0usize, Lateness::default(), 0usize));
    let result = runner.run(&naps(), |naps| {
        let mut last_order = String::new();
        for attempt in 0..ORDER_ATTEMPTS {
            let recs = run_naps(&naps);
            match check(&naps, &recs, procs) {
                Ok(late) => {
                    let mut t = total.lock().unwrap();
                    t.0 += naps.len();
                    t.1 += attempt;
                    t.2.parked += late.parked;
                    t.2.sum += late.sum;
                    t.2.max = t.2.max.max(late.max);
                    return Ok(());
                }
                Err(Failure::Hard(msg)) => return Err(TestCaseError::fail(msg)),
                Err(Failure::Order(msg)) => {
                    eprintln!("note: expiry order violated (run {}): {msg}", attempt + 1);
                    total.lock().unwrap().3 += 1;
                    last_order = msg;
                }
            }
        }
        Err(TestCaseError::fail(format!(
            "expiry order violated on all {ORDER_ATTEMPTS} runs; last: {last_order}"
        )))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (gs, reruns, late, violations) = *total.lock().unwrap();
    eprintln!(
        "sleep_matches_expiry_model ({procs} P): {cases} cases, {gs} Gs, {reruns} re-runs \
         ({violations} order violations seen); lateness of parked Gs: max {:?}, mean {:?}",
        late.max,
        late.sum / (late.parked.max(1) as u32)
    );
}

// ---------------------------------------------------------------------------------------------
// Plain tests
// ---------------------------------------------------------------------------------------------

/// `sleep(0)`, `sleep_until(now)` and `sleep_until(past)` return without parking. On 1 P: a G
/// spawned just before sits in `runnext` and would run at once if the caller parked or yielded,
/// so it must not have run when they return. On N Ps the other P may run it at any time, so
/// only "returns at once" (generously) is checked there.
pub fn sleep_zero_and_past_do_not_park() {
    let one_p = weft::max_procs() == 1;
    weft::run(move || {
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let other = weft::go!(move || r.store(true, SeqCst));
        let t = Instant::now();
        weft::sleep(Duration::ZERO);
        weft::sleep_until(Instant::now());
        weft::sleep_until(Instant::now() - Duration::from_millis(5));
        weft::sleep_until(t);
        // Before the runtime's clock started (it saturates to its earliest instant).
        if let Some(long_ago) = t.checked_sub(Duration::from_secs(3600)) {
            weft::sleep_until(long_ago);
        }
        let took = t.elapsed();
        if one_p {
            assert!(
                !ran.load(SeqCst),
                "sleep(0) or sleep_until(past) let another G run: it parked or yielded"
            );
        }
        assert!(took < GENEROUS, "zero and past sleeps took {took:?}");
        other.join().unwrap();
        assert!(ran.load(SeqCst));
    });
}

/// On a plain OS thread (not a G) `sleep`/`sleep_until` block the thread; several plain threads
/// and Gs sleeping at the same time do not disturb each other.
pub fn sleep_on_plain_thread() {
    fn naps_on_this_thread() {
        assert!(weft::current().is_none(), "a plain thread is not a G");
        let t = Instant::now();
        weft::sleep(Duration::from_millis(10));
        assert!(t.elapsed() >= Duration::from_millis(10));
        let deadline = Instant::now() + Duration::from_millis(5);
        weft::sleep_until(deadline);
        assert!(Instant::now() >= deadline);
        let t = Instant::now();
        weft::sleep(Duration::ZERO);
        weft::sleep_until(t - Duration::from_millis(1));
        assert!(t.elapsed() < GENEROUS);
    }

    naps_on_this_thread();
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(naps_on_this_thread))
        .collect();
    let gs: Vec<_> = (0..4u64)
        .map(|i| {
            weft::go!(move || {
                let d = Duration::from_millis(5 + i);
                let t = Instant::now();
                weft::sleep(d);
                t.elapsed() >= d
            })
        })
        .collect();
    for h in threads {
        h.join().expect("plain thread");
    }
    for h in gs {
        assert!(h.join().unwrap(), "a G woke early");
    }
}

/// 10 000 Gs sleep the same 10 ms: every one wakes, none early.
pub fn sleep_10k_same_deadline() {
    const N: usize = 10_000;
    const D: Duration = Duration::from_millis(10);
    let (woke, worst, all) = weft::run(|| {
        let woke = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let woke = Arc::clone(&woke);
                weft::go!(move || {
                    let t = Instant::now();
                    weft::sleep(D);
                    let slept = t.elapsed();
                    woke.fetch_add(1, SeqCst);
                    slept
                })
            })
            .collect();
        let mut worst = Duration::ZERO;
        for h in hs {
            let slept = h.join().expect("sleeping G");
            assert!(slept >= D, "a G slept {slept:?} < {D:?}");
            worst = worst.max(slept - D);
        }
        (woke.load(SeqCst), worst, start.elapsed())
    });
    assert_eq!(woke, N);
    eprintln!(
        "sleep_10k_same_deadline ({} P): {N} Gs slept {D:?}; worst lateness {worst:?}, all \
         spawned, slept and joined in {all:?}",
        weft::max_procs()
    );
}

/// A G sleeps while other Gs keep every P busy with `yield_now` loops (run queues never empty):
/// its timer still fires, while they spin. Lateness is printed, not asserted.
pub fn sleeper_wakes_among_yield_spinners() {
    const D: Duration = Duration::from_millis(20);
    let spinners = 2 * weft::max_procs() + 1;
    let (slept, while_spinning, yields) = weft::run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let gave_up = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let yields = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..spinners)
            .map(|_| {
                let (stop, gave_up) = (Arc::clone(&stop), Arc::clone(&gave_up));
                let (started, yields) = (Arc::clone(&started), Arc::clone(&yields));
                weft::go!(move || {
                    started.fetch_add(1, SeqCst);
                    let t = Instant::now();
                    let mut n = 0;
                    while !stop.load(SeqCst) {
                        if t.elapsed() > GIVE_UP {
                            gave_up.store(true, SeqCst);
                            break;
                        }
                        weft::yield_now();
                        n += 1;
                    }
                    yields.fetch_add(n, SeqCst);
                })
            })
            .collect();
        assert!(wait_until(ROUNDS, || started.load(SeqCst) == spinners));
        let g = Arc::clone(&gave_up);
        let sleeper = weft::go!(move || {
            let t = Instant::now();
            weft::sleep(D);
            let slept = t.elapsed();
            (slept, !g.load(SeqCst))
        });
        let (slept, while_spinning) = sleeper.join().expect("sleeper");
        stop.store(true, SeqCst);
        for h in hs {
            h.join().expect("spinner");
        }
        (slept, while_spinning, yields.load(SeqCst))
    });
    assert!(slept >= D, "slept {slept:?} < {D:?}");
    assert!(
        while_spinning,
        "the sleeper woke only after the spinners gave up ({GIVE_UP:?}): timers do not run \
         while run queues stay busy"
    );
    eprintln!(
        "sleeper_wakes_among_yield_spinners ({} P, {spinners} spinners, {yields} yields): \
         sleep({D:?}) returned {:?} late",
        weft::max_procs(),
        slept - D
    );
}

/// Timers fire while the runtime is otherwise idle: Gs spawned from a plain thread sleep while
/// no other G exists, so no M has anything to run and one must block in `epoll_wait` with a
/// timeout. Then an earlier timer added while the poller waits for a later one: it must fire
/// first (its expiry is ~290 ms earlier, far beyond [`ORDER_TOL`]).
pub fn timer_fires_while_runtime_idle() {
    let procs = weft::max_procs();
    for ms in [1u64, 10, 50] {
        // The previous sleeper may still be finishing after its join returned.
        assert!(
            wait_until(QUIESCE_ROUNDS, || weft::num_goroutines() == 0),
            "runtime not idle: {} coroutines",
            weft::num_goroutines()
        );
        let d = Duration::from_millis(ms);
        let h = weft::spawn(move || {
            let t = Instant::now();
            weft::sleep(d);
            t.elapsed()
        });
        let slept = h.join().expect("sleeper");
        assert!(slept >= d, "slept {slept:?} < {d:?}");
        assert!(
            slept < d + GENEROUS,
            "sleep({d:?}) took {slept:?} on an idle runtime"
        );
        eprintln!(
            "timer_fires_while_runtime_idle ({procs} P): sleep({d:?}) {:?} late",
            slept - d
        );
    }

    const LONG: Duration = Duration::from_millis(300);
    const SHORT: Duration = Duration::from_millis(10);
    let asleep = Arc::new(AtomicBool::new(false));
    let a = Arc::clone(&asleep);
    let long = weft::spawn(move || {
        a.store(true, SeqCst);
        let t = Instant::now();
        weft::sleep(LONG);
        (t + LONG, Instant::now())
    });
    // Until the long sleeper is about to park (it may or may not have parked by the time the
    // short one sleeps: either way the model holds).
    assert!(wait_until(ROUNDS, || asleep.load(SeqCst)));
    let short = weft::spawn(move || {
        let t = Instant::now();
        weft::sleep(SHORT);
        (t + SHORT, Instant::now())
    });
    let (short_expiry, short_ret) = short.join().expect("short sleeper");
    let (long_expiry, long_ret) = long.join().expect("long sleeper");
    assert!(
        short_ret >= short_expiry && long_ret >= long_expiry,
        "a timer fired early"
    );
    if short_expiry + ORDER_TOL < long_expiry {
        assert!(
            short_ret < long_ret,
            "the later timer fired first: short returned {:?} after long",
            short_ret - long_ret
        );
    }
    assert!(
        short_ret - short_expiry < GENEROUS,
        "the earlier timer added while the poller waited for a later one fired {:?} late",
        short_ret - short_expiry
    );
    eprintln!(
        "timer_fires_while_runtime_idle ({procs} P): earlier timer under a later one {:?} late, \
         the later one {:?} late",
        short_ret - short_expiry,
        long_ret - long_expiry
    );
}

/// N Ps only. A G sleeps and its timer sits in the heap of a P that is then taken by a G that
/// spins without ever yielding: that P's M never reaches `findrunnable` again until the hog
/// ends, so another M must run the timer (the poller's deadline covers every P's heap, and
/// `findrunnable` runs the expired timers of all Ps). The hog stops when the sleeper woke, or
/// after [`GIVE_UP`], and then the test fails.
///
/// The sleeper spawns the hog just before sleeping, so the hog is in the sleeper's P's
/// `runnext` and that P's M normally runs it next; whether it did is printed (thread ids).
#[allow(dead_code)] // only `timers_np` runs it
pub fn timer_on_hogged_p_fires() {
    const D: Duration = Duration::from_millis(20);
    assert!(weft::max_procs() >= 2, "needs 2 Ps: the hog never yields");
    let mut same_thread = 0;
    const ROUNDS_HOG: usize = 5;
    for _ in 0..ROUNDS_HOG {
        let (slept, while_hogging, sleeper_tid, hog_tid) = weft::run(|| {
            let woke = Arc::new(AtomicBool::new(false));
            let hog_tid = Arc::new(AtomicU64::new(0));
            let (w, ht) = (Arc::clone(&woke), Arc::clone(&hog_tid));
            let sleeper = weft::go!(move || {
                let hog = weft::go!(move || {
                    ht.store(gettid() as u64, SeqCst);
                    let t = Instant::now();
                    // Deliberately no yield: this G keeps its P until the sleeper woke.
                    while !w.load(SeqCst) {
                        if t.elapsed() > GIVE_UP {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                    true
                });
                let tid = gettid() as u64;
                let t = Instant::now();
                weft::sleep(D);
                let slept = t.elapsed();
                (slept, tid, hog)
            });
            let (slept, sleeper_tid, hog) = sleeper.join().expect("sleeper");
            woke.store(true, SeqCst);
            let while_hogging = hog.join().expect("hog");
            (slept, while_hogging, sleeper_tid, hog_tid.load(SeqCst))
        });
        assert!(slept >= D, "slept {slept:?} < {D:?}");
        assert!(
            while_hogging,
            "the sleeper woke only after the hog gave up ({GIVE_UP:?}): a busy P's timers are \
             not run by other Ms"
        );
        if sleeper_tid == hog_tid {
            same_thread += 1;
        }
        eprintln!(
            "timer_on_hogged_p_fires: sleep({D:?}) {:?} late; hog on the sleeper's thread: {}",
            slept - D,
            sleeper_tid == hog_tid
        );
    }
    eprintln!(
        "timer_on_hogged_p_fires: the hog ran on the sleeper's M in {same_thread} of \
         {ROUNDS_HOG} rounds"
    );
}
