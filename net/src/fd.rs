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
//! mutex closed, evicts the pollDesc (blocked ops wake and return the closed error), and the fd
//! is deregistered and closed by whoever drops the last reference — `close` itself, or the last
//! op to leave. `close` waits for that, so when it returns the fd is closed (a listener's port is
//! free again). Dropping the value does the same without waiting (no op can be in flight then).
//!
//! # Timeouts (std's `set_read_timeout`) and deadlines (Go's `SetReadDeadline`)
//!
//! A deadline is absolute and lives in the pollDesc. A timeout is relative to each op: when one is
//! set, every op of that direction first sets the pollDesc's deadline to the earlier of
//! "now + timeout" and the user's deadline. Expiry returns `ErrorKind::TimedOut`.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weft_runtime::netpoll::{closed_error, Direction, PollDesc};
use weft_runtime::sync::Sema;

use crate::fd_mutex::FdMutex;

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
    /// Whether the fd has been released (closed, or given away by `into_inner`).
    destroyed: AtomicBool,
    /// Read then write timing.
    timing: [Mutex<Timing>; 2],
    /// Whether a timeout is set for the direction (skip the lock otherwise).
    timed: [AtomicBool; 2],
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
        let pd = PollDesc::open(sock.as_raw_fd())?;
        Ok(Fd {
            sock: ManuallyDrop::new(sock),
            pd,
            mu: FdMutex::new(),
            csema: Sema::new(0),
            destroyed: AtomicBool::new(false),
            timing: Default::default(),
            timed: Default::default(),
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

    /// The retry loop, for a caller that already holds the direction lock (`write_all`).
    pub(crate) fn op_locked<R>(
        &self,
        dir: Direction,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.arm_timeout(dir);
        self.pd.prepare(dir)?;
        loop {
            match f(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pd.wait(dir)?,
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

    /// Release the fd: deregister, then close it (Go: `FD.destroy`). Runs once, by the holder of
    /// the last reference after `close`.
    fn destroy(&self) {
        if self.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.pd.deregister();
        // SAFETY: `sock` owns this fd; the FdMutex guarantees no op is using it and none can start
        // (it is closed with no references left), and `sock` is in a ManuallyDrop that is never
        // dropped, so the fd is closed exactly once, here.
        unsafe { libc::close(self.raw()) };
        self.csema.release();
    }

    /// Give up the socket without closing it (`IntoRawFd`): deregister it and return it.
    pub(crate) fn into_inner(mut self) -> S {
        self.pd.deregister();
        self.destroyed.store(true, Ordering::Release);
        // SAFETY: `self` is consumed: `Drop` sees `destroyed` and does not touch `sock` again,
        // so the value is moved out exactly once.
        unsafe { ManuallyDrop::take(&mut self.sock) }
    }
}

impl<S: AsRawFd> Drop for Fd<S> {
    fn drop(&mut self) {
        if self.destroyed.load(Ordering::Acquire) {
            return;
        }
        // `&mut self`: no op is in flight, so this releases the fd at once.
        if self.mu.incref_and_close() {
            self.pd.evict();
            if self.mu.decref() {
                self.destroy();
            }
        }
    }
}
