//! `select!`: wait on several channel operations, complete exactly one (Go: `selectgo` in
//! `runtime/select.go`).
//!
//! 1. Lock every channel involved, in address order (each once, however many arms use it).
//! 2. Visit the arms in a random order (a fresh shuffle per select, Go's `pollorder`) and
//!    complete the first that can proceed now. Several ready arms are therefore chosen uniformly.
//! 3. None ready: with `default`, unlock and return it. Otherwise park: the commit (after the
//!    switch) locks again, retries step 2, and if still nothing is ready, enqueues one sudog per
//!    arm, all sharing one `Group`, then unlocks — from the M's stack, through mutex pointers it
//!    copied first (Go's `selparkcommit` likewise never touches the parked G's stack). A
//!    deadline adds a timer that claims the group for `TIMEOUT`.
//! 4. Woken: the winner is `Group::done` (whoever claimed it already moved the value). Lock every
//!    channel again and remove the other sudogs (Go's pass 3); a send arm that lost gets its
//!    value back.
//!
//! Arms are type-erased through [`SelectArm`], so one select mixes channels of different types.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::lock_api::RawMutex as _;
use parking_lot::RawMutex;

use super::hchan::{Group, RecvNow, SendFail, Sudog, Wakes, NONE, TIMEOUT};
use super::{drop_timer_ref, timer_ref, Receiver, RecvError, SendError, Sender, CHAN_TIMEOUT};
use crate::sched::{context, waiter};
use crate::time::timers::add_timer;
use crate::time::{nanotime, to_nanos};
use crate::wait_reason::WaitReason;

/// How `select_impl` may wait.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No `default`: park until an arm completes.
    Block,
    /// `default =>`: never park.
    NonBlock,
    /// `default(timeout) =>`: park until an arm completes or the instant passes.
    Deadline(Instant),
}

/// What `select_impl` chose.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selected {
    /// The arm with this index completed.
    Case(usize),
    /// Nothing was ready (`default =>`) or the deadline passed (`default(timeout) =>`).
    Default,
}

/// One arm of a `select!`, type-erased (used by the macro; not a stable API). Its methods take
/// crate-private types, so nothing outside weft can implement or call it.
#[doc(hidden)]
#[allow(private_interfaces)]
pub trait SelectArm {
    /// The channel's identity (its address), for lock ordering.
    fn chan_id(&self) -> usize;
    /// Lock the channel.
    fn lock(&self);
    /// The channel's lock, to unlock it later without touching the arm.
    fn mutex(&self) -> *const RawMutex;
    /// Under the lock: complete now if possible (the result is kept in the arm).
    fn try_now(&self, wakes: &mut Wakes) -> bool;
    /// Under the lock: queue this arm's sudog in `g` as case `case`.
    fn enqueue(&self, g: &Group, case: usize);
    /// Under the lock, after waking: take the sudog out if still queued (and a losing send's
    /// value back).
    fn dequeue(&self);
    /// After waking as the winner: move the result from the sudog into the arm.
    fn finish(&self);
}

/// A `recv(rx) -> v` arm.
#[doc(hidden)]
pub struct RecvArm<'a, T> {
    rx: &'a Receiver<T>,
    sg: Sudog<T>,
    result: Cell<Option<Result<T, RecvError>>>,
}

impl<'a, T> RecvArm<'a, T> {
    /// A receive arm on `rx`.
    pub fn new(rx: &'a Receiver<T>) -> Self {
        RecvArm {
            rx,
            sg: Sudog::new(None),
            result: Cell::new(None),
        }
    }

    /// The arm's outcome (once it was chosen).
    pub fn take_result(&self) -> Result<T, RecvError> {
        self.result
            .take()
            .expect("select: the chosen arm has no result")
    }
}

