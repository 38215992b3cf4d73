//! Creating Gs and recycling dead ones (Go: `newproc`, `newproc1`, `gfget`, `gfput`, `goexit0`).
//!
//! A dead G keeps its stack and goes on a free list: the P's own (`P::gfree`, up to
//! `GFREE_LOCAL_MAX` or an eighth of the stack budget over all Ps, no lock) or, past that, half of it moves to the global one under
//! `Sched::lock` (at most `GFREE_GLOBAL_MAX` or a quarter of the stack budget; beyond that the
//! stack is unmapped). When the stack budget is spent, a spawn first unmaps cached stacks. A spawn takes a
//! G from the local list, then the global one, and only then maps a new stack (~10 µs instead of
//! ~20 ns). Only default-size stacks are recycled; a G with a custom size frees its stack on exit.
//!
//! A new G goes into the spawning P's `runnext` (Go does the same), so a spawn-then-wait pattern
//! runs the child next on the same thread; from a thread without a P it goes to the global queue.
//! Either way `wakep` follows (unless the spawner holds the only P, when no P can be idle), so an
//! idle P picks up the work.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, Yielder};

use super::g::{GRef, MRef, Suspend, G_DEAD, G_RUNNABLE};
use super::globrunq::globrunqput;
use super::idle::wakep;
use super::p::{GFREE_LOCAL_MAX, P};
use super::park::runqput_here;
use super::{context, sched};
use crate::stack::GuardedStack;

/// Dead Gs kept on the global free list before their stacks are unmapped.
pub(crate) const GFREE_GLOBAL_MAX: usize = 16384;

/// Create a G that runs `f` with a stack of `stack_size` usable bytes (already rounded) and make
/// it runnable. Returns its id.
///
/// # Errors
/// When no stack can be had: the stack budget is spent or the kernel refuses the mapping.
pub(crate) fn newproc<F>(f: F, name: Option<Box<str>>, stack_size: usize) -> io::Result<u64>
where
    F: FnOnce() + Send + 'static,
{
    let s = sched();
    let gp = gfget_or_wait(stack_size)?;
    let pp = context::current_p();
    // SAFETY: gp came off a free list or was just created: this thread owns it.
    let stack = unsafe { gp.stack_mut() }
        .take()
        .expect("free G without a stack");
    let g = gp.g();
    g.guard.set(stack.guard_range());
    g.stack_size.set(stack.usable());
    let id = s.goidgen.fetch_add(1, Ordering::Relaxed);
    g.id.store(id, Ordering::Relaxed);
    g.ready_seq.store(0, Ordering::Relaxed);
    // SAFETY: we own gp (see above).
    unsafe { gp.set_name(name) };
    let coro = Coroutine::with_stack(stack, move |y: &Yielder<MRef, Suspend>, _m: MRef| {
        // Record the yielder so that park/yield_now can find it from the G's own code.
        gp.g().yielder.set(y as *const _);
        f();
    });
    // SAFETY: we still own gp; nothing else references its coroutine slot.
    unsafe { *gp.coro_mut() = Some(coro) };
    s.ngoroutines.fetch_add(1, Ordering::Relaxed);
    gp.set_status(G_RUNNABLE);
    // Publishing: the run queue's release store hands gp (and everything written above) over.
    match pp {
        Some(_) => runqput_here(gp, true),
        None => {
            globrunqput(gp);
            wakep();
        }
    }
    Ok(id)
}

/// How long a spawn that hits the stack budget keeps retrying before it reports the error: Gs
/// that have published their result but not yet released their stack free up within
/// microseconds, or within an OS time slice if their M was descheduled in between (hence the
/// margin). Only the error path pays this.
const BUDGET_RETRY: Duration = Duration::from_millis(20);

/// `gfget` on the calling thread's P, retrying briefly (yielding the OS thread, not the G) when
/// the budget is spent by stacks that are about to come free. A joiner can return before the joined G's M has released its stack
/// (`join` wakes on the result, which the G publishes just before it finishes), so "spawn, join,
/// spawn" at the edge of the budget would otherwise fail spuriously. (Counting live Gs cannot
/// tell the two cases apart: a G is counted until its M has released it, after its joiner woke.)
fn gfget_or_wait(size: usize) -> io::Result<GRef> {
    let mut deadline = None;
    loop {
        // Read the P afresh on every try: yielding may have moved us to another M.
        let err = match gfget(context::current_p(), size) {
            Ok(gp) => return Ok(gp),
            Err(e) => e,
        };
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + BUDGET_RETRY);
        if err.kind() != io::ErrorKind::OutOfMemory || Instant::now() > deadline {
            return Err(err);
        }
        // Yield the OS thread, never the G: spawn must not be a switch point (user code may
        // hold a std MutexGuard or a thread-local borrow across it, docs/DESIGN.md section 7).
        // The G whose stack we wait for is finishing on another M, never on ours: an M runs
        // `gdestroy` for the G it ran before it runs anything else.
        std::thread::yield_now();
    }
}

