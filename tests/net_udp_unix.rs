//! `weft::net`'s UDP and Unix domain sockets on 2 Ps: `UdpSocket`, `UnixListener`,
//! `UnixStream`, `UnixDatagram`.
//!
//! Every test runs under the watchdog of `common::run_test`, on loopback or in a fresh directory
//! under the system's temp dir (removed afterwards, also when the test fails). No sleep is used as
//! synchronisation: where a test wants a G to be blocked before it acts ("close while a G is
//! blocked"), it waits until the G has announced it is about to block and then yields a while;
//! if the G has not parked yet, the op still starts after the event and the result checked is the
//! same, so the test cannot fail spuriously, it only exercises the other path.
//!
//! Datagram tests keep few datagrams in flight (lockstep per client), so none is dropped by a
//! full receive buffer; receivers that could otherwise wait forever on a lost datagram have a
//! read timeout, so a loss fails the test with a message instead of the watchdog.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run_test, wait_until, Mode};
use weft::go;
use weft::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};

/// Ps in this binary, as in `rt_np`.
const PROCS: usize = 2;

/// Bound on `yield_now` rounds in wait loops; the watchdog is the real limit.
const ROUNDS: u64 = 100_000_000;

/// Yields after a G announced it is about to block, to give it time to park (see the module doc).
const SETTLE_YIELDS: usize = 200;

/// Read timeout on datagram receivers: a lost datagram fails the test with a message.
const LOSS_TIMEOUT: Duration = Duration::from_secs(20);

fn settle() {
    for _ in 0..SETTLE_YIELDS {
        weft::yield_now();
    }
}

/// A fresh directory for socket files: `temp_dir()/weft-net-<pid>-<tag>-<n>`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weft-net-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes for message `(who, seq)` of length `len`.
fn pattern(who: usize, seq: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ who.wrapping_mul(7) ^ seq.wrapping_mul(13)) as u8)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------------

/// 8 client Gs × 250 datagrams of varying length through one echo server G; every echo is
/// checked byte for byte and comes back from the server's address.
#[test]
fn udp_echo_many_datagrams() {
    run_test(PROCS, Mode::Shared, "udp_echo_many_datagrams", || {
        weft::run(|| {
            const CLIENTS: usize = 8;
            const PER_CLIENT: usize = 250;
            let server = UdpSocket::bind("127.0.0.1:0").unwrap();
            server.set_read_timeout(Some(LOSS_TIMEOUT)).unwrap();
            let addr = server.local_addr().unwrap();
            let echo = go!(move || {
                let mut buf = vec![0u8; 65536];
                for _ in 0..CLIENTS * PER_CLIENT {
                    let (n, peer) = server.recv_from(&mut buf).expect("server recv_from");
                    assert_eq!(server.send_to(&buf[..n], peer).unwrap(), n);
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    go!(move || {
                        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                        sock.set_read_timeout(Some(LOSS_TIMEOUT)).unwrap();
                        let mut buf = vec![0u8; 65536];
                        for seq in 0..PER_CLIENT {
                            let len = 1 + (seq * 97 + c * 13) % 4000;
                            let msg = pattern(c, seq, len);
                            assert_eq!(sock.send_to(&msg, addr).unwrap(), len);
                            let (n, from) = sock.recv_from(&mut buf).expect("client recv_from");
                            assert_eq!(from, addr);
                            assert_eq!(&buf[..n], &msg[..], "client {c} datagram {seq}");
                        }
                    })
                })
                .collect();
            for h in clients {
                h.join().unwrap();
            }
            echo.join().unwrap();
        });
    });
}

/// `connect`ed sockets: `send`/`recv`/`peek`/`peek_from`, `peer_addr`, and options.
#[test]
fn udp_connected_send_recv_peek() {
    run_test(PROCS, Mode::Shared, "udp_connected_send_recv_peek", || {
        weft::run(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
            a.connect(ba).unwrap();
            b.connect(aa).unwrap();
            assert_eq!(a.peer_addr().unwrap(), ba);

            a.set_ttl(42).unwrap();
            assert_eq!(a.ttl().unwrap(), 42);
            a.set_broadcast(true).unwrap();
            assert!(a.broadcast().unwrap());
            assert!(a.take_error().unwrap().is_none());

            let reader = go!(move || {
                let mut buf = [0u8; 32];
                let (n, from) = b.peek_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&b"first"[..], aa));
                let n = b.peek(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"first");
                let n = b.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"first");
                let n = b.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"second");
                b.send(b"reply").unwrap();
            });
            a.send(b"first").unwrap();
            a.send(b"second").unwrap();
            let mut buf = [0u8; 32];
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"reply");
            reader.join().unwrap();
        });
    });
}

