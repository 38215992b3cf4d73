//! Where an M looks for a G to run (Go: `findRunnable`, `stealWork`, `checkRunqsNoP`).
//!
//! Order, as in Go: this P's expired timers; the global queue every `GLOBAL_RUNQ_TICK` ticks
//! (fairness); the local `runnext` and ring; the global queue; a non-blocking poll of the network
//! (if ops wait and no M is blocked polling); stealing from other Ps if this M may spin; the
//! expired timers of all Ps; then release the P, stop spinning, re-check everything (rule 3 of the
//! worker protocol in mod.rs; Go calls it the "delicate dance"), and finally either become the
//! one M blocked in `netpoll` until the earliest timer (if ops wait or timers are pending and no
//! other M is polling), or sleep in `stopm`.
//!
//! The blocking poller holds no P while it waits. When it wakes it takes an idle P if there is
//! one, runs the first readied G and injects the rest (`inject.rs`); without an idle P it injects
//! them all into the global queue and sleeps in `stopm`.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::g::GRef;
use super::globrunq::{globrunqget, globrunqget_locked, put_local_batch};
use super::idle::{
    acquirep, become_spinning, pidleget, pidleget_spinning, pidleput, releasep, stopm_or_exit,
};
use super::inject::injectglist;
use super::m::M;
use super::p::{P, P_RUNNING};
use super::park::make_runnable;
use super::runq::{RUNQ_CAP, RUNQ_HALF};
use super::{g::G, load, sched, GLOBAL_RUNQ_TICK, RUNNEXT_INHERIT_MAX};
use crate::netpoll;
use crate::time::{nanotime, timers};

/// Rounds of stealing over all Ps before giving up (Go: `stealTries`).
const STEAL_TRIES: usize = 4;

/// How long a thief waits before taking the `runnext` G of a running P (Go sleeps 3 µs there): the
/// P readied that G moments ago and is about to run it; taking it would only move the work to
/// another thread and lose cache locality.
const RUNNEXT_GRACE: Duration = Duration::from_micros(3);

/// Find a runnable G for `m`, which holds a P; sleeps until there is one. Returns the G and
/// whether it inherits the current time slice (it came from `runnext`), or `None` when the M
/// has been idle long enough to exit (`stopm_or_exit`).
pub(crate) fn findrunnable(m: &'static M) -> Option<(GRef, bool)> {
    let s = sched();
    loop {
        let pp = m.p().expect("findrunnable: M holds no P");

        // This P's timers (they ready Gs into this P's queue).
        if pp.timers.next() != timers::NONE {
            pp.timers.run(nanotime());
        }

        // A spare lent for a hog serves the hog's P first.
        if let Some(gp) = serve_hog(pp) {
            return Some((gp, false));
        }

        // Fairness: now and then the global queue goes first, or two Gs that keep readying each
        // other could keep it waiting forever.
        let global_first =
            pp.schedtick() % GLOBAL_RUNQ_TICK == 0 || (s.randomize && super::random_one_in(8));
        if global_first && load(&s.runqsize) > 0 {
            if let Some(gp) = globrunqget(pp, 1) {
                return Some((gp, false));
            }
        }

        // Local: runnext first, unless the current slice has been inherited too many times.
        let prefer_next = pp.runnext_streak.load(Ordering::Relaxed) < RUNNEXT_INHERIT_MAX;
        if let Some((gp, from_next)) = pp.runq.get(prefer_next) {
            return Some((GRef(gp), from_next && prefer_next));
        }

        // Global.
        if load(&s.runqsize) > 0 {
            if let Some(gp) = globrunqget(pp, 0) {
                return Some((gp, false));
            }
        }

        // The network, without blocking, if ops wait and no M is blocked polling already.
        if netpoll::any_waiters() && s.lastpoll.load(Ordering::SeqCst) != 0 {
            if let Some(gp) = poll_ready(0) {
                return Some((gp, false));
            }
        }

        // Steal, if we may spin: at most half as many spinners as busy Ps.
        let procs = s.procs();
        if m.is_spinning() || 2 * load(&s.nmspinning) < procs.saturating_sub(load(&s.npidle)) {
            if !m.is_spinning() {
                become_spinning(m);
            }
            if let Some(gp) = steal_work(m, pp) {
                return Some((gp, false));
            }
        }

        // Timers of every P that expired (idle Ps' and busy Ps' timers run here too).
        if timers::run_all(nanotime()) > 0 {
            continue;
        }

        // Nothing found: give up the P.
        {
            let mut l = s.lock();
            if let Some((gp, rest)) = globrunqget_locked(&mut l, 0) {
                drop(l);
                put_local_batch(pp, rest);
                return Some((gp, false));
            }
            if !m.is_spinning() && s.needspinning.load(Ordering::SeqCst) {
                // A spinning M found work but no P for it: spin on its behalf instead of sleeping.
                drop(l);
                become_spinning(m);
                continue;
            }
            let id = releasep(m);
            pidleput(&mut l, id);
        }

        // Stop spinning, *then* look again (mod.rs, rule 3).
        if m.is_spinning() {
            m.set_spinning(false);
            if s.nmspinning.fetch_sub(1, Ordering::SeqCst) == 0 {
                super::fatal(format_args!("findrunnable: negative nmspinning"));
            }
            fence(Ordering::SeqCst);
            if let Some(gp) = recheck_after_spinning(m) {
                return Some((gp, false));
            }
            if m.p().is_some() {
                continue; // recheck found local work elsewhere and re-acquired a P
            }
        }

        // Become the blocking poller, if there is something to poll for and nobody else is.
        let until = timers::earliest();
        if (netpoll::any_waiters() || until != timers::NONE)
            && s.lastpoll.swap(0, Ordering::SeqCst) != 0
        {
            match block_in_netpoll(m, until) {
                Polled::Run(gp) => return Some((gp, false)),
                Polled::Again => continue,
                Polled::NoP => {}
            }
        } else if until != timers::NONE {
            // Another M is blocked polling; make sure it wakes up for our earliest timer.
            let theirs = s.poll_until.load(Ordering::SeqCst);
            if theirs == 0 || theirs > until {
                netpoll::netpoll_break();
            }
        }

        if !stopm_or_exit(m) {
            return None;
        }
    }
}

