//! Integration tests of the HTTP/1.1 echo server example, `examples/http_echo`.
//!
//! Every test starts the example as a child process of its own (`--addr 127.0.0.1:0`; the port is
//! read from its one start line) and talks to it over real loopback sockets, so tests can run in
//! parallel with each other and with the rest of the suite. The binary is
//! `target/<profile>/examples/http_echo`, next to this test's own `deps/` directory; if it is
//! missing (`cargo test --test http_echo` alone does not build examples), it is built once with
//! `cargo build --example http_echo` in the same profile.
//!
//! | tests | what |
//! |---|---|
//! | `get_hello_exact_bytes` ... `expect_100_continue_interim_then_final` | our own client, exact bytes: GET, POST echo, HEAD, keep-alive, `Connection: close`, HTTP/1.0, pipelining, `Expect: 100-continue` |
//! | `pipelined_random_chunking_proptest` | a pipelined request stream cut at random points gives the same responses |
//! | `curl_*` | curl: connection reuse across URLs, a 1 MiB chunked upload, a 4 MiB upload with `Expect: 100-continue` |
//! | `python_http_client_pipeline_and_errors` | `tests/http_echo/pipeline.py`: pipelined requests read back with `http.client.HTTPResponse`, malformed requests |
//! | `thousand_connections_hundred_requests_each` | 1 000 concurrent keep-alive connections × 100 checked requests, the client side in weft Gs |
//! | `large_body_*` | 4 MiB bodies, `Content-Length` and chunked |
//! | `rejects_*` | every bad-input case: status, text/plain body, `Connection: close`, EOF; the server goes on serving |
//! | `limits_just_inside_are_served`, `chunked_extensions_and_trailers_are_accepted`, `expect_unknown_is_417`, `pipelined_bad_request_ends_the_connection` | the edges of those cases |
//! | `slowloris_*`, `idle_keep_alive_*` | header and idle timeouts |
//! | `sigterm_*`, `sigint_*` | graceful shutdown |
//! | `accept_backs_off_on_fd_exhaustion` | `RLIMIT_NOFILE` 64: no busy loop, existing connections served, recovery |
//!
//! Rules: every socket read has a timeout and every test a watchdog, so a broken server fails a
//! test instead of hanging the suite; no sleep is used as synchronisation (sleeps only pace a
//! slow client, a retry loop or a CPU-time measurement window). Each server child gets
//! `PR_SET_PDEATHSIG(SIGKILL)` and is killed by a drop guard, so none survives a failed or aborted
//! test. Timing bounds are generous (a loaded 2-core machine); lower bounds are exact (a timeout
//! never fires early).

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod common;
use common::example::{Example, Start, TempDir};
use common::watchdog;

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Longest wait for any single read or write of a test client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a test may run before its watchdog aborts the process.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// "Promptly": generous on purpose (a loaded 2-core machine).
const GENEROUS: Duration = Duration::from_secs(3);

/// The server's documented limits.
const MAX_HEAD: usize = 8192;
const MAX_HEADERS: usize = 64;
const DEFAULT_MAX_BODY: usize = 8 << 20;

/// Bodies of the large-body, curl and 100-continue tests.
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A running `http_echo` child (`common::example`), killed when dropped.
type Server = Example;

/// Start `http_echo --addr 127.0.0.1:0 ARGS...` and wait for its start line.
fn start_server(args: &[&str]) -> Server {
    Example::start("http_echo", args)
}

/// Run `cmd` with its output captured, killing it if it runs longer than `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(s) => break s,
            None if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} still running after {limit:?}; killed");
            }
        }
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Fail (never skip) when a tool the suite needs is missing.
fn require_tool(name: &str) {
    match Command::new(name).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`{name} --version` failed ({}); the http_echo tests need {name}",
            o.status
        ),
        Err(e) => panic!(
            "`{name}` not found ({e}): the http_echo tests need it; `.ci/run` / `./test.sh` \
             install it (or install it with the system's package manager)"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client side
// ---------------------------------------------------------------------------------------------

/// One parsed response.
struct Response {
    status_line: String,
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// Every value of header `name` (case-insensitive).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of header `name`, if present (the first one).
    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Whether the `Connection` header lists `token`.
    fn connection_has(&self, token: &str) -> bool {
        self.all("connection")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.status_line)?;
        for (n, v) in &self.headers {
            write!(f, " [{n}: {v}]")?;
        }
        write!(
            f,
            " body ({} bytes) {:?}",
            self.body.len(),
            preview(&self.body)
        )
    }
}

/// The first bytes of `b`, for messages.
fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(160)]).into_owned();
    if b.len() > 160 {
        format!("{s}...")
    } else {
        s
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A client connection with a read buffer kept across responses (pipelining). Works over std's
/// `TcpStream` (test threads) and weft's (Gs).
struct Conn<S> {
    s: S,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    fn new(s: S) -> Conn<S> {
        Conn {
            s,
            buf: Vec::new(),
            scratch: vec![0; 16 * 1024],
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.s.write_all(bytes)?;
        self.s.flush()
    }

    /// One read into the buffer; 0 at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let n = self.s.read(&mut self.scratch)?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Read one response. `head_request`: the request was HEAD (no body follows). Checks the
    /// framing: `HTTP/1.1 DDD reason` status line, CRLF line ends, well-formed header names, one
    /// `Content-Length` and no `Transfer-Encoding` on final responses. Interim (1xx) responses are
    /// returned as they are.
    fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head over 64 KiB".into()));
            }
            match self.fill() {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a complete response head (got {:?})",
                            preview(&self.buf)
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "timed out waiting for a response (got {:?})",
                            preview(&self.buf)
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end - 4])
            .map_err(|_| {
                bad(format!(
                    "response head is not UTF-8: {:?}",
                    preview(&self.buf)
                ))
            })?
            .to_string();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("").to_string();
        let code = parse_status_line(&status_line)?;
        let mut headers = Vec::new();
        for line in lines {
            if line.contains('\n') || line.contains('\r') {
                return Err(bad(format!("bare CR or LF in response head {head:?}")));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("header line without colon {line:?}")))?;
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(bad(format!("bad header name in {line:?}")));
            }
            headers.push((
                name.to_ascii_lowercase(),
                value.trim_matches([' ', '\t']).to_string(),
            ));
        }
        let mut resp = Response {
            status_line,
            code,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&code) {
            return Ok(resp);
        }
        if resp.header("transfer-encoding").is_some() {
            return Err(bad(format!("unexpected Transfer-Encoding: {resp:?}")));
        }
        let cls = resp.all("content-length");
        if cls.len() != 1 {
            return Err(bad(format!(
                "want one Content-Length, got {cls:?}: {resp:?}"
            )));
        }
        let len: usize = match cls[0].parse() {
            Ok(n) if cls[0].bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(bad(format!("bad Content-Length {:?}", cls[0]))),
        };
        if head_request || code == 204 || code == 304 {
            return Ok(resp);
        }
        while self.buf.len() < len {
            match self.fill() {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed after {} of {len} body bytes: {resp:?}",
                            self.buf.len()
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "timed out after {} of {len} body bytes: {resp:?}",
                            self.buf.len()
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        let rest = self.buf.split_off(len);
        resp.body = std::mem::replace(&mut self.buf, rest);
        Ok(resp)
    }

    /// Expect the server to close the connection next: no more bytes, then EOF (a reset counts
    /// as closed).
    fn expect_eof(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            return Err(bad(format!(
                "{} unexpected bytes where the server should have closed: {:?}",
                self.buf.len(),
                preview(&self.buf)
            )));
        }
        match self.fill() {
            Ok(0) => Ok(()),
            Ok(_) => Err(bad(format!(
                "expected EOF, got more bytes: {:?}",
                preview(&self.buf)
            ))),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
            Err(e) if is_timeout(&e) => Err(io::Error::new(
                ErrorKind::TimedOut,
                "the server did not close the connection",
            )),
            Err(e) => Err(e),
        }
    }
}

