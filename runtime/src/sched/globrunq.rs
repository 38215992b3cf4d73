//! The global run queue (Go: `sched.runq`, `globrunqput`, `globrunqget`).
//!
//! Work lands here when it comes from outside the scheduler (a spawn from a plain thread), when a
//! P's local ring overflows (half of it moves here in one batch), and when a G is readied by a
//! thread that holds no P. It is a `VecDeque` under `Sched::lock`; `Sched::runqsize` mirrors its
//! length so that Ms can skip the lock when it is empty.
//!
//! Fairness: an M takes from here before its own queue every `GLOBAL_RUNQ_TICK` ticks, and takes
//! a batch (its fair share, at most half a ring) when its own queue is empty.

use std::sync::atomic::Ordering;

use super::g::GRef;
use super::p::P;
use super::runq::{Overflow, RUNQ_HALF};
use super::{g::G, sched, Locked};

/// Put one G at the tail of the global queue.
pub(crate) fn globrunqput(gp: GRef) {
    let s = sched();
    let mut l = s.lock();
    l.runq.push_back(gp);
    s.runqsize.store(l.runq.len(), Ordering::SeqCst);
}

/// Put one G at the tail of the global queue; the caller holds the lock.
pub(crate) fn globrunqput_locked(l: &mut Locked, gp: GRef) {
    l.runq.push_back(gp);
    sched().runqsize.store(l.runq.len(), Ordering::SeqCst);
}

/// Put an overflow batch from a local ring at the tail of the global queue.
pub(crate) fn globrunqput_batch(batch: Overflow<G>) {
    let s = sched();
    let mut l = s.lock();
    l.runq.extend(batch.iter().map(GRef));
    s.runqsize.store(l.runq.len(), Ordering::SeqCst);
}

/// Put a batch of Gs (readied by the netpoller) at the tail of the global queue.
pub(crate) fn globrunqput_batch_vec(gs: impl Iterator<Item = GRef>) {
    let s = sched();
    let mut l = s.lock();
    l.runq.extend(gs);
    s.runqsize.store(l.runq.len(), Ordering::SeqCst);
}

/// Take a G from the global queue for P `pp`, plus up to `max - 1` more (0: the fair share) that
/// go onto `pp`'s local ring. The caller holds `pp` and the lock (`l`); the extra Gs are returned
/// so the caller can queue them after dropping the lock.
pub(crate) fn globrunqget_locked(l: &mut Locked, max: usize) -> Option<(GRef, Vec<GRef>)> {
    let s = sched();
    let size = l.runq.len();
    if size == 0 {
        return None;
    }
    let mut n = (size / s.procs() + 1).min(size).min(RUNQ_HALF);
    if max > 0 {
        n = n.min(max);
    }
    let gp = l.runq.pop_front()?;
    let rest: Vec<GRef> = l.runq.drain(..n - 1).collect();
    s.runqsize.store(l.runq.len(), Ordering::SeqCst);
    Some((gp, rest))
}

/// Lock, take from the global queue (see `globrunqget_locked`) and queue the extras on `pp`.
pub(crate) fn globrunqget(pp: &P, max: usize) -> Option<GRef> {
    let s = sched();
    let (gp, rest) = {
        let mut l = s.lock();
        globrunqget_locked(&mut l, max)?
    };
    put_local_batch(pp, rest);
    Some(gp)
}

/// Queue Gs taken from the global queue on `pp`'s ring (it has room: it was empty or nearly).
pub(crate) fn put_local_batch(pp: &P, gs: Vec<GRef>) {
    for g in gs {
        if let Some(batch) = pp.runq.put(g.0, false) {
            globrunqput_batch(batch);
        }
    }
}
