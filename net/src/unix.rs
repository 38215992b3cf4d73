//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`], with the API of
//! `std::os::unix::net` and Go's deadlines (Go: `net.UnixListener`, `net.UnixConn`).
//!
//! Addresses are filesystem paths; the addresses these types report are std's
//! [`std::os::unix::net::SocketAddr`] (re-exported as [`UnixSocketAddr`](crate::UnixSocketAddr)).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

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

    /// Read and clear `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let _g = self.fd.incref()?;
        self.fd.sock().take_error()
    }

    /// A second handle to the same listening socket (a `dup`ed fd with its own registration).
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let _g = self.fd.incref()?;
        Ok(UnixListener {
            fd: Fd::new(self.fd.sock().try_clone()?)?,
        })
    }

    /// Deadline for `accept` (Go: `UnixListener.SetDeadline`); `None` clears it. An `accept`
    /// waiting past it returns `ErrorKind::TimedOut`.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)
    }

    /// Close the listener now, even while other Gs are blocked in `accept` on it: they return
    /// the closed error (`ErrorKind::NotConnected`, see [`is_closed`](crate::is_closed)). Returns
    /// once the fd is closed. The socket file stays; remove it yourself. Dropping the listener
    /// closes it too.
    pub fn close(&self) -> io::Result<()> {
        self.fd.close()
    }

    /// Wrap a std listener (switched to non-blocking mode).
    pub fn from_std(l: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        l.set_nonblocking(true)?;
        Ok(UnixListener { fd: Fd::new(l)? })
    }
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

    /// A second handle to the same connection (a `dup`ed fd with its own registration), e.g.
    /// for one G that reads and another that writes. Timeouts and deadlines are per handle.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let _g = self.fd.incref()?;
        Ok(UnixStream {
            fd: Fd::new(self.fd.sock().try_clone()?)?,
        })
    }

    /// std's read timeout: each read waits at most this long, then fails with
    /// `ErrorKind::TimedOut` (std on Unix says `WouldBlock`; weft follows Go and says what
    /// happened). `None` waits forever; `Some(0)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(R, timeout)
    }

    /// std's write timeout; see [`set_read_timeout`](Self::set_read_timeout).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(W, timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.fd.timeout(R)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.fd.timeout(W)
    }

    /// Go's `SetDeadline`: an absolute deadline for reads and writes, `None` to clear. Ops
    /// waiting past it fail with `ErrorKind::TimedOut`; a deadline in the past fails the next op
    /// at once; moving it affects ops already waiting.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)?;
        self.fd.set_deadline(W, deadline)
    }

    /// Go's `SetReadDeadline`.
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)
    }

    /// Go's `SetWriteDeadline`.
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(W, deadline)
    }

    /// Read and clear `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let _g = self.fd.incref()?;
        self.fd.sock().take_error()
    }

    /// Close the connection now, even while other Gs are blocked reading or writing it (Go's
    /// `Conn.Close`): they return the closed error (`ErrorKind::NotConnected`, see
    /// [`is_closed`](crate::is_closed)), as do later calls. Returns once the fd is closed.
    /// Dropping the stream closes it too.
    pub fn close(&self) -> io::Result<()> {
        self.fd.close()
    }

    /// Wrap a std stream (switched to non-blocking mode).
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        Ok(UnixStream { fd: Fd::new(s)? })
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.op(R, |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.fd.op(R, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fd.op(W, |mut s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.fd.op(W, |mut s| s.write_vectored(bufs))
    }

    /// Holds the write lock for the whole buffer, so concurrent `write_all`s on one stream do
    /// not interleave (as Go's `Conn.Write`).
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        let _g = self.fd.lock(W)?;
        while !buf.is_empty() {
            match self.fd.op_locked(W, |mut s| s.write(buf))? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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

    /// A second handle to the same socket (a `dup`ed fd with its own registration). Timeouts
    /// and deadlines are per handle.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        let _g = self.fd.incref()?;
        Ok(UnixDatagram {
            fd: Fd::new(self.fd.sock().try_clone()?)?,
        })
    }

    /// std's read timeout: each receive waits at most this long, then fails with
    /// `ErrorKind::TimedOut` (std on Unix says `WouldBlock`; weft follows Go and says what
    /// happened). `None` waits forever; `Some(0)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(R, timeout)
    }

    /// std's write timeout; see [`set_read_timeout`](Self::set_read_timeout).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(W, timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.fd.timeout(R)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.fd.timeout(W)
    }

    /// Go's `SetDeadline`: an absolute deadline for receives and sends, `None` to clear. Ops
    /// waiting past it fail with `ErrorKind::TimedOut`; a deadline in the past fails the next op
    /// at once; moving it affects ops already waiting.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)?;
        self.fd.set_deadline(W, deadline)
    }

    /// Go's `SetReadDeadline` (receives).
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)
    }

    /// Go's `SetWriteDeadline` (sends).
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(W, deadline)
    }

    /// Read and clear `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let _g = self.fd.incref()?;
        self.fd.sock().take_error()
    }

    /// Close the socket now, even while other Gs are blocked receiving or sending on it: they
    /// return the closed error (`ErrorKind::NotConnected`, see [`is_closed`](crate::is_closed)),
    /// as do later calls. Returns once the fd is closed. The socket file stays; remove it
    /// yourself. Dropping the socket closes it too.
    pub fn close(&self) -> io::Result<()> {
        self.fd.close()
    }

    /// Wrap a std socket (switched to non-blocking mode).
    pub fn from_std(s: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        s.set_nonblocking(true)?;
        Ok(UnixDatagram { fd: Fd::new(s)? })
    }
}

crate::fd_traits!(UnixListener, std::os::unix::net::UnixListener);
crate::fd_traits!(UnixStream, std::os::unix::net::UnixStream);
crate::fd_traits!(UnixDatagram, std::os::unix::net::UnixDatagram);

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
