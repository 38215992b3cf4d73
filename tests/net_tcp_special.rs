//! TCP cases that need a process of their own: sysmon's network poll when every P is busy,
//! 10 000 echo connections whose server side is another process, and `accept` when the process
//! is out of fds (`EMFILE` is returned at once; the listener works again once an fd is free).
//!
//! Each test re-runs this binary as a child that runs only that test with its own P count
//! (fixed per process), and asserts on the child's exit status; the child prints its
//! measurements, which the parent repeats. The sysmon tests use `common::run_child`; the echo
//! test spawns its child by hand (see below).
//!
//! # sysmon wakes a reader while every P is busy
//!
//! `procs` Gs spin in `weft::yield_now()` loops (a G that never yields at all would also keep
//! sysmon's readied Gs from running on its P: there is no preemption yet). So no P is ever idle,
//! no M reaches the netpoll step of `findrunnable` (a yield puts the G back on its P's local
//! queue, which therefore never empties) and none blocks in `epoll_wait`. A G blocked reading a
//! socket can then only be woken by sysmon, which polls when nobody has for 10 ms and injects
//! the readied G into the global queue, where a busy P finds it on its next 61st tick. The peer
//! writes from a plain OS thread; the latency from its write to the reader's return is printed
//! (the design target is ~10–20 ms) and asserted only to be below 1 s.
//!
//! # 10 000 echo connections, the server in a child process
//!
//! `echo_10k_connections` (`net_tcp_1p`/`net_tcp_np`) keeps both ends of every connection in one
//! process, two fds each, so with an `RLIMIT_NOFILE` hard limit of 20 000 it stops at 9 900.
//! `echo_10000_connections_server_in_child` does exactly 10 000 by moving the server side to a
//! child process, spawned with piped stdout rather than by `run_child`, since the parent must
//! read the port while the child runs.
//!
//! * The child (2 Ps, fd limit raised) binds a `weft::net::TcpListener` on `127.0.0.1:0`, prints
//!   `PORT <n>`, accepts exactly 10 000 connections (writing one ack byte on each), runs one G
//!   per connection echoing until EOF, joins them all, prints `ECHOED <bytes> PEAK <n>` (`n`:
//!   connections open at once, asserted to be 10 000) and exits 0. Its watchdog bounds it.
//! * The parent (2 Ps, fd limit raised) reads the `PORT` line (a reader thread, bounded by
//!   [`CHILD_START`]) and connects 10 000 `TcpStream`s from [`ECHO_CONNECTORS`] connector Gs,
//!   at most [`ECHO_WINDOW`] ahead of the acks it has read (below the listen backlog: no SYN is
//!   dropped). One client G per connection reads its ack and parks on a [`Gate`]; when all
//!   10 000 are there (all connections open at once, asserted), the gate opens and each client
//!   sends 3–6 messages of 1 B .. 16 KiB with a pattern of its own, checks every echoed byte,
//!   shuts down its write side and reads the child's EOF. The bytes planned, sent and verified
//!   (parent) and echoed (child) must agree, and the child must exit successfully within
//!   [`CHILD_EXIT`]. The child's start-up, the connect phase and the echo phase are timed.
//! * Failures end fast rather than at the watchdog: a client G's error is collected and stops
//!   the parent's waits; the parent's socket ops and waits give up after [`STALL`] without
//!   progress (a clock bound on failure, not synchronisation); a guard kills the child if the
//!   parent panics or the child outlives [`CHILD_EXIT`], and prints the child's output.

mod common;
#[allow(unused)] // only the helpers; the cases run in net_tcp_1p / net_tcp_np
#[path = "common/tcp_cases.rs"]
mod tcp_cases;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    gettid, init, run_child, scenario, wait_until, watchdog, Gate, SCENARIO_ENV, TEST_TIMEOUT,
};
use tcp_cases::{
    echo_until_eof, pair, payload, raise_nofile_limit, rd, rd_exact, wr, Rng, GIVE_UP, ROUNDS,
};
use weft::net::{TcpListener, TcpStream};

/// Reads per scenario (one latency sample each).
const SAMPLES: usize = 10;

