//! The public face of G creation: [`spawn`], [`Builder`], [`JoinHandle`], [`run`], [`yield_now`].
//!
//! The shapes follow `std::thread`: `spawn(f) -> JoinHandle<T>`, `Builder::new().name(..)
//! .stack_size(..).spawn(f) -> io::Result<JoinHandle<T>>`, `JoinHandle::join() ->
//! std::thread::Result<T>`. Everything here is safe to call; the contract that makes moving a
//! G's stack between threads sound is a rule for the code you run, documented in
//! `docs/DESIGN.md` ("Rules for code running in a G").
//!
//! # The join packet
//!
//! A G and its handle share a [`Packet`]: the result slot and one `state` word (`DoneWord` in
//! `sched/wake_word.rs`, where loom checks its transitions):
//!
//! | state           | meaning                                        | next                         |
//! |-----------------|------------------------------------------------|------------------------------|
//! | `RUNNING`       | G not finished, nobody waiting                 | `DONE`, a G pointer, `THREAD`|
//! | G pointer       | a G is parked in `join` (published by its commit) | `DONE` (the G is readied) |
//! | `THREAD`        | an OS thread waits (its handle stored first)   | `DONE` (the thread unparked) |
//! | `DONE`          | the result is in the slot                      | —                            |
//!
//! The finishing G writes the result, then swaps `DONE` in (AcqRel) and wakes whoever the old
//! value names. The joiner publishes itself with a CAS from `RUNNING`, which fails if the G has
//! finished meanwhile (the park is then cancelled), so a wakeup is never lost.

use std::cell::UnsafeCell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;
use std::thread::{self, Thread};

use crate::sched::g::GRef;
use crate::sched::wake_word::{DoneWord, Waiter};
use crate::sched::{context, newproc, park, sched};
use crate::stack::round_stack_size;

/// What a G and its [`JoinHandle`] share. See the module doc.
struct Packet<T> {
    state: DoneWord,
    /// Written once by the G before `state` becomes `DONE`; read once by the joiner after.
    result: UnsafeCell<Option<thread::Result<T>>>,
    /// Written by a joining OS thread before it CASes `THREAD` in; taken by the G after.
    waiter: UnsafeCell<Option<Thread>>,
}

// SAFETY: `result` and `waiter` are each written by one side and read by the other only after
// the release/acquire edge on `state` described in the module doc.
unsafe impl<T: Send> Sync for Packet<T> {}

impl<T> Packet<T> {
    /// Called once, by the G, with its result.
    fn complete(&self, r: thread::Result<T>) {
        // SAFETY: only the G writes `result`, and only before publishing DONE.
        unsafe { *self.result.get() = Some(r) };
        match self.state.complete() {
            Some(Waiter::Nobody) => {}
            Some(Waiter::Thread) => {
                // SAFETY: the joiner stored its handle before registering (Release), which our
                // AcqRel transition observed; it no longer touches `waiter`.
                let t = unsafe { (*self.waiter.get()).take() };
                if let Some(t) = t {
                    t.unpark();
                }
            }
            Some(Waiter::G(g)) => park::ready(GRef(NonNull::new(g as *mut _).expect("G pointer"))),
            None => crate::sched::fatal(format_args!("join packet completed twice")),
        }
    }

    /// Wait for `DONE` and take the result.
    fn wait(&self) -> thread::Result<T> {
        if !self.state.is_done() {
            if context::current_g().is_some() {
                park::park(crate::wait_reason::WaitReason::Join, 0, |gp| {
                    self.state.commit_wait(gp.as_ptr() as usize)
                });
                if !self.state.is_done() {
                    crate::sched::fatal(format_args!("join: woken before the coroutine finished"));
                }
            } else {
                // SAFETY: nobody else writes `waiter` (one JoinHandle, consumed by join), and the
                // G reads it only after `register_thread` below publishes it.
                unsafe { *self.waiter.get() = Some(thread::current()) };
                if self.state.register_thread() {
                    while !self.state.is_done() {
                        thread::park();
                    }
                }
            }
        }
        // SAFETY: state is DONE (Acquire above), so the G wrote the result and will not touch it.
        unsafe { (*self.result.get()).take() }.expect("join: result already taken")
    }
}

/// An owned permission to join a G: wait for it to finish and take its result.
///
/// Dropping the handle detaches the G, which keeps running.
///
/// ```
/// let h = weft_runtime::spawn(|| 6 * 7);
/// assert_eq!(h.join().unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    packet: Arc<Packet<T>>,
    id: u64,
}

