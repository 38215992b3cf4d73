//! Running an example program as a child process, for the tests of `examples/` (http_echo,
//! tls_echo, ws_echo, chat, proxy) and the soak test, and what those tests share.
//!
//! [`Example::start`] starts `target/<profile>/examples/NAME --addr 127.0.0.1:0 ARGS...`, waits
//! (bounded) for its one start line `NAME listening on [SCHEME://]HOST:PORT[...]` and parses the
//! address from it, so tests can run in parallel with each other. The binary sits next to the test
//! executable's own `deps/` directory. `cargo test --test X` alone does not build examples, and a
//! binary left from an earlier build may be stale, so [`example_binary`] runs `cargo build
//! --example NAME` (same profile, same target directory) once per test process and example: a
//! no-op when the binary is up to date.
//!
//! Each child gets `PR_SET_PDEATHSIG(SIGKILL)` and is killed by a drop guard, so none survives a
//! failed or aborted test; its stderr is collected and shown by [`Example::fail`].
//!
//! Also here, shared by the example tests:
//! * the constants [`IO_TIMEOUT`], [`TEST_LIMIT`], [`GENEROUS`] and [`SETTLE`];
//! * bounded polls of the example's state: [`Example::wait_fds_at_most`],
//!   [`Example::wait_log_lines`]; its memory: [`Example::reset_peak_rss`],
//!   [`Example::peak_rss_kib`];
//! * [`run_once`]: run the binary to completion (bad flags, `--help`) under a time limit;
//! * client sockets with the test timeouts: [`weft_connect`], [`std_connect`];
//! * deterministic test data: [`fill_pattern`], [`pattern`];
//! * many client Gs: [`run_clients`], [`join_all`] (failures as text, panic messages kept).

use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for an example's start line (a cold, loaded machine may still be linking).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest wait for any single read or write of a test client (every client socket of the
/// example tests has this read and write timeout).
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest an example test may run before its watchdog aborts the process.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// "Promptly", as an upper bound on how long something the example does may take: generous on
/// purpose (a loaded 2-core machine). Lower bounds (a timeout never fires early) stay exact.
pub const GENEROUS: Duration = Duration::from_secs(5);

/// Longest a bounded poll waits for the example to settle (its fds released, its log lines
/// written). A passing test waits a few milliseconds; only a failing one waits this long.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Variables cargo sets for a test executable it runs (besides `CARGO_PKG_*`), from "Environment
/// variables Cargo sets for crates" in the Cargo book.
const SET_FOR_TESTS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_MAKEFLAGS",
    "OUT_DIR",
];

/// `target/<profile>/examples/NAME`, built (`cargo build --example NAME`, same profile and target
/// directory as this test executable) the first time this process asks for it, so that a test
/// never runs a binary older than its source. Cargo makes that a no-op (a fraction of a second)
/// when the binary is up to date; under `cargo test`, which has released its build lock before
/// running the test executables, it does not wait for anything. Panics with cargo's output if the
/// build fails.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    // Held across the build: tests of one process that start the same example wait for one
    // build instead of racing cargo against itself.
    let mut built = lock(BUILT.get_or_init(Default::default));
    if let Some(bin) = built.get(name) {
        return bin.clone();
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/TEST-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test executable path {}", exe.display()))
        .to_path_buf();
    let bin = profile_dir.join("examples").join(name);
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let target_dir = profile_dir.parent().expect("target dir");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--example", name])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    // Not the variables cargo sets for the test executable it runs (`CARGO_MANIFEST_DIR`,
    // `CARGO_PKG_NAME`, ...): build scripts (cc-rs, in ring's) declare `rerun-if-env-changed` on
    // some of them, and cargo compares those with its own environment. Inherited, they would
    // make this build rerun ring's build script and rebuild everything above it, and the next
    // `cargo test` undo it (half a minute each way). The user's settings (`CARGO_PROFILE_*`,
    // `CARGO_HOME`, `RUSTFLAGS`, ...), which the outer cargo saw too, are kept.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_") || SET_FOR_TESTS.contains(&key) {
            cmd.env_remove(key);
        }
    }
    // `target/debug` is the `dev` profile, cargo's default; any other directory is named after
    // its profile (`release`, or a custom one).
    if profile != "debug" {
        cmd.args(["--profile", &profile]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("`cargo build --example {name}` could not run: {e}"));
    assert!(
        out.status.success() && bin.exists(),
        "`cargo build --example {name} --profile {profile}` failed ({}), so {} cannot be \
         tested:\n{}",
        out.status,
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    built.insert(name.to_string(), bin.clone());
    bin
}

/// The command-line contract every example server keeps: `--help` exits 0 and names each of
/// `flags`; each argument list of `bad` exits 2 with stderr starting `NAME: ` and no start line
/// on stdout; an address already in use exits 1 saying it "cannot listen on" it. Returns the
/// stderr of each `bad` run, in order, for checks of the messages themselves.
#[track_caller]
pub fn check_command_line(name: &str, flags: &[&str], bad: &[&[&str]]) -> Vec<String> {
    let help = run_once(name, &["--help"], IO_TIMEOUT);
    assert!(help.status.success(), "{name} --help: {help:?}");
    let usage = String::from_utf8_lossy(&help.stdout);
    for flag in flags {
        assert!(
            usage.contains(flag),
            "{name} --help does not mention {flag}: {usage}"
        );
    }
    let mut errors = Vec::new();
    for args in bad {
        let out = run_once(name, args, IO_TIMEOUT);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {out:?}");
        assert!(
            err.starts_with(&format!("{name}: ")),
            "{name} {args:?}: stderr {err:?}"
        );
        assert!(
            out.stdout.is_empty(),
            "{name} {args:?}: printed a start line"
        );
        errors.push(err);
    }
    // An address in use: a listener of ours holds it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run_once(name, &["--addr", &addr], IO_TIMEOUT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name} --addr {addr} (in use): {out:?}"
    );
    assert!(err.contains("cannot listen on"), "{name}: {err}");
    errors
}

