//! A TCP proxy, Go style: one G per direction of every connection, each a plain `io::copy`.
//!
//! ```text
//! cargo run --release --example tcp_echo                 # an upstream on 127.0.0.1:7000
//! cargo run --release --example proxy -- --addr 127.0.0.1:7002 --upstream 127.0.0.1:7000
//! nc 127.0.0.1 7002                                      # talk to tcp_echo through the proxy
//! ```
//!
//! This is the Go program
//!
//! ```go
//! for { c, _ := ln.Accept(); go func() { u, err := net.DialTimeout("tcp", upstream, t)
//!     go io.Copy(u, c); io.Copy(c, u) }() }
//! ```
//!
//! written with weft, plus what a real proxy needs around it:
//!
//! * **Dialing.** The accept loop (the main G) hands every client to a G of its own, which dials
//!   the upstream with `TcpStream::connect_timeout`. The upstream name is resolved per connection
//!   (so a DNS change or an upstream that starts later is picked up) by `weft::net::lookup_host`:
//!   an IP literal is parsed directly, a host name goes to `getaddrinfo` inside `weft::blocking`
//!   (it blocks an M, not the other Gs). Each resolved address is tried in turn within one
//!   connect budget. If the upstream refuses or does not answer in time, the client is reset at
//!   once and one line goes to stderr.
//! * **Copying.** Two Gs per connection share the two sockets through an `Arc`: the client's G
//!   copies upstream → client, a second G copies client → upstream, each with `std::io::copy`
//!   over `&TcpStream` (the reader and writer of one socket are different Gs; weft's sockets allow
//!   that). A copier parks whenever its source is empty or its destination full, so a slow
//!   reader on one connection holds only its own two Gs, and TCP flow control slows its sender.
//! * **Half-close.** When one direction reaches EOF, the proxy passes the FIN on
//!   (`shutdown(Shutdown::Write)` on the other socket, Go's `CloseWrite`) and the other direction
//!   goes on until it ends too. A client may send a request, half-close, and read the whole reply.
//! * **Errors.** An error in either direction (reset, broken pipe, idle timeout) aborts the
//!   connection: both sockets get `SO_LINGER 0` and `close()`, so both peers see a reset — never
//!   a clean EOF that would make a truncated stream look complete — and the other copier, parked
//!   on one of them, wakes with the closed error and ends. A write error counts too, although
//!   the other direction might still carry an answer: Linux reports a reset to one syscall
//!   only, so after a write has seen `ECONNRESET` a read of the same socket sees a clean EOF,
//!   and passing that on would make a truncated stream look complete. Only the first error is
//!   logged: one line per failed connection; a normal end (both directions at EOF) logs
//!   nothing.
//! * **Idle timeout.** With `--idle-timeout-ms MS` (default 300 000; 0 disables it) a connection on
//!   which no byte moved, in either direction, for MS is aborted. It uses weft's Go-style
//!   deadlines: each socket's read and write deadlines are set to "last activity + MS"; an op that
//!   times out looks at the connection's last activity (either direction) and re-arms its deadline
//!   if something moved meanwhile, so a busy connection pays one spurious wake-up per period and
//!   direction, not a timer update per read. A one-way stream (a download) is not idle.
//! * **Resources.** Per connection: two Gs, two fds, an 8 KiB `io::copy` buffer on each copier's
//!   stack. When both copiers have returned, the last `Arc` goes and both fds are closed; nothing
//!   outlives the connection. An accept error (out of fds) backs off 10 ms instead of spinning,
//!   logged once per run of errors; a G that cannot be spawned (stack budget spent) costs that one
//!   connection, not the server.
//!
//! Flags: `--addr HOST:PORT` (default 127.0.0.1:7002), `--upstream HOST:PORT` (default
//! 127.0.0.1:7000, where the `tcp_echo` example listens), `--connect-timeout-ms MS` (default
//! 5000), `--idle-timeout-ms MS` (default 300000, 0 = none), `--procs N` (number of Ps, default:
//! the number of CPUs), `--help`. Prints one line, `proxy listening on ADDR, upstream UPSTREAM`,
//! when it is ready. A bad flag exits with status 2, a bind failure with status 1.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: proxy [--addr HOST:PORT] [--upstream HOST:PORT] \
                     [--connect-timeout-ms MS] [--idle-timeout-ms MS] [--procs N]";

/// The command line.
struct Settings {
    addr: String,
    upstream: String,
    procs: Option<usize>,
    connect_timeout: Duration,
    /// `None`: connections may stay idle forever.
    idle_timeout: Option<Duration>,
}

