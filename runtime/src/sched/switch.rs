//! The only place that switches into a G: `execute` (Go: `execute` + `gogo`, and the parts of
//! `park_m`, `goschedImpl` and `goexit0` that run on the M's stack after the G switched out).
//!
//! `execute` resumes the G's coroutine with the current M as the resume value, and handles what
//! the G hands back:
//!
//! * returned → the G is dead: its stack goes back to a free list (`newproc::gdestroy`);
//! * `Suspend::Yield` → requeue at the tail of the local ring;
//! * `Suspend::Park(commit)` → run the commit *here, after the switch*; if it declines, resume the
//!   G at once (Go's `park_m`: `if !unlockf(gp) { execute(gp) }`);
//! * `Suspend::ExitSyscall` → the G came back from `blocking` and found no P (the M holds none):
//!   take an idle P and resume it, or queue it globally and sleep until handed a P (Go's
//!   `exitsyscall0`).
//!
//! The thread-local "current G" is set only around `resume`, so code on the M's stack (a commit,
//! the scheduler) never believes it runs inside a G.

use corosensei::CoroutineResult;

use super::g::{GRef, Suspend, G_RUNNABLE, G_RUNNING, G_WAITING};
use std::sync::atomic::Ordering;

use super::globrunq::{globrunqput_batch, globrunqput_locked};
use super::idle::{acquirep, pidleget, stopm, wakep};
use super::m::M;
use super::{context, newproc};

/// Run `gp` on `m` until it yields, parks for good, or finishes. `inherit`: `gp` came from
/// `runnext` and shares the current time slice (no new tick).
pub(crate) fn execute(m: &'static M, gp: GRef, inherit: bool) {
    let pp = m.p().expect("execute: M holds no P");
    pp.count_execute(inherit);
    crate::introspect::latency::record(pp, gp);
    gp.set_status(G_RUNNING);
    loop {
        context::set_current_g(Some(gp));
        m.curg.store(gp.as_ptr(), Ordering::Relaxed);
        // SAFETY: this M owns gp (it took it from a run queue); the coroutine is not referenced
        // anywhere else while it runs, and the G's own code never touches `coro`.
        let coro = unsafe { gp.coro_mut() }
            .as_mut()
            .expect("execute: G without a coroutine");
        let r = coro.resume(m);
        context::set_current_g(None);
        m.curg.store(std::ptr::null_mut(), Ordering::Relaxed);
        match r {
            CoroutineResult::Return(()) => {
                newproc::gdestroy(gp);
                return;
            }
            CoroutineResult::Yield(Suspend::Yield) => {
                gp.set_status(G_RUNNABLE);
                // Re-read the P: a G that parked while unwinding may have come back on another.
                let pp = m.p().expect("execute: M lost its P");
                if let Some(batch) = pp.runq.put(gp.0, false) {
                    globrunqput_batch(batch);
                    wakep();
                } else if pp.runq.len() > 1 {
                    // Other work besides the yielder: let an idle P take some (Go's Gosched
                    // wakes one too). A lone yielder does not, or it would bounce between Ms.
                    wakep();
                }
                return;
            }
            CoroutineResult::Yield(Suspend::Park(commit)) => {
                gp.set_status(G_WAITING);
                if let Some(pp) = m.p() {
                    crate::introspect::count_park(pp, gp);
                }
                // SAFETY: `commit` was built by `park::park` for this very switch: `data` points
                // to a closure on gp's stack, which stays untouched until gp is resumed, and
                // `call` moves it onto this stack before running it (so nothing reads gp's stack
                // after the closure has published gp).
                let parked = unsafe { (commit.call)(commit.data, gp) };
                if parked {
                    return;
                }
                // The commit declined (the event already happened): gp is still ours.
                gp.set_status(G_RUNNING);
            }
            CoroutineResult::Yield(Suspend::ExitSyscall) => {
                let s = super::sched();
                let mut l = s.lock();
                if let Some(pp) = pidleget(&mut l) {
                    drop(l);
                    acquirep(m, pp);
                    gp.set_status(G_RUNNING);
                    continue;
                }
                gp.set_status(G_RUNNABLE);
                globrunqput_locked(&mut l, gp);
                drop(l);
                // Busy Ps find it at their next look at the global queue (every 61 ticks at
                // most); a P released from now on sees it before going idle (findrunnable).
                stopm(m);
                return;
            }
        }
    }
}
