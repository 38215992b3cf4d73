//! `weft::fs` on one P: 10 MiB files written and read back from Gs while other Gs of the same P
//! serve TCP echo traffic on 127.0.0.1, and the error cases (`NotFound`, `AlreadyExists`).
//!
//! One P, so that the fs Gs and the echo Gs share it: every `weft::fs` call is a
//! `weft::blocking` section, and a long one makes sysmon hand the P to another M, which runs the
//! echo Gs until the call returns and its G queues for a P again (Go's `exitsyscall` slow path).
//! The echo traffic is a bounded number of round trips whose every byte is checked; the test
//! asserts that all of it completes and that the files round-trip exactly, never how fast.
//!
//! Each test works in a directory of its own under `std::env::temp_dir()` (pid and test name in
//! its name), removed by a guard on the test's thread even when the test fails.

mod common;
#[allow(unused)] // only the helpers; the TCP cases run in net_tcp_1p / net_tcp_np
#[path = "common/tcp_cases.rs"]
mod tcp_cases;

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use common::{note, run_test, Mode};
use tcp_cases::{echo_until_eof, listener, payload, rd, rd_exact, wr, Rng};
use weft::fs::{File, OpenOptions};
use weft::net::TcpStream;

/// Ps in this binary (see the module doc).
const PROCS: usize = 1;

/// Size of the big files.
const BIG: usize = 10 * 1024 * 1024;

/// Echo clients, and round trips each.
const ECHO_CLIENTS: usize = 4;
const ECHO_ROUNDS: usize = 300;