/// The bound asserted on each wake-up latency: generous on purpose (the target is ~10–20 ms).
const MAX_LATENCY: Duration = Duration::from_secs(1);

/// The child side: `procs` yield-spinners keep every P busy; the root G reads one byte per round
/// from a socket whose peer a plain thread writes to. Returns the latencies.
fn sysmon_scenario(procs: usize) -> Vec<Duration> {
    init(procs);
    weft::run(move || {
        let (c, s) = pair();
        let stop = Arc::new(AtomicBool::new(false));
        let tids: Arc<Vec<AtomicU64>> = Arc::new((0..procs).map(|_| AtomicU64::new(0)).collect());
        let spinners: Vec<_> = (0..procs)
            .map(|k| {
                let (stop, tids) = (Arc::clone(&stop), Arc::clone(&tids));
                weft::go!(move || {
                    let t = Instant::now();
                    let mut n = 0u64;
                    while !stop.load(SeqCst) {
                        tids[k].store(gettid() as u64, SeqCst);
                        weft::yield_now();
                        n += 1;
                        if n % 4096 == 0 && t.elapsed() > GIVE_UP {
                            return None;
                        }
                    }
                    Some(n)
                })
            })
            .collect();
        // Before each write the plain writer thread waits until every spinner has run on a
        // thread of its own (so no P is idle). The root G must not wait for that in a
        // `yield_now` loop itself: it would be one more yielder, and "root G alone on one P,
        // both spinners on the other" is a stable state (a lone yielder wakes no idle P, and no
        // P is idle). So it parks in its read at once, and only the spinners compete for Ps.
        let spread = move |tids: &[AtomicU64]| {
            let seen: HashSet<u64> = tids.iter().map(|t| t.load(SeqCst)).collect();
            !seen.contains(&0) && seen.len() == tids.len()
        };
        let base = Instant::now();
        let turn = Arc::new(AtomicUsize::new(0));
        let sent_ns = Arc::new(AtomicU64::new(0));
        let writer_done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (turn, sent_ns, done, tids) = (
                Arc::clone(&turn),
                Arc::clone(&sent_ns),
                Arc::clone(&writer_done),
                Arc::clone(&tids),
            );
            std::thread::spawn(move || {
                let mut unspread = 0;
                for r in 1..=SAMPLES {
                    let t = Instant::now();
                    while turn.load(SeqCst) < r || !spread(&tids) {
                        if turn.load(SeqCst) >= r && t.elapsed() > GIVE_UP {
                            // Write anyway (the reader must not hang); the G fails the case.
                            unspread += 1;
                            break;
                        }
                        std::thread::yield_now();
                    }
                    // Not synchronisation: the reader's result is the same whether it parked
                    // before this write or not. The pause only makes it (very) likely that it
                    // did, so that the sample measures sysmon's poll, not a read that found
                    // its byte already there.
                    std::thread::sleep(Duration::from_millis(5));
                    sent_ns.store(base.elapsed().as_nanos() as u64, SeqCst);
                    wr(&s, &[r as u8]).expect("plain-thread write");
                }
                done.store(true, SeqCst);
                (s, unspread)
            })
        };
        let mut lat = Vec::with_capacity(SAMPLES);
        for r in 1..=SAMPLES {
            turn.store(r, SeqCst);
            let b = rd_exact(&c, 1).expect("read");
            let woke = base.elapsed();
            assert_eq!(b[0], r as u8);
            lat.push(woke.saturating_sub(Duration::from_nanos(sent_ns.load(SeqCst))));
        }
        // The spinners were still spinning all along.
        let still_busy = spinners.iter().all(|h| !h.is_finished());
        stop.store(true, SeqCst);
        for h in spinners {
            let n = h.join().expect("spinner");
            assert!(n.is_some(), "a spinner gave up after {GIVE_UP:?}");
        }
        assert!(still_busy, "a spinner stopped before the reads were done");
        assert!(wait_until(ROUNDS, || writer_done.load(SeqCst)));
        let (_s, unspread) = writer.join().expect("writer thread");
        assert_eq!(
            unspread, 0,
            "the {procs} spinners did not run on {procs} distinct threads within {GIVE_UP:?}"
        );
        lat
    })
}

