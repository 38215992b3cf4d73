//! A P's local run queue: a fixed 256-slot lock-free ring plus the `runnext` slot.
//!
//! Go counterpart: `p.runq`, `p.runqhead`, `p.runqtail`, `p.runnext` and the functions
//! `runqput`, `runqputslow`, `runqget`, `runqgrab`, `runqsteal` in `proc.go`.
//!
//! # Protocol
//!
//! * The **owner** (the M holding the P) is the only writer of `tail` and of the slots. It pushes
//!   with: write slot `tail % CAP` (Relaxed), then `tail.store(tail + 1, Release)`.
//! * **Consumers** (the owner popping, thieves stealing) claim slots by CAS on `head`: read the
//!   slot(s) first, then `head.compare_exchange(h, h + n, AcqRel)`. A value read before a failed
//!   CAS is discarded. A successful CAS proves `head` did not move, so the owner cannot have
//!   overwritten those slots: it writes slot `t % CAP` only while `t - head < CAP`.
//! * `runnext` is owned by the owner for writes and taken by CAS by anyone (the owner in `get`, a
//!   thief on its last steal pass), so a G in `runnext` is taken exactly once.
//! * Overflow: when the ring is full, `put` moves half of it plus the new item out in one batch
//!   (the caller sends the batch to the global queue), so the cost of the global lock is paid once
//!   per `CAP / 2` puts, as in Go.
//!
//! Indices are `u32` and wrap; `tail - head` (wrapping) is the length, at most `CAP`.
//!
//! The items are `NonNull<T>` that the queue *owns* while they are inside: whoever takes one out
//! owns it. The queue never dereferences them, which is what lets the loom model use plain boxes.
//!
//! Alternatives rejected: crossbeam-deque's Chase-Lev deque (LIFO for the owner, unbounded, and
//! no `runnext`); a `Mutex<VecDeque>` per P (a lock on every spawn and wakeup).

use std::ptr::{self, NonNull};

use crate::loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Slots in a P's local run queue (Go: `len(p.runq)`). The loom models use a 4-slot ring, so
/// that a model can fill it and overflow in a handful of steps.
#[cfg(not(loom))]
pub const RUNQ_CAP: usize = 256;
/// Slots in a P's local run queue: the loom models' small ring.
#[cfg(loom)]
pub const RUNQ_CAP: usize = 4;

/// Half the ring: the batch a thief steals and the batch an overflowing owner moves to the
/// global queue.
pub const RUNQ_HALF: usize = RUNQ_CAP / 2;

/// The batch `put` hands back when the ring is full: `RUNQ_HALF` items from the head of the ring
/// followed by the item that did not fit. The caller must move all of them to the global queue.
#[must_use = "the batch holds Gs that must be moved to the global queue"]
pub struct Overflow<T> {
    items: [*mut T; RUNQ_HALF + 1],
}

impl<T> Overflow<T> {
    /// The items of the batch, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = NonNull<T>> + '_ {
        // Every slot was filled from a non-null queue item by `put_slow`.
        self.items
            .iter()
            .map(|&p| NonNull::new(p).expect("overflow batch is full"))
    }
}

/// A bounded single-producer, multi-consumer ring with a `runnext` slot. See the module doc.
pub struct RunQueue<T> {
    /// Next slot to take. Consumers advance it by CAS.
    head: AtomicU32,
    /// Next slot to fill. Only the owner stores it (Release); consumers load it (Acquire).
    tail: AtomicU32,
    /// The ring. Written by the owner only, at `tail % CAP`, before publishing `tail`.
    slots: Box<[AtomicPtr<T>]>,
    /// A single item that runs before the ring (Go: `runnext`). Null when empty.
    runnext: AtomicPtr<T>,
}

// SAFETY: the queue only moves owned `NonNull<T>` between threads (the items are handed over, never
// shared), so it is Send/Sync when the items themselves may move between threads.
unsafe impl<T: Send> Send for RunQueue<T> {}
// SAFETY: as above; all shared state is atomics.
unsafe impl<T: Send> Sync for RunQueue<T> {}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RunQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        RunQueue {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            slots: (0..RUNQ_CAP)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            runnext: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn slot(&self, i: u32) -> &AtomicPtr<T> {
        &self.slots[i as usize % RUNQ_CAP]
    }

