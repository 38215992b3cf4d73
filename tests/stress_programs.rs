//! Stress (issue 7): generated programs that mix everything a weft user does at once — spawn,
//! yield, sleep, channel send/recv/select (blocking, `try_`, with timeouts), a weft `Mutex`, an
//! `RwLock`, a `WaitGroup`, and byte streams through socket pairs (Unix and TCP) with random
//! chunking, random pauses, read/write deadlines in the middle of blocked operations, half-closes
//! and closes of sockets and channels while Gs are parked on them — each checked against one
//! reference model of its outcome ([`Scene::expect`] and the `check_*` functions).
//!
//! A [`Program`] is a few [`Scene`]s that run **at the same time** on one runtime, so their Gs
//! share the run queues, the timer heaps and the netpoller:
//!
//! * [`ChanScene`]: producers send tagged values (producer, sequence) through one channel, with
//!   plain, `try_`, timed and `select!` sends; consumers take them with plain, `try_`, timed and
//!   `select!` receives, then drain until the channel is closed. A closer closes it once every
//!   producer is done, optionally only after seeing a consumer or the late sender *parked* on
//!   it. A late sender keeps sending until a send fails, racing the close. Model: every value
//!   sent successfully is received exactly once, every value whose send failed comes back in
//!   the error and is never received, each consumer sees each producer's values in order.
//! * [`LockScene`]: workers increment a counter under a weft `Mutex` as read / pause / write (a
//!   lost update shows mutual exclusion failing), take an `RwLock` to write two fields with a
//!   pause between them or to read them (a reader must never see them differ), and a checker G
//!   waits on a `WaitGroup` and must then see every worker's effects. Model: exact totals.
//! * [`StreamScene`]: a writer sends a known byte stream in chunks, a reader reads it with
//!   random buffers; deadlines are set on both so that some operations time out while blocked.
//!   The stream ends by a half-close (then the reader answers on its still-open direction), or by
//!   a closer closing the reader's socket (Go's `Close`) while the reader is parked in `read`,
//!   after all or only part of the stream. Model: the reader's bytes are exactly the stream (or
//!   a prefix of it, when closed early, of at least the planned length), timeouts lose nothing,
//!   each error is the expected kind (`TimedOut`, `NotConnected` for the closed socket,
//!   `BrokenPipe`/`ConnectionReset` for the writer whose peer was closed).
//!
//! After every program: every G finished (joined), and [`common::assert_released`] finds the
//! goroutine count, netpoll registrations, live stacks (and fds, in the child process) back where
//! they were.
//!
//! Runs on 2 Ps in this process and on 1 P in a child process; `test.sh` runs this file again
//! under `WEFT_RANDOMIZE_SCHED=1`. Case count: `PROPTEST_CASES` (CI default [`CASES`]). A failure
//! prints the shrunk program (`Debug`: scenes, steps, sizes, pauses); `PROPTEST_RNG_SEED` replays
//! a run's sequence of programs. A hang prints the program and a goroutine dump, then aborts (see
//! `docs/TESTING.md`).

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use weft::chan::TrySendError;
use weft::chan::{self, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError};
use weft::net::{TcpListener, TcpStream, UnixStream};
use weft::runtime::WaitReason;
use weft::sync::{Mutex, RwLock, WaitGroup};

use common::{payload_str, watchdog, TEST_TIMEOUT};

/// Generated programs per run in CI (each takes a few to a few tens of milliseconds).
const CASES: u32 = 64;

/// A program that has not finished after this long is hung: print it and abort.
const PROGRAM_LIMIT: Duration = Duration::from_secs(20);

/// Upper bound of `yield_now` rounds for the channel closer's wait (the program limit is the
/// real one).
const ROUNDS: u64 = 50_000_000;

/// How long the stream closer waits for the reader to wait in `read` with its share of the
/// stream before it reports what the reader is doing instead (well under [`PROGRAM_LIMIT`]).
const CLOSER_LIMIT: Duration = Duration::from_secs(10);

/// Yield until `cond` holds or `limit` has passed; whether it held.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        weft::yield_now();
    }
}

// ---------------------------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------------------------

/// Something a G does between steps to vary the interleaving (never to synchronise).
#[derive(Clone, Copy, Debug)]
enum Pause {
    Yield,
    /// `weft::sleep` this many µs (a timer, so the G parks and another runs).
    Sleep(u16),
}

#[derive(Clone, Debug)]
struct Program {
    scenes: Vec<Scene>,
}

#[derive(Clone, Debug)]
enum Scene {
    Chan(ChanScene),
    Lock(LockScene),
    Stream(StreamScene),
}

#[derive(Clone, Debug)]
struct ChanScene {
    /// 0: rendezvous.
    cap: usize,
    producers: Vec<Vec<SendStep>>,
    consumers: Vec<Vec<RecvStep>>,
    /// The closer waits until a consumer or the late sender is parked on the channel.
    close_when_parked: bool,
    /// Run a late sender that sends until a send fails (racing the close).
    late_sender: bool,
}

#[derive(Clone, Copy, Debug)]
enum SendStep {
    /// `send` this many values.
    Send(u8),
    /// `try_send`, yielding while full.
    TrySend(u8),
    /// `send_timeout(µs)`, sending the returned value again after a timeout.
    SendTimeout(u8, u16),
    /// `select! { send(tx, v), default(µs) }`, again after the default.
    Select(u8, u16),
    Pause(Pause),
}

#[derive(Clone, Copy, Debug)]
enum RecvStep {
    /// Up to this many `recv`s.
    Recv(u8),
    /// This many `try_recv`s (yielding after `Empty`).
    TryRecv(u8),
    /// This many `recv_timeout(µs)`s.
    RecvTimeout(u8, u16),
    /// This many `select! { recv(rx), recv(never), default(µs) }`.
    Select(u8, u16),
    Pause(Pause),
}

