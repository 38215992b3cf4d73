//! UDP: [`UdpSocket`], with std's API and Go's deadlines (Go: `net.UDPConn`).

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Type};
use weft_runtime::netpoll::Direction::{Read as R, Write as W};

use crate::fd::Fd;
use crate::sys;

/// A UDP socket. Receives park the calling G until a datagram arrives, sends park while the
/// socket's send buffer is full (a plain thread blocks instead). A receiver and a sender may
/// block on the same socket at once (share it as `&UdpSocket`, or `try_clone`).
///
/// ```
/// use weft_net::UdpSocket;
///
/// weft_runtime::run(|| {
///     let server = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let addr = server.local_addr().unwrap();
///     let echo = weft_runtime::go!(move || {
///         let mut buf = [0u8; 64];
///         let (n, peer) = server.recv_from(&mut buf).unwrap();
///         server.send_to(&buf[..n], peer).unwrap();
///     });
///     let client = UdpSocket::bind("127.0.0.1:0").unwrap();
///     client.connect(addr).unwrap();
///     client.send(b"ping").unwrap();
///     let mut buf = [0u8; 64];
///     let n = client.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     echo.join().unwrap();
/// });
/// ```
pub struct UdpSocket {
    fd: Fd<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Create a socket bound to `addr` (each resolved address in turn, the first that binds is
    /// used). Port 0 picks a free port; see [`local_addr`](Self::local_addr).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        sys::each_addr(addr, |a| {
            let sock = sys::socket(Domain::for_address(*a), Type::DGRAM, Some(Protocol::UDP))?;
            sock.bind(&(*a).into())?;
            Ok(UdpSocket {
                fd: Fd::new(sock.into())?,
            })
        })
    }

    /// Receive one datagram, parking until one arrives; returns its length and sender. A
    /// datagram longer than `buf` is truncated (the rest is lost), as in std.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.op(R, |s| s.recv_from(buf))
    }

    /// Like [`recv_from`](Self::recv_from) but leaves the datagram queued (`MSG_PEEK`).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.op(R, |s| s.peek_from(buf))
    }

    /// Send `buf` as one datagram to `addr`; if `addr` resolves to several addresses, the first
    /// is used (as in std). Name resolution runs inside [`weft_runtime::blocking`]. Parks while
    /// the send buffer is full.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let first = weft_runtime::blocking(|| addr.to_socket_addrs().map(|mut it| it.next()));
        let addr = match first? {
            Some(a) => a,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no addresses to send data to",
                ))
            }
        };
        self.fd.op(W, |s| s.send_to(buf, addr))
    }

    /// Set the default destination for [`send`](Self::send) and the only source accepted by
    /// [`recv`](Self::recv) (each resolved address in turn, the first that succeeds is used).
    /// Does not block: UDP has no handshake.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        sys::each_addr(addr, |a| {
            let _g = self.fd.incref()?;
            self.fd.sock().connect(a)
        })
    }

    /// Send `buf` as one datagram to the connected peer. Parks while the send buffer is full.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.op(W, |s| s.send(buf))
    }

    /// Receive one datagram from the connected peer, parking until one arrives.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.op(R, |s| s.recv(buf))
    }

    /// Like [`recv`](Self::recv) but leaves the datagram queued (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.op(R, |s| s.peek(buf))
    }

    /// The connected peer's address (`NotConnected` if `connect` was not called).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let _g = self.fd.incref()?;
        self.fd.sock().local_addr()
    }

    crate::common::timing_methods!();

    /// Set `SO_BROADCAST`.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_broadcast(broadcast)
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        let _g = self.fd.incref()?;
        self.fd.sock().broadcast()
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

    /// Set `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        let _g = self.fd.incref()?;
        self.fd.sock().multicast_loop_v4()
    }

    /// Set `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        let _g = self.fd.incref()?;
        self.fd.sock().multicast_ttl_v4()
    }

    /// Set `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().set_multicast_loop_v6(on)
    }

    /// `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        let _g = self.fd.incref()?;
        self.fd.sock().multicast_loop_v6()
    }

    /// Join an IPv4 multicast group (`IP_ADD_MEMBERSHIP`) on the interface with address
    /// `interface` (`UNSPECIFIED`: let the OS choose).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().join_multicast_v4(multiaddr, interface)
    }

    /// Join an IPv6 multicast group (`IPV6_ADD_MEMBERSHIP`) on interface index `interface`
    /// (0: let the OS choose).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().join_multicast_v6(multiaddr, interface)
    }

    /// Leave an IPv4 multicast group (`IP_DROP_MEMBERSHIP`).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().leave_multicast_v4(multiaddr, interface)
    }

    /// Leave an IPv6 multicast group (`IPV6_DROP_MEMBERSHIP`).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        let _g = self.fd.incref()?;
        self.fd.sock().leave_multicast_v6(multiaddr, interface)
    }

    crate::common::fd_methods!(UdpSocket, std::net::UdpSocket);
}

crate::common::fd_traits!(UdpSocket, std::net::UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.as_raw_fd())
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
