//! Integration tests of the chat server example, `examples/chat.rs`.
//!
//! Every test starts the example as a child process of its own (`common::example`: `--addr
//! 127.0.0.1:0`, the port read from its start line `chat listening on ADDR`) and talks to it over
//! loopback with plain line-based clients: weft sockets in Gs under `weft::run`, each with a read
//! timeout, so a broken server fails a test instead of hanging it.
//!
//! | test | what it proves |
//! |---|---|
//! | `three_clients_protocol` | greeting and `guest-N` names; `* NAME joined` / `* NAME left` to the others only; `/nick` (rename notice, taken, invalid, reserved `guest-`), `/who`, `/quit` (`* bye`, then EOF); `//text`, unknown commands, blank lines, lossy UTF-8 and control characters; chat lines reach the others exactly once and are never echoed; two clients' concurrent bursts arrive complete and in per-sender order |
//! | `fifty_clients_in_gs` | 50 concurrent clients (Gs) × 40 lines each, sent at once, to a server on one P (`--procs 1`): every client gets every other client's lines exactly once, in per-sender order, none of its own; all quit cleanly; nothing logged |
//! | `slow_client_is_dropped_others_unaffected` | a client that never reads (tiny `SO_RCVBUF`) while two others talk in rounds of 64 lines of 1 KiB each until it is dropped (a few MiB: the kernel buffers that much first): the talkers and a listener get every line, in order, each round within a bound; the slow one is disconnected and the room told `* NAME dropped (too slow)` exactly once; one log line; the server goes on serving |
//! | `overlong_line_disconnects` | `--max-line 64`: 64 bytes (with `\n` or `\r\n`) pass; 65 get `! line too long (max 64 bytes); bye` and the connection closed; 1 MiB without a newline gets the same, and the server's peak resident memory grows by less than 512 KiB meanwhile (it does not buffer the line); the room is told `* NAME dropped (line too long)` each time; the others go on chatting; one log line per long-line client |
//! | `flags_and_bind_errors` | `--help` lists the flags (exit 0); a bad flag or value: `chat: ...` naming `--help` on stderr, nothing on stdout, exit 2; an address in use: `chat: cannot listen on ...`, exit 1 |
//! | `reset_mid_conversation` | a client that resets (`SO_LINGER` 0) with unread lines queued for it: the others get all of its lines, then `* NAME left`; the room goes on; at most one log line, naming it |
//!
//! Every test that serves clients ends with every client gone and checks that the server's fd
//! count is back to its idle value (bounded poll), so no connection, G-held socket or queue leaks.
//! The idle value is the count at start plus one: weft's `close()` points a closed fd number at a
//! placeholder socket it creates on first use (net/src/fd.rs), and each test makes a first client
//! come and go before measuring.
//!
//! Only the slow-client test runs the server with its default `--queue-wait-ms` (100 ms: how long
//! the room waits for a full queue before it drops that client as too slow). The others are not
//! about slowness and give it [`QUEUE_WAIT`] (2 s), so that a healthy client whose G or thread the
//! OS did not run for a while on a loaded machine is not dropped.
//!
//! Rules: every socket read has a timeout and every test a watchdog; no sleep is used as
//! synchronisation (sleeps only pace the bounded polls for the server's fds and log lines); bounds
//! are generous (a loaded 2-core machine).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft::chan;
use weft::net::TcpStream;

mod common;
use common::example::{
    check_command_line, proc_reset_peak_rss, proc_status_kib, set_io_timeouts, weft_connect,
    Example, IO_TIMEOUT, SETTLE, TEST_LIMIT,
};
use common::watchdog;

/// `--queue-wait-ms` for the tests that are not about slow clients (module doc).
const QUEUE_WAIT: &str = "2000";