/// Run `target/<profile>/examples/NAME ARGS...` (no `--addr` added; stdin closed) to completion
/// and return its status and output; kill it and panic if it is still running after `limit`. For
/// the command-line tests (`--help`, bad flags, an address in use), which expect it to exit at
/// once.
#[track_caller]
pub fn run_once(name: &str, args: &[&str], limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let bin = example_binary(name);
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: as in `Example::start_with`: `child_setup` makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| child_setup(None));
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    // Both pipes drained by threads, so that a chatty child never blocks on a full pipe.
    let out_thread = drain(child.stdout.take().expect("stdout pipe"));
    let err_thread = drain(child.stderr.take().expect("stderr pipe"));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                // Bounded poll for the child's exit.
                thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = err_thread.join().unwrap_or_default();
                panic!(
                    "{name} {args:?}: still running after {limit:?} (killed); its stderr:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            Err(e) => panic!("{name} {args:?}: try_wait: {e}"),
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// A thread that reads `pipe` to its end and returns what it read.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Runs in the forked child before exec: die with the thread that started us (a test aborted by
/// its watchdog leaves no child behind) and apply the fd limit, if any.
fn child_setup(nofile: Option<libc::rlim_t>) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches no memory of ours; it is
    // async-signal-safe, as required between fork and exec.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(n) = nofile {
        let lim = libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        // SAFETY: `lim` is a valid rlimit that lives across the call; setrlimit only reads it and
        // is async-signal-safe.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A running example, killed when dropped.
pub struct Example {
    name: String,
    child: Child,
    /// The address from the start line.
    pub addr: SocketAddr,
    /// The whole start line, without its newline.
    pub start_line: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Lines the example printed on stdout after its start line.
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

/// How to start an example: [`Example::start`] is the common case.
#[derive(Default)]
pub struct Start<'a> {
    /// Flags after `--addr 127.0.0.1:0`.
    pub args: &'a [&'a str],
    /// `RLIMIT_NOFILE` in the child.
    pub nofile: Option<libc::rlim_t>,
    /// Environment variables for the child.
    pub envs: &'a [(&'a str, &'a str)],
}

impl Example {
    /// Start `NAME --addr 127.0.0.1:0 ARGS...` and wait for its start line.
    pub fn start(name: &str, args: &[&str]) -> Example {
        Example::start_with(
            name,
            Start {
                args,
                ..Start::default()
            },
        )
    }

