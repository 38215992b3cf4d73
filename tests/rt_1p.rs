//! The runtime on one P: every case of `common/rt_cases.rs`, with `max_procs(1)`.
//!
//! On one P the scheduler's order is deterministic enough to assert exactly (`runnext` before
//! the ring, the global queue every 61 ticks), and no two Gs ever run at once.

mod common;

common::rt_cases::rt_tests!(1);