/// A G blocked in `recv_from` is woken by a datagram another G sends, over many rounds.
#[test]
fn udp_recv_from_woken_by_send() {
    run_test(PROCS, Mode::Shared, "udp_recv_from_woken_by_send", || {
        weft::run(|| {
            const ROUNDS_N: usize = 50;
            let rx = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let addr = rx.local_addr().unwrap();
            let round = Arc::new(AtomicUsize::new(0));
            let receiver = {
                let (rx, round) = (rx.clone(), round.clone());
                go!(move || {
                    let mut buf = [0u8; 16];
                    for i in 0..ROUNDS_N {
                        // Announce "about to block in round i".
                        round.store(i + 1, SeqCst);
                        let (n, _) = rx.recv_from(&mut buf).unwrap();
                        assert_eq!(&buf[..n], &(i as u64).to_le_bytes());
                    }
                })
            };
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..ROUNDS_N {
                assert!(wait_until(ROUNDS, || round.load(SeqCst) == i + 1));
                settle();
                tx.send_to(&(i as u64).to_le_bytes(), addr).unwrap();
            }
            receiver.join().unwrap();
        });
    });
}

/// Read deadlines and timeouts on `recv_from`: `TimedOut`, a past deadline fails at once, a
/// cleared deadline lets the next receive succeed, and a deadline moved while a G waits applies.
#[test]
fn udp_read_deadline_times_out() {
    run_test(PROCS, Mode::Shared, "udp_read_deadline_times_out", || {
        weft::run(|| {
            let s = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let mut buf = [0u8; 8];

            let start = Instant::now();
            s.set_read_deadline(Some(start + Duration::from_millis(30)))
                .unwrap();
            let e = s.recv_from(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
            assert!(start.elapsed() >= Duration::from_millis(30));

            // A deadline in the past: the next receive fails without waiting.
            s.set_read_deadline(Some(Instant::now() - Duration::from_millis(1)))
                .unwrap();
            assert_eq!(s.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);

            // Cleared: a datagram to ourselves is received.
            s.set_read_deadline(None).unwrap();
            s.send_to(b"self", s.local_addr().unwrap()).unwrap();
            let (n, _) = s.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"self");

            // std-style timeout.
            assert_eq!(s.read_timeout().unwrap(), None);
            assert_eq!(
                s.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(20)));
            let e = s.recv_from(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
            s.set_read_timeout(None).unwrap();

            // A deadline set while a G already waits applies to that wait.
            let started = Arc::new(AtomicBool::new(false));
            let waiter = {
                let (s, started) = (s.clone(), started.clone());
                go!(move || {
                    let mut buf = [0u8; 8];
                    started.store(true, SeqCst);
                    s.recv_from(&mut buf).unwrap_err()
                })
            };
            assert!(wait_until(ROUNDS, || started.load(SeqCst)));
            settle();
            s.set_deadline(Some(Instant::now() + Duration::from_millis(10)))
                .unwrap();
            let e = waiter.join().unwrap();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        });
    });
}

