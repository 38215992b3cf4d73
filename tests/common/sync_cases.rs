//! `weft::sync` (Mutex, RwLock, Condvar, WaitGroup, Semaphore, Once/OnceLock, Barrier), run on
//! 1 P by `tests/sync_1p.rs` and on 2 Ps by `tests/sync_np.rs` (the same bodies on both, as
//! `rt_cases.rs` is shared by `rt_1p`/`rt_np`).
//!
//! The binaries include this file with `#[path]` next to `mod common;`, so the other test
//! binaries do not compile it; [`sync_tests!`] wraps each case with a watchdog, `init(procs)` and
//! its [`Mode`].
//!
//! What every case checks is an invariant that a broken primitive would violate — an "inside"
//! counter that two holders of a lock would both see, a total that a lost update would miss,
//! a waiter that a lost wakeup would leave parked (the watchdog then aborts the binary with the
//! test's name). Rules, as in `rt_cases.rs`: no sleep is used as synchronisation (sleeps only
//! happen *inside* critical sections, to hold a lock across a park), no assertion depends on
//! timing except "a timeout does not fire early"; inside a G the only waiting is on the
//! primitives under test, `join`, and bounded `yield_now` loops ([`wait_until`]).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use weft::sync::{
    Barrier, Condvar, Mutex, Once, OnceLock, RwLock as WRwLock, Semaphore, WaitGroup,
};
use weft::{go, JoinHandle};

use crate::common::{note, wait_until, Mode, EXPECTED_PANIC, TEST_TIMEOUT};

/// Upper bound on `yield_now` rounds in a wait loop. Generous: the watchdog is the real limit.
const ROUNDS: u64 = 100_000_000;

/// Generated cases of the proptest unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 64;

/// Generate one `#[test]` per case for a binary with `$procs` Ps.
macro_rules! sync_tests {
    ($procs:expr) => {
        $crate::sync_cases::sync_tests!(@each $procs, Shared;
            mutex_exclusion_across_yield_and_sleep,
            mutex_gs_and_threads_mixed,
            mutex_try_lock_into_inner_get_mut,
            mutex_lock_in_destructor_while_unwinding,
            mutex_holder_panics_with_waiters_queued,
            condvar_producer_consumer,
            condvar_wait_timeout_times_out,
            condvar_wait_timeout_notified,
            condvar_timeouts_race_notifications,
            condvar_notify_passes_over_timed_out_waiters,
            condvar_notify_all_wakes_everyone,
            wait_group_waiters_gs_and_threads,
            rwlock_readers_in_parallel,
            rwlock_writers_exclusive,
            rwlock_writer_preference,
            once_racing_initialisers,
            once_lock_racing_initialisers,
            once_lock_retries_after_panic,
            barrier_one_leader_per_round,
            semaphore_bounds_concurrency,
        );
        $crate::sync_cases::sync_tests!(@each $procs, Exclusive;
            wait_group_10k_gs,
            condvar_notify_skips_waiter_that_timed_out,
            mutex_relocker_does_not_starve_waiter,
            mutex_relocking_thread_does_not_starve_g,
            random_workloads_keep_invariants,
        );
    };
    (@each $procs:expr, $mode:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::sync_cases::run_sync_test(
                    $procs,
                    $crate::common::Mode::$mode,
                    stringify!($name),
                    $crate::sync_cases::$name,
                );
            }
        )*
    };
}
pub(crate) use sync_tests;

/// Run one case (`common::run_test` with [`time_limit`]), timing it.
pub fn run_sync_test(procs: usize, mode: Mode, name: &str, body: fn()) {
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

/// The watchdog's limit for case `name`: [`TEST_TIMEOUT`], raised for the proptest when
/// `PROPTEST_CASES` asks for a long soak.
pub fn time_limit(name: &str) -> Duration {
    match name {
        "random_workloads_keep_invariants" => {
            TEST_TIMEOUT.max(Duration::from_millis(300) * cases() + Duration::from_secs(40))
        }
        _ => TEST_TIMEOUT,
    }
}

/// A worker that is either a G or a plain OS thread.
enum Worker<T> {
    G(JoinHandle<T>),
    Thread(thread::JoinHandle<T>),
}

impl<T: Send + 'static> Worker<T> {
    fn spawn(on_thread: bool, f: impl FnOnce() -> T + Send + 'static) -> Worker<T> {
        if on_thread {
            Worker::Thread(thread::spawn(f))
        } else {
            Worker::G(go!(f))
        }
    }

    fn join(self) -> T {
        match self {
            Worker::G(h) => h.join().expect("worker G panicked"),
            Worker::Thread(h) => h.join().expect("worker thread panicked"),
        }
    }
}

/// Join every worker, in order.
fn join_all<T: Send + 'static>(ws: Vec<Worker<T>>) -> Vec<T> {
    ws.into_iter().map(Worker::join).collect()
}

/// Park the caller while holding whatever it holds: `weft::sleep` (a timer park) for some `i`,
/// `yield_now` for the others; on a plain thread the same calls block or yield the thread.
fn park_a_little(i: u64) {
    if i % 3 == 0 {
        weft::sleep(Duration::from_micros(20));
    } else {
        weft::yield_now();
    }
}

// ---------------------------------------------------------------------------------------------
// Mutex
// ---------------------------------------------------------------------------------------------

/// A counter behind a weft `Mutex`, plus an "inside" flag that two holders at once would both
/// see.
struct Counted {
    m: Mutex<u64>,
    inside: AtomicUsize,
}

impl Counted {
    fn new() -> Arc<Counted> {
        Arc::new(Counted {
            m: Mutex::new(0),
            inside: AtomicUsize::new(0),
        })
    }

    /// Lock, check exclusion, read, park while holding the lock, write back the increment.
    fn incr_parking(&self, i: u64) {
        let mut g = self.m.lock();
        assert_eq!(
            self.inside.fetch_add(1, SeqCst),
            0,
            "two holders of one Mutex"
        );
        let seen = *g;
        park_a_little(i);
        *g = seen + 1;
        assert_eq!(self.inside.fetch_sub(1, SeqCst), 1);
    }
}

