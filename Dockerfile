# lookalike's container image: a release build, then a slim runtime with a non-root user, the ONNX
# Runtime library and the model made by the project's own set-up scripts.
#
#   make image                                   # here: base images made locally, then built with buildah
#   docker build -t lookalike .                  # where a registry serves the base images
#   docker build --build-arg DEVICE=cuda -t lookalike:cuda .   # the GPU runtime (onnxruntime-gpu, CUDA 13, cuDNN 9)
#
# Configuration is by environment (LOOKALIKE_*, DATABASE_URL; see `lookalike serve --help`).
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# cpu, or cuda for the GPU runtime of `--device cuda`.
ARG DEVICE=cpu
# python3 for the set-up scripts; cmake and nasm build the vendored libjpeg-turbo (scripts/setup-build-tools.sh).
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-pip python3-venv cmake nasm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The set-up scripts install into a cache that outlives the build (downloads are not repeated);
# pip only downloads or installs into folders of ours, never into the system's Python.
ENV LOOKALIKE_CACHE_DIR=/var/cache/lookalike-setup PIP_BREAK_SYSTEM_PACKAGES=1
RUN --mount=type=cache,id=lookalike-setup,target=/var/cache/lookalike-setup \
    set -eu; \
    mkdir -p /opt/lookalike/bin /opt/lookalike/lib /opt/lookalike/models; \
    if [ "$DEVICE" = cuda ]; then \
      . "$(scripts/setup-runtime.sh --gpu)"; \
      cp "$(dirname "$LOOKALIKE_ORT_LIBRARY")"/libonnxruntime* /opt/lookalike/lib/; \
      mkdir -p /opt/lookalike/lib/cuda; \
      cp -r "$LOOKALIKE_CUDA_LIB_DIR" /opt/lookalike/lib/cuda/cuda; \
      cp -r "$LOOKALIKE_CUDNN_LIB_DIR" /opt/lookalike/lib/cuda/cudnn; \
    else \
      LOOKALIKE_ORT_LIBRARY=$(scripts/setup-runtime.sh); \
      cp "$LOOKALIKE_ORT_LIBRARY" /opt/lookalike/lib/; \
    fi; \
    ln -s "$(basename "$LOOKALIKE_ORT_LIBRARY")" /opt/lookalike/lib/libonnxruntime.so; \
    scripts/setup-model.sh >/dev/null; \
    cp models/*.onnx models/*.manifest.json /opt/lookalike/models/
# The binary goes without its line tables (two thirds of the file); backtraces keep function names.
RUN --mount=type=cache,id=lookalike-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=lookalike-target,target=/src/target \
    cargo build --release --locked --features s3 --bin lookalike \
 && strip --strip-debug -o /opt/lookalike/bin/lookalike target/release/lookalike

FROM ${DEBIAN_IMAGE} AS runtime
ARG DEVICE=cpu
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/lookalike --create-home lookalike
COPY --from=build /opt/lookalike /opt/lookalike
ENV PATH=/opt/lookalike/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LOOKALIKE_LISTEN=0.0.0.0:8080 \
    LOOKALIKE_DEVICE=${DEVICE} \
    LOOKALIKE_ORT_LIBRARY=/opt/lookalike/lib/libonnxruntime.so \
    LOOKALIKE_CUDA_LIB_DIR=/opt/lookalike/lib/cuda/cuda \
    LOOKALIKE_CUDNN_LIB_DIR=/opt/lookalike/lib/cuda/cudnn \
    LOOKALIKE_MODEL=/opt/lookalike/models/efficientnet_lite0.onnx \
    LOOKALIKE_DETECTOR_MODEL=/opt/lookalike/models/nanodet_224_int8.onnx \
    LOOKALIKE_STORAGE_DIR=/var/lib/lookalike/photos
USER lookalike
WORKDIR /var/lib/lookalike
EXPOSE 8080
# Ready means the database answers and the model is loaded. bash's /dev/tcp: no HTTP client needed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LOOKALIKE_LISTEN##*:} && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["lookalike"]
CMD ["serve"]
