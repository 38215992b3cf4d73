//! TCP over the netpoller: the acceptance cases of `weft::net::{TcpListener, TcpStream}`, run on
//! 1 P by `tests/net_tcp_1p.rs` and on 2 Ps by `tests/net_tcp_np.rs` (the same bodies on both,
//! as `rt_cases.rs` is shared by `rt_1p`/`rt_np`). Cases that need a process of their own (every
//! P busy, for sysmon) are in `tests/net_tcp_special.rs`.
//!
//! The binaries include this file with `#[path]` next to `mod common;`, so the other test
//! binaries do not compile it; [`tcp_tests!`] wraps each case with the watchdog, `init(procs)`
//! and its [`Mode`](crate::common::Mode).
//!
//! | cases | what |
//! |---|---|
//! | [`echo_10k_connections`] | 10 000 concurrent loopback connections (fewer if `RLIMIT_NOFILE` forbids), varied messages, every byte checked |
//! | [`full_duplex_shared_arc`], [`full_duplex_try_clone`] | one G blocked reading while another writes the same stream |
//! | `close_while_blocked_in_*`, [`ops_after_close`] | `close(&self)` wakes a G blocked in read / accept / write with the closed error |
//! | [`fd_reuse_with_pending_event`] | a closed socket's pending readiness never reaches the socket that reuses its fd number |
//! | `deadline_*`, `*_timeout_*` | read/write/accept deadlines and std timeouts; `connect_timeout` |
//! | [`peer_reset_wakes_reader_and_writer`], [`half_close`], [`connect_refused`], [`connect_timeout_backlog_full`] | faults |
//! | [`chunked_streams_proptest`] | random chunked writes on 8–32 connections, exact reconstruction |
//! | [`hog_does_not_stop_io_on_other_p`] | (2 Ps) a G that never yields holds one P; I/O runs on the other |
//! | `plain_thread_*` | the same API from an OS thread that is not a G |
//!
//! Rules (as in `rt_cases.rs`): no sleep used as synchronisation — Gs wait on joins, flags and
//! `yield_now` loops ([`wait_until`]); the only clock waits are the ones whose subject is time
//! (a deadline must pass before we can show it was extended). Timing upper bounds are generous
//! ([`GENEROUS`]) and measurements are printed (`--nocapture`), not asserted tightly. Lower
//! bounds are exact: a deadline never fires early.
//!
//! "G blocked in an op": there is no public way to ask whether a G is parked, so a case sets a
//! flag just before the op and then yields [`SETTLE`] times ([`settle`]). On 1 P that is exact
//! (the G ran until it parked before the flag's reader runs again); on 2 Ps it is very likely.
//! No assertion depends on it: the result an op returns is the same whether it blocked or not
//! (a G woken by `close` and one that started after it both get the closed error), so
//! `settle` only decides which path a case exercises, never whether it passes.

#![allow(dead_code)] // each binary uses the cases for its P count

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use weft::go;
use weft::net::{is_closed, TcpListener, TcpStream};

use crate::common::wait_until;

/// "Quickly" and "within a reasonable bound" for assertions about time: generous on purpose.
pub const GENEROUS: Duration = Duration::from_secs(2);

/// Upper bound on `yield_now` rounds in a wait loop. Generous: the watchdog is the real limit.
pub const ROUNDS: u64 = 100_000_000;

/// `yield_now` rounds after a G said it is about to block (see the module doc).
pub const SETTLE: usize = 200;

/// How long a G that never yields spins before giving up (then the case fails, rather than hog
/// its P until the watchdog aborts the process).
pub const GIVE_UP: Duration = Duration::from_secs(20);

/// Generated cases of the proptest unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 16;

/// Stack of the per-connection Gs of the 10K case (they keep their buffers on the heap).
const SMALL_STACK: usize = 64 * 1024;

/// Generate one `#[test]` per case for a binary with `$procs` Ps.
macro_rules! tcp_tests {
    ($procs:expr) => {
        $crate::tcp_cases::tcp_tests!(@mode $procs, Shared;
            full_duplex_shared_arc,
            full_duplex_try_clone,
            close_while_blocked_in_read,
            close_while_blocked_in_accept,
            close_while_blocked_in_write,
            ops_after_close,
            deadline_read_fires,
            deadline_extended_while_blocked,
            deadline_shortened_while_blocked,
            deadline_in_past_fails_at_once,
            deadline_cleared_blocks_again,
            deadline_accept,
            zero_timeouts_are_invalid,
            read_timeout_is_per_op,
            deadline_write_on_full_buffer,
            write_timeout_on_full_buffer,
            connect_timeout_ok_and_refused,
            peer_reset_wakes_reader_and_writer,
            half_close,
            shutdown_read_wakes_local_reader,
            connect_refused,
            connect_timeout_backlog_full,
            echo_ipv6_loopback,
            plain_thread_client_g_server,
            plain_thread_accept_g_client,
            plain_thread_blocked_read_closed_by_g,
        );
        $crate::tcp_cases::tcp_tests!(@mode $procs, Exclusive;
            echo_10k_connections,
            fd_reuse_with_pending_event,
            chunked_streams_proptest,
        );
    };
    (@mode $procs:expr, $mode:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::common::run_test(
                    $procs,
                    $crate::common::Mode::$mode,
                    stringify!($name),
                    $crate::tcp_cases::$name,
                );
            }
        )*
    };
}
pub(crate) use tcp_tests;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// splitmix64: a small deterministic generator for payloads and sizes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// A listener on an ephemeral IPv4 loopback port.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// A connected pair `(client, server)` on a fresh listener. Works in a G and on a plain thread:
/// the handshake completes in the kernel, so connecting before accepting does not block.
pub fn pair() -> (TcpStream, TcpStream) {
    let l = listener();
    let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (s, peer) = l.accept().expect("accept");
    assert_eq!(
        peer,
        c.local_addr().unwrap(),
        "accept reports the client's address"
    );
    (c, s)
}

/// `read` on a shared stream.
pub fn rd(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut r = s;
    r.read(buf)
}

/// `write_all` on a shared stream.
pub fn wr(s: &TcpStream, buf: &[u8]) -> io::Result<()> {
    let mut w = s;
    w.write_all(buf)
}

/// `read_exact` of `n` bytes on a shared stream.
pub fn rd_exact(s: &TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    let mut r = s;
    r.read_exact(&mut v)?;
    Ok(v)
}

/// Read until EOF.
pub fn rd_to_end(s: &TcpStream) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    let mut r = s;
    r.read_to_end(&mut v)?;
    Ok(v)
}

/// Echo everything read back until EOF; returns the byte count.
pub fn echo_until_eof(s: &TcpStream, bufsize: usize) -> io::Result<u64> {
    let mut buf = vec![0u8; bufsize];
    let mut total = 0u64;
    loop {
        match rd(s, &mut buf)? {
            0 => return Ok(total),
            n => {
                wr(s, &buf[..n])?;
                total += n as u64;
            }
        }
    }
}

