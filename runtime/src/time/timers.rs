//! Per-P timer heaps (Go ≥ 1.14: `p.timers`, `addtimer`, `checkTimers`, `runtimer`).
//!
//! Each P owns a min-heap of timers keyed by expiry time. A timer is a small plain value: a
//! `when`, an argument word, a generation and a `&'static TimerKind` that says what firing
//! means. There is no handle and no in-place removal; instead every kind says, through `live`,
//! whether a given (arg, gen) still matters. Owners "stop" a timer by bumping the generation
//! they store on their side (a pollDesc's `rseq`/`wseq`), and a stale entry does nothing when it
//! fires. Deadlines that are only extended (the common case: a server pushes the read deadline
//! forward on every request) do not add entries at all: the pending entry fires early, sees the
//! later deadline and re-arms itself once (see `netpoll/poll_desc.rs`). So the heap holds about
//! one entry per armed deadline; when stale entries pile up anyway (deadlines shortened or
//! cleared, descriptors closed), `add` compacts the heap once it doubled since the last
//! compaction, keeping the cost amortised O(1) per add.
//!
//! # Who runs timers
//!
//! * The M holding a P, at the top of `findrunnable` (its own heap), and, before it gives up
//!   its P, the expired timers of every P (so timers of idle Ps and of Ps busy with a long G run
//!   too; Go steals them in `stealWork`).
//! * The M blocked in `epoll_wait` sleeps until the earliest timer of all Ps; adding an earlier
//!   timer breaks that wait (`netpoll::wake_for_timer`, Go: `wakeNetPoller`).
//!
//! Firing happens outside the heap lock, on an M's stack while it holds a P, so a `fire`
//! function may ready Gs (they go to that P's run queue) and take the pollDesc lock. Lock order:
//! pollDesc lock → heap lock (deadlines add timers under the pollDesc lock; nothing takes a
//! pollDesc lock while holding a heap lock).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sched::{context, sched};

/// What a timer does when it fires; one `static` per use (sleep, read deadline, ...).
pub(crate) struct TimerKind {
    /// For diagnostics.
    #[allow(dead_code)]
    pub(crate) name: &'static str,
    /// Called once when the timer expires, with its `arg`, `gen` and the current time. Runs on
    /// an M's stack that holds a P, outside any heap lock.
    pub(crate) fire: fn(arg: usize, gen: u64, now: u64),
    /// Whether an entry still matters; stale entries are dropped when the heap is compacted.
    pub(crate) live: fn(arg: usize, gen: u64) -> bool,
    /// Called for an entry that compaction drops (instead of `fire`), so a kind whose `arg` owns
    /// something (a channel timeout's `Arc`) can release it. Runs under the heap lock: it must
    /// only release memory, never take a lock or wake anyone.
    pub(crate) discard: Option<fn(arg: usize, gen: u64)>,
}

#[derive(Clone, Copy)]
struct Entry {
    when: u64,
    arg: usize,
    gen: u64,
    kind: &'static TimerKind,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.when == other.when
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest timer first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.when.cmp(&self.when)
    }
}

/// No timer (the value of `Timers::next` for an empty heap).
pub(crate) const NONE: u64 = u64::MAX;

/// Compaction never runs on heaps smaller than this.
const COMPACT_MIN: usize = 1024;

/// Expired timers taken out of the heap per lock acquisition.
const FIRE_BATCH: usize = 16;

struct Heap {
    heap: BinaryHeap<Entry>,
    compact_at: usize,
}