/// Parent/child driver: the child runs [`sysmon_scenario`] on `procs` Ps.
fn sysmon_test(test: &str, procs: usize) {
    let _dog = watchdog(test, TEST_TIMEOUT);
    if scenario().is_some() {
        let mut lat = sysmon_scenario(procs);
        let shown = format!("{lat:.2?}");
        lat.sort();
        eprintln!(
            "{test}: {procs} P(s) all busy yielding; reader woke after its peer's write in \
             min {:.2?} / median {:.2?} / max {:.2?} ({SAMPLES} samples: {shown})",
            lat[0],
            lat[SAMPLES / 2],
            lat[SAMPLES - 1]
        );
        for (i, l) in lat.iter().enumerate() {
            assert!(*l < MAX_LATENCY, "sample {i}: woke {l:?} after the write");
        }
        return;
    }
    let out = run_child(test, "sysmon", &[]);
    for line in out.stderr.lines().filter(|l| l.starts_with(test)) {
        eprintln!("{line}");
    }
    assert!(out.status.success(), "{out}");
}

/// One P, one yield-spinner.
#[test]
fn sysmon_wakes_reader_1p_busy() {
    sysmon_test("sysmon_wakes_reader_1p_busy", 1);
}

/// Two Ps, two yield-spinners, one on each.
#[test]
fn sysmon_wakes_reader_2p_busy() {
    sysmon_test("sysmon_wakes_reader_2p_busy", 2);
}

// ---------------------------------------------------------------------------------------------
// 10 000 echo connections, the server in a child process
// ---------------------------------------------------------------------------------------------

/// Connections, exactly: the acceptance number.
const ECHO_N: usize = 10_000;
/// Ps of each side (parent and child).
const ECHO_PROCS: usize = 2;
/// File descriptors each process keeps free for everything else.
const ECHO_FD_HEADROOM: u64 = 200;
/// Connects that may be ahead of the child's ack bytes. An unacknowledged connection is at most
/// waiting in the child's accept queue, so keeping this below the listen backlog (see
/// [`connect_window`]) means no SYN is dropped and no connect waits for a 1 s SYN retransmit.
const ECHO_WINDOW: usize = 1_000;
/// Gs that connect (each its share, one after the other).
const ECHO_CONNECTORS: usize = 16;
/// The byte the child's acceptor writes on each connection as soon as it has accepted it.
const ACK: u8 = 0xAC;
/// Largest message.
const ECHO_MAX_MSG: usize = 16 * 1024;
/// Read buffer of each of the child's echo Gs (10 000 of them: kept small, on the heap).
const ECHO_BUF: usize = 4 * 1024;
/// Stack of the per-connection Gs on both sides (their buffers are on the heap).
const ECHO_STACK: usize = 64 * 1024;
/// How long the parent waits for the child's `PORT` line.
const CHILD_START: Duration = Duration::from_secs(20);
/// How long the parent waits for the child to exit once every client G has finished.
const CHILD_EXIT: Duration = Duration::from_secs(20);
/// A connect, a read or a write of the parent, or a wait for the child's acks, that makes no
/// progress for this long fails the test (so that a stuck child is killed and its output
/// printed, rather than the parent's watchdog aborting both).
const STALL: Duration = Duration::from_secs(20);
/// The child's scenario (the value of [`SCENARIO_ENV`]).
const ECHO_SCENARIO: &str = "echo-server-10000";

/// Spawn a G with an [`ECHO_STACK`] stack.
fn spawn_echo_g<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> weft::JoinHandle<T> {
    weft::Builder::new()
        .stack_size(ECHO_STACK)
        .spawn(f)
        .expect("spawn a per-connection G")
}

/// Yield until `cond` holds; panic if a client G has failed, or (saying `what()`) if `cond`
/// still does not hold after [`STALL`].
fn wait_or_stall(sh: &EchoClients, what: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        sh.check();
        assert!(
            t.elapsed() < STALL,
            "{}: still waiting after {STALL:?}",
            what()
        );
        weft::yield_now();
    }
}

