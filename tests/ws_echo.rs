//! Integration tests of the WebSocket echo server example, `examples/ws_echo.rs`.
//!
//! Every test starts the example as a child process of its own (`--addr 127.0.0.1:0`, the port
//! read from its start line `ws_echo listening on ws://ADDR`, see `tests/common/example.rs`) and
//! talks to it over loopback with the same `tungstenite` crate the server uses: the clients run
//! in weft Gs over `weft::net::TcpStream` (`weft::run`), one test on a plain OS thread over
//! `std::net::TcpStream`, and raw bytes where a test must send what tungstenite would not.
//!
//! | test | what it proves |
//! |---|---|
//! | `two_hundred_clients_echo_and_close_cleanly` | 200 concurrent clients (Gs) each echo 4 text + 4 binary messages of distinct contents exactly and finish the close handshake (our Close, the server's reply, then EOF); all 200 are open in the server at once; afterwards its fd count returns to its idle value, so every connection's G ended |
//! | `large_fragmented_and_control_messages` | 1 MiB binary and text messages, empty messages, a text message in 3 fragments split inside UTF-8 characters with a ping between the fragments (pong first, then the reassembled text), a 1 MiB binary message in 16 fragments, ping → pong with the same payload |
//! | `oversized_message_closes_with_1009_only_that_connection` | `--max-message 65536`: a message of exactly 65536 bytes echoes; 65537 bytes in one frame, or 80 KiB in 16 KiB fragments, gets Close 1009 and a clean end; a connection open meanwhile and a new one keep working; one log line per failed connection |
//! | `protocol_errors_close_with_the_right_code` | raw frames after a valid handshake: unmasked → 1002, invalid UTF-8 text → 1007, reserved opcode → 1002, continuation without a start → 1002; another connection keeps working; one log line each |
//! | `non_websocket_requests_get_http_errors` | a plain GET → 426 with `Upgrade: websocket` and `Sec-WebSocket-Version: 13`; version 8 → 426; POST → 405; a bad key, HTTP/1.0 and binary garbage → 400; each response complete and followed by EOF; a WebSocket client works afterwards |
//! | `stalled_handshake_is_dropped_after_the_timeout` | `--handshake-timeout-ms 5000`: a client that sends nothing and one that sends half a request are dropped (EOF, no response) no earlier than 5 s and within 5 s more, one log line each; 20 other clients complete handshakes and echoes meanwhile, and when they finish before the deadline (they take milliseconds) both stallers are checked to be still connected then |
//! | `idle_connection_gets_1001_busy_one_stays` | `--idle-timeout-ms 1000`: a silent connection gets Close 1001 no earlier than 1 s (and within 5 s more), one log line; one that sends a message every 100 ms for 2 s (twice the timeout) stays open and closes cleanly |
//! | `plain_thread_client_round_trips` | tungstenite over `std::net::TcpStream` on an OS thread against the weft server: text, binary, ping, close; nothing logged |
//! | `bad_flags_exit_2_and_unbindable_address_exits_1` | the command line: `--help` (exit 0, lists the flags), unknown flag, bad number, missing value (exit 2, one line on stderr), address in use (exit 1) |
//!
//! Rules: every client socket has read and write timeouts ([`IO_TIMEOUT`]) and every test a
//! watchdog, so a broken server fails a test instead of hanging the suite; no sleep is used as
//! synchronisation (sleeps only pace the deliberately slow client of the idle test and the
//! bounded polls for the server's fd count and log lines). Lower time bounds are exact (a
//! timeout never fires early); upper bounds are generous (a loaded 2-core machine).

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::{Bytes, Error, Message, WebSocket};

mod common;
use common::example::{
    check_command_line, pattern, proc_fd_count, run_clients, std_connect, weft_connect, Example,
    GENEROUS, SETTLE, TEST_LIMIT,
};
use common::watchdog;

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------------------------

