//! `Semaphore`: the user-facing counting semaphore (Go: `golang.org/x/sync/semaphore`, or a
//! buffered channel used as one), a thin RAII layer over the runtime's [`Sema`].
//!
//! Everything about waiting — FIFO order, direct hand-off of a released permit to the oldest
//! waiter, no barging while anyone waits — is `Sema`'s (see `sema.rs`). This file only ties a
//! permit's release to a guard's drop.

use std::fmt;

use super::sema::Sema;

/// A counting semaphore: at most `permits` holders at once. `acquire` parks the G (or blocks a
/// plain thread) until a permit is free; waiters are served in FIFO order.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weft_runtime::sync::Semaphore;
///
/// let sem = Arc::new(Semaphore::new(2));
/// let inside = Arc::new(AtomicUsize::new(0));
/// let hs: Vec<_> = (0..10)
///     .map(|_| {
///         let (sem, inside) = (sem.clone(), inside.clone());
///         weft_runtime::go!(move || {
///             let _permit = sem.acquire();
///             assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
///             weft_runtime::yield_now();
///             inside.fetch_sub(1, Ordering::SeqCst);
///         })
///     })
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// ```
pub struct Semaphore {
    sema: Sema,
}

/// A permit of a [`Semaphore`]: released when dropped (or kept forever with
/// [`forget`](SemaphorePermit::forget)). It may be sent to another G.
///
/// ```
/// use weft_runtime::sync::Semaphore;
///
/// let sem = Semaphore::new(1);
/// {
///     let _p = sem.acquire();
///     assert_eq!(sem.available_permits(), 0);
/// }
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` permits. `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// static LIMIT: Semaphore = Semaphore::new(4);
    /// let _p = LIMIT.acquire();
    /// assert_eq!(LIMIT.available_permits(), 3);
    /// ```
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            sema: Sema::new(permits),
        }
    }

    /// Take a permit, parking until one is free.
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// let p = sem.acquire();
    /// drop(p);
    /// ```
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.sema.acquire();
        SemaphorePermit { sem: self }
    }

    /// Take a permit if one is free now. Never takes one ahead of a parked waiter.
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// let p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(p);
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.sema
            .try_acquire()
            .then_some(SemaphorePermit { sem: self })
    }

    /// Add one permit (hand it to the oldest waiter if there is one). Use it to return a permit
    /// that was [`forget`](SemaphorePermit::forget)ten, or to grow the semaphore.
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(0);
    /// sem.release();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn release(&self) {
        self.sema.release();
    }

    /// Add `n` permits at once.
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(0);
    /// sem.add_permits(3);
    /// assert_eq!(sem.available_permits(), 3);
    /// ```
    pub fn add_permits(&self, n: usize) {
        self.sema.release_many(n);
    }

    /// Permits free right now (a snapshot).
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// assert_eq!(Semaphore::new(5).available_permits(), 5);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.sema.available()
    }
}

impl SemaphorePermit<'_> {
    /// Keep the permit: it is not released on drop (the semaphore shrinks by one until
    /// [`Semaphore::release`] is called).
    ///
    /// ```
    /// use weft_runtime::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// sem.acquire().forget();
    /// assert_eq!(sem.available_permits(), 0);
    /// sem.release();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.sema.available())
            .field("waiters", &self.sema.waiters())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
