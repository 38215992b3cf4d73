//! The runtime's test bodies, run on 1 P by `tests/rt_1p.rs` and on 2 Ps by `tests/rt_np.rs`
//! (the same bodies on both, as tokio's `rt_common` does).
//!
//! Each case is a plain `fn()`; the binaries wrap it with [`rt_tests!`], which adds the watchdog,
//! `init(procs)` and the test's [`Mode`](super::Mode). Cases that need the whole scheduler (exact
//! run order, fairness, tens of thousands of stacks) are `Exclusive`. A few cases branch on
//! `weft::max_procs()` where the 1-P and N-P guarantees differ; that is said where it happens.
//!
//! Waiting: inside a G only `weft::yield_now` loops ([`wait_until`]) and `park`/`unpark`
//! ([`Gate`]); on a plain thread also blocking std calls (`mpsc::Receiver::recv`, `join`). Every
//! loop is bounded, and the watchdog bounds the whole test.

use std::collections::HashSet;
use std::hint::black_box;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;

use weft::{go, Builder, JoinHandle};

use super::{gettid, note, payload_str, wait_until, ExpectedPayload, Gate, EXPECTED_PANIC};

/// Upper bound on `yield_now` rounds in a wait loop. Generous: the watchdog is the real limit.
const ROUNDS: u64 = 100_000_000;

/// Generate one `#[test]` per case for a binary with `$procs` Ps. Binaries add their own
/// P-count-specific tests next to it.
#[allow(unused_macros)] // binaries other than rt_1p/rt_np include `common` too
macro_rules! rt_tests {
    ($procs:expr) => {
        $crate::common::rt_cases::rt_tests!(@shared $procs;
            spawn_join_basic,
            nested_spawns,
            spawn_join_from_plain_threads,
            concurrency_bounded_by_procs,
            panic_isolation,
            join_handle_is_finished,
            join_self_panics,
            dropping_handle_detaches,
            run_returns_value_and_resumes_panic,
            park_unpark_tokens,
            park_unpark_ping_pong,
            config_apply_after_start,
            stack_size_floor_and_rounding,
            default_stack_holds_200k,
        );
        $crate::common::rt_cases::rt_tests!(@exclusive $procs;
            spawn_join_100k_waves,
            spawn_join_100k_from_many_gs,
            parked_20k_then_woken,
            runnext_runs_before_older_work,
            fairness_respawn_chain_vs_global_queue,
            fairness_ping_pong_vs_global_queue,
        );
    };
    (@shared $procs:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::common::run_test(
                    $procs,
                    $crate::common::Mode::Shared,
                    stringify!($name),
                    $crate::common::rt_cases::$name,
                );
            }
        )*
    };
    (@exclusive $procs:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::common::run_test(
                    $procs,
                    $crate::common::Mode::Exclusive,
                    stringify!($name),
                    $crate::common::rt_cases::$name,
                );
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use rt_tests;

/// A value a G computes from its index, so that a mixed-up result is caught, not just a wrong sum.
fn mix(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ k
}

// ---------------------------------------------------------------------------------------------
// Spawning and joining
// ---------------------------------------------------------------------------------------------

/// `go!`, `spawn` and `Builder` from a plain thread and from a G; ids; the plain-thread faces of
/// `current`, `current_id` and `yield_now`.
pub fn spawn_join_basic() {
    assert!(weft::is_started());
    assert_eq!(go!(|| 6 * 7).join().unwrap(), 42);
    assert_eq!(weft::spawn(|| String::from("hi")).join().unwrap(), "hi");

    let h = Builder::new()
        .name("basic".into())
        .stack_size(64 * 1024)
        .spawn(|| (weft::current_id(), weft::current().map(|c| c.id())))
        .expect("Builder::spawn");
    let id = h.id();
    assert_eq!(h.join().unwrap(), (Some(id), Some(id)));

    // A plain thread is not a coroutine; yield_now yields the OS thread there.
    assert_eq!(weft::current_id(), None);
    assert!(weft::current().is_none());
    weft::yield_now();

    // Ids are unique, and each G gets its own result back.
    let hs: Vec<JoinHandle<u64>> = (0..500u64).map(|i| go!(move || mix(i))).collect();
    let ids: HashSet<u64> = hs.iter().map(JoinHandle::id).collect();
    assert_eq!(ids.len(), hs.len(), "duplicate coroutine ids");
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), mix(i as u64));
    }

    // Inside a G: join parks only the joining G.
    let v = weft::run(|| {
        let me = weft::current_id().expect("run's closure is a coroutine");
        let a = go!(|| 1u32);
        let b = go!(move || weft::current_id().unwrap() != me);
        assert!(b.join().unwrap(), "child shares its parent's id");
        a.join().unwrap() + 2
    });
    assert_eq!(v, 3);
}