/// Start `ws_echo --addr 127.0.0.1:0 ARGS...`.
fn start_server(args: &[&str]) -> Example {
    let ex = Example::start("ws_echo", args);
    assert!(
        ex.start_line.starts_with("ws_echo listening on ws://"),
        "start line {:?}",
        ex.start_line
    );
    ex
}

/// The client handshake (tungstenite's `client`) over any stream; checks the 101 response.
fn handshake<S: Read + Write>(addr: SocketAddr, stream: S) -> Result<WebSocket<S>, String> {
    let (ws, resp) = tungstenite::client(format!("ws://{addr}/echo"), stream)
        .map_err(|e| format!("handshake: {e}"))?;
    if resp.status() != 101 {
        return Err(format!("handshake: status {}", resp.status()));
    }
    match resp.headers().get("server").and_then(|v| v.to_str().ok()) {
        Some("ws_echo (weft)") => Ok(ws),
        other => Err(format!("handshake: Server header {other:?}")),
    }
}

/// Connect and handshake over a weft socket (call in a G).
fn connect(addr: SocketAddr) -> Result<WebSocket<weft::net::TcpStream>, String> {
    handshake(addr, weft_connect(addr)?)
}

/// A short description of a message, for failure messages.
fn describe(m: &Message) -> String {
    let (kind, data): (&str, &[u8]) = match m {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
        Message::Ping(b) => ("ping", b),
        Message::Pong(b) => ("pong", b),
        Message::Close(c) => return format!("close {c:?}"),
        Message::Frame(f) => return format!("raw frame {f}"),
    };
    let head = String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned();
    format!("{kind} of {} bytes {head:?}...", data.len())
}

/// Read one message; anything but `want` is an error.
fn expect<S: Read + Write>(ws: &mut WebSocket<S>, want: &Message) -> Result<(), String> {
    match ws.read() {
        Ok(got) if got == *want => Ok(()),
        Ok(got) => Err(format!(
            "expected {}, got {}",
            describe(want),
            describe(&got)
        )),
        Err(e) => Err(format!("expected {}, got error {e}", describe(want))),
    }
}

/// Send `msg` and check that the same message comes back.
fn roundtrip<S: Read + Write>(ws: &mut WebSocket<S>, msg: Message) -> Result<(), String> {
    ws.send(msg.clone())
        .map_err(|e| format!("sending {}: {e}", describe(&msg)))?;
    expect(ws, &msg)
}

/// The client's side of a clean close: send Close, read the server's reply, then EOF
/// (`ConnectionClosed`: the server closed the TCP connection).
fn close_cleanly<S: Read + Write>(ws: &mut WebSocket<S>) -> Result<(), String> {
    ws.close(None).map_err(|e| format!("sending Close: {e}"))?;
    let mut replied = false;
    loop {
        match ws.read() {
            Ok(Message::Close(_)) if !replied => replied = true,
            Ok(m) => return Err(format!("after our Close: {}", describe(&m))),
            Err(Error::ConnectionClosed) if replied => return Ok(()),
            Err(e) => return Err(format!("after our Close (reply seen: {replied}): {e}")),
        }
    }
}

/// Read until the server's Close frame: it must carry `code`; then the clean end (our reply is
/// sent by tungstenite, the server closes, `ConnectionClosed`). Returns the reason.
fn expect_close<S: Read + Write>(ws: &mut WebSocket<S>, code: CloseCode) -> Result<String, String> {
    let reason = match ws.read() {
        Ok(Message::Close(Some(f))) if f.code == code => f.reason.to_string(),
        Ok(m) => return Err(format!("expected Close {code}, got {}", describe(&m))),
        Err(e) => return Err(format!("expected Close {code}, got error {e}")),
    };
    match ws.read() {
        Err(Error::ConnectionClosed) => Ok(reason),
        Ok(m) => Err(format!("after Close {code}: {}", describe(&m))),
        Err(e) => Err(format!("after Close {code}: error {e}")),
    }
}

