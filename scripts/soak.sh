#!/usr/bin/env bash
# Soak: keeps ustack's http_server under load for a bounded time inside a private network
# namespace and prints, per round, requests, errors, the server's memory (RSS) and the
# stack's connection counters. Fails when a round has socket errors or non-2xx replies.
#
#   sudo bash scripts/soak.sh                     # 6 rounds of 10 s, 200 connections
#   sudo SOAK_ROUNDS=30 SOAK_CONNS=500 bash scripts/soak.sh
#   sudo SOAK_FAULTS="--loss 1 --reorder 2 --delay 5" bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${SOAK_ROUNDS:-6}
SECS=${SOAK_SECS:-10}
CONNS=${SOAK_CONNS:-200}
FAULTS=${SOAK_FAULTS:-}
TARGET=x86_64-unknown-linux-gnu

[ "$(id -u)" = 0 ] || { echo "soak: needs root (network namespace + TUN): sudo bash scripts/soak.sh"; exit 1; }
for t in ip wrk curl; do
    command -v "$t" >/dev/null || { echo "soak: $t is missing (apt-get install -y iproute2 wrk curl)"; exit 1; }
done

NS="ustack-soak-$$"
TUN=ustk0
STACK_IP=10.78.0.2
WORK=$(mktemp -d /tmp/ustack-soak.XXXXXX)
SERVER_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_DEBUG=0 RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -q -p ustack-examples --bin http_server --target "$TARGET"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release"

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev "$TUN" mode tun
ip -n "$NS" addr add 10.78.0.1/24 dev "$TUN"
ip -n "$NS" link set "$TUN" up
# shellcheck disable=SC2086
ip netns exec "$NS" "$BIN/http_server" --tun "$TUN" --addr "$STACK_IP/24" --port 80 $FAULTS >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 200); do grep -q ready "$WORK/server.log" && break; sleep 0.1; done
grep -q ready "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }

stat() { grep -o "\"$1\":[0-9.]*" "$WORK/stats.json" | head -1 | cut -d: -f2; }
printf '%5s %10s %9s %7s %9s %10s %10s %8s\n' round requests req/s errors rss_kib curr_estab retrans out_rsts
failed=0
for r in $(seq "$ROUNDS"); do
    ip netns exec "$NS" timeout $((SECS + 30)) wrk -t 2 -c "$CONNS" -d "${SECS}s" --timeout 5s "http://$STACK_IP/" >"$WORK/wrk.txt" 2>&1 || true
    reqs=$(awk '/requests in/{print $1}' "$WORK/wrk.txt")
    rps=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.txt")
    errs=$(awk '/Socket errors/{gsub(",","");e=$4+$6+$8+$10} /Non-2xx/{e+=$NF} END{print e+0}' "$WORK/wrk.txt")
    rss=$(awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status")
    ip netns exec "$NS" curl -sS --max-time 10 "http://$STACK_IP/stats" >"$WORK/stats.json"
    printf '%5s %10s %9s %7s %9s %10s %10s %8s\n' "$r" "${reqs:-0}" "${rps:-0}" "$errs" "$rss" \
        "$(stat curr_estab)" "$(stat retrans_segs)" "$(stat out_rsts)"
    [ "$errs" = 0 ] || failed=1
done
[ "$failed" = 0 ] && echo "soak: OK" || { echo "soak: errors seen (last wrk output below)"; cat "$WORK/wrk.txt"; exit 1; }
