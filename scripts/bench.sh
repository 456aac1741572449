#!/usr/bin/env bash
# scripts/bench.sh — runs every ustack benchmark beside its baseline in one run, shows
# progress, prints the table (ustack figure, baseline, ratio, target), writes the raw results
# to bench/results/latest.json and the charts to docs/bench-*.svg. See docs/benchmarks.md.
#
#   scripts/bench.sh                 # everything (TUN, veth and loss sections need root)
#   QUICK=1 scripts/bench.sh         # short runs (256 MiB bulk, 2 s timed runs, 1 run each)
#   ONLY=mem,scale scripts/bench.sh  # sections: mem, scale, tun, loss (comma-separated)
#
# Knobs: BYTES (in-memory bulk, default 1 GiB), SECS (timed runs, 5), RUNS (repetitions,
# median reported, 3), MEM_RUNS (repetitions of each in-memory bulk transfer, each under a
# second: 7), CONC (connrate concurrency, 50), TUN_CC (kernel sockets' congestion
# control in the TUN/veth section, cubic), SCALE_COUNTS (10,1000,10000,100000),
# LOSS_SECS (goodput run through the relay, 30), LOSS_RUNS (3, relay seeds 1..), PEERS_BIN (../shared/peers/target/release;
# its `tunstack` serves netstack-smoltcp over TUN for the same client when it is built).
#
# Namespaces are named ub<pid><x> and deleted on exit; only processes started here are
# killed (by PID); addresses are 10.18x.0.0/24 inside those namespaces only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  BYTES=${BYTES:-268435456}; SECS=${SECS:-2}; RUNS=${RUNS:-1}; LOSS_SECS=${LOSS_SECS:-15}; LOSS_RUNS=${LOSS_RUNS:-1}
  MEM_RUNS=${MEM_RUNS:-1}
  SCALE_COUNTS=${SCALE_COUNTS:-10,1000,10000,100000}
else
  BYTES=${BYTES:-1073741824}; SECS=${SECS:-5}; RUNS=${RUNS:-3}; LOSS_SECS=${LOSS_SECS:-30}
  # A 1 GiB in-memory transfer takes a fraction of a second, so a short burst of noise on
  # the host moves one run by a third: more runs, alternating the stacks, steady the median.
  MEM_RUNS=${MEM_RUNS:-7}
  SCALE_COUNTS=${SCALE_COUNTS:-10,1000,10000,100000}
fi
CONC=${CONC:-50}
# Congestion control of the kernel sockets in the TUN/veth section (client and kserve), the
# same for every server measured there. CUBIC, Linux's default (also used by the loss test):
# with BBR, the guest's default, a kernel sender writing into a device without the fq qdisc
# paces each packet itself and runs out of CPU before the server does (see
# docs/benchmarks.md); the bulk rows are also measured once with BBR for comparison.
TUN_CC=${TUN_CC:-cubic}
LOSS_RUNS=${LOSS_RUNS:-3}
ONLY=${ONLY:-mem,scale,tun,loss}
PEERS_BIN=${PEERS_BIN:-$ROOT/../shared/peers/target/release}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$CARGO_TARGET_DIR/release/ustack-bench"
STAMP=$(date -u +%Y%m%d_%H%M%S)
OUT="$ROOT/bench/results/run_$STAMP"
mkdir -p "$OUT"
RES="$OUT/results.jsonl"; LOG="$OUT/log.txt"; SAMPLES="$OUT/loss_samples.jsonl"
: >"$RES"; : >"$SAMPLES"
T0=$(date +%s)
STEP=0

want() { [[ ",$ONLY," == *",$1,"* ]]; }
say() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" | tee -a "$LOG" >&2; }
step() { STEP=$((STEP + 1)); say "($STEP) $*"; }
# run a command, keep its RESULT lines, show the figure briefly
collect() {
  local out
  out=$("$@" 2>>"$LOG" | tee -a "$LOG" | grep '^RESULT' || true)
  if [ -n "$out" ]; then
    echo "$out" >>"$RES"
    echo "$out" | sed 's/^RESULT /        /' | cut -c1-200 >&2
  else
    say "   (no result: see $LOG)"
  fi
}