    /// [`Example::start`] with the options of `how`.
    pub fn start_with(name: &str, how: Start<'_>) -> Example {
        use std::os::unix::process::CommandExt;
        let bin = example_binary(name);
        let mut cmd = Command::new(&bin);
        cmd.args(["--addr", "127.0.0.1:0"])
            .args(how.args)
            .envs(how.envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let nofile = how.nofile;
        // SAFETY: `child_setup` makes only async-signal-safe system calls (prctl, setrlimit) on
        // values it owns; it allocates nothing and takes no lock, so it is sound between fork and
        // exec.
        unsafe {
            cmd.pre_exec(move || child_setup(nofile));
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        // stderr: drained into a buffer (shown when a test fails), so a chatty child never blocks
        // on a full pipe.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr pipe");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lock(&sink).extend_from_slice(&buf[..n]);
            }
        });
        // stdout: the start line, read by a thread so that we wait for it with a timeout; then
        // the later lines are kept.
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out_pipe: ChildStdout = child.stdout.take().expect("stdout pipe");
        let lines = Arc::clone(&stdout_lines);
        thread::spawn(move || {
            let mut r = io::BufReader::new(out_pipe);
            let mut line = String::new();
            let res = r.read_line(&mut line).map(|_| line);
            let _ = tx.send(res);
            for l in r.lines() {
                match l {
                    Ok(l) => lock(&lines).push(l),
                    Err(_) => break,
                }
            }
        });
        let mut ex = Example {
            name: name.to_string(),
            child,
            // Replaced below once the start line is read.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            start_line: String::new(),
            stderr,
            stdout_lines,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) => ex.fail("exited or closed stdout before printing its start line"),
            Ok(Err(e)) => ex.fail(&format!("reading its start line: {e}")),
            Err(_) => ex.fail(&format!("no start line within {START_TIMEOUT:?}")),
        };
        let line = line.trim_end().to_string();
        let prefix = format!("{name} listening on ");
        let Some(rest) = line.strip_prefix(&prefix) else {
            ex.fail(&format!("unexpected start line {line:?}"));
        };
        let token = rest.split_whitespace().next().unwrap_or("");
        let token = token.trim_end_matches(',');
        let addr = token.split_once("://").map_or(token, |(_, a)| a);
        ex.addr = addr
            .parse()
            .unwrap_or_else(|e| ex.fail(&format!("start line {line:?}: address: {e}")));
        ex.start_line = line;
        ex
    }

    /// Kill the example and panic with `msg` and what it wrote on stderr.
    #[track_caller]
    pub fn fail(&mut self, msg: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        panic!(
            "{}: {msg} (status {status:?})\n--- its stderr ---\n{}",
            self.name,
            self.stderr_text()
        );
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the example wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// The complete lines (ended by `\n`) the example wrote on stderr so far, without their
    /// newlines: a line still being written (the pipe is drained by a thread, a line may arrive
    /// in pieces) is left out.
    pub fn stderr_lines(&self) -> Vec<String> {
        let text = self.stderr_text();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_string).collect()
    }

    /// Wait (bounded poll, at most `limit`) until `n` complete stderr lines satisfy `keep`, and
    /// return them; [`fail`](Self::fail) if fewer arrive in time or more than `n` are there. Pass
    /// `|_| true` to check that the example logged exactly `n` lines and nothing else.
    #[track_caller]
    pub fn wait_log_lines(
        &mut self,
        n: usize,
        keep: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let lines: Vec<String> = self
                .stderr_lines()
                .into_iter()
                .filter(|l| keep(l))
                .collect();
            if lines.len() > n || (lines.len() < n && Instant::now() >= deadline) {
                self.fail(&format!(
                    "expected {n} matching stderr line(s), found {} (waited up to {limit:?}): \
                     {lines:#?}",
                    lines.len()
                ));
            }
            if lines.len() == n {
                return lines;
            }
            // Bounded poll for the stderr drain thread.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait (bounded poll, at most `limit`) until the example has at most `n` open fds (its
    /// idle count: every connection's socket released); [`fail`](Self::fail) naming the count
    /// if it does not get there.
    #[track_caller]
    pub fn wait_fds_at_most(&mut self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.fd_count();
            if now <= n {
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "{now} fds still open after {limit:?}, expected at most {n} (its idle count): \
                     a connection's socket or G leaked"
                ));
            }
            // Bounded poll for the example's clean-up.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`fail`](Self::fail) with the number of `failures` and the first few, if there are any
    /// (as collected by [`join_all`] or [`run_clients`]).
    #[track_caller]
    pub fn assert_no_failures(&mut self, failures: &[String]) {
        if !failures.is_empty() {
            self.fail(&format!(
                "{} client(s) failed; the first ones:\n{}",
                failures.len(),
                failures[..failures.len().min(5)].join("\n")
            ));
        }
    }

    /// The example's resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid() as u32, "VmRSS")
    }

    /// The example's peak resident memory (`VmHWM`), in KiB: since it started, or since the
    /// last [`reset_peak_rss`](Self::reset_peak_rss).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid() as u32, "VmHWM")
    }

    /// Reset the example's peak resident memory to what it uses now (writes `5` to
    /// `/proc/PID/clear_refs`, Linux ≥ 4.0), so that [`peak_rss_kib`](Self::peak_rss_kib) then
    /// shows the most it held during what follows, even if it has freed it again. Returns the
    /// resident memory at the reset, in KiB.
    pub fn reset_peak_rss(&self) -> u64 {
        proc_reset_peak_rss(self.pid() as u32)
    }

    /// The lines the example printed on stdout after its start line, so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout_lines).clone()
    }

    /// Send `sig` to the example.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child, which has not been reaped (we own its `Child` and
        // have not waited for it), so the pid cannot belong to another process.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Wait at most `limit` for the example to exit (polling `try_wait`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => self.fail(&format!("still running after {limit:?}")),
                Err(e) => self.fail(&format!("try_wait: {e}")),
            }
        }
    }

    /// The example's user + system CPU time so far, in clock ticks (`/proc/PID/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the command name (which may contain spaces) start at field 3 (state);
        // utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields[11].parse().expect("utime");
        let stime: u64 = fields[12].parse().expect("stime");
        utime + stime
    }

    /// Open file descriptors of the example (`/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        proc_fd_count(self.pid() as u32)
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open file descriptors of process `pid` (`/proc/PID/fd`; 0 if it is gone).
pub fn proc_fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Field `field` (a `... kB` line such as `VmRSS`) of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {path}"))
}

