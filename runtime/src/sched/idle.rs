//! Idle Ps, idle Ms and spinning: `wakep`, `startm`, `stopm`, `handoffp`, `pidleput`/`pidleget`
//! (Go: the functions of the same names in `proc.go`).
//!
//! The protocol these implement, and why the order of operations matters, is written at the top
//! of `sched/mod.rs` ("The worker protocol"). In short: whoever submits work calls `wakep`; an M
//! that finds work after spinning calls `resetspinning`; an M that gives up spinning decrements
//! `nmspinning` before its last look at the queues.

use std::sync::atomic::{fence, Ordering};

use super::m::{newm, M, NO_P};
use super::{load, sched, Locked};

/// Bind P `pp` to M `m` (Go: `acquirep`). The caller got `pp` from the idle list or `nextp`.
pub(crate) fn acquirep(m: &M, pp: usize) {
    if pp == NO_P {
        super::fatal(format_args!("acquirep: M{} woken without a P", m.id));
    }
    m.set_p(pp);
    let p = &sched().ps[pp];
    p.m.store(m as *const M as *mut M, Ordering::Relaxed);
    p.status.set_running();
    // A P leaves the idle list: sysmon may be asleep with nothing to watch (`sysmon.rs`).
    super::sysmon::wake_if_idle();
}

/// Unbind `m`'s P and return its index (Go: `releasep`).
pub(crate) fn releasep(m: &M) -> usize {
    let pp = m.p().map(|p| p.id).unwrap_or(NO_P);
    if pp == NO_P {
        super::fatal(format_args!("releasep: M{} holds no P", m.id));
    }
    let p = &sched().ps[pp];
    p.m.store(std::ptr::null_mut(), Ordering::Relaxed);
    p.status.set_idle();
    m.set_p(NO_P);
    pp
}

/// Put P `pp` on the idle list, or hand it straight to an M that waits for one (Go: `pidleput`).
/// Called with the lock held.
/// A spare P (lent by sysmon) goes back to the spare pool instead: it is never idle.
pub(crate) fn pidleput(l: &mut Locked, pp: usize) {
    if let Some(m) = l.pwait.pop_front() {
        sched().npwait.fetch_sub(1, Ordering::SeqCst);
        m.nextp.store(pp, Ordering::Release);
        m.note.wakeup();
        return;
    }
    if sched().is_spare(pp) {
        super::sysmon::rehome_timers(&sched().ps[pp]);
        sched().ps[pp].lent_for.store(NO_P, Ordering::Relaxed);
        l.pspare.push(pp);
        return;
    }
    l.pidle.push(pp);
    sched().npidle.fetch_add(1, Ordering::SeqCst);
}

/// Take an idle P (Go: `pidleget`). Called with the lock held.
pub(crate) fn pidleget(l: &mut Locked) -> Option<usize> {
    let pp = l.pidle.pop()?;
    sched().npidle.fetch_sub(1, Ordering::SeqCst);
    Some(pp)
}

/// Like `pidleget`, for a spinning M that found work: when there is no idle P, record that a
/// spinner is needed so that a non-spinning M about to release its P spins instead (Go:
/// `pidlegetSpinning`).
pub(crate) fn pidleget_spinning(l: &mut Locked) -> Option<usize> {
    let pp = pidleget(l);
    if pp.is_none() {
        sched().needspinning.store(true, Ordering::SeqCst);
    }
    pp
}

/// Make `m` a spinning M (Go: `m.becomeSpinning`).
pub(crate) fn become_spinning(m: &M) {
    m.set_spinning(true);
    let s = sched();
    s.nmspinning.fetch_add(1, Ordering::SeqCst);
    s.needspinning.store(false, Ordering::SeqCst);
}

/// Try to add one more M to run Gs: if there is an idle P and no M is spinning, start one
/// spinning (Go: `wakep`). Called after work was made runnable.
pub(crate) fn wakep() {
    let s = sched();
    // Pairs with the fence in findrunnable after an M drops its P or its spinning state: either
    // we see the idle P / zero spinners, or that M sees our work in its re-check.
    fence(Ordering::SeqCst);
    if load(&s.npidle) == 0 {
        return;
    }
    if load(&s.nmspinning) != 0
        || s.nmspinning
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    startm(None, true);
}

