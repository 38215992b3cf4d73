//! Stress: random trees of spawn / join / detach / yield / park-unpark / panic, each result
//! checked against a reference model.
//!
//! proptest generates a forest of [`Tree`]s. Every node is a G that runs its list of [`Op`]s;
//! the model ([`model`]) computes, without the runtime, what every node must return: a value
//! folded from its id, its `Work` steps and the outcomes of the children it joined, or its planned
//! panic. At runtime every `join` is checked against the model *inside* the joining G, so a
//! wrong result is caught where it happens; and after the forest finished, every node must have
//! run exactly once (detached children included), except those its parent never reached.
//!
//! A node may also hold [`Guard`]s: values whose destructor blocks (joins a pending child, spawns
//! and joins a new one, parks until a helper G unparks it, unparks itself and parks, yields).
//! Guards are dropped when the node returns or, if it panics after creating them, while it
//! unwinds: a park while unwinding, which the runtime serves by blocking the M's thread and
//! handing its P off (`docs/DESIGN.md`, "Never park while unwinding"). The model expects the
//! node's planned panic all the same, and every child a guard joins is checked against the model
//! in the destructor; the destructor also checks that `std::thread::panicking()` is what the plan
//! says and that an unwinding G never changes OS thread. Some guards unwind inside
//! `catch_unwind`: the node then goes on, and must no longer be panicking, also after a yield.
//!
//! The same property runs on 2 Ps in this process and on 1 P in a child process.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use common::{
    gettid, payload_str, run_child, scenario, wait_until, watchdog, EXPECTED_PANIC, TEST_TIMEOUT,
};

/// Generated cases per run (sizes are bounded: a run takes well under a second). Set
/// `PROPTEST_CASES` for a longer soak.
const CASES: u32 = 64;

/// Upper bound of `yield_now` rounds while waiting for detached Gs (the watchdog is the limit).
const ROUNDS: u64 = 100_000_000;

/// One step of a G.
#[derive(Debug, Clone)]
enum Op {
    /// Spawn a child running this tree; its handle goes to the back of the pending list.
    Spawn(Tree),
    /// Spawn this many children running this (leaf) tree, one after another.
    Fan(u8, Tree),
    /// Join the newest pending child and check its outcome.
    JoinNewest,
    /// Join the oldest pending child and check its outcome.
    JoinOldest,
    /// Drop the newest pending handle: the child runs on, detached.
    Detach,
    /// `weft::yield_now()`.
    Yield,
    /// Park until a [`Waker`] sets a flag and unparks us.
    Park(Waker),
    /// Unpark ourselves, then park: returns at once (the token is already there).
    UnparkSelf,
    /// Fold a number into the result.
    Work(u16),
    /// Panic here (remaining steps are skipped; pending children are detached by the unwinding).
    Panic,
    /// Create a [`Guard`] running these actions in its destructor, held until the node returns or
    /// unwinds, and maybe panic right after creating it (the destructor runs while unwinding).
    Guard {
        acts: Vec<GuardOp>,
        panic: GuardPanic,
    },
}

/// Whether a node panics right after creating a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardPanic {
    /// No: the guard is dropped when the node returns (or unwinds from a later panic).
    No,
    /// Yes, a planned panic: the node ends with it.
    Unwind,
    /// Yes, inside `catch_unwind`, which drops the guard while unwinding and catches the panic;
    /// the node then goes on, yields (a switch is allowed again) and checks it is not panicking.
    Caught,
}

/// What a [`Guard`]'s destructor does, in order.
#[derive(Debug, Clone)]
enum GuardOp {
    /// Take the newest pending child (when the guard is created) and join it in the destructor.
    JoinNewest,
    /// Take the oldest pending child (when the guard is created) and join it in the destructor.
    JoinOldest,
    /// Spawn a child running this tree in the destructor and join it there.
    SpawnJoin(Tree),
    /// `weft::yield_now()` (while unwinding it yields the OS thread, never switches).
    Yield,
    /// Park until a [`Waker`] sets a flag and unparks us.
    Park(Waker),
    /// Unpark ourselves, then park: returns at once.
    UnparkSelf,
}

