//! Looking inside the runtime: [`stats`], [`goroutines`], [`dump`], the `WEFT_SCHEDTRACE` line,
//! the SIGQUIT dump and the deadlock report (Go: `runtime.NumGoroutine`, `runtime/debug`,
//! `GODEBUG=schedtrace`, the SIGQUIT traceback and `checkdead`).
//!
//! | file           | what                                                         |
//! |----------------|--------------------------------------------------------------|
//! | `allgs.rs`     | the registry of every G struct (Go: `allgs`)                 |
//! | `latency.rs`   | the readiness-to-run latency histogram                       |
//! | `checkdead.rs` | "all goroutines are asleep - deadlock!"                      |
//! | this file      | `stats()`, `goroutines()`, `dump()`, schedtrace, SIGQUIT     |
//!
//! Everything here reads counters and atomics that the scheduler maintains anyway; nothing
//! stops the world. A snapshot is therefore approximate under load (a G may change state while
//! it is being counted), but every number is exact when the runtime is quiet.
//!
//! Wait reasons and times: every park records why (`WaitReason`, with the fd for socket waits)
//! and when, on a coarse clock that sysmon advances on each tick (so "how long" is accurate to a
//! few ms; reading it costs a park one load).

pub(crate) mod allgs;
pub(crate) mod checkdead;
pub mod latency;

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::sched::g::{GRef, G_BLOCKED_OS, G_RUNNABLE, G_RUNNING, G_SYSCALL, G_WAITING};
use crate::sched::{load, sched};
use crate::time::nanotime;
use crate::wait_reason::WaitReason;
pub use latency::LatencyHistogram;

/// The coarse clock (ns, `nanotime`'s scale), advanced by sysmon.
static COARSE_NOW: AtomicU64 = AtomicU64::new(0);

/// The coarse clock: `nanotime()` as of sysmon's last tick.
#[inline]
pub(crate) fn coarse_now() -> u64 {
    COARSE_NOW.load(Ordering::Relaxed)
}

/// Advance the coarse clock (sysmon, on every tick).
pub(crate) fn tick_coarse(now: u64) {
    COARSE_NOW.store(now, Ordering::Relaxed);
}

