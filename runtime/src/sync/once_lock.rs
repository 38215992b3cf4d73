//! `OnceLock<T>`: a cell written once, whose concurrent initialisers park (std's `OnceLock`
//! interface on weft's [`Once`]).
//!
//! Invariant: the value slot is initialised if and only if `once` is completed; it is written
//! only by the one caller that runs the `Once`'s closure, and read only after `is_completed`
//! (an Acquire load that pairs with the completing store).

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use super::once::Once;

/// A cell that is written at most once; `get_or_init` from many Gs runs one initialiser and
/// parks the others until it is done.
///
/// No poisoning: if the initialiser panics, the cell stays empty and the next caller runs its
/// own initialiser.
///
/// ```
/// use weft_runtime::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
///
/// let hs: Vec<_> = (0..8)
///     .map(|i| weft_runtime::go!(move || CONFIG.get_or_init(|| format!("by {i}")).len()))
///     .collect();
/// for h in hs {
///     assert_eq!(h.join().unwrap(), 4);
/// }
/// assert!(CONFIG.get().unwrap().starts_with("by "));
/// ```
pub struct OnceLock<T> {
    once: Once,
    value: UnsafeCell<MaybeUninit<T>>,
    _owns: PhantomData<T>,
}

// SAFETY: the value is shared (`&T` from `get`, so T: Sync) and may be written by one thread and
// dropped by another (T: Send); std's bounds.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: moving the cell moves the value (T: Send).
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// An empty cell. `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// static CELL: OnceLock<u32> = OnceLock::new();
    /// assert!(CELL.get().is_none());
    /// ```
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            _owns: PhantomData,
        }
    }

    /// The value, if the cell has been written. Never blocks.
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// let c = OnceLock::new();
    /// assert_eq!(c.get(), None);
    /// c.set(3).unwrap();
    /// assert_eq!(c.get(), Some(&3));
    /// ```
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: completed ⇒ initialised (module invariant), and never written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, mutably, if the cell has been written.
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// let mut c = OnceLock::from(1);
    /// *c.get_mut().unwrap() += 1;
    /// assert_eq!(c.get(), Some(&2));
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.once.is_completed() {
            // SAFETY: completed ⇒ initialised; `&mut self` excludes every other access.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Write `value` if the cell is empty; otherwise give it back in `Err`. If another G is
    /// initialising the cell right now, parks until it is done.
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// let c = OnceLock::new();
    /// assert_eq!(c.set(1), Ok(()));
    /// assert_eq!(c.set(2), Err(2));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("initialiser runs once"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, initialising it with `f` if the cell is empty. Exactly one concurrent caller
    /// runs its `f`; the others park until the value is there. Calling it on the same cell from
    /// inside `f` deadlocks.
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// let c = OnceLock::new();
    /// assert_eq!(*c.get_or_init(|| 5), 5);
    /// assert_eq!(*c.get_or_init(|| 6), 5);
    /// ```
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        let slot = self.value.get();
        self.once.call_once(|| {
            let v = f();
            // SAFETY: only the caller running the Once's closure writes, once; nobody reads
            // before the Once completes.
            unsafe { (*slot).write(v) };
        });
        self.get()
            .expect("weft: OnceLock completed without a value")
    }

    /// Consume the cell and return its value, if written.
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// let c = OnceLock::new();
    /// c.set(String::from("v")).unwrap();
    /// assert_eq!(c.into_inner().as_deref(), Some("v"));
    /// ```
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Take the value out, leaving the cell empty (`&mut self`: nobody else can be using it).
    ///
    /// ```
    /// use weft_runtime::sync::OnceLock;
    ///
    /// let mut c = OnceLock::from(1);
    /// assert_eq!(c.take(), Some(1));
    /// assert_eq!(c.get(), None);
    /// ```
    pub fn take(&mut self) -> Option<T> {
        if !self.once.is_completed() {
            return None;
        }
        self.once = Once::new();
        // SAFETY: it was completed, hence initialised; resetting `once` first makes the slot
        // count as uninitialised again, so the value is moved out exactly once.
        Some(unsafe { self.value.get_mut().assume_init_read() })
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.once.is_completed() {
            // SAFETY: completed ⇒ initialised; dropped once, here.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T> Default for OnceLock<T> {
    /// An empty cell.
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    /// A cell already holding `value`.
    fn from(value: T) -> OnceLock<T> {
        let c = OnceLock::new();
        let _ = c.set(value);
        c
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
