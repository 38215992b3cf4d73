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
//! Name resolution (`ToSocketAddrs` with a host name) runs `getaddrinfo` inside
//! `weft_runtime::blocking`: it blocks the calling M, and the P's other Gs move to another M.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod common;
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

/// Every address `addr` names (`"host:port"`, `("host", port)`, a `SocketAddr`), as std's
/// `ToSocketAddrs` gives them, but with the lookup (`getaddrinfo`) inside
/// [`weft_runtime::blocking`]: a slow resolver costs a thread, not the G's P (Go: the resolver
/// behind `net.Dial`; tokio: `lookup_host`). An IP literal is parsed without a lookup (the
/// `blocking` section around it then costs a few atomic operations).
///
/// With [`TcpStream::connect_timeout`], which takes one address, it dials a name within a time
/// limit as Go's `net.DialTimeout("tcp", "host:port", d)` does (the lookup itself cannot be
/// cancelled: `getaddrinfo` has no timeout).
///
/// ```
/// weft_runtime::run(|| {
///     let addrs: Vec<_> = weft_net::lookup_host("localhost:80").unwrap().collect();
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
///     let one: Vec<_> = weft_net::lookup_host(("127.0.0.1", 7)).unwrap().collect();
///     assert_eq!(one, ["127.0.0.1:7".parse().unwrap()]);
/// });
/// ```
pub fn lookup_host<A: ToSocketAddrs>(addr: A) -> std::io::Result<std::vec::IntoIter<SocketAddr>> {
    sys::resolve(&addr).map(Vec::into_iter)
}

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
