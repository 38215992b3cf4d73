//! pollDesc: a socket's registration with the netpoller, its two wait slots and its deadlines
//! (Go: `pollDesc`, `pollcache`, `poll_runtime_poll*` in `runtime/netpoll.go`).
//!
//! # Storage: type-stable, tagged
//!
//! pollDescs live in an arena of fixed chunks that are allocated on demand and never freed, so a
//! pollDesc's address stays valid for the life of the process (Go: `persistentalloc`). Which
//! slots are in use is kept by a `slab::Slab` (free-slot reuse), under a lock taken only at open
//! and close. Each slot has a sequence number `seq`, bumped when the slot is freed. epoll's `u64`
//! carries `index | seq << 32`, so when netpoll receives an event for a descriptor that has
//! been closed (and whose fd number may already name a new socket) the sequence numbers differ
//! and the event is dropped. Such events exist: a registration outlives `close(2)` while another
//! reference to the file is open (a `dup`, a forked child), and keeps firing with the old tag.
//!
//! # Waiting (`prepare`, `wait`) — the `rg`/`wg` protocol is in `poll_word.rs`
//!
//! The op calls `prepare(dir)` before its syscall (error check, then forget stale readiness),
//! and `wait(dir)` after `EAGAIN`: publish `WAIT`, fence, re-check `info`, park with a commit
//! that swaps `WAIT` for the waiter. Go's `netpollblock`, step for step.
//!
//! # Deadlines
//!
//! Per direction (Go's `rd`/`wd`), an absolute time on the runtime clock (0 = none, -1 = expired), under the
//! pollDesc's lock; the `info` bits `READ_EXPIRED`/`WRITE_EXPIRED` mirror "expired" for the
//! lock-free check. A deadline is a timer in a P's heap (`time/timers.rs`) tagged with the
//! descriptor's `seq` and a per-direction generation (Go's `rseq`/`wseq`). Moving a deadline later
//! keeps the pending timer: when it fires it sees the later deadline and re-arms itself at it.
//! Moving it earlier bumps the generation (the old timer becomes stale) and adds a new one.
//! Clearing it bumps the generation. A deadline in the past expires at once and wakes the
//! waiter. A timer whose generation or `seq` no longer matches does nothing: a stale timer never
//! fires on a new deadline or a recycled descriptor.
//!
//! # Closing
//!
//! `evict` (Go: `pollUnblock`) sets `CLOSING`, invalidates the timers and wakes both waiters,
//! which return the "use of closed network connection" error. Dropping the `PollDesc` (Go:
//! `pollClose` + `pollcache.free`) deregisters the fd and frees the slot (bumping `seq`); the
//! socket layer does that only after the last in-flight op has returned, then closes the fd.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use slab::Slab;

use super::poll_word::{
    fence_after_publish, Begin, PollErr, PollInfo, PollWord, INFO_CLOSING, INFO_EVENT_ERR,
    INFO_HUP, INFO_READ_EXPIRED, INFO_WRITE_EXPIRED,
};
use super::{ensure_poller, WAITERS};
use crate::sched::g::GRef;
use crate::sched::{fatal, waiter};
use crate::time::timers::{add_timer, TimerKind};
use crate::time::{nanotime, to_nanos};
use crate::wait_reason::WaitReason;

/// pollDescs per arena chunk.
const CHUNK: usize = 256;
/// Arena chunks: at most `CHUNK * NCHUNKS` (4 Mi) descriptors registered at once.
const NCHUNKS: usize = 16 * 1024;

/// One slot of the arena (see the module doc). Never freed.
struct Pd {
    /// The registered fd (for `EPOLL_CTL_DEL`).
    fd: AtomicI32,
    /// Bumped each time the slot is freed; part of every epoll tag and timer generation.
    seq: AtomicU32,
    /// Reader's wait slot.
    rg: PollWord,
    /// Writer's wait slot.
    wg: PollWord,
    /// Closing / expired / event-error flags (lock-free view).
    info: PollInfo,
    /// Generation of each direction's deadline timer, read then write (Go: `rseq`, `wseq`).
    dseq: [AtomicU32; 2],
    /// Each direction's deadline and timer bookkeeping, read then write.
    dl: Mutex<[Deadline; 2]>,
}

