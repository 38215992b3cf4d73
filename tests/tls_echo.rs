//! Integration tests of the TLS echo server example, `examples/tls_echo.rs`: `rustls` over weft
//! sockets, unmodified, on both sides.
//!
//! Every test starts the example as a child process of its own (`common::example`) and talks to
//! it over loopback with rustls clients — in weft Gs (weft `TcpStream`) and on plain OS threads
//! (std `TcpStream`): the same client code, generic over `Read + Write`, runs on both.
//!
//! | test | what it proves |
//! |---|---|
//! | `rustls_client_in_a_g_round_trips` | a generated self-signed certificate (`--cert-out`) is trusted by a client in a G; TLS 1.3; messages of 1 B to 256 KiB (sent in round trips of at most 64 KiB, see [`round_trip`]) come back exactly; `close_notify` is answered by the server's own (clean EOF); nothing logged |
//! | `std_client_on_a_thread_round_trips_with_cert_flags` | `--cert`/`--key` PEM files made by the test (the start line names the certificate); a client on a plain thread with std sockets; TLS 1.2 as well as 1.3, each as negotiated |
//! | `two_hundred_concurrent_connections` | 200 TLS sessions open at once (a barrier holds them open; every client reaches it, even one that failed), each with its own message sequence, all verified; the server's fds come back to idle afterwards |
//! | `stalled_handshake_does_not_block_others` | on **1 P**, a client that sends half a ClientHello and stops (`--handshake-timeout-ms 30000`): 20 other handshakes and echoes complete while it stalls, and it is still connected (neither answered nor closed) afterwards |
//! | `stalled_and_trickling_handshakes_are_dropped_at_the_deadline` | `--handshake-timeout-ms 300`: a silent client and one trickling a byte every 50 ms are both closed at the deadline (never before it, within 3 s), and the server goes on |
//! | `untrusted_client_and_plain_text_are_refused_server_goes_on` | a client that does not trust the certificate fails with "invalid peer certificate"; an HTTP request in plain text gets its connection ended with at most an alert; a good client is served right after; at most one log line per refusal |
//! | `a_client_that_does_not_read_stalls_only_itself` | on **1 P**, one client writes up to 64 MiB without reading while another completes 50 round trips; the flooder's writes block long before 64 MiB (the server's G parks on a full socket: back-pressure), and the server's peak resident memory grows by less than 4 MiB meanwhile (it buffers nothing) |
//! | `a_client_that_never_reads_is_dropped_after_the_idle_timeout` | `--idle-timeout-ms 500` covers writes: the server's G parked writing to a client that never reads gives up and frees the connection's fd while the client still holds its end |
//! | `bad_flags_exit_2_with_a_message` | `--cert` without `--key`, a missing file, an unknown flag, a bad number: exit 2 and a message naming the culprit |
//!
//! Rules: every socket read has a timeout, every test a watchdog; no sleep is used as
//! synchronisation (sleeps only pace the trickling client and bound the polls for the server's
//! fds).

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};

mod common;
use common::example::{
    check_command_line, pattern, run_clients, std_connect, weft_connect, Example, TempDir,
    GENEROUS, SETTLE, TEST_LIMIT,
};
use common::watchdog;

/// The most one [`round_trip`] writes before it reads the echo back. The server echoes each
/// record as it arrives, so a client that writes a whole message before reading needs the
/// loopback buffers (both directions) to hold all of it; 64 KiB fits them with room to spare.
const MAX_ROUND_TRIP: usize = 64 << 10;

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// The server with a generated certificate, and a client configuration that trusts it.
fn start_generated(name: &str, args: &[&str]) -> (Example, Arc<ClientConfig>, TempDir) {
    let dir = TempDir::new(name);
    let pem = dir.path("cert.pem");
    let pem_arg = pem.to_str().expect("utf-8 path").to_string();
    let mut all = vec!["--cert-out", &pem_arg];
    all.extend_from_slice(args);
    let server = Example::start("tls_echo", &all);
    let config = client_config(&pem, None);
    (server, config, dir)
}

/// A client configuration trusting the certificates in `pem`; TLS 1.2 only if `version` says
/// so.
fn client_config(
    pem: &Path,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).expect("read the certificate") {
        roots
            .add(cert.expect("parse the certificate"))
            .expect("add root");
    }
    let builder = match version {
        Some(v) => ClientConfig::builder_with_protocol_versions(&[v]),
        None => ClientConfig::builder(),
    };
    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
}

