//! The scheduler: Gs (coroutines) run on Ms (OS threads) that hold Ps (processors).
//!
//! This is Go's scheduler (`proc.go`, `runtime2.go`) with Go's names, on stackful `corosensei`
//! coroutines instead of Go's growable stacks. One concept per file:
//!
//! | file              | Go                       | what                                             |
//! |-------------------|--------------------------|--------------------------------------------------|
//! | `g.rs`            | `g`, `_Grunnable`...     | the G and its status                             |
//! | `p.rs`            | `p`                      | run queue, `runnext`, `schedtick`, G free list    |
//! | `m.rs`            | `m`, `mstart`, `schedule`| the OS thread loop, its note (sleep/wake)        |
//! | `runq.rs`         | `runqput/get/steal`      | the lock-free 256-slot ring                      |
//! | `globrunq.rs`     | `globrunqput/get`        | the global run queue under `Sched::lock`         |
//! | `findrunnable.rs` | `findRunnable`, `stealWork` | where an M looks for work, in Go's order      |
//! | `idle.rs`         | `wakep`, `startm`, `stopm`, `handoffp`, `pidleput` | spinning and idle Ms/Ps |
//! | `switch.rs`       | `execute`, `gogo`, `goexit` | the only place that resumes a coroutine       |
//! | `park.rs`         | `gopark`, `goready`, `Gosched` | park/ready: what everything blocks on      |
//! | `newproc.rs`      | `newproc`, `gfget/gfput` | creating Gs, recycling dead Gs and their stacks   |
//! | `context.rs`      | `getg()`                 | "current M/P/G" (thread-locals, read safely)     |
//! | `wake_word.rs`    | (`g.param`, `parkingOnChan`) | one-waiter wake words: park token, join packet |
//! | `waiter.rs`       | (`sudog`)                | a parked G or a blocked plain thread, as a word  |
//! | `inject.rs`       | `injectglist`            | queueing a batch of Gs readied by netpoll        |
//! | `syscall.rs`      | `entersyscall`, `exitsyscall` | `blocking`: lending the P while a call blocks |
//! | `sysmon.rs`       | `sysmon`, `retake`       | the watchdog: polls, retakes Ps, lends spares    |
//!
//! # The worker protocol (spinning and wakeups)
//!
//! An M runs `schedule()` forever: `findrunnable()` → `execute(gp)`. `findrunnable` looks, in
//! order, at: the global queue every `GLOBAL_RUNQ_TICK` (61) ticks for fairness; the local
//! `runnext` and ring; the global queue; the netpoller (non-blocking); then, if it may
//! spin, it *steals* from other Ps (4 rounds over all Ps in random order, half of a victim's ring,
//! `runnext` only in the last round). With nothing found it releases its P and either becomes the
//! one M blocked in `netpoll` (if ops wait or timers are pending) or sleeps (`stopm`).
//!
//! An M looking for work without having found any is **spinning**. We keep at most one M spinning
//! per two busy Ps (`2 * nmspinning < procs - npidle`), so idle Ms do not burn the CPUs the busy
//! ones need. The invariant that makes wakeups reliable (Go's "Worker thread parking/unparking"):
//!
//! > If there is an idle P and runnable work that no M is about to run, some M is spinning.
//!
//! It is kept by three rules:
//! 1. **Submitting work** (`ready`, spawn, a yield that leaves other work queued, an overflow to
//!    the global queue) calls `wakep()` afterwards (skipped when the caller holds the only P: no
//!    P can be idle then): if there is an idle P and no spinning M, start one M spinning
//!    (`startm`). With a spinning M already,
//!    it does nothing: that M will find the work.
//! 2. **A spinning M that finds work** stops spinning and, if it was the last spinner, calls
//!    `wakep()` (`resetspinning`), in case there is more work.
//! 3. **A spinning M that found nothing** releases its P, *then* decrements `nmspinning`, *then*
//!    (after a `fence(SeqCst)`) checks the global queue and every P's run queue again; if it sees
//!    work it takes an idle P and spins again. The order is what matters: a submitter that put
//!    work after our last check sees `nmspinning == 0` (its load comes after our decrement, by
//!    the SeqCst fences on both sides) and calls `wakep` itself. Checking before decrementing
//!    would lose that wakeup. `needspinning` covers the last corner: the re-check finds work but
//!    no idle P, because a non-spinning M is just about to release its P; that M sees the flag
//!    and becomes the spinner instead of sleeping.
//!
//! # The park protocol
//!
//! `park(commit)` switches the G out *first*, and the M then runs `commit(gp)` on its own stack
//! (Go's `gopark(unlockf)`). The commit publishes the G in a wait slot (and unlocks whatever
//! protected that slot). Until the commit runs, nobody can see the G, so nobody can resume it
//! while it is still executing on its stack; once the commit published it, the M forgets it. If
//! the commit returns `false` (the event happened already) the M resumes the G at once. `ready(gp)`
//! puts a parked G into the current P's `runnext` (it runs next and inherits the time slice) and
//! calls `wakep`. See `park.rs`.
//!
//! # Ownership and locks
//!
//! * A P's non-atomic state (its G free list) is touched only by the M holding the P. A P moves
//!   between Ms under `Sched::lock` (`pidleput`/`pidleget`) or through `M::nextp` set under that
//!   lock before the M is woken.
//! * `Sched::lock` (a std `Mutex`, held only on M stacks and plain threads, never across a park)
//!   protects the global queue, the idle P and idle M lists. Lock order, after Go: pollDesc lock →
//!   P timer heap lock → `Sched::lock`; a `Sema`'s queue lock and a channel's lock are leaves
//!   (channel operations wake their peers after unlocking). Timers fire outside the
//!   heap lock, and nothing takes a pollDesc lock while holding `Sched::lock`.
//! * Counters read without the lock are atomics: `npidle`, `runqsize` and `npwait` are written
//!   under the lock where their lists change; `nmspinning` and `needspinning` are changed without
//!   it (CAS in `wakep`, Ms starting and stopping to spin), paired with the SeqCst fences of
//!   rule 3.
//!
//! Alternatives rejected: a single shared queue (contention on every spawn); may's per-worker
//! inbox with round-robin spawning (a spawn costs an eventfd write; no `runnext`); tokio's LIFO
//! slot that is never stolen (a busy worker can sit on a woken task).

