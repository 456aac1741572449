# Multi-stage build for Docker users: a Rust build stage, then an empty runtime image
# holding static http_server and echo_server binaries.
#     docker build -t ustack-demo .
#     docker run --rm --device /dev/net/tun --cap-add NET_ADMIN --network host ustack-demo
#     curl http://10.0.0.2/          # from the host: tun0 gets 10.0.0.1/24 on the kernel side
# (compose.yaml does the same: docker compose up)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p ustack-examples \
        --bin http_server --bin echo_server --target x86_64-unknown-linux-gnu \
    && mkdir /out \
    && cp target/x86_64-unknown-linux-gnu/release/http_server target/x86_64-unknown-linux-gnu/release/echo_server /out/

FROM scratch
COPY --from=build /out/ /
ENTRYPOINT ["/http_server"]
CMD ["--tun", "tun0", "--addr", "10.0.0.2/24", "--host-addr", "10.0.0.1/24", "--port", "80"]
