//! The pollDesc's lock-free words: `rg`/`wg` (who waits for readiness) and `info` (why a wait
//! must end with an error). Go: `pollDesc.rg/wg`, `netpollblock`, `netpollblockcommit`,
//! `netpollunblock`, `atomicInfo` in `runtime/netpoll.go`.
//!
//! This file holds only the atomic transitions; `poll_desc.rs` does the parking, the timers and
//! the epoll registration. Keeping them apart lets loom check every interleaving of the
//! transitions (`src/tests/loom_poll_word.rs`) without a scheduler or a kernel.
//!
//! # `PollWord` (one per direction: `rg` for readers, `wg` for writers)
//!
//! | state    | meaning                                  |
//! |----------|------------------------------------------|
//! | `NIL`    | nothing pending, nobody waiting          |
//! | `READY`  | an edge arrived that nobody consumed yet |
//! | `WAIT`   | a waiter is about to park (not yet published) |
//! | waiter w | a parked G or a blocked thread (`sched/waiter.rs` encoding, always > `WAIT`) |
//!
//! | transition                | by                       | from → to                         |
//! |---------------------------|--------------------------|-----------------------------------|
//! | `reset`                   | the op, before its syscall | `READY` → `NIL` (stale readiness: the syscall will see the data itself) |
//! | `begin_wait`              | the op, after `EAGAIN`   | `READY` → `NIL` (edge came meanwhile: retry, do not park), or `NIL` → `WAIT` |
//! | `commit(w)`               | the M, after the switch  | `WAIT` → w; fails if an unblock got in first (the G resumes at once) |
//! | `unblock(ioready)`        | netpoll (`true`), close and deadline timers (`false`) | w → `READY`/`NIL` (wake w), `WAIT`/`NIL` → `READY` (if ioready) or `WAIT` → `NIL`; `READY` stays |
//! | `finish_wait`             | the op, after waking     | any → `NIL`; reports whether it was `READY` |
//!
//! # The two races this closes
//!
//! * **Edge between `EAGAIN` and the park.** The edge's `unblock(true)` finds `NIL` or `WAIT` and
//!   leaves `READY`: either `begin_wait` consumes it, or `commit` fails (`WAIT` is gone) and the
//!   G does not sleep. Resetting the word *after* `EAGAIN` instead would erase that edge (loom
//!   finds the lost wakeup).
//! * **Close/deadline between `EAGAIN` and the park.** The closer publishes its flag in `info`,
//!   then (`fence(SeqCst)`) looks at the word; the waiter publishes `WAIT`, then
//!   (`fence(SeqCst)`) looks at `info`. A Dekker pair: at least one sees the other, so either the
//!   waiter sees the error and does not park, or the closer's `unblock(false)` turns `WAIT` into
//!   `NIL` and `commit` fails. The explicit fences matter: loom (and the C++ model) only give
//!   store→load ordering through `fence(SeqCst)`, not through SeqCst accesses.
//!
//! Every transition is a CAS (or swap): nothing races a plain store against an RMW on the same
//! word, which loom cannot model faithfully.

use crate::loom::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

/// Nothing pending, nobody waiting (Go: `pdNil`).
pub(crate) const NIL: usize = 0;
/// Readiness arrived and was not consumed yet (Go: `pdReady`).
pub(crate) const READY: usize = 1;
/// A waiter is committing to park (Go: `pdWait`).
pub(crate) const WAIT: usize = 2;

/// `info` bit: the descriptor is being closed (Go: `pollClosing`).
pub(crate) const INFO_CLOSING: u32 = 1 << 0;
/// `info` bit: the read deadline has passed (Go: `pollExpiredReadDeadline`).
pub(crate) const INFO_READ_EXPIRED: u32 = 1 << 1;
/// `info` bit: the write deadline has passed (Go: `pollExpiredWriteDeadline`).
pub(crate) const INFO_WRITE_EXPIRED: u32 = 1 << 2;
/// `info` bit: epoll reported `EPOLLERR` alone (Go: `pollEventErr`).
pub(crate) const INFO_EVENT_ERR: u32 = 1 << 3;
/// `info` bit: epoll has reported a hang-up, an error or urgent data (`EPOLLRDHUP`, `EPOLLERR`,
/// `EPOLLPRI`) on this descriptor. Sticky until the pollDesc is reused (tokio keeps its closed
/// bits the same way): after it, a read may end the stream with no further edge to wait for.
pub(crate) const INFO_HUP: u32 = 1 << 4;

/// Why a wait on a pollDesc ends without readiness (Go: `pollErrClosing`, `pollErrTimeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollErr {
    /// The descriptor is being closed.
    Closing,
    /// The deadline of this direction has passed.
    Timeout,
}

