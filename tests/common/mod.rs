//! Shared helpers for weft's integration tests.
//!
//! weft's settings are process-wide and fixed when the runtime starts, so each test binary is
//! either a 1-P or an N-P binary: [`init`] applies `Config::max_procs` once, before anything else
//! starts the runtime. Every test of `rt_1p`/`rt_np` runs under [`run_test`], which adds:
//!
//! * a **watchdog**: a thread that aborts the whole process with a message naming the test if it
//!   runs longer than [`TEST_TIMEOUT`] (a hung scheduler must fail the suite, not stall it);
//! * a **mode**: `cargo test` runs tests of one binary on several threads at once, all on the
//!   same runtime and the same stack budget. [`Mode::Shared`] tests may overlap; a
//!   [`Mode::Exclusive`] test (exact scheduling order, fairness, Ps kept to itself, tens of
//!   thousands of stacks) waits until no other test of the binary runs. Under `cargo nextest`
//!   every test has a process of its own and the lock is uncontended.
//!
//! `rt_crash` and `stress_spawn` start the watchdog themselves: their tests re-run the binary as
//! a child ([`run_child`]) with a scenario variable, so that each child picks its own settings.
//!
//! Rules the tests follow (see `docs/DESIGN.md`, "Rules for code running in a G"):
//! * no `sleep` as synchronisation (only the watchdog waits on a clock), no timing assertions;
//! * inside a G, wait with atomics + `weft::yield_now` loops or `weft::park`/`unpark`, never with
//!   a blocking std call (`mpsc::Receiver::recv` would block the P's only thread on 1 P);
//! * never read a thread-local across a yield inside a G: LLVM may cache its address across the
//!   stack switch, so "which thread am I on" is always asked through [`gettid`], a fresh
//!   `#[inline(never)]` call.

#![allow(dead_code)]

pub mod example;
pub mod rt_cases;

use std::any::Any;
use std::io::Write;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, Once, RwLock};
use std::time::Duration;

/// How long one test may run before the watchdog aborts the process.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Rounds of `yield_now` an exclusive test waits for earlier tests' coroutines to finish (they
/// need a handful; a leak costs a second or so).
const QUIESCE_ROUNDS: u64 = 1_000_000;

/// Environment variable naming the scenario a child process runs (see [`run_child`]).
pub const SCENARIO_ENV: &str = "WEFT_TEST_SCENARIO";

/// Payloads of panics a test provokes on purpose start with this; [`init`] keeps them off stderr.
pub const EXPECTED_PANIC: &str = "weft-test: expected panic";

/// A non-string panic payload that tests provoke on purpose; [`init`] keeps it off stderr too.
#[derive(Debug, PartialEq, Eq)]
pub struct ExpectedPayload(pub u64);

/// How a test shares its binary's runtime with the tests running next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// May overlap with other shared tests.
    Shared,
    /// Runs alone: no other test of this binary runs at the same time.
    Exclusive,
}

/// Readers: shared tests; writer: an exclusive one. Held by the test's plain thread, never by a G.
static TEST_LOCK: RwLock<()> = RwLock::new(());

/// Aborts the process if it is not dropped within its time limit.
#[must_use = "the watchdog is disarmed when this is dropped"]
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

/// Start a watchdog for `name`: after `limit` without being dropped, print a message and abort.
pub fn watchdog(name: &str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    let name = name.to_string();
    std::thread::Builder::new()
        .name(format!("watchdog-{name}"))
        .spawn(move || {
            // Dropping the sender disconnects the channel: the test finished (or panicked).
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // Straight to fd 2: `eprintln!` in a thread spawned by a test is captured by the
                // test harness, and the capture is lost when we abort.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nwatchdog: test `{name}` still running after {limit:?}: the runtime is \
                     probably hung; aborting the test process.\n\
                     live coroutines: {}, mapped stacks: {}",
                    weft::num_goroutines(),
                    weft::mapped_stacks()
                );
                std::process::abort();
            }
        })
        .expect("spawn watchdog thread");
    Watchdog { _disarm: tx }
}