/// One direction's deadline (Go: `rd` or `wd`).
#[derive(Default, Clone, Copy)]
struct Deadline {
    /// 0 none, -1 expired, else runtime-clock nanoseconds.
    at: i64,
    /// `when` of the pending timer of the current generation, or 0.
    armed: u64,
}

/// Index of a direction in the per-direction arrays.
fn dir(write: bool) -> usize {
    write as usize
}

/// The `info` bit of each direction's expired deadline.
const EXPIRED: [u32; 2] = [INFO_READ_EXPIRED, INFO_WRITE_EXPIRED];

/// The timer kind of each direction's deadline.
static DEADLINE: [&TimerKind; 2] = [&READ_DEADLINE, &WRITE_DEADLINE];

impl Pd {
    fn new() -> Pd {
        Pd {
            fd: AtomicI32::new(-1),
            seq: AtomicU32::new(0),
            rg: PollWord::new(),
            wg: PollWord::new(),
            info: PollInfo::new(),
            dseq: [AtomicU32::new(0), AtomicU32::new(0)],
            dl: Mutex::new([Deadline::default(); 2]),
        }
    }

    fn word(&self, write: bool) -> &PollWord {
        if write {
            &self.wg
        } else {
            &self.rg
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Deadline; 2]> {
        // Nothing panics under this lock.
        self.dl.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static CHUNKS: [AtomicPtr<Pd>; NCHUNKS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; NCHUNKS];
static ALLOC: Mutex<Option<Slab<()>>> = Mutex::new(None);

fn alloc_lock() -> std::sync::MutexGuard<'static, Option<Slab<()>>> {
    ALLOC.lock().unwrap_or_else(|e| e.into_inner())
}

/// The arena slot `idx`, if its chunk exists.
fn lookup(idx: u32) -> Option<&'static Pd> {
    let idx = idx as usize;
    let chunk = CHUNKS.get(idx / CHUNK)?.load(Ordering::Acquire);
    if chunk.is_null() {
        return None;
    }
    // SAFETY: a non-null chunk pointer points to a leaked `[Pd; CHUNK]` (never freed), and
    // `idx % CHUNK < CHUNK`.
    Some(unsafe { &*chunk.add(idx % CHUNK) })
}

fn tag(idx: u32, seq: u32) -> u64 {
    idx as u64 | (seq as u64) << 32
}

/// Number of pollDescs registered now (for leak checks).
pub(crate) fn in_use() -> usize {
    alloc_lock().as_ref().map_or(0, |s| s.len())
}

/// The error of a wait on a closed descriptor (Go: `ErrNetClosing`, "use of closed network
/// connection"). Its kind is `NotConnected`; [`is_closed_error`] tells it apart from a real
/// `ENOTCONN`.
pub fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, NetClosed)
}

/// The error of an op whose deadline passed (Go: `os.ErrDeadlineExceeded`, "i/o timeout"):
/// kind `TimedOut`.
pub fn timeout_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")
}

/// Whether `e` says the socket was closed by this process while (or before) the op ran.
pub fn is_closed_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NetClosed>())
}

/// The payload of [`closed_error`].
#[derive(Debug)]
struct NetClosed;

impl std::fmt::Display for NetClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("use of closed network connection")
    }
}

impl std::error::Error for NetClosed {}

fn to_io(e: PollErr) -> io::Error {
    match e {
        PollErr::Closing => closed_error(),
        PollErr::Timeout => timeout_error(),
    }
}

/// Which way an op goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Reading (and accepting).
    Read,
    /// Writing (and connecting).
    Write,
}

impl Direction {
    fn is_write(self) -> bool {
        self == Direction::Write
    }
}

