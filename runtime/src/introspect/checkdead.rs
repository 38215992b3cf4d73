//! "fatal error: all goroutines are asleep - deadlock!" (Go: `checkdead` in `proc.go`).
//!
//! Checked whenever an M goes idle (`stopm`), and once by `run` right after it has registered
//! its main G. The process is declared dead — the report printed and the process exited with
//! status 2, as Go does — only when all of these hold:
//!
//! * a thread is blocked in [`run`](crate::run) on a main G that is parked (`WAITING`);
//! * every M is idle (none runs a G, none is in `blocking`, none polls the network), no G is
//!   runnable anywhere, no socket wait is registered with the netpoller and no timer is pending
//!   (so nothing inside the runtime can ever wake anyone);
//! * every thread of the process is one of the runtime's own (its Ms, sysmon, the SIGQUIT
//!   thread, the threads in `run`): any other thread could still send on a channel or unlock a
//!   mutex, so with one around the runtime cannot know, and says nothing (a hang, not a false
//!   report). The count comes from `/proc/self/stat`.
//!
//! Go needs none of the last rule because every Go thread is the runtime's.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::allgs;
use crate::sched::g::G_WAITING;
use crate::sched::{load, sched};

/// Ids of the main Gs of threads blocked in `run`.
static MAINS: Mutex<Vec<u64>> = parking_lot::const_mutex(Vec::new());
/// Threads blocked in `run` (registered before their main G is spawned).
static RUN_THREADS: AtomicUsize = AtomicUsize::new(0);

/// A thread is about to block in `run`.
pub(crate) fn enter_run() {
    RUN_THREADS.fetch_add(1, Ordering::SeqCst);
}

/// The thread's main G is `id`; check at once (the Ms may all have gone idle already).
pub(crate) fn set_main(id: u64) {
    MAINS.lock().push(id);
    check();
}

/// The thread left `run`.
pub(crate) fn leave_run(id: Option<u64>) {
    if let Some(id) = id {
        let mut m = MAINS.lock();
        if let Some(i) = m.iter().position(|&x| x == id) {
            m.swap_remove(i);
        }
    }
    RUN_THREADS.fetch_sub(1, Ordering::SeqCst);
}

/// If the process is deadlocked (module doc), report and exit with status 2.
pub(crate) fn check() {
    let s = sched();
    if RUN_THREADS.load(Ordering::SeqCst) == 0
        || load(&s.runqsize) != 0
        || load(&s.npidle) != s.procs()
        || crate::netpoll::any_waiters()
        || s.lastpoll.load(Ordering::SeqCst) == 0
    {
        return;
    }
    {
        let l = s.lock();
        if l.midle.len() != s.mlive.load(Ordering::Relaxed) || !l.pwait.is_empty() {
            return;
        }
        if l.pspare.len() != s.procs() {
            return; // a spare is lent: some M runs
        }
    }
    if s.ps.iter().any(|p| !p.runq.is_empty())
        || crate::time::timers::earliest() != crate::time::timers::NONE
    {
        return;
    }
    let mains = MAINS.lock().clone();
    let mut main_waiting = false;
    allgs::for_each(|gp| {
        if gp.status() == G_WAITING && mains.contains(&gp.id()) {
            main_waiting = true;
        }
    });
    if !main_waiting {
        return;
    }
    let known = s.mlive.load(Ordering::Relaxed)
        + 1 // sysmon
        + usize::from(super::SIGQUIT_THREAD.load(Ordering::SeqCst))
        + RUN_THREADS.load(Ordering::SeqCst);
    match process_threads() {
        Some(n) if n == known => {}
        _ => return,
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "fatal error: all goroutines are asleep - deadlock!\n");
    let _ = super::dump(&mut err);
    let _ = err.flush();
    drop(err);
    std::process::exit(2);
}

/// Number of threads in this process (`/proc/self/stat`, field 20).
fn process_threads() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(17)?.parse().ok()
}
