//! Why a G is parked (Go: `waitReason` in `runtime2.go`), as shown by the goroutine dump, the
//! deadlock report and `stats()`.
//!
//! Every blocking path of the runtime names its reason when it parks: channels and `select`,
//! socket reads and writes (with the fd), `sleep`, `join`, `park`, and each sync primitive (its
//! wait queue carries the reason it was built with). Compiled under loom too (the sync state
//! machines store it), so it depends on nothing.

/// Why a G is parked. `None` while it runs or is runnable.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// Not waiting.
    None = 0,
    /// A channel receive (`Receiver::recv`, `iter`, ...).
    ChanRecv,
    /// A channel send on a full channel.
    ChanSend,
    /// `select!` with no ready arm.
    Select,
    /// `select!` with no arms at all: blocks forever.
    SelectNoCases,
    /// `weft::sleep`.
    Sleep,
    /// A socket read, accept or recv (detail: the fd).
    IoRead,
    /// A socket write, connect or send (detail: the fd).
    IoWrite,
    /// `JoinHandle::join`.
    Join,
    /// `weft::park`.
    Park,
    /// `sync::Mutex` (and the lock inside `RwLock` for writers).
    Mutex,
    /// `sync::RwLock::read`.
    RwLockRead,
    /// `sync::RwLock::write`.
    RwLockWrite,
    /// `sync::Condvar::wait` (and `sync::Barrier::wait`, built on it).
    Condvar,
    /// `sync::WaitGroup::wait`.
    WaitGroup,
    /// `sync::Semaphore::acquire` and the runtime's semaphores.
    Semaphore,
    /// `sync::Once` / `OnceLock` while another G runs the initialiser.
    Once,
}

impl WaitReason {
    /// The reason as Go's dump spells such things ("chan receive", "IO wait", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::None => "running",
            WaitReason::ChanRecv => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::Sleep => "sleep",
            WaitReason::IoRead => "IO wait (read)",
            WaitReason::IoWrite => "IO wait (write)",
            WaitReason::Join => "join",
            WaitReason::Park => "park",
            WaitReason::Mutex => "sync.Mutex.Lock",
            WaitReason::RwLockRead => "sync.RWMutex.RLock",
            WaitReason::RwLockWrite => "sync.RWMutex.Lock",
            WaitReason::Condvar => "sync.Cond.Wait",
            WaitReason::WaitGroup => "sync.WaitGroup.Wait",
            WaitReason::Semaphore => "semacquire",
            WaitReason::Once => "sync.Once",
        }
    }

    /// The reason stored as a byte (see [`as_u8`](Self::as_u8)); unknown bytes read as `None`.
    pub fn from_u8(b: u8) -> WaitReason {
        const ALL: [WaitReason; 17] = [
            WaitReason::None,
            WaitReason::ChanRecv,
            WaitReason::ChanSend,
            WaitReason::Select,
            WaitReason::SelectNoCases,
            WaitReason::Sleep,
            WaitReason::IoRead,
            WaitReason::IoWrite,
            WaitReason::Join,
            WaitReason::Park,
            WaitReason::Mutex,
            WaitReason::RwLockRead,
            WaitReason::RwLockWrite,
            WaitReason::Condvar,
            WaitReason::WaitGroup,
            WaitReason::Semaphore,
            WaitReason::Once,
        ];
        ALL.get(b as usize).copied().unwrap_or(WaitReason::None)
    }

    /// The byte this reason is stored as.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Number of reasons (for per-reason counters).
    pub const COUNT: usize = 17;
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
