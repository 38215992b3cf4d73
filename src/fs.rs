//! Files: `std::fs`'s API, with every call run through [`blocking`].
//!
//! A socket that is not ready parks its G and the netpoller wakes it; a regular file cannot be
//! waited on that way: epoll refuses regular files and directories (`epoll_ctl` returns `EPERM`),
//! because the kernel always reports them ready even when a read will sleep on the disk. Go
//! therefore runs file I/O as plain system calls bracketed by `entersyscall`/`exitsyscall`: if the
//! call blocks for long, sysmon hands the thread's P to another M, so the P's other goroutines
//! keep running while this one waits in the kernel. weft does the same with [`blocking`]: each
//! call of this module runs on the calling M as a blocking section, and the G's P is handed off
//! if the call takes longer than a few tens of microseconds.
//!
//! The functions and types mirror `std::fs` (same signatures, same errors);
//! [`File`](crate::fs::File) wraps a [`std::fs::File`] and converts to and from it. Whole-buffer
//! operations ([`read_exact`](std::io::Read::read_exact),
//! [`read_to_end`](std::io::Read::read_to_end), [`read_to_string`](std::io::Read::read_to_string),
//! [`write_all`](std::io::Write::write_all), and the free functions such as
//! [`fs::read`](crate::fs::read) and [`fs::write`](crate::fs::write)) are **one** blocking
//! section, not one per chunk.
//!
//! Outside a coroutine every call simply runs, as the `std::fs` call would.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let dir = std::env::temp_dir().join(format!("weft-fs-mod-{}", std::process::id()));
//! weft::run(move || -> std::io::Result<()> {
//!     weft::fs::create_dir_all(&dir)?;
//!     let path = dir.join("hello.txt");
//!     let mut f = weft::fs::File::create(&path)?;
//!     f.write_all(b"hello from a coroutine")?;
//!     drop(f);
//!     let mut s = String::new();
//!     weft::fs::File::open(&path)?.read_to_string(&mut s)?;
//!     assert_eq!(s, "hello from a coroutine");
//!     weft::fs::remove_file(&path)?;
//!     std::fs::remove_dir(&dir)
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::path::Path;

use weft_runtime::blocking;

pub use std::fs::{FileType, Metadata, Permissions};

/// Read the entire contents of a file into a bytes vector, as [`std::fs::read`]. One blocking
/// section for the whole file.
///
/// # Errors
///
/// As [`std::fs::read`]: `NotFound` if `path` does not exist, any other error from opening or
/// reading the file.
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-fs-read-{}", std::process::id()));
/// std::fs::write(&path, b"abc")?;
/// let p = path.clone();
/// let bytes = weft::run(move || weft::fs::read(&p))?;
/// assert_eq!(bytes, b"abc");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    blocking(|| std::fs::read(path))
}

/// Read the entire contents of a file into a string, as [`std::fs::read_to_string`]. One
/// blocking section for the whole file.
///
/// # Errors
///
/// As [`std::fs::read_to_string`]: `NotFound` if `path` does not exist, `InvalidData` if the
/// contents are not UTF-8, any other error from opening or reading the file.
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-fs-read-to-string-{}", std::process::id()));
/// std::fs::write(&path, "héllo")?;
/// let p = path.clone();
/// let s = weft::run(move || weft::fs::read_to_string(&p))?;
/// assert_eq!(s, "héllo");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let path = path.as_ref();
    blocking(|| std::fs::read_to_string(path))
}

/// Write a slice as the entire contents of a file, creating it if it does not exist and
/// truncating it if it does, as [`std::fs::write`]. One blocking section for the whole slice.
///
/// # Errors
///
/// As [`std::fs::write`]: any error from creating or writing the file.
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-fs-write-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || weft::fs::write(&p, b"written"))?;
/// assert_eq!(std::fs::read(&path)?, b"written");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let (path, contents) = (path.as_ref(), contents.as_ref());
    blocking(|| std::fs::write(path, contents))
}

