//! `WaitGroup`: wait for a group of Gs to finish (crossbeam-utils' `WaitGroup` shape, plus Go's
//! `sync.WaitGroup` `add`/`done`/`wait` beside it).
//!
//! All handles (clones) share one 64-bit state word and two [`WaitQueue`]s:
//!
//! | bits   | counts                                                         |
//! |--------|----------------------------------------------------------------|
//! | 0..32  | live handles (`new` makes one, `clone` adds one, `drop` removes one) |
//! | 32..64 | Go-style tasks: `add(n)` adds n, `done()` removes one         |
//!
//! * [`WaitGroup::wait`] (crossbeam) drops the caller's handle and waits for the **whole word**
//!   to reach 0: every other handle dropped and every `add` matched by a `done`.
//! * [`WaitGroup::wait_all`] (Go's `Wait`) waits for the **task count** to reach 0; handles do
//!   not matter.
//!
//! Waiters check their condition under the queue's lock (`wait_unless`); whoever brings a count
//! to 0 does so *before* taking that lock to wake the queue, so no waiter is missed. A woken
//! waiter returns without looking again (as Go's): a group that is reused must not start new
//! work (`add`, `clone`) until every previous wait has returned, as Go requires.

use std::fmt;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use super::wait_queue::WaitQueue;
use crate::wait_reason::WaitReason;

const HANDLE: u64 = 1;
const HANDLE_MASK: u64 = (1 << 32) - 1;
const TASK_SHIFT: u32 = 32;
const TASK: u64 = 1 << TASK_SHIFT;

struct Inner {
    state: AtomicU64,
    /// Waiters for `state == 0` (`wait`).
    all_gone: WaitQueue,
    /// Waiters for `state >> 32 == 0` (`wait_all`).
    tasks_done: WaitQueue,
}

/// Waits for a group of Gs (or threads) to finish. Parks the waiting G.
///
/// crossbeam's shape: every worker holds a clone; dropping it marks that worker done; `wait`
/// consumes the waiter's own handle and returns once all the others are gone.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weft_runtime::sync::WaitGroup;
///
/// let wg = WaitGroup::new();
/// let done = Arc::new(AtomicUsize::new(0));
/// for _ in 0..100 {
///     let (wg, done) = (wg.clone(), done.clone());
///     weft_runtime::go!(move || {
///         done.fetch_add(1, Ordering::Relaxed);
///         drop(wg);
///     });
/// }
/// wg.wait();
/// assert_eq!(done.load(Ordering::Relaxed), 100);
/// ```
///
/// Go's shape, on the same type: `add(n)` before starting work, `done()` when a piece ends,
/// `wait_all()` (which does not consume the handle) until every `add` is matched.
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::WaitGroup;
///
/// let wg = Arc::new(WaitGroup::new());
/// for _ in 0..10 {
///     wg.add(1);
///     let wg = wg.clone();
///     weft_runtime::go!(move || wg.done());
/// }
/// wg.wait_all();
/// ```
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl WaitGroup {
    /// A group with one handle (this one) and no tasks.
    ///
    /// ```
    /// use weft_runtime::sync::WaitGroup;
    ///
    /// WaitGroup::new().wait(); // nobody else: returns at once
    /// ```
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                state: AtomicU64::new(HANDLE),
                all_gone: WaitQueue::with_reason(WaitReason::WaitGroup),
                tasks_done: WaitQueue::with_reason(WaitReason::WaitGroup),
            }),
        }
    }

    /// Drop this handle and park until every other handle is dropped and every `add` has been
    /// matched by `done`.
    ///
    /// ```
    /// use weft_runtime::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// let w2 = wg.clone();
    /// weft_runtime::go!(move || drop(w2));
    /// wg.wait();
    /// ```
    pub fn wait(self) {
        let inner = self.inner.clone();
        drop(self);
        inner
            .all_gone
            .wait_unless(false, || inner.state.load(Ordering::Acquire) == 0);
    }

    /// Add `n` tasks (Go: `Add(n)`). Call it before starting the work the tasks stand for.
    ///
    /// # Panics
    /// If the task count would exceed `u32::MAX`.
    ///
    /// ```
    /// use weft_runtime::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// wg.add(2);
    /// wg.done();
    /// wg.done();
    /// wg.wait_all();
    /// ```
    pub fn add(&self, n: u32) {
        let old = self
            .inner
            .state
            .fetch_add(u64::from(n) << TASK_SHIFT, Ordering::Relaxed);
        if (old >> TASK_SHIFT) + u64::from(n) > u64::from(u32::MAX) {
            panic!("weft: WaitGroup task count overflow");
        }
    }

    /// Mark one task done (Go: `Done`). Wakes the waiters when it was the last.
    ///
    /// # Panics
    /// If there is no task to mark done (more `done` than `add`, Go's "negative counter").
    ///
    /// ```
    /// use weft_runtime::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// wg.wait_all();
    /// ```
    pub fn done(&self) {
        let inner = &*self.inner;
        let mut old = inner.state.load(Ordering::Relaxed);
        loop {
            assert!(
                old >> TASK_SHIFT != 0,
                "weft: WaitGroup::done called more often than add"
            );
            match inner.state.compare_exchange_weak(
                old,
                old - TASK,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        let new = old - TASK;
        if new >> TASK_SHIFT == 0 {
            inner.tasks_done.wake_all();
            if new == 0 {
                inner.all_gone.wake_all();
            }
        }
    }

    /// Park until every `add` has been matched by `done` (Go: `Wait`); handles do not count.
    /// Does not consume the handle.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_runtime::sync::WaitGroup;
    ///
    /// let wg = Arc::new(WaitGroup::new());
    /// wg.add(1);
    /// let w2 = wg.clone();
    /// weft_runtime::go!(move || w2.done());
    /// wg.wait_all();
    /// ```
    pub fn wait_all(&self) {
        let inner = &*self.inner;
        inner.tasks_done.wait_unless(false, || {
            inner.state.load(Ordering::Acquire) >> TASK_SHIFT == 0
        });
    }

    /// Outstanding tasks (`add`s not yet matched by `done`), a snapshot.
    ///
    /// ```
    /// use weft_runtime::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// wg.add(3);
    /// assert_eq!(wg.tasks(), 3);
    /// # for _ in 0..3 { wg.done(); }
    /// ```
    pub fn tasks(&self) -> u32 {
        (self.inner.state.load(Ordering::Relaxed) >> TASK_SHIFT) as u32
    }
}

impl Default for WaitGroup {
    /// Same as [`WaitGroup::new`].
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl Clone for WaitGroup {
    /// Another handle: the group's `wait` now also waits for this one to be dropped.
    fn clone(&self) -> WaitGroup {
        let old = self.inner.state.fetch_add(HANDLE, Ordering::Relaxed);
        if old & HANDLE_MASK == HANDLE_MASK {
            panic!("weft: too many WaitGroup handles");
        }
        WaitGroup {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for WaitGroup {
    /// Marks this handle's share done; wakes `wait`ers when it was the last thing they waited
    /// for.
    fn drop(&mut self) {
        let new = self.inner.state.fetch_sub(HANDLE, Ordering::AcqRel) - HANDLE;
        if new == 0 {
            self.inner.all_gone.wake_all();
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.state.load(Ordering::Relaxed);
        f.debug_struct("WaitGroup")
            .field("handles", &(s & HANDLE_MASK))
            .field("tasks", &(s >> TASK_SHIFT))
            .finish()
    }
}
