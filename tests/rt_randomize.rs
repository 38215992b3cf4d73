//! `Config::randomize_scheduler` (env `WEFT_RANDOMIZE_SCHED=1`, Go's `randomizeScheduler`): the
//! mode the stress suites run under to shake out code that relies on one scheduling order. This
//! checks that it really varies the order, and that everything still runs exactly once.
//!
//! The setting is process-wide, so this file has its own test binary and one test.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn randomized_scheduler_varies_the_order_and_loses_nothing() {
    // A watchdog: the test must not hang whatever the scheduler does.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("watchdog: randomized scheduler test still running after 60 s");
        std::process::abort();
    });
    weft::Config::new()
        .max_procs(1)
        .randomize_scheduler(true)
        .apply()
        .expect("configure before the runtime starts");
    let orders = weft::run(|| {
        let mut orders = HashSet::new();
        for _ in 0..200 {
            // Without randomization, on 1 P the last G spawned runs first (runnext), then the
            // others in spawn order: always [3, 1, 2].
            let order = Arc::new(Mutex::new(Vec::new()));
            let hs: Vec<_> = (1..=3)
                .map(|i| {
                    let o = order.clone();
                    weft::go!(move || o.lock().unwrap().push(i))
                })
                .collect();
            for h in hs {
                h.join().expect("a G panicked");
            }
            let order = order.lock().unwrap().clone();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [1, 2, 3], "each G runs exactly once");
            orders.insert(order);
        }
        orders
    });
    assert!(
        orders.len() >= 2,
        "200 rounds all ran in one order ({orders:?}): the scheduler is not randomized"
    );
}
