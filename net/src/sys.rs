//! The few syscalls std does not offer in non-blocking form: creating a non-blocking,
//! close-on-exec socket (via `socket2`), `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`, and the listen
//! backlog Go uses (`net.core.somaxconn`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A new non-blocking, close-on-exec socket.
pub(crate) fn socket(domain: Domain, ty: Type, proto: Option<Protocol>) -> io::Result<Socket> {
    Socket::new(domain, ty.nonblocking().cloexec(), proto)
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new socket is ready for the netpoller
/// without another syscall. `WouldBlock` when no connection is pending.
pub(crate) fn accept(listener: RawFd) -> io::Result<(OwnedFd, SockAddr)> {
    // SAFETY: `try_init` hands us a zeroed sockaddr_storage and its length to fill in, which is
    // exactly accept4's out-parameter contract.
    let (fd, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(
                listener,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })?
    };
    // SAFETY: accept4 returned a new fd that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, addr))
}

/// The listen backlog: `net.core.somaxconn` (capped at 65535), or 4096 (Go:
/// `maxListenerBacklog`). std uses 128, which drops connections under a burst of connects.
pub(crate) fn backlog() -> i32 {
    static B: OnceLock<i32> = OnceLock::new();
    *B.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&n| n > 0)
            .map_or(4096, |n| n.min(65535))
    })
}

/// Whether an `accept` error means "that connection is gone, try the next one" (Go retries
/// `ECONNABORTED`).
pub(crate) fn accept_retryable(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECONNABORTED)
}

/// Whether a `connect` error means "in progress, wait for writability".
pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINPROGRESS) | Some(libc::EALREADY) | Some(libc::EINTR)
    )
}

/// Resolve `addr` and try `f` on each address in turn, returning the first success or the last
/// error (std's `each_addr`). Name resolution runs inside [`weft_runtime::blocking`]: a slow
/// `getaddrinfo` blocks the calling M, while its P is handed to another M for the other Gs (see
/// docs/NETPOLL.md). `f` runs outside it, as a normal netpoller op.
pub(crate) fn each_addr<A: std::net::ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(&std::net::SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(&addr)? {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// Every address `addr` resolves to, resolved inside [`weft_runtime::blocking`] (Go runs
/// `getaddrinfo` through cgo, which enters a syscall the same way). The whole iterator is
/// collected inside the blocking section, since a `ToSocketAddrs` may resolve lazily.
pub(crate) fn resolve<A: std::net::ToSocketAddrs + ?Sized>(
    addr: &A,
) -> io::Result<Vec<std::net::SocketAddr>> {
    weft_runtime::blocking(|| Ok(addr.to_socket_addrs()?.collect()))
}
