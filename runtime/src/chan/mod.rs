//! Channels: Go's `chan`, with `select!` (Go: `runtime/chan.go`, `runtime/select.go`).
//!
//! * [`bounded`]`(n)`: a buffer of `n` values; `bounded(0)` is a rendezvous channel (Go's
//!   unbuffered `make(chan T)`): a send completes only when a receiver takes the value.
//! * [`unbounded`]`()`: sends never block.
//! * [`Sender`] and [`Receiver`] are cloneable (multi-producer, multi-consumer). When every
//!   `Sender` is gone, or one calls [`Sender::close`], receivers drain what is buffered and then
//!   get `Disconnected` (Go's close). When every `Receiver` is gone, sends fail and the value
//!   comes back in the error.
//! * Blocking calls park the calling G; on a plain OS thread they block the thread. Waiters are
//!   served FIFO; a value goes straight from sender to waiting receiver (Go's sudog hand-off).
//! * [`select!`](crate::select) waits on several operations at once and completes exactly one;
//!   when several are ready it picks one uniformly at random, as Go does.
//!
//! The shared state, the waiter queues and the hand-off rules are in `hchan.rs`; `select.rs`
//! holds `select!`. See docs/CHANNELS.md for the semantics table.

mod error;
pub(crate) mod group;
pub(crate) mod hchan;
mod select;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[doc(hidden)]
pub use select::{select_impl, Mode, RecvArm, SelectArm, Selected, SendArm};

use crate::sched::waiter;
use crate::time::timers::{add_timer, TimerKind};
use crate::time::{nanotime, to_nanos};
use crate::wait_reason::WaitReason;
use hchan::{Chan, Group, RecvNow, SendFail, Sudog, Wakes, TIMEOUT};

/// A channel with a buffer of `cap` values; `cap == 0` makes a rendezvous channel.
///
/// ```
/// use weft_runtime::chan;
///
/// let (tx, rx) = chan::bounded::<u32>(0); // unbuffered, like Go's make(chan uint32)
/// let h = weft_runtime::go!(move || {
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
/// });
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// h.join().unwrap();
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let c = Arc::new(Chan::new(cap));
    (Sender { chan: c.clone() }, Receiver { chan: c })
}

/// A channel whose sends never block.
///
/// ```
/// let (tx, rx) = weft_runtime::chan::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().sum::<i32>(), 499_500);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    bounded(usize::MAX)
}

/// The sending half. Clone it for more producers.
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving half. Clone it for more consumers (each value goes to one of them).
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Send `v`, parking while the buffer is full (for a rendezvous channel: until a receiver
    /// takes it). Fails, returning `v`, if every receiver is gone or the channel was closed.
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        match self.send_until(v, None) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Disconnected(v)) | Err(SendTimeoutError::Timeout(v)) => {
                Err(SendError(v))
            }
        }
    }

    /// Send without blocking.
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let c = &*self.chan;
        let mut wakes = Wakes::new();
        let r = c.lock().try_send(c.cap, v, &mut wakes);
        wakes.wake_all();
        r.map_err(|e| match e {
            SendFail::Full(v) => TrySendError::Full(v),
            SendFail::Disconnected(v) => TrySendError::Disconnected(v),
        })
    }

    /// Send, waiting at most `timeout`.
    pub fn send_timeout(&self, v: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until(v, deadline_after(timeout))
    }

    /// Send, waiting at most until `deadline`.
    pub fn send_deadline(&self, v: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_until(v, deadline_at(deadline))
    }

    fn send_until(&self, v: T, deadline: Option<u64>) -> Result<(), SendTimeoutError<T>> {
        let c = &*self.chan;
        let mut wakes = Wakes::new();
        let r = c.lock().try_send(c.cap, v, &mut wakes);
        wakes.wake_all();
        let v = match r {
            Ok(()) => return Ok(()),
            Err(SendFail::Disconnected(v)) => return Err(SendTimeoutError::Disconnected(v)),
            Err(SendFail::Full(v)) => v,
        };
        if deadline.is_some_and(|d| nanotime() >= d) {
            return Err(SendTimeoutError::Timeout(v));
        }
        let sg = Sudog::new(Some(v));
        match wait_one(c, &sg, false, deadline) {
            Waited::Done if sg.ok() => Ok(()),
            Waited::Done => Err(SendTimeoutError::Disconnected(
                sg.take().expect("failed send keeps its value"),
            )),
            Waited::Timeout => Err(SendTimeoutError::Timeout(
                sg.take().expect("timed-out send keeps its value"),
            )),
        }
    }

    /// Close the channel (Go's `close(ch)`): receivers drain the buffer, then get
    /// `Disconnected`; blocked and later sends fail. Dropping every `Sender` does the same.
    pub fn close(&self) {
        close(&self.chan);
    }

    /// Number of buffered values.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer size (`None` for an unbounded channel).
    pub fn capacity(&self) -> Option<usize> {
        capacity(self.chan.cap)
    }
}

