//! What every socket type has in the same form, generated once: std's per-op timeouts and Go's
//! deadlines, `take_error`/`try_clone`/`close`/`from_std`, the fd conversions (all socket
//! types), and the `Read`/`Write` impls (stream types). Each type's own file keeps what differs.

/// std's `set_read_timeout`/`set_write_timeout`/`read_timeout`/`write_timeout` and Go's
/// `set_deadline`/`set_read_deadline`/`set_write_deadline`, for a type with an `fd: Fd<_>`
/// field. Invoked inside the type's `impl` block.
macro_rules! timing_methods {
    () => {
        /// std's read timeout: each read (receive, accept) waits at most this long, then fails
        /// with `ErrorKind::TimedOut` (std on Unix says `WouldBlock`; weft follows Go and says
        /// what happened). `None` waits forever; `Some(0)` is an `InvalidInput` error.
        pub fn set_read_timeout(
            &self,
            timeout: Option<::std::time::Duration>,
        ) -> ::std::io::Result<()> {
            self.fd
                .set_timeout(::weft_runtime::netpoll::Direction::Read, timeout)
        }

        /// std's write timeout (writes, sends); see
        /// [`set_read_timeout`](Self::set_read_timeout).
        pub fn set_write_timeout(
            &self,
            timeout: Option<::std::time::Duration>,
        ) -> ::std::io::Result<()> {
            self.fd
                .set_timeout(::weft_runtime::netpoll::Direction::Write, timeout)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            self.fd.timeout(::weft_runtime::netpoll::Direction::Read)
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            self.fd.timeout(::weft_runtime::netpoll::Direction::Write)
        }

        /// Go's `SetDeadline`: an absolute deadline for both directions, `None` to clear. Ops
        /// waiting past it fail with `ErrorKind::TimedOut`; a deadline in the past fails the next
        /// op at once; moving it affects ops already waiting.
        pub fn set_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.fd
                .set_deadline(::weft_runtime::netpoll::Direction::Read, deadline)?;
            self.fd
                .set_deadline(::weft_runtime::netpoll::Direction::Write, deadline)
        }

        /// Go's `SetReadDeadline` (reads, receives, peeks).
        pub fn set_read_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.fd
                .set_deadline(::weft_runtime::netpoll::Direction::Read, deadline)
        }

        /// Go's `SetWriteDeadline` (writes, sends).
        pub fn set_write_deadline(
            &self,
            deadline: Option<::std::time::Instant>,
        ) -> ::std::io::Result<()> {
            self.fd
                .set_deadline(::weft_runtime::netpoll::Direction::Write, deadline)
        }
    };
}

/// `take_error`, `try_clone`, `close` and `from_std`, for a socket type `$t` wrapping std's `$std`
/// in an `fd: Fd<$std>` field. Invoked inside the type's `impl` block.
macro_rules! fd_methods {
    ($t:ident, $std:ty) => {
        /// Read and clear `SO_ERROR`.
        pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
            let _g = self.fd.incref()?;
            self.fd.sock().take_error()
        }

        /// A second handle to the same socket: a `dup`ed fd with its own registration, e.g. for
        /// one G that reads and another that writes. Timeouts and deadlines are per handle.
        pub fn try_clone(&self) -> ::std::io::Result<$t> {
            let _g = self.fd.incref()?;
            Ok($t {
                fd: $crate::fd::Fd::new(self.fd.sock().try_clone()?)?,
            })
        }

        /// Close the socket now, even while other Gs are blocked on it (Go's `Close`): their
        /// ops, and every later one, return the closed error (`ErrorKind::NotConnected`, see
        /// [`is_closed`](crate::is_closed)); a second `close` too. Returns once the socket is
        /// closed (the connection torn down, a listener's address free). The fd number stays
        /// reserved until the value is dropped; dropping it also closes the socket.
        pub fn close(&self) -> ::std::io::Result<()> {
            self.fd.close()
        }

        /// Wrap a std socket (switched to non-blocking mode).
        pub fn from_std(s: $std) -> ::std::io::Result<$t> {
            s.set_nonblocking(true)?;
            Ok($t {
                fd: $crate::fd::Fd::new(s)?,
            })
        }
    };
}

/// `Read` and `Write` for a stream type and for `&Type`. `write_all` holds the write lock for
/// the whole buffer, so concurrent `write_all`s on one stream never interleave (as Go's
/// `Conn.Write`).
///
/// `$short_read_drains`: whether a read that returns less than asked proves the socket's receive
/// queue was empty (true for TCP; see `Fd::read_stream`).
macro_rules! stream_io {
    ($t:ident, $short_read_drains:expr) => {
        impl ::std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                let len = buf.len();
                self.fd.read_stream(len, $short_read_drains, |mut s| {
                    ::std::io::Read::read(&mut s, buf)
                })
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.fd
                    .op(::weft_runtime::netpoll::Direction::Read, |mut s| {
                        ::std::io::Read::read_vectored(&mut s, bufs)
                    })
            }
        }

        impl ::std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.fd
                    .op(::weft_runtime::netpoll::Direction::Write, |mut s| {
                        ::std::io::Write::write(&mut s, buf)
                    })
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.fd
                    .op(::weft_runtime::netpoll::Direction::Write, |mut s| {
                        ::std::io::Write::write_vectored(&mut s, bufs)
                    })
            }

            fn write_all(&mut self, mut buf: &[u8]) -> ::std::io::Result<()> {
                let dir = ::weft_runtime::netpoll::Direction::Write;
                let _g = self.fd.lock(dir)?;
                while !buf.is_empty() {
                    match self
                        .fd
                        .op_locked(dir, |mut s| ::std::io::Write::write(&mut s, buf))?
                    {
                        0 => {
                            return Err(::std::io::Error::new(
                                ::std::io::ErrorKind::WriteZero,
                                "failed to write whole buffer",
                            ))
                        }
                        n => buf = &buf[n..],
                    }
                }
                Ok(())
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                ::std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }

        impl ::std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                ::std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn write_all(&mut self, buf: &[u8]) -> ::std::io::Result<()> {
                ::std::io::Write::write_all(&mut &*self, buf)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// The conversions every socket type has: `AsRawFd`, `AsFd`, `IntoRawFd` (deregisters and
/// hands over the still non-blocking fd), and `From` the std type (switched to non-blocking;
/// panics only if the netpoller cannot register the fd, e.g. out of memory — use `from_std` to
/// get that as an error).
macro_rules! fd_traits {
    ($t:ident, $std:ty) => {
        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.fd.raw()
            }
        }
        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(self.fd.sock())
            }
        }
        impl ::std::os::fd::IntoRawFd for $t {
            fn into_raw_fd(self) -> ::std::os::fd::RawFd {
                ::std::os::fd::IntoRawFd::into_raw_fd(self.fd.into_inner())
            }
        }
        impl From<$std> for $t {
            fn from(s: $std) -> $t {
                match $t::from_std(s) {
                    Ok(v) => v,
                    Err(e) => panic!(
                        "weft: cannot register a {} with the netpoller: {e}",
                        stringify!($std)
                    ),
                }
            }
        }
    };
}

pub(crate) use {fd_methods, fd_traits, stream_io, timing_methods};
