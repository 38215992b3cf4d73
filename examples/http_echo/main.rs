//! An HTTP/1.1 echo server on weft: one G (goroutine) per connection, written as plain blocking
//! code, as one would in Go.
//!
//! ```text
//! cargo run --release --example http_echo -- --addr 127.0.0.1:8080
//! curl -s localhost:8080/                      # Hello, World!
//! curl -s --data-binary @Cargo.toml localhost:8080/   # the file, echoed
//! ```
//!
//! What it answers: a request with a body (`Content-Length` or `Transfer-Encoding: chunked`) gets
//! its body back with its `Content-Type`; one without gets `Hello, World!`; `HEAD` the headers
//! only. Keep-alive, pipelining and `Expect: 100-continue` work as RFC 9112 says; bad input gets
//! a 4xx/5xx status and the connection closed (see `http.rs` for the list).
//!
//! How it is built (read in this order):
//! - this file: flags, the accept loop (a G per connection), SIGINT/SIGTERM → graceful shutdown;
//! - `conn.rs`: one connection's request loop, buffering, timeouts (socket deadlines);
//! - `http.rs`: request-head checks (parsing is `httparse`'s) and response writing.
//!
//! Flags: `--addr HOST:PORT` (default 127.0.0.1:8080), `--procs N` (Ps; default: CPUs),
//! `--max-body BYTES` (8 MiB), `--header-timeout-ms` (10 000: slowloris guard),
//! `--idle-timeout-ms` (60 000: idle keep-alive connections, stalled bodies and clients that stop
//! reading), `--grace-ms` (5 000: how long a shutdown waits for requests in flight), `--quiet`
//! (no log lines on stderr). It prints one line with the bound address when it is ready.

mod conn;
mod http;

use std::fmt;
use std::io::{self, Read};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;
use weft::chan;
use weft::net::{TcpListener, TcpStream, UnixStream};
use weft::sync::Mutex;

/// Command-line settings.
pub struct Settings {
    addr: String,
    procs: Option<usize>,
    pub max_body: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    grace: Duration,
    quiet: bool,
}

fn parse_args() -> Result<Settings, lexopt::Error> {
    use lexopt::prelude::*;
    let mut s = Settings {
        addr: "127.0.0.1:8080".into(),
        procs: None,
        max_body: 8 << 20,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        grace: Duration::from_secs(5),
        quiet: false,
    };
    let mut parser = lexopt::Parser::from_env();
    // The value of flag `--name`: a number of at least `min`.
    let number = |parser: &mut lexopt::Parser, name: &str, min: u64| {
        let n: u64 = parser.value()?.parse()?;
        if n < min {
            return Err(lexopt::Error::from(format!(
                "--{name}: expected a number ≥ {min}, got {n}"
            )));
        }
        Ok(n)
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => s.addr = parser.value()?.string()?,
            Long("procs") => s.procs = Some(number(&mut parser, "procs", 1)? as usize),
            Long("max-body") => s.max_body = number(&mut parser, "max-body", 0)?,
            Long("header-timeout-ms") => {
                s.header_timeout =
                    Duration::from_millis(number(&mut parser, "header-timeout-ms", 1)?)
            }
            Long("idle-timeout-ms") => {
                s.idle_timeout = Duration::from_millis(number(&mut parser, "idle-timeout-ms", 1)?)
            }
            Long("grace-ms") => {
                s.grace = Duration::from_millis(number(&mut parser, "grace-ms", 0)?)
            }
            Long("quiet") => s.quiet = true,
            Short('h') | Long("help") => {
                println!(
                    "usage: http_echo [--addr HOST:PORT] [--procs N] [--max-body BYTES] \
                     [--header-timeout-ms MS] [--idle-timeout-ms MS] [--grace-ms MS] [--quiet]"
                );
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(s)
}

/// What every connection's G shares: the settings, the shutdown flag and the registry of open
/// connections (so that a shutdown can close the idle ones).
pub struct Server {
    pub settings: Settings,
    stopping: AtomicBool,
    conns: Mutex<Slab<Arc<Tracked>>>,
}

impl Server {
    pub fn shutting_down(&self) -> bool {
        self.stopping.load(SeqCst)
    }

    /// A line on stderr, unless `--quiet`. Through `weft::blocking`: a slow or full stderr pipe
    /// blocks the thread, and the P must not wait with it (docs/USER_RULES.md).
    pub fn log(&self, args: fmt::Arguments<'_>) {
        if !self.settings.quiet {
            weft::blocking(|| eprintln!("http_echo: {args}"));
        }
    }

    /// Go's `Server.Shutdown`: stop accepting (closing the listener wakes the accept loop),
    /// then close every idle connection. Busy ones finish their request, answer it with
    /// `Connection: close` and exit by themselves.
    fn shutdown(&self, listener: &TcpListener) {
        self.stopping.store(true, SeqCst);
        let _ = listener.close();
        let conns = self.conns.lock();
        for (_, t) in conns.iter() {
            if t.state
                .compare_exchange(IDLE, CLOSING, SeqCst, SeqCst)
                .is_ok()
            {
                // A deadline in the past wakes the G parked in `read` with `TimedOut`.
                let _ = t.stream.set_read_deadline(Some(Instant::now()));
            }
        }
    }
}

const ACTIVE: u8 = 0;
const IDLE: u8 = 1;
const CLOSING: u8 = 2;

/// A connection as the server sees it: its socket and whether it is between requests.
///
/// Shutdown protocol (Dekker-style, all `SeqCst`): the connection's G stores `IDLE` and then
/// checks the server's flag; `shutdown` sets the flag and then looks for `IDLE` connections.
/// So either the G sees the flag and closes, or `shutdown` sees `IDLE`, claims the connection
/// (`IDLE` → `CLOSING`) and wakes it. A G whose read returns finds `CLOSING` when it lost the
/// race, and closes without answering (like Go's, a request arriving at that instant is lost;
/// HTTP clients retry those on a new connection).
pub struct Tracked {
    pub stream: TcpStream,
    state: AtomicU8,
}

impl Tracked {
    /// Mark the connection idle; `false` if the server is shutting down (close now).
    pub fn go_idle(&self, srv: &Server) -> bool {
        self.state.store(IDLE, SeqCst);
        !srv.shutting_down()
    }

    /// Back from idle with a request; `false` if a shutdown closed the connection meanwhile.
    pub fn go_active(&self) -> bool {
        self.state
            .compare_exchange(IDLE, ACTIVE, SeqCst, SeqCst)
            .is_ok()
    }
}

/// Removes a connection from the registry when its G ends, however it ends.
struct Registered<'a> {
    srv: &'a Server,
    key: usize,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.srv.conns.lock().remove(self.key);
    }
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("http_echo: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = settings.procs {
        if let Err(e) = weft::Config::new().max_procs(n).apply() {
            eprintln!("http_echo: --procs {n}: {e}");
            return ExitCode::from(2);
        }
    }
    weft::run(move || serve(settings))
}

