//! park / ready: the primitive everything in weft blocks on (Go: `gopark`, `goready`, `Gosched`).
//!
//! # park
//!
//! `park(commit)` suspends the current G and asks its M to run `commit(gp)` on the M's stack,
//! *after* the switch. The commit publishes `gp` in some wait slot (a join packet, later a
//! pollDesc or a channel's queue) and releases whatever protects that slot; from then on the
//! slot owns `gp`. If the commit returns `false` the event it waited for already happened and the
//! G resumes at once.
//!
//! Why after the switch: if the G published itself *before* switching out, another M could take
//! it from the slot and resume its stack while this M is still running on it: one stack, two
//! threads. Committing after the switch makes "G is in a slot" imply "G is not running".
//!
//! The commit closure lives on the G's stack. `Commit::call` *moves* it onto the M's stack
//! before calling it, so once the closure has published the G nothing reads the G's stack again
//! (the G may already be running elsewhere and reusing that memory).
//!
//! # ready
//!
//! `ready(gp)` makes a parked G runnable: into the current P's `runnext` (it runs next, sharing
//! the time slice of the G that readied it, as in Go), or onto the global queue from a thread
//! that holds no P; then `wakep`. The status swap catches a G woken twice, which would otherwise
//! corrupt its stack, and aborts with a message instead.
//!
//! # Parking while unwinding
//!
//! A G must not switch stacks while it unwinds (a destructor that blocks during a panic): std's
//! per-thread panic count would end up on the wrong thread (measured: it then poisons unrelated
//! mutexes). `park` detects `std::thread::panicking()` and instead blocks the OS thread: the M
//! hands its P to another M (`handoffp`), runs the commit in place, sleeps on its note until
//! `ready` wakes it (status `BLOCKED_OS`), then waits for a P and carries on on the same thread.

use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;

use super::g::{Commit, GRef, Suspend, G_BLOCKED_OS, G_RUNNABLE, G_RUNNING, G_WAITING};
use super::globrunq::{globrunqput, globrunqput_batch};
use super::idle::{acquirep_wait, handoffp, releasep, wakep};
use super::{context, fatal};
use crate::wait_reason::WaitReason;

/// Park the current G until someone calls [`ready`] on it. `commit` runs on the M's stack after
/// the switch and publishes the G (see the module doc); return `false` from it to cancel.
///
/// The rule for `commit`: until the operation that publishes the G it may use anything,
/// including data on the parked G's stack (the G is suspended and unreachable); after it, it must
/// touch nothing of the G's stack, since from then on another M may be running the G and the
/// data may be gone. Copy what is needed afterwards onto the M's stack first (a `move` closure's
/// by-value captures are moved there by `Commit::call`).
///
/// # Panics
/// When called outside a G (callers check first).
///
/// `reason` and `detail` (an fd for I/O) say what the G waits for (the dump shows them).
#[inline(never)]
pub(crate) fn park<F>(reason: WaitReason, detail: u64, commit: F)
where
    F: FnOnce(GRef) -> bool,
{
    let gp = context::current_g().expect("weft: park called outside a coroutine");
    let g = gp.g();
    g.wait_reason.store(reason.as_u8(), Ordering::Relaxed);
    g.wait_detail.store(detail, Ordering::Relaxed);
    g.wait_since
        .store(crate::introspect::coarse_now(), Ordering::Relaxed);
    if std::thread::panicking() {
        park_blocking_os(gp, commit);
        return;
    }

    /// Moves the closure from the G's stack onto the caller's (the M's) stack, then runs it.
    ///
    /// # Safety
    /// `data` points to a live `ManuallyDrop<F>` that is read exactly once.
    unsafe fn call<F: FnOnce(GRef) -> bool>(data: *mut (), gp: GRef) -> bool {
        // SAFETY: the caller's contract; the G never drops its ManuallyDrop copy.
        let f = unsafe { std::ptr::read(data as *mut F) };
        f(gp)
    }

    let mut commit = ManuallyDrop::new(commit);
    let req = Commit {
        call: call::<F>,
        data: &mut *commit as *mut F as *mut (),
    };
    suspend(gp, Suspend::Park(req));
    // Resumed (possibly on another M). `commit` was consumed by `call`; do not drop it here.
}

