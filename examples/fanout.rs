//! Spawn/fan-out demo: a tree of coroutines that splits a sum, plus a batch of 100 000 leaves.
//!
//! Run with `cargo run --release --example fanout`.

use std::time::Instant;

use weft::go;

/// Sum `lo..hi` by splitting the range across a binary tree of coroutines.
fn tree_sum(lo: u64, hi: u64) -> u64 {
    if hi - lo <= 1024 {
        return (lo..hi).sum();
    }
    let mid = lo + (hi - lo) / 2;
    let left = go!(move || tree_sum(lo, mid));
    let right = tree_sum(mid, hi);
    left.join().expect("left half panicked") + right
}

fn main() {
    let procs = weft::max_procs();
    let t = Instant::now();
    let n = 1u64 << 24;
    let sum = weft::run(move || tree_sum(0, n));
    assert_eq!(sum, n * (n - 1) / 2);
    println!(
        "tree sum of 0..{n} = {sum} on {procs} Ps in {:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let count = 100_000u64;
    let total = weft::run(move || {
        let mut total = 0;
        // Batches keep the number of live stacks well under the vm.max_map_count budget.
        for batch in 0..10 {
            let hs: Vec<_> = (0..count / 10)
                .map(|i| go!(move || batch * 10_000 + i))
                .collect();
            total += hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
        }
        total
    });
    assert_eq!(total, count * (count - 1) / 2);
    let dt = t.elapsed();
    println!(
        "spawned and joined {count} coroutines in {dt:?} ({:.0} ns each); peak stacks mapped: {}",
        dt.as_nanos() as f64 / count as f64,
        weft::mapped_stacks()
    );
}