fn serve(settings: Settings) -> ExitCode {
    let listener = match TcpListener::bind(&settings.addr) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("http_echo: cannot listen on {}: {e}", settings.addr);
            return ExitCode::FAILURE;
        }
    };
    let srv = Arc::new(Server {
        settings,
        stopping: AtomicBool::new(false),
        conns: Mutex::new(Slab::new()),
    });
    if let Err(e) = watch_signals(srv.clone(), listener.clone()) {
        eprintln!("http_echo: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("http_echo listening on http://{addr}");

    // Every connection's G holds a clone of `alive`; when all are dropped, `recv` on `drained`
    // reports the channel closed: the shutdown's "all connections finished".
    let (alive, drained) = chan::bounded::<()>(1);
    accept_loop(&srv, &listener, &alive);
    drop(alive);

    let open = srv.conns.lock().len();
    srv.log(format_args!(
        "shutting down: waiting up to {:?} for {open} connection(s)",
        srv.settings.grace
    ));
    match drained.recv_deadline(Instant::now() + srv.settings.grace) {
        Err(chan::RecvTimeoutError::Timeout) => srv.log(format_args!(
            "grace period over: closing {} connection(s) still busy",
            srv.conns.lock().len()
        )),
        _ => srv.log(format_args!("all connections finished")),
    }
    ExitCode::SUCCESS
}

/// Accept until the listener is closed (by a shutdown), one G per connection.
fn accept_loop(srv: &Arc<Server>, listener: &TcpListener, alive: &chan::Sender<()>) {
    let mut backoff = Duration::ZERO;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(e) if weft::net::is_closed(&e) || srv.shutting_down() => return,
            Err(e) => {
                // Out of fds or memory: the pending connection stays in the backlog; retry
                // later rather than spin (Go's net/http backs off 5 ms → 1 s the same way).
                // The connections we have keep being served meanwhile.
                let out_of_resources = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if out_of_resources {
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    srv.log(format_args!("accept: {e}; retrying in {backoff:?}"));
                    weft::sleep(backoff);
                } else {
                    srv.log(format_args!("accept: {e}"));
                }
                continue;
            }
        };
        backoff = Duration::ZERO;
        let _ = stream.set_nodelay(true);
        let tracked = Arc::new(Tracked {
            stream,
            state: AtomicU8::new(ACTIVE),
        });
        let key = srv.conns.lock().insert(tracked.clone());
        let g_srv = srv.clone();
        let alive = alive.clone();
        let spawned = weft::Builder::new().spawn(move || {
            let srv = g_srv;
            let _registered = Registered { srv: &srv, key };
            if let Err(e) = conn::serve(&srv, &tracked) {
                if !is_disconnect(&e) {
                    srv.log(format_args!("connection: {e}"));
                }
            }
            drop(alive);
        });
        if let Err(e) = spawned {
            // Out of stacks (the kernel's map count) or memory: refuse this connection (it is
            // closed as the closure drops), keep the others, and back off as for EMFILE.
            srv.conns.lock().remove(key);
            backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
            srv.log(format_args!(
                "cannot start a G: {e}; retrying in {backoff:?}"
            ));
            weft::sleep(backoff);
        }
    }
}

/// Errors that only mean the client went away.
fn is_disconnect(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
    )
}

/// SIGINT/SIGTERM start a graceful shutdown; a second one exits at once. The signal handler
/// only writes a byte to a socket pair (signal-hook's self-pipe); a G reads it like any
/// socket, so no thread is needed and nothing runs inside the handler.
fn watch_signals(srv: Arc<Server>, listener: Arc<TcpListener>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
    signal_hook::low_level::pipe::register(SIGINT, tx.try_clone()?)?;
    signal_hook::low_level::pipe::register(SIGTERM, tx)?;
    let mut rx = UnixStream::from_std(rx)?;
    weft::go!(move || {
        // One byte per signal; both may be there at once.
        let mut buf = [0u8; 16];
        let mut seen = match rx.read(&mut buf) {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        srv.log(format_args!(
            "signal received: stopping (again to exit now)"
        ));
        srv.shutdown(&listener);
        if seen < 2 {
            seen += rx.read(&mut buf).unwrap_or(0);
        }
        if seen >= 2 {
            srv.log(format_args!("second signal: exiting now"));
            std::process::exit(1);
        }
    });
    Ok(())
}
