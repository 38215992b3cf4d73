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
//! The same property runs on 2 Ps in this process and on 1 P in a child process.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use common::{
    payload_str, run_child, scenario, wait_until, watchdog, EXPECTED_PANIC, TEST_TIMEOUT,
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
    /// Park until a helper G sets a flag and unparks us.
    Park,
    /// Unpark ourselves, then park: returns at once (the token is already there).
    UnparkSelf,
    /// Fold a number into the result.
    Work(u16),
    /// Panic here (remaining steps are skipped; pending children are detached by the unwinding).
    Panic,
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
    Park,
    UnparkSelf,
    Work(u16),
    Panic,
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
            Step::Yield | Step::Park | Step::UnparkSelf => {}
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
    let steps: Vec<Step> = tree
        .ops
        .iter()
        .flat_map(|op| match op {
            Op::Fan(n, t) => (0..*n).map(|_| Step::Spawn(plan(t, next))).collect(),
            op => vec![step(op, next)],
        })
        .collect();
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
        Op::Park => Step::Park,
        Op::UnparkSelf => Step::UnparkSelf,
        Op::Work(n) => Step::Work(*n),
        Op::Panic => Step::Panic,
    }
}

/// Mark in `runs` the nodes that start: a node's children spawned before its planned panic (the
/// steps after a `Panic` never execute).
fn mark_runs(plan: &Plan, runs: &mut [bool]) {
    runs[plan.id] = true;
    for step in &plan.steps {
        match step {
            Step::Spawn(c) => mark_runs(c, runs),
            Step::Panic => return,
            _ => {}
        }
    }
}

/// What the Gs of one case share.
struct Ctx {
    /// How many times each node started.
    ran: Vec<AtomicU32>,
    /// Nodes that returned or finished unwinding (should become the number of nodes that run).
    finished: AtomicUsize,
    /// Join results that differed from the model.
    mismatches: Mutex<Vec<String>>,
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
    let got = outcome(h.join());
    if got != child.expected {
        let msg = format!(
            "node {parent} joined node {}: expected {:?}, got {got:?}",
            child.id, child.expected
        );
        ctx.mismatches.lock().unwrap().push(msg.clone());
        // Not an expected panic: it is printed, and the parent's parent sees a mismatch too.
        panic!("{msg}");
    }
    got
}

/// The body of every node's G.
fn exec(plan: Arc<Plan>, ctx: Arc<Ctx>) -> u64 {
    ctx.ran[plan.id].fetch_add(1, SeqCst);
    let _finish = Finish(&ctx);
    let mut acc = seed(plan.id);
    let mut pending: VecDeque<(Arc<Plan>, weft::JoinHandle<u64>)> = VecDeque::new();
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
            Step::Park => {
                let flag = Arc::new(AtomicBool::new(false));
                let (f, me) = (flag.clone(), weft::current().expect("inside a G"));
                drop(weft::spawn(move || {
                    weft::yield_now();
                    f.store(true, SeqCst);
                    me.unpark();
                }));
                while !flag.load(SeqCst) {
                    weft::park();
                }
            }
            Step::UnparkSelf => {
                weft::current().expect("inside a G").unpark();
                weft::park();
            }
            Step::Work(n) => acc = work(acc, *n),
            Step::Panic => panic!("{}", panic_message(plan.id)),
        }
    }
    while let Some((c, h)) = pending.pop_front() {
        acc = fold(acc, &join_checked(&ctx, plan.id, &c, h));
    }
    acc
}

fn op_leaf() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::JoinNewest),
        2 => Just(Op::JoinOldest),
        1 => Just(Op::Detach),
        3 => Just(Op::Yield),
        1 => Just(Op::Park),
        1 => Just(Op::UnparkSelf),
        2 => any::<u16>().prop_map(Op::Work),
        1 => Just(Op::Panic),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = || vec(op_leaf(), 0..4).prop_map(|ops| Tree { ops });
    // Depth up to 5, about 100 nodes per tree before fans.
    leaf().prop_recursive(5, 100, 10, move |inner| {
        vec(
            prop_oneof![
                4 => inner.prop_map(Op::Spawn),
                1 => (2u8..24, leaf()).prop_map(|(n, t)| Op::Fan(n, t)),
                4 => op_leaf(),
            ],
            0..10,
        )
        .prop_map(|ops| Tree { ops })
    })
}

/// Run a forest: every root spawned from this plain thread (into the global queue), joined here.
/// Returns how many nodes ran.
fn run_forest(forest: &[Tree]) -> Result<usize, TestCaseError> {
    let mut next = 0;
    let plans: Vec<Arc<Plan>> = forest.iter().map(|t| plan(t, &mut next)).collect();
    let mut runs = vec![false; next];
    for p in &plans {
        mark_runs(p, &mut runs);
    }
    let total = runs.iter().filter(|&&r| r).count();
    let ctx = Arc::new(Ctx {
        ran: (0..next).map(|_| AtomicU32::new(0)).collect(),
        finished: AtomicUsize::new(0),
        mismatches: Mutex::new(Vec::new()),
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
    Ok(total)
}

fn check_forests() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        // A failing forest is printed (shrunk) in the panic message; nothing is written to disk.
        failure_persistence: None,
        ..Config::default()
    });
    let nodes = AtomicUsize::new(0);
    let result = runner.run(&vec(tree(), 1..8), |forest| {
        nodes.fetch_add(run_forest(&forest)?, SeqCst);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    common::note(format_args!(
        "{cases} forests, {} coroutines in all",
        nodes.load(SeqCst)
    ));
}

#[test]
fn spawn_trees_np() {
    let _dog = watchdog("spawn_trees_np", TEST_TIMEOUT);
    common::init(2);
    check_forests();
}

#[test]
fn spawn_trees_1p() {
    const TEST: &str = "spawn_trees_1p";
    let _dog = watchdog(TEST, TEST_TIMEOUT);
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
