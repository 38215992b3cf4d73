//! `Fd<S>`: a non-blocking socket, its pollDesc and its `FdMutex` — the retry loop every socket
//! type is built on (Go: `internal/poll.FD`, `fd_unix.go`, `fd_poll_runtime.go`).
//!
//! `S` is the std socket type (`std::net::TcpStream`, `UdpSocket`, ...), which does the actual
//! syscalls on the non-blocking fd. An op is:
//!
//! 1. lock its direction and take a reference (`FdMutex::rwlock`; fails after `close`);
//! 2. `PollDesc::prepare` (fails on a closed socket or an expired deadline);
//! 3. loop: try the syscall; on `WouldBlock` park in `PollDesc::wait` (fails on close or
//!    deadline) and retry; retry `Interrupted`; return anything else;
//! 4. unlock; if the socket was closed meanwhile and this was the last reference, release it.
//!
//! # Closing (Go: `FD.Close`, `destroy`)
//!
//! `close(&self)` may run while other Gs are blocked in ops on the same socket: it marks the
//! mutex closed, evicts the pollDesc (blocked ops wake and return the closed error), and the
//! socket is released by whoever drops the last reference — `close` itself, or the last op to
//! leave. `close` waits for that, so when it returns the socket is closed (the connection is
//! torn down, a listener's port is free again).
//!
//! Releasing the socket does not free the fd *number*: `dup3` atomically points it at a dead
//! placeholder socket (an unconnected Unix socket), which closes the real socket. The number
//! stays ours until the value is dropped. So a `BorrowedFd` from `as_fd()` (whose lifetime is
//! tied to `&self`, not to `close`) never ends up naming some other file that reused the number,
//! and an op that races with `close` can at worst hit the placeholder (`ENOTCONN`), never a
//! stranger's socket. Dropping the value deregisters and closes the number.
//!
//! # Timeouts (std's `set_read_timeout`) and deadlines (Go's `SetReadDeadline`)
//!
//! A deadline is absolute and lives in the pollDesc. A timeout is relative to each op: when one is
//! set, every op of that direction first sets the pollDesc's deadline to the earlier of
//! "now + timeout" and the user's deadline. Expiry returns `ErrorKind::TimedOut`.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use weft_runtime::netpoll::{closed_error, Direction, PollDesc};
use weft_runtime::sync::Sema;

use crate::fd_mutex::FdMutex;

/// Test hook: with `WEFT_TEST_EAGAIN_DELAY_US=n` in the environment (read once), the thread
/// sleeps `n` µs between a syscall's `EAGAIN` and the wait, so that an edge lands in that window
/// far more often than it would by chance (tests/stress_eagain.rs: the readiness recorded there
/// must not be lost). Costs one load on the `EAGAIN` path when unset.
fn eagain_test_delay() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    let d = DELAY.get_or_init(|| {
        std::env::var("WEFT_TEST_EAGAIN_DELAY_US")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_micros)
    });
    if let Some(d) = *d {
        std::thread::sleep(d);
    }
}

/// Per-direction timing settings (under a small lock; read only when `timed` is set).
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

/// See the module doc.
#[derive(Debug)]
pub(crate) struct Fd<S: AsRawFd> {
    sock: ManuallyDrop<S>,
    pd: PollDesc,
    mu: FdMutex,
    /// Released by `destroy`; `close` waits on it (Go: `csema`).
    csema: Sema,
    /// Whether the socket has been released (`destroy`).
    destroyed: AtomicBool,
    /// Whether `into_inner` moved `sock` out.
    taken: bool,
    /// Read then write timing.
    timing: [Mutex<Timing>; 2],
    /// Whether a timeout is set for the direction (skip the lock otherwise).
    timed: [AtomicBool; 2],
    /// The last stream read returned less than asked: the receive queue was empty then (see
    /// `read_stream`). Only touched under the read lock.
    drained: AtomicBool,
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::Read => 0,
        Direction::Write => 1,
    }
}

/// Holds a direction lock (or a plain reference) for the duration of an op.
pub(crate) struct OpGuard<'a, S: AsRawFd> {
    fd: &'a Fd<S>,
    lock: Option<bool>,
}

impl<S: AsRawFd> Drop for OpGuard<'_, S> {
    fn drop(&mut self) {
        let last = match self.lock {
            Some(read) => self.fd.mu.rwunlock(read),
            None => self.fd.mu.decref(),
        };
        if last {
            self.fd.destroy();
        }
    }
}