/// Query the metadata of a path, following symbolic links, as [`std::fs::metadata`].
///
/// # Errors
///
/// As [`std::fs::metadata`]: `NotFound` if `path` does not exist, `PermissionDenied` if a
/// directory on the way cannot be searched.
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-fs-metadata-{}", std::process::id()));
/// std::fs::write(&path, [0u8; 42])?;
/// let p = path.clone();
/// let md = weft::run(move || weft::fs::metadata(&p))?;
/// assert!(md.is_file());
/// assert_eq!(md.len(), 42);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::metadata(path))
}

/// Remove a file, as [`std::fs::remove_file`].
///
/// # Errors
///
/// As [`std::fs::remove_file`]: `NotFound` if `path` does not exist, an error if it is a
/// directory or the caller may not remove it.
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-fs-remove-file-{}", std::process::id()));
/// std::fs::write(&path, b"x")?;
/// let p = path.clone();
/// weft::run(move || weft::fs::remove_file(&p))?;
/// assert!(!path.exists());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_file(path))
}

/// Create a directory and all of its missing parents, as [`std::fs::create_dir_all`]. One
/// blocking section for the whole path.
///
/// # Errors
///
/// As [`std::fs::create_dir_all`]: any error creating a component, except that a component
/// which already exists as a directory is not an error.
///
/// ```
/// let top = std::env::temp_dir().join(format!("weft-fs-create-dir-all-{}", std::process::id()));
/// let deep = top.join("a").join("b");
/// let d = deep.clone();
/// weft::run(move || weft::fs::create_dir_all(&d))?;
/// assert!(deep.is_dir());
/// std::fs::remove_dir_all(&top)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir_all(path))
}

/// Rename a file or directory, replacing `to` if it exists (`rename(2)`), as
/// [`std::fs::rename`].
///
/// # Errors
///
/// As [`std::fs::rename`]: `NotFound` if `from` does not exist, an error if `from` and `to` are
/// on different file systems, and the other errors of `rename(2)`.
///
/// ```
/// let dir = std::env::temp_dir();
/// let pid = std::process::id();
/// let from = dir.join(format!("weft-fs-rename-from-{pid}"));
/// let to = dir.join(format!("weft-fs-rename-to-{pid}"));
/// std::fs::write(&from, b"moved")?;
/// let (f, t) = (from.clone(), to.clone());
/// weft::run(move || weft::fs::rename(&f, &t))?;
/// assert!(!from.exists());
/// assert_eq!(std::fs::read(&to)?, b"moved");
/// std::fs::remove_file(&to)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::rename(from, to))
}

/// Copy the contents and permissions of one file to another, creating or truncating `to`;
/// returns the number of bytes copied, as [`std::fs::copy`]. One blocking section for the whole
/// copy (which the kernel may do itself, with `copy_file_range`).
///
/// # Errors
///
/// As [`std::fs::copy`]: `NotFound` if `from` does not exist, an error if `from` is not a
/// regular file, any error opening, reading or writing either file.
///
/// ```
/// let dir = std::env::temp_dir();
/// let pid = std::process::id();
/// let from = dir.join(format!("weft-fs-copy-from-{pid}"));
/// let to = dir.join(format!("weft-fs-copy-to-{pid}"));
/// std::fs::write(&from, b"copied")?;
/// let (f, t) = (from.clone(), to.clone());
/// let n = weft::run(move || weft::fs::copy(&f, &t))?;
/// assert_eq!(n, 6);
/// assert_eq!(std::fs::read(&to)?, b"copied");
/// std::fs::remove_file(&from)?;
/// std::fs::remove_file(&to)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::copy(from, to))
}

