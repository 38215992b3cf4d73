#!/usr/bin/env bash
# The whole test suite: unit, integration, doc and proptest tests (release build, so that the
# TLS-across-switch rules are exercised with full optimisation), the concurrent suites once more
# under the randomized scheduler, then the loom models of the lock-free state machines (.ci/loom).
set -euo pipefail
cd "$(dirname "$0")"
# Real clients the HTTP example's tests drive (curl, python3): installed if missing.
.ci/ensure-tools
cargo test --workspace --release
# The concurrent suites again with the scheduler's order shuffled (Go's randomizeScheduler):
# code that only works in one order fails here. The example servers started by the last four
# inherit the setting. docs/TESTING.md lists what each suite proves.
WEFT_RANDOMIZE_SCHED=1 cargo test --release -p weft \
    --test chan_np --test sync_np --test rt_np --test timers_np --test stress_spawn \
    --test sysmon_np --test net_tcp_np --test net_short_read --test net_udp_unix \
    --test stress_deadlines --test stress_resets --test stress_programs \
    --test tls_echo --test ws_echo --test chat --test proxy
.ci/loom