#[allow(private_interfaces)]
impl<T> SelectArm for RecvArm<'_, T> {
    fn chan_id(&self) -> usize {
        Arc::as_ptr(&self.rx.chan) as *const () as usize
    }
    fn lock(&self) {
        self.rx.chan.raw_lock();
    }
    fn mutex(&self) -> *const RawMutex {
        self.rx.chan.raw_mutex()
    }
    fn try_now(&self, wakes: &mut Wakes) -> bool {
        // SAFETY: select holds this channel's lock while it calls `try_now`.
        let st = unsafe { self.rx.chan.state_locked() };
        match st.try_recv(wakes) {
            RecvNow::Value(v) => self.result.set(Some(Ok(v))),
            RecvNow::Closed => self.result.set(Some(Err(RecvError))),
            RecvNow::Empty => return false,
        }
        true
    }
    fn enqueue(&self, g: &Group, case: usize) {
        self.sg.set_group(g, case);
        // SAFETY: under the lock (as `try_now`).
        unsafe { self.rx.chan.state_locked() }.push_recv(&self.sg);
    }
    fn dequeue(&self) {
        // SAFETY: under the lock (as `try_now`).
        unsafe { self.rx.chan.state_locked() }.remove(&self.sg);
    }
    fn finish(&self) {
        if let Some(r) = self.result.take() {
            self.result.set(Some(r)); // completed in `try_now`
            return;
        }
        let r = if self.sg.ok() {
            Ok(self.sg.take().expect("a completed receive has its value"))
        } else {
            Err(RecvError)
        };
        self.result.set(Some(r));
    }
}

/// A `send(tx, value) -> res` arm.
#[doc(hidden)]
pub struct SendArm<'a, T> {
    tx: &'a Sender<T>,
    value: Cell<Option<T>>,
    sg: Sudog<T>,
    result: Cell<Option<Result<(), SendError<T>>>>,
}

impl<'a, T> SendArm<'a, T> {
    /// A send arm offering `v` on `tx`.
    pub fn new(tx: &'a Sender<T>, v: T) -> Self {
        SendArm {
            tx,
            value: Cell::new(Some(v)),
            sg: Sudog::new(None),
            result: Cell::new(None),
        }
    }

    /// The arm's outcome (once it was chosen).
    pub fn take_result(&self) -> Result<(), SendError<T>> {
        self.result
            .take()
            .expect("select: the chosen arm has no result")
    }
}

#[allow(private_interfaces)]
impl<T> SelectArm for SendArm<'_, T> {
    fn chan_id(&self) -> usize {
        Arc::as_ptr(&self.tx.chan) as *const () as usize
    }
    fn lock(&self) {
        self.tx.chan.raw_lock();
    }
    fn mutex(&self) -> *const RawMutex {
        self.tx.chan.raw_mutex()
    }
    fn try_now(&self, wakes: &mut Wakes) -> bool {
        let c = &*self.tx.chan;
        let v = self.value.take().expect("send arm without its value");
        // SAFETY: select holds this channel's lock while it calls `try_now`.
        let st = unsafe { c.state_locked() };
        match st.try_send(c.cap, v, wakes) {
            Ok(()) => self.result.set(Some(Ok(()))),
            Err(SendFail::Disconnected(v)) => self.result.set(Some(Err(SendError(v)))),
            Err(SendFail::Full(v)) => {
                self.value.set(Some(v));
                return false;
            }
        }
        true
    }
    fn enqueue(&self, g: &Group, case: usize) {
        self.sg.set_group(g, case);
        self.sg
            .put(self.value.take().expect("send arm without its value"));
        // SAFETY: under the lock (as `try_now`).
        unsafe { self.tx.chan.state_locked() }.push_send(&self.sg);
    }
    fn dequeue(&self) {
        // SAFETY: under the lock (as `try_now`).
        unsafe { self.tx.chan.state_locked() }.remove(&self.sg);
        if let Some(v) = self.sg.take() {
            self.value.set(Some(v));
        }
    }
    fn finish(&self) {
        if let Some(r) = self.result.take() {
            self.result.set(Some(r)); // completed in `try_now`
            return;
        }
        let r = if self.sg.ok() {
            Ok(())
        } else {
            Err(SendError(
                self.sg.take().expect("a failed send keeps its value"),
            ))
        };
        self.result.set(Some(r));
    }
}

/// A random number for the poll order.
fn rand() -> u32 {
    if let Some(m) = context::current_m() {
        return m.fastrand();
    }
    use std::sync::atomic::AtomicU32;
    static SEED: AtomicU32 = AtomicU32::new(0x9E37_79B9);
    // Plain threads: a shared sequence, mixed with the clock so that processes differ.
    let mut x = SEED.fetch_add(0x6D2B_79F5, Ordering::Relaxed) ^ (nanotime() as u32);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2C1B_3C6D);
    x ^= x >> 12;
    x
}