/// `HTTP/1.1 DDD reason` → DDD.
fn parse_status_line(line: &str) -> io::Result<u16> {
    let err = || bad(format!("bad status line {line:?}"));
    let rest = line.strip_prefix("HTTP/1.1 ").ok_or_else(err)?;
    let (code, reason) = rest.split_at_checked(3).ok_or_else(err)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || !reason.starts_with(' ') || reason.len() < 2 {
        return Err(err());
    }
    code.parse().map_err(|_| err())
}

/// A std client connection with read/write timeouts.
fn connect(addr: SocketAddr) -> Conn<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to http_echo at {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    Conn::new(s)
}

/// Send `req`, read one response (panics with context on failure).
#[track_caller]
fn roundtrip(c: &mut Conn<TcpStream>, req: &[u8], head_request: bool) -> Response {
    c.send(req)
        .unwrap_or_else(|e| panic!("sending {:?}: {e}", preview(req)));
    c.read_response(head_request)
        .unwrap_or_else(|e| panic!("response to {:?}: {e}", preview(req)))
}

// --- requests ---

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

fn head(path: &str) -> Vec<u8> {
    format!("HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// POST with `Content-Length`, and `Content-Type: ct` if given.
fn post(body: &[u8], ct: Option<&str>) -> Vec<u8> {
    let mut r = b"POST /echo HTTP/1.1\r\nHost: test\r\n".to_vec();
    if let Some(ct) = ct {
        r.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}

/// POST with a chunked body cut into chunks of `sizes` (cycled; at least one non-zero).
fn post_chunked(body: &[u8], sizes: &[usize], ct: Option<&str>) -> Vec<u8> {
    let mut r = b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n".to_vec();
    if let Some(ct) = ct {
        r.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(&chunked_body(body, sizes));
    r
}

/// `body` in chunked framing, cut into chunks of `sizes` (cycled; zeros skipped).
fn chunked_body(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + body.len() / 8 + 16);
    let mut rest = body;
    let mut sizes = sizes.iter().copied().filter(|&n| n > 0).cycle();
    while !rest.is_empty() {
        let n = sizes.next().expect("a non-zero chunk size").min(rest.len());
        r.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        r.extend_from_slice(&rest[..n]);
        r.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

/// Deterministic bytes, distinct per `seed` (splitmix64).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

// --- response checks (Result, so that Gs can report them too) ---

/// What every response carries: a reason phrase, one valid `Date` close to now, one
/// `Content-Length` (checked against the body by the parser).
fn check_common(r: &Response) -> Result<(), String> {
    let dates = r.all("date");
    if dates.len() != 1 {
        return Err(format!("want one Date header, got {dates:?}: {r:?}"));
    }
    let date = imf_fixdate(dates[0]).ok_or_else(|| format!("Date is not an IMF-fixdate: {r:?}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    if (date - now).abs() > 120 {
        return Err(format!(
            "Date {:?} is {}s away from now: {r:?}",
            dates[0],
            date - now
        ));
    }
    if r.all("content-length").len() != 1 {
        return Err(format!("want one Content-Length: {r:?}"));
    }
    Ok(())
}

/// The `Hello, World!` answer to a bodiless request.
fn check_hello(r: &Response) -> Result<(), String> {
    check_common(r)?;
    if r.status_line != "HTTP/1.1 200 OK" {
        return Err(format!("want HTTP/1.1 200 OK: {r:?}"));
    }
    if r.header("content-type") != Some("text/plain") {
        return Err(format!("want Content-Type text/plain: {r:?}"));
    }
    if r.body != b"Hello, World!" {
        return Err(format!("want body Hello, World!: {r:?}"));
    }
    Ok(())
}

/// The echo of `body` with content type `ct`.
fn check_echo(r: &Response, body: &[u8], ct: &str) -> Result<(), String> {
    check_common(r)?;
    if r.status_line != "HTTP/1.1 200 OK" {
        return Err(format!("want HTTP/1.1 200 OK: {r:?}"));
    }
    if r.header("content-type") != Some(ct) {
        return Err(format!("want Content-Type {ct:?}: {r:?}"));
    }
    if r.body != body {
        let at = r.body.iter().zip(body).position(|(a, b)| a != b);
        return Err(format!(
            "echoed body differs: {} bytes, want {}; first difference at {at:?}: {r:?}",
            r.body.len(),
            body.len()
        ));
    }
    Ok(())
}

#[track_caller]
fn check(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// `Sun, 22 Nov 2026 10:00:00 GMT` → seconds since the epoch (weekday checked too).
fn imf_fixdate(s: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || !s.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let wday = DAYS.iter().position(|d| *d == &s[0..3])? as i64;
    if &s[3..5] != ", " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return None;
    }
    if b[19] != b':' || b[22] != b':' || &s[25..] != " GMT" {
        return None;
    }
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as i64 + 1;
    let year = num(12..16)?;
    let (hh, mm, ss) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // 1970-01-01 was a Thursday.
    if (days + 4).rem_euclid(7) != wday {
        return None;
    }
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

// ---------------------------------------------------------------------------------------------
// 1. Our own client, exact bytes
// ---------------------------------------------------------------------------------------------

#[test]
fn get_hello_exact_bytes() {
    let _dog = watchdog("get_hello_exact_bytes", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    // Exact bytes of the status line and body; headers in any order and name case.
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    check(check_hello(&r));
    assert_eq!(r.header("content-length"), Some("13"), "{r:?}");
    assert!(!r.connection_has("close"), "keep-alive by default: {r:?}");
    // Other targets and methods without a body get the same answer.
    for req in [
        &b"GET /some/path?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"DELETE /x HTTP/1.1\r\nhOsT: localhost\r\nUser-Agent: weft-test\r\n\r\n",
    ] {
        let r = roundtrip(&mut c, req, false);
        check(check_hello(&r));
    }
}

#[test]
fn post_echoes_body_and_content_type() {
    let _dog = watchdog("post_echoes_body_and_content_type", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    for (i, (body, ct)) in [
        (&b"hello, echo"[..], "text/plain"),
        (b"{\"k\": [1, 2, 3]}", "application/json; charset=utf-8"),
        (
            &[0u8, 1, 2, 255, 254, b'\r', b'\n', 0][..],
            "application/x-binary",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = roundtrip(&mut c, &post(body, Some(ct)), false);
        check(check_echo(&r, body, ct).map_err(|e| format!("case {i}: {e}")));
    }
    // Binary body of every byte value, bigger than one read.
    let body = pattern(7, 100_000);
    let r = roundtrip(&mut c, &post(&body, Some("application/x-big")), false);
    check(check_echo(&r, &body, "application/x-big"));
    // A header-name case the server must not care about.
    let r = roundtrip(
        &mut c,
        b"PUT /x HTTP/1.1\r\nhost: h\r\ncontent-TYPE: text/x-case\r\nCONTENT-LENGTH: 4\r\n\r\nabcd",
        false,
    );
    check(check_echo(&r, b"abcd", "text/x-case"));
}

#[test]
fn post_without_content_type_is_octet_stream() {
    let _dog = watchdog("post_without_content_type_is_octet_stream", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let r = roundtrip(&mut c, &post(b"raw bytes", None), false);
    check(check_echo(&r, b"raw bytes", "application/octet-stream"));
    // Content-Length: 0 is a (empty) body: echoed, not Hello.
    let r = roundtrip(&mut c, &post(b"", None), false);
    check(check_echo(&r, b"", "application/octet-stream"));
    assert_eq!(r.header("content-length"), Some("0"), "{r:?}");
    // Chunked without Content-Type.
    let r = roundtrip(&mut c, &post_chunked(b"chunky", &[2], None), false);
    check(check_echo(&r, b"chunky", "application/octet-stream"));
}

#[test]
fn head_has_headers_and_no_body() {
    let _dog = watchdog("head_has_headers_and_no_body", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let r = roundtrip(&mut c, &head("/"), true);
    check(check_common(&r));
    assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{r:?}");
    assert_eq!(r.header("content-length"), Some("13"), "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
    // No body followed: the next response on the connection parses right after the head.
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
    // HEAD with a body: the same headers as its POST would have, still no body.
    let mut req =
        b"HEAD / HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-h\r\nContent-Length: 5\r\n\r\n"
            .to_vec();
    req.extend_from_slice(b"12345");
    let r = roundtrip(&mut c, &req, true);
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some("5"), "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/x-h"), "{r:?}");
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
}

#[test]
fn keep_alive_many_requests() {
    let _dog = watchdog("keep_alive_many_requests", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    for i in 0..50u64 {
        let r = if i % 2 == 0 {
            let r = roundtrip(&mut c, &get("/"), false);
            check(check_hello(&r));
            r
        } else {
            let body = pattern(i, (i as usize) * 37);
            let ct = format!("application/x-req-{i}");
            let r = roundtrip(&mut c, &post(&body, Some(&ct)), false);
            check(check_echo(&r, &body, &ct));
            r
        };
        // HTTP/1.1 is keep-alive by default.
        assert!(!r.connection_has("close"), "request {i}: {r:?}");
    }
    // An explicit keep-alive token changes nothing.
    let r = roundtrip(
        &mut c,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
        false,
    );
    check(check_hello(&r));
    assert!(!r.connection_has("close"), "{r:?}");
}

#[test]
fn connection_close_ends_connection() {
    let _dog = watchdog("connection_close_ends_connection", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
    let r = roundtrip(
        &mut c,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        false,
    );
    check(check_hello(&r));
    assert!(r.connection_has("close"), "{r:?}");
    c.expect_eof().expect("EOF after Connection: close");
    // The same on a POST, with the token in another case and among others.
    let mut c = connect(server.addr);
    let r = roundtrip(
        &mut c,
        b"POST / HTTP/1.1\r\nHost: t\r\nConnection: foo, CLOSE\r\nContent-Length: 3\r\n\r\nabc",
        false,
    );
    check(check_echo(&r, b"abc", "application/octet-stream"));
    assert!(r.connection_has("close"), "{r:?}");
    c.expect_eof().expect("EOF after Connection: close");
}

#[test]
fn http10_closes_unless_keep_alive() {
    let _dog = watchdog("http10_closes_unless_keep_alive", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    // Plain HTTP/1.0 (no Host needed): one response, then close.
    let mut c = connect(server.addr);
    let r = roundtrip(&mut c, b"GET / HTTP/1.0\r\n\r\n", false);
    check(check_hello(&r));
    c.expect_eof().expect("HTTP/1.0 without keep-alive: EOF");
    // HTTP/1.0 with a body, no keep-alive.
    let mut c = connect(server.addr);
    let r = roundtrip(
        &mut c,
        b"POST / HTTP/1.0\r\nContent-Length: 2\r\nContent-Type: text/x-10\r\n\r\nhi",
        false,
    );
    check(check_echo(&r, b"hi", "text/x-10"));
    c.expect_eof()
        .expect("HTTP/1.0 POST without keep-alive: EOF");
    // HTTP/1.0 with keep-alive: the response says so and the connection stays open.
    let mut c = connect(server.addr);
    for _ in 0..3 {
        let r = roundtrip(
            &mut c,
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            false,
        );
        check(check_hello(&r));
        assert!(r.connection_has("keep-alive"), "{r:?}");
        assert!(!r.connection_has("close"), "{r:?}");
    }
    let r = roundtrip(
        &mut c,
        b"POST / HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nxyz",
        false,
    );
    check(check_echo(&r, b"xyz", "application/octet-stream"));
    assert!(r.connection_has("keep-alive"), "{r:?}");
    // Then a plain 1.0 request on the same connection: closed after it.
    let r = roundtrip(&mut c, b"GET / HTTP/1.0\r\n\r\n", false);
    check(check_hello(&r));
    c.expect_eof().expect("HTTP/1.0 without keep-alive: EOF");
}

#[test]
fn pipelined_requests_answered_in_order() {
    let _dog = watchdog("pipelined_requests_answered_in_order", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let mut stream = Vec::new();
    let mut want: Vec<(Option<Vec<u8>>, String)> = Vec::new();
    for i in 0..10u64 {
        match i % 3 {
            0 => {
                stream.extend_from_slice(&get(&format!("/get/{i}")));
                want.push((None, String::new()));
            }
            1 => {
                let body = pattern(100 + i, 10 + (i as usize) * 50);
                let ct = format!("application/x-pipe-{i}");
                stream.extend_from_slice(&post(&body, Some(&ct)));
                want.push((Some(body), ct));
            }
            _ => {
                let body = pattern(200 + i, 5 + (i as usize) * 70);
                stream.extend_from_slice(&post_chunked(&body, &[7, 1, 100], None));
                want.push((Some(body), "application/octet-stream".into()));
            }
        }
    }
    c.send(&stream).expect("send the pipeline in one write");
    for (i, (body, ct)) in want.iter().enumerate() {
        let r = c
            .read_response(false)
            .unwrap_or_else(|e| panic!("pipelined response {i}: {e}"));
        match body {
            None => check(check_hello(&r).map_err(|e| format!("response {i}: {e}"))),
            Some(b) => check(check_echo(&r, b, ct).map_err(|e| format!("response {i}: {e}"))),
        }
    }
    assert!(c.buf.is_empty(), "extra bytes: {:?}", preview(&c.buf));
    // Still usable afterwards.
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
}

#[test]
fn expect_100_continue_interim_then_final() {
    let _dog = watchdog("expect_100_continue_interim_then_final", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let body = b"body after the interim response";
    c.send(
        format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-cont\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("send head");
    // Exactly the interim response, before we send any body byte.
    while c.buf.len() < 25 {
        assert!(c.fill().expect("read 100 Continue") > 0, "closed");
    }
    assert_eq!(
        preview(&c.buf[..25]),
        "HTTP/1.1 100 Continue\r\n\r\n",
        "interim response"
    );
    c.buf.drain(..25);
    assert!(
        c.buf.is_empty(),
        "bytes after the 100: {:?}",
        preview(&c.buf)
    );
    c.send(body).expect("send body");
    let r = c.read_response(false).expect("final response");
    check(check_echo(&r, body, "text/x-cont"));
    // The token is case-insensitive, and chunked bodies get it too.
    c.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .expect("send head");
    let r = c.read_response(false).expect("interim response");
    assert_eq!(r.status_line, "HTTP/1.1 100 Continue", "{r:?}");
    c.send(&chunked_body(b"chunked after 100", &[3]))
        .expect("send body");
    let r = c.read_response(false).expect("final response");
    check(check_echo(
        &r,
        b"chunked after 100",
        "application/octet-stream",
    ));
    // Still keep-alive.
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
}

/// What a generated request must get back.
#[derive(Debug, Clone)]
enum Want {
    Hello,
    HeadHello,
    Echo(Vec<u8>, String),
}

/// Kind 0..4 (GET, POST with type, chunked POST without, HEAD) and a body length → the request
/// bytes and what must come back.
fn gen_request(seed: u64, kind: u8, len: usize) -> (Vec<u8>, Want) {
    let body = pattern(seed, len);
    match kind {
        0 => (get(&format!("/gen/{seed}")), Want::Hello),
        1 => {
            let ct = format!("application/x-gen-{seed}");
            (post(&body, Some(&ct)), Want::Echo(body, ct))
        }
        2 => (
            post_chunked(&body, &[1 + len / 3, 5], None),
            Want::Echo(body, "application/octet-stream".into()),
        ),
        _ => (head("/"), Want::HeadHello),
    }
}

fn check_want(r: &Response, want: &Want) -> Result<(), String> {
    match want {
        Want::Hello => check_hello(r),
        Want::Echo(b, ct) => check_echo(r, b, ct),
        Want::HeadHello => {
            check_common(r)?;
            if r.code != 200 || r.header("content-length") != Some("13") || !r.body.is_empty() {
                return Err(format!("want a HEAD answer with Content-Length 13: {r:?}"));
            }
            Ok(())
        }
    }
}

#[test]
fn pipelined_random_chunking_proptest() {
    let _dog = watchdog("pipelined_random_chunking_proptest", TEST_LIMIT);
    // One P: the server's Gs interleave only where they park.
    let server = start_server(&["--quiet", "--procs", "1"]);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 20_000,
        ..Config::default()
    });
    let strategy = (
        vec((0u8..4, 0usize..400), 1..8),
        vec(1usize..120, 1..24),
        any::<bool>(),
    );
    let seed = AtomicUsize::new(0);
    runner
        .run(&strategy, |(reqs, cuts, close_last)| {
            let base = seed.fetch_add(1, Ordering::Relaxed) as u64 * 1000;
            let mut stream = Vec::new();
            let mut wants = Vec::new();
            for (i, &(kind, len)) in reqs.iter().enumerate() {
                let (bytes, want) = gen_request(base + i as u64, kind, len);
                stream.extend_from_slice(&bytes);
                wants.push(want);
            }
            if close_last {
                stream.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                wants.push(Want::Hello);
            }
            let mut c = connect(server.addr);
            // Write the stream cut at the generated points (nodelay: each piece is a segment).
            let mut rest = &stream[..];
            for n in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*n).min(rest.len());
                c.send(&rest[..n])
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                rest = &rest[n..];
            }
            for (i, want) in wants.iter().enumerate() {
                let r = c
                    .read_response(matches!(want, Want::HeadHello))
                    .map_err(|e| TestCaseError::fail(format!("response {i}: {e}")))?;
                check_want(&r, want)
                    .map_err(|e| TestCaseError::fail(format!("response {i}: {e}")))?;
            }
            if close_last {
                c.expect_eof()
                    .map_err(|e| TestCaseError::fail(format!("after Connection: close: {e}")))?;
            } else {
                prop_assert!(c.buf.is_empty(), "extra bytes {:?}", preview(&c.buf));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------
// 2. curl
// ---------------------------------------------------------------------------------------------

fn curl() -> Command {
    require_tool("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30"]);
    cmd
}

#[test]
fn curl_keep_alive_reuses_connection() {
    let _dog = watchdog("curl_keep_alive_reuses_connection", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let base = format!("http://{}", server.addr);
    let mut cmd = curl();
    cmd.args(["-w", "%{num_connects} %{http_code} %{size_download}\\n"]);
    for p in ["/a", "/b", "/c", "/d"] {
        cmd.args(["-o", "/dev/null", &format!("{base}{p}")]);
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed ({}): {}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["1 200 13", "0 200 13", "0 200 13", "0 200 13"],
        "one connect, then three reuses of it (num_connects http_code size)"
    );
}

/// POST `body` (from a file) to `path` with curl `-v` and `args`, saving the response body; curl
/// must succeed, and the body must come back byte for byte. Returns curl's `-w` line
/// ("status content-type") and its `-v` trace.
fn curl_echo_file(
    server: &Server,
    tmp: &str,
    body: &[u8],
    args: &[&str],
    path: &str,
) -> (String, String) {
    let dir = TempDir::new(tmp);
    std::fs::write(dir.path("in"), body).expect("write input");
    let mut cmd = curl();
    cmd.arg("-v")
        .args(args)
        .arg("--data-binary")
        .arg(format!("@{}", dir.path("in").display()))
        .arg("-o")
        .arg(dir.path("out"))
        .args(["-w", "%{http_code} %{content_type}"])
        .arg(format!("http://{}{path}", server.addr));
    let out = run_bounded(&mut cmd, Duration::from_secs(40));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "curl failed ({}): {stderr}",
        out.status
    );
    let echoed = std::fs::read(dir.path("out")).expect("read output");
    assert_eq!(echoed.len(), body.len(), "echoed length");
    assert!(echoed == body, "echoed bytes differ");
    (stdout, stderr)
}

#[test]
fn curl_chunked_upload() {
    let _dog = watchdog("curl_chunked_upload", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let body = pattern(0xC0FFEE, MIB + 12_345);
    let args = [
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/x-curl-chunked",
    ];
    let (stdout, stderr) = curl_echo_file(&server, "curl_chunked", &body, &args, "/upload");
    assert!(
        stderr.contains("> Transfer-Encoding: chunked"),
        "curl did not send a chunked body:\n{stderr}"
    );
    assert_eq!(stdout, "200 application/x-curl-chunked", "\n{stderr}");
}

#[test]
fn curl_expect_100_continue_large_body() {
    let _dog = watchdog("curl_expect_100_continue_large_body", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let body = pattern(0xE4_9EC7, 4 * MIB);
    // A long expect100 timeout: if the server never sends 100, curl waits (and --max-time
    // fails it) instead of sending the body anyway after its default 1 s.
    let args = ["-H", "Expect: 100-continue", "--expect100-timeout", "20"];
    let (stdout, stderr) = curl_echo_file(&server, "curl_expect", &body, &args, "/");
    assert!(
        stderr.contains("< HTTP/1.1 100 Continue"),
        "no interim 100 Continue in curl's trace:\n{stderr}"
    );
    // curl's default type for --data-binary.
    assert_eq!(
        stdout, "200 application/x-www-form-urlencoded",
        "\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Python's http.client
// ---------------------------------------------------------------------------------------------

#[test]
fn python_http_client_pipeline_and_errors() {
    let _dog = watchdog("python_http_client_pipeline_and_errors", TEST_LIMIT);
    require_tool("python3");
    let server = start_server(&["--quiet"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_echo/pipeline.py");
    let out = run_bounded(
        Command::new("python3")
            .arg(&script)
            .arg(server.addr.port().to_string()),
        Duration::from_secs(40),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ALL OK"),
        "{} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- server \
         stderr ---\n{}",
        script.display(),
        out.status,
        server.stderr_text()
    );
    assert!(stdout.contains("pipelined 9 requests ok"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// 4. 1 000 connections × 100 requests, client side in weft Gs
// ---------------------------------------------------------------------------------------------

const CONNS: usize = 1000;
const REQS_PER_CONN: usize = 100;

/// Raise our soft `RLIMIT_NOFILE` to at least `want` (up to the hard limit); the server child
/// inherits it.
fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: as above; setrlimit only reads `lim`.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    lim.rlim_cur
}

/// Request `r` of connection `c`: its bytes and what must come back (GET, POST with a type,
/// chunked POST, HEAD; bodies distinct per connection and request).
fn session_request(c: usize, r: usize) -> (Vec<u8>, Want) {
    let seed = (c * REQS_PER_CONN + r) as u64;
    let len = (c * 31 + r * 17) % 700;
    match (c + r) % 4 {
        0 => (get(&format!("/c{c}/r{r}")), Want::Hello),
        1 => {
            let mut body = format!("conn {c} req {r}|").into_bytes();
            body.extend_from_slice(&pattern(seed, len));
            let ct = format!("application/x-c{c}-r{r}");
            (post(&body, Some(&ct)), Want::Echo(body, ct))
        }
        2 => {
            let mut body = format!("chunked conn {c} req {r}|").into_bytes();
            body.extend_from_slice(&pattern(seed, len));
            (
                post_chunked(&body, &[1 + len / 2, 9], None),
                Want::Echo(body, "application/octet-stream".into()),
            )
        }
        _ => (head(&format!("/c{c}")), Want::HeadHello),
    }
}

/// One connection's session, in a G: connect and answer the first request, wait until every
/// connection is open (so that all 1 000 are live at once), then the other 99.
fn session(
    addr: SocketAddr,
    c: usize,
    all_open: &weft::sync::Barrier,
    done: &AtomicUsize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(100);
    let first = (|| -> Result<Conn<weft::net::TcpStream>, String> {
        let s = weft::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_deadline(Some(deadline)).map_err(|e| e.to_string())?;
        let mut conn = Conn::new(s);
        one_request(&mut conn, c, 0)?;
        Ok(conn)
    })();
    // Everyone reaches the barrier, failed or not, so that nobody waits forever.
    all_open.wait();
    let mut conn = first?;
    for r in 1..REQS_PER_CONN {
        one_request(&mut conn, c, r)?;
    }
    done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn one_request(conn: &mut Conn<weft::net::TcpStream>, c: usize, r: usize) -> Result<(), String> {
    let (req, want) = session_request(c, r);
    conn.send(&req)
        .map_err(|e| format!("request {r}: send: {e}"))?;
    let resp = conn
        .read_response(matches!(want, Want::HeadHello))
        .map_err(|e| format!("request {r}: {e}"))?;
    check_want(&resp, &want).map_err(|e| format!("request {r}: {e}"))?;
    if resp.connection_has("close") {
        return Err(format!(
            "request {r}: server closed a keep-alive connection: {resp:?}"
        ));
    }
    Ok(())
}

#[test]
fn thousand_connections_hundred_requests_each() {
    let _dog = watchdog(
        "thousand_connections_hundred_requests_each",
        Duration::from_secs(120),
    );
    let limit = raise_nofile(4 * CONNS as libc::rlim_t + 256);
    assert!(
        limit >= 2 * CONNS as libc::rlim_t + 64,
        "RLIMIT_NOFILE {limit} is too low for {CONNS} connections on both sides"
    );
    let server = start_server(&["--quiet", "--procs", "2"]);
    let addr = server.addr;
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let done2 = Arc::clone(&done);
    let failures: Vec<String> = weft::run(move || {
        let barrier = Arc::new(weft::sync::Barrier::new(CONNS));
        let handles: Vec<_> = (0..CONNS)
            .map(|c| {
                let barrier = Arc::clone(&barrier);
                let done = Arc::clone(&done2);
                weft::go!(move || session(addr, c, &barrier, &done))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .filter_map(|(c, h)| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("connection {c}: {e}")),
                Err(p) => Some(format!(
                    "connection {c}: panicked: {}",
                    p.downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                        .unwrap_or("?")
                )),
            })
            .collect()
    });
    let elapsed = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {CONNS} connections failed; first ones:\n{}\n--- server stderr ---\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n"),
        server.stderr_text()
    );
    assert_eq!(done.load(Ordering::Relaxed), CONNS);
    eprintln!(
        "note: {} requests on {CONNS} connections in {elapsed:?}",
        CONNS * REQS_PER_CONN
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Large bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn large_body_content_length_4mib() {
    let _dog = watchdog("large_body_content_length_4mib", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let body = pattern(0x4D1B, 4 * MIB);
    let r = roundtrip(&mut c, &post(&body, Some("application/x-large")), false);
    check(check_echo(&r, &body, "application/x-large"));
    // Twice on the same connection, then a small one.
    let body = pattern(0x4D1C, 4 * MIB - 1);
    let r = roundtrip(&mut c, &post(&body, None), false);
    check(check_echo(&r, &body, "application/octet-stream"));
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
}

/// The server's resident set size, in bytes (`VmRSS` in `/proc/PID/status`).
fn rss_bytes(server: &Server) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read /proc/PID/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// 100 clients announce an 8 MiB body and send 16 bytes of it: the server's memory must follow
/// what arrived, not what was announced (it once sized the buffer to the Content-Length up
/// front: 800 MiB here). RSS is sampled for 2 s while the clients hold their connections.
#[test]
fn announced_bodies_cost_only_what_arrives() {
    let _dog = watchdog("announced_bodies_cost_only_what_arrives", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let head = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {DEFAULT_MAX_BODY}\r\n\r\n");
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut c = TcpStream::connect(server.addr).expect("connect");
        c.write_all(head.as_bytes()).expect("write head");
        c.write_all(&[b'x'; 16]).expect("write 16 body bytes");
        clients.push(c);
    }
    // The server still answers others meanwhile.
    let mut c = connect(server.addr);
    check(check_hello(&roundtrip(&mut c, &get("/"), false)));
    let until = Instant::now() + Duration::from_secs(2);
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(rss_bytes(&server));
        thread::sleep(Duration::from_millis(20)); // pacing the samples, not synchronisation
    }
    assert!(
        peak < 100 * MIB,
        "server RSS reached {} MiB with 100 bodies of 16 bytes announced as 8 MiB",
        peak / MIB
    );
    drop(clients);
    check(check_hello(&roundtrip(&mut c, &get("/"), false)));
}

#[test]
fn large_body_chunked_4mib() {
    let _dog = watchdog("large_body_chunked_4mib", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    for (i, sizes) in [
        &[65_536][..],
        &[1, 4096, 7, 100_000, 3],
        &[4 * MIB],
        &[1_000_003],
    ]
    .into_iter()
    .enumerate()
    {
        let body = pattern(0xC4 + i as u64, 4 * MIB);
        let r = roundtrip(
            &mut c,
            &post_chunked(&body, sizes, Some("application/x-ch")),
            false,
        );
        check(
            check_echo(&r, &body, "application/x-ch").map_err(|e| format!("sizes {sizes:?}: {e}")),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------------

/// Send `request` on a fresh connection; expect status `code` with a short text/plain body and
/// `Connection: close`, then EOF; then check that a fresh GET is still served.
fn rejected(server: &Server, what: &str, request: &[u8], code: u16) -> Result<Response, String> {
    let mut c = connect(server.addr);
    // A write may fail if the server already answered and closed (a very large head): the
    // response must still be readable.
    let sent = c.send(request);
    let r = c.read_response(false).map_err(|e| {
        format!(
            "{what}: request {:?}: no valid response ({e}; send: {sent:?})",
            preview(request)
        )
    })?;
    let ctx = |msg: &str| format!("{what}: request {:?}: {msg}: {r:?}", preview(request));
    if r.code != code {
        return Err(ctx(&format!("want status {code}")));
    }
    check_common(&r).map_err(|e| ctx(&e))?;
    if !r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain"))
    {
        return Err(ctx("want a text/plain body"));
    }
    if r.body.is_empty() || r.body.len() >= 1024 {
        return Err(ctx("want a short body"));
    }
    if !r.connection_has("close") {
        return Err(ctx("want Connection: close"));
    }
    c.expect_eof()
        .map_err(|e| ctx(&format!("after the response: {e}")))?;
    let mut fresh = connect(server.addr);
    fresh
        .send(&get("/"))
        .and_then(|()| fresh.read_response(false))
        .map_err(|e| e.to_string())
        .and_then(|ok| check_hello(&ok))
        .map_err(|e| format!("fresh GET after {what}: {e}"))?;
    Ok(r)
}

/// [`rejected`], panicking on failure (with the server's stderr).
#[track_caller]
fn expect_rejected(server: &Server, what: &str, request: &[u8], code: u16) -> Response {
    rejected(server, what, request, code)
        .unwrap_or_else(|e| panic!("{e}\n--- server stderr ---\n{}", server.stderr_text()))
}

/// [`rejected`] for every case; panics listing every case that failed.
#[track_caller]
fn expect_all_rejected(server: &Server, cases: &[(&str, &[u8])], code: u16) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(what, req)| rejected(server, what, req, code).err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

#[test]
fn rejects_malformed_request_line_and_headers_400() {
    let _dog = watchdog("rejects_malformed_request_line_and_headers_400", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    expect_all_rejected(
        &server,
        &[
            ("garbage request line", &b"GARBAGE\r\n\r\n"[..]),
            (
                "not HTTP at all",
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            ),
            ("bad method character", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("leading space", b" GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("not an HTTP version", b"GET / FOO/1.1\r\nHost: x\r\n\r\n"),
            (
                "header without colon",
                b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
            ),
            ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
            (
                "bad header name",
                b"GET / HTTP/1.1\r\nHost: x\r\nBad[Name]: y\r\n\r\n",
            ),
            (
                "empty header name",
                b"GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n",
            ),
        ],
        400,
    );
}

#[test]
fn rejects_missing_or_duplicate_host_400() {
    let _dog = watchdog("rejects_missing_or_duplicate_host_400", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    expect_rejected(&server, "no Host", b"GET / HTTP/1.1\r\n\r\n", 400);
    expect_rejected(
        &server,
        "no Host, with a body",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
        400,
    );
    expect_rejected(
        &server,
        "two Host headers",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
}

#[test]
fn rejects_bad_content_length_400() {
    let _dog = watchdog("rejects_bad_content_length_400", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    expect_all_rejected(
        &server,
        &[
        ("not a number", &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"[..]),
        ("negative", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        ("plus sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"),
        ("empty", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n"),
        ("two numbers", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab"),
        (
            "conflicting headers",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        ("conflicting list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        (
            "Content-Length and Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding and Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        ),
        ],
        400,
    );
}

#[test]
fn rejects_head_too_large_431() {
    let _dog = watchdog("rejects_head_too_large_431", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.resize(req.len() + MAX_HEAD + 1000, b'a');
    req.extend_from_slice(b"\r\n\r\n");
    expect_rejected(&server, "one 9 KiB header", &req, 431);
    // Many medium headers adding up to more than 8 KiB (fewer than 64).
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..40 {
        req.extend_from_slice(format!("X-H{i}: {}\r\n", "b".repeat(250)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    expect_rejected(&server, "40 headers of 260 bytes", &req, 431);
    // A head that never ends.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    req.resize(req.len() + 3 * MAX_HEAD, b'c');
    expect_rejected(&server, "24 KiB without CRLF", &req, 431);
}

#[test]
fn rejects_too_many_headers_431() {
    let _dog = watchdog("rejects_too_many_headers_431", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    expect_rejected(&server, "65 headers", &req, 431);
}

#[test]
fn limits_just_inside_are_served() {
    let _dog = watchdog("limits_just_inside_are_served", TEST_LIMIT);
    let server = start_server(&["--quiet", "--max-body", "65536"]);
    let mut c = connect(server.addr);
    // 64 headers (Host + 63).
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..MAX_HEADERS - 1 {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let r = roundtrip(&mut c, &req, false);
    check(check_hello(&r).map_err(|e| format!("64 headers: {e}")));
    // A 7 KiB head.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.resize(7 * 1024, b'a');
    req.extend_from_slice(b"\r\n\r\n");
    let r = roundtrip(&mut c, &req, false);
    check(check_hello(&r).map_err(|e| format!("7 KiB head: {e}")));
    // Bodies of exactly --max-body.
    let body = pattern(65536, 65536);
    let r = roundtrip(&mut c, &post(&body, None), false);
    check(check_echo(&r, &body, "application/octet-stream"));
    let r = roundtrip(&mut c, &post_chunked(&body, &[1000], None), false);
    check(check_echo(&r, &body, "application/octet-stream"));
}

#[test]
fn rejects_body_too_large_413() {
    let _dog = watchdog("rejects_body_too_large_413", TEST_LIMIT);
    let server = start_server(&["--quiet", "--max-body", "65536"]);
    let r = expect_rejected(
        &server,
        "Content-Length over --max-body",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n",
        413,
    );
    assert_eq!(r.status_line, "HTTP/1.1 413 Content Too Large");
    expect_rejected(
        &server,
        "huge Content-Length",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        413,
    );
    let body = pattern(1, 70_000);
    let r = expect_rejected(
        &server,
        "chunked body growing past --max-body",
        &post_chunked(&body, &[10_000], None),
        413,
    );
    assert_eq!(r.status_line, "HTTP/1.1 413 Content Too Large");
    // A chunk size near 2^64 after a first chunk: the limit check must not overflow (it once
    // wrapped to 0 and the server read on without bound).
    expect_rejected(
        &server,
        "chunk size 2^64 - 1 after a first chunk",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          1\r\nA\r\nffffffffffffffff\r\nabc",
        413,
    );
    // One huge chunk announced.
    expect_rejected(
        &server,
        "one chunk over --max-body",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\nabc",
        413,
    );
    // The default limit is 8 MiB.
    let server = start_server(&["--quiet"]);
    expect_rejected(
        &server,
        "Content-Length over the default 8 MiB",
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            DEFAULT_MAX_BODY + 1
        )
        .as_bytes(),
        413,
    );
}

#[test]
fn rejects_unsupported_transfer_encoding_501() {
    let _dog = watchdog("rejects_unsupported_transfer_encoding_501", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    expect_rejected(
        &server,
        "gzip, chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        501,
    );
    expect_rejected(
        &server,
        "gzip",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    );
}

#[test]
fn rejects_unsupported_version_505() {
    let _dog = watchdog("rejects_unsupported_version_505", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    expect_all_rejected(
        &server,
        &[
            ("HTTP/1.2", &b"GET / HTTP/1.2\r\nHost: x\r\n\r\n"[..]),
            ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
            ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ],
        505,
    );
}

#[test]
fn rejects_bad_chunked_framing_400() {
    let _dog = watchdog("rejects_bad_chunked_framing_400", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let h = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: Vec<(&str, Vec<u8>)> = [
        ("bad chunk size", "zz\r\nhello\r\n0\r\n\r\n"),
        ("negative chunk size", "-5\r\nhello\r\n0\r\n\r\n"),
        ("empty chunk size", "\r\nhello\r\n0\r\n\r\n"),
        ("no CRLF after chunk data", "5\r\nhelloXX0\r\n\r\n"),
        ("chunk longer than its size", "3\r\nhello\r\n0\r\n\r\n"),
        // Lines a proxy could frame differently (request smuggling): a bare LF inside an
        // extension, a bare LF ending the line, an extension with no size, a space after the
        // size, a control byte in an extension.
        (
            "bare LF in a chunk extension",
            "5;a\nb\r\nhello\r\n0\r\n\r\n",
        ),
        ("bare LF after the size", "5\nhello\r\n0\r\n\r\n"),
        ("extension without a size", ";x\r\nhello\r\n0\r\n\r\n"),
        ("space after the size", "5 \r\nhello\r\n0\r\n\r\n"),
        (
            "control byte in an extension",
            "5;a\x01b\r\nhello\r\n0\r\n\r\n",
        ),
    ]
    .into_iter()
    .map(|(what, body)| (what, format!("{h}{body}").into_bytes()))
    .collect();
    let cases: Vec<(&str, &[u8])> = cases.iter().map(|(w, r)| (*w, &r[..])).collect();
    expect_all_rejected(&server, &cases, 400);
}

#[test]
fn chunked_extensions_and_trailers_are_accepted() {
    let _dog = watchdog("chunked_extensions_and_trailers_are_accepted", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    // RFC 9112 §7.1.1: unknown chunk extensions are ignored; §7.1.2: trailer fields; §7.1:
    // hex digits in any case.
    let r = roundtrip(
        &mut c,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\nA ; name=\"v\"\r\n0123456789\r\na\r\nabcdefghij\r\n\
          0\r\nX-Trailer: t\r\n\r\n",
        false,
    );
    check(check_echo(
        &r,
        b"hello0123456789abcdefghij",
        "application/octet-stream",
    ));
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
}

#[test]
fn expect_unknown_is_417() {
    let _dog = watchdog("expect_unknown_is_417", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    let r = roundtrip(
        &mut c,
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n",
        false,
    );
    assert_eq!(r.code, 417, "{r:?}");
    check(check_common(&r));
    let mut fresh = connect(server.addr);
    let r = roundtrip(&mut fresh, &get("/"), false);
    check(check_hello(&r));
}

#[test]
fn pipelined_bad_request_ends_the_connection() {
    let _dog = watchdog("pipelined_bad_request_ends_the_connection", TEST_LIMIT);
    let server = start_server(&["--quiet"]);
    let mut c = connect(server.addr);
    // Good, bad, good: the first is answered, the second refused, the third never answered.
    let mut stream = post(b"first", Some("text/x-1"));
    stream.extend_from_slice(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n");
    stream.extend_from_slice(&get("/third"));
    c.send(&stream).expect("send");
    let r = c.read_response(false).expect("first response");
    check(check_echo(&r, b"first", "text/x-1"));
    let r = c.read_response(false).expect("second response");
    assert_eq!(r.code, 400, "{r:?}");
    assert!(r.connection_has("close"), "{r:?}");
    c.expect_eof()
        .expect("nothing after the refused request: EOF");
}

// ---------------------------------------------------------------------------------------------
// 7. Slowloris and idle timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn slowloris_is_cut_off_by_header_timeout() {
    let _dog = watchdog("slowloris_is_cut_off_by_header_timeout", TEST_LIMIT);
    let server = start_server(&["--quiet", "--header-timeout-ms", "300"]);
    let addr = server.addr;
    let start = Instant::now();
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut slow = Conn::new(s);
    slow.send(b"GET / HTTP/1.1\r\n").expect("request line");
    // Meanwhile, a normal client is served promptly, again and again.
    let normal = thread::spawn(move || {
        for i in 0..5 {
            let t = Instant::now();
            let mut c = connect(addr);
            let r = roundtrip(&mut c, &get("/"), false);
            check(check_hello(&r));
            assert!(
                t.elapsed() < GENEROUS,
                "normal request {i} took {:?}",
                t.elapsed()
            );
        }
    });
    // One header byte every 50 ms (the read timeout paces the client) until the server closes.
    slow.s
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let header = b"X-Slowloris: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let limit = Duration::from_secs(3);
    let mut i = 0;
    let closed_at = loop {
        assert!(
            start.elapsed() < limit,
            "slowloris connection still open after {limit:?} with --header-timeout-ms 300"
        );
        if slow.s.write_all(&header[i % header.len()..][..1]).is_err() {
            // EPIPE / reset: the server closed and we noticed on write.
            break start.elapsed();
        }
        i += 1;
        match slow.fill() {
            Ok(0) => break start.elapsed(),
            Ok(_) => {} // a 408 response, checked below
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break start.elapsed(),
            Err(e) => panic!("slowloris read: {e}"),
        }
    };
    assert!(
        closed_at >= Duration::from_millis(250),
        "closed after {closed_at:?}, before the 300 ms header timeout"
    );
    if !slow.buf.is_empty() {
        slow.s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let r = slow
            .read_response(false)
            .expect("the bytes before close form a response");
        assert_eq!(r.code, 408, "{r:?}");
        assert!(r.connection_has("close"), "{r:?}");
    }
    eprintln!("note: slowloris cut off after {closed_at:?} ({i} header bytes)");
    normal.join().expect("normal client");
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let _dog = watchdog("idle_keep_alive_connection_is_closed", TEST_LIMIT);
    let server = start_server(&["--quiet", "--idle-timeout-ms", "300"]);
    let mut c = connect(server.addr);
    // The idle timer starts after this request was sent, so our clock over-estimates it.
    let start = Instant::now();
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
    assert!(!r.connection_has("close"), "{r:?}");
    c.expect_eof()
        .expect("idle connection closed by the server");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}, before the 300 ms idle timeout"
    );
    assert!(elapsed < GENEROUS, "closed only after {elapsed:?}");
    // Requests in a row within the timeout keep it open; the server still serves others.
    let mut c = connect(server.addr);
    for _ in 0..5 {
        let r = roundtrip(&mut c, &get("/"), false);
        check(check_hello(&r));
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Signals
// ---------------------------------------------------------------------------------------------

/// Poll (bounded) until connecting to `addr` is refused: the listener is closed.
fn wait_until_refused(server: &mut Server, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            Ok(s) => drop(s),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            server.fail(&format!(
                "still accepting connections {limit:?} after SIGTERM"
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_drains_in_flight_and_closes_idle() {
    let _dog = watchdog("sigterm_drains_in_flight_and_closes_idle", TEST_LIMIT);
    let mut server = start_server(&["--grace-ms", "5000"]);
    // An idle keep-alive connection.
    let mut idle = connect(server.addr);
    let r = roundtrip(&mut idle, &get("/"), false);
    check(check_hello(&r));
    // An in-flight request: head and half its body. `Expect: 100-continue` lets us know the
    // server has read the head and is reading this body (no race with the signal).
    let mut busy = connect(server.addr);
    let body = pattern(1000, 1000);
    let interim = roundtrip(
        &mut busy,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-drain\r\n\
          Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
        false,
    );
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue", "{interim:?}");
    busy.send(&body[..500]).expect("first half");
    server.signal(libc::SIGTERM);
    // The listener closes...
    wait_until_refused(&mut server, Duration::from_secs(4));
    // ...the idle connection is closed...
    idle.expect_eof()
        .unwrap_or_else(|e| panic!("idle keep-alive connection after SIGTERM: {e}"));
    // ...and the in-flight request completes, with Connection: close.
    busy.send(&body[500..]).expect("second half");
    let r = busy
        .read_response(false)
        .expect("in-flight response after SIGTERM");
    check(check_echo(&r, &body, "application/x-drain"));
    // Checked last, so that a missing header does not hide what follows.
    let says_close = r.connection_has("close");
    busy.expect_eof().expect("EOF after the drained response");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\n--- server stderr ---\n{}",
        server.stderr_text()
    );
    assert!(
        says_close,
        "the response to a request in flight at SIGTERM must say Connection: close: {r:?}"
    );
}

#[test]
fn sigterm_grace_expires_with_stuck_client() {
    let _dog = watchdog("sigterm_grace_expires_with_stuck_client", TEST_LIMIT);
    let mut server = start_server(&["--quiet", "--grace-ms", "300"]);
    let mut stuck = connect(server.addr);
    let interim = roundtrip(
        &mut stuck,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
        false,
    );
    assert_eq!(interim.code, 100, "{interim:?}");
    stuck.send(b"only part of the body").expect("send");
    let t = Instant::now();
    server.signal(libc::SIGTERM);
    // The body never completes: the server gives up after the grace period and exits.
    let status = server.wait_exit(Duration::from_secs(5));
    eprintln!(
        "note: exited {:?} after SIGTERM with a stuck client: {status}",
        t.elapsed()
    );
    assert!(
        status.code().is_some(),
        "killed by a signal: {status}\n--- server stderr ---\n{}",
        server.stderr_text()
    );
}

#[test]
fn sigint_exits_zero() {
    let _dog = watchdog("sigint_exits_zero", TEST_LIMIT);
    // The start line is printed once the signal handlers are in place (the server's contract
    // for scripts): no connection needed first.
    let mut server = start_server(&["--quiet"]);
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\n--- server stderr ---\n{}",
        server.stderr_text()
    );
}

// ---------------------------------------------------------------------------------------------
// 9. fd exhaustion at accept
// ---------------------------------------------------------------------------------------------

#[test]
fn accept_backs_off_on_fd_exhaustion() {
    let _dog = watchdog("accept_backs_off_on_fd_exhaustion", TEST_LIMIT);
    const NOFILE: libc::rlim_t = 64;
    let server = Example::start_with(
        "http_echo",
        Start {
            args: &["--quiet"],
            nofile: Some(NOFILE),
            ..Start::default()
        },
    );
    // Open keep-alive connections, each answering a GET, until one is not served: the server is
    // out of fds and that connection waits in the listen backlog.
    let mut served = Vec::new();
    let mut pending = loop {
        assert!(
            served.len() < 2 * NOFILE as usize,
            "{} connections served with RLIMIT_NOFILE {NOFILE}",
            served.len()
        );
        let mut c = connect(server.addr);
        c.s.set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("timeout");
        c.send(&get("/")).expect("send");
        match c.read_response(false) {
            Ok(r) => {
                check(check_hello(&r));
                served.push(c);
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => break c,
            Err(e) => panic!(
                "connection {} failed instead of waiting: {e}\n--- server stderr ---\n{}",
                served.len(),
                server.stderr_text()
            ),
        }
    };
    assert!(!served.is_empty(), "not even one connection served");
    eprintln!(
        "note: {} connections served before fd exhaustion",
        served.len()
    );
    // Existing connections are still served.
    for c in [0, served.len() - 1] {
        let r = roundtrip(&mut served[c], &get("/"), false);
        check(check_hello(&r).map_err(|e| format!("existing connection {c}: {e}")));
    }
    // No busy loop on the failing accept: CPU time over one second while a connection waits.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let before = server.cpu_ticks();
    thread::sleep(Duration::from_secs(1));
    let used = server.cpu_ticks() - before;
    eprintln!("note: {used} of {hz} CPU ticks in 1 s with a connection waiting on accept");
    assert!(
        used * 10 < hz * 3,
        "server used {used} of {hz} ticks per second while accept fails: busy loop?"
    );
    // Close some connections: the waiting one is accepted and answered, and new ones too.
    served.truncate(served.len().saturating_sub(8));
    pending
        .s
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("timeout");
    let r = pending
        .read_response(false)
        .expect("the waiting connection is served once fds are free");
    check(check_hello(&r));
    let mut c = connect(server.addr);
    let r = roundtrip(&mut c, &get("/"), false);
    check(check_hello(&r));
    // And the old ones still work.
    let r = roundtrip(&mut served[0], &get("/"), false);
    check(check_hello(&r));
}
