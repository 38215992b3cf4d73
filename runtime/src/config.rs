//! Process-wide settings, fixed when the runtime starts (Go: `GOMAXPROCS` and friends).
//!
//! Sources, strongest first: a [`Config::apply`] call made before the runtime starts, then the
//! environment (`WEFT_MAXPROCS`, `WEFT_STACK_SIZE`, `WEFT_MAX_STACKS`, `WEFT_MAX_THREADS`,
//! `WEFT_SCHEDTRACE`, `WEFT_SIGQUIT_DUMP`, `WEFT_RANDOMIZE_SCHED`), then the defaults (one P per
//! available CPU, 256 KiB stacks, a stack budget derived from `vm.max_map_count`, at most 10 000
//! Ms, no trace, SIGQUIT left alone, the scheduler's own order). The runtime starts on first use
//! (the first spawn, `run`, `max_procs`...); after that the settings are fixed.

use std::io;
use std::sync::Mutex;

use crate::stack::{round_stack_size, DEFAULT_STACK_SIZE, MAX_STACK_SIZE};

/// Upper bound on the number of Ps (Go: `_MaxGomaxprocs` is 1024 too).
pub const MAX_PROCS_LIMIT: usize = 1024;

/// Settings the runtime starts with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) max_procs: usize,
    pub(crate) stack_size: usize,
    pub(crate) max_stacks: Option<usize>,
    pub(crate) max_threads: usize,
    pub(crate) schedtrace_ms: u64,
    pub(crate) sigquit_dump: bool,
    pub(crate) randomize: bool,
}

/// Default cap on Ms (OS threads running Gs or blocked in `blocking`); Go aborts at 10 000.
pub const DEFAULT_MAX_THREADS: usize = 10_000;

/// What `Config::apply` stored, and whether the runtime has read it already.
struct Pending {
    config: Config,
    started: bool,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    config: Config {
        max_procs: None,
        stack_size: None,
        max_stacks: None,
        max_threads: None,
        schedtrace_ms: None,
        sigquit_dump: None,
        randomize: None,
    },
    started: false,
});

/// Runtime settings to apply before the runtime starts.
///
/// ```
/// // Must run before anything else starts the runtime in this process.
/// weft_runtime::Config::new().max_procs(2).stack_size(128 * 1024).apply().unwrap();
/// assert_eq!(weft_runtime::max_procs(), 2);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    max_procs: Option<usize>,
    stack_size: Option<usize>,
    max_stacks: Option<usize>,
    max_threads: Option<usize>,
    schedtrace_ms: Option<u64>,
    sigquit_dump: Option<bool>,
    randomize: Option<bool>,
}

impl Config {
    /// Settings that change nothing (environment and defaults apply).
    pub fn new() -> Config {
        Config::default()
    }

    /// Number of Ps, i.e. how many Gs run in parallel (Go: `GOMAXPROCS`; env `WEFT_MAXPROCS`).
    /// Default: the number of available CPUs.
    pub fn max_procs(mut self, n: usize) -> Config {
        self.max_procs = Some(n);
        self
    }

    /// Default usable stack size of a G in bytes (env `WEFT_STACK_SIZE`; default 256 KiB).
    /// Rounded up to whole pages and to the 16 KiB floor; at most 1 GiB.
    pub fn stack_size(mut self, bytes: usize) -> Config {
        self.stack_size = Some(bytes);
        self
    }

    /// How many guarded stacks may be mapped at once (env `WEFT_MAX_STACKS`). Default: what
    /// `vm.max_map_count` leaves room for, about 30 000 with the kernel's default of 65530.
    pub fn max_stacks(mut self, n: usize) -> Config {
        self.max_stacks = Some(n);
        self
    }

    /// Most Ms (OS threads that run Gs or sit in [`blocking`](crate::blocking) calls) alive at
    /// once (env `WEFT_MAX_THREADS`; default 10 000, and never fewer than `max_procs + 1`). At
    /// the cap, a P whose M is stuck in a blocking call stays idle until some M comes back.
    /// Ms idle for 10 s beyond `max_procs + 1` exit.
    pub fn max_threads(mut self, n: usize) -> Config {
        self.max_threads = Some(n);
        self
    }

    /// Print a one-line scheduler summary to stderr every `ms` milliseconds, and every CPU hog
    /// sysmon notices (env `WEFT_SCHEDTRACE=<ms>`; Go: `GODEBUG=schedtrace`). 0: off.
    pub fn schedtrace(mut self, ms: u64) -> Config {
        self.schedtrace_ms = Some(ms);
        self
    }

