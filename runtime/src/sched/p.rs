//! P: a processor, the right to run Gs (Go: `type p` in `runtime2.go`).
//!
//! There are `max_procs` Ps (Go: `GOMAXPROCS`), fixed when the runtime starts. An M must hold a P
//! to run Gs. A P carries the state that makes scheduling cheap and local: its run queue with the
//! `runnext` slot, its scheduling tick, and a free list of dead Gs that keep their stacks.
//!
//! # Ownership
//!
//! * `runq` is lock-free (see `runq.rs`): the holder puts and gets, anyone steals.
//! * `schedtick`, `runnext_streak`: written by the holder only (atomics so that observers such as
//!   a future sysmon can read them).
//! * `gfree`: holder only, no synchronisation. A P changes hands only through `Sched::lock` or
//!   `M::nextp` (written under that lock before the receiving M is woken), which orders the old
//!   holder's writes before the new holder's reads.
//! * `status`: written by the holder when it acquires or releases the P; read by thieves to decide
//!   whether to wait before taking `runnext`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::g::{GRef, G};
use super::runq::RunQueue;

pub(crate) use super::p_status::{PStatus, P_RUNNING, P_SYSCALL};

/// Dead Gs a P keeps for reuse before it moves half of them to the global list (Go: 64).
pub(crate) const GFREE_LOCAL_MAX: usize = 64;

/// One processor. See the module doc.
///
/// Aligned to 128 bytes (two cache lines, the unit of the adjacent-line prefetcher) so that one
/// P's hot fields (its ring's head and tail, `schedtick`) never share a line with another P's:
/// measured, unpadded Ps made `yield_many` on 2 Ps about twice as slow.
#[repr(align(128))]
pub(crate) struct P {
    /// Index in `Sched::ps`.
    pub(crate) id: usize,
    /// Local run queue and `runnext`.
    pub(crate) runq: RunQueue<G>,
    /// Incremented on every scheduling round that does not inherit a time slice.
    pub(crate) schedtick: AtomicU32,
    /// Consecutive `runnext` hand-offs in the current time slice.
    pub(crate) runnext_streak: AtomicU32,
    /// Gs executed on this P, counting every `execute` (unlike `schedtick`, which skips
    /// inherited slices). Written by the holder only; thieves read it to tell a P that is busy
    /// with one long G from one that is cycling through hand-offs.
    pub(crate) nexecute: AtomicU32,
    /// `P_IDLE`, `P_RUNNING` or `P_SYSCALL` (`p_status.rs`: the blocking-call hand-off).
    pub(crate) status: PStatus,
    /// Incremented by the holder on every entry into `blocking` (Go: `p.syscalltick`): sysmon
    /// retakes the P only after seeing the same call on two of its ticks.
    pub(crate) syscalltick: AtomicU32,
    /// The M holding the P (null when idle). Written by `acquirep`/`releasep`; read by sysmon
    /// to see whether that M is inside a G.
    pub(crate) m: AtomicPtr<super::m::M>,
    /// For a spare P lent to the Gs queued behind a CPU hog (`sysmon.rs`): the index of the
    /// hogged P, or `NO_P`. Written under `Sched::lock`.
    pub(crate) lent_for: AtomicUsize,
    /// The hogged P's `nexecute` when the spare was lent: once it moves, the hog has switched
    /// out and the spare goes back to the pool.
    pub(crate) lent_nexec: AtomicU32,
    /// Gs this P took from other Ps (statistics).
    pub(crate) nsteal: AtomicU64,
    /// Parks of Gs on this P, by `WaitReason` (statistics; holder only).
    pub(crate) nparks: [AtomicU64; crate::wait_reason::WaitReason::COUNT],
    /// Readiness-to-run latency of the Gs run on this P (holder only).
    pub(crate) latency: crate::introspect::latency::Histogram,
    /// Dead Gs with default-size stacks. Holder only.
    gfree: UnsafeCell<Vec<GRef>>,
    /// This P's timer heap (Go: `p.timers`); has its own lock, so any M may run it.
    pub(crate) timers: crate::time::timers::Timers,
}

// SAFETY: `gfree` is accessed only by the M holding the P, and a P changes hands through a lock
// or release/acquire edge (module doc); everything else is atomic.
unsafe impl Sync for P {}

impl P {
    pub(crate) fn new(id: usize) -> P {
        P {
            id,
            runq: RunQueue::new(),
            schedtick: AtomicU32::new(0),
            runnext_streak: AtomicU32::new(0),
            nexecute: AtomicU32::new(0),
            status: PStatus::new(),
            syscalltick: AtomicU32::new(0),
            m: AtomicPtr::new(std::ptr::null_mut()),
            lent_for: AtomicUsize::new(super::m::NO_P),
            lent_nexec: AtomicU32::new(0),
            nsteal: AtomicU64::new(0),
            nparks: [const { AtomicU64::new(0) }; crate::wait_reason::WaitReason::COUNT],
            latency: crate::introspect::latency::Histogram::new(),
            gfree: UnsafeCell::new(Vec::with_capacity(GFREE_LOCAL_MAX)),
            timers: crate::time::timers::Timers::new(),
        }
    }

    /// The free list of dead Gs.
    ///
    /// # Safety
    /// The calling thread's M holds this P, and no other reference into the list is alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn gfree(&self) -> &mut Vec<GRef> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.gfree.get() }
    }

    pub(crate) fn schedtick(&self) -> u32 {
        self.schedtick.load(Ordering::Relaxed)
    }

    /// Holder only, once per `execute`: count the G, and either extend the current time slice
    /// (`inherit`: it came from `runnext`) or start a new one (a new tick).
    pub(crate) fn count_execute(&self, inherit: bool) {
        bump(&self.nexecute);
        if inherit {
            bump(&self.runnext_streak);
        } else {
            self.runnext_streak.store(0, Ordering::Relaxed);
            bump(&self.schedtick);
        }
    }
}

/// Increment a counter that only the P's holder writes: a plain load and store, no locked
/// read-modify-write on the scheduler's hot path (readers only need a recent value).
pub(crate) fn bump(c: &AtomicU32) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}
