//! `Mutex<T>`: a mutual-exclusion lock whose `lock` parks the G (Go: `sync.Mutex`).
//!
//! The lock word and the starvation-mode rule are in `raw_mutex.rs` ([`RawMutex`]); this file
//! adds the data and the RAII guard. Invariant: the data is accessed only through a
//! [`MutexGuard`], and a guard exists only while the raw lock is held by its creator.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use super::raw_mutex::RawMutex;

/// A mutual-exclusion lock for Gs and threads: `lock` parks the calling G (or blocks a plain
/// thread) until the lock is free, so the OS thread keeps running other Gs meanwhile.
///
/// * **Holding the guard across a park is fine.** Unlike `std::sync::MutexGuard` (see the user
///   rules in `docs/DESIGN.md` §7), a weft `MutexGuard` may be held across `weft::sleep`,
///   `yield_now`, socket I/O, a channel operation or another lock: the lock has no OS-thread
///   affinity, and a G waiting for it parks instead of blocking the thread its holder needs.
/// * **No poisoning.** As in Go and `parking_lot`, `lock` returns the guard directly. If a
///   holder panics, the guard's destructor unlocks and the next locker sees whatever state the
///   panicking code left behind; make updates that must be atomic with respect to panics
///   yourself.
/// * **Fairness**: Go's rule. Waiters queue FIFO; a woken waiter competes with running lockers
///   (fast), but a waiter that has waited more than 1 ms switches the mutex to *starvation
///   mode*, in which the lock is handed directly to the oldest waiter and newcomers queue
///   behind it. A G that re-locks in a loop cannot starve others. See `docs/SYNC.md`.
/// * **Cost**: uncontended `lock` + unlock is one CAS and one `fetch_sub`.
/// * Not reentrant: locking it again from the holder deadlocks (as in Go and std).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft_runtime::sync::Mutex;
///
/// let m = Arc::new(Mutex::new(0u32));
/// let hs: Vec<_> = (0..10)
///     .map(|_| {
///         let m = m.clone();
///         weft_runtime::go!(move || {
///             let mut g = m.lock();
///             let seen = *g;
///             weft_runtime::sleep(Duration::from_micros(100)); // parks with the lock held
///             *g = seen + 1;
///         })
///     })
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(*m.lock(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands `&mut T` to one holder at a time, possibly on another thread: T: Send.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above; sharing the Mutex shares only guarded access (std's bounds).
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The RAII guard of a locked [`Mutex`]: derefs to the data; dropping it unlocks.
///
/// Like std's it is not `Send` (it cannot be handed to another G or thread), but the G holding
/// it may park, and resume on another OS thread, while holding it: that is fine, the lock does
/// not belong to a thread.
///
/// ```
/// use weft_runtime::sync::Mutex;
///
/// let m = Mutex::new(vec![1]);
/// {
///     let mut g = m.lock();
///     g.push(2);
/// } // unlocked here
/// assert_eq!(*m.lock(), [1, 2]);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard gives only `&T` (std's bound).
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`. `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::Mutex;
    ///
    /// static COUNT: Mutex<u64> = Mutex::new(0);
    /// *COUNT.lock() += 1;
    /// assert_eq!(*COUNT.lock(), 1);
    /// ```
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consume the mutex and return the data (no locking needed: nobody else can hold it).
    ///
    /// ```
    /// use weft_runtime::sync::Mutex;
    ///
    /// let m = Mutex::new(String::from("x"));
    /// assert_eq!(m.into_inner(), "x");
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Lock, parking the calling G (or blocking a plain thread) until the lock is free, and
    /// return the guard. Never fails: there is no poisoning.
    ///
    /// ```
    /// use weft_runtime::sync::Mutex;
    ///
    /// let m = Mutex::new(1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Lock if that needs no waiting; `None` if the mutex is held (or being handed to a
    /// waiter that starved).
    ///
    /// ```
    /// use weft_runtime::sync::Mutex;
    ///
    /// let m = Mutex::new(());
    /// let g = m.try_lock().expect("free");
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert!(m.try_lock().is_some());
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.try_lock().then(|| MutexGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether the mutex is locked right now (a snapshot, for diagnostics).
    ///
    /// ```
    /// use weft_runtime::sync::Mutex;
    ///
    /// let m = Mutex::new(());
    /// let g = m.lock();
    /// assert!(m.is_locked());
    /// drop(g);
    /// assert!(!m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// A mutable reference to the data, through `&mut self` (no locking needed).
    ///
    /// ```
    /// use weft_runtime::sync::Mutex;
    ///
    /// let mut m = Mutex::new(1);
    /// *m.get_mut() = 5;
    /// assert_eq!(*m.lock(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks (for `Condvar`, which unlocks and relocks it).
    pub(super) fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.lock
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its creator holds the lock: no other access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for Mutex<T> {
    /// An unlocked mutex holding `T::default()`.
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    /// An unlocked mutex holding `value`.
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}