#[derive(Clone, Debug)]
struct LockScene {
    workers: Vec<Vec<LockStep>>,
}

#[derive(Clone, Copy, Debug)]
enum LockStep {
    /// Mutex: read the counter, pause, write it + 1.
    Inc(Pause),
    /// The same through `try_lock` (yielding until it succeeds).
    TryInc,
    /// RwLock write: a += 1, pause, b += 1.
    Write(Pause),
    /// RwLock read: a == b, pause, still a == b.
    Read(Pause),
    Pause(Pause),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sock {
    Unix,
    Tcp,
}

#[derive(Clone, Debug)]
struct StreamScene {
    sock: Sock,
    writes: Vec<WriteStep>,
    reads: Vec<ReadStep>,
    end: End,
}

#[derive(Clone, Copy, Debug)]
enum WriteStep {
    /// `write_all` this many bytes.
    Write(u32),
    /// Write this many bytes with a write deadline this many µs ahead; after a timeout, clear
    /// the deadline and go on.
    WriteDeadline(u32, u16),
    Pause(Pause),
}

#[derive(Clone, Copy, Debug)]
enum ReadStep {
    /// One `read` into a buffer of this size.
    Read(u32),
    /// One `read` with a read deadline this many µs ahead (then cleared).
    ReadDeadline(u32, u16),
    Pause(Pause),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The writer half-closes; the reader reads to EOF, answers one byte on its own direction
    /// and closes; the writer reads that byte, then EOF.
    HalfClose,
    /// A closer closes the reader's socket once the reader has this percentage of the stream
    /// and is parked in `read`: that read fails with `NotConnected`; the writer finishes or gets
    /// `BrokenPipe`/`ConnectionReset`.
    CloseReader(u8),
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

fn pause() -> impl Strategy<Value = Pause> {
    prop_oneof![2 => Just(Pause::Yield), 1 => (0u16..1_500).prop_map(Pause::Sleep)]
}

fn send_step() -> impl Strategy<Value = SendStep> {
    prop_oneof![
        3 => (1u8..20).prop_map(SendStep::Send),
        1 => (1u8..10).prop_map(SendStep::TrySend),
        1 => (1u8..10, 0u16..800).prop_map(|(n, t)| SendStep::SendTimeout(n, t)),
        1 => (1u8..10, 0u16..800).prop_map(|(n, t)| SendStep::Select(n, t)),
        1 => pause().prop_map(SendStep::Pause),
    ]
}

fn recv_step() -> impl Strategy<Value = RecvStep> {
    prop_oneof![
        3 => (1u8..20).prop_map(RecvStep::Recv),
        1 => (1u8..10).prop_map(RecvStep::TryRecv),
        1 => (1u8..10, 0u16..800).prop_map(|(n, t)| RecvStep::RecvTimeout(n, t)),
        1 => (1u8..10, 0u16..800).prop_map(|(n, t)| RecvStep::Select(n, t)),
        1 => pause().prop_map(RecvStep::Pause),
    ]
}

fn lock_step() -> impl Strategy<Value = LockStep> {
    prop_oneof![
        3 => pause().prop_map(LockStep::Inc),
        1 => Just(LockStep::TryInc),
        2 => pause().prop_map(LockStep::Write),
        2 => pause().prop_map(LockStep::Read),
        1 => pause().prop_map(LockStep::Pause),
    ]
}

/// Buffer sizes: mostly large (so a stream takes few reads), sometimes tiny (many short reads).
fn buf_size() -> impl Strategy<Value = u32> {
    prop_oneof![1 => 1u32..64, 4 => 512u32..65_536]
}

fn write_step() -> impl Strategy<Value = WriteStep> {
    prop_oneof![
        3 => (1u32..150_000).prop_map(WriteStep::Write),
        1 => (1u32..300_000, 0u16..1_000).prop_map(|(n, t)| WriteStep::WriteDeadline(n, t)),
        1 => pause().prop_map(WriteStep::Pause),
    ]
}

fn read_step() -> impl Strategy<Value = ReadStep> {
    prop_oneof![
        3 => buf_size().prop_map(ReadStep::Read),
        2 => (buf_size(), 0u16..1_000).prop_map(|(n, t)| ReadStep::ReadDeadline(n, t)),
        1 => pause().prop_map(ReadStep::Pause),
    ]
}

fn scene() -> impl Strategy<Value = Scene> {
    let chan = (
        prop_oneof![Just(0usize), 1usize..4, Just(64usize)],
        vec(vec(send_step(), 1..5), 1..4),
        vec(vec(recv_step(), 0..5), 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(cap, producers, consumers, close_when_parked, late_sender)| {
                Scene::Chan(ChanScene {
                    cap,
                    producers,
                    consumers,
                    close_when_parked,
                    late_sender,
                })
            },
        );
    let lock =
        vec(vec(lock_step(), 1..7), 1..5).prop_map(|workers| Scene::Lock(LockScene { workers }));
    let stream = (
        prop_oneof![Just(Sock::Unix), Just(Sock::Tcp)],
        vec(write_step(), 1..6),
        vec(read_step(), 0..8),
        prop_oneof![
            2 => Just(End::HalfClose),
            1 => Just(End::CloseReader(100)),
            1 => (0u8..100).prop_map(End::CloseReader),
        ],
    )
        .prop_map(|(sock, writes, reads, end)| {
            Scene::Stream(StreamScene {
                sock,
                writes,
                reads,
                end,
            })
        });
    prop_oneof![3 => chan, 2 => lock, 3 => stream]
}

fn program() -> impl Strategy<Value = Program> {
    vec(scene(), 1..5).prop_map(|scenes| Program { scenes })
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// What a scene must produce, computed from its plan alone.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// Values each producer sends (producer `p` sends `tag(p, 0..n)`).
    Chan { per_producer: Vec<u32> },
    /// Mutex increments, RwLock writes.
    Lock { incs: u64, writes: u64 },
    /// The stream's length, and the least the reader must get before an early close.
    Stream { len: u64, min_read: u64 },
}

impl Scene {
    fn expect(&self) -> Expected {
        match self {
            Scene::Chan(c) => Expected::Chan {
                per_producer: c
                    .producers
                    .iter()
                    .map(|steps| {
                        steps
                            .iter()
                            .map(|s| match *s {
                                SendStep::Send(n)
                                | SendStep::TrySend(n)
                                | SendStep::SendTimeout(n, _)
                                | SendStep::Select(n, _) => u32::from(n),
                                SendStep::Pause(_) => 0,
                            })
                            .sum()
                    })
                    .collect(),
            },
            Scene::Lock(l) => {
                let steps = l.workers.iter().flatten();
                let count =
                    |f: fn(&LockStep) -> bool| steps.clone().filter(|s| f(s)).count() as u64;
                Expected::Lock {
                    incs: count(|s| matches!(s, LockStep::Inc(_) | LockStep::TryInc)),
                    writes: count(|s| matches!(s, LockStep::Write(_))),
                }
            }
            Scene::Stream(s) => {
                let len: u64 = s
                    .writes
                    .iter()
                    .map(|w| match *w {
                        WriteStep::Write(n) | WriteStep::WriteDeadline(n, _) => u64::from(n),
                        WriteStep::Pause(_) => 0,
                    })
                    .sum();
                let min_read = match s.end {
                    End::HalfClose => len,
                    End::CloseReader(pct) => len * u64::from(pct) / 100,
                };
                Expected::Stream { len, min_read }
            }
        }
    }
}

/// A channel value: who sent it and its place in that sender's sequence.
fn tag(producer: usize, seq: u32) -> u64 {
    ((producer as u64) << 32) | u64::from(seq)
}

/// The late sender's producer number (after every real producer).
const LATE: usize = 1 << 20;

/// Byte `i` of stream `scene`: a hash of the position (splitmix64's finaliser), so that a
/// dropped, repeated or shifted chunk of any length shows.
fn stream_byte(scene: usize, i: u64) -> u8 {
    let mut z = i ^ ((scene as u64) << 40);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u8
}

/// What a run of the whole program observed, summed for the closing report.
#[derive(Default, Debug)]
struct Tally {
    values: u64,
    late_delivered: u64,
    late_refused: u64,
    closed_while_parked: u64,
    chan_timeouts: u64,
    lock_ops: u64,
    bytes: u64,
    io_timeouts: u64,
    readers_closed: u64,
    writers_refused: u64,
}

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.values += t.values;
        self.late_delivered += t.late_delivered;
        self.late_refused += t.late_refused;
        self.closed_while_parked += t.closed_while_parked;
        self.chan_timeouts += t.chan_timeouts;
        self.lock_ops += t.lock_ops;
        self.bytes += t.bytes;
        self.io_timeouts += t.io_timeouts;
        self.readers_closed += t.readers_closed;
        self.writers_refused += t.writers_refused;
    }
}

// ---------------------------------------------------------------------------------------------
// Running a program
// ---------------------------------------------------------------------------------------------

fn pause_now(p: Pause) {
    match p {
        Pause::Yield => weft::yield_now(),
        Pause::Sleep(us) => weft::sleep(Duration::from_micros(u64::from(us))),
    }
}

/// Join a G, turning a panic into an error that names it.
fn join<T>(h: weft::JoinHandle<Result<T, String>>, who: &str) -> Result<T, String> {
    match h.join() {
        Ok(r) => r.map_err(|e| format!("{who}: {e}")),
        Err(p) => Err(format!("{who} panicked: {}", payload_str(&*p))),
    }
}

/// Whether the G with id `id` is parked for one of `reasons`.
fn parked(id: u64, reasons: &[WaitReason]) -> bool {
    id != 0
        && weft::runtime::goroutines()
            .iter()
            .any(|g| g.id == id && reasons.contains(&g.wait_reason))
}

fn my_id() -> u64 {
    weft::current_id().expect("running in a G")
}

/// Run every scene of `prog` at once; check each against its model.
fn run_program(prog: &Program) -> Result<Tally, String> {
    let prog = prog.clone();
    weft::run(move || {
        let handles: Vec<_> = prog
            .scenes
            .into_iter()
            .enumerate()
            .map(|(i, scene)| {
                weft::spawn(move || {
                    let want = scene.expect();
                    let mut tally = Tally::default();
                    match scene {
                        Scene::Chan(c) => run_chan(&c, &want, &mut tally),
                        Scene::Lock(l) => run_lock(&l, &want, &mut tally),
                        Scene::Stream(s) => run_stream(i, &s, &want, &mut tally),
                    }
                    .map(|()| tally)
                })
            })
            .collect();
        let mut total = Tally::default();
        let mut errors = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            match join(h, &format!("scene {i}")) {
                Ok(t) => total.add(&t),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(total)
        } else {
            Err(errors.join("\n"))
        }
    })
}

// --- channels ----------------------------------------------------------------------------------

/// What one consumer received, in order, and how many of its timed operations timed out.
type Received = (Vec<u64>, u64);

fn producer(tx: Sender<u64>, p: usize, steps: Vec<SendStep>) -> Result<u64, String> {
    let mut seq = 0u32;
    let mut timeouts = 0;
    let closed = |what: &str| Err(format!("producer {p}: {what} failed before the close"));
    for step in steps {
        let n = match step {
            SendStep::Send(n)
            | SendStep::TrySend(n)
            | SendStep::SendTimeout(n, _)
            | SendStep::Select(n, _) => n,
            SendStep::Pause(pause) => {
                pause_now(pause);
                0
            }
        };
        for _ in 0..n {
            let v = tag(p, seq);
            seq += 1;
            match step {
                SendStep::Send(_) => {
                    if tx.send(v).is_err() {
                        return closed("send");
                    }
                }
                SendStep::TrySend(_) => loop {
                    match tx.try_send(v) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            if back != v {
                                return Err(format!("try_send returned {back:#x}, sent {v:#x}"));
                            }
                            weft::yield_now();
                        }
                        Err(TrySendError::Disconnected(_)) => return closed("try_send"),
                    }
                },
                SendStep::SendTimeout(_, us) => loop {
                    match tx.send_timeout(v, Duration::from_micros(u64::from(us))) {
                        Ok(()) => break,
                        Err(SendTimeoutError::Timeout(back)) => {
                            if back != v {
                                return Err(format!(
                                    "send_timeout returned {back:#x}, sent {v:#x}"
                                ));
                            }
                            timeouts += 1;
                        }
                        Err(SendTimeoutError::Disconnected(_)) => return closed("send_timeout"),
                    }
                },
                SendStep::Select(_, us) => loop {
                    let sent = weft::select! {
                        send(tx, v) -> r => match r {
                            Ok(()) => true,
                            Err(_) => return closed("select send"),
                        },
                        default(Duration::from_micros(u64::from(us))) => false,
                    };
                    if sent {
                        break;
                    }
                    timeouts += 1;
                },
                SendStep::Pause(_) => unreachable!(),
            }
        }
    }
    Ok(timeouts)
}