/// 64 Gs × 40 increments, each holding the guard across `yield_now` or `sleep` (the G parks and
/// may resume on another thread with the lock held): no two holders, no lost update.
pub fn mutex_exclusion_across_yield_and_sleep() {
    const GS: u64 = 64;
    const ITERS: u64 = 40;
    let c = Counted::new();
    let hs: Vec<_> = (0..GS)
        .map(|g| {
            let c = c.clone();
            go!(move || {
                for i in 0..ITERS {
                    c.incr_parking(g + i);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*c.m.lock(), GS * ITERS);
}

/// Gs and plain threads lock the same Mutex: thread waiters block their thread, G waiters park,
/// hand-offs cross between the two kinds.
pub fn mutex_gs_and_threads_mixed() {
    const WORKERS: u64 = 24;
    const ITERS: u64 = 100;
    let c = Counted::new();
    let ws: Vec<_> = (0..WORKERS)
        .map(|w| {
            let c = c.clone();
            Worker::spawn(w % 6 == 0, move || {
                for i in 0..ITERS {
                    c.incr_parking(w * 7 + i);
                }
            })
        })
        .collect();
    join_all(ws);
    assert_eq!(*c.m.lock(), WORKERS * ITERS);
}

/// `try_lock` fails while another G holds the lock (also across that G's parks), succeeds once
/// it is released; `get_mut`/`into_inner` need no locking.
pub fn mutex_try_lock_into_inner_get_mut() {
    let m = Arc::new(Mutex::new(vec![1u32]));
    let held = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (m2, h2, r2) = (m.clone(), held.clone(), release.clone());
    let holder = go!(move || {
        let mut g = m2.lock();
        h2.store(true, SeqCst);
        assert!(wait_until(ROUNDS, || r2.load(SeqCst)));
        g.push(2);
    });
    let checker = {
        let m = m.clone();
        go!(move || {
            assert!(wait_until(ROUNDS, || held.load(SeqCst)));
            assert!(m.try_lock().is_none(), "try_lock succeeded on a held Mutex");
            assert!(m.is_locked());
            release.store(true, SeqCst);
        })
    };
    checker.join().unwrap();
    holder.join().unwrap();
    assert_eq!(*m.try_lock().expect("free again"), [1, 2]);
    let mut m = Arc::into_inner(m).expect("last reference");
    m.get_mut().push(3);
    assert_eq!(m.into_inner(), [1, 2, 3]);
}

/// A G that panics runs a destructor that locks a Mutex held by another G (which sleeps with it):
/// the unwinding G must not switch stacks, so it blocks its OS thread (handing its P away) and
/// still gets the lock; its panic reaches `join`, the lock is free afterwards.
pub fn mutex_lock_in_destructor_while_unwinding() {
    struct LockOnDrop(Arc<Mutex<u32>>);
    impl Drop for LockOnDrop {
        fn drop(&mut self) {
            *self.0.lock() += 1;
        }
    }
    let m = Arc::new(Mutex::new(0u32));
    let held = Arc::new(AtomicBool::new(false));
    let (m2, h2) = (m.clone(), held.clone());
    let holder = go!(move || {
        let mut g = m2.lock();
        h2.store(true, SeqCst);
        weft::sleep(Duration::from_millis(2));
        *g += 10;
    });
    let m3 = m.clone();
    let panicker = go!(move || {
        assert!(wait_until(ROUNDS, || held.load(SeqCst)));
        let _d = LockOnDrop(m3);
        std::panic::panic_any(format!("{EXPECTED_PANIC}: unwinding through a Mutex lock"));
    });
    assert!(panicker.join().is_err());
    holder.join().unwrap();
    assert_eq!(*m.lock(), 11);
}

// ---------------------------------------------------------------------------------------------
// Condvar
// ---------------------------------------------------------------------------------------------

/// A bounded buffer shared by producers and consumers.
struct Buffer {
    q: Mutex<(VecDeque<u64>, bool)>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

/// Bounded buffer (capacity 4) with `not_empty`/`not_full` condvars: 6 producers (one a plain
/// thread) × 300 values, 5 consumers (one a plain thread). Every value arrives exactly once.
pub fn condvar_producer_consumer() {
    const PRODUCERS: u64 = 6;
    const PER: u64 = 300;
    const CONSUMERS: usize = 5;
    let b = Arc::new(Buffer {
        q: Mutex::new((VecDeque::new(), false)),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        cap: 4,
    });
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let b = b.clone();
            Worker::spawn(p == 0, move || {
                for i in 0..PER {
                    let mut g = b.not_full.wait_while(b.q.lock(), |(q, _)| q.len() >= b.cap);
                    g.0.push_back(p * PER + i);
                    drop(g);
                    b.not_empty.notify_one();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let b = b.clone();
            Worker::spawn(c == 0, move || {
                let mut got = Vec::new();
                loop {
                    let mut g = b
                        .not_empty
                        .wait_while(b.q.lock(), |(q, closed)| q.is_empty() && !*closed);
                    match g.0.pop_front() {
                        Some(v) => {
                            drop(g);
                            b.not_full.notify_one();
                            got.push(v);
                        }
                        None => return got, // empty and closed
                    }
                }
            })
        })
        .collect();
    join_all(producers);
    b.q.lock().1 = true;
    b.not_empty.notify_all();
    let mut all: Vec<u64> = join_all(consumers).into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (0..PRODUCERS * PER).collect::<Vec<_>>());
}

/// Nobody notifies: `wait_timeout` returns timed out, not before its time, from a G (runtime
/// timer) and from a plain thread (`park_timeout`), with the mutex relocked.
pub fn condvar_wait_timeout_times_out() {
    fn check() {
        let (m, cv) = (Mutex::new(7u32), Condvar::new());
        for ms in [0u64, 1, 5] {
            let d = Duration::from_millis(ms);
            let t = Instant::now();
            let (g, r) = cv.wait_timeout(m.lock(), d);
            assert!(r.timed_out(), "not notified, yet not timed out");
            assert!(
                t.elapsed() >= d,
                "timed out early: {:?} < {d:?}",
                t.elapsed()
            );
            assert_eq!(*g, 7);
            assert!(m.is_locked());
        }
        let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(2), |v| *v == 7);
        assert!(r.timed_out() && *g == 7);
    }
    go!(check).join().unwrap();
    thread::spawn(check).join().unwrap();
}

/// Notified long before its (60 s) timeout: `wait_timeout` reports not timed out, for a G and a
/// thread waiter, notified by a G and by a thread. The notifier can only take the mutex once the
/// waiter released it inside `wait_timeout`, so the notification always finds it waiting.
pub fn condvar_wait_timeout_notified() {
    for (waiter_thread, notifier_thread) in
        [(false, false), (false, true), (true, false), (true, true)]
    {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p = pair.clone();
        let waiter = Worker::spawn(waiter_thread, move || {
            let g = p.0.lock();
            let p2 = p.clone();
            let notifier = Worker::spawn(notifier_thread, move || {
                *p2.0.lock() = true;
                p2.1.notify_one();
            });
            let (g, r) = p.1.wait_timeout(g, Duration::from_secs(60));
            assert!(!r.timed_out(), "timed out although notified");
            assert!(*g);
            notifier
        });
        waiter.join().join();
    }
}

/// Timed waiters (timeouts of 0–300 µs, in a loop) and untimed waiters race notifications: each
/// of 3 producers adds tokens one at a time with `notify_one`; every waiter wants one token.
/// A notification that meets a waiter whose timeout already fired must go to the next one:
/// otherwise an untimed waiter sleeps forever (the watchdog). Tokens are counted exactly.
pub fn condvar_timeouts_race_notifications() {
    const WAITERS: u64 = 60;
    const PRODUCERS: u64 = 3;
    let st = Arc::new((Mutex::new(0u64), Condvar::new()));
    let timeouts = Arc::new(AtomicU64::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|w| {
            let (st, timeouts) = (st.clone(), timeouts.clone());
            Worker::spawn(w % 10 == 9, move || {
                let (m, cv) = &*st;
                let mut g = m.lock();
                if w % 2 == 0 {
                    g = cv.wait_while(g, |t| *t == 0);
                } else {
                    let d = Duration::from_micros(1 + (w * 37) % 300);
                    loop {
                        let (g2, r) = cv.wait_timeout_while(g, d, |t| *t == 0);
                        g = g2;
                        if !r.timed_out() {
                            break;
                        }
                        timeouts.fetch_add(1, SeqCst);
                    }
                }
                *g -= 1;
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let st = st.clone();
            Worker::spawn(p == 0, move || {
                for i in 0..WAITERS / PRODUCERS {
                    *st.0.lock() += 1;
                    st.1.notify_one();
                    if i % 4 == 0 {
                        weft::yield_now();
                    }
                }
            })
        })
        .collect();
    join_all(producers);
    join_all(waiters);
    assert_eq!(*st.0.lock(), 0, "tokens left over or overdrawn");
    note(format_args!(
        "condvar_timeouts_race_notifications: {} timeouts",
        timeouts.load(SeqCst)
    ));
}

/// A `notify_one` that meets a waiter whose timeout fired (but which has not unlinked itself yet)
/// must go to the next waiter. Timed waiters (4 threads, 4 Gs) cycle through short timed waits
/// for the whole test, so timed-out nodes keep appearing in the queue between the untimed
/// waiters; a timed waiter that is notified instead passes the notification on (a valid use of
/// `notify_one`). 8 untimed waiters take 25 tokens each, and each token comes with exactly one
/// `notify_one` from a plain thread, which waits until the token was taken before it adds the
/// next: a swallowed notification leaves the token there and the untimed waiters parked for good
/// (the watchdog reports it). This is the stress counterpart of the loom model
/// `notify_skips_timed_out_waiter`, which checks the exact interleaving.
pub fn condvar_notify_passes_over_timed_out_waiters() {
    const UNTIMED: usize = 8;
    const TOKENS_EACH: usize = 25;
    const TIMED: usize = 8;
    let st = Arc::new((Mutex::new(0usize), Condvar::new()));
    let done = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicUsize::new(0));
    let passes = Arc::new(AtomicUsize::new(0));
    let timed: Vec<_> = (0..TIMED)
        .map(|t| {
            let (st, done, cycles, passes) =
                (st.clone(), done.clone(), cycles.clone(), passes.clone());
            Worker::spawn(t % 2 == 0, move || {
                let (m, cv) = &*st;
                let d = Duration::from_micros(5 + 5 * t as u64);
                while !done.load(SeqCst) {
                    let (g, r) = cv.wait_timeout(m.lock(), d);
                    drop(g);
                    cycles.fetch_add(1, SeqCst);
                    if !r.timed_out() {
                        passes.fetch_add(1, SeqCst);
                        cv.notify_one();
                    }
                }
            })
        })
        .collect();
    // Let the timed waiters get going first, so that untimed ones queue between them.
    assert!(wait_until(ROUNDS, || cycles.load(SeqCst) >= 4 * TIMED));
    let untimed: Vec<_> = (0..UNTIMED)
        .map(|_| {
            let st = st.clone();
            go!(move || {
                let (m, cv) = &*st;
                for _ in 0..TOKENS_EACH {
                    *cv.wait_while(m.lock(), |t| *t == 0) -= 1;
                }
            })
        })
        .collect();
    let st2 = st.clone();
    thread::spawn(move || {
        for i in 0..UNTIMED * TOKENS_EACH {
            *st2.0.lock() += 1;
            st2.1.notify_one();
            for _ in 0..(i % 7) * 100 {
                std::hint::spin_loop();
            }
            // One token at a time: it is taken only if its notification reached an untimed
            // waiter (directly or passed on), so a swallowed one stalls the test here.
            while *st2.0.lock() != 0 {
                thread::yield_now();
            }
        }
    })
    .join()
    .unwrap();
    for h in untimed {
        h.join().unwrap();
    }
    done.store(true, SeqCst);
    join_all(timed);
    assert_eq!(*st.0.lock(), 0);
    note(format_args!(
        "condvar_notify_passes_over_timed_out_waiters: {} timed waits, {} passed on",
        cycles.load(SeqCst),
        passes.load(SeqCst)
    ));
}

/// The exact race behind `condvar_notify_passes_over_timed_out_waiters`, staged: waiter T's
/// timeout fires while T cannot run yet, so its node is `TIMED_OUT` but still queued, ahead of
/// an untimed waiter U; then `notify_one` runs. It must skip T and wake U.
///
/// T waits in a destructor while its G unwinds, so it blocks its OS thread instead of switching
/// (`docs/DESIGN.md` §4) and, once its timer fired, needs a P back before it can unlink its
/// node. On 1 P the notifier N holds the only P: N spins until T's timer is due, yields once
/// (that scheduling round fires the timer), and notifies before it yields again, so T is still
/// waiting for the P. (Should the timer not have fired yet, T is notified
/// instead and passes the notification on: the race is then not staged, and the test still
/// passes; `WEFT_TEST_VERBOSE` says which happened.) On N Ps the timing is not controlled; the
/// case is a plain check there.
pub fn condvar_notify_skips_waiter_that_timed_out() {
    const T_TIMEOUT: Duration = Duration::from_millis(2);
    struct St {
        t_deadline: Option<Instant>,
        t_timed_out: bool,
        u_waiting: bool,
        token: bool,
    }
    type Shared = Arc<(Mutex<St>, Condvar)>;
    struct WaitOnDrop(Shared);
    impl Drop for WaitOnDrop {
        fn drop(&mut self) {
            let (m, cv) = &*self.0;
            let mut g = m.lock();
            g.t_deadline = Some(Instant::now() + T_TIMEOUT);
            let (mut g, r) = cv.wait_timeout(g, T_TIMEOUT);
            g.t_timed_out = r.timed_out();
            drop(g);
            if !r.timed_out() {
                cv.notify_one(); // not for us: pass it on
            }
        }
    }
    let st: Shared = Arc::new((
        Mutex::new(St {
            t_deadline: None,
            t_timed_out: false,
            u_waiting: false,
            token: false,
        }),
        Condvar::new(),
    ));
    let s1 = st.clone();
    let t = go!(move || {
        let _w = WaitOnDrop(s1);
        std::panic::panic_any(format!("{EXPECTED_PANIC}: timed wait while unwinding"));
    });
    let s2 = st.clone();
    let u = go!(move || {
        let (m, cv) = &*s2;
        assert!(wait_until(ROUNDS, || m.lock().t_deadline.is_some()));
        // T released the mutex inside its wait, so it is queued ahead of us.
        let mut g = m.lock();
        g.u_waiting = true;
        let g = cv.wait_while(g, |s| !s.token);
        assert!(g.token);
    });
    let s3 = st.clone();
    let n = go!(move || {
        let (m, cv) = &*s3;
        assert!(wait_until(ROUNDS, || m.lock().u_waiting));
        // Spin (without yielding: on 1 P nothing runs timers meanwhile) until T's timer is
        // due, then yield once: that scheduling round fires it and runs us again.
        let due = m.lock().t_deadline.expect("T is waiting") + Duration::from_micros(100);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        weft::yield_now();
        m.lock().token = true;
        cv.notify_one();
    });
    n.join().unwrap();
    u.join().unwrap();
    assert!(t.join().is_err());
    note(format_args!(
        "condvar_notify_skips_waiter_that_timed_out: T timed out: {} (race staged if true)",
        st.0.lock().t_timed_out
    ));
}

/// `notify_all` wakes every waiter (Gs and threads), also ones queued behind waiters that timed
/// out.
pub fn condvar_notify_all_wakes_everyone() {
    const WAITERS: usize = 40;
    let st = Arc::new((Mutex::new((false, 0usize)), Condvar::new()));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|w| {
            let st = st.clone();
            Worker::spawn(w % 8 == 0, move || {
                let (m, cv) = &*st;
                let mut g = m.lock();
                g.1 += 1;
                if w % 3 == 0 {
                    // One short timed wait first (it times out: nobody notifies yet).
                    g = cv.wait_timeout(g, Duration::from_micros(50)).0;
                }
                let _g = cv.wait_while(g, |(go, _)| !*go);
            })
        })
        .collect();
    // Every waiter is in (it registered under the lock, then waits until `go`).
    let st2 = st.clone();
    let opener = go!(move || {
        assert!(wait_until(ROUNDS, || st2.0.lock().1 == WAITERS));
        st2.0.lock().0 = true;
        st2.1.notify_all();
    });
    opener.join().unwrap();
    join_all(waiters);
}

// ---------------------------------------------------------------------------------------------
// WaitGroup
// ---------------------------------------------------------------------------------------------

/// 10 000 Gs, each holding a `WaitGroup` clone that it drops when done (crossbeam's shape), and
/// then 10 000 Gs with Go's `add`/`done`, waited for by a G with `wait_all`: every G's work is
/// seen by the waiter.
pub fn wait_group_10k_gs() {
    let n = 10_000.min(weft::stack_budget() / 2) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let wg = WaitGroup::new();
    for i in 0..n {
        let (wg, done) = (wg.clone(), done.clone());
        go!(move || {
            if i % 2 == 0 {
                weft::yield_now();
            }
            done.fetch_add(1, SeqCst);
            drop(wg);
        });
    }
    wg.wait();
    assert_eq!(done.load(SeqCst), n);

    let done = Arc::new(AtomicU64::new(0));
    let d2 = done.clone();
    go!(move || {
        let wg = Arc::new(WaitGroup::new());
        for i in 0..n {
            wg.add(1);
            let (wg, done) = (wg.clone(), d2.clone());
            go!(move || {
                if i % 2 == 1 {
                    weft::yield_now();
                }
                done.fetch_add(1, SeqCst);
                wg.done();
            });
        }
        wg.wait_all();
        assert_eq!(d2.load(SeqCst), n);
        assert_eq!(wg.tasks(), 0);
    })
    .join()
    .unwrap();
    assert_eq!(done.load(SeqCst), n);
}

/// Several waiters (Gs and threads) on one group: some `wait` (consuming their clone), some
/// `wait_all`; 200 workers finish only after every waiter is already waiting.
pub fn wait_group_waiters_gs_and_threads() {
    const WORKERS: usize = 200;
    const WAITERS: usize = 6;
    let wg = WaitGroup::new();
    let go_ahead = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::new(AtomicUsize::new(0));
    for _ in 0..WORKERS {
        wg.add(1);
    }
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (wg, go_ahead, finished) = (wg.clone(), go_ahead.clone(), finished.clone());
            go!(move || {
                assert!(wait_until(ROUNDS, || go_ahead.load(SeqCst)));
                finished.fetch_add(1, SeqCst);
                wg.done();
                drop(wg);
            })
        })
        .collect();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|w| {
            let (wg, finished, waiting) = (wg.clone(), finished.clone(), waiting.clone());
            Worker::spawn(w % 2 == 1, move || {
                waiting.fetch_add(1, SeqCst);
                if w < WAITERS / 2 {
                    wg.wait_all();
                    assert_eq!(finished.load(SeqCst), WORKERS);
                } else {
                    wg.wait();
                    assert_eq!(finished.load(SeqCst), WORKERS);
                }
            })
        })
        .collect();
    // Release the workers once every waiter announced itself (it may still be on its way into
    // the wait; either order must work).
    let (ga, wt) = (go_ahead.clone(), waiting.clone());
    go!(move || {
        assert!(wait_until(ROUNDS, || wt.load(SeqCst) == WAITERS));
        ga.store(true, SeqCst);
    })
    .join()
    .unwrap();
    wg.wait();
    assert_eq!(finished.load(SeqCst), WORKERS);
    for h in workers {
        h.join().unwrap();
    }
    join_all(waiters);
}

// ---------------------------------------------------------------------------------------------
// RwLock
// ---------------------------------------------------------------------------------------------

/// 8 reader Gs each take the read lock and then wait, holding it (parked in `yield_now`), until
/// all 8 hold it at once: readers share the lock (on 1 P too, since a reader parks while holding
/// it). While they hold it, a plain thread's `try_write` fails and its `try_read` succeeds.
pub fn rwlock_readers_in_parallel() {
    const READERS: usize = 8;
    let l = Arc::new(WRwLock::new(5u32));
    let inside = Arc::new(AtomicUsize::new(0));
    let checked = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..READERS)
        .map(|_| {
            let (l, inside, checked) = (l.clone(), inside.clone(), checked.clone());
            go!(move || {
                let r = l.read();
                inside.fetch_add(1, SeqCst);
                assert!(
                    wait_until(ROUNDS, || inside.load(SeqCst) == READERS),
                    "readers did not get in together"
                );
                assert!(wait_until(ROUNDS, || checked.load(SeqCst)));
                assert_eq!(*r, 5);
            })
        })
        .collect();
    let (l2, inside2) = (l.clone(), inside.clone());
    thread::spawn(move || {
        while inside2.load(SeqCst) < READERS {
            thread::yield_now();
        }
        assert!(
            l2.try_write().is_none(),
            "writer got in with readers inside"
        );
        assert_eq!(*l2.try_read().expect("one more reader fits"), 5);
        checked.store(true, SeqCst);
    })
    .join()
    .unwrap();
    for h in hs {
        h.join().unwrap();
    }
    *l.write() += 1;
    assert_eq!(*l.read(), 6);
}