/// 100 000 Gs spawned and joined, in 10 waves of 10 000 from one G (the stack budget is ~30 000
/// live stacks with the default `vm.max_map_count`), each result checked.
pub fn spawn_join_100k_waves() {
    const WAVES: u64 = 10;
    const PER_WAVE: u64 = 10_000;
    let joined = weft::run(|| {
        let mut joined = 0u64;
        for w in 0..WAVES {
            let hs: Vec<_> = (0..PER_WAVE)
                .map(|i| {
                    let k = w * PER_WAVE + i;
                    weft::spawn(move || mix(k))
                })
                .collect();
            for (i, h) in hs.into_iter().enumerate() {
                let k = w * PER_WAVE + i as u64;
                assert_eq!(h.join().unwrap(), mix(k), "wrong result for G {k}");
                joined += 1;
            }
        }
        joined
    });
    assert_eq!(joined, WAVES * PER_WAVE);
}

/// 100 000 Gs spawned and joined by four spawner Gs at once, in waves of 1 000 each, so that
/// spawning, running and joining overlap across Ps.
pub fn spawn_join_100k_from_many_gs() {
    const SPAWNERS: u64 = 4;
    const WAVES: u64 = 25;
    const PER_WAVE: u64 = 1_000;
    let total = weft::run(|| {
        let spawners: Vec<_> = (0..SPAWNERS)
            .map(|s| {
                go!(move || {
                    let mut joined = 0u64;
                    for w in 0..WAVES {
                        let base = (s * WAVES + w) * PER_WAVE;
                        let hs: Vec<_> =
                            (0..PER_WAVE).map(|i| go!(move || mix(base + i))).collect();
                        for (i, h) in hs.into_iter().enumerate() {
                            assert_eq!(h.join().unwrap(), mix(base + i as u64));
                            joined += 1;
                        }
                    }
                    joined
                })
            })
            .collect();
        spawners.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, SPAWNERS * WAVES * PER_WAVE);
}

/// ~20 000 Gs alive at once, all parked, then all woken and joined.
pub fn parked_20k_then_woken() {
    // Leave room for the rest of the process under the stack budget (~30 000 by default).
    let n = 20_000.min(weft::stack_budget() * 2 / 3);
    assert!(
        n >= 1_000,
        "stack budget too small: {}",
        weft::stack_budget()
    );
    weft::run(move || {
        let gate = Arc::new(Gate::new());
        let hs: Vec<_> = (0..n as u64)
            .map(|i| {
                let g = gate.clone();
                go!(move || {
                    g.wait();
                    mix(i)
                })
            })
            .collect();
        assert!(
            wait_until(ROUNDS, || gate.registered() == n),
            "only {} of {n} coroutines reached the gate",
            gate.registered()
        );
        assert!(weft::num_goroutines() > n, "{}", weft::num_goroutines());
        assert!(weft::mapped_stacks() > n, "{}", weft::mapped_stacks());
        assert!(
            hs.iter().all(|h| !h.is_finished()),
            "a G passed a closed gate"
        );
        assert_eq!(gate.open(), n);
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), mix(i as u64));
        }
    });
}

/// Gs spawning Gs several levels deep: a fan-out tree, a chain where every level waits for the
/// next, and a grandchild's handle passed up and joined by its grandparent.
pub fn nested_spawns() {
    fn subtree(depth: u32, fanout: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let hs: Vec<_> = (0..fanout)
            .map(|_| go!(move || subtree(depth - 1, fanout)))
            .collect();
        1 + hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    }
    fn chain(n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        go!(move || chain(n - 1)).join().unwrap() + 1
    }
    // 4^0 + ... + 4^5 nodes.
    assert_eq!(weft::run(|| subtree(5, 4)), 1365);
    // 300 Gs alive at once, each parked in join on the next.
    assert_eq!(weft::run(|| chain(300)), 300);
    let v = weft::run(|| {
        let h: JoinHandle<JoinHandle<u64>> = go!(|| go!(|| 5));
        h.join().unwrap().join().unwrap()
    });
    assert_eq!(v, 5);
}

