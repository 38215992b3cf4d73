//! loom models of the pollDesc `rg`/`wg` handshake (`netpoll/poll_word.rs`): a reader (and a
//! writer) blocking on a descriptor against the netpoller's readiness edge, a close and a deadline
//! timer.
//!
//! The op is modelled as `poll_desc.rs` runs it: `prepare` (check `info`, `reset` the word), then
//! a loop of "syscall" and, on `EAGAIN`, `PollDesc::wait` (check `info`, then `block` until it
//! reports readiness or `info` has an error). `block` is `begin_wait`, `fence_after_publish`, the
//! `info` check and, if that passes, the park, whose commit (`commit(w)`) runs after the switch,
//! then `finish_wait`. The kernel's socket buffer is an `AtomicBool` ("has data" / "has room")
//! that the netpoller sets before its `unblock(true)`, as the kernel makes data readable before it
//! queues the edge. A closer is `info.set(INFO_CLOSING)` + `unblock(false)` on both words
//! (`evict`), a deadline timer `info.set(INFO_READ_EXPIRED)` + `unblock(false)`
//! (`deadline_fired`).
//!
//! A G is a loom thread that, after a successful commit, sleeps on a `Notify` until its status
//! becomes `RUNNABLE`. Waking it is `ready`: a CAS `WAITING` → `RUNNABLE` that fails on a double
//! wakeup (the real `ready` aborts there), then a count and a notify. loom reports a lost wakeup
//! as a deadlock. loom's `Notify` may wake spuriously, so the G waits in a loop on its status.
//!
//! Every model checks that the op returns what happened (readiness, `Closing`, `Timeout`), that
//! every park is matched by exactly one wakeup, that each syscall retry is justified (a wait that
//! reports readiness is followed by a syscall that sees the data), and that the words end in
//! `NIL` or `READY`, never holding a waiter.
//!
//! # What loom finds in broken variants (kept out of the suite: a failing model aborts the binary)
//!
//! Each of these mutations of `poll_word.rs` (or of the op's order of steps) was run against the
//! models above, and each fails at least one of them within a second:
//!
//! * `begin_wait` without the `READY` → `NIL` step, writing `WAIT` over whatever it finds:
//!   `reader_vs_edge` deadlocks. Interleaving: reader `reset`, its syscall sees no data; netpoll
//!   stores the data and its `unblock(true)` turns `NIL` into `READY`; the reader's `begin_wait`
//!   writes `WAIT` over `READY`, `commit` succeeds, and nobody will ever call `unblock` again.
//! * `reset` moved after the syscall (at the start of `wait`): same interleaving, the edge is
//!   erased by the reset; `reader_vs_edge` deadlocks.
//! * `unblock(true)` ignoring `NIL` (only waking waiters): the edge lands between the syscall and
//!   `begin_wait` and is dropped; `reader_vs_edge` deadlocks.
//! * No `fence_after_publish`, no fence in `PollInfo::set`, or the `info` check done before
//!   `begin_wait`: `reader_vs_close` and `reader_vs_deadline` deadlock. The reader reads `info`
//!   before the closer's flag is visible while the closer's `unblock(false)` still sees `NIL`
//!   (store buffering), so the closer wakes nobody and the reader commits and sleeps forever. A
//!   Dekker pair needs both fences.
//! * `unblock(false)` leaving `WAIT` alone: the close between `begin_wait` and `commit` is
//!   lost; `reader_vs_close` deadlocks.
//! * `commit` as a plain swap (not a CAS from `WAIT`): it overwrites the `READY` or `NIL` an
//!   unblock left, so the G sleeps without a waker (deadlock in `reader_vs_close`) or
//!   `finish_wait` finds the waiter still published (assertion in `reader_vs_edge`).
//! * `unblock` handing back `WAIT` as a waiter: "ready" of a G that is not parked (assertion).
//! * `finish_wait` not clearing the word: the word ends in `WAIT` (assertion).
//! * `unblock`'s CAS `Relaxed`: the woken reader's retried syscall does not see the data
//!   (assertion "wait reported readiness, but the syscall would see none").
//!
//! `reader_vs_edge_vs_close` alone catches none of the lost-wakeup bugs above: whichever of the
//! two wakeups is lost, the other one still ends the wait. The 2-thread models are the ones that
//! pin each race down.

