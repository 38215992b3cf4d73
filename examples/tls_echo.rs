//! A TLS echo server: `rustls`, unmodified, over weft sockets — one G per connection.
//!
//! ```text
//! cargo run --release --example tls_echo -- --cert-out /tmp/weft-echo.pem
//! openssl s_client -connect 127.0.0.1:8443 -CAfile /tmp/weft-echo.pem -quiet   # type lines
//! ```
//!
//! rustls is a *sync* library: its [`StreamOwned`] drives a TLS session over any `Read + Write`
//! transport with plain blocking calls. Handed a weft [`TcpStream`], those calls park the G
//! instead of blocking the thread, so the same code that would serve one client per OS thread
//! serves thousands of clients on a few threads — no async twin of the library is needed (tokio
//! needs `tokio-rustls`). This file contains no weft-specific TLS code at all: the only weft
//! calls are `TcpListener::accept`, `go!` and the socket's deadline.
//!
//! Per connection (one G, as Go's `tls.Server` + `go handle(conn)`):
//! 1. the whole TLS handshake runs under one deadline (`--handshake-timeout-ms`, Go's
//!    `SetDeadline` before `Handshake`), so a client that stalls or trickles its ClientHello is
//!    dropped when it expires; while it stalls, its G is parked and every other handshake goes on;
//! 2. then each record's plaintext is written back as it arrives, flushed to the socket (a client
//!    that does not read makes the G park on a full socket buffer: back-pressure, no unbounded
//!    buffering); an open connection may send nothing, or take no bytes of an echo, for
//!    `--idle-timeout-ms` (std's per-operation read and write timeouts), then it is closed;
//! 3. when the client sends `close_notify`, the server answers with its own and closes.
//!
//! The certificate: `--cert FILE --key FILE` (PEM: a chain, then a PKCS#8, PKCS#1 or SEC1 key),
//! or else a self-signed one made at start with `rcgen` for `localhost`, `127.0.0.1` and `::1`;
//! `--cert-out FILE` writes that certificate (PEM) so that clients can trust it. TLS 1.3 and 1.2
//! are offered (rustls's defaults, on the `ring` crypto provider).
//!
//! Flags: `--addr HOST:PORT` (default 127.0.0.1:8443), `--procs N`, `--cert FILE`, `--key FILE`,
//! `--cert-out FILE`, `--handshake-timeout-ms MS` (default 10 000), `--idle-timeout-ms MS`
//! (default 300 000). Prints one line, `tls_echo listening on ADDR ...`, when it is ready. A
//! connection that fails (handshake refused by the client, bad record, timeout) costs one line on
//! stderr; the server goes on.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use weft::net::{TcpListener, TcpStream};

/// The command line.
struct Args {
    addr: String,
    procs: Option<usize>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    cert_out: Option<PathBuf>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
}

/// The longest timeout a flag may ask for (a deadline must stay within `Instant`'s range).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

const USAGE: &str = "usage: tls_echo [--addr HOST:PORT] [--procs N] [--cert FILE --key FILE] \
                     [--cert-out FILE] [--handshake-timeout-ms MS] [--idle-timeout-ms MS]";

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        addr: "127.0.0.1:8443".into(),
        procs: None,
        cert: None,
        key: None,
        cert_out: None,
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(300),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => args.addr = parser.value()?.string()?,
            Long("procs") => args.procs = Some(parser.value()?.parse()?),
            Long("cert") => args.cert = Some(parser.value()?.into()),
            Long("key") => args.key = Some(parser.value()?.into()),
            Long("cert-out") => args.cert_out = Some(parser.value()?.into()),
            Long("handshake-timeout-ms") => {
                args.handshake_timeout = Duration::from_millis(parser.value()?.parse()?)
            }
            Long("idle-timeout-ms") => {
                args.idle_timeout = Duration::from_millis(parser.value()?.parse()?)
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if args.cert.is_some() != args.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    for (flag, t) in [
        ("--handshake-timeout-ms", args.handshake_timeout),
        ("--idle-timeout-ms", args.idle_timeout),
    ] {
        if t.is_zero() || t > MAX_TIMEOUT {
            return Err(format!("{flag}: from 1 ms to one day (86400000)").into());
        }
    }
    Ok(args)
}

