//! Guarded coroutine stacks and the budget that keeps them under `vm.max_map_count`.
//!
//! Go counterpart: `stack.go` (`stackalloc`/`stackfree` and the per-P stack caches). Go's stacks
//! grow by copying and need no guard page; ours are fixed-size, so each one has a `PROT_NONE`
//! guard page below it that turns an overflow into a SIGSEGV (see [`overflow`]).
//!
//! # Layout of one stack (one `mmap`, two kernel mappings)
//!
//! ```text
//!  low address                                              high address
//!  +-------------+------------------------------------------+
//!  | guard page  |  usable stack (grows downwards  <------)  |
//!  | PROT_NONE   |  PROT_READ | PROT_WRITE                   |
//!  +-------------+------------------------------------------+
//!  ^ mapping = limit()                                       ^ base()
//! ```
//!
//! # Cost and reuse
//!
//! A fresh mapping costs ~10 µs here (mmap + mprotect + first-touch fault + munmap) against ~18 ns
//! for a recycled one, so stacks are never unmapped on the fast path: a dead G keeps its stack on
//! a per-P free list (`sched/p.rs`) or the global one (`sched/newproc.rs`).
//!
//! # The budget
//!
//! Each stack costs two VMAs. At the kernel's limit (`vm.max_map_count`, 65530 by default) mmap,
//! mprotect *and unrelated allocations* start failing, and a panic that then needs memory can
//! hang. So the runtime keeps its own budget: at start-up it reads the limit and the number of
//! mappings the process already has, and allows `(limit - current - HEADROOM) / 2` stacks
//! (~30 K by default). [`GuardedStack::new`] fails with an `io::Error` naming the limit and the
//! sysctl once the budget is spent, well before the kernel fails. `WEFT_MAX_STACKS` (or
//! `Config::max_stacks`) overrides the computed budget.

pub(crate) mod overflow;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use corosensei::stack::{Stack, StackPointer};

/// Default usable stack size of a G: 256 KiB (idle RSS is ~4 KiB whatever the size; a first panic
/// with a backtrace needs ~22 KiB).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest usable stack a G may ask for; smaller requests are rounded up to it.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Mappings left for everything else in the process when the budget is computed.
const HEADROOM_MAPS: usize = 4096;

/// Kernel mappings per guarded stack (the guard page and the usable part).
const MAPS_PER_STACK: usize = 2;

/// Stacks currently mapped (live Gs plus cached dead ones). Atomic: any thread maps and unmaps.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The budget, fixed when the runtime starts.
static BUDGET: OnceLock<Budget> = OnceLock::new();

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Stacks allowed at once.
    max_stacks: usize,
    /// `vm.max_map_count` as read at start-up (for the error message).
    max_map_count: Option<usize>,
    /// Whether `max_stacks` came from the user rather than the kernel limit.
    overridden: bool,
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as usize
        } else {
            4096
        }
    })
}

/// Largest usable stack a G may ask for (Go's maximum stack is 1 GB too).
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Round a requested usable size up to the floor and to whole pages.
///
/// # Errors
/// `InvalidInput` above [`MAX_STACK_SIZE`].
pub(crate) fn round_stack_size(requested: usize) -> io::Result<usize> {
    if requested > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("weft: stack size {requested} is above the maximum of {MAX_STACK_SIZE} bytes"),
        ));
    }
    let page = page_size();
    Ok(requested.max(MIN_STACK_SIZE).div_ceil(page) * page)
}

/// Fix the budget. Called once when the runtime starts; `max_stacks` is the user's override.
pub(crate) fn init_budget(max_stacks: Option<usize>) {
    BUDGET.get_or_init(|| {
        let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        match max_stacks {
            Some(n) => Budget {
                max_stacks: n,
                max_map_count,
                overridden: true,
            },
            None => {
                let current = std::fs::read_to_string("/proc/self/maps")
                    .map(|s| s.lines().count())
                    .unwrap_or(0);
                // Without a readable limit (not Linux, or /proc hidden) assume the kernel default.
                let limit = max_map_count.unwrap_or(65530);
                let spare = limit.saturating_sub(current + HEADROOM_MAPS);
                Budget {
                    max_stacks: spare / MAPS_PER_STACK,
                    max_map_count,
                    overridden: false,
                }
            }
        }
    });
}

fn budget() -> Budget {
    init_budget(None);
    *BUDGET.get().expect("budget initialised above")
}

/// How many stacks the budget allows at once.
pub(crate) fn max_stacks() -> usize {
    budget().max_stacks
}

/// How many stacks are mapped now (live and cached).
pub(crate) fn mapped_stacks() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// Whether mapping one more stack would exceed the budget.
pub(crate) fn budget_exhausted() -> bool {
    MAPPED.load(Ordering::Relaxed) >= budget().max_stacks
}

