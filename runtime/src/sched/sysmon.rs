//! sysmon: the runtime's watchdog thread (Go: `sysmon` and `retake` in `proc.go`).
//!
//! A plain OS thread, not an M: it holds no P and never runs Gs. On every tick it:
//!
//! * **polls the network** if nobody has for `POLL_STALE` (10 ms, as Go): when every P is busy
//!   running Gs, no M reaches the netpoll step of `findrunnable`, and readied I/O would wait for
//!   the first M to run dry. sysmon's `netpoll(0)` injects those Gs into the global queue;
//! * **starts an M for overdue timers** when a timer has expired and a P is idle;
//! * **retakes Ps from blocking calls** (`syscall.rs`): a P whose M has been in the same
//!   `blocking` call for a whole tick is moved `P_SYSCALL` → `P_IDLE` (a CAS the returning M
//!   races against) and handed off;
//! * **notices CPU hogs**: a G that has run for `HOG_NS` (10 ms) without switching out. weft
//!   cannot preempt it (see below), so sysmon *lends a spare P* to the Gs queued behind it, as
//!   Java's virtual-thread scheduler compensates for a pinned carrier thread: a new M runs the
//!   spare P, steals the hog's queue (the hog's `runnext` too: the hog's P makes no progress, so
//!   `runnext_stuck` lets go of it), fires timers and polls. The hog keeps its own P, so no P
//!   ever has two owners. When the hog switches out (its P's `nexecute` moves), the spare's M
//!   gives it back at its next scheduling point (`return_spare`). At most `max_procs` spares
//!   exist, so hogs can at most double the parallelism.
//! * prints the `WEFT_SCHEDTRACE` line when due, and each hog it notices.
//!
//! # Why not preempt
//!
//! Go stops a running goroutine asynchronously with a signal and switches stacks in the handler.
//! In Rust that is unsound: the interrupted code may hold a `RefCell` borrow, be inside `malloc`,
//! or be in the middle of a non-reentrant std function, and the compiler assumes no other code on
//! the same thread observes its state at arbitrary instructions. A G only switches at the points
//! it chooses (park, yield, I/O, channel operations). See docs/DESIGN.md ("sysmon").
//!
//! # Tick
//!
//! 20 µs (Go's minimum) after any retake or when a blocking call starts; doubling after 50 quiet
//! ticks up to 1 ms while any M is in a blocking call, and up to 5 ms otherwise (so that a hog
//! is noticed within 10–15 ms). With every P idle and no blocking call, sysmon sleeps until a P
//! is acquired or a blocking call starts (Go's `sysmonwait`), waking at least every second; woken
//! by a P going busy it resumes at 2 ms (a sleep a blocking call cuts short), by a blocking call
//! at 20 µs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::g::GRef;
use super::globrunq::globrunqput_batch_vec;
use super::idle::{handoffp, releasep, startm, stopm, wakep};
use super::inject::injectglist;
use super::m::{Note, M, NO_P};
use super::p::{P, P_RUNNING, P_SYSCALL};
use super::{load, sched, Sched};
use crate::netpoll;
use crate::time::{nanotime, timers};

/// sysmon polls the network when no one has for this long (Go: 10 ms).
const POLL_STALE: u64 = 10_000_000;

/// Shortest tick (Go: 20 µs).
const TICK_MIN_US: u64 = 20;
/// Longest tick while an M is in a blocking call.
const TICK_MAX_SYSCALL_US: u64 = 1_000;
/// Longest tick otherwise.
const TICK_MAX_US: u64 = 5_000;
/// First tick after sysmon's idle sleep when no blocking call is in flight. Above
/// `TICK_MAX_SYSCALL_US`, so that it is a "long" sleep that a blocking call starting meanwhile
/// cuts short (`LONG_SLEEP`): the hand-off must not wait for this tick.
const TICK_AFTER_IDLE_US: u64 = 2_000;
/// Quiet ticks before the tick starts doubling (Go: 50).
const QUIET_TICKS: u32 = 50;

/// A G running this long without switching out is a hog (Go: `forcePreemptNS`).
const HOG_NS: u64 = 10_000_000;

/// sysmon's own note: `wake_if_idle` and `wake_for_syscall` wake it early.
static NOTE: Note = Note::new();
/// Set while sysmon sleeps with nothing to watch (all Ps idle); cleared by whoever wakes it.
static IDLE_SLEEP: AtomicBool = AtomicBool::new(false);
/// Set while sysmon sleeps longer than `TICK_MAX_SYSCALL_US`.
static LONG_SLEEP: AtomicBool = AtomicBool::new(false);

