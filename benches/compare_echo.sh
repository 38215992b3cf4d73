#!/usr/bin/env bash
# Run ../shared/bench/compare.sh's echo scenario with weft's tcp_echo example beside the peers
# (Go, tokio, may and a raw epoll loop), as docs/PERFORMANCE.md reports it.
#
#   benches/compare_echo.sh                      # pinned + unpinned, 50 and 1000 connections
#   benches/compare_echo.sh --rounds 5 --placement pinned   # any compare.sh option passes through
#
# Needs the harness's tools (wrk, Go): run ../shared/bench/setup.sh once as root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bench="${WEFT_BENCH_DIR:-$root/../shared/bench}"
if [ ! -x "$bench/compare.sh" ]; then
    echo "compare_echo.sh: no harness at $bench (set WEFT_BENCH_DIR)" >&2
    exit 2
fi
(cd "$root" && cargo build --release --example tcp_echo)
exe="$root/target/release/examples/tcp_echo"
cd "$bench"
exec ./compare.sh --scenario echo \
    --server "echo:weft=$exe --addr 127.0.0.1:{port} --procs {workers}" "$@"