/// A directory of the test's own, removed (with its contents) when the guard drops.
struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/weft-test-fs-<pid>-<name>`, not yet created (the test creates it with
    /// `weft::fs::create_dir_all`); anything left there by an earlier run of this pid is removed.
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("weft-test-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> PathBuf {
        self.0.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `a == b`, reporting the first differing offset rather than printing megabytes.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes read, {} expected, first difference at {at:?}",
            got.len(),
            want.len()
        );
    }
}

/// 10 MiB of varied content: pseudo-random bytes, with runs of a repeated byte and a text
/// stretch mixed in, so that a chunk written twice or at the wrong offset cannot compare equal.
fn big_content(seed: u64) -> Vec<u8> {
    let mut v = payload(seed, BIG);
    let mut rng = Rng::new(!seed);
    for _ in 0..64 {
        let at = rng.range(0, BIG - 5000);
        let len = rng.range(1, 4096);
        let b = rng.next_u64() as u8;
        v[at..at + len].fill(b);
    }
    let text = b"weft::fs round trip; ";
    for (i, b) in v[BIG / 2..BIG / 2 + 21 * 100].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    v
}

/// A bounded TCP echo workload on 127.0.0.1: one server G (one G per connection, echoing until
/// EOF) and [`ECHO_CLIENTS`] client Gs of [`ECHO_ROUNDS`] verified round trips each. Returns a
/// handle that joins everything and returns the round trips done, and the shared counter.
fn start_echo() -> (weft::JoinHandle<usize>, Arc<AtomicUsize>) {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let rounds = Arc::new(AtomicUsize::new(0));
    let server = weft::spawn(move || {
        let conns: Vec<_> = (0..ECHO_CLIENTS)
            .map(|_| {
                let (s, _) = l.accept().expect("echo server: accept");
                // Echo chunks are smaller than the messages: without NODELAY, Nagle holds the
                // second chunk for the client's delayed ACK (~40 ms a round trip).
                s.set_nodelay(true).expect("echo server: nodelay");
                weft::spawn(move || echo_until_eof(&s, 4096).expect("echo server: echo"))
            })
            .collect();
        conns
            .into_iter()
            .map(|h| h.join().expect("echo connection G"))
            .sum::<u64>()
    });
    let clients: Vec<_> = (0..ECHO_CLIENTS)
        .map(|i| {
            let rounds = Arc::clone(&rounds);
            weft::spawn(move || {
                let c = TcpStream::connect(addr).expect("echo client: connect");
                c.set_nodelay(true).expect("echo client: nodelay");
                let mut rng = Rng::new(1000 + i as u64);
                let mut sent = 0u64;
                for r in 0..ECHO_ROUNDS {
                    let msg = payload((i as u64) << 32 | r as u64, rng.range(1, 8192));
                    wr(&c, &msg).expect("echo client: write");
                    let back = rd_exact(&c, msg.len()).expect("echo client: read");
                    assert_same(&back, &msg, &format!("echo client {i} round {r}"));
                    sent += msg.len() as u64;
                    rounds.fetch_add(1, SeqCst);
                }
                c.shutdown(Shutdown::Write).expect("echo client: shutdown");
                let mut b = [0u8; 1];
                assert_eq!(rd(&c, &mut b).expect("echo client: EOF"), 0);
                sent
            })
        })
        .collect();
    let done = weft::spawn(move || {
        let sent: u64 = clients
            .into_iter()
            .map(|h| h.join().expect("echo client G"))
            .sum();
        let echoed = server.join().expect("echo server G");
        assert_eq!(
            echoed, sent,
            "bytes echoed by the server = bytes the clients sent"
        );
        ECHO_CLIENTS * ECHO_ROUNDS
    });
    (done, rounds)
}

/// Round trip through the free functions: write, read, metadata, copy, rename, remove.
fn free_functions_round_trip(dir: &Path, data: &[u8]) {
    let a = dir.join("free-a.bin");
    weft::fs::write(&a, data).expect("fs::write");
    assert_eq!(
        weft::fs::metadata(&a).expect("fs::metadata").len(),
        BIG as u64
    );
    assert_same(&weft::fs::read(&a).expect("fs::read"), data, "fs::read");

    let b = dir.join("free-b.bin");
    assert_eq!(weft::fs::copy(&a, &b).expect("fs::copy"), BIG as u64);
    let c = dir.join("free-c.bin");
    weft::fs::rename(&b, &c).expect("fs::rename");
    assert_eq!(
        weft::fs::metadata(&b).expect_err("renamed away").kind(),
        ErrorKind::NotFound
    );
    assert_same(
        &weft::fs::read(&c).expect("fs::read copy"),
        data,
        "fs::copy + rename",
    );

    let text = dir.join("free.txt");
    let s: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
    weft::fs::write(&text, &s).expect("fs::write text");
    assert!(weft::fs::read_to_string(&text).expect("fs::read_to_string") == s);

    for p in [&a, &c, &text] {
        weft::fs::remove_file(p).expect("fs::remove_file");
    }
}

/// Round trip through `File`: `write_all` / `read_to_end`, then seeks and `read_exact`s at
/// varied offsets, `&File` reads, `OpenOptions` read+write, `set_len`.
fn file_round_trip(dir: &Path, data: &[u8]) {
    let path = dir.join("file.bin");
    let mut f = File::create(&path).expect("File::create");
    f.write_all(data).expect("File::write_all");
    f.sync_data().expect("File::sync_data");
    assert_eq!(f.metadata().expect("File::metadata").len(), BIG as u64);
    drop(f);

    let mut f = File::open(&path).expect("File::open");
    let mut back = Vec::new();
    assert_eq!(f.read_to_end(&mut back).expect("File::read_to_end"), BIG);
    assert_same(&back, data, "File::read_to_end");
    drop(back);

    let mut rng = Rng::new(77);
    for k in 0..64 {
        let len = rng.range(1, 256 * 1024);
        let at = rng.range(0, BIG - len);
        assert_eq!(f.seek(SeekFrom::Start(at as u64)).expect("seek"), at as u64);
        let mut buf = vec![0u8; len];
        if k % 2 == 0 {
            f.read_exact(&mut buf).expect("File::read_exact");
        } else {
            (&f).read_exact(&mut buf).expect("&File::read_exact");
        }
        assert_same(
            &buf,
            &data[at..at + len],
            &format!("read_exact at {at} (+{len})"),
        );
    }
    // Past the end: read_exact fails with UnexpectedEof, as std's does.
    f.seek(SeekFrom::End(-10)).expect("seek from end");
    let mut buf = [0u8; 20];
    assert_eq!(
        f.read_exact(&mut buf).expect_err("read past EOF").kind(),
        ErrorKind::UnexpectedEof
    );
    drop(f);

    // Overwrite in the middle through OpenOptions, then cut the file short.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("OpenOptions::open");
    let patch = payload(5, 100_000);
    (&f).seek(SeekFrom::Start(1_000_000)).expect("seek");
    (&f).write_all(&patch).expect("&File::write_all");
    f.set_len(2_000_000).expect("File::set_len");
    let mut want = data[..2_000_000].to_vec();
    want[1_000_000..1_100_000].copy_from_slice(&patch);
    (&f).rewind().expect("rewind");
    let mut back = Vec::new();
    (&f).read_to_end(&mut back).expect("&File::read_to_end");
    assert_same(&back, &want, "patched and truncated file");
    drop(f);
    weft::fs::remove_file(&path).expect("remove_file");
}

/// Two Gs round-trip 10 MiB files (one through the free functions, one through `File`) while
/// five other Gs of the same P run 1 200 verified TCP echo round trips on 127.0.0.1.
#[test]
fn round_trip_10mib_while_echo_serves() {
    let dir = TempDir::new("round-trip");
    let d = dir.path();
    run_test(
        PROCS,
        Mode::Shared,
        "round_trip_10mib_while_echo_serves",
        move || {
            weft::run(move || {
                weft::fs::create_dir_all(&d).expect("fs::create_dir_all");
                let (echo, rounds) = start_echo();
                let d1 = d.clone();
                let free = weft::spawn(move || free_functions_round_trip(&d1, &big_content(1)));
                let d2 = d.clone();
                let file = weft::spawn(move || file_round_trip(&d2, &big_content(2)));
                free.join().expect("free-function G");
                file.join().expect("File G");
                let during = rounds.load(SeqCst);
                assert_eq!(
                    echo.join().expect("echo workload"),
                    ECHO_CLIENTS * ECHO_ROUNDS,
                    "every echo round trip completed"
                );
                note(format_args!(
                    "{during} of {} echo round trips were done by the time both fs Gs finished",
                    ECHO_CLIENTS * ECHO_ROUNDS
                ));
                let left: Vec<_> = std::fs::read_dir(&d)
                    .expect("read_dir")
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert!(left.is_empty(), "files left behind: {left:?}");
            });
        },
    );
}

/// Reading, opening, stat-ing or removing a file that does not exist: `NotFound`, from a G.
#[test]
fn missing_file_is_not_found() {
    let dir = TempDir::new("missing");
    let d = dir.path();
    run_test(
        PROCS,
        Mode::Shared,
        "missing_file_is_not_found",
        move || {
            weft::run(move || {
                weft::fs::create_dir_all(&d).expect("fs::create_dir_all");
                let p = d.join("no-such-file");
                let kinds = [
                    ("read", weft::fs::read(&p).map(drop)),
                    ("read_to_string", weft::fs::read_to_string(&p).map(drop)),
                    ("metadata", weft::fs::metadata(&p).map(drop)),
                    ("remove_file", weft::fs::remove_file(&p)),
                    ("rename", weft::fs::rename(&p, d.join("x"))),
                    ("copy", weft::fs::copy(&p, d.join("y")).map(drop)),
                    ("File::open", File::open(&p).map(drop)),
                    (
                        "OpenOptions write without create",
                        OpenOptions::new().write(true).open(&p).map(drop),
                    ),
                ];
                for (what, r) in kinds {
                    let e = r.expect_err(what);
                    assert_eq!(e.kind(), ErrorKind::NotFound, "{what}: {e}");
                }
            });
        },
    );
}

/// `create_new` on a path that exists: `AlreadyExists`, and the file is left untouched.
#[test]
fn create_new_on_existing_is_already_exists() {
    let dir = TempDir::new("create-new");
    let d = dir.path();
    run_test(
        PROCS,
        Mode::Shared,
        "create_new_on_existing_is_already_exists",
        move || {
            weft::run(move || {
                weft::fs::create_dir_all(&d).expect("fs::create_dir_all");
                let p = d.join("exists");
                let mut f = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .expect("first create_new");
                f.write_all(b"original").expect("write");
                drop(f);
                let e = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .expect_err("second create_new");
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                assert_eq!(weft::fs::read(&p).expect("read back"), b"original");
            });
        },
    );
}

/// Outside a coroutine `weft::fs` is `std::fs`: the same calls from the test's own thread.
#[test]
fn plain_thread_calls() {
    let dir = TempDir::new("plain-thread");
    run_test(PROCS, Mode::Shared, "plain_thread_calls", || {
        let d = dir.path();
        weft::fs::create_dir_all(&d).expect("fs::create_dir_all");
        let p = d.join("plain");
        let data = payload(9, 100_000);
        let mut f = File::create(&p).expect("File::create");
        f.write_all(&data).expect("write_all");
        drop(f);
        let mut back = Vec::new();
        File::open(&p)
            .expect("File::open")
            .read_to_end(&mut back)
            .expect("read_to_end");
        assert_same(&back, &data, "plain-thread round trip");
        let std_file: std::fs::File = File::open(&p).expect("File::open").into_std();
        assert_eq!(std_file.metadata().expect("metadata").len(), 100_000);
        weft::fs::remove_file(&p).expect("remove_file");
    });
}
