//! The benchmark bodies, shared by `bench-weft` (the micro harness, `main.rs`) and the criterion
//! benches (`benches/sched.rs`, which includes this file with `#[path]`), so both measure exactly
//! the same code.
//!
//! Each body runs inside a G, performs `n` ops and returns the wall time it measured itself: from
//! before it creates its helper Gs until it has waited for the last of them (the rules of
//! `../shared/bench/micro/README.md`). Entering the runtime ([`in_weft`]) is not timed.
//!
//! The scheduler bodies (`create_goroutines`, `ping_pong`) hand off with the public `park()` /
//! `Coroutine::unpark()` pair plus an atomic: the runtime's park/ready round trip with nothing on
//! top (Go's channels and may's semaphore add their own bookkeeping to it). They were written
//! before weft had channels and are kept as they are, so their figures stay comparable with the
//! earlier tables. The channel bodies (`chan_sync`, `chan_buffered`, `chan_contended`) use
//! `weft::chan`, exactly as Go's versions use `chan int`, and `mutex_contended` uses
//! `weft::sync::Mutex` as Go's uses `sync.Mutex`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use weft::sync::Mutex;
use weft::{chan, current, go, park, yield_now, Coroutine};

/// Gs spawned by `create_goroutines` before it waits for them all (the harness's constant).
pub const SPAWN_BATCH: u64 = 1000;
/// Buffer size of `chan_buffered` and `chan_contended` (the harness's constant).
pub const CHAN_CAP: usize = 128;
/// Producers in `chan_contended` (the harness's constant).
pub const SENDERS: u64 = 4;
/// Gs in `mutex_contended` (the harness's constant).
pub const LOCKERS: u64 = 4;

/// [`Handoff`] slot value meaning "nothing in it". Benchmark values are below `n` ≤ 1e9.
const EMPTY: u64 = u64::MAX;
/// [`Handoff`] value telling the `ping_pong` partner to exit (Go: `close(ping)`).
const CLOSED: u64 = u64::MAX - 1;

/// Part `k` (0-based) of `n` ops split into `parts` nearly equal parts (the harness's `share`).
pub fn share(n: u64, parts: u64, k: u64) -> u64 {
    n / parts + u64::from(k < n % parts)
}

/// Runs `body(n)` as the main G of a `weft::run` and returns the time the body measured.
pub fn in_weft(n: u64, body: fn(u64) -> Duration) -> Duration {
    weft::run(move || body(n))
}

/// The current G's handle; every body runs inside a G.
fn me() -> Coroutine {
    current().expect("benchmark bodies run inside a G")
}

/// Batches of [`SPAWN_BATCH`] detached no-op Gs. The counter is set to the batch size first (Go:
/// `wg.Add(batch)`); each G decrements it and the one that brings it to 0 unparks the spawner,
/// which parks until the counter is 0 (Go: `wg.Wait()`; may: a semaphore). One op = one G.
pub fn create_goroutines(n: u64) -> Duration {
    struct Wg {
        /// Gs of the current batch still running. Set by the spawner while it is 0 (no G of
        /// this batch alive yet); decremented (AcqRel) by each G; the spawner's Acquire load of
        /// 0 pairs with the last decrement.
        left: AtomicU64,
        /// The spawner, unparked by the G that brings `left` to 0.
        waiter: Coroutine,
    }
    let start = Instant::now();
    let wg = Arc::new(Wg {
        left: AtomicU64::new(0),
        waiter: me(),
    });
    let mut done = 0;
    while done < n {
        let b = SPAWN_BATCH.min(n - done);
        wg.left.store(b, Ordering::Relaxed);
        for _ in 0..b {
            let wg = wg.clone();
            // The JoinHandle is dropped: the G runs detached.
            go!(move || {
                if wg.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    wg.waiter.unpark();
                }
            });
        }
        // A late unpark from the previous batch can make one park return early: re-check.
        while wg.left.load(Ordering::Acquire) != 0 {
            park();
        }
        done += b;
    }
    start.elapsed()
}

/// Spawn one G returning i and join it (its JoinHandle carries the result). One op = one
/// spawn + join; at most one spawned G is alive at a time.
pub fn spawn_join_one(n: u64) -> Duration {
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        sum = sum.wrapping_add(go!(move || i).join().expect("no panic"));
    }
    black_box(sum);
    start.elapsed()
}

/// A one-value mailbox with one receiving G: the unbuffered channel of `ping_pong`, reduced to
/// park/ready. The sender stores the value (Release) and unparks the receiver; the receiver
/// swaps it out (Acquire) and parks while the slot is empty.
struct Handoff {
    /// The value in flight, or [`EMPTY`].
    val: AtomicU64,
    /// The receiving G; set once, before any value is sent.
    receiver: OnceLock<Coroutine>,
}

