//! Introspection cross-checked against workloads whose counts are known: `weft::runtime::stats()`,
//! `goroutines()` and `dump()`.
//!
//! Every test runs alone ([`Mode::Exclusive`]) and drives its Gs from the test's plain thread,
//! so the Gs it spawns are the only ones alive and the counters move only because of them:
//! `spawned` and `finished` are checked exactly. Gs are observed parked through bounded
//! `wait_until` loops on `goroutines()` (never a sleep); counters that lag a `join` (a G is
//! counted out a moment after it has published its result) are waited for the same way.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use common::{note, run_test, wait_until, Gate, Mode};
use weft::chan;
use weft::net::{TcpListener, TcpStream};
use weft::runtime::{dump, goroutines, stats, GInfo, GState, Stats, WaitReason};

/// Ps of this binary.
const PROCS: usize = 2;

/// Bound of the wait loops (rounds of `yield_now` on the test's thread).
const ROUNDS: u64 = 10_000_000;

/// Parks for `reason` in `s`.
fn parks(s: &Stats, reason: WaitReason) -> u64 {
    s.parks
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

/// The dump as text.
fn dump_text() -> String {
    let mut out = Vec::new();
    dump(&mut out).expect("dump to a Vec");
    String::from_utf8(out).expect("dump is UTF-8")
}

/// The dump's line for G `id`.
fn dump_line(text: &str, id: u64) -> Option<String> {
    let prefix = format!("goroutine {id} ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .map(str::to_string)
}

/// Wait until G `id` is reported `Waiting` for `reason`; return its info.
fn wait_for_state(id: u64, state: GState, reason: WaitReason) -> GInfo {
    let mut last = None;
    let ok = wait_until(ROUNDS, || {
        last = goroutines().into_iter().find(|g| g.id == id);
        last.as_ref()
            .is_some_and(|g| g.state == state && g.wait_reason == reason)
    });
    assert!(
        ok,
        "G {id} never showed as {state:?}/{reason:?}; last seen: {last:?}"
    );
    last.unwrap()
}

/// Wait until `cond(stats())` holds; return the last snapshot and whether it held.
fn wait_stats(mut cond: impl FnMut(&Stats) -> bool) -> (Stats, bool) {
    let mut last = stats();
    let ok = wait_until(ROUNDS, || {
        last = stats();
        cond(&last)
    });
    (last, ok)
}

/// N named Gs, each blocked in a channel receive: `stats()` counts them waiting, spawned and
/// parked for `ChanRecv`; `goroutines()` and the dump list each by id and name as `chan
/// receive`. Released, they are counted finished (exactly N), and each wakeup adds a sample to
/// the readiness-latency histogram.
#[test]
fn chan_waiters_are_counted() {
    run_test(PROCS, Mode::Exclusive, "chan_waiters_are_counted", || {
        const N: usize = 24;
        let before = stats();
        assert_eq!(before.procs, PROCS);
        let mut senders = Vec::new();
        let mut hs = Vec::new();
        for i in 0..N {
            let (tx, rx) = chan::bounded::<u64>(0);
            senders.push(tx);
            let h = weft::Builder::new()
                .name(format!("chan-waiter-{i}"))
                .spawn(move || rx.recv().expect("value"))
                .expect("spawn");
            hs.push(h);
        }
        let ids: Vec<u64> = hs.iter().map(|h| h.id()).collect();

        let mut listed = Vec::new();
        let parked = wait_until(ROUNDS, || {
            listed = goroutines()
                .into_iter()
                .filter(|g| {
                    ids.contains(&g.id)
                        && g.state == GState::Waiting
                        && g.wait_reason == WaitReason::ChanRecv
                })
                .collect();
            listed.len() == N
        });
        assert!(
            parked,
            "only {} of {N} Gs seen parked in chan receive",
            listed.len()
        );
        let mid = stats();
        assert!(mid.waiting >= N, "stats().waiting = {} < {N}", mid.waiting);
        assert_eq!(
            mid.spawned - before.spawned,
            N as u64,
            "spawned moved by other than {N}"
        );
        assert_eq!(mid.goroutines, before.goroutines + N, "live Gs");
        let chan_parks = parks(&mid, WaitReason::ChanRecv) - parks(&before, WaitReason::ChanRecv);
        assert!(
            chan_parks >= N as u64,
            "ChanRecv parks grew by {chan_parks} < {N}"
        );
        // Every G by id and name, waiting, with a waiting time.
        let text = dump_text();
        for (i, id) in ids.iter().enumerate() {
            let g = listed.iter().find(|g| g.id == *id).expect("listed");
            assert_eq!(g.name.as_deref(), Some(format!("chan-waiter-{i}").as_str()));
            assert_eq!(g.fd, None);
            assert!(g.waiting_for.is_some(), "{g:?}");
            let line = dump_line(&text, *id).unwrap_or_else(|| panic!("G {id} not in:\n{text}"));
            assert!(
                line.starts_with(&format!("goroutine {id} \"chan-waiter-{i}\" [chan receive")),
                "{line}"
            );
        }
        assert!(
            text.lines().next().is_some_and(|l| l.starts_with("weft: ")),
            "{text}"
        );

        // Release them: N wakeups, N finished.
        let lat_before = stats().ready_latency.count();
        for (i, tx) in senders.iter().enumerate() {
            tx.send(i as u64 * 7).expect("send");
        }
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().expect("waiter"), i as u64 * 7);
        }
        let (after, settled) = wait_stats(|s| {
            s.finished >= before.finished + N as u64 && s.goroutines <= before.goroutines
        });
        assert!(
            settled,
            "finished {} -> {}, live {} -> {}",
            before.finished, after.finished, before.goroutines, after.goroutines
        );
        assert_eq!(after.finished - before.finished, N as u64, "finished");
        assert_eq!(after.spawned - before.spawned, N as u64, "spawned");
        assert_eq!(after.goroutines, before.goroutines);
        let lat = &after.ready_latency;
        note(format_args!(
            "{N} chan waiters: latency samples {} -> {}, p50 <= {:?}, p99 <= {:?}, max <= {:?}",
            lat_before,
            lat.count(),
            lat.percentile(0.5),
            lat.percentile(0.99),
            lat.max()
        ));
        assert!(
            lat.count() >= lat_before + N as u64,
            "ready_latency samples {lat_before} -> {} after {N} wakeups",
            lat.count()
        );
        assert!(lat.percentile(0.5) <= lat.max());
        // None of them is listed any more.
        assert!(goroutines().iter().all(|g| !ids.contains(&g.id)));
    });
}