/// Who unparks a G that parks.
#[derive(Debug, Clone, Copy)]
enum Waker {
    /// A helper G spawned just before parking, which yields this many times first.
    Helper(u8),
    /// The forest's service G, if it has one (else a helper): a G that serves wakeup requests
    /// in a `yield_now` loop for the whole case, so it keeps a P busy and wakes Gs from it.
    Service,
    /// A plain OS thread (no P: `ready` goes through the global queue or the blocked M's note).
    Thread,
}

/// What a G runs. Children left pending at the end are joined oldest first.
#[derive(Debug, Clone)]
struct Tree {
    ops: Vec<Op>,
}

/// What a G ends with, as `join` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Value(u64),
    Panicked(String),
}

/// A tree with every node numbered (pre-order) and its outcome precomputed by the model.
#[derive(Debug)]
struct Plan {
    id: usize,
    steps: Vec<Step>,
    expected: Outcome,
}

#[derive(Debug)]
enum Step {
    Spawn(Arc<Plan>),
    JoinNewest,
    JoinOldest,
    Detach,
    Yield,
    Park(Waker),
    UnparkSelf,
    Work(u16),
    Panic,
    Guard {
        acts: Vec<GuardStep>,
        panic: GuardPanic,
        /// Whether the guard is dropped while unwinding (this or a later step panics).
        unwinding: bool,
    },
}

#[derive(Debug)]
enum GuardStep {
    JoinNewest,
    JoinOldest,
    SpawnJoin(Arc<Plan>),
    Yield,
    Park(Waker),
    UnparkSelf,
}