/// The server's certificate chain and key: from `--cert`/`--key`, or self-signed now. Returns
/// the rustls configuration and a description for the start line.
fn server_config(args: &Args) -> Result<(Arc<ServerConfig>, String), String> {
    let (chain, key, what) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("--cert {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("--cert {}: no certificate in it", cert.display()));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("--key {}: {e}", key.display()))?;
            (chain, key, format!("certificate {}", cert.display()))
        }
        _ => {
            let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            let made = rcgen::generate_simple_self_signed(names)
                .map_err(|e| format!("making a self-signed certificate: {e}"))?;
            let mut what = "self-signed certificate for localhost, 127.0.0.1, ::1".to_string();
            if let Some(out) = &args.cert_out {
                std::fs::write(out, made.cert.pem())
                    .map_err(|e| format!("--cert-out {}: {e}", out.display()))?;
                what += &format!(", written to {}", out.display());
            }
            let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
            (vec![made.cert.der().clone()], key.into(), what)
        }
    };
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key do not make a TLS configuration: {e}"))?;
    Ok((Arc::new(config), what))
}

/// Serve one connection: handshake under a deadline, then echo until the client closes.
fn serve(conn: TcpStream, config: Arc<ServerConfig>, timeouts: Timeouts) -> io::Result<()> {
    conn.set_deadline(Some(Instant::now() + timeouts.handshake))?;
    let tls = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(tls, conn);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    tls.sock.set_deadline(None)?;
    // Idle: nothing arrives, or the client takes no bytes of an echo, for that long.
    tls.sock.set_read_timeout(Some(timeouts.idle))?;
    tls.sock.set_write_timeout(Some(timeouts.idle))?;

    // The largest TLS record's plaintext: one read returns at most what one record held.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tls.read(&mut buf) {
            Ok(0) => break, // close_notify received
            Ok(n) => n,
            // The client closed TCP without close_notify: rustls reports a possible truncation.
            // For an echo server nothing is lost: everything received was already echoed.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        tls.write_all(&buf[..n])?;
        tls.flush()?;
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// The two deadlines of a connection.
#[derive(Clone, Copy)]
struct Timeouts {
    handshake: Duration,
    idle: Duration,
}

/// Is this error an ordinary end of a connection (no log line)?
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tls_echo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = args.procs {
        if let Err(e) = weft::Config::new().max_procs(n).apply() {
            eprintln!("tls_echo: --procs {n}: {e}");
            return ExitCode::from(2);
        }
    }
    let (config, what) = match server_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tls_echo: {e}");
            return ExitCode::from(2);
        }
    };
    let timeouts = Timeouts {
        handshake: args.handshake_timeout,
        idle: args.idle_timeout,
    };
    weft::run(move || {
        let listener = match TcpListener::bind(&args.addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tls_echo: cannot listen on {}: {e}", args.addr);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().expect("listener address");
        println!("tls_echo listening on {addr} ({what})");
        let mut failing = false;
        loop {
            match listener.accept() {
                Ok((conn, peer)) => {
                    failing = false;
                    let _ = conn.set_nodelay(true);
                    let config = config.clone();
                    weft::go!(move || {
                        if let Err(e) = serve(conn, config, timeouts) {
                            if !is_disconnect(&e) {
                                eprintln!("tls_echo: {peer}: {e}");
                            }
                        }
                    });
                }
                Err(e) => {
                    // Out of fds (EMFILE/ENFILE) or similar: back off instead of spinning, and
                    // keep serving the connections we have; one line per run of failures.
                    if !failing {
                        eprintln!("tls_echo: accept: {e} (retrying every 10 ms)");
                        failing = true;
                    }
                    weft::sleep(Duration::from_millis(10));
                }
            }
        }
    })
}
