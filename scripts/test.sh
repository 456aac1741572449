#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, each fuzz target for a
# bounded time, then the unit, property and integration tests. Kernel-peer tests need root
# (network namespaces, TUN devices): without it they print why they skip, and under
# CI=true they fail instead. FUZZ_SECONDS sets the time per fuzz target (default 45;
# fuzzing is skipped when no nightly toolchain is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== fuzz targets replayed on stable (seeds + regressions)"
cargo test --manifest-path fuzz/Cargo.toml
echo "== fuzzing"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-45}"
echo "== cargo test (workspace)"
cargo test --workspace --all-features
