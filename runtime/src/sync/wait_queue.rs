//! `WaitQueue`: the one FIFO wait queue that every `weft::sync` primitive blocks on (Go: the
//! `sudog` lists of `sema.go` and `notifyList`).
//!
//! A queue is a std `Mutex` around an intrusive doubly linked list of [`Node`]s. A node is one
//! waiter: a parked G or a blocked plain thread (`sched/waiter.rs`), plus a one-shot **wake
//! word** that says who ended the wait. Nodes live on the waiter's own stack (nothing is
//! allocated to wait), except for a timed wait of a G, whose node must outlive the wait because
//! a runtime timer may still hold its address (`sync/condvar.rs` takes those from a pool of
//! nodes that are never freed).
//!
//! # The wake word
//!
//! `word = ticket | state`. The ticket (the bits above the two state bits) numbers the waits a
//! node has been used for; it is bumped by [`Node::begin`], so a stale claim (a timer armed for
//! an earlier wait of a recycled node) compares unequal and does nothing.
//!
//! | state       | meaning                                                 |
//! |-------------|---------------------------------------------------------|
//! | `EMPTY`     | queued, the waiter has not blocked yet (two-phase wait)  |
//! | `WAITING`   | the waiter published itself (`waiter` holds its word) and sleeps |
//! | `WOKEN`     | a waker claimed the node: the wait ended with a wakeup   |
//! | `TIMED_OUT` | a timeout claimed the node: the wait ended without one   |
//!
//! | transition                 | by                              |
//! |----------------------------|---------------------------------|
//! | `EMPTY` → `WAITING`        | the waiter's commit ([`Node::block`]); fails if claimed first |
//! | `EMPTY`/`WAITING` → `WOKEN` | a waker, under the queue lock, after unlinking the node |
//! | `EMPTY`/`WAITING` → `TIMED_OUT` | the timer's fire function, or a timed thread waiter itself |
//! | `WOKEN`/`TIMED_OUT` → next ticket, `EMPTY` | [`Node::begin`], by the owner, for its next wait |
//!
//! Every transition out of `EMPTY`/`WAITING` is a CAS, so exactly one party **claims** a wait;
//! whoever moves a node out of `WAITING` owns the wakeup and wakes the waiter exactly once. A
//! claim that finds `EMPTY` wakes nobody: the waiter has not blocked yet, its commit's CAS fails
//! and it does not block. That is how a timeout racing a notification is resolved (loom model
//! `tests/loom_sync.rs::notify_vs_timeout`): one of them wins, the waiter is woken once, and a
//! notification that lost goes on to the next waiter in the queue.
//!
//! # One-phase and two-phase waits
//!
//! * [`WaitQueue::wait_unless`] (semaphores, `Once`, `WaitGroup`): the commit takes the queue
//!   lock, re-checks the caller's condition, links the node already `WAITING` and unlocks. A
//!   waker decides under the same lock, so a wakeup cannot slip between the check and the park.
//! * [`WaitQueue::enqueue`] + [`Node::block`] (`Condvar`): the node is linked `EMPTY` while the
//!   caller still holds its user mutex, the mutex is released, and only then does the caller
//!   block. A notification in between claims the `EMPTY` node and the block returns at once.
//!
//! # Invariants
//!
//! * A linked node is alive: its owner does not return from a wait until the node is unlinked,
//!   either by a waker (which unlinks before claiming) or by the owner itself under the lock
//!   after a timeout ([`WaitQueue::remove`]).
//! * `next`/`prev`/`linked` are touched only under the lock of the queue the node is in (and by
//!   a waker on the nodes it claimed from `WAITING`, whose owners sleep until woken).
//! * Wakeups (`ready`, `unpark`) happen after the queue lock is released; the lock is a leaf
//!   held for a few instructions, never across a park (the commit unlocks last).
//! * A park commit reads the node on the parked G's own stack (Go's sudogs are heap objects;
//!   here, as for channel sudogs, the node lives in the waiting frame). That is sound because the
//!   G is suspended, its stack intact, until the commit publishes the node — the unlock in
//!   `wait_unless`, the CAS to `WAITING` in `Node::block` — and the commit touches nothing after
//!   that (`sched/park.rs`'s rule); from then on only wakers touch the node, under the rules
//!   above, and the G cannot leave its wait before it is claimed and unlinked.
//!
//! The state machine is compiled under `--cfg loom` with a loom stand-in for `waiter::block` and
//! `waiter::wake` (below), so the models of `src/tests/loom_sync.rs` run this very code.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
use crate::sched::waiter::{block, wake as wake_blocked};
use crate::wait_reason::WaitReason;
#[cfg(loom)]
use loom_waiter::{block, wake as wake_blocked};