/// A non-blocking fd's registration with the netpoller (Go: `pollDesc`, as `internal/poll`
/// uses it). This is the building block of `weft::net`'s sockets; use it to make another kind of
/// pollable fd (a pipe, a tty, an eventfd) cooperate with weft.
///
/// The contract mirrors Go's `internal/poll.FD`: at most one op waits per direction at a time
/// (serialise readers and writers yourself), call [`prepare`](Self::prepare) before each
/// syscall and [`wait`](Self::wait) after it fails with `EAGAIN`, and drop the `PollDesc`
/// only when no op is in flight, then close the fd.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use weft_runtime::netpoll::{Direction, PollDesc};
///
/// let (mut a, b) = UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// // SAFETY: the G below drops `pd` before `a`, which owns the fd.
/// let pd = unsafe { PollDesc::open(a.as_raw_fd()) }.unwrap();
/// let h = weft_runtime::go!(move || {
///     let mut buf = [0u8; 5];
///     pd.prepare(Direction::Read).unwrap();
///     let n = loop {
///         match a.read(&mut buf) {
///             Ok(n) => break n,
///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
///                 pd.wait(Direction::Read).unwrap()
///             }
///             Err(e) => panic!("{e}"),
///         }
///     };
///     drop(pd);
///     drop(a);
///     buf[..n].to_vec()
/// });
/// (&b).write_all(b"hello").unwrap();
/// assert_eq!(h.join().unwrap(), b"hello");
/// ```
#[derive(Debug)]
pub struct PollDesc {
    idx: u32,
}

