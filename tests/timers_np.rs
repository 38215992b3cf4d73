//! Sleep and timers on N Ps: every case of `common/timer_cases.rs`, with `max_procs(2)`, plus
//! the case that needs a second P (a timer in the heap of a P held by a G that never yields).
//!
//! With several Ps, timers live in several heaps and are run by several Ms: the expiry-order
//! model allows a small tolerance for that (see the module doc of `timer_cases.rs`).

mod common;
#[path = "common/timer_cases.rs"]
mod timer_cases;

/// Ps in this binary, as in `rt_np`.
const PROCS: usize = 2;

timer_cases::timer_tests!(PROCS);

#[test]
fn timer_on_hogged_p_fires() {
    timer_cases::run_timer_test(
        PROCS,
        "timer_on_hogged_p_fires",
        timer_cases::time_limit("timer_on_hogged_p_fires"),
        timer_cases::timer_on_hogged_p_fires,
    );
}