fn seed(id: usize) -> u64 {
    (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn work(acc: u64, n: u16) -> u64 {
    acc.rotate_left(7).wrapping_add(u64::from(n) * 31 + 1)
}

fn fold(acc: u64, child: &Outcome) -> u64 {
    acc.rotate_left(5)
        ^ match child {
            Outcome::Value(v) => *v,
            Outcome::Panicked(_) => 0xDEAD_BEEF,
        }
}

fn panic_message(id: usize) -> String {
    format!("{EXPECTED_PANIC}: node {id}")
}

/// The reference model: what the node must end with, given its children's planned outcomes.
fn model(id: usize, steps: &[Step]) -> Outcome {
    let mut acc = seed(id);
    let mut pending: VecDeque<&Plan> = VecDeque::new();
    for step in steps {
        match step {
            Step::Spawn(c) => pending.push_back(c),
            Step::JoinNewest => {
                if let Some(c) = pending.pop_back() {
                    acc = fold(acc, &c.expected);
                }
            }
            Step::JoinOldest => {
                if let Some(c) = pending.pop_front() {
                    acc = fold(acc, &c.expected);
                }
            }
            Step::Detach => {
                pending.pop_back();
            }
            Step::Work(n) => acc = work(acc, *n),
            Step::Panic => return Outcome::Panicked(panic_message(id)),
            Step::Yield | Step::Park(_) | Step::UnparkSelf => {}
            Step::Guard { acts, panic, .. } => {
                // The guard takes its children out of `pending`: their outcomes are checked when
                // it joins them, and not folded into this node's value.
                for act in acts {
                    match act {
                        GuardStep::JoinNewest => drop(pending.pop_back()),
                        GuardStep::JoinOldest => drop(pending.pop_front()),
                        _ => {}
                    }
                }
                if *panic == GuardPanic::Unwind {
                    return Outcome::Panicked(panic_message(id));
                }
            }
        }
    }
    for c in pending {
        acc = fold(acc, &c.expected);
    }
    Outcome::Value(acc)
}

/// Number the tree's nodes from `next` and compute every node's expected outcome.
fn plan(tree: &Tree, next: &mut usize) -> Arc<Plan> {
    let id = *next;
    *next += 1;
    let mut steps: Vec<Step> = tree
        .ops
        .iter()
        .flat_map(|op| match op {
            Op::Fan(n, t) => (0..*n).map(|_| Step::Spawn(plan(t, next))).collect(),
            op => vec![step(op, next)],
        })
        .collect();
    // A guard is dropped while unwinding iff the node panics at or after the guard's step (or
    // the guard's own caught panic drops it).
    let mut panics_later = false;
    for s in steps.iter_mut().rev() {
        match s {
            Step::Panic => panics_later = true,
            Step::Guard {
                panic, unwinding, ..
            } => {
                panics_later |= *panic == GuardPanic::Unwind;
                *unwinding = panics_later || *panic == GuardPanic::Caught;
            }
            _ => {}
        }
    }
    let expected = model(id, &steps);
    Arc::new(Plan {
        id,
        steps,
        expected,
    })
}

fn step(op: &Op, next: &mut usize) -> Step {
    match op {
        Op::Spawn(t) => Step::Spawn(plan(t, next)),
        Op::Fan(..) => unreachable!("expanded by plan"),
        Op::JoinNewest => Step::JoinNewest,
        Op::JoinOldest => Step::JoinOldest,
        Op::Detach => Step::Detach,
        Op::Yield => Step::Yield,
        Op::Park(w) => Step::Park(*w),
        Op::UnparkSelf => Step::UnparkSelf,
        Op::Work(n) => Step::Work(*n),
        Op::Panic => Step::Panic,
        Op::Guard { acts, panic } => Step::Guard {
            acts: acts
                .iter()
                .map(|a| match a {
                    GuardOp::JoinNewest => GuardStep::JoinNewest,
                    GuardOp::JoinOldest => GuardStep::JoinOldest,
                    GuardOp::SpawnJoin(t) => GuardStep::SpawnJoin(plan(t, next)),
                    GuardOp::Yield => GuardStep::Yield,
                    GuardOp::Park(w) => GuardStep::Park(*w),
                    GuardOp::UnparkSelf => GuardStep::UnparkSelf,
                })
                .collect(),
            panic: *panic,
            unwinding: false,
        },
    }
}

/// Mark in `runs` the nodes that start: a node's children spawned before its planned panic (the
/// steps after a `Panic` never execute). Returns how many guards of these nodes are dropped while
/// unwinding.
fn mark_runs(plan: &Plan, runs: &mut [bool]) -> usize {
    runs[plan.id] = true;
    let mut unwinding_guards = 0;
    for step in &plan.steps {
        match step {
            Step::Spawn(c) => unwinding_guards += mark_runs(c, runs),
            Step::Panic => break,
            Step::Guard {
                acts,
                panic,
                unwinding,
            } => {
                // A guard that was created is always dropped: its children run.
                for act in acts {
                    if let GuardStep::SpawnJoin(c) = act {
                        unwinding_guards += mark_runs(c, runs);
                    }
                }
                unwinding_guards += usize::from(*unwinding);
                if *panic == GuardPanic::Unwind {
                    break;
                }
            }
            _ => {}
        }
    }
    unwinding_guards
}

/// What the Gs of one case share.
struct Ctx {
    /// How many times each node started.
    ran: Vec<AtomicU32>,
    /// Nodes that returned or finished unwinding (should become the number of nodes that run).
    finished: AtomicUsize,
    /// Join results that differed from the model (and guards that saw a wrong
    /// `thread::panicking()` or changed thread while unwinding).
    mismatches: Mutex<Vec<String>>,
    /// Wakeup requests for the service G, if the case has one ([`Waker::Service`]).
    service: Option<Mutex<Vec<WakeRequest>>>,
    /// Guard destructors run while unwinding, and the blocking actions they ran (for `note`).
    unwinding_drops: AtomicUsize,
    unwinding_blocks: AtomicUsize,
}

/// Counts a node as finished when dropped, also while unwinding from its planned panic.
struct Finish<'a>(&'a Ctx);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, SeqCst);
    }
}

fn outcome(r: std::thread::Result<u64>) -> Outcome {
    match r {
        Ok(v) => Outcome::Value(v),
        Err(p) => Outcome::Panicked(payload_str(&*p).to_string()),
    }
}

/// Join `h` (the G of `child`) and check its outcome against the model, here in the joiner.
fn join_checked(ctx: &Ctx, parent: usize, child: &Plan, h: weft::JoinHandle<u64>) -> Outcome {
    match join_recorded(ctx, parent, child, h) {
        Ok(got) => got,
        // Not an expected panic: it is printed, and the parent's parent sees a mismatch too.
        Err(msg) => panic!("{msg}"),
    }
}

/// Join and check like [`join_checked`], but only record a mismatch (and return it): a
/// destructor must not panic while unwinding (that aborts the process).
fn join_recorded(
    ctx: &Ctx,
    parent: usize,
    child: &Plan,
    h: weft::JoinHandle<u64>,
) -> Result<Outcome, String> {
    let got = outcome(h.join());
    if got != child.expected {
        let msg = format!(
            "node {parent} joined node {}: expected {:?}, got {got:?}",
            child.id, child.expected
        );
        ctx.mismatches.lock().unwrap().push(msg.clone());
        return Err(msg);
    }
    Ok(got)
}