/// The outcome of [`PollWord::begin_wait`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// Readiness was pending and has been consumed: retry the syscall, do not park.
    Ready,
    /// `WAIT` is published: check `info` (after a `fence(SeqCst)`), then park with `commit`.
    Waiting,
    /// The word already holds `WAIT` or a waiter: two ops wait on the same direction at once,
    /// which the caller's per-direction lock must prevent (Go: `throw("netpollblock: double
    /// wait")`).
    DoubleWait(usize),
}

/// `rg` or `wg` (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct PollWord(AtomicUsize);

impl PollWord {
    pub(crate) fn new() -> PollWord {
        PollWord(AtomicUsize::new(NIL))
    }

    /// Before the syscall: forget readiness that the syscall is about to observe by itself
    /// (Go: `pollReset`). Only `READY` changes; `NIL` stays.
    pub(crate) fn reset(&self) {
        let _ = self
            .0
            .compare_exchange(READY, NIL, Ordering::AcqRel, Ordering::Acquire);
    }

    /// After `EAGAIN`: consume pending readiness, or publish `WAIT` (Go: the loop at the top of
    /// `netpollblock`).
    pub(crate) fn begin_wait(&self) -> Begin {
        loop {
            match self
                .0
                .compare_exchange(READY, NIL, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Begin::Ready,
                Err(NIL) => {}
                Err(other) => return Begin::DoubleWait(other),
            }
            match self
                .0
                .compare_exchange(NIL, WAIT, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Begin::Waiting,
                Err(READY) => continue,
                Err(other) => return Begin::DoubleWait(other),
            }
        }
    }

    /// The park's commit, on the M's stack after the switch: publish waiter `w` in place of
    /// `WAIT` (Go: `netpollblockcommit`). False: an unblock came first; do not sleep.
    pub(crate) fn commit(&self, w: usize) -> bool {
        debug_assert!(w > WAIT, "waiter word collides with a state constant");
        self.0
            .compare_exchange(WAIT, w, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Readiness (`ioready`), or a close/deadline (`!ioready`), for this direction (Go:
    /// `netpollunblock`). Returns the waiter to wake, if one was parked; the caller wakes it.
    pub(crate) fn unblock(&self, ioready: bool) -> Option<usize> {
        let mut old = self.0.load(Ordering::Acquire);
        loop {
            if old == READY || (old == NIL && !ioready) {
                return None;
            }
            let new = if ioready { READY } else { NIL };
            match self
                .0
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (old > WAIT).then_some(old),
                Err(now) => old = now,
            }
        }
    }

    /// After the wait (woken, or not parked at all): clear the word and report whether it was
    /// `READY` (Go: the `Swap(pdNil)` at the end of `netpollblock`). `None`: it still held a
    /// waiter, which means a runtime bug (the caller reports it).
    pub(crate) fn finish_wait(&self) -> Option<bool> {
        match self.0.swap(NIL, Ordering::AcqRel) {
            READY => Some(true),
            NIL | WAIT => Some(false),
            _ => None,
        }
    }

    /// The current word, for assertions.
    pub(crate) fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// The `info` word: the flags a waiter must check after publishing `WAIT` (Go: `atomicInfo`).
/// Written under the pollDesc's lock (close, deadlines) or by netpoll (`EVENT_ERR`, `HUP`), read
/// without a lock by the ops.
#[derive(Debug, Default)]
pub(crate) struct PollInfo(AtomicU32);

impl PollInfo {
    pub(crate) fn new() -> PollInfo {
        PollInfo(AtomicU32::new(0))
    }

    /// Set `bits`, then `fence(SeqCst)`: the closer's/timer's half of the Dekker pair (see the
    /// module doc). The caller looks at the words after this.
    pub(crate) fn set(&self, bits: u32) {
        self.0.fetch_or(bits, Ordering::AcqRel);
        fence(Ordering::SeqCst);
    }

    /// Clear `bits` (a deadline moved into the future, or a recycled descriptor).
    pub(crate) fn clear(&self, bits: u32) {
        self.0.fetch_and(!bits, Ordering::AcqRel);
    }

    /// The raw flags.
    pub(crate) fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// The error a waiter for the given direction must return, if any (Go: `netpollcheckerr`).
    pub(crate) fn check(&self, write: bool) -> Option<PollErr> {
        let i = self.load();
        if i & INFO_CLOSING != 0 {
            return Some(PollErr::Closing);
        }
        let expired = if write {
            INFO_WRITE_EXPIRED
        } else {
            INFO_READ_EXPIRED
        };
        (i & expired != 0).then_some(PollErr::Timeout)
    }
}

/// The waiter's half of the Dekker pair, between `begin_wait` returning `Waiting` and the check
/// of `info`: `WAIT` must be visible before `info` is read.
pub(crate) fn fence_after_publish() {
    fence(Ordering::SeqCst);
}