/// What the blocking poller does next.
enum Polled {
    /// It got a P and a G to run.
    Run(GRef),
    /// It got a P but no G (a timer expired, or a break): look for work again.
    Again,
    /// No idle P: whatever it readied was injected; sleep.
    NoP,
}

/// Block in netpoll until I/O, the timer at `until` (or none: `NONE`), or a break. `m` holds no
/// P and has claimed the poller role (`lastpoll` is 0).
fn block_in_netpoll(m: &'static M, until: u64) -> Polled {
    let s = sched();
    let delay = if until == timers::NONE {
        s.poll_until.store(0, Ordering::SeqCst);
        -1
    } else {
        s.poll_until.store(until, Ordering::SeqCst);
        let now = nanotime();
        i64::try_from(until.saturating_sub(now)).unwrap_or(i64::MAX)
    };
    let mut list = Vec::new();
    netpoll::netpoll(delay, &mut list);
    s.poll_until.store(0, Ordering::SeqCst);
    s.lastpoll.store(nanotime(), Ordering::SeqCst);
    let pp = {
        let mut l = s.lock();
        pidleget(&mut l)
    };
    let Some(pp) = pp else {
        injectglist(&mut list);
        return Polled::NoP;
    };
    acquirep(m, pp);
    match run_first(list) {
        Some(gp) => Polled::Run(gp),
        None => Polled::Again,
    }
}

/// Non-blocking poll from an M that holds a P.
fn poll_ready(delay: i64) -> Option<GRef> {
    let mut list = Vec::new();
    netpoll::netpoll(delay, &mut list);
    run_first(list)
}

/// Of the Gs a poll readied, return the first for the calling M (which holds a P) to run, and
/// inject the rest (Go: `gp := list.pop(); injectglist(&list)`).
fn run_first(mut list: Vec<GRef>) -> Option<GRef> {
    if list.is_empty() {
        return None;
    }
    let first = list.swap_remove(0);
    injectglist(&mut list);
    make_runnable(first).then_some(first)
}

