//! Name resolution in `weft::net`, on one P: connecting to `localhost:PORT`, and a resolver that
//! blocks its thread for 200 ms while another G of the same P keeps ticking.
//!
//! `ToSocketAddrs::to_socket_addrs` (`getaddrinfo` for a host name) blocks the OS thread; it
//! cannot be a netpoller wait. `weft::net` runs it inside `weft::blocking`, so that sysmon hands
//! the P to another M while it blocks. The ticker test measures exactly that, and is the one
//! test in the suite with a timing upper bound (the acceptance list asks for it): on one
//! P, without the hand-off, a 10 ms ticker would stall for the whole 200 ms; with it, the
//! largest gap between ticks stays near 10 ms plus sysmon's reaction time. The bound asserted,
//! [`MAX_TICK_GAP`], is generous.

mod common;
#[allow(unused)] // only the helpers; the TCP cases run in net_tcp_1p / net_tcp_np
#[path = "common/tcp_cases.rs"]
mod tcp_cases;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{note, run_test, wait_until, Mode};
use tcp_cases::{echo_until_eof, listener, payload, rd_exact, rd_to_end, wr, ROUNDS};
use weft::net::{TcpStream, UdpSocket};

/// Ps in this binary: one, so that a resolver blocking the thread would stop every other G.
const PROCS: usize = 1;

/// How long [`SlowAddr`]'s resolution blocks its thread.
const SLOW_RESOLVE: Duration = Duration::from_millis(200);

/// The ticker's period.
const TICK: Duration = Duration::from_millis(10);

/// The largest gap between two ticks that the test accepts while the resolver blocks: generous
/// (the expected value is `TICK` plus sysmon's hand-off delay, well under 20 ms); without the
/// hand-off it is at least [`SLOW_RESOLVE`].
const MAX_TICK_GAP: Duration = Duration::from_millis(100);

/// A `ToSocketAddrs` whose resolution blocks the calling thread like a slow DNS server would
/// (`std::thread::sleep`), then returns `127.0.0.1:port`. Counts its calls.
struct SlowAddr {
    port: u16,
    calls: Arc<AtomicUsize>,
}

impl ToSocketAddrs for SlowAddr {
    type Iter = std::option::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        self.calls.fetch_add(1, SeqCst);
        std::thread::sleep(SLOW_RESOLVE);
        Ok(Some(SocketAddr::from(([127, 0, 0, 1], self.port))).into_iter())
    }
}

/// One G accepts one connection on `l` and echoes until EOF; returns the bytes echoed.
fn echo_once(l: weft::net::TcpListener) -> weft::JoinHandle<u64> {
    weft::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        echo_until_eof(&s, 4096).expect("echo")
    })
}

/// Send `msg` on `c`, check the echo, half-close and see the server's EOF.
fn check_echo(c: &TcpStream, msg: &[u8]) {
    wr(c, msg).expect("write");
    assert!(
        rd_exact(c, msg.len()).expect("read echo") == msg,
        "echo differs"
    );
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert!(
        rd_to_end(c).expect("read EOF").is_empty(),
        "data after the echo"
    );
}

/// `TcpStream::connect("localhost:PORT")` resolves the name (through `getaddrinfo`, inside
/// `weft::blocking`) and reaches a listener on 127.0.0.1; data echoes both ways.
#[test]
fn connect_localhost_by_name() {
    run_test(PROCS, Mode::Shared, "connect_localhost_by_name", || {
        weft::run(|| {
            let l = listener();
            let port = l.local_addr().unwrap().port();
            let server = echo_once(l);
            // "localhost" may also resolve to ::1, where nothing listens: connect tries each
            // address in turn and must end on 127.0.0.1.
            let c = TcpStream::connect(format!("localhost:{port}")).expect("connect localhost");
            assert_eq!(
                c.peer_addr().unwrap(),
                SocketAddr::from(([127, 0, 0, 1], port))
            );
            let msg = payload(1, 50_000);
            check_echo(&c, &msg);
            assert_eq!(server.join().expect("echo G"), msg.len() as u64);
        });
    });
}