/// A wakeup to deliver: set the flag, then unpark the G.
type WakeRequest = (Arc<AtomicBool>, weft::Coroutine);

fn wake((flag, g): WakeRequest) {
    flag.store(true, SeqCst);
    g.unpark();
}

/// Ask `waker` to set a flag and unpark us; park until the flag is set.
fn park_until_woken(ctx: &Ctx, waker: Waker) {
    let flag = Arc::new(AtomicBool::new(false));
    let req = (flag.clone(), weft::current().expect("inside a G"));
    match (waker, &ctx.service) {
        (Waker::Service, Some(requests)) => requests.lock().unwrap().push(req),
        (Waker::Thread, _) => drop(std::thread::spawn(move || wake(req))),
        (Waker::Helper(_), _) | (Waker::Service, None) => {
            let n = if let Waker::Helper(n) = waker { n } else { 0 };
            drop(weft::spawn(move || {
                for _ in 0..=n {
                    weft::yield_now();
                }
                wake(req);
            }));
        }
    }
    while !flag.load(SeqCst) {
        weft::park();
    }
}

/// The service G: deliver wakeup requests, yielding between rounds, until every node finished.
fn serve(ctx: &Ctx, total: usize) -> bool {
    let requests = ctx.service.as_ref().expect("a service");
    wait_until(ROUNDS, || {
        let batch = std::mem::take(&mut *requests.lock().unwrap());
        batch.into_iter().for_each(wake);
        ctx.finished.load(SeqCst) == total
    })
}

/// Unpark ourselves, then park: the token is already there, so this returns at once.
fn unpark_self_then_park() {
    weft::current().expect("inside a G").unpark();
    weft::park();
}

/// What a guard's destructor does (a [`GuardStep`] with its child handle taken).
enum GuardAct {
    Join(Arc<Plan>, weft::JoinHandle<u64>),
    SpawnJoin(Arc<Plan>),
    Yield,
    Park(Waker),
    UnparkSelf,
}

/// Blocks in its destructor: while unwinding if the node panics after creating it.
struct Guard {
    ctx: Arc<Ctx>,
    node: usize,
    /// What the plan says `thread::panicking()` is when the guard is dropped.
    unwinding: bool,
    acts: Vec<GuardAct>,
}

impl Guard {
    fn check(&self, what: &str, tid: i64) {
        let panicking = std::thread::panicking();
        let mut bad = Vec::new();
        if panicking != self.unwinding {
            bad.push(format!(
                "node {}: guard {what}: thread::panicking() is {panicking}, the plan says {}",
                self.node, self.unwinding
            ));
        }
        // An unwinding G never switches stacks, so it stays on its thread.
        if self.unwinding && gettid() != tid {
            bad.push(format!(
                "node {}: guard {what}: an unwinding G changed OS thread",
                self.node
            ));
        }
        if !bad.is_empty() {
            self.ctx.mismatches.lock().unwrap().extend(bad);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let tid = gettid();
        if self.unwinding {
            self.ctx.unwinding_drops.fetch_add(1, SeqCst);
        }
        self.check("entry", tid);
        let ctx = self.ctx.clone();
        for act in std::mem::take(&mut self.acts) {
            let what = match act {
                GuardAct::Join(c, h) => {
                    // Recorded, not panicked: run_forest reports it.
                    let _ = join_recorded(&ctx, self.node, &c, h);
                    "join"
                }
                GuardAct::SpawnJoin(c) => {
                    let (c2, ctx2) = (c.clone(), ctx.clone());
                    let h = weft::spawn(move || exec(c2, ctx2));
                    let _ = join_recorded(&ctx, self.node, &c, h);
                    "spawn+join"
                }
                GuardAct::Yield => {
                    weft::yield_now();
                    "yield"
                }
                GuardAct::Park(w) => {
                    park_until_woken(&ctx, w);
                    "park"
                }
                GuardAct::UnparkSelf => {
                    unpark_self_then_park();
                    "unpark self+park"
                }
            };
            if self.unwinding {
                ctx.unwinding_blocks.fetch_add(1, SeqCst);
            }
            self.check(what, tid);
        }
    }
}

/// Panic inside `catch_unwind` while holding `guard` (its destructor blocks while unwinding), and
/// check the aftermath: the panic is caught, and the G is no longer panicking, also after a yield
/// (which may move it to another thread).
fn caught_panic(ctx: &Ctx, node: usize, guard: Guard) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("{}", panic_message(node));
    }));
    let mut bad = Vec::new();
    match r {
        Err(p) if payload_str(&*p) == panic_message(node) => {}
        Err(p) => bad.push(format!(
            "node {node}: caught the wrong panic: {:?}",
            payload_str(&*p)
        )),
        Ok(()) => bad.push(format!("node {node}: catch_unwind caught nothing")),
    }
    if std::thread::panicking() {
        bad.push(format!("node {node}: still panicking after catch_unwind"));
    }
    weft::yield_now();
    if std::thread::panicking() {
        bad.push(format!(
            "node {node}: panicking after catch_unwind and a yield"
        ));
    }
    if !bad.is_empty() {
        ctx.mismatches.lock().unwrap().extend(bad);
    }
}