/// Lock the channels of `arms` in `order` (sorted by channel), each once.
fn lock_all(arms: &[&dyn SelectArm], order: &[usize]) {
    let mut last = None;
    for &i in order {
        let id = arms[i].chan_id();
        if last != Some(id) {
            arms[i].lock();
            last = Some(id);
        }
    }
}

/// The distinct channel locks of `arms`, in `order`.
fn mutexes(arms: &[&dyn SelectArm], order: &[usize]) -> Vec<*const RawMutex> {
    let mut out: Vec<*const RawMutex> = Vec::with_capacity(order.len());
    for &i in order {
        let m = arms[i].mutex();
        if out.last() != Some(&m) {
            out.push(m);
        }
    }
    out
}

/// Unlock locks taken by `lock_all`.
///
/// # Safety
/// Every pointer names a channel lock this thread holds, in a channel that stays alive until the
/// unlock returns.
unsafe fn unlock_all(locks: &[*const RawMutex]) {
    for &m in locks.iter().rev() {
        // SAFETY: the caller's contract.
        unsafe { (*m).unlock() };
    }
}

/// The engine of `select!` (see the module doc). Returns the chosen arm.
#[doc(hidden)]
pub fn select_impl(arms: &[&dyn SelectArm], mode: Mode) -> Selected {
    let n = arms.len();
    // A deadline beyond the clock's range is no deadline (see `deadline_at` in mod.rs).
    let deadline = match mode {
        Mode::Deadline(t) => Some(to_nanos(t)).filter(|&n| n < u64::MAX - 1),
        _ => None,
    };
    if n == 0 {
        match mode {
            Mode::NonBlock => return Selected::Default,
            Mode::Deadline(t) => {
                crate::time::sleep_until(t);
                return Selected::Default;
            }
            // Go's `select {}`: block forever.
            Mode::Block => loop {
                waiter::block(WaitReason::SelectNoCases, 0, |_| true);
            },
        }
    }
    // The macro builds each arm once; a hand-made call that passes one arm twice would make it
    // enqueue twice. Refuse it here, before any lock is taken.
    for (i, a) in arms.iter().enumerate() {
        let pa = *a as *const dyn SelectArm as *const ();
        assert!(
            arms[..i]
                .iter()
                .all(|b| *b as *const dyn SelectArm as *const () != pa),
            "select: the same arm was passed twice"
        );
    }
    // Lock order: by channel address. Poll order: a uniform shuffle (Fisher-Yates).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| arms[i].chan_id());
    let mut poll: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rand() as usize % (i + 1);
        poll.swap(i, j);
    }
    let locks = mutexes(arms, &order);

    let mut wakes = Wakes::new();
    lock_all(arms, &order);
    let now = poll.iter().copied().find(|&i| arms[i].try_now(&mut wakes));
    // SAFETY: `lock_all` took exactly these locks; the arms' channels outlive this call.
    unsafe { unlock_all(&locks) };
    wakes.wake_all();
    if let Some(i) = now {
        return Selected::Case(i);
    }
    match mode {
        Mode::NonBlock => return Selected::Default,
        Mode::Deadline(_) if deadline.is_some_and(|d| nanotime() >= d) => return Selected::Default,
        _ => {}
    }

    let on_heap: Option<Arc<Group>> = deadline.map(|_| Arc::new(Group::new()));
    let on_stack = Group::new();
    let group: &Group = on_heap.as_deref().unwrap_or(&on_stack);
    let timer = deadline
        .zip(on_heap.as_ref())
        .map(|(d, g)| (d, timer_ref(g)));
    let (arms_ref, order_ref, poll_ref, locks_ref) = (arms, &order[..], &poll[..], &locks[..]);
    waiter::block(WaitReason::Select, 0, move |w| {
        // On the M's stack after the switch. Everything borrowed from the caller's frame is used
        // only before the unlock that publishes the sudogs; the unlock itself goes through a copy
        // of the lock pointers made here.
        let mut wakes = Wakes::new();
        lock_all(arms_ref, order_ref);
        let locks: Vec<*const RawMutex> = locks_ref.to_vec();
        if let Some(i) = poll_ref
            .iter()
            .copied()
            .find(|&i| arms_ref[i].try_now(&mut wakes))
        {
            group.claim(i);
            // SAFETY: `lock_all` took exactly these locks.
            unsafe { unlock_all(&locks) };
            wakes.wake_all();
            if let Some((_, raw)) = timer {
                drop_timer_ref(raw);
            }
            return false;
        }
        group.waiter.store(w, Ordering::Release);
        for (case, arm) in arms_ref.iter().enumerate() {
            arm.enqueue(group, case);
        }
        // Publish. SAFETY: we hold exactly these locks; each channel is kept alive by an arm's
        // Sender/Receiver, which the parked caller cannot drop before it has re-taken every one
        // of these locks after waking.
        unsafe { unlock_all(&locks) };
        if let Some((when, raw)) = timer {
            add_timer(when, raw, 0, &CHAN_TIMEOUT);
        }
        true
    });

    let winner = group.winner();
    debug_assert_ne!(winner, NONE, "select woke without a winner");
    // Take our other sudogs out of their queues (Go's pass 3).
    lock_all(arms, &order);
    for (case, arm) in arms.iter().enumerate() {
        if case != winner {
            arm.dequeue();
        }
    }
    // SAFETY: `lock_all` took exactly these locks.
    unsafe { unlock_all(&locks) };
    if winner == TIMEOUT {
        return Selected::Default;
    }
    arms[winner].finish();
    Selected::Case(winner)
}

