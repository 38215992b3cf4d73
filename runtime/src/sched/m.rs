//! M: an OS thread that runs Gs while it holds a P (Go: `type m`, `mstart`, `schedule`).
//!
//! Ms are created on demand by `startm` (when work appears, a P is idle and no M is idle) and
//! never exit: an M with nothing to do sleeps on its [`Note`] in `stopm` and is reused. Each M
//! runs `schedule()` in a loop on its own thread stack; Gs run on their own stacks and switch
//! back to this loop whenever they yield, park or finish.
//!
//! # Ownership
//!
//! * `p`, `spinning`, `rand`: the M's own thread only (atomics so that the type is `Sync`).
//! * `nextp`: written by whoever wakes the M (`startm`, `pidleput` or `handoff_to_waiter` for a
//!   waiting M) under
//!   `Sched::lock` *before* `note.wakeup()`; consumed by the M after it wakes.
//! * `note`: any thread may wake; only the M sleeps on it.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::thread::Thread;

use super::p::P;
use super::{context, findrunnable, idle, sched, switch};

/// `M::p` / `M::nextp` value meaning "no P".
pub(crate) const NO_P: usize = usize::MAX;

/// One-shot sleep/wakeup for one thread (Go: `note`). A wakeup before the sleep is not lost: the
/// flag stays set and the next `sleep` returns at once. Spurious returns are possible, so every
/// sleeper re-checks its own condition in a loop.
pub(crate) struct Note {
    notified: AtomicBool,
    /// The sleeping thread; replaced when an exited M's record is reused by a new thread.
    thread: parking_lot::Mutex<Option<Thread>>,
}

impl Note {
    pub(crate) const fn new() -> Note {
        Note {
            notified: AtomicBool::new(false),
            thread: parking_lot::const_mutex(None),
        }
    }

    /// Make the calling thread the one this note wakes.
    pub(crate) fn bind_current(&self) {
        *self.thread.lock() = Some(std::thread::current());
    }

    /// Sleep until woken (or spuriously). Only the owning thread calls this.
    pub(crate) fn sleep(&self) {
        while !self.notified.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }

    /// Sleep until woken or until `timeout` has passed; `true` if woken. Owning thread only.
    pub(crate) fn sleep_timeout(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.notified.swap(false, Ordering::Acquire) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Wake the owning thread.
    pub(crate) fn wakeup(&self) {
        self.notified.store(true, Ordering::Release);
        // Not yet started: it will see the flag when it first sleeps.
        if let Some(t) = &*self.thread.lock() {
            t.unpark();
        }
    }
}

/// One worker thread. See the module doc.
pub(crate) struct M {
    /// Creation order, from 0.
    pub(crate) id: usize,
    /// The P held, or null. A pointer rather than an index: reading the current P is on every
    /// spawn and wakeup path, and this saves the `sched()` lookup and a bounds check.
    p: AtomicPtr<P>,
    /// The P handed to this M by its waker.
    pub(crate) nextp: AtomicUsize,
    /// Whether this M is spinning (looking for work while holding a P).
    pub(crate) spinning: AtomicBool,
    /// Sleep/wakeup of this thread.
    pub(crate) note: Note,
    /// xorshift state for the random steal order.
    rand: AtomicU32,
    /// The P this M held when its G entered `blocking` (Go: `m.oldp`); `NO_P` otherwise.
    pub(crate) oldp: AtomicUsize,
    /// The G this M is executing (null while it runs scheduler code). Written by the M around
    /// every resume; read by sysmon (hog detection) and the goroutine dump.
    pub(crate) curg: AtomicPtr<super::g::G>,
}

impl M {
    /// The P this M holds.
    pub(crate) fn p(&self) -> Option<&'static P> {
        // SAFETY: the pointer is null or points into `Sched::ps`, which lives for the rest of
        // the process once the runtime has started.
        unsafe { self.p.load(Ordering::Relaxed).as_ref() }
    }

    /// Hold P number `p`, or none with `NO_P`.
    pub(crate) fn set_p(&self, p: usize) {
        let ptr = match p {
            NO_P => std::ptr::null_mut(),
            i => &sched().ps[i] as *const P as *mut P,
        };
        self.p.store(ptr, Ordering::Relaxed);
    }