/// Wait (yielding) until `flag` is set, then give its setter [`SETTLE`] rounds to block.
pub fn settle(flag: &AtomicBool) {
    assert!(
        wait_until(ROUNDS, || flag.load(SeqCst)),
        "the G never reached its op"
    );
    for _ in 0..SETTLE {
        weft::yield_now();
    }
}

/// Fill the send buffer of `s` and the receive buffer of its peer (which must not be reading)
/// until a write cannot add a byte. Returns the bytes written. Leaves no write timeout set.
///
/// "A write waited 50 ms without progress" is not enough: epoll (like `poll`) reports a TCP
/// socket writable only when a third of its send buffer is free, but `write` accepts bytes as
/// soon as any space is free, so right after such a timeout a write may still take a few hundred
/// KiB (measured on Linux 6.x with plain `poll(2)`, no weft involved). So fill until two writes
/// in a row time out with nothing written in between.
pub fn fill_send_buffer(s: &TcpStream) -> usize {
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut total = 0usize;
    let mut idle_timeouts = 0;
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while idle_timeouts < 2 {
        let mut w = s;
        match w.write(&chunk) {
            Ok(n) => {
                total += n;
                idle_timeouts = 0;
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => idle_timeouts += 1,
            Err(e) => panic!("filling the send buffer: {e}"),
        }
        assert!(total < 1 << 30, "1 GiB written to a peer that never reads");
    }
    s.set_write_timeout(None).unwrap();
    assert!(total > 0, "not a byte fitted in the send buffer");
    total
}

pub use crate::common::set_linger_zero;

/// Raise `RLIMIT_NOFILE` towards `want`: both limits if the process may (CAP_SYS_RESOURCE, e.g.
/// root), else the soft limit to the hard one. Returns the soft limit now in force.
pub fn raise_nofile_limit(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    if r.rlim_cur >= want {
        return r.rlim_cur;
    }
    let set = |cur: u64, max: u64| {
        let n = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &n) == 0 }
    };
    if r.rlim_max >= want {
        if set(want, r.rlim_max) {
            return want;
        }
    } else if set(want, want) {
        return want;
    }
    if set(r.rlim_max, r.rlim_max) {
        return r.rlim_max;
    }
    r.rlim_cur
}

/// Spawn a G with a small stack (the per-connection Gs of the 10K case).
fn spawn_small<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> weft::JoinHandle<T> {
    weft::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("spawn a per-connection G")
}

fn assert_closed<T: std::fmt::Debug>(r: io::Result<T>, what: &str) {
    match r {
        Err(e) => {
            assert!(
                is_closed(&e),
                "{what}: expected the closed error, got {e:?}"
            );
            assert_eq!(e.kind(), ErrorKind::NotConnected, "{what}: {e:?}");
        }
        Ok(v) => panic!("{what}: expected the closed error, got Ok({v:?})"),
    }
}

fn assert_timed_out<T: std::fmt::Debug>(r: io::Result<T>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{what}: {e:?}"),
        Ok(v) => panic!("{what}: expected TimedOut, got Ok({v:?})"),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. 10 000 concurrent echo connections
// ---------------------------------------------------------------------------------------------

/// Target number of connections of [`echo_10k_connections`].
pub const ECHO_CONNS: usize = 10_000;
/// File descriptors kept free for everything else in the process.
const FD_HEADROOM: u64 = 200;
/// Fewer connections than this (an `RLIMIT_NOFILE` hard limit below 10 200) fails the case.
const ECHO_MIN_CONNS: usize = 5_000;
/// Every this-many-th connection also sends one 256 KiB message (written by a second G while
/// the first reads the echo: lock-step write-then-read of a message larger than the socket
/// buffers would deadlock with the echo server, as it would with any echo server).
const BIG_EVERY: usize = 97;
const BIG_LEN: usize = 256 * 1024;
/// Connects that may be ahead of the acceptor (below the listen backlog, so no SYN is dropped
/// and no connect waits for a 1 s SYN retransmit).
const CONNECT_WINDOW: usize = 1_000;
/// Gs that connect (each its share, one after the other).
const CONNECTORS: usize = 16;

/// The messages of connection `i`: 3..=6 of varied sizes (1..=64, ..=1500, ..=16 KiB), plus
/// one of 256 KiB on every [`BIG_EVERY`]-th connection.
fn echo_messages(i: usize) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let mut rng = Rng::new(i as u64);
    let k = rng.range(3, 6);
    let msgs = (0..k)
        .map(|j| {
            let len = match rng.range(0, 2) {
                0 => rng.range(1, 64),
                1 => rng.range(1, 1500),
                _ => rng.range(1, 16 * 1024),
            };
            payload((i as u64) << 8 | j as u64, len)
        })
        .collect();
    let big = (i % BIG_EVERY == 0).then(|| payload(!(i as u64), BIG_LEN));
    (msgs, big)
}

/// Server side of one echo connection: an 8-byte length, then echo exactly that many bytes and
/// close first (so TIME_WAIT lands on the listener's side, not on an ephemeral port).
fn echo_server(s: TcpStream) -> u64 {
    let hdr = rd_exact(&s, 8).expect("server: read the length header");
    let total = u64::from_le_bytes(hdr.try_into().unwrap());
    let mut buf = vec![0u8; 8 * 1024];
    let mut done = 0u64;
    while done < total {
        let want = ((total - done) as usize).min(buf.len());
        let n = rd(&s, &mut buf[..want]).expect("server: read");
        assert!(n > 0, "server: EOF after {done} of {total} bytes");
        wr(&s, &buf[..n]).expect("server: write");
        done += n as u64;
    }
    done
}

/// Client side of connection `i`: header, every message and its echo checked, then EOF.
fn echo_client(i: usize, c: TcpStream) -> u64 {
    let (msgs, big) = echo_messages(i);
    let total: u64 = msgs.iter().map(|m| m.len() as u64).sum::<u64>()
        + big.as_ref().map_or(0, |b| b.len() as u64);
    wr(&c, &total.to_le_bytes()).expect("client: write header");
    for (j, m) in msgs.iter().enumerate() {
        wr(&c, m).expect("client: write");
        let back = rd_exact(&c, m.len()).expect("client: read echo");
        if back != *m {
            let at = back.iter().zip(m).position(|(a, b)| a != b);
            panic!(
                "conn {i} msg {j} ({} B): echo differs at byte {at:?}",
                m.len()
            );
        }
    }
    if let Some(big) = big {
        let c = Arc::new(c);
        let c2 = Arc::clone(&c);
        let big = Arc::new(big);
        let big2 = Arc::clone(&big);
        let writer = spawn_small(move || wr(&c2, &big2).expect("client: write big"));
        let back = rd_exact(&c, big.len()).expect("client: read big echo");
        writer.join().expect("big writer");
        assert!(back == *big, "conn {i}: 256 KiB echo differs");
        let mut b = [0u8; 1];
        assert_eq!(
            rd(&c, &mut b).expect("client: read EOF"),
            0,
            "conn {i}: EOF"
        );
    } else {
        let mut b = [0u8; 1];
        assert_eq!(
            rd(&c, &mut b).expect("client: read EOF"),
            0,
            "conn {i}: EOF"
        );
    }
    total
}

