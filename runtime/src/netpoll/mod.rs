//! The netpoller: turns epoll readiness into runnable Gs (Go: `netpoll.go`, `netpoll_epoll.go`,
//! and the netpoll parts of `proc.go`).
//!
//! | file           | Go                                   | what                                   |
//! |----------------|--------------------------------------|----------------------------------------|
//! | `epoll.rs`     | `netpoll_epoll.go`                   | epoll instance, eventfd, the syscalls  |
//! | `poll_desc.rs` | `pollDesc`, `pollcache`, `poll_runtime_poll*` | registration, waits, deadlines, close |
//! | `poll_word.rs` | `rg`/`wg`, `netpollblock`/`unblock`, `atomicInfo` | the lock-free state machine (loom) |
//! | this file      | `netpoll`, `netpollBreak`, `netpollWaiters`, `wakeNetPoller` | polling and waking the poller |
//!
//! # Who polls (see `sched/findrunnable.rs` and `sched/sysmon.rs`)
//!
//! * An M in `findrunnable` that found no local or global work does a **non-blocking**
//!   `netpoll(0)` before stealing, if some op waits and no M is blocked in `epoll_wait`.
//! * An M that found nothing at all releases its P and, if Gs wait on I/O or timers are pending
//!   and no other M is doing it, becomes **the** blocking poller: `netpoll(until the earliest
//!   timer)`. `Sched::lastpoll == 0` means "an M is blocked in netpoll"; `Sched::poll_until` is
//!   when it will wake up by itself. Only one M at a time blocks there.
//! * **sysmon** polls when nobody has for 10 ms, so I/O is not starved by Ps busy with Gs.
//!
//! Readied Gs are returned as a list and injected as a batch (`sched::inject::injectglist`).
//! Waiters that are plain threads are woken directly.
//!
//! # Breaking the blocking wait (Go: `netpollBreak`)
//!
//! An earlier timer than the blocked poller's timeout writes the eventfd. `wake_sig` makes a storm
//! of such wakeups cost one write: only the caller that flips it 0 → 1 writes, and the blocking
//! poll that drains the eventfd flips it back.

pub(crate) mod epoll;
pub mod poll_desc;
pub(crate) mod poll_word;

use std::io;
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::sched::g::GRef;
use crate::sched::{fatal, idle, sched};
use epoll::{Epoll, BREAK_TAG};

pub use poll_desc::{closed_error, is_closed_error, timeout_error, Direction, PollDesc};

/// The netpoller's state (created on first use: the first socket or timer).
pub(crate) struct Netpoll {
    pub(crate) epoll: Epoll,
    /// 1 while a break is pending (Go: `netpollWakeSig`).
    wake_sig: AtomicU32,
}

static NETPOLL: OnceLock<Netpoll> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Number of ops parked on a pollDesc (Go: `netpollWaiters`): schedulers skip polling when 0.
/// Incremented before a waiter is published, decremented when it is unblocked.
pub(crate) static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Events read per `epoll_wait` (Go: 128).
const EVENTS: usize = 128;

/// The netpoller, if it has been created.
pub(crate) fn get() -> Option<&'static Netpoll> {
    NETPOLL.get()
}

/// The netpoller, created if needed (Go: `netpollGenericInit`).
pub(crate) fn init() -> io::Result<&'static Netpoll> {
    if let Some(np) = NETPOLL.get() {
        return Ok(np);
    }
    let _g = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(np) = NETPOLL.get() {
        return Ok(np);
    }
    let np = Netpoll {
        epoll: Epoll::new()?,
        wake_sig: AtomicU32::new(0),
    };
    Ok(NETPOLL.get_or_init(|| np))
}

/// Whether an op or a timer could need a poll (Go: `netpollAnyWaiters`).
pub(crate) fn any_waiters() -> bool {
    WAITERS.load(Ordering::SeqCst) > 0
}

/// Poll for ready descriptors (Go: `netpoll(delay)`): `delay_ns` < 0 blocks until an event or
/// a break, 0 does not block, > 0 waits at most that long. Readied Gs are appended to `out`
/// (their status is still `WAITING`; the caller makes them runnable).
pub(crate) fn netpoll(delay_ns: i64, out: &mut Vec<GRef>) {
    let Some(np) = get() else { return };
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let n = loop {
        match np.epoll.wait(&mut events, delay_ns) {
            Ok(n) => break n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if delay_ns > 0 {
                    // The caller recomputes the timeout (Go does the same).
                    return;
                }
            }
            Err(e) => fatal(format_args!("netpoll: epoll_wait: {e}")),
        }
    };
    const R: u32 =
        (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR)
            as u32;
    const W: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
    let mut woken = 0;
    for ev in &events[..n] {
        let (bits, data) = (ev.events, ev.u64);
        if data == BREAK_TAG {
            if delay_ns != 0 {
                np.epoll.drain();
                np.wake_sig.store(0, Ordering::SeqCst);
            }
            continue;
        }
        let (read, write) = (bits & R != 0, bits & W != 0);
        if read || write {
            let err = bits == libc::EPOLLERR as u32;
            // Not EPOLLHUP: a TCP socket reports it before it is connected, and every hang-up
            // of a connected one (FIN, reset, shutdown) comes with EPOLLRDHUP. EPOLLPRI: urgent
            // data, at whose mark a read stops short with data behind it.
            let hup = bits & (libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32 != 0;
            woken += poll_desc::ready_event(data, read, write, err, hup, out);
        }
    }
    if woken > 0 {
        crate::introspect::NETPOLL_WAKEUPS.fetch_add(woken as u64, Ordering::Relaxed);
        // Once per batch (Go: `netpollAdjustWaiters`). The count only gates polling: an M that
        // parks a G goes on to findrunnable and sees its own increment.
        WAITERS.fetch_sub(woken, Ordering::SeqCst);
    }
}

/// Wake the M blocked in `netpoll`, if any; coalesced (Go: `netpollBreak`).
pub(crate) fn netpoll_break() {
    let Some(np) = get() else { return };
    if np
        .wake_sig
        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        np.epoll.interrupt();
    }
}

/// A timer expiring at `when` was added and became its P's earliest (Go: `wakeNetPoller`): if an
/// M is blocked in netpoll past `when`, break its wait; if none is, make sure some M runs.
pub(crate) fn wake_for_timer(when: u64) {
    let s = sched();
    if s.lastpoll.load(Ordering::SeqCst) == 0 {
        let until = s.poll_until.load(Ordering::SeqCst);
        if until == 0 || until > when {
            netpoll_break();
        }
    } else {
        idle::wakep();
    }
}

/// A plain thread just published itself as a waiter: make sure some M will poll for it (Gs do
/// not need this: their own M goes on to poll or to hand the job to the blocking poller).
pub(crate) fn ensure_poller() {
    fence(Ordering::SeqCst);
    if sched().lastpoll.load(Ordering::SeqCst) != 0 {
        idle::wakep();
    }
}

/// Number of pollDescs registered now.
pub fn registered() -> usize {
    poll_desc::in_use()
}
