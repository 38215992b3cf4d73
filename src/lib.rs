//! # weft: Go's goroutine runtime, rebuilt in Rust
//!
//! Write plain synchronous code and run hundreds of thousands of it at once:
//! `go!(move || ...)` spawns a stackful coroutine (a *G*), a few OS threads run them on a
//! G/M/P scheduler modelled on Go's, and a G that waits parks instead of blocking its thread.
//!
//! ```
//! use weft::go;
//!
//! let sum: u64 = weft::run(|| {
//!     let handles: Vec<_> = (1..=100u64).map(|i| go!(move || i * i)).collect();
//!     handles.into_iter().map(|h| h.join().unwrap()).sum()
//! });
//! assert_eq!(sum, 338_350);
//! ```
//!
//! This crate re-exports the public API of `weft-runtime` (scheduler) and `weft-net` (sockets),
//! and adds [`fs`] (files, through [`blocking`]).
//! Read `docs/DESIGN.md` for how weft maps to Go's runtime and for the rules that code running
//! in a G must follow (thread-locals and std locks across blocking calls), and `docs/NETPOLL.md`
//! for the netpoller, timers and socket deadlines.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

pub use weft_runtime::{
    blocking, current, current_id, go, is_started, mapped_stacks, max_procs, num_goroutines, park,
    run, sleep, sleep_until, spawn, stack_budget, yield_now, Builder, Config, Coroutine,
    JoinHandle, DEFAULT_STACK_SIZE, MAX_PROCS_LIMIT, MIN_STACK_SIZE,
};

/// Channels (Go's `chan`) and [`select!`]: see `weft::chan::bounded`, `weft::chan::unbounded`.
pub use weft_runtime::{chan, select};

/// Sockets over the runtime: `std::net`'s API (TCP, UDP, Unix), parking the G instead of
/// blocking the thread, plus Go's deadlines and `close(&self)`. See `docs/NETPOLL.md`.
pub use weft_net as net;

/// Files with `std::fs`'s API, each call a [`blocking`] section (epoll cannot wait on files).
pub mod fs;

pub use weft_runtime::sync;

/// Looking inside the runtime: `stats()`, `goroutines()`, `dump()` (Go: package `runtime`'s
/// introspection, `GODEBUG=schedtrace`). See `docs/DESIGN.md` ("Introspection").
pub mod runtime {
    pub use weft_runtime::introspect::*;
    pub use weft_runtime::wait_reason::WaitReason;
}

/// The README's example is compiled and run as a doc test, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The Go-to-weft guide's examples are compiled too (`docs/GUIDE.md`).
#[doc = include_str!("../docs/GUIDE.md")]
#[cfg(doctest)]
pub struct GuideDoctests;
