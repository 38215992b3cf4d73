//! A line-based TCP chat server: the chat server of *The Go Programming Language* (§8.10) with
//! goroutines and channels, made robust against slow, silent and misbehaving clients.
//!
//! ```text
//! cargo run --release --example chat -- --addr 127.0.0.1:7001
//! nc 127.0.0.1 7001        # in two or more terminals
//! ```
//!
//! # Protocol
//!
//! Lines of UTF-8 text ending in `\n` (a `\r` before it is dropped), both ways.
//!
//! | client sends | server does |
//! |---|---|
//! | (connects) | greets it with `* you are guest-N (commands: /nick NAME, /who, /quit)` and tells the others `* guest-N joined` |
//! | `text` | sends `NAME: text` to every **other** client (never back to the sender) |
//! | `//text` | sends `NAME: /text` (a chat line that starts with `/`) |
//! | `/nick NAME` | renames: `* you are now NAME` to the client, `* OLD is now NAME` to the others; `! name taken: NAME` or `! bad name: ...` otherwise |
//! | `/who` | `* in the room (N): a, b, c` (sorted) |
//! | `/quit` | `* bye`, then closes the connection; the others get `* NAME left` |
//! | an empty line | nothing |
//! | `/other` | `! unknown command /other (commands: /nick NAME, /who, /quit)` |
//! | a line longer than `--max-line` bytes | `! line too long (max N bytes); bye`, then closes the connection; the others get `* NAME dropped (line too long)` |
//!
//! A client that disconnects (EOF or reset) leaves with `* NAME left`; one that does not read
//! fast enough is disconnected and the room is told `* NAME dropped (too slow)`. Lines from the
//! server start with `* ` (room notices, replies), `! ` (errors to you) or `NAME: ` (chat).
//!
//! Names are 1 to 24 ASCII letters, digits, `-`, `_` or `.`, unique ignoring case; `guest-...` is
//! reserved for the names the server assigns. Invalid UTF-8 is decoded lossily (each bad sequence
//! becomes U+FFFD), and control characters other than tab become U+FFFD too, so that no client
//! can send terminal escapes to the others. Every line one client sends reaches every other
//! client exactly once, in the order sent.
//!
//! # Design (Go's, with Go's vocabulary)
//!
//! - **The accept loop** starts one G per connection: the connection's *reader*. It reads lines
//!   with `std::io::BufReader` over `&weft::net::TcpStream` (`read_until` under `take`, so at most
//!   `--max-line` + 2 bytes of a line are ever buffered) and turns them into events.
//! - **The broadcaster** G owns the room: the set of clients and their names. It loops on
//!   `weft::select!` over three unbuffered (rendezvous) channels, Go's `entering`, `leaving` and
//!   `messages`. Because a reader's send completes only when the broadcaster has taken the value,
//!   its join, its messages and its leave are handled in the order it sent them even though they
//!   travel on different channels.
//! - **Each client has a bounded outgoing queue** (`--queue` lines of `Arc<str>`: the text is
//!   shared by all recipients) and a *writer* G that drains it onto the socket, gathering what is
//!   queued into one write, with a deadline on each write (`--write-timeout-ms`).
//! - **No client can stall the broadcaster.** It `try_send`s a line into every queue; only
//!   if some are full does it wait for space in those, and all of them together for at most
//!   `--queue-wait-ms` per event (a deadline set when the event meets its first full queue;
//!   `send_deadline` on each). That short wait is flow control, not a stall: in a flood the
//!   broadcaster outruns the writers, and parking on a full queue lets the writer drain it (weft
//!   does not preempt; a healthy client whose writer G or thread was not scheduled for a few ms
//!   must not be mistaken for a slow one). A queue still full at the deadline marks its client
//!   too slow.
//! - **Dropping a client** that is too slow: the broadcaster removes it, closes its socket
//!   (`TcpStream::close`, Go's `Conn.Close`, which wakes its reader G parked in `read` and its
//!   writer parked in `write`) and tells the room `* NAME dropped (too slow)`. If a write misses
//!   its deadline (a client that stopped reading while the room is quiet), the writer closes the
//!   socket; the woken reader reports the leave, and the broadcaster tells the room the same. A
//!   dropped client may get a cut last line before the connection ends.
//! - **Hanging up.** When the broadcaster removes a client it drops the client's queue sender; the
//!   writer writes what is still queued (a `* bye`, an error line) and closes the socket. So a
//!   departed client leaves no G and no fd behind: its reader has returned, its writer returns, and
//!   the last `Arc` of the connection closes the fd.
//!
//! Flags: `--addr HOST:PORT` (default 127.0.0.1:7001), `--procs N` (Ps; default: CPUs),
//! `--max-line BYTES` (4096), `--write-timeout-ms MS` (5000), `--queue LINES` (256),
//! `--queue-wait-ms MS` (100). It prints
//! one line `chat listening on ADDR` on stdout when it is ready, and on stderr at most one line per
//! client that ended abnormally (too slow, line too long, reset): none for normal departures.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lexopt::ValueExt;
use weft::chan::{self, Receiver, SendTimeoutError, Sender, TrySendError};
use weft::net::{TcpListener, TcpStream};

