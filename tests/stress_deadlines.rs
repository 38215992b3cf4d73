//! Stress (issue 7): read deadlines racing with readiness. Generated plans: per connection, a
//! writer G sends chunks with random pauses (timer sleeps of 0–3 ms), then half-closes; the
//! reader G sets a read deadline a random 0–3 ms ahead before every read, and on `TimedOut`
//! clears nothing — it just sets the next deadline and reads again. Whatever the race between
//! the deadline timer and the data's edge, the reader must end up with exactly the bytes written,
//! in order, then EOF: a timeout never eats data, never fires spuriously with the data's edge
//! lost, and never leaves the reader parked. Every program is checked for leaks afterwards
//! (Gs, netpoll registrations, live stacks). On 2 Ps here and on 1 P in a child process.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use weft::net::{TcpListener, TcpStream};

use common::{watchdog, TEST_TIMEOUT};

#[derive(Debug, Clone)]
struct Plan {
    /// (chunk length, pause before it in µs)
    chunks: Vec<(usize, u64)>,
    /// Read deadlines, in µs ahead, used in turn.
    deadlines: Vec<u64>,
    read_buf: usize,
}

fn plans() -> impl Strategy<Value = Vec<Plan>> {
    vec(
        (
            vec((1usize..=20_000, 0u64..3_000), 1..10),
            vec(0u64..3_000, 1..8),
            1usize..=16_384,
        )
            .prop_map(|(chunks, deadlines, read_buf)| Plan {
                chunks,
                deadlines,
                read_buf,
            }),
        1..8,
    )
}

fn payload(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131)) as u8)
        .collect()
}

/// Run one generated program; `Ok((bytes, timeouts))`.
fn run(plans: &[Plan]) -> Result<(u64, u64), String> {
    let plans = plans.to_vec();
    weft::run(move || {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let mut hs = Vec::new();
        for (k, p) in plans.into_iter().enumerate() {
            let c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
            let (s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
            let total: usize = p.chunks.iter().map(|c| c.0).sum();
            let data = payload(k, total);
            let want = data.clone();
            let chunks = p.chunks.clone();
            let writer = weft::go!(move || -> Result<(), String> {
                let mut off = 0;
                for (len, pause) in chunks {
                    if pause > 0 {
                        weft::sleep(Duration::from_micros(pause));
                    }
                    (&c).write_all(&data[off..off + len])
                        .map_err(|e| format!("write: {e}"))?;
                    off += len;
                }
                c.shutdown(Shutdown::Write).map_err(|e| e.to_string())
            });
            let reader = weft::go!(move || -> Result<u64, String> {
                let mut got = Vec::with_capacity(want.len());
                let mut buf = vec![0u8; p.read_buf];
                let mut timeouts = 0u64;
                let mut i = 0;
                let give_up = Instant::now() + Duration::from_secs(20);
                loop {
                    let ahead = Duration::from_micros(p.deadlines[i % p.deadlines.len()]);
                    i += 1;
                    s.set_read_deadline(Some(Instant::now() + ahead))
                        .map_err(|e| e.to_string())?;
                    match (&s).read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::TimedOut => {
                            timeouts += 1;
                            if Instant::now() > give_up {
                                return Err(format!(
                                    "conn {k}: still timing out after 20 s with {} of {} bytes",
                                    got.len(),
                                    want.len()
                                ));
                            }
                        }
                        Err(e) => return Err(format!("conn {k}: read: {e}")),
                    }
                }
                if got != want {
                    let at = got.iter().zip(&want).position(|(a, b)| a != b);
                    return Err(format!(
                        "conn {k}: read {} of {} bytes, first difference at {at:?}",
                        got.len(),
                        want.len()
                    ));
                }
                Ok(timeouts)
            });
            hs.push((total as u64, writer, reader));
        }
        let (mut bytes, mut timeouts) = (0, 0);
        for (n, w, r) in hs {
            w.join().map_err(|_| "writer panicked".to_string())??;
            timeouts += r.join().map_err(|_| "reader panicked".to_string())??;
            bytes += n;
        }
        Ok((bytes, timeouts))
    })
}

/// Generated programs per run in CI (`PROPTEST_CASES` for more).
const CASES: u32 = 24;

fn check_programs() {
    let cases = common::proptest_cases(CASES);
    let (bytes, timeouts) = (AtomicU64::new(0), AtomicU64::new(0));
    common::run_leak_checked(CASES, &plans(), "a deadline program", false, |plans| {
        let (b, t) = run(&plans)?;
        bytes.fetch_add(b, SeqCst);
        timeouts.fetch_add(t, SeqCst);
        Ok(())
    });
    let (bytes, timeouts) = (bytes.into_inner(), timeouts.into_inner());
    common::note(format_args!(
        "{cases} programs: {} KiB delivered intact through {timeouts} read timeouts",
        bytes >> 10
    ));
    assert!(
        timeouts > 0,
        "no deadline ever fired: the programs did not race deadlines with data"
    );
}

#[test]
fn deadlines_race_readiness_np() {
    let _dog = watchdog("deadlines_race_readiness_np", TEST_TIMEOUT);
    common::init(2);
    check_programs();
}

#[test]
fn deadlines_race_readiness_1p() {
    const TEST: &str = "deadlines_race_readiness_1p";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    common::on_one_p_in_child(TEST, check_programs);
}
