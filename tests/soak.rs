//! Soak (ignored by default; issue 7): `WEFT_SOAK_CONNS` connections (default 10 000) churning
//! connect / echo / close against the `tcp_echo` example in a process of its own, for
//! `WEFT_SOAK_SECS` seconds (default 60), with the server's RSS sampled every second. The RSS must
//! plateau: its peak over the last third of the run may exceed the peak over the middle third by
//! at most 10 % + 2 MiB. Every echoed byte is checked, and after the clients stop, the server
//! must be back to its idle fd count (no leaked sockets).
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture
//! WEFT_SOAK_SECS=600 WEFT_SOAK_CONNS=10000 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! The client side runs in Gs of this process (10 000 sockets here, 10 000 in the server: the
//! soft fd limit is raised to the hard one). Each client G loops: connect, write a message
//! unique to (client, round), read it back, half-close, read EOF, drop — so the server closes
//! first and the TIME_WAIT states sit on its side, not on the client's ephemeral ports.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::net::TcpStream;

mod common;
use common::example::{proc_fd_count, Example};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above; setrlimit only reads `lim`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    lim.rlim_cur
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn message(client: u64, round: u64) -> Vec<u8> {
    let mut m = format!("{client}:{round}:").into_bytes();
    m.resize(64, b'a' + (round % 26) as u8);
    m
}

fn client(addr: SocketAddr, id: u64, stop: &AtomicBool, rounds: &AtomicU64) -> Result<(), String> {
    let mut round = 0;
    let mut buf = [0u8; 64];
    while !stop.load(SeqCst) {
        let mut c = TcpStream::connect(addr).map_err(|e| format!("client {id}: connect: {e}"))?;
        c.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let msg = message(id, round);
        c.write_all(&msg)
            .map_err(|e| format!("client {id}: write: {e}"))?;
        c.read_exact(&mut buf)
            .map_err(|e| format!("client {id} round {round}: read: {e}"))?;
        if buf[..] != msg[..] {
            return Err(format!("client {id} round {round}: wrong echo"));
        }
        c.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        match c.read(&mut buf) {
            Ok(0) => {}
            other => return Err(format!("client {id}: expected EOF, got {other:?}")),
        }
        round += 1;
        rounds.fetch_add(1, SeqCst);
    }
    Ok(())
}

#[test]
#[ignore = "soak: minutes of load; run with --ignored (see the module doc)"]
fn soak_connection_churn_rss_plateaus() {
    let secs = env_num("WEFT_SOAK_SECS", 60);
    let conns = env_num("WEFT_SOAK_CONNS", 10_000);
    let nofile = raise_nofile();
    assert!(
        nofile >= conns + 100,
        "need {conns} + 100 fds, the hard limit is {nofile}"
    );
    // Watchdog: the run, plus time to connect and to wind down.
    let limit = Duration::from_secs(secs + 120);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("soak: watchdog: still running after {limit:?}");
        std::process::abort();
    });

    let server = Example::start("tcp_echo", &[]);
    let pid = server.pid() as u32;
    let addr = server.addr;
    let idle_fds = server.fd_count();

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let samples = weft::run({
        let (stop, rounds) = (stop.clone(), rounds.clone());
        move || {
            let hs: Vec<_> = (0..conns)
                .map(|id| {
                    let (stop, rounds) = (stop.clone(), rounds.clone());
                    weft::go!(move || client(addr, id, &stop, &rounds))
                })
                .collect();
            let start = Instant::now();
            let mut samples = Vec::new();
            while start.elapsed() < Duration::from_secs(secs) {
                weft::sleep(Duration::from_secs(1));
                let rss = proc_field(pid, "status", "VmRSS:");
                let n = rounds.load(SeqCst);
                eprintln!(
                    "soak: t={:>4}s server RSS {rss} KiB, fds {}, {n} connections done",
                    start.elapsed().as_secs(),
                    proc_fd_count(pid)
                );
                samples.push(rss);
            }
            stop.store(true, SeqCst);
            for h in hs {
                if let Err(e) = h.join().expect("client panicked") {
                    panic!("{e}");
                }
            }
            samples
        }
    });
    let total = rounds.load(SeqCst);
    assert!(total >= conns, "only {total} connections completed");

    // Back to idle: every socket closed (the server closes after our half-close).
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.fd_count() > idle_fds && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50)); // polling the other process, bounded
    }
    assert_eq!(
        server.fd_count(),
        idle_fds,
        "the server kept sockets open after every client left"
    );

    let third = samples.len() / 3;
    assert!(third >= 1, "run at least 3 s (WEFT_SOAK_SECS)");
    let middle = samples[third..2 * third].iter().max().copied().unwrap_or(0);
    let last = samples[2 * third..].iter().max().copied().unwrap_or(0);
    eprintln!(
        "soak: {total} connections in {secs} s; server RSS peak {middle} KiB (middle third), \
         {last} KiB (last third)"
    );
    assert!(
        last <= middle + middle / 10 + 2048,
        "server RSS still growing: {middle} KiB → {last} KiB"
    );
}
