//! HTTP/1.1 message handling for the echo server (RFC 9112), with no I/O: what a request head
//! says (framing, keep-alive, expectations), the limits, and how responses are written.
//! `conn.rs` does the reading and writing; the parsing itself is `httparse`'s.
//!
//! Invariants: a head is accepted only if its framing is unambiguous (one Content-Length value,
//! or `Transfer-Encoding: chunked` alone, never both), so the server and any proxy in front of
//! it agree on where the next request starts (no request smuggling). Everything refused here is
//! answered with a [`Reject`] and the connection is closed after it.

use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest request head (request line + headers + blank line) we accept: Go's default is
/// 1 MiB, nginx's 8 KiB; above it → 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header fields in a head (or in a chunked body's trailer section); more → 431.
pub const MAX_HEADERS: usize = 64;
/// The longest chunk-size line (size, extensions, CRLF) we wait for before calling it malformed.
pub const MAX_CHUNK_LINE: usize = 1024;

/// The statuses this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    RequestTimeout,
    ContentTooLarge,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    /// The status line after `HTTP/1.1 `: code and reason phrase (RFC 9110 §15).
    pub fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"200 OK",
            Status::BadRequest => b"400 Bad Request",
            Status::RequestTimeout => b"408 Request Timeout",
            Status::ContentTooLarge => b"413 Content Too Large",
            Status::ExpectationFailed => b"417 Expectation Failed",
            Status::HeaderFieldsTooLarge => b"431 Request Header Fields Too Large",
            Status::NotImplemented => b"501 Not Implemented",
            Status::VersionNotSupported => b"505 HTTP Version Not Supported",
        }
    }
}

/// A request we refuse: answered with `status` and a one-line body saying `why`, then the
/// connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: Status,
    pub why: &'static str,
}

pub fn reject(status: Status, why: &'static str) -> Reject {
    Reject { status, why }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Neither Content-Length nor Transfer-Encoding: no body.
    None,
    Length(u64),
    Chunked,
}

/// What the server needs from a parsed request head. The Content-Type is copied out separately
/// (into a buffer the connection reuses), so nothing here borrows the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, up to and including the blank line.
    pub len: usize,
    pub is_head: bool,
    pub http10: bool,
    /// Whether the connection may carry another request after this one (before any
    /// server-side reason to close, such as shutdown or an error).
    pub keep_alive: bool,
    pub framing: Framing,
    /// `Expect: 100-continue` on an HTTP/1.1 request: send `100 Continue` before reading the body.
    pub expect_continue: bool,
}

