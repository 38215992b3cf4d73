//! `Once`: run an initialiser exactly once, parking concurrent callers (Go: `sync.Once`, with
//! std's `Once` interface).
//!
//! One state byte and a [`WaitQueue`]:
//!
//! | state        | meaning                                  | next                          |
//! |--------------|------------------------------------------|-------------------------------|
//! | `INCOMPLETE` | nobody has run the closure to completion | a caller CASes it to `RUNNING` and runs its closure |
//! | `RUNNING`    | one caller runs its closure              | `COMPLETE` when it returns; `INCOMPLETE` if it panics |
//! | `COMPLETE`   | done, forever                            | —                             |
//!
//! Callers that find `RUNNING` wait in the queue (`wait_unless(state != RUNNING)`, checked
//! under the queue lock); the runner changes the state *then* wakes the whole queue, so none is
//! missed. Woken callers look again: after a panic one of them becomes the runner.
//!
//! **No poisoning**: a closure that panics leaves the `Once` incomplete, and the next caller
//! runs its own closure (as std's `OnceLock` does; std's `Once` would poison instead). Go marks
//! its `Once` done even when `f` panics; weft prefers retrying to handing out an uninitialised
//! value. `is_completed` turns true only after a closure returned normally.
//!
//! The state machine is compiled under `--cfg loom` (model `tests/loom_sync.rs::once_*`).

use crate::loom::sync::atomic::{AtomicU8, Ordering};

use super::wait_queue::WaitQueue;

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

/// Runs a closure exactly once; callers that arrive while it runs park until it is done.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use weft_runtime::sync::Once;
///
/// static INIT: Once = Once::new();
/// static RUNS: AtomicU32 = AtomicU32::new(0);
///
/// let hs: Vec<_> = (0..8)
///     .map(|_| weft_runtime::go!(|| INIT.call_once(|| {
///         RUNS.fetch_add(1, Ordering::Relaxed);
///     })))
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(RUNS.load(Ordering::Relaxed), 1);
/// ```
pub struct Once {
    state: AtomicU8,
    queue: WaitQueue,
}

impl Once {
    /// A `Once` that has not run. `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::Once;
    ///
    /// static O: Once = Once::new();
    /// assert!(!O.is_completed());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            queue: WaitQueue::with_reason(crate::wait_reason::WaitReason::Once),
        }
    }

    /// A `Once` that has not run.
    #[cfg(loom)]
    pub fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            queue: WaitQueue::with_reason(crate::wait_reason::WaitReason::Once),
        }
    }

    /// Run `f` if no call has completed yet; otherwise do nothing. If another caller is running
    /// its closure right now, park until it finishes (and, if it panicked, run `f` instead).
    /// When this returns, some closure has completed, and everything it wrote is visible.
    ///
    /// Calling `call_once` on the same `Once` from inside `f` deadlocks.
    ///
    /// ```
    /// use weft_runtime::sync::Once;
    ///
    /// let once = Once::new();
    /// let mut n = 0;
    /// once.call_once(|| n += 1);
    /// once.call_once(|| n += 1);
    /// assert_eq!(n, 1);
    /// ```
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call_slow(&mut || {
            if let Some(f) = f.take() {
                f();
            }
        });
    }

    /// Whether a closure has run to completion.
    ///
    /// ```
    /// use weft_runtime::sync::Once;
    ///
    /// let once = Once::new();
    /// assert!(!once.is_completed());
    /// once.call_once(|| ());
    /// assert!(once.is_completed());
    /// ```
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    #[cold]
    fn call_slow(&self, f: &mut dyn FnMut()) {
        loop {
            match self.state.compare_exchange(
                INCOMPLETE,
                RUNNING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // If `f` panics, hand the job to the next caller.
                    let reset = Finish {
                        once: self,
                        to: INCOMPLETE,
                    };
                    f();
                    std::mem::forget(reset);
                    Finish {
                        once: self,
                        to: COMPLETE,
                    }
                    .finish();
                    return;
                }
                Err(COMPLETE) => return,
                Err(_) => {
                    self.queue
                        .wait_unless(false, || self.state.load(Ordering::Acquire) != RUNNING);
                }
            }
        }
    }
}

/// Leaves `RUNNING` for `to` and wakes every waiter (on drop, so that a panic in the closure
/// also does it).
struct Finish<'a> {
    once: &'a Once,
    to: u8,
}

impl Finish<'_> {
    fn finish(self) {
        drop(self);
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        // An RMW rather than a store: other callers CAS this byte concurrently.
        self.once.state.swap(self.to, Ordering::AcqRel);
        self.once.queue.wake_all();
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Once")
            .field("completed", &self.is_completed())
            .finish_non_exhaustive()
    }
}