pub(crate) mod context;
pub(crate) mod findrunnable;
pub(crate) mod g;
pub(crate) mod globrunq;
pub(crate) mod idle;
pub(crate) mod inject;
pub(crate) mod m;
pub(crate) mod newproc;
pub(crate) mod p;
pub(crate) mod p_status;
pub(crate) mod park;
pub mod runq;
pub(crate) mod switch;
pub(crate) mod syscall;
pub(crate) mod sysmon;
pub(crate) mod waiter;
pub(crate) mod wake_word;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::config::Settings;
use g::GRef;
use m::M;
use p::P;

/// Every this many scheduler ticks a P takes one G from the global queue before its own
/// (Go: the `schedtick%61` fairness check). Prime, so it does not resonate with user patterns.
pub(crate) const GLOBAL_RUNQ_TICK: u32 = 61;

/// How many consecutive `runnext` hand-offs share one time slice. Go bounds such a chain by time
/// (sysmon preempts after 10 ms); without preemption we bound it by count, after which the ring's
/// head runs first and a new tick starts, so two Gs that keep readying or respawning each other
/// cannot starve the ring or the global queue.
pub(crate) const RUNNEXT_INHERIT_MAX: u32 = 16;

/// A coin for `Config::randomize_scheduler`: true with probability 1/`n`. A shared xorshift
/// updated with relaxed loads and stores (races only repeat a number; this is not on any path
/// unless the mode is on).
pub(crate) fn random_one_in(n: u32) -> bool {
    static STATE: AtomicU32 = AtomicU32::new(0x2545_F491);
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    STATE.store(x, Ordering::Relaxed);
    x % n == 0
}

