//! One connection, served by one G from its first request to its close: plain blocking code.
//! Each `read`/`write` that cannot go on parks this G in the socket's pollDesc; the runtime runs
//! other connections meanwhile, and the netpoller (or a deadline) wakes us.
//!
//! The loop: read a request head (idle timeout before its first byte, header timeout after),
//! read its body (whole, bounded by `--max-body`), append the response to the output buffer. The
//! output is written only when nothing more is buffered to answer — so pipelined requests are
//! answered in order with one `write` for the batch — or before we would wait for the client
//! (its next request, the rest of a body, after `100 Continue`).
//!
//! Deadlines are the socket's own (Go's `SetReadDeadline`), moved lazily: the idle and write
//! deadlines are re-armed only when the one in force is too close, so a busy connection touches
//! its timer about once per `slack` rather than on every request.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use weft::net::TcpStream;

use crate::http::{self, ConnectionHeader, Framing, Head, Reject, Status};
use crate::{Server, Tracked};

/// Initial read buffer; it grows (up to `MAX_READ_BUF`) only for heads that need it.
const READ_BUF: usize = 4 * 1024;
const MAX_READ_BUF: usize = 2 * http::MAX_HEAD;
/// Pipelined responses are written once this much is waiting, even if more requests are buffered.
const FLUSH_AT: usize = 64 * 1024;
/// Buffers grown past this by a large request are given back when the connection goes idle.
const KEEP_CAPACITY: usize = 16 * 1024;
/// Requests served back to back before the G yields its P.
const YIELD_EVERY: u32 = 64;
/// A body's buffer grows by at most this much per read.
const BODY_STEP: usize = 64 * 1024;
/// Bodies larger than this are written straight from the body buffer (no copy into `out`).
const COPY_BODY_MAX: usize = 16 * 1024;
/// After a final response we read (and drop) what the client still sends for at most this
/// long / this much, so that our close does not turn into a reset that destroys the response
/// before the client has read it (Go's `closeWriteAndWait`, Apache's lingering close).
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 1 << 20;

const HELLO: &[u8] = b"Hello, World!";

/// Why the request loop stopped.
enum Stop {
    /// Close quietly: the client closed, an idle timeout, server shutdown.
    Quiet,
    /// The request gets an error status, then the connection closes.
    Reject(Reject),
    /// The connection broke (reset, write timeout): nothing more can be sent.
    Broken(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Broken(e)
    }
}

impl From<Reject> for Stop {
    fn from(r: Reject) -> Stop {
        Stop::Reject(r)
    }
}

/// Where an echoed body is: still in the read buffer (`start..start+len`), or in `body`.
enum Body {
    Buffered(usize),
    Owned,
}

/// A deadline as this connection last set it on the socket.
#[derive(Default)]
struct Armed(Option<Instant>);

impl Armed {
    /// The deadline to set so that it falls within `[at, at + slack]`, or `None` if the one in
    /// force already does.
    fn update(&mut self, at: Instant, slack: Duration) -> Option<Instant> {
        match self.0 {
            Some(cur) if cur >= at && cur <= at + slack => None,
            _ => {
                self.0 = Some(at + slack);
                self.0
            }
        }
    }
}

struct Conn<'a> {
    sock: &'a TcpStream,
    srv: &'a Server,
    me: &'a Tracked,
    /// Read buffer; `rbuf[start..end]` is received and not yet consumed.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// Responses not yet written.
    out: Vec<u8>,
    /// The body being echoed, when it did not fit in the read buffer.
    body: Vec<u8>,
    /// The current request's Content-Type.
    ctype: Vec<u8>,
    date: http::DateCache,
    read_dl: Armed,
    write_dl: Armed,
}

/// Serve one connection until it closes. Returns the error that broke it, if any (a reset, a
/// timeout while writing); refused requests and clean closes are `Ok`.
pub fn serve(srv: &Server, me: &Tracked) -> io::Result<()> {
    let mut c = Conn {
        sock: &me.stream,
        srv,
        me,
        rbuf: vec![0; READ_BUF],
        start: 0,
        end: 0,
        out: Vec::with_capacity(1024),
        body: Vec::new(),
        ctype: Vec::new(),
        date: http::DateCache::new(),
        read_dl: Armed::default(),
        write_dl: Armed::default(),
    };
    match c.requests() {
        // A final response went out: let the client read it before we close.
        Ok(()) => {
            c.linger();
            Ok(())
        }
        // Nothing owed (the client closed, went idle too long, or the server is stopping).
        Err(Stop::Quiet) => Ok(()),
        Err(Stop::Reject(r)) => {
            srv.log(format_args!(
                "{}: {} ({})",
                c.peer(),
                String::from_utf8_lossy(r.status.line()),
                r.why
            ));
            c.refuse(r);
            Ok(())
        }
        Err(Stop::Broken(e)) => Err(e),
    }
}