use std::sync::atomic::AtomicUsize as Bookkeeping;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Notify};
use loom::thread;

use crate::poll_word::{
    fence_after_publish, Begin, PollErr, PollInfo, PollWord, INFO_CLOSING, INFO_READ_EXPIRED, NIL,
    READY, WAIT,
};

/// Waiter word of the reader G (any value above the state constants).
const READER: usize = 0x1000;
/// Waiter word of the writer G.
const WRITER: usize = 0x2000;

/// G status: running its op (or not parked yet).
const RUNNING: usize = 0;
/// G status: switched out, published (or about to be) in `rg`/`wg`.
const WAITING: usize = 1;
/// G status: readied, not running yet.
const RUNNABLE: usize = 2;

/// The pollDesc's lock-free part.
struct Pd {
    rg: PollWord,
    wg: PollWord,
    info: PollInfo,
}

impl Pd {
    fn new() -> Pd {
        Pd {
            rg: PollWord::new(),
            wg: PollWord::new(),
            info: PollInfo::new(),
        }
    }

    fn word(&self, write: bool) -> &PollWord {
        if write {
            &self.wg
        } else {
            &self.rg
        }
    }

    /// Neither word holds a waiter (or `WAIT`): true whenever no op is in flight.
    fn assert_quiet(&self) {
        for (name, w) in [("rg", self.rg.load()), ("wg", self.wg.load())] {
            assert!(w == NIL || w == READY, "{name} ends holding {w:#x}");
        }
    }
}

/// A G that may park on the pollDesc.
///
/// `status` and `wakes` are harness bookkeeping, not part of the protocol under test, so they are
/// `std` atomics: loom does not branch on them (which keeps the 3-thread models fast) and, as
/// loom runs one modelled thread at a time, they behave as if every access were atomic with the
/// thread's neighbouring loom operations. Whatever the G reads after waking (the word, `info`, the
/// socket) is ordered by the loom atomics of the protocol itself, as in the real runtime.
struct G {
    /// Its waiter word.
    me: usize,
    status: Bookkeeping,
    /// How many times it was readied.
    wakes: Bookkeeping,
    notify: Notify,
}

impl G {
    fn new(me: usize) -> Arc<G> {
        Arc::new(G {
            me,
            status: Bookkeeping::new(RUNNING),
            wakes: Bookkeeping::new(0),
            notify: Notify::new(),
        })
    }
}

/// Everything a model shares.
struct World {
    pd: Pd,
    reader: Arc<G>,
    writer: Arc<G>,
    /// The socket has data to read.
    readable: AtomicBool,
    /// The socket has room to write.
    writable: AtomicBool,
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            pd: Pd::new(),
            reader: G::new(READER),
            writer: G::new(WRITER),
            readable: AtomicBool::new(false),
            writable: AtomicBool::new(false),
        })
    }

    fn g(&self, write: bool) -> &G {
        if write {
            &self.writer
        } else {
            &self.reader
        }
    }

    fn io(&self, write: bool) -> &AtomicBool {
        if write {
            &self.writable
        } else {
            &self.readable
        }
    }

    /// `ready(w)` for a waiter that `unblock` on the word of direction `write` handed back.
    fn ready(&self, write: bool, w: usize) {
        let g = self.g(write);
        assert_eq!(w, g.me, "the word of one direction held another G");
        // The real `ready` swaps the status and aborts unless it was WAITING.
        let prev =
            g.status
                .compare_exchange(WAITING, RUNNABLE, Ordering::AcqRel, Ordering::Acquire);
        assert_eq!(prev, Ok(WAITING), "double wakeup (or woke a running G)");
        g.wakes.fetch_add(1, Ordering::AcqRel);
        g.notify.notify();
    }

    /// `unblock` on one word, readying the waiter it hands back.
    fn unblock(&self, write: bool, ioready: bool) {
        if let Some(w) = self.pd.word(write).unblock(ioready) {
            self.ready(write, w);
        }
    }

    /// netpoll: the kernel made the socket ready in these directions, then reported one edge
    /// for them (`ready_event`).
    fn edge(&self, read: bool, write: bool) {
        for (on, dir) in [(read, false), (write, true)] {
            if on {
                self.io(dir).store(true, Ordering::Release);
            }
        }
        for (on, dir) in [(read, false), (write, true)] {
            if on {
                self.unblock(dir, true);
            }
        }
    }

    /// `evict`: publish `INFO_CLOSING` (with its fence), then unblock both directions.
    fn close(&self) {
        self.pd.info.set(INFO_CLOSING);
        self.unblock(false, false);
        self.unblock(true, false);
    }

    /// `deadline_fired` for the read deadline.
    fn read_deadline(&self) {
        self.pd.info.set(INFO_READ_EXPIRED);
        self.unblock(false, false);
    }
}

