//! Running an example program as a child process, for the tests of `examples/` (http_echo,
//! tls_echo, ws_echo, chat, proxy) and the soak test.
//!
//! [`Example::start`] starts `target/<profile>/examples/NAME --addr 127.0.0.1:0 ARGS...`, waits
//! (bounded) for its one start line `NAME listening on [SCHEME://]HOST:PORT[...]` and parses the
//! address from it, so tests can run in parallel with each other. The binary sits next to the test
//! executable's own `deps/` directory; if it is missing (`cargo test --test X` alone does not build
//! examples), it is built once with `cargo build --example NAME` in the same profile.
//!
//! Each child gets `PR_SET_PDEATHSIG(SIGKILL)` and is killed by a drop guard, so none survives a
//! failed or aborted test; its stderr is collected and shown by [`Example::fail`].

use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for an example's start line (a cold, loaded machine may still be linking).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `target/<profile>/examples/NAME`, built once if missing.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
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
    if !bin.exists() {
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--example", name])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null());
        if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "{} not found and `cargo build` could not run: {e}",
                bin.display()
            )
        });
        assert!(
            out.status.success() && bin.exists(),
            "{} not found and `cargo build --example {name} --profile {profile}` failed ({}):\n{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    built.insert(name.to_string(), bin.clone());
    bin
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
