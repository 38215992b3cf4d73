//! Synchronisation that parks Gs instead of blocking OS threads (Go: `sema.go`, `sync`).
//!
//! For now this holds the one primitive the others are built on, [`Sema`]; the channel and lock
//! types arrive with their own issue and sit on top of it.

mod sema;

pub use sema::Sema;
