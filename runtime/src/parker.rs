//! `park()` / `current().unpark()`: std's thread-parking API, for Gs.
//!
//! Each G has a token, as each std thread does. [`park`] consumes the token, or parks the G until
//! [`Coroutine::unpark`] makes one available; `unpark` before `park` makes that `park` return at
//! once. As with std, `park` may also return spuriously, so callers check their own condition
//! in a loop. This is the user-level face of the runtime's park/ready.
//!
//! The token lives in a small shared object (`Token`) created the first time a G asks for its
//! handle, so a [`Coroutine`] handle stays valid after its G has finished (unparking it is then
//! a no-op), and never points at a recycled G.
//!
//! The transitions live in `sched/wake_word.rs` (`TokenWord`), where loom checks them.
//!
//! | token word     | meaning                         | `park`                | `unpark`                   |
//! |----------------|---------------------------------|-----------------------|----------------------------|
//! | `EMPTY`        | no token, nobody parked         | publish self (commit) | → `NOTIFIED`               |
//! | `NOTIFIED`     | a token is available            | → `EMPTY`, return     | nothing                    |
//! | G pointer      | the G is parked on this token   | —                     | CAS → `EMPTY`, `ready(g)`  |

use std::ptr::NonNull;
use std::sync::Arc;

use crate::sched::g::GRef;
use crate::sched::wake_word::TokenWord;
use crate::sched::{context, park as sched_park};

/// A G's park token. See the module doc and `sched/wake_word.rs`.
#[derive(Debug)]
pub(crate) struct Token {
    word: TokenWord,
    id: u64,
}

impl Token {
    pub(crate) fn new(id: u64) -> Arc<Token> {
        Arc::new(Token {
            word: TokenWord::new(),
            id,
        })
    }
}

/// A handle to a G, for waking it from [`park`] (the shape of `std::thread::Thread`).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// weft_runtime::run(|| {
///     let flag = Arc::new(AtomicBool::new(false));
///     let me = weft_runtime::current().expect("inside a coroutine");
///     let f = flag.clone();
///     weft_runtime::go!(move || {
///         f.store(true, Ordering::Release);
///         me.unpark();
///     });
///     while !flag.load(Ordering::Acquire) {
///         weft_runtime::park();
///     }
/// });
/// ```
#[derive(Clone, Debug)]
pub struct Coroutine {
    token: Arc<Token>,
}

impl Coroutine {
    /// Make the token available: wake the G if it is parked in [`park`], else make its next
    /// `park` return at once. Callable from any G or thread; a no-op on a finished G.
    pub fn unpark(&self) {
        if let Some(g) = self.token.word.unpark() {
            sched_park::ready(GRef(NonNull::new(g as *mut _).expect("parked G pointer")));
        }
    }

    /// The G's id.
    pub fn id(&self) -> u64 {
        self.token.id
    }
}

/// A handle to the calling G, or `None` on a plain thread.
///
/// ```
/// assert!(weft_runtime::current().is_none());
/// let id = weft_runtime::run(|| weft_runtime::current().unwrap().id());
/// assert!(id > 0);
/// ```
pub fn current() -> Option<Coroutine> {
    let gp = context::current_g()?;
    Some(Coroutine {
        token: own_token(&gp).clone(),
    })
}

/// The calling G's token, created on first use. `gp` must be the calling G.
///
/// The reference is used by the calling G, and by its park commit on the M's stack: the token
/// stays alive until the G has finished (`gdestroy` drops the slot's `Arc`), and the commit's
/// last access to it is the CAS that publishes the G (the same pattern as the join packet).
fn own_token(gp: &GRef) -> &Arc<Token> {
    // SAFETY: the calling G owns itself while it runs and is the only reader and writer of its
    // token slot (the slot is cleared only in `gdestroy`, after the G has finished); see above
    // for how long the returned reference is used.
    let slot = unsafe { &mut *gp.g().token.get() };
    slot.get_or_insert_with(|| Token::new(gp.id()))
}

/// Block the calling G until its token is available, then consume it (the shape of
/// `std::thread::park`; may return spuriously, so check your condition in a loop). Only the
/// calling G parks; its M runs other Gs meanwhile. On a plain thread this is `std::thread::park`.
///
/// See [`Coroutine`] for an example.
pub fn park() {
    let Some(gp) = context::current_g() else {
        std::thread::park();
        return;
    };
    // No Arc clone on this hot path: the token lives in our own G, which outlives this call.
    let word = &own_token(&gp).word;
    if word.take_token() {
        return;
    }
    sched_park::park(crate::wait_reason::WaitReason::Park, 0, |gp| {
        word.commit_park(gp.as_ptr() as usize)
    });
}