impl<S: AsRawFd> Fd<S> {
    /// Take ownership of a socket that is already non-blocking and register it.
    pub(crate) fn new(sock: S) -> io::Result<Fd<S>> {
        // SAFETY: the fd number stays open until `Drop` (or `into_inner`) has deregistered the
        // pollDesc: `destroy` only repoints the number at the placeholder, and `Drop` closes it
        // after `deregister`.
        let pd = unsafe { PollDesc::open(sock.as_raw_fd()) }?;
        Ok(Fd {
            sock: ManuallyDrop::new(sock),
            pd,
            mu: FdMutex::new(),
            csema: Sema::new(0),
            destroyed: AtomicBool::new(false),
            taken: false,
            timing: Default::default(),
            timed: Default::default(),
            drained: AtomicBool::new(false),
        })
    }

    /// The socket, for calls that do not need a reference (the fd number is stable while
    /// `self` is borrowed, unless `close` runs; ops use `op` instead).
    pub(crate) fn sock(&self) -> &S {
        &self.sock
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Take a plain reference (no direction lock) for a non-blocking call such as `setsockopt`.
    pub(crate) fn incref(&self) -> io::Result<OpGuard<'_, S>> {
        if !self.mu.incref() {
            return Err(closed_error());
        }
        Ok(OpGuard {
            fd: self,
            lock: None,
        })
    }

