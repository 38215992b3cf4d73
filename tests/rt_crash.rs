//! Crash behaviour and process-wide settings, each in a child process.
//!
//! Every test here re-runs this binary as a child (`common::run_child`) that runs only that
//! test, with `WEFT_TEST_SCENARIO` naming what to do: the child side does it (crash, exhaust the
//! stack budget, read the environment) and the parent side asserts on the child's exit status
//! and stderr. A fresh process per scenario also gives each one its own settings (`WEFT_*`
//! variables, `Config::apply`), which are fixed once a runtime starts.

mod common;

use std::io::ErrorKind;
use std::panic;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::{run_child, scenario, watchdog, Gate, TEST_TIMEOUT};

/// Bound of the `yield_now` wait loops of the children (well inside the watchdog's limit).
const WAIT_ROUNDS: u64 = 10_000_000;

/// Keep a crashing child from writing a core file into the working directory.
fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_CORE)");
}

/// Recurse without bound; `black_box` keeps the frames (and the recursion) from being optimised
/// away, and the condition (never true) keeps rustc's unconditional-recursion lint quiet.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 32];
    std::hint::black_box(&frame);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[depth as usize % 32])
}

// ---------------------------------------------------------------------------------------------
// (a) stack overflow
// ---------------------------------------------------------------------------------------------

/// Unbounded recursion in a named G on its default 256 KiB stack kills the process with
/// SIGABRT after printing the overflow report naming the G; not a bare SIGSEGV, not exit 0.
#[test]
fn stack_overflow_aborts_with_message() {
    const TEST: &str = "stack_overflow_aborts_with_message";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if let Some(sc) = scenario() {
        no_core_dumps();
        common::init(2);
        let h = weft::Builder::new()
            .name("deep-recursion".into())
            .spawn(|| recurse(0))
            .unwrap();
        let r = h.join();
        panic!("child scenario {sc}: survived the overflow: {r:?}");
    }
    let out = run_child(TEST, "overflow", &[]);
    assert_eq!(out.signal(), Some(libc::SIGABRT), "{out}");
    assert!(
        out.stderr.contains("fatal error: coroutine stack overflow"),
        "{out}"
    );
    assert!(
        out.stderr.contains("coroutine 'deep-recursion' (#")
            && out.stderr.contains("overflowed its 256 KiB stack"),
        "{out}"
    );
}