/// Switch from the calling G (`gp`) back to its M with `why`; returns when the G is resumed,
/// possibly on another M (the M it runs on now is the resume value, unused here).
pub(crate) fn suspend(gp: GRef, why: Suspend) {
    // SAFETY: gp is the calling G (callers got it from current_g()); its yielder was recorded by
    // its entry function and lives as long as the coroutine, on whose stack we are running.
    let yielder = unsafe { &*gp.g().yielder.get() };
    let _m = yielder.suspend(why);
}

/// Make a parked G runnable (Go: `goready`). Callable from a G, from an M's stack (a commit), or
/// from a plain thread.
pub(crate) fn ready(gp: GRef) {
    if make_runnable(gp) {
        runqput_here(gp, true);
    }
}

/// The status half of `ready`: `WAITING` → `RUNNABLE`. Returns `true` if the caller must now
/// queue `gp`; `false` if `gp` was an unwinding G blocked on its OS thread, which has been woken
/// there instead (it runs on that thread, never from a queue).
pub(crate) fn make_runnable(gp: GRef) -> bool {
    // Read everything we need from the G *before* the swap hands it back: once the swap is
    // visible, its owner may run it to completion and recycle or free it.
    let blocked_m = gp.g().blocked_m.load(Ordering::Acquire);
    let id = gp.id();
    crate::introspect::latency::on_ready(gp);
    let prev = gp.g().status.swap(G_RUNNABLE, Ordering::AcqRel);
    match prev {
        G_WAITING => true,
        G_BLOCKED_OS => {
            // SAFETY: the M stored itself in blocked_m before publishing gp (so our load, which
            // follows our acquisition of gp, saw it); Ms are never freed.
            unsafe { &*blocked_m }.note.wakeup();
            false
        }
        other => fatal(format_args!(
            "ready: coroutine #{id} is not waiting (status {other}): it was woken twice"
        )),
    }
}

/// Queue `gp` on the current P (into `runnext` with `next`), or globally without a P; then make
/// sure an M will run it (`wakep`).
pub(crate) fn runqput_here(gp: GRef, mut next: bool) {
    let s = super::sched();
    if s.randomize {
        // Go's randomizeScheduler: no order a program could rely on.
        next &= !super::random_one_in(2);
        if super::random_one_in(8) {
            globrunqput(gp);
            wakep();
            return;
        }
    }
    match context::current_p() {
        Some(pp) => {
            if let Some(batch) = pp.runq.put(gp.0, next) {
                globrunqput_batch(batch);
            } else if s.procs() == 1 {
                // We hold the only P: no P is idle, so wakep would find nothing to do. Skipping
                // it saves its SeqCst fence on every wakeup of a single-P runtime.
                return;
            }
        }
        None => globrunqput(gp),
    }
    wakep();
}

/// Yield the processor: the current G goes to the tail of the local run queue and other Gs run
/// (Go: `runtime.Gosched`). Outside a G it yields the OS thread.
#[inline(never)]
pub(crate) fn yield_now() {
    let Some(gp) = context::current_g() else {
        std::thread::yield_now();
        return;
    };
    if std::thread::panicking() {
        // Never switch while unwinding; let the OS run something else instead.
        std::thread::yield_now();
        return;
    }
    suspend(gp, Suspend::Yield);
}

/// `park` for a G that is unwinding: block the OS thread instead of switching (module doc).
fn park_blocking_os<F>(gp: GRef, commit: F)
where
    F: FnOnce(GRef) -> bool,
{
    let m = context::current_m().expect("weft: coroutine running outside an M");
    gp.g()
        .blocked_m
        .store(m as *const _ as *mut _, Ordering::Release);
    gp.set_status(G_BLOCKED_OS);
    let pp = releasep(m);
    handoffp(pp);
    if commit(gp) {
        while gp.status() != G_RUNNABLE {
            m.note.sleep();
        }
    }
    gp.set_status(G_RUNNING);
    acquirep_wait(m);
}