/// Spawn and join from several plain threads at once; handles joined on another thread than
/// the one that spawned; a plain-thread G joined inside a G; a plain thread blocked in `join` on
/// a parked G.
pub fn spawn_join_from_plain_threads() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 1_000;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                assert!(weft::current().is_none());
                let hs: Vec<_> = (0..PER_THREAD)
                    .map(|i| weft::spawn(move || mix(t * PER_THREAD + i)))
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), mix(t * PER_THREAD + i as u64));
                }
                // Spawn-then-join one at a time: the thread blocks in every join.
                for i in 0..200u64 {
                    assert_eq!(go!(move || i * 3).join().unwrap(), i * 3);
                }
                t
            })
        })
        .collect();
    let mut seen: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..THREADS).collect::<Vec<_>>());

    // Handles sent to another thread and joined there.
    let (tx, rx) = mpsc::channel::<JoinHandle<u64>>();
    let joiner = thread::spawn(move || rx.iter().map(|h| h.join().unwrap()).sum::<u64>());
    for i in 0..100u64 {
        tx.send(weft::spawn(move || i)).unwrap();
    }
    drop(tx);
    assert_eq!(joiner.join().unwrap(), 4950);

    // Spawned on a plain thread, joined inside a G.
    let h = weft::spawn(|| 11u32);
    assert_eq!(weft::run(move || h.join().unwrap() * 2), 22);

    // A plain thread blocks in join while the G is parked; another thread wakes the G.
    let gate = Arc::new(Gate::new());
    let g = gate.clone();
    let h = weft::spawn(move || {
        g.wait();
        "woken"
    });
    let joiner = thread::spawn(move || h.join().unwrap());
    assert!(wait_until(ROUNDS, || gate.registered() == 1));
    gate.open();
    assert_eq!(joiner.join().unwrap(), "woken");
}

