//! Integration tests of the TCP proxy example, `examples/proxy.rs`.
//!
//! Every test starts the proxy as a child process of its own (`common::example`: `--addr
//! 127.0.0.1:0`, the port read from its start line, `WEFT_SIGQUIT_DUMP=1` so that the test can
//! count its goroutines) and serves the upstream itself, in weft Gs of the test process
//! ([`Upstream`]), so that each test decides what the upstream does and sees what reaches it. The
//! clients run in weft Gs too (`weft::run`).
//!
//! | test | what it proves |
//! |---|---|
//! | `many_connections_every_byte_and_both_half_closes` | 200 concurrent connections, streams of 0 B to 1 MiB written in random chunks: the upstream echoes as it reads, then (after the client's half-close reached it) writes a trailer with the length and FNV hash it received; each client checks every echoed byte, the trailer, and the EOF after it. Bytes through the proxy equal bytes sent, both directions at once, and half-close passes both ways. No log line for normal ends |
//! | `random_chunking_proptest` | the same check over generated stream lengths and chunk patterns (a few connections per case, one proxy) |
//! | `refused_upstream_resets_client_and_proxy_keeps_serving` | the upstream port is bound but not listening (connects are refused): each client's connection ends at once, one stderr line each naming the upstream; once that same socket listens, the next client is served (every byte, both half-closes); idle fds and goroutines after each phase |
//! | `upstream_connect_timeout_resets_client` | an upstream that never completes the handshake (a full accept queue): the client's connection ends after `--connect-timeout-ms`, not before, one stderr line naming the upstream and the timeout |
//! | `upstream_reset_mid_stream_ends_client_and_frees_everything` | the upstream resets (`SO_LINGER 0`) while the client is still sending: the client's reads and writes end promptly, what it got is a prefix of what the upstream sent, one log line per connection, and the proxy is back to its idle fds and one goroutine |
//! | `client_reset_mid_stream_tears_down_upstream` | a client resets while uploading, or while downloading: the upstream's read (or write) ends promptly, with an error or EOF, not a timeout; one log line per connection; idle fds and goroutines again |
//! | `upstream_answers_early_while_client_uploads` | the upstream reads 16 KiB of a 4 MiB upload, answers 48 KiB, half-closes, then reads the rest: the client gets the whole answer and its EOF while it has not finished uploading, then uploads the rest and half-closes; the upstream gets every byte and the EOF; nothing logged; idle fds and goroutines |
//! | `slow_reader_does_not_stall_other_connections` | a client that reads 1 KiB per 20 ms holds a backed-up connection (the upstream wrote at least 256 KiB more than it read) while 20 others move 256 KiB each through the same proxy, within 10 s |
//! | `idle_timeout_ends_only_idle_connections` | `--idle-timeout-ms 1000`: a silent connection is reset after 1 s (not before), both sides, with one log line; a chatty one and a download-only one (one direction silent), each 1.5 s long with a byte per 100 ms, outlive it; idle fds and goroutines |
//! | `flags_help_bad_flags_and_bind_failure` | `--help` exits 0 with the usage; bad flags exit 2 with a message and nothing on stdout; an address in use exits 1 |
//!
//! "Idle" for the proxy, checked after the failure tests: its open fds are back to the count at
//! start plus one (weft's placeholder socket, created by the first `close()`: a closed socket's fd
//! number points at it until the value is dropped), and a SIGQUIT dump shows one goroutine (the
//! accept loop), so no G and no fd of a connection leaked.
//!
//! Rules: every client socket has read and write timeouts and every test a watchdog; sleeps only
//! pace deliberately slow clients or bounded polls for an outcome. Timing bounds are generous (a
//! loaded 2-core machine); lower bounds (a timeout never fires early) are exact.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use weft::chan;
use weft::net::{TcpListener, TcpStream};
use weft::sync::WaitGroup;

mod common;
use common::example::{
    check_command_line, fill_pattern, join_all, set_io_timeouts, splitmix64, weft_connect, Example,
    Start, GENEROUS, IO_TIMEOUT, SETTLE, TEST_LIMIT,
};
use common::{set_linger_zero, watchdog};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// What the echo upstream writes after the client's EOF: `END!`, the length and the FNV-1a hash
/// of what it received (little-endian u64s).
const TRAILER_LEN: usize = 20;

// ---------------------------------------------------------------------------------------------
// The proxy process
// ---------------------------------------------------------------------------------------------

/// Start `proxy --addr 127.0.0.1:0 --upstream UPSTREAM --procs 2 EXTRA...`; return it with its fd
/// count at start.
fn start_proxy(upstream: SocketAddr, extra: &[&str]) -> (Example, usize) {
    let up = upstream.to_string();
    let mut args = vec!["--upstream", up.as_str(), "--procs", "2"];
    args.extend_from_slice(extra);
    let proxy = Example::start_with(
        "proxy",
        Start {
            args: &args,
            envs: &[("WEFT_SIGQUIT_DUMP", "1")],
            ..Start::default()
        },
    );
    let fds = proxy.fd_count();
    (proxy, fds)
}

/// Whether a stderr line of the proxy is one of its per-connection log lines (not part of a
/// goroutine dump).
fn is_log_line(line: &str) -> bool {
    line.starts_with("proxy: ")
}

