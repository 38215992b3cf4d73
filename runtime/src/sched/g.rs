//! G: a goroutine, i.e. one stackful coroutine and its bookkeeping.
//!
//! Go counterpart: `type g` and the `_G*` status constants in `runtime2.go`, `gfget`/`gfput`
//! (the per-P free lists of dead Gs that keep their stacks) in `proc.go`.
//!
//! # Ownership
//!
//! A G is a heap object addressed by [`GRef`] (a raw pointer). At every moment exactly one place
//! owns it: a run queue (local ring, `runnext` or the global queue), a wait slot (a join packet, a
//! pollDesc, a channel's wait list...), the M that is running it, or a free list. Only the owner
//! touches the non-atomic fields; ownership moves by the release/acquire edge of the queue or slot
//! that hands the pointer over. A G that were owned by two places would be resumed twice, which is
//! why parking commits *after* the switch (see `park.rs`).
//!
//! `status` is the one field that non-owners touch: [`ready`](super::park::ready) swaps it, which
//! turns a double wakeup (a runtime bug) into a loud abort instead of a corrupted stack.
//!
//! | status      | owner                         | entered by                            |
//! |-------------|-------------------------------|---------------------------------------|
//! | `RUNNABLE`  | a run queue                   | spawn, `ready`, yield                 |
//! | `RUNNING`   | the M executing it            | `execute`                             |
//! | `WAITING`   | a wait slot                   | a committed park                      |
//! | `BLOCKED_OS`| its M (blocked OS thread)     | park while unwinding (see `park.rs`)  |
//! | `SYSCALL`   | its M, which holds no P       | `blocking` (see `syscall.rs`)         |
//! | `DEAD`      | a free list                   | the entry function returned           |

use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use corosensei::{Coroutine, Yielder};

use super::m::M;
use crate::stack::GuardedStack;

/// On a run queue, waiting for an M.
pub(crate) const G_RUNNABLE: u8 = 1;
/// Running on an M.
pub(crate) const G_RUNNING: u8 = 2;
/// Parked in a wait slot; only `ready` may move it on.
pub(crate) const G_WAITING: u8 = 3;
/// Parked while unwinding: its M blocks the OS thread instead of switching (see `park.rs`).
pub(crate) const G_BLOCKED_OS: u8 = 4;
/// Finished; sitting on a free list with its stack.
pub(crate) const G_DEAD: u8 = 5;
/// Inside `blocking`: running on its M's thread, which holds no P (Go: `_Gsyscall`).
pub(crate) const G_SYSCALL: u8 = 6;

/// What a G hands its M when it switches out (the coroutine's `Yield` type).
pub(crate) enum Suspend {
    /// `yield_now`: requeue me at the tail of the local run queue.
    Yield,
    /// Park me: run this commit on the M's stack, after the switch (Go: `gopark(unlockf)`).
    Park(Commit),
    /// I left `blocking` and found no P: queue me globally and stop this M (Go:
    /// `exitsyscall0`). The M holds no P when it receives this.
    ExitSyscall,
}

/// A park's commit step: a type-erased `FnOnce(GRef) -> bool` that lives on the parking G's
/// stack. The M calls it after the switch; `true` means "parked" (the G now belongs to whatever
/// wait slot the commit published it in), `false` means "resume me at once".
pub(crate) struct Commit {
    pub(crate) call: unsafe fn(*mut (), GRef) -> bool,
    pub(crate) data: *mut (),
}

/// What the M passes into the G on every resume (the coroutine's `Input` type): the M that is
/// now running it. The G never reads "current M" from thread-local storage across a switch.
pub(crate) type MRef = &'static M;

/// The coroutine type of every G.
pub(crate) type Coro = Coroutine<MRef, Suspend, (), GuardedStack>;

/// One goroutine. See the module doc for who may touch what.
pub(crate) struct G {
    /// Unique id, never reused (Go: `goid`). Set at spawn by the owner; atomic so that sysmon and
    /// the goroutine dump may read it.
    pub(crate) id: AtomicU64,
    /// Optional name from `Builder::name`. Owner only.
    pub(crate) name: UnsafeCell<Option<Box<str>>>,
    /// Lifecycle state; see the table in the module doc. Swapped by `ready`, stored by the owner.
    pub(crate) status: AtomicU8,
    /// The coroutine, while the G is live. Owner only.
    pub(crate) coro: UnsafeCell<Option<Coro>>,
    /// The stack, while the G is dead and cached on a free list. Owner only.
    pub(crate) stack: UnsafeCell<Option<GuardedStack>>,
    /// The coroutine's yielder, recorded by the entry function. Owner only.
    pub(crate) yielder: Cell<*const Yielder<MRef, Suspend>>,
    /// Guard page `[lo, hi)` of the current stack, read by the SIGSEGV handler on the G's own
    /// thread. Owner only.
    pub(crate) guard: Cell<(usize, usize)>,
    /// Usable bytes of the current stack. Owner only.
    pub(crate) stack_size: Cell<usize>,
    /// The M blocked on the OS thread for this G (status `BLOCKED_OS`); `ready` wakes it.
    pub(crate) blocked_m: AtomicPtr<M>,
    /// The G's park token (`parker.rs`), created on first use. Owner only; cleared at exit.
    pub(crate) token: UnsafeCell<Option<std::sync::Arc<crate::parker::Token>>>,
    /// Why the G last parked (`WaitReason` as a byte), with a detail (the fd of an I/O wait)
    /// and when (coarse clock, `introspect::coarse_now`). Written by the owner just before it
    /// parks; read by the dump.
    pub(crate) wait_reason: AtomicU8,
    pub(crate) wait_detail: AtomicU64,
    pub(crate) wait_since: AtomicU64,
    /// When `ready` made the G runnable (`introspect::latency` ticks; 0: not readied). Written by
    /// the readier before it queues the G; read and cleared by the M that runs it.
    pub(crate) ready_at: AtomicU64,
    /// Wakeups of this G since it was spawned, for sampling them (`introspect/latency.rs`).
    /// Written by whoever readies the G (its owner at that moment).
    pub(crate) ready_seq: AtomicU32,
    /// Position in the all-Gs registry (`introspect::allgs`); under its lock.
    pub(crate) allg_idx: AtomicUsize,
}