/// The same on one P, in an unnamed G with a small custom stack, spawned from inside a G.
#[test]
fn stack_overflow_small_stack_unnamed() {
    const TEST: &str = "stack_overflow_small_stack_unnamed";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if scenario().is_some() {
        no_core_dumps();
        common::init(1);
        weft::run(|| {
            let h = weft::Builder::new()
                .stack_size(32 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            let _ = h.join();
        });
        unreachable!("survived the overflow");
    }
    let out = run_child(TEST, "overflow-small", &[]);
    assert_eq!(out.signal(), Some(libc::SIGABRT), "{out}");
    assert!(
        out.stderr.contains("fatal error: coroutine stack overflow"),
        "{out}"
    );
    assert!(
        out.stderr.contains("coroutine '<unnamed>' (#")
            && out.stderr.contains("overflowed its 32 KiB stack"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// (b) stack allocation failure
// ---------------------------------------------------------------------------------------------

/// Stack budget used by the child of [`stack_budget_exhaustion_is_an_error`].
const SMALL_BUDGET: usize = 50;

/// With `WEFT_MAX_STACKS=50`, spawning past the budget is an `io::Error` (`OutOfMemory`, naming
/// `vm.max_map_count` and `WEFT_MAX_STACKS`), `go!` panics with that message, the blocked Gs are
/// unharmed, and once they have finished their stacks serve new spawns again.
#[test]
fn stack_budget_exhaustion_is_an_error() {
    const TEST: &str = "stack_budget_exhaustion_is_an_error";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if scenario().is_some() {
        // One P: every G dies on it, so its stack lands in that P's cache, where a spawn from a
        // G on the same P finds it (see `plain_thread_spawns_after_all_gs_finished` for plain threads).
        common::init(1);
        budget_child();
        return;
    }
    let out = run_child(
        TEST,
        "budget",
        &[("WEFT_MAX_STACKS", &SMALL_BUDGET.to_string())],
    );
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("budget scenario done"), "{out}");
}

fn budget_child() {
    assert_eq!(weft::stack_budget(), SMALL_BUDGET);
    // `init` ran one G; its stack may still be cached.
    let cached_before = weft::mapped_stacks();
    assert!(cached_before <= 1, "{cached_before}");
    let first = Arc::new(Gate::new());
    let second = Arc::new(Gate::new());
    // G 0 outlives the others and then spawns again from inside the runtime.
    let (f, s2) = (first.clone(), second.clone());
    let respawner = weft::Builder::new()
        .name("respawner".into())
        .spawn(move || {
            f.wait();
            s2.wait();
            let hs: Vec<_> = (0..SMALL_BUDGET - 1)
                .map(|i| weft::Builder::new().spawn(move || i))
                .collect::<Result<_, _>>()
                .expect("spawn inside a G after the other coroutines finished");
            hs.into_iter()
                .enumerate()
                .all(|(i, h)| h.join().unwrap() == i)
        })
        .unwrap();
    let mut blocked = Vec::new();
    // Spawned from this plain thread: every spawn maps a fresh stack until the budget is spent.
    let err = loop {
        let g = first.clone();
        let i = blocked.len() + 1;
        match weft::Builder::new()
            .name(format!("blocked-{i}"))
            .spawn(move || {
                g.wait();
                i
            }) {
            Ok(h) => blocked.push(h),
            Err(e) => break e,
        }
        assert!(blocked.len() < SMALL_BUDGET, "the budget is not enforced");
    };
    // Every stack of the budget is in use by a blocked G, except at most the cached one (a
    // plain thread cannot reclaim a stack cached on a P: see `plain_thread_spawns_after_all_gs_finished`).
    let live = blocked.len() + 1;
    assert!(
        (SMALL_BUDGET - cached_before..=SMALL_BUDGET).contains(&live),
        "{live} coroutines live at a budget of {SMALL_BUDGET}"
    );
    assert_eq!(weft::mapped_stacks(), SMALL_BUDGET);
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("vm.max_map_count"), "{msg}");
    assert!(msg.contains("WEFT_MAX_STACKS"), "{msg}");

    // go! cannot return an error: it panics with the same explanation.
    let p = panic::catch_unwind(|| weft::go!(|| 1)).unwrap_err();
    let pmsg = common::payload_str(&*p);
    assert!(pmsg.contains("WEFT_MAX_STACKS"), "{pmsg}");
    assert!(pmsg.contains("vm.max_map_count"), "{pmsg}");

    // The blocked Gs are unharmed: release them all and check every result.
    assert!(common::wait_until(WAIT_ROUNDS, || first.registered() == live));
    assert!(blocked.iter().all(|h| !h.is_finished()));
    assert_eq!(first.open(), live);
    for (i, h) in blocked.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i + 1);
    }
    // Their stacks are free again: the respawner, on the P that cached them, spawns 49 Gs.
    assert!(common::wait_until(WAIT_ROUNDS, || second.registered() == 1));
    second.open();
    assert!(respawner.join().unwrap(), "wrong result from a respawned G");
    assert!(weft::mapped_stacks() <= SMALL_BUDGET);
    println!("budget scenario done");
}

/// Run `body` in a child process (this test re-run with scenario `name` and `envs`) under a
/// watchdog, and assert that the child exited 0 after `body` returned.
fn in_child(test: &str, name: &str, envs: &[(&str, &str)], body: impl FnOnce()) {
    const DONE: &str = "child scenario done";
    let _dog = watchdog(test, TEST_TIMEOUT);
    if scenario().is_some() {
        body();
        println!("{DONE}");
        return;
    }
    let out = run_child(test, name, envs);
    assert!(out.status.success() && out.stdout.contains(DONE), "{out}");
}

/// Budget of the child of [`plain_thread_spawns_after_all_gs_finished`].
const TINY_BUDGET: usize = 8;

