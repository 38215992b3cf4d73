//! loom models of the one-waiter wake words (`sched/wake_word.rs`): the park token and the join
//! packet. A "G" is modelled as a loom thread that parks on a `Notify` after a successful
//! commit, and "ready" as notifying it: loom then reports a lost wakeup as a deadlock and a
//! double wakeup as a failed assertion. loom's `Notify` may wake spuriously, which the real
//! `ready` never does, so each model waits in a loop on the condition its waker establishes.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Notify};
use loom::thread;

use crate::wake_word::{DoneWord, TokenWord, Waiter};

/// Address the model uses for "the parked G" (any value above the state constants).
const ME: usize = 0x1000;

/// An unparker thread: unpark once and, if that hands back the parked waiter, count a "ready"
/// and notify it.
fn spawn_unparker(
    word: &Arc<TokenWord>,
    wake: &Arc<Notify>,
    readies: &Arc<AtomicUsize>,
) -> thread::JoinHandle<()> {
    let (word, wake, readies) = (word.clone(), wake.clone(), readies.clone());
    thread::spawn(move || {
        if let Some(w) = word.unpark() {
            assert_eq!(w, ME);
            readies.fetch_add(1, Ordering::Release);
            wake.notify();
        }
    })
}

/// The parker's side of park(): consume a token, or commit and sleep until readied.
fn park(word: &TokenWord, wake: &Notify, readies: &AtomicUsize) {
    if !word.take_token() && word.commit_park(ME) {
        while readies.load(Ordering::Acquire) == 0 {
            wake.wait();
        }
    }
}

/// park() against unpark(): the parker always returns, and a wakeup is delivered at most once.
#[test]
fn token_park_vs_unpark() {
    loom::model(|| {
        let word = Arc::new(TokenWord::new());
        let wake = Arc::new(Notify::new());
        let readies = Arc::new(AtomicUsize::new(0));
        let unparker = spawn_unparker(&word, &wake, &readies);
        park(&word, &wake, &readies);
        unparker.join().unwrap();
        assert!(readies.load(Ordering::Relaxed) <= 1);
        // Whatever happened, the token was consumed exactly once: a second park would block.
        assert!(!word.take_token());
    });
}

/// Two unparkers racing one park: the parker returns and is readied at most once.
#[test]
fn token_two_unparkers() {
    loom::model(|| {
        let word = Arc::new(TokenWord::new());
        let wake = Arc::new(Notify::new());
        let readies = Arc::new(AtomicUsize::new(0));
        let us: Vec<_> = (0..2)
            .map(|_| spawn_unparker(&word, &wake, &readies))
            .collect();
        park(&word, &wake, &readies);
        for u in us {
            u.join().unwrap();
        }
        assert!(readies.load(Ordering::Relaxed) <= 1);
    });
}

/// join from a G against the G finishing: the joiner sees DONE, and is woken iff it parked.
#[test]
fn join_g_vs_complete() {
    loom::model(|| {
        let word = Arc::new(DoneWord::new());
        let wake = Arc::new(Notify::new());
        let result = Arc::new(AtomicUsize::new(0));
        let finisher = {
            let (word, wake, result) = (word.clone(), wake.clone(), result.clone());
            thread::spawn(move || {
                result.store(42, Ordering::Relaxed); // the result, published by complete()
                match word.complete() {
                    Some(Waiter::Nobody) => {}
                    Some(Waiter::G(w)) => {
                        assert_eq!(w, ME);
                        wake.notify();
                    }
                    other => panic!("unexpected waiter {other:?}"),
                }
            })
        };
        if !word.is_done() && word.commit_wait(ME) {
            while !word.is_done() {
                wake.wait();
            }
        }
        assert!(word.is_done());
        assert_eq!(
            result.load(Ordering::Relaxed),
            42,
            "result not visible after DONE"
        );
        finisher.join().unwrap();
    });
}

/// join from an OS thread against the G finishing.
#[test]
fn join_thread_vs_complete() {
    loom::model(|| {
        let word = Arc::new(DoneWord::new());
        let wake = Arc::new(Notify::new());
        let finisher = {
            let (word, wake) = (word.clone(), wake.clone());
            thread::spawn(move || match word.complete() {
                Some(Waiter::Nobody) => {}
                Some(Waiter::Thread) => wake.notify(),
                other => panic!("unexpected waiter {other:?}"),
            })
        };
        if word.register_thread() {
            // As the real code does around thread::park().
            while !word.is_done() {
                wake.wait();
            }
        }
        assert!(word.is_done());
        finisher.join().unwrap();
        assert_eq!(word.complete(), None, "a second completion is detected");
    });
}
