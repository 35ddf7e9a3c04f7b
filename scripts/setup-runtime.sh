#!/usr/bin/env bash
# Installs the ONNX Runtime shared library from PyPI (the onnxruntime wheel carries it) into .cache/.
# Idempotent: does nothing when the library is already there. Prints the library's path.
#
# --gpu: the GPU runtime instead, for `--device cuda` (opt-in; about 1.2 GB to download):
#   - onnxruntime-gpu 1.31.1 (the newest GPU build on PyPI; CUDA 13, cuDNN 9): its core library
#     and its two provider libraries, in one folder (the core loads providers from its own);
#   - the CUDA 13 and cuDNN 9 user-space libraries from NVIDIA's wheels, unless
#     LOOKALIKE_CUDA_PYTHON_ENV names a Python environment that has them already (a host with
#     PyTorch for CUDA 13: its site-packages/nvidia/{cu13,cudnn}/lib are used where they are).
#   It writes .cache/gpu.env (the LOOKALIKE_* variables `serve --device cuda` needs; `make run-gpu`
#   and scripts/gpu-check.sh read it) and prints its path. The NVIDIA driver comes with the host.
source "$(dirname "$0")/common.sh"

if [ "${1:-}" != "--gpu" ]; then
  if [ ! -f "$ORT_LIB" ]; then
    log "installing onnxruntime==$ORT_VERSION (library only) into $ORT_DIR"
    tmp="$ORT_DIR.tmp"
    rm -rf "$tmp"
    pip_q install --no-deps --only-binary=:all: --target "$tmp" "onnxruntime==$ORT_VERSION"
    [ -f "$tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ] || die "the onnxruntime wheel has no libonnxruntime.so.$ORT_VERSION"
    rm -rf "$ORT_DIR" && mv "$tmp" "$ORT_DIR"
  fi
  echo "$ORT_LIB"
  exit 0
fi

ORT_GPU_VERSION=1.31.1
ORT_GPU_DIR="$CACHE/onnxruntime-gpu-$ORT_GPU_VERSION"
ORT_GPU_LIB="$ORT_GPU_DIR/libonnxruntime.so.$ORT_GPU_VERSION"
CUDA_DIR="$CACHE/cuda-13"
# A consistent CUDA 13.0 set (verified in shared/GPU.md); the provider dlopens them by soname.
CUDA_WHEELS=(nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35
  nvidia-cufft==12.0.0.61 nvidia-cuda-nvrtc==13.0.88 nvidia-nvjitlink==13.0.88 nvidia-cudnn-cu13==9.19.0.56)

# Extracts the shared libraries of wheel $1 under prefix $2 whose names match the regex $4 (any
# when absent) into folder $3, flat.
extract() {
  python3 - "$1" "$2" "$3" "${4:-.}" <<'PY'
import os, re, sys, zipfile
wheel, prefix, dest, wanted = sys.argv[1:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith(prefix) and ".so" in base and re.search(wanted, base):
            with z.open(name) as src, open(os.path.join(dest, os.path.basename(name)), "wb") as out:
                out.write(src.read())
PY
}

gpu_wheel() {
  pip_q download --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
    -d "$CACHE/wheels-gpu" "$1"
  local name=${1%%==*}
  ls "$CACHE/wheels-gpu/${name//-/_}"-*.whl | head -n1
}

if [ ! -f "$ORT_GPU_LIB" ] || [ ! -f "$ORT_GPU_DIR/libonnxruntime_providers_cuda.so" ]; then
  log "downloading onnxruntime-gpu==$ORT_GPU_VERSION (about 256 MB)"
  wheel=$(gpu_wheel "onnxruntime-gpu==$ORT_GPU_VERSION")
  rm -rf "$ORT_GPU_DIR.tmp"
  extract "$wheel" onnxruntime/capi/ "$ORT_GPU_DIR.tmp" '^libonnxruntime(\.so\.|_providers_(shared|cuda)\.so$)' 
  for f in "libonnxruntime.so.$ORT_GPU_VERSION" libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
    [ -f "$ORT_GPU_DIR.tmp/$f" ] || die "the onnxruntime-gpu wheel has no $f"
  done
  rm -rf "$ORT_GPU_DIR" && mv "$ORT_GPU_DIR.tmp" "$ORT_GPU_DIR"
fi

if [ -n "${LOOKALIKE_CUDA_PYTHON_ENV:-}" ]; then
  site=$(ls -d "$LOOKALIKE_CUDA_PYTHON_ENV"/lib/python3*/site-packages | head -n1)
  cuda_lib="$site/nvidia/cu13/lib"
  cudnn_lib="$site/nvidia/cudnn/lib"
  [ -f "$cuda_lib/libcublasLt.so.13" ] || die "$LOOKALIKE_CUDA_PYTHON_ENV has no CUDA 13 libraries in $cuda_lib"
  [ -f "$cudnn_lib/libcudnn.so.9" ] || die "$LOOKALIKE_CUDA_PYTHON_ENV has no cuDNN 9 in $cudnn_lib"
else
  cuda_lib="$CUDA_DIR/cu13/lib"
  cudnn_lib="$CUDA_DIR/cudnn/lib"
  if [ ! -f "$cuda_lib/libcublasLt.so.13" ] || [ ! -f "$cudnn_lib/libcudnn.so.9" ]; then
    log "downloading the CUDA 13 and cuDNN 9 libraries (about 1 GB)"
    for spec in "${CUDA_WHEELS[@]}"; do
      wheel=$(gpu_wheel "$spec")
      case "$spec" in
        nvidia-cudnn*) extract "$wheel" nvidia/cudnn/lib/ "$cudnn_lib" ;;
        *) extract "$wheel" nvidia/cu13/lib/ "$cuda_lib" ;;
      esac
    done
  fi
fi

cat > "$CACHE/gpu.env" <<ENV
LOOKALIKE_DEVICE=cuda
LOOKALIKE_ORT_LIBRARY=$ORT_GPU_LIB
LOOKALIKE_CUDA_LIB_DIR=$cuda_lib
LOOKALIKE_CUDNN_LIB_DIR=$cudnn_lib
ENV
log "GPU runtime ready: onnxruntime-gpu $ORT_GPU_VERSION, CUDA libraries in $cuda_lib, cuDNN in $cudnn_lib"
echo "$CACHE/gpu.env"
