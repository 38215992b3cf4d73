//! Regression: a G that parks while unwinding must not break the spinning-M accounting.
//!
//! A G that blocks in a destructor while it unwinds does not switch stacks: its M hands its P off
//! (`handoffp`, which may start a *new* M as a spinner) and blocks the OS thread; when the G is
//! readied and no P is idle, the M waits for one, and the next M between two Gs hands it its P.
//! The bug: that next M could be the new spinner, which then slept still counted in
//! `nmspinning`, so `wakep` never woke an M again: work queued on a busy P was never stolen by
//! the idle one, and a later `weft::run` from a plain thread hung.
//!
//! This binary has a single test because the race needs a fresh runtime (no idle M yet), and it
//! does not call `common::init`, which would start one early.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound of every wait below: far above the microseconds the steps take, far below the watchdog.
const BOUND: Duration = Duration::from_secs(10);

/// Parks (through `weft::park`) in its destructor until `release` is set: during a panic, that
/// is a park while unwinding.
struct ParkOnDrop {
    release: Arc<AtomicBool>,
    me: Arc<Mutex<Option<weft::Coroutine>>>,
}

impl Drop for ParkOnDrop {
    fn drop(&mut self) {
        *self.me.lock().unwrap() = weft::current();
        let start = Instant::now();
        while !self.release.load(Ordering::Acquire) {
            assert!(start.elapsed() < BOUND, "never released");
            weft::park();
        }
    }
}

/// Spin (no yield) until `flag` is set or BOUND passes; returns whether it was set.
fn spin_until(flag: &AtomicBool) -> bool {
    let start = Instant::now();
    while !flag.load(Ordering::Acquire) {
        if start.elapsed() > BOUND {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

#[test]
fn park_while_unwinding_keeps_wakeups_working() {
    let _dog = common::watchdog(
        "park_while_unwinding_keeps_wakeups_working",
        common::TEST_TIMEOUT,
    );
    weft::Config::new().max_procs(2).apply().unwrap();
    let outcome: Result<(), String> = weft::run(|| {
        // G_c keeps the other P busy; it releases the unwinding G shortly after it parked.
        let started = Arc::new(AtomicBool::new(false));
        let me: Arc<Mutex<Option<weft::Coroutine>>> = Arc::new(Mutex::new(None));
        let release = Arc::new(AtomicBool::new(false));
        let (s2, me2, rel2) = (started.clone(), me.clone(), release.clone());
        let c = weft::spawn(move || {
            s2.store(true, Ordering::Release);
            let start = Instant::now();
            loop {
                if let Some(co) = me2.lock().unwrap().take() {
                    // A few microseconds: long enough for the parker's M to hand off its P.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(5) {
                        std::hint::spin_loop();
                    }
                    rel2.store(true, Ordering::Release);
                    co.unpark();
                    break;
                }
                assert!(start.elapsed() < BOUND, "the unwinding G never parked");
                std::hint::spin_loop();
            }
            // Keep this P busy a while longer, so that the waiting M cannot get it when this G
            // ends: it must get its P from the M that handoffp started (the path of the bug).
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
        });
        if !spin_until(&started) {
            return Err("helper G never started".into());
        }
        let a = weft::spawn(move || {
            let _guard = ParkOnDrop { release, me };
            // resume_unwind: unwinds without running the panic hook (nothing printed).
            std::panic::resume_unwind(Box::new("unwind through a parking destructor"));
        });
        if a.join().is_ok() {
            return Err("the unwinding G did not report its panic".into());
        }
        c.join().unwrap();
        // Work queued on this (busy, spinning) P must be taken by the idle P.
        for round in 0..20 {
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            let _detached = weft::spawn(move || d.store(true, Ordering::Release));
            if !spin_until(&done) {
                return Err(format!(
                    "round {round}: a runnable G was never run while a P was idle"
                ));
            }
            weft::yield_now();
        }
        Ok(())
    });
    assert_eq!(outcome, Ok(()));
    // And a plain thread can still start work.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(weft::run(|| 7)).unwrap());
    assert_eq!(
        rx.recv_timeout(BOUND),
        Ok(7),
        "weft::run from a plain thread hung"
    );
}