/// Readers and writers (Gs and threads) hammer one lock, holding it across parks: a writer is
/// always alone, a reader never sees a writer inside, and every write lands.
pub fn rwlock_writers_exclusive() {
    const WORKERS: u64 = 24;
    const ITERS: u64 = 60;
    struct St {
        l: WRwLock<u64>,
        readers: AtomicUsize,
        writers: AtomicUsize,
    }
    let st = Arc::new(St {
        l: WRwLock::new(0),
        readers: AtomicUsize::new(0),
        writers: AtomicUsize::new(0),
    });
    let ws: Vec<_> = (0..WORKERS)
        .map(|w| {
            let st = st.clone();
            Worker::spawn(w % 8 == 7, move || {
                let mut writes = 0;
                for i in 0..ITERS {
                    if (w + i) % 4 == 0 {
                        let mut g = st.l.write();
                        assert_eq!(st.writers.fetch_add(1, SeqCst), 0, "two writers");
                        assert_eq!(st.readers.load(SeqCst), 0, "writer with readers");
                        let v = *g;
                        park_a_little(i);
                        *g = v + 1;
                        writes += 1;
                        st.writers.fetch_sub(1, SeqCst);
                    } else {
                        let g = st.l.read();
                        st.readers.fetch_add(1, SeqCst);
                        assert_eq!(st.writers.load(SeqCst), 0, "reader with a writer");
                        let v = *g;
                        park_a_little(i);
                        assert_eq!(*g, v, "value changed under a read lock");
                        st.readers.fetch_sub(1, SeqCst);
                    }
                }
                writes
            })
        })
        .collect();
    let writes: u64 = join_all(ws).into_iter().sum();
    assert_eq!(*st.l.read(), writes);
}

