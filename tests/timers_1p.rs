//! Sleep and timers on one P: every case of `common/timer_cases.rs`, with `max_procs(1)`.
//!
//! On one P all timers share one heap and one M runs them, and no two Gs ever run at once, so
//! "`sleep(0)` does not park" is checked structurally (no other G ran during the call).

mod common;
#[path = "common/timer_cases.rs"]
mod timer_cases;

timer_cases::timer_tests!(1);