/// Parse the flags (lexopt; `--flag value` and `--flag=value`).
fn parse_args() -> Result<Settings, String> {
    use lexopt::prelude::*;

    let mut s = Settings {
        addr: "127.0.0.1:7002".into(),
        upstream: "127.0.0.1:7000".into(),
        procs: None,
        connect_timeout: Duration::from_millis(5000),
        idle_timeout: Some(Duration::from_millis(300_000)),
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("addr") => s.addr = string(&mut p, "--addr")?,
            Long("upstream") => s.upstream = string(&mut p, "--upstream")?,
            Long("procs") => {
                s.procs = Some(number(&mut p, "--procs", 1, u32::MAX.into())? as usize)
            }
            Long("connect-timeout-ms") => {
                s.connect_timeout = Duration::from_millis(number(
                    &mut p,
                    "--connect-timeout-ms",
                    1,
                    MAX_TIMEOUT_MS,
                )?)
            }
            Long("idle-timeout-ms") => {
                let ms = number(&mut p, "--idle-timeout-ms", 0, MAX_TIMEOUT_MS)?;
                s.idle_timeout = (ms > 0).then(|| Duration::from_millis(ms));
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("{} (try --help)", arg.unexpected())),
        }
    }
    check_host_port(&s.upstream).map_err(|e| format!("--upstream {:?}: {e}", s.upstream))?;
    Ok(s)
}

/// The value of `flag` as UTF-8 text.
fn string(p: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    let v = p.value().map_err(|e| e.to_string())?;
    v.into_string()
        .map_err(|v| format!("{flag}: not valid UTF-8: {v:?}"))
}

/// The value of `flag` as a number from `min` to `max`.
fn number(p: &mut lexopt::Parser, flag: &str, min: u64, max: u64) -> Result<u64, String> {
    let v = string(p, flag)?;
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag}: expected a number from {min} to {max}, got {v:?}"
        )),
    }
}

/// The longest timeout a flag may ask for, in ms (one day: deadlines stay within `Instant`'s
/// range).
const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// `HOST:PORT` with a non-empty host and a numeric port (`[::1]:80` for IPv6).
fn check_host_port(s: &str) -> Result<(), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected HOST:PORT")?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    port.parse::<u16>()
        .map(drop)
        .map_err(|_| format!("bad port {port:?}"))
}

/// Connect to `upstream` within `timeout` (Go's `net.DialTimeout`): resolve it with
/// `weft::net::lookup_host` (an IP literal without a lookup, a name through `getaddrinfo` in
/// `weft::blocking`), then try each address in turn with what is left of the budget.
fn dial(upstream: &str, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = weft::net::lookup_host(upstream)?.collect();
    let mut last = None;
    for a in &addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(a, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(io::Error::new(e.kind(), format!("connect {a}: {e}"))),
        }
    }
    Err(last.unwrap_or_else(|| {
        if addrs.is_empty() {
            io::Error::new(io::ErrorKind::InvalidInput, "resolves to no address")
        } else {
            io::Error::new(io::ErrorKind::TimedOut, "connect: timed out")
        }
    }))
}

/// Make the next close of `s` send a reset (RST) instead of a FIN.
fn set_reset_on_close(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// One direction of a connection.
#[derive(Clone, Copy)]
enum Dir {
    ToUpstream,
    ToClient,
}

/// One proxied connection, shared by its two copier Gs.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    peer: SocketAddr,
    idle: Option<Duration>,
    born: Instant,
    /// When a byte last moved, in either direction: nanoseconds since `born`.
    last_active: AtomicU64,
    /// Set by the first error; the connection is being (or has been) torn down.
    aborted: AtomicBool,
}

impl Conn {
    /// Pair the two sockets; arm the idle deadlines.
    fn new(
        client: TcpStream,
        upstream: TcpStream,
        peer: SocketAddr,
        idle: Option<Duration>,
    ) -> Conn {
        let born = Instant::now();
        if let Some(idle) = idle {
            for s in [&client, &upstream] {
                let _ = s.set_deadline(Some(born + idle));
            }
        }
        Conn {
            client,
            upstream,
            peer,
            idle,
            born,
            last_active: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
        }
    }

    /// Copy one direction until EOF (then pass the half-close on) or an error (then abort the
    /// whole connection). Go: `io.Copy(dst, src)` followed by `dst.CloseWrite()`.
    fn pipe(&self, dir: Dir) {
        let (src, dst, src_name, dst_name) = match dir {
            Dir::ToUpstream => (&self.client, &self.upstream, "client", "upstream"),
            Dir::ToClient => (&self.upstream, &self.client, "upstream", "client"),
        };
        let mut from = Half {
            conn: self,
            sock: src,
            name: src_name,
        };
        let mut to = Half {
            conn: self,
            sock: dst,
            name: dst_name,
        };
        match io::copy(&mut from, &mut to) {
            // The peer of `dst` sees EOF and may still send in the other direction. If `dst` is
            // gone already, the other copier finds out by itself.
            Ok(_) => drop(dst.shutdown(Shutdown::Write)),
            Err(e) => self.abort(&e),
        }
    }