/// Writer preference: with a reader inside, a writer queues; a reader that arrives after it
/// cannot get in (`try_read` fails, `read` parks) until the writer has been and gone.
pub fn rwlock_writer_preference() {
    let l = Arc::new(WRwLock::new(Vec::<&str>::new()));
    let first = l.read();
    let l2 = l.clone();
    let writer = go!(move || l2.write().push("writer"));
    // Wait until the writer has announced itself (it is then waiting for `first`).
    assert!(wait_until(ROUNDS, || l.is_write_locked()));
    assert!(l.try_read().is_none(), "a reader got past a waiting writer");
    let l3 = l.clone();
    let late_reader = go!(move || {
        let r = l3.read();
        r.clone()
    });
    // The late reader cannot get in; let it try for a while.
    for _ in 0..100 {
        weft::yield_now();
    }
    assert!(
        !late_reader.is_finished(),
        "late reader overtook the waiting writer"
    );
    drop(first);
    writer.join().unwrap();
    assert_eq!(late_reader.join().unwrap(), ["writer"]);
}

// ---------------------------------------------------------------------------------------------
// Once, OnceLock
// ---------------------------------------------------------------------------------------------

/// 48 Gs and 4 threads race `call_once`; the closure parks (sleep) while the others queue. It
/// runs exactly once, and every caller returns after it completed.
pub fn once_racing_initialisers() {
    let once = Arc::new(Once::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let ws: Vec<_> = (0..52)
        .map(|i| {
            let (once, runs) = (once.clone(), runs.clone());
            Worker::spawn(i >= 48, move || {
                once.call_once(|| {
                    weft::sleep(Duration::from_millis(1));
                    runs.fetch_add(1, SeqCst);
                });
                assert!(once.is_completed());
                assert_eq!(runs.load(SeqCst), 1);
            })
        })
        .collect();
    join_all(ws);
    assert_eq!(runs.load(SeqCst), 1);
}

/// `get_or_init` from 48 Gs and 4 threads: one initialiser runs, everyone gets its value; `set`
/// afterwards fails with the value handed back.
pub fn once_lock_racing_initialisers() {
    let cell = Arc::new(OnceLock::<String>::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let ws: Vec<_> = (0..52u32)
        .map(|i| {
            let (cell, runs) = (cell.clone(), runs.clone());
            Worker::spawn(i % 13 == 0, move || {
                if i % 2 == 0 {
                    weft::yield_now();
                }
                cell.get_or_init(|| {
                    runs.fetch_add(1, SeqCst);
                    weft::yield_now();
                    format!("init by {i}")
                })
                .clone()
            })
        })
        .collect();
    let vals = join_all(ws);
    assert_eq!(runs.load(SeqCst), 1);
    assert!(vals.iter().all(|v| v == &vals[0]));
    assert_eq!(cell.set("late".into()), Err("late".into()));
    assert_eq!(cell.get(), Some(&vals[0]));
}

/// Fault injection (issue 7): a G panics while holding a `Mutex` with four waiters parked on it
/// (Gs and a plain thread). No poisoning (docs/SYNC.md): the guard unlocks on unwind, every
/// waiter gets the lock in turn and sees the state the panicking holder left, nothing hangs, and
/// the panic comes back from `join`.
pub fn mutex_holder_panics_with_waiters_queued() {
    let m = Arc::new(Mutex::new(Vec::<u32>::new()));
    let holding = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let holder = {
        let (m, holding, release) = (m.clone(), holding.clone(), release.clone());
        go!(move || {
            let mut g = m.lock();
            g.push(0); // a half-done update the next holders will see
            holding.store(true, SeqCst);
            assert!(wait_until(ROUNDS, || release.load(SeqCst)));
            std::panic::panic_any(format!("{EXPECTED_PANIC}: holder of a weft Mutex"));
        })
    };
    assert!(wait_until(ROUNDS, || holding.load(SeqCst)));
    let waiters: Vec<_> = (1..=4u32)
        .map(|i| {
            let m = m.clone();
            Worker::spawn(i == 3, move || {
                m.lock().push(i);
            })
        })
        .collect();
    // Let the waiters queue behind the holder, then make it panic.
    weft::yield_now();
    release.store(true, SeqCst);
    assert!(
        holder.join().is_err(),
        "the holder's panic must come back from join"
    );
    join_all(waiters);
    let mut seen = m.lock().clone();
    assert_eq!(
        seen.remove(0),
        0,
        "the panicking holder's update is visible (no rollback)"
    );
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4], "every waiter got the lock once");
    assert!(m.try_lock().is_some(), "the mutex is free afterwards");
}