/// The node is queued; its waiter has not blocked yet.
pub(crate) const EMPTY: usize = 0;
/// The waiter published itself and sleeps.
pub(crate) const WAITING: usize = 1;
/// A waker ended the wait.
pub(crate) const WOKEN: usize = 2;
/// A timeout ended the wait.
pub(crate) const TIMED_OUT: usize = 3;
const STATE_MASK: usize = 0b11;
const TICKET_STEP: usize = 0b100;

/// Tag of a waiter word naming a [`TimedThread`] (bit 0; `sched/waiter.rs` words always have it
/// clear: a G is 8-aligned, a thread waiter is tagged with bit 2).
#[cfg(not(loom))]
const TIMED_THREAD: usize = 0b001;

/// What a claim of a node did (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The waiter was blocked: the claimer must wake this word, once.
    Blocked(usize),
    /// The waiter had not blocked yet; it will see the claim and not block.
    Early,
    /// Someone else claimed this wait first (or the node is on a later wait now).
    Lost,
}

/// One waiter in a [`WaitQueue`] (Go: `sudog`). See the module doc.
pub(crate) struct Node {
    /// `ticket | state`.
    word: AtomicUsize,
    /// The waiter's word (`sched/waiter.rs` encoding, or a tagged [`TimedThread`]); written
    /// before the node becomes `WAITING`.
    waiter: AtomicUsize,
    next: Cell<Option<NonNull<Node>>>,
    prev: Cell<Option<NonNull<Node>>>,
    linked: Cell<bool>,
}

// SAFETY: `word` and `waiter` are atomics. The `Cell`s are accessed only under the lock of the
// queue the node is linked in, or by the one party that owns the node at that moment (its
// owner while it is in no queue; a waker that claimed it from `WAITING`, while its owner
// sleeps): never by two threads at once.
unsafe impl Sync for Node {}
// SAFETY: as above; the raw pointers point to nodes whose liveness the queue protocol ensures.
unsafe impl Send for Node {}

impl Node {
    /// A node for one or more waits (ticket 0, `EMPTY`).
    pub(crate) fn new() -> Node {
        Node {
            word: AtomicUsize::new(EMPTY),
            waiter: AtomicUsize::new(0),
            next: Cell::new(None),
            prev: Cell::new(None),
            linked: Cell::new(false),
        }
    }

    /// Start a new wait on this node: next ticket, `EMPTY`. Returns the ticket. Only the owner
    /// calls this, while the node is in no queue and no claim of its previous wait is pending
    /// (a stale timer may still try one; it fails on the ticket).
    pub(crate) fn begin(&self) -> usize {
        let cur = self.word.load(Ordering::Relaxed);
        let ticket = (cur & !STATE_MASK).wrapping_add(TICKET_STEP);
        self.word.store(ticket | EMPTY, Ordering::Relaxed);
        ticket
    }

    /// The state of the current wait (`EMPTY`, `WAITING`, `WOKEN`, `TIMED_OUT`).
    pub(crate) fn state(&self) -> usize {
        self.word.load(Ordering::Acquire) & STATE_MASK
    }

    /// Whether wait `ticket` is still unclaimed (a timer for it still matters).
    pub(crate) fn is_pending(&self, ticket: usize) -> bool {
        let cur = self.word.load(Ordering::Acquire);
        cur & !STATE_MASK == ticket && cur & STATE_MASK <= WAITING
    }