fn consumer(rx: Receiver<u64>, steps: Vec<RecvStep>) -> Result<Received, String> {
    let (_never_tx, never) = chan::bounded::<u64>(0);
    let mut got = Vec::new();
    let mut timeouts = 0;
    'steps: for step in steps {
        let n = match step {
            RecvStep::Recv(n)
            | RecvStep::TryRecv(n)
            | RecvStep::RecvTimeout(n, _)
            | RecvStep::Select(n, _) => n,
            RecvStep::Pause(pause) => {
                pause_now(pause);
                0
            }
        };
        for _ in 0..n {
            match step {
                RecvStep::Recv(_) => match rx.recv() {
                    Ok(v) => got.push(v),
                    Err(_) => break 'steps,
                },
                RecvStep::TryRecv(_) => match rx.try_recv() {
                    Ok(v) => got.push(v),
                    Err(TryRecvError::Empty) => weft::yield_now(),
                    Err(TryRecvError::Disconnected) => break 'steps,
                },
                RecvStep::RecvTimeout(_, us) => {
                    match rx.recv_timeout(Duration::from_micros(u64::from(us))) {
                        Ok(v) => got.push(v),
                        Err(RecvTimeoutError::Timeout) => timeouts += 1,
                        Err(RecvTimeoutError::Disconnected) => break 'steps,
                    }
                }
                RecvStep::Select(_, us) => {
                    // Some(true): closed; Some(false): a value or a timeout; None: the
                    // channel nobody sends on delivered something.
                    let closed = weft::select! {
                        recv(rx) -> r => match r {
                            Ok(v) => {
                                got.push(v);
                                Some(false)
                            }
                            Err(_) => Some(true),
                        },
                        recv(never) -> _ => None,
                        default(Duration::from_micros(u64::from(us))) => {
                            timeouts += 1;
                            Some(false)
                        },
                    };
                    match closed {
                        Some(true) => break 'steps,
                        Some(false) => {}
                        None => return Err("a channel nobody sends on delivered".into()),
                    }
                }
                RecvStep::Pause(_) => unreachable!(),
            }
        }
    }
    // Drain until the channel is closed and empty.
    got.extend(rx.iter());
    Ok((got, timeouts))
}