// SAFETY: a G is owned by one place at a time and handed between threads through queues and slots
// with release/acquire edges (module doc). Its coroutine is not `Send` in corosensei's eyes only
// because the compiler cannot check what user code keeps on the stack across a switch; the user
// contract in docs/DESIGN.md ("Rules for code running in a G") covers that.
unsafe impl Send for G {}

/// A pointer to a [`G`]; holding one means owning the G (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct GRef(pub(crate) NonNull<G>);

// SAFETY: a GRef is a unique owning handle that moves between threads through queues and slots
// whose release/acquire edges publish the G's fields. The coroutine inside is not `Send` in
// corosensei's eyes; the user contract (docs/DESIGN.md "Rules for code running in a G") is what
// makes moving its stack sound, as the runtime's `Builder::spawn` documents.
unsafe impl Send for GRef {}
// SAFETY: shared `&GRef` only exposes the pointer value.
unsafe impl Sync for GRef {}

impl GRef {
    /// A fresh, dead G with no stack (the free lists fill it).
    pub(crate) fn alloc() -> GRef {
        let g = Box::new(G {
            id: AtomicU64::new(0),
            name: UnsafeCell::new(None),
            status: AtomicU8::new(G_DEAD),
            coro: UnsafeCell::new(None),
            stack: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            guard: Cell::new((0, 0)),
            stack_size: Cell::new(0),
            blocked_m: AtomicPtr::new(std::ptr::null_mut()),
            token: UnsafeCell::new(None),
            wait_reason: AtomicU8::new(0),
            wait_detail: AtomicU64::new(0),
            wait_since: AtomicU64::new(0),
            ready_at: AtomicU64::new(0),
            ready_seq: AtomicU32::new(0),
            allg_idx: AtomicUsize::new(usize::MAX),
        });
        let gp = GRef(NonNull::from(Box::leak(g)));
        crate::introspect::allgs::add(gp);
        gp
    }

    /// Shared access to the G.
    pub(crate) fn g(&self) -> &G {
        // SAFETY: Gs are never freed while a GRef to them exists: `free` consumes the last
        // handle, and a live G is referenced only by its single owner.
        unsafe { self.0.as_ref() }
    }

    pub(crate) fn as_ptr(self) -> *mut G {
        self.0.as_ptr()
    }

    /// The G's id.
    pub(crate) fn id(self) -> u64 {
        self.g().id.load(Ordering::Relaxed)
    }

    /// The G's name, if any. Owner only.
    pub(crate) fn name(&self) -> Option<&str> {
        // SAFETY: owner only (module doc); the name is not changed while a G is live.
        unsafe { (*self.g().name.get()).as_deref() }
    }

    pub(crate) fn status(self) -> u8 {
        self.g().status.load(Ordering::Acquire)
    }

    pub(crate) fn set_status(self, s: u8) {
        self.g().status.store(s, Ordering::Release);
    }

    /// Owner only: the coroutine slot.
    ///
    /// # Safety
    /// The caller owns the G and holds no other reference into `coro`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn coro_mut(&self) -> &mut Option<Coro> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.g().coro.get() }
    }

    /// Owner only: the cached-stack slot.
    ///
    /// # Safety
    /// The caller owns the G and holds no other reference into `stack`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn stack_mut(&self) -> &mut Option<GuardedStack> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.g().stack.get() }
    }

    /// Owner only: replace the name.
    ///
    /// # Safety
    /// The caller owns the G.
    pub(crate) unsafe fn set_name(self, name: Option<Box<str>>) {
        // SAFETY: the caller owns gp; the dump reads names only under the registry lock, which
        // `set_name_locked` takes whenever the name changes.
        if name.is_none() && unsafe { (*self.g().name.get()).is_none() } {
            return;
        }
        crate::introspect::allgs::set_name_locked(self, name);
    }

    /// Free the G and its stack (when it cannot be cached).
    ///
    /// # Safety
    /// The caller owns the G, the G is dead, and no other `GRef` to it will ever be used.
    pub(crate) unsafe fn free(self) {
        crate::introspect::allgs::remove(self);
        // SAFETY: the caller's contract; the pointer came from `Box::leak` in `alloc`.
        drop(unsafe { Box::from_raw(self.as_ptr()) });
    }
}
