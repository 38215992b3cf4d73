//! A blocked caller as one word: a parked G, or an OS thread that is not a G.
//!
//! weft's blocking primitives (pollDesc waits, the semaphore under the socket locks) work both
//! inside a G, where they park the G, and on a plain thread, where they block the thread — so
//! that the same socket API works everywhere, as the issue asks. Both kinds of waiter are
//! published in the primitive's wait slot as one `usize`:
//!
//! * a G: its address (`G` is 8-aligned, so the low three bits are zero);
//! * a thread: the address of a [`ThreadWaiter`] on that thread's stack, tagged with
//!   `THREAD_TAG` (bit 2).
//!
//! Both are far above the small state constants the slots use (0, 1, 2).
//!
//! [`block`] publishes the caller through a commit closure and sleeps; [`wake`] wakes whatever
//! the word names. For a G, the commit runs on the M's stack after the switch (`park`'s rule);
//! for a thread it runs on the thread before it sleeps. Either way, once the commit has
//! published the word, the waker owns the wakeup and the waiter owns nothing until it is woken.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, Thread};

use super::g::{GRef, G};
use super::{context, park};
use crate::wait_reason::WaitReason;

/// Tag bit of a thread waiter's word.
const THREAD_TAG: usize = 0b100;
/// Mask of the bits that are never part of an address here.
const TAG_MASK: usize = 0b111;

/// A plain thread blocked in [`block`]; lives on that thread's stack for the duration.
#[repr(align(8))]
struct ThreadWaiter {
    thread: Thread,
    woken: AtomicBool,
}

/// Whether the word names a thread (not a G).
pub(crate) fn is_thread(w: usize) -> bool {
    w & THREAD_TAG != 0
}

/// The G a word names, if it names one.
pub(crate) fn as_g(w: usize) -> Option<GRef> {
    if is_thread(w) {
        None
    } else {
        NonNull::new(w as *mut G).map(GRef)
    }
}

/// Block the caller until [`wake`] is called with the word that `commit` published.
///
/// `commit(w)` publishes `w` in some wait slot and returns `true`, or returns `false` when the
/// event already happened (then nothing blocks). In a G it runs on the M's stack after the
/// switch, with `park`'s rule: touch nothing after the operation that publishes `w`. Spurious
/// returns do not happen: the caller returns only after its own wakeup.
///
/// `reason`/`detail` are recorded for a G (see `park`).
pub(crate) fn block<F>(reason: WaitReason, detail: u64, commit: F)
where
    F: FnOnce(usize) -> bool,
{
    if context::current_g().is_some() {
        park::park(reason, detail, |gp| commit(gp.as_ptr() as usize));
        return;
    }
    let me = ThreadWaiter {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    };
    let w = &me as *const ThreadWaiter as usize;
    debug_assert_eq!(w & TAG_MASK, 0);
    if commit(w | THREAD_TAG) {
        while !me.woken.load(Ordering::Acquire) {
            thread::park();
        }
    }
}

/// Wake the waiter `w` published by [`block`]'s commit. Each published word is woken once.
pub(crate) fn wake(w: usize) {
    if is_thread(w) {
        let tw = (w & !TAG_MASK) as *const ThreadWaiter;
        // SAFETY: the thread published this address and stays in `block` (the waiter is alive
        // on its stack) until it sees `woken`; we clone the handle before setting it and touch
        // the waiter no more afterwards.
        let t = unsafe { (*tw).thread.clone() };
        // SAFETY: as above; this store is our last access to the waiter.
        unsafe { (*tw).woken.store(true, Ordering::Release) };
        t.unpark();
        return;
    }
    match as_g(w) {
        Some(gp) => park::ready(gp),
        None => super::fatal(format_args!("wake: null waiter word")),
    }
}