/// The late sender: sends `tag(LATE, 0..)` until a send fails. Returns how many were accepted;
/// the failed send must hand its value back.
fn late_sender(tx: Sender<u64>) -> Result<u32, String> {
    for seq in 0.. {
        let v = tag(LATE, seq);
        if let Err(e) = tx.send(v) {
            if e.0 != v {
                return Err(format!("the refused send returned {:#x}, not {v:#x}", e.0));
            }
            return Ok(seq);
        }
        if seq % 4 == 3 {
            weft::yield_now();
        }
    }
    unreachable!()
}

fn run_chan(c: &ChanScene, want: &Expected, tally: &mut Tally) -> Result<(), String> {
    let Expected::Chan { per_producer } = want else {
        unreachable!()
    };
    let (tx, rx) = chan::bounded::<u64>(c.cap);
    let wg = WaitGroup::new();
    let producers: Vec<_> = c
        .producers
        .iter()
        .enumerate()
        .map(|(p, steps)| {
            let (tx, wg, steps) = (tx.clone(), wg.clone(), steps.clone());
            weft::spawn(move || {
                let r = producer(tx, p, steps);
                drop(wg);
                r
            })
        })
        .collect();
    // Ids of the Gs that may be parked on the channel (consumers, late sender), for the closer.
    let ids: Arc<Vec<AtomicU64>> = Arc::new(
        (0..c.consumers.len() + 1)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let consumers_done = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = c
        .consumers
        .iter()
        .enumerate()
        .map(|(i, steps)| {
            let (rx, steps, ids, done) = (
                rx.clone(),
                steps.clone(),
                ids.clone(),
                consumers_done.clone(),
            );
            weft::spawn(move || {
                ids[i].store(my_id(), SeqCst);
                let r = consumer(rx, steps);
                done.fetch_add(1, SeqCst);
                r
            })
        })
        .collect();
    drop(rx);
    let late = c.late_sender.then(|| {
        let (tx, ids) = (tx.clone(), ids.clone());
        weft::spawn(move || {
            ids[ids.len() - 1].store(my_id(), SeqCst);
            late_sender(tx)
        })
    });
    let n_consumers = c.consumers.len();
    let close_when_parked = c.close_when_parked;
    let closer = weft::spawn(move || -> Result<bool, String> {
        wg.wait();
        let mut seen_parked = false;
        if close_when_parked {
            let reasons = [
                WaitReason::ChanRecv,
                WaitReason::ChanSend,
                WaitReason::Select,
            ];
            let ok = common::wait_until(ROUNDS, || {
                seen_parked = ids.iter().any(|id| parked(id.load(SeqCst), &reasons));
                seen_parked || consumers_done.load(SeqCst) == n_consumers
            });
            if !ok {
                tx.close(); // let everybody finish; the error says what went wrong
                return Err("closer: nobody parked on the channel and consumers not done".into());
            }
        }
        tx.close();
        Ok(seen_parked)
    });

    let mut errors = Vec::new();
    for (p, h) in producers.into_iter().enumerate() {
        match join(h, &format!("producer {p}")) {
            Ok(t) => tally.chan_timeouts += t,
            Err(e) => errors.push(e),
        }
    }
    let mut received = Vec::new();
    for (i, h) in consumers.into_iter().enumerate() {
        match join(h, &format!("consumer {i}")) {
            Ok(r) => received.push(r),
            Err(e) => errors.push(e),
        }
    }
    let late_sent = match late.map(|h| join(h, "late sender")).transpose() {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match join(closer, "closer") {
        Ok(true) => tally.closed_while_parked += 1,
        Ok(false) => {}
        Err(e) => errors.push(e),
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    check_chan(per_producer, late_sent, &received, tally)
}

/// The channel model: exactly once, nothing refused delivered, per-producer order.
fn check_chan(
    per_producer: &[u32],
    late_sent: Option<u32>,
    received: &[Received],
    tally: &mut Tally,
) -> Result<(), String> {
    let mut want: Vec<u64> = per_producer
        .iter()
        .enumerate()
        .flat_map(|(p, &n)| (0..n).map(move |s| tag(p, s)))
        .chain((0..late_sent.unwrap_or(0)).map(|s| tag(LATE, s)))
        .collect();
    want.sort_unstable();
    let mut got: Vec<u64> = received
        .iter()
        .flat_map(|(v, _)| v.iter().copied())
        .collect();
    got.sort_unstable();
    if got != want {
        let mut counts: HashMap<u64, i64> = HashMap::new();
        for v in &want {
            *counts.entry(*v).or_default() += 1;
        }
        for v in &got {
            *counts.entry(*v).or_default() -= 1;
        }
        let mut odd: Vec<_> = counts.into_iter().filter(|&(_, c)| c != 0).collect();
        odd.sort_unstable();
        odd.truncate(8);
        return Err(format!(
            "channel: {} values received, {} sent; (value, sent - received): {odd:x?} \
             (late sender: {late_sent:?} accepted)",
            got.len(),
            want.len()
        ));
    }
    for (i, (vals, timeouts)) in received.iter().enumerate() {
        let mut last: HashMap<u64, u64> = HashMap::new();
        for &v in vals {
            if let Some(prev) = last.insert(v >> 32, v) {
                if prev >= v {
                    return Err(format!(
                        "consumer {i}: {v:#x} after {prev:#x}: out of order"
                    ));
                }
            }
        }
        tally.chan_timeouts += timeouts;
    }
    tally.values += want.len() as u64;
    tally.late_delivered += u64::from(late_sent.unwrap_or(0));
    tally.late_refused += u64::from(late_sent.is_some());
    Ok(())
}

// --- locks -------------------------------------------------------------------------------------

struct Shared {
    counter: Mutex<u64>,
    /// Set while someone holds `counter`: a second holder finds it set.
    inside: AtomicBool,
    pair: RwLock<(u64, u64)>,
}

fn worker(sh: &Shared, w: usize, steps: &[LockStep]) -> Result<(), String> {
    let exclusive = |sh: &Shared| -> Result<(), String> {
        if sh.inside.swap(true, SeqCst) {
            return Err(format!("worker {w}: two holders of the Mutex at once"));
        }
        Ok(())
    };
    for step in steps {
        match *step {
            LockStep::Inc(p) => {
                let mut g = sh.counter.lock();
                exclusive(sh)?;
                let v = *g;
                pause_now(p);
                *g = v + 1;
                sh.inside.store(false, SeqCst);
            }
            LockStep::TryInc => {
                let mut g = loop {
                    match sh.counter.try_lock() {
                        Some(g) => break g,
                        None => weft::yield_now(),
                    }
                };
                exclusive(sh)?;
                *g += 1;
                sh.inside.store(false, SeqCst);
            }
            LockStep::Write(p) => {
                // Read, pause, write: a second writer inside would make an update get lost.
                let mut g = sh.pair.write();
                let (a, b) = *g;
                g.0 = a + 1;
                pause_now(p);
                g.1 = b + 1;
            }
            LockStep::Read(p) => {
                let g = sh.pair.read();
                let before = *g;
                pause_now(p);
                if before.0 != before.1 || *g != before {
                    return Err(format!(
                        "worker {w}: read {before:?} then {:?} under one read lock",
                        *g
                    ));
                }
            }
            LockStep::Pause(p) => pause_now(p),
        }
    }
    Ok(())
}

/// Calls `WaitGroup::done` when dropped (also while unwinding).
struct Done(WaitGroup);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done();
    }
}

fn run_lock(l: &LockScene, want: &Expected, tally: &mut Tally) -> Result<(), String> {
    let &Expected::Lock { incs, writes } = want else {
        unreachable!()
    };
    let sh = Arc::new(Shared {
        counter: Mutex::new(0),
        inside: AtomicBool::new(false),
        pair: RwLock::new((0, 0)),
    });
    let finished = Arc::new(AtomicUsize::new(0));
    let wg = WaitGroup::new();
    wg.add(l.workers.len() as u32);
    let workers: Vec<_> = l
        .workers
        .iter()
        .enumerate()
        .map(|(w, steps)| {
            let (sh, wg, steps, finished) =
                (sh.clone(), wg.clone(), steps.clone(), finished.clone());
            weft::spawn(move || {
                // `done` even if the worker panics, or the checker would wait for good.
                let _done = Done(wg);
                let r = worker(&sh, w, &steps);
                finished.fetch_add(1, SeqCst);
                r
            })
        })
        .collect();
    let n = l.workers.len();
    let checker = {
        let sh = sh.clone();
        weft::spawn(move || -> Result<(), String> {
            wg.wait_all();
            // Every worker called done: all their effects happened before.
            let f = finished.load(SeqCst);
            let c = *sh.counter.lock();
            let pair = *sh.pair.read();
            if f != n || c != incs || pair != (writes, writes) {
                return Err(format!(
                    "after WaitGroup::wait_all: {f}/{n} workers finished, counter {c} \
                     (want {incs}), pair {pair:?} (want ({writes}, {writes}))"
                ));
            }
            Ok(())
        })
    };
    let mut errors = Vec::new();
    for (w, h) in workers.into_iter().enumerate() {
        if let Err(e) = join(h, &format!("worker {w}")) {
            errors.push(e);
        }
    }
    if let Err(e) = join(checker, "checker") {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    tally.lock_ops += incs + writes;
    Ok(())
}

// --- streams -----------------------------------------------------------------------------------

/// One end of a stream, whichever the socket type.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

macro_rules! both {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            Stream::Unix($x) => $e,
            Stream::Tcp($x) => $e,
        }
    };
}

