# keystored's container image (README "Container"; docs/architecture.md section 6).
#
#   scripts/container-base.sh      # only where no registry is reachable: debian:bookworm-slim
#   podman build --format docker -t keystored:latest .
#   make container-test            # builds both and checks the image
#
# --format docker (or `docker build`): the OCI image format has no HEALTHCHECK, and podman
# drops it silently.

# ---- build: the same make as on a workstation (warnings are errors) -----------------------
FROM debian:bookworm-slim AS build
# scripts/install-deps.sh run's packages.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        build-essential pkg-config libmicrohttpd-dev libjson-c-dev libyaml-dev libssl-dev \
        libsqlite3-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The context is what `make all` reads (.dockerignore lists it), plus the entrypoint.
COPY . .
# Debug sections go (a few MB); the symbols stay, so a backtrace still names functions.
RUN make -j2 all \
 && strip --strip-debug build/keystored build/keystorectl

# ---- runtime: the shared libraries the two binaries link, nothing to build with ----------------
FROM debian:bookworm-slim
# ca-certificates: TLS to AWS KMS and DynamoDB. One RUN, so the apt lists never reach a layer.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        libmicrohttpd12 libjson-c5 libyaml-0-2 libssl3 libsqlite3-0 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
           /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
 && groupadd --gid 10001 keystored \
 && useradd --uid 10001 --gid keystored --no-create-home --no-log-init \
        --home-dir /var/lib/keystored --shell /usr/sbin/nologin keystored \
 && install -d -m 0700 -o keystored -g keystored /var/lib/keystored \
 && install -d -m 0755 /etc/keystored
COPY --from=build /src/build/keystored /src/build/keystorectl /usr/local/bin/
COPY scripts/container-entrypoint.sh /usr/local/bin/keystored-entrypoint

# The data (SQLite database, local KMS key file, admin token digest) and the configuration
# (keystored.yaml, used when present) live outside the image.
VOLUME ["/var/lib/keystored", "/etc/keystored"]
USER 10001:10001
WORKDIR /var/lib/keystored
EXPOSE 8080
# keystorectl asks GET /healthz at KEYSTORED_URL; exit 0 only on a 2xx answer.
ENV KEYSTORED_URL=http://127.0.0.1:8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/keystorectl", "--timeout", "3", "health"]
ENTRYPOINT ["/usr/local/bin/keystored-entrypoint"]
