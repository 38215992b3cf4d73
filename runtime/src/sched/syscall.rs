//! Blocking calls: [`blocking`] (Go: `entersyscall`, `exitsyscall`, and sysmon's `retake`).
//!
//! A G about to make a call that may block its OS thread (a file read, `getaddrinfo`, a foreign
//! library) wraps it in `blocking`. The M keeps running the G on its own thread, but lets go of
//! its P *without handing it to anyone*: the P's status becomes `P_SYSCALL` and the M remembers
//! it in `oldp`. Then one of two things happens, decided by a CAS on the P's status:
//!
//! * the call returns quickly: the M moves its old P from `P_SYSCALL` back to `P_RUNNING` and
//!   carries on (the fast path: a few atomics, no other thread involved);
//! * the call is still running on sysmon's next look (every ~20 µs while any M is in a call):
//!   sysmon moves the P from `P_SYSCALL` to `P_IDLE` and hands it off (`handoffp`: another M
//!   starts on it if it has work, else it goes on the idle list), so the P's other Gs, timers
//!   and I/O go on.
//!
//! When the call returns and the CAS fails (sysmon won), the M takes any idle P; if there is
//! none, the G switches out to its M, which queues it on the global run queue and sleeps in
//! `stopm` (Go: `exitsyscall0`). The G resumes later on whichever M picks it up.
//!
//! # Invariants
//!
//! * Exactly one party owns a P: whoever moved its status out of `P_SYSCALL`. The M's writes to
//!   the P before the call are published by the Release store of `P_SYSCALL` and acquired by
//!   either CAS.
//! * Inside the call the thread has no P and no current G: weft calls made from `f` (a channel
//!   send, a spawn, a lock) behave as on a plain OS thread — they block the thread, not a G —
//!   and never touch a P the M no longer owns.
//! * The G's status is `G_SYSCALL` for the duration (the goroutine dump shows it).
//! * `f`'s panic is caught, the P recovered, and the panic resumed after: never unwind with the
//!   P in limbo, and never switch stacks while unwinding.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::g::{GRef, Suspend, G_RUNNING, G_SYSCALL};
use super::idle::{acquirep, pidleget};
use super::m::{M, NO_P};
use super::p::bump;
use super::{context, load, sched};

/// Run `f`, a call that may block the OS thread (a file read, DNS resolution, a foreign
/// library), without holding back the other Gs of this P (Go does this for every system call).
///
/// If `f` takes longer than about 20 µs, sysmon hands the P to another M, so the P's other Gs,
/// timers and sockets keep being served while this thread waits. A quick `f` costs a few atomic
/// operations. Inside `f` the thread behaves like a plain OS thread: weft operations there (a
/// channel receive, a socket read, `join`) block the thread rather than park a G, and
/// [`current_id`](crate::current_id) is `None`. Outside a G, `blocking` just calls `f`.
///
/// Use it for anything that blocks the thread: `std::fs`, `std::process::Command::output`,
/// blocking FFI, `std::sync::mpsc::Receiver::recv`, `std::thread::sleep`. weft's own sockets and
/// channels park instead and need no wrapper; `weft::fs` and name resolution use it already.
///
/// Panics in `f` propagate to the caller after the P has been recovered.
///
/// ```
/// let n = weft_runtime::run(|| {
///     weft_runtime::blocking(|| std::fs::read("/proc/self/stat").map(|v| v.len()))
/// });
/// assert!(n.unwrap() > 0);
/// ```
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    let Some(gp) = context::current_g() else {
        return f(); // a plain thread, or already inside `blocking`
    };
    if std::thread::panicking() {
        // A destructor during unwinding: exitsyscall's slow path would have to switch stacks.
        return f();
    }
    let m = context::current_m().expect("weft: coroutine running outside an M");
    entersyscall(m, gp);
    let r = catch_unwind(AssertUnwindSafe(f));
    // Read the M again: nothing switched (we never left this thread), but keep to the rule of
    // never trusting a value read before a call that could have.
    let m = context::current_m().expect("weft: blocking call lost its M");
    exitsyscall(m, gp);
    match r {
        Ok(v) => v,
        Err(p) => resume_unwind(p),
    }
}

/// Let go of the P for a blocking call (Go: `entersyscall`). Runs on `gp`'s stack, on `m`.
fn entersyscall(m: &'static M, gp: GRef) {
    let pp = m.p().expect("blocking: M holds no P");
    bump(&pp.syscalltick);
    gp.set_status(G_SYSCALL);
    context::set_current_g(None);
    m.curg.store(std::ptr::null_mut(), Ordering::Relaxed);
    m.oldp.store(pp.id, Ordering::Relaxed);
    m.set_p(NO_P);
    // Publishes everything this M did with the P; sysmon's or our own CAS acquires it. SeqCst
    // (not just Release): sysmon's check for calls in flight before a long sleep pairs with it.
    pp.status.enter_syscall();
    super::sysmon::wake_for_syscall();
}

/// Get a P back after the call (Go: `exitsyscall`): the old one if sysmon did not retake it,
/// else an idle one, else switch out and let the M queue the G (`Suspend::ExitSyscall`).
fn exitsyscall(m: &'static M, gp: GRef) {
    let s = sched();
    let old = m.oldp.swap(NO_P, Ordering::Relaxed);
    let oldp = &s.ps[old];
    let got = if oldp.status.exit_syscall_fast() {
        m.set_p(old);
        oldp.m.store(m as *const M as *mut M, Ordering::Relaxed);
        true
    } else if load(&s.npidle) > 0 {
        let pp = pidleget(&mut s.lock());
        if let Some(pp) = pp {
            acquirep(m, pp);
        }
        pp.is_some()
    } else {
        false
    };
    if got {
        resume_here(m, gp);
        return;
    }
    s.syscall_slow.fetch_add(1, Ordering::Relaxed);
    gp.set_status(G_RUNNING);
    context::set_current_g(Some(gp));
    // The M (switch.rs) queues gp and sleeps; gp resumes on whichever M runs it next, with its
    // status, current G and P already set by `execute`.
    super::park::suspend(gp, Suspend::ExitSyscall);
}

/// Back on a P on the same thread: the G is running again.
fn resume_here(m: &'static M, gp: GRef) {
    gp.set_status(G_RUNNING);
    context::set_current_g(Some(gp));
    m.curg.store(gp.as_ptr(), Ordering::Relaxed);
}