/// [`ECHO_WINDOW`], or less if the listen backlog (`somaxconn`) is small.
fn connect_window() -> usize {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(128);
    ECHO_WINDOW.min(somaxconn / 2).max(1)
}

/// The message sizes of connection `i`: 3..=6 messages of 1..=64, 1..=1500 or 1..=16 KiB bytes;
/// on every tenth connection the first is a single byte and the last exactly 16 KiB.
fn echo_lens(i: usize) -> Vec<usize> {
    let mut rng = Rng::new(0xEC40_0000 ^ i as u64);
    let k = rng.range(3, 6);
    (0..k)
        .map(|j| match (i % 10, j) {
            (0, 0) => 1,
            (0, j) if j == k - 1 => ECHO_MAX_MSG,
            _ => match rng.range(0, 2) {
                0 => rng.range(1, 64),
                1 => rng.range(1, 1500),
                _ => rng.range(1, ECHO_MAX_MSG),
            },
        })
        .collect()
}

/// Message `j` of connection `i`: `len` bytes from a seed of its own, so no two connections
/// (nor two messages of one) carry the same pattern and a crossed stream cannot pass the check.
fn echo_msg(i: usize, j: usize, len: usize) -> Vec<u8> {
    payload(!((i as u64) << 8 | j as u64), len)
}

/// What the parent's connector and client Gs share.
#[derive(Default)]
struct EchoClients {
    /// Connects done.
    connected: AtomicUsize,
    /// Ack bytes read (connections the child has accepted, as far as the parent knows).
    acked: AtomicUsize,
    /// Client streams alive.
    open: AtomicUsize,
    /// Opened once all [`ECHO_N`] connections are open and acknowledged.
    start: Gate,
    /// What the client Gs that failed said.
    errors: Mutex<Vec<String>>,
}

impl EchoClients {
    /// Panic if a client G has failed (so that the waits for the others stop at once).
    fn check(&self) {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = errors.first() {
            panic!("{} client G(s) failed; first: {first}", errors.len());
        }
    }
}

/// Client G of connection `i`: read the child's ack, park on the gate, then send each message,
/// check its echo byte for byte, shut down the write side and read the child's EOF. Returns the
/// bytes sent (and verified); a failure is also recorded in `sh` (see [`EchoClients::check`]).
fn echo_client(i: usize, c: TcpStream, sh: &EchoClients) -> Result<u64, String> {
    let r = echo_client_inner(i, &c, sh);
    drop(c);
    sh.open.fetch_sub(1, SeqCst);
    if let Err(e) = &r {
        sh.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
    }
    r
}

fn echo_client_inner(i: usize, c: &TcpStream, sh: &EchoClients) -> Result<u64, String> {
    let ack = rd_exact(c, 1).map_err(|e| format!("conn {i}: read the ack: {e}"))?;
    if ack[0] != ACK {
        return Err(format!("conn {i}: ack byte {:#x}", ack[0]));
    }
    sh.acked.fetch_add(1, SeqCst);
    sh.start.wait();
    let mut sent = 0u64;
    for (j, len) in echo_lens(i).into_iter().enumerate() {
        let m = echo_msg(i, j, len);
        wr(c, &m).map_err(|e| format!("conn {i} msg {j}: write {len} B: {e}"))?;
        let back = rd_exact(c, len).map_err(|e| format!("conn {i} msg {j}: read {len} B: {e}"))?;
        if back != m {
            let at = back.iter().zip(&m).position(|(a, b)| a != b);
            return Err(format!(
                "conn {i} msg {j} ({len} B): echo differs at byte {at:?}"
            ));
        }
        sent += len as u64;
    }
    c.shutdown(Shutdown::Write)
        .map_err(|e| format!("conn {i}: shutdown(Write): {e}"))?;
    let mut b = [0u8; 1];
    match rd(c, &mut b) {
        Ok(0) => Ok(sent),
        Ok(_) => Err(format!("conn {i}: a byte after the last echo")),
        Err(e) => Err(format!("conn {i}: read EOF: {e}")),
    }
}

