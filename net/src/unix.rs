//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`], with the API of
//! `std::os::unix::net` and Go's deadlines (Go: `net.UnixListener`, `net.UnixConn`).
//!
//! Addresses are filesystem paths; the addresses these types report are std's
//! [`std::os::unix::net::SocketAddr`] (re-exported as [`UnixSocketAddr`](crate::UnixSocketAddr)).

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use socket2::{Domain, SockAddr, SockRef, Type};
use weft_runtime::netpoll::Direction::{Read as R, Write as W};

use crate::fd::Fd;
use crate::sys;

/// A Unix stream server socket. `accept` parks the calling G until a connection arrives (a plain
/// thread blocks instead). The socket file is not removed when the listener closes (as in std).
///
/// ```
/// use std::io::{Read, Write};
/// use weft_net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("weft-doc-unix-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let p = path.clone();
/// weft_runtime::run(move || {
///     let listener = UnixListener::bind(&p).unwrap();
///     let server = weft_runtime::go!(move || {
///         let (mut conn, _peer) = listener.accept().unwrap();
///         let mut buf = [0u8; 5];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut c = UnixStream::connect(&p).unwrap();
///     c.write_all(b"hello").unwrap();
///     let mut buf = [0u8; 5];
///     c.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"hello");
///     server.join().unwrap();
/// });
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct UnixListener {
    fd: Fd<std::os::unix::net::UnixListener>,
}

/// A Unix stream connection. Reads and writes park the calling G until the socket is ready; a
/// reader and a writer may block on the same stream at once (share it as `&UnixStream`, or
/// `try_clone`).
///
/// ```
/// use std::io::{Read, Write};
/// use weft_net::UnixStream;
///
/// weft_runtime::run(|| {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     let reader = weft_runtime::go!(move || {
///         let mut s = String::new();
///         (&a).read_to_string(&mut s).unwrap();
///         s
///     });
///     b.write_all(b"over the pair").unwrap();
///     drop(b); // EOF for the reader
///     assert_eq!(reader.join().unwrap(), "over the pair");
/// });
/// ```
pub struct UnixStream {
    fd: Fd<std::os::unix::net::UnixStream>,
}

/// A Unix datagram socket. Receives park the calling G until a datagram arrives; sends park
/// while the receiver's queue is full.
///
/// ```
/// use weft_net::UnixDatagram;
///
/// weft_runtime::run(|| {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     let echo = weft_runtime::go!(move || {
///         let mut buf = [0u8; 64];
///         let n = b.recv(&mut buf).unwrap();
///         b.send(&buf[..n]).unwrap();
///     });
///     a.send(b"datagram").unwrap();
///     let mut buf = [0u8; 64];
///     let n = a.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"datagram");
///     echo.join().unwrap();
/// });
/// ```
pub struct UnixDatagram {
    fd: Fd<std::os::unix::net::UnixDatagram>,
}

/// An iterator over the connections of a [`UnixListener`] (std's
/// `std::os::unix::net::Incoming`); never returns `None`.
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl UnixListener {
    /// Create the socket file at `path`, bind to it and listen, with the system's maximum backlog
    /// (as Go). Fails with `AddrInUse` if `path` exists.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let addr = SockAddr::unix(path)?;
        let sock = sys::socket(Domain::UNIX, Type::STREAM, None)?;
        sock.bind(&addr)?;
        sock.listen(sys::backlog())?;
        Ok(UnixListener {
            fd: Fd::new(sock.into())?,
        })
    }

    /// Wait for a connection and return it with the peer's address (usually unnamed: clients
    /// rarely bind). Returns the OS error (e.g. `EMFILE` when out of file descriptors) without
    /// retrying: back off and call again.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (fd, _) = self.fd.op(R, |l| loop {
            match sys::accept(l.as_raw_fd()) {
                Err(e) if sys::accept_retryable(&e) => continue,
                r => return r,
            }
        })?;
        let stream = std::os::unix::net::UnixStream::from(fd);
        let addr = stream.peer_addr()?;
        Ok((
            UnixStream {
                fd: Fd::new(stream)?,
            },
            addr,
        ))
    }

    /// An iterator of `accept` results.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().local_addr()
    }

    /// Deadline for `accept` (Go: `UnixListener.SetDeadline`); `None` clears it. An `accept`
    /// waiting past it returns `ErrorKind::TimedOut`.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)
    }

    crate::common::fd_methods!(UnixListener, std::os::unix::net::UnixListener);
}

