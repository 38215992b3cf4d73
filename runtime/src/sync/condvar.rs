//! `Condvar`: a condition variable for weft's [`Mutex`](super::Mutex) (Go: `sync.Cond` and its
//! runtime `notifyList`).
//!
//! A `Condvar` is one [`WaitQueue`] used two-phase (see `wait_queue.rs`): `wait` links a node
//! while the caller still holds the mutex, then unlocks, then blocks. A notifier that runs after
//! the unlock therefore always finds the waiter (Go gets the same guarantee from its notifyList
//! tickets): no wakeup is lost, and none is stolen by a waiter that arrives later. Notifiers
//! need not hold the mutex.
//!
//! # Timeouts
//!
//! * **A G** arms a runtime timer (`time/timers.rs`) in its park commit, before it publishes
//!   itself. The timer's argument is the node's address and its generation the node's ticket,
//!   so the node must outlive the wait: timed waits of Gs take their node from a pool of nodes
//!   that are never freed (as the netpoller's pollDescs). The timer's fire function claims the
//!   wait with `TIMED_OUT` if nothing else claimed it (a stale entry finds another ticket and
//!   does nothing; `live` lets the heap drop such entries early).
//! * **A plain thread** parks with `std::thread::park_timeout` and claims its own wait with
//!   `TIMED_OUT` at the deadline; its node stays on its stack.
//!
//! Either way exactly one of {a notifier, the timeout} claims the wait (a CAS on the node's wake
//! word), so the waiter is woken exactly once. A waiter that timed out unlinks its node itself;
//! a notification that found it timed out is passed on to the next waiter. There are no spurious
//! wakeups, but callers should still re-check their condition in a loop (or use
//! [`Condvar::wait_while`]): another G may have changed it before the woken one relocked.

use std::time::{Duration, Instant};

use super::mutex::MutexGuard;
use super::wait_queue::{wake_waiter, Claim, Node, WaitQueue, TIMED_OUT};
use crate::sched::context;
use crate::time::timers::{self, TimerKind};
use crate::wait_reason::WaitReason;

/// Whether a timed wait on a [`Condvar`] ended because its time ran out.
///
/// ```
/// use std::time::Duration;
/// use weft_runtime::sync::{Condvar, Mutex};
///
/// let (m, cv) = (Mutex::new(()), Condvar::new());
/// let (_g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(1));
/// assert!(r.timed_out());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout elapsed (no notification reached it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_runtime::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(()), Condvar::new());
    /// let (_g, r) = cv.wait_timeout(m.lock(), Duration::ZERO);
    /// assert!(r.timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable: Gs (and threads) wait on it with a locked [`Mutex`](super::Mutex)
/// until another notifies them. Waiting parks the G; waiters are woken in FIFO order.
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let p2 = pair.clone();
/// let h = weft_runtime::go!(move || {
///     let (m, cv) = &*p2;
///     let _ready = cv.wait_while(m.lock(), |ready| !*ready);
/// });
/// let (m, cv) = &*pair;
/// *m.lock() = true;
/// cv.notify_one();
/// h.join().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct Condvar {
    queue: WaitQueue,
}

impl Condvar {
    /// A condition variable with no waiters. `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::Condvar;
    ///
    /// static CV: Condvar = Condvar::new();
    /// CV.notify_all(); // nobody waits: does nothing
    /// ```
    pub const fn new() -> Condvar {
        Condvar {
            queue: WaitQueue::new(),
        }
    }