/// Regression: cached stacks never lock a plain thread out of a small budget.
///
/// A finished G's stack is cached on the free list of the P it died on, still counting against
/// the budget, and a thread without a P cannot reach that list. The runtime therefore keeps the P
/// caches to an eighth of the budget. Here: budget 8, one P, a plain thread spawns and joins one G
/// at a time, twice the budget in all; every spawn must succeed (this failed before the fix).
#[test]
fn plain_thread_spawns_after_all_gs_finished() {
    let budget = TINY_BUDGET.to_string();
    in_child(
        "plain_thread_spawns_after_all_gs_finished",
        "sequential",
        &[("WEFT_MAX_STACKS", &budget)],
        || {
            common::init(1);
            for i in 0..2 * TINY_BUDGET {
                let h = weft::Builder::new().spawn(move || i).unwrap_or_else(|e| {
                    panic!(
                        "spawn #{i} failed with no coroutine alive ({} alive, {} stacks mapped): {e}",
                        weft::num_goroutines(),
                        weft::mapped_stacks()
                    )
                });
                assert_eq!(h.join().unwrap(), i);
            }
        },
    );
}

/// Regression: with a budget smaller than `8 * procs`, no stack is cached on a P at all.
///
/// Before the fix each P kept at least one dead G: with 2 Ps and `WEFT_MAX_STACKS=2`, once a G
/// had died on each P the P caches held the whole budget, out of reach of a plain thread, and
/// spawning failed with no coroutine alive. Here a child G is made to die on the other P (its
/// parent spins, so the idle P steals it), then a plain thread spawns and joins repeatedly.
#[test]
fn tiny_budget_on_two_procs_caches_nothing_out_of_reach() {
    in_child(
        "tiny_budget_on_two_procs_caches_nothing_out_of_reach",
        "tiny-2p",
        &[("WEFT_MAX_STACKS", "2")],
        || {
            common::init(2);
            let stolen = weft::run(|| {
                let me = common::gettid();
                let ran_on = Arc::new(AtomicI64::new(0));
                let r = ran_on.clone();
                let h = weft::spawn(move || r.store(common::gettid(), Ordering::Release));
                // Spin without yielding (bounded): the child runs only if the other P steals it.
                for _ in 0..2_000_000_000u64 {
                    if ran_on.load(Ordering::Acquire) != 0 {
                        break;
                    }
                    std::hint::spin_loop();
                }
                h.join().unwrap();
                ran_on.load(Ordering::Acquire) != me
            });
            assert!(stolen, "the child was not stolen by the other P");
            for i in 0..8u32 {
                let h = weft::Builder::new().spawn(move || i).unwrap_or_else(|e| {
                    panic!(
                        "spawn #{i} from a plain thread failed ({} alive, {} stacks mapped): {e}",
                        weft::num_goroutines(),
                        weft::mapped_stacks()
                    )
                });
                assert_eq!(h.join().unwrap(), i);
            }
        },
    );
}

/// Regression: a spawn that waits for the stack budget never switches to another G.
///
/// User code may hold a std `MutexGuard` or a thread-local borrow across `spawn` (it is not a
/// blocking call), so spawn must not be a switch point even while it retries at the edge of the
/// budget. On 1 P with a budget of 2: the main G queues a G that would run next, then spawns past
/// the budget; the spawn must fail without having let the queued G run *on this thread* (a G
/// switch). The retry lasts 20 ms, long enough for sysmon to see a CPU hog and lend a spare P, on
/// which the queued G may run in parallel on another thread: that is not a switch.
#[test]
fn spawn_at_budget_edge_does_not_switch() {
    in_child(
        "spawn_at_budget_edge_does_not_switch",
        "no-switch",
        &[("WEFT_MAX_STACKS", "2")],
        || {
            common::init(1);
            let ok = weft::run(|| {
                let ran_on = Arc::new(AtomicI64::new(0));
                let r = ran_on.clone();
                // The second stack of the budget: queued in runnext, runs as soon as we switch.
                // It keeps its stack until released, so the budget stays spent even if it runs.
                let (tx, rx) = weft::chan::bounded::<()>(0);
                let queued = weft::spawn(move || {
                    r.store(common::gettid(), Ordering::Release);
                    let _ = rx.recv();
                });
                let tid = common::gettid();
                let third = weft::Builder::new().spawn(|| ());
                let switched = ran_on.load(Ordering::Acquire) == tid;
                let _ = tx.send(());
                let same_thread = common::gettid() == tid;
                queued.join().unwrap();
                matches!(&third, Err(e) if e.kind() == ErrorKind::OutOfMemory)
                    && !switched
                    && same_thread
            });
            assert!(ok, "the spawn past the budget switched Gs or did not fail");
        },
    );
}

// ---------------------------------------------------------------------------------------------
// (c) panic report
// ---------------------------------------------------------------------------------------------

