//! `weft::sync` on one P: every case of `common/sync_cases.rs`, with `max_procs(1)`.
//!
//! On one P no two Gs run at once, so every contended lock, condition and group is handed from
//! G to G through a park and a `ready`, and a G that holds a lock across `yield_now` lets every
//! waiter run into it: the mutex fairness cases need starvation mode here.

mod common;
#[path = "common/sync_cases.rs"]
mod sync_cases;

sync_cases::sync_tests!(1);