/// [`Example::reset_peak_rss`] for process `pid` (e.g. from inside a G, where the [`Example`] is
/// out of reach): returns its resident memory at the reset, in KiB.
pub fn proc_reset_peak_rss(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").unwrap_or_else(|e| panic!("write {path}: {e}"));
    proc_status_kib(pid, "VmHWM")
}

// ---------------------------------------------------------------------------------------------
// Test clients
// ---------------------------------------------------------------------------------------------

/// Give a weft socket the test clients' read and write timeouts ([`IO_TIMEOUT`]).
pub fn set_io_timeouts(s: &weft::net::TcpStream) -> io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))
}

/// A weft TCP connection to `addr` (call in a G) with `TCP_NODELAY` and the [`IO_TIMEOUT`] read
/// and write timeouts. The error names the step that failed.
pub fn weft_connect(addr: SocketAddr) -> Result<weft::net::TcpStream, String> {
    let s = weft::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    set_io_timeouts(&s).map_err(|e| format!("timeouts: {e}"))?;
    Ok(s)
}

/// A std TCP connection to `addr` (on a plain thread) with `TCP_NODELAY` and the [`IO_TIMEOUT`]
/// read and write timeouts; panics if it cannot connect.
#[track_caller]
pub fn std_connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s
}

/// The message of a G's or thread's panic payload (`&str` or `String`).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    match super::payload_str(p) {
        "" => "(a panic without a message)",
        msg => msg,
    }
}

/// Join every G of `handles` (each a client's result), even after a failure, and return the
/// failures as text: `client I: ERROR` for an `Err`, `client I panicked: MESSAGE` for a panic (I
/// is the position in `handles`). Call inside `weft::run` or a G. (A `Vec`, not an iterator: a
/// lazy `map(spawn)` would start each G only after the previous one was joined.)
pub fn join_all<T>(handles: Vec<weft::JoinHandle<Result<T, String>>>) -> Vec<String> {
    handles
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| match h.join() {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("client {i}: {e}")),
            Err(p) => Some(format!("client {i} panicked: {}", panic_message(&*p))),
        })
        .collect()
}

/// Spawn `n` Gs running `client(0)` ... `client(n - 1)` and [`join_all`] of them. Call inside
/// `weft::run` or a G.
pub fn run_clients<F>(n: usize, client: F) -> Vec<String>
where
    F: Fn(usize) -> Result<(), String> + Send + Sync + 'static,
{
    let client = Arc::new(client);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let client = Arc::clone(&client);
            weft::go!(move || client(i))
        })
        .collect();
    join_all(handles)
}

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

/// SplitMix64's output function: a well-mixed 64-bit hash of `z`.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes `pos..pos + buf.len()` of the deterministic stream `seed`: each 8-byte word is a hash of
/// the seed and its position, so different seeds give different streams, the stream has no short
/// period, and any part of it can be produced (or checked) on its own.
pub fn fill_pattern(seed: u64, pos: usize, buf: &mut [u8]) {
    let mut word = u64::MAX;
    let mut bits = 0;
    for (i, b) in buf.iter_mut().enumerate() {
        let p = (pos + i) as u64;
        if p >> 3 != word {
            word = p >> 3;
            bits = splitmix64(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ word);
        }
        *b = (bits >> ((p & 7) * 8)) as u8;
    }
}

/// The first `len` bytes of stream `seed` ([`fill_pattern`]).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(seed, 0, &mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// Scratch files
// ---------------------------------------------------------------------------------------------

/// A fresh scratch directory under `CARGO_TARGET_TMPDIR`, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// `file` inside the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
