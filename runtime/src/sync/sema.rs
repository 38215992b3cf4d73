//! `Sema`: a counting semaphore with a FIFO wait queue that parks Gs (Go:
//! `runtime_Semacquire`/`runtime_Semrelease` in `sema.go`).
//!
//! # Protocol
//!
//! * `count` holds the available permits; `acquire` takes one with a CAS when it can (no lock).
//! * Otherwise the caller waits in the [`WaitQueue`](super::wait_queue) (`wait_unless`): its
//!   commit takes the queue lock, tries the count once more, and only then queues itself, so a
//!   `release` that raced with it is never missed: `release` also decides under the lock.
//! * `release` hands its permit **directly** to the oldest waiter if there is one (the count is
//!   not touched), else adds it to `count`. Direct hand-off gives FIFO order and makes a woken
//!   waiter the owner of its permit, so it never has to retry (no thundering herd, no barging).
//!   Hence the invariant: **while anyone is queued, `count` is 0** (it only grows under the lock
//!   when the queue is empty), so a caller of `try_acquire` can never take a permit ahead of a
//!   queued waiter.
//!
//! Go's `semrelease(handoff=false)` instead bumps the count and lets the woken waiter race for
//! it; weft always hands off, which is what Go's `handoff=true` (the starving `Mutex`) does.
//! Waiters that already waited once can queue at the head ([`Sema::acquire_lifo`], Go's
//! `lifo`), which the `Mutex` uses to keep a re-waiting waiter's place.
//!
//! The queue lock is a std `Mutex` held for a few instructions, on the M's stack or a plain
//! thread, never across a park. The loom models in `src/tests/loom_sync.rs` run this code.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

use super::wait_queue::WaitQueue;
use crate::wait_reason::WaitReason;

/// A counting semaphore whose `acquire` parks the calling G (or blocks a plain thread) until a
/// permit is available. Waiters are served in FIFO order, each handed its permit directly.
///
/// This is the runtime-level primitive (Go's `sema.go`) under the socket locks and
/// `weft::sync`'s `Mutex` and `RwLock`. Most code wants [`Semaphore`](super::Semaphore), which
/// adds an RAII permit.
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::Sema;
///
/// let sem = Arc::new(Sema::new(0));
/// let s2 = sem.clone();
/// let h = weft_runtime::go!(move || s2.acquire());
/// sem.release();
/// h.join().unwrap();
/// ```
pub struct Sema {
    count: AtomicUsize,
    queue: WaitQueue,
}

impl std::fmt::Debug for Sema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sema")
            .field("permits", &self.available())
            .field("waiters", &self.waiters())
            .finish()
    }
}

impl Default for Sema {
    /// A semaphore with no permits.
    fn default() -> Sema {
        Sema::new(0)
    }
}

impl Sema {
    /// A semaphore with `permits` permits available.
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// static SEM: Sema = Sema::new(1);
    /// assert!(SEM.try_acquire());
    /// assert!(!SEM.try_acquire());
    /// SEM.release();
    /// ```
    #[cfg(not(loom))]
    pub const fn new(permits: usize) -> Sema {
        Sema::with_reason(permits, WaitReason::Semaphore)
    }

    /// A semaphore whose waiters show `reason` in the goroutine dump.
    #[cfg(not(loom))]
    pub(crate) const fn with_reason(permits: usize, reason: WaitReason) -> Sema {
        Sema {
            count: AtomicUsize::new(permits),
            queue: WaitQueue::with_reason(reason),
        }
    }

    /// A semaphore with `permits` permits available.
    #[cfg(loom)]
    pub fn new(permits: usize) -> Sema {
        Sema::with_reason(permits, WaitReason::Semaphore)
    }

    /// A semaphore whose waiters show `reason` in the goroutine dump.
    #[cfg(loom)]
    pub(crate) fn with_reason(permits: usize, reason: WaitReason) -> Sema {
        Sema {
            count: AtomicUsize::new(permits),
            queue: WaitQueue::with_reason(reason),
        }
    }

    /// Take a permit if one is available, without blocking.
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// let sem = Sema::new(1);
    /// assert!(sem.try_acquire());
    /// assert!(!sem.try_acquire());
    /// ```
    pub fn try_acquire(&self) -> bool {
        let mut n = self.count.load(Ordering::Relaxed);
        while n > 0 {
            match self
                .count
                .compare_exchange_weak(n, n - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Take a permit, blocking the calling G (or thread) until one is released to it.
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// let sem = Sema::new(2);
    /// sem.acquire();
    /// sem.acquire();
    /// assert_eq!(sem.available(), 0);
    /// ```
    pub fn acquire(&self) {
        self.acquire_lifo(false);
    }

    /// [`acquire`](Sema::acquire), but if the caller must wait it queues at the head instead
    /// of the tail when `lifo` is true (Go's `semacquire1(lifo)`: a waiter that was woken once
    /// and has to wait again keeps its place).
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// let sem = Sema::new(1);
    /// sem.acquire_lifo(true);
    /// assert_eq!(sem.available(), 0);
    /// ```
    pub fn acquire_lifo(&self, lifo: bool) {
        if self.try_acquire() {
            return;
        }
        // Woken by `release`, which handed us its permit.
        self.queue.wait_unless(lifo, || self.try_acquire());
    }

    /// Return a permit: hand it to the oldest waiter, or make it available.
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// let sem = Sema::new(0);
    /// sem.release();
    /// assert!(sem.try_acquire());
    /// ```
    pub fn release(&self) {
        self.release_many(1);
    }

    /// Return `n` permits under one lock: each of the oldest `n` waiters is handed one, the
    /// rest become available.
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// let sem = Sema::new(0);
    /// sem.release_many(3);
    /// assert_eq!(sem.available(), 3);
    /// ```
    pub fn release_many(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.queue.wake(n, |rest| {
            if rest > 0 {
                self.count.fetch_add(rest, Ordering::Release);
            }
        });
    }

    /// Number of permits available now (a snapshot).
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// assert_eq!(Sema::new(4).available(), 4);
    /// ```
    pub fn available(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Number of blocked waiters (a snapshot).
    ///
    /// ```
    /// use weft_runtime::sync::Sema;
    ///
    /// assert_eq!(Sema::new(0).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.queue.len()
    }
}