/// Parse the head at the start of `buf`. `Ok(None)`: incomplete, read more. The request's
/// Content-Type value, if any, is left in `ctype` (cleared otherwise).
pub fn parse_head(buf: &[u8], ctype: &mut Vec<u8>) -> Result<Option<Head>, Reject> {
    // Uninitialised slots: initialising 64 of them (2 KiB) for every request would cost more
    // than parsing a small head.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Err(too_large_head()),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_large_head()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) if names_a_version(buf) => {
            return Err(reject(
                Status::VersionNotSupported,
                "only HTTP/1.0 and HTTP/1.1 are spoken here",
            ))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                Status::HeaderFieldsTooLarge,
                "more than 64 header fields",
            ))
        }
        Err(_) => return Err(reject(Status::BadRequest, "malformed request head")),
    };
    let http10 = req.version == Some(0);
    let is_head = req.method == Some("HEAD");

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut hosts = 0;
    let (mut close, mut keep) = (false, false);
    let mut expect_continue = false;
    ctype.clear();
    for h in req.headers.iter() {
        let value = trim(h.value);
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value)
                .ok_or_else(|| reject(Status::BadRequest, "invalid Content-Length"))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(reject(
                    Status::BadRequest,
                    "conflicting Content-Length values",
                ));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The codings of every Transfer-Encoding field, in order; only `chunked` alone is
            // supported (a coding before it would need decoding: gzip, deflate, ...).
            for coding in value.split(|&b| b == b',').map(trim) {
                if coding.is_empty() {
                    continue;
                }
                if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(reject(
                        Status::NotImplemented,
                        "only the chunked transfer coding is supported",
                    ));
                }
                chunked = true;
            }
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(reject(
                    Status::ExpectationFailed,
                    "the only expectation understood is 100-continue",
                ));
            }
            // RFC 9110 §10.1.1: ignored on an HTTP/1.0 request.
            expect_continue = !http10;
        } else if name.eq_ignore_ascii_case("content-type") {
            ctype.clear();
            ctype.extend_from_slice(value);
        }
    }
    if transfer_encoding && !chunked {
        return Err(reject(Status::BadRequest, "empty Transfer-Encoding"));
    }
    if transfer_encoding && http10 {
        // RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
        return Err(reject(
            Status::BadRequest,
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    if transfer_encoding && content_length.is_some() {
        // RFC 9112 §6.1 allows either refusing or ignoring Content-Length; refusing leaves no
        // room for a proxy in front of us to disagree about the body's end.
        return Err(reject(
            Status::BadRequest,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if !http10 && hosts != 1 {
        // RFC 9112 §3.2: exactly one Host field in an HTTP/1.1 request.
        return Err(reject(
            Status::BadRequest,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let framing = match (chunked, content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::None,
    };
    Ok(Some(Head {
        len,
        is_head,
        http10,
        keep_alive: if http10 { keep && !close } else { !close },
        framing,
        expect_continue: expect_continue && framing != Framing::None,
    }))
}

/// Whether the request line's last token is an HTTP version (`HTTP/` digit `.` digit, RFC 9112
/// §2.3), such as `HTTP/2.0` — a version we do not speak (505) rather than a malformed line (400).
fn names_a_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let token = line.rsplit(|&b| b == b' ').next().unwrap_or(line);
    matches!(token, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

fn too_large_head() -> Reject {
    reject(
        Status::HeaderFieldsTooLarge,
        "request head larger than 8 KiB",
    )
}

/// A Content-Length value: digits only (no sign, no list), at most 19 of them.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Strip optional whitespace (RFC 9110 §5.6.3: spaces and tabs) from both ends.
fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// One step of a chunked body (RFC 9112 §7.1) found at the start of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkLine {
    /// Incomplete: read more.
    Partial,
    /// A chunk-size line of `len` bytes announcing `size` bytes of data (0: the last chunk).
    Size { len: usize, size: u64 },
}

/// Parse a chunk-size line (extensions are skipped, as RFC 9112 allows).
///
/// Stricter than `httparse::parse_chunk_size` alone, which accepts a line without digits (as
/// size 0), spaces after the size, and any byte inside an extension, a bare LF included. A proxy
/// in front of us that ends the line at that LF would frame the body differently from us: request
/// smuggling (CVE-2025-55315 in Kestrel; hyper refuses these lines too). So: hex digits first,
/// then nothing or `;` (after optional whitespace), and no control byte before the CRLF.
pub fn parse_chunk_line(buf: &[u8]) -> Result<ChunkLine, Reject> {
    let (line, complete) = match buf.iter().position(|&b| b == b'\n') {
        Some(lf) => match buf[..lf].strip_suffix(b"\r") {
            Some(line) => (line, true),
            None => return Err(bad_chunk()), // a bare LF
        },
        // Incomplete; a last CR may be the start of the CRLF.
        None => (buf.strip_suffix(b"\r").unwrap_or(buf), false),
    };
    check_chunk_line(line, complete)?;
    match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete((len, size))) => Ok(ChunkLine::Size { len, size }),
        Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => Err(bad_chunk()),
        Ok(httparse::Status::Partial) => Ok(ChunkLine::Partial),
        Err(_) => Err(bad_chunk()),
    }
}

/// The checks `parse_chunk_line` adds. `line` is without its CRLF; `complete`: the CRLF has
/// arrived (otherwise more of the line may follow, and only what is there is judged).
fn check_chunk_line(line: &[u8], complete: bool) -> Result<(), Reject> {
    if line.iter().any(|&b| b != b'\t' && (b < b' ' || b == 0x7f)) {
        return Err(bad_chunk());
    }
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    if digits == 0 {
        return if rest.is_empty() && !complete {
            Ok(())
        } else {
            Err(bad_chunk())
        };
    }
    // After the size: the end of the line, or `;` after optional whitespace (RFC 9112 §7.1.1).
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match rest.get(ws) {
        Some(b';') => Ok(()),
        None if ws == 0 || !complete => Ok(()),
        _ => Err(bad_chunk()),
    }
}

/// Parse the trailer section after the last chunk (fields are read and dropped). `Ok(None)`:
/// incomplete; `Ok(Some(n))`: it is `n` bytes, final blank line included.
///
/// Never inlined: its 2 KiB of header slots would otherwise sit in the connection loop's frame,
/// and every call below it (parse, read, park) would run 2 KiB deeper into the G's stack — a
/// page more of memory per connection (measured: +4 MiB RSS at 1000 connections).
#[inline(never)]
pub fn parse_trailers(buf: &[u8]) -> Result<Option<usize>, Reject> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((n, _))) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(reject(
            Status::HeaderFieldsTooLarge,
            "trailer section larger than 8 KiB",
        )),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(reject(
            Status::HeaderFieldsTooLarge,
            "more than 64 trailer fields",
        )),
        Err(_) => Err(reject(Status::BadRequest, "malformed trailer section")),
    }
}

pub fn bad_chunk() -> Reject {
    reject(Status::BadRequest, "malformed chunked body")
}

/// The response's `Connection` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// HTTP/1.1 keeping the connection: no header needed.
    None,
    /// An HTTP/1.0 client that asked to keep the connection.
    KeepAlive,
    Close,
}

/// Append a response head to `out`.
pub fn write_head(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &[u8],
    content_length: usize,
    connection: ConnectionHeader,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.line());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(content_length).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(match connection {
        ConnectionHeader::None => b"\r\n\r\n".as_slice(),
        ConnectionHeader::KeepAlive => b"\r\nConnection: keep-alive\r\n\r\n",
        ConnectionHeader::Close => b"\r\nConnection: close\r\n\r\n",
    });
}

/// The `Date` header value (IMF-fixdate, RFC 9110 §5.6.7), formatted at most once a second per
/// connection. Each connection keeps its own: no shared state to contend on.
pub struct DateCache {
    secs: u64,
    text: [u8; 29],
}

impl DateCache {
    pub fn new() -> DateCache {
        DateCache {
            secs: u64::MAX,
            text: *b"Thu, 01 Jan 1970 00:00:00 GMT",
        }
    }

    pub fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs {
            let s = httpdate::fmt_http_date(now);
            if s.len() == self.text.len() {
                self.text.copy_from_slice(s.as_bytes());
                self.secs = secs;
            }
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: &str) -> Result<Option<Head>, Reject> {
        parse_head(req.as_bytes(), &mut Vec::new())
    }

    fn status(req: &str) -> Status {
        head(req).expect_err(req).status
    }

    #[test]
    fn framing_and_keep_alive() {
        let h = head("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive, h.len), (Framing::None, true, 27));
        let h =
            head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
        let h = h.unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), false));
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.unwrap().unwrap().framing, Framing::Chunked);
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.http10 && !h.keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.unwrap().unwrap().keep_alive);
        assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn content_type_and_expect() {
        let mut ct = Vec::new();
        let req = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Type:  text/csv \r\n\
                   Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        let h = parse_head(req.as_bytes(), &mut ct).unwrap().unwrap();
        assert_eq!(ct, b"text/csv");
        assert!(h.expect_continue);
        let h = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut ct);
        assert!(ct.is_empty() && !h.unwrap().unwrap().expect_continue);
    }

    #[test]
    fn refusals() {
        use Status::*;
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), BadRequest); // no Host
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            BadRequest
        );
        assert_eq!(
            status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            VersionNotSupported
        );
        assert_eq!(
            status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            VersionNotSupported
        );
        assert_eq!(status("GET /\x01 HTTP/1.1\r\n\r\n"), BadRequest);
        let cl = |v: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {v}\r\n\r\n");
        for bad in ["-1", "1,1", "x", "", "99999999999999999999"] {
            assert_eq!(status(&cl(bad)), BadRequest, "{bad:?}");
        }
        let two = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(status(two), BadRequest);
        let te = |v: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n");
        assert_eq!(status(&te("gzip, chunked")), NotImplemented);
        assert_eq!(status(&te("gzip")), NotImplemented);
        assert_eq!(status(&te("chunked, chunked")), NotImplemented);
        let both = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(both), BadRequest);
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BadRequest
        );
        let expect = "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n";
        assert_eq!(status(expect), ExpectationFailed);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(status(&big), HeaderFieldsTooLarge);
        assert_eq!(status(&big[..MAX_HEAD + 10]), HeaderFieldsTooLarge); // still partial
        let many: String = (0..65).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            HeaderFieldsTooLarge
        );
    }

    #[test]
    fn chunks_and_trailers() {
        assert_eq!(
            parse_chunk_line(b"1a;ext=1\r\nxx"),
            Ok(ChunkLine::Size { len: 10, size: 26 })
        );
        assert_eq!(parse_chunk_line(b"1a"), Ok(ChunkLine::Partial));
        assert!(parse_chunk_line(b"zz\r\n").is_err());
        assert_eq!(
            parse_chunk_line(b"5 ;x\r\n"),
            Ok(ChunkLine::Size { len: 6, size: 5 })
        );
        assert_eq!(parse_chunk_line(b"5"), Ok(ChunkLine::Partial));
        assert_eq!(parse_chunk_line(b"5\r"), Ok(ChunkLine::Partial));
        assert_eq!(parse_chunk_line(b""), Ok(ChunkLine::Partial));
        // Lines a proxy could read differently (request smuggling), or without a size.
        for bad in [
            &b"5;a\nb\r\n"[..],
            b"5\n",
            b"\r\n",
            b";x\r\n",
            b"5 \r\n",
            b"5x\r\n",
            b"5;a\x01b\r\n",
            b"5;a\rb\r\n",
            b" 5\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert!(
                parse_chunk_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_trailers(b"\r\nGET"), Ok(Some(2)));
        assert_eq!(parse_trailers(b"X-Sum: 1\r\n\r\n"), Ok(Some(12)));
        assert_eq!(parse_trailers(b"X-Sum: 1\r\n"), Ok(None));
    }

    #[test]
    fn response_head_bytes() {
        let mut out = Vec::new();
        let date = b"Sun, 22 Nov 2026 10:00:00 GMT";
        write_head(
            &mut out,
            Status::Ok,
            b"text/plain",
            13,
            ConnectionHeader::Close,
            date,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\
              Date: Sun, 22 Nov 2026 10:00:00 GMT\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(DateCache::new().now().len(), 29);
    }
}
