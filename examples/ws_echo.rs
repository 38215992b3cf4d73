//! A WebSocket echo server: the `tungstenite` crate's blocking API, unmodified, over weft sockets.
//!
//! ```text
//! cargo run --release --example ws_echo -- --addr 127.0.0.1:8081 --procs 2
//! ```
//!
//! What it shows: a synchronous library written for `std::net::TcpStream` (anything
//! `Read + Write`) runs as it is on a `weft::net::TcpStream`. tungstenite never learns that the
//! socket is non-blocking underneath: when it reads and nothing has arrived, weft parks the
//! connection's G and the netpoller wakes it, as a goroutine blocked in `conn.Read` would be. So
//! the server is Go's goroutine-per-connection shape: the accept loop spawns one G per connection
//! and each G runs plain straight-line code (handshake, then read a message, send it back, repeat).
//!
//! Design, per connection (one G each):
//!
//! * **Handshake** (`tungstenite::accept_hdr_with_config` on `&TcpStream`): the socket gets a
//!   deadline (Go's `SetDeadline`) of `--handshake-timeout-ms` for the whole HTTP upgrade, so a
//!   client that connects and never finishes its request is dropped then, with one log line;
//!   the deadline is cleared once the upgrade is done. tungstenite bounds the request head itself
//!   (64 KiB). A request it refuses (a plain `GET` without `Upgrade`, another method, a bad
//!   `Sec-WebSocket-Key`, garbage) gets an HTTP error response written by us, since tungstenite
//!   only returns the error: `426 Upgrade Required` (with `Upgrade: websocket` and
//!   `Sec-WebSocket-Version: 13`) for a request that is not a WebSocket upgrade or asks for
//!   another protocol version, `405` for a method other than `GET`, `400` for the rest.
//!   tungstenite gets `&TcpStream` rather than the stream itself, so the G still owns the socket
//!   after a failed handshake and can answer on it.
//! * **Echo**: `read` a message, `send` text and binary back unchanged (one write + flush each).
//!   tungstenite answers pings itself by queueing a pong; the server flushes it at once. Limits
//!   come from `WebSocketConfig`: `--max-message BYTES` (default 16 MiB) bounds a whole message
//!   (all its fragments) and, as no frame can be larger than its message, each frame.
//! * **Close**: on the client's Close frame, tungstenite queues the reply with the same code; the
//!   server flushes it and tungstenite reports `ConnectionClosed`, the close handshake is complete,
//!   and the G returns, closing the TCP connection first (RFC 6455 wants the server to).
//! * **Errors** close only their own connection, each with one line on stderr, and the right
//!   close code: a message over the limit 1009, invalid UTF-8 in a text message 1007, any other
//!   protocol violation (unmasked or reserved frames, a bad continuation, ...) 1002, an idle
//!   connection 1001. The server sends that Close frame, then half-closes its side and reads and
//!   discards what the client still sends (the rest of an oversized message, its Close reply) for
//!   at most 2 s ("lingering close"), so that closing the socket with unread data does not reset
//!   the connection and destroy the Close frame before the client reads it. A client that just
//!   disconnects (EOF or reset, with or without a Close) is no error and logs nothing.
//! * **Idle timeout** (`--idle-timeout-ms`, default 300000 = 5 minutes, 0 = none): after the
//!   handshake the socket gets std's per-operation read and write timeouts. A connection on which
//!   nothing arrives for that long, or whose client takes no bytes of an echo for that long, is
//!   closed with 1001 ("going away"). The server sends no pings of its own: a client that wants to
//!   stay connected while quiet sends pings, which count as traffic.
//!
//! Flags: `--addr HOST:PORT` (default 127.0.0.1:8081), `--procs N` (number of Ps, default: the
//! number of CPUs), `--max-message BYTES` (default 16777216), `--handshake-timeout-ms MS`
//! (default 10000), `--idle-timeout-ms MS` (default 300000, 0 = none), `--help`. A bad flag
//! exits with status 2, an address it cannot listen on with status 1. When ready it prints one
//! line on stdout: `ws_echo listening on ws://ADDR`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Error, HandshakeError, Message, WebSocket};
use weft::net::{TcpListener, TcpStream};

/// How long a failing connection may take to get its Close frame (or HTTP error) out and to let
/// the client finish sending before the socket is closed.
const LINGER: Duration = Duration::from_secs(2);

/// tungstenite's read chunk and initial read buffer. Its default (128 KiB) is zero-filled on every
/// socket read; 16 KiB keeps a quiet connection small and costs a few more reads for megabyte
/// messages.
const READ_BUFFER: usize = 16 << 10;

const USAGE: &str = "usage: ws_echo [--addr HOST:PORT] [--procs N] [--max-message BYTES]
               [--handshake-timeout-ms MS] [--idle-timeout-ms MS]

  --addr HOST:PORT           address to listen on (default 127.0.0.1:8081)
  --procs N                  number of Ps (default: number of CPUs)
  --max-message BYTES        largest message (and frame) accepted (default 16777216)
  --handshake-timeout-ms MS  time allowed for the HTTP upgrade (default 10000)
  --idle-timeout-ms MS       close a connection with no traffic for MS (default 300000, 0 = never)";