/// A G blocked reading a TCP stream shows as `Waiting` for `IoRead` on that stream's fd, in
/// `goroutines()` and in the dump (`on fd <n>`); the round trip that wakes it is counted as a
/// socket wait and a netpoller wakeup.
#[test]
fn socket_reader_shows_its_fd() {
    run_test(PROCS, Mode::Exclusive, "socket_reader_shows_its_fd", || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        // From the plain thread: connect (the kernel completes the handshake), then accept.
        let client = TcpStream::connect(addr).expect("connect");
        let (conn, _) = listener.accept().expect("accept");
        let fd = conn.as_raw_fd();
        let before = stats();
        assert!(
            before.netpoll_registered >= 3,
            "listener, client and server sockets registered: {}",
            before.netpoll_registered
        );

        let reader = weft::Builder::new()
            .name("sock-reader".into())
            .spawn(move || -> std::io::Result<Vec<u8>> {
                let mut conn = conn;
                let mut buf = [0u8; 4];
                conn.read_exact(&mut buf)?;
                conn.write_all(b"pong")?;
                Ok(buf.to_vec())
            })
            .expect("spawn reader");
        let rid = reader.id();
        let info = wait_for_state(rid, GState::Waiting, WaitReason::IoRead);
        assert_eq!(info.fd, Some(fd), "{info:?}");
        assert_eq!(info.name.as_deref(), Some("sock-reader"));
        let text = dump_text();
        let line = dump_line(&text, rid).unwrap_or_else(|| panic!("reader not in:\n{text}"));
        assert!(
            line.starts_with(&format!(
                "goroutine {rid} \"sock-reader\" [IO wait (read) on fd {fd}"
            )),
            "{line}"
        );
        assert!(line.contains(&format!("on fd {fd}")), "{line}");
        let mid = stats();
        assert!(
            mid.netpoll_waits > before.netpoll_waits,
            "netpoll_waits {} -> {}",
            before.netpoll_waits,
            mid.netpoll_waits
        );
        assert!(mid.waiting >= 1);

        // The round trip, driven by a G too: its read of the answer may park as well.
        let pinger = weft::Builder::new()
            .name("sock-pinger".into())
            .spawn(move || -> std::io::Result<Vec<u8>> {
                let mut client = client;
                client.write_all(b"ping")?;
                let mut buf = [0u8; 4];
                client.read_exact(&mut buf)?;
                Ok(buf.to_vec())
            })
            .expect("spawn pinger");
        assert_eq!(reader.join().expect("reader").expect("read"), b"ping");
        assert_eq!(pinger.join().expect("pinger").expect("ping"), b"pong");
        let after = stats();
        note(format_args!(
            "socket round trip: netpoll waits {} -> {}, wakeups {} -> {}, registered {}",
            before.netpoll_waits,
            after.netpoll_waits,
            before.netpoll_wakeups,
            after.netpoll_wakeups,
            after.netpoll_registered
        ));
        assert!(
            after.netpoll_wakeups > before.netpoll_wakeups,
            "the parked reader was woken, but netpoll_wakeups stayed at {}",
            after.netpoll_wakeups
        );
        assert!(after.netpoll_waits >= mid.netpoll_waits);
        assert!(goroutines().iter().all(|g| g.id != rid));
        drop(listener);
    });
}