/// `close` while a G is blocked in `recv_from`: the G returns the closed error promptly, and
/// later calls fail with it too.
#[test]
fn udp_close_wakes_blocked_recv() {
    run_test(PROCS, Mode::Shared, "udp_close_wakes_blocked_recv", || {
        weft::run(|| {
            let s = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let started = Arc::new(AtomicBool::new(false));
            let blocked = {
                let (s, started) = (s.clone(), started.clone());
                go!(move || {
                    let mut buf = [0u8; 8];
                    started.store(true, SeqCst);
                    s.recv_from(&mut buf).unwrap_err()
                })
            };
            assert!(wait_until(ROUNDS, || started.load(SeqCst)));
            settle();
            let t = Instant::now();
            s.close().unwrap();
            let e = blocked.join().unwrap();
            assert!(weft::net::is_closed(&e), "{e:?}");
            assert_eq!(e.kind(), ErrorKind::NotConnected);
            // Generous: "promptly" means "not after some unrelated timeout".
            assert!(t.elapsed() < Duration::from_secs(10));
            assert!(weft::net::is_closed(
                &s.send_to(b"x", "127.0.0.1:9").unwrap_err()
            ));
            assert!(weft::net::is_closed(&s.local_addr().unwrap_err()));
            assert!(weft::net::is_closed(&s.close().unwrap_err()));
        });
    });
}

