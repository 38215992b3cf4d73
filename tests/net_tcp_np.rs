//! TCP over the netpoller on N Ps: every case of `common/tcp_cases.rs`, with `max_procs(2)`, plus
//! the case that needs a second P (echo traffic next to a G that never yields).

mod common;
#[path = "common/tcp_cases.rs"]
mod tcp_cases;

use common::{run_test, Mode};

/// Ps in this binary, as in `rt_np`.
const PROCS: usize = 2;

tcp_cases::tcp_tests!(PROCS);

#[test]
fn hog_does_not_stop_io_on_other_p() {
    run_test(
        PROCS,
        Mode::Exclusive,
        "hog_does_not_stop_io_on_other_p",
        tcp_cases::hog_does_not_stop_io_on_other_p,
    );
}