/// The child's side: bind, print `PORT <n>`, accept exactly [`ECHO_N`] connections (ack byte,
/// then one G each echoing until EOF), join them, print `ECHOED <bytes> PEAK <open at once>`.
fn echo_server_child(test: &str) {
    let limit = raise_nofile_limit(ECHO_N as u64 + ECHO_FD_HEADROOM);
    assert!(
        limit >= ECHO_N as u64 + ECHO_FD_HEADROOM,
        "child: RLIMIT_NOFILE {limit} is below {ECHO_N} connections + {ECHO_FD_HEADROOM}"
    );
    init(ECHO_PROCS);
    let l = TcpListener::bind("127.0.0.1:0").expect("child: bind 127.0.0.1:0");
    let port = l.local_addr().expect("child: local_addr").port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PORT {port}")
            .and_then(|()| out.flush())
            .expect("child: print the port");
    }
    let t0 = Instant::now();
    let (echoed, peak, t_accepted) = weft::run(move || {
        // Connections accepted and not yet at EOF, and the most there were at once.
        let live = Arc::new(AtomicUsize::new(0));
        let mut peak = 0;
        let mut servers = Vec::with_capacity(ECHO_N);
        for i in 0..ECHO_N {
            let (s, _) = l
                .accept()
                .unwrap_or_else(|e| panic!("child: accept #{i}: {e}"));
            peak = peak.max(live.fetch_add(1, SeqCst) + 1);
            wr(&s, &[ACK]).unwrap_or_else(|e| panic!("child: ack #{i}: {e}"));
            let live = Arc::clone(&live);
            servers.push(spawn_echo_g(move || {
                let n = echo_until_eof(&s, ECHO_BUF)
                    .unwrap_or_else(|e| panic!("child: echo G #{i}: {e}"));
                drop(s);
                live.fetch_sub(1, SeqCst);
                n
            }));
        }
        let t_accepted = Instant::now();
        drop(l);
        let echoed: u64 = servers
            .into_iter()
            .map(|h| h.join().expect("child: echo G"))
            .sum();
        assert_eq!(live.load(SeqCst), 0, "child: connections left open");
        (echoed, peak, t_accepted)
    });
    eprintln!(
        "{test}: child: {ECHO_N} accepted in {:?}, {peak} open at once, {echoed} B echoed, \
         all at EOF after {:?}",
        t_accepted - t0,
        t0.elapsed()
    );
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ECHOED {echoed} PEAK {peak}")
            .and_then(|()| out.flush())
            .expect("child: print the totals");
    }
    assert_eq!(peak, ECHO_N, "child: connections open at once");
}