/// A TLS session over `sock` to "localhost", handshake completed.
fn handshake<S: Read + Write>(
    sock: S,
    config: &Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, S>> {
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Send `msg` and read its echo back, checking every byte: in pieces of at most
/// [`MAX_ROUND_TRIP`] bytes, each written whole and then read back whole.
fn round_trip<S: Read + Write>(
    tls: &mut StreamOwned<ClientConnection, S>,
    msg: &[u8],
) -> Result<(), String> {
    let mut back = vec![0u8; msg.len().min(MAX_ROUND_TRIP)];
    for (k, piece) in msg.chunks(MAX_ROUND_TRIP).enumerate() {
        let at = k * MAX_ROUND_TRIP;
        let back = &mut back[..piece.len()];
        tls.write_all(piece)
            .and_then(|()| tls.flush())
            .map_err(|e| format!("write bytes {at}.. of {}: {e}", msg.len()))?;
        tls.read_exact(back)
            .map_err(|e| format!("read the echo of bytes {at}.. of {}: {e}", msg.len()))?;
        if back != piece {
            let i = back
                .iter()
                .zip(piece)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "echo of {} bytes differs at byte {}",
                msg.len(),
                at + i
            ));
        }
    }
    Ok(())
}

/// Send `close_notify` and expect the server's own, then a clean EOF.
fn close<S: Read + Write>(mut tls: StreamOwned<ClientConnection, S>) -> Result<(), String> {
    tls.conn.send_close_notify();
    tls.flush()
        .map_err(|e| format!("flush close_notify: {e}"))?;
    let mut rest = Vec::new();
    match tls.read_to_end(&mut rest) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{n} unexpected bytes after close_notify")),
        Err(e) => Err(format!("no clean close_notify from the server: {e}")),
    }
}

/// Message `i` of client `c`: `len` bytes that differ per client, message and position.
fn message(c: usize, i: usize, len: usize) -> Vec<u8> {
    pattern((c as u64) << 32 | i as u64, len)
}

/// One session: handshake, `msgs` round trips of sizes from `sizes`, close.
fn session<S: Read + Write>(
    sock: S,
    config: &Arc<ClientConfig>,
    c: usize,
    sizes: &[usize],
) -> Result<(), String> {
    let mut tls = handshake(sock, config).map_err(|e| format!("handshake: {e}"))?;
    for (i, &len) in sizes.iter().enumerate() {
        round_trip(&mut tls, &message(c, i, len))?;
    }
    close(tls)
}

/// The first `n` bytes of a real ClientHello.
fn partial_client_hello(config: &Arc<ClientConfig>, n: usize) -> Vec<u8> {
    let mut conn =
        ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap())
            .expect("client connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    assert!(hello.len() > n, "ClientHello of {} bytes", hello.len());
    hello.truncate(n);
    hello
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn rustls_client_in_a_g_round_trips() {
    let _dog = watchdog("rustls_client_in_a_g_round_trips", TEST_LIMIT);
    let (server, config, _dir) = start_generated("tls_g", &[]);
    let addr = server.addr;
    let res = weft::run(move || -> Result<(), String> {
        let sock = weft_connect(addr)?;
        let mut tls = handshake(sock, &config).map_err(|e| format!("handshake: {e}"))?;
        if tls.conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
            return Err(format!("negotiated {:?}", tls.conn.protocol_version()));
        }
        for (i, len) in [1, 100, 16 * 1024, 16 * 1024 + 1, 256 * 1024]
            .into_iter()
            .enumerate()
        {
            round_trip(&mut tls, &message(0, i, len))?;
        }
        close(tls)
    });
    if let Err(e) = res {
        panic!("{e}\n--- server stderr ---\n{}", server.stderr_text());
    }
    assert_eq!(server.stderr_text(), "", "a clean session logs nothing");
}

