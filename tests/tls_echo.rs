//! Integration tests of the TLS echo server example, `examples/tls_echo.rs`: `rustls` over weft
//! sockets, unmodified, on both sides.
//!
//! Every test starts the example as a child process of its own (`common::example`) and talks to
//! it over loopback with rustls clients — in weft Gs (weft `TcpStream`) and on plain OS threads
//! (std `TcpStream`): the same client code, generic over `Read + Write`, runs on both.
//!
//! | test | what it proves |
//! |---|---|
//! | `rustls_client_in_a_g_round_trips` | a generated self-signed certificate (`--cert-out`) is trusted by a client in a G; TLS 1.3; 1 B to 256 KiB messages come back exactly; `close_notify` is answered by the server's own (clean EOF) |
//! | `std_client_on_a_thread_round_trips_with_cert_flags` | `--cert`/`--key` PEM files made by the test; a client on a plain thread with std sockets; TLS 1.2 as well as 1.3 |
//! | `two_hundred_concurrent_connections` | 200 TLS sessions open at once (a barrier holds them open), each with its own message sequence, all verified; the server's fds come back to idle afterwards |
//! | `stalled_handshake_does_not_block_others` | on **1 P**, a client that sends half a ClientHello and stops: 20 other handshakes and echoes complete while it stalls |
//! | `stalled_and_trickling_handshakes_are_dropped_at_the_deadline` | `--handshake-timeout-ms 300`: a silent client and one trickling a byte every 50 ms are both closed at the deadline (never before it), and the server goes on |
//! | `untrusted_client_and_plain_text_are_refused_server_goes_on` | a client that does not trust the certificate fails with "invalid peer certificate"; an HTTP request in plain text gets its connection ended; a good client is served right after |
//! | `a_client_that_does_not_read_stalls_only_itself` | one client writes up to 64 MiB without reading (the server's G parks on a full socket: back-pressure, no buffering) while another keeps round-tripping |
//! | `bad_flags_exit_2_with_a_message` | `--cert` without `--key`, a missing file, an unknown flag |
//!
//! Rules: every socket read has a timeout, every test a watchdog; no sleep is used as
//! synchronisation (sleeps only pace the trickling client).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};

mod common;
use common::example::{example_binary, Example, TempDir};
use common::watchdog;

/// Longest wait for any single read or write of a test client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a test may run before its watchdog aborts the process.
const TEST_LIMIT: Duration = Duration::from_secs(60);

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