/// Deterministic text of about `len` bytes with multi-byte characters, starting with `tag`.
fn text(tag: &str, seed: u64, len: usize) -> String {
    const ALPHABET: [&str; 8] = ["a", "Z", " ", "é", "€", "𝄞", "7", "\u{7ff}"];
    let mut s = String::with_capacity(len + 8);
    s.push_str(tag);
    for b in pattern(seed, len) {
        if s.len() >= len {
            break;
        }
        s.push_str(ALPHABET[(b % 8) as usize]);
    }
    s
}

/// Wait (bounded) until the server has logged `n` lines; all of them must contain `needle`, and
/// there must be no other line. Returns the lines.
#[track_caller]
fn expect_log_lines(server: &mut Example, needle: &str, n: usize) -> Vec<String> {
    let lines = server.wait_log_lines(n, |_| true, SETTLE);
    if !lines.iter().all(|l| l.contains(needle)) {
        server.fail(&format!("expected {n} log line(s) containing {needle:?}"));
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// 1. Many clients
// ---------------------------------------------------------------------------------------------

const CONNS: usize = 200;
const MSGS: usize = 8;

/// Client `c`'s message `m`: text for even `m`, binary for odd, 1 B to ~6 KiB, distinct per
/// client and message (the tag and the seed).
fn message_for(c: usize, m: usize) -> Message {
    let seed = (c * MSGS + m) as u64 + 1;
    let len = 1 + (c * 7919 + m * 104_729) % 6000;
    if m % 2 == 0 {
        Message::text(text(&format!("c{c}m{m}:"), seed, len))
    } else {
        let mut b = format!("c{c}m{m}:").into_bytes();
        b.extend(pattern(seed, len));
        Message::binary(b)
    }
}

#[test]
fn two_hundred_clients_echo_and_close_cleanly() {
    let _dog = watchdog("two_hundred_clients_echo_and_close_cleanly", TEST_LIMIT);
    let mut server = start_server(&["--procs", "2"]);
    let (addr, pid) = (server.addr, server.pid() as u32);
    let idle_fds = server.fd_count();
    let started = Instant::now();
    let (failures, open_fds) = weft::run(move || {
        // All connected, then the server's fds are counted, then the messages.
        let connected = Arc::new(weft::sync::Barrier::new(CONNS + 1));
        let counted = Arc::new(weft::sync::Barrier::new(CONNS + 1));
        let (b1, b2) = (Arc::clone(&connected), Arc::clone(&counted));
        let clients = weft::go!(move || {
            run_clients(CONNS, move |c| {
                let ws = connect(addr);
                // Wait even after a failure, so that the barriers always fill.
                b1.wait();
                b2.wait();
                let mut ws = ws?;
                for m in 0..MSGS {
                    roundtrip(&mut ws, message_for(c, m))
                        .map_err(|e| format!("message {m}: {e}"))?;
                }
                close_cleanly(&mut ws)
            })
        });
        connected.wait();
        let open = weft::blocking(|| proc_fd_count(pid));
        counted.wait();
        (clients.join().expect("client spawner"), open)
    });
    let elapsed = started.elapsed();
    server.assert_no_failures(&failures);
    assert!(
        open_fds >= idle_fds + CONNS,
        "with {CONNS} clients connected the server had {open_fds} fds (idle: {idle_fds})"
    );
    // Every server G has returned and dropped its socket: the fd count comes back.
    server.wait_fds_at_most(idle_fds, SETTLE);
    assert_eq!(server.stderr_text(), "", "clean closes log nothing");
    eprintln!("note: {CONNS} clients x {MSGS} messages + close handshakes in {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Large, fragmented, control
// ---------------------------------------------------------------------------------------------

/// A raw data frame (tungstenite masks it, as a client must).
fn frame(data: &[u8], op: Data, fin: bool) -> Message {
    Message::Frame(Frame::message(
        Bytes::copy_from_slice(data),
        OpCode::Data(op),
        fin,
    ))
}

#[test]
fn large_fragmented_and_control_messages() {
    let _dog = watchdog("large_fragmented_and_control_messages", TEST_LIMIT);
    let server = start_server(&[]);
    let addr = server.addr;
    let res = weft::run(move || -> Result<(), String> {
        let mut ws = connect(addr)?;
        roundtrip(&mut ws, Message::binary(pattern(1, MIB)))?;
        roundtrip(&mut ws, Message::text(text("big text:", 2, MIB + 3)))?;
        roundtrip(&mut ws, Message::text(""))?;
        roundtrip(&mut ws, Message::binary(Vec::new()))?;

        // Ping: the pong carries the same payload.
        let ping = Bytes::from_static(b"are you there?");
        ws.send(Message::Ping(ping.clone()))
            .map_err(|e| format!("ping: {e}"))?;
        expect(&mut ws, &Message::Pong(ping))?;

        // A text message in 3 fragments cut inside multi-byte characters, with a ping between
        // the first two (control frames may interleave): pong first, then the whole text.
        let whole = text("fragmented:", 3, 100_000);
        let bytes = whole.as_bytes();
        let cut1 = (1..)
            .map(|i| 30_000 + i)
            .find(|&i| !whole.is_char_boundary(i))
            .unwrap();
        let cut2 = (1..)
            .map(|i| 70_000 + i)
            .find(|&i| !whole.is_char_boundary(i))
            .unwrap();
        let mid = Bytes::from_static(b"mid-message ping");
        let parts = [
            frame(&bytes[..cut1], Data::Text, false),
            Message::Ping(mid.clone()),
            frame(&bytes[cut1..cut2], Data::Continue, false),
            frame(&bytes[cut2..], Data::Continue, true),
        ];
        for p in parts {
            ws.write(p).map_err(|e| format!("writing fragments: {e}"))?;
        }
        ws.flush().map_err(|e| format!("flush: {e}"))?;
        expect(&mut ws, &Message::Pong(mid))?;
        expect(&mut ws, &Message::text(whole))?;

        // 1 MiB binary in 16 fragments comes back as one message.
        let big = pattern(4, MIB);
        for (i, chunk) in big.chunks(MIB / 16).enumerate() {
            let op = if i == 0 { Data::Binary } else { Data::Continue };
            ws.write(frame(chunk, op, i == 15))
                .map_err(|e| format!("fragment {i}: {e}"))?;
        }
        ws.flush().map_err(|e| format!("flush: {e}"))?;
        expect(&mut ws, &Message::binary(big))?;

        close_cleanly(&mut ws)
    });
    if let Err(e) = res {
        panic!("{e}\n--- server stderr ---\n{}", server.stderr_text());
    }
    assert_eq!(server.stderr_text(), "");
}

// ---------------------------------------------------------------------------------------------
// 3. Limits and protocol errors
// ---------------------------------------------------------------------------------------------

#[test]
fn oversized_message_closes_with_1009_only_that_connection() {
    let _dog = watchdog(
        "oversized_message_closes_with_1009_only_that_connection",
        TEST_LIMIT,
    );
    const MAX: usize = 65_536;
    let mut server = start_server(&["--max-message", "65536"]);
    let addr = server.addr;
    let res = weft::run(move || -> Result<(), String> {
        let mut bystander = connect(addr)?;
        roundtrip(&mut bystander, Message::text("before"))?;

        // Exactly at the limit: served. One byte over, in one frame: 1009.
        let mut big = connect(addr)?;
        roundtrip(&mut big, Message::binary(pattern(5, MAX)))?;
        big.send(Message::binary(pattern(6, MAX + 1)))
            .map_err(|e| format!("sending {} bytes: {e}", MAX + 1))?;
        let reason = expect_close(&mut big, CloseCode::Size)?;
        if reason.is_empty() {
            return Err("Close 1009 without a reason".into());
        }

        // Over the limit in fragments of 16 KiB (each frame is small): 1009 too.
        let mut frag = connect(addr)?;
        let data = vec![b'x'; 80 << 10];
        for (i, chunk) in data.chunks(16 << 10).enumerate() {
            let op = if i == 0 { Data::Text } else { Data::Continue };
            frag.write(frame(chunk, op, i == 4))
                .map_err(|e| format!("fragment {i}: {e}"))?;
        }
        frag.flush().map_err(|e| format!("flush: {e}"))?;
        expect_close(&mut frag, CloseCode::Size)?;

        // The connection open all along, and a new one, still work.
        roundtrip(&mut bystander, Message::binary(pattern(7, MAX)))?;
        let mut fresh = connect(addr)?;
        roundtrip(&mut fresh, Message::text("after"))?;
        close_cleanly(&mut fresh)?;
        close_cleanly(&mut bystander)
    });
    if let Err(e) = res {
        panic!("{e}\n--- server stderr ---\n{}", server.stderr_text());
    }
    let lines = expect_log_lines(&mut server, "closing with 1009", 2);
    assert!(
        lines.iter().all(|l| l.contains("Message too long")),
        "{lines:?}"
    );
}

/// A masked client frame header + payload, mask key 0 (the payload goes as it is).
fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut v = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    v.extend_from_slice(payload);
    v
}

#[test]
fn protocol_errors_close_with_the_right_code() {
    let _dog = watchdog("protocol_errors_close_with_the_right_code", TEST_LIMIT);
    let mut server = start_server(&[]);
    let addr = server.addr;
    let cases: [(&str, Vec<u8>, CloseCode); 4] = [
        // FIN + text, no mask bit: servers must fail the connection (RFC 6455 §5.1).
        (
            "unmasked",
            vec![0x81, 0x02, b'h', b'i'],
            CloseCode::Protocol,
        ),
        (
            "bad utf-8",
            raw_frame(0x81, &[b'o', 0xC3, 0x28]),
            CloseCode::Invalid,
        ),
        (
            "reserved opcode",
            raw_frame(0x83, b"?"),
            CloseCode::Protocol,
        ),
        (
            "lone continuation",
            raw_frame(0x80, b"tail"),
            CloseCode::Protocol,
        ),
    ];
    let n = cases.len();
    let res = weft::run(move || -> Result<(), String> {
        let mut good = connect(addr)?;
        roundtrip(&mut good, Message::text("before"))?;
        for (name, bytes, code) in cases {
            let mut bad = connect(addr)?;
            // Around tungstenite: straight onto the socket.
            bad.get_mut()
                .write_all(&bytes)
                .map_err(|e| format!("{name}: write: {e}"))?;
            expect_close(&mut bad, code).map_err(|e| format!("{name}: {e}"))?;
            roundtrip(&mut good, Message::text(format!("after {name}")))?;
        }
        close_cleanly(&mut good)
    });
    if let Err(e) = res {
        panic!("{e}\n--- server stderr ---\n{}", server.stderr_text());
    }
    let lines = expect_log_lines(&mut server, "closing with 100", n);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("closing with 1007"))
            .count(),
        1,
        "{lines:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Requests that are not WebSocket upgrades
// ---------------------------------------------------------------------------------------------

/// Send `request` raw and read the whole response until the server closes (EOF).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = std_connect(addr);
    s.write_all(request).expect("write request");
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) => panic!(
            "reading the response to {:?}: {e} (after {:?})",
            String::from_utf8_lossy(request),
            String::from_utf8_lossy(&out)
        ),
    }
    String::from_utf8(out).expect("response is text")
}