    /// Unlock `guard`'s mutex, park until notified, then lock it again and return the guard.
    /// There are no spurious wakeups, but the condition may have changed again by the time the
    /// mutex is relocked: check it in a loop, or use [`wait_while`](Condvar::wait_while).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_runtime::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    /// let p2 = pair.clone();
    /// weft_runtime::go!(move || {
    ///     p2.0.lock().push(1);
    ///     p2.1.notify_one();
    /// });
    /// let mut items = pair.0.lock();
    /// while items.is_empty() {
    ///     items = pair.1.wait(items);
    /// }
    /// assert_eq!(*items, [1]);
    /// ```
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_inner(guard, None).0
    }

    /// Wait while `condition` returns true: checks it first, and again after every wakeup,
    /// with the mutex held. Returns the guard once it returns false.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_runtime::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    /// let p2 = pair.clone();
    /// weft_runtime::go!(move || {
    ///     for _ in 0..3 {
    ///         *p2.0.lock() += 1;
    ///         p2.1.notify_all();
    ///     }
    /// });
    /// let n = pair.1.wait_while(pair.0.lock(), |n| *n < 3);
    /// assert_eq!(*n, 3);
    /// ```
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// [`wait`](Condvar::wait) for at most `dur`. The result says whether the wait ended by
    /// timing out rather than by a notification. A G waits on a runtime timer (the OS thread
    /// keeps running other Gs); a plain thread parks with a timeout.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weft_runtime::sync::{Condvar, Mutex};
    ///
    /// weft_runtime::run(|| {
    ///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
    ///     // Nobody notifies: times out.
    ///     let (g, r) = pair.1.wait_timeout(pair.0.lock(), Duration::from_millis(2));
    ///     assert!(r.timed_out());
    ///     drop(g);
    ///     // Notified (the notifier can only lock once the waiter has released the mutex).
    ///     let p2 = pair.clone();
    ///     let g = pair.0.lock();
    ///     weft_runtime::go!(move || {
    ///         *p2.0.lock() = true;
    ///         p2.1.notify_one();
    ///     });
    ///     let (g, r) = pair.1.wait_timeout(g, Duration::from_secs(60));
    ///     assert!(!r.timed_out() && *g);
    /// });
    /// ```
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let deadline = Instant::now().checked_add(dur);
        let (guard, timed_out) = self.wait_inner(guard, Some(deadline));
        (guard, WaitTimeoutResult(timed_out))
    }

    /// [`wait_while`](Condvar::wait_while) for at most `dur` in all. Returns the guard and
    /// whether the time ran out with `condition` still true.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_runtime::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(0), Condvar::new());
    /// let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(1), |n| *n == 0);
    /// assert!(r.timed_out() && *g == 0);
    /// ```
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult)
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = Instant::now().checked_add(dur);
        while condition(&mut *guard) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return (guard, WaitTimeoutResult(true));
            }
            guard = self.wait_inner(guard, Some(deadline)).0;
        }
        (guard, WaitTimeoutResult(false))
    }

    /// Wake the oldest waiter, if any. Need not be called with the mutex held.
    ///
    /// ```
    /// use weft_runtime::sync::Condvar;
    ///
    /// Condvar::new().notify_one(); // nobody waits: the notification is not stored
    /// ```
    pub fn notify_one(&self) {
        self.queue.wake_one();
    }

    /// Wake every waiter. Need not be called with the mutex held.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_runtime::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let hs: Vec<_> = (0..3)
    ///     .map(|_| {
    ///         let p = pair.clone();
    ///         weft_runtime::go!(move || drop(p.1.wait_while(p.0.lock(), |go| !*go)))
    ///     })
    ///     .collect();
    /// *pair.0.lock() = true;
    /// pair.1.notify_all();
    /// for h in hs {
    ///     h.join().unwrap();
    /// }
    /// ```
    pub fn notify_all(&self) {
        self.queue.wake_all();
    }

    /// Wait once. `deadline`: `None` = untimed; `Some(None)` = a deadline too far to represent
    /// (waits untimed, may only end notified). Returns the relocked guard and whether the wait
    /// timed out.
    fn wait_inner<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Option<Instant>>,
    ) -> (MutexGuard<'a, T>, bool) {
        let mutex = MutexGuard::mutex(&guard);
        let timed_out = match deadline.flatten() {
            None => {
                let node = Node::new();
                node.begin();
                // SAFETY: `node` lives in this frame until `block` returns, which it does only
                // once the wait was claimed; untimed, only a waker claims it, and a waker
                // unlinks the node before claiming it.
                unsafe { self.queue.enqueue(&node) };
                drop(guard);
                node.block(WaitReason::Condvar);
                false
            }
            Some(deadline) if context::current_g().is_some() => {
                let node = pool_take();
                let ticket = node.begin();
                // SAFETY: pooled nodes are never freed; we do not reuse this one until it is
                // unlinked (by a waker, or by `remove` below after a timeout).
                unsafe { self.queue.enqueue(node) };
                drop(guard);
                let when = crate::time::to_nanos(deadline);
                let arg = node as *const Node as usize;
                let state = node.block_with(WaitReason::Condvar, move || {
                    timers::add_timer(when, arg, ticket as u64, &CONDVAR_TIMEOUT);
                });
                let timed_out = state == TIMED_OUT;
                if timed_out {
                    self.queue.remove(node);
                }
                pool_give(node);
                timed_out
            }
            Some(deadline) => {
                let node = Node::new();
                node.begin();
                // SAFETY: `node` lives in this frame until it is unlinked: `block_thread_until`
                // returns WOKEN only after a waker (which unlinked it) is done with it, and
                // after TIMED_OUT we unlink it ourselves before returning.
                unsafe { self.queue.enqueue(&node) };
                drop(guard);
                let timed_out = node.block_thread_until(deadline) == TIMED_OUT;
                if timed_out {
                    self.queue.remove(&node);
                }
                timed_out
            }
        };
        (mutex.lock(), timed_out)
    }
}

/// The timer of a G's timed wait: `arg` is its pooled node, `gen` the wait's ticket.
static CONDVAR_TIMEOUT: TimerKind = TimerKind {
    name: "condvar wait_timeout",
    fire: |arg, gen, _now| {
        // SAFETY: `arg` is a pooled node, which is never freed; a stale entry (the wait ended,
        // or the node serves a later wait) fails the ticket check in `time_out`.
        let node = unsafe { &*(arg as *const Node) };
        if let Claim::Blocked(w) = node.time_out(gen as usize) {
            wake_waiter(w);
        }
    },
    live: |arg, gen| {
        // SAFETY: as in `fire`.
        let node = unsafe { &*(arg as *const Node) };
        node.is_pending(gen as usize)
    },
    discard: None,
};

/// Nodes for timed waits of Gs: leaked on first use, recycled, never freed (module doc).
static NODE_POOL: std::sync::Mutex<Vec<&'static Node>> = std::sync::Mutex::new(Vec::new());

fn pool_take() -> &'static Node {
    let reused = NODE_POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    reused.unwrap_or_else(|| Box::leak(Box::new(Node::new())))
}

fn pool_give(node: &'static Node) {
    NODE_POOL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(node);
}
