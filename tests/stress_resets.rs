//! Stress (issue 7): peers that reset in the middle of a transfer. Generated plans: per
//! connection, a writer G sends 8–24 MiB in 64 KiB `write_all`s (more than loopback's socket
//! buffers hold, so it is parked on a full send buffer when the reset comes) while the reader G
//! reads a random prefix of up to half, then resets the connection (`SO_LINGER` 0, close). The writer must come back — with `Ok` if everything fit in the buffers before the
//! reset, otherwise with `ConnectionReset` or `BrokenPipe` — never another error, never a hang;
//! what the reader got is an exact prefix of what was sent; nothing leaks. On 2 Ps here and on
//! 1 P in a child process.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use proptest::collection::vec;
use proptest::prelude::*;
use weft::net::{TcpListener, TcpStream};

use common::{watchdog, TEST_TIMEOUT};

#[derive(Debug, Clone)]
struct Plan {
    len: usize,
    /// How much the reader takes before it resets, in thousandths of `len`.
    cut_permille: usize,
    read_buf: usize,
}

fn plans() -> impl Strategy<Value = Vec<Plan>> {
    vec(
        (8usize << 20..=24 << 20, 0usize..=500, 1usize..=65_536).prop_map(
            |(len, cut_permille, read_buf)| Plan {
                len,
                cut_permille,
                read_buf,
            },
        ),
        1..6,
    )
}

/// Run one program; returns (writers that saw the reset, bytes read before resets).
fn run(plans: &[Plan]) -> Result<(u64, u64), String> {
    let plans = plans.to_vec();
    weft::run(move || {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let mut hs = Vec::new();
        for (k, p) in plans.into_iter().enumerate() {
            let w = TcpStream::connect(l.local_addr().unwrap()).map_err(|e| e.to_string())?;
            let (r, _) = l.accept().map_err(|e| e.to_string())?;
            let byte = move |i: usize| (i.wrapping_mul(7) + k) as u8;
            let len = p.len;
            let writer = weft::go!(move || -> Result<bool, String> {
                let mut chunk = vec![0u8; 64 * 1024];
                let mut off = 0;
                while off < len {
                    let n = chunk.len().min(len - off);
                    for (j, b) in chunk[..n].iter_mut().enumerate() {
                        *b = byte(off + j);
                    }
                    match (&w).write_all(&chunk[..n]) {
                        Ok(()) => off += n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                            ) =>
                        {
                            return Ok(true)
                        }
                        Err(e) => return Err(format!("conn {k}: writer: unexpected error {e:?}")),
                    }
                }
                Ok(false)
            });
            let reader = weft::go!(move || -> Result<u64, String> {
                let cut = p.len * p.cut_permille / 1000;
                let mut pos = 0;
                let mut buf = vec![0u8; p.read_buf];
                while pos < cut {
                    let want = (cut - pos).min(buf.len());
                    match (&r).read(&mut buf[..want]) {
                        Ok(0) => return Err(format!("conn {k}: EOF at {pos} of {cut}")),
                        Ok(n) => {
                            if let Some(j) = (0..n).find(|&j| buf[j] != byte(pos + j)) {
                                return Err(format!("conn {k}: wrong byte at {}", pos + j));
                            }
                            pos += n;
                        }
                        Err(e) => return Err(format!("conn {k}: reader: {e}")),
                    }
                }
                common::set_linger_zero(&r);
                drop(r); // reset
                Ok(cut as u64)
            });
            hs.push((writer, reader));
        }
        let (mut resets, mut bytes) = (0, 0);
        for (w, r) in hs {
            bytes += r.join().map_err(|_| "reader panicked".to_string())??;
            resets += u64::from(w.join().map_err(|_| "writer panicked".to_string())??);
        }
        Ok((resets, bytes))
    })
}

/// Generated programs per run in CI (`PROPTEST_CASES` for more).
const CASES: u32 = 24;

fn check_programs() {
    let cases = common::proptest_cases(CASES);
    let (resets, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    common::run_leak_checked(CASES, &plans(), "a reset program", false, |plans| {
        let (n, b) = run(&plans)?;
        resets.fetch_add(n, SeqCst);
        bytes.fetch_add(b, SeqCst);
        Ok(())
    });
    let resets = resets.into_inner();
    common::note(format_args!(
        "{cases} programs: {resets} writers stopped by a reset, {} KiB read before resets",
        bytes.into_inner() >> 10
    ));
    assert!(
        resets > 0,
        "no writer ever met a reset: the plans did not exercise it"
    );
}

#[test]
fn resets_mid_write_np() {
    let _dog = watchdog("resets_mid_write_np", TEST_TIMEOUT);
    common::init(2);
    check_programs();
}

#[test]
fn resets_mid_write_1p() {
    const TEST: &str = "resets_mid_write_1p";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    common::on_one_p_in_child(TEST, check_programs);
}
