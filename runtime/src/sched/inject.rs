//! Putting a batch of readied Gs to work (Go: `injectglist`, `startIdle`).
//!
//! The netpoller (from `findrunnable`, the blocking poller or sysmon) readies many Gs at once. One
//! `ready` each would put each into the caller's `runnext` in turn and wake at most one M. Instead,
//! as Go does:
//!
//! * without a P (sysmon, a poller that found no idle P): all go to the global queue, and one M
//!   is started per idle P (at most one per G);
//! * with a P: as many as there are idle Ps go to the global queue with one M started for each;
//!   the rest go to the caller's local run queue, which it is about to drain.

use std::sync::atomic::Ordering;

use super::g::GRef;
use super::globrunq::globrunqput_batch_vec;
use super::idle::startm;
use super::park::make_runnable;
use super::{context, load, sched};

/// Make every G in `list` runnable and queue it (see the module doc). Empties `list`.
pub(crate) fn injectglist(list: &mut Vec<GRef>) {
    // Unwinding Gs blocked on their OS thread are woken there, not queued.
    list.retain(|&gp| make_runnable(gp));
    if list.is_empty() {
        return;
    }
    let s = sched();
    let Some(pp) = context::current_p() else {
        let n = list.len();
        globrunqput_batch_vec(list.drain(..));
        start_idle(n);
        return;
    };
    let to_global = load(&s.npidle).min(list.len());
    if to_global > 0 {
        globrunqput_batch_vec(list.drain(..to_global));
        start_idle(to_global);
    }
    for gp in list.drain(..) {
        if let Some(batch) = pp.runq.put(gp.0, false) {
            super::globrunq::globrunqput_batch(batch);
        }
    }
}

/// Start up to `n` Ms on idle Ps (Go: `startIdle`).
fn start_idle(mut n: usize) {
    let s = sched();
    while n > 0 && s.npidle.load(Ordering::SeqCst) != 0 {
        startm(None, false);
        n -= 1;
    }
}
