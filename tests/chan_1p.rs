//! Channels and `select!` on one P: every case of `common/chan_cases.rs`, with `max_procs(1)`.
//!
//! On one P no two Gs run at once, so "did not park" is checked structurally (a G spawned just
//! before would have run), and every hand-off between Gs goes through a park and a ready.

#[path = "common/chan_cases.rs"]
mod chan_cases;
mod common;

chan_cases::chan_tests!(1);
