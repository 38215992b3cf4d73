//! `Group`: what all the sudogs of one blocking channel operation share — the waiter word and
//! the claim (Go: `g.selectDone` plus the `sudog.g` link).
//!
//! A blocking `send`/`recv` has one sudog; a `select` has one per arm; all point to one group.
//! Whoever completes the operation first — a peer on any of the channels, a `close`, or the
//! timeout timer — **claims** it with one CAS of `done` from `NONE` to its case (or `TIMEOUT`)
//! and only then touches the winning sudog and wakes the waiter. Everyone else fails the CAS and
//! leaves the operation alone. So the waiter is woken exactly once and exactly one case takes
//! effect, however many race. This file is compiled under loom too
//! (`src/tests/loom_chan_group.rs` checks peer vs close vs timeout).

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// `Group::done` before any case completed.
pub(crate) const NONE: usize = usize::MAX;
/// `Group::done` when the operation's deadline passed first.
pub(crate) const TIMEOUT: usize = usize::MAX - 1;

/// What all the sudogs of one blocking operation share (see the module doc).
pub(crate) struct Group {
    /// The blocked caller, as a `waiter.rs` word; stored before any sudog becomes visible.
    pub(crate) waiter: AtomicUsize,
    /// `NONE`, a case index, or `TIMEOUT`.
    pub(crate) done: AtomicUsize,
}

impl Group {
    pub(crate) fn new() -> Group {
        Group {
            waiter: AtomicUsize::new(0),
            done: AtomicUsize::new(NONE),
        }
    }

    /// Claim the operation for `case`. False: something else completed it already.
    pub(crate) fn claim(&self, case: usize) -> bool {
        self.done
            .compare_exchange(NONE, case, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The case that completed (`NONE` if none yet).
    pub(crate) fn winner(&self) -> usize {
        self.done.load(Ordering::Acquire)
    }
}
