//! The kernel side of the netpoller: one epoll instance and one eventfd (Go:
//! `netpoll_epoll.go`). Nothing here knows about Gs; `mod.rs` turns events into runnable Gs.
//!
//! * Sockets are registered once, edge-triggered, for both directions:
//!   `EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET`. The event's `u64` is the pollDesc's tag (index and
//!   sequence number, see `poll_desc.rs`).
//! * The eventfd is registered level-triggered with the tag [`BREAK_TAG`]; writing to it breaks
//!   a blocking `epoll_wait` (`netpoll_break`). Only a blocking poll drains it, so a
//!   non-blocking poll can never eat a wakeup meant for the blocked one.
//! * Waits use `epoll_pwait2` (nanosecond timeout, Linux ≥ 5.11) and fall back to
//!   `epoll_wait` (milliseconds, rounded up) where it is missing.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// The tag of the eventfd's events.
pub(crate) const BREAK_TAG: u64 = u64::MAX;

/// An epoll instance plus the eventfd that interrupts it.
pub(crate) struct Epoll {
    epfd: RawFd,
    evfd: RawFd,
    /// Whether `epoll_pwait2` is known to be missing (then `epoll_wait` is used).
    no_pwait2: AtomicBool,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Epoll {
    /// Create the epoll instance and the eventfd (both close-on-exec).
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall with constant flags.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: plain syscall with constant flags.
        let evfd = match cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }) {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: epfd was created above and is not shared yet.
                unsafe { libc::close(epfd) };
                return Err(e);
            }
        };
        let ep = Epoll {
            epfd,
            evfd,
            no_pwait2: AtomicBool::new(false),
        };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: BREAK_TAG,
        };
        // SAFETY: both fds are valid; `ev` is a valid epoll_event for the call's duration.
        cvt(unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, evfd, &mut ev) })?;
        Ok(ep)
    }

    /// Register `fd` once, edge-triggered, for both directions (Go: `netpollopen`).
    pub(crate) fn add(&self, fd: RawFd, tag: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            // EPOLLPRI: TCP urgent data, which ends weft-net's short-read rule (see
            // `PollDesc::hung_up`).
            events: (libc::EPOLLIN
                | libc::EPOLLOUT
                | libc::EPOLLRDHUP
                | libc::EPOLLPRI
                | libc::EPOLLET) as u32,
            u64: tag,
        };
        // SAFETY: `ev` is valid for the call; a bad `fd` is reported as EBADF by the kernel.
        cvt(unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
    }

    /// Deregister `fd` (Go: `netpollclose`).
    pub(crate) fn del(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is valid for the call (ignored by DEL, but old kernels want non-null).
        cvt(unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, &mut ev) }).map(drop)
    }

    /// Wait for events: `timeout_ns` < 0 blocks, 0 polls. Returns the number filled in.
    pub(crate) fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout_ns: i64,
    ) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        if timeout_ns > 0 && !self.no_pwait2.load(Ordering::Relaxed) {
            let ts = libc::timespec {
                tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: `events` is writable for `max` entries, `ts` is valid for the call, and a
            // null sigmask means "do not change it".
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.epfd,
                    events.as_mut_ptr(),
                    max,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Err(e);
            }
            // ENOSYS on old kernels; EPERM (or another error) where a seccomp profile that
            // predates the syscall blocks it. Our arguments are valid, so any error means
            // "not available here": use epoll_wait from now on.
            self.no_pwait2.store(true, Ordering::Relaxed);
        }
        let ms = match timeout_ns {
            t if t < 0 => -1,
            0 => 0,
            t => ((t as u64).div_ceil(1_000_000)).min(i32::MAX as u64) as libc::c_int,
        };
        // SAFETY: `events` is writable for `max` entries.
        let n = cvt(unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), max, ms) })?;
        Ok(n as usize)
    }

    /// Make a blocked `wait` return (the caller de-duplicates; see `mod.rs`).
    pub(crate) fn interrupt(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            let r = unsafe { libc::write(self.evfd, &one as *const u64 as *const libc::c_void, 8) };
            if r == 8 {
                return;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The counter is full: a wakeup is pending anyway.
                Some(libc::EAGAIN) => return,
                _ => crate::sched::fatal(format_args!("netpoll_break: write to eventfd: {e}")),
            }
        }
    }

    /// Consume pending interrupts (blocking polls only).
    pub(crate) fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd; EAGAIN (nothing
        // pending) is fine.
        let _ = unsafe { libc::read(self.evfd, &mut buf as *mut u64 as *mut libc::c_void, 8) };
    }
}

impl Drop for Epoll {
    /// Only on the error path of `new` (the netpoller itself lives for the whole process).
    fn drop(&mut self) {
        // SAFETY: both fds were created by `new` and are owned by this value alone.
        unsafe {
            libc::close(self.evfd);
            libc::close(self.epfd);
        }
    }
}