/// Start the sysmon thread (once, when the runtime starts), and the SIGQUIT dumper if asked.
pub(crate) fn start(s: &'static Sched) {
    let r = std::thread::Builder::new()
        .name("weft-sysmon".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            NOTE.bind_current();
            run(s)
        });
    if let Err(e) = r {
        super::fatal(format_args!("cannot create the sysmon thread: {e}"));
    }
    if s.sigquit_dump {
        crate::introspect::install_sigquit_dump();
    }
}

/// A P left the idle list: wake sysmon if it sleeps with nothing to watch. Cheap when it does
/// not (one load).
pub(crate) fn wake_if_idle() {
    if IDLE_SLEEP.load(Ordering::SeqCst) && IDLE_SLEEP.swap(false, Ordering::SeqCst) {
        NOTE.wakeup();
    }
}

/// A blocking call started: make sure sysmon looks within ~1 ms.
pub(crate) fn wake_for_syscall() {
    if LONG_SLEEP.load(Ordering::SeqCst) && LONG_SLEEP.swap(false, Ordering::SeqCst) {
        NOTE.wakeup();
    } else {
        wake_if_idle();
    }
}

/// What sysmon remembers about each P between ticks (Go: `sysmontick`).
#[derive(Clone, Default)]
struct PTick {
    /// `syscalltick` last seen, and when.
    syscalltick: u32,
    syscallwhen: u64,
    /// `nexecute` last seen, and when it was first seen (the current G started no later).
    nexec: u32,
    nexec_when: u64,
    /// The current hog (by `nexec`) was reported.
    reported: bool,
    /// Id and name of the hog G, for the end-of-hog report.
    hog_id: u64,
    hog_name: Option<String>,
}

fn run(s: &'static Sched) -> ! {
    let mut list = Vec::new();
    let mut ticks = vec![PTick::default(); s.ps.len()];
    let mut delay_us = TICK_MIN_US;
    let mut quiet = 0u32;
    let mut next_trace = trace_period(s).map(|p| nanotime() + p);
    loop {
        if next_trace.is_none() && all_idle(s) {
            IDLE_SLEEP.store(true, Ordering::SeqCst);
            if all_idle(s) {
                NOTE.sleep_timeout(Duration::from_secs(1));
            }
            IDLE_SLEEP.store(false, Ordering::SeqCst);
            if any_in_syscall(s) {
                delay_us = TICK_MIN_US;
                quiet = 0;
            } else {
                // Woken because a P went busy: only hogs and a stale netpoll are to watch,
                // both on a 10 ms scale. Restarting at 20 µs here cost a server whose P idles
                // between bursts ~900 sysmon wakeups a second (2 % of its core). A blocking call
                // that starts during this tick wakes sysmon (it is a long sleep) and the tick
                // drops back to 20 µs.
                delay_us = delay_us.max(TICK_AFTER_IDLE_US);
                quiet = QUIET_TICKS;
            }
        }
        // A blocking call that starts during a long sleep clears LONG_SLEEP and wakes us.
        let long = delay_us > TICK_MAX_SYSCALL_US;
        if long {
            LONG_SLEEP.store(true, Ordering::SeqCst);
            if any_in_syscall(s) {
                LONG_SLEEP.store(false, Ordering::SeqCst);
                delay_us = TICK_MIN_US;
            }
        }
        NOTE.sleep_timeout(Duration::from_micros(delay_us));
        if long && !LONG_SLEEP.swap(false, Ordering::SeqCst) {
            delay_us = TICK_MIN_US;
            quiet = 0;
        }

        let now = nanotime();
        crate::introspect::tick_coarse(now);
        poll_if_stale(s, now, &mut list);
        if timers::earliest() < now && load(&s.npidle) != 0 {
            // Not wakep: it does nothing while some M spins, and a spinner that keeps finding
            // work to steal may never look at an idle P's timers (Go: `startm(nil, false)`).
            startm(None, false);
        }
        let acted = retake(s, now, &mut ticks);
        if let Some(due) = next_trace {
            if now >= due {
                crate::introspect::print_schedtrace();
                next_trace = trace_period(s).map(|p| now + p);
            }
        }

        if acted {
            quiet = 0;
            delay_us = TICK_MIN_US;
        } else {
            quiet = quiet.saturating_add(1);
            if quiet > QUIET_TICKS {
                let max = if any_in_syscall(s) {
                    TICK_MAX_SYSCALL_US
                } else {
                    TICK_MAX_US
                };
                delay_us = (delay_us * 2).min(max);
            }
        }
    }
}