/// Run some M on P `pp` (or on an idle P when `None`), waking an idle M or creating one (Go:
/// `startm`). With `spinning`, the caller has already counted the new M in `nmspinning`.
pub(crate) fn startm(pp: Option<usize>, spinning: bool) {
    let s = sched();
    let mut l = s.lock();
    let pp = match pp.or_else(|| pidleget(&mut l)) {
        Some(pp) => pp,
        None => {
            drop(l);
            if spinning {
                // wakep counted an M that will not exist: undo, or no one would ever spin again.
                s.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
            return;
        }
    };
    match l.midle.pop() {
        Some(m) => {
            m.set_spinning(spinning);
            m.nextp.store(pp, Ordering::Release);
            drop(l);
            m.note.wakeup();
        }
        None => {
            drop(l);
            if !newm(pp, spinning) {
                // At the thread cap: the P waits for an M to come back (from a blocking call).
                if spinning {
                    s.nmspinning.fetch_sub(1, Ordering::SeqCst);
                }
                pidleput(&mut s.lock(), pp);
            }
        }
    }
}

/// Park `m` until someone hands it a P, then hold that P (Go: `stopm`). The caller holds none.
pub(crate) fn stopm(m: &'static M) {
    mput(m);
    sleep_until_handed_p(m);
}

/// Put `m` on the idle list, then see whether that leaves the process deadlocked (Go: `mput` +
/// `checkdead`). The caller then sleeps until handed a P.
fn mput(m: &'static M) {
    if m.is_spinning() {
        super::fatal(format_args!(
            "stopm: M{} would sleep while counted as spinning",
            m.id
        ));
    }
    sched().lock().midle.push(m);
    crate::introspect::checkdead::check();
}

/// How long an M sleeps idle before its thread exits, if more than `max_procs + 1` are alive.
const M_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `stopm` for an M that ran out of work in `findrunnable`: after `M_IDLE_TIMEOUT` without a P,
/// if the M is still idle and more Ms than `max_procs + 1` are alive, it leaves the idle list and
/// returns `false` (its thread exits). Returns `true` holding a P.
pub(crate) fn stopm_or_exit(m: &'static M) -> bool {
    let s = sched();
    mput(m);
    loop {
        if m.note.sleep_timeout(M_IDLE_TIMEOUT) {
            let pp = m.nextp.swap(NO_P, Ordering::Acquire);
            if pp != NO_P {
                acquirep(m, pp);
                return true;
            }
            continue;
        }
        let mut l = s.lock();
        if m.nextp.load(Ordering::Acquire) != NO_P {
            continue; // handed a P just now; the note is set too
        }
        if s.mlive.load(Ordering::Relaxed) > s.procs() + 1 {
            if let Some(i) = l.midle.iter().position(|&x| std::ptr::eq(x, m)) {
                l.midle.swap_remove(i);
                s.mlive.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
        }
    }
}

/// Sleep on `m`'s note until a waker has put a P in `nextp`, then hold it. A wakeup with no P
/// (a stale note flag, see `Note`) sleeps again: `m` is still on whatever list it waits on.
fn sleep_until_handed_p(m: &'static M) {
    loop {
        m.note.sleep();
        let pp = m.nextp.swap(NO_P, Ordering::Acquire);
        if pp != NO_P {
            acquirep(m, pp);
            return;
        }
    }
}

/// `m` found work after spinning: stop spinning, and if it was the last spinner, wake another M
/// in case there is more (Go: `resetspinning`).
pub(crate) fn resetspinning(m: &M) {
    m.set_spinning(false);
    let s = sched();
    let before = s.nmspinning.fetch_sub(1, Ordering::SeqCst);
    if before == 0 {
        super::fatal(format_args!("resetspinning: negative nmspinning"));
    }
    if before == 1 {
        wakep();
    }
}

/// Give away P `pp`, whose M is about to block (Go: `handoffp`): start an M on it if it has work
/// or if nobody is looking for work; otherwise put it on the idle list.
pub(crate) fn handoffp(pp: usize) {
    let s = sched();
    if !s.ps[pp].runq.is_empty() || load(&s.runqsize) != 0 {
        startm(Some(pp), false);
        return;
    }
    if load(&s.nmspinning) + load(&s.npidle) == 0
        && s.nmspinning
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        startm(Some(pp), true);
        return;
    }
    let mut l = s.lock();
    if load(&s.runqsize) != 0 {
        drop(l);
        startm(Some(pp), false);
        return;
    }
    pidleput(&mut l, pp);
}

/// Between two Gs: if an M waits for a P to finish an unwinding G (`acquirep_wait`), give it
/// ours (with its run queue) and sleep. Such an M cannot wait for a P to fall idle: while every P
/// has work, none ever does. Returns after `m` holds a P again.
pub(crate) fn handoff_to_waiter(m: &'static M) {
    let s = sched();
    if m.is_spinning() {
        // A new M starts spinning (startm counted it); it must not sleep still counted, or
        // nmspinning never returns to 0 and wakep never wakes anyone again. The waiter is the
        // work this spinner found.
        resetspinning(m);
    }
    let waiter = {
        let mut l = s.lock();
        let Some(w) = l.pwait.pop_front() else { return };
        s.npwait.fetch_sub(1, Ordering::SeqCst);
        let pp = releasep(m);
        w.nextp.store(pp, Ordering::Release);
        w
    };
    waiter.note.wakeup();
    stopm(m);
}

/// `m` holds no P but must go on running its current G on this thread (a G that parked while
/// unwinding): take an idle P, or wait until one is released (Go: `exitsyscall`'s slow path,
/// minus the option to move the G elsewhere, which an unwinding stack must not do).
pub(crate) fn acquirep_wait(m: &'static M) {
    let s = sched();
    {
        let mut l = s.lock();
        if let Some(pp) = pidleget(&mut l) {
            drop(l);
            acquirep(m, pp);
            return;
        }
        l.pwait.push_back(m);
        s.npwait.fetch_add(1, Ordering::SeqCst);
    }
    sleep_until_handed_p(m);
}