/// The server child of the parent's side: its stdout and stderr are read by two threads (so it
/// never blocks on a full pipe). Dropping it kills the child if it still runs, and, if the
/// parent is panicking, prints what the child wrote.
struct ServerChild {
    child: Child,
    /// Every stdout line, `PORT` included.
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl ServerChild {
    /// Start the child and wait (at most [`CHILD_START`]) for its `PORT` line.
    fn spawn(test: &str) -> (ServerChild, u16) {
        let exe = std::env::current_exe().expect("current_exe");
        // As `run_child` does: only this test, no `WEFT_*` settings, no backtraces.
        let mut child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(SCENARIO_ENV, ECHO_SCENARIO)
            .env_remove("WEFT_MAXPROCS")
            .env_remove("WEFT_STACK_SIZE")
            .env_remove("WEFT_MAX_STACKS")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server child");
        let (tx, rx) = mpsc::channel::<u16>();
        let out = child.stdout.take().expect("child stdout");
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // libtest has printed `test <name> ... ` without a newline before it.
                if let Some((_, p)) = line.split_once("PORT ") {
                    if let Ok(p) = p.trim().parse::<u16>() {
                        let _ = tx.send(p);
                    }
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut err = child.stderr.take().expect("child stderr");
        let stderr = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        });
        let me = ServerChild {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        // On an error `me` is dropped while panicking: the child is killed, its output printed.
        match rx.recv_timeout(CHILD_START) {
            Ok(port) => (me, port),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the server child printed no PORT line within {CHILD_START:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the server child closed its stdout without a PORT line")
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (at most `limit`, polling) for the child to exit. Returns its exit status, stdout and
    /// stderr; panics (and the drop kills it) if it is still running after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait().expect("try_wait on the server child") {
                Some(st) => break st,
                None if Instant::now() >= deadline => {
                    panic!("the server child is still running {limit:?} after the last client")
                }
                // Polling a process's exit status, not synchronisation between Gs.
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let (out, err) = self.take_output();
        (status, out, err)
    }

    /// The child's output so far (all of it once it has exited).
    fn take_output(&mut self) -> (String, String) {
        let join = |h: Option<std::thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        (join(self.stdout.take()), join(self.stderr.take()))
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() && (self.stdout.is_some() || self.stderr.is_some()) {
            let (out, err) = self.take_output();
            eprintln!(
                "--- server child (pid {}) stdout ---\n{out}\n--- server child stderr ---\n{err}",
                self.child.id()
            );
        }
    }
}

/// The parent's side: the clients, in `weft::run` on [`ECHO_PROCS`] Ps.
fn echo_client_parent(test: &str) {
    let limit = raise_nofile_limit(ECHO_N as u64 + ECHO_FD_HEADROOM);
    assert!(
        limit >= ECHO_N as u64 + ECHO_FD_HEADROOM,
        "RLIMIT_NOFILE {limit} is below {ECHO_N} connections + {ECHO_FD_HEADROOM}"
    );
    let window = connect_window();
    let expected: u64 = (0..ECHO_N)
        .map(|i| echo_lens(i).iter().sum::<usize>() as u64)
        .sum();
    let t0 = Instant::now();
    let (mut child, port) = ServerChild::spawn(test);
    let t_port = t0.elapsed();
    init(ECHO_PROCS);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t1 = Instant::now();
    let (sent, t_connected) = weft::run(move || {
        let sh = Arc::new(EchoClients::default());
        let connectors: Vec<_> = (0..ECHO_CONNECTORS)
            .map(|k| {
                let sh = Arc::clone(&sh);
                weft::go!(move || {
                    (k..ECHO_N)
                        .step_by(ECHO_CONNECTORS)
                        .map(|i| {
                            wait_or_stall(
                                &sh,
                                || format!("connect #{i}: acks from the child"),
                                || {
                                    // Saturating: another connector's client may ack between
                                    // the two loads.
                                    sh.connected
                                        .load(SeqCst)
                                        .saturating_sub(sh.acked.load(SeqCst))
                                        < window
                                },
                            );
                            let c = TcpStream::connect_timeout(&addr, STALL)
                                .unwrap_or_else(|e| panic!("connect #{i}: {e}"));
                            c.set_read_timeout(Some(STALL)).unwrap();
                            c.set_write_timeout(Some(STALL)).unwrap();
                            sh.open.fetch_add(1, SeqCst);
                            sh.connected.fetch_add(1, SeqCst);
                            let sh = Arc::clone(&sh);
                            spawn_echo_g(move || echo_client(i, c, &sh))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let clients: Vec<_> = connectors
            .into_iter()
            .flat_map(|h| h.join().expect("connector G"))
            .collect();
        assert_eq!(clients.len(), ECHO_N);
        // Every client G has read its ack and waits at the gate: all connections are open.
        wait_or_stall(
            &sh,
            || {
                format!(
                    "client Gs at the gate: {} of {ECHO_N}",
                    sh.start.registered()
                )
            },
            || sh.start.registered() == ECHO_N,
        );
        assert_eq!(sh.acked.load(SeqCst), ECHO_N, "acks read");
        assert_eq!(sh.open.load(SeqCst), ECHO_N, "client streams open at once");
        let t_connected = Instant::now();
        assert_eq!(sh.start.open(), ECHO_N, "client Gs woken by the gate");
        let sent: u64 = clients
            .into_iter()
            .map(|h| h.join().expect("client G").unwrap_or(0))
            .sum();
        sh.check();
        assert_eq!(sh.open.load(SeqCst), 0, "client streams left open");
        (sent, t_connected)
    });
    let t_echoed = Instant::now();
    let (status, out, err) = child.wait_exit(CHILD_EXIT);
    let t_exit = t_echoed.elapsed();
    assert!(
        status.success(),
        "server child (pid {}): {status:?}\n--- child stdout ---\n{out}\n--- child stderr ---\n{err}",
        child.pid()
    );
    for line in err.lines().filter(|l| l.starts_with(test)) {
        eprintln!("{line}");
    }
    let totals = out
        .lines()
        .find_map(|l| l.split_once("ECHOED ").map(|(_, t)| t))
        .unwrap_or_else(|| panic!("no ECHOED line in the child's stdout:\n{out}"));
    let (echoed, peak) = totals
        .split_once(" PEAK ")
        .and_then(|(e, p)| Some((e.parse::<u64>().ok()?, p.parse::<usize>().ok()?)))
        .unwrap_or_else(|| panic!("malformed ECHOED line: {totals}"));
    assert_eq!(sent, expected, "bytes sent and verified vs the plan");
    assert_eq!(echoed, sent, "bytes the child echoed vs the parent sent");
    assert_eq!(peak, ECHO_N, "connections open at once in the child");
    eprintln!(
        "{test}: {ECHO_N} connections (client Gs here, server Gs in child pid {}, {ECHO_PROCS} Ps \
         each, connect window {window}): child up {t_port:?}, connect+accept+ack {:?}, echo of \
         {:.1} MiB each way {:?}, child exit {t_exit:?} later, total {:?}",
        child.pid(),
        t_connected - t1,
        sent as f64 / (1 << 20) as f64,
        t_echoed - t_connected,
        t0.elapsed()
    );
}

/// Echo round trips on exactly 10 000 connections open at once, every client a G of this
/// process and every server a G of a child process (see the module doc).
#[test]
fn echo_10000_connections_server_in_child() {
    let test = "echo_10000_connections_server_in_child";
    let _dog = watchdog(test, TEST_TIMEOUT);
    if scenario().as_deref() == Some(ECHO_SCENARIO) {
        echo_server_child(test);
    } else {
        echo_client_parent(test);
    }
}

// ---------------------------------------------------------------------------------------------
// accept under fd exhaustion
// ---------------------------------------------------------------------------------------------

/// The child side of [`accept_emfile_returns_error`]: with every fd in use, `accept` must return
/// `EMFILE` at once (the connection stays queued, nothing spins or parks forever), again on a
/// second call, and succeed once an fd is free.
fn emfile_scenario() {
    init(1);
    weft::run(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().unwrap();
        // Completes in the kernel's backlog; nobody has accepted it yet.
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        // Lower the soft limit to just above what is open, then fill the table.
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the rlimit we pass.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        let saved = r.rlim_cur;
        r.rlim_cur = open + 16;
        // SAFETY: setrlimit reads the rlimit we pass; lowering the soft limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
        let mut hogs = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => hogs.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("filling the fd table: {e}"),
            }
            assert!(hogs.len() < 1000, "RLIMIT_NOFILE did not take effect");
        }
        for round in 0..2 {
            let t = Instant::now();
            let e = l.accept().expect_err("accept with no fd left must fail");
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "round {round}: {e}");
            eprintln!("accept_emfile: round {round}: {e} after {:?}", t.elapsed());
        }
        hogs.pop();
        let (mut s, _) = l.accept().expect("accept once an fd is free");
        s.write_all(b"!").unwrap();
        let mut b = [0u8; 1];
        client.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"!");
        drop(hogs);
        r.rlim_cur = saved;
        // SAFETY: as above; back to the saved soft limit (never above the hard one).
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    });
}

/// `accept` under fd exhaustion returns `EMFILE` without spinning or hanging, and the listener
/// keeps working once an fd is free (in a child: the fd limit is per process).
#[test]
fn accept_emfile_returns_error() {
    const TEST: &str = "accept_emfile_returns_error";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if scenario().is_some() {
        emfile_scenario();
        return;
    }
    let out = run_child(TEST, "emfile", &[]);
    for line in out
        .stderr
        .lines()
        .filter(|l| l.starts_with("accept_emfile"))
    {
        eprintln!("{line}");
    }
    assert!(out.status.success(), "{out}");
}
