//! Stress (issue 7): the EAGAIN-then-park race (docs/NETPOLL.md §3). An op's syscall fails with
//! `EAGAIN`; before it parks, the peer's data arrives and netpoll (on the other M) records the
//! edge as `READY`. That readiness must survive until the op's wait consumes it — resetting the
//! word after `EAGAIN` instead of before the syscall would erase it and park the op forever.
//!
//! By chance the window is a few hundred nanoseconds wide and the socket suites never hit it
//! (an injected reset-after-EAGAIN passed them all). Here the child process sets
//! `WEFT_TEST_EAGAIN_DELAY_US` (net/src/fd.rs's test hook): every `EAGAIN` is followed by a 200 µs
//! sleep of the thread before the wait, while ping-pong partners on the other P write and
//! netpoll harvests their edges. Correct code completes every round trip; the injected bug hangs
//! here within a few rounds (the watchdog ends it).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use weft::net::{TcpListener, TcpStream};

use common::{run_child, scenario, watchdog};

const PAIRS: usize = 8;
const ROUND_TRIPS: usize = 300;

fn ping_pong() {
    weft::run(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut hs = Vec::new();
        for k in 0..PAIRS {
            let a = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            let (b, _) = l.accept().expect("accept");
            a.set_nodelay(true).unwrap();
            b.set_nodelay(true).unwrap();
            hs.push(weft::go!(move || {
                let mut buf = [0u8; 8];
                for i in 0..ROUND_TRIPS as u64 {
                    (&b).read_exact(&mut buf).expect("server read");
                    assert_eq!(u64::from_le_bytes(buf), i, "pair {k}: server got round {i}");
                    (&b).write_all(&buf).expect("server write");
                }
            }));
            hs.push(weft::go!(move || {
                let mut buf = [0u8; 8];
                for i in 0..ROUND_TRIPS as u64 {
                    (&a).write_all(&i.to_le_bytes()).expect("client write");
                    (&a).read_exact(&mut buf).expect("client read");
                    assert_eq!(u64::from_le_bytes(buf), i, "pair {k}: echo of round {i}");
                }
            }));
        }
        for h in hs {
            h.join().expect("a ping-pong G panicked");
        }
    });
    println!("eagain ping-pong done");
}

#[test]
fn readiness_between_eagain_and_park_is_kept() {
    const TEST: &str = "readiness_between_eagain_and_park_is_kept";
    let _dog = watchdog(TEST, Duration::from_secs(60));
    if scenario().is_some() {
        common::init(2);
        ping_pong();
        return;
    }
    let out = run_child(TEST, "eagain", &[("WEFT_TEST_EAGAIN_DELAY_US", "200")]);
    assert!(
        out.status.success() && out.stdout.contains("eagain ping-pong done"),
        "{out}"
    );
}
