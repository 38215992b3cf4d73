//! The short-read rule of `Fd::read_stream` (net/src/fd.rs; docs/NETPOLL.md, "A short TCP read
//! skips the next `EAGAIN`"): after a TCP `read` returned `0 < n < buf.len()`, the next `read` of
//! that stream waits for the pollDesc's readiness before its syscall. These cases check that the
//! exceptions to the rule keep working:
//!
//! | case | what |
//! |---|---|
//! | [`fin_queued_before_first_read`] | data and FIN queued (and harvested by netpoll) before the first read: N bytes, then `Ok(0)` |
//! | [`reset_queued_before_first_read`] | the same with a reset (`SO_LINGER` 0): a prefix of the data, then `ConnectionReset`, then `Ok(0)` |
//! | [`ping_pong_10k`] | 10 000 request/response round trips of small messages (the traffic the rule is for) |
//! | [`peek_and_vectored_after_short_read`] | `peek`, small `read`s and `read_vectored` after a short read, data arriving in between |
//! | [`deadline_and_close_wake_short_read_wait`] | a read waiting after a short read is woken by data, a deadline (moved into the past by another G, or set before), a read timeout, and `close` from another G |
//! | [`unix_stream_two_writers`] | Unix streams (the rule is off): reads that stop between writers of different processes, two concurrent writer Gs |
//! | [`random_streams_proptest`] | random writer plans (chunks, yields, FIN / drop / close / reset) and reader plans (read / peek / read_vectored) on 2–6 connections at once |
//!
//! **1 P and 2 Ps.** weft's settings are per process, so every case is two tests, `<case>::p1` and
//! `<case>::p2`, each of which re-runs this binary as a child process (`common::run_child`) that
//! runs only that test with `max_procs` 1 or 2. A child has the runtime to itself (no other test
//! of the binary runs next to it), which keeps "what netpoll has seen" under the case's control.
//!
//! **Bounded.** The child runs under a watchdog ([`CASE_TIMEOUT`]) that aborts it with the case,
//! the P count, the step it was in ([`step!`]) and a goroutine dump; the parent has a watchdog of
//! its own, a little longer. Every wait loop is bounded too.
//!
//! **No sleep as synchronisation.** "G is parked reading fd n" is asked of the runtime
//! (`weft::runtime::goroutines()`, [`wait_parked`]); "netpoll has harvested every edge raised so
//! far" is [`netpoll_barrier`]. The only clock waits are deadlines and timeouts, whose subject is
//! time.
//!
//! **Making the hang reachable.** The dangerous state is: the pollDesc said `READY` for an edge
//! that carried the FIN (or the reset), the read that consumed the last data erased that `READY`
//! in its `prepare`, and no edge is left to come. A reader that then waited regardless would wait
//! forever. The deterministic cases reach that state exactly, by queueing data and FIN/RST and
//! running [`netpoll_barrier`] before the reader's first read.

mod common;

use std::fmt;
use std::io::{self, ErrorKind, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use weft::go;
use weft::net::{is_closed, TcpListener, TcpStream, UnixStream};
use weft::runtime::{goroutines, GState, WaitReason};

use common::wait_until;

/// How long one case may run in its child process before the watchdog aborts it.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The parent's watchdog waits this much longer than the child's (so the child's message, which
/// names the step, is the one seen).
const PARENT_SLACK: Duration = Duration::from_secs(30);

/// `WEFT_TEST_SCENARIO` of the child processes.
const CHILD_SCENARIO: &str = "net_short_read";

/// Bound on `yield_now` rounds of a wait loop that asks the runtime for its goroutines (a few µs
/// each); the watchdog is the real limit.
const PARK_ROUNDS: u64 = 2_000_000;

/// Bound on `yield_now` rounds of a wait loop on a flag.
const FLAG_ROUNDS: u64 = 100_000_000;

/// Generated cases of the proptest unless `PROPTEST_CASES` says otherwise (per P count).
const PROPTEST_DEFAULT_CASES: u32 = 16;

/// Round trips of [`ping_pong_10k`].
const ROUND_TRIPS: usize = 10_000;

/// "Quickly", for a wakeup that should be prompt: generous on purpose, printed not tightly
/// asserted.
const GENEROUS: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Test generation: every case on 1 P and on 2 Ps, each in a child process
// ---------------------------------------------------------------------------------------------

/// `$case: $limit;` generates `mod $case { #[test] fn p1(); #[test] fn p2(); }`, each running
/// the function `$case` (same name, value namespace) in a child process with that many Ps and a
/// watchdog of `$limit`.
macro_rules! cases {
    ($($case:ident: $limit:expr;)*) => {
        $(
            mod $case {
                use super::*;

                #[test]
                fn p1() {
                    super::run_case(concat!(stringify!($case), "::p1"), 1, $limit, super::$case);
                }

                #[test]
                fn p2() {
                    super::run_case(concat!(stringify!($case), "::p2"), 2, $limit, super::$case);
                }
            }
        )*
    };
}

cases! {
    fin_queued_before_first_read: CASE_TIMEOUT;
    reset_queued_before_first_read: CASE_TIMEOUT;
    ping_pong_10k: CASE_TIMEOUT;
    peek_and_vectored_after_short_read: CASE_TIMEOUT;
    deadline_and_close_wake_short_read_wait: CASE_TIMEOUT;
    unix_stream_two_writers: CASE_TIMEOUT;
    urgent_data_mark: CASE_TIMEOUT;
    random_streams_proptest: proptest_limit();
}

/// Parent: run test `test` in a child process and fail with its output if it failed. Child (the
/// scenario variable is set): watchdog, `max_procs(procs)`, then `body`.
fn run_case(test: &str, procs: usize, limit: Duration, body: fn()) {
    if common::scenario().is_some() {
        let _dog = watchdog(test, procs, limit);
        common::init(procs);
        let t = Instant::now();
        body();
        eprintln!("{test}: passed on {procs} P in {:.2?}", t.elapsed());
        return;
    }
    let _dog = common::watchdog(&format!("{test} (parent)"), limit + PARENT_SLACK);
    let t = Instant::now();
    let out = common::run_child(test, CHILD_SCENARIO, &[]);
    let took = t.elapsed();
    // The child's measurements (`--nocapture` there; captured here unless `--nocapture`).
    for line in out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&test[..test.len() - 4]))
    {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "{test} failed on {procs} P (child process, {took:.2?}):\n{out}"
    );
}