/// A panic in a G is printed like std prints a thread panic, naming the G, and the process
/// keeps running (the child goes on spawning and exits 0).
#[test]
fn panic_in_g_is_reported_and_process_survives() {
    const TEST: &str = "panic_in_g_is_reported_and_process_survives";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if scenario().is_some() {
        common::init(2);
        let named = weft::Builder::new()
            .name("panicker".into())
            .spawn(|| -> u32 { panic!("boom-{}", 4711) })
            .unwrap();
        println!("ID_NAMED={}.", named.id());
        let err = named.join().unwrap_err();
        assert_eq!(common::payload_str(&*err), "boom-4711");
        let unnamed = weft::spawn(|| -> u32 { panic!("second boom") });
        println!("ID_UNNAMED={}.", unnamed.id());
        assert!(unnamed.join().is_err());
        let total: u64 = weft::run(|| {
            (0..100u64)
                .map(|i| weft::go!(move || i))
                .map(|h| h.join().unwrap())
                .sum()
        });
        assert_eq!(total, 4950);
        println!("still running");
        return;
    }
    let out = run_child(TEST, "panic", &[]);
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("still running"), "{out}");
    // libtest prints the test name on the same line as the child's first output.
    let id_of = |key: &str| -> String {
        let at = out
            .stdout
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in child stdout\n{out}"));
        let rest = &out.stdout[at + key.len()..];
        rest[..rest.find('.').expect("id ends with '.'")].to_string()
    };
    let named = format!(
        "coroutine 'panicker' (#{}) panicked at ",
        id_of("ID_NAMED=")
    );
    let unnamed = format!(
        "coroutine '<unnamed>' (#{}) panicked at ",
        id_of("ID_UNNAMED=")
    );
    assert!(out.stderr.contains(&named), "missing {named:?}\n{out}");
    assert!(out.stderr.contains("boom-4711"), "{out}");
    assert!(out.stderr.contains(&unnamed), "missing {unnamed:?}\n{out}");
    assert!(
        out.stderr.contains("tests/rt_crash.rs:"),
        "no location\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Settings from the environment
// ---------------------------------------------------------------------------------------------

/// `WEFT_MAXPROCS`, `WEFT_STACK_SIZE` and `WEFT_MAX_STACKS` set the runtime's settings; a bad
/// value is ignored with a warning; `Config::apply` wins over the environment.
#[test]
fn settings_from_environment() {
    const TEST: &str = "settings_from_environment";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if let Some(sc) = scenario() {
        match sc.as_str() {
            "env" => {
                assert_eq!(weft::max_procs(), 3);
                assert_eq!(weft::stack_budget(), 777);
                // A 1 MiB default stack holds a 900 KiB frame.
                let used = weft::run(|| {
                    let mut buf = [0u8; 900 * 1024];
                    buf.fill(1);
                    std::hint::black_box(&mut buf);
                    buf.iter().map(|&b| b as usize).sum::<usize>()
                });
                assert_eq!(used, 900 * 1024);
            }
            "bad-env" => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                assert_eq!(weft::max_procs(), cpus);
            }
            "config-wins" => {
                weft::Config::new().max_procs(1).apply().unwrap();
                assert_eq!(weft::max_procs(), 1);
            }
            other => panic!("unknown scenario {other}"),
        }
        assert_eq!(weft::run(|| weft::go!(|| 5).join().unwrap()), 5);
        println!("scenario {sc} ok");
        return;
    }
    let out = run_child(
        TEST,
        "env",
        &[
            ("WEFT_MAXPROCS", "3"),
            ("WEFT_STACK_SIZE", "1048576"),
            ("WEFT_MAX_STACKS", "777"),
        ],
    );
    assert!(
        out.status.success() && out.stdout.contains("scenario env ok"),
        "{out}"
    );

    let out = run_child(TEST, "bad-env", &[("WEFT_MAXPROCS", "0")]);
    assert!(
        out.status.success() && out.stdout.contains("scenario bad-env ok"),
        "{out}"
    );
    assert!(out.stderr.contains("ignoring WEFT_MAXPROCS"), "{out}");

    let out = run_child(TEST, "config-wins", &[("WEFT_MAXPROCS", "3")]);
    assert!(
        out.status.success() && out.stdout.contains("scenario config-wins ok"),
        "{out}"
    );
}
