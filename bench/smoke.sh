#!/usr/bin/env bash
# Smoke test of every chatbench scenario, for CI: small counts, a few seconds, loopback only.
# It checks that the benchmark still runs end to end against the relay and a spawned chatd
# and that every message arrived exactly once and in order (chatbench exits non-zero if not);
# that the JSON relay still runs; and, for each of nats-server and redis-server that is
# installed, starts it on a free loopback port (killed on exit) and runs a small pairs and
# fanout with it as a --peer, checking its lines the same way.
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

tmp="$(mktemp -d)"
out="$tmp/out"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
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

# The JSON relay (--relay json) still works as a ceiling.
"$bin/chatbench" pairs --relay json --relay-only --pairs 4 --msgs 500 --window 16 \
    --deadline 60 | tee "$out"
grep -q "^chatbench scenario=pairs target=relay .* relay=json" "$out" || {
    echo "smoke: no result for pairs against the JSON relay" >&2
    exit 1
}

# Peers. A port is free when nothing answers on it; a server that exits at once (it lost a
# race for the port) is tried again on another.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
peers=()
kinds=()
# start_peer KIND COMMAND...: runs COMMAND with @PORT@ replaced by a free port.
start_peer() {
    local kind=$1 try port pid i
    shift
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 40000))
        port_is_free "$port" || continue
        "${@//@PORT@/$port}" >"$tmp/$kind.log" 2>&1 &
        pid=$!
        for i in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            if ! port_is_free "$port"; then
                pids+=("$pid")
                # No pid given: chatbench finds it by the port, which this also checks.
                peers+=(--peer "$kind=127.0.0.1:$port")
                kinds+=("$kind")
                echo "smoke: $kind listening on 127.0.0.1:$port (pid $pid)"
                return 0
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "smoke: could not start $kind; its log:" >&2
    cat "$tmp/$kind.log" >&2
    exit 1
}
# The settings that keep each server from cutting off a reader that falls behind (the
# README's Performance section gives the same).
if command -v nats-server >/dev/null 2>&1; then
    printf 'max_pending: 1073741824\nwrite_deadline: "60s"\n' >"$tmp/nats.conf"
    start_peer nats nats-server -a 127.0.0.1 -p @PORT@ -c "$tmp/nats.conf"
else
    echo "smoke: nats-server is not installed: no NATS peer"
fi
if command -v redis-server >/dev/null 2>&1; then
    start_peer redis redis-server --bind 127.0.0.1 --port @PORT@ --dir "$tmp" --save '' \
        --appendonly no --client-output-buffer-limit 'pubsub 0 0 0' --protected-mode no
else
    echo "smoke: redis-server is not installed: no Redis peer"
fi
if [ ${#peers[@]} -gt 0 ]; then
    for s in pairs fanout; do
        "$bin/chatbench" "$s" --spawn "$bin/chatd" "${peers[@]}" \
            --pairs 4 --msgs 500 --window 16 --receivers 20 --fanout-msgs 50 \
            --deadline 60 | tee "$out"
        for t in "${kinds[@]}"; do
            line="$(grep "^chatbench scenario=$s target=$t " "$out")" || {
                echo "smoke: no result for $s against $t" >&2
                exit 1
            }
            # Peers are not in chatbench's exit code: check their delivery here, and that
            # their pid was found (their CPU is measured).
            for want in " missing=0 " " dups=0 " " reordered=0 " " out_of_range=0 " " foreign=0 "; do
                [[ "$line" == *"$want"* ]] || {
                    echo "smoke: $s against $t: not$want" >&2
                    exit 1
                }
            done
            [[ "$line" != *" server_cpu_s=na "* ]] || {
                echo "smoke: $s against $t: its pid was not found" >&2
                exit 1
            }
            grep -q "^chatbench-ratio scenario=$s of=$t/relay " "$out" || {
                echo "smoke: no ratio line for $s against $t" >&2
                exit 1
            }
        done
    done
    echo "smoke: the peers ran: ${kinds[*]}"
fi