/// Apply `Config::max_procs(procs)` once per test binary and check it took effect. Also installs
/// the panic-hook filter for [`EXPECTED_PANIC`] payloads. Every test calls this first.
pub fn init(procs: usize) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        weft::Config::new()
            .max_procs(procs)
            .apply()
            .expect("Config::apply before the runtime starts");
        assert_eq!(weft::max_procs(), procs, "max_procs did not take effect");
        // The runtime installs its panic hook when its first M starts: run a G so that it is in
        // place, then wrap it.
        weft::spawn(|| ()).join().expect("first coroutine");
        quiet_expected_panics();
    });
    assert_eq!(
        weft::max_procs(),
        procs,
        "binary mixes 1-P and N-P settings"
    );
}

/// Print a measurement when `WEFT_TEST_VERBOSE` is set (how many hand-offs a fairness test took,
/// in which round a migration was seen...), to check that a test exercises what it claims to.
pub fn note(args: std::fmt::Arguments<'_>) {
    if std::env::var_os("WEFT_TEST_VERBOSE").is_some() {
        eprintln!("note: {args}");
    }
}

/// Wrap the current panic hook so that panics whose payload starts with [`EXPECTED_PANIC`] are
/// not printed (they are asserted on through `join`). Everything else is reported as before.
pub fn quiet_expected_panics() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = payload_str(p);
        // The runtime's own message for a G that joins itself, provoked by `join_self_panics`.
        let self_join =
            msg.starts_with("weft: coroutine #") && msg.contains("tried to join itself");
        if msg.starts_with(EXPECTED_PANIC) || p.is::<ExpectedPayload>() || self_join {
            return;
        }
        prev(info);
    }));
}

/// The message of a panic payload (`&str` or `String`), or `""` for anything else.
pub fn payload_str(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        ""
    }
}

/// Run one test body: watchdog, `init(procs)`, the mode's lock, then `body`.
pub fn run_test(procs: usize, mode: Mode, name: &str, body: impl FnOnce()) {
    run_test_limit(procs, mode, name, TEST_TIMEOUT, body);
}

/// Generated cases per proptest: `PROPTEST_CASES`, or `default` (a CI-sized number).
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// [`run_test`] with a watchdog limit of the caller's choice (a proptest soak with a large
/// `PROPTEST_CASES` needs more than [`TEST_TIMEOUT`]).
pub fn run_test_limit(procs: usize, mode: Mode, name: &str, limit: Duration, body: impl FnOnce()) {
    let _dog = watchdog(name, limit);
    init(procs);
    match mode {
        Mode::Shared => {
            let _g = TEST_LOCK.read().unwrap_or_else(|e| e.into_inner());
            body();
        }
        Mode::Exclusive => {
            let _g = TEST_LOCK.write().unwrap_or_else(|e| e.into_inner());
            // Coroutines detached by earlier tests may still be finishing; an exclusive test
            // wants the scheduler to itself. A test that failed may have left some parked for
            // good: say so (on fd 2, uncaptured) and go on rather than fail every later test.
            if !wait_until(QUIESCE_ROUNDS, || weft::num_goroutines() == 0) {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {name}: {} coroutines left alive by earlier tests",
                    weft::num_goroutines()
                );
            }
            body();
        }
    }
}

/// The kernel id of the calling OS thread. Not inlined, so that a G that may have moved to
/// another thread since its last call gets a fresh answer (see the module doc).
#[inline(never)]
pub fn gettid() -> i64 {
    // SAFETY: gettid(2) takes no arguments, touches no memory and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    std::hint::black_box(tid)
}

/// What a child process left behind.
#[derive(Debug)]
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ChildOutput {
    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }
}

