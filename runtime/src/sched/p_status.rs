//! A P's status word and the one race on it: the blocking-call hand-off (Go: `p.status`,
//! `_Pidle`/`_Prunning`/`_Psyscall`, the CASes in `exitsyscall` and `retake`).
//!
//! The holder of a P writes its status plainly (`set_running`, `set_idle`), except around a
//! blocking call: `enter_syscall` publishes `SYSCALL` and from then on the P has no owner until
//! one of two CASes moves it out — `exit_syscall_fast` (the M, back from the call, keeps its P)
//! or `retake` (sysmon takes it for another M). Exactly one of them succeeds for each
//! `enter_syscall`, and the winner sees everything the M wrote before entering (Release store /
//! Acquire CAS). `src/tests/loom_p_status.rs` checks both claims under every interleaving.
//!
//! `SYSCALL` is stored SeqCst: sysmon's look for calls in flight before a long sleep (a SeqCst
//! load) and the entering M's look at sysmon's sleep flags (after the store) form a Dekker pair,
//! so either sysmon sees the call or the M wakes sysmon.

use crate::loom::sync::atomic::{AtomicU8, Ordering};

/// The P is on the idle list (or being handed over).
pub(crate) const P_IDLE: u8 = 0;
/// An M holds the P and runs Gs on it.
pub(crate) const P_RUNNING: u8 = 1;
/// The M that held the P is inside `blocking`; see the module doc.
pub(crate) const P_SYSCALL: u8 = 2;

/// A P's status word. See the module doc.
pub(crate) struct PStatus(AtomicU8);

impl PStatus {
    pub(crate) fn new() -> PStatus {
        PStatus(AtomicU8::new(P_IDLE))
    }

    /// The status, for observers (thieves, sysmon): Acquire, so that a `SYSCALL` read pairs with
    /// the entering M's writes when the reader goes on to CAS.
    pub(crate) fn load(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    /// SeqCst load: sysmon's side of the Dekker pair (module doc).
    pub(crate) fn load_seqcst(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }

    /// The new holder took the P (`acquirep`).
    pub(crate) fn set_running(&self) {
        self.0.store(P_RUNNING, Ordering::Relaxed);
    }

    /// The holder let go of the P (`releasep`).
    pub(crate) fn set_idle(&self) {
        self.0.store(P_IDLE, Ordering::Relaxed);
    }

    /// The holder enters a blocking call: the P has no owner until a CAS below wins.
    pub(crate) fn enter_syscall(&self) {
        self.0.store(P_SYSCALL, Ordering::SeqCst);
    }

    /// The M is back from the call: keep the P if sysmon did not take it.
    pub(crate) fn exit_syscall_fast(&self) -> bool {
        self.0
            .compare_exchange(P_SYSCALL, P_RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// sysmon takes the P from an M still in its call; the caller then hands it off.
    pub(crate) fn retake(&self) -> bool {
        self.0
            .compare_exchange(P_SYSCALL, P_IDLE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}