/// No poisoning: an initialiser that panics leaves the cell empty, and the next caller (parked
/// meanwhile) runs its own.
pub fn once_lock_retries_after_panic() {
    let cell = Arc::new(OnceLock::<u32>::new());
    let started = Arc::new(AtomicBool::new(false));
    let (c1, s1) = (cell.clone(), started.clone());
    let panicker = go!(move || {
        c1.get_or_init(|| {
            s1.store(true, SeqCst);
            weft::sleep(Duration::from_millis(1));
            std::panic::panic_any(format!("{EXPECTED_PANIC}: failing initialiser"));
        });
    });
    let c2 = cell.clone();
    let second = go!(move || {
        assert!(wait_until(ROUNDS, || started.load(SeqCst)));
        *c2.get_or_init(|| 2)
    });
    assert!(panicker.join().is_err());
    assert_eq!(second.join().unwrap(), 2);
    assert_eq!(cell.get(), Some(&2));
}

// ---------------------------------------------------------------------------------------------
// Barrier, Semaphore
// ---------------------------------------------------------------------------------------------

/// 16 Gs (2 of them threads) meet at a barrier 20 times: nobody leaves a round before all 16
/// arrived, and each round has exactly one leader.
pub fn barrier_one_leader_per_round() {
    const N: usize = 16;
    const ROUNDS_: usize = 20;
    let b = Arc::new(Barrier::new(N));
    let arrived: Arc<Vec<AtomicUsize>> =
        Arc::new((0..ROUNDS_).map(|_| AtomicUsize::new(0)).collect());
    let leaders: Arc<Vec<AtomicUsize>> =
        Arc::new((0..ROUNDS_).map(|_| AtomicUsize::new(0)).collect());
    let ws: Vec<_> = (0..N)
        .map(|w| {
            let (b, arrived, leaders) = (b.clone(), arrived.clone(), leaders.clone());
            Worker::spawn(w % 8 == 3, move || {
                for r in 0..ROUNDS_ {
                    if (w + r) % 5 == 0 {
                        weft::yield_now();
                    }
                    arrived[r].fetch_add(1, SeqCst);
                    let res = b.wait();
                    assert_eq!(arrived[r].load(SeqCst), N, "left round {r} early");
                    if res.is_leader() {
                        leaders[r].fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    join_all(ws);
    for r in 0..ROUNDS_ {
        assert_eq!(leaders[r].load(SeqCst), 1, "round {r}: leaders");
    }
}

/// 3 permits, 40 Gs and 2 threads: never more than 3 holders, and exactly 3 at some point (each
/// holder stays until the holders are 3 or nobody else is left to come).
pub fn semaphore_bounds_concurrency() {
    const PERMITS: usize = 3;
    const WORKERS: usize = 42;
    let sem = Arc::new(Semaphore::new(PERMITS));
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let ws: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (sem, inside, max, finished) =
                (sem.clone(), inside.clone(), max.clone(), finished.clone());
            Worker::spawn(w >= 40, move || {
                let permit = sem.acquire();
                let now = inside.fetch_add(1, SeqCst) + 1;
                assert!(now <= PERMITS, "{now} holders of {PERMITS} permits");
                max.fetch_max(now, SeqCst);
                assert!(wait_until(ROUNDS, || {
                    inside.load(SeqCst) == PERMITS
                        || finished.load(SeqCst) + inside.load(SeqCst) == WORKERS
                }));
                inside.fetch_sub(1, SeqCst);
                finished.fetch_add(1, SeqCst);
                drop(permit);
            })
        })
        .collect();
    join_all(ws);
    assert_eq!(max.load(SeqCst), PERMITS);
    assert_eq!(sem.available_permits(), PERMITS);
}

// ---------------------------------------------------------------------------------------------
// Mutex fairness
// ---------------------------------------------------------------------------------------------

/// Give up after this many re-locks by the hog. Starvation mode should let the waiter in after
/// ~1 ms (a few thousand re-locks at most); a mutex without it never would.
const HOG_LIMIT: u64 = 5_000_000;

/// A G re-locks in a loop, holding the lock across `yield_now` (so the waiter runs, finds the
/// lock taken and parks, every round). A waiting G must get the lock while the hog still runs:
/// after 1 ms of waiting it switches the mutex to starvation mode and the hog hands it over.
pub fn mutex_relocker_does_not_starve_waiter() {
    hog_vs_waiter(false);
}

/// The same with a plain OS thread as the hog and a G waiting.
pub fn mutex_relocking_thread_does_not_starve_g() {
    hog_vs_waiter(true);
}

fn hog_vs_waiter(hog_on_thread: bool) {
    let m = Arc::new(Mutex::new(0u64));
    let waiter_done = Arc::new(AtomicBool::new(false));
    let hog_started = Arc::new(AtomicBool::new(false));
    let (m1, wd1, hs1) = (m.clone(), waiter_done.clone(), hog_started.clone());
    let hog = Worker::spawn(hog_on_thread, move || {
        let mut n = 0u64;
        while !wd1.load(SeqCst) && n < HOG_LIMIT {
            let mut g = m1.lock();
            hs1.store(true, SeqCst);
            *g += 1;
            if hog_on_thread {
                thread::yield_now();
            } else {
                weft::yield_now();
            }
            drop(g);
            n += 1;
        }
        n
    });
    let (m2, wd2) = (m.clone(), waiter_done.clone());
    let waiter = go!(move || {
        assert!(wait_until(ROUNDS, || hog_started.load(SeqCst)));
        let g = m2.lock();
        let at = *g;
        wd2.store(true, SeqCst);
        at
    });
    let at = waiter.join().unwrap();
    let n = hog.join();
    note(format_args!(
        "hog_vs_waiter(thread hog: {hog_on_thread}): waiter got the lock after {at} hog rounds"
    ));
    assert!(
        n < HOG_LIMIT,
        "waiter starved: the hog re-locked {n} times while it waited"
    );
}

// ---------------------------------------------------------------------------------------------
// The proptest
// ---------------------------------------------------------------------------------------------

/// What a worker holds the mutex across.
#[derive(Debug, Clone, Copy)]
pub enum Hold {
    Nothing,
    Yield,
    Sleep(u16),
}

/// One operation of a worker.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Lock, check and bump the counter, holding the lock across `Hold`.
    Incr(Hold),
    /// `try_lock`; bump the counter if it worked.
    TryIncr,
    /// Add a token under the lock; `notify_all` or `notify_one`.
    Produce { all: bool },
    /// Take a token: `wait_while` (None) or `wait_timeout_while` loops with this many µs.
    Consume(Option<u16>),
}

/// A worker: on a plain thread or a G, and its operations.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    thread: bool,
    ops: Vec<Op>,
}

fn hold() -> impl Strategy<Value = Hold> {
    prop_oneof![
        3 => Just(Hold::Nothing),
        3 => Just(Hold::Yield),
        1 => (0..200u16).prop_map(Hold::Sleep),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => hold().prop_map(Op::Incr),
        1 => Just(Op::TryIncr),
        2 => any::<bool>().prop_map(|all| Op::Produce { all }),
        2 => prop::option::of(0..300u16).prop_map(Op::Consume),
    ]
}

/// 1–8 workers of 1–20 operations, at most 2 of them plain threads. Produces and consumes are
/// balanced afterwards (extra produces go to the workers that have too few), and in every worker
/// its produces come before its consumes, so consumers can only wait for tokens that come.
fn program() -> impl Strategy<Value = Vec<WorkerSpec>> {
    vec((any::<bool>(), vec(op(), 1..20)), 1..8).prop_map(|ws| {
        let mut threads = 0;
        let mut specs: Vec<WorkerSpec> = ws
            .into_iter()
            .map(|(t, ops)| {
                let thread = t && threads < 2 && {
                    threads += 1;
                    true
                };
                WorkerSpec { thread, ops }
            })
            .collect();
        let count = |s: &[WorkerSpec], f: fn(&Op) -> bool| -> usize {
            s.iter()
                .map(|w| w.ops.iter().filter(|o| f(o)).count())
                .sum()
        };
        let produces = count(&specs, |o| matches!(o, Op::Produce { .. }));
        let consumes = count(&specs, |o| matches!(o, Op::Consume(_)));
        let n = specs.len();
        for i in produces..consumes {
            specs[i % n].ops.push(Op::Produce { all: i % 2 == 0 });
        }
        for i in consumes..produces {
            specs[i % n].ops.push(Op::Consume(None));
        }
        for w in &mut specs {
            // Stable: produces first, everything else in generated order.
            w.ops.sort_by_key(|o| !matches!(o, Op::Produce { .. }));
        }
        specs
    })
}

/// State shared by the workers of one case.
struct Shared {
    m: Mutex<(u64, u64)>, // (counter, tokens)
    cv: Condvar,
    inside: AtomicUsize,
    try_hits: AtomicU64,
}

fn run_worker(sh: &Shared, ops: &[Op]) {
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Incr(h) => {
                let mut g = sh.m.lock();
                assert_eq!(sh.inside.fetch_add(1, SeqCst), 0, "two holders");
                let v = g.0;
                match h {
                    Hold::Nothing => {}
                    Hold::Yield => weft::yield_now(),
                    Hold::Sleep(us) => weft::sleep(Duration::from_micros(us.into())),
                }
                g.0 = v + 1;
                sh.inside.fetch_sub(1, SeqCst);
            }
            Op::TryIncr => {
                if let Some(mut g) = sh.m.try_lock() {
                    assert_eq!(sh.inside.fetch_add(1, SeqCst), 0, "two holders");
                    g.0 += 1;
                    sh.try_hits.fetch_add(1, SeqCst);
                    sh.inside.fetch_sub(1, SeqCst);
                }
            }
            Op::Produce { all } => {
                sh.m.lock().1 += 1;
                if all {
                    sh.cv.notify_all();
                } else {
                    sh.cv.notify_one();
                }
            }
            Op::Consume(timeout) => {
                let mut g = sh.m.lock();
                match timeout {
                    None => g = sh.cv.wait_while(g, |st| st.1 == 0),
                    Some(us) => loop {
                        let d = Duration::from_micros(1 + u64::from(us) + i as u64);
                        let (g2, r) = sh.cv.wait_timeout_while(g, d, |st| st.1 == 0);
                        g = g2;
                        if !r.timed_out() {
                            break;
                        }
                    },
                }
                assert!(g.1 > 0);
                g.1 -= 1;
            }
        }
    }
}