/// A dead G with a stack of `size` usable bytes: recycled if possible, else freshly mapped.
fn gfget(pp: Option<&P>, size: usize) -> io::Result<GRef> {
    let s = sched();
    if size == s.default_stack {
        if let Some(pp) = pp {
            // SAFETY: the calling thread's M holds pp (it came from context::current_p()).
            let local = unsafe { pp.gfree() };
            if local.is_empty() {
                let mut l = s.lock();
                // At least one, so that a P with a local cap of 0 (tiny budget) still reuses
                // the global list's stacks instead of mapping a new one every time.
                let take = l.gfree.len().min(gfree_local_cap().div_ceil(2).max(1));
                let from = l.gfree.len() - take;
                local.extend(l.gfree.drain(from..));
            }
            if let Some(gp) = local.pop() {
                return Ok(gp);
            }
        } else if let Some(gp) = s.lock().gfree.pop() {
            return Ok(gp);
        }
    }
    if crate::stack::budget_exhausted() {
        // Dead Gs' cached stacks count against the budget: give some back before failing.
        evict_cached(pp);
    }
    let stack = GuardedStack::new(size)?;
    let gp = GRef::alloc();
    // SAFETY: gp was just allocated: we own it.
    unsafe { *gp.stack_mut() = Some(stack) };
    Ok(gp)
}

/// Unmap the stacks of cached dead Gs (global list first, then `pp`'s own) so that a new stack
/// fits in the budget.
fn evict_cached(pp: Option<&P>) {
    const EVICT_BATCH: usize = 64;
    let s = sched();
    let mut victims: Vec<GRef> = {
        let mut l = s.lock();
        let from = l.gfree.len().saturating_sub(EVICT_BATCH);
        l.gfree.drain(from..).collect()
    };
    if victims.is_empty() {
        if let Some(pp) = pp {
            // SAFETY: the calling thread's M holds pp.
            let local = unsafe { pp.gfree() };
            let from = local.len().saturating_sub(EVICT_BATCH);
            victims.extend(local.drain(from..));
        }
    }
    for g in victims {
        // SAFETY: dead Gs taken off a free list: we own them and hold their only handles.
        unsafe { g.free() };
    }
}

/// Most dead Gs the global free list keeps: `GFREE_GLOBAL_MAX`, or a quarter of the stack budget
/// if that is smaller, so that cached stacks never crowd out live ones.
fn gfree_global_cap() -> usize {
    GFREE_GLOBAL_MAX.min(crate::stack::max_stacks() / 4)
}

/// Most dead Gs one P keeps: `GFREE_LOCAL_MAX`, or an eighth of the budget shared by all Ps if
/// that is smaller. Stacks cached on a P are out of reach of every other thread (they can neither
/// reuse nor unmap them), so with a small budget they must stay few: all P caches together hold
/// at most an eighth of it (none at all below `8 * procs`), the global list a quarter.
fn gfree_local_cap() -> usize {
    let s = sched();
    GFREE_LOCAL_MAX.min(crate::stack::max_stacks() / (8 * s.procs()))
}

/// The G returned from its entry function: recycle it (Go: `goexit0` + `gfput`). Runs on the M's
/// stack, which holds a P.
pub(crate) fn gdestroy(gp: GRef) {
    let s = sched();
    // SAFETY: the M that ran gp to completion owns it.
    let coro = unsafe { gp.coro_mut() }
        .take()
        .expect("gdestroy: G without a coroutine");
    let stack = coro.into_stack();
    gp.set_status(G_DEAD);
    // SAFETY: we own gp.
    unsafe { gp.set_name(None) };
    gp.g().yielder.set(std::ptr::null());
    // SAFETY: we own gp; handles keep the token alive on their own.
    unsafe { *gp.g().token.get() = None };
    s.ngoroutines.fetch_sub(1, Ordering::Relaxed);
    if stack.usable() != s.default_stack {
        drop(stack);
        // SAFETY: gp is dead and this was its only handle.
        unsafe { gp.free() };
        return;
    }
    // SAFETY: we own gp.
    unsafe { *gp.stack_mut() = Some(stack) };
    let pp = context::current_p().expect("gdestroy: M holds no P");
    // SAFETY: this thread's M holds pp.
    let local = unsafe { pp.gfree() };
    local.push(gp);
    let cap = gfree_local_cap();
    if local.len() > cap {
        // Move half to the global list, where other Ps (and plain threads) can reuse them.
        let mut l = s.lock();
        let keep = cap / 2;
        let room = gfree_global_cap().saturating_sub(l.gfree.len());
        let moving: Vec<GRef> = local.drain(keep..).collect();
        let mut excess = Vec::new();
        for (i, g) in moving.into_iter().enumerate() {
            if i < room {
                l.gfree.push(g);
            } else {
                excess.push(g);
            }
        }
        drop(l);
        for g in excess {
            // SAFETY: dead Gs we own; their only handles.
            unsafe { g.free() };
        }
    }
}