/// Wait on several channel operations and run the branch of the one that completes (Go's
/// `select`, in `crossbeam-channel`'s syntax).
///
/// ```text
/// select! {
///     recv(rx) -> v => ...,          // v: Result<T, RecvError>
///     send(tx, value) -> res => ..., // res: Result<(), SendError<T>>
///     default => ...,                // optional: do not block
///     default(timeout) => ...,       // or: block at most `timeout` (a Duration)
/// }
/// ```
///
/// Exactly one branch runs. When several operations are ready, one is chosen uniformly at
/// random (so no arm starves); the others have no effect (a losing send keeps its value, which
/// is dropped with the macro's temporaries). A receive on a closed channel and a send on a
/// channel without receivers are "ready" (they complete with an error), as in Go.
///
/// ```
/// use std::time::Duration;
/// use weft_runtime::{chan, select};
///
/// weft_runtime::run(|| {
///     let (tx1, rx1) = chan::bounded::<i32>(1);
///     let (_tx2, rx2) = chan::bounded::<&str>(1);
///     tx1.send(7).unwrap();
///     select! {
///         recv(rx1) -> v => assert_eq!(v, Ok(7)),
///         recv(rx2) -> _ => unreachable!(),
///     }
///     let got = select! {
///         recv(rx2) -> _ => "value",
///         default(Duration::from_millis(5)) => "timeout",
///     };
///     assert_eq!(got, "timeout");
///     // Block bodies, with or without a comma after them.
///     tx1.send(8).unwrap();
///     select! {
///         recv(rx1) -> v => { assert_eq!(v, Ok(8)); },
///         default => {},
///     }
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__weft_select!(
            @parse [] [] [
                __weft_a0 __weft_a1 __weft_a2 __weft_a3 __weft_a4 __weft_a5 __weft_a6 __weft_a7
                __weft_a8 __weft_a9 __weft_a10 __weft_a11 __weft_a12 __weft_a13 __weft_a14
                __weft_a15 __weft_a16 __weft_a17 __weft_a18 __weft_a19 __weft_a20 __weft_a21
                __weft_a22 __weft_a23 __weft_a24 __weft_a25 __weft_a26 __weft_a27 __weft_a28
                __weft_a29 __weft_a30 __weft_a31
            ] $($tokens)*
        )
    };
}