/// After dropping spinning: look at the global queue and every P's run queue once more. On
/// finding work, take an idle P and become a spinning M again. Returns a G taken from the global
/// queue; otherwise, if a P was acquired, the caller loops to steal.
fn recheck_after_spinning(m: &'static M) -> Option<GRef> {
    let s = sched();
    if load(&s.runqsize) != 0 {
        let mut l = s.lock();
        if load(&s.runqsize) != 0 {
            if let Some(pp) = pidleget_spinning(&mut l) {
                let got = globrunqget_locked(&mut l, 0);
                drop(l);
                acquirep(m, pp);
                become_spinning(m);
                if let Some((gp, rest)) = got {
                    put_local_batch(&s.ps[pp], rest);
                    return Some(gp);
                }
                return None;
            }
        }
    }
    for p2 in s.ps.iter() {
        if !p2.runq.is_empty() {
            let pp = {
                let mut l = s.lock();
                pidleget_spinning(&mut l)
            };
            if let Some(pp) = pp {
                acquirep(m, pp);
                become_spinning(m);
            }
            // No idle P: `needspinning` is set, someone else will spin.
            return None;
        }
    }
    None
}

/// Try to steal a G from another P into `pp` (Go: `stealWork`): `STEAL_TRIES` rounds over all
/// Ps in a random order; `runnext` only in the last round.
fn steal_work(m: &M, pp: &P) -> Option<GRef> {
    let s = sched();
    // All Ps, spares included: a lent spare's queue is as good a victim as any.
    let n = s.ps.len();
    for round in 0..STEAL_TRIES {
        let last = round == STEAL_TRIES - 1;
        let start = m.fastrand() as usize % n;
        for i in 0..n {
            let p2 = &s.ps[(start + i) % n];
            if p2.id == pp.id {
                continue;
            }
            let running = p2.status.load() == P_RUNNING;
            if let Some(gp) = p2.runq.steal_into(&pp.runq, last, |slot, seen| {
                !running || runnext_stuck(p2, slot, seen)
            }) {
                pp.nsteal.fetch_add(1, Ordering::Relaxed);
                return Some(GRef(gp));
            }
        }
        // Global work may have arrived while we were stealing.
        if load(&s.runqsize) > 0 {
            if let Some(gp) = globrunqget(pp, 0) {
                return Some(gp);
            }
        }
    }
    None
}

/// On a spare P lent for a hog (`sysmon.rs`): fire the hog's P's expired timers (the Gs they
/// ready come to this P) and steal from its queue, before anything else. Nothing else runs them
/// while the hog holds its P, and a spare that looked at them only when its own queue was empty
/// would never get to them if a G on it yields in a loop: found by `tests/stress_programs`, a
/// 1-P program in which one G spun on zero-timeout sends (the hog) and the G on the spare spun
/// on `try_send`, while the receivers both needed sat in the hog's queue and sleepers in its
/// timer heap — for good.
fn serve_hog(pp: &P) -> Option<GRef> {
    let s = sched();
    let hog = pp.lent_for.load(Ordering::Relaxed);
    if hog == super::m::NO_P || !s.is_spare(pp.id) {
        return None;
    }
    let hp = &s.ps[hog];
    if hp.status.load() != P_RUNNING {
        return None; // the hog switched out: `schedule` gives the spare back
    }
    if hp.timers.next() != timers::NONE {
        hp.timers.run(nanotime());
    }
    // A steal moves up to half the victim's ring into ours, and must not overrun it (Go only
    // steals into an empty queue; this one may hold the yielder).
    if pp.runq.len() > RUNQ_CAP - RUNQ_HALF {
        return None;
    }
    let gp = hp
        .runq
        .steal_into(&pp.runq, true, |slot, seen| runnext_stuck(hp, slot, seen))?;
    pp.nsteal.fetch_add(1, Ordering::Relaxed);
    Some(GRef(gp))
}

/// Give a running P a moment to run the G it just put in `runnext`; take it only if the P has
/// not executed any G meanwhile and the same G is still there (the P is busy with one long G).
/// If the P made progress, it is cycling through `runnext` hand-offs (a producer/consumer pair):
/// taking the next one would only split the pair across threads. The slot alone cannot tell:
/// a pair alternates between the same two Gs, so "the same G after 3 µs" is true half the time.
///
/// The wait does not poll: the P writes these lines on every hand-off, and a thief reading them
/// in a loop would pull them away from the P each time (measured: slower ping-pong).
fn runnext_stuck(victim: &P, slot: &std::sync::atomic::AtomicPtr<G>, seen: *mut G) -> bool {
    let before = victim.nexecute.load(Ordering::Relaxed);
    let start = Instant::now();
    while start.elapsed() < RUNNEXT_GRACE {
        std::hint::spin_loop();
    }
    victim.nexecute.load(Ordering::Relaxed) == before && slot.load(Ordering::Acquire) == seen
}