/// An open file: a [`std::fs::File`] whose every call runs through [`blocking`].
///
/// [`Read`], [`Write`] and [`Seek`] are implemented for `File` and for `&File` (the calls take
/// `&self` underneath, as std's do, so a file can be shared between Gs; each call is positioned
/// at the shared file offset). `read_exact`, `read_to_end`, `read_to_string` and `write_all`
/// are one blocking section each. The file is closed when the value is dropped; `close(2)` on a
/// regular file does not wait for the disk, so drop runs in place.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || -> std::io::Result<()> {
///     let mut f = weft::fs::File::options().read(true).write(true).create(true).open(&p)?;
///     f.write_all(b"0123456789")?;
///     f.seek(SeekFrom::Start(4))?;
///     let mut buf = [0u8; 3];
///     f.read_exact(&mut buf)?;
///     assert_eq!(&buf, b"456");
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File {
    inner: std::fs::File,
}

impl File {
    /// Open a file read-only, as [`std::fs::File::open`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::open`]: `NotFound` if `path` does not exist, `PermissionDenied`, and
    /// the other errors of `open(2)`.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-open-{}", std::process::id()));
    /// std::fs::write(&path, b"contents")?;
    /// let p = path.clone();
    /// let s = weft::run(move || -> std::io::Result<String> {
    ///     let mut s = String::new();
    ///     weft::fs::File::open(&p)?.read_to_string(&mut s)?;
    ///     Ok(s)
    /// })?;
    /// assert_eq!(s, "contents");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref();
        blocking(|| std::fs::File::open(path)).map(File::from)
    }

    /// Open a file write-only, creating it if it does not exist and truncating it if it does,
    /// as [`std::fs::File::create`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::create`]: the errors of `open(2)`.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-create-{}", std::process::id()));
    /// let p = path.clone();
    /// weft::run(move || weft::fs::File::create(&p)?.write_all(b"new"))?;
    /// assert_eq!(std::fs::read(&path)?, b"new");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref();
        blocking(|| std::fs::File::create(path)).map(File::from)
    }

    /// A new [`OpenOptions`] with every option off, as [`std::fs::File::options`].
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-options-{}", std::process::id()));
    /// let p = path.clone();
    /// weft::run(move || -> std::io::Result<()> {
    ///     weft::fs::File::options().create(true).append(true).open(&p)?.write_all(b"a")?;
    ///     weft::fs::File::options().append(true).open(&p)?.write_all(b"b")
    /// })?;
    /// assert_eq!(std::fs::read(&path)?, b"ab");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Query the file's metadata (`fstat`), as [`std::fs::File::metadata`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::metadata`]: the errors of `fstat(2)`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-metadata-{}", std::process::id()));
    /// std::fs::write(&path, [1u8; 7])?;
    /// let p = path.clone();
    /// let len = weft::run(move || weft::fs::File::open(&p)?.metadata().map(|m| m.len()))?;
    /// assert_eq!(len, 7);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metadata(&self) -> io::Result<Metadata> {
        blocking(|| self.inner.metadata())
    }

    /// Truncate or extend the file to `size` bytes (extended with zeros), as
    /// [`std::fs::File::set_len`]. The file offset is unchanged.
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::set_len`]: an error if the file is not open for writing, and the
    /// other errors of `ftruncate(2)`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-set-len-{}", std::process::id()));
    /// let p = path.clone();
    /// weft::run(move || weft::fs::File::create(&p)?.set_len(1000))?;
    /// assert_eq!(std::fs::metadata(&path)?.len(), 1000);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        blocking(|| self.inner.set_len(size))
    }

    /// Flush the file's data and metadata to the device (`fsync`), as
    /// [`std::fs::File::sync_all`]. This is the call most likely to block for milliseconds.
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::sync_all`]: the errors of `fsync(2)`, such as `EIO`.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-sync-all-{}", std::process::id()));
    /// let p = path.clone();
    /// weft::run(move || -> std::io::Result<()> {
    ///     let mut f = weft::fs::File::create(&p)?;
    ///     f.write_all(b"durable")?;
    ///     f.sync_all()
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_all(&self) -> io::Result<()> {
        blocking(|| self.inner.sync_all())
    }

    /// Flush the file's data, and only the metadata needed to read it back, to the device
    /// (`fdatasync`), as [`std::fs::File::sync_data`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::sync_data`]: the errors of `fdatasync(2)`, such as `EIO`.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-sync-data-{}", std::process::id()));
    /// let p = path.clone();
    /// weft::run(move || -> std::io::Result<()> {
    ///     let mut f = weft::fs::File::create(&p)?;
    ///     f.write_all(b"data")?;
    ///     f.sync_data()
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_data(&self) -> io::Result<()> {
        blocking(|| self.inner.sync_data())
    }

    /// The underlying [`std::fs::File`] (whose calls block the thread, not just the G).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-file-into-std-{}", std::process::id()));
    /// let f = weft::fs::File::create(&path)?;
    /// let std_file: std::fs::File = f.into_std();
    /// assert!(std_file.metadata()?.is_file());
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }
}

