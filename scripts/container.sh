#!/usr/bin/env bash
# Builds (and optionally runs) the ustack demo image from Containerfile.
#   bash scripts/container.sh build      # static binaries + image "ustack-demo"
#   sudo bash scripts/container.sh run   # runs it on the host network: curl http://10.0.0.2/
# Uses podman when installed (with runc), else docker.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-gnu
IMAGE=${IMAGE:-ustack-demo}
if command -v podman >/dev/null 2>&1; then
    ENGINE=(podman)
    command -v runc >/dev/null 2>&1 && ENGINE=(podman --runtime runc)
elif command -v docker >/dev/null 2>&1; then
    ENGINE=(docker)
else
    echo "neither podman nor docker is installed (Debian: apt-get install -y podman runc)" >&2
    exit 1
fi
case "${1:-build}" in
build)
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p ustack-examples \
        --bin http_server --bin echo_server --target "$TARGET"
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    bin="${CARGO_TARGET_DIR:-target}/$TARGET/release"
    cp "$bin/http_server" "$bin/echo_server" "$ctx/"
    "${ENGINE[@]}" build -f Containerfile -t "$IMAGE" "$ctx"
    echo "built image $IMAGE; run it with: sudo bash scripts/container.sh run"
    ;;
run)
    echo "serving on http://10.0.0.2/ (tun0, kernel side 10.0.0.1/24); Ctrl-C stops it"
    exec "${ENGINE[@]}" run --rm -it --device /dev/net/tun --cap-add NET_ADMIN --network host "$IMAGE"
    ;;
*)
    echo "usage: $0 [build|run]" >&2
    exit 2
    ;;
esac
