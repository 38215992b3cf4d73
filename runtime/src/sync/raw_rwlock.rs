//! `RawRwLock`: the counters of [`RwLock`](super::RwLock), Go's `sync.RWMutex` algorithm
//! (`sync/rwmutex.go`) on [`RawMutex`] and two [`Sema`]s.
//!
//! | field          | meaning                                                               |
//! |----------------|-----------------------------------------------------------------------|
//! | `w`            | held by the writer that owns the lock or is waiting for readers to leave |
//! | `reader_count` | readers holding or waiting; minus `MAX_READERS` while a writer is pending |
//! | `reader_wait`  | readers the pending writer still waits for                            |
//! | `writer_sem`   | the pending writer sleeps here until the last of those readers leaves |
//! | `reader_sem`   | readers that arrived while a writer was pending sleep here            |
//!
//! * **read**: `reader_count += 1`; if the result is negative a writer is pending: sleep on
//!   `reader_sem`. One atomic in the fast path; `read_unlock` likewise.
//! * **write**: lock `w` (one writer at a time), then `reader_count -= MAX_READERS` announces
//!   the writer (new readers now block), and the number of readers it displaced is added to
//!   `reader_wait`; if any are still inside, sleep on `writer_sem`. The last of them to leave
//!   (`reader_wait` reaches 0) releases it.
//! * **write_unlock**: `reader_count += MAX_READERS` (readers may enter again), release every
//!   reader that blocked meanwhile (`reader_sem`, one hand-off each), then unlock `w`.
//!
//! **Writer preference, without reader starvation**: once a writer waits, new readers queue
//! behind it, so a stream of readers cannot starve a writer; and when the writer unlocks it
//! admits every reader that queued during its turn before the next writer (who waits on `w`
//! meanwhile) can announce itself, so a stream of writers cannot starve readers either. As in Go,
//! a reader must not take the read lock again while holding it (recursive read locking
//! deadlocks once a writer queues between the two).

use crate::loom::sync::atomic::{AtomicIsize, Ordering};

use super::raw_mutex::RawMutex;
use super::sema::Sema;
use crate::wait_reason::WaitReason;

/// More concurrent readers than this is a bug (Go: `rwmutexMaxReaders`).
const MAX_READERS: isize = 1 << 30;

/// See the module doc.
pub(crate) struct RawRwLock {
    w: RawMutex,
    writer_sem: Sema,
    reader_sem: Sema,
    reader_count: AtomicIsize,
    reader_wait: AtomicIsize,
}

impl RawRwLock {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> RawRwLock {
        RawRwLock {
            w: RawMutex::new(),
            writer_sem: Sema::with_reason(0, WaitReason::RwLockWrite),
            reader_sem: Sema::with_reason(0, WaitReason::RwLockRead),
            reader_count: AtomicIsize::new(0),
            reader_wait: AtomicIsize::new(0),
        }
    }

    /// An unlocked lock.
    #[cfg(loom)]
    pub(crate) fn new() -> RawRwLock {
        RawRwLock {
            w: RawMutex::new(),
            writer_sem: Sema::with_reason(0, WaitReason::RwLockWrite),
            reader_sem: Sema::with_reason(0, WaitReason::RwLockRead),
            reader_count: AtomicIsize::new(0),
            reader_wait: AtomicIsize::new(0),
        }
    }

    /// Take a read lock (Go: `RLock`).
    #[inline]
    pub(crate) fn read(&self) {
        let r = self.reader_count.fetch_add(1, Ordering::AcqRel) + 1;
        assert!(r < MAX_READERS, "weft: too many readers of one RwLock");
        if r < 0 {
            // A writer is pending: wait for it (it releases us when it unlocks).
            self.reader_sem.acquire();
        }
    }

    /// Take a read lock if no writer holds or waits for the lock (Go: `TryRLock`).
    pub(crate) fn try_read(&self) -> bool {
        let mut c = self.reader_count.load(Ordering::Relaxed);
        loop {
            if c < 0 {
                return false;
            }
            assert!(c + 1 < MAX_READERS, "weft: too many readers of one RwLock");
            match self.reader_count.compare_exchange_weak(
                c,
                c + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// Release a read lock (Go: `RUnlock`).
    #[inline]
    pub(crate) fn read_unlock(&self) {
        let r = self.reader_count.fetch_sub(1, Ordering::AcqRel) - 1;
        if r < 0 {
            self.read_unlock_slow(r);
        }
    }

    #[cold]
    fn read_unlock_slow(&self, r: isize) {
        assert!(
            r + 1 != 0 && r + 1 != -MAX_READERS,
            "weft: read_unlock of an RwLock not read-locked"
        );
        // A writer is pending; the last reader it waits for wakes it.
        if self.reader_wait.fetch_sub(1, Ordering::AcqRel) - 1 == 0 {
            self.writer_sem.release();
        }
    }

    /// Take the write lock (Go: `Lock`).
    pub(crate) fn write(&self) {
        // One writer at a time.
        self.w.lock();
        // Announce the writer; `r` readers were inside (or queued behind an earlier writer and
        // already admitted).
        let r = self.reader_count.fetch_sub(MAX_READERS, Ordering::AcqRel);
        if r != 0 && self.reader_wait.fetch_add(r, Ordering::AcqRel) + r != 0 {
            self.writer_sem.acquire();
        }
    }

    /// Take the write lock if nobody holds or waits for it (Go: `TryLock`).
    pub(crate) fn try_write(&self) -> bool {
        if !self.w.try_lock() {
            return false;
        }
        if self
            .reader_count
            .compare_exchange(0, -MAX_READERS, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            self.w.unlock();
            return false;
        }
        true
    }

    /// Release the write lock (Go: `Unlock`).
    pub(crate) fn write_unlock(&self) {
        // Let readers in again.
        let r = self.reader_count.fetch_add(MAX_READERS, Ordering::AcqRel) + MAX_READERS;
        assert!(
            r < MAX_READERS,
            "weft: write_unlock of an RwLock not write-locked"
        );
        // Admit the readers that queued during our turn (one hand-off each, one lock).
        self.reader_sem.release_many(r as usize);
        // Let the next writer in.
        self.w.unlock();
    }

    /// Whether a writer holds or waits for the lock (a snapshot).
    pub(crate) fn is_write_locked(&self) -> bool {
        self.reader_count.load(Ordering::Relaxed) < 0
    }
}

impl std::fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.reader_count.load(Ordering::Relaxed);
        f.debug_struct("RawRwLock")
            .field("readers", &(if c < 0 { c + MAX_READERS } else { c }))
            .field("writer", &(c < 0))
            .finish()
    }
}