    /// Tear the connection down after an error: both peers get a reset, both copiers wake (the
    /// one parked on a closed socket gets the closed error). Only the first caller logs.
    fn abort(&self, e: &io::Error) {
        if self.aborted.swap(true, Ordering::AcqRel) {
            return;
        }
        eprintln!("proxy: {}: {e}; connection reset", self.peer);
        for s in [&self.client, &self.upstream] {
            set_reset_on_close(s);
            let _ = s.close();
        }
    }

    /// Record that a byte moved now.
    fn touch(&self) {
        let now = self.born.elapsed().as_nanos() as u64;
        self.last_active.fetch_max(now, Ordering::Relaxed);
    }

    /// When the connection stops being idle-free: last activity + the idle timeout.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.born + Duration::from_nanos(self.last_active.load(Ordering::Relaxed)) + idle
    }

    /// Run one read or write `op` on `sock` under the idle rule: a deadline that passes while the
    /// other direction was active is moved on and the op retried; a real idle period ends it
    /// with `TimedOut`. Errors are labelled with the socket and the op.
    fn op<T>(
        &self,
        sock: &TcpStream,
        name: &str,
        write: bool,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op() {
                Ok(v) => {
                    if self.idle.is_some() {
                        self.touch();
                    }
                    return Ok(v);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let Some(idle) = self.idle else { return Err(e) };
                    let expires = self.idle_deadline(idle);
                    if Instant::now() >= expires {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("idle for {} ms", idle.as_millis()),
                        ));
                    }
                    if write {
                        sock.set_write_deadline(Some(expires))?;
                    } else {
                        sock.set_read_deadline(Some(expires))?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    let what = if write { "writing to" } else { "reading from" };
                    return Err(io::Error::new(e.kind(), format!("{what} {name}: {e}")));
                }
            }
        }
    }
}

/// One socket of a [`Conn`] as `io::copy` sees it: reads from it or writes to it under the idle
/// rule.
struct Half<'a> {
    conn: &'a Conn,
    sock: &'a TcpStream,
    name: &'static str,
}

impl Read for Half<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let sock = self.sock;
        self.conn.op(sock, self.name, false, || (&*sock).read(buf))
    }
}

impl Write for Half<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sock = self.sock;
        self.conn.op(sock, self.name, true, || (&*sock).write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serve one client: dial the upstream, then copy both ways (client → upstream in a second G,
/// upstream → client here) until both directions have ended.
fn serve(client: TcpStream, peer: SocketAddr, settings: &Settings) {
    let upstream = match dial(&settings.upstream, settings.connect_timeout) {
        Ok(u) => u,
        Err(e) => {
            eprintln!(
                "proxy: {peer}: upstream {}: {e}; connection reset",
                settings.upstream
            );
            set_reset_on_close(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let conn = Arc::new(Conn::new(client, upstream, peer, settings.idle_timeout));
    let forward = Arc::clone(&conn);
    let spawned = weft::Builder::new()
        .name(format!("proxy {peer} to upstream"))
        .spawn(move || forward.pipe(Dir::ToUpstream));
    match spawned {
        Ok(h) => {
            conn.pipe(Dir::ToClient);
            // The copier does not panic; if it did, its sockets are dropped with `conn` anyway.
            let _ = h.join();
        }
        Err(e) => conn.abort(&io::Error::new(e.kind(), format!("cannot start a G: {e}"))),
    }
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("proxy: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = settings.procs {
        if let Err(e) = weft::Config::new().max_procs(n).apply() {
            eprintln!("proxy: --procs {n}: {e}");
            return ExitCode::from(2);
        }
    }
    weft::run(move || {
        let listener = match TcpListener::bind(&settings.addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("proxy: cannot listen on {}: {e}", settings.addr);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().expect("listener address");
        println!("proxy listening on {addr}, upstream {}", settings.upstream);
        let settings = Arc::new(settings);
        let mut failing = false;
        loop {
            match listener.accept() {
                Ok((client, peer)) => {
                    failing = false;
                    let settings = Arc::clone(&settings);
                    let spawned = weft::Builder::new()
                        .name(format!("proxy {peer}"))
                        .spawn(move || serve(client, peer, &settings));
                    if let Err(e) = spawned {
                        // The client was dropped with the closure: it sees the connection end.
                        eprintln!("proxy: {peer}: cannot start a G: {e}");
                        weft::sleep(Duration::from_millis(10));
                    }
                }
                Err(e) => {
                    // Out of fds (EMFILE/ENFILE) or similar: back off instead of spinning, keep
                    // serving the connections we have, and say so once per run of errors.
                    if !failing {
                        eprintln!("proxy: accept: {e} (backing off)");
                        failing = true;
                    }
                    weft::sleep(Duration::from_millis(10));
                }
            }
        }
    })
}
