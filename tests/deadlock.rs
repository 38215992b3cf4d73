//! Deadlock detection (`runtime/src/introspect/checkdead.rs`): "fatal error: all goroutines are
//! asleep - deadlock!", the goroutine list, exit status 2 — and no report when something can
//! still wake the main G (a socket deadline, a timer, a thread that is not the runtime's).
//!
//! A `harness = false` test. The runtime reports a deadlock only when every thread of the process
//! is its own, and libtest runs each test on a thread of its own while its main thread waits, so
//! no libtest test could ever see a report. Instead, `main` here:
//!
//! * with [`SCENARIO_ENV`] set, runs that scenario directly on the main thread (through
//!   `weft::run`, with nothing else alive: no watchdog thread, no harness) and exits 0 if it
//!   returns;
//! * without it, re-runs this executable once per scenario and per P count (`WEFT_MAXPROCS` 1
//!   and 4), kills a child that is still running after [`CHILD_TIMEOUT`] (a deadlock the
//!   runtime failed to report is a hang), checks its exit status and stderr, prints a
//!   libtest-like summary and exits non-zero if any scenario failed.
//!
//! Arguments: `--list` lists the scenarios; any other argument not starting with `-` is a
//! filter (substring of the scenario's name), as with libtest; flags are ignored.

mod common;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::SCENARIO_ENV;
use weft::chan;
use weft::net::{TcpListener, TcpStream};

/// How long a child may run before it is killed and its scenario failed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// The runtime's report.
const FATAL: &str = "fatal error: all goroutines are asleep - deadlock!";

/// The P counts each scenario runs with.
const PROCS: [usize; 2] = [1, 4];

/// What the parent expects of a child.
#[derive(Clone, Copy)]
enum Expect {
    /// Exit status 2, [`FATAL`] on stderr, and a goroutine line containing each of these.
    Deadlock(&'static [&'static str]),
    /// Exit status 0 and `scenario <name> returned` on stdout: no report.
    Clean,
}

struct Scenario {
    name: &'static str,
    run: fn(),
    expect: Expect,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "main_recv_nobody_sends",
        run: main_recv_nobody_sends,
        expect: Expect::Deadlock(&["chan receive"]),
    },
    Scenario {
        name: "main_joins_stuck_receiver",
        run: main_joins_stuck_receiver,
        expect: Expect::Deadlock(&["[join", "\"stuck-receiver\" [chan receive"]),
    },
    Scenario {
        name: "mutex_held_by_waiting_g",
        run: mutex_held_by_waiting_g,
        expect: Expect::Deadlock(&[
            "[join",
            "\"contender\" [sync.Mutex.Lock",
            "\"holder\" [chan receive",
        ]),
    },
    Scenario {
        name: "socket_read_timeout_not_reported",
        run: socket_read_timeout_not_reported,
        expect: Expect::Clean,
    },
    Scenario {
        name: "sleep_not_reported",
        run: sleep_not_reported,
        expect: Expect::Clean,
    },
    Scenario {
        name: "foreign_thread_not_reported",
        run: foreign_thread_not_reported,
        expect: Expect::Clean,
    },
    Scenario {
        name: "deadlock_after_blocking_calls",
        run: deadlock_after_blocking_calls,
        expect: Expect::Deadlock(&["[chan receive"]),
    },
    Scenario {
        name: "blocking_call_not_reported",
        run: blocking_call_not_reported,
        expect: Expect::Clean,
    },
];

// ---------------------------------------------------------------------------------------------
// The scenarios (child side: run on the process's main thread)
// ---------------------------------------------------------------------------------------------

/// (a) The main G receives on a channel whose sender is alive (so not a disconnect) but that
/// nobody will ever send on.
fn main_recv_nobody_sends() {
    weft::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let r = rx.recv();
        drop(tx);
        println!("recv returned {r:?}");
    });
}

/// (b) The main G joins a G that waits forever in a channel receive.
fn main_joins_stuck_receiver() {
    weft::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = weft::Builder::new()
            .name("stuck-receiver".into())
            .spawn(move || rx.recv())
            .expect("spawn");
        let r = h.join();
        drop(tx);
        println!("join returned {r:?}");
    });
}