/// Wrap an open [`std::fs::File`]; nothing is re-opened and the file offset is kept.
///
/// ```
/// use std::io::Read;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-from-{}", std::process::id()));
/// std::fs::write(&path, b"wrapped")?;
/// let mut f = weft::fs::File::from(std::fs::File::open(&path)?);
/// let mut s = String::new();
/// f.read_to_string(&mut s)?;
/// assert_eq!(s, "wrapped");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl From<std::fs::File> for File {
    fn from(inner: std::fs::File) -> File {
        File { inner }
    }
}

/// Formats as the underlying [`std::fs::File`] (its fd, path and access mode).
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-fs-file-debug-{}", std::process::id()));
/// let f = weft::fs::File::create(&path)?;
/// assert!(format!("{f:?}").contains("File"));
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// The file's descriptor, still owned by the `File`.
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-as-raw-fd-{}", std::process::id()));
/// let f = weft::fs::File::create(&path)?;
/// assert!(f.as_raw_fd() >= 0);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// The file's descriptor, borrowed for as long as the `File`.
///
/// ```
/// use std::os::fd::AsFd;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-as-fd-{}", std::process::id()));
/// let f = weft::fs::File::create(&path)?;
/// let dup = f.as_fd().try_clone_to_owned()?;
/// drop(dup);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Give up the `File` and return its descriptor, which the caller must close.
///
/// ```
/// use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-into-raw-fd-{}", std::process::id()));
/// let fd = weft::fs::File::create(&path)?.into_raw_fd();
/// // SAFETY: `fd` came from `into_raw_fd` just above and nothing else owns it.
/// drop(unsafe { OwnedFd::from_raw_fd(fd) });
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_raw_fd()
    }
}

/// Reads at the shared file offset, each call one blocking section (see [`File`]).
///
/// ```
/// use std::io::Read;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-ref-file-read-{}", std::process::id()));
/// std::fs::write(&path, b"shared")?;
/// let p = path.clone();
/// let v = weft::run(move || -> std::io::Result<Vec<u8>> {
///     let f = weft::fs::File::open(&p)?;
///     let mut v = Vec::new();
///     (&f).read_to_end(&mut v)?;
///     Ok(v)
/// })?;
/// assert_eq!(v, b"shared");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        blocking(|| (&self.inner).read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        blocking(|| (&self.inner).read_vectored(bufs))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        blocking(|| (&self.inner).read_exact(buf))
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        blocking(|| (&self.inner).read_to_end(buf))
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        blocking(|| (&self.inner).read_to_string(buf))
    }
}

/// Writes at the shared file offset (or at the end, if opened for append), each call one
/// blocking section (see [`File`]).
///
/// ```
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-ref-file-write-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || -> std::io::Result<()> {
///     let f = weft::fs::File::create(&p)?;
///     (&f).write_all(b"via ")?;
///     (&f).write_all(b"&File")
/// })?;
/// assert_eq!(std::fs::read(&path)?, b"via &File");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        blocking(|| (&self.inner).write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        blocking(|| (&self.inner).write_vectored(bufs))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        blocking(|| (&self.inner).write_all(buf))
    }

    /// A no-op, as for [`std::fs::File`]: there is no user-space buffer (see
    /// [`File::sync_all`] for the device).
    fn flush(&mut self) -> io::Result<()> {
        (&self.inner).flush()
    }
}

