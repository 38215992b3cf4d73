//! `RwLock<T>`: a reader-writer lock whose `read`/`write` park the G (Go: `sync.RWMutex`).
//!
//! The counters and the writer-preference rule are in `raw_rwlock.rs` ([`RawRwLock`]); this
//! file adds the data and the RAII guards. Invariant: the data is read only through a read guard
//! (while the raw lock is read-locked by its creator) and written only through the write guard.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use super::raw_rwlock::RawRwLock;

/// A reader-writer lock for Gs and threads: any number of readers, or one writer. Blocking
/// calls park the G (or block a plain thread).
///
/// * **Writer preference**: once a writer waits, new readers queue behind it, so readers cannot
///   starve a writer; when the writer unlocks, every reader that queued during its turn gets in
///   before the next writer, so writers cannot starve readers either (Go's `RWMutex`).
///   Consequently a G must not take a read lock it already holds (if a writer queued in between,
///   that deadlocks, as in Go).
/// * **No poisoning**, and guards may be held across a park (see [`Mutex`](super::Mutex)).
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::RwLock;
///
/// let cfg = Arc::new(RwLock::new(String::from("v1")));
/// let c2 = cfg.clone();
/// weft_runtime::go!(move || c2.write().push_str("+patch")).join().unwrap();
/// let readers: Vec<_> = (0..4)
///     .map(|_| {
///         let c = cfg.clone();
///         weft_runtime::go!(move || c.read().len())
///     })
///     .collect();
/// for r in readers {
///     assert_eq!(r.join().unwrap(), 8);
/// }
/// ```
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: the writer gets `&mut T`, possibly on another thread: T: Send (std's bounds).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers on several threads share `&T` (T: Sync); a writer gets `&mut T` (T: Send).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// The RAII guard of a read lock: derefs to `&T`; dropping it releases the read lock. Not
/// `Send`, but may be held across a park.
///
/// ```
/// use weft_runtime::sync::RwLock;
///
/// let l = RwLock::new(3);
/// let (a, b) = (l.read(), l.read());
/// assert_eq!(*a + *b, 6);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared read guard gives only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

/// The RAII guard of the write lock: derefs to `&mut T`; dropping it releases the lock. Not
/// `Send`, but may be held across a park.
///
/// ```
/// use weft_runtime::sync::RwLock;
///
/// let l = RwLock::new(vec![1]);
/// l.write().push(2);
/// assert_eq!(*l.read(), [1, 2]);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared write guard gives only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`. `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// static NAMES: RwLock<Vec<&str>> = RwLock::new(Vec::new());
    /// NAMES.write().push("a");
    /// assert_eq!(NAMES.read().len(), 1);
    /// ```
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consume the lock and return the data.
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// assert_eq!(RwLock::new(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Take a read lock, parking while a writer holds the lock or waits for it.
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// assert_eq!(*l.read(), 1);
    /// ```
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.raw.read();
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Take a read lock if no writer holds the lock or waits for it.
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// assert!(l.try_read().is_some());
    /// ```
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.raw.try_read().then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Take the write lock, parking until no reader or writer holds it.
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// *l.write() += 1;
    /// assert_eq!(*l.read(), 2);
    /// ```
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.raw.write();
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Take the write lock if nobody holds it or waits for it.
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let r = l.read();
    /// assert!(l.try_write().is_none());
    /// drop(r);
    /// assert!(l.try_write().is_some());
    /// ```
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.raw.try_write().then(|| RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether a writer holds the lock or waits for it (a snapshot, for diagnostics).
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// let l = RwLock::new(());
    /// let w = l.write();
    /// assert!(l.is_write_locked());
    /// drop(w);
    /// assert!(!l.is_write_locked());
    /// ```
    pub fn is_write_locked(&self) -> bool {
        self.raw.is_write_locked()
    }

    /// A mutable reference to the data, through `&mut self` (no locking needed).
    ///
    /// ```
    /// use weft_runtime::sync::RwLock;
    ///
    /// let mut l = RwLock::new(0);
    /// *l.get_mut() = 3;
    /// assert_eq!(*l.read(), 3);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while its creator holds a read lock: no writer.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.read_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write guard exists only while its creator holds the write lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw.write_unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    /// An unlocked lock holding `T::default()`.
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    /// An unlocked lock holding `value`.
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}