#[test]
fn std_client_on_a_thread_round_trips_with_cert_flags() {
    let _dog = watchdog(
        "std_client_on_a_thread_round_trips_with_cert_flags",
        TEST_LIMIT,
    );
    // The test's own certificate and key, handed to the server with --cert/--key.
    let dir = TempDir::new("tls_flags");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    std::fs::write(dir.path("cert.pem"), made.cert.pem()).expect("write cert");
    std::fs::write(dir.path("key.pem"), made.signing_key.serialize_pem()).expect("write key");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let server = Example::start(
        "tls_echo",
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.start_line.contains("cert.pem"),
        "{}",
        server.start_line
    );
    let addr = server.addr;
    for (c, version) in [(0, None), (1, Some(&rustls::version::TLS12))] {
        let config = client_config(&cert, version);
        let got = std::thread::spawn(move || {
            let mut tls =
                handshake(std_connect(addr), &config).map_err(|e| format!("handshake: {e}"))?;
            let v = tls.conn.protocol_version();
            for i in 0..10 {
                round_trip(&mut tls, &message(c, i, 1 + 997 * i))?;
            }
            close(tls).map(|()| v)
        })
        .join()
        .expect("client thread");
        let want = if version.is_some() {
            ProtocolVersion::TLSv1_2
        } else {
            ProtocolVersion::TLSv1_3
        };
        match got {
            Ok(v) => assert_eq!(v, Some(want)),
            Err(e) => panic!("{e}\n--- server stderr ---\n{}", server.stderr_text()),
        }
    }
}

#[test]
fn two_hundred_concurrent_connections() {
    const CONNS: usize = 200;
    let _dog = watchdog("two_hundred_concurrent_connections", TEST_LIMIT);
    let (mut server, config, _dir) = start_generated("tls_200", &[]);
    let addr = server.addr;
    let idle = server.fd_count();
    let t0 = Instant::now();
    let failures = weft::run(move || {
        let all_open = Arc::new(weft::sync::Barrier::new(CONNS));
        run_clients(CONNS, move |c| {
            let opened = weft_connect(addr).and_then(|sock| {
                let mut tls = handshake(sock, &config).map_err(|e| format!("handshake: {e}"))?;
                round_trip(&mut tls, &message(c, 0, 64))?;
                Ok(tls)
            });
            // Every session is open and past its handshake once all have passed this point. A
            // client that failed waits too, so that the others are not left waiting for it; its
            // error is reported after.
            all_open.wait();
            let mut tls = opened?;
            for i in 1..20 {
                let len = 1 + (c * 131 + i * 977) % 8192;
                round_trip(&mut tls, &message(c, i, len))?;
            }
            close(tls)
        })
    });
    let took = t0.elapsed();
    server.assert_no_failures(&failures);
    eprintln!("tls_echo: {CONNS} concurrent TLS sessions × 20 round trips in {took:?}");
    server.wait_fds_at_most(idle, SETTLE);
}

#[test]
fn stalled_handshake_does_not_block_others() {
    let _dog = watchdog("stalled_handshake_does_not_block_others", TEST_LIMIT);
    // One P: one OS thread runs every G, so a handshake that blocked its thread would block all.
    // The stalled client's deadline is far beyond what the others need (a few ms each; a blocked
    // server would fail them at their own 10 s I/O timeouts first).
    let (mut server, config, _dir) = start_generated(
        "tls_stall",
        &["--procs", "1", "--handshake-timeout-ms", "30000"],
    );
    let addr = server.addr;
    let mut stalled = std_connect(addr);
    stalled
        .write_all(&partial_client_hello(&config, 40))
        .expect("half a ClientHello");
    let failures = weft::run(move || {
        run_clients(20, move |c| {
            session(weft_connect(addr)?, &config, c, &[10, 1000])
        })
    });
    server.assert_no_failures(&failures);
    // The stalled client is still connected: nothing answered it, nothing closed it, so the
    // others were served while it stalled.
    stalled.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 1];
    match stalled.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => server.fail(&format!(
            "the stalled client was answered or closed before its deadline: {other:?}"
        )),
    }
}