    /// Print a goroutine dump to stderr on SIGQUIT and go on running, instead of the default
    /// action (terminate with a core dump) (env `WEFT_SIGQUIT_DUMP=1`). Off by default, since it
    /// replaces the process's SIGQUIT disposition.
    pub fn dump_on_sigquit(mut self, on: bool) -> Config {
        self.sigquit_dump = Some(on);
        self
    }

    /// Shuffle scheduling decisions to shake out code that depends on one order (env
    /// `WEFT_RANDOMIZE_SCHED=1`; Go: `randomizeScheduler`, on under `-race`): a readied or new G
    /// skips `runnext` half the time and goes to the global queue one time in eight, and the
    /// global queue is checked before the local one one time in eight. For tests; it costs
    /// locality.
    pub fn randomize_scheduler(mut self, on: bool) -> Config {
        self.randomize = Some(on);
        self
    }

    /// Store these settings for the runtime to start with.
    ///
    /// # Errors
    /// `InvalidInput` for a value out of range (`max_procs` 0 or above 1024, `stack_size` above
    /// 1 GiB, `max_stacks` 0);
    /// `AlreadyExists` when the runtime is already running, since the settings are fixed then.
    pub fn apply(self) -> io::Result<()> {
        if let Some(n) = self.max_procs {
            if n == 0 || n > MAX_PROCS_LIMIT {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("weft: max_procs must be between 1 and {MAX_PROCS_LIMIT}, got {n}"),
                ));
            }
        }
        if let Some(b) = self.stack_size {
            round_stack_size(b)?;
        }
        if self.max_threads == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "weft: max_threads must be at least 1",
            ));
        }
        if self.max_stacks == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "weft: max_stacks must be at least 1",
            ));
        }
        let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if p.started {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "weft: the runtime is already running; Config::apply must be called before the first spawn",
            ));
        }
        let c = &mut p.config;
        c.max_procs = self.max_procs.or(c.max_procs);
        c.stack_size = self.stack_size.or(c.stack_size);
        c.max_stacks = self.max_stacks.or(c.max_stacks);
        c.max_threads = self.max_threads.or(c.max_threads);
        c.schedtrace_ms = self.schedtrace_ms.or(c.schedtrace_ms);
        c.sigquit_dump = self.sigquit_dump.or(c.sigquit_dump);
        c.randomize = self.randomize.or(c.randomize);
        Ok(())
    }
}

/// Read a positive integer from the environment; warn and ignore anything else.
fn env_usize(name: &str, max: usize) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 && n <= max => Some(n),
        _ => {
            eprintln!("weft: ignoring {name}={v:?}: expected an integer between 1 and {max}");
            None
        }
    }
}

/// The settings to start with; marks the runtime as started so later `apply` calls fail.
pub(crate) fn take_for_start() -> Settings {
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    p.started = true;
    let c = p.config;
    let max_procs = c
        .max_procs
        .or_else(|| env_usize("WEFT_MAXPROCS", MAX_PROCS_LIMIT))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(MAX_PROCS_LIMIT);
    let stack_size = c
        .stack_size
        .or_else(|| env_usize("WEFT_STACK_SIZE", MAX_STACK_SIZE))
        .and_then(|b| round_stack_size(b).ok())
        .unwrap_or(DEFAULT_STACK_SIZE);
    let max_stacks = c
        .max_stacks
        .or_else(|| env_usize("WEFT_MAX_STACKS", usize::MAX));
    let max_threads = c
        .max_threads
        .or_else(|| env_usize("WEFT_MAX_THREADS", usize::MAX))
        .unwrap_or(DEFAULT_MAX_THREADS)
        .max(max_procs + 1);
    let schedtrace_ms = c.schedtrace_ms.unwrap_or_else(|| {
        std::env::var("WEFT_SCHEDTRACE")
            .ok()
            .and_then(|_| env_usize("WEFT_SCHEDTRACE", usize::MAX))
            .map_or(0, |n| n as u64)
    });
    let sigquit_dump = c
        .sigquit_dump
        .unwrap_or_else(|| std::env::var("WEFT_SIGQUIT_DUMP").is_ok_and(|v| v.trim() == "1"));
    let randomize = c
        .randomize
        .unwrap_or_else(|| std::env::var("WEFT_RANDOMIZE_SCHED").is_ok_and(|v| v.trim() == "1"));
    Settings {
        max_procs,
        stack_size,
        max_stacks,
        max_threads,
        schedtrace_ms,
        sigquit_dump,
        randomize,
    }
}
