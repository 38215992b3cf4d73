//! A goroutine-per-connection TCP echo server: the smallest complete weft network program.
//!
//! ```text
//! cargo run --release --example tcp_echo -- --addr 127.0.0.1:7000 --procs 2
//! ```
//!
//! Each accepted connection gets its own G running plain blocking code: read, then write back
//! what was read, until the peer closes. The G parks whenever the socket has nothing to read or
//! no room to write; the runtime's netpoller wakes it.
//!
//! Flags (the same as the HTTP example's): `--addr HOST:PORT` (default 127.0.0.1:7000) and
//! `--procs N` (number of Ps, default: the number of CPUs). Prints one line with the bound address
//! when it is ready.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use weft::net::{TcpListener, TcpStream};

struct Args {
    addr: String,
    procs: Option<usize>,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        addr: "127.0.0.1:7000".into(),
        procs: None,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => args.addr = parser.value()?.string()?,
            Long("procs") => args.procs = Some(parser.value()?.parse()?),
            Short('h') | Long("help") => {
                println!("usage: tcp_echo [--addr HOST:PORT] [--procs N]");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

/// Echo everything the peer sends until it closes its side. The buffer lives on the G's stack
/// (4 KiB, like the peers in the benchmark harness).
fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tcp_echo: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = args.procs {
        if let Err(e) = weft::Config::new().max_procs(n).apply() {
            eprintln!("tcp_echo: --procs {n}: {e}");
            return ExitCode::from(2);
        }
    }
    weft::run(move || {
        let listener = match TcpListener::bind(&args.addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tcp_echo: cannot listen on {}: {e}", args.addr);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().expect("listener address");
        println!("tcp_echo listening on {addr}");
        loop {
            match listener.accept() {
                Ok((conn, _peer)) => {
                    let _ = conn.set_nodelay(true);
                    weft::go!(move || {
                        // A peer that resets the connection is not the server's problem.
                        let _ = serve(conn);
                    });
                }
                Err(e) => {
                    // Out of fds (EMFILE/ENFILE) or similar: back off instead of spinning, and
                    // keep serving the connections we have.
                    eprintln!("tcp_echo: accept: {e}");
                    weft::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    })
}