/// Check an error response: status line, headers (case-insensitive names), a body of
/// `Content-Length` bytes, nothing after it.
fn check_error_response(resp: &str, status: &str, headers: &[(&str, &str)]) {
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {resp:?}"));
    let mut lines = head.split("\r\n");
    assert_eq!(
        lines.next(),
        Some(format!("HTTP/1.1 {status}").as_str()),
        "{resp:?}"
    );
    let fields: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    for (name, value) in headers {
        assert_eq!(get(&name.to_ascii_lowercase()), Some(*value), "{resp:?}");
    }
    assert_eq!(
        get("content-length").and_then(|v| v.parse().ok()),
        Some(body.len()),
        "{resp:?}"
    );
    assert!(
        get("connection").is_some_and(|v| v.contains("close")),
        "{resp:?}"
    );
}

#[test]
fn non_websocket_requests_get_http_errors() {
    let _dog = watchdog("non_websocket_requests_get_http_errors", TEST_LIMIT);
    let mut server = start_server(&[]);
    let addr = server.addr;
    let upgrade = |extra: &str| {
        format!(
            "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n"
        )
    };
    // (name, request, status line, headers the response must have)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "plain GET",
            b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".to_vec(),
            "426 Upgrade Required",
            vec![("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
        ),
        (
            "version 8",
            upgrade("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
                .into_bytes(),
            "426 Upgrade Required",
            vec![("Sec-WebSocket-Version", "13")],
        ),
        (
            "POST with a body",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            "405 Method Not Allowed",
            vec![("Allow", "GET")],
        ),
        (
            "bad key",
            upgrade("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n").into_bytes(),
            "400 Bad Request",
            vec![],
        ),
        (
            "HTTP/1.0",
            b"GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec(),
            "400 Bad Request",
            vec![],
        ),
        (
            "binary garbage",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(),
            "400 Bad Request",
            vec![],
        ),
    ];
    let n = cases.len();
    for (name, request, status, headers) in cases {
        let resp = raw_exchange(addr, &request);
        eprintln!("{name}: {:?}", resp.lines().next());
        check_error_response(&resp, status, &headers);
    }
    // Still serving.
    let res = weft::run(move || -> Result<(), String> {
        let mut ws = connect(addr)?;
        roundtrip(&mut ws, Message::text("still here"))?;
        close_cleanly(&mut ws)
    });
    if let Err(e) = res {
        panic!("{e}\n--- server stderr ---\n{}", server.stderr_text());
    }
    expect_log_lines(&mut server, "handshake refused", n);
}

// ---------------------------------------------------------------------------------------------
// 5. Timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn stalled_handshake_is_dropped_after_the_timeout() {
    let _dog = watchdog("stalled_handshake_is_dropped_after_the_timeout", TEST_LIMIT);
    const TIMEOUT: Duration = Duration::from_millis(5000);
    let mut server = start_server(&["--handshake-timeout-ms", "5000"]);
    let addr = server.addr;
    // One staller sends nothing, the other half a request. `t0` is taken before they connect, so
    // the server's deadlines for them start after it.
    let t0 = Instant::now();
    let silent = std_connect(addr);
    let mut partial = std_connect(addr);
    partial
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websock")
        .expect("write");
    // Meanwhile 20 clients come and go.
    let failures = weft::run(move || {
        run_clients(20, move |c| {
            let mut ws = connect(addr)?;
            roundtrip(&mut ws, message_for(c, 0))?;
            roundtrip(&mut ws, message_for(c, 1))?;
            close_cleanly(&mut ws)
        })
    });
    server.assert_no_failures(&failures);
    // They did so during the stall: both stallers are still connected. A staller found dropped
    // is a failure only if its deadline cannot have passed yet; if the 20 clients took longer
    // than the timeout (a badly stalled machine), there is nothing to check here.
    for s in [&silent, &partial] {
        s.set_nonblocking(true).expect("nonblocking");
        let mut b = [0u8; 1];
        let mut r: &std::net::TcpStream = s;
        let res = r.read(&mut b);
        let elapsed = t0.elapsed();
        match res {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            _ if elapsed >= TIMEOUT => common::note(format_args!(
                "the other clients took {elapsed:?}, past the handshake timeout: staller not \
                 checked"
            )),
            other => server.fail(&format!(
                "staller dropped after {elapsed:?} ({other:?}), before the {TIMEOUT:?} timeout"
            )),
        }
        s.set_nonblocking(false).expect("blocking");
    }
    // Then both are dropped: EOF, no response, no earlier than the timeout.
    for (name, mut s) in [("silent", silent), ("partial", partial)] {
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        let elapsed = t0.elapsed();
        assert!(
            matches!(r, Ok(0)) && buf.is_empty(),
            "{name}: expected EOF, got {r:?} {:?}",
            String::from_utf8_lossy(&buf)
        );
        // Exact: `t0` was taken before connecting, so the server's deadline started after it.
        assert!(elapsed >= TIMEOUT, "{name}: dropped after {elapsed:?}");
        // A hang guard only.
        assert!(
            elapsed < TIMEOUT + GENEROUS,
            "{name}: dropped after {elapsed:?}"
        );
    }
    expect_log_lines(&mut server, "no WebSocket handshake within 5000 ms", 2);
}