/// The command line.
struct Args {
    addr: String,
    procs: Option<usize>,
    settings: Settings,
}

/// What every connection's G needs to know (copied into each).
#[derive(Clone, Copy)]
struct Settings {
    ws: WebSocketConfig,
    handshake_timeout: Duration,
    idle_timeout: Option<Duration>,
}

/// Parse the flags with `lexopt`; an error is a message for stderr (exit status 2).
fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;

    let mut addr = "127.0.0.1:8081".to_string();
    let mut procs = None;
    let mut max_message: usize = 16 << 20;
    let mut handshake_ms: u64 = 10_000;
    let mut idle_ms: u64 = 300_000;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => addr = parser.value()?.string()?,
            Long("procs") => procs = Some(number(&mut parser, "--procs")?),
            Long("max-message") => max_message = number(&mut parser, "--max-message")?,
            Long("handshake-timeout-ms") => {
                handshake_ms = number(&mut parser, "--handshake-timeout-ms")?
            }
            Long("idle-timeout-ms") => idle_ms = number(&mut parser, "--idle-timeout-ms")?,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if max_message == 0 {
        return Err("--max-message must be at least 1".into());
    }
    if handshake_ms == 0 {
        return Err("--handshake-timeout-ms must be at least 1".into());
    }
    let ws = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    Ok(Args {
        addr,
        procs,
        settings: Settings {
            ws,
            handshake_timeout: Duration::from_millis(handshake_ms),
            idle_timeout: (idle_ms > 0).then(|| Duration::from_millis(idle_ms)),
        },
    })
}

/// The value of a numeric flag, with the flag's name in the error.
fn number<T>(parser: &mut lexopt::Parser, flag: &str) -> Result<T, lexopt::Error>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use lexopt::ValueExt;
    let v = parser.value()?.string()?;
    v.parse()
        .map_err(|e| format!("{flag}: not a valid number: {v:?} ({e})").into())
}

/// One connection, start to end: the handshake, then the echo loop; logs at most one line.
fn serve(stream: TcpStream, peer: SocketAddr, settings: Settings) {
    let Some(mut ws) = handshake(&stream, peer, &settings) else {
        return;
    };
    match echo(&mut ws) {
        // The close handshake is done (or the client hung up): dropping the socket ends it.
        Ok(()) => {}
        Err(e) => {
            let (code, why) = close_code(&e);
            let what = if code == CloseCode::Away {
                let ms = settings.idle_timeout.map_or(0, |d| d.as_millis());
                format!("idle timeout: no byte received or taken for {ms} ms")
            } else {
                e.to_string()
            };
            eprintln!("ws_echo: {peer}: {what}; closing with {}", u16::from(code));
            fail_close(&mut ws, &stream, code, why);
        }
    }
}

/// The HTTP upgrade under a deadline. On success the deadline is replaced by the idle timeout;
/// on failure the client gets an HTTP error response if its request was refused, the failure is
/// logged (one line) unless the client simply went away, and `None` is returned.
fn handshake<'a>(
    stream: &'a TcpStream,
    peer: SocketAddr,
    settings: &Settings,
) -> Option<WebSocket<&'a TcpStream>> {
    // A timeout too large for an `Instant` means no deadline.
    let deadline = Instant::now().checked_add(settings.handshake_timeout);
    if stream.set_deadline(deadline).is_err() {
        return None;
    }
    let err = match tungstenite::accept_hdr_with_config(stream, on_upgrade, Some(settings.ws)) {
        Ok(ws) => {
            let ok = stream.set_deadline(None).is_ok()
                && stream.set_read_timeout(settings.idle_timeout).is_ok()
                && stream.set_write_timeout(settings.idle_timeout).is_ok();
            return ok.then_some(ws);
        }
        Err(HandshakeError::Failure(e)) => e,
        // Only a non-blocking stream returns WouldBlock; weft's park instead.
        Err(HandshakeError::Interrupted(_)) => Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            "handshake interrupted",
        )),
    };
    match &err {
        Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
            eprintln!(
                "ws_echo: {peer}: no WebSocket handshake within {} ms; dropped",
                settings.handshake_timeout.as_millis()
            );
        }
        // Gone before finishing its request (a port probe, a reset): nothing to answer.
        Error::Io(_) | Error::Protocol(ProtocolError::HandshakeIncomplete) => {}
        _ => {
            let status = refuse(stream, &err);
            eprintln!("ws_echo: {peer}: handshake refused ({status}): {err}");
        }
    }
    None
}

/// tungstenite's handshake callback: it sees the upgrade request and may add headers to the 101
/// response (or refuse with an error response); we name ourselves. The error type is fixed by
/// tungstenite's `Callback` trait, hence the `allow`.
#[allow(clippy::result_large_err)]
fn on_upgrade(_req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    resp.headers_mut().insert(
        "server",
        tungstenite::http::HeaderValue::from_static("ws_echo (weft)"),
    );
    Ok(resp)
}