/// Echo round trips on up to 10 000 connections open at once, both ends in this process (so two
/// fds each): `min(10 000, (RLIMIT_NOFILE - 200) / 2)` after raising the limit, at least 5 000.
/// All connections are connected and accepted (10 000 server Gs parked in `read`) before any
/// client G starts; then every client sends 3–6 messages of varied sizes (some connections a
/// 256 KiB one too) and checks each echo byte for byte. Exactly 10 000, with the server side in
/// a child process: `echo_10000_connections_server_in_child` in `tests/net_tcp_special.rs`.
pub fn echo_10k_connections() {
    let limit = raise_nofile_limit(2 * ECHO_CONNS as u64 + FD_HEADROOM);
    let n = ECHO_CONNS.min((limit.saturating_sub(FD_HEADROOM) / 2) as usize);
    eprintln!("echo_10k_connections: RLIMIT_NOFILE soft limit {limit}: {n} connections");
    assert!(
        n >= ECHO_MIN_CONNS,
        "RLIMIT_NOFILE {limit} allows only {n} connections (< {ECHO_MIN_CONNS}); raise `ulimit -n`"
    );
    let t0 = Instant::now();
    let (bytes, t_connect) = weft::run(move || {
        let l = Arc::new(listener());
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (l, accepted) = (Arc::clone(&l), Arc::clone(&accepted));
            go!(move || {
                (0..n)
                    .map(|_| {
                        let (s, _) = l.accept().expect("accept");
                        accepted.fetch_add(1, SeqCst);
                        spawn_small(move || echo_server(s))
                    })
                    .collect::<Vec<_>>()
            })
        };
        let connectors: Vec<_> = (0..CONNECTORS)
            .map(|k| {
                let (accepted, connected) = (Arc::clone(&accepted), Arc::clone(&connected));
                go!(move || {
                    (k..n)
                        .step_by(CONNECTORS)
                        .map(|i| {
                            assert!(wait_until(ROUNDS, || {
                                connected.load(SeqCst).saturating_sub(accepted.load(SeqCst))
                                    < CONNECT_WINDOW
                            }));
                            let c = TcpStream::connect(addr)
                                .unwrap_or_else(|e| panic!("connect #{i}: {e}"));
                            connected.fetch_add(1, SeqCst);
                            (i, c)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let streams: Vec<(usize, TcpStream)> = connectors
            .into_iter()
            .flat_map(|h| h.join().expect("connector"))
            .collect();
        let servers = acceptor.join().expect("acceptor");
        assert_eq!(streams.len(), n);
        assert_eq!(servers.len(), n);
        let t_connect = Instant::now();
        // Now all n connections are open at once.
        let clients: Vec<_> = streams
            .into_iter()
            .map(|(i, c)| spawn_small(move || echo_client(i, c)))
            .collect();
        let sent: u64 = clients.into_iter().map(|h| h.join().expect("client")).sum();
        let echoed: u64 = servers.into_iter().map(|h| h.join().expect("server")).sum();
        assert_eq!(sent, echoed, "bytes sent vs echoed");
        (sent, t_connect)
    });
    let total = t0.elapsed();
    eprintln!(
        "echo_10k_connections: {n} connections on {} P(s): connect+accept {:?}, echo of {} MiB \
         each way {:?}, total {total:?}",
        weft::max_procs(),
        t_connect - t0,
        bytes >> 20,
        total - (t_connect - t0),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A reader and a writer on the same stream
// ---------------------------------------------------------------------------------------------

const DUPLEX_LEN: usize = 4 << 20;

/// One G reads the echo of what another G writes on the same client stream, 4 MiB (more than
/// the socket buffers, so both block at times: the reader before any echo arrives and whenever
/// it has drained it, the writer whenever the buffers are full). `reader`/`writer` are the two
/// handles (the same `Arc`'d stream, or a stream and its `try_clone`).
fn full_duplex(reader: Arc<TcpStream>, writer: Arc<TcpStream>, server: TcpStream) {
    let srv = go!(move || echo_until_eof(&server, 64 * 1024).expect("echo server"));
    let data = Arc::new(payload(42, DUPLEX_LEN));
    let reading = Arc::new(AtomicBool::new(false));
    let r = {
        let reading = Arc::clone(&reading);
        go!(move || {
            let mut got = Vec::with_capacity(DUPLEX_LEN);
            let mut buf = vec![0u8; 37 * 1024];
            reading.store(true, SeqCst);
            // Blocks first: nothing has been written yet.
            while got.len() < DUPLEX_LEN {
                let n = rd(&reader, &mut buf).expect("reader");
                assert!(n > 0, "EOF after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            got
        })
    };
    settle(&reading);
    assert!(
        !r.is_finished(),
        "the reader returned before anything was written"
    );
    let w = {
        let data = Arc::clone(&data);
        let writer2 = Arc::clone(&writer);
        go!(move || {
            let mut rng = Rng::new(7);
            let mut off = 0;
            while off < data.len() {
                let end = (off + rng.range(1, 300 * 1024)).min(data.len());
                wr(&writer2, &data[off..end]).expect("writer");
                off = end;
            }
        })
    };
    w.join().expect("writer G");
    let got = r.join().expect("reader G");
    assert!(got == *data, "echoed stream differs from the written one");
    writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(srv.join().expect("server G"), DUPLEX_LEN as u64);
}

/// The same `TcpStream` in an `Arc`, read by one G and written by another.
pub fn full_duplex_shared_arc() {
    weft::run(|| {
        let (c, s) = pair();
        let c = Arc::new(c);
        full_duplex(Arc::clone(&c), c, s);
    });
}

/// A stream read by one G and its `try_clone` written by another; afterwards closing one
/// handle leaves the other working.
pub fn full_duplex_try_clone() {
    weft::run(|| {
        let (c, s) = pair();
        let c2 = c.try_clone().unwrap();
        assert_ne!(c.as_raw_fd(), c2.as_raw_fd());
        let (c, c2) = (Arc::new(c), Arc::new(c2));
        // Keep a second server handle to talk after the echo server has finished.
        let s2 = s.try_clone().unwrap();
        full_duplex(Arc::clone(&c), Arc::clone(&c2), s);
        c2.close().unwrap();
        assert_closed(wr(&c2, b"x"), "write on the closed clone");
        wr(&s2, b"still here").unwrap();
        assert_eq!(rd_exact(&c, 10).unwrap(), b"still here");
    });
}

// ---------------------------------------------------------------------------------------------
// 3. close(&self) while a G is blocked
// ---------------------------------------------------------------------------------------------

/// A G blocked in `read` returns the closed error when another G closes the stream; `close`
/// returns after that (the fd is closed); the peer sees EOF.
pub fn close_while_blocked_in_read() {
    weft::run(|| {
        let (c, s) = pair();
        let c = Arc::new(c);
        let started = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                let mut b = [0u8; 16];
                let res = rd(&c, &mut b);
                (res, Instant::now())
            })
        };
        settle(&started);
        assert!(!r.is_finished(), "read returned without data");
        let t = Instant::now();
        c.close().expect("close");
        let closed_in = t.elapsed();
        let (res, at) = r.join().expect("reader G");
        let woke = at.saturating_duration_since(t);
        assert_closed(res, "read blocked during close");
        assert!(woke < GENEROUS, "blocked reader woke {woke:?} after close");
        eprintln!(
            "close_while_blocked_in_read: close took {closed_in:?}, reader woke after {woke:?}"
        );
        assert_eq!(rd(&s, &mut [0u8; 4]).unwrap(), 0, "the peer reads EOF");
    });
}

/// A G blocked in `accept` returns the closed error on `TcpListener::close`; when `close` returns
/// the port is free again (a new listener binds it).
pub fn close_while_blocked_in_accept() {
    weft::run(|| {
        let l = Arc::new(listener());
        let addr = l.local_addr().unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let a = {
            let (l, started) = (Arc::clone(&l), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                let res = l.accept().map(|(_, a)| a);
                (res, Instant::now())
            })
        };
        settle(&started);
        assert!(!a.is_finished(), "accept returned without a connection");
        let t = Instant::now();
        l.close().expect("close listener");
        let (res, at) = a.join().expect("acceptor G");
        let woke = at.saturating_duration_since(t);
        assert_closed(res, "accept blocked during close");
        assert!(woke < GENEROUS, "blocked accept woke {woke:?} after close");
        eprintln!("close_while_blocked_in_accept: acceptor woke after {woke:?}");
        assert_closed(l.accept(), "accept after close");
        assert_closed(l.close(), "second close of the listener");
        assert_closed(l.local_addr(), "local_addr after close");
        // close() returned: the fd is closed and the port is free.
        let l2 = TcpListener::bind(addr).expect("rebind the closed listener's port");
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = l2.accept().unwrap();
        wr(&c, b"ok").unwrap();
        assert_eq!(rd_exact(&s, 2).unwrap(), b"ok");
    });
}

/// A G blocked in `write` (the peer never reads, its receive buffer and our send buffer are
/// full) returns the closed error on close.
pub fn close_while_blocked_in_write() {
    weft::run(|| {
        let (c, s) = pair();
        let filled = fill_send_buffer(&c);
        let c = Arc::new(c);
        let started = Arc::new(AtomicBool::new(false));
        let w = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                let res = wr(&c, &vec![1u8; 256 * 1024]);
                (res, Instant::now())
            })
        };
        settle(&started);
        assert!(!w.is_finished(), "write_all finished on a full send buffer");
        let t = Instant::now();
        c.close().expect("close");
        let (res, at) = w.join().expect("writer G");
        let woke = at.saturating_duration_since(t);
        assert_closed(res, "write blocked during close");
        assert!(woke < GENEROUS, "blocked writer woke {woke:?} after close");
        eprintln!(
            "close_while_blocked_in_write: {filled} B filled the buffers, writer woke {woke:?} \
             after close"
        );
        drop(s);
    });
}

/// After `close`, every op returns the closed error, a second `close` too, and dropping the
/// closed value is fine.
pub fn ops_after_close() {
    weft::run(|| {
        let (c, s) = pair();
        c.close().expect("first close");
        assert_closed(c.close(), "second close");
        assert_closed(rd(&c, &mut [0u8; 8]), "read");
        assert_closed(wr(&c, b"x"), "write_all");
        assert_closed((&c).write(b"x"), "write");
        assert_closed((&c).write_vectored(&[IoSlice::new(b"x")]), "write_vectored");
        assert_closed(c.peek(&mut [0u8; 8]), "peek");
        assert_closed(c.shutdown(Shutdown::Both), "shutdown");
        assert_closed(c.try_clone(), "try_clone");
        assert_closed(c.local_addr(), "local_addr");
        assert_closed(c.peer_addr(), "peer_addr");
        assert_closed(c.set_nodelay(true), "set_nodelay");
        assert_closed(
            c.set_read_timeout(Some(Duration::from_secs(1))),
            "set_read_timeout",
        );
        assert_closed(c.set_read_deadline(None), "set_read_deadline");
        assert_closed(c.take_error(), "take_error");
        assert_eq!(rd(&s, &mut [0u8; 4]).unwrap(), 0, "peer reads EOF");
        drop(c);
    });
}

// ---------------------------------------------------------------------------------------------
// 4. fd reuse with a pending readiness event
// ---------------------------------------------------------------------------------------------

/// Close a socket whose peer wrote data nobody read (its readiness edge pending, or consumed by
/// a poll but unused), then at once connect a new socket, which gets the same fd number (the
/// kernel hands out the lowest free one; this case runs alone so nothing else takes it). A reader
/// on the new socket must block until the new peer writes and then read exactly its bytes: the
/// old socket's event wakes nobody and steals nothing. Variants: the old socket dropped (its
/// pollDesc slot is freed and may be reused with a new `seq`) or `close(&self)`d and kept alive
/// until the new socket exists (the slot stays allocated, evicted); with or without a few
/// yields first (so that a poll may or may not have picked the edge up).
pub fn fd_reuse_with_pending_event() {
    const ITERS: usize = 60;
    let same = weft::run(|| {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let mut same = 0;
        for it in 0..ITERS {
            let old_c = TcpStream::connect(addr).unwrap();
            let (old_s, _) = l.accept().unwrap();
            wr(&old_s, b"data nobody will read").unwrap();
            if it % 2 == 0 {
                for _ in 0..20 {
                    weft::yield_now();
                }
            }
            let fd = old_c.as_raw_fd();
            let keep = if it % 4 < 2 {
                drop(old_c);
                None
            } else {
                old_c.close().unwrap();
                Some(old_c)
            };
            let new_c = Arc::new(TcpStream::connect(addr).unwrap());
            if new_c.as_raw_fd() == fd {
                same += 1;
            }
            drop(keep);
            let (new_s, _) = l.accept().unwrap();
            let msg = format!("new socket, iteration {it}").into_bytes();
            let end = b"<end>";
            let started = Arc::new(AtomicBool::new(false));
            let reader = {
                let (new_c, started) = (Arc::clone(&new_c), Arc::clone(&started));
                let want = msg.len() + end.len();
                go!(move || {
                    started.store(true, SeqCst);
                    rd_exact(&new_c, want)
                })
            };
            settle(&started);
            assert!(
                !reader.is_finished(),
                "iteration {it}: the reader on the new socket returned before its peer wrote"
            );
            wr(&new_s, &msg).unwrap();
            wr(&new_s, end).unwrap();
            let got = reader
                .join()
                .expect("reader G")
                .expect("read on the new socket");
            assert_eq!(got, [&msg[..], end].concat(), "iteration {it}: wrong bytes");
            // The old peer: its unread data was discarded with a reset (or it sees EOF).
            match rd(&old_s, &mut [0u8; 8]) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                r => panic!("iteration {it}: old peer read {r:?}"),
            }
        }
        same
    });
    eprintln!(
        "fd_reuse_with_pending_event: the new socket reused the closed one's fd in {same} of \
         {ITERS} iterations"
    );
    assert!(same > 0, "never got the same fd number back");
}

// ---------------------------------------------------------------------------------------------
// 5. Deadlines and timeouts
// ---------------------------------------------------------------------------------------------

/// A read with no data fails with `TimedOut` at its deadline, never before.
pub fn deadline_read_fires() {
    weft::run(|| {
        let (c, _s) = pair();
        let d = Instant::now() + Duration::from_millis(60);
        c.set_read_deadline(Some(d)).unwrap();
        let r = rd(&c, &mut [0u8; 8]);
        let now = Instant::now();
        assert_timed_out(r, "read past its deadline");
        assert!(now >= d, "read deadline fired {:?} early", d - now);
        assert!(now - d < GENEROUS, "read deadline fired {:?} late", now - d);
        eprintln!("deadline_read_fires: {:?} late", now - d);
        // Still expired: the next read fails at once too.
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read after the deadline");
    });
}

/// Extending the deadline while a G waits takes effect: data sent after the old deadline has
/// passed (but before the new one) is read.
pub fn deadline_extended_while_blocked() {
    weft::run(|| {
        let (c, s) = pair();
        let c = Arc::new(c);
        let d1 = Instant::now() + Duration::from_millis(100);
        c.set_read_deadline(Some(d1)).unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                rd_exact(&c, 5)
            })
        };
        settle(&started);
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)))
            .unwrap();
        // Time passing is the subject here: the old deadline must be over before data comes.
        weft::sleep_until(d1 + Duration::from_millis(50));
        assert!(
            !r.is_finished(),
            "the reader returned although its deadline was extended"
        );
        wr(&s, b"later").unwrap();
        assert_eq!(
            r.join().unwrap().expect("read under the extended deadline"),
            b"later"
        );
    });
}

