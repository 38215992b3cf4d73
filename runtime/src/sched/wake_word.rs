//! One-waiter wake words: the atomic state machines behind `park()`'s token and `JoinHandle`.
//!
//! Each is a single `usize` that holds either a small state constant or the address of the one
//! waiter (a parked G, whose address is at least 8-aligned and so never collides with the
//! constants). The functions here do only the atomic transitions; the callers do the parking and
//! readying. Keeping them apart lets loom check every interleaving of the transitions
//! (`src/tests/loom_wake_word.rs`) without a real scheduler.
//!
//! # `TokenWord` (std's thread-park token, for a G)
//!
//! | state     | `take_token`      | `commit_park(w)`        | `unpark`                       |
//! |-----------|-------------------|-------------------------|--------------------------------|
//! | `EMPTY`   | false             | → `w`, true (parked)    | → `NOTIFIED`, no one to wake   |
//! | `NOTIFIED`| → `EMPTY`, true   | → `EMPTY`, false (cancel park, token consumed) | nothing |
//! | waiter w  | —                 | —                       | → `EMPTY`, wake w              |
//!
//! # `DoneWord` (a join packet)
//!
//! | state         | `commit_wait(w)` | `register_thread` | `complete`                       |
//! |---------------|------------------|-------------------|----------------------------------|
//! | `RUNNING`     | → `w`, true      | → `THREAD`, true  | → `DONE`, nobody to wake         |
//! | waiter w      | —                | —                 | → `DONE`, wake G w               |
//! | `THREAD`      | —                | —                 | → `DONE`, wake the thread        |
//! | `DONE`        | false            | false             | (runtime bug: completed twice)   |
//!
//! Orderings: every transition is AcqRel/Acquire, so what the completer wrote before `complete`
//! (the result) is visible to the waiter after it sees `DONE`, and what a thread waiter stored
//! before `register_thread` (its handle) is visible to the completer.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const EMPTY: usize = 0;
const NOTIFIED: usize = 1;

const RUNNING: usize = 0;
const DONE: usize = 1;
const THREAD: usize = 2;

/// A park token (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct TokenWord(AtomicUsize);

impl TokenWord {
    pub(crate) fn new() -> TokenWord {
        TokenWord(AtomicUsize::new(EMPTY))
    }

    /// Consume an available token. True: it was there, do not park.
    pub(crate) fn take_token(&self) -> bool {
        self.0
            .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The park's commit: publish waiter `w`. False: a token arrived meanwhile (it is consumed
    /// here) and the park must be cancelled.
    pub(crate) fn commit_park(&self, w: usize) -> bool {
        debug_assert!(
            w > NOTIFIED,
            "waiter address collides with a state constant"
        );
        match self
            .0
            .compare_exchange(EMPTY, w, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                // Only NOTIFIED can be here: the only waiter is the caller itself. CAS rather
                // than store, so that loom (and a reader) see a single RMW per transition.
                let _ =
                    self.0
                        .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire);
                false
            }
        }
    }

    /// Make the token available. Returns the parked waiter to wake, if there was one (the token
    /// is then consumed by that wakeup).
    pub(crate) fn unpark(&self) -> Option<usize> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let next = match cur {
                NOTIFIED => return None,
                EMPTY => NOTIFIED,
                _ => EMPTY,
            };
            match self
                .0
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (next == EMPTY).then_some(cur),
                Err(now) => cur = now,
            }
        }
    }
}

/// Who `DoneWord::complete` must wake.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// Nobody waits yet.
    Nobody,
    /// A G parked in `join`, by address.
    G(usize),
    /// An OS thread blocked in `join` (its handle is stored beside the word).
    Thread,
}

/// A join packet's state (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct DoneWord(AtomicUsize);

impl DoneWord {
    pub(crate) fn new() -> DoneWord {
        DoneWord(AtomicUsize::new(RUNNING))
    }

    pub(crate) fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire) == DONE
    }

    /// A joining G's commit: publish waiter `w`. False: already done, do not park.
    pub(crate) fn commit_wait(&self, w: usize) -> bool {
        debug_assert!(w > THREAD, "waiter address collides with a state constant");
        self.0
            .compare_exchange(RUNNING, w, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A joining OS thread registers (after storing its handle). False: already done.
    pub(crate) fn register_thread(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, THREAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The finishing G publishes `DONE` (after writing its result) and learns whom to wake.
    /// `None` means the word was already `DONE`: a runtime bug the caller reports.
    pub(crate) fn complete(&self) -> Option<Waiter> {
        match self.0.swap(DONE, Ordering::AcqRel) {
            RUNNING => Some(Waiter::Nobody),
            THREAD => Some(Waiter::Thread),
            DONE => None,
            g => Some(Waiter::G(g)),
        }
    }
}
