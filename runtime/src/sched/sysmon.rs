//! sysmon: the runtime's watchdog thread (Go: `sysmon` in `proc.go`).
//!
//! A plain OS thread, not an M: it holds no P and never runs Gs. Every `TICK` it:
//!
//! * **polls the network** if nobody has for `POLL_STALE` (10 ms, as Go): when every P is busy
//!   running Gs, no M reaches the netpoll step of `findrunnable`, and readied I/O would wait for
//!   the first M to run dry. sysmon's `netpoll(0)` injects those Gs into the global queue, where
//!   busy Ps find them (every 61st scheduling round at the latest, or when their local queue
//!   empties) and idle Ps are started for them;
//! * **starts an M for overdue timers** when a timer has expired and a P is idle (its M may be
//!   blocked in netpoll with a stale timeout, or every M may be busy).
//!
//! Later issues add here what Go's sysmon also does: retaking Ps from Ms blocked in syscalls and
//! reporting long-running Gs.
//!
//! With `TICK` = 5 ms and `POLL_STALE` = 10 ms, a readiness edge waits at most ~15 ms for a poll
//! however busy the Ps are.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::inject::injectglist;
use super::{idle, sched};
use crate::netpoll;
use crate::time::{nanotime, timers};

/// How often sysmon wakes up.
const TICK: Duration = Duration::from_millis(5);

/// sysmon polls the network when no one has for this long (Go: 10 ms).
const POLL_STALE: u64 = 10_000_000;

/// Start the sysmon thread (once, when the runtime starts).
pub(crate) fn start() {
    let r = std::thread::Builder::new()
        .name("weft-sysmon".into())
        .stack_size(256 * 1024)
        .spawn(run);
    if let Err(e) = r {
        super::fatal(format_args!("cannot create the sysmon thread: {e}"));
    }
}

fn run() -> ! {
    let mut list = Vec::new();
    loop {
        std::thread::sleep(TICK);
        let s = sched();
        let now = nanotime();
        let last = s.lastpoll.load(Ordering::SeqCst);
        if netpoll::get().is_some()
            && last != 0
            && last + POLL_STALE < now
            && s.lastpoll
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            netpoll::netpoll(0, &mut list);
            if !list.is_empty() {
                injectglist(&mut list);
            }
        }
        if timers::earliest() < now && s.npidle.load(Ordering::SeqCst) != 0 {
            // Not wakep: it does nothing while some M spins, and a spinner that keeps finding
            // work to steal may never look at an idle P's timers (Go: `startm(nil, false)`).
            idle::startm(None, false);
        }
    }
}
