//! `Sema`: a counting semaphore with a FIFO wait queue that parks Gs (Go:
//! `runtime_Semacquire`/`runtime_Semrelease` in `sema.go`).
//!
//! # Protocol
//!
//! * `count` holds the available permits; `acquire` takes one with a CAS when it can (no lock).
//! * Otherwise the caller blocks (`sched/waiter.rs`: parks the G, or blocks a plain thread). Its
//!   commit takes the queue lock, tries the count once more, and only then enqueues itself, so a
//!   `release` that raced with it is never missed: `release` also decides under the lock.
//! * `release` hands its permit **directly** to the oldest waiter if there is one (the count is
//!   not touched), else adds it to `count`. Direct hand-off gives FIFO order and makes a woken
//!   waiter the owner of its permit, so it never has to retry (no thundering herd, no barging).
//!
//! The queue lock is a std `Mutex` held for a few instructions, on the M's stack or a plain
//! thread, never across a park: the commit enqueues and unlocks, and the unlock is the last
//! thing it does (after it, a `release` may wake the G on another M).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sched::waiter;

/// A counting semaphore whose `acquire` parks the calling G (or blocks a plain thread) until a
/// permit is available. Waiters are served in FIFO order, each handed its permit directly.
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
#[derive(Debug, Default)]
pub struct Sema {
    count: AtomicUsize,
    waiters: Mutex<VecDeque<usize>>,
}

impl Sema {
    /// A semaphore with `permits` permits available.
    pub const fn new(permits: usize) -> Sema {
        Sema {
            count: AtomicUsize::new(permits),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// Take a permit if one is available, without blocking.
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
    pub fn acquire(&self) {
        if self.try_acquire() {
            return;
        }
        waiter::block(|w| {
            let mut q = self.lock();
            if self.try_acquire() {
                return false;
            }
            q.push_back(w);
            drop(q); // publishes w; nothing of `self` is touched after this
            true
        });
        // Woken by `release`, which handed us its permit.
    }

    /// Return a permit: hand it to the oldest waiter, or make it available.
    pub fn release(&self) {
        let mut q = self.lock();
        match q.pop_front() {
            Some(w) => {
                drop(q);
                waiter::wake(w);
            }
            None => {
                self.count.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Number of blocked waiters (a snapshot).
    pub fn waiters(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<usize>> {
        // Nothing panics while holding this lock; recover the guard rather than panic.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}
