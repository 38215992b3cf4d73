//! # weft-runtime: Go's goroutine scheduler, in Rust
//!
//! Stackful coroutines (Go's **G**s, on `corosensei`) run on OS threads (**M**s) that hold
//! processors (**P**s): `max_procs` Ps, each with a lock-free local run queue and a `runnext`
//! slot, a global run queue, and idle Ms that steal work. User code is plain blocking code; a G
//! that must wait parks and its M runs another.
//!
//! ```
//! let total: u64 = weft_runtime::run(|| {
//!     let hs: Vec<_> = (0..1000u64).map(|i| weft_runtime::go!(move || i)).collect();
//!     hs.into_iter().map(|h| h.join().unwrap()).sum()
//! });
//! assert_eq!(total, 499_500);
//! ```
//!
//! ## Where each concept lives
//!
//! | concept | Go | file |
//! |---|---|---|
//! | G, its status | `g`, `_Grunning`... | `sched/g.rs` |
//! | P, run queue, `runnext` | `p`, `runqput`... | `sched/p.rs`, `sched/runq.rs` |
//! | M, `schedule` | `m`, `mstart` | `sched/m.rs` |
//! | global queue | `sched.runq` | `sched/globrunq.rs` |
//! | `findrunnable`, stealing | `findRunnable`, `stealWork` | `sched/findrunnable.rs` |
//! | spinning, idle Ms/Ps | `wakep`, `startm`, `stopm` | `sched/idle.rs` |
//! | switching into a G | `execute`, `gogo` | `sched/switch.rs` |
//! | park / ready / yield | `gopark`, `goready`, `Gosched` | `sched/park.rs` |
//! | spawn, G reuse | `newproc`, `gfget` | `sched/newproc.rs` |
//! | current M/P/G | `getg()` | `sched/context.rs` |
//! | stacks, budget, overflow | `stack.go` | `stack/mod.rs`, `stack/overflow.rs` |
//! | netpoller, pollDesc | `netpoll.go`, `netpoll_epoll.go` | `netpoll/` |
//! | batch wakeups | `injectglist` | `sched/inject.rs` |
//! | sysmon | `sysmon` | `sched/sysmon.rs` |
//! | G or thread waiter | (`sudog`) | `sched/waiter.rs` |
//! | timers, `sleep` | `time.go`, `p.timers` | `time/` |
//! | semaphore | `sema.go` | `sync/sema.rs` |
//! | wait queue (one per lock, cond, ...) | `sudog` lists | `sync/wait_queue.rs` |
//! | `Mutex`, `RwLock`, `Condvar`, `WaitGroup`, `Once`, `Barrier` | package `sync` | `sync/` (docs/SYNC.md) |
//! | channels, `select!` | `chan.go`, `select.go` | `chan/` |
//! | settings | `GOMAXPROCS` | `config.rs` |
//! | public API | `go` statement | `spawn.rs` |
//!
//! The design (protocols, ownership, the rules for user code) is in `docs/DESIGN.md`; the
//! netpoller, pollDesc state machine, timers and deadlines in `docs/NETPOLL.md`.
//!
//! ## Rules for code running in a G
//!
//! A G may resume on a different OS thread after any blocking call. Across such a call do not
//! hold: references obtained from `thread_local!`'s `with`, `!Send` values (`Rc`, `RefMut` of a
//! thread-local, `StdoutLock`), or a `std::sync::MutexGuard`. Read thread-locals again after
//! every blocking call. Never block inside a `LocalKey::with` closure.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod loom;
pub mod wait_reason;

#[cfg(not(loom))]
pub mod chan;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
pub mod introspect;
#[cfg(not(loom))]
pub mod netpoll;
#[cfg(not(loom))]
mod panic;
#[cfg(not(loom))]
mod parker;
#[cfg(not(loom))]
pub(crate) mod sched;
#[cfg(not(loom))]
mod spawn;
#[cfg(not(loom))]
mod stack;
#[cfg(not(loom))]
pub mod sync;
#[cfg(not(loom))]
mod time;

#[cfg(loom)]
#[allow(missing_docs, dead_code)]
#[path = "chan/group.rs"]
pub(crate) mod chan_group;
#[cfg(loom)]
#[allow(missing_docs, dead_code)]
#[path = "sched/p_status.rs"]
pub(crate) mod p_status;
#[cfg(loom)]
#[allow(missing_docs, dead_code)]
#[path = "netpoll/poll_word.rs"]
pub(crate) mod poll_word;

#[cfg(loom)]
#[allow(missing_docs, dead_code)]
#[path = "sched/runq.rs"]
pub mod runq;
#[cfg(loom)]
#[allow(missing_docs, dead_code)]
#[path = "sched/wake_word.rs"]
pub(crate) mod wake_word;
#[cfg(loom)]
#[allow(missing_docs, dead_code)]
pub(crate) mod sync {
    #[path = "once.rs"]
    pub(crate) mod once;
    #[path = "raw_mutex.rs"]
    pub(crate) mod raw_mutex;
    #[path = "raw_rwlock.rs"]
    pub(crate) mod raw_rwlock;
    #[path = "sema.rs"]
    pub(crate) mod sema;
    #[path = "wait_queue.rs"]
    pub(crate) mod wait_queue;
}

#[cfg(all(test, loom))]
mod tests;

#[cfg(not(loom))]
pub use config::{Config, MAX_PROCS_LIMIT};
#[cfg(not(loom))]
pub use parker::{current, park, Coroutine};
#[cfg(not(loom))]
pub use sched::syscall::blocking;
#[cfg(not(loom))]
pub use spawn::{run, spawn, yield_now, Builder, JoinHandle};
#[cfg(not(loom))]
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
#[cfg(not(loom))]
pub use time::{sleep, sleep_until};

/// Number of Ps: how many Gs run in parallel (Go: `runtime.GOMAXPROCS(0)`). Starts the runtime.
///
/// ```
/// assert!(weft_runtime::max_procs() >= 1);
/// ```
#[cfg(not(loom))]
pub fn max_procs() -> usize {
    sched::sched().procs()
}

/// Number of live Gs: spawned and not yet finished (Go: `runtime.NumGoroutine`).
///
/// ```
/// let h = weft_runtime::spawn(|| ());
/// h.join().unwrap();
/// let _ = weft_runtime::num_goroutines();
/// ```
#[cfg(not(loom))]
pub fn num_goroutines() -> usize {
    sched::sched()
        .ngoroutines
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// The id of the calling G, or `None` on a plain thread.
///
/// ```
/// let id = weft_runtime::run(|| weft_runtime::current_id());
/// assert!(id.is_some());
/// assert_eq!(weft_runtime::current_id(), None);
/// ```
#[cfg(not(loom))]
pub fn current_id() -> Option<u64> {
    sched::context::current_g().map(|g| g.id())
}

/// Whether the runtime has started (it starts on first use).
#[cfg(not(loom))]
pub fn is_started() -> bool {
    sched::started()
}

/// The stack budget: how many guarded stacks may be mapped at once (see `Config::max_stacks`).
///
/// ```
/// assert!(weft_runtime::stack_budget() > 0);
/// ```
#[cfg(not(loom))]
pub fn stack_budget() -> usize {
    stack::max_stacks()
}

/// How many guarded stacks are mapped now: live Gs plus dead ones cached for reuse.
///
/// ```
/// let _ = weft_runtime::mapped_stacks();
/// ```
#[cfg(not(loom))]
pub fn mapped_stacks() -> usize {
    stack::mapped_stacks()
}
