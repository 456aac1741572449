#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit and integration tests
# (kernel-peer tests need root; without it they print why they skip, and under CI=true fail).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features
