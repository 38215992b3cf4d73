//! Time: the runtime's clock, `sleep`, and the per-P timer heaps (Go: `time.go`, `nanotime`).
//!
//! * The clock ([`nanotime`]) counts nanoseconds from the first time the runtime asked, on the
//!   monotonic clock (`Instant`); it is never 0, so 0 can mean "none" in atomics.
//! * Timers live in per-P heaps (`timers.rs`, Go ≥ 1.14): adding one from a G touches only its
//!   own P's heap; Ms run expired timers in `findrunnable`, and the M that blocks in `epoll_wait`
//!   sleeps until the earliest timer of all Ps (see `sched/findrunnable.rs`).
//! * [`sleep`] parks the G on a timer; from a plain thread it is `std::thread::sleep`.

pub(crate) mod timers;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::sched::{context, park};
use timers::TimerKind;

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds on the runtime's monotonic clock; always ≥ 1 (Go: `nanotime`).
pub(crate) fn nanotime() -> u64 {
    to_nanos(Instant::now())
}

/// An `Instant` on the runtime's clock (saturating: the distant future maps to `u64::MAX - 1`,
/// anything before the epoch to 1).
pub(crate) fn to_nanos(t: Instant) -> u64 {
    let d = t.saturating_duration_since(epoch());
    u64::try_from(d.as_nanos())
        .unwrap_or(u64::MAX - 2)
        .min(u64::MAX - 2)
        + 1
}

/// Put the calling G to sleep for at least `d`; its M runs other Gs meanwhile. On a plain thread
/// this is `std::thread::sleep`. `sleep(Duration::ZERO)` returns at once (as Go's `time.Sleep(0)`).
///
/// ```
/// use std::time::{Duration, Instant};
/// weft_runtime::run(|| {
///     let t = Instant::now();
///     weft_runtime::sleep(Duration::from_millis(5));
///     assert!(t.elapsed() >= Duration::from_millis(5));
/// });
/// ```
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    match Instant::now().checked_add(d) {
        Some(t) => sleep_until(t),
        None => sleep_until_nanos(u64::MAX - 1),
    }
}

/// Put the calling G to sleep until `deadline` (returns at once if it has passed). On a plain
/// thread this blocks the thread.
///
/// ```
/// use std::time::{Duration, Instant};
/// let deadline = Instant::now() + Duration::from_millis(2);
/// weft_runtime::run(move || weft_runtime::sleep_until(deadline));
/// assert!(Instant::now() >= deadline);
/// ```
pub fn sleep_until(deadline: Instant) {
    sleep_until_nanos(to_nanos(deadline));
}

fn sleep_until_nanos(when: u64) {
    if context::current_g().is_none() {
        let now = nanotime();
        if when > now {
            std::thread::sleep(Duration::from_nanos(when - now));
        }
        return;
    }
    if when <= nanotime() {
        return;
    }
    if std::thread::panicking() {
        // Parking while unwinding blocks the OS thread anyway; do it the simple way.
        let now = nanotime();
        std::thread::sleep(Duration::from_nanos(when.saturating_sub(now)));
        return;
    }
    // The commit runs on the M's stack after the switch: the timer holds the G from then on.
    park::park(crate::wait_reason::WaitReason::Sleep, 0, |gp| {
        timers::add_timer(when, gp.as_ptr() as usize, 0, &SLEEP);
        true
    });
}

/// A sleeping G's timer: `arg` is the G.
static SLEEP: TimerKind = TimerKind {
    name: "sleep",
    fire: |arg, _gen, _now| crate::sched::waiter::wake(arg),
    live: |_, _| true,
    discard: None,
};