/// (c) A G waits for a `sync::Mutex` held by a G that waits on a channel nobody sends on; the
/// main G joins the first.
fn mutex_held_by_waiting_g() {
    weft::run(|| {
        let m = std::sync::Arc::new(weft::sync::Mutex::new(0u32));
        let (locked_tx, locked_rx) = chan::bounded::<()>(0);
        let (never_tx, never_rx) = chan::bounded::<()>(0);
        let m1 = m.clone();
        let _holder = weft::Builder::new()
            .name("holder".into())
            .spawn(move || {
                let mut g = m1.lock();
                locked_tx.send(()).expect("locked");
                let _ = never_rx.recv();
                *g += 1;
            })
            .expect("spawn holder");
        locked_rx.recv().expect("holder has the lock");
        let m2 = m.clone();
        let contender = weft::Builder::new()
            .name("contender".into())
            .spawn(move || *m2.lock() += 1)
            .expect("spawn contender");
        let r = contender.join();
        drop(never_tx);
        println!("join returned {r:?}");
    });
}

/// (d) The main G waits only in a socket read with a 300 ms timeout: a socket wait (and its
/// deadline timer) can still wake it, so no report; the read fails with `TimedOut`.
fn socket_read_timeout_not_reported() {
    weft::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("set_read_timeout");
        let t0 = Instant::now();
        let mut buf = [0u8; 8];
        let e = conn
            .read(&mut buf)
            .expect_err("nobody writes: the read times out");
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        println!("read timed out after {:?}", t0.elapsed());
        drop(client);
    });
}

/// (e) The main G sleeps 300 ms: a pending timer, so no report.
fn sleep_not_reported() {
    weft::run(|| {
        let t0 = Instant::now();
        weft::sleep(Duration::from_millis(300));
        println!("slept {:?}", t0.elapsed());
    });
}

/// (f) The main G waits on a channel that a plain std thread (not the runtime's) sends on after
/// 300 ms: the runtime cannot know what that thread will do, so no report.
fn foreign_thread_not_reported() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        tx.send(42).expect("send from a plain thread");
    });
    let v = weft::run(move || rx.recv().expect("value from the plain thread"));
    assert_eq!(v, 42);
    t.join().expect("plain thread");
    println!("received {v}");
}

/// Beyond the list: after 8 concurrent `blocking` calls (which made sysmon hand Ps to extra
/// Ms, so the process has more threads than Ps), the main G waits forever: still reported,
/// every extra M being idle and counted as the runtime's.
fn deadlock_after_blocking_calls() {
    weft::run(|| {
        let hs: Vec<_> = (0..8u64)
            .map(|i| {
                weft::spawn(move || {
                    weft::blocking(|| std::thread::sleep(Duration::from_millis(20)));
                    i
                })
            })
            .collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().expect("G")).sum();
        assert_eq!(sum, 28);
        let (tx, rx) = chan::bounded::<u32>(0);
        let r = rx.recv();
        drop(tx);
        println!("recv returned {r:?}");
    });
}

/// Beyond the list: the main G waits on a channel that a G sends on once its 300 ms `blocking`
/// call returns. A thread inside a blocking call can still wake anyone: no report.
fn blocking_call_not_reported() {
    weft::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = weft::spawn(move || {
            weft::blocking(|| std::thread::sleep(Duration::from_millis(300)));
            tx.send(5).expect("send");
        });
        assert_eq!(rx.recv().expect("value after the blocking call"), 5);
        h.join().expect("G");
        println!("received 5");
    });
}

// ---------------------------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------------------------

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {:?} after {:?}\n--- child stdout ---\n{}\n--- child stderr ---\n{}",
            self.status, self.took, self.stdout, self.stderr
        )
    }
}

