//! Protocol tests and loom models of the runtime's lock-free state machines.
//!
//! Run the loom models with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p weft-runtime --release --lib`
//! (a separate target directory is worth it: `CARGO_TARGET_DIR=target/loom`). Under `cfg(loom)`
//! only the pure state machines are compiled; see `loom.rs`.

#[cfg(loom)]
mod loom_chan_group;
#[cfg(loom)]
mod loom_p_status;
#[cfg(loom)]
mod loom_poll_word;
#[cfg(loom)]
mod loom_runq;
#[cfg(loom)]
mod loom_sync;
#[cfg(loom)]
mod loom_wake_word;