/// One P's timers. See the module doc.
pub(crate) struct Timers {
    heap: Mutex<Heap>,
    /// `when` of the earliest entry, or `NONE` (Go: `timer0When`). Written under the lock, read
    /// without it, so Ms can skip the lock when nothing is due.
    next: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Mutex::new(Heap {
                heap: BinaryHeap::new(),
                compact_at: COMPACT_MIN,
            }),
            next: AtomicU64::new(NONE),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Heap> {
        // Nothing panics under this lock (fire functions run outside it).
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expiry time of the earliest timer, or `NONE`.
    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Add a timer. Returns true if it became this heap's earliest.
    fn add(&self, when: u64, arg: usize, gen: u64, kind: &'static TimerKind) -> bool {
        let mut h = self.lock();
        if h.heap.len() >= h.compact_at {
            h.heap.retain(|e| {
                let keep = (e.kind.live)(e.arg, e.gen);
                if !keep {
                    if let Some(discard) = e.kind.discard {
                        discard(e.arg, e.gen);
                    }
                }
                keep
            });
            h.compact_at = (2 * h.heap.len()).max(COMPACT_MIN);
        }
        h.heap.push(Entry {
            when,
            arg,
            gen,
            kind,
        });
        let earliest = when < self.next.load(Ordering::Relaxed);
        if earliest {
            self.next.store(when, Ordering::SeqCst);
        }
        earliest
    }

    /// Move every entry of this heap into `to` (Go: `moveTimers`, when `procresize` retires a P):
    /// a P that stops being run must not keep timers, or nothing may fire them. Takes the two
    /// heap locks one after the other, never both.
    pub(crate) fn move_into(&self, to: &Timers) {
        let entries = {
            let mut h = self.lock();
            self.next.store(NONE, Ordering::SeqCst);
            std::mem::take(&mut h.heap).into_vec()
        };
        for e in entries {
            to.add(e.when, e.arg, e.gen, e.kind);
        }
    }

    /// Fire every timer that expired by `now` (Go: `checkTimers`). Returns how many fired.
    pub(crate) fn run(&self, now: u64) -> usize {
        let mut fired = 0;
        while self.next() <= now {
            let mut batch = [None; FIRE_BATCH];
            let mut n = 0;
            {
                let mut h = self.lock();
                while n < FIRE_BATCH {
                    match h.heap.peek() {
                        Some(e) if e.when <= now => {
                            batch[n] = h.heap.pop();
                            n += 1;
                        }
                        _ => break,
                    }
                }
                let next = h.heap.peek().map_or(NONE, |e| e.when);
                self.next.store(next, Ordering::SeqCst);
            }
            for e in batch.iter().flatten() {
                (e.kind.fire)(e.arg, e.gen, now);
            }
            fired += n;
        }
        fired
    }
}

/// Round-robin choice of a P's heap for timers added from plain threads.
static NEXT_FOREIGN: AtomicUsize = AtomicUsize::new(0);

/// Add a timer to the calling M's P (or, from a thread without a P, to some P), and make sure
/// some M will wake up for it (Go: `addtimer` + `wakeNetPoller`).
pub(crate) fn add_timer(when: u64, arg: usize, gen: u64, kind: &'static TimerKind) {
    let s = sched();
    let pp = match context::current_p() {
        Some(pp) => pp,
        None => &s.ps[NEXT_FOREIGN.fetch_add(1, Ordering::Relaxed) % s.procs()],
    };
    if let Err(e) = crate::netpoll::init() {
        crate::sched::fatal(format_args!("cannot create the netpoller for timers: {e}"));
    }
    if pp.timers.add(when, arg, gen, kind) {
        crate::netpoll::wake_for_timer(when);
    }
}

/// The earliest timer of all Ps, or `NONE`.
pub(crate) fn earliest() -> u64 {
    sched()
        .ps
        .iter()
        .map(|p| p.timers.next())
        .min()
        .unwrap_or(NONE)
}

/// Fire the expired timers of every P (the caller holds a P). Returns how many fired.
pub(crate) fn run_all(now: u64) -> usize {
    sched().ps.iter().map(|p| p.timers.run(now)).sum()
}

/// The heap on its own (no scheduler): firing order, batching, `next`, compaction. Pure data
/// structure code, so these also run under Miri (`docs/TESTING.md`).
#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// What fired or was discarded on this test's thread: (arg, gen, now).
        static FIRED: RefCell<Vec<(usize, u64, u64)>> = const { RefCell::new(Vec::new()) };
        static DISCARDED: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
    }

    fn record(arg: usize, gen: u64, now: u64) {
        FIRED.with(|f| f.borrow_mut().push((arg, gen, now)));
    }

    fn forget(arg: usize, gen: u64) {
        DISCARDED.with(|d| d.borrow_mut().push((arg, gen)));
    }

    /// Entries with an odd generation are stale.
    fn even_gen(_: usize, gen: u64) -> bool {
        gen % 2 == 0
    }

    static KIND: TimerKind = TimerKind {
        name: "test",
        fire: record,
        live: even_gen,
        discard: Some(forget),
    };

    fn fired() -> Vec<(usize, u64, u64)> {
        FIRED.with(|f| std::mem::take(&mut *f.borrow_mut()))
    }

    #[test]
    fn fires_in_expiry_order_and_tracks_next() {
        let t = Timers::new();
        assert_eq!(t.next(), NONE);
        assert!(t.add(30, 3, 0, &KIND), "first timer is the earliest");
        assert!(
            t.add(10, 1, 0, &KIND),
            "an earlier one becomes the earliest"
        );
        assert!(!t.add(20, 2, 0, &KIND), "a later one does not");
        assert_eq!(t.next(), 10);
        assert_eq!(t.run(5), 0, "nothing is due yet");
        assert!(fired().is_empty());
        assert_eq!(t.run(20), 2);
        assert_eq!(fired(), vec![(1, 0, 20), (2, 0, 20)]);
        assert_eq!(t.next(), 30);
        assert_eq!(t.run(u64::MAX - 1), 1);
        assert_eq!(fired(), vec![(3, 0, u64::MAX - 1)]);
        assert_eq!(t.next(), NONE);
    }

    #[test]
    fn move_into_empties_the_source_and_fires_everything_from_the_target() {
        let (from, to) = (Timers::new(), Timers::new());
        from.add(50, 5, 0, &KIND);
        from.add(10, 1, 0, &KIND);
        to.add(30, 3, 0, &KIND);
        from.move_into(&to);
        assert_eq!(from.next(), NONE);
        assert_eq!(from.run(u64::MAX - 1), 0, "the source keeps nothing");
        assert_eq!(to.next(), 10, "the target's earliest is the moved 10");
        assert_eq!(to.run(u64::MAX - 1), 3);
        let args: Vec<usize> = fired().into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(args, [1, 3, 5]);
        Timers::new().move_into(&to);
        assert_eq!(to.next(), NONE, "an empty heap moves nothing");
    }

    #[test]
    fn fires_more_than_one_batch() {
        let t = Timers::new();
        let n = 3 * FIRE_BATCH + 5;
        for i in (0..n).rev() {
            t.add(100 + i as u64, i, 0, &KIND);
        }
        assert_eq!(t.run(100 + n as u64), n);
        let args: Vec<usize> = fired().into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(
            args,
            (0..n).collect::<Vec<_>>(),
            "every timer once, earliest first"
        );
        assert_eq!(t.next(), NONE);
    }

    #[test]
    fn compaction_drops_stale_entries_and_keeps_live_ones() {
        let t = Timers::new();
        // COMPACT_MIN entries, every other one stale; the next add compacts.
        for i in 0..COMPACT_MIN {
            t.add(1_000 + i as u64, i, (i % 2) as u64, &KIND);
        }
        DISCARDED.with(|d| d.borrow_mut().clear());
        t.add(5, usize::MAX, 0, &KIND);
        let discarded = DISCARDED.with(|d| std::mem::take(&mut *d.borrow_mut()));
        assert_eq!(
            discarded.len(),
            COMPACT_MIN / 2,
            "each stale entry discarded once"
        );
        assert!(discarded.iter().all(|&(_, gen)| gen == 1));
        assert_eq!(t.next(), 5);
        assert_eq!(t.run(u64::MAX - 1), COMPACT_MIN / 2 + 1);
        let fired = fired();
        assert_eq!(fired[0].0, usize::MAX);
        assert!(fired[1..].iter().all(|&(a, g, _)| a % 2 == 0 && g == 0));
        // The threshold doubled from what stayed (at least COMPACT_MIN): no compaction loop.
        assert!(t.lock().compact_at >= COMPACT_MIN);
    }
}