impl Stream {
    fn pair(sock: Sock) -> std::io::Result<(Stream, Stream)> {
        match sock {
            Sock::Unix => {
                let (a, b) = UnixStream::pair()?;
                Ok((Stream::Unix(a), Stream::Unix(b)))
            }
            Sock::Tcp => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                let a = TcpStream::connect(l.local_addr()?)?;
                let (b, _) = l.accept()?;
                Ok((Stream::Tcp(a), Stream::Tcp(b)))
            }
        }
    }
    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        both!(self, s => (&*s).read(buf))
    }
    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        both!(self, s => (&*s).write(buf))
    }
    fn set_read_deadline(&self, d: Option<Instant>) -> std::io::Result<()> {
        both!(self, s => s.set_read_deadline(d))
    }
    fn set_write_deadline(&self, d: Option<Instant>) -> std::io::Result<()> {
        both!(self, s => s.set_write_deadline(d))
    }
    fn shutdown_both(&self) -> std::io::Result<()> {
        both!(self, s => s.shutdown(Shutdown::Both))
    }
    fn shutdown_write(&self) -> std::io::Result<()> {
        both!(self, s => s.shutdown(Shutdown::Write))
    }
    fn close(&self) -> std::io::Result<()> {
        both!(self, s => s.close())
    }
    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
}