/// The scheduler's global state (Go: `schedt`). One per process, created on first use.
pub(crate) struct Sched {
    /// All Ps: the first `nprocs` are the regular ones (`WEFT_MAXPROCS`), the next `nprocs` are
    /// spares that sysmon lends to the Gs queued behind a CPU hog (`sysmon.rs`). Spares are never
    /// on the idle list; they live in `Locked::pspare` when not lent.
    pub(crate) ps: Box<[P]>,
    /// Number of regular Ps (Go: `gomaxprocs`).
    nprocs: usize,
    /// Cap on live Ms (`Config::max_threads`).
    pub(crate) max_threads: usize,
    /// Ms whose thread is alive. Written under `lock`.
    pub(crate) mlive: AtomicUsize,
    /// Statistics (`introspect/`), off the hot paths: blocking calls that found no P on
    /// return; Ps retaken from blocking calls; CPU hogs noticed; spares lent. (Blocking calls
    /// are counted per P, `P::syscalltick`.)
    pub(crate) syscall_slow: AtomicU64,
    pub(crate) retakes: AtomicU64,
    pub(crate) hogs: AtomicU64,
    pub(crate) lends: AtomicU64,
    /// `WEFT_SCHEDTRACE` period in ms (0: off).
    pub(crate) schedtrace_ms: u64,
    /// Whether SIGQUIT prints a goroutine dump (`Config::dump_on_sigquit`).
    pub(crate) sigquit_dump: bool,
    /// `Config::randomize_scheduler`: shuffle queueing decisions (tests).
    pub(crate) randomize: bool,
    /// Usable bytes of a default stack (Gs with this size are recycled with their stacks).
    pub(crate) default_stack: usize,
    /// The lists below. Never held across a park; a leaf lock.
    lock: Mutex<Locked>,
    /// Length of the global run queue. Written under `lock`, read without it.
    pub(crate) runqsize: AtomicUsize,
    /// Number of Ps on the idle list. Written under `lock`, read without it.
    pub(crate) npidle: AtomicUsize,
    /// Number of spinning Ms. Atomic: incremented by `wakep` (CAS) and by Ms that start spinning.
    pub(crate) nmspinning: AtomicUsize,
    /// Set when a spinning M found work but no idle P for it (see the module doc, rule 3).
    pub(crate) needspinning: AtomicBool,
    /// Length of `Locked::pwait` (Ms that must get a P to finish an unwinding G). Written under
    /// `lock`; read by every M between two Gs, which then hands its P over.
    pub(crate) npwait: AtomicUsize,
    /// Ms created so far (ids).
    pub(crate) mcount: AtomicUsize,
    /// Next G id.
    pub(crate) goidgen: AtomicU64,
    /// Live Gs (spawned and not yet finished).
    pub(crate) ngoroutines: AtomicUsize,
    /// When the network was last polled; 0 while an M is blocked in `netpoll` (Go:
    /// `sched.lastpoll`). Claimed with a swap to 0 by the M that becomes the blocking poller.
    pub(crate) lastpoll: AtomicU64,
    /// When the blocked poller will wake up by itself (0: none or no timeout) (Go:
    /// `sched.pollUntil`).
    pub(crate) poll_until: AtomicU64,
}

