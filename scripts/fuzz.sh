#!/usr/bin/env bash
# Runs every cargo-fuzz target of ustack (fuzz/fuzz_targets) for a bounded time each.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]      # default 60
#   FUZZ_TARGETS="tcp_parse rx_path" bash scripts/fuzz.sh 600   # some targets, longer
#
# Needs a nightly toolchain (libFuzzer + sanitizers); without one it says so and exits 0.
# Installs cargo-fuzz when missing. Each target starts from its seed corpus
# (fuzz/corpus/<target>/seed-*, kept read-only) plus what earlier runs found
# (fuzz/target/corpus/<target>, not committed). Exits non-zero when any target crashed,
# hung (-timeout=10 s per input), leaked (LeakSanitizer) or went over -rss_limit_mb=2048;
# the failing input is in fuzz/artifacts/<target>/ and the script prints how to
# reproduce it. Found crashes become regression tests (crates/*/tests/fuzz_regressions.rs)
# and their inputs go to fuzz/regressions/<target>/, which
# `cargo test --manifest-path fuzz/Cargo.toml` replays on stable.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]*)
        echo "usage: $0 [SECONDS_PER_TARGET]" >&2
        exit 2
        ;;
esac

if ! rustup run nightly true >/dev/null 2>&1; then
    echo "== fuzzing skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz builds with its own flags into fuzz/target; a CARGO_TARGET_DIR meant for the
# stable workspace would mix the two.
unset CARGO_TARGET_DIR

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
echo "== cargo +nightly fuzz build"
cargo +nightly fuzz build

failed=()
for t in $targets; do
    work="fuzz/target/corpus/$t"
    mkdir -p "$work" "fuzz/artifacts/$t"
    echo "== fuzz $t for ${secs}s"
    if cargo +nightly fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        echo "== $t: ok"
    else
        echo "== $t: FAILED (crash, timeout, leak or out of memory)"
        for a in $(ls -t "fuzz/artifacts/$t" 2>/dev/null | head -3); do
            echo "   input: fuzz/artifacts/$t/$a"
            echo "   reproduce: cargo +nightly fuzz run $t fuzz/artifacts/$t/$a"
            echo "          or: cargo run --manifest-path fuzz/Cargo.toml --example run_input -- $t fuzz/artifacts/$t/$a"
        done
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "== fuzzing found problems in: ${failed[*]}"
    exit 1
fi
echo "== fuzzing: all targets ran ${secs}s without a crash, hang or leak"