fn in_us(us: u16) -> Option<Instant> {
    Some(Instant::now() + Duration::from_micros(u64::from(us)))
}

/// How the writer ended.
#[derive(Debug)]
struct Wrote {
    bytes: u64,
    timeouts: u64,
    /// `BrokenPipe`/`ConnectionReset` after the reader's socket was closed.
    refused: bool,
    /// HalfClose: the reader's answer, then EOF.
    answer: Vec<u8>,
}

/// `closing`: set by the closer just before it closes the reader's socket; an error that only
/// the close can cause must come after it.
fn writer(
    scene: usize,
    s: &Stream,
    steps: &[WriteStep],
    end: End,
    closing: &AtomicBool,
) -> Result<Wrote, String> {
    let mut out = Wrote {
        bytes: 0,
        timeouts: 0,
        refused: false,
        answer: Vec::new(),
    };
    let peer_gone = |e: &std::io::Error| {
        matches!(end, End::CloseReader(_))
            && closing.load(SeqCst)
            && matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
    };
    let mut chunk = Vec::new();
    for step in steps {
        let (n, deadline) = match *step {
            WriteStep::Write(n) => (n, None),
            WriteStep::WriteDeadline(n, us) => (n, Some(us)),
            WriteStep::Pause(p) => {
                pause_now(p);
                continue;
            }
        };
        chunk.clear();
        chunk.extend((0..u64::from(n)).map(|i| stream_byte(scene, out.bytes + i)));
        if let Some(us) = deadline {
            s.set_write_deadline(in_us(us))
                .map_err(|e| format!("set_write_deadline: {e}"))?;
        }
        let mut off = 0;
        while off < chunk.len() {
            match s.write(&chunk[off..]) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(k) => {
                    off += k;
                    out.bytes += k as u64;
                }
                Err(e) if e.kind() == ErrorKind::TimedOut && deadline.is_some() => {
                    out.timeouts += 1;
                    s.set_write_deadline(None)
                        .map_err(|e| format!("clear deadline: {e}"))?;
                }
                Err(e) if peer_gone(&e) => {
                    out.refused = true;
                    return Ok(out);
                }
                Err(e) => {
                    return Err(format!(
                        "write after {} bytes: {e} ({:?})",
                        out.bytes,
                        e.kind()
                    ))
                }
            }
        }
        if deadline.is_some() {
            s.set_write_deadline(None)
                .map_err(|e| format!("clear deadline: {e}"))?;
        }
    }
    if end == End::HalfClose {
        s.shutdown_write()
            .map_err(|e| format!("shutdown(Write): {e}"))?;
        let mut buf = [0u8; 16];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => out.answer.extend_from_slice(&buf[..k]),
                Err(e) => return Err(format!("writer reading the answer: {e}")),
            }
        }
    }
    Ok(out)
}

