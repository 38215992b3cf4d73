//! # weft-net: sockets over the weft runtime
//!
//! TCP, UDP and Unix sockets with the API of `std::net` / `std::os::unix::net`, whose blocking
//! calls (`accept`, `connect`, `read`, `write`, `recv_from`, ...) park the calling G instead of
//! blocking its OS thread: [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`] and [`UnixDatagram`]. Called from a plain thread (not a G), the same calls
//! block that thread, so one type serves both. Any library written for blocking `Read + Write`
//! works on these sockets unchanged.
//!
//! Beyond std: Go's absolute deadlines (`set_deadline`, `set_read_deadline`,
//! `set_write_deadline`), and `close(&self)`, which closes a socket that other Gs are blocked on
//! (they get the closed error, see [`is_closed`]).
//!
//! # How it works (Go: `internal/poll.FD`)
//!
//! Every socket is non-blocking and close-on-exec, registered once with the runtime's
//! edge-triggered epoll netpoller (`weft_runtime::netpoll::PollDesc`). An op tries the syscall;
//! on `EAGAIN` it parks in the pollDesc until epoll reports readiness, then retries. See
//! `fd.rs` for the op protocol and the deferred close, and `docs/NETPOLL.md` for the netpoller.
//!
//! # Errors
//!
//! * Deadline or timeout passed: `ErrorKind::TimedOut` ("i/o timeout").
//! * The socket was closed by `close(&self)` while, or before, the op ran:
//!   `ErrorKind::NotConnected`, message "use of closed network connection"; [`is_closed`]
//!   tells it from an OS `ENOTCONN`.
//! * Everything else is the OS error, as std reports it.
//!
//! Name resolution (`ToSocketAddrs` with a host name) runs on the calling M and may block it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod fd;
mod fd_mutex;
mod sys;
mod tcp;
mod udp;
mod unix;

pub use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
/// The address of a Unix domain socket, as std reports it (`std::os::unix::net::SocketAddr`).
pub use std::os::unix::net::SocketAddr as UnixSocketAddr;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

/// Whether `e` is the error of an op on a socket closed with `close(&self)` (Go:
/// `errors.Is(err, net.ErrClosed)`).
///
/// ```
/// weft_runtime::run(|| {
///     let l = weft_net::TcpListener::bind("127.0.0.1:0").unwrap();
///     l.close().unwrap();
///     let e = l.accept().unwrap_err();
///     assert!(weft_net::is_closed(&e));
///     assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
/// });
/// ```
pub fn is_closed(e: &std::io::Error) -> bool {
    weft_runtime::netpoll::is_closed_error(e)
}

/// The conversions every socket type has: `AsRawFd`, `AsFd`, `IntoRawFd` (deregisters and
/// hands over the still non-blocking fd), and `From` the std type (switched to non-blocking;
/// panics only if the netpoller cannot register the fd, e.g. out of memory — use `from_std` to
/// get that as an error).
#[macro_export]
#[doc(hidden)]
macro_rules! fd_traits {
    ($t:ident, $std:ty) => {
        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.fd.raw()
            }
        }
        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(self.fd.sock())
            }
        }
        impl ::std::os::fd::IntoRawFd for $t {
            fn into_raw_fd(self) -> ::std::os::fd::RawFd {
                ::std::os::fd::IntoRawFd::into_raw_fd(self.fd.into_inner())
            }
        }
        impl From<$std> for $t {
            fn from(s: $std) -> $t {
                match $t::from_std(s) {
                    Ok(v) => v,
                    Err(e) => panic!(
                        "weft: cannot register a {} with the netpoller: {e}",
                        stringify!($std)
                    ),
                }
            }
        }
    };
}
