//! `Barrier`: N Gs wait until all N have arrived (std's `Barrier`, parking Gs).
//!
//! A [`Mutex`] holds the number of arrivals and a generation; a [`Condvar`] holds the waiters.
//! The N-th arrival resets the count, starts the next generation, wakes everyone and is the
//! leader. Waiters wait for the generation to change (not for the count, which the next round
//! may already be filling), so a barrier can be reused at once and no round's wakeup is lost or
//! stolen by the next round.

use std::fmt;

use super::condvar::Condvar;
use super::mutex::Mutex;

struct State {
    arrived: usize,
    generation: u64,
}

/// A reusable rendezvous point for `n` Gs (or threads): each [`wait`](Barrier::wait) parks
/// until `n` callers are waiting, then all continue; exactly one of them is the leader.
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(5));
/// let hs: Vec<_> = (0..5)
///     .map(|_| {
///         let b = barrier.clone();
///         weft_runtime::go!(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = hs.into_iter().map(|h| h.join().unwrap());
/// assert_eq!(leaders.filter(|&leader| leader).count(), 1);
/// ```
pub struct Barrier {
    n: usize,
    state: Mutex<State>,
    cv: Condvar,
}

/// What [`Barrier::wait`] returns: whether this caller was the round's leader.
///
/// ```
/// use weft_runtime::sync::Barrier;
///
/// assert!(Barrier::new(1).wait().is_leader());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one caller per round: the last to arrive.
    ///
    /// ```
    /// use weft_runtime::sync::Barrier;
    ///
    /// let b = Barrier::new(1);
    /// assert!(b.wait().is_leader());
    /// assert!(b.wait().is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` callers per round (`n == 0` behaves as 1, as std's). `const`, so it
    /// can initialise a `static`.
    ///
    /// ```
    /// use weft_runtime::sync::Barrier;
    ///
    /// static START: Barrier = Barrier::new(1);
    /// START.wait();
    /// ```
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: Mutex::new(State {
                arrived: 0,
                generation: 0,
            }),
            cv: Condvar::new(),
        }
    }

    /// Park until `n` callers (this one included) are waiting, then return. The last caller
    /// to arrive is the leader and wakes the others.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_runtime::sync::Barrier;
    ///
    /// let b = Arc::new(Barrier::new(2));
    /// let b2 = b.clone();
    /// let h = weft_runtime::go!(move || b2.wait().is_leader());
    /// let me = b.wait().is_leader();
    /// assert!(me ^ h.join().unwrap());
    /// ```
    pub fn wait(&self) -> BarrierWaitResult {
        let mut st = self.state.lock();
        let generation = st.generation;
        st.arrived += 1;
        if st.arrived < self.n {
            let _st = self.cv.wait_while(st, |st| st.generation == generation);
            BarrierWaitResult(false)
        } else {
            st.arrived = 0;
            st.generation = st.generation.wrapping_add(1);
            drop(st);
            self.cv.notify_all();
            BarrierWaitResult(true)
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}
