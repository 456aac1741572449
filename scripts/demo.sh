#!/usr/bin/env bash
# The ustack demo: an axum HTTP server running on ustack (a user-space TCP/IPv4 stack)
# over a TUN device in a private network namespace, driven by the kernel's own clients:
# curl for pages, a large download checked by SHA-256, a load of many concurrent
# connections, then a summary table. Everything it creates is removed on exit, Ctrl-C or
# failure. Without root it runs the in-memory example (no privileges needed) instead.
#
#   sudo bash scripts/demo.sh            # or, as root: bash scripts/demo.sh
#
# Knobs (environment): DEMO_MB (download size, default 100), DEMO_SECS (load duration,
# default 5), DEMO_CONNS (concurrent connections, default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEMO_MB=${DEMO_MB:-100}
DEMO_SECS=${DEMO_SECS:-5}
DEMO_CONNS=${DEMO_CONNS:-100}
TARGET=x86_64-unknown-linux-gnu

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
die() { printf '\033[1;31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }

# Runs cargo as the invoking user when started through sudo (so target/ stays theirs and
# their rustup toolchain is found).
cargo_cmd() {
    if command -v cargo >/dev/null 2>&1; then
        cargo "$@"
    elif [ -n "${SUDO_USER:-}" ]; then
        sudo -u "$SUDO_USER" -H bash -lc 'cd "$0" && export RUSTFLAGS="$1" CARGO_PROFILE_RELEASE_LTO=off \
            CARGO_PROFILE_RELEASE_DEBUG=0 && shift && cargo "$@"' "$ROOT" "${RUSTFLAGS:-}" "$@"
    else
        die "cargo not found: install Rust from https://rustup.rs (or your distribution's cargo package)"
    fi
}

if [ "$(id -u)" != 0 ]; then
    bold "ustack demo: not running as root."
    echo "The full demo needs root to create a network namespace and a TUN device:"
    echo "    sudo bash scripts/demo.sh"
    echo "Running the in-memory example instead: two ustack stacks joined by an in-memory"
    echo "link in this one process, no privileges needed."
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs first"
    step "cargo run --release -p ustack-examples --bin in_memory"
    exec cargo run --release -q -p ustack-examples --bin in_memory -- --size-mib "${DEMO_MB}"
fi

# --- what we need (nothing is installed silently) -----------------------------------
missing=()
for tool in ip curl sha256sum awk xargs; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "demo: missing tools: ${missing[*]}"
    echo "  Debian/Ubuntu: apt-get install -y iproute2 curl coreutils gawk findutils"
    exit 1
fi
[ -c /dev/net/tun ] || die "/dev/net/tun is missing (load the tun module: modprobe tun)"
HAVE_WRK=0
if command -v wrk >/dev/null 2>&1; then HAVE_WRK=1; else
    echo "note: wrk is not installed (apt-get install -y wrk); the load uses parallel curl instead."
fi
HAVE_PING=0
if command -v ping >/dev/null 2>&1; then HAVE_PING=1; else
    echo "note: ping is not installed (apt-get install -y iputils-ping); skipping the ping step."
fi

NS="ustack-demo-$$"
TUN="ustk0"
HOST_IP=10.77.0.1
STACK_IP=10.77.0.2
WORK=$(mktemp -d /tmp/ustack-demo.XXXXXX)
SERVER_PID=""
LOAD_PID=""
NS_MADE=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$LOAD_PID" ]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$NS_MADE" = 1 ]; then ip netns del "$NS" 2>/dev/null || true; fi
    rm -rf "$WORK"
    if [ $rc -ne 0 ]; then echo "demo: failed (exit $rc); everything it made has been removed." >&2; fi
    exit $rc
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