    /// The waiter's commit: publish `w`, `EMPTY` → `WAITING`. False: the wait was claimed
    /// already (do not block).
    fn publish(&self, w: usize) -> bool {
        self.waiter.store(w, Ordering::Relaxed);
        let cur = self.word.load(Ordering::Relaxed);
        if cur & STATE_MASK != EMPTY {
            return false;
        }
        self.word
            .compare_exchange(cur, cur | WAITING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Claim wait `ticket`, ending it with `to` (`WOKEN` or `TIMED_OUT`).
    fn claim(&self, ticket: usize, to: usize) -> Claim {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            if cur & !STATE_MASK != ticket || cur & STATE_MASK > WAITING {
                return Claim::Lost;
            }
            match self
                .word
                .compare_exchange(cur, ticket | to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if cur & STATE_MASK == WAITING => {
                    // The waiter stored its word before its CAS to WAITING, which we read.
                    return Claim::Blocked(self.waiter.load(Ordering::Relaxed));
                }
                Ok(_) => return Claim::Early,
                Err(now) => cur = now,
            }
        }
    }

    /// A timeout for wait `ticket` (a timer's fire function, or a timed thread waiter): claim
    /// it with `TIMED_OUT`. On [`Claim::Blocked`] the caller wakes the word.
    pub(crate) fn time_out(&self, ticket: usize) -> Claim {
        self.claim(ticket, TIMED_OUT)
    }

    /// Second half of a two-phase wait: block until the node is claimed (it must have been
    /// linked with [`WaitQueue::enqueue`] after [`begin`](Node::begin)). Returns `WOKEN` or
    /// `TIMED_OUT`.
    pub(crate) fn block(&self, reason: WaitReason) -> usize {
        self.block_with(reason, || ())
    }

    /// [`block`](Node::block), running `before` in the commit just before the node is
    /// published (for a G: on the M's stack, after the switch). A G's timed wait arms its timer
    /// there: the timer may claim the node at once, and the publish then fails.
    pub(crate) fn block_with(&self, reason: WaitReason, before: impl FnOnce()) -> usize {
        block(reason, 0, |w| {
            before();
            self.publish(w)
        });
        self.state()
    }

    /// A plain thread's timed block: like [`block`](Node::block), but at `deadline` the thread
    /// claims its own wait with `TIMED_OUT` (if no waker did first). Returns `WOKEN` or
    /// `TIMED_OUT`; after `TIMED_OUT` the node may still be linked (see [`WaitQueue::remove`]).
    #[cfg(not(loom))]
    pub(crate) fn block_thread_until(&self, deadline: std::time::Instant) -> usize {
        use std::time::Instant;
        let me = TimedThread {
            thread: std::thread::current(),
            done: std::sync::atomic::AtomicBool::new(false),
        };
        let ticket = self.word.load(Ordering::Relaxed) & !STATE_MASK;
        let w = &me as *const TimedThread as usize;
        debug_assert_eq!(w & 0b111, 0);
        if !self.publish(w | TIMED_THREAD) {
            return self.state();
        }
        loop {
            if me.done.load(Ordering::Acquire) {
                return self.state();
            }
            let now = Instant::now();
            if now >= deadline {
                if let Claim::Blocked(_) = self.time_out(ticket) {
                    return TIMED_OUT;
                }
                // A waker claimed the wait first: it is about to wake us (and reads `me` until
                // it sets `done`), so stay until it has.
                while !me.done.load(Ordering::Acquire) {
                    std::thread::park();
                }
                return self.state();
            }
            std::thread::park_timeout(deadline - now);
        }
    }
}

/// A plain thread in [`Node::block_thread_until`]; lives on that thread's stack.
#[cfg(not(loom))]
#[repr(align(8))]
struct TimedThread {
    thread: std::thread::Thread,
    done: std::sync::atomic::AtomicBool,
}

/// Wake the waiter word `w` that a claim returned (exactly once per [`Claim::Blocked`]).
pub(crate) fn wake_waiter(w: usize) {
    #[cfg(not(loom))]
    if w & TIMED_THREAD != 0 {
        let tt = (w & !TIMED_THREAD) as *const TimedThread;
        // SAFETY: the thread published this address and stays in `block_thread_until` (the
        // waiter lives on its stack) until it sees `done`; we clone the handle before setting
        // it and touch the waiter no more afterwards.
        let t = unsafe { (*tt).thread.clone() };
        // SAFETY: as above; this store is our last access to the waiter.
        unsafe { (*tt).done.store(true, Ordering::Release) };
        t.unpark();
        return;
    }
    wake_blocked(w);
}

/// The intrusive FIFO list (under the queue lock).
struct List {
    head: Option<NonNull<Node>>,
    tail: Option<NonNull<Node>>,
    len: usize,
}

// SAFETY: the list holds pointers to nodes that are `Sync` and alive while linked (module doc).
unsafe impl Send for List {}

impl List {
    const fn new() -> List {
        List {
            head: None,
            tail: None,
            len: 0,
        }
    }