    /// Number of items in the ring plus `runnext`. Racy when called by a non-owner: a snapshot.
    pub fn len(&self) -> usize {
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            // Re-read head so that h and t are from one moment (Go's runqlen is racy too, but
            // this keeps len() <= CAP for the tests).
            if self.head.load(Ordering::Acquire) == h {
                let n = t.wrapping_sub(h) as usize;
                return n.min(RUNQ_CAP)
                    + usize::from(!self.runnext.load(Ordering::Acquire).is_null());
            }
        }
    }

    /// Whether the ring and `runnext` look empty (Go: `runqempty`). A snapshot for non-owners.
    pub fn is_empty(&self) -> bool {
        // Go reads head, tail, runnext, then tail again: a put into runnext can kick the old
        // runnext into the ring, so seeing `head == tail` and `runnext == nil` at two different
        // moments is not proof of emptiness unless tail did not move in between.
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let next = self.runnext.load(Ordering::Acquire);
            if self.tail.load(Ordering::Acquire) == t {
                return h == t && next.is_null();
            }
        }
    }

    /// Owner only: put `item` at the tail, or into `runnext` when `next` is true (the previous
    /// `runnext` item, if any, moves to the tail). Returns the overflow batch when the ring was
    /// full; the caller must move it to the global queue.
    #[doc(alias = "runqput")]
    pub fn put(&self, item: NonNull<T>, next: bool) -> Option<Overflow<T>> {
        let mut item = item;
        if next {
            let mut old = self.runnext.load(Ordering::Acquire);
            // CAS, not swap: a thief may take runnext concurrently (see the module doc; loom 0.7
            // also reports false deadlocks when a swap races a plain store on one atomic).
            loop {
                match self.runnext.compare_exchange_weak(
                    old,
                    item.as_ptr(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(cur) => old = cur,
                }
            }
            match NonNull::new(old) {
                None => return None,
                Some(kicked) => item = kicked,
            }
        }
        loop {
            let h = self.head.load(Ordering::Acquire); // pairs with consumers' CAS
            let t = self.tail.load(Ordering::Relaxed); // only we store tail
            if (t.wrapping_sub(h) as usize) < RUNQ_CAP {
                self.slot(t).store(item.as_ptr(), Ordering::Relaxed);
                self.tail.store(t.wrapping_add(1), Ordering::Release); // pairs with Acquire loads of tail
                return None;
            }
            if let Some(batch) = self.put_slow(item, h, t) {
                return Some(batch);
            }
            // A consumer took something meanwhile: the ring has room again.
        }
    }

    /// Owner only: the ring is full; claim half of it for the global queue (Go: `runqputslow`).
    fn put_slow(&self, item: NonNull<T>, h: u32, t: u32) -> Option<Overflow<T>> {
        debug_assert_eq!(
            t.wrapping_sub(h) as usize,
            RUNQ_CAP,
            "put_slow on a queue that is not full"
        );
        let mut items = [ptr::null_mut(); RUNQ_HALF + 1];
        for (i, slot) in items.iter_mut().take(RUNQ_HALF).enumerate() {
            *slot = self.slot(h.wrapping_add(i as u32)).load(Ordering::Relaxed);
        }
        if self
            .head
            .compare_exchange(
                h,
                h.wrapping_add(RUNQ_HALF as u32),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return None;
        }
        items[RUNQ_HALF] = item.as_ptr();
        Some(Overflow { items })
    }

    /// Owner only: take the next item. With `prefer_runnext`, `runnext` comes first (Go's order);
    /// without it the ring's head comes first, which is how the scheduler ends a chain of
    /// `runnext` hand-offs that would otherwise starve the ring. The flag in the result says the
    /// item came from `runnext`.
    #[doc(alias = "runqget")]
    pub fn get(&self, prefer_runnext: bool) -> Option<(NonNull<T>, bool)> {
        if prefer_runnext {
            if let Some(item) = self.take_runnext() {
                return Some((item, true));
            }
        }
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Relaxed); // only we store tail
            if h == t {
                break;
            }
            let item = self.slot(h).load(Ordering::Relaxed);
            if self
                .head
                .compare_exchange(h, h.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Some((NonNull::new(item).expect("null item in run queue"), false));
            }
        }
        if !prefer_runnext {
            if let Some(item) = self.take_runnext() {
                return Some((item, true));
            }
        }
        None
    }

    fn take_runnext(&self) -> Option<NonNull<T>> {
        let next = self.runnext.load(Ordering::Acquire);
        if next.is_null() {
            return None;
        }
        // Only the owner puts into runnext, so the only race is a thief taking it.
        self.runnext
            .compare_exchange(next, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .and_then(NonNull::new)
    }

    #[allow(dead_code)] // tests, the loom model
    /// Owner only: take every item (ring and `runnext`), e.g. to hand a P's work elsewhere.
    pub fn drain(&self) -> Vec<NonNull<T>> {
        let mut out = Vec::new();
        while let Some((item, _)) = self.get(true) {
            out.push(item);
        }
        out
    }

    /// Thief: move about half of `self`'s items into `dst`, whose owner must be the caller, and
    /// return one of them for the caller to run (Go: `runqsteal`). When the ring is empty and
    /// `steal_runnext` is set, takes `runnext` instead, if `may_take_runnext(slot, item)` agrees
    /// (the scheduler waits there ~3 µs, as Go does, so that a P about to run its `runnext` G is
    /// not robbed of it).
    #[doc(alias = "runqsteal")]
    pub fn steal_into(
        &self,
        dst: &RunQueue<T>,
        steal_runnext: bool,
        may_take_runnext: impl FnOnce(&AtomicPtr<T>, *mut T) -> bool,
    ) -> Option<NonNull<T>> {
        let dt = dst.tail.load(Ordering::Relaxed); // the caller owns dst
                                                   // The batch (at most half a ring) is written into dst's free slots before it is claimed:
                                                   // dst must have room for the largest one, or queued items would be overwritten. Go only
                                                   // steals into an empty queue; weft's spare P may steal while it holds a few Gs.
        assert!(
            dt.wrapping_sub(dst.head.load(Ordering::Acquire)) as usize <= RUNQ_CAP - RUNQ_HALF,
            "runqsteal: the thief's queue has no room for a batch"
        );
        let n = self.grab_into(dst, dt, steal_runnext, may_take_runnext);
        if n == 0 {
            return None;
        }
        let n = n - 1;
        let item = dst.slot(dt.wrapping_add(n)).load(Ordering::Relaxed);
        if n > 0 {
            dst.tail.store(dt.wrapping_add(n), Ordering::Release);
        }
        NonNull::new(item)
    }

    /// Copy up to half of the ring into `dst`'s slots starting at `dt`, claiming them by CAS on
    /// `head` (Go: `runqgrab`). Returns how many were claimed.
    fn grab_into(
        &self,
        dst: &RunQueue<T>,
        dt: u32,
        steal_runnext: bool,
        may_take_runnext: impl FnOnce(&AtomicPtr<T>, *mut T) -> bool,
    ) -> u32 {
        let mut may_take_runnext = Some(may_take_runnext);
        loop {
            let h = self.head.load(Ordering::Acquire); // pairs with other consumers' CAS
            let t = self.tail.load(Ordering::Acquire); // pairs with the owner's Release store
            let n = t.wrapping_sub(h);
            let n = n - n / 2;
            if n == 0 {
                if steal_runnext {
                    let next = self.runnext.load(Ordering::Acquire);
                    // Take exactly the item the caller judged: if the slot changed meanwhile,
                    // the CAS below fails and nothing is stolen.
                    if !next.is_null() {
                        if let Some(ask) = may_take_runnext.take() {
                            if !ask(&self.runnext, next) {
                                return 0;
                            }
                        }
                    }
                    if !next.is_null() {
                        // Keep the pointer the CAS swapped out, not `next`: between our load and
                        // the CAS the item may have been run and freed and a new one put here at
                        // the same address (ABA). The CAS then succeeds, and only its result
                        // carries the new item's provenance (Miri reports a use-after-free with
                        // `next`).
                        if let Ok(taken) = self.runnext.compare_exchange(
                            next,
                            ptr::null_mut(),
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        ) {
                            dst.slot(dt).store(taken, Ordering::Relaxed);
                            return 1;
                        }
                    }
                }
                return 0;
            }
            if n as usize > RUNQ_HALF {
                // h and t were read at different moments and are inconsistent: retry.
                continue;
            }
            for i in 0..n {
                let item = self.slot(h.wrapping_add(i)).load(Ordering::Relaxed);
                dst.slot(dt.wrapping_add(i)).store(item, Ordering::Relaxed);
            }
            if self
                .head
                .compare_exchange(h, h.wrapping_add(n), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return n;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn item(v: usize) -> NonNull<usize> {
        NonNull::from(Box::leak(Box::new(v)))
    }

    fn take(p: NonNull<usize>) -> usize {
        // SAFETY: every item in these tests comes from `item`, and each is taken out exactly once.
        *unsafe { Box::from_raw(p.as_ptr()) }
    }

    #[test]
    fn fifo_order_and_len() {
        let q = RunQueue::new();
        for v in 0..10 {
            assert!(q.put(item(v), false).is_none());
        }
        assert_eq!(q.len(), 10);
        for v in 0..10 {
            let (p, from_next) = q.get(true).unwrap();
            assert!(!from_next);
            assert_eq!(take(p), v);
        }
        assert!(q.is_empty());
        assert!(q.get(true).is_none());
    }

    #[test]
    fn runnext_runs_first_and_kicks_old_to_tail() {
        let q = RunQueue::new();
        q.put(item(1), false);
        q.put(item(2), true);
        q.put(item(3), true); // kicks 2 to the tail
        let order: Vec<usize> = std::iter::from_fn(|| q.get(true))
            .map(|(p, _)| take(p))
            .collect();
        assert_eq!(order, vec![3, 1, 2]);
        q.put(item(4), false);
        q.put(item(5), true);
        let order: Vec<usize> = std::iter::from_fn(|| q.get(false))
            .map(|(p, _)| take(p))
            .collect();
        assert_eq!(
            order,
            vec![4, 5],
            "without prefer_runnext the ring comes first"
        );
    }

    #[test]
    fn fill_then_steal_takes_half() {
        // Every fill level; under Miri (which interprets each step) a spread of them.
        let step = if cfg!(miri) { 17 } else { 1 };
        for n in (0..=RUNQ_CAP).step_by(step).chain([RUNQ_CAP - 1, RUNQ_CAP]) {
            let victim = RunQueue::new();
            let thief = RunQueue::new();
            for v in 0..n {
                assert!(victim.put(item(v), false).is_none());
            }
            let got = victim.steal_into(&thief, false, |_, _| true);
            let mut all: Vec<usize> = got.map(take).into_iter().collect();
            let stolen = all.len() + thief.len();
            let want = n - n / 2;
            assert!(stolen.abs_diff(n / 2) <= 1, "n={n}: stole {stolen}");
            assert_eq!(stolen, want, "n={n}");
            assert_eq!(victim.len(), n - stolen);
            all.extend(victim.drain().into_iter().chain(thief.drain()).map(take));
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "n={n}: lost or duplicated");
        }
    }

    #[test]
    fn overflow_moves_half_plus_one() {
        let q = RunQueue::new();
        for v in 0..RUNQ_CAP {
            assert!(q.put(item(v), false).is_none());
        }
        let batch = q.put(item(RUNQ_CAP), false).expect("full ring overflows");
        let moved: Vec<usize> = batch.iter().map(take).collect();
        assert_eq!(moved, (0..RUNQ_HALF).chain([RUNQ_CAP]).collect::<Vec<_>>());
        assert_eq!(q.len(), RUNQ_HALF);
        let rest: Vec<usize> = q.drain().into_iter().map(take).collect();
        assert_eq!(rest, (RUNQ_HALF..RUNQ_CAP).collect::<Vec<_>>());
    }

    #[test]
    fn steal_takes_runnext_only_when_asked() {
        let victim = RunQueue::new();
        let thief = RunQueue::new();
        victim.put(item(7), true);
        assert!(victim.steal_into(&thief, false, |_, _| true).is_none());
        let mut waited = false;
        let got = victim
            .steal_into(&thief, true, |_, _| {
                waited = true;
                true
            })
            .unwrap();
        assert!(waited);
        assert_eq!(take(got), 7);
        assert!(victim.is_empty() && thief.is_empty());
    }

    #[test]
    fn concurrent_steal_loses_and_duplicates_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering as O};
        use std::sync::Arc;
        // Miri interprets every instruction: a smaller run still crosses many overflows.
        const N: usize = if cfg!(miri) { 3_000 } else { 200_000 };
        let q = Arc::new(RunQueue::<usize>::new());
        let done = Arc::new(AtomicBool::new(false));
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let (q, done) = (q.clone(), done.clone());
                std::thread::spawn(move || {
                    let mine = RunQueue::new();
                    let mut got = Vec::new();
                    loop {
                        let finished = done.load(O::Acquire);
                        if let Some(p) = q.steal_into(&mine, true, |_, _| true) {
                            got.push(take(p));
                            got.extend(mine.drain().into_iter().map(take));
                        } else if finished {
                            return got;
                        }
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        for v in 0..N {
            if let Some(batch) = q.put(item(v), v % 7 == 0) {
                got.extend(batch.iter().map(take));
            }
            if v % 3 == 0 {
                if let Some((p, _)) = q.get(v % 2 == 0) {
                    got.push(take(p));
                }
            }
        }
        got.extend(q.drain().into_iter().map(take));
        done.store(true, O::Release);
        for t in thieves {
            got.extend(t.join().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Put,
            PutNext,
            Get(bool),
            Steal(bool),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => Just(Op::Put),
                2 => Just(Op::PutNext),
                2 => any::<bool>().prop_map(Op::Get),
                1 => any::<bool>().prop_map(Op::Steal),
            ]
        }

        proptest! {
            // Under Miri a handful of cases (each is up to 800 interpreted operations).
            #![proptest_config(if cfg!(miri) {
                // (and no failure file: Miri isolates the test from the file system)
                ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() }
            } else {
                ProptestConfig::default()
            })]
            /// Single-threaded: the queue behaves like a VecDeque ring plus an Option runnext,
            /// with overflow and steal moving exactly the items Go's algorithm moves.
            #[test]
            fn matches_vecdeque_model(ops in proptest::collection::vec(op(), 1..800)) {
                let q = RunQueue::new();
                let thief = RunQueue::new();
                let mut ring: VecDeque<usize> = VecDeque::new();
                let mut next: Option<usize> = None;
                let mut global: Vec<usize> = Vec::new();
                let mut counter = 0usize;
                for op in ops {
                    match op {
                        Op::Put | Op::PutNext => {
                            let v = counter;
                            counter += 1;
                            let next_put = matches!(op, Op::PutNext);
                            // The item that lands in the ring: v itself, or the runnext item v kicks out.
                            let to_ring = if next_put { next.replace(v) } else { Some(v) };
                            let res = q.put(item(v), next_put);
                            match to_ring {
                                None => prop_assert!(res.is_none()),
                                Some(r) if ring.len() == RUNQ_CAP => {
                                    let got: Vec<usize> = res.expect("overflow").iter().map(take).collect();
                                    let mut want: Vec<usize> = ring.drain(..RUNQ_HALF).collect();
                                    want.push(r);
                                    prop_assert_eq!(&got, &want);
                                    global.extend(got);
                                }
                                Some(r) => {
                                    prop_assert!(res.is_none());
                                    ring.push_back(r);
                                }
                            }
                        }
                        Op::Get(prefer) => {
                            let want = if prefer {
                                next.take().map(|v| (v, true)).or_else(|| ring.pop_front().map(|v| (v, false)))
                            } else {
                                ring.pop_front().map(|v| (v, false)).or_else(|| next.take().map(|v| (v, true)))
                            };
                            let got = q.get(prefer).map(|(p, f)| (take(p), f));
                            prop_assert_eq!(got, want);
                        }
                        Op::Steal(sn) => {
                            let n = ring.len() - ring.len() / 2;
                            let got = q.steal_into(&thief, sn, |_, _| true);
                            if n == 0 {
                                let want = if sn { next.take() } else { None };
                                prop_assert_eq!(got.map(take), want);
                            } else {
                                let stolen: Vec<usize> = ring.drain(..n).collect();
                                let mut got_all = thief.drain().into_iter().map(take).collect::<Vec<_>>();
                                got_all.push(take(got.expect("steal got an item")));
                                prop_assert_eq!(got_all, stolen);
                            }
                        }
                    }
                    prop_assert_eq!(q.len(), ring.len() + usize::from(next.is_some()));
                }
                let mut rest: Vec<usize> = q.drain().into_iter().map(take).collect();
                rest.extend(global);
                rest.sort_unstable();
                rest.dedup();
                prop_assert!(rest.len() <= counter);
            }
        }
    }
}
