//! `RawMutex`: the state word of [`Mutex`](super::Mutex), Go's `sync.Mutex` algorithm
//! (`sync/mutex.go`, Go 1.9+ "starvation mode") on top of [`Sema`].
//!
//! # The state word
//!
//! | bits | name       | meaning                                                          |
//! |------|------------|------------------------------------------------------------------|
//! | 0    | `LOCKED`   | someone holds the lock                                           |
//! | 1    | `WOKEN`    | a waiter was woken (or a spinner is active): unlock need not wake another |
//! | 2    | `STARVING` | starvation mode: the lock is handed from owner to oldest waiter   |
//! | 3..  | waiters    | lockers that are queued (or about to queue) on the semaphore     |
//!
//! **Fast paths**: `lock` is one CAS `0 → LOCKED`; `unlock` is one `fetch_sub(LOCKED)` that
//! finds 0 when nobody waits. Uncontended lock + unlock is two atomic instructions.
//!
//! # Normal mode and starvation mode (Go's rule, verbatim in behaviour)
//!
//! In **normal mode** waiters queue FIFO on the semaphore, but a woken waiter does not own the
//! lock: it competes with newly arriving lockers, which have the advantage of already running
//! (and of there being many of them). That keeps throughput high (a running G re-locks without a
//! context switch). A woken waiter that loses goes back to the **head** of the queue.
//!
//! A waiter that has waited **more than 1 ms** (`STARVATION_THRESHOLD_NS`) sets `STARVING`. In
//! **starvation mode** `unlock` hands the lock directly to the oldest waiter; arrivals do not try
//! to take it and do not spin, they queue at the tail. The woken waiter owns the lock on wakeup.
//! It switches back to normal mode if it is the last waiter or waited less than 1 ms itself.
//! So no waiter waits more than ~1 ms plus one queue's worth of critical sections once it is at
//! the head of the queue: a G that re-locks in a loop cannot starve a waiter.
//!
//! **Spinning**: a locker may spin a few rounds (4 × 30 `PAUSE`, Go's `active_spin`) before
//! queueing, if the lock is held in normal mode, there are several Ps (or CPUs, on a plain
//! thread) and its own P has nothing else to run. On 1 P a G never spins: the holder cannot run
//! while it does.
//!
//! # Differences from Go
//!
//! * The semaphore always hands permits off directly (Go: only in starvation mode); in normal
//!   mode a permit only means "you were woken", as in Go, so this changes no outcome.
//! * Unlock in starvation mode does not yield: the woken owner is in the P's `runnext` and runs
//!   as soon as the unlocker parks, yields or ends. `unlock` never switches the G.
//!
//! Under `--cfg loom` there is no clock: a waiter counts as starving after its first wait if
//! the mutex was built with `RawMutex::with_loom_starvation(true)`, so the models explore both
//! modes.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

use super::sema::Sema;

const LOCKED: usize = 1;
const WOKEN: usize = 1 << 1;
const STARVING: usize = 1 << 2;
const WAITER_SHIFT: u32 = 3;
const WAITER: usize = 1 << WAITER_SHIFT;

/// A waiter that waited longer than this switches the mutex to starvation mode (Go:
/// `starvationThresholdNs`).
pub(crate) const STARVATION_THRESHOLD_NS: u64 = 1_000_000;

/// Rounds a locker may spin before it queues (Go: `active_spin`).
#[cfg(not(loom))]
const ACTIVE_SPIN: u32 = 4;
/// `PAUSE`s per spin round (Go: `active_spin_cnt`).
#[cfg(not(loom))]
const ACTIVE_SPIN_CNT: u32 = 30;

/// The lock word and semaphore of a `Mutex` (module doc).
pub(crate) struct RawMutex {
    state: AtomicUsize,
    sema: Sema,
    #[cfg(loom)]
    loom_starve: bool,
}