const USAGE: &str = "\
usage: chat [--addr HOST:PORT] [--procs N] [--max-line BYTES] [--write-timeout-ms MS]
            [--queue LINES] [--queue-wait-ms MS]

  --addr HOST:PORT        address to listen on (default 127.0.0.1:7001)
  --procs N               number of Ps (default: the number of CPUs)
  --max-line BYTES        longest line a client may send (default 4096); longer: disconnected
  --write-timeout-ms MS   deadline of each write to a client (default 5000); missed: dropped
  --queue LINES           lines queued per client (default 256)
  --queue-wait-ms MS      how long the room waits for space in a full queue (default 100);
                          a client whose queue stays full that long is dropped as too slow";

/// The commands, as the greeting and the unknown-command error list them.
const COMMANDS: &str = "/nick NAME, /who, /quit";

/// Longest name a client may pick with `/nick`.
const MAX_NAME: usize = 24;

/// A writer G gathers queued lines into one write up to about this many bytes.
const MAX_BATCH: usize = 8192;

/// Command-line settings.
#[derive(Clone)]
struct Settings {
    addr: String,
    procs: Option<usize>,
    max_line: usize,
    write_timeout: Duration,
    queue: usize,
    queue_wait: Duration,
}

/// Parse the command line with `lexopt`; `--help` prints the usage and exits.
fn parse_args() -> Result<Settings, lexopt::Error> {
    use lexopt::Arg::{Long, Short};
    let mut s = Settings {
        addr: "127.0.0.1:7001".into(),
        procs: None,
        max_line: 4096,
        write_timeout: Duration::from_millis(5000),
        queue: 256,
        queue_wait: Duration::from_millis(100),
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("addr") => s.addr = p.value()?.string()?,
            Long("procs") => s.procs = Some(number(&mut p, "--procs", 1, 1 << 16)? as usize),
            Long("max-line") => s.max_line = number(&mut p, "--max-line", 1, 1 << 20)? as usize,
            Long("write-timeout-ms") => {
                let ms = number(&mut p, "--write-timeout-ms", 1, 3_600_000)?;
                s.write_timeout = Duration::from_millis(ms);
            }
            Long("queue") => s.queue = number(&mut p, "--queue", 1, 1 << 20)? as usize,
            Long("queue-wait-ms") => {
                let ms = number(&mut p, "--queue-wait-ms", 0, 60_000)?;
                s.queue_wait = Duration::from_millis(ms);
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(s)
}

/// The value of `flag` as a number in `min..=max`.
fn number(p: &mut lexopt::Parser, flag: &str, min: u64, max: u64) -> Result<u64, lexopt::Error> {
    let v = p.value()?.string()?;
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{flag}: expected a number from {min} to {max}, got {v:?}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Events: what the readers tell the broadcaster
// ---------------------------------------------------------------------------------------------

/// A line of output, shared by every client it is sent to.
type Line = Arc<str>;

/// One connection, shared by its reader G, its writer G and the broadcaster.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Why the server hung up on it, if it did: [`FAULT_NONE`], [`FAULT_SLOW`], [`FAULT_WRITE`].
    fault: AtomicU8,
    /// With [`FAULT_WRITE`]: the error the writer got, for the log line.
    write_error: OnceLock<io::Error>,
}

const FAULT_NONE: u8 = 0;
const FAULT_SLOW: u8 = 1;
const FAULT_WRITE: u8 = 2;

impl Conn {
    /// Record why (the first reason wins) and close the socket now: a G parked reading or
    /// writing it wakes with an error.
    fn hang_up(&self, fault: u8) {
        let _ = self
            .fault
            .compare_exchange(FAULT_NONE, fault, Ordering::SeqCst, Ordering::SeqCst);
        let _ = self.stream.close();
    }
}

/// Go's `entering <- cli`: a new client, with the sending side of its outgoing queue.
struct Join {
    id: u64,
    conn: Arc<Conn>,
    out: Sender<Line>,
}

/// Go's `leaving <- cli`: the reader is done, and why.
struct Leave {
    id: u64,
    why: Why,
}

/// Why a reader stopped.
enum Why {
    /// `/quit`.
    Quit,
    /// The client closed its side.
    Eof,
    /// A line over `--max-line` (the limit).
    TooLong(usize),
    /// Its writer missed a write deadline and hung up.
    TooSlow,
    /// Its writer failed for another reason and hung up.
    WriteFailed,
    /// Reading failed (typically: the client reset the connection).
    ReadFailed(io::Error),
}

/// Go's `messages <- msg`: a line from client `id`, parsed.
struct Message {
    id: u64,
    said: Said,
}

/// What a line asks for.
enum Said {
    Text(String),
    Nick(String),
    Who,
    Unknown(String),
}

/// The sending sides of the broadcaster's three channels, one clone per reader G.
#[derive(Clone)]
struct Hub {
    entering: Sender<Join>,
    leaving: Sender<Leave>,
    messages: Sender<Message>,
}

// ---------------------------------------------------------------------------------------------
// A client's reader and writer
// ---------------------------------------------------------------------------------------------

/// The reader G of one connection (Go's `handleConn`): start the writer G, join the room, relay
/// lines to the broadcaster until the client leaves, then report the leave.
fn handle_conn(id: u64, stream: TcpStream, peer: SocketAddr, hub: Hub, s: Arc<Settings>) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn {
        stream,
        peer,
        fault: AtomicU8::new(FAULT_NONE),
        write_error: OnceLock::new(),
    });
    let (out, queue) = chan::bounded::<Line>(s.queue);
    let wconn = Arc::clone(&conn);
    let timeout = s.write_timeout;
    weft::go!(move || write_loop(&wconn, queue, timeout));
    let join = Join {
        id,
        conn: Arc::clone(&conn),
        out,
    };
    if hub.entering.send(join).is_err() {
        // No broadcaster (cannot happen while `main` runs): the dropped `out` ends the writer.
        return;
    }
    let why = read_loop(id, &conn, &hub.messages, s.max_line);
    let _ = hub.leaving.send(Leave { id, why });
}