/// No more Gs run at the same instant than there are Ps (on 1 P: never two at once). Each G
/// counts itself in while it spins without yielding.
pub fn concurrency_bounded_by_procs() {
    let procs = weft::max_procs();
    let running = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let (running, max_seen) = (running.clone(), max_seen.clone());
            go!(move || {
                for _ in 0..200 {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    max_seen.fetch_max(now, SeqCst);
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                    running.fetch_sub(1, SeqCst);
                    weft::yield_now();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let max = max_seen.load(SeqCst);
    note(format_args!("at most {max} coroutines ran at once"));
    assert!(
        (1..=procs).contains(&max),
        "{max} coroutines ran at once on {procs} Ps"
    );
}

// ---------------------------------------------------------------------------------------------
// Scheduling order and fairness
// ---------------------------------------------------------------------------------------------

/// A G readied into `runnext` runs before older queued work.
///
/// Go's rules, which weft follows (`sched/newproc.rs`, `sched/park.rs`): a new G goes into the
/// spawning P's `runnext`, and a G readied by `ready` (here: `unpark`) goes there too; either way
/// the G that was in `runnext` moves to the *tail* of the local ring. `runnext` runs before the
/// ring. So, on one P, with main G `A`:
///
/// ```text
/// A spawns C; A yields          ring [A], runnext C  -> C runs, parks      ring [A]
/// A runs again (from the ring, a fresh time slice)
/// A spawns B1                   ring [],          runnext B1
/// A spawns B2                   ring [B1],        runnext B2
/// A spawns B3                   ring [B1 B2],     runnext B3
/// A unparks C (ready)           ring [B1 B2 B3],  runnext C
/// A waits (yields)              ring [B1 B2 B3 A] -> C, B1, B2, B3 run in that order
/// ```
///
/// C was readied last, yet runs before B1..B3, which were queued before it. Then the same with a
/// new G: A spawns B1..B3 and then D, and D runs first. The exclusive mode
/// keeps other tests' Gs (and plain-thread spawns into the global queue) out of the way. On N Ps
/// another P may steal B1..B3 or C, so there only completion is checked.
pub fn runnext_runs_before_older_work() {
    let (readied, spawned) = weft::run(|| {
        // Phase 1: C is readied (unparked) after B1..B3 were queued.
        let order = Arc::new(Mutex::new(Vec::<&'static str>::new()));
        let c_handle = Arc::new(OnceLock::<weft::Coroutine>::new());
        let c_go = Arc::new(AtomicBool::new(false));
        let c = {
            let (order, c_handle, c_go) = (order.clone(), c_handle.clone(), c_go.clone());
            go!(move || {
                c_handle.set(weft::current().unwrap()).unwrap();
                while !c_go.load(SeqCst) {
                    weft::park();
                }
                order.lock().unwrap().push("C");
            })
        };
        // Let C run up to its park (on 1 P: A yields, C runs from runnext and parks, A resumes
        // from the ring).
        assert!(wait_until(ROUNDS, || c_handle.get().is_some()));
        spawn_recorders(&order);
        c_go.store(true, SeqCst);
        c_handle.get().unwrap().unpark();
        assert!(wait_until(ROUNDS, || order.lock().unwrap().len() == 4));
        c.join().unwrap();
        let readied = order.lock().unwrap().clone();

        // Phase 2: D is spawned after B1..B3. Yield first so that A starts a fresh time slice
        // (taken from the ring, not inherited through runnext).
        weft::yield_now();
        let order = Arc::new(Mutex::new(Vec::<&'static str>::new()));
        spawn_recorders(&order);
        let o = order.clone();
        let d = go!(move || o.lock().unwrap().push("D"));
        assert!(wait_until(ROUNDS, || order.lock().unwrap().len() == 4));
        d.join().unwrap();
        let spawned = order.lock().unwrap().clone();
        (readied, spawned)
    });
    note(format_args!("run order {readied:?}, {spawned:?}"));
    // Under WEFT_RANDOMIZE_SCHED the order is shuffled on purpose; only 4 runs each are checked.
    let randomized = std::env::var("WEFT_RANDOMIZE_SCHED").is_ok_and(|v| v.trim() == "1");
    if weft::max_procs() == 1 && !randomized {
        assert_eq!(
            readied,
            ["C", "B1", "B2", "B3"],
            "a readied G did not run first"
        );
        assert_eq!(
            spawned,
            ["D", "B1", "B2", "B3"],
            "a new G did not run first"
        );
    } else {
        for (mut got, last) in [(readied, "C"), (spawned, "D")] {
            got.sort_unstable();
            assert_eq!(got, ["B1", "B2", "B3", last]);
        }
    }
}

/// Spawn B1, B2, B3, detached; each records its name in `order` when it runs.
fn spawn_recorders(order: &Arc<Mutex<Vec<&'static str>>>) {
    for name in ["B1", "B2", "B3"] {
        let order = order.clone();
        drop(go!(move || order.lock().unwrap().push(name)));
    }
}

/// Respawn hops / ping-pong rounds after which the fairness tests give up and fail: far more
/// than the ~17 × 61 ≈ 1 000 hand-offs after which the 1-P scheduler must look at the global
/// queue (a `runnext` chain inherits one time slice at most 16 times; every 61st slice starts
/// with the global queue).
const FAIRNESS_MAX: u64 = 2_000_000;

/// `base` value meaning "the global-queue G has not been spawned yet".
const NOT_YET: u64 = u64::MAX;

/// Shared state of the fairness tests.
struct Race {
    /// Set by the G in the global queue when it finally runs.
    stop: AtomicBool,
    /// Hand-offs so far.
    hops: AtomicU64,
    /// `hops` when the global-queue G was spawned, or `NOT_YET`.
    base: AtomicU64,
}

impl Race {
    fn new() -> Arc<Race> {
        Arc::new(Race {
            stop: AtomicBool::new(false),
            hops: AtomicU64::new(0),
            base: AtomicU64::new(NOT_YET),
        })
    }

    /// Count a hand-off; whether the racers should stop (flag set, or starved for too long).
    fn hop(&self) -> bool {
        let n = self.hops.fetch_add(1, SeqCst) + 1;
        let base = self.base.load(SeqCst);
        self.stop.load(SeqCst) || (base != NOT_YET && n.saturating_sub(base) >= FAIRNESS_MAX)
    }

    /// From a plain thread, once the racers run: spawn the flag-setter (a spawn from a thread
    /// without a P goes to the global queue) and return its handle.
    fn release_setter(self: &Arc<Race>) -> JoinHandle<()> {
        assert!(
            wait_until(ROUNDS, || self.hops.load(SeqCst) >= 100),
            "the racers never started"
        );
        let r = self.clone();
        let setter = weft::spawn(move || r.stop.store(true, SeqCst));
        // Racing with the setter is fine: stop wins either way.
        self.base.store(self.hops.load(SeqCst), SeqCst);
        setter
    }

    fn assert_not_starved(&self, ended_at: u64) {
        let base = self.base.load(SeqCst);
        note(format_args!(
            "global-queue G ran after {} hand-offs (base {base}, ended at {ended_at})",
            ended_at.saturating_sub(base)
        ));
        assert!(
            self.stop.load(SeqCst),
            "the global-queue coroutine never ran"
        );
        assert!(
            ended_at.saturating_sub(base) < FAIRNESS_MAX,
            "the global-queue coroutine was starved for {FAIRNESS_MAX} hand-offs"
        );
    }
}

/// Fairness: two Gs that keep respawning each other ("ping" spawns the next "pong" and exits,
/// and so on: each successor goes into `runnext`) cannot starve a G in the global queue.
pub fn fairness_respawn_chain_vs_global_queue() {
    fn hop(r: Arc<Race>, done: mpsc::Sender<u64>, ping: bool) {
        if r.hop() {
            done.send(r.hops.load(SeqCst)).unwrap();
            return;
        }
        let next = if ping { "pong" } else { "ping" };
        let h = Builder::new()
            .name(next.into())
            .spawn(move || hop(r, done, !ping))
            .expect("spawn the successor");
        drop(h);
    }
    let race = Race::new();
    let (tx, rx) = mpsc::channel();
    let r = race.clone();
    drop(weft::spawn(move || hop(r, tx, true)));
    let setter = race.release_setter();
    let ended_at = rx.recv().expect("the chain ended without reporting");
    setter.join().unwrap();
    race.assert_not_starved(ended_at);
}

/// Fairness: two Gs that keep readying each other through park/unpark (each `unpark` puts the
/// other into `runnext`) cannot starve a G in the global queue.
pub fn fairness_ping_pong_vs_global_queue() {
    let race = Race::new();
    let players: Arc<[OnceLock<weft::Coroutine>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
    let turn = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..2usize)
        .map(|me| {
            let (race, players, turn) = (race.clone(), players.clone(), turn.clone());
            weft::spawn(move || {
                players[me].set(weft::current().unwrap()).unwrap();
                assert!(wait_until(ROUNDS, || players[1 - me].get().is_some()));
                let other = players[1 - me].get().unwrap().clone();
                loop {
                    while turn.load(SeqCst) != me {
                        weft::park();
                    }
                    let stop = race.hop();
                    turn.store(1 - me, SeqCst);
                    other.unpark();
                    if stop {
                        // The other player sees `stop` on its next turn (unparking a finished
                        // G is a no-op, so the last unpark is harmless).
                        return race.hops.load(SeqCst);
                    }
                }
            })
        })
        .collect();
    let setter = race.release_setter();
    let ended_at = hs.into_iter().map(|h| h.join().unwrap()).max().unwrap();
    setter.join().unwrap();
    race.assert_not_starved(ended_at);
}

/// N Ps only: CPU-bound Gs run on different OS threads at the same time, both when they are
/// spawned from a plain thread (into the global queue, which every P reads) and when a G spawns
/// them (into its own P's queue: the other P only gets one by stealing).
///
/// Two Gs meet at a barrier they wait at *without yielding*: a G that arrives first spins
/// (bounded) on the counter; if the other does not arrive, it leaves by a CAS and yields, and
/// tries again. A G that sees the pair complete was still executing, without a switch, from its
/// `gettid()` to that moment, and so was the other one (it can only leave by the CAS, which now
/// fails): two Gs executing at one instant are on two OS threads, so their tids must differ.
pub fn cpu_bound_gs_run_on_all_procs() {
    assert!(weft::max_procs() >= 2);
    for attempt in 0..3 {
        let tids = pair_tids();
        note(format_args!(
            "from a thread, attempt {attempt}: tids {tids:?}"
        ));
        assert_ne!(
            tids[0], tids[1],
            "attempt {attempt}: both ran on one thread"
        );
        let tids = weft::run(pair_tids);
        note(format_args!("from a G, attempt {attempt}: tids {tids:?}"));
        assert_ne!(
            tids[0], tids[1],
            "attempt {attempt}: both ran on one thread"
        );
    }
}

/// Spawn the two barrier Gs of [`cpu_bound_gs_run_on_all_procs`] and return their tids.
fn pair_tids() -> [i64; 2] {
    // Each spin is ~1 ms at most, far longer than an idle M takes to wake and steal; if every
    // try fails (the Gs never run at once) the test fails in a few seconds, before the watchdog.
    const TRIES: u32 = 2_000;
    const SPIN: u32 = 1 << 14;
    let arrived = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let arrived = arrived.clone();
            go!(move || {
                for _ in 0..TRIES {
                    let tid = gettid();
                    if arrived.fetch_add(1, SeqCst) == 1 {
                        return Some(tid);
                    }
                    for _ in 0..SPIN {
                        if arrived.load(SeqCst) == 2 {
                            return Some(tid);
                        }
                        std::hint::spin_loop();
                    }
                    if arrived.compare_exchange(1, 0, SeqCst, SeqCst).is_err() {
                        return Some(tid); // the other one arrived meanwhile
                    }
                    weft::yield_now();
                }
                None
            })
        })
        .collect();
    let mut tids = [0; 2];
    for (t, h) in tids.iter_mut().zip(hs) {
        *t = h
            .join()
            .unwrap()
            .expect("the two coroutines never ran at the same time");
    }
    tids
}

/// N Ps only: a G that yields is observed resuming on a different M at least once.
///
/// Each round the G spawns a hog (into its P's `runnext`; the spawn wakes an idle P) and
/// yields (onto its P's ring). Its P runs the hog, which spins until the G has resumed; so the
/// G can only resume if another M steals it from the ring. If the hog was stolen instead, the G
/// resumes on its own M, releases the hog, and the round is retried.
pub fn yield_resumes_on_another_m() {
    // The hog gives up after ~0.1-0.2 s of spinning, so that without stealing the test fails on
    // its own in well under the watchdog's limit; with stealing it succeeds in the first rounds.
    const ROUNDS_MAX: u32 = 100;
    const HOG_SPIN_MAX: u64 = 5_000_000;
    assert!(weft::max_procs() >= 2);
    let migrated_at = weft::run(|| {
        for round in 0..ROUNDS_MAX {
            let resumed = Arc::new(AtomicBool::new(false));
            let before = gettid();
            let r = resumed.clone();
            let hog = go!(move || {
                let mut n = 0u64;
                while !r.load(SeqCst) && n < HOG_SPIN_MAX {
                    std::hint::spin_loop();
                    n += 1;
                }
            });
            weft::yield_now();
            let after = gettid();
            resumed.store(true, SeqCst);
            hog.join().unwrap();
            if before != after {
                return Some(round);
            }
        }
        None
    });
    note(format_args!("migration seen in round {migrated_at:?}"));
    assert!(
        migrated_at.is_some(),
        "a yielding coroutine never resumed on another thread in {ROUNDS_MAX} rounds"
    );
}

// ---------------------------------------------------------------------------------------------
// Panics, handles, run
// ---------------------------------------------------------------------------------------------

/// A panicking G does not stop others (running, parked, or its parent); `join` returns `Err`
/// with the payload, whatever its type.
pub fn panic_isolation() {
    const STATIC_MSG: &str = "weft-test: expected panic (static str)";
    weft::run(|| {
        let gate = Arc::new(Gate::new());
        let waiters: Vec<_> = (0..8u64)
            .map(|i| {
                let g = gate.clone();
                go!(move || {
                    g.wait();
                    i
                })
            })
            .collect();
        let hs: Vec<_> = (0..48u64)
            .map(|i| {
                Builder::new()
                    .name(format!("isolated-{i}"))
                    .spawn(move || -> u64 {
                        weft::yield_now();
                        match i % 4 {
                            0 => panic!("weft-test: expected panic (static str)"),
                            1 => panic!("{EXPECTED_PANIC}: string {i}"),
                            2 => panic::panic_any(ExpectedPayload(i)),
                            _ => i * 10,
                        }
                    })
                    .unwrap()
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            let i = i as u64;
            let r = h.join();
            match i % 4 {
                0 => assert_eq!(
                    r.unwrap_err().downcast_ref::<&str>(),
                    Some(&STATIC_MSG),
                    "G {i}"
                ),
                1 => assert_eq!(
                    *r.unwrap_err().downcast::<String>().unwrap(),
                    format!("{EXPECTED_PANIC}: string {i}")
                ),
                2 => assert_eq!(
                    *r.unwrap_err().downcast::<ExpectedPayload>().unwrap(),
                    ExpectedPayload(i)
                ),
                _ => assert_eq!(r.unwrap(), i * 10),
            }
        }
        // The parked Gs are intact.
        assert!(wait_until(ROUNDS, || gate.registered() == 8));
        gate.open();
        for (i, h) in waiters.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64);
        }
        // A parent whose child panics carries on.
        let parent = go!(|| {
            let child = go!(|| -> u32 { panic!("{EXPECTED_PANIC}: child") });
            let err = child.join().unwrap_err();
            (payload_str(&*err).to_string(), 5)
        });
        assert_eq!(
            parent.join().unwrap(),
            (format!("{EXPECTED_PANIC}: child"), 5)
        );
    });
    // From a plain thread too, and the runtime keeps working afterwards.
    let e = weft::spawn(|| -> () { panic!("{EXPECTED_PANIC}: joined from a thread") })
        .join()
        .unwrap_err();
    assert!(payload_str(&*e).ends_with("joined from a thread"));
    assert_eq!(go!(|| 1).join().unwrap(), 1);
}

/// `is_finished` is false while the G runs or is parked, true once it returned or panicked.
pub fn join_handle_is_finished() {
    weft::run(|| {
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let h = go!(move || {
            g.wait();
            5
        });
        assert!(!h.is_finished());
        assert!(wait_until(ROUNDS, || gate.registered() == 1));
        assert!(!h.is_finished(), "finished while parked");
        gate.open();
        assert!(wait_until(ROUNDS, || h.is_finished()));
        assert_eq!(h.join().unwrap(), 5);

        let p = go!(|| -> u8 { panic!("{EXPECTED_PANIC}: is_finished") });
        assert!(wait_until(ROUNDS, || p.is_finished()));
        assert!(p.join().is_err());
    });
    // From a plain thread.
    let h = weft::spawn(|| 1);
    assert!(wait_until(ROUNDS, || h.is_finished()));
    assert!(format!("{h:?}").contains("finished: true"), "{h:?}");
    assert_eq!(h.join().unwrap(), 1);
}

/// A G that joins its own handle gets a panic instead of a deadlock (std does the same for
/// threads); `JoinHandle` and `Coroutine` are `Send + Sync` like std's.
pub fn join_self_panics() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<JoinHandle<u64>>();
    assert_send_sync::<weft::Coroutine>();

    let slot: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let s = slot.clone();
    let h = weft::spawn(move || {
        assert!(wait_until(ROUNDS, || s.lock().unwrap().is_some()));
        let me = s.lock().unwrap().take().unwrap();
        let r = panic::catch_unwind(panic::AssertUnwindSafe(|| me.join()));
        let msg = match r {
            Ok(_) => "join on itself returned".to_string(),
            Err(p) => payload_str(&*p).to_string(),
        };
        tx.send(msg).unwrap();
    });
    *slot.lock().unwrap() = Some(h);
    let msg = rx.recv().unwrap();
    assert!(msg.contains("tried to join itself"), "{msg}");
}

/// Dropping a `JoinHandle` detaches the G: it still runs to completion.
pub fn dropping_handle_detaches() {
    // Dropped while the G is parked, from a plain thread.
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new(Gate::new());
    let g = gate.clone();
    let h = weft::spawn(move || {
        g.wait();
        tx.send(weft::current_id().unwrap()).unwrap();
    });
    let id = h.id();
    assert!(wait_until(ROUNDS, || gate.registered() == 1));
    drop(h);
    gate.open();
    assert_eq!(rx.recv().unwrap(), id);

    // Many detached Gs, some of them panicking.
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..1_000 {
        let done = done.clone();
        drop(weft::spawn(move || {
            done.fetch_add(1, SeqCst);
            if i % 10 == 0 {
                panic!("{EXPECTED_PANIC}: detached {i}");
            }
        }));
    }
    assert!(wait_until(ROUNDS, || done.load(SeqCst) == 1_000));

    // The handle of a finished G.
    let h = weft::spawn(|| 3);
    assert!(wait_until(ROUNDS, || h.is_finished()));
    drop(h);

    // A G detached by a parent that exits first.
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new(Gate::new());
    let g = gate.clone();
    weft::run(move || {
        drop(go!(move || {
            g.wait();
            tx.send("orphan done").unwrap();
        }));
    });
    assert!(wait_until(ROUNDS, || gate.registered() == 1));
    gate.open();
    assert_eq!(rx.recv().unwrap(), "orphan done");
}

/// `run` returns the main G's value, resumes its panic on the calling thread (with the payload),
/// and works from inside a G too.
pub fn run_returns_value_and_resumes_panic() {
    assert_eq!(weft::run(|| 40 + 2), 42);
    let r = panic::catch_unwind(|| weft::run(|| -> u32 { panic!("{EXPECTED_PANIC}: in run") }));
    let p = r.unwrap_err();
    assert_eq!(
        p.downcast_ref::<String>().map(String::as_str),
        Some(format!("{EXPECTED_PANIC}: in run").as_str())
    );
    let r = panic::catch_unwind(|| weft::run(|| -> u32 { panic::panic_any(ExpectedPayload(77)) }));
    assert_eq!(
        r.unwrap_err().downcast_ref::<ExpectedPayload>(),
        Some(&ExpectedPayload(77))
    );
    // Nested: run inside a G parks that G only.
    assert_eq!(weft::run(|| weft::run(|| 5) + 1), 6);
    // Still alive.
    assert_eq!(weft::run(|| go!(|| 7).join().unwrap()), 7);
}

// ---------------------------------------------------------------------------------------------
// park / unpark
// ---------------------------------------------------------------------------------------------

/// Token semantics: an `unpark` before `park` makes it return at once (also after two unparks:
/// the token is a flag); `unpark` from another G or a plain thread wakes a parked G; unparking a
/// finished G is a no-op, also once its G struct has been reused; `park` on a plain thread is
/// `std::thread::park`.
pub fn park_unpark_tokens() {
    weft::run(|| {
        let me = weft::current().unwrap();
        assert_eq!(Some(me.id()), weft::current_id());
        // Token first: park returns at once (if it did not, this G would hang: watchdog).
        me.unpark();
        weft::park();
        // Two unparks make one token.
        me.unpark();
        me.unpark();
        weft::park();
        // Unpark from another G while we are parked.
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let waker = me.clone();
        let h = go!(move || {
            weft::yield_now();
            f.store(true, SeqCst);
            waker.unpark();
        });
        while !flag.load(SeqCst) {
            weft::park();
        }
        h.join().unwrap();
    });

    // Unpark from a plain thread.
    let (tx, rx) = mpsc::channel::<weft::Coroutine>();
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let h = weft::spawn(move || {
        tx.send(weft::current().unwrap()).unwrap();
        let mut parks = 0u32;
        while !f.load(SeqCst) {
            weft::park();
            parks += 1;
        }
        parks
    });
    let co = rx.recv().unwrap();
    assert_eq!(co.id(), h.id());
    flag.store(true, SeqCst);
    co.unpark();
    h.join().unwrap();

    // Unparking a finished G (whose G struct may already be reused) is a no-op.
    let h = weft::spawn(|| weft::current().unwrap());
    let id = h.id();
    let dead = h.join().unwrap();
    assert_eq!(dead.id(), id);
    dead.unpark();
    dead.unpark();
    let hs: Vec<_> = (0..64u64).map(|i| weft::spawn(move || i + 1)).collect();
    dead.unpark();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u64 + 1);
    }

    // On a plain thread park/unpark are std's.
    thread::current().unpark();
    weft::park();
}

/// Two Gs hand a turn back and forth 10 000 times through park/unpark; no wakeup is lost and no
/// turn is taken twice.
pub fn park_unpark_ping_pong() {
    const ROUNDS_EACH: u64 = 10_000;
    let players: Arc<[OnceLock<weft::Coroutine>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
    let turn = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::with_capacity(2 * ROUNDS_EACH as usize)));
    let hs: Vec<_> = (0..2usize)
        .map(|me| {
            let (players, turn, log) = (players.clone(), turn.clone(), log.clone());
            weft::spawn(move || {
                players[me].set(weft::current().unwrap()).unwrap();
                assert!(wait_until(ROUNDS, || players[1 - me].get().is_some()));
                let other = players[1 - me].get().unwrap().clone();
                for _ in 0..ROUNDS_EACH {
                    while turn.load(SeqCst) != me {
                        weft::park();
                    }
                    log.lock().unwrap().push(me);
                    turn.store(1 - me, SeqCst);
                    other.unpark();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2 * ROUNDS_EACH as usize);
    assert!(
        log.iter().enumerate().all(|(i, &p)| p == i % 2),
        "turns out of order"
    );
}

// ---------------------------------------------------------------------------------------------
// Settings and stacks
// ---------------------------------------------------------------------------------------------

/// `Config::apply` once the runtime runs: `AlreadyExists`; bad values (`max_procs` 0 or above the
/// limit, `max_stacks` 0, `stack_size` above 1 GiB): `InvalidInput`, even then.
pub fn config_apply_after_start() {
    use std::io::ErrorKind;
    let procs = weft::max_procs();
    assert!(weft::is_started());
    let e = weft::Config::new().max_procs(3).apply().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let e = weft::Config::new().apply().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    for bad in [
        weft::Config::new().max_procs(0),
        weft::Config::new().max_procs(weft::MAX_PROCS_LIMIT + 1),
        weft::Config::new().max_stacks(0),
        weft::Config::new().stack_size((1 << 30) + 1),
    ] {
        let e = bad.apply().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(weft::max_procs(), procs, "a failed apply changed max_procs");
}

/// Touch `N` bytes of stack in one frame; return how far below `top` the frame reaches.
#[inline(never)]
fn use_stack<const N: usize>(top: usize) -> usize {
    let mut buf = [0u8; N];
    buf.fill(1);
    black_box(&mut buf);
    assert_eq!(buf.iter().map(|&b| b as usize).sum::<usize>(), N);
    top - buf.as_ptr() as usize
}

/// Use `N` bytes of stack below a local of this frame; return the depth reached, in bytes.
#[inline(never)]
fn deep<const N: usize>() -> usize {
    let top = 0u8;
    use_stack::<N>(black_box(&top) as *const u8 as usize)
}

/// `Builder::stack_size` below the 16 KiB floor still gives a usable 16 KiB stack; a custom
/// large stack works too; above 1 GiB is `InvalidInput`.
pub fn stack_size_floor_and_rounding() {
    assert_eq!(weft::MIN_STACK_SIZE, 16 * 1024);
    for size in [
        0,
        1,
        4096,
        weft::MIN_STACK_SIZE - 1,
        weft::MIN_STACK_SIZE + 1,
    ] {
        let h = Builder::new()
            .stack_size(size)
            .spawn(deep::<{ 8 * 1024 }>)
            .unwrap();
        assert!(h.join().unwrap() >= 8 * 1024, "stack_size({size})");
    }
    // Above the 1 GiB maximum: an error, not a wrapped-around size.
    for size in [(1 << 30) + 1, usize::MAX] {
        let e = Builder::new().stack_size(size).spawn(|| ()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }
    let h = Builder::new()
        .name("big-stack".into())
        .stack_size(1 << 20)
        .spawn(deep::<{ 900 * 1024 }>)
        .unwrap();
    assert!(h.join().unwrap() >= 900 * 1024);
}

/// A G can use ~200 KiB of its default 256 KiB stack.
pub fn default_stack_holds_200k() {
    assert_eq!(weft::DEFAULT_STACK_SIZE, 256 * 1024);
    let used = weft::run(deep::<{ 200 * 1024 }>);
    assert!(used >= 200 * 1024, "{used}");
    let hs: Vec<_> = (0..32).map(|_| go!(deep::<{ 200 * 1024 }>)).collect();
    for h in hs {
        assert!(h.join().unwrap() >= 200 * 1024);
    }
}