/// Moving the deadline earlier while a G waits wakes it at the new deadline.
pub fn deadline_shortened_while_blocked() {
    weft::run(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)))
            .unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                (rd(&c, &mut [0u8; 8]), Instant::now())
            })
        };
        settle(&started);
        let d2 = Instant::now() + Duration::from_millis(40);
        c.set_read_deadline(Some(d2)).unwrap();
        let (res, at) = r.join().unwrap();
        assert_timed_out(res, "read after the deadline moved earlier");
        assert!(at >= d2, "fired {:?} before the new deadline", d2 - at);
        assert!(
            at - d2 < GENEROUS,
            "fired {:?} after the new deadline",
            at - d2
        );
        eprintln!("deadline_shortened_while_blocked: {:?} late", at - d2);
    });
}

/// A deadline in the past fails the next op at once, without blocking, whether or not data is
/// waiting (Go: the deadline is checked before the syscall); reads and writes separately.
pub fn deadline_in_past_fails_at_once() {
    weft::run(|| {
        let (c, s) = pair();
        let past = Instant::now();
        c.set_read_deadline(Some(past)).unwrap();
        let t = Instant::now();
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read, past deadline, no data");
        let took = t.elapsed();
        assert!(took < GENEROUS, "took {took:?}");
        wr(&s, b"waiting").unwrap();
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read, past deadline, data waiting");
        // Only the read side: writes still work, and so does a read once cleared.
        wr(&c, b"w").unwrap();
        c.set_read_deadline(None).unwrap();
        assert_eq!(rd_exact(&c, 7).unwrap(), b"waiting");
        c.set_write_deadline(Some(Instant::now())).unwrap();
        assert_timed_out(wr(&c, b"x"), "write, past deadline");
        assert_timed_out((&c).write(b"x"), "write, past deadline");
        // set_deadline covers both.
        c.set_write_deadline(None).unwrap();
        c.set_deadline(Some(Instant::now() - Duration::from_millis(1)))
            .unwrap();
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read after set_deadline(past)");
        assert_timed_out(wr(&c, b"x"), "write after set_deadline(past)");
        eprintln!("deadline_in_past_fails_at_once: first read failed after {took:?}");
    });
}

