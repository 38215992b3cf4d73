//! loom models of `weft::sync`'s state machines: the wait queue's claim protocol
//! (`sync/wait_queue.rs`), the semaphore's hand-off (`sync/sema.rs`), the mutex state word in
//! normal and starvation mode (`sync/raw_mutex.rs`), the rwlock counters
//! (`sync/raw_rwlock.rs`), the condition variable's two-phase wait and `Once`.
//!
//! These run the real code: under `--cfg loom` the wait queue blocks a "waiter" (a loom thread)
//! on a `Notify` instead of parking a G, and wakes it by notifying (see `loom_waiter` in
//! `wait_queue.rs`): a lost wakeup shows up as a loom deadlock, a double wakeup as a failed
//! assertion. Data protected by a lock is a loom `UnsafeCell`, so loom also reports two holders
//! at once and a missing happens-before edge from one holder to the next.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::sync::once::Once;
use crate::sync::raw_mutex::RawMutex;
use crate::sync::raw_rwlock::RawRwLock;
use crate::sync::sema::Sema;
use crate::sync::wait_queue::{wake_waiter, Claim, Node, WaitQueue, TIMED_OUT, WOKEN};

/// A counter behind a raw lock; loom checks every access for races.
struct Guarded<L> {
    lock: L,
    value: UnsafeCell<usize>,
}

// SAFETY: `value` is only accessed while `lock` is held (what the models check).
unsafe impl<L: Sync> Sync for Guarded<L> {}
// SAFETY: as above.
unsafe impl<L: Send> Send for Guarded<L> {}

impl Guarded<RawMutex> {
    fn incr(&self) {
        self.lock.lock();
        // SAFETY: we hold the lock; loom checks that nobody else touches `value` meanwhile.
        self.value.with_mut(|p| unsafe { *p += 1 });
        self.lock.unlock();
    }

    fn get(&self) -> usize {
        self.lock.lock();
        // SAFETY: as in `incr`.
        let v = self.value.with(|p| unsafe { *p });
        self.lock.unlock();
        v
    }
}

/// A G waits on an empty semaphore while another releases: it gets the permit, nothing is
/// left over.
#[test]
fn sema_acquire_vs_release() {
    loom::model(|| {
        let sem = Arc::new(Sema::new(0));
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.acquire());
        sem.release();
        t.join().unwrap();
        assert_eq!(sem.available(), 0);
        assert_eq!(sem.waiters(), 0);
    });
}

/// Two waiters, two releases: both get a permit (one each, handed off or taken from the count),
/// and a `try_acquire` racing them never takes one that a queued waiter needed (that would
/// deadlock the model).
#[test]
fn sema_two_waiters_two_releases() {
    loom::model(|| {
        let sem = Arc::new(Sema::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = sem.clone();
                thread::spawn(move || s.acquire())
            })
            .collect();
        sem.release();
        sem.release();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(sem.available(), 0);
    });
}

/// `release_many` hands permits to the queued waiters and keeps the rest.
#[test]
fn sema_release_many() {
    loom::model(|| {
        let sem = Arc::new(Sema::new(0));
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.acquire());
        sem.release_many(2);
        t.join().unwrap();
        assert_eq!(sem.available(), 1);
    });
}

/// Two lockers in normal mode, twice each (so a woken waiter can lose to a barging locker and
/// queue again at the head): mutual exclusion, every increment seen.
#[test]
fn mutex_normal_mode() {
    loom::model(|| {
        let m = Arc::new(Guarded {
            lock: RawMutex::new(),
            value: UnsafeCell::new(0),
        });
        let m2 = m.clone();
        let t = thread::spawn(move || {
            m2.incr();
            m2.incr();
        });
        m.incr();
        m.incr();
        t.join().unwrap();
        assert_eq!(m.get(), 4);
    });
}