#[test]
fn idle_connection_gets_1001_busy_one_stays() {
    let _dog = watchdog("idle_connection_gets_1001_busy_one_stays", TEST_LIMIT);
    // The busy client sends a message every PACE for ROUNDS · PACE, twice the idle timeout: a
    // gap of 10 PACEs (a stalled machine) would be needed to make it look idle.
    const IDLE: Duration = Duration::from_millis(1000);
    const PACE: Duration = Duration::from_millis(100);
    const ROUNDS: usize = 20;
    let mut server = start_server(&["--idle-timeout-ms", "1000"]);
    let addr = server.addr;
    let failures = weft::run(move || {
        run_clients(2, move |c| {
            let t0 = Instant::now();
            let mut ws = connect(addr)?;
            if c == 0 {
                // Silent: the server closes with 1001, no earlier than the idle timeout.
                expect_close(&mut ws, CloseCode::Away)?;
                let elapsed = t0.elapsed();
                if elapsed < IDLE || elapsed > IDLE + GENEROUS {
                    return Err(format!("idle close after {elapsed:?}"));
                }
                Ok(())
            } else {
                // Busy: a message every PACE keeps it open.
                for m in 0..ROUNDS {
                    // Pacing a deliberately slow client.
                    weft::sleep(PACE);
                    roundtrip(&mut ws, message_for(c, m))?;
                }
                close_cleanly(&mut ws)
            }
        })
    });
    server.assert_no_failures(&failures);
    expect_log_lines(&mut server, "closing with 1001", 1);
}

