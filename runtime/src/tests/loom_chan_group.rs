//! loom models of the channel operations' claim protocol (`chan/group.rs`): a blocked operation
//! races a peer that completes it with a value, a `close` that completes it without one, and a
//! timeout timer. Whoever claims the group first is the only one that touches the operation's
//! slot and wakes the waiter. The "G" is the model's main thread, parked on a `Notify` until it
//! is woken (loom's `Notify` may wake spuriously, so it waits in a loop on the wake count);
//! the slot is a loom `UnsafeCell`, so loom also checks that nobody writes it concurrently and
//! that the waiter sees what the winner wrote.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Notify};
use loom::thread;

use crate::chan_group::{Group, NONE, TIMEOUT};

/// The blocked operation as the model sees it: the group, the sudog's slot and `ok`, and the
/// "parked G" (wake count + notify).
struct Op {
    group: Group,
    /// 0 = empty; the peer writes its value here after claiming.
    slot: UnsafeCell<usize>,
    /// 1 = completed with a value, 2 = completed by close.
    ok: UnsafeCell<usize>,
    wakes: AtomicUsize,
    notify: Notify,
}

/// The value the peer hands over.
const VALUE: usize = 42;

impl Op {
    fn new() -> Op {
        Op {
            group: Group::new(),
            slot: UnsafeCell::new(0),
            ok: UnsafeCell::new(0),
            wakes: AtomicUsize::new(0),
            notify: Notify::new(),
        }
    }

    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::Release);
        self.notify.notify();
    }

    /// A peer: claim case 0, hand the value over, wake.
    fn peer(&self) -> bool {
        if !self.group.claim(0) {
            return false;
        }
        // SAFETY: only the claimant writes the slot; loom checks there is no concurrent access.
        self.slot.with_mut(|p| unsafe { *p = VALUE });
        // SAFETY: as above.
        self.ok.with_mut(|p| unsafe { *p = 1 });
        self.wake();
        true
    }

    /// A closer: claim case 0 without a value, wake.
    fn close(&self) -> bool {
        if !self.group.claim(0) {
            return false;
        }
        // SAFETY: only the claimant writes `ok`; loom checks there is no concurrent access.
        self.ok.with_mut(|p| unsafe { *p = 2 });
        self.wake();
        true
    }

    /// The timeout timer.
    fn timeout(&self) -> bool {
        if !self.group.claim(TIMEOUT) {
            return false;
        }
        self.wake();
        true
    }

    /// The parked G: wait until woken, then read the outcome.
    fn wait(&self) -> (usize, usize, usize) {
        while self.wakes.load(Ordering::Acquire) == 0 {
            self.notify.wait();
        }
        let winner = self.group.winner();
        // SAFETY: woken: the claimant's writes happened before its wake (loom checks it).
        let ok = self.ok.with(|p| unsafe { *p });
        // SAFETY: as above.
        let slot = self.slot.with(|p| unsafe { *p });
        (winner, ok, slot)
    }
}

/// Peer vs close vs timeout: exactly one claims, the G is woken once and sees a consistent
/// outcome (a value only from the peer, none on close or timeout).
#[test]
fn peer_vs_close_vs_timeout() {
    loom::model(|| {
        let op = Arc::new(Op::new());
        let wins = Arc::new(AtomicUsize::new(0));
        let spawn = |f: fn(&Op) -> bool| {
            let (op, wins) = (op.clone(), wins.clone());
            thread::spawn(move || {
                if f(&op) {
                    wins.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let hs = [spawn(Op::peer), spawn(Op::close), spawn(Op::timeout)];
        let (winner, ok, slot) = op.wait();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(
            wins.load(Ordering::Relaxed),
            1,
            "exactly one claim succeeds"
        );
        assert_eq!(
            op.wakes.load(Ordering::Relaxed),
            1,
            "the waiter is woken once"
        );
        match winner {
            TIMEOUT => assert_eq!((ok, slot), (0, 0)),
            0 => assert!(
                (ok, slot) == (1, VALUE) || (ok, slot) == (2, 0),
                "a claimed case is either a hand-off or a close: ok={ok} slot={slot}"
            ),
            NONE => panic!("woken without a winner"),
            other => panic!("unexpected winner {other}"),
        }
    });
}

/// Two peers race for one select-like group (two arms): only one value is handed over.
#[test]
fn two_peers_one_winner() {
    loom::model(|| {
        let op = Arc::new(Op::new());
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let op = op.clone();
                thread::spawn(move || op.peer())
            })
            .collect();
        let (winner, ok, slot) = op.wait();
        let wins: usize = hs.into_iter().map(|h| h.join().unwrap() as usize).sum();
        assert_eq!(wins, 1);
        assert_eq!((winner, ok, slot), (0, 1, VALUE));
        assert_eq!(op.wakes.load(Ordering::Relaxed), 1);
    });
}