fn trace_period(s: &Sched) -> Option<u64> {
    (s.schedtrace_ms > 0).then(|| s.schedtrace_ms * 1_000_000)
}

/// Every regular P idle and no blocking call: nothing for sysmon to watch.
fn all_idle(s: &Sched) -> bool {
    load(&s.npidle) == s.procs() && !any_in_syscall(s)
}

/// Whether some P waits in `P_SYSCALL` for its M to come back or sysmon to retake it. SeqCst:
/// pairs with `entersyscall`'s SeqCst store of `P_SYSCALL` before it looks at sysmon's sleep
/// flags (either sysmon sees the call, or the call sees the flag and wakes sysmon).
fn any_in_syscall(s: &Sched) -> bool {
    s.ps.iter().any(|p| p.status.load_seqcst() == P_SYSCALL)
}

/// Poll the network if no M has for `POLL_STALE`.
fn poll_if_stale(s: &Sched, now: u64, list: &mut Vec<GRef>) {
    let last = s.lastpoll.load(Ordering::SeqCst);
    if netpoll::get().is_some()
        && last != 0
        && last + POLL_STALE < now
        && s.lastpoll
            .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        netpoll::netpoll(0, list);
        if !list.is_empty() {
            injectglist(list);
        }
    }
}

/// Retake Ps from blocking calls and lend spares to Gs stuck behind hogs (Go: `retake`).
/// Returns whether it did anything.
fn retake(s: &'static Sched, now: u64, ticks: &mut [PTick]) -> bool {
    let mut acted = false;
    for (i, p) in s.ps.iter().enumerate() {
        let pd = &mut ticks[i];
        match p.status.load() {
            P_SYSCALL => {
                end_hog(s, pd, now);
                let t = p.syscalltick.load(Ordering::Relaxed);
                if pd.syscalltick != t {
                    // A new call since the last look: give it one tick.
                    pd.syscalltick = t;
                    pd.syscallwhen = now;
                    continue;
                }
                // Nothing waits on this P and others are looking for work: let the call be,
                // unless it has gone on for 10 ms (Go's rule).
                if p.runq.is_empty()
                    && load(&s.nmspinning) + load(&s.npidle) > 0
                    && pd.syscallwhen + 10_000_000 > now
                {
                    continue;
                }
                if p.status.retake() {
                    p.m.store(std::ptr::null_mut(), Ordering::Relaxed);
                    s.retakes.fetch_add(1, Ordering::Relaxed);
                    handoffp(i);
                    acted = true;
                }
            }
            P_RUNNING => {
                let n = p.nexecute.load(Ordering::Relaxed);
                if pd.nexec != n || pd.nexec_when == 0 {
                    end_hog(s, pd, now);
                    pd.nexec = n;
                    pd.nexec_when = now;
                    continue;
                }
                if now < pd.nexec_when + HOG_NS {
                    continue;
                }
                // Same G for 10 ms, if the M is inside a G at all (not spinning or polling).
                let Some(gp) = running_g(p) else { continue };
                if !pd.reported {
                    pd.reported = true;
                    let (id, name) =
                        crate::introspect::allgs::describe_if_registered(gp).unwrap_or((0, None));
                    pd.hog_id = id;
                    pd.hog_name = name;
                    s.hogs.fetch_add(1, Ordering::Relaxed);
                }
                // One spare at a time per hog; lent again whenever the previous one ran dry
                // and went back to the pool while the hog goes on.
                if !has_lent(s, i) && needs_help(s, p, now) && lend_spare(s, i, n) {
                    acted = true;
                }
            }
            _ => end_hog(s, pd, now),
        }
    }
    acted
}

/// The hog of this P (if any) switched out: report it under `WEFT_SCHEDTRACE`.
fn end_hog(s: &Sched, pd: &mut PTick, now: u64) {
    if pd.reported && s.schedtrace_ms > 0 {
        let ms = now.saturating_sub(pd.nexec_when) / 1_000_000;
        let name = pd
            .hog_name
            .take()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        eprintln!(
            "weft: coroutine #{}{name} ran about {ms} ms without switching out (a CPU hog; \
             other Gs of its P ran on a spare P meanwhile)",
            pd.hog_id
        );
    }
    pd.hog_name = None;
    pd.reported = false;
    pd.nexec_when = 0;
}