// ---------------------------------------------------------------------------------------------
// 6. A plain-thread client
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_thread_client_round_trips() {
    let _dog = watchdog("plain_thread_client_round_trips", TEST_LIMIT);
    let server = start_server(&[]);
    let addr = server.addr;
    // An OS thread, std's blocking socket, the same crate: no weft on this side.
    let res = std::thread::spawn(move || -> Result<(), String> {
        let mut ws = handshake(addr, std_connect(addr))?;
        roundtrip(&mut ws, Message::text(text("from a thread:", 9, 5000)))?;
        roundtrip(&mut ws, Message::binary(pattern(10, 300_000)))?;
        let ping = Bytes::from_static(b"thread ping");
        ws.send(Message::Ping(ping.clone()))
            .map_err(|e| format!("ping: {e}"))?;
        expect(&mut ws, &Message::Pong(ping))?;
        close_cleanly(&mut ws)
    })
    .join()
    .expect("client thread");
    if let Err(e) = res {
        panic!("{e}\n--- server stderr ---\n{}", server.stderr_text());
    }
    assert_eq!(server.stderr_text(), "");
}

// ---------------------------------------------------------------------------------------------
// 7. Command line
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_flags_exit_2_and_unbindable_address_exits_1() {
    let _dog = watchdog(
        "bad_flags_exit_2_and_unbindable_address_exits_1",
        TEST_LIMIT,
    );
    let flags = [
        "--addr",
        "--procs",
        "--max-message",
        "--handshake-timeout-ms",
        "--idle-timeout-ms",
    ];
    let bad: [&[&str]; 4] = [
        &["--bogus"],
        &["--procs", "many"],
        &["--max-message", "0"],
        &["--handshake-timeout-ms"],
    ];
    for (args, err) in bad.iter().zip(check_command_line("ws_echo", &flags, &bad)) {
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