/// Moves the shared file offset (`lseek`), one blocking section per call.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom};
///
/// let path = std::env::temp_dir().join(format!("weft-fs-ref-file-seek-{}", std::process::id()));
/// std::fs::write(&path, b"abcdef")?;
/// let p = path.clone();
/// let tail = weft::run(move || -> std::io::Result<String> {
///     let f = weft::fs::File::open(&p)?;
///     assert_eq!((&f).seek(SeekFrom::End(-2))?, 4);
///     let mut s = String::new();
///     (&f).read_to_string(&mut s)?;
///     Ok(s)
/// })?;
/// assert_eq!(tail, "ef");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        blocking(|| (&self.inner).seek(pos))
    }
}

/// As the `Read` impl for `&File`: the same calls on the same descriptor.
///
/// ```
/// use std::io::Read;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-read-{}", std::process::id()));
/// std::fs::write(&path, b"0123")?;
/// let p = path.clone();
/// let buf = weft::run(move || -> std::io::Result<[u8; 4]> {
///     let mut buf = [0u8; 4];
///     weft::fs::File::open(&p)?.read_exact(&mut buf)?;
///     Ok(buf)
/// })?;
/// assert_eq!(&buf, b"0123");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        (&*self).read_exact(buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        (&*self).read_to_string(buf)
    }
}

/// As the `Write` impl for `&File`: the same calls on the same descriptor.
///
/// ```
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-write-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || -> std::io::Result<()> {
///     let mut f = weft::fs::File::create(&p)?;
///     write!(f, "{}-{}", 1, 2)?;
///     f.flush()
/// })?;
/// assert_eq!(std::fs::read_to_string(&path)?, "1-2");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

/// As the `Seek` impl for `&File`: the same calls on the same descriptor.
///
/// ```
/// use std::io::{Seek, SeekFrom, Write};
///
/// let path = std::env::temp_dir().join(format!("weft-fs-file-seek-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || -> std::io::Result<()> {
///     let mut f = weft::fs::File::create(&p)?;
///     f.write_all(b"hello world")?;
///     f.seek(SeekFrom::Start(6))?;
///     f.write_all(b"weft!")
/// })?;
/// assert_eq!(std::fs::read(&path)?, b"hello weft!");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

/// Options for opening a [`File`]: [`std::fs::OpenOptions`]'s builder, whose
/// [`open`](OpenOptions::open) runs through [`blocking`].
///
/// Unix-only options (`mode`, `custom_flags`) are available through
/// [`std::os::unix::fs::OpenOptionsExt`].
///
/// ```
/// use std::io::{Read, Write};
/// use weft::fs::OpenOptions;
///
/// let path = std::env::temp_dir().join(format!("weft-fs-open-options-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || -> std::io::Result<()> {
///     let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(&p)?;
///     f.write_all(b"fresh")?;
///     // A second create_new fails: the file exists.
///     let again = OpenOptions::new().write(true).create_new(true).open(&p);
///     assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    inner: std::fs::OpenOptions,
}