/// Answer a refused upgrade request with an HTTP error and close; returns the status line's code
/// and reason for the log.
fn refuse(stream: &TcpStream, err: &Error) -> &'static str {
    let (status, extra) = match err {
        Error::Protocol(
            ProtocolError::MissingConnectionUpgradeHeader
            | ProtocolError::MissingUpgradeWebSocketHeader
            | ProtocolError::MissingSecWebSocketVersionHeader,
        ) => (
            "426 Upgrade Required",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade, close\r\n",
        ),
        Error::Protocol(ProtocolError::WrongHttpMethod) => (
            "405 Method Not Allowed",
            "Allow: GET\r\nConnection: close\r\n",
        ),
        Error::Capacity(CapacityError::TooManyHeaders) | Error::AttackAttempt => (
            "431 Request Header Fields Too Large",
            "Connection: close\r\n",
        ),
        _ => ("400 Bad Request", "Connection: close\r\n"),
    };
    let body = format!("ws_echo: this is a WebSocket echo endpoint; {err}\n");
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.set_deadline(Some(Instant::now() + LINGER));
    let mut w = stream;
    if w.write_all(response.as_bytes()).is_ok() {
        linger(stream);
    }
    status
}

/// Echo messages until the close handshake completes (`Ok`) or something fails (`Err`, for
/// [`close_code`]). A client that disconnects without a Close frame is `Ok` too: nothing to
/// answer and nothing to log.
fn echo(ws: &mut WebSocket<&TcpStream>) -> Result<(), Error> {
    match echo_loop(ws) {
        Err(Error::ConnectionClosed)
        | Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => Ok(()),
        Err(Error::Io(e)) if is_disconnect(&e) => Ok(()),
        res => res,
    }
}

/// The loop of [`echo`]: ends only with an error (`ConnectionClosed` when all went well).
fn echo_loop(ws: &mut WebSocket<&TcpStream>) -> Result<(), Error> {
    loop {
        match ws.read()? {
            msg @ (Message::Text(_) | Message::Binary(_)) => ws.send(msg)?,
            // tungstenite queued the pong (a pong needs no answer); get it out now.
            Message::Ping(_) | Message::Pong(_) => ws.flush()?,
            // The reply (same code) is queued: flushing it completes the close handshake, and
            // tungstenite says so with `ConnectionClosed`.
            Message::Close(_) => ws.flush()?,
            // `read` assembles frames into messages and never returns a raw one.
            Message::Frame(_) => {}
        }
    }
}

/// Whether an I/O error only says that the client went away.
fn is_disconnect(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected
    )
}

/// The close code (RFC 6455 §7.4.1) and reason for a failed connection.
fn close_code(e: &Error) -> (CloseCode, &'static str) {
    match e {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            (CloseCode::Size, "message too big")
        }
        Error::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8 in a text message"),
        Error::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => (CloseCode::Away, "idle timeout"),
        _ => (CloseCode::Error, "internal error"),
    }
}

/// Send a Close frame with `code`, then close the connection without destroying that frame: see
/// [`linger`]. Bounded by [`LINGER`] in all.
fn fail_close(ws: &mut WebSocket<&TcpStream>, stream: &TcpStream, code: CloseCode, why: &str) {
    let _ = stream.set_deadline(Some(Instant::now() + LINGER));
    let frame = CloseFrame {
        code,
        reason: why.into(),
    };
    // After a read error tungstenite is still `Active`: this queues and flushes our Close.
    if ws.close(Some(frame)).is_ok() {
        linger(stream);
    }
}

/// Lingering close: half-close our side (the client sees our last bytes, then EOF), then read
/// and discard whatever the client still sends until it closes too or the deadline already set
/// on the socket passes. Closing a socket with unread data would send a reset instead of a FIN,
/// and a reset can make the client's kernel drop our last bytes before the client reads them.
fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut buf = vec![0u8; 16 << 10];
    let mut r = stream;
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ws_echo: {e} (try --help)");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = args.procs {
        if let Err(e) = weft::Config::new().max_procs(n).apply() {
            eprintln!("ws_echo: --procs {n}: {e}");
            return ExitCode::from(2);
        }
    }
    let settings = args.settings;
    weft::run(move || {
        let listener = match TcpListener::bind(&args.addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ws_echo: cannot listen on {}: {e}", args.addr);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().expect("listener address");
        println!("ws_echo listening on ws://{addr}");
        let mut failing = false;
        loop {
            match listener.accept() {
                Ok((conn, peer)) => {
                    failing = false;
                    let _ = conn.set_nodelay(true);
                    weft::go!(move || serve(conn, peer, settings));
                }
                Err(e) => {
                    // Out of fds (EMFILE/ENFILE) or similar: back off instead of spinning, and
                    // keep serving the connections we have; one line per run of failures.
                    if !failing {
                        eprintln!("ws_echo: accept: {e} (retrying every 10 ms)");
                        failing = true;
                    }
                    weft::sleep(Duration::from_millis(10));
                }
            }
        }
    })
}
