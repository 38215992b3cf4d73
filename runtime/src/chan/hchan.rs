//! `Chan<T>`: a channel's shared state, its wait queues and the hand-off rules (Go: `hchan`,
//! `sudog`, `chansend`, `chanrecv`, `closechan` in `runtime/chan.go`).
//!
//! # State
//!
//! Everything is under one lock per channel (a `parking_lot::RawMutex`, held for a few
//! instructions and never across a park): the buffer, the `closed`/`rx_gone` flags and two FIFO
//! queues of waiters, `recvq` and `sendq`. The lock is *raw* (explicit unlock, no guard) because
//! `select` must lock several channels in address order and, in its park commit, unlock them
//! from the M's stack without touching the parking G's stack (Go's `selparkcommit`).
//!
//! # Waiters: `Sudog` and `Group`
//!
//! A blocked operation puts a [`Sudog`] (its case index, a value slot, an `ok` flag) in one queue
//! per channel it waits on. Every sudog of one blocking operation points to one [`Group`]: the
//! waiter word (a parked G or a blocked thread, `sched/waiter.rs`) and `done`, the index of the
//! case that completed. Whoever completes an operation for a waiter first **claims** the group
//! (CAS `done`: `NONE` → case); a sudog whose group is already claimed (a `select` sibling won on
//! another channel, or a timeout fired) is skipped and dropped from the queue. So each blocking
//! operation completes exactly once, whatever races with it.
//!
//! # Hand-off (values go straight to the waiter, as Go's sudog `elem`)
//!
//! | operation | finds | does |
//! |---|---|---|
//! | send | a waiting receiver | claims it, writes the value into its slot, wakes it |
//! | send | room in the buffer | pushes the value |
//! | send | closed, or no receiver left | fails, the value comes back in the error |
//! | recv | a waiting sender | claims it; rendezvous: takes its value; full buffer: takes the head, pushes the sender's value at the tail (FIFO kept); wakes it |
//! | recv | a buffered value | pops it |
//! | recv | empty and closed | fails (`Disconnected`) |
//! | close | waiters | claims each receiver (no value: `ok = false`) and each sender (its value stays in its slot and is returned) and wakes them |
//!
//! Waking happens after the lock is released (the wakes are collected), so the lock is a leaf.
//!
//! # Memory of a sudog
//!
//! A sudog lives in the blocked caller's frame (G stack or thread stack). It is reachable from a
//! queue only between the commit that enqueued it (under the lock) and the moment it is either
//! popped by a waker (under the lock) or removed by its owner after waking (under the lock). The
//! owner cannot return before it has been woken and has re-taken the locks of every channel it
//! waited on, so no queue ever holds a dangling sudog.

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use super::group::{Group, NONE, TIMEOUT};
use parking_lot::lock_api::RawMutex as _;
use parking_lot::RawMutex;

/// One blocked operation on one channel (Go: `sudog`). See the module doc for who may touch it.
pub(crate) struct Sudog<T> {
    group: Cell<*const Group>,
    case: Cell<usize>,
    /// send: the value offered; recv: the value delivered.
    slot: UnsafeCell<Option<T>>,
    /// Completed with a value (recv) or delivered (send), as opposed to woken by a close.
    ok: Cell<bool>,
}

impl<T> Sudog<T> {
    pub(crate) fn new(value: Option<T>) -> Sudog<T> {
        Sudog {
            group: Cell::new(std::ptr::null()),
            case: Cell::new(0),
            slot: UnsafeCell::new(value),
            ok: Cell::new(false),
        }
    }

    /// Owner only, before enqueueing or after waking.
    pub(crate) fn set_group(&self, g: &Group, case: usize) {
        self.group.set(g);
        self.case.set(case);
    }

    /// Owner only, after the operation completed (or before it was enqueued).
    pub(crate) fn take(&self) -> Option<T> {
        // SAFETY: the owner calls this only when no queue holds the sudog or every waker that
        // could touch it has finished (see the module doc).
        unsafe { (*self.slot.get()).take() }
    }