/// After a deadline expired, clearing it (`None`) makes a read block again until data arrives.
pub fn deadline_cleared_blocks_again() {
    weft::run(|| {
        let (c, s) = pair();
        let c = Arc::new(c);
        c.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))
            .unwrap();
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read past the deadline");
        c.set_read_deadline(None).unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                rd_exact(&c, 4)
            })
        };
        settle(&started);
        assert!(
            !r.is_finished(),
            "read returned after the deadline was cleared"
        );
        wr(&s, b"data").unwrap();
        assert_eq!(r.join().unwrap().expect("read after clearing"), b"data");
    });
}

/// `TcpListener::set_deadline`: `accept` times out, and works again once cleared.
pub fn deadline_accept() {
    weft::run(|| {
        let l = listener();
        let d = Instant::now() + Duration::from_millis(40);
        l.set_deadline(Some(d)).unwrap();
        assert_timed_out(l.accept().map(|(_, a)| a), "accept past its deadline");
        assert!(Instant::now() >= d, "accept deadline fired early");
        l.set_deadline(None).unwrap();
        let addr = l.local_addr().unwrap();
        let c = go!(move || TcpStream::connect(addr).unwrap());
        let (s, _) = l.accept().expect("accept after clearing the deadline");
        let c = c.join().unwrap();
        wr(&c, b"hi").unwrap();
        assert_eq!(rd_exact(&s, 2).unwrap(), b"hi");
    });
}

/// `Some(0)` timeouts are `InvalidInput` (as std), and leave the timeout unchanged.
pub fn zero_timeouts_are_invalid() {
    weft::run(|| {
        let (c, _s) = pair();
        for r in [
            c.set_read_timeout(Some(Duration::ZERO)),
            c.set_write_timeout(Some(Duration::ZERO)),
        ] {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
        }
        let addr = c.peer_addr().unwrap();
        let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(c.read_timeout().unwrap(), None);
        assert_eq!(c.write_timeout().unwrap(), None);
    });
}