/// The proptest's watchdog: [`CASE_TIMEOUT`], or 2 s per generated case for a soak.
fn proptest_limit() -> Duration {
    CASE_TIMEOUT.max(Duration::from_secs(2) * common::proptest_cases(PROPTEST_DEFAULT_CASES))
}

/// What the child is doing, for the watchdog's message.
static STEP: Mutex<String> = Mutex::new(String::new());

/// Record the current step of a case (`format!` arguments). Cheap enough for every sub-case;
/// the lock is never held across a park.
macro_rules! step {
    ($($arg:tt)*) => {
        set_step(format_args!($($arg)*))
    };
}

fn set_step(args: fmt::Arguments<'_>) {
    let s = args.to_string();
    *STEP.lock().unwrap_or_else(|e| e.into_inner()) = s;
}

/// Aborts the (child) process if not dropped within its limit.
#[must_use = "the watchdog is disarmed when this is dropped"]
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

/// `common::watchdog`, plus the step the case was in and a goroutine dump (which G waits on
/// which fd) in its message.
fn watchdog(test: &str, procs: usize, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    let test = test.to_string();
    std::thread::Builder::new()
        .name(format!("watchdog-{test}"))
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                let step = STEP.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let mut err = io::stderr();
                // Straight to fd 2 (the harness's capture is lost when we abort).
                let _ = writeln!(
                    err,
                    "\nwatchdog: test `{test}` on {procs} P still running after {limit:?}: a \
                     read is probably waiting for an edge that will never come.\n\
                     step: {step}"
                );
                let _ = weft::runtime::dump(&mut err);
                std::process::abort();
            }
        })
        .expect("spawn watchdog thread");
    Watchdog { _disarm: tx }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// splitmix64 bytes: `len` pseudo-random bytes from `seed`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A connected TCP pair `(client, server)` on a fresh loopback listener, both with
/// `TCP_NODELAY`: a small write is then on the peer's receive queue when `write` returns, where
/// Nagle would hold it back until the previous segment is acknowledged (a delayed ACK: up to
/// 40 ms), after a [`netpoll_barrier`] that was meant to cover it.
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (s, _) = l.accept().expect("accept");
    c.set_nodelay(true).expect("TCP_NODELAY");
    s.set_nodelay(true).expect("TCP_NODELAY");
    (c, s)
}

/// `read` on a shared stream (TCP or Unix).
fn rd<S>(s: &S, buf: &mut [u8]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let mut r = s;
    r.read(buf)
}

/// `write_all` on a shared stream (TCP or Unix).
fn wr<S>(s: &S, buf: &[u8]) -> io::Result<()>
where
    for<'a> &'a S: Write,
{
    let mut w = s;
    w.write_all(buf)
}

/// `read_vectored` into buffers of `sizes`; the bytes read, in order.
fn rv(s: &TcpStream, sizes: &[usize]) -> io::Result<Vec<u8>> {
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();
    let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
    let mut r = s;
    let n = r.read_vectored(&mut slices)?;
    Ok(bufs.concat()[..n].to_vec())
}

/// `SO_PASSCRED`: the socket receives its writers' credentials, so a Unix stream read stops
/// where the writer (process) changes.
fn set_passcred(s: &impl std::os::fd::AsFd) {
    socket2::SockRef::from(s)
        .set_passcred(true)
        .expect("SO_PASSCRED");
}

/// Bytes queued in the socket's receive queue (`FIONREAD`). Touches no weft state.
fn queued(s: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `c_int` through the pointer, which points at `n` on our stack;
    // the fd is open for the duration of the call (borrowed from `s`).
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
    n as usize
}

/// Whether the runtime lists G `id` as parked in a socket read on `fd`.
fn parked_reading(id: u64, fd: RawFd) -> bool {
    goroutines().iter().any(|g| {
        g.id == id
            && g.state == GState::Waiting
            && g.wait_reason == WaitReason::IoRead
            && g.fd == Some(fd)
    })
}

/// Wait (yielding) until the G of `h` is parked reading `fd`. Fails if it finished instead.
fn wait_parked<T>(h: &weft::JoinHandle<T>, fd: RawFd, what: &str) {
    let id = h.id();
    assert!(
        wait_until(PARK_ROUNDS, || h.is_finished() || parked_reading(id, fd)),
        "{what}: G {id} never parked reading fd {fd}"
    );
    assert!(
        !h.is_finished(),
        "{what}: the G returned instead of waiting on fd {fd}"
    );
}

/// Return once netpoll has harvested every epoll edge raised before the call.
///
/// A G parks reading a fresh connection (the runtime lists it waiting on that fd); then a byte is
/// written to the connection and the G joined. Only netpoll wakes that G, and epoll hands out
/// ready fds in the order they became ready, so the same or an earlier `epoll_wait` delivered
/// every older edge: the pollDesc of a socket nobody waits on now says `READY`, and has its
/// sticky hang-up bit if the edge carried `EPOLLRDHUP`/`EPOLLERR`. The read that follows erases
/// that `READY` in its `prepare`: the state described in the module doc.
fn netpoll_barrier() {
    let (x, y) = pair();
    let xfd = x.as_raw_fd();
    let g = go!(move || rd(&x, &mut [0u8; 1]));
    wait_parked(&g, xfd, "netpoll barrier");
    wr(&y, b"!").expect("netpoll barrier: write");
    assert_eq!(
        g.join()
            .expect("netpoll barrier G")
            .expect("netpoll barrier: read"),
        1
    );
}

/// Check that `got` is the expected stream `want` at offset `pos`.
fn check(want: &[u8], pos: usize, got: &[u8]) -> Result<(), String> {
    let end = pos + got.len();
    if end > want.len() {
        return Err(format!(
            "{} bytes at offset {pos}: past the end of the {} bytes written",
            got.len(),
            want.len()
        ));
    }
    if got != &want[pos..end] {
        let at = got.iter().zip(&want[pos..end]).position(|(a, b)| a != b);
        return Err(format!(
            "{} bytes at offset {pos} differ from what was written, first at +{at:?}",
            got.len()
        ));
    }
    Ok(())
}