impl Conn<'_> {
    /// The request loop. Returns `Ok` after a response that ends the connection.
    fn requests(&mut self) -> Result<(), Stop> {
        let mut served = 0u32;
        loop {
            let head = self.next_head()?;
            self.consume(head.len);
            // Decided once the body is in: a shutdown that starts while we read it still gets
            // this response out, with `Connection: close`.
            let keep_alive = |c: &Conn| head.keep_alive && !c.srv.shutting_down();
            let connection = |keep_alive| match (keep_alive, head.http10) {
                (false, _) => ConnectionHeader::Close,
                (true, true) => ConnectionHeader::KeepAlive,
                (true, false) => ConnectionHeader::None,
            };
            let keep = match head.framing {
                Framing::None => {
                    let keep = keep_alive(self);
                    let date = self.date.now();
                    http::write_head(
                        &mut self.out,
                        Status::Ok,
                        b"text/plain",
                        HELLO.len(),
                        connection(keep),
                        date,
                    );
                    if !head.is_head {
                        self.out.extend_from_slice(HELLO);
                    }
                    keep
                }
                Framing::Length(n) => {
                    if n > self.srv.settings.max_body {
                        return Err(http::reject(
                            Status::ContentTooLarge,
                            "body larger than --max-body",
                        )
                        .into());
                    }
                    let body = self.read_body(&head, n as usize)?;
                    let keep = keep_alive(self);
                    self.respond_echo(&head, connection(keep), body)?;
                    keep
                }
                Framing::Chunked => {
                    self.read_chunked(&head)?;
                    let keep = keep_alive(self);
                    self.respond_echo(&head, connection(keep), Body::Owned)?;
                    keep
                }
            };
            if !keep {
                self.flush()?;
                return Ok(());
            }
            if self.out.len() >= FLUSH_AT {
                self.flush()?;
            }
            // A client that keeps its requests coming never makes this G park (each read finds
            // data): let the P's other Gs run now and then, as a Go handler does at its I/O.
            served += 1;
            if served % YIELD_EVERY == 0 {
                self.flush()?;
                weft::yield_now();
            }
        }
    }

    /// Wait for and parse the next request head. Before its first byte the connection is idle
    /// (idle timeout, and fair game for a server shutdown); after it, the header timeout runs.
    fn next_head(&mut self) -> Result<Head, Stop> {
        if self.start == self.end {
            self.wait_idle()?;
        }
        let mut head_deadline = None;
        loop {
            let buffered = &self.rbuf[self.start..self.end];
            if let Some(head) = http::parse_head(buffered, &mut self.ctype)? {
                return Ok(head);
            }
            // Incomplete: answer what we owe before waiting on this client (it may be waiting
            // for those answers before it sends more).
            self.flush()?;
            let at = *head_deadline
                .get_or_insert_with(|| Instant::now() + self.srv.settings.header_timeout);
            self.arm_read(at, Duration::ZERO)?;
            match self.fill() {
                Ok(0) => return Err(Stop::Quiet), // the client gave up mid-head
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(http::reject(
                        Status::RequestTimeout,
                        "request head not received within the header timeout",
                    )
                    .into())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Between requests: write what is pending, then wait for the next request's first bytes,
    /// for at most the idle timeout. A server shutdown closes an idle connection (see
    /// `Tracked`), as Go's `Server.Shutdown` does.
    fn wait_idle(&mut self) -> Result<(), Stop> {
        self.start = 0;
        self.end = 0;
        let now = Instant::now();
        self.flush_at(now)?;
        self.trim_buffers();
        let idle = self.srv.settings.idle_timeout;
        self.arm_read(now + idle, slack(idle))?;
        if !self.me.go_idle(self.srv) {
            return Err(Stop::Quiet);
        }
        let r = self.fill();
        if !self.me.go_active() {
            return Err(Stop::Quiet); // closed by shutdown while idle
        }
        match r {
            Ok(0) => Err(Stop::Quiet),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::TimedOut => Err(Stop::Quiet),
            Err(e) => Err(e.into()),
        }
    }

    /// Read a `Content-Length` body of `n` bytes (already checked against the limit).
    fn read_body(&mut self, head: &Head, n: usize) -> Result<Body, Stop> {
        let buffered = self.end - self.start;
        if buffered >= n {
            return Ok(Body::Buffered(n));
        }
        self.send_continue(head)?;
        self.body.clear();
        self.body
            .extend_from_slice(&self.rbuf[self.start..self.end]);
        self.consume(buffered);
        // Grown as the bytes come, not to the announced length at once: a client that announces
        // 8 MiB and sends nothing must not cost 8 MiB.
        let mut have = buffered;
        while have < n {
            let room = (n - have).min(BODY_STEP);
            self.body.resize(have + room, 0);
            self.arm_body_read()?;
            match self.sock.read(&mut self.body[have..]) {
                Ok(0) => return Err(Stop::Quiet), // the client went away mid-body
                Ok(k) => have += k,
                Err(e) => return Err(body_read_error(e)),
            }
            self.body.truncate(have);
        }
        Ok(Body::Owned)
    }

    /// Read a chunked body into `body`, dropping chunk framing and trailers (RFC 9112 §7.1).
    fn read_chunked(&mut self, head: &Head) -> Result<(), Stop> {
        self.body.clear();
        let max = self.srv.settings.max_body;
        let mut sent_continue = false;
        loop {
            let size = match http::parse_chunk_line(&self.rbuf[self.start..self.end])? {
                http::ChunkLine::Size { len, size } => {
                    self.consume(len);
                    size
                }
                http::ChunkLine::Partial => {
                    if !sent_continue {
                        self.send_continue(head)?;
                        sent_continue = true;
                    }
                    self.fill_body()?;
                    continue;
                }
            };
            if size == 0 {
                break;
            }
            // `size` may be anything up to 2^64 - 1: compare without adding.
            if size > max - self.body.len() as u64 {
                return Err(http::reject(
                    Status::ContentTooLarge,
                    "chunked body larger than --max-body",
                )
                .into());
            }
            // The chunk's data, then its CRLF.
            let mut left = size as usize;
            while left > 0 {
                if self.start == self.end {
                    self.fill_body()?;
                }
                let take = left.min(self.end - self.start);
                self.body
                    .extend_from_slice(&self.rbuf[self.start..self.start + take]);
                self.consume(take);
                left -= take;
            }
            while self.end - self.start < 2 {
                self.fill_body()?;
            }
            if &self.rbuf[self.start..self.start + 2] != b"\r\n" {
                return Err(http::bad_chunk().into());
            }
            self.consume(2);
        }
        loop {
            if let Some(n) = http::parse_trailers(&self.rbuf[self.start..self.end])? {
                self.consume(n);
                return Ok(());
            }
            self.fill_body()?;
        }
    }

    /// `100 Continue` for a client that waits for it before sending its body (with whatever
    /// else we owe it first).
    fn send_continue(&mut self, head: &Head) -> Result<(), Stop> {
        if head.expect_continue {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        // Either way the client may be waiting for earlier answers before it sends the rest.
        self.flush()
    }

    fn respond_echo(
        &mut self,
        head: &Head,
        connection: ConnectionHeader,
        body: Body,
    ) -> Result<(), Stop> {
        let ctype: &[u8] = if self.ctype.is_empty() {
            b"application/octet-stream"
        } else {
            &self.ctype
        };
        let len = match body {
            Body::Buffered(n) => n,
            Body::Owned => self.body.len(),
        };
        http::write_head(
            &mut self.out,
            Status::Ok,
            ctype,
            len,
            connection,
            self.date.now(),
        );
        match body {
            Body::Buffered(n) => {
                if !head.is_head {
                    let data = &self.rbuf[self.start..self.start + n];
                    self.out.extend_from_slice(data);
                }
                self.consume(n);
            }
            Body::Owned if head.is_head => {}
            Body::Owned if len <= COPY_BODY_MAX => self.out.extend_from_slice(&self.body),
            Body::Owned => {
                // Large: one vectored write of the pending responses and this body.
                let body = std::mem::take(&mut self.body);
                let r = self.flush_with(&body);
                self.body = body;
                r?;
            }
        }
        Ok(())
    }

    /// Read more into the read buffer (making room first). `Ok(0)`: the client closed.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.rbuf.len() {
            if self.start > 0 {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.rbuf.len() < MAX_READ_BUF {
                self.rbuf.resize(MAX_READ_BUF, 0);
            } else {
                // parse_head refuses heads past MAX_HEAD, so this is unreachable in practice.
                return Err(io::Error::new(ErrorKind::OutOfMemory, "read buffer full"));
            }
        }
        let n = self.sock.read(&mut self.rbuf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// `fill` inside a body: the idle timeout bounds each wait, end of stream is an incomplete
    /// body.
    fn fill_body(&mut self) -> Result<(), Stop> {
        self.flush()?; // what we owe first: the client may wait for it
        self.arm_body_read()?;
        match self.fill() {
            Ok(0) => Err(Stop::Quiet),
            Ok(_) => Ok(()),
            Err(e) => Err(body_read_error(e)),
        }
    }

    fn arm_body_read(&mut self) -> io::Result<()> {
        let idle = self.srv.settings.idle_timeout;
        self.arm_read(Instant::now() + idle, slack(idle))
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
    }

    fn arm_read(&mut self, at: Instant, slack: Duration) -> io::Result<()> {
        match self.read_dl.update(at, slack) {
            Some(d) => self.sock.set_read_deadline(Some(d)),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.flush_at(Instant::now())
    }

    /// Write out every pending response. A client that stops reading is dropped after the idle
    /// timeout (write deadline).
    fn flush_at(&mut self, now: Instant) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.arm_write(now)?;
        let r = self.sock.write_all(&self.out);
        self.out.clear();
        Ok(r?)
    }

    /// `flush`, with `body` written after the pending output in the same `writev`s.
    fn flush_with(&mut self, body: &[u8]) -> Result<(), Stop> {
        self.arm_write(Instant::now())?;
        let mut bufs = [IoSlice::new(&self.out), IoSlice::new(body)];
        let mut bufs = &mut bufs[..];
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match self.sock.write_vectored(bufs) {
                Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero).into()),
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.out.clear();
        Ok(())
    }

    fn arm_write(&mut self, now: Instant) -> io::Result<()> {
        let idle = self.srv.settings.idle_timeout;
        match self.write_dl.update(now + idle, slack(idle)) {
            Some(d) => self.sock.set_write_deadline(Some(d)),
            None => Ok(()),
        }
    }

    /// Give back memory a large request made us take, so that 100 000 idle connections stay
    /// small (at most ~36 KiB each, typically the 4 KiB read buffer and 1 KiB for responses).
    fn trim_buffers(&mut self) {
        if self.body.capacity() > KEEP_CAPACITY {
            self.body = Vec::new();
        }
        if self.out.capacity() > KEEP_CAPACITY && self.out.is_empty() {
            self.out = Vec::with_capacity(1024);
        }
        if self.rbuf.len() > READ_BUF && self.end - self.start <= READ_BUF {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.rbuf.truncate(READ_BUF);
            self.rbuf.shrink_to_fit();
        }
    }

    /// Answer a refused request (after what we owe), then close.
    fn refuse(&mut self, r: Reject) {
        let why = r.why.as_bytes();
        let date = self.date.now();
        let mut msg = Vec::with_capacity(256);
        http::write_head(
            &mut msg,
            r.status,
            b"text/plain; charset=utf-8",
            why.len() + 1,
            ConnectionHeader::Close,
            date,
        );
        msg.extend_from_slice(why);
        msg.push(b'\n');
        self.out.extend_from_slice(&msg);
        if self.flush().is_ok() {
            self.linger();
        }
    }

    /// Close our side after the last response and drain what the client still sends, for a
    /// bounded time (see `LINGER`). The socket itself is closed when the G drops it.
    fn linger(&mut self) {
        if self.flush().is_err() || self.sock.shutdown(Shutdown::Write).is_err() {
            return;
        }
        if self
            .sock
            .set_read_deadline(Some(Instant::now() + LINGER))
            .is_err()
        {
            return;
        }
        let mut drained = 0;
        let mut scratch = [0u8; 4096];
        while drained < LINGER_BYTES {
            match self.sock.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }

    fn peer(&self) -> String {
        self.sock
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string())
    }
}

/// How much later than asked a lazily moved deadline may fire: 1/16 of the timeout, at most
/// a second.
fn slack(timeout: Duration) -> Duration {
    (timeout / 16).min(Duration::from_secs(1))
}

fn body_read_error(e: io::Error) -> Stop {
    if e.kind() == ErrorKind::TimedOut {
        http::reject(Status::RequestTimeout, "request body stalled").into()
    } else {
        e.into()
    }
}