/// The body of every node's G.
fn exec(plan: Arc<Plan>, ctx: Arc<Ctx>) -> u64 {
    ctx.ran[plan.id].fetch_add(1, SeqCst);
    let _finish = Finish(&ctx);
    let mut acc = seed(plan.id);
    let mut pending: VecDeque<(Arc<Plan>, weft::JoinHandle<u64>)> = VecDeque::new();
    // Declared after `pending`: dropped before it (and before `_finish`) when unwinding.
    let mut guards: Vec<Guard> = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Spawn(c) => {
                let (c2, ctx2) = (c.clone(), ctx.clone());
                pending.push_back((c.clone(), weft::spawn(move || exec(c2, ctx2))));
            }
            Step::JoinNewest => {
                if let Some((c, h)) = pending.pop_back() {
                    acc = fold(acc, &join_checked(&ctx, plan.id, &c, h));
                }
            }
            Step::JoinOldest => {
                if let Some((c, h)) = pending.pop_front() {
                    acc = fold(acc, &join_checked(&ctx, plan.id, &c, h));
                }
            }
            Step::Detach => drop(pending.pop_back()),
            Step::Yield => weft::yield_now(),
            Step::Park(w) => park_until_woken(&ctx, *w),
            Step::UnparkSelf => unpark_self_then_park(),
            Step::Work(n) => acc = work(acc, *n),
            Step::Panic => panic!("{}", panic_message(plan.id)),
            Step::Guard {
                acts,
                panic,
                unwinding,
            } => {
                let acts = acts
                    .iter()
                    .filter_map(|a| {
                        Some(match a {
                            GuardStep::JoinNewest => {
                                let (c, h) = pending.pop_back()?;
                                GuardAct::Join(c, h)
                            }
                            GuardStep::JoinOldest => {
                                let (c, h) = pending.pop_front()?;
                                GuardAct::Join(c, h)
                            }
                            GuardStep::SpawnJoin(c) => GuardAct::SpawnJoin(c.clone()),
                            GuardStep::Yield => GuardAct::Yield,
                            GuardStep::Park(w) => GuardAct::Park(*w),
                            GuardStep::UnparkSelf => GuardAct::UnparkSelf,
                        })
                    })
                    .collect();
                let guard = Guard {
                    ctx: ctx.clone(),
                    node: plan.id,
                    unwinding: *unwinding,
                    acts,
                };
                match panic {
                    GuardPanic::No => guards.push(guard),
                    GuardPanic::Unwind => {
                        guards.push(guard);
                        panic!("{}", panic_message(plan.id));
                    }
                    GuardPanic::Caught => caught_panic(&ctx, plan.id, guard),
                }
            }
        }
    }
    while let Some((c, h)) = pending.pop_front() {
        acc = fold(acc, &join_checked(&ctx, plan.id, &c, h));
    }
    // Guards are dropped here, after the value is computed (they do not change it).
    drop(guards);
    acc
}

fn op_leaf() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::JoinNewest),
        2 => Just(Op::JoinOldest),
        1 => Just(Op::Detach),
        3 => Just(Op::Yield),
        1 => waker().prop_map(Op::Park),
        1 => Just(Op::UnparkSelf),
        2 => any::<u16>().prop_map(Op::Work),
        1 => Just(Op::Panic),
        1 => guard(guard_op_leaf().boxed()),
    ]
}