/// What one op did.
#[derive(Debug)]
struct Report {
    result: Result<(), PollErr>,
    /// Syscalls issued.
    syscalls: usize,
    /// Successful commits: times the G slept.
    parks: usize,
    /// `block` calls that ended without readiness.
    empty_blocks: usize,
}

/// One read (`write == false`) or write op, as `weft::net` runs it on a `PollDesc`.
fn op(world: &World, write: bool) -> Report {
    let pd = &world.pd;
    let mut r = Report {
        result: Ok(()),
        syscalls: 0,
        parks: 0,
        empty_blocks: 0,
    };
    // PollDesc::prepare.
    if let Some(e) = pd.info.check(write) {
        r.result = Err(e);
        return r;
    }
    pd.word(write).reset();
    loop {
        r.syscalls += 1;
        if world.io(write).load(Ordering::Acquire) {
            return r;
        }
        // EAGAIN: PollDesc::wait.
        if let Some(e) = pd.info.check(write) {
            r.result = Err(e);
            return r;
        }
        loop {
            if block(world, write, &mut r) {
                break; // readiness: retry the syscall
            }
            r.empty_blocks += 1;
            if let Some(e) = pd.info.check(write) {
                r.result = Err(e);
                return r;
            }
        }
        // Readiness in the word is only ever published after the data: the retry succeeds.
        assert!(
            world.io(write).load(Ordering::Acquire),
            "wait reported readiness, but the syscall would see none"
        );
    }
}

/// `poll_desc.rs`'s `block`: true if readiness was consumed, false if woken without it.
fn block(world: &World, write: bool, r: &mut Report) -> bool {
    let pd = &world.pd;
    let word = pd.word(write);
    match word.begin_wait() {
        Begin::Ready => return true,
        Begin::Waiting => {}
        Begin::DoubleWait(w) => panic!("double wait: word {w:#x}"),
    }
    fence_after_publish();
    if pd.info.check(write).is_none() {
        // waiter::block: the M marks the G WAITING and runs the commit after the switch. Until
        // the commit publishes the G nobody can ready it, so the plain stores are not racing.
        let g = world.g(write);
        g.status.store(WAITING, Ordering::Relaxed);
        if word.commit(g.me) {
            r.parks += 1;
            while g.status.load(Ordering::Acquire) != RUNNABLE {
                g.notify.wait();
            }
        }
        // Readied (the waker is done with the status), or the commit failed and the G resumes.
        g.status.store(RUNNING, Ordering::Relaxed);
    }
    word.finish_wait()
        .expect("a waiter is still published after its wait ended")
}

/// Spawn the op of one direction on its own thread.
fn spawn_op(world: &Arc<World>, write: bool) -> thread::JoinHandle<Report> {
    let world = world.clone();
    thread::spawn(move || op(&world, write))
}