    fn link(&mut self, node: &Node, front: bool) {
        debug_assert!(!node.linked.get(), "wait queue node linked twice");
        let p = NonNull::from(node);
        node.linked.set(true);
        if front {
            node.prev.set(None);
            node.next.set(self.head);
            match self.head {
                // SAFETY: linked nodes are alive; we hold the lock.
                Some(h) => unsafe { h.as_ref() }.prev.set(Some(p)),
                None => self.tail = Some(p),
            }
            self.head = Some(p);
        } else {
            node.next.set(None);
            node.prev.set(self.tail);
            match self.tail {
                // SAFETY: linked nodes are alive; we hold the lock.
                Some(t) => unsafe { t.as_ref() }.next.set(Some(p)),
                None => self.head = Some(p),
            }
            self.tail = Some(p);
        }
        self.len += 1;
    }

    fn unlink(&mut self, node: &Node) -> bool {
        if !node.linked.get() {
            return false;
        }
        let (prev, next) = (node.prev.get(), node.next.get());
        match prev {
            // SAFETY: linked nodes are alive; we hold the lock.
            Some(p) => unsafe { p.as_ref() }.next.set(next),
            None => self.head = next,
        }
        match next {
            // SAFETY: as above.
            Some(n) => unsafe { n.as_ref() }.prev.set(prev),
            None => self.tail = prev,
        }
        node.prev.set(None);
        node.next.set(None);
        node.linked.set(false);
        self.len -= 1;
        true
    }

    fn pop_front(&mut self) -> Option<NonNull<Node>> {
        let h = self.head?;
        // SAFETY: linked nodes are alive; we hold the lock.
        self.unlink(unsafe { h.as_ref() });
        Some(h)
    }
}

/// A FIFO queue of blocked Gs and threads. See the module doc.
pub(crate) struct WaitQueue {
    list: Mutex<List>,
    /// What a G blocked here waits for (`WaitReason` as a byte), for the goroutine dump.
    reason: u8,
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("waiters", &self.len())
            .finish()
    }
}