fn waker() -> impl Strategy<Value = Waker> {
    prop_oneof![
        2 => Just(Waker::Helper(0)),
        1 => (1u8..32).prop_map(Waker::Helper),
        2 => Just(Waker::Service),
        1 => Just(Waker::Thread),
    ]
}

fn guard_op_leaf() -> impl Strategy<Value = GuardOp> {
    prop_oneof![
        3 => Just(GuardOp::JoinNewest),
        2 => Just(GuardOp::JoinOldest),
        2 => Just(GuardOp::Yield),
        3 => waker().prop_map(GuardOp::Park),
        2 => Just(GuardOp::UnparkSelf),
    ]
}

/// A guard of 1 to 4 actions; the node panics right after creating it three times out of four
/// (one of these three inside `catch_unwind`).
fn guard(act: BoxedStrategy<GuardOp>) -> impl Strategy<Value = Op> {
    let panic = prop_oneof![
        1 => Just(GuardPanic::No),
        1 => Just(GuardPanic::Caught),
        2 => Just(GuardPanic::Unwind),
    ];
    (vec(act, 1..5), panic).prop_map(|(acts, panic)| Op::Guard { acts, panic })
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = || vec(op_leaf(), 0..4).prop_map(|ops| Tree { ops });
    // Depth up to 5, about 100 nodes per tree before fans.
    leaf().prop_recursive(5, 100, 10, move |inner| {
        vec(
            prop_oneof![
                4 => inner.clone().prop_map(Op::Spawn),
                1 => (2u8..24, leaf()).prop_map(|(n, t)| Op::Fan(n, t)),
                4 => op_leaf(),
                // A guard that may spawn and join whole subtrees in its destructor.
                1 => guard(
                    prop_oneof![
                        3 => guard_op_leaf(),
                        1 => inner.clone().prop_map(GuardOp::SpawnJoin),
                    ]
                    .boxed()
                ),
            ],
            0..10,
        )
        .prop_map(|ops| Tree { ops })
    })
}

/// Run a forest: every root spawned from this plain thread (into the global queue), joined here.
/// Returns how many nodes ran, guards dropped while unwinding, and blocking actions these ran.
fn run_forest(forest: &[Tree], service: bool) -> Result<[usize; 3], TestCaseError> {
    let mut next = 0;
    let plans: Vec<Arc<Plan>> = forest.iter().map(|t| plan(t, &mut next)).collect();
    let mut runs = vec![false; next];
    let mut unwinding_guards = 0;
    for p in &plans {
        unwinding_guards += mark_runs(p, &mut runs);
    }
    let total = runs.iter().filter(|&&r| r).count();
    let ctx = Arc::new(Ctx {
        ran: (0..next).map(|_| AtomicU32::new(0)).collect(),
        finished: AtomicUsize::new(0),
        mismatches: Mutex::new(Vec::new()),
        unwinding_drops: AtomicUsize::new(0),
        unwinding_blocks: AtomicUsize::new(0),
        service: service.then(|| Mutex::new(Vec::new())),
    });
    let server = service.then(|| {
        let c = ctx.clone();
        weft::spawn(move || serve(&c, total))
    });
    let roots: Vec<_> = plans
        .iter()
        .map(|p| {
            let (p, c) = (p.clone(), ctx.clone());
            weft::spawn(move || exec(p, c))
        })
        .collect();
    let outcomes: Vec<Outcome> = roots.into_iter().map(|h| outcome(h.join())).collect();
    // Detached children may still run: wait for every node (in a G, yielding).
    let c = ctx.clone();
    let all_finished = weft::run(move || wait_until(ROUNDS, || c.finished.load(SeqCst) == total));
    if let Some(s) = server {
        prop_assert!(s.join().unwrap(), "the service G gave up");
    }
    let mismatches = ctx.mismatches.lock().unwrap().clone();
    prop_assert!(mismatches.is_empty(), "{mismatches:#?}");
    for (p, got) in plans.iter().zip(&outcomes) {
        prop_assert_eq!(got, &p.expected, "root node {}", p.id);
    }
    prop_assert!(
        all_finished,
        "{} of {total} nodes finished",
        ctx.finished.load(SeqCst)
    );
    for (id, n) in ctx.ran.iter().enumerate() {
        let want = u32::from(runs[id]);
        prop_assert_eq!(
            n.load(SeqCst),
            want,
            "node {} ran a wrong number of times",
            id
        );
    }
    // Guards that unwind are dropped only by nodes that finished (they hold `_finish`).
    let drops = ctx.unwinding_drops.load(SeqCst);
    prop_assert_eq!(drops, unwinding_guards, "guards dropped while unwinding");
    Ok([total, drops, ctx.unwinding_blocks.load(SeqCst)])
}