/// Count `gp`'s park by its reason on P `pp`, held by the calling M (statistics; on the M's
/// stack after the switch, so no thread-local lookup on the G's side).
#[inline]
pub(crate) fn count_park(pp: &crate::sched::p::P, gp: GRef) {
    let r = gp.g().wait_reason.load(Ordering::Relaxed) as usize;
    if let Some(c) = pp.nparks.get(r) {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Gs woken by the netpoller, in total (statistics).
pub(crate) static NETPOLL_WAKEUPS: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the scheduler's state and counters. See [`stats`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Ps (`max_procs`).
    pub procs: usize,
    /// Ps on the idle list.
    pub idle_procs: usize,
    /// Spare Ps lent right now to Gs queued behind a CPU hog.
    pub lent_procs: usize,
    /// Ms (OS threads of the runtime) alive.
    pub threads: usize,
    /// Ms asleep with nothing to do.
    pub idle_threads: usize,
    /// Ms spinning (looking for work while holding a P).
    pub spinning_threads: usize,
    /// Ms inside a [`blocking`](crate::blocking) call right now (one per G in `in_blocking`).
    pub threads_in_blocking: usize,
    /// Gs in the global run queue.
    pub global_queue: usize,
    /// Gs in each P's local run queue (spares included, after the regular Ps).
    pub local_queues: Vec<usize>,
    /// Live Gs (spawned, not finished).
    pub goroutines: usize,
    /// Gs waiting in a run queue.
    pub runnable: usize,
    /// Gs running on an M.
    pub running: usize,
    /// Gs parked (waiting for a channel, a lock, I/O, a timer...).
    pub waiting: usize,
    /// Gs inside a `blocking` call.
    pub in_blocking: usize,
    /// Gs spawned since the start.
    pub spawned: u64,
    /// Gs finished since the start.
    pub finished: u64,
    /// Parks by reason since the start (`(reason, count)`, non-zero ones).
    pub parks: Vec<(WaitReason, u64)>,
    /// Socket waits (parks for reading or writing) since the start.
    pub netpoll_waits: u64,
    /// Gs the netpoller readied since the start.
    pub netpoll_wakeups: u64,
    /// Sockets registered with the netpoller now.
    pub netpoll_registered: usize,
    /// Gs stolen from another P's queue since the start.
    pub steals: u64,
    /// `blocking` calls since the start.
    pub blocking_calls: u64,
    /// Ps sysmon took from Ms stuck in a `blocking` call.
    pub blocking_handoffs: u64,
    /// `blocking` calls that found no P on return and queued their G.
    pub blocking_requeued: u64,
    /// CPU hogs sysmon noticed (a G running 10 ms without switching out).
    pub hogs: u64,
    /// Spare Ps lent because of hogs, since the start.
    pub spares_lent: u64,
    /// Guarded stacks mapped now (live Gs and cached dead ones).
    pub mapped_stacks: usize,
    /// Dead Gs kept with their stacks for reuse (the stack pool).
    pub cached_stacks: usize,
    /// Time from `ready` to running, sampled over one wakeup in 8 of each G since the start
    /// (each G's first wakeup included), as Go's `/sched/latencies:seconds` does.
    pub ready_latency: LatencyHistogram,
}

/// A snapshot of the runtime's counters (starts the runtime).
///
/// ```
/// let s = weft_runtime::run(|| {
///     let hs: Vec<_> = (0..10).map(|_| weft_runtime::go!(|| ())).collect();
///     for h in hs {
///         h.join().unwrap();
///     }
///     weft_runtime::introspect::stats()
/// });
/// assert!(s.spawned >= 11);
/// assert!(s.procs >= 1);
/// ```
pub fn stats() -> Stats {
    let s = sched();
    let mut st = Stats {
        procs: s.procs(),
        ..Stats::default()
    };
    {
        let l = s.lock();
        st.idle_procs = l.pidle.len();
        st.lent_procs = s.procs() - l.pspare.len();
        st.idle_threads = l.midle.len();
        st.global_queue = l.runq.len();
    }
    st.threads = s.mlive.load(Ordering::Relaxed);
    st.spinning_threads = load(&s.nmspinning);
    let mut parks = [0u64; WaitReason::COUNT];
    for p in s.ps.iter() {
        st.local_queues.push(p.runq.len());
        st.steals += p.nsteal.load(Ordering::Relaxed);
        st.blocking_calls += u64::from(p.syscalltick.load(Ordering::Relaxed));
        for (sum, c) in parks.iter_mut().zip(&p.nparks) {
            *sum += c.load(Ordering::Relaxed);
        }
    }
    st.parks = parks
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| (WaitReason::from_u8(i as u8), c))
        .collect();
    st.netpoll_waits = parks[WaitReason::IoRead as usize] + parks[WaitReason::IoWrite as usize];
    st.netpoll_wakeups = NETPOLL_WAKEUPS.load(Ordering::Relaxed);
    st.netpoll_registered = crate::netpoll::registered();
    st.goroutines = s.ngoroutines.load(Ordering::Relaxed);
    st.spawned = s.goidgen.load(Ordering::Relaxed) - 1;
    st.finished = st.spawned.saturating_sub(st.goroutines as u64);
    allgs::for_each(|gp| match gp.status() {
        G_RUNNABLE => st.runnable += 1,
        G_RUNNING => st.running += 1,
        G_WAITING | G_BLOCKED_OS => st.waiting += 1,
        G_SYSCALL => st.in_blocking += 1,
        _ => st.cached_stacks += 1,
    });
    st.threads_in_blocking = st.in_blocking;
    st.blocking_handoffs = s.retakes.load(Ordering::Relaxed);
    st.blocking_requeued = s.syscall_slow.load(Ordering::Relaxed);
    st.hogs = s.hogs.load(Ordering::Relaxed);
    st.spares_lent = s.lends.load(Ordering::Relaxed);
    st.mapped_stacks = crate::stack::mapped_stacks();
    st.ready_latency = latency::collect(&s.ps);
    st
}

/// What a G is doing, as [`goroutines`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GState {
    /// In a run queue.
    Runnable,
    /// Running on an M.
    Running,
    /// Parked; see [`GInfo::wait_reason`].
    Waiting,
    /// Inside a [`blocking`](crate::blocking) call.
    Blocking,
}

/// One live G, as [`goroutines`] reports it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GInfo {
    /// Its id.
    pub id: u64,
    /// Its name (`Builder::name`).
    pub name: Option<String>,
    /// What it does.
    pub state: GState,
    /// Why it waits (`WaitReason::None` unless `Waiting`).
    pub wait_reason: WaitReason,
    /// The socket it waits on, for I/O waits.
    pub fd: Option<i32>,
    /// How long it has been waiting (to within sysmon's tick), for `Waiting`.
    pub waiting_for: Option<Duration>,
}

impl std::fmt::Display for GInfo {
    /// Go's dump header: `goroutine 17 "name" [chan receive, 1520 ms]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "goroutine {}", self.id)?;
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        match self.state {
            GState::Runnable => write!(f, " [runnable]"),
            GState::Running => write!(f, " [running]"),
            GState::Blocking => write!(f, " [syscall: in weft::blocking]"),
            GState::Waiting => {
                write!(f, " [{}", self.wait_reason)?;
                if let Some(fd) = self.fd {
                    write!(f, " on fd {fd}")?;
                }
                if let Some(d) = self.waiting_for {
                    write!(f, ", {} ms", d.as_millis())?;
                }
                write!(f, "]")
            }
        }
    }
}