/// Run one generated program; returns an error describing a violated invariant.
fn run_program(specs: &[WorkerSpec], waiter_on_thread: bool) -> Result<(), TestCaseError> {
    let sh = Arc::new(Shared {
        m: Mutex::new((0, 0)),
        cv: Condvar::new(),
        inside: AtomicUsize::new(0),
        try_hits: AtomicU64::new(0),
    });
    let finished = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let wg = WaitGroup::new();
    let n = specs.len();
    for w in specs {
        wg.add(1);
        let (sh, finished, wg, ops) = (sh.clone(), finished.clone(), wg.clone(), w.ops.clone());
        let failed = failed.clone();
        let work = move || {
            // A failed assertion must not leave the waiter waiting for this worker forever.
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| run_worker(&sh, &ops)));
            if run.is_err() {
                failed.store(true, SeqCst);
            }
            finished.fetch_add(1, SeqCst);
            wg.done();
            drop(wg);
        };
        if w.thread {
            thread::spawn(work);
        } else {
            go!(work);
        }
    }
    // The waiter: Go-style wait for every `done`, then crossbeam-style for every clone.
    let (sh2, finished2) = (sh.clone(), finished.clone());
    let check = move || -> (usize, u64, u64) {
        wg.wait_all();
        let f = finished2.load(SeqCst);
        wg.wait();
        let g = sh2.m.lock();
        (f, g.0, g.1)
    };
    let (f, counter, tokens) = if waiter_on_thread {
        thread::spawn(check).join().expect("waiter thread")
    } else {
        go!(check).join().expect("waiter G")
    };
    let incrs: u64 = specs
        .iter()
        .flat_map(|w| &w.ops)
        .filter(|o| matches!(o, Op::Incr(_)))
        .count() as u64;
    prop_assert!(
        !failed.load(SeqCst),
        "a worker failed an assertion (see its panic above)"
    );
    prop_assert_eq!(f, n, "wait_all returned before every worker was done");
    prop_assert_eq!(
        counter,
        incrs + sh.try_hits.load(SeqCst),
        "lost or extra increments"
    );
    prop_assert_eq!(tokens, 0, "tokens left over");
    prop_assert_eq!(sh.inside.load(SeqCst), 0);
    Ok(())
}

/// The proptest: random programs of Mutex/Condvar/WaitGroup operations over Gs and threads keep
/// the counter exact, the tokens balanced, and all finish (the watchdog bounds the run).
pub fn random_workloads_keep_invariants() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let t = Instant::now();
    let ran = AtomicUsize::new(0);
    runner
        .run(&(program(), any::<bool>()), |(specs, waiter_on_thread)| {
            ran.fetch_add(1, SeqCst);
            run_program(&specs, waiter_on_thread)
        })
        .unwrap();
    note(format_args!(
        "random_workloads_keep_invariants: {} cases in {:?}",
        ran.load(SeqCst),
        t.elapsed()
    ));
}
