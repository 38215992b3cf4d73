#!/usr/bin/env bash
# Run ../shared/bench/compare.sh's HTTP scenario (wrk) with weft's http_echo example beside the
# peers (Go net/http, hyper, may_minihttp and a raw epoll responder), as docs/PERFORMANCE.md
# reports it.
#
#   benches/compare_http.sh                      # pinned + unpinned, 50 and 1000 connections
#   benches/compare_http.sh --http-body 64       # POST a 64-byte body that is echoed
#   benches/compare_http.sh --rounds 5 --placement pinned   # any compare.sh option passes through
#
# Needs the harness's tools (wrk, Go): run ../shared/bench/setup.sh once as root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bench="${WEFT_BENCH_DIR:-$root/../shared/bench}"
if [ ! -x "$bench/compare.sh" ]; then
    echo "compare_http.sh: no harness at $bench (set WEFT_BENCH_DIR)" >&2
    exit 2
fi
(cd "$root" && cargo build --release --example http_echo)
exe="$root/target/release/examples/http_echo"
cd "$bench"
exec ./compare.sh --scenario http \
    --server "http:weft=$exe --addr 127.0.0.1:{port} --procs {workers} --quiet" "$@"
