//! TCP over the netpoller on one P: every case of `common/tcp_cases.rs`, with `max_procs(1)`.
//!
//! On one P no two Gs run at once, so "the G is blocked in its op" (`tcp_cases::settle`) is
//! exact, and every wakeup goes through the one M's netpoll (or sysmon's).

mod common;
#[path = "common/tcp_cases.rs"]
mod tcp_cases;

tcp_cases::tcp_tests!(1);
