//! TCP: [`TcpListener`] and [`TcpStream`], with std's API and Go's deadlines (Go: `net.TCPConn`,
//! `net.TCPListener`).

use std::fmt;
use std::io;
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

    /// Deadline for `accept` (Go: `TCPListener.SetDeadline`); `None` clears it. An `accept`
    /// waiting past it returns `ErrorKind::TimedOut`.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(R, deadline)
    }

    crate::common::fd_methods!(TcpListener, std::net::TcpListener);
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

    crate::common::timing_methods!();

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

    crate::common::fd_methods!(TcpStream, std::net::TcpStream);
}

// A short TCP read empties the receive queue (tcp_recvmsg returns early only once the queue is
// empty, or at an urgent-data mark; see `Fd::read_stream`).
crate::common::stream_io!(TcpStream, true);

crate::common::fd_traits!(TcpStream, std::net::TcpStream);
crate::common::fd_traits!(TcpListener, std::net::TcpListener);

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