impl WaitQueue {
    /// An empty queue.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue::with_reason(WaitReason::Semaphore)
    }

    /// An empty queue whose waiters show `reason` in the goroutine dump.
    #[cfg(not(loom))]
    pub(crate) const fn with_reason(reason: WaitReason) -> WaitQueue {
        WaitQueue {
            list: Mutex::new(List::new()),
            reason: reason.as_u8(),
        }
    }

    /// An empty queue.
    #[cfg(loom)]
    pub(crate) fn new() -> WaitQueue {
        WaitQueue::with_reason(WaitReason::Semaphore)
    }

    /// An empty queue whose waiters show `reason` in the goroutine dump.
    #[cfg(loom)]
    pub(crate) fn with_reason(reason: WaitReason) -> WaitQueue {
        WaitQueue {
            list: Mutex::new(List::new()),
            reason: reason.as_u8(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, List> {
        // Nothing panics while holding this lock; recover the guard rather than panic.
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of linked waiters (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }

    /// Block the caller (park the G, or block the thread) until a waker wakes it, unless
    /// `ready()` — run under the queue lock, just before the caller would be queued — returns
    /// true. `front` queues the caller first instead of last (Go's `lifo`, for a waiter that
    /// already waited once). Returns whether the caller blocked (and was woken).
    ///
    /// For a G `ready` runs on the M's stack after the switch: it must only look at shared
    /// state (atomics), never at thread-locals.
    pub(crate) fn wait_unless(&self, front: bool, ready: impl FnOnce() -> bool) -> bool {
        let node = Node::new();
        block(WaitReason::from_u8(self.reason), 0, |w| {
            let mut list = self.lock();
            if ready() {
                return false;
            }
            node.waiter.store(w, Ordering::Relaxed);
            node.word.store(WAITING, Ordering::Relaxed);
            list.link(&node, front);
            // Unlocking publishes the node; nothing of it or of `self` is touched afterwards.
            drop(list);
            true
        });
        node.state() == WOKEN
    }

    /// First half of a two-phase wait: link `node` (after [`Node::begin`]) at the tail, still
    /// `EMPTY`; then the caller releases what it holds and calls [`Node::block`].
    ///
    /// # Safety
    /// `node` must stay alive, and the caller must not start another wait on it, until it is
    /// unlinked: by a waker (the wait then ends `WOKEN`) or by [`remove`](WaitQueue::remove)
    /// after a timeout.
    pub(crate) unsafe fn enqueue(&self, node: &Node) {
        self.lock().link(node, false);
    }

    /// Unlink `node` if it is still linked (a waiter that timed out). Returns whether it was.
    pub(crate) fn remove(&self, node: &Node) -> bool {
        self.lock().unlink(node)
    }

    /// Wake up to `n` waiters, oldest first; a waiter whose wait already timed out is skipped
    /// (unlinked) and does not count. `rest(k)` runs under the lock with the `k` wakeups that
    /// found no waiter (a semaphore adds them to its count). Returns how many waiters were woken.
    pub(crate) fn wake(&self, n: usize, rest: impl FnOnce(usize)) -> usize {
        // Nodes claimed from WAITING, chained through `next` (their owners sleep until we wake
        // them, so nobody else touches them), woken after the lock is released.
        let mut chain: Option<NonNull<Node>> = None;
        let mut chain_tail: Option<NonNull<Node>> = None;
        let mut woken = 0;
        {
            let mut list = self.lock();
            while woken < n {
                let Some(p) = list.pop_front() else { break };
                // SAFETY: the node was linked, so it is alive; we hold the lock.
                let node = unsafe { p.as_ref() };
                let ticket = node.word.load(Ordering::Relaxed) & !STATE_MASK;
                match node.claim(ticket, WOKEN) {
                    Claim::Blocked(_) => {
                        woken += 1;
                        match chain_tail {
                            // SAFETY: chained nodes are claimed and their owners asleep.
                            Some(t) => unsafe { t.as_ref() }.next.set(Some(p)),
                            None => chain = Some(p),
                        }
                        chain_tail = Some(p);
                    }
                    Claim::Early => woken += 1,
                    Claim::Lost => {}
                }
            }
            rest(n - woken);
        }
        while let Some(p) = chain {
            // SAFETY: claimed from WAITING: the owner sleeps until the wake below, so the node is
            // alive; read everything before waking it.
            let node = unsafe { p.as_ref() };
            chain = node.next.get();
            node.next.set(None);
            let w = node.waiter.load(Ordering::Relaxed);
            wake_waiter(w);
        }
        woken
    }

    /// Wake the oldest waiter. Returns whether there was one.
    pub(crate) fn wake_one(&self) -> bool {
        self.wake(1, |_| ()) == 1
    }

    /// Wake every waiter. Returns how many there were.
    pub(crate) fn wake_all(&self) -> usize {
        self.wake(usize::MAX, |_| ())
    }
}

impl Default for WaitQueue {
    fn default() -> WaitQueue {
        WaitQueue::new()
    }
}

/// loom's stand-in for `sched/waiter.rs`: a "blocked waiter" is a loom thread waiting on a
/// `Notify`; its word is a leaked `Arc`. A double wake fails an assertion; a lost one is a loom
/// deadlock.
#[cfg(loom)]
mod loom_waiter {
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::{Arc, Notify};

    struct Waiter {
        woken: AtomicBool,
        notify: Notify,
    }

    pub(crate) fn block<F: FnOnce(usize) -> bool>(
        _reason: crate::wait_reason::WaitReason,
        _detail: u64,
        commit: F,
    ) {
        let me = Arc::new(Waiter {
            woken: AtomicBool::new(false),
            notify: Notify::new(),
        });
        let w = Arc::into_raw(me.clone()) as usize;
        if commit(w) {
            while !me.woken.load(Ordering::Acquire) {
                me.notify.wait();
            }
        } else {
            // SAFETY: `w` came from `into_raw` above and was not published.
            drop(unsafe { Arc::from_raw(w as *const Waiter) });
        }
    }

    pub(crate) fn wake(w: usize) {
        // SAFETY: `w` is a word `block` published; each is woken once (asserted below), which
        // consumes the reference `block` leaked for it.
        let me = unsafe { Arc::from_raw(w as *const Waiter) };
        assert!(
            me.woken
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            "waiter woken twice"
        );
        me.notify.notify();
    }
}
