//! TCP: [`TcpListener`] and [`TcpStream`], with std's API and Go's deadlines (Go: `net.TCPConn`,
//! `net.TCPListener`).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Type};
use weft_runtime::netpoll::Direction::{Read as R, Write as W};

use crate::fd::Fd;
use crate::sys;

/// A TCP server socket. `accept` parks the calling G until a connection arrives (a plain thread
/// blocks instead).
///
/// ```
/// use std::io::{Read, Write};
/// use weft_net::{TcpListener, TcpStream};
///
/// weft_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = weft_runtime::go!(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         let mut buf = [0u8; 5];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"hello").unwrap();
///     let mut buf = [0u8; 5];
///     c.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"hello");
///     server.join().unwrap();
/// });
/// ```
pub struct TcpListener {
    fd: Fd<std::net::TcpListener>,
}

/// A TCP connection. Reads and writes park the calling G until the socket is ready; a reader and
/// a writer may block on the same stream at once (share it as `&TcpStream`, or `try_clone`).
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use weft_net::{TcpListener, TcpStream};
///
/// weft_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     weft_runtime::go!(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         conn.write_all(b"line one\nline two\n").unwrap();
///     });
///     let stream = TcpStream::connect(addr).unwrap();
///     let lines: Vec<String> = BufReader::new(stream).lines().map(|l| l.unwrap()).collect();
///     assert_eq!(lines, ["line one", "line two"]);
/// });
/// ```
pub struct TcpStream {
    fd: Fd<std::net::TcpStream>,
}

/// An iterator over the connections of a [`TcpListener`] (std's `Incoming`); never returns
/// `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpListener {
    /// Bind to `addr` and listen, with SO_REUSEADDR and the system's maximum backlog (as Go).
    /// With several addresses, the first that binds is used.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        sys::each_addr(addr, |a| {
            let sock = sys::socket(Domain::for_address(*a), Type::STREAM, Some(Protocol::TCP))?;
            sock.set_reuse_address(true)?;
            sock.bind(&(*a).into())?;
            sock.listen(sys::backlog())?;
            Ok(TcpListener {
                fd: Fd::new(sock.into())?,
            })
        })
    }

    /// Wait for a connection and return it with the peer's address. Returns the OS error
    /// (e.g. `EMFILE` when out of file descriptors) without retrying: back off and call again.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.fd.op(R, |l| loop {
            match sys::accept(l.as_raw_fd()) {
                Err(e) if sys::accept_retryable(&e) => continue,
                r => return r,
            }
        })?;
        let stream = TcpStream {
            fd: Fd::new(std::net::TcpStream::from(fd))?,
        };
        let addr = addr.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "accept: peer is not an IP address",
            )
        })?;
        Ok((stream, addr))
    }

    /// An iterator of `accept` results.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().local_addr()
    }

    /// Set `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        let _g = self.fd.incref()?;
        self.fd.sock().ttl()
    }

    /// Read and clear `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let _g = self.fd.incref()?;
        self.fd.sock().take_error()
    }

    /// A second handle to the same listening socket (a `dup`ed fd with its own registration).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let _g = self.fd.incref()?;
        Ok(TcpListener {
            fd: Fd::new(self.fd.sock().try_clone()?)?,
        })
    }

    /// Deadline for `accept` (Go: `TCPListener.SetDeadline`); `None` clears it. An `accept`
    /// waiting past it returns `ErrorKind::TimedOut`.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)
    }

    /// Close the listener now, even while other Gs are blocked in `accept` on it: they return
    /// the closed error (`ErrorKind::NotConnected`, see [`is_closed`](crate::is_closed)). Returns
    /// once the fd is closed and the port released. Dropping the listener closes it too.
    pub fn close(&self) -> io::Result<()> {
        self.fd.close()
    }

    /// Wrap a std listener (switched to non-blocking mode).
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        l.set_nonblocking(true)?;
        Ok(TcpListener { fd: Fd::new(l)? })
    }
}

impl TcpStream {
    /// Connect to `addr` (each resolved address in turn). The connect itself is non-blocking:
    /// the G parks until the handshake completes or fails (`ConnectionRefused`, ...).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        sys::each_addr(addr, |a| TcpStream::connect_addr(a, None))
    }

    /// Connect with a timeout (std's signature): fails with `ErrorKind::TimedOut` if the
    /// handshake has not completed in time. A zero timeout is an `InvalidInput` error, as in std.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_addr(addr, Instant::now().checked_add(timeout))
    }

    /// Go's `connect` in `net/fd_unix.go`: start it, then wait for writability and read
    /// `SO_ERROR`, re-waiting on spurious wakeups.
    fn connect_addr(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let sock = sys::socket(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        let s = TcpStream {
            fd: Fd::new(sock.into())?,
        };
        {
            let _g = s.fd.lock(W)?;
            if deadline.is_some() {
                s.fd.set_deadline(W, deadline)?;
            }
            s.fd.prepare(W)?;
            match SockRef::from(s.fd.sock()).connect(&(*addr).into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EISCONN) => {}
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
        if deadline.is_some() {
            s.fd.set_deadline(W, None)?;
        }
        Ok(s)
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

    /// Shut down one or both directions (`shutdown(2)`): `Shutdown::Write` sends FIN, so the
    /// peer reads EOF and may still write back. Works on a shared `&TcpStream`; a G blocked
    /// reading this stream wakes with EOF after `Shutdown::Read`/`Both`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().shutdown(how)
    }

    /// A second handle to the same connection (a `dup`ed fd with its own registration), e.g.
    /// for one G that reads and another that writes. Timeouts and deadlines are per handle.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        let _g = self.fd.incref()?;
        Ok(TcpStream {
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

    /// Read without consuming (`MSG_PEEK`), parking until data is available.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.op(R, |s| s.peek(buf))
    }

    /// Set `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_nodelay(nodelay)
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        let _g = self.fd.incref()?;
        self.fd.sock().nodelay()
    }

    /// Set `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        let _g = self.fd.incref()?;
        self.fd.sock().ttl()
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
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        Ok(TcpStream { fd: Fd::new(s)? })
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.op(R, |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.fd.op(R, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &TcpStream {
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

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
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

crate::fd_traits!(TcpStream, std::net::TcpStream);
crate::fd_traits!(TcpListener, std::net::TcpListener);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}