impl PollDesc {
    /// Register `fd` (which must be non-blocking) with the netpoller: edge-triggered, both
    /// directions (Go: `poll_runtime_pollOpen`).
    ///
    /// # Safety
    /// `fd` must stay open, and keep naming the same file, until this `PollDesc` has been
    /// deregistered or dropped: both run `EPOLL_CTL_DEL` on the number, which would otherwise
    /// remove the registration of whatever file reused it (I/O safety, as for `BorrowedFd`).
    pub unsafe fn open(fd: RawFd) -> io::Result<PollDesc> {
        let np = super::init()?;
        let idx = {
            let mut g = alloc_lock();
            let slab = g.get_or_insert_with(Slab::new);
            let entry = slab.vacant_entry();
            let idx = entry.key();
            if idx >= CHUNK * NCHUNKS {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "weft: too many registered descriptors",
                ));
            }
            let c = &CHUNKS[idx / CHUNK];
            if c.load(Ordering::Acquire).is_null() {
                let chunk: Box<[Pd; CHUNK]> = Box::new(std::array::from_fn(|_| Pd::new()));
                c.store(Box::leak(chunk).as_mut_ptr(), Ordering::Release);
            }
            entry.insert(());
            idx as u32
        };
        let pd = lookup(idx).expect("pollDesc chunk just allocated");
        {
            let mut dl = pd.lock();
            *dl = Default::default();
            pd.info.clear(u32::MAX);
            pd.rg.reset();
            pd.wg.reset();
            pd.fd.store(fd, Ordering::Relaxed);
        }
        let seq = pd.seq.load(Ordering::Acquire);
        if let Err(e) = np.epoll.add(fd, tag(idx, seq)) {
            free_slot(idx);
            return Err(e);
        }
        Ok(PollDesc { idx })
    }

    fn pd(&self) -> &'static Pd {
        lookup(self.idx).expect("PollDesc without its arena slot")
    }

    /// Before the syscall of an op: fail if the descriptor is closing or the direction's deadline
    /// has passed, and forget readiness the syscall will see by itself (Go: `pollReset`).
    pub fn prepare(&self, dir: Direction) -> io::Result<()> {
        let pd = self.pd();
        if let Some(e) = pd.info.check(dir.is_write()) {
            return Err(to_io(e));
        }
        pd.word(dir.is_write()).reset();
        Ok(())
    }

    /// After the syscall failed with `EAGAIN`: park the calling G (or block the thread) until the
    /// fd is ready in this direction (`Ok`), the deadline passes (`TimedOut`) or the descriptor is
    /// closed (`NotConnected`, see [`closed_error`]) (Go: `pollWait`).
    pub fn wait(&self, dir: Direction) -> io::Result<()> {
        let pd = self.pd();
        let write = dir.is_write();
        if let Some(e) = pd.info.check(write) {
            return Err(to_io(e));
        }
        while !block(pd, write) {
            // Woken without readiness: a close or a deadline, or a deadline that was moved
            // again before we ran; in that last case, wait again.
            if let Some(e) = pd.info.check(write) {
                return Err(to_io(e));
            }
        }
        Ok(())
    }

    /// Set or clear (`None`) the deadline of one or both directions (Go: `pollSetDeadline`).
    /// A deadline in the past makes waits fail at once and wakes a current waiter; moving it
    /// while a G waits takes effect for that wait.
    pub fn set_deadline(&self, read: bool, write: bool, deadline: Option<Instant>) {
        let pd = self.pd();
        let now = nanotime();
        let d: i64 = match deadline {
            None => 0,
            Some(t) => match to_nanos(t) {
                n if n <= now => -1,
                n => i64::try_from(n).unwrap_or(i64::MAX),
            },
        };
        let mut woken = [None, None];
        {
            let mut dl = pd.lock();
            if pd.info.load() & INFO_CLOSING != 0 {
                return;
            }
            let seq = pd.seq.load(Ordering::Relaxed);
            for (w, on) in [(false, read), (true, write)] {
                if on {
                    arm(self.idx, seq, w, &mut dl[dir(w)], &pd.dseq[dir(w)], d);
                }
            }
            let (mut set, mut clear) = (0, 0);
            for i in 0..2 {
                if dl[i].at < 0 {
                    set |= EXPIRED[i];
                } else {
                    clear |= EXPIRED[i];
                }
            }
            pd.info.clear(clear);
            if set != 0 {
                pd.info.set(set); // includes the fence before we look at the words
                for w in [false, true] {
                    if dl[dir(w)].at < 0 {
                        woken[dir(w)] = pd.word(w).unblock(false);
                    }
                }
            }
        }
        wake_all(woken);
    }

    /// Start closing (Go: `pollUnblock`): current and future waits fail with the closed error,
    /// waiters are woken, deadline timers are stopped. Idempotent.
    pub fn evict(&self) {
        let pd = self.pd();
        let woken = {
            let mut dl = pd.lock();
            if pd.info.load() & INFO_CLOSING != 0 {
                return;
            }
            *dl = Default::default();
            bump_generations(pd);
            pd.info.set(INFO_CLOSING);
            [pd.rg.unblock(false), pd.wg.unblock(false)]
        };
        wake_all(woken);
    }

    /// Remove the fd from epoll now, while it is still open (Go: `netpollclose`); the socket
    /// layer calls this just before `close(2)`. The slot itself stays (evicted) until the
    /// `PollDesc` is dropped. Idempotent; dropping calls it too.
    pub fn deregister(&self) {
        let fd = self.pd().fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            if let Some(np) = super::get() {
                // Errors (EBADF if the fd was closed first, ENOENT) leave nothing registered.
                let _ = np.epoll.del(fd);
            }
        }
    }

    /// Whether epoll reported an error condition (`EPOLLERR` alone) on this fd; the next
    /// syscall reports the error itself.
    pub fn event_error(&self) -> bool {
        self.pd().info.load() & INFO_EVENT_ERR != 0
    }

    /// Whether epoll has ever reported a hang-up, an error or urgent data on this fd
    /// (`EPOLLRDHUP`, `EPOLLERR`, `EPOLLPRI`; sticky). A reader that skips its syscall until the
    /// next edge (weft-net's short-read rule) must not do so after one: the end of the stream, a
    /// reset, or the data behind an urgent mark may be all that is left, and its edge has come
    /// already.
    ///
    /// Ordering: netpoll sets the bit, fences (SeqCst) and then looks at `rg`; this fences and
    /// then reads the bit. So if netpoll found `rg` before a `prepare` of ours had reset it (the
    /// edge was erased by that reset), we see the bit here. If netpoll found the bit already set
    /// and skipped its store, the event that set it first went through the same sequence, so
    /// the argument holds for that one. A late event for a recycled descriptor (seq check
    /// passed, see `ready_event`) can at worst set the bit on the new one: that only turns the
    /// rule off for it.
    pub fn hung_up(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.pd().info.load() & INFO_HUP != 0
    }
}

impl Drop for PollDesc {
    /// Deregister the fd and free the slot (Go: `poll_runtime_pollClose`). The fd must still be
    /// open; close it afterwards. No op may be waiting.
    fn drop(&mut self) {
        let pd = self.pd();
        let (r, w) = (pd.rg.load(), pd.wg.load());
        if r > super::poll_word::WAIT || w > super::poll_word::WAIT {
            fatal(format_args!(
                "pollDesc closed while an op waits on it (rg={r:#x}, wg={w:#x})"
            ));
        }
        self.deregister();
        free_slot(self.idx);
    }
}