# --- build ------------------------------------------------------------------------------
step "Building the examples (release, static; the build the integration tests share)"
# Without LTO: linking six binaries with LTO takes minutes on a small machine.
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_DEBUG=0
RUSTFLAGS='-C target-feature=+crt-static' cargo_cmd build --release -p ustack-examples --bins --target "$TARGET"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/$TARGET/release"
[ -x "$BIN/http_server" ] || die "http_server was not built ($BIN/http_server)"

# --- namespace and TUN --------------------------------------------------------------------
step "Creating network namespace $NS with TUN device $TUN (kernel $HOST_IP, ustack $STACK_IP)"
ip netns add "$NS"
NS_MADE=1
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev "$TUN" mode tun
ip -n "$NS" addr add "$HOST_IP/24" dev "$TUN"
ip -n "$NS" link set "$TUN" up
in_ns() { ip netns exec "$NS" "$@"; }

step "Starting http_server on ustack (inside the namespace, attached to $TUN)"
ip netns exec "$NS" "$BIN/http_server" --tun "$TUN" --addr "$STACK_IP/24" --port 80 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 200); do
    grep -q ready "$WORK/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; die "http_server exited"; }
    sleep 0.1
done
grep -q ready "$WORK/server.log" || { cat "$WORK/server.log"; die "http_server did not become ready"; }
sed -n '/ready/p' "$WORK/server.log"

URL="http://$STACK_IP"
if [ "$HAVE_PING" = 1 ]; then
    step "ping -c 3 $STACK_IP (ICMP answered by ustack)"
    in_ns ping -c 3 -i 0.2 -W 2 "$STACK_IP" | sed -n '/bytes from/p;/packets transmitted/p'
fi

step "curl $URL/  (the page, with the stack's live counters)"
in_ns curl -sS --fail --max-time 10 "$URL/" >"$WORK/index.html"
echo "  $(wc -c <"$WORK/index.html") bytes: $(grep -o '<h1>[^<]*</h1>' "$WORK/index.html" | sed 's/<[^>]*>//g')"
echo "  (open it from the namespace: ip netns exec $NS curl $URL/)"

step "POST $URL/echo"
reply=$(in_ns curl -sS --fail --max-time 10 --data-binary 'hello from the kernel' "$URL/echo")
echo "  reply: $reply"
[ "$reply" = "hello from the kernel" ] || die "echo reply differs"

# --- large download, checked against the pattern computed here ------------------------
BYTES=$((DEMO_MB * 1024 * 1024))
step "Downloading $DEMO_MB MiB from $URL/bytes/$BYTES (byte i = i % 251), checking SHA-256"
# The expected hash, computed locally: one 251-byte period, doubled to ~1 MiB, repeated.
for i in $(seq 0 250); do printf "\\$(printf '%03o' "$i")"; done >"$WORK/period"
cp "$WORK/period" "$WORK/block"
for _ in $(seq 12); do cat "$WORK/block" "$WORK/block" >"$WORK/block2"; mv "$WORK/block2" "$WORK/block"; done
bs=$(wc -c <"$WORK/block")   # 251 * 4096: a whole number of periods
expected=$( { for _ in $(seq $((BYTES / bs))); do cat "$WORK/block"; done
              head -c $((BYTES % bs)) "$WORK/block"; } | sha256sum | cut -d' ' -f1)
