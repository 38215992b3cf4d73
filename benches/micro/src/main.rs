//! The micro-benchmarks of `../shared/bench/micro` (see its README) on weft.
//!
//! `weft::Config::new().max_procs(--workers)` is applied before the runtime starts; everything
//! else is weft's default (256 KiB guarded stacks from the pool). Each benchmark body runs as the
//! main G of a `weft::run` from the main thread, which only waits for it; the bodies are in
//! `bodies.rs`, shared with the criterion benches (`benches/sched.rs`).
//!
//! All eight benchmarks of the shared README exist: the channel ones on `weft::chan`,
//! `mutex_contended` on `weft::sync::Mutex`.

mod bodies;

use bodies::{
    chan_buffered, chan_contended, chan_sync, create_goroutines, in_weft, mutex_contended,
    ping_pong, spawn_join_one, yield_many,
};
use harness::Bench;

fn benches() -> Vec<Bench<'static>> {
    vec![
        Bench::new("create_goroutines", |n| in_weft(n, create_goroutines)),
        Bench::new("spawn_join_one", |n| in_weft(n, spawn_join_one)),
        Bench::new("ping_pong", |n| in_weft(n, ping_pong)),
        Bench::new("chan_sync", |n| in_weft(n, chan_sync)),
        Bench::new("chan_buffered", |n| in_weft(n, chan_buffered)),
        Bench::new("chan_contended", |n| in_weft(n, chan_contended)),
        Bench::new("mutex_contended", |n| in_weft(n, mutex_contended)),
        Bench::new("yield_many", |n| in_weft(n, yield_many)),
    ]
}

fn main() {
    let benches = benches();
    let names: Vec<&str> = benches.iter().map(|b| b.name).collect();
    let opts = harness::parse_args("weft", &names);
    if let Err(e) = weft::Config::new().max_procs(opts.workers).apply() {
        eprintln!("bench-weft: {e}");
        std::process::exit(2);
    }
    harness::run_all(&opts, &benches);
}