impl UnixStream {
    /// Connect to the listener at `path`: `NotFound` if there is no such file,
    /// `ConnectionRefused` if nothing listens on it. When the listener's backlog is full, Linux
    /// fails a non-blocking connect with `EAGAIN` (`ErrorKind::WouldBlock`) rather than making
    /// it wait; that error is returned as is (as Go does): retry later.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let sock = sys::socket(Domain::UNIX, Type::STREAM, None)?;
        let s = UnixStream {
            fd: Fd::new(sock.into())?,
        };
        {
            let _g = s.fd.lock(W)?;
            s.fd.prepare(W)?;
            match SockRef::from(s.fd.sock()).connect(&addr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EISCONN) => {}
                // Not done by Linux for Unix sockets, but harmless: wait like TCP.
                Err(e) if sys::connect_in_progress(&e) => loop {
                    s.fd.wait(W)?;
                    if let Some(e) = s.fd.sock().take_error()? {
                        return Err(e);
                    }
                    match s.fd.sock().peer_addr() {
                        Ok(_) => break,
                        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => continue,
                        Err(e) => return Err(e),
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Ok(s)
    }

    /// Two connected, unnamed streams (`socketpair`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().local_addr()
    }

    /// Shut down one or both directions (`shutdown(2)`): after `Shutdown::Write` the peer reads
    /// EOF and may still write back. Works on a shared `&UnixStream`; a G blocked reading this
    /// stream wakes with EOF after `Shutdown::Read`/`Both`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().shutdown(how)
    }

    crate::common::timing_methods!();

    crate::common::fd_methods!(UnixStream, std::os::unix::net::UnixStream);
}

// Not for Unix streams: a read stops between messages from different writers (credentials),
// with more queued and no new edge to come.
crate::common::stream_io!(UnixStream, false);

impl UnixDatagram {
    /// Create the socket file at `path` and bind a datagram socket to it. Fails with
    /// `AddrInUse` if `path` exists.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let addr = SockAddr::unix(path)?;
        let sock = sys::socket(Domain::UNIX, Type::DGRAM, None)?;
        sock.bind(&addr)?;
        Ok(UnixDatagram {
            fd: Fd::new(sock.into())?,
        })
    }

    /// A datagram socket bound to no address: it can send, but peers cannot reply to it by
    /// address (unless it `connect`s and they use a pair or a connected socket).
    pub fn unbound() -> io::Result<UnixDatagram> {
        let sock = sys::socket(Domain::UNIX, Type::DGRAM, None)?;
        Ok(UnixDatagram {
            fd: Fd::new(sock.into())?,
        })
    }

    /// Two connected, unnamed datagram sockets (`socketpair`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Set the default destination for [`send`](Self::send) and the only source accepted by
    /// [`recv`](Self::recv). Does not block.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let addr = SockAddr::unix(path)?;
        let _g = self.fd.incref()?;
        SockRef::from(self.fd.sock()).connect(&addr)
    }

    /// Send `buf` as one datagram to the socket bound at `path`. Waits while the receiver's
    /// queue is full, but not efficiently: for a destination this socket is not connected to,
    /// Linux reports the sender writable again after every failed attempt, so the waiting G
    /// retries in a loop (other Gs still run) until the receiver drains its queue. A sender that
    /// can outrun its receiver should [`connect`](Self::connect) and use [`send`](Self::send),
    /// which parks until there is room.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let addr = SockAddr::unix(path)?;
        self.fd.op(W, |s| SockRef::from(s).send_to(buf, &addr))
    }

    /// Receive one datagram, parking until one arrives; returns its length and sender. A
    /// datagram longer than `buf` is truncated (the rest is lost), as in std.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.op(R, |s| s.recv_from(buf))
    }

    /// Send `buf` as one datagram to the connected peer. Parks while the peer's queue is full.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.op(W, |s| s.send(buf))
    }

    /// Receive one datagram (from the connected peer, if connected), parking until one arrives.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.op(R, |s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().local_addr()
    }

    /// The connected peer's address (`NotConnected` if not connected).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().peer_addr()
    }

    /// Shut down one or both directions (`shutdown(2)`). A G blocked receiving on this socket
    /// wakes (with a 0-length result) after `Shutdown::Read`/`Both`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().shutdown(how)
    }

    crate::common::timing_methods!();

    crate::common::fd_methods!(UnixDatagram, std::os::unix::net::UnixDatagram);
}

crate::common::fd_traits!(UnixListener, std::os::unix::net::UnixListener);
crate::common::fd_traits!(UnixStream, std::os::unix::net::UnixStream);
crate::common::fd_traits!(UnixDatagram, std::os::unix::net::UnixDatagram);

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
