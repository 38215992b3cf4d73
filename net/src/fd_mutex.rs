//! `FdMutex`: the reference count and the per-direction locks of a socket (Go:
//! `internal/poll/fd_mutex.go`).
//!
//! One 64-bit atomic word holds:
//!
//! | bits   | field     | meaning                                                   |
//! |--------|-----------|-----------------------------------------------------------|
//! | 0      | `CLOSED`  | `close` has started: every new op fails                   |
//! | 1      | `RLOCK`   | a read-side op (read, recv, accept) is in progress        |
//! | 2      | `WLOCK`   | a write-side op (write, send, connect) is in progress     |
//! | 3..23  | refs      | ops in flight (locked or not: setsockopt, shutdown, ...)  |
//! | 23..43 | rwait     | ops waiting for `RLOCK`                                   |
//! | 43..63 | wwait     | ops waiting for `WLOCK`                                   |
//!
//! Why the locks: a pollDesc has one wait slot per direction, so at most one op per direction
//! may wait for readiness; concurrent readers of one socket queue here instead (FIFO, parked on a
//! `Sema`). A reader and a writer proceed at the same time.
//!
//! Why the count: the fd number must not be closed while any op may still use it, or that op
//! could act on a new socket that reused the number. `close` sets `CLOSED` (new ops fail; queued
//! ones are woken and fail), and whoever drops the last reference afterwards — `close` itself or
//! the last op in flight — closes the fd (`decref`/`rwunlock` return `true` to that caller).

use std::sync::atomic::{AtomicU64, Ordering};

use weft_runtime::sync::Sema;

const CLOSED: u64 = 1 << 0;
const RLOCK: u64 = 1 << 1;
const WLOCK: u64 = 1 << 2;
const REF: u64 = 1 << 3;
const REF_MASK: u64 = ((1 << 20) - 1) << 3;
const RWAIT: u64 = 1 << 23;
const RWAIT_MASK: u64 = ((1 << 20) - 1) << 23;
const WWAIT: u64 = 1 << 43;
const WWAIT_MASK: u64 = ((1 << 20) - 1) << 43;

const OVERFLOW: &str = "weft: too many concurrent operations on one socket (more than 1048575)";

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct FdMutex {
    state: AtomicU64,
    rsema: Sema,
    wsema: Sema,
}

impl FdMutex {
    pub(crate) fn new() -> FdMutex {
        FdMutex::default()
    }

    /// Add a reference for an op that needs no lock. False if the socket is closed.
    pub(crate) fn incref(&self) -> bool {
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            if old & CLOSED != 0 {
                return false;
            }
            let new = old + REF;
            assert!(new & REF_MASK != 0, "{OVERFLOW}");
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => old = now,
            }
        }
    }

    /// Mark closed and add a reference (the closer's). False if it was already closed. Wakes
    /// every op queued for a lock; they fail.
    pub(crate) fn incref_and_close(&self) -> bool {
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            if old & CLOSED != 0 {
                return false;
            }
            let mut new = (old | CLOSED) + REF;
            assert!(new & REF_MASK != 0, "{OVERFLOW}");
            new &= !(RWAIT_MASK | WWAIT_MASK);
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    for _ in 0..(old & RWAIT_MASK) / RWAIT {
                        self.rsema.release();
                    }
                    for _ in 0..(old & WWAIT_MASK) / WWAIT {
                        self.wsema.release();
                    }
                    return true;
                }
                Err(now) => old = now,
            }
        }
    }

    /// Drop a reference. True if the socket is closed and this was the last one: the caller
    /// must now release the fd.
    pub(crate) fn decref(&self) -> bool {
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            assert!(old & REF_MASK != 0, "weft: inconsistent FdMutex (decref)");
            let new = old - REF;
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return new & (CLOSED | REF_MASK) == CLOSED,
                Err(now) => old = now,
            }
        }
    }

    /// Take the read (`read == true`) or write lock and a reference, waiting in FIFO order behind
    /// other ops of the same direction. False if the socket is (or gets) closed.
    pub(crate) fn rwlock(&self, read: bool) -> bool {
        let (bit, wait, mask, sema) = self.side(read);
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            if old & CLOSED != 0 {
                return false;
            }
            let new = if old & bit == 0 {
                let n = (old | bit) + REF;
                assert!(n & REF_MASK != 0, "{OVERFLOW}");
                n
            } else {
                let n = old + wait;
                assert!(n & mask != 0, "{OVERFLOW}");
                n
            };
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & bit == 0 {
                        return true;
                    }
                    // The unlocker (or the closer) subtracted our wait count before releasing.
                    sema.acquire();
                    old = self.state.load(Ordering::Relaxed);
                }
                Err(now) => old = now,
            }
        }
    }

    /// Release the lock taken by `rwlock` and its reference, waking the next op of that
    /// direction. True if the socket is closed and this was the last reference.
    pub(crate) fn rwunlock(&self, read: bool) -> bool {
        let (bit, wait, mask, sema) = self.side(read);
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            assert!(
                old & bit != 0 && old & REF_MASK != 0,
                "weft: inconsistent FdMutex (rwunlock)"
            );
            let mut new = (old & !bit) - REF;
            if old & mask != 0 {
                new -= wait;
            }
            match self
                .state
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & mask != 0 {
                        sema.release();
                    }
                    return new & (CLOSED | REF_MASK) == CLOSED;
                }
                Err(now) => old = now,
            }
        }
    }

    fn side(&self, read: bool) -> (u64, u64, u64, &Sema) {
        if read {
            (RLOCK, RWAIT, RWAIT_MASK, &self.rsema)
        } else {
            (WLOCK, WWAIT, WWAIT_MASK, &self.wsema)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_is_deferred_until_last_op() {
        let mu = FdMutex::new();
        assert!(mu.rwlock(true));
        assert!(mu.incref());
        assert!(mu.incref_and_close());
        assert!(!mu.incref(), "no new op after close");
        assert!(!mu.rwlock(false));
        assert!(!mu.decref(), "the reader still holds a reference");
        assert!(!mu.rwunlock(true), "the closer still holds a reference");
        assert!(mu.decref(), "the closer's decref is the last");
        assert!(!mu.incref_and_close(), "double close is reported");
    }
}