impl RawMutex {
    /// An unlocked mutex.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> RawMutex {
        RawMutex {
            state: AtomicUsize::new(0),
            sema: Sema::with_reason(0, crate::wait_reason::WaitReason::Mutex),
        }
    }

    /// An unlocked mutex (loom: never starving).
    #[cfg(loom)]
    pub(crate) fn new() -> RawMutex {
        RawMutex::with_loom_starvation(false)
    }

    /// loom only: an unlocked mutex whose waiters count as starving after one wait (`starve`).
    #[cfg(loom)]
    pub(crate) fn with_loom_starvation(starve: bool) -> RawMutex {
        RawMutex {
            state: AtomicUsize::new(0),
            sema: Sema::new(0),
            loom_starve: starve,
        }
    }

    /// Lock, blocking the G (or thread) while someone else holds it.
    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    /// Lock if that needs no waiting (Go: `TryLock`). Never takes a lock that is being handed
    /// to a starving waiter.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let old = self.state.load(Ordering::Relaxed);
        if old & (LOCKED | STARVING) != 0 {
            return false;
        }
        // A woken waiter may be on its way, but we run now and may take the lock before it.
        self.state
            .compare_exchange(old, old | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the lock is held, or being handed to a starving waiter (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & (LOCKED | STARVING) != 0
    }

    /// Unlock. The caller holds the lock (the typed wrappers guarantee it).
    ///
    /// # Panics
    /// If the mutex is not locked (a bug in the caller).
    #[inline]
    pub(crate) fn unlock(&self) {
        let new = self
            .state
            .fetch_sub(LOCKED, Ordering::Release)
            .wrapping_sub(LOCKED);
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut wait_start: Option<u64> = None;
        let mut starving = false;
        let mut awoke = false;
        let mut iter = 0u32;
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin only in normal mode while the lock is held: in starvation mode the lock is
            // handed to a waiter, so spinning could not get it anyway.
            if old & (LOCKED | STARVING) == LOCKED && can_spin(iter) {
                // Set WOKEN so that unlock does not wake a waiter while we are about to take
                // the lock.
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                spin();
                iter += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            // Do not take a starving mutex: arrivals queue.
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += WAITER;
            }
            // Switch to starvation mode, unless the mutex is unlocked right now (unlock expects
            // a starving mutex to have waiters, which may not be true then).
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                // We were woken (or set WOKEN spinning): clear it in either case.
                assert!(new & WOKEN != 0, "weft: inconsistent Mutex state");
                new &= !WOKEN;
            }
            match self
                .state
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & (LOCKED | STARVING) == 0 {
                        return; // locked with the CAS
                    }
                    // A waiter that waited before goes to the head of the queue.
                    let lifo = wait_start.is_some();
                    let start = *wait_start.get_or_insert_with(now);
                    self.sema.acquire_lifo(lifo);
                    starving = starving || self.waited_too_long(start);
                    old = self.state.load(Ordering::Acquire);
                    if old & STARVING != 0 {
                        // Starvation mode: the lock was handed to us, but LOCKED is clear and we
                        // are still counted as a waiter. Fix both.
                        assert!(
                            old & (LOCKED | WOKEN) == 0 && old >> WAITER_SHIFT != 0,
                            "weft: inconsistent Mutex state"
                        );
                        let mut delta = LOCKED.wrapping_sub(WAITER);
                        if !starving || old >> WAITER_SHIFT == 1 {
                            // Leave starvation mode: we did not wait long, or nobody is left.
                            // (Starvation mode is so slow that two Gs could otherwise go
                            // lock-step in it forever.)
                            delta = delta.wrapping_sub(STARVING);
                        }
                        self.state.fetch_add(delta, Ordering::AcqRel);
                        return;
                    }
                    awoke = true;
                    iter = 0;
                }
                Err(now) => old = now,
            }
        }
    }

    #[cold]
    fn unlock_slow(&self, new: usize) {
        assert!(
            new.wrapping_add(LOCKED) & LOCKED != 0,
            "weft: unlock of unlocked Mutex"
        );
        if new & STARVING != 0 {
            // Starvation mode: hand the lock to the oldest waiter. LOCKED stays clear, but
            // STARVING keeps arrivals out; the waiter sets LOCKED itself.
            self.sema.release();
            return;
        }
        let mut old = new;
        loop {
            // Nobody to wake, or a waiter is already woken (or spinning), or someone took the
            // lock meanwhile (it will wake a waiter when it unlocks), or starvation mode began
            // after our fetch_sub (then the hand-off is not ours to do).
            if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                return;
            }
            // Take the right to wake one waiter.
            let new = (old - WAITER) | WOKEN;
            match self
                .state
                .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.sema.release();
                    return;
                }
                Err(now) => old = now,
            }
        }
    }

    #[cfg(not(loom))]
    fn waited_too_long(&self, start: u64) -> bool {
        now().saturating_sub(start) > STARVATION_THRESHOLD_NS
    }

    #[cfg(loom)]
    fn waited_too_long(&self, _start: u64) -> bool {
        self.loom_starve
    }
}

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawMutex")
            .field("locked", &(s & LOCKED != 0))
            .field("starving", &(s & STARVING != 0))
            .field("waiters", &(s >> WAITER_SHIFT))
            .finish()
    }
}

/// The clock for the starvation threshold.
#[cfg(not(loom))]
fn now() -> u64 {
    crate::time::nanotime()
}

#[cfg(loom)]
fn now() -> u64 {
    0
}

/// Whether spinning may get the lock sooner than queueing (Go: `sync_runtime_canSpin`).
#[cfg(not(loom))]
fn can_spin(iter: u32) -> bool {
    if iter >= ACTIVE_SPIN {
        return false;
    }
    match crate::sched::context::current_p() {
        // A G (or an M's own code): only if another P may be running the holder, and nothing
        // else waits to run on ours.
        Some(pp) => crate::sched::sched().procs() > 1 && pp.runq.is_empty(),
        // A plain thread: only with several CPUs.
        None => multicore(),
    }
}

#[cfg(loom)]
fn can_spin(_iter: u32) -> bool {
    false
}

#[cfg(not(loom))]
fn spin() {
    for _ in 0..ACTIVE_SPIN_CNT {
        std::hint::spin_loop();
    }
}

#[cfg(loom)]
fn spin() {}

/// Whether this machine has more than one CPU (cached).
#[cfg(not(loom))]
fn multicore() -> bool {
    static NCPU: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *NCPU.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())) > 1
}
