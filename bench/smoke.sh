#!/usr/bin/env bash
# Smoke test of every chatbench scenario, for CI: small counts, a few seconds, loopback only.
# It checks that the benchmark still runs end to end against the relay and a spawned chatd
# and that every message arrived exactly once and in order (chatbench exits non-zero if not).
# No timing is asserted: CI machines are shared and noisy.
#
# Usage: bench/smoke.sh [--release]   (debug build by default: faster to build, enough here)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile=debug
flags=()
if [[ "${1:-}" == "--release" ]]; then
    profile=release
    flags=(--release)
fi
cargo build "${flags[@]}" -q -p chatbench -p chatd
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$bin/chatbench" all --spawn "$bin/chatd" \
    --pairs 4 --msgs 500 --window 16 \
    --receivers 20 --fanout-msgs 50 \
    --rate 2000 --latency-msgs 1000 \
    --idle-conns 50 --idle-secs 1 \
    --slow-receivers 2 --slow-msgs 300 --slow-pad 100 --slow-hold 1 \
    --deadline 60 | tee "$out"

# Every scenario must have produced a machine line for both servers, and ratios.
for s in pairs fanout latency slow idle; do
    for t in relay chatd; do
        grep -q "^chatbench scenario=$s target=$t " "$out" || {
            echo "smoke: no result for $s against $t" >&2
            exit 1
        }
    done
    grep -q "^chatbench-ratio scenario=$s " "$out" || {
        echo "smoke: no ratio line for $s" >&2
        exit 1
    }
done
echo "smoke: all scenarios ran"