/// How the reader ended.
#[derive(Debug)]
struct ReadOut {
    bytes: Vec<u8>,
    timeouts: u64,
    /// Its socket was closed under it (`NotConnected`).
    closed: bool,
}

fn reader(
    s: &Stream,
    steps: &[ReadStep],
    end: End,
    got: &AtomicU64,
    closing: &AtomicBool,
) -> Result<ReadOut, String> {
    let mut out = ReadOut {
        bytes: Vec::new(),
        timeouts: 0,
        closed: false,
    };
    // `NotConnected` (the closed error) is expected only once the closer has started closing.
    let closable = || matches!(end, End::CloseReader(_)) && closing.load(SeqCst);
    let mut buf = vec![0u8; 65_536];
    // One read: Ok(true) = EOF; a closed socket ends the reader when a closer is planned.
    let mut read_once =
        |out: &mut ReadOut, len: usize, deadline: Option<u16>| -> Result<bool, String> {
            if let Some(us) = deadline {
                match s.set_read_deadline(in_us(us)) {
                    Err(e) if closable() && e.kind() == ErrorKind::NotConnected => {
                        out.closed = true;
                        return Ok(true);
                    }
                    r => r.map_err(|e| format!("set_read_deadline: {e}"))?,
                }
            }
            let r = s.read(&mut buf[..len]);
            if deadline.is_some() {
                match s.set_read_deadline(None) {
                    Err(e) if closable() && e.kind() == ErrorKind::NotConnected => {}
                    r => r.map_err(|e| format!("clear deadline: {e}"))?,
                }
            }
            match r {
                Ok(0) => Ok(true),
                Ok(k) => {
                    out.bytes.extend_from_slice(&buf[..k]);
                    got.store(out.bytes.len() as u64, SeqCst);
                    Ok(false)
                }
                Err(e) if e.kind() == ErrorKind::TimedOut && deadline.is_some() => {
                    out.timeouts += 1;
                    Ok(false)
                }
                Err(e) if closable() && e.kind() == ErrorKind::NotConnected => {
                    out.closed = true;
                    Ok(true)
                }
                Err(e) => Err(format!(
                    "read after {} bytes: {e} ({:?})",
                    out.bytes.len(),
                    e.kind()
                )),
            }
        };
    for step in steps {
        let ended = match *step {
            ReadStep::Read(n) => read_once(&mut out, n as usize, None)?,
            ReadStep::ReadDeadline(n, us) => read_once(&mut out, n as usize, Some(us))?,
            ReadStep::Pause(p) => {
                pause_now(p);
                false
            }
        };
        if ended {
            break;
        }
    }
    if !out.closed {
        while !read_once(&mut out, 65_536, None)? {}
    }
    if end == End::HalfClose && !out.closed {
        let mut answered = false;
        while !answered {
            match s.write(b"!") {
                Ok(1) => answered = true,
                Ok(_) => {}
                Err(e) => return Err(format!("reader answering after EOF: {e}")),
            }
        }
    }
    Ok(out)
}

fn run_stream(
    scene: usize,
    st: &StreamScene,
    want: &Expected,
    tally: &mut Tally,
) -> Result<(), String> {
    let &Expected::Stream { len, min_read } = want else {
        unreachable!()
    };
    let (w, r) = Stream::pair(st.sock).map_err(|e| format!("socket pair: {e}"))?;
    // Keeps the writer's connection open until the end (so a closer always finds the reader
    // waiting for more, never at EOF).
    let keep = w.try_clone().map_err(|e| format!("try_clone: {e}"))?;
    let r = Arc::new(r);
    let got = Arc::new(AtomicU64::new(0));
    let reader_id = Arc::new(AtomicU64::new(0));
    let reader_done = Arc::new(AtomicBool::new(false));
    let writer_done = Arc::new(AtomicBool::new(false));
    let closing = Arc::new(AtomicBool::new(false));
    let end = st.end;
    let wh = {
        let (steps, done, closing) = (st.writes.clone(), writer_done.clone(), closing.clone());
        weft::spawn(move || {
            let out = writer(scene, &w, &steps, end, &closing);
            if out.is_err() {
                // End the stream, so that the reader finishes and the error is reported.
                let _ = w.shutdown_both();
            }
            done.store(true, SeqCst);
            out
        })
    };
    let rh = {
        let (r, steps, got, id, done, closing) = (
            r.clone(),
            st.reads.clone(),
            got.clone(),
            reader_id.clone(),
            reader_done.clone(),
            closing.clone(),
        );
        weft::spawn(move || {
            id.store(my_id(), SeqCst);
            let out = reader(&r, &steps, end, &got, &closing);
            drop(r);
            done.store(true, SeqCst);
            out
        })
    };
    let closer = match end {
        End::HalfClose => None,
        End::CloseReader(_) => {
            let (r, got, id, done, wdone, closing) = (
                r.clone(),
                got.clone(),
                reader_id.clone(),
                reader_done.clone(),
                writer_done.clone(),
                closing.clone(),
            );
            Some(weft::spawn(move || -> Result<bool, String> {
                let mut was_parked = false;
                // Close once the reader has its share and waits in `read`. (Writer done is not
                // enough: its last bytes may still be on their way, or their edge not yet
                // harvested.) If bytes were lost the share never comes: after the writer is done
                // and the reader has made no progress for 2 s, close anyway, and check_stream
                // reports the shortfall instead of the program hanging.
                let (mut last, mut since) = (u64::MAX, Instant::now());
                let ok = wait_for(CLOSER_LIMIT, || {
                    if done.load(SeqCst) {
                        return true;
                    }
                    let n = got.load(SeqCst);
                    if n != last {
                        (last, since) = (n, Instant::now());
                    }
                    let stuck = wdone.load(SeqCst) && since.elapsed() > Duration::from_secs(2);
                    was_parked =
                        (n >= min_read || stuck) && parked(id.load(SeqCst), &[WaitReason::IoRead]);
                    was_parked
                });
                // Before closing: what the reader was doing, for the error below.
                let state = (!ok).then(|| {
                    let rid = id.load(SeqCst);
                    let g = weft::runtime::goroutines()
                        .into_iter()
                        .find(|g| g.id == rid);
                    format!(
                        "reader {}, {} of {min_read} bytes, writer done: {}",
                        g.map_or("gone".to_string(), |g| g.to_string()),
                        got.load(SeqCst),
                        wdone.load(SeqCst)
                    )
                });
                closing.store(true, SeqCst);
                r.close().map_err(|e| format!("close: {e}"))?;
                if let Some(state) = state {
                    return Err(format!(
                        "closer: after {CLOSER_LIMIT:?} the reader still did not wait in read \
                         with its share ({state})"
                    ));
                }
                Ok(was_parked)
            }))
        }
    };
    drop(r);
    let wrote = join(wh, "writer");
    let read = join(rh, "reader");
    let closed_parked = closer.map(|h| join(h, "closer")).transpose();
    drop(keep);
    let (wrote, read, closed_parked) = match (wrote, read, closed_parked) {
        (Ok(w), Ok(r), Ok(c)) => (w, r, c.unwrap_or(false)),
        (w, r, c) => {
            let errs: Vec<String> = [w.err(), r.err(), c.err()].into_iter().flatten().collect();
            return Err(errs.join("; "));
        }
    };
    check_stream(scene, st, len, min_read, &wrote, &read)?;
    tally.bytes += read.bytes.len() as u64;
    tally.io_timeouts += wrote.timeouts + read.timeouts;
    tally.readers_closed += u64::from(read.closed);
    tally.writers_refused += u64::from(wrote.refused);
    tally.closed_while_parked += u64::from(closed_parked);
    Ok(())
}