/// The G the M holding `p` is executing, if any.
fn running_g(p: &P) -> Option<GRef> {
    let m = p.m.load(Ordering::Relaxed);
    // SAFETY: Ms are never freed (exited ones are kept for reuse), so the pointer is valid.
    let m = unsafe { m.as_ref() }?;
    std::ptr::NonNull::new(m.curg.load(Ordering::Relaxed)).map(GRef)
}

/// Whether Gs, expired timers or injected I/O wait with no idle P to take them, while P `p` is
/// hogged.
fn needs_help(s: &Sched, p: &P, now: u64) -> bool {
    load(&s.npidle) == 0
        && (!p.runq.is_empty() || load(&s.runqsize) > 0 || timers::earliest() <= now)
}

/// Whether a spare is lent for the hog on P `hog` right now.
fn has_lent(s: &Sched, hog: usize) -> bool {
    s.ps[s.procs()..]
        .iter()
        .any(|p| p.lent_for.load(Ordering::Relaxed) == hog)
}

/// Lend a spare P for the hog on P `hog` (whose `nexecute` is `nexec`): start an M on it.
fn lend_spare(s: &Sched, hog: usize, nexec: u32) -> bool {
    let spare = {
        let mut l = s.lock();
        let Some(sp) = l.pspare.pop() else {
            return false;
        };
        let p = &s.ps[sp];
        p.lent_for.store(hog, Ordering::Relaxed);
        p.lent_nexec.store(nexec, Ordering::Relaxed);
        sp
    };
    s.lends.fetch_add(1, Ordering::Relaxed);
    startm(Some(spare), false);
    true
}

/// Whether `pp`, held by the calling M, is a lent spare whose hog has switched out.
pub(crate) fn lent_spare_done(pp: &P) -> bool {
    let s = sched();
    if !s.is_spare(pp.id) {
        return false;
    }
    let hog = pp.lent_for.load(Ordering::Relaxed);
    if hog == NO_P {
        return true; // handed over as a spare without a hog (e.g. via pwait): give it back
    }
    let h = &s.ps[hog];
    h.status.load() != P_RUNNING
        || h.nexecute.load(Ordering::Relaxed) != pp.lent_nexec.load(Ordering::Relaxed)
}

/// Move the timers of spare P `pp`, about to go back to the pool, to the P it was lent for (or to
/// P 0): Gs that slept or set deadlines while running on the spare left them in its heap, a spare
/// in the pool is run by nobody, and a busy P only looks at other Ps' timers when it runs out of
/// work, so they could wait forever (Go moves a retired P's timers the same way: `moveTimers`).
/// Takes only heap locks, so callers may hold the scheduler lock (`pidleput`).
pub(crate) fn rehome_timers(pp: &P) {
    let s = sched();
    let hog = pp.lent_for.load(Ordering::Relaxed);
    let home = &s.ps[if hog < s.procs() { hog } else { 0 }];
    // No wakeup needed: the earliest timer of all Ps is the same before and after, so an M
    // blocked in the poller already sleeps until then, and a busy home P fires them itself.
    pp.timers.move_into(&home.timers);
}

/// Give the calling M's spare P back to the pool: its queued Gs go to the global queue, its timers
/// to the hog's P, its dead Gs to the global free list; then the M sleeps until handed a P.
pub(crate) fn return_spare(m: &'static M) {
    let s = sched();
    let pp = m.p().expect("return_spare: M holds no P");
    let mut gs = Vec::new();
    while let Some((g, _)) = pp.runq.get(true) {
        gs.push(GRef(g));
    }
    if !gs.is_empty() {
        globrunqput_batch_vec(gs.into_iter());
        wakep();
    }
    rehome_timers(pp);
    // SAFETY: this M holds pp.
    let dead: Vec<GRef> = unsafe { pp.gfree() }.drain(..).collect();
    if m.is_spinning() {
        super::idle::resetspinning(m);
    }
    {
        let mut l = s.lock();
        l.gfree.extend(dead);
        let id = releasep(m);
        s.ps[id].lent_for.store(NO_P, Ordering::Relaxed);
        l.pspare.push(id);
    }
    stopm(m);
}