/// Fixed forests run first, on the still fresh runtime of the process (no idle M yet): a G that
/// parks while unwinding with nothing else queued, so its M hands its P to a *new* M started as
/// a spinner, which then hands the P back to the waiting M. A spinner that slept still counted
/// made every later `wakep` a no-op: the next forest, spawned from this plain thread, hung (the
/// bug `rt_unwind_park` pins down; the 1-P process takes that path unless the new M's thread
/// starts before the unwinding M asks for a P again).
fn fresh_runtime_forests() -> Vec<(Vec<Tree>, bool)> {
    let leaf = |ops| Tree { ops };
    let guard_panic = |acts| Op::Guard {
        acts,
        panic: GuardPanic::Unwind,
    };
    let child = || Op::Spawn(leaf(vec![Op::Work(7)]));
    vec![
        // The park token is already there: no sleep, straight to waiting for a P.
        (
            vec![leaf(vec![guard_panic(vec![GuardOp::UnparkSelf])])],
            false,
        ),
        // Woken by a plain thread, which holds no P.
        (
            vec![leaf(vec![guard_panic(vec![GuardOp::Park(Waker::Thread)])])],
            false,
        ),
        // Joins a child, then parks until a helper, then yields, all while unwinding.
        (
            vec![leaf(vec![
                child(),
                guard_panic(vec![
                    GuardOp::JoinNewest,
                    GuardOp::Park(Waker::Helper(3)),
                    GuardOp::Yield,
                ]),
            ])],
            false,
        ),
        // Woken by the service G, which keeps a P busy.
        (
            vec![leaf(vec![
                child(),
                guard_panic(vec![GuardOp::Park(Waker::Service), GuardOp::JoinOldest]),
            ])],
            true,
        ),
    ]
}

/// Generated cases per run: `PROPTEST_CASES`, or [`CASES`].
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

/// The watchdog's limit: [`TEST_TIMEOUT`], raised for long soaks (a case takes a few ms).
fn time_limit() -> Duration {
    TEST_TIMEOUT.max(Duration::from_millis(20) * cases())
}

fn check_forests() {
    for (i, (forest, service)) in fresh_runtime_forests().into_iter().enumerate() {
        if let Err(e) = run_forest(&forest, service) {
            panic!("fixed forest {i}: {e}");
        }
    }
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        // A failing forest is printed (shrunk) in the panic message; nothing is written to disk.
        failure_persistence: None,
        ..Config::default()
    });
    let stats: [AtomicUsize; 3] = Default::default();
    let result = runner.run(&(vec(tree(), 1..8), any::<bool>()), |(forest, service)| {
        // No fds: the 1-P test's parent runs beside the 2-P one in this process.
        let base = common::resources(false);
        for (sum, n) in stats.iter().zip(run_forest(&forest, service)?) {
            sum.fetch_add(n, SeqCst);
        }
        common::assert_released(&base, "a spawn forest");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let [nodes, drops, blocks] = stats.map(|s| s.into_inner());
    common::note(format_args!(
        "{cases} forests, {nodes} coroutines in all; {drops} guards dropped while unwinding, \
         running {blocks} blocking actions"
    ));
}

#[test]
fn spawn_trees_np() {
    let _dog = watchdog("spawn_trees_np", time_limit());
    common::init(2);
    check_forests();
}

#[test]
fn spawn_trees_1p() {
    const TEST: &str = "spawn_trees_1p";
    let _dog = watchdog(TEST, time_limit());
    if scenario().is_some() {
        common::init(1);
        check_forests();
        println!("1-P forests done");
        return;
    }
    // One P needs a process of its own: settings are process-wide.
    let out = run_child(TEST, "1p", &[]);
    assert!(
        out.status.success() && out.stdout.contains("1-P forests done"),
        "{out}"
    );
}
