# The project's test facilitator (tests/facilitator, package x402-test-facilitator) as an image.
# Build context: the repository root (envoy/docker-compose.yaml sets it):
#   docker build -f envoy/docker/facilitator.Dockerfile -t x402-access-pass/test-facilitator .
# The toolchain matches the project's (rustc 1.95.0); Cargo.lock pins every crate.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The workspace: the filter crate (the facilitator depends on it) and the facilitator.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests/facilitator ./tests/facilitator
RUN cargo build --locked -p x402-test-facilitator --profile tools \
 && cp target/tools/x402-test-facilitator /usr/local/bin/x402-test-facilitator

FROM debian:12.11-slim
COPY --from=build /usr/local/bin/x402-test-facilitator /usr/local/bin/x402-test-facilitator
USER 65534:65534
# facilitator, control API (faults, /state, /health), Solana JSON-RPC stand-in
EXPOSE 8080 8081 8899
ENTRYPOINT ["/usr/local/bin/x402-test-facilitator"]
CMD ["--listen", "0.0.0.0:8080", "--control-listen", "0.0.0.0:8081", "--rpc-listen", "0.0.0.0:8899", \
     "--network", "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", \
     "--asset", "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU", \
     "--fee-payer-seed-hex", "0202020202020202020202020202020202020202020202020202020202020202", \
     "--ata-owner", "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"]
