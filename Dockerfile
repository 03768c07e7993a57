# Agora: a release build in a Rust image, run from a slim Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin agora

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/agora agora \
    && mkdir -p /var/lib/agora && chown agora /var/lib/agora
COPY --from=build /src/target/release/agora /usr/local/bin/agora
USER agora
WORKDIR /var/lib/agora
ENV AGORA_BIND=0.0.0.0:8000 \
    AGORA_DATA_DIR=/var/lib/agora
EXPOSE 8000
# `agora healthcheck` asks /readyz on AGORA_BIND: no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s CMD ["agora", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["agora"]
CMD ["serve"]