    /// Lock a direction for an op.
    pub(crate) fn lock(&self, dir: Direction) -> io::Result<OpGuard<'_, S>> {
        let read = dir == Direction::Read;
        if !self.mu.rwlock(read) {
            return Err(closed_error());
        }
        Ok(OpGuard {
            fd: self,
            lock: Some(read),
        })
    }

    /// Run `f` on the socket with the retry loop of the module doc, holding the direction lock.
    pub(crate) fn op<R>(
        &self,
        dir: Direction,
        f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let _g = self.lock(dir)?;
        self.op_locked(dir, f)
    }

    /// `read` on a stream socket: `op`, minus one syscall per message where the socket type
    /// allows (`short_read_drains`, mio and tokio do the same for TCP).
    ///
    /// A read that returns `0 < n < len` got everything the receive queue held. Whatever arrives
    /// after it raises a new epoll edge, which the pollDesc records as `READY` even with nobody
    /// waiting (the last `prepare` was before that read's syscall, so no edge since is lost).
    /// So the next read waits for readiness first — returning at once if the edge came — instead
    /// of spending a syscall on the `EAGAIN` that is all but certain in request/response
    /// traffic. Sound for TCP, where `tcp_recvmsg` stops early only with the queue empty, with
    /// two exceptions. The short read may have consumed a FIN (or stopped before a reset) whose
    /// edge came earlier: then the next read must see EOF or the error with no edge to come, so
    /// the rule is off once epoll has reported a hang-up (`PollDesc::hung_up`, sticky). And an
    /// urgent-data mark (`MSG_OOB`) stops a read with data behind it: urgent data arrives with
    /// `EPOLLPRI`, which sets the same sticky bit.
    pub(crate) fn read_stream(
        &self,
        len: usize,
        short_read_drains: bool,
        f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let dir = Direction::Read;
        let _g = self.lock(dir)?;
        self.arm_timeout(dir);
        if self.drained.load(Ordering::Relaxed) {
            // Cleared first: after an error (deadline, close) the next read tries the syscall.
            self.drained.store(false, Ordering::Relaxed);
            if !self.pd.hung_up() {
                self.pd.wait(dir)?;
            }
        }
        let n = self.retry(dir, f)?;
        if short_read_drains && n > 0 && n < len {
            self.drained.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// The retry loop, for a caller that already holds the direction lock (`write_all`).
    pub(crate) fn op_locked<R>(
        &self,
        dir: Direction,
        f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.arm_timeout(dir);
        if dir == Direction::Read {
            // Any other read-side op (peek, read_vectored, ...) may leave data queued without a
            // new edge: the next `read_stream` must try its syscall.
            self.drained.store(false, Ordering::Relaxed);
        }
        self.retry(dir, f)
    }

    /// Steps 2–3 of the module doc: `prepare`, then the syscall until it stops saying
    /// `WouldBlock` (waiting in between) or `Interrupted`.
    fn retry<R>(&self, dir: Direction, mut f: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.pd.prepare(dir)?;
        loop {
            match f(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    eagain_test_delay();
                    self.pd.wait(dir)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// Wait until the direction is ready, the deadline passes or the socket closes (`connect`).
    pub(crate) fn wait(&self, dir: Direction) -> io::Result<()> {
        self.pd.wait(dir)
    }

    /// Forget stale readiness before a syscall done outside `op` (`connect`).
    pub(crate) fn prepare(&self, dir: Direction) -> io::Result<()> {
        self.pd.prepare(dir)
    }

    /// With a timeout set: deadline for this op = min(now + timeout, user deadline).
    fn arm_timeout(&self, dir: Direction) {
        if !self.timed[idx(dir)].load(Ordering::Relaxed) {
            return;
        }
        let t = *self.timing[idx(dir)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let by_timeout = t.timeout.and_then(|d| Instant::now().checked_add(d));
        let d = match (by_timeout, t.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.set_pd_deadline(dir, d);
    }

    fn set_pd_deadline(&self, dir: Direction, d: Option<Instant>) {
        let read = dir == Direction::Read;
        self.pd.set_deadline(read, !read, d);
    }

    /// std's `set_read_timeout`/`set_write_timeout`: `Some(0)` is an error, as in std.
    pub(crate) fn set_timeout(&self, dir: Direction, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let _g = self.incref()?;
        let mut t = self.timing[idx(dir)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        t.timeout = timeout;
        self.timed[idx(dir)].store(timeout.is_some(), Ordering::Relaxed);
        if timeout.is_none() {
            // Back to the user's deadline alone.
            self.set_pd_deadline(dir, t.deadline);
        }
        Ok(())
    }

    pub(crate) fn timeout(&self, dir: Direction) -> io::Result<Option<Duration>> {
        let _g = self.incref()?;
        let t = self.timing[idx(dir)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(t.timeout)
    }

    /// Go's `SetReadDeadline`/`SetWriteDeadline`: absolute; `None` clears. Takes effect for an op
    /// that is already waiting.
    pub(crate) fn set_deadline(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        let _g = self.incref()?;
        let mut t = self.timing[idx(dir)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        t.deadline = deadline;
        self.set_pd_deadline(dir, deadline);
        Ok(())
    }

    /// Close while other Gs may be blocked on this socket (see the module doc). A second close
    /// returns the closed error.
    pub(crate) fn close(&self) -> io::Result<()> {
        if !self.mu.incref_and_close() {
            return Err(closed_error());
        }
        self.pd.evict();
        if self.mu.decref() {
            self.destroy();
        }
        // Wait until the last op in flight has released the fd (it was woken by `evict`).
        self.csema.acquire();
        Ok(())
    }

    /// Release the socket (Go: `FD.destroy`): deregister it, then close it by pointing the fd
    /// number at the placeholder (module doc). Runs once, by the holder of the last reference
    /// after `close`.
    fn destroy(&self) {
        if self.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.pd.deregister();
        match dead_socket() {
            Some(dead) => {
                // SAFETY: `dead` is our own open placeholder and `self.raw()` is an fd number
                // that `sock` owns; dup3 replaces what the number refers to, closing the real
                // socket, and the number itself stays owned by `sock` (closed in `Drop`).
                let r = unsafe { libc::dup3(dead, self.raw(), libc::O_CLOEXEC) };
                if r < 0 {
                    self.shutdown_fallback();
                }
            }
            None => self.shutdown_fallback(),
        }
        self.csema.release();
    }

    /// Without a placeholder (out of fds when it was first needed), at least end the connection
    /// now; the fd itself is closed when the value is dropped.
    fn shutdown_fallback(&self) {
        // SAFETY: shutdown on a number `sock` owns; it does not free the number.
        unsafe { libc::shutdown(self.raw(), libc::SHUT_RDWR) };
    }

    /// Give up the socket without closing it (`IntoRawFd`): deregister it and return it. After
    /// `close`, the socket returned is the dead placeholder's duplicate.
    pub(crate) fn into_inner(mut self) -> S {
        self.pd.deregister();
        self.destroyed.store(true, Ordering::Release);
        self.taken = true;
        // SAFETY: `taken` tells `Drop` not to touch `sock`, so the value is moved out exactly
        // once.
        unsafe { ManuallyDrop::take(&mut self.sock) }
    }
}

impl<S: AsRawFd> Drop for Fd<S> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        // `&mut self`: no op is in flight and no borrow of the fd is alive. Deregister while the
        // number still names our file, then close it (the socket, or the placeholder after
        // `close`). The pollDesc slot is freed when the field is dropped after this.
        self.pd.deregister();
        // SAFETY: `sock` has not been taken (`taken` is false) and is dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.sock) };
    }
}

/// The placeholder every closed socket's fd number is pointed at: an unconnected Unix stream
/// socket (reads and writes fail with `ENOTCONN`/`EPIPE`; epoll reports it hung up). Created on
/// first use; `None` if that failed.
fn dead_socket() -> Option<RawFd> {
    static DEAD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    DEAD.get_or_init(|| {
        // SAFETY: plain socket(2) call; on success we take ownership of the new fd.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        // SAFETY: a non-negative return is a new fd that nothing else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    })
    .as_ref()
    .map(|f| f.as_raw_fd())
}
