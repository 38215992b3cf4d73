#!/usr/bin/env bash
# The whole test suite: unit, integration, doc and proptest tests (release build, so that the
# TLS-across-switch rules are exercised with full optimisation), then the loom models of the
# lock-free state machines in their own target directory.
set -euo pipefail
cd "$(dirname "$0")"
# Real clients the HTTP example's tests drive (curl, python3): installed if missing.
.ci/ensure-tools
cargo test --workspace --release
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test -p weft-runtime --release --lib