/// The parser and code generator behind [`select!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __weft_select {
    // recv arm, block body (with or without a comma after it)
    (@parse [$($arms:tt)*] [$($def:tt)*] [$n:ident $($ns:ident)*]
        recv($r:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)* ($n recv ($r) ($p) ($body))] [$($def)*] [$($ns)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($def:tt)*] [$n:ident $($ns:ident)*]
        recv($r:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)* ($n recv ($r) ($p) ($body))] [$($def)*] [$($ns)*] $($rest)*)
    };
    // recv arm, expression body
    (@parse [$($arms:tt)*] [$($def:tt)*] [$n:ident $($ns:ident)*]
        recv($r:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__weft_select!(@parse [$($arms)* ($n recv ($r) ($p) ($body))] [$($def)*] [$($ns)*] $($($rest)*)?)
    };
    // send arm, block body (with or without a comma after it)
    (@parse [$($arms:tt)*] [$($def:tt)*] [$n:ident $($ns:ident)*]
        send($s:expr, $v:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)* ($n send ($s, $v) ($p) ($body))] [$($def)*] [$($ns)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($def:tt)*] [$n:ident $($ns:ident)*]
        send($s:expr, $v:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)* ($n send ($s, $v) ($p) ($body))] [$($def)*] [$($ns)*] $($rest)*)
    };
    // send arm, expression body
    (@parse [$($arms:tt)*] [$($def:tt)*] [$n:ident $($ns:ident)*]
        send($s:expr, $v:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__weft_select!(@parse [$($arms)* ($n send ($s, $v) ($p) ($body))] [$($def)*] [$($ns)*] $($($rest)*)?)
    };
    // default with a timeout
    (@parse [$($arms:tt)*] [] [$($ns:ident)*]
        default($t:expr) => $body:block, $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)*] [(timeout ($t) ($body))] [$($ns)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] [$($ns:ident)*]
        default($t:expr) => $body:block $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)*] [(timeout ($t) ($body))] [$($ns)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] [$($ns:ident)*]
        default($t:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__weft_select!(@parse [$($arms)*] [(timeout ($t) ($body))] [$($ns)*] $($($rest)*)?)
    };
    // default without a timeout
    (@parse [$($arms:tt)*] [] [$($ns:ident)*]
        default => $body:block, $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)*] [(now ($body))] [$($ns)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] [$($ns:ident)*]
        default => $body:block $($rest:tt)*) => {
        $crate::__weft_select!(@parse [$($arms)*] [(now ($body))] [$($ns)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] [$($ns:ident)*]
        default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__weft_select!(@parse [$($arms)*] [(now ($body))] [$($ns)*] $($($rest)*)?)
    };
    // done
    (@parse [$($arms:tt)*] [$($def:tt)*] [$($ns:ident)*]) => {
        $crate::__weft_select!(@emit [$($arms)*] [$($def)*])
    };
    (@parse $($bad:tt)*) => {
        compile_error!("select!: expected `recv(rx) -> v => ...`, `send(tx, value) -> res => ...`, `default => ...` or `default(timeout) => ...` (at most 32 arms, one default)")
    };

    (@arm recv ($r:expr)) => { $crate::chan::RecvArm::new(&$r) };
    (@arm send ($s:expr, $v:expr)) => { $crate::chan::SendArm::new(&$s, $v) };
    (@mode []) => { $crate::chan::Mode::Block };
    (@mode [(now ($body:expr))]) => { $crate::chan::Mode::NonBlock };
    (@mode [(timeout ($t:expr) ($body:expr))]) => {
        match ::std::time::Instant::now().checked_add($t) {
            ::std::option::Option::Some(d) => $crate::chan::Mode::Deadline(d),
            ::std::option::Option::None => $crate::chan::Mode::Block,
        }
    };
    (@default []) => { ::std::unreachable!("select!: no default arm") };
    (@default [(now ($body:expr))]) => { $body };
    (@default [(timeout ($t:expr) ($body:expr))]) => { $body };

    (@emit [$(($n:ident $kind:ident ($($a:tt)*) ($p:pat) ($body:expr)))*] [$($def:tt)*]) => {{
        $( let $n = $crate::__weft_select!(@arm $kind ($($a)*)); )*
        let __weft_sel = $crate::chan::select_impl(
            &[$(&$n as &dyn $crate::chan::SelectArm),*],
            $crate::__weft_select!(@mode [$($def)*]),
        );
        #[allow(unused_assignments, unused_mut, unused_variables)]
        let mut __weft_i = 0usize;
        #[allow(unreachable_code, clippy::never_loop)]
        'weft_select: {
            $(
                if __weft_sel == $crate::chan::Selected::Case(__weft_i) {
                    let $p = $n.take_result();
                    break 'weft_select $body;
                }
                #[allow(unused_assignments)]
                {
                    __weft_i += 1;
                }
            )*
            $crate::__weft_select!(@default [$($def)*])
        }
    }};
}
