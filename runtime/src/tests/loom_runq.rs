//! loom models of the P run queue (`sched/runq.rs`): the owner's put/get racing thieves.
//!
//! Each model checks the one property that matters to the scheduler: every item put in comes
//! out exactly once (no G lost, none run twice), whatever the interleaving.

use std::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use crate::runq::{RunQueue, RUNQ_CAP};

fn item(v: usize) -> NonNull<usize> {
    NonNull::from(Box::leak(Box::new(v)))
}

fn take(p: NonNull<usize>) -> usize {
    // SAFETY: items come from `item` and each is taken out of the queues exactly once (that is
    // what the models check; a duplicate would be a double free loom reports).
    *unsafe { Box::from_raw(p.as_ptr()) }
}

fn drain(q: &RunQueue<usize>) -> Vec<usize> {
    q.drain().into_iter().map(take).collect()
}

/// A thief thread: steals once from `q` (runnext included) and returns everything it took.
fn spawn_thief(q: Arc<RunQueue<usize>>) -> thread::JoinHandle<Vec<usize>> {
    thread::spawn(move || {
        let mine = RunQueue::new();
        let mut got: Vec<usize> = q
            .steal_into(&mine, true, |_, _| true)
            .map(take)
            .into_iter()
            .collect();
        got.extend(drain(&mine));
        got
    })
}

/// The owner puts three items (one through runnext) and pops one while a thief steals.
#[test]
fn put_get_vs_steal() {
    loom::model(|| {
        let q = Arc::new(RunQueue::<usize>::new());
        let thief = spawn_thief(q.clone());
        let mut got = Vec::new();
        assert!(q.put(item(0), false).is_none());
        assert!(q.put(item(1), true).is_none());
        assert!(q.put(item(2), false).is_none());
        if let Some((p, _)) = q.get(true) {
            got.push(take(p));
        }
        got.extend(thief.join().unwrap());
        got.extend(drain(&q));
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
    });
}

/// Two thieves race each other and the owner's runnext put.
#[test]
fn two_thieves() {
    loom::model(|| {
        let q = Arc::new(RunQueue::<usize>::new());
        assert!(q.put(item(0), false).is_none());
        assert!(q.put(item(1), false).is_none());
        let thieves: Vec<_> = (0..2).map(|_| spawn_thief(q.clone())).collect();
        assert!(q.put(item(2), true).is_none());
        let mut got = drain(&q);
        for t in thieves {
            got.extend(t.join().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
    });
}

/// The ring (4 slots under loom) overflows while a thief steals: the owner's fifth put either
/// finds room (the thief took some) or moves half the ring plus the new item out as one batch
/// (Go's `runqputslow`); its CAS on `head` races the thief's. Nothing is lost or taken twice.
#[test]
fn overflow_vs_steal() {
    loom::model(|| {
        let q = Arc::new(RunQueue::<usize>::new());
        for v in 0..RUNQ_CAP {
            assert!(q.put(item(v), false).is_none());
        }
        let thief = spawn_thief(q.clone());
        let mut got = Vec::new();
        if let Some(batch) = q.put(item(RUNQ_CAP), false) {
            got.extend(batch.iter().map(take));
        }
        got.extend(thief.join().unwrap());
        got.extend(drain(&q));
        got.sort_unstable();
        assert_eq!(got, (0..=RUNQ_CAP).collect::<Vec<_>>());
    });
}

/// Overflow through `runnext`: a put into `runnext` kicks the old item into a full ring, which
/// overflows while a thief steals (runnext included).
#[test]
fn runnext_kick_overflows_vs_steal() {
    loom::model(|| {
        let q = Arc::new(RunQueue::<usize>::new());
        for v in 0..RUNQ_CAP {
            assert!(q.put(item(v), false).is_none());
        }
        assert!(q.put(item(RUNQ_CAP), true).is_none());
        let thief = spawn_thief(q.clone());
        let mut got = Vec::new();
        if let Some(batch) = q.put(item(RUNQ_CAP + 1), true) {
            got.extend(batch.iter().map(take));
        }
        got.extend(thief.join().unwrap());
        got.extend(drain(&q));
        got.sort_unstable();
        assert_eq!(got, (0..=RUNQ_CAP + 1).collect::<Vec<_>>());
    });
}