/// State under `Sched::lock`.
pub(crate) struct Locked {
    /// The global run queue (Go: `sched.runq`).
    pub(crate) runq: VecDeque<GRef>,
    /// Idle Ps, by index (Go: `sched.pidle`).
    pub(crate) pidle: Vec<usize>,
    /// Idle Ms, asleep in `stopm` (Go: `sched.midle`).
    pub(crate) midle: Vec<&'static M>,
    /// Ms that own a running G but lost their P (a G parked while unwinding), waiting for one.
    pub(crate) pwait: VecDeque<&'static M>,
    /// Dead Gs with default-size stacks, shared by all Ps (Go: `sched.gFree`).
    pub(crate) gfree: Vec<GRef>,
    /// Spare Ps not lent (indices `nprocs..2 * nprocs`).
    pub(crate) pspare: Vec<usize>,
    /// Records of Ms whose thread exited, for reuse by `newm`.
    pub(crate) mfree: Vec<&'static M>,
}

static SCHED: OnceLock<Sched> = OnceLock::new();

/// The scheduler, started on first use with the settings from `Config`/environment.
#[inline]
pub(crate) fn sched() -> &'static Sched {
    match SCHED.get() {
        Some(s) => s,
        None => start(),
    }
}

/// Whether the runtime has been started.
pub(crate) fn started() -> bool {
    SCHED.get().is_some()
}

#[cold]
fn start() -> &'static Sched {
    static SYSMON: Once = Once::new();
    let s = SCHED.get_or_init(|| {
        let cfg: Settings = crate::config::take_for_start();
        crate::stack::init_budget(cfg.max_stacks);
        crate::stack::overflow::install_handler();
        crate::introspect::latency::init();
        let n = cfg.max_procs;
        let ps: Box<[P]> = (0..2 * n).map(P::new).collect();
        Sched {
            nprocs: n,
            max_threads: cfg.max_threads,
            mlive: AtomicUsize::new(0),
            syscall_slow: AtomicU64::new(0),
            retakes: AtomicU64::new(0),
            hogs: AtomicU64::new(0),
            lends: AtomicU64::new(0),
            schedtrace_ms: cfg.schedtrace_ms,
            sigquit_dump: cfg.sigquit_dump,
            randomize: cfg.randomize,
            default_stack: cfg.stack_size,
            lock: Mutex::new(Locked {
                runq: VecDeque::new(),
                pidle: (0..n).rev().collect(),
                midle: Vec::new(),
                pwait: VecDeque::new(),
                gfree: Vec::new(),
                pspare: (n..2 * n).rev().collect(),
                mfree: Vec::new(),
            }),
            runqsize: AtomicUsize::new(0),
            npidle: AtomicUsize::new(n),
            nmspinning: AtomicUsize::new(0),
            needspinning: AtomicBool::new(false),
            npwait: AtomicUsize::new(0),
            mcount: AtomicUsize::new(0),
            goidgen: AtomicU64::new(1),
            ngoroutines: AtomicUsize::new(0),
            lastpoll: AtomicU64::new(crate::time::nanotime()),
            poll_until: AtomicU64::new(0),
            ps,
        }
    });
    SYSMON.call_once(|| sysmon::start(s));
    s
}

impl Sched {
    /// Number of Ps (Go: `gomaxprocs`).
    pub(crate) fn procs(&self) -> usize {
        self.nprocs
    }

    /// Whether P `pp` is a spare (see `ps`).
    pub(crate) fn is_spare(&self, pp: usize) -> bool {
        pp >= self.nprocs
    }

    /// Take the scheduler lock. Callers never park while holding it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic while holding this lock is a runtime bug that already aborted (see m.rs), so
        // poisoning cannot be observed; recover the guard anyway rather than panic again.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A broken runtime invariant: print the cause and abort (Go's `throw`). Never returns, never
/// unwinds through scheduler state.
#[cold]
pub(crate) fn fatal(msg: std::fmt::Arguments<'_>) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "fatal error: weft runtime: {msg}");
    std::process::abort();
}

/// SeqCst load of a scheduler counter (the protocol's fences pair with these loads).
pub(crate) fn load(a: &AtomicUsize) -> usize {
    a.load(Ordering::SeqCst)
}