/// The proxy's per-connection log lines so far.
fn log_lines(proxy: &Example) -> Vec<String> {
    proxy
        .stderr_lines()
        .into_iter()
        .filter(|l| is_log_line(l))
        .collect()
}

/// Wait (bounded) until the proxy has logged `n` lines, then check it logged exactly `n` (the
/// stderr pipe is drained by a thread, so lines arrive a moment after they are written).
fn expect_log_lines(proxy: &mut Example, n: usize) -> Vec<String> {
    proxy.wait_log_lines(n, is_log_line, SETTLE)
}

/// The proxy's goroutine count, from a SIGQUIT dump (`weft: N goroutines`).
fn goroutines(proxy: &mut Example) -> usize {
    let dumps = |p: &Example| -> Vec<usize> {
        p.stderr_lines()
            .iter()
            .filter_map(|l| {
                l.strip_prefix("weft: ")?
                    .strip_suffix(" goroutines")?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let before = dumps(proxy).len();
    proxy.signal(libc::SIGQUIT);
    let deadline = Instant::now() + SETTLE;
    loop {
        let d = dumps(proxy);
        if d.len() > before {
            return d[before];
        }
        if Instant::now() >= deadline {
            proxy.fail("no goroutine dump after SIGQUIT");
        }
        // Bounded poll for the dump on the stderr pipe.
        thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (bounded) until the proxy is idle again: fds at most `base_fds + 1` (the placeholder
/// socket of weft's `close()`) and only the accept loop's goroutine left.
fn expect_idle(proxy: &mut Example, base_fds: usize) {
    proxy.wait_fds_at_most(base_fds + 1, SETTLE);
    // A connection's sockets are closed when its last G drops them, just before that G ends.
    let deadline = Instant::now() + SETTLE;
    loop {
        let gs = goroutines(proxy);
        if gs == 1 {
            return;
        }
        if Instant::now() >= deadline {
            proxy.fail(&format!(
                "{gs} goroutines after {SETTLE:?}, 1 expected (the accept loop)"
            ));
        }
        // Bounded poll for the connections' Gs to return.
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream, served in this process
// ---------------------------------------------------------------------------------------------

/// An upstream server in weft Gs: an accept loop and one G per connection running the test's
/// handler. Handler errors are collected, not panicked.
struct Upstream {
    listener: Arc<TcpListener>,
    accept: weft::JoinHandle<()>,
    group: WaitGroup,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    /// Serve `listener` (bound by the test thread before the proxy started). Inside a G.
    fn serve<F>(listener: std::net::TcpListener, handler: F) -> Upstream
    where
        F: Fn(TcpStream) -> Result<(), String> + Send + Sync + 'static,
    {
        let listener = Arc::new(TcpListener::from_std(listener).expect("upstream from_std"));
        let group = WaitGroup::new();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let (l, g, errs) = (Arc::clone(&listener), group.clone(), Arc::clone(&errors));
        let accept = weft::go!(move || loop {
            match l.accept() {
                Ok((s, _)) => {
                    let (h, g, errs) = (Arc::clone(&handler), g.clone(), Arc::clone(&errs));
                    weft::go!(move || {
                        let _ = set_io_timeouts(&s);
                        if let Err(e) = h(s) {
                            errs.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                        }
                        drop(g);
                    });
                }
                Err(e) if weft::net::is_closed(&e) => break,
                Err(e) => {
                    errs.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("upstream accept: {e}"));
                    break;
                }
            }
        });
        Upstream {
            listener,
            accept,
            group,
            errors,
        }
    }

    /// Stop accepting, wait for every handler, return their errors.
    fn stop(self) -> Vec<String> {
        self.listener.close().expect("close upstream listener");
        self.accept.join().expect("upstream accept loop");
        self.group.wait();
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A std listener on a fresh loopback port, for an [`Upstream`].
fn bind_upstream() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let a = l.local_addr().expect("upstream address");
    (l, a)
}

/// FNV-1a 64.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// The echo upstream: echo every byte as it arrives; after EOF write the trailer (`END!`,
/// length, FNV hash of what arrived) and close. Its reply proves it got every byte and the EOF.
fn echo_with_trailer(s: TcpStream) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * KIB];
    let mut hash = Fnv::new();
    let mut len = 0u64;
    loop {
        let n = (&s)
            .read(&mut buf)
            .map_err(|e| format!("echo: read at {len}: {e}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n as u64;
        (&s).write_all(&buf[..n])
            .map_err(|e| format!("echo: write at {len}: {e}"))?;
    }
    let mut trailer = b"END!".to_vec();
    trailer.extend_from_slice(&len.to_le_bytes());
    trailer.extend_from_slice(&hash.0.to_le_bytes());
    (&s).write_all(&trailer)
        .map_err(|e| format!("echo: trailer: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// One echo session through the proxy: send `prefix` (a mode byte the upstream consumes), then
/// `len` bytes of stream `seed` in chunks cycling through `chunks` (a writer G; `yield_between`
/// yields after each chunk), then half-close; meanwhile read and check every echoed byte, the
/// trailer, and the EOF after it.
fn echo_session(
    proxy: SocketAddr,
    prefix: &[u8],
    seed: u64,
    len: usize,
    chunks: &[usize],
    yield_between: bool,
) -> Result<(), String> {
    let s = Arc::new(weft_connect(proxy)?);
    let w = Arc::clone(&s);
    let chunks = chunks.to_vec();
    let prefix = prefix.to_vec();
    let writer = weft::go!(move || -> io::Result<()> {
        (&*w).write_all(&prefix)?;
        let mut buf = vec![0u8; chunks.iter().copied().max().unwrap_or(1)];
        let (mut pos, mut i) = (0, 0);
        while pos < len {
            let n = chunks[i % chunks.len()].min(len - pos);
            fill_pattern(seed, pos, &mut buf[..n]);
            (&*w).write_all(&buf[..n])?;
            pos += n;
            i += 1;
            if yield_between {
                weft::yield_now();
            }
        }
        w.shutdown(Shutdown::Write)
    });
    let result = check_echo(&s, seed, len);
    if result.is_err() {
        // Unblock the writer if it is stuck on a connection we gave up on.
        let _ = s.close();
    }
    let written = writer.join().map_err(|_| "writer panicked".to_string())?;
    result?;
    written.map_err(|e| format!("writer: {e}"))
}

/// The reading half of [`echo_session`]: stream `seed` byte for byte, then the exact trailer,
/// then EOF.
fn check_echo(mut s: &TcpStream, seed: u64, len: usize) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * KIB];
    let mut want = vec![0u8; 64 * KIB];
    let mut hash = Fnv::new();
    let mut got = 0usize;
    let mut trailer = Vec::new();
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(format!("read at {got} of {len}: {e}")),
        };
        if n == 0 {
            break;
        }
        let body = n.min(len - got);
        let (echo, rest) = buf[..n].split_at(body);
        fill_pattern(seed, got, &mut want[..body]);
        if echo != &want[..body] {
            let at = echo
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!("stream byte {} of {len} differs", got + at));
        }
        hash.update(echo);
        got += body;
        trailer.extend_from_slice(rest);
        if trailer.len() > TRAILER_LEN {
            return Err(format!("{} bytes after the echo", trailer.len()));
        }
    }
    if got != len {
        return Err(format!("EOF after {got} of {len} echoed bytes"));
    }
    let mut want_trailer = b"END!".to_vec();
    want_trailer.extend_from_slice(&(len as u64).to_le_bytes());
    want_trailer.extend_from_slice(&hash.0.to_le_bytes());
    if trailer != want_trailer {
        return Err(format!(
            "trailer {trailer:02x?}, expected {want_trailer:02x?} (length {len})"
        ));
    }
    Ok(())
}

/// How a connection's reading side ended.
fn ended(r: io::Result<usize>) -> &'static str {
    match r {
        Ok(0) => "EOF",
        Ok(_) => "data",
        Err(e) if e.kind() == ErrorKind::TimedOut => "timeout",
        Err(_) => "error",
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Stream length of connection `c` in the many-connections test: 0, 1 and 1 MiB exactly, the rest
/// skewed towards short (`MIB · u⁵`, mean ≈ 170 KiB).
fn many_len(c: usize) -> usize {
    match c {
        0 => 0,
        1 => 1,
        2 => MIB,
        _ => {
            let u = (splitmix64(c as u64) >> 11) as f64 / (1u64 << 53) as f64;
            (MIB as f64 * u.powi(5)) as usize
        }
    }
}

/// Chunk sizes of connection `c`: 8 sizes from tiny to 64 KiB.
fn many_chunks(c: usize) -> Vec<usize> {
    (0..8u64)
        .map(|i| {
            let r = splitmix64((c as u64) << 8 | i);
            match r % 3 {
                0 => 1 + (r >> 8) as usize % 16,
                1 => 100 + (r >> 8) as usize % 4000,
                _ => 4 * KIB + (r >> 8) as usize % (60 * KIB),
            }
        })
        .collect()
}

#[test]
fn many_connections_every_byte_and_both_half_closes() {
    const CONNS: usize = 200;
    let _dog = watchdog(
        "many_connections_every_byte_and_both_half_closes",
        TEST_LIMIT,
    );
    let (listener, up) = bind_upstream();
    let (mut proxy, _fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let started = Instant::now();
    let (failures, upstream_errors) = weft::run(move || {
        let upstream = Upstream::serve(listener, echo_with_trailer);
        let clients = (0..CONNS)
            .map(|c| {
                weft::go!(move || echo_session(
                    addr,
                    &[],
                    c as u64,
                    many_len(c),
                    &many_chunks(c),
                    false
                ))
            })
            .collect();
        let failures = join_all(clients);
        (failures, upstream.stop())
    });
    let elapsed = started.elapsed();
    if !failures.is_empty() || !upstream_errors.is_empty() {
        proxy.fail(&format!(
            "{} clients failed: {:?}; upstream errors: {upstream_errors:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        ));
    }
    let total: usize = (0..CONNS).map(many_len).sum();
    eprintln!(
        "{CONNS} connections, {:.1} MiB each way in {elapsed:?}",
        total as f64 / MIB as f64
    );
    let logged = log_lines(&proxy);
    if !logged.is_empty() {
        proxy.fail(&format!("normal connections were logged: {logged:?}"));
    }
}

#[test]
fn random_chunking_proptest() {
    let _dog = watchdog("random_chunking_proptest", 2 * TEST_LIMIT);
    let (listener, up) = bind_upstream();
    let (mut proxy, _fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let strategy = vec(
        (
            0usize..300 * KIB,
            vec(1usize..40 * KIB, 1..6),
            any::<bool>(),
        ),
        1..4,
    );
    let upstream_errors = weft::run(move || {
        let upstream = Upstream::serve(listener, echo_with_trailer);
        let seed = AtomicUsize::new(0);
        common::run_proptest(16, &strategy, |conns| {
            let clients = conns
                .into_iter()
                .map(|(len, chunks, yield_between)| {
                    let seed = seed.fetch_add(1, Ordering::Relaxed) as u64;
                    weft::go!(move || echo_session(addr, &[], seed, len, &chunks, yield_between))
                })
                .collect();
            let failures = join_all(clients);
            if failures.is_empty() {
                Ok(())
            } else {
                Err(failures.join("; "))
            }
        });
        upstream.stop()
    });
    if !upstream_errors.is_empty() {
        proxy.fail(&format!("upstream errors: {upstream_errors:?}"));
    }
}

#[test]
fn refused_upstream_resets_client_and_proxy_keeps_serving() {
    const TRIES: usize = 3;
    let _dog = watchdog(
        "refused_upstream_resets_client_and_proxy_keeps_serving",
        TEST_LIMIT,
    );
    // The upstream's socket is bound but not listening: the port stays ours (no other process can
    // take it meanwhile), and a connect to it is refused. It listens later, on the same socket.
    let up_sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    up_sock
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind upstream");
    let up = up_sock
        .local_addr()
        .expect("upstream address")
        .as_socket()
        .expect("inet");
    let (mut proxy, base_fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let outcomes = weft::run(move || {
        (0..TRIES)
            .map(|_| {
                let t = Instant::now();
                // The reset may come before weft's connect has looked at the socket: then the
                // connect itself fails with it (as Go's does).
                let s = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                        return Ok(("error", t.elapsed()))
                    }
                    Err(e) => return Err(format!("connect: {e}")),
                };
                s.set_read_timeout(Some(IO_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                let r = (&s).read(&mut [0u8; 16]);
                Ok((ended(r), t.elapsed()))
            })
            .collect::<Result<Vec<_>, String>>()
    });
    let outcomes = outcomes.unwrap_or_else(|e| proxy.fail(&e));
    for (how, took) in &outcomes {
        if !matches!(*how, "EOF" | "error") || *took > GENEROUS {
            proxy.fail(&format!(
                "refused upstream: the client's read gave {how} after {took:?}"
            ));
        }
    }
    let lines = expect_log_lines(&mut proxy, TRIES);
    let up_text = up.to_string();
    if !lines.iter().all(|l| l.contains(&up_text)) {
        proxy.fail(&format!(
            "log lines do not name the upstream {up_text}: {lines:?}"
        ));
    }
    expect_idle(&mut proxy, base_fds);

    // The upstream starts listening: the proxy serves the next client.
    up_sock.listen(128).expect("listen upstream");
    let listener: std::net::TcpListener = up_sock.into();
    let (result, upstream_errors) = weft::run(move || {
        let upstream = Upstream::serve(listener, echo_with_trailer);
        let r = echo_session(addr, &[], 7, 100 * KIB, &[1000, 7, 30 * KIB], false);
        (r, upstream.stop())
    });
    if let Err(e) = result {
        proxy.fail(&format!("after the upstream came back: {e}"));
    }
    assert!(upstream_errors.is_empty(), "{upstream_errors:?}");
    expect_log_lines(&mut proxy, TRIES);
    expect_idle(&mut proxy, base_fds);
}

#[test]
fn upstream_connect_timeout_resets_client() {
    let _dog = watchdog("upstream_connect_timeout_resets_client", TEST_LIMIT);
    // A listener with backlog 0 whose accept queue is full: the kernel drops further SYNs, so a
    // connect to it neither completes nor is refused. Fill it until a probe times out.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    sock.listen(0).expect("listen");
    let up = sock.local_addr().expect("addr").as_socket().expect("inet");
    let mut queued = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&up, Duration::from_millis(300)) {
            Ok(s) => queued.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("probe connect: {e}"),
        }
        assert!(
            queued.len() < 8,
            "the accept queue of a backlog-0 listener never filled up"
        );
    }
    let timeout = Duration::from_millis(300);
    let (mut proxy, base_fds) = start_proxy(up, &["--connect-timeout-ms", "300"]);
    let addr = proxy.addr;
    let outcome = weft::run(move || -> Result<_, String> {
        // From before the connect: the proxy cannot have started dialing earlier (a client G may
        // see its connect complete well after the proxy accepted it).
        let t = Instant::now();
        let s = weft_connect(addr)?;
        let r = (&s).read(&mut [0u8; 16]);
        Ok((ended(r), t.elapsed()))
    });
    let (how, took) = outcome.unwrap_or_else(|e| proxy.fail(&e));
    if !matches!(how, "EOF" | "error") || took < timeout || took > timeout + GENEROUS {
        proxy.fail(&format!(
            "upstream not answering, --connect-timeout-ms 300: the client's read gave {how} after \
             {took:?}"
        ));
    }
    let lines = expect_log_lines(&mut proxy, 1);
    if !lines[0].contains(&up.to_string()) || !lines[0].contains("timeout") {
        proxy.fail(&format!(
            "log line should name the upstream and the timeout: {lines:?}"
        ));
    }
    expect_idle(&mut proxy, base_fds);
    drop(queued);
}

#[test]
fn upstream_reset_mid_stream_ends_client_and_frees_everything() {
    const CONNS: usize = 10;
    const UP_SEED: u64 = 0xfeed;
    let _dog = watchdog(
        "upstream_reset_mid_stream_ends_client_and_frees_everything",
        TEST_LIMIT,
    );
    let (listener, up) = bind_upstream();
    let (mut proxy, base_fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let (failures, upstream_errors) = weft::run(move || {
        // The upstream reads 32 KiB of the client's stream, answers 16 KiB, then resets.
        let upstream = Upstream::serve(listener, |s| {
            let mut buf = vec![0u8; 32 * KIB];
            (&s).read_exact(&mut buf)
                .map_err(|e| format!("upstream read: {e}"))?;
            fill_pattern(UP_SEED, 0, &mut buf[..16 * KIB]);
            (&s).write_all(&buf[..16 * KIB])
                .map_err(|e| format!("upstream write: {e}"))?;
            set_linger_zero(&s);
            Ok(())
        });
        let clients = (0..CONNS)
            .map(|c| {
                weft::go!(move || -> Result<(), String> {
                    let s = Arc::new(weft_connect(addr)?);
                    let w = Arc::clone(&s);
                    let t = Instant::now();
                    // Keeps sending (at most 64 MiB, far more than the buffers hold) until the
                    // connection breaks.
                    let writer = weft::go!(move || -> io::Result<usize> {
                        let mut buf = vec![0u8; 16 * KIB];
                        let mut pos = 0;
                        while pos < 64 * MIB {
                            fill_pattern(c as u64, pos, &mut buf);
                            (&*w).write_all(&buf)?;
                            pos += buf.len();
                        }
                        Ok(pos)
                    });
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 64 * KIB];
                    let end = loop {
                        match (&*s).read(&mut buf) {
                            Ok(0) => break "EOF",
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                            Err(e) if e.kind() == ErrorKind::TimedOut => break "timeout",
                            Err(_) => break "error",
                        }
                    };
                    let read_took = t.elapsed();
                    let wrote = writer.join().map_err(|_| "writer panicked")?;
                    let write_took = t.elapsed();
                    let mut want = vec![0u8; got.len().min(16 * KIB)];
                    fill_pattern(UP_SEED, 0, &mut want);
                    if end == "timeout" || read_took > GENEROUS {
                        return Err(format!("reading ended with {end} after {read_took:?}"));
                    }
                    match wrote {
                        Err(e) if e.kind() != ErrorKind::TimedOut && write_took <= GENEROUS => {}
                        other => {
                            return Err(format!(
                                "writing ended with {other:?} after {write_took:?}"
                            ))
                        }
                    }
                    if got.len() > 16 * KIB || got != want {
                        return Err(format!(
                            "got {} bytes, not a prefix of the upstream's 16 KiB",
                            got.len()
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        (join_all(clients), upstream.stop())
    });
    if !failures.is_empty() || !upstream_errors.is_empty() {
        proxy.fail(&format!(
            "{failures:?}; upstream errors: {upstream_errors:?}"
        ));
    }
    expect_log_lines(&mut proxy, CONNS);
    expect_idle(&mut proxy, base_fds);
}

/// What the upstream of `client_reset_mid_stream_tears_down_upstream` reports per connection.
enum Event {
    /// It has read 64 KiB of the upload.
    Reached,
    /// Its side of the connection ended: how (`EOF`, `error` or `timeout`, see [`ended`]).
    Ended(&'static str),
}

#[test]
fn client_reset_mid_stream_tears_down_upstream() {
    const CONNS: usize = 10;
    let _dog = watchdog("client_reset_mid_stream_tears_down_upstream", TEST_LIMIT);
    let (listener, up) = bind_upstream();
    let (mut proxy, base_fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let failures = weft::run(move || {
        // One channel per connection; the client names its channel in a 5-byte header: mode
        // (`U`pload or `D`ownload) and index.
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2 * CONNS).map(|_| chan::bounded(2)).unzip();
        let txs = Arc::new(txs);
        let upstream = Upstream::serve(listener, move |s| {
            let mut head = [0u8; 5];
            (&s).read_exact(&mut head)
                .map_err(|e| format!("header: {e}"))?;
            let tx: &chan::Sender<Event> =
                &txs[u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize];
            let mut buf = vec![0u8; 64 * KIB];
            let how = if head[0] == b'U' {
                (&s).read_exact(&mut buf)
                    .map_err(|e| format!("upload: {e}"))?;
                let _ = tx.send(Event::Reached);
                // Read until the client's reset comes through the proxy.
                loop {
                    match (&s).read(&mut buf) {
                        Ok(0) => break "EOF",
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::TimedOut => break "timeout",
                        Err(_) => break "error",
                    }
                }
            } else {
                // Write until the client's reset comes through the proxy.
                fill_pattern(1, 0, &mut buf);
                loop {
                    match (&s).write_all(&buf) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::TimedOut => break "timeout",
                        Err(_) => break "error",
                    }
                }
            };
            let _ = tx.send(Event::Ended(how));
            Ok(())
        });
        let clients = rxs
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                weft::go!(move || -> Result<(), String> {
                    let upload = i < CONNS;
                    let s = weft_connect(addr)?;
                    let mut head = vec![if upload { b'U' } else { b'D' }];
                    head.extend_from_slice(&(i as u32).to_le_bytes());
                    (&s).write_all(&head).map_err(|e| format!("header: {e}"))?;
                    let mut buf = vec![0u8; 64 * KIB];
                    if upload {
                        fill_pattern(i as u64, 0, &mut buf);
                        (&s).write_all(&buf).map_err(|e| format!("upload: {e}"))?;
                        match rx.recv_timeout(IO_TIMEOUT) {
                            Ok(Event::Reached) => {}
                            _ => return Err("the upload did not reach the upstream".into()),
                        }
                    } else {
                        (&s).read_exact(&mut buf)
                            .map_err(|e| format!("download: {e}"))?;
                    }
                    set_linger_zero(&s);
                    drop(s); // RST
                    let t = Instant::now();
                    match rx.recv_timeout(GENEROUS) {
                        Ok(Event::Ended(how)) if how != "timeout" => Ok(()),
                        Ok(Event::Ended(how)) => Err(format!("upstream side ended with {how}")),
                        _ => Err(format!(
                            "upstream side still open {:?} after the client's reset",
                            t.elapsed()
                        )),
                    }
                })
            })
            .collect();
        let failures = join_all(clients);
        let mut errors = upstream.stop();
        errors.extend(failures);
        errors
    });
    if !failures.is_empty() {
        proxy.fail(&format!("{failures:?}"));
    }
    expect_log_lines(&mut proxy, 2 * CONNS);
    expect_idle(&mut proxy, base_fds);
}

#[test]
fn upstream_answers_early_while_client_uploads() {
    // An HTTP server refusing an upload answers before it has read the request body: the
    // upstream reads `PEEK` bytes of an `UPLOAD`-byte stream, sends its whole `ANSWER`, half-closes,
    // and only then reads (checking every byte) the rest until EOF. The client sends `FIRST`
    // bytes, reads the whole answer and its EOF, and only then sends the rest and half-closes, so
    // the answer provably travels, and its half-close passes, while the upload is unfinished.
    // Deterministic: the upstream drains everything, so no write fails and nothing is reset.
    const UPLOAD: usize = 4 * MIB;
    const PEEK: usize = 16 * KIB;
    const FIRST: usize = 64 * KIB;
    const ANSWER: usize = 48 * KIB;
    const UP_SEED: u64 = 0xa115;
    const SEED: u64 = 0x0b10ad;
    let _dog = watchdog("upstream_answers_early_while_client_uploads", TEST_LIMIT);
    let (listener, up) = bind_upstream();
    let (mut proxy, base_fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let (result, upstream_errors) = weft::run(move || {
        let (drained_tx, drained_rx) = chan::bounded::<usize>(1);
        let upstream = Upstream::serve(listener, move |s| {
            let mut buf = vec![0u8; 64 * KIB];
            let mut want = vec![0u8; 64 * KIB];
            (&s).read_exact(&mut buf[..PEEK])
                .map_err(|e| format!("upstream: the first {PEEK} bytes: {e}"))?;
            let mut got = PEEK;
            fill_pattern(UP_SEED, 0, &mut want[..ANSWER]);
            (&s).write_all(&want[..ANSWER])
                .map_err(|e| format!("upstream: answer: {e}"))?;
            s.shutdown(Shutdown::Write)
                .map_err(|e| format!("upstream: half-close: {e}"))?;
            fill_pattern(SEED, 0, &mut want[..PEEK]);
            if buf[..PEEK] != want[..PEEK] {
                return Err("upstream: the first bytes of the upload differ".into());
            }
            loop {
                let n = (&s)
                    .read(&mut buf)
                    .map_err(|e| format!("upstream: draining at {got}: {e}"))?;
                if n == 0 {
                    break;
                }
                fill_pattern(SEED, got, &mut want[..n]);
                if buf[..n] != want[..n] {
                    return Err(format!(
                        "upstream: upload differs in bytes {got}..{}",
                        got + n
                    ));
                }
                got += n;
            }
            let _ = drained_tx.send(got);
            Ok(())
        });
        let client = weft::go!(move || -> Result<(), String> {
            let s = weft_connect(addr)?;
            let mut buf = vec![0u8; 64 * KIB];
            fill_pattern(SEED, 0, &mut buf[..FIRST]);
            (&s).write_all(&buf[..FIRST])
                .map_err(|e| format!("upload start: {e}"))?;
            // The whole answer, then EOF, with most of the upload still to come.
            let mut answer = Vec::new();
            (&s).read_to_end(&mut answer)
                .map_err(|e| format!("reading the answer after {} bytes: {e}", answer.len()))?;
            let mut want = vec![0u8; ANSWER];
            fill_pattern(UP_SEED, 0, &mut want);
            if answer != want {
                return Err(format!(
                    "got {} bytes before EOF, not the upstream's {ANSWER}-byte answer",
                    answer.len()
                ));
            }
            // The rest of the upload still goes through, then the half-close.
            let mut pos = FIRST;
            while pos < UPLOAD {
                let n = buf.len().min(UPLOAD - pos);
                fill_pattern(SEED, pos, &mut buf[..n]);
                (&s).write_all(&buf[..n])
                    .map_err(|e| format!("upload at {pos} of {UPLOAD}, after the answer: {e}"))?;
                pos += n;
            }
            s.shutdown(Shutdown::Write)
                .map_err(|e| format!("half-close: {e}"))?;
            match drained_rx.recv_timeout(IO_TIMEOUT) {
                Ok(got) if got == UPLOAD => Ok(()),
                Ok(got) => Err(format!(
                    "the upstream got {got} of {UPLOAD} bytes, then EOF"
                )),
                Err(_) => Err("the upstream did not see the whole upload and its EOF".into()),
            }
        });
        let result = join_all(vec![client]);
        (result, upstream.stop())
    });
    if !result.is_empty() || !upstream_errors.is_empty() {
        proxy.fail(&format!("{result:?}; upstream errors: {upstream_errors:?}"));
    }
    expect_idle(&mut proxy, base_fds);
    let logged = log_lines(&proxy);
    if !logged.is_empty() {
        proxy.fail(&format!("a normal exchange was logged: {logged:?}"));
    }
}

#[test]
fn slow_reader_does_not_stall_other_connections() {
    const FAST: usize = 20;
    let _dog = watchdog("slow_reader_does_not_stall_other_connections", TEST_LIMIT);
    let (listener, up) = bind_upstream();
    let (mut proxy, _fds) = start_proxy(up, &[]);
    let addr = proxy.addr;
    let written = Arc::new(AtomicUsize::new(0));
    let up_written = Arc::clone(&written);
    let result = weft::run(move || -> Result<(usize, usize, Duration), String> {
        // First byte `S`: stream (at most 64 MiB) until the client goes; anything else: echo.
        let upstream = Upstream::serve(listener, move |s| {
            let mut mode = [0u8; 1];
            (&s).read_exact(&mut mode)
                .map_err(|e| format!("mode: {e}"))?;
            if mode[0] != b'S' {
                return echo_with_trailer(s);
            }
            let mut buf = vec![0u8; 64 * KIB];
            fill_pattern(3, 0, &mut buf);
            for _ in 0..1024 {
                if (&s).write_all(&buf).is_err() {
                    break;
                }
                up_written.fetch_add(buf.len(), Ordering::Relaxed);
            }
            Ok(())
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (first_tx, first_rx) = chan::bounded(1);
        let slow_stop = Arc::clone(&stop);
        let slow = weft::go!(move || -> Result<usize, String> {
            let s = weft_connect(addr)?;
            (&s).write_all(b"S").map_err(|e| format!("slow: {e}"))?;
            let mut buf = [0u8; KIB];
            let mut got = 0;
            let limit = Instant::now() + IO_TIMEOUT;
            while !slow_stop.load(Ordering::Relaxed) && Instant::now() < limit {
                let n = (&s).read(&mut buf).map_err(|e| format!("slow read: {e}"))?;
                if n == 0 {
                    return Err("slow: EOF".into());
                }
                got += n;
                let _ = first_tx.try_send(());
                weft::sleep(Duration::from_millis(20)); // the deliberately slow reader
            }
            Ok(got)
        });
        first_rx
            .recv_timeout(IO_TIMEOUT)
            .map_err(|_| "the slow client got nothing")?;
        let t = Instant::now();
        let fast = (0..FAST)
            .map(|c| {
                weft::go!(move || echo_session(
                    addr,
                    b"E",
                    100 + c as u64,
                    256 * KIB,
                    &[8 * KIB],
                    false
                ))
            })
            .collect();
        let failures = join_all(fast);
        let fast_took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        let slow_got = slow.join().map_err(|_| "slow client panicked")??;
        let mut errors = upstream.stop();
        errors.extend(failures);
        if !errors.is_empty() {
            return Err(format!("{errors:?}"));
        }
        Ok((slow_got, written.load(Ordering::Relaxed), fast_took))
    });
    let (slow_got, up_wrote, fast_took) = result.unwrap_or_else(|e| proxy.fail(&e));
    eprintln!(
        "{FAST} × 256 KiB echoed in {fast_took:?} beside a slow reader (it read {} KiB of {} KiB \
         the upstream wrote)",
        slow_got / KIB,
        up_wrote / KIB
    );
    // The slow connection was backed up the whole time: the upstream wrote far more than the
    // client read, and is blocked.
    if up_wrote < slow_got + 256 * KIB || fast_took > 2 * GENEROUS {
        proxy.fail("the slow connection was not backed up, or the others were slow");
    }
}

#[test]
fn idle_timeout_ends_only_idle_connections() {
    // The active connections exchange a byte per PACE for ROUNDS · PACE, longer than the idle
    // timeout; its margin over PACE absorbs scheduling delays of a loaded machine.
    const PACE: Duration = Duration::from_millis(100);
    const ROUNDS: u8 = 15;
    let idle = Duration::from_millis(1000);
    let _dog = watchdog("idle_timeout_ends_only_idle_connections", TEST_LIMIT);
    let (listener, up) = bind_upstream();
    let (mut proxy, base_fds) = start_proxy(up, &["--idle-timeout-ms", "1000"]);
    let addr = proxy.addr;
    let failures = weft::run(move || {
        let (silent_tx, silent_rx) = chan::bounded(1);
        // First byte: `I` (silent: read until the proxy ends it), `D` (drip ROUNDS bytes, one per
        // PACE, half-close, read until EOF), anything else: echo.
        let upstream = Upstream::serve(listener, move |s| {
            let mut mode = [0u8; 1];
            (&s).read_exact(&mut mode)
                .map_err(|e| format!("mode: {e}"))?;
            match mode[0] {
                b'I' => {
                    let r = (&s).read(&mut [0u8; 16]);
                    let _ = silent_tx.send(ended(r));
                    Ok(())
                }
                b'D' => {
                    for i in 0..ROUNDS {
                        weft::sleep(PACE); // the drip's pace
                        (&s).write_all(&[i]).map_err(|e| format!("drip: {e}"))?;
                    }
                    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
                    match (&s).read(&mut [0u8; 16]) {
                        Ok(0) => Ok(()),
                        other => Err(format!("drip: after the drip, {other:?}")),
                    }
                }
                _ => echo_with_trailer(s),
            }
        });
        let silent = weft::go!(move || -> Result<(), String> {
            let s = weft_connect(addr)?;
            // From before the write: the proxy's last activity is its forwarding of this byte.
            let t = Instant::now();
            (&s).write_all(b"I").map_err(|e| e.to_string())?;
            let how = ended((&s).read(&mut [0u8; 16]));
            let took = t.elapsed();
            if how == "data" || how == "timeout" || took < idle || took > idle + GENEROUS {
                return Err(format!("silent client: {how} after {took:?}"));
            }
            match silent_rx.recv_timeout(GENEROUS) {
                Ok("EOF" | "error") => Ok(()),
                Ok(how) => Err(format!("silent upstream: {how}")),
                Err(_) => Err("silent upstream side still open".into()),
            }
        });
        let chatty = weft::go!(move || -> Result<(), String> {
            let s = weft_connect(addr)?;
            (&s).write_all(b"E").map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            for i in 0..ROUNDS {
                weft::sleep(PACE); // the chatty client's pace
                (&s).write_all(&[i])
                    .map_err(|e| format!("chatty write: {e}"))?;
                (&s).read_exact(&mut b)
                    .map_err(|e| format!("chatty read {i}: {e}"))?;
                if b[0] != i {
                    return Err(format!("chatty: echo {} for {i}", b[0]));
                }
            }
            s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            let mut rest = Vec::new();
            (&s).read_to_end(&mut rest)
                .map_err(|e| format!("chatty trailer: {e}"))?;
            if rest.len() == TRAILER_LEN && rest.starts_with(b"END!") {
                Ok(())
            } else {
                Err(format!("chatty: trailer {rest:?}"))
            }
        });
        let download = weft::go!(move || -> Result<(), String> {
            let s = weft_connect(addr)?;
            (&s).write_all(b"D").map_err(|e| e.to_string())?;
            let mut got = Vec::new();
            (&s).read_to_end(&mut got)
                .map_err(|e| format!("download: {e}"))?;
            if got != (0..ROUNDS).collect::<Vec<_>>() {
                return Err(format!("download: got {got:?}"));
            }
            s.shutdown(Shutdown::Write).map_err(|e| e.to_string())
        });
        let mut failures = join_all(vec![silent, chatty, download]);
        failures.extend(upstream.stop());
        failures
    });
    if !failures.is_empty() {
        proxy.fail(&format!("{failures:?}"));
    }
    let lines = expect_log_lines(&mut proxy, 1);
    if !lines[0].contains("idle for 1000 ms") {
        proxy.fail(&format!("the idle connection's log line: {lines:?}"));
    }
    expect_idle(&mut proxy, base_fds);
}

#[test]
fn flags_help_bad_flags_and_bind_failure() {
    let _dog = watchdog("flags_help_bad_flags_and_bind_failure", TEST_LIMIT);
    let flags = [
        "usage: proxy",
        "--addr",
        "--upstream",
        "--connect-timeout-ms",
        "--idle-timeout-ms",
        "--procs",
    ];
    check_command_line(
        "proxy",
        &flags,
        &[
            &["--bogus"],
            &["--procs", "0"],
            &["--procs"],
            &["--connect-timeout-ms", "x"],
            &["--connect-timeout-ms=0"],
            &["--upstream", "no-port"],
            &["--upstream", ":80"],
            &["--upstream=localhost:99999"],
            &["stray"],
        ],
    );
}