/// Spawn a thread running `f` on the world (netpoll, a closer, a timer).
fn spawn_with(world: &Arc<World>, f: fn(&World)) -> thread::JoinHandle<()> {
    let world = world.clone();
    thread::spawn(move || f(&world))
}

/// Every park of `g` was answered by exactly one wakeup, and `g` is running again.
fn assert_woken_once_per_park(g: &G, r: &Report) {
    assert_eq!(
        g.wakes.load(Ordering::Acquire),
        r.parks,
        "wakeups do not match parks: {r:?}"
    );
    assert_eq!(g.status.load(Ordering::Acquire), RUNNING);
}

/// A reader against the readiness edge of data that arrives at any point: the reader always
/// returns with the data (a lost edge would leave it asleep: loom reports a deadlock), having
/// slept at most once and retried the syscall at most once.
#[test]
fn reader_vs_edge() {
    loom::model(|| {
        let world = World::new();
        let netpoll = spawn_with(&world, |w| w.edge(true, false));
        let r = op(&world, false);
        netpoll.join().unwrap();

        assert_eq!(r.result, Ok(()), "{r:?}");
        assert!(r.syscalls <= 2, "{r:?}");
        assert!(r.parks <= 1, "{r:?}");
        assert_eq!(r.empty_blocks, 0, "woken without readiness: {r:?}");
        assert_woken_once_per_park(&world.reader, &r);
        world.pd.assert_quiet();
        assert_eq!(world.pd.wg.load(), NIL);
    });
}

/// A reader on a socket that never gets data, against a close: the reader returns `Closing`
/// (it never sleeps through the close), and the close leaves no readiness behind.
#[test]
fn reader_vs_close() {
    loom::model(|| {
        let world = World::new();
        let closer = spawn_with(&world, World::close);
        let r = op(&world, false);
        closer.join().unwrap();

        assert_eq!(r.result, Err(PollErr::Closing), "{r:?}");
        assert!(
            r.syscalls <= 1 && r.parks <= 1 && r.empty_blocks <= 1,
            "{r:?}"
        );
        assert_woken_once_per_park(&world.reader, &r);
        assert_eq!(world.pd.rg.load(), NIL);
        assert_eq!(world.pd.wg.load(), NIL);
    });
}

/// A reader on a socket that never gets data, against its read deadline firing: `Timeout`.
#[test]
fn reader_vs_deadline() {
    loom::model(|| {
        let world = World::new();
        let timer = spawn_with(&world, World::read_deadline);
        let r = op(&world, false);
        timer.join().unwrap();

        assert_eq!(r.result, Err(PollErr::Timeout), "{r:?}");
        assert!(
            r.syscalls <= 1 && r.parks <= 1 && r.empty_blocks <= 1,
            "{r:?}"
        );
        assert_woken_once_per_park(&world.reader, &r);
        assert_eq!(world.pd.rg.load(), NIL);
        // The write direction is unaffected by a read deadline.
        assert_eq!(world.pd.info.check(true), None);
    });
}

/// A reader against both an edge and a close (3 threads): it returns either the data or
/// `Closing`, is woken once per park whoever gets to it first, and only sees the data if the
/// edge really came.
#[test]
fn reader_vs_edge_vs_close() {
    loom::model(|| {
        let world = World::new();
        let netpoll = spawn_with(&world, |w| w.edge(true, false));
        let closer = spawn_with(&world, World::close);
        let r = op(&world, false);
        netpoll.join().unwrap();
        closer.join().unwrap();

        match r.result {
            Ok(()) => assert!(world.readable.load(Ordering::Relaxed)),
            Err(e) => assert_eq!(e, PollErr::Closing, "{r:?}"),
        }
        assert!(
            r.syscalls <= 2 && r.parks <= 1 && r.empty_blocks <= 1,
            "{r:?}"
        );
        assert_woken_once_per_park(&world.reader, &r);
        world.pd.assert_quiet();
    });
}