/// The same with every waiter starving after one wait: the lock is handed directly from owner
/// to waiter (STARVING set, LOCKED clear in between), and the mode is left again.
#[test]
fn mutex_starvation_handoff() {
    loom::model(|| {
        let m = Arc::new(Guarded {
            lock: RawMutex::with_loom_starvation(true),
            value: UnsafeCell::new(0),
        });
        let m2 = m.clone();
        let t = thread::spawn(move || {
            m2.incr();
            m2.incr();
        });
        m.incr();
        m.incr();
        t.join().unwrap();
        assert_eq!(m.get(), 4);
        assert!(
            !m.lock.is_locked(),
            "starvation mode left behind: {:?}",
            m.lock
        );
    });
}

/// Three lockers, once each, starving after one wait: the hand-off chain with two waiters.
#[test]
fn mutex_three_lockers_starving() {
    loom::model(|| {
        let m = Arc::new(Guarded {
            lock: RawMutex::with_loom_starvation(true),
            value: UnsafeCell::new(0),
        });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || m.incr())
            })
            .collect();
        m.incr();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(m.get(), 3);
        assert!(!m.lock.is_locked(), "left locked: {:?}", m.lock);
    });
}

/// `try_lock` against a holder and a waiter: it never succeeds while the lock is held or being
/// handed over, and never breaks exclusion.
#[test]
fn mutex_try_lock() {
    loom::model(|| {
        let m = Arc::new(Guarded {
            lock: RawMutex::with_loom_starvation(true),
            value: UnsafeCell::new(0),
        });
        let m2 = m.clone();
        let t = thread::spawn(move || m2.incr());
        if m.lock.try_lock() {
            // SAFETY: we hold the lock.
            m.value.with_mut(|p| unsafe { *p += 1 });
            m.lock.unlock();
        } else {
            m.incr();
        }
        t.join().unwrap();
        assert_eq!(m.get(), 2);
    });
}

/// A reader and a writer: exclusion, and the reader sees the value before or after the write.
#[test]
fn rwlock_reader_vs_writer() {
    loom::model(|| {
        let l = Arc::new(Guarded {
            lock: RawRwLock::new(),
            value: UnsafeCell::new(0),
        });
        let l2 = l.clone();
        let w = thread::spawn(move || {
            l2.lock.write();
            // SAFETY: write-locked.
            l2.value.with_mut(|p| unsafe { *p = 1 });
            l2.lock.write_unlock();
        });
        l.lock.read();
        // SAFETY: read-locked: only reads happen concurrently.
        let v = l.value.with(|p| unsafe { *p });
        assert!(v <= 1);
        l.lock.read_unlock();
        w.join().unwrap();
    });
}

/// Two readers in turn against a writer: the writer waits for the readers inside when it
/// announces itself, readers arriving afterwards wait for the writer, nobody is lost.
#[test]
fn rwlock_two_readers_one_writer() {
    loom::model(|| {
        let l = Arc::new(Guarded {
            lock: RawRwLock::new(),
            value: UnsafeCell::new(0),
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || {
                    l.lock.read();
                    // SAFETY: read-locked.
                    let v = l.value.with(|p| unsafe { *p });
                    assert!(v <= 1);
                    l.lock.read_unlock();
                })
            })
            .collect();
        l.lock.write();
        // SAFETY: write-locked.
        l.value.with_mut(|p| unsafe { *p += 1 });
        l.lock.write_unlock();
        for r in readers {
            r.join().unwrap();
        }
        assert!(l.lock.try_write(), "write lock left held");
        l.lock.write_unlock();
    });
}

/// The two-phase wait of `Condvar`, with the mutex: the waiter checks the flag under the lock,
/// queues its node, unlocks, then blocks; the notifier sets the flag under the lock, unlocks and
/// notifies. No lost wakeup in any order.
#[test]
fn condvar_wait_vs_notify() {
    loom::model(|| {
        let m = Arc::new(Guarded {
            lock: RawMutex::new(),
            value: UnsafeCell::new(0),
        });
        let q = Arc::new(WaitQueue::new());
        let (m2, q2) = (m.clone(), q.clone());
        let notifier = thread::spawn(move || {
            m2.incr();
            q2.wake_one();
        });
        // Condvar::wait_while(|v| *v == 0), untimed.
        m.lock.lock();
        // SAFETY: we hold the lock.
        while m.value.with(|p| unsafe { *p }) == 0 {
            let node = Node::new();
            node.begin();
            // SAFETY: `node` lives until `block` returns, which (untimed) needs a waker, which
            // unlinks it first.
            unsafe { q.enqueue(&node) };
            m.lock.unlock();
            assert_eq!(node.block(crate::wait_reason::WaitReason::Condvar), WOKEN);
            m.lock.lock();
        }
        m.lock.unlock();
        notifier.join().unwrap();
    });
}