impl<T> Receiver<T> {
    /// Receive a value, parking until one is available. Fails when the channel is empty and every
    /// sender is gone (or it was closed).
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// Receive without blocking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let c = &*self.chan;
        let mut wakes = Wakes::new();
        let r = c.lock().try_recv(&mut wakes);
        wakes.wake_all();
        match r {
            RecvNow::Value(v) => Ok(v),
            RecvNow::Closed => Err(TryRecvError::Disconnected),
            RecvNow::Empty => Err(TryRecvError::Empty),
        }
    }

    /// Receive, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(deadline_after(timeout))
    }

    /// Receive, waiting at most until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(deadline_at(deadline))
    }

    fn recv_until(&self, deadline: Option<u64>) -> Result<T, RecvTimeoutError> {
        let c = &*self.chan;
        let mut wakes = Wakes::new();
        let r = c.lock().try_recv(&mut wakes);
        wakes.wake_all();
        match r {
            RecvNow::Value(v) => return Ok(v),
            RecvNow::Closed => return Err(RecvTimeoutError::Disconnected),
            RecvNow::Empty => {}
        }
        if deadline.is_some_and(|d| nanotime() >= d) {
            return Err(RecvTimeoutError::Timeout);
        }
        let sg = Sudog::new(None);
        match wait_one(c, &sg, true, deadline) {
            Waited::Done if sg.ok() => Ok(sg.take().expect("a completed receive has its value")),
            Waited::Done => Err(RecvTimeoutError::Disconnected),
            Waited::Timeout => Err(RecvTimeoutError::Timeout),
        }
    }

    /// A blocking iterator: yields values until the channel is empty and disconnected.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator over what can be received now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Number of buffered values.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer size (`None` for an unbounded channel).
    pub fn capacity(&self) -> Option<usize> {
        capacity(self.chan.cap)
    }
}

fn capacity(cap: usize) -> Option<usize> {
    (cap != usize::MAX).then_some(cap)
}

/// The runtime-clock deadline `d` from now, or `None` (no deadline) when it is beyond what the
/// clock can express: such a wait is simply untimed, and arms no timer that would never fire.
fn deadline_after(d: Duration) -> Option<u64> {
    Instant::now().checked_add(d).and_then(deadline_at)
}

/// `t` on the runtime clock, or `None` when it saturates (the distant future).
fn deadline_at(t: Instant) -> Option<u64> {
    let n = to_nanos(t);
    (n < u64::MAX - 1).then_some(n)
}

/// How a blocking operation ended.
enum Waited {
    /// Completed by a peer or a close: read the sudog's `ok` and slot.
    Done,
    /// The deadline passed first.
    Timeout,
}

