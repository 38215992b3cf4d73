//! Channels and `select!` on N Ps: every case of `common/chan_cases.rs`, with `max_procs(2)`.
//!
//! With several Ps, senders and receivers run at the same time on different threads: the
//! channel lock, the sudog hand-off and the claim of a blocked operation race for real.

#[path = "common/chan_cases.rs"]
mod chan_cases;
mod common;

/// Ps in this binary, as in `rt_np`.
const PROCS: usize = 2;

chan_cases::chan_tests!(PROCS);