/// `try_clone`, `from_std` and `into_raw_fd` keep working sockets.
#[test]
fn udp_clone_and_conversions() {
    run_test(PROCS, Mode::Shared, "udp_clone_and_conversions", || {
        weft::run(|| {
            use std::os::fd::{FromRawFd, IntoRawFd};
            let a = UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
            let a2 = a.try_clone().unwrap();
            let b: UdpSocket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into();
            let ba = b.local_addr().unwrap();
            a2.send_to(b"via clone", ba).unwrap();
            drop(a2);
            let mut buf = [0u8; 16];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"via clone"[..], a.local_addr().unwrap())
            );
            // Hand the fd back to std (still non-blocking).
            // SAFETY: `into_raw_fd` gives up ownership of an open UDP socket fd.
            let std_b = unsafe { std::net::UdpSocket::from_raw_fd(b.into_raw_fd()) };
            assert_eq!(
                std_b.recv_from(&mut buf).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Unix streams
// ---------------------------------------------------------------------------------------------

/// 100 concurrent connections to one listener, a G per side; each client sends 10 messages of
/// varying length and checks the echo, then half-closes and reads EOF.
#[test]
fn unix_stream_echo_100_connections() {
    run_test(
        PROCS,
        Mode::Shared,
        "unix_stream_echo_100_connections",
        || {
            let dir = TempDir::new("echo");
            let path = dir.path("echo.sock");
            weft::run(move || {
                const CONNS: usize = 100;
                const MSGS: usize = 10;
                let listener = UnixListener::bind(&path).unwrap();
                assert_eq!(
                    listener.local_addr().unwrap().as_pathname(),
                    Some(path.as_path())
                );
                let server = go!(move || {
                    let mut conns = Vec::new();
                    for _ in 0..CONNS {
                        let (mut conn, peer) = listener.accept().unwrap();
                        assert!(peer.is_unnamed());
                        conns.push(go!(move || {
                            let mut buf = vec![0u8; 8192];
                            loop {
                                let n = conn.read(&mut buf).unwrap();
                                if n == 0 {
                                    break;
                                }
                                conn.write_all(&buf[..n]).unwrap();
                            }
                        }));
                    }
                    for c in conns {
                        c.join().unwrap();
                    }
                });
                let clients: Vec<_> = (0..CONNS)
                    .map(|c| {
                        let path = path.clone();
                        go!(move || {
                            let mut s = UnixStream::connect(&path).unwrap();
                            assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
                            for m in 0..MSGS {
                                let msg = pattern(c, m, 1 + (c * 131 + m * 977) % 20_000);
                                s.write_all(&msg).unwrap();
                                let mut back = vec![0u8; msg.len()];
                                s.read_exact(&mut back).unwrap();
                                assert_eq!(back, msg, "connection {c} message {m}");
                            }
                            s.shutdown(Shutdown::Write).unwrap();
                            let mut rest = Vec::new();
                            s.read_to_end(&mut rest).unwrap();
                            assert!(rest.is_empty());
                        })
                    })
                    .collect();
                for h in clients {
                    h.join().unwrap();
                }
                server.join().unwrap();
            });
            drop(dir);
        },
    );
}

/// One `&UnixStream` read by one G and written by another at the same time, 4 MiB each way, so
/// both directions fill the socket buffers and park.
#[test]
fn unix_stream_pair_concurrent_read_write_one_ref() {
    run_test(
        PROCS,
        Mode::Shared,
        "unix_stream_pair_concurrent_read_write_one_ref",
        || {
            weft::run(|| {
                const TOTAL: usize = 4 << 20;
                const CHUNK: usize = 64 * 1024;
                fn stream_bytes(seed: usize) -> impl Iterator<Item = u8> {
                    (0..).map(move |i: usize| (i.wrapping_mul(seed) >> 3) as u8)
                }
                fn write_side(s: &UnixStream, seed: usize) {
                    let data: Vec<u8> = stream_bytes(seed).take(TOTAL).collect();
                    for chunk in data.chunks(CHUNK) {
                        (&mut &*s).write_all(chunk).unwrap();
                    }
                }
                fn read_side(s: &UnixStream, seed: usize) {
                    let mut got = Vec::with_capacity(TOTAL);
                    let mut buf = vec![0u8; 10_000];
                    while got.len() < TOTAL {
                        let n = (&mut &*s).read(&mut buf).unwrap();
                        assert!(n > 0, "EOF after {} bytes", got.len());
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert_eq!(got.len(), TOTAL);
                    assert!(got.iter().copied().eq(stream_bytes(seed).take(TOTAL)));
                }
                let (a, b) = UnixStream::pair().unwrap();
                let (a, b) = (Arc::new(a), Arc::new(b));
                let handles = vec![
                    {
                        let a = a.clone();
                        go!(move || read_side(&a, 7))
                    },
                    {
                        let a = a.clone();
                        go!(move || write_side(&a, 3))
                    },
                    {
                        let b = b.clone();
                        go!(move || read_side(&b, 3))
                    },
                    {
                        let b = b.clone();
                        go!(move || write_side(&b, 7))
                    },
                ];
                for h in handles {
                    h.join().unwrap();
                }
            });
        },
    );
}

/// Stream deadlines, `close` waking a blocked reader, `shutdown(Read)` waking one with EOF, and
/// a listener's accept deadline and close.
#[test]
fn unix_stream_deadlines_close_shutdown() {
    run_test(
        PROCS,
        Mode::Shared,
        "unix_stream_deadlines_close_shutdown",
        || {
            let dir = TempDir::new("deadline");
            let path = dir.path("l.sock");
            weft::run(move || {
                let (a, b) = UnixStream::pair().unwrap();
                let mut buf = [0u8; 4];
                a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(20)));
                assert_eq!((&a).read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
                a.set_read_timeout(None).unwrap();
                a.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))
                    .unwrap();
                assert_eq!((&a).read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
                a.set_deadline(None).unwrap();
                assert_eq!(a.write_timeout().unwrap(), None);

                // close wakes a blocked reader.
                let a = Arc::new(a);
                let started = Arc::new(AtomicBool::new(false));
                let reader = {
                    let (a, started) = (a.clone(), started.clone());
                    go!(move || {
                        let mut buf = [0u8; 4];
                        started.store(true, SeqCst);
                        (&*a).read(&mut buf).unwrap_err()
                    })
                };
                assert!(wait_until(ROUNDS, || started.load(SeqCst)));
                settle();
                a.close().unwrap();
                assert!(weft::net::is_closed(&reader.join().unwrap()));

                // shutdown(Read) wakes a blocked reader with EOF.
                let b = Arc::new(b);
                let started = Arc::new(AtomicBool::new(false));
                let reader = {
                    let (b, started) = (b.clone(), started.clone());
                    go!(move || {
                        let mut buf = [0u8; 4];
                        started.store(true, SeqCst);
                        (&*b).read(&mut buf).unwrap()
                    })
                };
                assert!(wait_until(ROUNDS, || started.load(SeqCst)));
                settle();
                b.shutdown(Shutdown::Read).unwrap();
                assert_eq!(reader.join().unwrap(), 0);

                // Listener: accept deadline, then close wakes a blocked accept.
                let l = Arc::new(UnixListener::bind(&path).unwrap());
                assert!(l.take_error().unwrap().is_none());
                l.set_deadline(Some(Instant::now() + Duration::from_millis(20)))
                    .unwrap();
                assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::TimedOut);
                l.set_deadline(None).unwrap();
                let started = Arc::new(AtomicBool::new(false));
                let acceptor = {
                    let (l, started) = (l.clone(), started.clone());
                    go!(move || {
                        started.store(true, SeqCst);
                        l.accept().map(|_| ()).unwrap_err()
                    })
                };
                assert!(wait_until(ROUNDS, || started.load(SeqCst)));
                settle();
                l.close().unwrap();
                assert!(weft::net::is_closed(&acceptor.join().unwrap()));
            });
            drop(dir);
        },
    );
}

/// `try_clone` of a listener and a stream, `incoming`, and `from_std`.
#[test]
fn unix_clone_incoming_from_std() {
    run_test(PROCS, Mode::Shared, "unix_clone_incoming_from_std", || {
        let dir = TempDir::new("clone");
        let path = dir.path("c.sock");
        weft::run(move || {
            let l = UnixListener::from_std(std::os::unix::net::UnixListener::bind(&path).unwrap())
                .unwrap();
            let l2 = l.try_clone().unwrap();
            let server = go!(move || {
                let conn = l2.incoming().next().unwrap().unwrap();
                let w = conn.try_clone().unwrap();
                let mut buf = [0u8; 3];
                (&conn).read_exact(&mut buf).unwrap();
                (&w).write_all(&buf).unwrap();
            });
            let s: UnixStream = std::os::unix::net::UnixStream::connect(&path)
                .unwrap()
                .into();
            (&s).write_all(b"abc").unwrap();
            let mut buf = [0u8; 3];
            (&s).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"abc");
            server.join().unwrap();
            drop(l);
        });
        drop(dir);
    });
}

/// Connecting to a path with no file is `NotFound`; to a socket file nobody listens on,
/// `ConnectionRefused`.
#[test]
fn unix_connect_missing_path() {
    run_test(PROCS, Mode::Shared, "unix_connect_missing_path", || {
        let dir = TempDir::new("missing");
        let missing = dir.path("nothing-here.sock");
        let stale = dir.path("stale.sock");
        weft::run(move || {
            let e = UnixStream::connect(&missing).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            let l = UnixListener::bind(&stale).unwrap();
            l.close().unwrap(); // the file stays, nobody listens
            assert!(stale.exists());
            let e = UnixStream::connect(&stale).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            // Binding over an existing file fails, as in std.
            assert_eq!(
                UnixListener::bind(&stale).unwrap_err().kind(),
                ErrorKind::AddrInUse
            );
        });
        drop(dir);
    });
}

// ---------------------------------------------------------------------------------------------
// Unix datagrams
// ---------------------------------------------------------------------------------------------

/// A `UnixDatagram::pair` round trip (500 datagrams echoed and checked), then bound sockets
/// talking by path with `send_to`/`recv_from`, and `connect`.
#[test]
fn unix_datagram_round_trip() {
    run_test(PROCS, Mode::Shared, "unix_datagram_round_trip", || {
        let dir = TempDir::new("dgram");
        let (pa, pb) = (dir.path("a.sock"), dir.path("b.sock"));
        weft::run(move || {
            const N: usize = 500;
            let (x, y) = UnixDatagram::pair().unwrap();
            y.set_read_timeout(Some(LOSS_TIMEOUT)).unwrap();
            let echo = go!(move || {
                let mut buf = vec![0u8; 8192];
                for _ in 0..N {
                    let n = y.recv(&mut buf).unwrap();
                    assert_eq!(y.send(&buf[..n]).unwrap(), n);
                }
            });
            let mut buf = vec![0u8; 8192];
            for i in 0..N {
                let msg = pattern(1, i, 1 + (i * 61) % 6000);
                assert_eq!(x.send(&msg).unwrap(), msg.len());
                let n = x.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &msg[..], "datagram {i}");
            }
            echo.join().unwrap();

            // By path.
            let a = UnixDatagram::bind(&pa).unwrap();
            let b = UnixDatagram::bind(&pb).unwrap();
            assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.as_path()));
            let pb2 = pb.clone();
            let replier = go!(move || {
                let mut buf = [0u8; 32];
                let (n, from) = b.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"to b");
                let back = from.as_pathname().unwrap().to_path_buf();
                b.send_to(b"to a", &back).unwrap();
                back
            });
            a.send_to(b"to b", &pb2).unwrap();
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"to a");
            assert_eq!(from.as_pathname(), Some(pb.as_path()));
            assert_eq!(replier.join().unwrap(), pa);

            // connect + send from an unbound socket; deadline on recv.
            let u = UnixDatagram::unbound().unwrap();
            u.connect(&pa).unwrap();
            assert_eq!(u.peer_addr().unwrap().as_pathname(), Some(pa.as_path()));
            u.send(b"unbound").unwrap();
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"unbound");
            assert!(from.is_unnamed());
            a.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))
                .unwrap();
            assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        });
        drop(dir);
    });
}