/// Every live G: id, name, state, wait reason and how long it has waited (Go: the goroutine
/// part of a SIGQUIT traceback, without stacks).
///
/// ```
/// use weft_runtime::introspect::{goroutines, GState};
/// use weft_runtime::wait_reason::WaitReason;
///
/// weft_runtime::run(|| {
///     let (tx, rx) = weft_runtime::chan::bounded::<()>(0);
///     let g = weft_runtime::Builder::new()
///         .name("waiter".into())
///         .spawn(move || rx.recv())
///         .unwrap();
///     while !goroutines().iter().any(|i| i.wait_reason == WaitReason::ChanRecv) {
///         weft_runtime::yield_now();
///     }
///     let me = goroutines().into_iter().find(|i| i.id == g.id()).unwrap();
///     assert_eq!(me.state, GState::Waiting);
///     assert_eq!(me.name.as_deref(), Some("waiter"));
///     drop(tx);
///     let _ = g.join();
/// });
/// ```
pub fn goroutines() -> Vec<GInfo> {
    let now = coarse_now().max(1);
    let mut out = Vec::new();
    allgs::for_each(|gp| {
        if let Some(info) = info(gp, now) {
            out.push(info);
        }
    });
    out.sort_by_key(|i| i.id);
    out
}

fn info(gp: GRef, now: u64) -> Option<GInfo> {
    let g = gp.g();
    let state = match gp.status() {
        G_RUNNABLE => GState::Runnable,
        G_RUNNING => GState::Running,
        G_WAITING | G_BLOCKED_OS => GState::Waiting,
        G_SYSCALL => GState::Blocking,
        _ => return None,
    };
    let reason = if state == GState::Waiting {
        WaitReason::from_u8(g.wait_reason.load(Ordering::Relaxed))
    } else {
        WaitReason::None
    };
    let fd = matches!(reason, WaitReason::IoRead | WaitReason::IoWrite)
        .then(|| g.wait_detail.load(Ordering::Relaxed) as i32);
    let since = g.wait_since.load(Ordering::Relaxed);
    let waiting_for =
        (state == GState::Waiting).then(|| Duration::from_nanos(now.saturating_sub(since)));
    Some(GInfo {
        id: gp.id(),
        name: allgs::name_of(gp),
        state,
        wait_reason: reason,
        fd,
        waiting_for,
    })
}

/// Write every live G, one line each, to `w` (what SIGQUIT prints with
/// `Config::dump_on_sigquit`).
///
/// ```
/// let out = weft_runtime::run(|| {
///     let mut out = Vec::new();
///     weft_runtime::introspect::dump(&mut out).unwrap();
///     out
/// });
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("[running]"));
/// ```
pub fn dump(w: &mut impl Write) -> io::Result<()> {
    let gs = goroutines();
    writeln!(w, "weft: {} goroutines", gs.len())?;
    for g in &gs {
        writeln!(w, "{g}")?;
    }
    Ok(())
}

/// The `WEFT_SCHEDTRACE` line (Go: `schedtrace`).
pub(crate) fn schedtrace_line() -> String {
    let st = stats();
    let start = START.get_or_init(nanotime);
    let ms = nanotime().saturating_sub(*start) / 1_000_000;
    let local: Vec<String> = st.local_queues[..st.procs]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let lat = &st.ready_latency;
    format!(
        "SCHED {ms}ms: procs={} idleprocs={} lentprocs={} threads={} spinningthreads={} \
         idlethreads={} inblocking={} runqueue={} [{}] goroutines={} runnable={} waiting={} \
         hogs={} latency p50<={:?} p99<={:?} max<={:?}",
        st.procs,
        st.idle_procs,
        st.lent_procs,
        st.threads,
        st.spinning_threads,
        st.idle_threads,
        st.threads_in_blocking,
        st.global_queue,
        local.join(" "),
        st.goroutines,
        st.runnable,
        st.waiting,
        st.hogs,
        lat.percentile(0.5),
        lat.percentile(0.99),
        lat.max(),
    )
}

static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Print the `WEFT_SCHEDTRACE` line to stderr (sysmon).
pub(crate) fn print_schedtrace() {
    let line = schedtrace_line();
    let _ = writeln!(io::stderr(), "{line}");
}

/// Whether the SIGQUIT dump thread runs (it is one of the runtime's own threads).
pub(crate) static SIGQUIT_THREAD: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Install the SIGQUIT handler: a thread that prints the dump on every SIGQUIT and lets the
/// process go on (`Config::dump_on_sigquit`). The signal handler itself only writes to a pipe
/// (signal-hook's self-pipe); the dump runs on the thread, never in the handler.
pub(crate) fn install_sigquit_dump() {
    let mut signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGQUIT]) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(io::stderr(), "weft: cannot install the SIGQUIT dump: {e}");
            return;
        }
    };
    let r = std::thread::Builder::new()
        .name("weft-sigquit".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            for _ in signals.forever() {
                let mut err = io::stderr().lock();
                let _ = writeln!(err, "SIGQUIT: weft goroutine dump");
                let _ = dump(&mut err);
                let _ = writeln!(err, "{}", schedtrace_line());
            }
        });
    match r {
        Ok(_) => SIGQUIT_THREAD.store(true, Ordering::SeqCst),
        Err(e) => {
            let _ = writeln!(io::stderr(), "weft: cannot start the SIGQUIT thread: {e}");
        }
    }
}