    pub(crate) fn is_spinning(&self) -> bool {
        self.spinning.load(Ordering::Relaxed)
    }

    pub(crate) fn set_spinning(&self, v: bool) {
        self.spinning.store(v, Ordering::Relaxed);
    }

    /// A pseudo-random number (Go: `cheaprand`), for the steal order.
    pub(crate) fn fastrand(&self) -> u32 {
        let mut x = self.rand.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rand.store(x, Ordering::Relaxed);
        x
    }
}

/// Create a new M that starts with P `pp` (spinning or not) and runs `schedule` (Go: `newm`).
/// The record of an M whose thread exited (idle timeout) is reused. Returns `false` when the
/// thread cap (`Config::max_threads`) is reached: the caller keeps the P.
pub(crate) fn newm(pp: usize, spinning: bool) -> bool {
    let s = sched();
    let reused = {
        let mut l = s.lock();
        if s.mlive.load(Ordering::Relaxed) >= s.max_threads {
            return false;
        }
        s.mlive.fetch_add(1, Ordering::Relaxed);
        l.mfree.pop()
    };
    let m: &'static M = match reused {
        Some(m) => {
            m.nextp.store(pp, Ordering::Relaxed);
            m.spinning.store(spinning, Ordering::Relaxed);
            m
        }
        None => {
            let id = s.mcount.fetch_add(1, Ordering::Relaxed);
            Box::leak(Box::new(M {
                id,
                p: AtomicPtr::new(std::ptr::null_mut()),
                nextp: AtomicUsize::new(pp),
                spinning: AtomicBool::new(spinning),
                note: Note::new(),
                rand: AtomicU32::new((id as u32).wrapping_mul(0x9E37_79B9) | 1),
                oldp: AtomicUsize::new(NO_P),
                curg: AtomicPtr::new(std::ptr::null_mut()),
            }))
        }
    };
    let spawned = std::thread::Builder::new()
        .name(format!("weft-m{}", m.id))
        .spawn(move || mstart(m));
    if let Err(e) = spawned {
        super::fatal(format_args!("cannot create OS thread for M{}: {e}", m.id));
    }
    true
}

/// The body of an M's thread (Go: `mstart` → `schedule`). Returns when the M has been idle for
/// `M_IDLE_TIMEOUT` and is not needed (`findrunnable` decides); its record goes to `mfree`.
fn mstart(m: &'static M) {
    m.note.bind_current();
    context::set_current_m(m);
    crate::stack::overflow::install_altstack();
    // Here, not when the runtime starts: the starting thread may be unwinding (a destructor that
    // spawns), and std forbids touching the hook then. A fresh M never is, and Gs run only on Ms.
    crate::panic::install_hook();
    let pp = m.nextp.swap(NO_P, Ordering::Acquire);
    idle::acquirep(m, pp);
    // A panic here is a bug in the runtime, not in user code (user panics are caught at the
    // entry of their G): abort with the cause rather than unwind through scheduler state.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| while schedule(m) {}));
    if let Err(p) = r {
        let msg = crate::panic::payload_str(&*p);
        super::fatal(format_args!("M{} panicked in the scheduler: {msg}", m.id));
    }
    // findrunnable took `m` off the idle list and counted it out of `mlive`.
    *m.note.thread.lock() = None;
    m.note.notified.store(false, Ordering::Relaxed);
    sched().lock().mfree.push(m);
}

/// One round of scheduling: find a runnable G and run it until it switches back (Go: `schedule`).
/// Returns `false` when the M should exit (idle too long).
fn schedule(m: &'static M) -> bool {
    if super::load(&sched().npwait) > 0 {
        idle::handoff_to_waiter(m);
    }
    if let Some(pp) = m.p() {
        if super::sysmon::lent_spare_done(pp) {
            super::sysmon::return_spare(m);
        }
    }
    let Some((gp, inherit)) = findrunnable::findrunnable(m) else {
        return false;
    };
    // This M found work: if it was spinning, stop, and make sure another M spins in its place
    // when there may be more work (rule 2 of the protocol in mod.rs).
    if m.is_spinning() {
        idle::resetspinning(m);
    }
    switch::execute(m, gp, inherit);
    true
}