impl<T> JoinHandle<T> {
    /// Wait for the G to finish and return its result, or the payload of its panic as `Err`.
    ///
    /// Inside a G this parks only the calling G; on a plain OS thread it blocks the thread.
    ///
    /// # Panics
    /// When a G joins its own handle, which could never return (std panics likewise).
    ///
    /// ```
    /// let h = weft_runtime::spawn(|| -> u32 { panic!("boom") });
    /// assert!(h.join().is_err());
    /// ```
    pub fn join(self) -> thread::Result<T> {
        if crate::current_id() == Some(self.id) {
            panic!(
                "weft: coroutine #{} tried to join itself, which would deadlock",
                self.id
            );
        }
        self.packet.wait()
    }

    /// Whether the G has finished (its result is ready; `join` will not wait).
    pub fn is_finished(&self) -> bool {
        self.packet.state.is_done()
    }

    /// The G's id (unique for the life of the process; Go's goroutine id).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Configuration for a new G: the shape of `std::thread::Builder`.
///
/// ```
/// let h = weft_runtime::Builder::new()
///     .name("worker".into())
///     .stack_size(64 * 1024)
///     .spawn(|| "done")
///     .unwrap();
/// assert_eq!(h.join().unwrap(), "done");
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the defaults: no name, the process-wide stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Name the G; the name appears in panic messages and stack-overflow reports.
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Usable stack size in bytes, rounded up to whole pages and to the 16 KiB floor (at most
    /// 1 GiB: `spawn` returns `InvalidInput` above). A G whose stack overflows aborts the process
    /// with a message naming it.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawn a G running `f`, starting the runtime if needed.
    ///
    /// # Errors
    /// `ErrorKind::InvalidInput` for a stack size above 1 GiB.
    /// `ErrorKind::OutOfMemory` when no stack can be mapped: the stack budget derived from
    /// `vm.max_map_count` is spent (the message names the limit and the sysctl) or the kernel
    /// refused the mapping. Nothing is spawned then.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let size = match self.stack_size {
            Some(b) => round_stack_size(b)?,
            None => sched().default_stack,
        };
        let packet = Arc::new(Packet {
            state: DoneWord::new(),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
        });
        let their = packet.clone();
        let body = move || {
            let r = panic::catch_unwind(AssertUnwindSafe(f));
            their.complete(r);
        };
        let id = newproc::newproc(body, self.name.map(String::into_boxed_str), size)?;
        Ok(JoinHandle { packet, id })
    }
}

/// Spawn a G running `f` and return its handle (the shape of `std::thread::spawn`).
///
/// ```
/// let hs: Vec<_> = (0..10u64).map(|i| weft_runtime::spawn(move || i * i)).collect();
/// let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 285);
/// ```
///
/// # Panics
/// When the G cannot be created (see [`Builder::spawn`] for the causes); the message names them.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Builder::new().spawn(f) {
        Ok(h) => h,
        Err(e) => panic!("failed to spawn coroutine: {e}"),
    }
}

/// Run `f` as a G and block the calling thread until it returns; return its value, or resume
/// its panic on this thread.
///
/// ```
/// let v = weft_runtime::run(|| {
///     let h = weft_runtime::go!(|| 1 + 1);
///     h.join().unwrap() * 10
/// });
/// assert_eq!(v, 20);
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if context::current_g().is_some() {
        // Inside a G: just a spawn and a join (only a thread's `run` has a main G).
        return match spawn(f).join() {
            Ok(v) => v,
            Err(p) => panic::resume_unwind(p),
        };
    }
    // Registered for the deadlock check (`introspect/checkdead.rs`) before the main G exists,
    // then checked once more when it does, so no moment is missed.
    crate::introspect::checkdead::enter_run();
    struct Leave(Option<u64>);
    impl Drop for Leave {
        fn drop(&mut self) {
            crate::introspect::checkdead::leave_run(self.0);
        }
    }
    let mut leave = Leave(None);
    let h = spawn(f);
    leave.0 = Some(h.id());
    crate::introspect::checkdead::set_main(h.id());
    let r = h.join();
    drop(leave);
    match r {
        Ok(v) => v,
        Err(p) => panic::resume_unwind(p),
    }
}

/// Let other Gs run: the calling G goes to the back of its P's run queue (Go: `runtime.Gosched`).
/// On a plain thread it yields the OS thread.
///
/// ```
/// weft_runtime::run(|| {
///     let other = weft_runtime::spawn(|| 7);
///     while !other.is_finished() {
///         weft_runtime::yield_now();
///     }
///     assert_eq!(other.join().unwrap(), 7);
/// });
/// ```
pub fn yield_now() {
    park::yield_now();
}

/// Spawn a G: `go!(move || ...)` is [`spawn`]`(move || ...)`, returning its [`JoinHandle`].
///
/// ```
/// let h = weft_runtime::go!(move || "hello from a coroutine");
/// assert_eq!(h.join().unwrap(), "hello from a coroutine");
/// ```
#[macro_export]
macro_rules! go {
    ($f:expr $(,)?) => {
        $crate::spawn($f)
    };
}
