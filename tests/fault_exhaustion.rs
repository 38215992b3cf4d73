//! Fault injection (issue 7): the runtime out of fds and out of stack mappings at once. Every
//! failing call must return a clear error (`EMFILE` from `accept`/`connect`/`bind`,
//! `OutOfMemory` naming the stack budget from `Builder::spawn`) — no panic, no hang, no crash —
//! and once resources are given back, the same runtime serves again: new connections echo, new
//! Gs run. Runs in a child process with `RLIMIT_NOFILE` lowered and `WEFT_MAX_STACKS` small, on
//! 2 Ps.

mod common;

use std::io::{ErrorKind, Read, Write};

use weft::net::{TcpListener, TcpStream};

use common::{run_child, scenario, watchdog, TEST_TIMEOUT};

/// Stack budget of the child: this many Gs at most.
const STACKS: usize = 64;
/// Soft fd limit of the child.
const NOFILE: u64 = 48;

fn lower_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = n.min(lim.rlim_max);
    // SAFETY: as above; setrlimit only reads `lim`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

fn is_emfile(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

/// One echo round trip on a fresh connection, served by a fresh G.
fn echo_once(l: &TcpListener) -> std::io::Result<()> {
    let c = TcpStream::connect(l.local_addr()?)?;
    // Connections whose `accept` failed with EMFILE wait in the backlog (their clients long
    // gone): skip them, take ours.
    let me = c.local_addr()?;
    let s = loop {
        let (s, peer) = l.accept()?;
        if peer == me {
            break s;
        }
    };
    let server = weft::Builder::new()
        .spawn(move || -> std::io::Result<()> {
            let mut buf = [0u8; 5];
            (&s).read_exact(&mut buf)?;
            (&s).write_all(&buf)
        })
        .map_err(|e| std::io::Error::new(e.kind(), format!("spawn: {e}")))?;
    (&c).write_all(b"hello")?;
    let mut buf = [0u8; 5];
    (&c).read_exact(&mut buf)?;
    assert_eq!(&buf, b"hello");
    server.join().expect("echo G panicked")?;
    Ok(())
}

fn scenario_body() {
    lower_nofile(NOFILE);
    weft::run(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        echo_once(&l).expect("echo before exhaustion");

        // Out of fds: hold connections until connect or accept says EMFILE.
        let mut held = Vec::new();
        let emfile = loop {
            match TcpStream::connect(l.local_addr().unwrap()) {
                Ok(c) => {
                    held.push(c);
                    match l.accept() {
                        Ok((s, _)) => held.push(s),
                        Err(e) => break e,
                    }
                }
                Err(e) => break e,
            }
            assert!(held.len() < 1000, "fds never ran out");
        };
        assert!(is_emfile(&emfile), "expected EMFILE, got {emfile:?}");
        let bind = TcpListener::bind("127.0.0.1:0");
        assert!(
            bind.as_ref().is_err_and(is_emfile),
            "bind out of fds: {bind:?}"
        );

        // Out of stacks too: spawn parked Gs until the budget says no.
        let gate = std::sync::Arc::new(common::Gate::new());
        let mut parked = Vec::new();
        let spawn_err = loop {
            let g = gate.clone();
            match weft::Builder::new().spawn(move || g.wait()) {
                Ok(h) => parked.push(h),
                Err(e) => break e,
            }
            assert!(parked.len() <= STACKS, "the stack budget never ran out");
        };
        assert_eq!(spawn_err.kind(), ErrorKind::OutOfMemory, "{spawn_err}");
        assert!(
            spawn_err.to_string().contains("stack"),
            "the error names the stack budget: {spawn_err}"
        );

        // Give everything back; the same runtime serves again.
        gate.open();
        for h in parked {
            h.join().expect("parked G");
        }
        drop(held);
        for i in 0..10 {
            echo_once(&l).unwrap_or_else(|e| panic!("echo {i} after exhaustion: {e}"));
        }
        let hs: Vec<_> = (0..STACKS / 2).map(|i| weft::go!(move || i * 2)).collect();
        let sum: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..STACKS / 2).map(|i| i * 2).sum());
    });
    println!("exhaustion scenario done");
}

#[test]
fn out_of_fds_and_stacks_then_serving_again() {
    const TEST: &str = "out_of_fds_and_stacks_then_serving_again";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
    if scenario().is_some() {
        common::init(2);
        scenario_body();
        return;
    }
    let out = run_child(
        TEST,
        "exhaustion",
        &[("WEFT_MAX_STACKS", &STACKS.to_string())],
    );
    assert!(
        out.status.success() && out.stdout.contains("exhaustion scenario done"),
        "{out}"
    );
}