/// The greeting's tail after the name.
const GREETING_TAIL: &str = " (commands: /nick NAME, /who, /quit)";

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// Start `chat --addr 127.0.0.1:0 ARGS...` (with `--queue-wait-ms` [`QUEUE_WAIT`] unless ARGS
/// set it), let one client come and go, and return the server with its idle fd count (checked to
/// be reached).
fn start(args: &[&str]) -> (Example, usize) {
    let mut all = args.to_vec();
    if !args.contains(&"--queue-wait-ms") {
        all.extend(["--queue-wait-ms", QUEUE_WAIT]);
    }
    let mut server = Example::start("chat", &all);
    let at_start = server.fd_count();
    clients(&mut server, move |addr| {
        let mut c = Client::connect(addr);
        c.send("/quit");
        c.expect("* bye");
        c.expect_end();
    });
    // + the placeholder socket of weft's first `close()` (module doc).
    let idle = at_start + 1;
    server.wait_fds_at_most(idle, SETTLE);
    (server, idle)
}

/// Run the client side `body` in a G (`weft::run`); if it panics, fail with the server's stderr
/// too.
fn clients<T: Send + 'static>(
    server: &mut Example,
    body: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> T {
    let addr = server.addr;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        weft::run(move || body(addr))
    })) {
        Ok(v) => v,
        Err(p) => {
            let msg = common::payload_str(&*p).to_string();
            server.fail(&format!("client side failed: {msg}"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A line-based client (in a G)
// ---------------------------------------------------------------------------------------------

/// One chat client: a read handle with a timeout behind a `BufReader`, a write handle.
struct Client {
    name: String,
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    /// Connect and read the greeting, which names us.
    fn connect(addr: SocketAddr) -> Client {
        Client::over(weft_connect(addr).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Become a client over a connected stream: set timeouts, read the greeting.
    fn over(s: TcpStream) -> Client {
        let w = s.try_clone().expect("try_clone");
        // Timeouts are per handle: both get them.
        set_io_timeouts(&s).expect("timeouts");
        set_io_timeouts(&w).expect("timeouts");
        let mut c = Client {
            name: "(connecting)".into(),
            r: BufReader::new(s),
            w,
        };
        let greeting = c.line();
        let name = greeting
            .strip_prefix("* you are ")
            .and_then(|rest| rest.strip_suffix(GREETING_TAIL))
            .unwrap_or_else(|| panic!("unexpected greeting {greeting:?}"));
        assert!(name.starts_with("guest-"), "greeting {greeting:?}");
        c.name = name.to_string();
        c
    }

    /// Another write handle (for a G that writes while this one reads), with its own timeouts.
    fn writer(&self) -> TcpStream {
        let w = self.w.try_clone().expect("try_clone");
        set_io_timeouts(&w).expect("timeouts");
        w
    }

    /// Send one line (a `\n` is added).
    fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Send bytes as they are.
    fn send_raw(&mut self, bytes: &[u8]) {
        self.w
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: write: {e}", self.name));
    }

    /// `/nick NAME`, and check the reply.
    fn nick(&mut self, name: &str) {
        self.send(&format!("/nick {name}"));
        self.expect(&format!("* you are now {name}"));
        self.name = name.to_string();
    }

    /// The next line without its `\n`, `None` at EOF.
    fn next(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        if self.r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        assert_eq!(
            buf.pop(),
            Some(b'\n'),
            "{}: a partial line at EOF",
            self.name
        );
        let line = String::from_utf8(buf)
            .unwrap_or_else(|e| panic!("{}: the server sent invalid UTF-8: {e}", self.name));
        Ok(Some(line))
    }

    /// The next line; panics on EOF, error or timeout.
    fn line(&mut self) -> String {
        match self.next() {
            Ok(Some(l)) => l,
            Ok(None) => panic!("{}: EOF where a line was expected", self.name),
            Err(e) => panic!("{}: reading a line: {e}", self.name),
        }
    }

    /// The next line must be `want`.
    fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{}: unexpected line", self.name);
    }

    /// The server closed the connection: EOF (or a reset, when our unread data made its close
    /// send RST) with no line before it.
    fn expect_end(&mut self) {
        match self.next() {
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(Some(l)) => panic!("{}: line {l:?} where the end was expected", self.name),
            Err(e) => panic!("{}: waiting for the end: {e}", self.name),
        }
    }

    /// `/quit`: `* bye` (after any `* NAME left` notices still on the way), then the end.
    fn quit(mut self) {
        self.send("/quit");
        loop {
            let l = self.line();
            if l == "* bye" {
                break;
            }
            assert!(l.ends_with(" left"), "{}: unexpected {l:?}", self.name);
        }
        self.expect_end();
    }

    /// `/who`, and check the reply lists exactly `names` (sorted by the server).
    fn who(&mut self, names: &[&str]) {
        self.send("/who");
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        self.expect(&format!(
            "* in the room ({}): {}",
            sorted.len(),
            sorted.join(", ")
        ));
    }
}

/// `me` takes the name `new`; each of `others` sees `* OLD is now NEW`.
fn rename(me: &mut Client, new: &str, others: &mut [&mut Client]) {
    let old = me.name.clone();
    me.nick(new);
    for o in others {
        o.expect(&format!("* {old} is now {new}"));
    }
}

/// Counts chat lines `NAME: TAG SEQ` per sender and checks that each sender's sequence numbers
/// arrive as 0, 1, 2, ... (per-sender order, no loss before the last one seen, no duplicate).
#[derive(Default)]
struct Tally {
    next: HashMap<String, usize>,
    total: usize,
}

impl Tally {
    /// Count `line` if it is a chat line; returns whether it was. `me` must never be the sender.
    fn add(&mut self, me: &str, line: &str) -> bool {
        let Some((from, text)) = line.split_once(": ") else {
            return false;
        };
        if line.starts_with("* ") || line.starts_with("! ") {
            return false;
        }
        assert_ne!(from, me, "{me}: got its own line back: {line:?}");
        let seq: usize = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{me}: unexpected chat line {line:?}"));
        let next = self.next.entry(from.to_string()).or_default();
        assert_eq!(
            seq, *next,
            "{me}: out of order or duplicate from {from}: {line:?}"
        );
        *next += 1;
        self.total += 1;
        true
    }
}

/// `count` chat lines `TAG SEQ PADDING` with SEQ from `first`, as one buffer.
fn burst(tag: &str, first: usize, count: usize, pad: usize) -> Vec<u8> {
    let padding = "x".repeat(pad);
    let mut out = Vec::new();
    for i in first..first + count {
        out.extend_from_slice(format!("{tag} {i} {padding}\n").as_bytes());
    }
    out
}

/// Join a G, re-raising its panic in the caller.
fn join<T>(h: weft::JoinHandle<T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn three_clients_protocol() {
    let _dog = watchdog("three_clients_protocol", TEST_LIMIT);
    let (mut server, idle) = start(&[]);
    clients(&mut server, move |addr| {
        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        a.expect(&format!("* {} joined", b.name));
        let mut c = Client::connect(addr);
        a.expect(&format!("* {} joined", c.name));
        b.expect(&format!("* {} joined", c.name));
        let guests = [a.name.clone(), b.name.clone(), c.name.clone()];
        a.who(&[&guests[0], &guests[1], &guests[2]]);

        // Renames: the client is told, the others see the notice.
        rename(&mut a, "alice", &mut [&mut b, &mut c]);
        rename(&mut b, "bob", &mut [&mut a, &mut c]);
        rename(&mut c, "carol", &mut [&mut a, &mut b]);
        // Taken (ignoring case), invalid, reserved, missing: refused, nobody else hears of it.
        b.send("/nick ALICE");
        b.expect("! name taken: ALICE");
        let bad = "(1 to 24 letters, digits, '-', '_', '.'; not guest-...)";
        for name in ["bad name", "guest-99", "", "x".repeat(25).as_str(), "été"] {
            b.send(&format!("/nick {name}"));
            b.expect(&format!("! bad name: {name:?} {bad}"));
        }
        rename(&mut b, "Bob_2.x-y", &mut [&mut a, &mut c]);
        rename(&mut b, "bob", &mut [&mut a, &mut c]);
        a.who(&["alice", "bob", "carol"]);

        // Chat: to the others, never back. `/who` right after proves nothing was queued for a.
        a.send("hello, room");
        b.expect("alice: hello, room");
        c.expect("alice: hello, room");
        a.who(&["alice", "bob", "carol"]);
        // Blank lines are ignored, `//` escapes a slash, unknown commands are errors to the
        // sender only, bad UTF-8 and control characters arrive as U+FFFD, `\r\n` is a newline.
        a.send_raw(
            b"\n  \n//not a command\n/frobnicate now\ncaf\xc3\xa9 caf\xff \x1b[31m\ttab\r\n",
        );
        a.expect("! unknown command /frobnicate (commands: /nick NAME, /who, /quit)");
        for o in [&mut b, &mut c] {
            o.expect("alice: /not a command");
            o.expect("alice: café caf\u{FFFD} \u{FFFD}[31m\ttab");
        }

        // Two concurrent bursts: c gets both complete and in per-sender order; a and b each
        // get the other's, none of their own (their next `/who` reply is the line after).
        const N: usize = 500;
        let (ab, bb) = (burst("a", 0, N, 20), burst("b", 0, N, 20));
        let mut aw = a.writer();
        let mut bw = b.writer();
        let wa = weft::go!(move || aw.write_all(&ab).expect("a's burst"));
        let wb = weft::go!(move || bw.write_all(&bb).expect("b's burst"));
        let rb = weft::go!(move || {
            let mut t = Tally::default();
            while t.total < N {
                let l = b.line();
                assert!(t.add("bob", &l), "bob: unexpected line {l:?}");
            }
            b
        });
        let mut t = Tally::default();
        while t.total < N {
            let l = a.line();
            assert!(t.add("alice", &l), "alice: unexpected line {l:?}");
        }
        let mut t = Tally::default();
        while t.total < 2 * N {
            let l = c.line();
            assert!(t.add("carol", &l), "carol: unexpected line {l:?}");
        }
        assert_eq!(t.next.get("alice"), Some(&N));
        assert_eq!(t.next.get("bob"), Some(&N));
        join(wa);
        join(wb);
        let mut b = join(rb);
        a.who(&["alice", "bob", "carol"]);
        b.who(&["alice", "bob", "carol"]);

        // /quit: bye, then the server closes; the others are told.
        c.send("/quit");
        c.expect("* bye");
        c.expect_end();
        a.expect("* carol left");
        b.expect("* carol left");
        // EOF without /quit: a plain leave too.
        drop(b);
        a.expect("* bob left");
        a.who(&["alice"]);
        a.send("/quit");
        a.expect("* bye");
        a.expect_end();
    });
    server.wait_fds_at_most(idle, SETTLE);
    assert_eq!(server.stderr_text(), "", "normal departures are not logged");
}

#[test]
fn fifty_clients_in_gs() {
    const CLIENTS: usize = 50;
    const LINES: usize = 40;
    let _dog = watchdog("fifty_clients_in_gs", TEST_LIMIT);
    let (mut server, idle) = start(&["--procs", "1"]);
    clients(&mut server, move |addr| {
        // Everyone is in the room (greeted) before anyone speaks: then every line has all the
        // others as recipients.
        let (ready, greeted) = chan::unbounded::<()>();
        let (start, go) = chan::bounded::<()>(0);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (ready, go) = (ready.clone(), go.clone());
                weft::go!(move || {
                    let mut c = Client::connect(addr);
                    ready.send(()).expect("ready");
                    // `start` is dropped, not sent on: the receive fails for everyone at once.
                    assert!(matches!(
                        go.recv_timeout(IO_TIMEOUT),
                        Err(chan::RecvTimeoutError::Disconnected)
                    ));
                    c.send_raw(&burst("m", 0, LINES, 10));
                    let me = c.name.clone();
                    let mut t = Tally::default();
                    while t.total < (CLIENTS - 1) * LINES {
                        let l = c.line();
                        if !t.add(&me, &l) {
                            assert!(l.starts_with("* "), "{me}: unexpected line {l:?}");
                        }
                    }
                    assert_eq!(t.next.len(), CLIENTS - 1, "{me}: senders");
                    assert!(t.next.values().all(|&n| n == LINES), "{me}: counts");
                    // Everything was delivered: no chat line may follow (it would be a copy).
                    c.quit();
                })
            })
            .collect();
        drop(ready);
        for _ in 0..CLIENTS {
            greeted
                .recv_timeout(IO_TIMEOUT)
                .expect("every client greeted");
        }
        let began = Instant::now();
        drop(start);
        for c in clients {
            join(c);
        }
        let took = began.elapsed();
        common::note(format_args!(
            "fifty_clients_in_gs: {} lines delivered in {took:?} ({:.0} lines/s)",
            CLIENTS * (CLIENTS - 1) * LINES,
            (CLIENTS * (CLIENTS - 1) * LINES) as f64 / took.as_secs_f64()
        ));
    });
    server.wait_fds_at_most(idle, SETTLE);
    assert_eq!(server.stderr_text(), "", "normal departures are not logged");
}

#[test]
fn slow_client_is_dropped_others_unaffected() {
    let _dog = watchdog("slow_client_is_dropped_others_unaffected", TEST_LIMIT);
    // Slowness is what is tested here: the default queue wait (100 ms), stated explicitly.
    let (mut server, idle) = start(&["--write-timeout-ms", "500", "--queue-wait-ms", "100"]);
    let (slow_name, rounds, slowest) = clients(&mut server, move |addr| {
        // The slow client: a tiny receive buffer (set before connecting, so that the window is
        // small from the start); it reads its greeting and then nothing.
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(2048).expect("SO_RCVBUF");
        // A blocking std connect: off the P (docs/USER_RULES.md §2).
        weft::blocking(|| sock.connect(&addr.into())).expect("connect");
        let mut slow = Client::over(TcpStream::from_std(sock.into()).expect("from_std"));
        let (a, b, l) = (
            Client::connect(addr),
            Client::connect(addr),
            Client::connect(addr),
        );
        let names = [a.name.clone(), b.name.clone(), l.name.clone()];
        let (mut aw, mut bw) = (a.writer(), b.writer());
        let dropped = format!("* {} dropped (too slow)", slow.name);

        // a and b talk in rounds of ROUND lines each, until a, b and l have all seen the drop
        // notice; a reader G per client checks every line of every round. A round starts when
        // the last one was fully read, so a healthy client is never more than two rounds'
        // lines behind (less than the server's queue of 256): only the slow one can overflow.
        let (done_tx, done_rx) = chan::unbounded::<(usize, usize)>();
        let mut orders = Vec::new();
        let mut readers = Vec::new();
        for (i, (c, senders)) in [(a, 1), (b, 1), (l, 2)].into_iter().enumerate() {
            let (order, orders_rx) = chan::bounded::<()>(1);
            orders.push(order);
            let (done, dropped) = (done_tx.clone(), dropped.clone());
            readers.push(weft::go!(move || {
                round_reader(i, c, senders, &dropped, orders_rx, done)
            }));
        }
        let mut rounds = 0;
        let mut slowest = Duration::ZERO;
        loop {
            assert!(
                rounds < MAX_ROUNDS,
                "the slow client was not dropped after {rounds} rounds"
            );
            let began = Instant::now();
            aw.write_all(&burst("a", rounds * ROUND, ROUND, LINE_PAD))
                .expect("a talks");
            bw.write_all(&burst("b", rounds * ROUND, ROUND, LINE_PAD))
                .expect("b talks");
            for o in &orders {
                o.send(()).expect("reader alive");
            }
            let mut all_saw_it = true;
            for _ in 0..orders.len() {
                let (_, notices) = done_rx
                    .recv_timeout(IO_TIMEOUT)
                    .expect("a reader finished its round");
                all_saw_it &= notices > 0;
            }
            slowest = slowest.max(began.elapsed());
            rounds += 1;
            if all_saw_it {
                break;
            }
        }
        drop(orders);
        let mut healthy: Vec<Client> = readers.into_iter().map(join).collect();

        // The slow client was disconnected: what it has buffered (the last line may be cut:
        // the server closed its socket mid-write), then the end (EOF or reset), never a timeout.
        let mut got = 0usize;
        let mut buf = [0u8; 16384];
        loop {
            match slow.r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("slow client: {e} after {got} bytes"),
            }
        }
        assert!(
            got < 2 * ROUND * rounds * LINE_PAD,
            "the slow client got everything ({got} bytes)"
        );

        // The server goes on: a newcomer sees the three, and chat still flows.
        let mut d = Client::connect(addr);
        for c in &mut healthy {
            c.expect(&format!("* {} joined", d.name));
        }
        let dn = d.name.clone();
        d.who(&[&names[0], &names[1], &names[2], &dn]);
        d.send("still here?");
        for c in &mut healthy {
            c.expect(&format!("{dn}: still here?"));
        }
        for c in healthy {
            c.quit();
        }
        d.quit();
        (slow.name, rounds, slowest)
    });
    common::note(format_args!(
        "slow client dropped after {rounds} rounds of {} KiB; slowest round {slowest:?}",
        2 * ROUND * LINE_PAD / 1024
    ));
    // "Promptly": no round waited for the slow client (its write deadline is 500 ms; a room that
    // waited on it would also hit the 10 s read timeouts).
    assert!(
        slowest < Duration::from_secs(2),
        "a round took {slowest:?} ({rounds} rounds)"
    );
    server.wait_fds_at_most(idle, SETTLE);
    let log = server.wait_log_lines(1, |_| true, SETTLE);
    assert!(
        log[0].starts_with(&format!("chat: {slow_name} (")),
        "log line {log:?}"
    );
}

/// Lines per talker per round in [`slow_client_is_dropped_others_unaffected`], their padding,
/// and the most rounds before it gives up waiting for the drop (the kernel may buffer a few MiB
/// for the slow client before its writer blocks: ~20 rounds here).
const ROUND: usize = 64;
const LINE_PAD: usize = 1000;
const MAX_ROUNDS: usize = 400;

/// A reader G of [`slow_client_is_dropped_others_unaffected`]: for each order, read the round's
/// chat lines (`senders` × [`ROUND`]; checked in order), counting drop notices, then report
/// `(i, notices so far)`. When the orders end: exactly one notice, every sender's lines all there.
fn round_reader(
    i: usize,
    mut c: Client,
    senders: usize,
    dropped: &str,
    orders: chan::Receiver<()>,
    done: chan::Sender<(usize, usize)>,
) -> Client {
    let me = c.name.clone();
    let mut t = Tally::default();
    let (mut notices, mut want) = (0, 0);
    while orders.recv().is_ok() {
        want += senders * ROUND;
        while t.total < want {
            let line = c.line();
            if line == dropped {
                notices += 1;
            } else if !t.add(&me, &line) {
                assert!(line.ends_with(" joined"), "{me}: unexpected {line:?}");
            }
        }
        done.send((i, notices)).expect("driver alive");
    }
    assert_eq!(notices, 1, "{me}: drop notices");
    assert_eq!(t.next.len(), senders, "{me}: senders");
    assert!(
        t.next.values().all(|&n| n * senders == want),
        "{me}: counts"
    );
    c
}

#[test]
fn overlong_line_disconnects() {
    let _dog = watchdog("overlong_line_disconnects", TEST_LIMIT);
    // Far below the megabyte, far above what a new client costs the server (two Gs' stacks,
    // touched a few KiB deep, and its buffers).
    const MAX_GROWTH_KIB: u64 = 512;
    let (mut server, idle) = start(&["--max-line", "64"]);
    let pid = server.pid() as u32;
    let (names, base_kib, peak_kib) = clients(&mut server, move |addr| {
        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        a.expect(&format!("* {} joined", b.name));

        // At the limit: delivered, with `\n` or `\r\n`.
        let max = "y".repeat(64);
        b.send_raw(format!("{max}\n{max}\r\n").as_bytes());
        a.expect(&format!("{}: {max}", b.name));
        a.expect(&format!("{}: {max}", b.name));
        // One byte over: an error line, then the server hangs up; the room is told.
        b.send(&"z".repeat(65));
        b.expect("! line too long (max 64 bytes); bye");
        b.expect_end();
        a.expect(&format!("* {} dropped (line too long)", b.name));

        // A megabyte with no newline at all: the same after at most 66 bytes read (the server
        // does not buffer the rest). The write may fail once the server has hung up.
        // The server's peak memory is measured from just before the megabyte to after it has
        // dropped the client: had it buffered the line, the peak would show it, freed or not.
        let mut c = Client::connect(addr);
        a.expect(&format!("* {} joined", c.name));
        let mut cw = c.writer();
        let flood = vec![b'q'; 1 << 20];
        let base_kib = weft::blocking(move || proc_reset_peak_rss(pid));
        let writer = weft::go!(move || {
            let _ = cw.write_all(&flood);
        });
        c.expect("! line too long (max 64 bytes); bye");
        c.expect_end();
        join(writer);
        a.expect(&format!("* {} dropped (line too long)", c.name));
        let peak_kib = weft::blocking(move || proc_status_kib(pid, "VmHWM"));

        // The others are unaffected.
        let mut d = Client::connect(addr);
        a.expect(&format!("* {} joined", d.name));
        d.send("after the long ones");
        a.expect(&format!("{}: after the long ones", d.name));
        let (an, dn) = (a.name.clone(), d.name.clone());
        a.who(&[&an, &dn]);
        let names = [b.name.clone(), c.name.clone()];
        drop((b, c));
        a.quit();
        d.quit();
        (names, base_kib, peak_kib)
    });
    let growth_kib = peak_kib.saturating_sub(base_kib);
    common::note(format_args!(
        "a 1 MiB line: the server's peak RSS grew by {growth_kib} KiB over {base_kib} KiB"
    ));
    if growth_kib >= MAX_GROWTH_KIB {
        server.fail(&format!(
            "the server's peak RSS grew by {growth_kib} KiB while a client sent a 1 MiB line \
             with --max-line 64: it buffers what it should refuse"
        ));
    }
    server.wait_fds_at_most(idle, SETTLE);
    let log = server.wait_log_lines(2, |_| true, SETTLE);
    for (line, name) in log.iter().zip(&names) {
        assert!(
            line.starts_with(&format!("chat: {name} (")) && line.ends_with("line too long"),
            "log line {line:?}"
        );
    }
}

#[test]
fn reset_mid_conversation() {
    let _dog = watchdog("reset_mid_conversation", TEST_LIMIT);
    let (mut server, idle) = start(&[]);
    let carol = clients(&mut server, move |addr| {
        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        let mut c = Client::connect(addr);
        a.expect(&format!("* {} joined", b.name));
        a.expect(&format!("* {} joined", c.name));
        b.expect(&format!("* {} joined", c.name));

        // c talks; a and b get all of it.
        c.send_raw(&burst("c", 0, 10, 5));
        for o in [&mut a, &mut b] {
            let mut t = Tally::default();
            while t.total < 10 {
                let l = o.line();
                assert!(t.add(&o.name.clone(), &l), "{}: unexpected {l:?}", o.name);
            }
        }
        // a talks to c, who does not read: b's copies prove c's are queued or sent too.
        a.send_raw(&burst("a", 0, 10, 5));
        let mut t = Tally::default();
        while t.total < 10 {
            let l = b.line();
            assert!(t.add(&b.name.clone(), &l), "{}: unexpected {l:?}", b.name);
        }
        // c resets the connection with those lines unread.
        common::set_linger_zero(&c.w);
        let carol = c.name.clone();
        drop(c);
        a.expect(&format!("* {carol} left"));
        b.expect(&format!("* {carol} left"));

        // The room goes on.
        a.send("still here?");
        b.expect(&format!("{}: still here?", a.name));
        let (an, bn) = (a.name.clone(), b.name.clone());
        b.who(&[&an, &bn]);
        a.quit();
        b.quit();
        carol
    });
    server.wait_fds_at_most(idle, SETTLE);
    // A reset may be logged, once.
    let log = server.stderr_lines();
    assert!(
        log.len() <= 1,
        "at most one log line for the reset: {log:?}"
    );
    if let Some(line) = log.first() {
        assert!(
            line.starts_with(&format!("chat: {carol} (")),
            "log {line:?}"
        );
    }
}

#[test]
fn flags_and_bind_errors() {
    let _dog = watchdog("flags_and_bind_errors", TEST_LIMIT);
    let flags = [
        "--addr",
        "--procs",
        "--max-line",
        "--write-timeout-ms",
        "--queue",
        "--queue-wait-ms",
    ];
    let bad: [&[&str]; 5] = [
        &["--bogus"],
        &["--procs", "0"],
        &["--max-line", "lots"],
        &["--write-timeout-ms"],
        &["stray"],
    ];
    for (args, err) in bad.iter().zip(check_command_line("chat", &flags, &bad)) {
        assert!(err.contains("--help"), "{args:?}: {err}");
    }
}
