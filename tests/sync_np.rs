//! `weft::sync` on N Ps: every case of `common/sync_cases.rs`, with `max_procs(2)`.
//!
//! With several Ps, lockers on different threads contend for real (the mutex's spin phase,
//! hand-offs between Ms, readers in parallel on two threads).

mod common;
#[path = "common/sync_cases.rs"]
mod sync_cases;

/// Ps in this binary: as many as this 2-core machine has; also what CI machines give.
const PROCS: usize = 2;

sync_cases::sync_tests!(PROCS);
