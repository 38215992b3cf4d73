//! The runtime on N Ps: every case of `common/rt_cases.rs`, with `max_procs(2)`, plus the cases
//! that only make sense with several Ps (work spread over threads, migration by stealing).

mod common;

use common::{rt_cases, run_test, Mode};

/// Ps in this binary: as many as this 2-core machine has; also what CI machines give.
const PROCS: usize = 2;

rt_cases::rt_tests!(PROCS);

#[test]
fn cpu_bound_gs_run_on_all_procs() {
    run_test(
        PROCS,
        Mode::Exclusive,
        "cpu_bound_gs_run_on_all_procs",
        rt_cases::cpu_bound_gs_run_on_all_procs,
    );
}

#[test]
fn yield_resumes_on_another_m() {
    run_test(
        PROCS,
        Mode::Exclusive,
        "yield_resumes_on_another_m",
        rt_cases::yield_resumes_on_another_m,
    );
}
