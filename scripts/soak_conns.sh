#!/usr/bin/env bash
# Connection soak (issue 7), outside CI: two ustack stacks on an in-memory link hold
# 1,000 connections for 10 minutes with random echo traffic, reconnects and fault
# injection (loss, reordering, duplication, corruption, delay). Prints sockets,
# connections, pending timers, socket-buffer memory and process RSS at the start,
# every 10 s and at the end; exits non-zero on corrupted data, failed connections,
# or sockets / timers / buffer memory left after every connection closed, or RSS
# growth beyond SOAK_MAX_RSS_GROWTH_MIB. Needs no root.
#
#   bash scripts/soak_conns.sh                       # 600 s, 1000 connections
#   SOAK_SECS=60 bash scripts/soak_conns.sh          # a one-minute check
#   SOAK_CONNS=2000 SOAK_FAULTS="--loss 2 --delay 10" bash scripts/soak_conns.sh
#   SOAK_FAULTS="--loss 0.5 --ethernet" bash scripts/soak_conns.sh  # over Ethernet + ARP
#   cargo run --release -p ustack-examples --bin soak -- --help   # every option
#
# (scripts/soak.sh is the other soak: ustack's http_server under wrk over a TUN device.)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECS:-600}
CONNS=${SOAK_CONNS:-1000}
FAULTS=${SOAK_FAULTS:---loss 0.5 --reorder 1 --duplicate 0.5 --corrupt 0.1 --delay 2}
GROWTH=${SOAK_MAX_RSS_GROWTH_MIB:-64}
SEED=${SOAK_SEED:-1}

# SOAK_BIN: a soak binary already built (skips the build).
BIN=${SOAK_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release -q -p ustack-examples --bin soak
    BIN="${CARGO_TARGET_DIR:-target}/release/soak"
fi
# shellcheck disable=SC2086
exec "$BIN" --duration "$SECS" --connections "$CONNS" --seed "$SEED" \
    --max-rss-growth-mib "$GROWTH" $FAULTS
