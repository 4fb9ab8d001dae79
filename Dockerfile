# syntax=docker/dockerfile:1.7
#
# SAM control plane image: sam-server plus the agent binaries it serves to
# workspace VMs (both x86_64 and aarch64), statically linked (musl), on a
# distroless base, running as a non-root user.
#
#   docker build -t sam-server .                                    # this machine's architecture
#   docker buildx build --platform linux/amd64,linux/arm64 -t sam-server .
#
# The builder always runs on the build machine's platform and cross-compiles
# with cargo-zigbuild, so a multi-arch build needs no emulation.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG ZIG_VERSION=0.13.0.post1
ARG CARGO_ZIGBUILD_VERSION=0.20.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && pip3 install --break-system-packages "ziglang==${ZIG_VERSION}" \
 && cargo install --locked "cargo-zigbuild@${CARGO_ZIGBUILD_VERSION}" \
 && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
WORKDIR /src
COPY . .
ARG TARGETARCH
# Both agents (every server serves both), and the server for the image's
# architecture. Layout: /out/sam-server and /out/sam-agent-{amd64,arm64},
# beside each other, which is where sam-server looks for agents by default.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    case "$TARGETARCH" in \
      amd64) server_target=x86_64-unknown-linux-musl ;; \
      arm64) server_target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported architecture $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    cargo zigbuild --profile agent --locked --target x86_64-unknown-linux-musl -p sam-agent; \
    cargo zigbuild --profile agent --locked --target aarch64-unknown-linux-musl -p sam-agent; \
    cargo zigbuild --release --locked --target "$server_target" -p sam-server; \
    mkdir -p /out /out/data; \
    cp "target/$server_target/release/sam-server" /out/sam-server; \
    cp target/x86_64-unknown-linux-musl/agent/sam-agent /out/sam-agent-amd64; \
    cp target/aarch64-unknown-linux-musl/agent/sam-agent /out/sam-agent-arm64

# The devcontainer CLI VMs unpack (served at /api/agent/devcontainer-cli):
# its npm package, which has no dependencies. The version is the one
# sam_core::cloud_init::DEVCONTAINER_CLI_VERSION pins (a test compares them).
FROM --platform=$BUILDPLATFORM node:20-bookworm-slim AS devcontainer-cli
ARG DEVCONTAINER_CLI_VERSION=0.80.1
RUN mkdir /out && npm pack --pack-destination /out "@devcontainers/cli@${DEVCONTAINER_CLI_VERSION}"

FROM gcr.io/distroless/static-debian12:nonroot
# One directory per image: the agents served are always this server's own,
# so during a rolling upgrade each replica serves the agent of its version.
COPY --from=build /out/sam-server /out/sam-agent-amd64 /out/sam-agent-arm64 /opt/sam/
COPY --from=devcontainer-cli /out/ /opt/sam/
# SQLite data (when SAM_DATABASE_URL is sqlite) and the configuration
# written by `setup` (mount both as volumes).
COPY --from=build --chown=65532:65532 /out/data /var/lib/sam
ENV SAM_LISTEN=0.0.0.0:8080 \
    SAM_DATABASE_URL=sqlite:///var/lib/sam/sam.db \
    SAM_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/sam"]
ENTRYPOINT ["/opt/sam/sam-server"]
CMD ["serve"]