/// `set_read_timeout` is per op: each read waits the full timeout from its own start (an absolute
/// deadline fixed at `set_read_timeout` would fail the second read at once); a read with data
/// succeeds; with a deadline too, the earlier of the two applies; `None` waits forever again.
pub fn read_timeout_is_per_op() {
    weft::run(|| {
        let (c, s) = pair();
        let c = Arc::new(c);
        let to = Duration::from_millis(60);
        c.set_read_timeout(Some(to)).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(to));
        let mut took = Vec::new();
        for i in 0..2 {
            let t = Instant::now();
            assert_timed_out(rd(&c, &mut [0u8; 8]), "read with a timeout");
            let e = t.elapsed();
            assert!(e >= to, "read {i} timed out after {e:?} < {to:?}");
            assert!(e < to + GENEROUS, "read {i} timed out after {e:?}");
            took.push(e);
        }
        wr(&s, b"abc").unwrap();
        assert_eq!(rd_exact(&c, 3).unwrap(), b"abc");
        // Deadline earlier than now + timeout: the deadline wins.
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let d = Instant::now() + Duration::from_millis(40);
        c.set_read_deadline(Some(d)).unwrap();
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read, deadline before timeout");
        assert!(Instant::now() >= d);
        // Timeout earlier than the deadline: the timeout wins.
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)))
            .unwrap();
        c.set_read_timeout(Some(to)).unwrap();
        let t = Instant::now();
        assert_timed_out(rd(&c, &mut [0u8; 8]), "read, timeout before deadline");
        assert!(t.elapsed() >= to);
        // No timeout and no deadline: blocks until data.
        c.set_read_timeout(None).unwrap();
        c.set_read_deadline(None).unwrap();
        assert_eq!(c.read_timeout().unwrap(), None);
        let started = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                rd_exact(&c, 2)
            })
        };
        settle(&started);
        assert!(
            !r.is_finished(),
            "read returned with no timeout and no data"
        );
        wr(&s, b"ok").unwrap();
        assert_eq!(r.join().unwrap().unwrap(), b"ok");
        eprintln!("read_timeout_is_per_op: timeout {to:?}, reads took {took:?}");
    });
}

/// A write deadline fires while the send buffer is full (the peer does not read).
pub fn deadline_write_on_full_buffer() {
    weft::run(|| {
        let (c, _s) = pair();
        let d = Instant::now() + Duration::from_millis(150);
        c.set_write_deadline(Some(d)).unwrap();
        let chunk = vec![3u8; 64 * 1024];
        let mut total = 0usize;
        let e = loop {
            match wr(&c, &chunk) {
                Ok(()) => total += chunk.len(),
                Err(e) => break e,
            }
            assert!(total < 1 << 30, "1 GiB written to a peer that never reads");
        };
        let now = Instant::now();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
        assert!(now >= d, "write deadline fired early");
        assert!(
            now - d < GENEROUS,
            "write deadline fired {:?} late",
            now - d
        );
        eprintln!(
            "deadline_write_on_full_buffer: {total} B fitted, deadline fired {:?} late",
            now - d
        );
    });
}

/// The std write timeout on a full send buffer: `TimedOut` after at least the timeout.
pub fn write_timeout_on_full_buffer() {
    weft::run(|| {
        let (c, _s) = pair();
        fill_send_buffer(&c);
        let to = Duration::from_millis(50);
        c.set_write_timeout(Some(to)).unwrap();
        assert_eq!(c.write_timeout().unwrap(), Some(to));
        let t = Instant::now();
        assert_timed_out(wr(&c, &[9u8; 4096]), "write on a full buffer");
        assert!(t.elapsed() >= to);
    });
}