/// Read lines and send them to the broadcaster until the client quits, closes, errs or sends a
/// line that is too long.
fn read_loop(id: u64, conn: &Conn, messages: &Sender<Message>, max_line: usize) -> Why {
    let mut reader = BufReader::with_capacity(4096, &conn.stream);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        let ended = match read_line_limited(&mut reader, &mut buf, max_line) {
            Ok(Status::Line) => None,
            Ok(Status::TooLong) => return Why::TooLong(max_line),
            Ok(Status::Eof) => Some(Why::Eof),
            Err(e) => Some(Why::ReadFailed(e)),
        };
        if let Some(why) = ended {
            // If the server hung up on the client, that is the reason, not what `read` saw.
            return match conn.fault.load(Ordering::SeqCst) {
                FAULT_SLOW => Why::TooSlow,
                FAULT_WRITE => Why::WriteFailed,
                _ => why,
            };
        }
        let said = match parse(decode(&buf)) {
            Input::Say(said) => said,
            Input::Quit => return Why::Quit,
            Input::Nothing => continue,
        };
        if messages.send(Message { id, said }).is_err() {
            return Why::Eof;
        }
    }
}

/// What [`read_line_limited`] found.
enum Status {
    /// A line, in the buffer without its `\n` / `\r\n`.
    Line,
    /// The client closed its side (nothing pending).
    Eof,
    /// A line longer than the limit; what was read of it is discarded.
    TooLong,
}