/// `UdpSocket::send_to` resolves its destination (through `weft::blocking`) once per call.
#[test]
fn udp_send_to_resolves_destination() {
    run_test(
        PROCS,
        Mode::Shared,
        "udp_send_to_resolves_destination",
        || {
            weft::run(|| {
                let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
                let port = rx.local_addr().unwrap().port();
                let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
                let calls = Arc::new(AtomicUsize::new(0));
                // A fast resolver this time: a resolver of our own proves the call goes through
                // `send_to`'s resolution, whatever /etc/hosts says about "localhost".
                struct Counted(u16, Arc<AtomicUsize>);
                impl ToSocketAddrs for Counted {
                    type Iter = std::vec::IntoIter<SocketAddr>;
                    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
                        self.1.fetch_add(1, SeqCst);
                        Ok(vec![SocketAddr::from(([127, 0, 0, 1], self.0))].into_iter())
                    }
                }
                for i in 0..3u8 {
                    let msg = [i; 100];
                    let n = tx
                        .send_to(&msg, Counted(port, Arc::clone(&calls)))
                        .expect("send_to");
                    assert_eq!(n, msg.len());
                    let mut buf = [0u8; 200];
                    let (n, from) = rx.recv_from(&mut buf).expect("recv_from");
                    assert_eq!(&buf[..n], &msg[..]);
                    assert_eq!(from, tx.local_addr().unwrap());
                }
                assert_eq!(calls.load(SeqCst), 3, "one resolution per send_to");
            });
        },
    );
}

/// A resolver that blocks its thread for 200 ms does not stop the other Gs of the only P: a
/// 10 ms ticker G keeps ticking (largest gap below [`MAX_TICK_GAP`]) while `connect` resolves,
/// and the connection then works.
#[test]
fn slow_resolution_does_not_stall_the_p() {
    run_test(
        PROCS,
        Mode::Exclusive,
        "slow_resolution_does_not_stall_the_p",
        || {
            weft::run(|| {
                let l = listener();
                let port = l.local_addr().unwrap().port();
                let server = echo_once(l);

                let stop = Arc::new(AtomicBool::new(false));
                let ticks = Arc::new(AtomicUsize::new(0));
                let ticker = {
                    let (stop, ticks) = (Arc::clone(&stop), Arc::clone(&ticks));
                    weft::spawn(move || {
                        let mut last = Instant::now();
                        let mut max_gap = Duration::ZERO;
                        while !stop.load(SeqCst) {
                            weft::sleep(TICK);
                            let now = Instant::now();
                            max_gap = max_gap.max(now - last);
                            last = now;
                            ticks.fetch_add(1, SeqCst);
                        }
                        max_gap
                    })
                };
                // Let the ticker get going first, so that its gaps are measured in steady state
                // and the resolution below starts while it sleeps on its timer.
                assert!(
                    wait_until(ROUNDS, || ticks.load(SeqCst) >= 2),
                    "the ticker never ticked"
                );

                let calls = Arc::new(AtomicUsize::new(0));
                let before = ticks.load(SeqCst);
                let t0 = Instant::now();
                let c = TcpStream::connect(SlowAddr {
                    port,
                    calls: Arc::clone(&calls),
                })
                .expect("connect through the slow resolver");
                let took = t0.elapsed();
                let during = ticks.load(SeqCst) - before;
                stop.store(true, SeqCst);
                let max_gap = ticker.join().expect("ticker G");

                assert_eq!(calls.load(SeqCst), 1, "resolved once");
                assert!(
                    took >= SLOW_RESOLVE,
                    "connect returned before the resolver did"
                );
                let msg = payload(2, 10_000);
                check_echo(&c, &msg);
                assert_eq!(server.join().expect("echo G"), msg.len() as u64);

                note(format_args!(
                    "connect took {took:?}; {during} ticks meanwhile; largest tick gap {max_gap:?}"
                ));
                assert!(
                max_gap < MAX_TICK_GAP,
                "a 10 ms ticker on the same P stalled for {max_gap:?} (bound {MAX_TICK_GAP:?}) \
                 while the resolver blocked its thread for {SLOW_RESOLVE:?} ({during} ticks \
                 during the {took:?} connect): the blocking call held the P"
            );
            });
        },
    );
}
