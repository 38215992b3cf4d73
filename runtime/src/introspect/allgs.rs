//! The registry of every G struct in existence (Go: `allgs`), for the goroutine dump, `stats()`
//! and the deadlock report.
//!
//! A G struct is registered when it is allocated (`GRef::alloc`, which happens only when no
//! dead G can be reused, next to mapping a new stack) and removed when it is freed (its stack
//! could not be cached). Both are rare, so one lock serves. Readers hold the lock while they look
//! at Gs, so no G is freed under them; the fields they read are atomics, except the name, whose
//! writers (`set_name_locked`) take the same lock.

use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::sched::g::GRef;

static ALLGS: Mutex<Vec<GRef>> = parking_lot::const_mutex(Vec::new());

/// Register a newly allocated G.
pub(crate) fn add(gp: GRef) {
    let mut all = ALLGS.lock();
    gp.g().allg_idx.store(all.len(), Ordering::Relaxed);
    all.push(gp);
}

/// Unregister a G about to be freed.
pub(crate) fn remove(gp: GRef) {
    let mut all = ALLGS.lock();
    let i = gp.g().allg_idx.load(Ordering::Relaxed);
    if all.get(i) != Some(&gp) {
        crate::sched::fatal(format_args!("allgs: G #{} is not registered", gp.id()));
    }
    all.swap_remove(i);
    if let Some(moved) = all.get(i) {
        moved.g().allg_idx.store(i, Ordering::Relaxed);
    }
}

/// Replace `gp`'s name under the registry lock (the caller owns `gp`).
pub(crate) fn set_name_locked(gp: GRef, name: Option<Box<str>>) {
    let _all = ALLGS.lock();
    // SAFETY: the caller owns gp (only owners write the name), and readers other than the owner
    // and the owner's own signal handler read it only under this lock, which we hold.
    unsafe { *gp.g().name.get() = name };
}

/// Run `f` on every registered G, under the lock: `f` may read any atomic field and the name
/// (via [`name_of`]) but must not block, allocate Gs or park.
pub(crate) fn for_each(mut f: impl FnMut(GRef)) {
    let all = ALLGS.lock();
    for &gp in all.iter() {
        f(gp);
    }
}

/// The name of `gp`, copied. Only inside [`for_each`] (the lock keeps it stable).
pub(crate) fn name_of(gp: GRef) -> Option<String> {
    // SAFETY: called under the registry lock (from `for_each`'s callback), which every writer
    // of the name holds; the G is registered, hence not freed.
    unsafe { (*gp.g().name.get()).as_deref().map(str::to_owned) }
}

/// Id and name of `gp` if it is still registered (a G another thread saw running a moment ago
/// may have finished and been freed since). A linear search, so that `gp` is not touched before
/// it is known to be alive: for rare reports only (sysmon's hog report).
pub(crate) fn describe_if_registered(gp: GRef) -> Option<(u64, Option<String>)> {
    let all = ALLGS.lock();
    all.contains(&gp).then(|| (gp.id(), name_of(gp)))
}