/// Each state and several wait reasons at once, with the names from `Builder::name`: a G parked
/// in `weft::park`, one joining it, one waiting for a `sync::Mutex` the test thread holds, one
/// inside a `blocking` call, and a G that lists itself as running.
#[test]
fn states_reasons_and_names() {
    run_test(PROCS, Mode::Exclusive, "states_reasons_and_names", || {
        let before = stats();
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let parker = weft::Builder::new()
            .name("parker".into())
            .spawn(move || {
                g.wait(); // weft::park until opened
                1u32
            })
            .expect("spawn parker");
        let pid = parker.id();
        let joiner = weft::Builder::new()
            .name("joiner".into())
            .spawn(move || parker.join().expect("parker") + 1)
            .expect("spawn joiner");

        let mutex = Arc::new(weft::sync::Mutex::new(0u32));
        let guard = mutex.lock(); // held by the test's plain thread
        let m = mutex.clone();
        let locker = weft::Builder::new()
            .name("locker".into())
            .spawn(move || {
                *m.lock() += 5;
            })
            .expect("spawn locker");

        let (std_tx, std_rx) = std::sync::mpsc::channel::<u32>();
        let in_blocking = weft::Builder::new()
            .name("in-blocking".into())
            .spawn(move || weft::blocking(|| std_rx.recv().expect("std recv")))
            .expect("spawn in-blocking");

        wait_for_state(pid, GState::Waiting, WaitReason::Park);
        wait_for_state(joiner.id(), GState::Waiting, WaitReason::Join);
        wait_for_state(locker.id(), GState::Waiting, WaitReason::Mutex);
        wait_for_state(in_blocking.id(), GState::Blocking, WaitReason::None);
        let mid = stats();
        assert!(mid.in_blocking >= 1, "in_blocking {}", mid.in_blocking);
        assert!(mid.threads_in_blocking >= 1);
        assert!(mid.waiting >= 3, "waiting {}", mid.waiting);
        assert_eq!(mid.goroutines, before.goroutines + 4);

        // A G sees itself running.
        let me = weft::Builder::new()
            .name("self-viewer".into())
            .spawn(|| {
                let id = weft::current_id().expect("id");
                goroutines().into_iter().find(|g| g.id == id)
            })
            .expect("spawn self-viewer");
        let mine = me.join().expect("self-viewer").expect("listed itself");
        assert_eq!(mine.state, GState::Running);
        assert_eq!(mine.name.as_deref(), Some("self-viewer"));
        assert_eq!(mine.wait_reason, WaitReason::None);
        assert_eq!(mine.waiting_for, None);

        let text = dump_text();
        let expect = [
            (pid, "\"parker\" [park"),
            (joiner.id(), "\"joiner\" [join"),
            (locker.id(), "\"locker\" [sync.Mutex.Lock"),
            (
                in_blocking.id(),
                "\"in-blocking\" [syscall: in weft::blocking]",
            ),
        ];
        for (id, what) in expect {
            let line = dump_line(&text, id).unwrap_or_else(|| panic!("G {id} not in:\n{text}"));
            assert!(
                line.starts_with(&format!("goroutine {id} {what}")),
                "want `{what}` in: {line}\n{text}"
            );
        }

        // Let everyone go.
        assert_eq!(gate.open(), 1, "the parker registered with the gate");
        drop(guard);
        std_tx.send(11).expect("std send");
        assert_eq!(joiner.join().expect("joiner"), 2);
        locker.join().expect("locker");
        assert_eq!(*mutex.lock(), 5);
        assert_eq!(in_blocking.join().expect("in-blocking"), 11);
        let (after, settled) = wait_stats(|s| s.goroutines == before.goroutines);
        assert!(
            settled,
            "live Gs {} -> {}",
            before.goroutines, after.goroutines
        );
        assert_eq!(after.spawned - before.spawned, 5);
        assert!(parks(&after, WaitReason::Park) > parks(&before, WaitReason::Park));
        assert!(parks(&after, WaitReason::Join) > parks(&before, WaitReason::Join));
        assert!(parks(&after, WaitReason::Mutex) > parks(&before, WaitReason::Mutex));
        assert!(after.blocking_calls > before.blocking_calls);
    });
}
