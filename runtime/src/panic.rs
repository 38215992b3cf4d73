//! How a panic inside a G is reported (std prints `thread 'name' panicked at ...`).
//!
//! The runtime installs a panic hook when it starts. For a panic on a G it prints, like std does
//! for a thread but naming the coroutine:
//!
//! ```text
//! coroutine 'worker' (#42) panicked at src/main.rs:7:9:
//! boom
//! note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
//! ```
//!
//! (with a backtrace when `RUST_BACKTRACE` asks for one). Panics outside Gs go to the hook that
//! was installed before, std's by default. The payload itself is caught at the G's entry and
//! handed to its `JoinHandle::join`; the runtime keeps running.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::io::Write;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crate::sched::context;

/// Install the hook (once per process; every M calls this before running its first G).
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match context::current_g() {
            Some(gp) => report(gp.name().unwrap_or("<unnamed>"), gp.id(), info),
            None => prev(info),
        }));
    });
}

fn report(name: &str, id: u64, info: &PanicHookInfo<'_>) {
    static FIRST: AtomicBool = AtomicBool::new(true);
    let msg = payload_str(info.payload());
    let loc = info
        .location()
        .map_or_else(|| "<unknown>".to_string(), |l| l.to_string());
    let mut out = format!("coroutine '{name}' (#{id}) panicked at {loc}:\n{msg}\n");
    let bt = Backtrace::capture();
    match bt.status() {
        BacktraceStatus::Captured => out.push_str(&format!("stack backtrace:\n{bt}\n")),
        _ if FIRST.swap(false, Ordering::Relaxed) => out.push_str(
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        ),
        _ => {}
    }
    // One write, so lines from concurrent panics do not interleave.
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// The message of a panic payload, as std prints it.
pub(crate) fn payload_str(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
