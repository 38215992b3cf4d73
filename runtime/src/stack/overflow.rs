//! Stack-overflow reporting: a SIGSEGV/SIGBUS handler that names the coroutine.
//!
//! corosensei has no overflow handler, and std's only recognises a *thread's* guard page: an
//! overflow on a G stack would otherwise kill the process with SIGSEGV and an empty stderr. This
//! handler runs on an alternate signal stack (every M installs a 64 KiB one, `install_altstack`),
//! checks whether the fault address lies in the guard page of the G running on this thread,
//! and if so writes
//!
//! ```text
//! fatal error: coroutine stack overflow
//! coroutine 'name' (#17) overflowed its 256 KiB stack (guard page hit at 0x7f...)
//! ```
//!
//! with `write(2)` and calls `abort()`. Recovering is not sound for arbitrary Rust code (locks
//! held, invariants half-updated), so it never tries. Faults elsewhere go to the handler that was
//! installed before ours (std's, which reports thread-stack overflows), or to the default action.
//!
//! Everything here is async-signal-safe: no allocation, no locks, no formatting machinery; the
//! message is assembled in a stack buffer.

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use crate::sched::context;

/// Size of each M's alternate signal stack (std gives threads only ~8 KiB; Wasmer uses 64 KiB).
const ALTSTACK_SIZE: usize = 64 * 1024;

/// The SIGSEGV and SIGBUS actions that were installed before ours.
static PREV: OnceLock<[libc::sigaction; 2]> = OnceLock::new();

fn slot(sig: libc::c_int) -> usize {
    usize::from(sig == libc::SIGBUS)
}

/// Install the handler for SIGSEGV and SIGBUS (once per process).
pub(crate) fn install_handler() {
    PREV.get_or_init(|| {
        let mut prev = [zeroed_sigaction(), zeroed_sigaction()];
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            let mut act = zeroed_sigaction();
            act.sa_sigaction = handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            // SAFETY: `act` is fully initialised; `prev` receives the old action; the handler
            // below is async-signal-safe.
            unsafe {
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, &mut prev[slot(sig)]);
            }
        }
        prev
    });
}

fn zeroed_sigaction() -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zero is a valid (SIG_DFL) value.
    unsafe { MaybeUninit::<libc::sigaction>::zeroed().assume_init() }
}

/// Give the calling thread (an M) a 64 KiB alternate signal stack, so the handler has room even
/// though the fault happened at the very bottom of a G stack. The mapping is never freed: Ms live
/// as long as the process.
pub(crate) fn install_altstack() {
    let page = super::page_size();
    // SAFETY: a fresh anonymous mapping; nothing else references it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALTSTACK_SIZE + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        // Without an altstack the handler still runs for faults on the thread stack; for a G
        // overflow the kernel then kills the process with SIGSEGV. Not worth failing the M.
        return;
    }
    let ss = libc::stack_t {
        ss_sp: (p as usize + page) as *mut libc::c_void,
        ss_flags: 0,
        ss_size: ALTSTACK_SIZE,
    };
    // SAFETY: the first page of our own mapping becomes its guard; then we register the rest as
    // this thread's signal stack. If either fails, the thread keeps whatever altstack it had
    // (std gives its threads one) and we release our mapping.
    unsafe {
        if libc::mprotect(p, page, libc::PROT_NONE) != 0
            || libc::sigaltstack(&ss, std::ptr::null_mut()) != 0
        {
            libc::munmap(p, ALTSTACK_SIZE + page);
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let gp = context::current_g_raw();
    if !gp.is_null() {
        // SAFETY: CUR_G is set only while this thread executes that G, which is alive; the fields
        // read here are not written while the G runs.
        let g = unsafe { &*gp };
        let (lo, hi) = g.guard.get();
        if addr >= lo && addr < hi {
            report_overflow(g, addr);
        }
    }
    chain(sig, info, ctx);
}

fn report_overflow(g: &crate::sched::g::G, addr: usize) -> ! {
    let mut buf = Buf::new();
    buf.push(b"\nfatal error: coroutine stack overflow\ncoroutine '");
    // SAFETY: the name is not modified while the G runs (see report_overflow's caller).
    match unsafe { &*g.name.get() } {
        Some(name) => buf.push(name.as_bytes()),
        None => buf.push(b"<unnamed>"),
    }
    buf.push(b"' (#");
    buf.push_dec(g.id.load(std::sync::atomic::Ordering::Relaxed) as usize);
    buf.push(b") overflowed its ");
    buf.push_dec(g.stack_size.get() / 1024);
    buf.push(b" KiB stack (guard page hit at 0x");
    buf.push_hex(addr);
    buf.push(b")\nhint: give it a bigger stack with weft::Builder::stack_size, or WEFT_STACK_SIZE for all coroutines\n");
    // SAFETY: write(2) and abort(3) are async-signal-safe; the buffer is ours.
    unsafe {
        libc::write(2, buf.data.as_ptr().cast(), buf.len);
        libc::abort();
    }
}

/// Hand a fault that is not ours to the previous handler.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(prev) = PREV.get() else { return };
    let prev = &prev[slot(sig)];
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the old disposition and return: the faulting instruction runs again and the
        // kernel applies the default action (a core dump with the right signal).
        // SAFETY: reinstalling a previously valid action; raise(3) is async-signal-safe.
        unsafe {
            libc::sigaction(sig, prev, std::ptr::null_mut());
            // A signal sent with kill(2) (si_code <= 0) is not re-triggered by returning, so
            // deliver it again now that the default action is back.
            if (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes just the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// A fixed buffer for the message: no allocation in a signal handler.
struct Buf {
    data: [u8; 512],
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Buf {
            data: [0; 512],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.data.len() - self.len);
        self.data[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_dec(&mut self, mut v: usize) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&tmp[i..]);
    }

    fn push_hex(&mut self, mut v: usize) {
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[v & 0xf];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.push(&tmp[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::Buf;

    #[test]
    fn buf_formats_numbers_and_truncates() {
        let mut b = Buf::new();
        b.push(b"x=");
        b.push_dec(0);
        b.push(b" ");
        b.push_dec(1234567);
        b.push(b" 0x");
        b.push_hex(0xdead_beef);
        assert_eq!(&b.data[..b.len], b"x=0 1234567 0xdeadbeef");
        for _ in 0..100 {
            b.push(b"0123456789");
        }
        assert_eq!(b.len, 512);
    }
}
