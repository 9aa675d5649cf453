# The boxoffice image: the `boxoffice` binary, `ip`/`tc` for the compose
# cluster's WAN router, and Prometheus (Debian's package) for its scraper.
# `docker compose up --build` builds it where images can be pulled; where they
# cannot, deploy/compose.sh builds the same image from a locally bootstrapped
# Debian and a binary built on the host.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin boxoffice

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl iproute2 prometheus \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/boxoffice /usr/local/bin/boxoffice
COPY deploy/entrypoint.sh /usr/local/bin/boxoffice-entrypoint
ENTRYPOINT ["/usr/local/bin/boxoffice-entrypoint"]