t0=$(date +%s.%N)
got=$(in_ns curl --fail --max-time 300 -# "$URL/bytes/$BYTES" | sha256sum | cut -d' ' -f1)
t1=$(date +%s.%N)
DL_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
DL_RATE=$(awk -v n="$BYTES" -v s="$DL_SECS" 'BEGIN{printf "%.1f", n*8/s/1e6}')
echo "  expected sha256 $expected"
echo "  received sha256 $got"
[ "$got" = "$expected" ] || die "download hash mismatch"
echo "  OK: $DEMO_MB MiB in $DL_SECS s ($DL_RATE Mbit/s)"

# --- load -----------------------------------------------------------------------------------
LOAD_REQS=0; LOAD_ERRS=0; LOAD_RPS=0; LOAD_TOOL=""
if [ "$HAVE_WRK" = 1 ]; then
    LOAD_TOOL="wrk -c $DEMO_CONNS -d ${DEMO_SECS}s"
    step "Load: $LOAD_TOOL $URL/  ($DEMO_CONNS concurrent connections)"
    ip netns exec "$NS" timeout $((DEMO_SECS + 30)) wrk -t 2 -c "$DEMO_CONNS" -d "${DEMO_SECS}s" --timeout 5s "$URL/" \
        >"$WORK/wrk.txt" 2>&1 &
    LOAD_PID=$!
    for s in $(seq "$DEMO_SECS"); do sleep 1; printf '\r  %d/%d s' "$s" "$DEMO_SECS"; done
    wait "$LOAD_PID" || true
    LOAD_PID=""
    echo
    sed 's/^/  /' "$WORK/wrk.txt"
    LOAD_REQS=$(awk '/requests in/{print $1}' "$WORK/wrk.txt")
    LOAD_RPS=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.txt")
    LOAD_ERRS=$(awk '/Socket errors/{gsub(",","");e=$4+$6+$8+$10} /Non-2xx/{e+=$NF} END{print e+0}' "$WORK/wrk.txt")
else
    total=$((DEMO_CONNS * 20))
    LOAD_TOOL="curl x $DEMO_CONNS in parallel"
    step "Load: $total requests, $DEMO_CONNS at a time (parallel curl; install wrk for more)"
    t0=$(date +%s.%N)
    seq "$total" | in_ns xargs -P "$DEMO_CONNS" -I{} curl -s -o /dev/null --max-time 10 -w '%{http_code}\n' "$URL/" \
        | awk -v t="$total" '{n++; if ($1 != 200) e++; if (n % 100 == 0) printf "\r  %d/%d responses", n, t}
                             END {printf "\r  %d/%d responses\n", n, t; print n, e+0 > "/dev/stderr"}' 2>"$WORK/load.txt"
    t1=$(date +%s.%N)
    read -r LOAD_REQS LOAD_ERRS <"$WORK/load.txt"
    LOAD_RPS=$(awk -v n="$LOAD_REQS" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
fi

# --- summary ----------------------------------------------------------------------------------
in_ns curl -sS --fail --max-time 10 "$URL/stats" >"$WORK/stats.json"
stat() { grep -o "\"$1\":[0-9.]*" "$WORK/stats.json" | head -1 | cut -d: -f2; }
step "Summary"
printf '  %-34s %s\n' "download" "$DEMO_MB MiB in $DL_SECS s = $DL_RATE Mbit/s, SHA-256 OK"
printf '  %-34s %s\n' "load ($LOAD_TOOL)" "${LOAD_REQS:-0} requests, ${LOAD_RPS:-0} req/s, ${LOAD_ERRS:-0} errors"
printf '  %-34s %s\n' "HTTP requests served (app)" "$(stat requests)"
printf '  %-34s %s\n' "bytes streamed by /bytes (app)" "$(stat bytes_streamed)"
for k in passive_opens curr_estab in_segs out_segs retrans_segs out_rsts estab_resets tcp_hp_hits \
         listen_overflows in_receives in_delivers in_echos out_echo_reps rx_packets rx_missed tx_packets \
         rx_bytes tx_bytes; do
    v=$(stat "$k")
    [ -n "$v" ] && printf '  %-34s %s\n' "ustack $k" "$v"
done
echo
echo "  Full counters: $URL/stats (JSON); server log: RUST_LOG=debug for more."

step "Stopping http_server (SIGTERM) and removing namespace $NS"
kill -TERM "$SERVER_PID"
for _ in $(seq 80); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SERVER_PID" 2>/dev/null && echo "  http_server exited cleanly" || echo "  http_server exit status $?"
tail -n 2 "$WORK/server.log" | sed 's/^/  /'
SERVER_PID=""
bold "Demo done."
