//! Synchronisation that parks Gs instead of blocking OS threads (Go: `sema.go`, package `sync`).
//!
//! Every type here works from a G, where a blocking call **parks the G** (its M runs other Gs
//! meanwhile), and from a plain OS thread, where it **blocks the thread**; Gs and threads may
//! wait on the same object. They replace std's `Mutex`, `RwLock`, `Condvar`, `Barrier`, `Once`
//! and `OnceLock` in code that runs in Gs (`docs/DESIGN.md` §7, rule 4): their guards may be held
//! across any call that parks. See `docs/SYNC.md` for the semantics table and the fairness rules.
//!
//! | type | Go | built on |
//! |---|---|---|
//! | [`Mutex`] / [`MutexGuard`] | `sync.Mutex` (starvation mode) | `raw_mutex.rs` state word + [`Sema`] |
//! | [`RwLock`] | `sync.RWMutex` (writer preference) | `raw_rwlock.rs`: a `RawMutex` + two [`Sema`]s |
//! | [`Condvar`] | `sync.Cond` (`notifyList`) | a `WaitQueue`, two-phase; runtime timers for timeouts |
//! | [`WaitGroup`] | `sync.WaitGroup` | a state word + two `WaitQueue`s |
//! | [`Semaphore`] | `x/sync/semaphore` | [`Sema`] |
//! | [`Once`], [`OnceLock`] | `sync.Once` | a state byte + a `WaitQueue` |
//! | [`Barrier`] | — | [`Mutex`] + [`Condvar`] |
//! | [`Sema`] | `runtime_Semacquire`/`Semrelease` | a count + a `WaitQueue` |
//!
//! # One primitive underneath
//!
//! Everything blocks through **one** primitive, the FIFO wait queue of `wait_queue.rs`
//! (Go's `sudog` lists): an intrusive list of waiter nodes under a leaf lock, each node a
//! parked G or a blocked thread (`sched/waiter.rs`) plus a one-shot wake word that a waker or
//! a timeout claims by CAS, so a waiter is woken exactly once. [`Sema`] is a count plus such a
//! queue with direct hand-off; `Mutex` and `RwLock` are Go's algorithms over `Sema`; `Condvar`,
//! `Once` and `WaitGroup` use queues directly. Nothing here blocks an OS thread that runs Gs,
//! and no queue lock is held across a park.
//!
//! # Rules that hold for every type
//!
//! * **No poisoning** (as Go and `parking_lot`): a panic while holding a guard unlocks it, and
//!   `lock`/`read`/`write` return guards directly. `Once`/`OnceLock` stay uninitialised after a
//!   panicking initialiser, and the next caller runs its own.
//! * **FIFO waiters, no barging past a starving waiter**: see [`Mutex`] for the mutex rule
//!   (Go's 1 ms starvation mode), [`RwLock`] for writer preference.
//! * **No spurious wakeups**, and unlocking / notifying / releasing never parks.
//! * Guards are not `Send` (as std's), but holding one across a park is fine: the G may resume
//!   on another OS thread, and these locks do not belong to threads.
//!
//! From plain threads no runtime is needed: locking, waiting (with or without a timeout) and
//! waking never start the scheduler.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use weft_runtime::sync::{Condvar, Mutex};
//!
//! let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
//! let ts: Vec<_> = (0..4)
//!     .map(|_| {
//!         let p = pair.clone();
//!         std::thread::spawn(move || {
//!             let mut g = p.0.lock();
//!             *g += 1;
//!             let (g, _) = p.1.wait_timeout(g, Duration::from_millis(1));
//!             p.1.notify_all();
//!             drop(g);
//!         })
//!     })
//!     .collect();
//! for t in ts {
//!     t.join().unwrap();
//! }
//! assert_eq!(*pair.0.lock(), 4);
//! assert!(!weft_runtime::is_started());
//! ```
//!
//! The state machines (`wait_queue.rs`, `sema.rs`, `raw_mutex.rs`, `raw_rwlock.rs`,
//! `once.rs`) take their atomics from `crate::loom` and are model-checked in
//! `src/tests/loom_sync.rs`.

mod barrier;
mod condvar;
mod mutex;
mod once;
mod once_lock;
mod raw_mutex;
mod raw_rwlock;
mod rwlock;
mod sema;
mod semaphore;
mod wait_group;
pub(crate) mod wait_queue;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use once::Once;
pub use once_lock::OnceLock;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use sema::Sema;
pub use semaphore::{Semaphore, SemaphorePermit};
pub use wait_group::WaitGroup;