#[test]
fn stalled_and_trickling_handshakes_are_dropped_at_the_deadline() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let _dog = watchdog(
        "stalled_and_trickling_handshakes_are_dropped_at_the_deadline",
        TEST_LIMIT,
    );
    let (server, config, _dir) =
        start_generated("tls_deadline", &["--handshake-timeout-ms", "300"]);
    let addr = server.addr;
    let hello = partial_client_hello(&config, 100);
    // Silent: connects and sends nothing.
    let silent = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut s = std_connect(addr);
        let mut buf = [0u8; 64];
        let end = s.read(&mut buf);
        (t0.elapsed(), end.map_err(|e| e.kind()), true)
    });
    // Trickling: one byte of a ClientHello every 50 ms (100 bytes: 5 s), never enough to
    // finish. It must be cut off while still trickling: a write fails.
    let trickle = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut s = std_connect(addr);
        let mut cut_off = false;
        for b in &hello {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                cut_off = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50)); // pacing, not synchronisation
        }
        let _ = s.shutdown(Shutdown::Write);
        let mut buf = [0u8; 64];
        let end = s.read(&mut buf);
        (t0.elapsed(), end.map_err(|e| e.kind()), cut_off)
    });
    for (what, h) in [("silent", silent), ("trickling", trickle)] {
        let (took, end, cut_off) = h.join().expect("client thread");
        assert!(
            cut_off,
            "{what} client: sent its whole partial ClientHello in {took:?} without being dropped"
        );
        // The server closes (EOF), or resets when our unread bytes were still queued.
        let closed = matches!(end, Ok(0) | Err(ErrorKind::ConnectionReset));
        assert!(
            closed,
            "{what} client: the connection ended with {end:?} after {took:?}"
        );
        // Exact: `t0` is taken before connecting, so the server's deadline starts after it.
        assert!(
            took >= TIMEOUT,
            "{what} client dropped after {took:?}, before the deadline"
        );
        // A hang guard only: the cut-off above is what says the deadline, not EOF, ended it.
        assert!(
            took < TIMEOUT + GENEROUS,
            "{what} client dropped only after {took:?}"
        );
    }
    // The server goes on.
    let res = weft::run(move || session(weft_connect(addr)?, &config, 0, &[5]));
    assert!(
        res.is_ok(),
        "{res:?}\n--- server stderr ---\n{}",
        server.stderr_text()
    );
}