    /// Owner only (see `take`).
    pub(crate) fn put(&self, v: T) {
        // SAFETY: as `take`.
        unsafe { *self.slot.get() = Some(v) };
    }

    pub(crate) fn ok(&self) -> bool {
        self.ok.get()
    }

    /// Owner only, for an operation that completed in its park's commit, before the sudog was
    /// ever queued.
    pub(crate) fn set_ok(&self, ok: bool) {
        self.ok.set(ok);
    }
}

/// A queued sudog.
pub(crate) struct SudogPtr<T>(*const Sudog<T>);

/// The channel's state under its lock.
pub(crate) struct State<T> {
    buf: VecDeque<T>,
    /// No more sends: `close()` was called or every `Sender` is gone.
    pub(crate) closed: bool,
    /// Every `Receiver` is gone: sends fail.
    pub(crate) rx_gone: bool,
    recvq: VecDeque<SudogPtr<T>>,
    sendq: VecDeque<SudogPtr<T>>,
}

/// What `try_recv` found.
pub(crate) enum RecvNow<T> {
    Value(T),
    Closed,
    Empty,
}

/// Why `try_send` failed.
pub(crate) enum SendFail<T> {
    Full(T),
    Disconnected(T),
}

/// A channel (Go: `hchan`). Shared by its `Sender`s and `Receiver`s through an `Arc`.
pub(crate) struct Chan<T> {
    lock: RawMutex,
    state: UnsafeCell<State<T>>,
    /// Buffer capacity: 0 = rendezvous, `usize::MAX` = unbounded.
    pub(crate) cap: usize,
    pub(crate) senders: AtomicUsize,
    pub(crate) receivers: AtomicUsize,
}

// SAFETY: `state` is only accessed under `lock`; values of `T` move between threads through it,
// hence `T: Send`. Sudog pointers in the queues are only dereferenced under the lock, while their
// owners are blocked (module doc).
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

/// Holds a channel's lock; unlocks on drop (single-channel operations).
pub(crate) struct Locked<'a, T> {
    chan: &'a Chan<T>,
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard was created by `Chan::lock`, which took the lock.
        unsafe { self.chan.lock.unlock() };
    }
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        // SAFETY: we hold the lock.
        unsafe { &*self.chan.state.get() }
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        // SAFETY: we hold the lock, and `&mut self` makes this the only reference.
        unsafe { &mut *self.chan.state.get() }
    }
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        Chan {
            lock: RawMutex::INIT,
            state: UnsafeCell::new(State {
                buf: VecDeque::new(),
                closed: false,
                rx_gone: false,
                recvq: VecDeque::new(),
                sendq: VecDeque::new(),
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        }
    }

    /// Lock for a single-channel operation.
    pub(crate) fn lock(&self) -> Locked<'_, T> {
        self.lock.lock();
        Locked { chan: self }
    }

    /// Lock without a guard (select). Pair with `raw_unlock`.
    pub(crate) fn raw_lock(&self) {
        self.lock.lock();
    }

    /// The raw lock, for unlocking from a commit.
    pub(crate) fn raw_mutex(&self) -> *const RawMutex {
        &self.lock
    }

    /// The state, while the caller holds the lock taken with `raw_lock`.
    ///
    /// # Safety
    /// The caller holds the lock and no other reference to the state is alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn state_locked(&self) -> &mut State<T> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.state.get() }
    }

    /// Number of buffered values (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }
}

