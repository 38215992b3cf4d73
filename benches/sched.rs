//! Scheduler, channel and mutex benchmarks (criterion): the Go-comparable `create_goroutines`,
//! `spawn_join_one`, `ping_pong`, `yield_many`, `chan_sync`, `chan_buffered`, `chan_contended`
//! and `mutex_contended`, plus weft's own `blocking_fast` (one `weft::blocking` call that returns
//! at once: the cost of the hand-off's fast path, paid by every `weft::fs` call).
//!
//! The bodies are those of the shared micro harness (`benches/micro/src/bodies.rs`, included
//! below), so one criterion iteration is one op with the same meaning as there and in Go's
//! `BenchmarkMicro`: one G created and finished, one spawn+join, one park/ready round trip, one
//! yield, one message (rendezvous; buffer of 128; buffer of 128 with 4 senders), one
//! lock/unlock of a `weft::sync::Mutex` shared by 4 Gs. Each sample runs `iters` ops inside one
//! G (`weft::run`) and reports the time the body measured itself (`iter_custom`), so entering
//! the runtime is not timed.
//!
//! Criterion runs every benchmark in one process and the number of Ps is fixed when the runtime
//! starts, so choose it with the environment and run once per value:
//!
//! ```text
//! WEFT_MAXPROCS=1 cargo bench --bench sched
//! WEFT_MAXPROCS=2 cargo bench --bench sched
//! ```
//!
//! Without `WEFT_MAXPROCS` the runtime's default applies (one P per CPU). Benchmark ids carry
//! the count (`ping_pong/P1`), so the two runs do not overwrite each other's baselines. The
//! timing settings are short (about 4.5 s a benchmark, ~40 s a run); pass criterion's own
//! `--measurement-time`/`--warm-up-time` for longer runs. `docs/PERFORMANCE.md` has the figures.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "micro/src/bodies.rs"]
mod bodies;

/// Warm-up time per benchmark: also fills the stack pool.
const WARM_UP: Duration = Duration::from_secs(1);
/// Measurement time per benchmark.
const MEASUREMENT: Duration = Duration::from_secs(3);
/// Samples per benchmark (criterion's minimum is 10).
const SAMPLES: usize = 30;

/// Applies `WEFT_MAXPROCS` through `weft::Config` (before anything starts the runtime) and
/// returns the number of Ps the runtime runs with.
fn setup_procs() -> usize {
    if let Ok(v) = std::env::var("WEFT_MAXPROCS") {
        match v.trim().parse::<usize>() {
            Ok(n) => {
                if let Err(e) = weft::Config::new().max_procs(n).apply() {
                    panic!("WEFT_MAXPROCS={v}: {e}");
                }
            }
            Err(_) => panic!("WEFT_MAXPROCS={v:?}: expected a positive integer"),
        }
    }
    weft::max_procs()
}

/// A benchmark body: runs n ops inside a G, returns the time it measured.
type Body = fn(u64) -> Duration;

fn sched(c: &mut Criterion) {
    let procs = setup_procs();
    let id = format!("P{procs}");
    let benches: [(&str, Body); 9] = [
        ("create_goroutines", bodies::create_goroutines),
        ("spawn_join_one", bodies::spawn_join_one),
        ("ping_pong", bodies::ping_pong),
        ("yield_many", bodies::yield_many),
        ("chan_sync", bodies::chan_sync),
        ("chan_buffered", bodies::chan_buffered),
        ("chan_contended", bodies::chan_contended),
        ("mutex_contended", bodies::mutex_contended),
        ("blocking_fast", blocking_fast),
    ];
    for (name, body) in benches {
        let mut g = c.benchmark_group(name);
        g.warm_up_time(WARM_UP)
            .measurement_time(MEASUREMENT)
            .sample_size(SAMPLES);
        g.bench_function(id.as_str(), |b| {
            b.iter_custom(|iters| bodies::in_weft(iters, body))
        });
        g.finish();
    }
}

/// n `weft::blocking` calls whose closure returns at once (the P is never retaken).
fn blocking_fast(n: u64) -> Duration {
    let t = std::time::Instant::now();
    for i in 0..n {
        std::hint::black_box(weft::blocking(|| std::hint::black_box(i)));
    }
    t.elapsed()
}

criterion_group!(benches, sched);
criterion_main!(benches);