impl OpenOptions {
    /// Options with everything off (as [`std::fs::OpenOptions::new`]): set at least `read`,
    /// `write` or `append` before opening.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-new-{}", std::process::id()));
    /// let p = path.clone();
    /// let f = weft::run(move || weft::fs::OpenOptions::new().write(true).create(true).open(&p))?;
    /// drop(f);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn new() -> OpenOptions {
        OpenOptions {
            inner: std::fs::OpenOptions::new(),
        }
    }

    /// Open for reading, as [`std::fs::OpenOptions::read`].
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-read-{}", std::process::id()));
    /// std::fs::write(&path, b"r")?;
    /// let p = path.clone();
    /// let f = weft::run(move || weft::fs::OpenOptions::new().read(true).open(&p))?;
    /// drop(f);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.inner.read(read);
        self
    }

    /// Open for writing (at the file offset, 0 after opening), as
    /// [`std::fs::OpenOptions::write`].
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-write-{}", std::process::id()));
    /// std::fs::write(&path, b"xxxx")?;
    /// let p = path.clone();
    /// weft::run(move || weft::fs::OpenOptions::new().write(true).open(&p)?.write_all(b"ab"))?;
    /// assert_eq!(std::fs::read(&path)?, b"abxx");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.inner.write(write);
        self
    }

    /// Open for appending: every write goes to the end of the file (`O_APPEND`), as
    /// [`std::fs::OpenOptions::append`]. Implies write access.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-append-{}", std::process::id()));
    /// std::fs::write(&path, b"log:")?;
    /// let p = path.clone();
    /// weft::run(move || weft::fs::OpenOptions::new().append(true).open(&p)?.write_all(b" line"))?;
    /// assert_eq!(std::fs::read(&path)?, b"log: line");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.inner.append(append);
        self
    }

    /// Truncate an existing file to length 0 when opening it (needs write access), as
    /// [`std::fs::OpenOptions::truncate`].
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-truncate-{}", std::process::id()));
    /// std::fs::write(&path, b"old contents")?;
    /// let p = path.clone();
    /// weft::run(move || weft::fs::OpenOptions::new().write(true).truncate(true).open(&p))?;
    /// assert_eq!(std::fs::metadata(&path)?.len(), 0);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.inner.truncate(truncate);
        self
    }

    /// Create the file if it does not exist (needs write or append access), as
    /// [`std::fs::OpenOptions::create`].
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-create-{}", std::process::id()));
    /// let p = path.clone();
    /// weft::run(move || weft::fs::OpenOptions::new().write(true).create(true).open(&p))?;
    /// assert!(path.is_file());
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.inner.create(create);
        self
    }

    /// Create a new file, failing with `AlreadyExists` if anything exists at the path
    /// (`O_CREAT | O_EXCL`, atomic), as [`std::fs::OpenOptions::create_new`]. Overrides
    /// `create` and `truncate`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-create-new-{}", std::process::id()));
    /// std::fs::write(&path, b"exists")?;
    /// let p = path.clone();
    /// let err = weft::run(move || weft::fs::OpenOptions::new().write(true).create_new(true).open(&p))
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.inner.create_new(create_new);
        self
    }

    /// Open `path` with these options (one blocking section), as
    /// [`std::fs::OpenOptions::open`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::OpenOptions::open`]: `NotFound` if the file does not exist and is not to
    /// be created, `AlreadyExists` for `create_new` on an existing path, `InvalidInput` for an
    /// invalid combination of options, and the other errors of `open(2)`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-fs-oo-open-{}", std::process::id()));
    /// let p = path.clone();
    /// let err = weft::run(move || weft::fs::OpenOptions::new().read(true).open(&p)).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let path = path.as_ref();
        blocking(|| self.inner.open(path)).map(File::from)
    }
}

/// Same as [`OpenOptions::new`]: everything off.
///
/// ```
/// let o = weft::fs::OpenOptions::default();
/// let path = std::env::temp_dir().join(format!("weft-fs-oo-default-{}", std::process::id()));
/// // No access mode chosen: std reports InvalidInput.
/// assert_eq!(o.open(&path).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
/// ```
impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

/// Unix-only options: the permission bits of a created file and extra `open(2)` flags, as for
/// [`std::fs::OpenOptions`].
///
/// ```
/// use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
///
/// let path = std::env::temp_dir().join(format!("weft-fs-oo-ext-{}", std::process::id()));
/// let p = path.clone();
/// weft::run(move || weft::fs::OpenOptions::new().write(true).create(true).mode(0o600).open(&p))?;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl std::os::unix::fs::OpenOptionsExt for OpenOptions {
    fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.inner.mode(mode);
        self
    }

    fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.inner.custom_flags(flags);
        self
    }
}