/// [`Reader::barrier`]s in this process, and how many found every written byte queued.
static BARRIERS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// "premise held after k of n barriers", for a case's summary.
fn premise() -> String {
    format!(
        "all written bytes queued after {} of {} barriers",
        BARRIERS[1].load(SeqCst),
        BARRIERS[0].load(SeqCst)
    )
}

/// The reader's side of a scripted case: the bytes written so far and how many were consumed.
/// Every read is checked against `want`; every op is a [`step!`].
struct Reader<'a> {
    s: &'a TcpStream,
    want: Vec<u8>,
    pos: usize,
    case: &'static str,
}

impl<'a> Reader<'a> {
    fn new(s: &'a TcpStream, case: &'static str) -> Reader<'a> {
        Reader {
            s,
            want: Vec::new(),
            pos: 0,
            case,
        }
    }

    /// [`netpoll_barrier`], then count whether all the bytes written so far and not read are in
    /// the receive queue (`FIONREAD`): the premise of the step that follows ("queued, and its
    /// edge harvested, before the op"). Counted ([`premise`]), not asserted: on loopback the
    /// kernel queues a write before `write` returns, but a setting such as RPS on `lo` could
    /// defer it, and then the step only exercises another path.
    fn barrier(&mut self) {
        netpoll_barrier();
        BARRIERS[0].fetch_add(1, SeqCst);
        if queued(self.s) == self.pending() {
            BARRIERS[1].fetch_add(1, SeqCst);
        }
    }

    /// Bytes written but not read yet.
    fn pending(&self) -> usize {
        self.want.len() - self.pos
    }

    fn took(&mut self, got: &[u8], what: &str) -> usize {
        if let Err(e) = check(&self.want, self.pos, got) {
            panic!("{}: {what}: {e}", self.case);
        }
        self.pos += got.len();
        got.len()
    }

    /// One `read` with a `len`-byte buffer; asserts it returned data.
    fn read(&mut self, len: usize) -> usize {
        step!("{}: read({len}) at offset {}", self.case, self.pos);
        let mut buf = vec![0u8; len];
        let n = rd(self.s, &mut buf)
            .unwrap_or_else(|e| panic!("{}: read({len}) at {}: {e}", self.case, self.pos));
        assert!(n > 0, "{}: read({len}) at {}: EOF", self.case, self.pos);
        self.took(&buf[..n], "read")
    }

    /// `read`s with a `len`-byte buffer until everything written so far is consumed; returns how
    /// many reads that took.
    fn read_all(&mut self, len: usize) -> usize {
        let mut reads = 0;
        while self.pending() > 0 {
            self.read(len);
            reads += 1;
        }
        reads
    }

    /// One `peek` with a `len`-byte buffer; checks the bytes, consumes nothing.
    fn peek(&mut self, len: usize) -> usize {
        step!("{}: peek({len}) at offset {}", self.case, self.pos);
        let mut buf = vec![0u8; len];
        let n = self
            .s
            .peek(&mut buf)
            .unwrap_or_else(|e| panic!("{}: peek({len}) at {}: {e}", self.case, self.pos));
        assert!(n > 0, "{}: peek({len}) at {}: EOF", self.case, self.pos);
        if let Err(e) = check(&self.want, self.pos, &buf[..n]) {
            panic!("{}: peek: {e}", self.case);
        }
        n
    }

    /// One `read_vectored` into buffers of `sizes`.
    fn read_vectored(&mut self, sizes: &[usize]) -> usize {
        step!(
            "{}: read_vectored({sizes:?}) at offset {}",
            self.case,
            self.pos
        );
        let got = rv(self.s, sizes).unwrap_or_else(|e| {
            panic!(
                "{}: read_vectored({sizes:?}) at {}: {e}",
                self.case, self.pos
            )
        });
        assert!(!got.is_empty(), "{}: read_vectored: EOF", self.case);
        self.took(&got, "read_vectored")
    }

    /// `read` must return EOF now.
    fn eof(&mut self) {
        step!("{}: read at EOF (offset {})", self.case, self.pos);
        let r = rd(self.s, &mut [0u8; 4096]);
        assert!(
            matches!(r, Ok(0)),
            "{}: expected EOF at offset {}, got {r:?}",
            self.case,
            self.pos
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Data and FIN queued before the first read
// ---------------------------------------------------------------------------------------------

/// Message sizes of the queued-before-first-read cases (all fit the loopback receive buffer, so
/// the writer never waits for the reader).
const QUEUED_SIZES: [usize; 9] = [1, 2, 17, 100, 1448, 4096, 16_385, 40_000, 65_000];

/// Data then FIN, both queued and harvested by netpoll before the reader's first read, whose
/// buffer is larger than the data: the first read returns the data (a short read), the next one
/// `Ok(0)` — although the FIN's edge came before that short read and none will follow. Then the
/// same with the FIN arriving (with more data) after a first short read, and with the FIN alone.
fn fin_queued_before_first_read() {
    weft::run(|| {
        const CASE: &str = "fin_queued_before_first_read";
        let mut checked = 0;
        for (i, &n) in QUEUED_SIZES.iter().enumerate() {
            for buf_len in [n + 1, 2 * n + 3, 128 * 1024] {
                step!("{CASE}: {n} B + FIN queued, read buffer {buf_len} B");
                let (c, s) = pair();
                let mut r = Reader::new(&s, CASE);
                r.want = payload(i as u64, n);
                wr(&c, &r.want).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                r.barrier();
                let first = r.read(buf_len);
                assert!(first < buf_len, "a read larger than the data was not short");
                r.read_all(buf_len);
                r.eof();
                r.eof();
                checked += 1;
            }
        }

        // A short read first; then more data and the FIN, both harvested while nobody reads.
        for (i, &n) in QUEUED_SIZES.iter().enumerate() {
            step!("{CASE}: short read, then {n} B + FIN queued");
            let (c, s) = pair();
            let mut r = Reader::new(&s, CASE);
            let data = payload(100 + i as u64, 10 + n);
            r.want = data[..10].to_vec();
            wr(&c, &r.want).unwrap();
            r.barrier();
            r.read(4096);
            r.want = data;
            wr(&c, &r.want[10..]).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            r.barrier();
            r.read_all(n + 1);
            r.eof();
            checked += 1;
        }

        // A short read first; then the FIN alone (its edge comes after the short read).
        step!("{CASE}: short read, then FIN alone");
        let (c, s) = pair();
        let mut r = Reader::new(&s, CASE);
        r.want = payload(200, 33);
        wr(&c, &r.want).unwrap();
        r.barrier();
        r.read(4096);
        c.shutdown(Shutdown::Write).unwrap();
        r.barrier();
        r.eof();
        checked += 1;

        // And with the reader already waiting after its short read when data and FIN come.
        step!("{CASE}: waiting after a short read when data + FIN come");
        let (c, s) = pair();
        let s = Arc::new(s);
        let want = payload(300, 5000);
        wr(&c, &want[..100]).unwrap();
        let reader = {
            let (s, want) = (Arc::clone(&s), want.clone());
            go!(move || {
                let mut r = Reader::new(&s, CASE);
                r.want = want;
                r.read(4096);
                r.read_all(8192);
                r.eof();
            })
        };
        wait_parked(&reader, s.as_raw_fd(), CASE);
        wr(&c, &want[100..]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        reader.join().expect("reader G");
        checked += 1;
        eprintln!(
            "{CASE}: {checked} connections: data + FIN read exactly, then EOF ({})",
            premise()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Data and a reset queued before the first read
// ---------------------------------------------------------------------------------------------

/// Read after the peer reset: data (a prefix of `r.want`), then `ConnectionReset` (or `Ok(0)`),
/// then `Ok(0)`. Returns how many bytes arrived.
fn read_until_reset(r: &mut Reader<'_>, buf_len: usize) -> usize {
    let mut buf = vec![0u8; buf_len];
    loop {
        step!(
            "{}: read({buf_len}) after a reset, offset {}",
            r.case,
            r.pos
        );
        match rd(r.s, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                r.took(&buf[..n], "read before the reset");
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                r.eof();
                break;
            }
            Err(e) => panic!("{}: read at offset {} after a reset: {e:?}", r.case, r.pos),
        }
    }
    r.pos
}

/// Data, then a reset (`SO_LINGER` 0 and close), both queued and harvested before the reader's
/// first read: the reader gets the data (a prefix of it, if the kernel dropped some), then
/// `ConnectionReset`, then EOF. Then the same with the reset arriving (after more data) once a
/// first short read has happened.
fn reset_queued_before_first_read() {
    weft::run(|| {
        const CASE: &str = "reset_queued_before_first_read";
        let (mut conns, mut full, mut short_first) = (0, 0, 0);
        for (i, &n) in QUEUED_SIZES.iter().enumerate() {
            for buf_len in [n + 1, 128 * 1024] {
                step!("{CASE}: {n} B + RST queued, read buffer {buf_len} B");
                let (c, s) = pair();
                let mut r = Reader::new(&s, CASE);
                r.want = payload(400 + i as u64, n);
                wr(&c, &r.want).unwrap();
                common::set_linger_zero(&c);
                drop(c);
                r.barrier();
                let mut buf = vec![0u8; buf_len];
                step!("{CASE}: {n} B + RST queued: first read({buf_len})");
                match rd(&s, &mut buf) {
                    Ok(k) if k > 0 => {
                        r.took(&buf[..k], "first read");
                        short_first += 1;
                    }
                    other => eprintln!("{CASE}: {n} B: first read got {other:?} (data dropped)"),
                }
                let got = read_until_reset(&mut r, buf_len);
                full += usize::from(got == n);
                conns += 1;
            }
        }

        // A short read first; then more data and the reset, harvested while nobody reads.
        for (i, &n) in QUEUED_SIZES.iter().enumerate() {
            step!("{CASE}: short read, then {n} B + RST queued");
            let (c, s) = pair();
            let mut r = Reader::new(&s, CASE);
            let data = payload(500 + i as u64, 10 + n);
            r.want = data[..10].to_vec();
            wr(&c, &r.want).unwrap();
            r.barrier();
            r.read(4096);
            r.want = data;
            wr(&c, &r.want[10..]).unwrap();
            common::set_linger_zero(&c);
            drop(c);
            r.barrier();
            let got = read_until_reset(&mut r, n + 1);
            full += usize::from(got == n + 10);
            conns += 1;
        }
        eprintln!(
            "{CASE}: {conns} connections reset after their data: all data read on {full}; data \
             in the first read on {short_first} of {}; then ConnectionReset and EOF, no hang \
             ({})",
            2 * QUEUED_SIZES.len(),
            premise()
        );
        assert!(
            short_first > 0,
            "no connection kept its data across the reset"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Request/response
// ---------------------------------------------------------------------------------------------

/// 10 000 round trips of small messages (1..=300 B) between two Gs, both reading with 4 KiB
/// buffers (so every read is short and every next read takes the rule's path): the server
/// answers each byte + 1, the client checks every byte, then the FIN ends the server.
fn ping_pong_10k() {
    weft::run(|| {
        const CASE: &str = "ping_pong_10k";
        step!("{CASE}: {ROUND_TRIPS} round trips");
        let (c, s) = pair();
        let server = go!(move || -> io::Result<(u64, u64)> {
            let mut buf = vec![0u8; 4096];
            let (mut bytes, mut reads) = (0u64, 0u64);
            loop {
                let n = rd(&s, &mut buf)?;
                if n == 0 {
                    return Ok((bytes, reads));
                }
                reads += 1;
                bytes += n as u64;
                for b in &mut buf[..n] {
                    *b = b.wrapping_add(1);
                }
                wr(&s, &buf[..n])?;
            }
        });
        let t = Instant::now();
        let mut buf = vec![0u8; 4096];
        let mut sent = 0u64;
        for i in 0..ROUND_TRIPS {
            let len = 1 + (i * 7919) % 300;
            let msg = payload(i as u64, len);
            wr(&c, &msg).unwrap();
            sent += len as u64;
            let mut got = 0;
            while got < len {
                let n = rd(&c, &mut buf[got..]).unwrap();
                assert!(n > 0, "{CASE}: EOF in round trip {i}");
                got += n;
            }
            assert_eq!(got, len, "{CASE}: round trip {i}: more bytes than sent");
            for (j, (a, b)) in buf[..len].iter().zip(&msg).enumerate() {
                assert_eq!(*a, b.wrapping_add(1), "{CASE}: round trip {i}, byte {j}");
            }
        }
        let elapsed = t.elapsed();
        step!("{CASE}: FIN after {ROUND_TRIPS} round trips");
        c.shutdown(Shutdown::Write).unwrap();
        let (bytes, reads) = server.join().expect("server G").expect("server");
        assert_eq!(bytes, sent);
        assert_eq!(rd(&c, &mut buf).unwrap(), 0, "client reads EOF");
        eprintln!(
            "{CASE}: {ROUND_TRIPS} round trips ({sent} B, {reads} server reads) in \
             {elapsed:.2?} ({:.2?} each)",
            elapsed / ROUND_TRIPS as u32
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Other read-side ops after a short read
// ---------------------------------------------------------------------------------------------

/// After a short read, more data arrives and is harvested; then `peek` (whose `prepare` erases
/// the `READY`), `read`s with small buffers, `read_vectored`: each read after one of those must
/// try its syscall, as the data is queued and no edge will come. Then the same ops while the
/// data arrives only after the reader parked, and at the end data + FIN after a peek.
fn peek_and_vectored_after_short_read() {
    weft::run(|| {
        const CASE: &str = "peek_and_vectored_after_short_read";
        let (c, s) = pair();
        let c = Arc::new(c);
        let stream = payload(600, 1 << 20);
        let mut sent = 0;
        let mut r = Reader::new(&s, CASE);
        // The next `n` bytes of `stream`: written now, expected by the reader.
        let send = |r: &mut Reader<'_>, sent: &mut usize, n: usize| {
            wr(&*c, &stream[*sent..*sent + n]).unwrap();
            r.want.extend_from_slice(&stream[*sent..*sent + n]);
            *sent += n;
        };

        for round in 0..20usize {
            let m = 50 + round * 37;
            // A short read.
            send(&mut r, &mut sent, 100);
            r.barrier();
            r.read_all(4096);

            // Data arrives; peek, then a small read.
            send(&mut r, &mut sent, 300 + m);
            r.barrier();
            r.peek(64);
            r.read(16);
            r.peek(8);
            r.read(1);
            r.read_vectored(&[20, 30]);
            r.read(7);
            r.read_all(4096);

            // Data arrives; read_vectored takes part of it, then a read.
            send(&mut r, &mut sent, m);
            r.barrier();
            r.read_vectored(&[10, 10]);
            r.read_all(4096);

            // Data arrives; a peek as large as the data, then a read of it all (short).
            send(&mut r, &mut sent, m);
            r.barrier();
            assert!(r.peek(8192) > 0);
            r.read_all(8192);

            // Data arrives; a read that takes exactly what is queued (not short), then more
            // arrives and a short read.
            send(&mut r, &mut sent, m);
            r.barrier();
            let k = r.pending();
            r.read_all(k);
            send(&mut r, &mut sent, m);
            r.barrier();
            r.read_all(4096);
        }

        // The reader parks in each op after a short read; a G writes once it is parked.
        let me = weft::current_id().expect("in a G");
        let sfd = s.as_raw_fd();
        for (i, op) in ["peek", "read(5)", "read_vectored", "read(4096)"]
            .iter()
            .enumerate()
        {
            let n = 40 + 10 * i;
            step!("{CASE}: {op} parked after a short read");
            r.want.extend_from_slice(&stream[sent..sent + n]);
            let writer = {
                let (c, chunk) = (Arc::clone(&c), stream[sent..sent + n].to_vec());
                go!(move || {
                    let parked = wait_until(PARK_ROUNDS, || parked_reading(me, sfd));
                    wr(&*c, &chunk).unwrap();
                    parked
                })
            };
            sent += n;
            match *op {
                "peek" => {
                    r.peek(4096);
                    r.read_all(4096);
                }
                "read(5)" => {
                    r.read(5);
                    r.read_all(4096);
                }
                "read_vectored" => {
                    r.read_vectored(&[3, 4096]);
                    r.read_all(4096);
                }
                _ => {
                    r.read_all(4096);
                }
            }
            assert!(
                writer.join().expect("writer G"),
                "{CASE}: {op}: the reader never parked"
            );
        }

        // Data + FIN queued after a short read; peek, then read everything, then EOF.
        step!("{CASE}: data + FIN after a peek");
        send(&mut r, &mut sent, 40);
        c.shutdown(Shutdown::Write).unwrap();
        r.barrier();
        r.peek(4096);
        r.read_all(4096);
        r.eof();
        eprintln!(
            "{CASE}: {} B through peek / small read / read_vectored after short reads ({})",
            r.pos,
            premise()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Deadlines and close interrupt the wait after a short read
// ---------------------------------------------------------------------------------------------

/// A reader G that does one short read of `first` (10 B) and then one more read (which waits,
/// the rule's path); returns the second read's result and when it returned. `short` is set
/// between the two.
fn short_then_wait(
    s: Arc<TcpStream>,
    short: Arc<AtomicBool>,
) -> weft::JoinHandle<(io::Result<Vec<u8>>, Instant)> {
    go!(move || {
        let mut buf = [0u8; 4096];
        let n = rd(&*s, &mut buf).expect("the short read");
        assert_eq!(&buf[..n], b"0123456789", "the short read");
        short.store(true, SeqCst);
        let r = rd(&*s, &mut buf).map(|n| buf[..n].to_vec());
        (r, Instant::now())
    })
}

/// Start [`short_then_wait`] after writing its 10 bytes, and wait until it is parked in its
/// second read.
fn parked_after_short_read(
    c: &TcpStream,
    s: &Arc<TcpStream>,
    what: &str,
) -> weft::JoinHandle<(io::Result<Vec<u8>>, Instant)> {
    step!("{what}: reader parks after a short read");
    wr(c, b"0123456789").unwrap();
    let short = Arc::new(AtomicBool::new(false));
    let h = short_then_wait(Arc::clone(s), Arc::clone(&short));
    assert!(
        wait_until(FLAG_ROUNDS, || short.load(SeqCst) || h.is_finished()),
        "{what}: no short read"
    );
    wait_parked(&h, s.as_raw_fd(), what);
    h
}

fn assert_timed_out<T: fmt::Debug>(r: &io::Result<T>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{what}: {e:?}"),
        Ok(v) => panic!("{what}: expected TimedOut, got Ok({v:?})"),
    }
}

/// A read waiting after a short read is woken by data; by `set_read_deadline(past)` from another
/// G (`TimedOut`, and the next read after clearing the deadline gets new data); by a deadline set
/// before it, never early; by a read timeout; and by `close` from another G (the closed error).
fn deadline_and_close_wake_short_read_wait() {
    weft::run(|| {
        const CASE: &str = "deadline_and_close_wake_short_read_wait";

        // Data wakes it (the baseline).
        let (c, s) = pair();
        let s = Arc::new(s);
        let h = parked_after_short_read(&c, &s, "data");
        wr(&c, b"more").unwrap();
        let (r, _) = h.join().expect("reader G");
        assert_eq!(r.expect("read woken by data"), b"more");

        // A deadline moved into the past by another G.
        let h = parked_after_short_read(&c, &s, "deadline moved into the past");
        let t = Instant::now();
        let past = t.checked_sub(Duration::from_millis(1)).unwrap_or(t);
        s.set_read_deadline(Some(past)).unwrap();
        let (r, at) = h.join().expect("reader G");
        assert_timed_out(
            &r,
            "read waiting after a short read, deadline moved into the past",
        );
        let woke = at.saturating_duration_since(t);
        assert!(woke < GENEROUS, "woke {woke:?} after the deadline moved");
        step!("{CASE}: read after the deadline is cleared");
        s.set_read_deadline(None).unwrap();
        wr(&c, b"after").unwrap();
        let mut buf = [0u8; 4096];
        let n = rd(&*s, &mut buf).expect("read after clearing the deadline");
        assert_eq!(&buf[..n], b"after");
        eprintln!("{CASE}: deadline moved into the past: the waiting reader woke after {woke:?}");

        // A deadline set before the short read, by the reader itself.
        step!("{CASE}: deadline set before the short read");
        let (c, s) = pair();
        wr(&c, b"0123456789").unwrap();
        let d = Instant::now() + Duration::from_millis(60);
        s.set_read_deadline(Some(d)).unwrap();
        assert_eq!(rd(&s, &mut buf).unwrap(), 10);
        let r = rd(&s, &mut buf);
        let now = Instant::now();
        assert_timed_out(&r, "read after a short read, past its deadline");
        assert!(now >= d, "the deadline fired {:?} early", d - now);
        assert!(now - d < GENEROUS, "the deadline fired {:?} late", now - d);
        s.set_read_deadline(None).unwrap();

        // A read timeout.
        step!("{CASE}: read timeout after a short read");
        let to = Duration::from_millis(40);
        s.set_read_timeout(Some(to)).unwrap();
        wr(&c, b"0123456789").unwrap();
        assert_eq!(rd(&s, &mut buf).unwrap(), 10);
        let t = Instant::now();
        let r = rd(&s, &mut buf);
        let took = t.elapsed();
        assert_timed_out(&r, "read after a short read, with a read timeout");
        assert!(took >= to, "the read timeout fired after {took:?} < {to:?}");
        assert!(
            took < to + GENEROUS,
            "the read timeout fired after {took:?}"
        );
        // And with the timeout still set, data in time is read.
        wr(&c, b"in time").unwrap();
        let n = rd(&s, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"in time");
        s.set_read_timeout(None).unwrap();

        // close() from another G.
        let (c, s) = pair();
        let s = Arc::new(s);
        let h = parked_after_short_read(&c, &s, "close");
        let t = Instant::now();
        s.close().expect("close");
        let (r, at) = h.join().expect("reader G");
        match r {
            Err(ref e) => assert!(is_closed(e), "expected the closed error, got {e:?}"),
            Ok(ref v) => panic!("read waiting during close returned Ok({v:?})"),
        }
        let woke = at.saturating_duration_since(t);
        assert!(woke < GENEROUS, "the reader woke {woke:?} after close");
        let e = rd(&*s, &mut buf).expect_err("read after close");
        assert!(is_closed(&e), "{e:?}");
        step!("{CASE}: peer reads EOF after close");
        assert_eq!(rd(&c, &mut buf).unwrap(), 0, "the peer reads EOF");
        eprintln!("{CASE}: close woke the reader waiting after a short read after {woke:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Unix streams: the rule is off
// ---------------------------------------------------------------------------------------------

/// Write `msg` to `w` from another process (`sh`'s `printf`, its stdout a dup of the socket):
/// with `SO_PASSCRED` on the reader, a Unix stream read never joins bytes of two processes.
/// `send(fd, buf, MSG_OOB)`: TCP urgent data (the last byte is urgent and, without
/// `SO_OOBINLINE`, taken out of the in-band stream).
fn send_oob(s: &impl AsRawFd, buf: &[u8]) {
    // SAFETY: `buf` is valid for `buf.len()` bytes during the call; the fd is open (borrowed
    // from a live socket).
    let n = unsafe { libc::send(s.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_OOB) };
    assert_eq!(
        n,
        buf.len() as isize,
        "send(MSG_OOB): {}",
        io::Error::last_os_error()
    );
}

/// A read stops short at an urgent-data mark with in-band data behind it, and no new edge comes
/// for that data: weft registers `EPOLLPRI` and turns the short-read rule off for the
/// connection. Data, urgent byte and more data are all queued (and their edges harvested) before
/// the reads, the connection stays open (no FIN to wake anything): every in-band byte arrives.
fn urgent_data_mark() {
    weft::run(|| {
        const CASE: &str = "urgent_data_mark";
        for (i, &n) in [1usize, 100, 4096].iter().enumerate() {
            step!("{CASE}: {n} B, an urgent byte, {n} B, connection kept open");
            let (c, s) = pair();
            let before = payload(700 + i as u64, n);
            let after = payload(800 + i as u64, n);
            wr(&c, &before).unwrap();
            send_oob(&c, b"!");
            wr(&c, &after).unwrap();
            netpoll_barrier();
            let mut want = before.clone();
            want.extend_from_slice(&after);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while got.len() < want.len() {
                step!("{CASE}: {n} B each side: read at offset {}", got.len());
                let k = rd(&s, &mut buf).unwrap_or_else(|e| panic!("{CASE}: read: {e}"));
                assert!(k > 0, "{CASE}: EOF at {} of {}", got.len(), want.len());
                got.extend_from_slice(&buf[..k]);
            }
            if let Err(e) = check(&want, 0, &got) {
                panic!("{CASE}: {n} B each side: {e}");
            }
            drop(c);
        }
    });
}

fn write_from_other_process(w: &UnixStream, msg: &str) {
    let fd = w.as_fd().try_clone_to_owned().expect("dup the writer's fd");
    let msg = msg.to_string();
    let status = weft::blocking(move || {
        Command::new("sh")
            .args(["-c", "printf %s \"$1\"", "sh", &msg])
            .stdin(Stdio::null())
            .stdout(Stdio::from(fd))
            .status()
    })
    .expect("run sh");
    assert!(status.success(), "sh printf: {status}");
}

/// Unix streams do not use the rule: a read stops between messages of writers with different
/// credentials, with more queued and no edge to come. With `SO_PASSCRED` on the reader, each
/// round queues a message from a G, one from another process and one from a second G (on a
/// clone of the writer), then reads them with a large buffer: three short reads, the later two
/// of data that was queued all along. Then two writer Gs write concurrently while the reader
/// reads, and the reader gets every byte, then EOF.
fn unix_stream_two_writers() {
    weft::run(|| {
        const CASE: &str = "unix_stream_two_writers";
        let (r, w1) = UnixStream::pair().unwrap();
        set_passcred(&r);
        let w2 = w1.try_clone().unwrap();
        let (w1, w2) = (Arc::new(w1), Arc::new(w2));
        let mut buf = vec![0u8; 64 * 1024];
        let (mut split, mut reads_total) = (0, 0);
        for round in 0..10 {
            step!("{CASE}: round {round}: three writers queue, then the reader reads");
            let msgs = [
                format!("[round {round}: first G writer]"),
                format!("[round {round}: another process]"),
                format!("[round {round}: second G writer, on a clone]"),
            ];
            let g = {
                let (w1, m) = (Arc::clone(&w1), msgs[0].clone());
                go!(move || wr(&*w1, m.as_bytes()))
            };
            g.join().expect("writer G 1").expect("write 1");
            write_from_other_process(&w1, &msgs[1]);
            let g = {
                let (w2, m) = (Arc::clone(&w2), msgs[2].clone());
                go!(move || wr(&*w2, m.as_bytes()))
            };
            g.join().expect("writer G 2").expect("write 2");
            netpoll_barrier();
            let want = msgs.concat().into_bytes();
            let mut got = Vec::new();
            let mut reads = 0;
            while got.len() < want.len() {
                step!(
                    "{CASE}: round {round}: read at {}/{}",
                    got.len(),
                    want.len()
                );
                let n = rd(&r, &mut buf).expect("unix read");
                assert!(n > 0, "{CASE}: EOF in round {round}");
                got.extend_from_slice(&buf[..n]);
                reads += 1;
                if n < buf.len() && got.len() < want.len() && queued(&r) > 0 {
                    // A short read with data still queued: what the rule must not follow.
                    split += 1;
                }
            }
            assert_eq!(got, want, "{CASE}: round {round}");
            reads_total += reads;
        }
        assert!(
            split > 0,
            "{CASE}: no read stopped between writers with data queued (SO_PASSCRED): the case \
             does not exercise what it is for on this kernel"
        );

        // Two writer Gs at once, each its own byte value, while the reader reads (more than the
        // socket buffer holds). Each writer owns the last handle to its fd: the reader sees EOF
        // once both are done.
        step!("{CASE}: two concurrent writer Gs");
        let writers: Vec<_> = [(1u8, w1), (2u8, w2)]
            .into_iter()
            .map(|(v, w)| {
                go!(move || -> io::Result<usize> {
                    let mut total = 0;
                    for i in 0..300usize {
                        let len = 1 + (i * 1237 + v as usize * 71) % 3000;
                        wr(&*w, &vec![v; len])?;
                        total += len;
                        if i % 3 == 0 {
                            weft::yield_now();
                        }
                    }
                    Ok(total)
                })
            })
            .collect();
        let mut counts = [0usize; 3];
        loop {
            step!("{CASE}: concurrent writers: read, got {counts:?}");
            let n = rd(&r, &mut buf).expect("unix read");
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                assert!(b == 1 || b == 2, "{CASE}: stray byte {b}");
                counts[b as usize] += 1;
            }
        }
        let want: Vec<usize> = writers
            .into_iter()
            .map(|w| w.join().expect("writer G").expect("write"))
            .collect();
        assert_eq!(&counts[1..], &want[..], "{CASE}: bytes per writer");
        eprintln!(
            "{CASE}: 10 rounds of 3 writers in {reads_total} reads ({split} stopped between \
             writers with data queued); 2 concurrent writers, {} B, then EOF",
            counts[1] + counts[2]
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Random writer and reader plans
// ---------------------------------------------------------------------------------------------

/// How the writer ends its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `shutdown(Write)`, then drop once the G ends.
    Shutdown,
    /// Drop the stream (close: FIN).
    Drop,
    /// `close(&self)` (FIN).
    Close,
    /// `SO_LINGER` 0 and drop: RST.
    Reset,
}

/// One op of the reader's plan, with its buffer size(s).
#[derive(Debug, Clone)]
enum Op {
    Read(usize),
    Peek(usize),
    Vectored(Vec<usize>),
}

/// One generated connection.
#[derive(Debug, Clone)]
struct ConnPlan {
    /// Chunk length, and whether the writer yields after it.
    chunks: Vec<(usize, bool)>,
    end: End,
    /// The reader cycles through these (at least one consumes).
    ops: Vec<Op>,
    seed: u64,
}

fn chunk_len() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=16, 1usize..=1500, 1usize..=70_000]
}

fn buf_len() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=16, 1usize..=4096, 1usize..=65_536]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => buf_len().prop_map(Op::Read),
        1 => buf_len().prop_map(Op::Peek),
        1 => vec(buf_len(), 1..=4).prop_map(Op::Vectored),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::Shutdown),
        Just(End::Drop),
        Just(End::Close),
        Just(End::Reset)
    ]
}

fn conn_plans() -> impl Strategy<Value = Vec<ConnPlan>> {
    vec(
        (
            vec((chunk_len(), any::<bool>()), 0..=6),
            end(),
            vec(op(), 1..=6),
            buf_len(),
            any::<u64>(),
        )
            .prop_map(|(chunks, end, mut ops, fallback, seed)| {
                if ops.iter().all(|o| matches!(o, Op::Peek(_))) {
                    ops.push(Op::Read(fallback));
                }
                ConnPlan {
                    chunks,
                    end,
                    ops,
                    seed,
                }
            }),
        2..=6,
    )
}

/// The writer G of one connection: its chunks (each `write_all`, a `yield_now` after some), then
/// its end.
fn write_plan(c: TcpStream, data: &[u8], plan: &ConnPlan) -> Result<(), String> {
    let mut off = 0;
    for (i, &(len, yield_after)) in plan.chunks.iter().enumerate() {
        wr(&c, &data[off..off + len]).map_err(|e| format!("write_all of chunk {i}: {e}"))?;
        off += len;
        if yield_after {
            weft::yield_now();
        }
    }
    match plan.end {
        End::Shutdown => c
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}")),
        End::Drop => {
            drop(c);
            Ok(())
        }
        End::Close => c.close().map_err(|e| format!("close: {e}")),
        End::Reset => {
            common::set_linger_zero(&c);
            drop(c);
            Ok(())
        }
    }
}

/// The reader G of one connection: cycles through its ops until EOF (or, for a reset, the error).
/// Every byte read or peeked is checked. Returns the bytes read.
fn read_plan(s: TcpStream, want: &[u8], plan: &ConnPlan) -> Result<usize, String> {
    let mut pos = 0;
    let mut buf = vec![0u8; 65_536];
    let mut reset = None;
    let mut i = 0usize;
    loop {
        let op = &plan.ops[i % plan.ops.len()];
        i += 1;
        if i > 10_000_000 {
            return Err(format!("10M ops without EOF at offset {pos}"));
        }
        let at = |e: String| format!("op {i} {op:?} at offset {pos}: {e}");
        // Outer: the op's own result; inner: the check of what it returned.
        let r: io::Result<Result<Option<usize>, String>> = match op {
            Op::Peek(n) => s.peek(&mut buf[..*n]).map(|k| {
                check(want, pos, &buf[..k]).map_err(at)?;
                Ok(None)
            }),
            Op::Read(n) => rd(&s, &mut buf[..*n]).map(|k| {
                check(want, pos, &buf[..k]).map_err(at)?;
                Ok(Some(k))
            }),
            Op::Vectored(sizes) => rv(&s, sizes).map(|got| {
                check(want, pos, &got).map_err(at)?;
                Ok(Some(got.len()))
            }),
        };
        match r {
            Ok(checked) => match checked? {
                Some(0) => break,
                Some(k) => pos += k,
                None => {}
            },
            Err(e) if plan.end == End::Reset && e.kind() == ErrorKind::ConnectionReset => {
                reset = Some(i);
                break;
            }
            Err(e) => return Err(format!("op {i} {op:?} at offset {pos}: {e:?}")),
        }
    }
    if reset.is_some() {
        match rd(&s, &mut buf) {
            Ok(0) => {}
            other => return Err(format!("read after ConnectionReset: {other:?}, not EOF")),
        }
    }
    if plan.end != End::Reset && pos != want.len() {
        return Err(format!("EOF after {pos} of {} bytes", want.len()));
    }
    Ok(pos)
}

/// Run one generated case: per connection a writer G (client side) and a reader G (server
/// side), all connections at once. Returns the bytes read, or the first failure.
fn run_plans(plans: &[ConnPlan]) -> Result<u64, String> {
    let plans = plans.to_vec();
    weft::run(move || {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let addr = l.local_addr().unwrap();
        let mut handles = Vec::new();
        for (k, p) in plans.into_iter().enumerate() {
            let c = TcpStream::connect(addr).map_err(|e| format!("connect #{k}: {e}"))?;
            let (s, _) = l.accept().map_err(|e| format!("accept #{k}: {e}"))?;
            let total: usize = p.chunks.iter().map(|c| c.0).sum();
            let data = Arc::new(payload(p.seed, total));
            let p = Arc::new(p);
            let writer = {
                let (data, p) = (Arc::clone(&data), Arc::clone(&p));
                go!(move || write_plan(c, &data, &p))
            };
            let reader = go!(move || read_plan(s, &data, &p));
            handles.push((k, writer, reader));
        }
        let mut bytes = 0u64;
        for (k, w, r) in handles {
            // The reader's failure first: when it fails it drops its stream, which fails the
            // writer too.
            let r = r.join().map_err(|_| format!("conn {k}: reader panicked"))?;
            let w = w.join().map_err(|_| format!("conn {k}: writer panicked"))?;
            bytes += r.map_err(|e| format!("conn {k}: reader: {e}"))? as u64;
            w.map_err(|e| format!("conn {k}: writer: {e}"))?;
        }
        Ok(bytes)
    })
}

/// proptest: 2–6 connections at once, each with a writer plan (0–6 chunks of 1 B .. 70 000 B,
/// `yield_now` after some, then FIN by shutdown / drop / close, or a reset) and a reader plan
/// (a cycle of read / peek / read_vectored with 1 B .. 64 KiB buffers): every reader gets exactly
/// the bytes written, then EOF — or, after a reset, a prefix of them, `ConnectionReset`, EOF.
/// Nothing hangs (the watchdog). `PROPTEST_CASES` cases (default 16) per P count.
fn random_streams_proptest() {
    let cases = common::proptest_cases(PROPTEST_DEFAULT_CASES);
    let stats = Mutex::new((0usize, 0u64));
    let t = Instant::now();
    let n = AtomicUsize::new(0);
    common::make_lazy_fds();
    // This test runs in a child process of its own, so fds are counted too.
    let what = "a random_streams_proptest case";
    common::run_leak_checked(PROPTEST_DEFAULT_CASES, &conn_plans(), what, true, |plans| {
        let k = n.fetch_add(1, SeqCst);
        step!("random_streams_proptest: generated case {k}: {plans:?}");
        let bytes = run_plans(&plans)?;
        let mut s = stats.lock().unwrap();
        s.0 += plans.len();
        s.1 += bytes;
        Ok(())
    });
    let (conns, bytes) = *stats.lock().unwrap();
    eprintln!(
        "random_streams_proptest: {cases} cases, {conns} connections, {} KiB read in {:.2?}",
        bytes >> 10,
        t.elapsed()
    );
}
