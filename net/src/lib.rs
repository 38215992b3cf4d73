//! # weft-net: sockets over the weft runtime
//!
//! Non-blocking TCP/UDP/Unix sockets whose `read`/`write`/`accept`/`connect` park the calling G
//! on `EAGAIN` and are woken by the epoll netpoller. This crate is an empty shell until the
//! netpoller lands (see the project's issue list); it exists so that the workspace layout is
//! final and `weft::net` has its place.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