/// A timed wait: the notifier and the timeout race for one waiter. Exactly one claims it, the
/// waiter is woken once, and the outcome matches (`notify_one` reports a wakeup iff the waiter
/// ended `WOKEN`).
#[test]
fn notify_vs_timeout() {
    loom::model(|| {
        let q = Arc::new(WaitQueue::new());
        let node = Arc::new(Node::new());
        let ticket = node.begin();
        // SAFETY: `node` is kept alive by the Arc until every thread is joined.
        unsafe { q.enqueue(&node) };
        let q2 = q.clone();
        let notifier = thread::spawn(move || q2.wake_one());
        let n2 = node.clone();
        let timer = thread::spawn(move || {
            if let Claim::Blocked(w) = n2.time_out(ticket) {
                wake_waiter(w);
            }
        });
        let state = node.block(crate::wait_reason::WaitReason::Condvar);
        if state == TIMED_OUT {
            q.remove(&node);
        }
        let notified = notifier.join().unwrap();
        timer.join().unwrap();
        assert_eq!(notified, state == WOKEN, "state {state}");
        assert_eq!(q.len(), 0);
        assert!(!node.is_pending(ticket));
    });
}

/// A notification that finds the head waiter timed out goes to the next one: two queued
/// waiters (not yet blocked), a timeout for the first, one `notify_one`. Exactly one waiter ends
/// notified, and if the first timed out it is the second.
#[test]
fn notify_skips_timed_out_waiter() {
    loom::model(|| {
        let q = Arc::new(WaitQueue::new());
        let a = Arc::new(Node::new());
        let b = Arc::new(Node::new());
        let ta = a.begin();
        b.begin();
        // SAFETY: both nodes are kept alive by their Arcs until the end of the model.
        unsafe {
            q.enqueue(&a);
            q.enqueue(&b);
        }
        let q2 = q.clone();
        let notifier = thread::spawn(move || assert!(q2.wake_one()));
        let a2 = a.clone();
        let timer = thread::spawn(move || a2.time_out(ta));
        notifier.join().unwrap();
        let timed = timer.join().unwrap();
        let (sa, sb) = (a.state(), b.state());
        assert!((sa == WOKEN) != (sb == WOKEN), "a {sa}, b {sb}");
        if timed == Claim::Early {
            assert_eq!(sa, TIMED_OUT);
            assert_eq!(sb, WOKEN);
        }
        q.remove(&a);
        q.remove(&b);
    });
}

/// `wait_unless` against "set the condition, then wake all": the waiter never sleeps through it.
#[test]
fn wait_unless_vs_wake_all() {
    loom::model(|| {
        let q = Arc::new(WaitQueue::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (q2, f2) = (q.clone(), flag.clone());
        let t = thread::spawn(move || {
            f2.store(true, Ordering::Release);
            q2.wake_all();
        });
        q.wait_unless(false, || flag.load(Ordering::Acquire));
        assert!(flag.load(Ordering::Acquire));
        t.join().unwrap();
    });
}

/// Two racing `call_once`: the closure runs exactly once, and both callers return after it did.
#[test]
fn once_two_callers() {
    loom::model(|| {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (o2, r2) = (once.clone(), runs.clone());
        let t = thread::spawn(move || {
            o2.call_once(|| {
                r2.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(r2.load(Ordering::Relaxed), 1);
        });
        once.call_once(|| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert!(once.is_completed());
        t.join().unwrap();
    });
}
