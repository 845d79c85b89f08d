# syntax=docker/dockerfile:1
# The image `render k8s --image` expects: run-load-test as the entrypoint, the shipped scenarios under
# /scenarios, a non-root user whose uid (10001) the rendered pods run as and give the results volume to (fsGroup).
#   docker build -t registry.example/run-load-test:0.1 .
#   docker run --rm registry.example/run-load-test:0.1 list      # WORKDIR / makes `run smoke` find /scenarios
# / is not writable for uid 10001: give `run` an --out on a mounted volume, as the rendered Jobs do.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds; the binary is copied out of the cache
# because a cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin run-load-test \
    && cp target/release/run-load-test /usr/local/bin/run-load-test

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rlt
COPY --from=build /usr/local/bin/run-load-test /usr/local/bin/run-load-test
COPY scenarios /scenarios
WORKDIR /
USER 10001:10001
ENTRYPOINT ["run-load-test"]
CMD ["--help"]
