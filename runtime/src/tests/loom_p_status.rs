//! Loom model of the blocking-call hand-off on a P's status word (`sched/p_status.rs`): an M
//! enters a call and comes back, sysmon tries to retake the P meanwhile. Exactly one of them
//! ends up owning the P, and the owner sees the M's writes from before the call (loom's
//! `UnsafeCell` flags an unsynchronised access as a data race).

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::p_status::PStatus;

struct P {
    status: PStatus,
    /// Stands for the P's owner-only state (its free G list, its queue's owner end).
    owned: UnsafeCell<u32>,
}

// SAFETY: `owned` is accessed only by the P's owner; the model checks that ownership.
unsafe impl Sync for P {}

#[test]
fn syscall_exit_races_retake() {
    loom::model(|| {
        let p = Arc::new(P {
            status: PStatus::new(),
            owned: UnsafeCell::new(0),
        });
        p.status.set_running();
        let m = {
            let p = p.clone();
            thread::spawn(move || {
                // SAFETY: the M holds the P (RUNNING) until it enters the call.
                p.owned.with_mut(|v| unsafe { *v = 1 });
                p.status.enter_syscall();
                // ... the blocking call ...
                let kept = p.status.exit_syscall_fast();
                if kept {
                    // Still the owner: may touch the P's state again.
                    // SAFETY: the fast exit won, so the M owns the P again (the model's claim).
                    p.owned.with_mut(|v| unsafe { *v += 10 });
                }
                kept
            })
        };
        let retaken = if p.status.retake() {
            // sysmon (then the M it hands the P to) owns it: sees the M's write.
            // SAFETY: the retake won, so sysmon owns the P (the model's claim).
            p.owned.with_mut(|v| unsafe {
                assert_eq!(*v, 1);
                *v += 100;
            });
            true
        } else {
            false
        };
        let kept = m.join().unwrap();
        assert!(kept != retaken, "kept {kept}, retaken {retaken}");
    });
}

#[test]
fn retake_twice_fails() {
    loom::model(|| {
        let p = Arc::new(P {
            status: PStatus::new(),
            owned: UnsafeCell::new(0),
        });
        p.status.set_running();
        p.status.enter_syscall();
        let q = p.clone();
        let t = thread::spawn(move || q.status.retake());
        let a = p.status.retake();
        let b = t.join().unwrap();
        assert!(a != b, "two retakes of one call both won");
    });
}