/// `close` while a G is blocked in `UnixDatagram::recv_from`.
#[test]
fn unix_datagram_close_wakes_blocked_recv() {
    run_test(
        PROCS,
        Mode::Shared,
        "unix_datagram_close_wakes_blocked_recv",
        || {
            weft::run(|| {
                let (x, _y) = UnixDatagram::pair().unwrap();
                let x = Arc::new(x);
                let started = Arc::new(AtomicBool::new(false));
                let blocked = {
                    let (x, started) = (x.clone(), started.clone());
                    go!(move || {
                        let mut buf = [0u8; 8];
                        started.store(true, SeqCst);
                        x.recv_from(&mut buf).unwrap_err()
                    })
                };
                assert!(wait_until(ROUNDS, || started.load(SeqCst)));
                settle();
                x.close().unwrap();
                assert!(weft::net::is_closed(&blocked.join().unwrap()));
            });
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Plain OS threads
// ---------------------------------------------------------------------------------------------

/// The same API on plain threads (not Gs): blocking calls block the thread and are woken by the
/// netpoller, whether the other side is a thread or a G.
#[test]
fn plain_threads_block_and_wake() {
    run_test(PROCS, Mode::Shared, "plain_threads_block_and_wake", || {
        let dir = TempDir::new("threads");
        let path = dir.path("t.sock");

        // Unix stream: listener and client on two threads.
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            assert!(weft::current().is_none());
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(&buf).unwrap();
        });
        let p = path.clone();
        let client = std::thread::spawn(move || {
            let mut s = UnixStream::connect(&p).unwrap();
            s.write_all(b"plain").unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"plain");
        });
        client.join().unwrap();
        server.join().unwrap();

        // UDP: a thread blocks in recv_from until a G sends.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(LOSS_TIMEOUT)).unwrap();
        let addr = rx.local_addr().unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s2 = started.clone();
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            s2.store(true, SeqCst);
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        weft::run(move || {
            assert!(wait_until(ROUNDS, || started.load(SeqCst)));
            settle();
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .send_to(b"from a G", addr)
                .unwrap();
        });
        assert_eq!(receiver.join().unwrap(), b"from a G");

        // Unix datagram pair between two threads, and a deadline on a thread.
        let (a, b) = UnixDatagram::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let n = b.recv(&mut buf).unwrap();
            b.send(&buf[..n]).unwrap();
        });
        a.send(b"dgram").unwrap();
        let mut buf = [0u8; 16];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"dgram");
        t.join().unwrap();
        a.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))
            .unwrap();
        assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);

        drop(dir);
        assert!(!Path::new(&path).exists());
    });
}