/// The stream model.
fn check_stream(
    scene: usize,
    st: &StreamScene,
    len: u64,
    min_read: u64,
    wrote: &Wrote,
    read: &ReadOut,
) -> Result<(), String> {
    let n = read.bytes.len() as u64;
    if let Some(i) = (0..n).find(|&i| read.bytes[i as usize] != stream_byte(scene, i)) {
        return Err(format!(
            "stream: byte {i} of {n} read differs from what was written (of {len})"
        ));
    }
    if n > wrote.bytes {
        return Err(format!(
            "stream: read {n} bytes, only {} written",
            wrote.bytes
        ));
    }
    match st.end {
        End::HalfClose => {
            if read.closed || wrote.refused {
                return Err("stream: an error only a close can cause, without a close".into());
            }
            if wrote.bytes != len || n != len {
                return Err(format!(
                    "stream: {} written, {n} read, of {len}: bytes lost",
                    wrote.bytes
                ));
            }
            if wrote.answer != b"!" {
                return Err(format!(
                    "half-close: the writer got {:?} back, not \"!\" then EOF",
                    wrote.answer
                ));
            }
        }
        End::CloseReader(_) => {
            if !read.closed {
                return Err(format!(
                    "the reader's socket was closed under it, yet its read ended without the \
                     closed error ({n} of {len} bytes)"
                ));
            }
            if n < min_read {
                return Err(format!(
                    "the closer waited for {min_read} bytes, the reader has {n} (of {} written)",
                    wrote.bytes
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

/// Run one program with a hang detector: a program still running after [`PROGRAM_LIMIT`] is
/// printed with a goroutine dump, and the process aborts (a hang cannot be shrunk).
fn run_bounded(prog: &Program) -> Result<Tally, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = prog.clone();
    std::thread::spawn(move || {
        let _ = tx.send(run_program(&p));
    });
    match rx.recv_timeout(PROGRAM_LIMIT) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the program's thread panicked outside its Gs (see its message above)".into())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let mut err = std::io::stderr();
            let _ = writeln!(
                err,
                "\nstress_programs: a program is still running after {PROGRAM_LIMIT:?}: hung.\n\
                 program: {prog:#?}\ngoroutines:"
            );
            let _ = weft::runtime::dump(&mut err);
            std::process::abort();
        }
    }
}

fn check_programs() {
    let cases = common::proptest_cases(CASES);
    // In the 1-P child (one test per process) fds are counted too.
    let count_fds = common::scenario().is_some();
    if count_fds {
        common::make_lazy_fds();
    }
    let total = std::sync::Mutex::new(Tally::default());
    common::run_leak_checked(CASES, &program(), "a stress program", count_fds, |prog| {
        total.lock().unwrap().add(&run_bounded(&prog)?);
        Ok(())
    });
    let t = total.into_inner().unwrap();
    println!("stress_programs: {cases} programs: {t:?}");
    if cases >= 32 {
        assert!(
            t.closed_while_parked > 0 && t.readers_closed > 0,
            "no close ever found a G parked on it: the programs did not exercise closes of \
             blocked operations ({t:?})"
        );
    }
}

/// The watchdog's limit: the CI run takes a second; a soak with `PROPTEST_CASES` in the
/// thousands, plus a minute of shrinking, gets time in proportion.
fn limit() -> Duration {
    4 * TEST_TIMEOUT + Duration::from_millis(20 * u64::from(common::proptest_cases(CASES)))
}

#[test]
fn generated_programs_np() {
    let _dog = watchdog("generated_programs_np", limit());
    common::init(2);
    check_programs();
}

#[test]
fn generated_programs_1p() {
    const TEST: &str = "generated_programs_1p";
    let _dog = watchdog(TEST, limit());
    common::on_one_p_in_child(TEST, check_programs);
}