impl Handoff {
    fn new() -> Handoff {
        Handoff {
            val: AtomicU64::new(EMPTY),
            receiver: OnceLock::new(),
        }
    }

    /// Hand `v` to the receiver. With one value in flight the slot is always empty here.
    fn send(&self, v: u64) {
        self.val.store(v, Ordering::Release);
        self.receiver.get().expect("receiver registered").unpark();
    }

    /// Wait for a value and take it. `park` may return early (a token left over from a send
    /// that found us running), so loop.
    fn recv(&self) -> u64 {
        loop {
            let v = self.val.swap(EMPTY, Ordering::Acquire);
            if v != EMPTY {
                return v;
            }
            park();
        }
    }
}

/// Round trips with a partner G: this G sends i on `ping`, the partner sends it back on `pong`,
/// this G checks it. At the end `ping` carries [`CLOSED`] and the partner exits and is joined.
/// One op = one round trip = two park/ready handoffs.
pub fn ping_pong(n: u64) -> Duration {
    let start = Instant::now();
    let ping = Arc::new(Handoff::new());
    let pong = Arc::new(Handoff::new());
    let _ = pong.receiver.set(me());
    let partner = {
        let (ping, pong) = (ping.clone(), pong.clone());
        go!(move || {
            let _ = ping.receiver.set(me());
            // Tell the body we are registered (the first pong.send wakes it).
            pong.receiver.get().expect("set before spawn").unpark();
            loop {
                let v = ping.recv();
                if v == CLOSED {
                    break;
                }
                pong.send(v);
            }
        })
    };
    while ping.receiver.get().is_none() {
        park();
    }
    for i in 0..n {
        ping.send(i);
        assert_eq!(pong.recv(), i, "ping_pong: wrong value back");
    }
    ping.send(CLOSED);
    partner.join().expect("no panic");
    start.elapsed()
}

/// This G and one partner each call `yield_now` half of n times; then the partner is joined.
/// One op = one yield (of either G).
pub fn yield_many(n: u64) -> Duration {
    let start = Instant::now();
    let theirs = share(n, 2, 1);
    let partner = go!(move || {
        for _ in 0..theirs {
            yield_now();
        }
    });
    for _ in 0..share(n, 2, 0) {
        yield_now();
    }
    partner.join().expect("no panic");
    start.elapsed()
}

/// `producers` Gs send n values in all (`share` of n each, values 0..share) on one
/// `weft::chan::bounded(cap)`; this G receives all n, then joins the producers. One op = one
/// message. The Go version (`chanStream`) waits with a `WaitGroup`; joining is the same wait.
fn chan_stream(n: u64, cap: usize, producers: u64) -> Duration {
    let start = Instant::now();
    let (tx, rx) = chan::bounded::<u64>(cap);
    let hs: Vec<_> = (0..producers)
        .map(|k| {
            let tx = tx.clone();
            let m = share(n, producers, k);
            go!(move || {
                for i in 0..m {
                    tx.send(i).expect("chan_stream: the receiver is alive");
                }
            })
        })
        .collect();
    drop(tx);
    for _ in 0..n {
        black_box(rx.recv().expect("chan_stream: a producer is still sending"));
    }
    for h in hs {
        h.join().expect("no panic");
    }
    start.elapsed()
}

/// One producer G sends 0..n on a rendezvous channel (`bounded(0)`, Go's `make(chan int)`); this
/// G receives n values, then joins it. One op = one message.
pub fn chan_sync(n: u64) -> Duration {
    chan_stream(n, 0, 1)
}

/// As [`chan_sync`] with a buffer of [`CHAN_CAP`] (Go's `make(chan int, 128)`).
pub fn chan_buffered(n: u64) -> Duration {
    chan_stream(n, CHAN_CAP, 1)
}

/// [`SENDERS`] producer Gs send n/4 each on one channel of capacity [`CHAN_CAP`]; this G
/// receives all n, then joins them.
pub fn chan_contended(n: u64) -> Duration {
    chan_stream(n, CHAN_CAP, SENDERS)
}

/// [`LOCKERS`] Gs do n `lock; counter += 1; unlock` in all (n/4 each) on one
/// `weft::sync::Mutex`; this G joins them (Go waits with a `WaitGroup`, may and tokio join as
/// here), then checks the counter. One op = one lock/unlock pair.
pub fn mutex_contended(n: u64) -> Duration {
    let start = Instant::now();
    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..LOCKERS)
        .map(|k| {
            let m = m.clone();
            let c = share(n, LOCKERS, k);
            go!(move || {
                for _ in 0..c {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().expect("no panic");
    }
    let elapsed = start.elapsed();
    assert_eq!(*m.lock(), n, "mutex_contended: lost increments");
    elapsed
}