PIDS=(); NSS=()
bg() { "$@" & PIDS+=("$!"); }
# stop a process started by bg and forget its PID (so cleanup never signals a reused PID)
stop() {
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  PIDS=("${keep[@]}")
}
cleanup() {
  local p n
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  for n in "${NSS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
netns() { ip netns del "$1" 2>/dev/null || true; ip netns add "$1"; NSS+=("$1"); ip -n "$1" link set lo up; }
wait_ready() { for _ in $(seq 150); do grep -q READY "$1" 2>/dev/null && return 0; sleep 0.1; done; say "timeout waiting for READY in $1"; cat "$1" >&2; return 1; }
is_root() { [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; }

say "ustack benchmarks: QUICK=$QUICK BYTES=$BYTES SECS=$SECS RUNS=$RUNS CONC=$CONC ONLY=$ONLY -> $OUT"
say "machine: $(uname -r), $(nproc) CPUs, $(rustc --version 2>/dev/null)"
step "building ustack-bench (release)"
cargo build --release -q -p ustack-bench ${BENCH_FEATURES:-} 2>&1 | tee -a "$LOG" >&2
# examples/bench_server (the project's own three-port server), for the TUN section.
BSRV="$CARGO_TARGET_DIR/release/bench_server"
if want tun && [ -f examples/src/bin/bench_server.rs ] && [ "${BENCH_SERVER:-1}" = 1 ]; then
  step "building bench_server (release)"
  cargo build --release -q -p ustack-examples --bin bench_server 2>&1 | tee -a "$LOG" >&2 || say "bench_server did not build"
fi

# ---------------------------------------------------------------- in memory
if want mem; then
  for mtu in 1500 65535; do
    for i in $(seq "$MEM_RUNS"); do
      step "in-memory bulk MTU $mtu, $BYTES bytes, smoltcp (run $i/$MEM_RUNS)"
      collect "$BIN" mem-bulk --stack smoltcp --bytes "$BYTES" --mtu "$mtu"
      step "in-memory bulk MTU $mtu, $BYTES bytes, ustack (run $i/$MEM_RUNS)"
      collect timeout 300 "$BIN" mem-bulk --stack ustack --bytes "$BYTES" --mtu "$mtu"
      step "in-memory bulk MTU $mtu, $BYTES bytes, ustack in place (run $i/$MEM_RUNS)"
      collect timeout 300 "$BIN" mem-bulk --stack ustack --in-place --bytes "$BYTES" --mtu "$mtu"
    done
  done
  for i in $(seq "$RUNS"); do
    step "in-memory 1-byte ping-pong, smoltcp (run $i/$RUNS)"
    collect "$BIN" mem-pingpong --stack smoltcp --secs "$SECS"
    step "in-memory 1-byte ping-pong, ustack (run $i/$RUNS)"
    collect timeout $((SECS + 60)) "$BIN" mem-pingpong --stack ustack --secs "$SECS"
    collect timeout $((SECS + 60)) "$BIN" mem-pingpong --stack ustack --one-task --secs "$SECS"
    step "in-memory connection rate (conc $CONC), smoltcp (run $i/$RUNS)"
    collect "$BIN" mem-connrate --stack smoltcp --secs "$SECS" --conc "$CONC"
    step "in-memory connection rate (conc $CONC), ustack (run $i/$RUNS)"
    collect timeout $((SECS + 60)) "$BIN" mem-connrate --stack ustack --secs "$SECS" --conc "$CONC"
  done
fi

# ---------------------------------------------------------------- scale
if want scale; then
  step "scale: $SCALE_COUNTS idle connections in one in-memory stack"
  collect timeout 600 "$BIN" scale --counts "$SCALE_COUNTS" --secs 1
fi

# ---------------------------------------------------------------- TUN vs veth vs raw TUN
if want tun; then
  if ! is_root; then
    say "skipping TUN/veth section: needs root and /dev/net/tun"
  else
    # The veth baseline needs ethtool to turn its offloads off (per-packet comparison).
    if ! command -v ethtool >/dev/null 2>&1; then
      say "installing ethtool (apt-get) for the veth baseline"
      apt-get install -y -q ethtool >>"$LOG" 2>&1 || say "could not install ethtool: the veth rows will run with offloads ON (not per packet)"
    fi
    P=ub$$
    LIFE=$(( (SECS + 4) * RUNS * 5 + 120 ))
    # kernel client against ustack over TUN
    NS=${P}t; netns "$NS"
    ip -n "$NS" tuntap add dev ubtun0 mode tun
    ip -n "$NS" addr add 10.181.0.1/24 dev ubtun0
    ip -n "$NS" link set ubtun0 mtu 1500 up
    step "TUN: starting ustack server (userve) in $NS"
    bg ip netns exec "$NS" "$BIN" userve --tun ubtun0 --addr 10.181.0.2/24 --mtu 1500 --lifetime "$LIFE" >"$OUT/userve.log" 2>&1
    SRV=${PIDS[-1]}
    if wait_ready "$OUT/userve.log"; then
    for i in $(seq "$RUNS"); do
      step "TUN: bulk kernel→ustack (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client send --to 10.181.0.2 --secs "$SECS" --name tun_bulk_in --stack ustack --server-pid "$SRV"
      step "TUN: bulk kernel→ustack, in-place sink on port 5005 (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client send --to 10.181.0.2 --port 5005 --secs "$SECS" --name tun_bulk_in --stack ustack_in_place --server-pid "$SRV"
      step "TUN: bulk ustack→kernel (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client recv --to 10.181.0.2 --secs "$SECS" --name tun_bulk_out --stack ustack
      step "TUN: connections/s conc $CONC (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client connrate --to 10.181.0.2 --secs "$SECS" --conc "$CONC" --name tun_connrate --stack ustack
      step "TUN: 1-byte ping-pong unpinned (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client pingpong --to 10.181.0.2 --secs "$SECS" --name tun_pingpong --stack ustack
    done
    step "TUN: bulk kernel→ustack with the client on BBR (the guest's default)"
    collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc bbr client send --to 10.181.0.2 --secs "$SECS" --name tun_bulk_in --stack ustack_client_bbr --server-pid "$SRV"
    stop "$SRV"
    step "TUN: ping-pong with client and ustack server pinned to CPU 0"
    bg taskset -c 0 ip netns exec "$NS" "$BIN" userve --tun ubtun0 --addr 10.181.0.2/24 --mtu 1500 --lifetime $((SECS * RUNS + 60)) >"$OUT/userve_pinned.log" 2>&1
    SRV=${PIDS[-1]}; wait_ready "$OUT/userve_pinned.log" || true
    for i in $(seq "$RUNS"); do
      collect timeout $((SECS + 30)) taskset -c 0 ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client pingpong --to 10.181.0.2 --secs "$SECS" --name tun_pingpong_pinned --stack ustack
    done
    else
      say "ustack server did not start: TUN figures for ustack skipped"
    fi
    stop "$SRV"

    # the same client against examples/bench_server (three ports): with --threads 1 (the
    # default: one current-thread runtime), then on tokio's multi-thread runtime with two
    # workers (an application's #[tokio::main] default on this machine; kserve --threads 2
    # is its veth baseline)
    if [ -x "$BSRV" ] && [ "${BENCH_SERVER:-1}" = 1 ]; then
      for spec in 1:ustack_bench_server 2:ustack_bench_server_2w; do
        th=${spec%%:*}; name=${spec#*:}
        step "TUN: starting examples/bench_server --threads $th in $NS"
        bg ip netns exec "$NS" "$BSRV" --tun ubtun0 --addr 10.181.0.2/24 --mtu 1500 --threads "$th" >"$OUT/$name.log" 2>&1
        SRV=${PIDS[-1]}
        for _ in $(seq 100); do grep -q ready "$OUT/$name.log" 2>/dev/null && break; sleep 0.1; done
        for i in $(seq "$RUNS"); do
          step "TUN/bench_server --threads $th: bulk kernel→ustack, connections/s, ping-pong (run $i/$RUNS)"
          collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client send --to 10.181.0.2 --secs "$SECS" --name tun_bulk_in --stack "$name" --server-pid "$SRV"
          collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client connrate --to 10.181.0.2 --secs "$SECS" --conc "$CONC" --name tun_connrate --stack "$name"
          collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client pingpong --to 10.181.0.2 --secs "$SECS" --name tun_pingpong --stack "$name"
        done
        stop "$SRV"
      done
      bg taskset -c 0 ip netns exec "$NS" "$BSRV" --tun ubtun0 --addr 10.181.0.2/24 --mtu 1500 >"$OUT/bench_server_pinned.log" 2>&1
      SRV=${PIDS[-1]}
      for _ in $(seq 100); do grep -q ready "$OUT/bench_server_pinned.log" 2>/dev/null && break; sleep 0.1; done
      step "TUN/bench_server: ping-pong pinned to CPU 0"
      for i in $(seq "$RUNS"); do
        collect timeout $((SECS + 30)) taskset -c 0 ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client pingpong --to 10.181.0.2 --secs "$SECS" --name tun_pingpong_pinned --stack ustack_bench_server
      done
      stop "$SRV"
    fi

    # bulk both ways with the TUN opened with IFF_VNET_HDR and TSO/checksum offloads
    # (userve --offload): the kernel hands over TCP super-segments of up to 64 KiB, and
    # ustack writes its own (TSO) with partial checksums. A TUN
    # device of its own, so the per-packet rows above never run on a device with offloads.
    ip -n "$NS" tuntap add dev ubtun3 mode tun
    ip -n "$NS" addr add 10.181.1.1/24 dev ubtun3
    ip -n "$NS" link set ubtun3 mtu 1500 up
    step "TUN: starting ustack server with vnet_hdr offload (userve --offload) in $NS"
    bg ip netns exec "$NS" "$BIN" userve --tun ubtun3 --addr 10.181.1.2/24 --mtu 1500 --offload --lifetime "$LIFE" >"$OUT/userve_offload.log" 2>&1
    SRV=${PIDS[-1]}
    if wait_ready "$OUT/userve_offload.log"; then
      for i in $(seq "$RUNS"); do
        step "TUN: bulk kernel→ustack, vnet_hdr offload (run $i/$RUNS)"
        collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client send --to 10.181.1.2 --secs "$SECS" --name tun_bulk_in --stack ustack_offload --server-pid "$SRV"
      done
      # The kernel counts one packet per super-segment it writes into the TUN.
      TXB=$(ip netns exec "$NS" cat /sys/class/net/ubtun3/statistics/tx_bytes 2>/dev/null || echo 0)
      TXP=$(ip netns exec "$NS" cat /sys/class/net/ubtun3/statistics/tx_packets 2>/dev/null || echo 0)
      say "   kernel→ustack TUN with offload: $TXB bytes in $TXP packets ($(( TXB / (TXP > 0 ? TXP : 1) )) bytes per packet)"
      RXB0=$(ip netns exec "$NS" cat /sys/class/net/ubtun3/statistics/rx_bytes 2>/dev/null || echo 0)
      RXP0=$(ip netns exec "$NS" cat /sys/class/net/ubtun3/statistics/rx_packets 2>/dev/null || echo 0)
      for i in $(seq "$RUNS"); do
        step "TUN: bulk ustack→kernel, vnet_hdr offload: ustack's TSO (run $i/$RUNS)"
        collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client recv --to 10.181.1.2 --secs "$SECS" --name tun_bulk_out --stack ustack_offload
      done
      # ...and one per super-segment ustack writes into it.
      RXB=$(( $(ip netns exec "$NS" cat /sys/class/net/ubtun3/statistics/rx_bytes 2>/dev/null || echo 0) - RXB0 ))
      RXP=$(( $(ip netns exec "$NS" cat /sys/class/net/ubtun3/statistics/rx_packets 2>/dev/null || echo 0) - RXP0 ))
      say "   ustack→kernel TUN with offload: $RXB bytes in $RXP packets ($(( RXB / (RXP > 0 ? RXP : 1) )) bytes per packet)"
    else
      say "ustack server with offload did not start: offload row skipped"
    fi
    stop "$SRV"

    # the per-packet TUN again, read by a thread of the device's own (userve --rx-thread,
    # TunOptions::rx_thread): the read(2)s overlap with the stack's work on a second CPU
    step "TUN: starting ustack server with a receiving thread (userve --rx-thread) in $NS"
    bg ip netns exec "$NS" "$BIN" userve --tun ubtun0 --addr 10.181.0.2/24 --mtu 1500 --rx-thread --lifetime "$LIFE" >"$OUT/userve_rx_thread.log" 2>&1
    SRV=${PIDS[-1]}
    if wait_ready "$OUT/userve_rx_thread.log"; then
      for i in $(seq "$RUNS"); do
        step "TUN: bulk kernel→ustack, receiving thread (run $i/$RUNS)"
        collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client send --to 10.181.0.2 --secs "$SECS" --name tun_bulk_in --stack ustack_rx_thread --server-pid "$SRV"
      done
      step "TUN: 1-byte ping-pong unpinned, receiving thread"
      collect timeout $((SECS + 30)) ip netns exec "$NS" "$BIN" --cc "$TUN_CC" client pingpong --to 10.181.0.2 --secs "$SECS" --name tun_pingpong --stack ustack_rx_thread
    else
      say "ustack server with a receiving thread did not start: its rows skipped"
    fi
    stop "$SRV"

    # raw TUN read ceiling
    ip -n "$NS" tuntap add dev ubtun1 mode tun
    ip -n "$NS" addr add 10.182.0.1/24 dev ubtun1
    ip -n "$NS" link set ubtun1 mtu 1500 up
    # The kernel UDP sender offers 1500-byte packets at several rates, one datagram per
    # sendmmsg entry (a flood of those costs the generator more per packet than the reader
    # pays) and with UDP_SEGMENT (44 datagrams per entry, cut by the kernel before the
    # device: the generator outruns the reader, which then never waits). The best rate the
    # reader sustained is the ceiling.
    for mode in 500000 1000000 0 1500000:gso 0:gso; do
      rate=${mode%%:*}; gso=""; [ "$mode" != "$rate" ] && gso=--gso
      step "raw TUN read ceiling, 1500-byte packets, offered ${rate/#0/unpaced} pkt/s${gso:+ (UDP GSO)}"
      bg ip netns exec "$NS" "$BIN" tunread --dev ubtun1 --secs "$SECS" >"$OUT/tunread_$rate$gso.log" 2>&1
      RD=${PIDS[-1]}; wait_ready "$OUT/tunread_$rate$gso.log"
      ip netns exec "$NS" "$BIN" udpblast --dst 10.182.0.2:9 --len 1472 --secs $((SECS + 1)) --pps "$rate" $gso >>"$LOG" 2>&1 || true
      wait "$RD" 2>/dev/null || true
      grep '^RESULT' "$OUT/tunread_$rate$gso.log" | tee -a "$RES" | sed 's/^RESULT /        /' >&2 || say "   (no tunread result)"
    done

    # kernel to kernel over veth, MTU 1500, offloads off
    NA=${P}va; NB=${P}vb; netns "$NA"; netns "$NB"
    ip -n "$NA" link add ubva mtu 1500 type veth peer name ubvb netns "$NB" mtu 1500
    ip -n "$NA" addr add 10.183.0.1/24 dev ubva; ip -n "$NB" addr add 10.183.0.2/24 dev ubvb
    ip -n "$NA" link set ubva up; ip -n "$NB" link set ubvb up
    ip netns exec "$NA" ethtool -K ubva tso off gso off gro off >/dev/null 2>&1 || say "ethtool missing: offloads left on"
    ip netns exec "$NB" ethtool -K ubvb tso off gso off gro off >/dev/null 2>&1 || true
    step "veth: starting kernel server (kserve) in $NB"
    bg ip netns exec "$NB" "$BIN" --cc "$TUN_CC" kserve --ip 10.183.0.2 --lifetime "$LIFE" >"$OUT/kserve_veth.log" 2>&1
    SRV=${PIDS[-1]}; wait_ready "$OUT/kserve_veth.log"
    for i in $(seq "$RUNS"); do
      step "veth: bulk kernel→kernel (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client send --to 10.183.0.2 --secs "$SECS" --name tun_bulk_in --stack kernel_veth --server-pid "$SRV"
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client recv --to 10.183.0.2 --secs "$SECS" --name tun_bulk_out --stack kernel_veth
      step "veth: connections/s conc $CONC (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client connrate --to 10.183.0.2 --secs "$SECS" --conc "$CONC" --name tun_connrate --stack kernel_veth
      step "veth: ping-pong unpinned (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client pingpong --to 10.183.0.2 --secs "$SECS" --name tun_pingpong --stack kernel_veth
    done
    stop "$SRV"
    step "veth: kernel server on 2 workers (kserve --threads 2)"
    bg ip netns exec "$NB" "$BIN" --cc "$TUN_CC" kserve --ip 10.183.0.2 --lifetime "$LIFE" --threads 2 >"$OUT/kserve_veth_2w.log" 2>&1
    SRV=${PIDS[-1]}; wait_ready "$OUT/kserve_veth_2w.log"
    for i in $(seq "$RUNS"); do
      step "veth, server on 2 workers: bulk, connections/s, ping-pong (run $i/$RUNS)"
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client send --to 10.183.0.2 --secs "$SECS" --name tun_bulk_in --stack kernel_veth_2w --server-pid "$SRV"
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client connrate --to 10.183.0.2 --secs "$SECS" --conc "$CONC" --name tun_connrate --stack kernel_veth_2w
      collect timeout $((SECS + 30)) ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client pingpong --to 10.183.0.2 --secs "$SECS" --name tun_pingpong --stack kernel_veth_2w
    done
    stop "$SRV"
    step "veth: ping-pong pinned to CPU 0"
    bg taskset -c 0 ip netns exec "$NB" "$BIN" --cc "$TUN_CC" kserve --ip 10.183.0.2 --lifetime $((SECS * RUNS + 60)) >"$OUT/kserve_veth_pinned.log" 2>&1
    SRV=${PIDS[-1]}; wait_ready "$OUT/kserve_veth_pinned.log"
    for i in $(seq "$RUNS"); do
      collect timeout $((SECS + 30)) taskset -c 0 ip netns exec "$NA" "$BIN" --cc "$TUN_CC" client pingpong --to 10.183.0.2 --secs "$SECS" --name tun_pingpong_pinned --stack kernel_veth
    done
    stop "$SRV"

    # netstack-smoltcp over TUN (../shared/peers), same client, when built
    if [ -x "$PEERS_BIN/tunstack" ]; then
      for i in $(seq "$RUNS"); do
        NN=${P}n$i; netns "$NN"
        ip -n "$NN" tuntap add dev ubtun2 mode tun
        ip -n "$NN" addr add 10.186.0.1/24 dev ubtun2
        ip -n "$NN" link set ubtun2 mtu 1500 up
        bg ip netns exec "$NN" "$PEERS_BIN/tunstack" --stack netstack --dev ubtun2 --mtu 1500 --buf 1048576 --threads 1 >"$OUT/netstack_$i.log" 2>&1
        SRV=${PIDS[-1]}; wait_ready "$OUT/netstack_$i.log"
        step "netstack-smoltcp over TUN: bulk kernel→netstack (run $i/$RUNS)"
        collect timeout $((SECS + 30)) ip netns exec "$NN" "$BIN" --cc "$TUN_CC" client send --to 10.186.0.2 --secs "$SECS" --name tun_bulk_in --stack netstack --server-pid "$SRV"
        if [ "$i" = 1 ]; then
          step "netstack-smoltcp over TUN: bulk with the client on BBR (the guest's default)"
          collect timeout $((SECS + 30)) ip netns exec "$NN" "$BIN" --cc bbr client send --to 10.186.0.2 --secs "$SECS" --name tun_bulk_in --stack netstack_client_bbr --server-pid "$SRV"
        fi
        step "netstack-smoltcp over TUN: connections/s conc $CONC (run $i/$RUNS)"
        collect timeout $((SECS + 30)) ip netns exec "$NN" "$BIN" --cc "$TUN_CC" client connrate --to 10.186.0.2 --secs "$SECS" --conc "$CONC" --name tun_connrate --stack netstack
        stop "$SRV"; ip netns del "$NN" 2>/dev/null || true
      done
    else
      say "netstack-smoltcp comparison skipped: $PEERS_BIN/tunstack not built (cd ../shared/peers && cargo build --release)"
    fi
  fi
fi

# ---------------------------------------------------------------- loss relay
if want loss; then
  if ! is_root; then
    say "skipping loss section: needs root and /dev/net/tun"
  else
    P=ub$$
    LA=${P}la; LB=${P}lb; netns "$LA"; netns "$LB"
    # CUBIC per namespace. A netns may only pick an algorithm listed in the host's
    # tcp_allowed_congestion_control; otherwise the kernel sockets set TCP_CONGESTION=cubic
    # themselves (--cc cubic, root), which changes nothing outside these sockets.
    for n in "$LA" "$LB"; do
      ip netns exec "$n" sysctl -qw net.ipv4.tcp_congestion_control=cubic 2>/dev/null \
        || say "netns $n: sysctl tcp_congestion_control=cubic refused (not in the host's allowed list); using per-socket TCP_CONGESTION=cubic"
    done
    ip -n "$LA" tuntap add dev ublA mode tun; ip -n "$LA" addr add 10.184.0.1/24 dev ublA; ip -n "$LA" link set ublA mtu 1500 up
    ip -n "$LB" tuntap add dev ublB mode tun; ip -n "$LB" addr add 10.184.0.2/24 dev ublB; ip -n "$LB" link set ublB mtu 1500 up
    # ustack sits behind the relay too: LB forwards 10.185.0.0/24 to its TUN.
    ip -n "$LB" tuntap add dev ublU mode tun; ip -n "$LB" addr add 10.185.0.1/24 dev ublU; ip -n "$LB" link set ublU mtu 1500 up
    ip -n "$LA" route add 10.185.0.0/24 dev ublA
    ip netns exec "$LB" sysctl -qw net.ipv4.ip_forward=1
    RLIFE=$(( (LOSS_SECS + 100) * 4 * LOSS_RUNS + 30 ))
    bg ip netns exec "$LB" "$BIN" --cc cubic kserve --ip 10.184.0.2 --lifetime "$RLIFE" --info-log "$SAMPLES" >"$OUT/kserve_loss.log" 2>&1
    KS=${PIDS[-1]}; wait_ready "$OUT/kserve_loss.log"
    bg ip netns exec "$LB" "$BIN" userve --tun ublU --addr 10.185.0.2/24 --gateway 10.185.0.1 --lifetime "$RLIFE" --info-log "$SAMPLES" >"$OUT/userve_loss.log" 2>&1
    US=${PIDS[-1]}; wait_ready "$OUT/userve_loss.log" || say "ustack server did not start"
    # One fresh relay per transfer, seeded with the run number: the kernel pair and the
    # ustack pair of a run meet the same drop pattern (the same packet indices are lost in
    # each direction), so their ratio compares the stacks, not two draws of the loss.
    through_relay() {
      local seed=$1; shift
      bg "$BIN" relay --netns-a "/run/netns/$LA" --dev-a ublA --netns-b "/run/netns/$LB" --dev-b ublB --loss 0.01 --delay-ms 50 --seed "$seed" --secs $((LOSS_SECS + 100)) >"$OUT/relay.log" 2>&1
      local rl=${PIDS[-1]}
      if wait_ready "$OUT/relay.log"; then collect "$@"; fi
      stop "$rl"
    }
    for i in $(seq "$LOSS_RUNS"); do
      step "loss: kernel→kernel CUBIC server→client goodput (${LOSS_SECS}s, relay seed $i, run $i/$LOSS_RUNS)"
      through_relay "$i" timeout $((LOSS_SECS + 30)) ip netns exec "$LA" "$BIN" --cc cubic client recv --to 10.184.0.2 --secs "$LOSS_SECS" --name loss_out --stack kernel
      step "loss: ustack→kernel server→client goodput (${LOSS_SECS}s, relay seed $i, run $i/$LOSS_RUNS)"
      through_relay "$i" timeout $((LOSS_SECS + 30)) ip netns exec "$LA" "$BIN" --cc cubic client recv --to 10.185.0.2 --secs "$LOSS_SECS" --name loss_out --stack ustack
      step "loss: kernel CUBIC client→kernel goodput (${LOSS_SECS}s, relay seed $i, run $i/$LOSS_RUNS)"
      through_relay "$i" timeout $((LOSS_SECS + 90)) ip netns exec "$LA" "$BIN" --cc cubic client send --to 10.184.0.2 --secs "$LOSS_SECS" --name loss_in --stack kernel
      step "loss: kernel CUBIC client→ustack goodput (${LOSS_SECS}s, relay seed $i, run $i/$LOSS_RUNS)"
      through_relay "$i" timeout $((LOSS_SECS + 90)) ip netns exec "$LA" "$BIN" --cc cubic client send --to 10.185.0.2 --secs "$LOSS_SECS" --name loss_in --stack ustack
    done
    stop "$US"; stop "$KS"
  fi
fi

# ---------------------------------------------------------------- report
step "report"
META=$(printf '{"date":"%s","kernel":"%s","cpus":%s,"quick":%s,"bytes":%s,"secs":%s,"runs":%s,"conc":%s,"only":"%s","run_dir":"%s"}' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -r)" "$(nproc)" "$QUICK" "$BYTES" "$SECS" "$RUNS" "$CONC" "$ONLY" "bench/results/run_$STAMP")
"$BIN" report --results "$RES" --samples "$SAMPLES" --json bench/results/latest.json --svg-dir docs --meta "$META" | tee "$OUT/table.md"
say "done in $(( $(date +%s) - T0 )) s; raw lines in $RES, table in $OUT/table.md"
