//! The readiness-to-run latency histogram: how long a G waits between `ready` (its event
//! happened) and running again on an M. Always on and cheap enough for production: as Go's
//! `/sched/latencies:seconds` metric does, it samples one wakeup in `SAMPLE_PERIOD` of each G
//! (the first one after spawn included), with a timestamp in `ready`, another in `execute`, and
//! one bucket increment by the P's holder (no shared cache line). Unsampled wakeups cost one
//! counter update. Measured: a timestamp costs ~10 ns here, so stamping every wakeup added
//! ~20 ns to each channel hand-off.
//!
//! Timestamps are raw CPU cycle counts (`rdtsc`, a few ns, no system call) on x86-64, and
//! `nanotime` elsewhere; buckets are powers of two of that unit, converted to nanoseconds when
//! reported, using the rate measured between the runtime's start and the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::sched::g::GRef;
use crate::sched::p::P;
use crate::time::nanotime;

/// Number of buckets: bucket `i` counts latencies in `[2^(i-1), 2^i)` ticks (bucket 0: 0).
pub(crate) const BUCKETS: usize = 48;

/// One P's histogram. Written by the P's holder only (plain load + store), read by anyone.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Histogram {
    pub(crate) const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    fn record(&self, ticks: u64) {
        let i = ((u64::BITS - ticks.leading_zeros()) as usize).min(BUCKETS - 1);
        let b = &self.buckets[i];
        b.store(b.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn add_into(&self, sum: &mut [u64; BUCKETS]) {
        for (s, b) in sum.iter_mut().zip(&self.buckets) {
            *s += b.load(Ordering::Relaxed);
        }
    }
}

/// The reference point for converting ticks to nanoseconds.
static ORIGIN: OnceLock<(u64, u64)> = OnceLock::new();

/// Remember the starting point (called when the runtime starts).
pub(crate) fn init() {
    let _ = ORIGIN.get_or_init(|| (ticks(), nanotime()));
}

/// One wakeup in this many of each G is timed (Go: `gTrackingPeriod`).
pub(crate) const SAMPLE_PERIOD: u32 = 8;

/// The current timestamp, never 0 (0 means "not readied").
#[inline]
fn stamp() -> u64 {
    ticks() | 1
}

/// In `ready`, by the G's owner of the moment: stamp one wakeup in `SAMPLE_PERIOD`.
#[inline]
pub(crate) fn on_ready(gp: GRef) {
    let g = gp.g();
    let seq = g.ready_seq.load(Ordering::Relaxed);
    g.ready_seq.store(seq.wrapping_add(1), Ordering::Relaxed);
    if seq % SAMPLE_PERIOD == 0 {
        g.ready_at.store(stamp(), Ordering::Relaxed);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn ticks() -> u64 {
    // SAFETY: `rdtsc` has no preconditions; it reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn ticks() -> u64 {
    nanotime()
}

/// In `execute`, on the M holding `pp`: if `gp` was readied, record how long it waited.
#[inline]
pub(crate) fn record(pp: &P, gp: GRef) {
    let at = gp.g().ready_at.load(Ordering::Relaxed);
    if at != 0 {
        gp.g().ready_at.store(0, Ordering::Relaxed);
        pp.latency.record(stamp().saturating_sub(at));
    }
}

/// Nanoseconds per tick, measured since `init`.
fn ns_per_tick() -> f64 {
    if cfg!(not(target_arch = "x86_64")) {
        return 1.0;
    }
    let (t0, n0) = *ORIGIN.get_or_init(|| (ticks(), nanotime()));
    let (t1, n1) = (ticks(), nanotime());
    if t1 <= t0 || n1 <= n0 + 1_000_000 {
        // Too early to measure: assume a common clock rate until a millisecond has passed.
        return 1.0 / 2.5;
    }
    (n1 - n0) as f64 / (t1 - t0) as f64
}

/// The readiness-to-run latency of the sampled wakeups so far (one in 8 per G, the first after
/// spawn included), summed over all Ps.
///
/// ```
/// let h = weft_runtime::run(|| {
///     let (tx, rx) = weft_runtime::chan::bounded::<u32>(0);
///     let g = weft_runtime::go!(move || rx.recv().unwrap());
///     tx.send(1).unwrap();
///     g.join().unwrap();
///     weft_runtime::introspect::stats().ready_latency
/// });
/// assert!(h.count() >= 1);
/// assert!(h.percentile(0.5) <= h.max());
/// ```
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    /// `(upper bound, count)` per bucket, in increasing order of bounds; empty buckets included
    /// up to the last non-empty one.
    pub buckets: Vec<(Duration, u64)>,
}

impl LatencyHistogram {
    /// Number of samples (about one wakeup in 8).
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// An upper bound on the `q` quantile (`0.0..=1.0`): the bound of the bucket holding it.
    /// Zero with no samples.
    pub fn percentile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let want = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(bound, c) in &self.buckets {
            seen += c;
            if seen >= want {
                return bound;
            }
        }
        self.max()
    }

    /// An upper bound on the largest sample (the bound of the last non-empty bucket).
    pub fn max(&self) -> Duration {
        self.buckets.last().map_or(Duration::ZERO, |b| b.0)
    }
}

/// Sum the Ps' histograms.
pub(crate) fn collect(ps: &[P]) -> LatencyHistogram {
    let mut sum = [0u64; BUCKETS];
    for p in ps {
        p.latency.add_into(&mut sum);
    }
    let last = sum.iter().rposition(|&c| c > 0);
    let k = ns_per_tick();
    let buckets = match last {
        None => Vec::new(),
        Some(last) => (0..=last)
            .map(|i| {
                let upper_ticks = if i == 0 { 1 } else { 1u64 << i.min(63) };
                let ns = (upper_ticks as f64 * k).ceil() as u64;
                (Duration::from_nanos(ns), sum[i])
            })
            .collect(),
    };
    LatencyHistogram { buckets }
}