impl<T> State<T> {
    /// Receive now if possible (see the table in the module doc). A waiter to wake after
    /// unlocking is pushed to `wakes`.
    pub(crate) fn try_recv(&mut self, wakes: &mut Wakes) -> RecvNow<T> {
        while let Some(p) = self.sendq.pop_front() {
            // SAFETY: a queued sudog is alive until it is popped or removed under this lock.
            let sg = unsafe { &*p.0 };
            // SAFETY: the group outlives its sudogs (same owner, same or longer lifetime).
            let g = unsafe { &*sg.group.get() };
            if !g.claim(sg.case.get()) {
                continue; // its operation completed elsewhere: drop it from the queue
            }
            // SAFETY: claimed: we are the only one touching the sudog until we wake its owner.
            let v = unsafe { (*sg.slot.get()).take() }.expect("a queued sender without a value");
            sg.ok.set(true);
            wakes.push(g.waiter.load(Ordering::Acquire));
            return RecvNow::Value(match self.buf.pop_front() {
                Some(head) => {
                    self.buf.push_back(v);
                    head
                }
                None => v,
            });
        }
        match self.buf.pop_front() {
            Some(v) => RecvNow::Value(v),
            None if self.closed => RecvNow::Closed,
            None => RecvNow::Empty,
        }
    }

    /// Send now if possible (see the table in the module doc).
    pub(crate) fn try_send(
        &mut self,
        cap: usize,
        v: T,
        wakes: &mut Wakes,
    ) -> Result<(), SendFail<T>> {
        if self.closed || self.rx_gone {
            return Err(SendFail::Disconnected(v));
        }
        while let Some(p) = self.recvq.pop_front() {
            // SAFETY: as in `try_recv`.
            let sg = unsafe { &*p.0 };
            // SAFETY: as in `try_recv`.
            let g = unsafe { &*sg.group.get() };
            if !g.claim(sg.case.get()) {
                continue;
            }
            // SAFETY: claimed (as in `try_recv`).
            unsafe { *sg.slot.get() = Some(v) };
            sg.ok.set(true);
            wakes.push(g.waiter.load(Ordering::Acquire));
            return Ok(());
        }
        if self.buf.len() < cap {
            self.buf.push_back(v);
            Ok(())
        } else {
            Err(SendFail::Full(v))
        }
    }

    /// Queue a receiver.
    pub(crate) fn push_recv(&mut self, sg: &Sudog<T>) {
        self.recvq.push_back(SudogPtr(sg));
    }

    /// Queue a sender (its value is in its slot).
    pub(crate) fn push_send(&mut self, sg: &Sudog<T>) {
        self.sendq.push_back(SudogPtr(sg));
    }

    /// Remove `sg` from both queues if it is still there (its owner, after waking).
    pub(crate) fn remove(&mut self, sg: &Sudog<T>) {
        let p: *const Sudog<T> = sg;
        self.recvq.retain(|q| q.0 != p);
        self.sendq.retain(|q| q.0 != p);
    }

    /// Mark closed and fail every waiter (Go: `closechan`). `senders_too`: also fail blocked
    /// senders (an explicit close, or the last receiver leaving).
    pub(crate) fn fail_waiters(&mut self, recv: bool, send: bool, wakes: &mut Wakes) {
        let mut queues = Vec::new();
        if recv {
            queues.push(std::mem::take(&mut self.recvq));
        }
        if send {
            queues.push(std::mem::take(&mut self.sendq));
        }
        for q in queues {
            for p in q {
                // SAFETY: as in `try_recv`.
                let sg = unsafe { &*p.0 };
                // SAFETY: as in `try_recv`.
                let g = unsafe { &*sg.group.get() };
                if g.claim(sg.case.get()) {
                    sg.ok.set(false);
                    wakes.push(g.waiter.load(Ordering::Acquire));
                }
            }
        }
    }
}

/// Waiters to wake once the locks are released. Usually one, kept inline: no allocation on the
/// common paths.
#[derive(Default)]
pub(crate) struct Wakes {
    first: usize,
    more: Vec<usize>,
}

impl Wakes {
    pub(crate) fn new() -> Wakes {
        Wakes::default()
    }

    pub(crate) fn push(&mut self, w: usize) {
        if self.first == 0 {
            self.first = w;
        } else {
            self.more.push(w);
        }
    }

    /// Wake every waiter collected (call with no channel lock held).
    pub(crate) fn wake_all(&mut self) {
        let first = std::mem::take(&mut self.first);
        if first != 0 {
            crate::sched::waiter::wake(first);
        }
        for w in self.more.drain(..) {
            crate::sched::waiter::wake(w);
        }
    }
}
