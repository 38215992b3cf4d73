//! "Which M, P and G am I running on": the only thread-local state of the runtime.
//!
//! Go keeps these in the `g` register and `g.m.p`. Here they live in two const-initialised
//! `thread_local!` cells of the M's OS thread.
//!
//! # The rule (see docs/DESIGN.md §7, "Rules for code running in a G")
//!
//! A G can park on one OS thread and resume on another, and LLVM caches the *address* of a
//! thread-local across a stack switch (measured: half the reads stale in a release build). So
//! every accessor here is `#[inline(never)]` and returns the loaded *value*, never a reference to
//! the slot: a call that reads memory cannot be hoisted across the switch, and its result is the
//! value for the thread the G runs on *now*. Nothing may keep a value read here across a park and
//! assume it is still current; callers read again after every switch.
//!
//! Writers: only the M's own thread, on its own stack (`m.rs` sets the M once; `execute` sets and
//! clears the G around every resume).

use std::cell::Cell;
use std::ptr::{self, NonNull};

use super::g::{GRef, G};
use super::m::M;
use super::p::P;

thread_local! {
    /// The M running on this OS thread, or null on a thread that is not an M.
    static CUR_M: Cell<*const M> = const { Cell::new(ptr::null()) };
    /// The G this M is executing right now, or null while the M runs scheduler code.
    static CUR_G: Cell<*mut G> = const { Cell::new(ptr::null_mut()) };
}

/// The M of the calling OS thread, if it is one.
#[inline(never)]
pub(crate) fn current_m() -> Option<&'static M> {
    let m = CUR_M.with(|c| c.get());
    // SAFETY: Ms are leaked at creation (`m.rs`) and live for the rest of the process.
    unsafe { m.as_ref() }
}

/// The P held by the calling thread's M, if any.
#[inline(never)]
pub(crate) fn current_p() -> Option<&'static P> {
    current_m().and_then(|m| m.p())
}

/// The G running on the calling thread, if the caller is inside one.
#[inline(never)]
pub(crate) fn current_g() -> Option<GRef> {
    NonNull::new(CUR_G.with(|c| c.get())).map(GRef)
}

/// Raw read for the signal handler: no allocation, no lazy initialisation (the cell is
/// const-initialised), just a load.
#[inline(never)]
pub(crate) fn current_g_raw() -> *mut G {
    CUR_G.with(|c| c.get())
}

/// Bind the calling OS thread to `m`. Called once, first thing on the M's thread.
pub(crate) fn set_current_m(m: &'static M) {
    CUR_M.with(|c| c.set(m));
}

/// Set (or clear) the G this M is executing. M stack only, around `resume`.
#[inline(never)]
pub(crate) fn set_current_g(g: Option<GRef>) {
    CUR_G.with(|c| c.set(g.map_or(ptr::null_mut(), GRef::as_ptr)));
}
