//! Blocking calls: `weft::blocking` (Go: `entersyscall` / `exitsyscall`).
//!
//! Placeholder while the hand-off protocol lands: runs `f` in place.

/// Run `f`, a call that may block the OS thread (a file read, DNS resolution, a foreign
/// library), without holding back the other Gs of this P.
///
/// ```
/// let n = weft_runtime::run(|| weft_runtime::blocking(|| std::fs::read("/proc/self/stat").map(|v| v.len())));
/// assert!(n.unwrap() > 0);
/// ```
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    f()
}
