//! The one seam between weft's lock-free code and the atomics it runs on.
//!
//! Every lock-free state machine in the runtime (the P run queue, the park token and join packet
//! in `sched/wake_word.rs`, the pollDesc `rg`/`wg` words in `netpoll/poll_word.rs`, the wait
//! queue, semaphore, mutex and rwlock words of `sync/`) imports its
//! atomics from here, never from `std` directly. A normal build re-exports `std`'s types. A build with `RUSTFLAGS="--cfg loom"`
//! re-exports [loom]'s instrumented types instead, so `cargo test` under loom explores every
//! interleaving of the models in `src/tests/` (the same layout as tokio's `src/loom/`).
//!
//! Under `cfg(loom)` only the modules that are pure state machines are compiled (see `lib.rs`):
//! loom cannot model stack switching or syscalls, so the scheduler itself stays out of the models.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
        // `weft::sync`'s state words (`sync/raw_rwlock.rs`, `sync/once.rs`).
        pub(crate) use std::sync::atomic::{AtomicIsize, AtomicU8};
    }
    // The queue lock of `sync/wait_queue.rs`.
    pub(crate) use std::sync::{Mutex, MutexGuard};
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
        pub(crate) use loom::sync::atomic::{AtomicIsize, AtomicU8};
    }
    pub(crate) use loom::sync::{Mutex, MutexGuard};
}