/// Send `msg` and read its echo back, checking every byte.
fn round_trip<S: Read + Write>(
    tls: &mut StreamOwned<ClientConnection, S>,
    msg: &[u8],
) -> Result<(), String> {
    tls.write_all(msg)
        .map_err(|e| format!("write {} bytes: {e}", msg.len()))?;
    tls.flush().map_err(|e| format!("flush: {e}"))?;
    let mut back = vec![0u8; msg.len()];
    tls.read_exact(&mut back)
        .map_err(|e| format!("read the echo of {} bytes: {e}", msg.len()))?;
    if back != msg {
        let at = back.iter().zip(msg).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!("echo of {} bytes differs at byte {at}", msg.len()));
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
    let mut x = (c as u64) << 32 | i as u64 | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A weft TCP connection with the test's I/O timeouts.
fn weft_connect(addr: SocketAddr) -> io::Result<weft::net::TcpStream> {
    let s = weft::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// A std TCP connection with the test's I/O timeouts.
fn std_connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s
}

/// One session: handshake, `msgs` round trips of sizes from `sizes`, close.
fn session<S: Read + Write>(
    sock: S,
    config: &Arc<ClientConfig>,
    c: usize,
    sizes: &[usize],
) -> Result<(), String> {
    let mut tls = handshake(sock, config).map_err(|e| format!("client {c}: handshake: {e}"))?;
    for (i, &len) in sizes.iter().enumerate() {
        round_trip(&mut tls, &message(c, i, len)).map_err(|e| format!("client {c}: {e}"))?;
    }
    close(tls).map_err(|e| format!("client {c}: {e}"))
}

/// Poll (bounded) until the server's fd count is back to `idle`.
fn wait_for_idle_fds(server: &mut Example, idle: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.fd_count() > idle {
        if Instant::now() >= deadline {
            let now = server.fd_count();
            server.fail(&format!(
                "{now} fds open 10 s after every client left, {idle} when idle"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
        let sock = weft_connect(addr).map_err(|e| format!("connect: {e}"))?;
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
    let failures: Vec<String> = weft::run(move || {
        let all_open = Arc::new(weft::sync::Barrier::new(CONNS));
        let hs: Vec<_> = (0..CONNS)
            .map(|c| {
                let (config, all_open) = (config.clone(), all_open.clone());
                weft::go!(move || -> Result<(), String> {
                    let sock =
                        weft_connect(addr).map_err(|e| format!("client {c}: connect: {e}"))?;
                    let mut tls = handshake(sock, &config)
                        .map_err(|e| format!("client {c}: handshake: {e}"))?;
                    round_trip(&mut tls, &message(c, 0, 64))
                        .map_err(|e| format!("client {c}: {e}"))?;
                    // Every session is open and past its handshake at this point.
                    all_open.wait();
                    for i in 1..20 {
                        let len = 1 + (c * 131 + i * 977) % 8192;
                        round_trip(&mut tls, &message(c, i, len))
                            .map_err(|e| format!("client {c}: {e}"))?;
                    }
                    close(tls).map_err(|e| format!("client {c}: {e}"))
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().expect("client G panicked").err())
            .collect()
    });
    let took = t0.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {CONNS} sessions failed, first: {}\n--- server stderr ---\n{}",
        failures.len(),
        failures[0],
        server.stderr_text()
    );
    eprintln!("tls_echo: {CONNS} concurrent TLS sessions × 20 round trips in {took:?}");
    wait_for_idle_fds(&mut server, idle);
}

#[test]
fn stalled_handshake_does_not_block_others() {
    let _dog = watchdog("stalled_handshake_does_not_block_others", TEST_LIMIT);
    // One P: one OS thread runs every G, so a handshake that blocked its thread would block all.
    let (server, config, _dir) = start_generated("tls_stall", &["--procs", "1"]);
    let addr = server.addr;
    let mut stalled = std_connect(addr);
    stalled
        .write_all(&partial_client_hello(&config, 40))
        .expect("half a ClientHello");
    let t0 = Instant::now();
    let failures: Vec<String> = weft::run(move || {
        let hs: Vec<_> = (0..20)
            .map(|c| {
                let config = config.clone();
                weft::go!(move || {
                    let sock =
                        weft_connect(addr).map_err(|e| format!("client {c}: connect: {e}"))?;
                    session(sock, &config, c, &[10, 1000])
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().expect("client G panicked").err())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{failures:?}\n--- server stderr ---\n{}",
        server.stderr_text()
    );
    // The stalled client is still connected (its deadline is the default 10 s): nothing answered
    // it, nothing closed it.
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "the other sessions took {:?}",
        t0.elapsed()
    );
    stalled.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 1];
    match stalled.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the stalled client was answered or closed early: {other:?}"),
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
        (t0.elapsed(), end.map_err(|e| e.kind()))
    });
    // Trickling: one byte of a ClientHello every 50 ms, never enough to finish.
    let trickle = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut s = std_connect(addr);
        for b in &hello {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50)); // pacing, not synchronisation
            if t0.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        let _ = s.shutdown(Shutdown::Write);
        let mut buf = [0u8; 64];
        let end = s.read(&mut buf);
        (t0.elapsed(), end.map_err(|e| e.kind()))
    });
    for (what, h) in [("silent", silent), ("trickling", trickle)] {
        let (took, end) = h.join().expect("client thread");
        // The server closes (EOF), or resets when our unread bytes were still queued.
        let closed = matches!(end, Ok(0) | Err(ErrorKind::ConnectionReset));
        assert!(
            closed,
            "{what} client: the connection ended with {end:?} after {took:?}"
        );
        assert!(
            took >= TIMEOUT,
            "{what} client dropped after {took:?}, before the deadline"
        );
        assert!(
            took < Duration::from_secs(3),
            "{what} client dropped only after {took:?}"
        );
    }
    // The server goes on.
    let res = weft::run(move || {
        session(
            weft_connect(addr).map_err(|e| e.to_string())?,
            &config,
            0,
            &[5],
        )
    });
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
    let res = weft::run(move || {
        session(
            weft_connect(addr).map_err(|e| e.to_string())?,
            &config,
            0,
            &[5, 5000],
        )
    });
    assert!(res.is_ok(), "{res:?}");
    // Each refusal costs at most one line on stderr.
    let log = server.stderr_text();
    assert!(log.lines().count() <= 2, "server stderr:\n{log}");
}

#[test]
fn a_client_that_does_not_read_stalls_only_itself() {
    const FLOOD: usize = 64 << 20;
    let _dog = watchdog("a_client_that_does_not_read_stalls_only_itself", TEST_LIMIT);
    let (server, config, _dir) = start_generated("tls_flood", &["--procs", "1"]);
    let addr = server.addr;
    let res = weft::run(move || -> Result<usize, String> {
        // The flooder writes until its writes block for good: the server echoes until its own
        // socket buffer fills, then its G parks; it reads no more, so ours fill up too.
        let flooder = {
            let config = config.clone();
            weft::go!(move || -> Result<usize, String> {
                let sock = weft_connect(addr).map_err(|e| e.to_string())?;
                sock.set_write_timeout(Some(Duration::from_millis(500)))
                    .map_err(|e| e.to_string())?;
                let mut tls =
                    handshake(sock, &config).map_err(|e| format!("flooder handshake: {e}"))?;
                let chunk = vec![7u8; 16 * 1024];
                let mut sent = 0;
                while sent < FLOOD {
                    match tls.write_all(&chunk).and_then(|()| tls.flush()) {
                        Ok(()) => sent += chunk.len(),
                        Err(e) if e.kind() == ErrorKind::TimedOut => return Ok(sent),
                        Err(e) => return Err(format!("flooder: {e}")),
                    }
                }
                Ok(sent)
            })
        };
        // Meanwhile another client is served normally, on the same single P.
        let sock = weft_connect(addr).map_err(|e| e.to_string())?;
        session(sock, &config, 1, &[100; 50])?;
        flooder.join().expect("flooder panicked")
    });
    match res {
        Ok(sent) => assert!(
            sent < FLOOD,
            "the flooder wrote all {FLOOD} bytes without reading: the server buffered them"
        ),
        Err(e) => panic!("{e}\n--- server stderr ---\n{}", server.stderr_text()),
    }
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    let _dog = watchdog("bad_flags_exit_2_with_a_message", TEST_LIMIT);
    let bin = example_binary("tls_echo");
    for (args, want) in [
        (
            &["--cert", "/nonexistent/cert.pem"][..],
            "--cert and --key go together",
        ),
        (
            &[
                "--cert",
                "/nonexistent/c.pem",
                "--key",
                "/nonexistent/k.pem",
            ][..],
            "/nonexistent/c.pem",
        ),
        (&["--bogus"][..], "--bogus"),
        (&["--handshake-timeout-ms", "soon"][..], "soon"),
    ] {
        let out = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run tls_echo");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}; stderr: {err}",
            out.status
        );
        assert!(
            err.contains(want),
            "{args:?}: stderr does not name {want:?}: {err}"
        );
    }
}