#[test]
fn untrusted_client_and_plain_text_are_refused_server_goes_on() {
    let _dog = watchdog(
        "untrusted_client_and_plain_text_are_refused_server_goes_on",
        TEST_LIMIT,
    );
    let (server, config, dir) = start_generated("tls_refuse", &[]);
    let addr = server.addr;
    // A client trusting some other certificate.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    std::fs::write(dir.path("other.pem"), other.cert.pem()).expect("write");
    let wrong = client_config(&dir.path("other.pem"), None);
    let err = handshake(std_connect(addr), &wrong).expect_err("the handshake must fail");
    let text = err.to_string();
    // (`BadSignature` rather than `UnknownIssuer`: rcgen gives both certificates one subject.)
    assert!(
        text.contains("invalid peer certificate"),
        "untrusted certificate: {text}"
    );
    // Plain text where a ClientHello should be: an alert or a close, never a hang.
    let mut plain = std_connect(addr);
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let end = plain.read_to_end(&mut got);
    assert!(
        end.is_ok() || matches!(&end, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "plain text: {end:?}"
    );
    assert!(
        got.len() < 64,
        "plain text got {} bytes back (an alert is 7)",
        got.len()
    );
    // A good client right after.
    let res = weft::run(move || session(weft_connect(addr)?, &config, 0, &[5, 5000]));
    assert!(
        res.is_ok(),
        "{res:?}\n--- server stderr ---\n{}",
        server.stderr_text()
    );
    // Each refusal costs at most one line on stderr.
    let log = server.stderr_text();
    assert!(log.lines().count() <= 2, "server stderr:\n{log}");
}

#[test]
fn a_client_that_does_not_read_stalls_only_itself() {
    const FLOOD: usize = 64 << 20;
    /// The most the server's peak resident memory may grow during the flood, in KiB: far below
    /// what the flooder gets into the connection before its writes block (several MiB of socket
    /// buffers), let alone the 64 MiB it tries to send.
    const MAX_GROWTH_KIB: u64 = 4 << 10;
    let _dog = watchdog("a_client_that_does_not_read_stalls_only_itself", TEST_LIMIT);
    let (mut server, config, _dir) = start_generated("tls_flood", &["--procs", "1"]);
    let addr = server.addr;
    let base_kib = server.reset_peak_rss();
    let res = weft::run(move || -> Result<usize, String> {
        // The flooder writes until its writes block for good: the server echoes until its own
        // socket buffer fills, then its G parks; it reads no more, so ours fill up too.
        let flooder = {
            let config = config.clone();
            weft::go!(move || -> Result<_, String> {
                let sock = weft_connect(addr)?;
                sock.set_write_timeout(Some(Duration::from_millis(500)))
                    .map_err(|e| e.to_string())?;
                let mut tls =
                    handshake(sock, &config).map_err(|e| format!("flooder handshake: {e}"))?;
                let chunk = vec![7u8; 16 * 1024];
                let mut sent = 0;
                while sent < FLOOD {
                    match tls.write_all(&chunk).and_then(|()| tls.flush()) {
                        Ok(()) => sent += chunk.len(),
                        Err(e) if e.kind() == ErrorKind::TimedOut => break,
                        Err(e) => return Err(format!("flooder: {e}")),
                    }
                }
                // The session stays open (and the server's G parked on it) until the caller has
                // looked at the server's memory.
                Ok((sent, tls))
            })
        };
        // Meanwhile another client is served normally, on the same single P.
        let sock = weft_connect(addr)?;
        session(sock, &config, 1, &[100; 50])?;
        let (sent, tls) = flooder
            .join()
            .map_err(|p| format!("flooder panicked: {}", common::example::panic_message(&*p)))??;
        drop(tls);
        Ok(sent)
    });
    let sent = res.unwrap_or_else(|e| server.fail(&e));
    let growth_kib = server.peak_rss_kib().saturating_sub(base_kib);
    common::note(format_args!(
        "flooder sent {} KiB before blocking; server peak RSS +{growth_kib} KiB over {base_kib} KiB",
        sent >> 10
    ));
    if sent >= FLOOD {
        server.fail(&format!(
            "the flooder wrote all {FLOOD} bytes without reading: the server buffered them"
        ));
    }
    if growth_kib >= MAX_GROWTH_KIB {
        server.fail(&format!(
            "the server's peak RSS grew by {growth_kib} KiB while a client sent {} KiB without \
             reading: it buffers instead of pushing back",
            sent >> 10
        ));
    }
}

/// `--idle-timeout-ms` covers writes: a client that sends and never reads leaves the server's G
/// parked writing the echo; after the idle timeout that write fails and the connection is
/// closed (its fd freed) while the client still holds its end open.
#[test]
fn a_client_that_never_reads_is_dropped_after_the_idle_timeout() {
    let _dog = watchdog(
        "a_client_that_never_reads_is_dropped_after_the_idle_timeout",
        TEST_LIMIT,
    );
    let (mut server, config, _dir) =
        start_generated("tls_idle_write", &["--idle-timeout-ms", "500"]);
    let addr = server.addr;
    let idle = server.fd_count();
    let (sent, tls) = weft::run(move || -> Result<_, String> {
        let sock = weft_connect(addr)?;
        sock.set_write_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| e.to_string())?;
        let mut tls = handshake(sock, &config).map_err(|e| format!("handshake: {e}"))?;
        let chunk = vec![9u8; 16 * 1024];
        let mut sent = 0usize;
        // Until our writes block: the server's G is then parked writing its echo to us.
        loop {
            match tls.write_all(&chunk).and_then(|()| tls.flush()) {
                Ok(()) => sent += chunk.len(),
                Err(e) if e.kind() == ErrorKind::TimedOut => return Ok((sent, tls)),
                Err(e) => return Err(format!("write after {sent} bytes: {e}")),
            }
        }
    })
    .unwrap_or_else(|e| server.fail(&e));
    // Our end stays open and unread; only the server's write timeout can free its fd.
    server.wait_fds_at_most(idle, SETTLE);
    drop(tls);
    common::note(format_args!(
        "sent {} KiB without reading; the server closed the connection after its idle timeout",
        sent >> 10
    ));
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    let _dog = watchdog("bad_flags_exit_2_with_a_message", TEST_LIMIT);
    let flags = [
        "--addr",
        "--procs",
        "--cert",
        "--key",
        "--cert-out",
        "--handshake-timeout-ms",
        "--idle-timeout-ms",
    ];
    let bad: [(&[&str], &str); 5] = [
        (
            &["--cert", "/nonexistent/cert.pem"],
            "--cert and --key go together",
        ),
        (
            &[
                "--cert",
                "/nonexistent/c.pem",
                "--key",
                "/nonexistent/k.pem",
            ],
            "/nonexistent/c.pem",
        ),
        (&["--bogus"], "--bogus"),
        (&["--handshake-timeout-ms", "soon"], "soon"),
        (&["--idle-timeout-ms", "864000000"], "one day"),
    ];
    let args: Vec<&[&str]> = bad.iter().map(|(a, _)| *a).collect();
    let errors = check_command_line("tls_echo", &flags, &args);
    for ((args, want), err) in bad.iter().zip(errors) {
        assert!(
            err.contains(want),
            "{args:?}: stderr does not name {want:?}: {err}"
        );
    }
}