/// Read one line of at most `max` bytes (not counting `\r\n`) into `buf`, never buffering more
/// than `max + 2` bytes of it. A last line without `\n` before EOF counts as a line.
fn read_line_limited(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Status> {
    r.by_ref().take(max as u64 + 2).read_until(b'\n', buf)?;
    if buf.is_empty() {
        return Ok(Status::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > max {
        return Ok(Status::TooLong);
    }
    Ok(Status::Line)
}

/// Bytes to text: invalid UTF-8 and control characters (but tab) become U+FFFD.
fn decode(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let bad = |c: char| c.is_control() && c != '\t';
    if text.contains(bad) {
        text.chars()
            .map(|c| {
                if bad(c) {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect()
    } else {
        text.into_owned()
    }
}

/// What one input line means to the reader.
enum Input {
    Say(Said),
    Quit,
    Nothing,
}

/// Parse a line: a command, chat text (`//` escapes a leading `/`), or nothing (blank).
fn parse(line: String) -> Input {
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Input::Say(Said::Text(line));
    };
    if rest.starts_with('/') {
        return Input::Say(Said::Text(rest.to_string()));
    }
    let (cmd, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match cmd {
        "nick" => Input::Say(Said::Nick(arg.trim().to_string())),
        "who" => Input::Say(Said::Who),
        "quit" => Input::Quit,
        _ => Input::Say(Said::Unknown(cmd.to_string())),
    }
}

/// The writer G of one connection (Go's `clientWriter`): write queued lines, several per write,
/// each write with a deadline. A missed deadline or a failed write hangs up (which wakes the
/// reader). When the broadcaster drops the queue's sender, write what is left, then hang up.
fn write_loop(conn: &Conn, queue: Receiver<Line>, timeout: Duration) {
    let mut batch = Vec::with_capacity(1024);
    let mut w = &conn.stream;
    while let Ok(line) = queue.recv() {
        batch.clear();
        batch.extend_from_slice(line.as_bytes());
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(line) => batch.extend_from_slice(line.as_bytes()),
                Err(_) => break,
            }
        }
        let _ = conn
            .stream
            .set_write_deadline(Some(Instant::now() + timeout));
        if let Err(e) = w.write_all(&batch) {
            let fault = if e.kind() == io::ErrorKind::TimedOut {
                FAULT_SLOW
            } else {
                let _ = conn.write_error.set(e);
                FAULT_WRITE
            };
            conn.hang_up(fault);
            return;
        }
        if batch.capacity() > 4 * MAX_BATCH {
            // One huge line (up to --max-line) should not stay allocated for the client's life.
            batch = Vec::with_capacity(1024);
        }
    }
    let _ = conn.stream.close();
}

// ---------------------------------------------------------------------------------------------
// The broadcaster
// ---------------------------------------------------------------------------------------------

/// A member of the room, as the broadcaster sees it.
struct Client {
    name: String,
    conn: Arc<Conn>,
    out: Sender<Line>,
}

/// The broadcaster's state. Only the broadcaster G touches it, so it needs no lock.
struct Room {
    clients: HashMap<u64, Client>,
    /// Every member's name, lowercased (names are unique ignoring case).
    names: HashSet<String>,
    /// `--queue-wait-ms`: the most one event may wait, in all, for space in full queues.
    queue_wait: Duration,
    /// When the current event stops waiting for full queues (set by the first full one).
    wait_until: Option<Instant>,
    /// Clients whose queue stayed full: dropped once the current event is handled.
    too_slow: Vec<u64>,
    /// Scratch list of the clients a broadcast found full.
    full: Vec<u64>,
}

/// The broadcaster G: Go's `for { select { case msg := <-messages: ... case cli := <-entering:
/// ... case cli := <-leaving: ... } }`.
fn broadcaster(
    entering: Receiver<Join>,
    leaving: Receiver<Leave>,
    messages: Receiver<Message>,
    queue_wait: Duration,
) {
    let mut room = Room {
        clients: HashMap::new(),
        names: HashSet::new(),
        queue_wait,
        wait_until: None,
        too_slow: Vec::new(),
        full: Vec::new(),
    };
    loop {
        let alive = weft::select! {
            recv(entering) -> j => j.map(|j| room.join(j)).is_ok(),
            recv(leaving) -> l => l.map(|l| room.leave(l)).is_ok(),
            recv(messages) -> m => m.map(|m| room.message(m)).is_ok(),
        };
        if !alive {
            // Every sender is gone: the accept loop has ended.
            return;
        }
        room.drop_too_slow();
        room.wait_until = None;
    }
}

impl Room {
    /// A client arrives: name it `guest-ID` (unique: ids are, and `/nick` refuses `guest-`),
    /// greet it and tell the others.
    fn join(&mut self, j: Join) {
        let name = format!("guest-{}", j.id);
        self.names.insert(name.clone());
        self.clients.insert(
            j.id,
            Client {
                name: name.clone(),
                conn: j.conn,
                out: j.out,
            },
        );
        self.tell(j.id, format!("* you are {name} (commands: {COMMANDS})"));
        self.broadcast(Some(j.id), format!("* {name} joined"));
    }

    /// A reader is done: say goodbye if there is something to say, tell the others, forget the
    /// client (its writer then flushes and hangs up). A client already dropped as too slow is
    /// no longer here and nothing happens.
    fn leave(&mut self, l: Leave) {
        let Some(c) = self.clients.remove(&l.id) else {
            return;
        };
        self.names.remove(&c.name.to_lowercase());
        let goodbye = match l.why {
            Why::Quit => Some("* bye".to_string()),
            Why::TooLong(max) => Some(format!("! line too long (max {max} bytes); bye")),
            _ => None,
        };
        if let Some(g) = goodbye {
            let _ = c.out.try_send(Line::from(g + "\n"));
        }
        let (notice, log) = match &l.why {
            Why::Quit | Why::Eof => ("left", None),
            Why::TooLong(_) => ("dropped (line too long)", Some("line too long".to_string())),
            Why::TooSlow => (
                "dropped (too slow)",
                Some("too slow: write deadline missed".into()),
            ),
            Why::WriteFailed => {
                let e = c.conn.write_error.get();
                (
                    "left",
                    Some(format!(
                        "write: {}",
                        e.map_or("failed".into(), |e| e.to_string())
                    )),
                )
            }
            Why::ReadFailed(e) => ("left", Some(format!("read: {e}"))),
        };
        if let Some(log) = log {
            eprintln!("chat: {} ({}): {log}", c.name, c.conn.peer);
        }
        self.broadcast(None, format!("* {} {notice}", c.name));
    }

    /// A line from a member: chat text for the others, or a command.
    fn message(&mut self, m: Message) {
        let Some(c) = self.clients.get(&m.id) else {
            // Lines a dropped client's reader had buffered before it noticed.
            return;
        };
        let name = c.name.clone();
        match m.said {
            Said::Text(t) => self.broadcast(Some(m.id), format!("{name}: {t}")),
            Said::Nick(new) => self.rename(m.id, name, new),
            Said::Who => {
                let mut names: Vec<&str> = self.clients.values().map(|c| c.name.as_str()).collect();
                names.sort_unstable();
                let reply = format!("* in the room ({}): {}", names.len(), names.join(", "));
                self.tell(m.id, reply);
            }
            Said::Unknown(cmd) => {
                self.tell(
                    m.id,
                    format!("! unknown command /{cmd} (commands: {COMMANDS})"),
                );
            }
        }
    }

    /// `/nick`: validate, check uniqueness, rename, tell the client and the room.
    fn rename(&mut self, id: u64, old: String, new: String) {
        if !valid_name(&new) {
            let reply = format!(
                "! bad name: {new:?} (1 to {MAX_NAME} letters, digits, '-', '_', '.'; \
                 not guest-...)"
            );
            return self.tell(id, reply);
        }
        if new == old {
            return self.tell(id, format!("* you are now {new}"));
        }
        let (old_key, new_key) = (old.to_lowercase(), new.to_lowercase());
        if new_key != old_key && self.names.contains(&new_key) {
            return self.tell(id, format!("! name taken: {new}"));
        }
        self.names.remove(&old_key);
        self.names.insert(new_key);
        if let Some(c) = self.clients.get_mut(&id) {
            c.name = new.clone();
        }
        self.tell(id, format!("* you are now {new}"));
        self.broadcast(Some(id), format!("* {old} is now {new}"));
    }

    /// Queue `text` for one client (see [`Room::wait_for_room`] if its queue is full).
    fn tell(&mut self, id: u64, text: String) {
        let line = Line::from(text + "\n");
        if let Some(c) = self.clients.get(&id) {
            if let Err(TrySendError::Full(line)) = c.out.try_send(line) {
                self.wait_for_room(id, line);
            }
        }
    }

    /// Queue `text` for every member but `except`: `try_send` to all, then the full queues, if
    /// any, get [`Room::wait_for_room`]. A closed queue (its writer failed and hung up) is
    /// skipped: that client's reader reports its leave.
    fn broadcast(&mut self, except: Option<u64>, text: String) {
        let line = Line::from(text + "\n");
        let mut full = std::mem::take(&mut self.full);
        for (&id, c) in &self.clients {
            if Some(id) == except {
                continue;
            }
            if let Err(TrySendError::Full(_)) = c.out.try_send(Line::clone(&line)) {
                full.push(id);
            }
        }
        for id in full.drain(..) {
            self.wait_for_room(id, Line::clone(&line));
        }
        self.full = full;
    }

    /// A full queue: wait for space, but only until the current event's wait deadline
    /// (`--queue-wait-ms` after the first full queue it met), so that a hiccup of a healthy
    /// client (its writer G or its thread not scheduled for a few ms while the room floods) is
    /// absorbed, and the room as a whole waits at most that long per event however many clients
    /// are stuck. A queue still full then marks its client too slow.
    fn wait_for_room(&mut self, id: u64, line: Line) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        let until = *self
            .wait_until
            .get_or_insert_with(|| Instant::now() + self.queue_wait);
        if let Err(SendTimeoutError::Timeout(_)) = c.out.send_deadline(line, until) {
            self.too_slow.push(id);
        }
    }

    /// Drop every client whose queue was full: close its socket (its reader and writer wake and
    /// end) and tell the room, which may find more full queues.
    fn drop_too_slow(&mut self) {
        while let Some(id) = self.too_slow.pop() {
            let Some(c) = self.clients.remove(&id) else {
                continue;
            };
            self.names.remove(&c.name.to_lowercase());
            c.conn.hang_up(FAULT_SLOW);
            eprintln!("chat: {} ({}): too slow: queue full", c.name, c.conn.peer);
            self.broadcast(None, format!("* {} dropped (too slow)", c.name));
        }
    }
}

/// A name `/nick` accepts: 1 to [`MAX_NAME`] of `[A-Za-z0-9_.-]`, not `guest-...`.
fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.to_ascii_lowercase().starts_with("guest-")
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

/// Bind, start the broadcaster, accept forever (a reader G per connection).
fn serve(s: Settings) -> ExitCode {
    let listener = match TcpListener::bind(&s.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chat: cannot listen on {}: {e}", s.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("listener address");
    println!("chat listening on {addr}");

    // Unbuffered, as in Go: a reader's send completes when the broadcaster takes it, which keeps
    // each client's events in order across the three channels.
    let (entering, entering_rx) = chan::bounded(0);
    let (leaving, leaving_rx) = chan::bounded(0);
    let (messages, messages_rx) = chan::bounded(0);
    let queue_wait = s.queue_wait;
    weft::go!(move || broadcaster(entering_rx, leaving_rx, messages_rx, queue_wait));
    let hub = Hub {
        entering,
        leaving,
        messages,
    };
    let s = Arc::new(s);
    let mut next_id = 1u64;
    let mut failing = false;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                failing = false;
                let (id, hub, s) = (next_id, hub.clone(), Arc::clone(&s));
                next_id += 1;
                weft::go!(move || handle_conn(id, stream, peer, hub, s));
            }
            Err(e) => {
                // Out of fds (EMFILE/ENFILE) or similar: back off instead of spinning, and keep
                // serving the clients we have. One log line per run of failures.
                if !failing {
                    eprintln!("chat: accept: {e} (retrying every 10 ms)");
                }
                failing = true;
                weft::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn main() -> ExitCode {
    let s = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat: {e} (try --help)");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = s.procs {
        if let Err(e) = weft::Config::new().max_procs(n).apply() {
            eprintln!("chat: --procs {n}: {e}");
            return ExitCode::from(2);
        }
    }
    weft::run(move || serve(s))
}