/// Bump the slot's `seq` (stale events and timers die) and return it to the slab.
fn free_slot(idx: u32) {
    let pd = lookup(idx).expect("freeing a slot without its chunk");
    {
        let mut dl = pd.lock();
        *dl = Default::default();
        bump_generations(pd);
        pd.seq.fetch_add(1, Ordering::Release);
        pd.fd.store(-1, Ordering::Relaxed);
    }
    if let Some(slab) = alloc_lock().as_mut() {
        slab.remove(idx as usize);
    }
}

/// Go's `netpollblock`: true if readiness arrived (retry the syscall), false if woken by a
/// close or deadline (check `info`).
fn block(pd: &'static Pd, write: bool) -> bool {
    let word = pd.word(write);
    match word.begin_wait() {
        Begin::Ready => return true,
        Begin::Waiting => {}
        Begin::DoubleWait(w) => fatal(format_args!(
            "netpoll: two ops wait on fd {} in the same direction (word {w:#x})",
            pd.fd.load(Ordering::Relaxed)
        )),
    }
    // WAIT is published; a closer/deadline publishes its flag, fences, then looks at the word.
    fence_after_publish();
    if pd.info.check(write).is_none() {
        let reason = if write {
            WaitReason::IoWrite
        } else {
            WaitReason::IoRead
        };
        let fd = pd.fd.load(Ordering::Relaxed) as u64;
        waiter::block(reason, fd, |w| {
            // On the M's stack after the switch (or on the blocked thread). `pd` is static.
            WAITERS.fetch_add(1, Ordering::SeqCst);
            if !word.commit(w) {
                WAITERS.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            // A plain thread, or a G that parks while unwinding (its M blocks the OS thread
            // and gave its P away): no M of theirs goes on to poll, so make sure one does.
            if waiter::is_thread(w) || std::thread::panicking() {
                ensure_poller();
            }
            true
        });
    }
    match word.finish_wait() {
        Some(ready) => ready,
        None => fatal(format_args!(
            "netpoll: a waiter is still published after its wait ended"
        )),
    }
}

/// Invalidate both directions' pending deadline timers.
fn bump_generations(pd: &Pd) {
    for g in &pd.dseq {
        g.fetch_add(1, Ordering::Relaxed);
    }
}

/// Set one direction's deadline to `d` (0 none, -1 expired, else a time) and arm its timer.
fn arm(idx: u32, seq: u32, write: bool, dl: &mut Deadline, gen: &AtomicU32, d: i64) {
    dl.at = d;
    if d > 0 {
        let when = d as u64;
        if dl.armed == 0 || dl.armed > when {
            // No timer, or one that fires too late: a new generation and a new timer.
            let g = gen.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            add_timer(when, idx as usize, timer_gen(seq, g), DEADLINE[dir(write)]);
            dl.armed = when;
        }
        // Otherwise the pending timer fires earlier and re-arms itself at `d`.
    } else if dl.armed != 0 {
        gen.fetch_add(1, Ordering::Relaxed);
        dl.armed = 0;
    }
}

fn timer_gen(seq: u32, dseq: u32) -> u64 {
    (seq as u64) << 32 | dseq as u64
}

static READ_DEADLINE: TimerKind = TimerKind {
    name: "read deadline",
    fire: |arg, gen, now| deadline_fired(arg, gen, now, false),
    live: |arg, gen| deadline_live(arg, gen, false),
    discard: None,
};

static WRITE_DEADLINE: TimerKind = TimerKind {
    name: "write deadline",
    fire: |arg, gen, now| deadline_fired(arg, gen, now, true),
    live: |arg, gen| deadline_live(arg, gen, true),
    discard: None,
};

fn deadline_live(idx: usize, gen: u64, write: bool) -> bool {
    let Some(pd) = lookup(idx as u32) else {
        return false;
    };
    let dseq = pd.dseq[dir(write)].load(Ordering::Relaxed);
    timer_gen(pd.seq.load(Ordering::Relaxed), dseq) == gen
}

/// A deadline timer fired (Go: `netpolldeadlineimpl`).
fn deadline_fired(idx: usize, gen: u64, now: u64, write: bool) {
    let Some(pd) = lookup(idx as u32) else {
        return;
    };
    let woken = {
        let mut dl = pd.lock();
        if !deadline_live(idx, gen, write) {
            return;
        }
        let d = &mut dl[dir(write)];
        d.armed = 0;
        if d.at <= 0 {
            return; // cleared or already expired
        }
        if d.at as u64 > now {
            // The deadline moved later since this timer was set: re-arm at it.
            add_timer(d.at as u64, idx, gen, DEADLINE[dir(write)]);
            d.armed = d.at as u64;
            return;
        }
        d.at = -1;
        pd.info.set(EXPIRED[dir(write)]);
        pd.word(write).unblock(false)
    };
    wake_all([woken]);
}

fn wake_all<const N: usize>(ws: [Option<usize>; N]) {
    for w in ws.into_iter().flatten() {
        WAITERS.fetch_sub(1, Ordering::SeqCst);
        waiter::wake(w);
    }
}

/// netpoll saw `events` for `data` (Go: `netpollready`): unblock the directions it covers.
/// Woken Gs are pushed to `out`, woken threads are woken here. Returns how many waiters woke.
pub(crate) fn ready_event(
    data: u64,
    read: bool,
    write: bool,
    err: bool,
    hup: bool,
    out: &mut Vec<GRef>,
) -> usize {
    let idx = data as u32;
    let seq = (data >> 32) as u32;
    let Some(pd) = lookup(idx) else {
        return 0;
    };
    if pd.seq.load(Ordering::Acquire) != seq {
        return 0; // an event for a descriptor that has been closed: stale
    }
    // Set or clear on every event, as Go does, so the flag describes the latest event.
    if err {
        pd.info.set(INFO_EVENT_ERR);
    } else if pd.info.load() & INFO_EVENT_ERR != 0 {
        pd.info.clear(INFO_EVENT_ERR);
    }
    // Before the words below are looked at (`set` fences): see `PollDesc::hung_up`.
    if hup && pd.info.load() & INFO_HUP == 0 {
        pd.info.set(INFO_HUP);
    }
    let mut n = 0;
    for (on, word) in [(read, &pd.rg), (write, &pd.wg)] {
        if !on {
            continue;
        }
        if let Some(w) = word.unblock(true) {
            n += 1;
            match waiter::as_g(w) {
                Some(gp) => out.push(gp),
                None => waiter::wake(w),
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpoll::poll_word::{NIL, READY};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// An event harvested for a descriptor that has been closed since, its slot reused by a new
    /// socket, is dropped by the `seq` check: the new socket is not made ready, nor marked hung
    /// up or in error. No socket-level test can see this check (weft deletes the epoll
    /// registration before closing, docs/NETPOLL.md §2), so it is tested here, on `ready_event`
    /// itself; removing the check fails this test.
    #[test]
    fn stale_event_for_a_reused_slot_is_dropped() {
        let (a, _a_peer) = UnixStream::pair().expect("socketpair");
        let (b, _b_peer) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        // SAFETY: `a` stays open (and names the same socket) until `old` is dropped below.
        let old = unsafe { PollDesc::open(a.as_raw_fd()) }.expect("register a");
        let idx = old.idx;
        let stale = tag(idx, old.pd().seq.load(Ordering::Acquire));
        drop(old);
        // SAFETY: `b` outlives `new` (declared earlier, dropped later).
        let new = unsafe { PollDesc::open(b.as_raw_fd()) }.expect("register b");
        assert_eq!(new.idx, idx, "the slab hands the freed slot out again");
        let pd = new.pd();

        let mut out = Vec::new();
        assert_eq!(ready_event(stale, true, true, true, true, &mut out), 0);
        assert_eq!(
            (pd.rg.load(), pd.wg.load()),
            (NIL, NIL),
            "a stale event made the new fd ready"
        );
        assert!(
            !new.hung_up() && !new.event_error(),
            "a stale event marked the new fd"
        );

        // The same event with the slot's current tag does reach it.
        let fresh = tag(idx, pd.seq.load(Ordering::Acquire));
        ready_event(fresh, true, false, false, true, &mut out);
        assert_eq!(pd.rg.load(), READY);
        assert!(new.hung_up());
        assert!(out.is_empty(), "nobody was waiting");
    }
}