fn budget_error(b: Budget) -> io::Error {
    let limit = match b.max_map_count {
        Some(n) => format!("vm.max_map_count = {n}"),
        None => "vm.max_map_count unreadable".to_string(),
    };
    let source = if b.overridden {
        "set by WEFT_MAX_STACKS / Config::max_stacks".to_string()
    } else {
        format!("derived from {limit}")
    };
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "weft: cannot allocate a coroutine stack: {} guarded stacks are mapped and the budget is {} \
             ({source}; each stack costs {MAPS_PER_STACK} kernel memory mappings). Let some coroutines \
             finish, raise the limit with `sysctl -w vm.max_map_count=<n>`, or set WEFT_MAX_STACKS",
            MAPPED.load(Ordering::Relaxed),
            b.max_stacks,
        ),
    )
}

/// One guarded stack: a single mapping whose lowest page is `PROT_NONE`. See the module doc.
#[derive(Debug)]
pub struct GuardedStack {
    /// Lowest address of the mapping (the guard page).
    mapping: usize,
    /// Length of the whole mapping, guard page included.
    len: usize,
}

impl GuardedStack {
    /// Map a stack with `usable` bytes (already rounded by [`round_stack_size`]) plus a guard
    /// page, charging it to the budget.
    ///
    /// # Errors
    /// `ErrorKind::OutOfMemory` when the budget is spent (the message names `vm.max_map_count`)
    /// or when the kernel refuses the mapping.
    pub fn new(usable: usize) -> io::Result<GuardedStack> {
        assert!(
            (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&usable) && usable % page_size() == 0,
            "GuardedStack::new: size {usable} was not rounded by round_stack_size"
        );
        let b = budget();
        if MAPPED.fetch_add(1, Ordering::Relaxed) >= b.max_stacks {
            MAPPED.fetch_sub(1, Ordering::Relaxed);
            return Err(budget_error(b));
        }
        match Self::map(usable) {
            Ok(s) => Ok(s),
            Err(e) => {
                MAPPED.fetch_sub(1, Ordering::Relaxed);
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "weft: cannot map a {} KiB coroutine stack: {e}",
                        usable / 1024
                    ),
                ))
            }
        }
    }

    fn map(usable: usize) -> io::Result<GuardedStack> {
        let page = page_size();
        let len = usable + page;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
        // existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the first page lies inside the mapping we just created and nobody uses it yet.
        if unsafe { libc::mprotect(p, page, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the mapping we created above, which nothing references.
            unsafe { libc::munmap(p, len) };
            return Err(e);
        }
        Ok(GuardedStack {
            mapping: p as usize,
            len,
        })
    }

    /// Usable bytes (the mapping minus the guard page).
    pub fn usable(&self) -> usize {
        self.len - page_size()
    }

    /// The guard page as `[lo, hi)`.
    pub fn guard_range(&self) -> (usize, usize) {
        (self.mapping, self.mapping + page_size())
    }
}

impl Drop for GuardedStack {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `map` and is owned by this value alone; no coroutine
        // runs on it any more (corosensei returns the stack only from a finished coroutine).
        unsafe { libc::munmap(self.mapping as *mut libc::c_void, self.len) };
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

// SAFETY: the mapping has a guard page at its low end (`limit()` includes it) and at least
// MIN_STACK_SIZE (16 KiB >= corosensei's 4 KiB minimum) usable bytes; base and limit are
// page-aligned, hence aligned to STACK_ALIGNMENT.
unsafe impl Stack for GuardedStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.mapping + self.len).expect("stack base is not null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.mapping).expect("stack limit is not null")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_applies_floor_and_pages() {
        assert_eq!(round_stack_size(0).unwrap(), MIN_STACK_SIZE);
        assert_eq!(
            round_stack_size(MIN_STACK_SIZE + 1).unwrap(),
            MIN_STACK_SIZE + page_size()
        );
        assert_eq!(
            round_stack_size(DEFAULT_STACK_SIZE).unwrap(),
            DEFAULT_STACK_SIZE
        );
        assert_eq!(round_stack_size(MAX_STACK_SIZE).unwrap(), MAX_STACK_SIZE);
        let e = round_stack_size(usize::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn stack_is_writable_and_guarded_layout() {
        let s = GuardedStack::new(round_stack_size(64 * 1024).unwrap()).unwrap();
        assert_eq!(s.usable(), 64 * 1024);
        let (lo, hi) = s.guard_range();
        assert_eq!(hi - lo, page_size());
        assert_eq!(s.limit().get(), lo);
        assert_eq!(s.base().get() - hi, s.usable());
        // The top and bottom usable bytes are writable.
        // SAFETY: both addresses lie inside the read/write part of the mapping we own.
        unsafe {
            *((s.base().get() - 1) as *mut u8) = 1;
            *(hi as *mut u8) = 1;
        }
    }
}