/// A reader whose read deadline fires and is then moved into the future (`set_deadline` clears
/// `INFO_READ_EXPIRED`), against an edge (3 threads). A wakeup by the timer that finds the flag
/// already cleared must wait again (the loop in `PollDesc::wait`), and the edge then ends the
/// wait: the reader returns the data or `Timeout`, never sleeps forever.
#[test]
fn reader_vs_deadline_reset_vs_edge() {
    loom::model(|| {
        let world = World::new();
        let timer = spawn_with(&world, |w| {
            w.read_deadline();
            w.pd.info.clear(INFO_READ_EXPIRED);
        });
        let netpoll = spawn_with(&world, |w| w.edge(true, false));
        let r = op(&world, false);
        timer.join().unwrap();
        netpoll.join().unwrap();

        match r.result {
            Ok(()) => assert!(world.readable.load(Ordering::Relaxed)),
            Err(e) => assert_eq!(e, PollErr::Timeout, "{r:?}"),
        }
        assert!(
            r.syscalls <= 2 && r.parks <= 2 && r.empty_blocks <= 1,
            "{r:?}"
        );
        assert_woken_once_per_park(&world.reader, &r);
        world.pd.assert_quiet();
    });
}

/// A reader waiting on `rg` and a writer waiting on `wg` at the same time, against one edge that
/// readies both directions (`IN|OUT`): both return with readiness, each woken at most once and
/// only through its own word.
#[test]
fn reader_and_writer_vs_edge() {
    loom::model(|| {
        let world = World::new();
        let writer = spawn_op(&world, true);
        let netpoll = spawn_with(&world, |w| w.edge(true, true));
        let r = op(&world, false);
        let w = writer.join().unwrap();
        netpoll.join().unwrap();

        for (g, rep) in [(&world.reader, &r), (&world.writer, &w)] {
            assert_eq!(rep.result, Ok(()), "{rep:?}");
            assert!(rep.syscalls <= 2 && rep.parks <= 1, "{rep:?}");
            assert_eq!(rep.empty_blocks, 0, "{rep:?}");
            assert_woken_once_per_park(g, rep);
        }
        world.pd.assert_quiet();
    });
}

/// A reader and a writer waiting at once, against a close: both return `Closing`, each woken
/// at most once, and both words end `NIL`.
#[test]
fn reader_and_writer_vs_close() {
    loom::model(|| {
        let world = World::new();
        let writer = spawn_op(&world, true);
        let closer = spawn_with(&world, World::close);
        let r = op(&world, false);
        let w = writer.join().unwrap();
        closer.join().unwrap();

        for (g, rep) in [(&world.reader, &r), (&world.writer, &w)] {
            assert_eq!(rep.result, Err(PollErr::Closing), "{rep:?}");
            assert!(rep.syscalls <= 1 && rep.parks <= 1, "{rep:?}");
            assert_woken_once_per_park(g, rep);
        }
        assert_eq!(world.pd.rg.load(), NIL);
        assert_eq!(world.pd.wg.load(), NIL);
    });
}

/// Sanity check of the harness itself, without loom's scheduler doing anything interesting: an
/// edge that came before the op is seen by the syscall, and the stale `READY` is dropped by
/// `reset`, so a second op that finds no data really waits (`WAIT` is published).
#[test]
fn stale_ready_is_reset() {
    loom::model(|| {
        let world = World::new();
        world.edge(true, false);
        assert_eq!(world.pd.rg.load(), READY);
        let r = op(&world, false);
        assert_eq!((r.result, r.syscalls, r.parks), (Ok(()), 1, 0));
        assert_eq!(world.pd.rg.load(), NIL);
        // The data is consumed; the next op's begin_wait publishes WAIT.
        world.readable.store(false, Ordering::Relaxed);
        assert_eq!(world.pd.rg.begin_wait(), Begin::Waiting);
        assert_eq!(world.pd.rg.load(), WAIT);
        assert_eq!(world.pd.rg.finish_wait(), Some(false));
    });
}