/// Run `scenario` in a child with `procs` Ps; kill it after [`CHILD_TIMEOUT`].
fn run_child(scenario: &str, procs: usize) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WEFT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(SCENARIO_ENV, scenario)
        .env("WEFT_MAXPROCS", procs.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn child: {e}"))?;
    let pid = child.id();
    // Read both pipes on threads of their own, wait for the exit here with a deadline.
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let r = child.wait();
        let _ = tx.send(r);
    });
    let (status, hung) = match rx.recv_timeout(CHILD_TIMEOUT) {
        Ok(r) => (r.map_err(|e| format!("wait: {e}"))?, false),
        Err(_) => {
            // Our own child, by its pid.
            // SAFETY: kill(2) with a pid we spawned and have not reaped (the waiter thread is
            // still blocked in wait on it), so the pid cannot have been reused.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let r = rx.recv().map_err(|e| format!("waiter: {e}"))?;
            (r.map_err(|e| format!("wait: {e}"))?, true)
        }
    };
    let took = t0.elapsed();
    let _ = waiter.join();
    let outcome = Outcome {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        took,
    };
    if hung {
        return Err(format!(
            "child still running after {CHILD_TIMEOUT:?}, killed (an unreported deadlock, or \
             a hang)\n{outcome}"
        ));
    }
    Ok(outcome)
}

/// Check one scenario's child against what it should have done.
fn check(sc: &Scenario, procs: usize) -> Result<Outcome, String> {
    let out = run_child(sc.name, procs)?;
    match sc.expect {
        Expect::Deadlock(lines) => {
            if out.status.code() != Some(2) {
                return Err(format!("expected exit status 2 (deadlock)\n{out}"));
            }
            if !out.stderr.contains(FATAL) {
                return Err(format!("no `{FATAL}` on stderr\n{out}"));
            }
            // The goroutine list: one line per G, after the fatal message.
            let list: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("goroutine "))
                .collect();
            for want in lines {
                if !list.iter().any(|l| l.contains(want)) {
                    return Err(format!("no goroutine line containing `{want}`\n{out}"));
                }
            }
            if out.stderr.contains("panicked") {
                return Err(format!("a panic in the child\n{out}"));
            }
            if out.stdout.contains("returned") {
                return Err(format!("the blocked call returned\n{out}"));
            }
        }
        Expect::Clean => {
            if out.stderr.contains(FATAL) || out.status.code() == Some(2) {
                return Err(format!("false deadlock report\n{out}"));
            }
            if !out.status.success() {
                return Err(format!("expected exit status 0\n{out}"));
            }
            let done = format!("scenario {} returned", sc.name);
            if !out.stdout.contains(&done) {
                return Err(format!("no `{done}` on stdout\n{out}"));
            }
        }
    }
    Ok(out)
}

fn main() {
    if let Ok(name) = std::env::var(SCENARIO_ENV) {
        let sc = SCENARIOS
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("unknown scenario {name:?}"));
        (sc.run)();
        println!("scenario {name} returned");
        return;
    }

    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let cases: Vec<(String, &Scenario, usize)> = SCENARIOS
        .iter()
        .flat_map(|sc| {
            PROCS
                .iter()
                .map(move |&p| (format!("{}@{p}p", sc.name), sc, p))
        })
        .filter(|(name, _, _)| filters.is_empty() || filters.iter().any(|f| name.contains(*f)))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _, _) in &cases {
            println!("{name}: test");
        }
        return;
    }
    let verbose = std::env::var_os("WEFT_TEST_VERBOSE").is_some();

    println!("\nrunning {} tests", cases.len());
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for (name, sc, procs) in &cases {
        match check(sc, *procs) {
            Ok(out) => {
                println!("test {name} ... ok");
                if verbose {
                    let first = out.stdout.lines().next().unwrap_or("").to_string();
                    eprintln!(
                        "note: {name}: exit {:?} after {:?}; {first}",
                        out.status.code(),
                        out.took
                    );
                }
            }
            Err(msg) => {
                println!("test {name} ... FAILED");
                failures.push((name.clone(), msg));
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (name, msg) in &failures {
            println!("---- {name} ----\n{msg}\n");
        }
        println!("failures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    let passed = cases.len() - failures.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out; \
         finished in {:.2}s\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        SCENARIOS.len() * PROCS.len() - cases.len(),
        t0.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        std::process::exit(101);
    }
}