/// `connect_timeout`: connects to a listener in time; a refused port is `ConnectionRefused`, not
/// a timeout; a successful connect leaves no write deadline behind.
pub fn connect_timeout_ok_and_refused() {
    weft::run(|| {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect_timeout");
        let (s, _) = l.accept().unwrap();
        // The connect deadline is gone: a write after it would have passed still works.
        wr(&c, b"x").unwrap();
        assert_eq!(rd_exact(&s, 1).unwrap(), b"x");
        let refused = closed_port();
        let e = TcpStream::connect_timeout(&refused, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Faults
// ---------------------------------------------------------------------------------------------

/// A loopback address with nothing listening: bind, note the port, close.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// The peer resets (SO_LINGER 0, then close): a G blocked reading gets `ConnectionReset` (or
/// EOF), a G blocked writing on a full buffer gets an error (`ConnectionReset`/`BrokenPipe`);
/// neither hangs. Later writes keep failing.
pub fn peer_reset_wakes_reader_and_writer() {
    weft::run(|| {
        let (c, s) = pair();
        fill_send_buffer(&c);
        let c = Arc::new(c);
        let (rs, ws) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reader = {
            let (c, rs) = (Arc::clone(&c), Arc::clone(&rs));
            go!(move || {
                rs.store(true, SeqCst);
                (rd(&c, &mut [0u8; 64]), Instant::now())
            })
        };
        let writer = {
            let (c, ws) = (Arc::clone(&c), Arc::clone(&ws));
            go!(move || {
                ws.store(true, SeqCst);
                (wr(&c, &vec![7u8; 1 << 20]), Instant::now())
            })
        };
        settle(&rs);
        settle(&ws);
        assert!(!reader.is_finished() && !writer.is_finished());
        set_linger_zero(&s);
        let t = Instant::now();
        drop(s);
        let (r, rat) = reader.join().unwrap();
        match r {
            Ok(0) => {}
            Err(ref e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("reader after reset: {other:?}"),
        }
        let (w, wat) = writer.join().unwrap();
        let e = w.expect_err("write_all after the peer reset");
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "writer after reset: {e:?}"
        );
        let (rw, ww) = (
            rat.saturating_duration_since(t),
            wat.saturating_duration_since(t),
        );
        assert!(rw < GENEROUS && ww < GENEROUS, "woke after {rw:?} / {ww:?}");
        eprintln!(
            "peer_reset_wakes_reader_and_writer: reader got {r:?} after {rw:?}, writer got \
             {:?} after {ww:?}",
            e.kind()
        );
        let e = wr(&c, b"more").unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{e:?}"
        );
    });
}

/// `shutdown(Write)`: a G blocked reading on the peer wakes with EOF; the peer can still write
/// back and we read it; then the peer closes and we read EOF.
pub fn half_close() {
    weft::run(|| {
        let (c, s) = pair();
        let s = Arc::new(s);
        let started = Arc::new(AtomicBool::new(false));
        let peer = {
            let (s, started) = (Arc::clone(&s), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                let got = rd_to_end(&s).expect("peer reads to EOF");
                wr(&s, b"reply after your FIN").unwrap();
                got
            })
        };
        wr(&c, b"request").unwrap();
        settle(&started);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(peer.join().unwrap(), b"request");
        assert_eq!(rd_exact(&c, 20).unwrap(), b"reply after your FIN");
        assert_eq!(c.take_error().unwrap().map(|e| e.kind()), None);
        drop(s);
        assert_eq!(rd_to_end(&c).unwrap(), b"", "EOF once the peer closed");
        // Writing after our own shutdown(Write) is an error (EPIPE).
        let e = wr(&c, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e:?}");
    });
}

/// `shutdown(Read)` on a shared stream wakes a G blocked reading it with EOF (the std way to
/// unblock a reader, documented on `TcpStream::shutdown`).
pub fn shutdown_read_wakes_local_reader() {
    weft::run(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        let started = Arc::new(AtomicBool::new(false));
        let r = {
            let (c, started) = (Arc::clone(&c), Arc::clone(&started));
            go!(move || {
                started.store(true, SeqCst);
                rd(&c, &mut [0u8; 8])
            })
        };
        settle(&started);
        c.shutdown(Shutdown::Read).unwrap();
        assert_eq!(r.join().unwrap().expect("read after shutdown(Read)"), 0);
    });
}

/// Connecting to a port nothing listens on is `ConnectionRefused`.
pub fn connect_refused() {
    weft::run(|| {
        let a = closed_port();
        let e = TcpStream::connect(a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
    });
}

/// `connect_timeout` against a listener whose accept queue is full (backlog 1, never accepting):
/// Linux drops the SYNs of further connects (the queue holds `backlog + 1`), so one of them
/// hangs and `connect_timeout` must return `TimedOut` after its timeout. If the kernel completes
/// every handshake anyway (another kernel or setting), the case checks the weaker property that
/// every `connect_timeout` returned `Ok` or `TimedOut` in time, and says so.
pub fn connect_timeout_backlog_full() {
    weft::run(|| {
        let full = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: listen(2) on a socket we own, open for the call; it only changes the backlog
        // of the already-listening socket.
        let rc = unsafe { libc::listen(full.as_raw_fd(), 1) };
        assert_eq!(rc, 0, "listen(1): {}", io::Error::last_os_error());
        let addr = full.local_addr().unwrap();
        let to = Duration::from_millis(200);
        let mut kept = Vec::new();
        let mut timed_out = None;
        for i in 0..16 {
            let t = Instant::now();
            let r = TcpStream::connect_timeout(&addr, to);
            let took = t.elapsed();
            assert!(took < to + GENEROUS, "connect_timeout #{i} took {took:?}");
            match r {
                Ok(c) => kept.push(c),
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    assert!(took >= to, "timed out after {took:?} < {to:?}");
                    timed_out = Some((i, took));
                    break;
                }
                Err(e) => panic!("connect_timeout #{i}: {e:?}"),
            }
        }
        match timed_out {
            Some((i, took)) => eprintln!(
                "connect_timeout_backlog_full: {} connects completed, #{i} timed out after \
                 {took:?} (timeout {to:?})",
                kept.len()
            ),
            None => eprintln!(
                "connect_timeout_backlog_full: the kernel completed all {} handshakes despite \
                 backlog 1 (SYN cookies?); checked only that each returned in time",
                kept.len()
            ),
        }
        drop(full);
    });
}

/// Echo over `[::1]` if this machine has IPv6 loopback (skipped with a note otherwise).
pub fn echo_ipv6_loopback() {
    weft::run(|| {
        let l = match TcpListener::bind("[::1]:0") {
            Ok(l) => l,
            Err(e) => {
                eprintln!("echo_ipv6_loopback: no IPv6 loopback ({e}); skipped");
                return;
            }
        };
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let srv = go!(move || {
            let (s, peer) = l.accept().unwrap();
            assert!(peer.is_ipv6());
            echo_until_eof(&s, 4096).unwrap()
        });
        let c = TcpStream::connect(addr).unwrap();
        let data = payload(6, 100_000);
        let c = Arc::new(c);
        let c2 = Arc::clone(&c);
        let d2 = data.clone();
        let w = go!(move || {
            wr(&c2, &d2).unwrap();
            c2.shutdown(Shutdown::Write).unwrap();
        });
        assert!(rd_to_end(&c).unwrap() == data);
        w.join().unwrap();
        assert_eq!(srv.join().unwrap(), data.len() as u64);
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Chunked streams, generated
// ---------------------------------------------------------------------------------------------

/// One generated connection: the writer's chunks, the reader's buffer size, how the writer
/// writes, and the payload seed.
#[derive(Debug, Clone)]
struct ConnPlan {
    chunks: Vec<usize>,
    read_buf: usize,
    partial_writes: bool,
    seed: u64,
}

fn chunk_size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=16, 1usize..=4096, 1usize..=256 * 1024]
}

fn conn_plans() -> impl Strategy<Value = Vec<ConnPlan>> {
    vec(
        (
            vec(chunk_size(), 1..=8),
            1usize..=65_536,
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(|(chunks, read_buf, partial_writes, seed)| ConnPlan {
                chunks,
                read_buf,
                partial_writes,
                seed,
            }),
        8..=32,
    )
}

/// Run one generated case: per connection one writer G (client side) writing its chunks with
/// `write_all` or a loop of plain `write`s, then `shutdown(Write)`; one reader G (server side)
/// reading with its buffer size until EOF. Returns the first mismatch, if any.
fn run_chunked(plans: &[ConnPlan]) -> Result<u64, String> {
    let plans = plans.to_vec();
    weft::run(move || {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let mut handles = Vec::new();
        for (k, p) in plans.into_iter().enumerate() {
            let c = TcpStream::connect(addr).map_err(|e| format!("connect #{k}: {e}"))?;
            let (s, _) = l.accept().map_err(|e| format!("accept #{k}: {e}"))?;
            let total: usize = p.chunks.iter().sum();
            let data = Arc::new(payload(p.seed, total));
            let expected = Arc::clone(&data);
            let writer = go!(move || -> Result<(), String> {
                let mut off = 0;
                for &len in &p.chunks {
                    let chunk = &data[off..off + len];
                    if p.partial_writes {
                        let mut rest = chunk;
                        while !rest.is_empty() {
                            let n = (&c).write(rest).map_err(|e| format!("write: {e}"))?;
                            rest = &rest[n..];
                        }
                    } else {
                        wr(&c, chunk).map_err(|e| format!("write_all: {e}"))?;
                    }
                    off += len;
                }
                c.shutdown(Shutdown::Write)
                    .map_err(|e| format!("shutdown: {e}"))
            });
            let read_buf = p.read_buf;
            let reader = go!(move || -> Result<usize, String> {
                let mut got = Vec::with_capacity(expected.len());
                let mut buf = vec![0u8; read_buf];
                loop {
                    match rd(&s, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                if got != *expected {
                    let at = got.iter().zip(expected.iter()).position(|(a, b)| a != b);
                    return Err(format!(
                        "read {} of {} bytes, first difference at {at:?}",
                        got.len(),
                        expected.len()
                    ));
                }
                Ok(got.len())
            });
            handles.push((k, writer, reader));
        }
        let mut bytes = 0u64;
        for (k, w, r) in handles {
            w.join()
                .map_err(|_| format!("conn {k}: writer panicked"))?
                .map_err(|e| format!("conn {k}: {e}"))?;
            bytes += r
                .join()
                .map_err(|_| format!("conn {k}: reader panicked"))?
                .map_err(|e| format!("conn {k}: {e}"))? as u64;
        }
        Ok(bytes)
    })
}

/// proptest: 8–32 connections per case, each with one writer G writing 1–8 chunks of 1 B ..
/// 256 KiB and one reader G reading with a 1 B .. 64 KiB buffer; every reader reconstructs its
/// stream exactly. `PROPTEST_CASES` cases (default 16).
pub fn chunked_streams_proptest() {
    let stats = Mutex::new((0usize, 0u64));
    let t = Instant::now();
    crate::common::run_proptest(CASES, &conn_plans(), |plans| {
        let bytes = run_chunked(&plans)?;
        let mut s = stats.lock().unwrap();
        s.0 += plans.len();
        s.1 += bytes;
        Ok(())
    });
    let (conns, bytes) = *stats.lock().unwrap();
    eprintln!(
        "chunked_streams_proptest: {} cases, {conns} connections, {} MiB in {:?}",
        crate::common::proptest_cases(CASES),
        bytes >> 20,
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. A G that never yields (2 Ps)
// ---------------------------------------------------------------------------------------------

/// Round trips of [`hog_does_not_stop_io_on_other_p`].
const HOG_ROUND_TRIPS: usize = 2_000;

/// A CPU-bound G that never yields (it spins on a flag only the case sets at the end) holds one
/// of the 2 Ps for the whole case; echo traffic between two Gs still completes on the other P.
pub fn hog_does_not_stop_io_on_other_p() {
    assert!(weft::max_procs() >= 2, "needs 2 Ps: the hog never yields");
    let (elapsed, hog_ok) = weft::run(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(false));
        let hog = {
            let (stop, running) = (Arc::clone(&stop), Arc::clone(&running));
            go!(move || {
                running.store(true, SeqCst);
                let t = Instant::now();
                let mut spins = 0u64;
                // Deliberately no yield.
                while !stop.load(SeqCst) {
                    std::hint::spin_loop();
                    spins += 1;
                    if spins % (1 << 20) == 0 && t.elapsed() > GIVE_UP {
                        return false;
                    }
                }
                true
            })
        };
        assert!(wait_until(ROUNDS, || running.load(SeqCst)));
        let t = Instant::now();
        let (c, s) = pair();
        let srv = go!(move || echo_until_eof(&s, 256).unwrap());
        let cli = go!(move || {
            for i in 0..HOG_ROUND_TRIPS {
                let msg = (i as u64).to_le_bytes();
                wr(&c, &msg).unwrap();
                assert_eq!(rd_exact(&c, 8).unwrap(), msg);
            }
            c.shutdown(Shutdown::Write).unwrap();
        });
        cli.join().expect("client");
        let elapsed = t.elapsed();
        assert_eq!(srv.join().unwrap(), 8 * HOG_ROUND_TRIPS as u64);
        let still_hogging = !hog.is_finished();
        stop.store(true, SeqCst);
        let ok = hog.join().unwrap();
        assert!(still_hogging || !ok, "the hog stopped by itself");
        (elapsed, ok)
    });
    assert!(
        hog_ok,
        "the echo finished only after the hog gave up ({GIVE_UP:?}): I/O waits for a busy P"
    );
    eprintln!(
        "hog_does_not_stop_io_on_other_p: {HOG_ROUND_TRIPS} round trips next to the hog in \
         {elapsed:?} ({:?} each)",
        elapsed / HOG_ROUND_TRIPS as u32
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Plain OS threads
// ---------------------------------------------------------------------------------------------

/// A plain thread (not a G) connects, writes and reads against a listener served by Gs; its
/// reads block the thread until the G writes; a read deadline works on a thread too.
pub fn plain_thread_client_g_server() {
    assert!(weft::current().is_none(), "runs on the test's plain thread");
    let l = listener();
    let addr = l.local_addr().unwrap();
    let srv = weft::spawn(move || {
        let (s, _) = l.accept().unwrap();
        echo_until_eof(&s, 1024).unwrap()
    });
    let c = TcpStream::connect(addr).unwrap();
    for i in 0..50u64 {
        let msg = payload(i, 1 + (i as usize * 977) % 5000);
        wr(&c, &msg).unwrap();
        assert!(rd_exact(&c, msg.len()).unwrap() == msg, "round trip {i}");
    }
    let d = Instant::now() + Duration::from_millis(30);
    c.set_read_deadline(Some(d)).unwrap();
    assert_timed_out(rd(&c, &mut [0u8; 4]), "plain-thread read past its deadline");
    assert!(Instant::now() >= d);
    c.set_read_deadline(None).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rd_to_end(&c).unwrap(), b"");
    assert!(srv.join().unwrap() > 0);
}

/// A plain thread blocks in `accept` until a G connects, then talks to it.
pub fn plain_thread_accept_g_client() {
    assert!(weft::current().is_none());
    let l = listener();
    let addr = l.local_addr().unwrap();
    let accepting = Arc::new(AtomicBool::new(false));
    let g = {
        let accepting = Arc::clone(&accepting);
        weft::spawn(move || {
            settle(&accepting);
            let c = TcpStream::connect(addr).unwrap();
            wr(&c, b"from a G").unwrap();
            rd_exact(&c, 11).unwrap()
        })
    };
    accepting.store(true, SeqCst);
    let (s, _) = l.accept().expect("accept on a plain thread");
    assert_eq!(rd_exact(&s, 8).unwrap(), b"from a G");
    wr(&s, b"from thread").unwrap();
    assert_eq!(g.join().unwrap(), b"from thread");
}

/// A plain thread blocked in `read` returns the closed error when a G closes the stream.
pub fn plain_thread_blocked_read_closed_by_g() {
    assert!(weft::current().is_none());
    let (c, _s) = pair();
    let c = Arc::new(c);
    let reading = Arc::new(AtomicBool::new(false));
    let closer = {
        let (c, reading) = (Arc::clone(&c), Arc::clone(&reading));
        weft::spawn(move || {
            settle(&reading);
            c.close().unwrap();
        })
    };
    reading.store(true, SeqCst);
    assert_closed(rd(&c, &mut [0u8; 8]), "plain-thread read during close");
    closer.join().unwrap();
}