/// Block on one channel with sudog `sg` (a receiver if `recv`, else a sender holding its value)
/// until it completes or `deadline` passes (Go: the slow paths of `chansend`/`chanrecv`).
fn wait_one<T>(c: &Chan<T>, sg: &Sudog<T>, recv: bool, deadline: Option<u64>) -> Waited {
    // With a deadline the group is shared with a timer, so it lives on the heap.
    let on_heap: Option<Arc<Group>> = deadline.map(|_| Arc::new(Group::new()));
    let on_stack = Group::new();
    let group: &Group = on_heap.as_deref().unwrap_or(&on_stack);
    sg.set_group(group, 0);
    // The timer's reference to the group, handed over only if we park.
    let timer = deadline
        .zip(on_heap.as_ref())
        .map(|(d, g)| (d, timer_ref(g)));
    let cap = c.cap;
    let reason = if recv {
        WaitReason::ChanRecv
    } else {
        WaitReason::ChanSend
    };
    waiter::block(reason, 0, move |w| {
        // On the M's stack after the switch (or on the blocked thread). `c`, `sg`, `group` may
        // point into the blocked caller's frame: use them only until the unlock below publishes
        // the sudog; `timer` and `cap` were copied into this closure.
        let mut wakes = Wakes::new();
        let mut st = c.lock();
        let done_now = if recv {
            match st.try_recv(&mut wakes) {
                RecvNow::Value(v) => {
                    sg.put(v);
                    Some(true)
                }
                RecvNow::Closed => Some(false),
                RecvNow::Empty => None,
            }
        } else {
            match st.try_send(cap, sg.take().expect("sender value"), &mut wakes) {
                Ok(()) => Some(true),
                Err(SendFail::Disconnected(v)) => {
                    sg.put(v);
                    Some(false)
                }
                Err(SendFail::Full(v)) => {
                    sg.put(v);
                    None
                }
            }
        };
        if let Some(ok) = done_now {
            drop(st);
            sg.set_ok(ok);
            group.claim(0);
            wakes.wake_all();
            if let Some((_, raw)) = timer {
                drop_timer_ref(raw);
            }
            return false;
        }
        group.waiter.store(w, Ordering::Release);
        if recv {
            st.push_recv(sg);
        } else {
            st.push_send(sg);
        }
        drop(st); // publishes the sudog: from here on, touch only `timer`
        if let Some((when, raw)) = timer {
            add_timer(when, raw, 0, &CHAN_TIMEOUT);
        }
        true
    });
    if group.winner() == TIMEOUT {
        // Our sudog may still be queued: take it out (nobody else will complete it now).
        c.lock().remove(sg);
        return Waited::Timeout;
    }
    Waited::Done
}

/// A reference to `g` for a timer (released by `CHAN_TIMEOUT`'s fire, or by `drop_timer_ref`).
pub(crate) fn timer_ref(g: &Arc<Group>) -> usize {
    Arc::into_raw(Arc::clone(g)) as usize
}

/// Release a reference made by `timer_ref` that was never handed to a timer.
pub(crate) fn drop_timer_ref(raw: usize) {
    // SAFETY: `raw` came from `timer_ref` (`Arc::into_raw`) and is released exactly once.
    drop(unsafe { Arc::from_raw(raw as *const Group) });
}

/// A blocking operation's deadline: `arg` is an `Arc<Group>` turned into a pointer (the entry
/// owns that reference). Firing claims the group for `TIMEOUT` (if nothing completed it yet) and
/// releases the reference. An entry whose operation already completed is stale: heap compaction
/// drops it and `discard` releases the reference, so a loop of long timeouts that complete early
/// does not pile up entries until their deadlines (Go ≤ 1.22's `time.After` leak).
pub(crate) static CHAN_TIMEOUT: TimerKind = TimerKind {
    name: "channel timeout",
    fire: |arg, _gen, _now| {
        // SAFETY: `arg` came from `Arc::into_raw` when the timer was added; firing and
        // discarding are the only places that turn it back, and an entry does one of them once.
        let g = unsafe { Arc::from_raw(arg as *const Group) };
        if g.claim(TIMEOUT) {
            waiter::wake(g.waiter.load(Ordering::Acquire));
        }
    },
    live: |arg, _gen| {
        // SAFETY: the entry owns a strong reference to the group (see above), so it is alive.
        let g = unsafe { &*(arg as *const Group) };
        g.winner() == hchan::NONE
    },
    discard: Some(|arg, _gen| drop_timer_ref(arg)),
};

/// Close from the sender side (`Sender::close` or the last `Sender` dropped).
fn close<T>(c: &Chan<T>) {
    let mut wakes = Wakes::new();
    {
        let mut st = c.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        st.fail_waiters(true, true, &mut wakes);
    }
    wakes.wake_all();
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            close(&self.chan);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.chan.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut wakes = Wakes::new();
            {
                let mut st = self.chan.lock();
                st.rx_gone = true;
                st.fail_waiters(false, true, &mut wakes);
            }
            wakes.wake_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

/// Blocking iterator of [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator of [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator (`for v in rx`).
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
