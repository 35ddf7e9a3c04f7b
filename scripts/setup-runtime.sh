#!/usr/bin/env bash
# Installs the ONNX Runtime shared library from PyPI (the onnxruntime wheel carries it) into .cache/.
# Idempotent: does nothing when the library is already there. Prints the library's path.
source "$(dirname "$0")/common.sh"

if [ ! -f "$ORT_LIB" ]; then
  log "installing onnxruntime==$ORT_VERSION (library only) into $ORT_DIR"
  tmp="$ORT_DIR.tmp"
  rm -rf "$tmp"
  pip_q install --no-deps --only-binary=:all: --target "$tmp" "onnxruntime==$ORT_VERSION"
  [ -f "$tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ] || die "the onnxruntime wheel has no libonnxruntime.so.$ORT_VERSION"
  rm -rf "$ORT_DIR" && mv "$tmp" "$ORT_DIR"
fi
echo "$ORT_LIB"