impl std::fmt::Display for ChildOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {:?}\n--- child stdout ---\n{}\n--- child stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The scenario this process was started to run, if it is a child of [`run_child`].
pub fn scenario() -> Option<String> {
    std::env::var(SCENARIO_ENV).ok()
}

/// Re-run this test binary as a child process that runs only test `test` (`--exact --nocapture`)
/// with [`SCENARIO_ENV`] set to `scenario` and the extra environment `envs`; wait for it and
/// return its status and output. The test function checks [`scenario`] to know which side it is.
///
/// The child's stdin is closed, its output captured; it inherits the parent's environment minus
/// the `WEFT_*` settings, so a setting exported for the whole suite cannot change a scenario.
pub fn run_child(test: &str, scenario: &str, envs: &[(&str, &str)]) -> ChildOutput {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    // `--include-ignored`: a scenario of an ignored test runs when its parent does.
    cmd.args([
        test,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env(SCENARIO_ENV, scenario)
    .env_remove("WEFT_MAXPROCS")
    .env_remove("WEFT_STACK_SIZE")
    .env_remove("WEFT_MAX_STACKS")
    // Keep the child's stderr short and deterministic: no backtraces.
    .env("RUST_BACKTRACE", "0")
    .stdin(std::process::Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run child test process");
    ChildOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Spin (in a G: yielding; on a plain thread: yielding the thread) until `cond` holds, at most
/// `max_rounds` times. Returns whether it held. Inside a G `yield_now` lets the Gs we wait for run
/// even on a single P.
pub fn wait_until(max_rounds: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..max_rounds {
        if cond() {
            return true;
        }
        weft::yield_now();
    }
    cond()
}

/// "Park until told": Gs [`Gate::wait`] on it, someone [`Gate::open`]s it and wakes them all.
///
/// No wakeup is lost: a waiter registers its handle under `waiters`' lock and then checks the
/// flag; the opener sets the flag and then takes the lock. Either the opener sees the waiter's
/// handle (and unparks it) or the waiter sees the flag (and never parks). The lock is never held
/// across a park.
#[derive(Default)]
pub struct Gate {
    open: AtomicBool,
    waiters: Mutex<Vec<weft::Coroutine>>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Park the calling G until the gate is open (returns at once if it is). Inside a G only.
    pub fn wait(&self) {
        let me = weft::current().expect("Gate::wait outside a coroutine");
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(me);
        while !self.open.load(Ordering::Acquire) {
            weft::park();
        }
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Open the gate and wake every registered waiter. Returns how many were registered.
    pub fn open(&self) -> usize {
        self.open.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for w in &waiters {
            w.unpark();
        }
        waiters.len()
    }

    /// How many Gs have registered so far.
    pub fn registered(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// What a finished program must have given back (issue 7's leak checks): its Gs, its sockets'
/// pollDesc registrations, its fds (counted only where the process runs one test at a time), and
/// its stacks beyond what the dead-G caches keep for reuse.
#[derive(Debug, Clone, Copy)]
pub struct Resources {
    pub goroutines: usize,
    pub registered: usize,
    pub fds: Option<usize>,
    /// Stacks of live Gs (mapped minus cached).
    pub live_stacks: usize,
    pub cached_stacks: usize,
}

/// Open fds of this process (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .expect("read /proc/self/fd")
}

/// `fd -> target` for every open fd, for a leak report.
pub fn fd_list() -> String {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            out.push(format!("{} -> {target}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out.join(", ")
}

/// A snapshot of [`Resources`]; `count_fds` only in a process that runs nothing else meanwhile.
pub fn resources(count_fds: bool) -> Resources {
    let s = weft::runtime::stats();
    Resources {
        goroutines: s.goroutines,
        registered: s.netpoll_registered,
        fds: count_fds.then(open_fds),
        live_stacks: s.mapped_stacks - s.cached_stacks,
        cached_stacks: s.cached_stacks,
    }
}

/// The most dead-G stacks the runtime keeps cached (`runtime/src/sched/newproc.rs`: 64 per P,
/// regular and spare, plus at most 16 384 on the global free list).
pub fn stack_cache_bound() -> usize {
    2 * weft::max_procs() * 64 + 16_384
}

/// Assert that everything counted in `base` is back to its level after `what` finished. Waits
/// up to 5 s for it (a G that `join` has returned from is released by its M a moment later, and
/// a socket closed by a dropped value is deregistered by its last op); then panics naming what
/// leaked, with both snapshots.
pub fn assert_released(base: &Resources, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = resources(base.fds.is_some());
        let back = now.goroutines <= base.goroutines
            && now.registered <= base.registered
            && now.fds.zip(base.fds).is_none_or(|(n, b)| n <= b)
            && now.live_stacks <= base.live_stacks;
        if back {
            assert!(
                now.cached_stacks <= stack_cache_bound(),
                "{what}: {} stacks cached, over the bound of {}",
                now.cached_stacks,
                stack_cache_bound()
            );
            return;
        }
        if std::time::Instant::now() >= deadline {
            panic!(
                "{what} leaked: before {base:?}, 5 s after it finished {now:?} (goroutines, \
                 netpoll registrations, fds and live stacks must come back); open fds: {}",
                fd_list()
            );
        }
        // Polling for the runtime's own asynchronous clean-up, bounded above.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `SO_LINGER {on, 0}`: closing the socket sends RST instead of FIN.
pub fn set_linger_zero(s: &impl std::os::fd::AsFd) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// Run `body` on one P in a child process (settings are process-wide): in the parent, re-run
/// test `test` of this binary as a child and fail with its output unless it finished; in the
/// child, `init(1)` and run `body`. For files whose in-process tests run on 2 Ps.
pub fn on_one_p_in_child(test: &str, body: fn()) {
    let done = format!("{test}: done on 1 P");
    if scenario().is_some() {
        init(1);
        body();
        println!("{done}");
        return;
    }
    let out = run_child(test, "1p", &[]);
    assert!(out.status.success() && out.stdout.contains(&done), "{out}");
}

/// Run a proptest of generated programs: `PROPTEST_CASES` (or `default`) cases, no failure file
/// (the shrunk input is printed in the panic message, see docs/TESTING.md), shrinking bounded to
/// a minute so that the report comes before the watchdog. Panics with proptest's report when
/// `body` fails a case.
pub fn run_proptest<S: proptest::strategy::Strategy>(
    default: u32,
    strategy: &S,
    body: impl Fn(S::Value) -> Result<(), String>,
) {
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: proptest_cases(default),
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..proptest::test_runner::Config::default()
    });
    if let Err(e) = runner.run(strategy, |v| {
        body(v).map_err(proptest::test_runner::TestCaseError::fail)
    }) {
        panic!("{e}");
    }
}

/// [`run_proptest`] with the leak check after every case: the [`resources`] snapshot taken
/// before it must come back ([`assert_released`]); fds are counted when `count_fds` (only in a
/// process that runs one test at a time, after [`make_lazy_fds`]).
pub fn run_leak_checked<S: proptest::strategy::Strategy>(
    default: u32,
    strategy: &S,
    what: &str,
    count_fds: bool,
    body: impl Fn(S::Value) -> Result<(), String>,
) {
    run_proptest(default, strategy, |v| {
        let base = resources(count_fds);
        body(v)?;
        assert_released(&base, what);
        Ok(())
    });
}

/// Make the fds the runtime creates on first use and keeps for the life of the process — the
/// netpoller's epoll instance and wake-up eventfd, and the placeholder socket that `close(&self)`
/// points closed fd numbers at (net/src/fd.rs) — so that a first fd baseline counts only what
/// the test itself opens.
pub fn make_lazy_fds() {
    weft::run(|| {
        let l = weft::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.close().expect("close");
    });
}
