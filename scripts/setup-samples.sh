#!/usr/bin/env bash
# Extracts real sample photos (scikit-image's data folder, from its PyPI wheel) into .cache/samples/.
# Used by the model's self-check, the tests and the benchmarks. Idempotent. Prints the folder.
source "$(dirname "$0")/common.sh"

DIR="$CACHE/samples"
if [ ! -f "$DIR/.done" ]; then
  wheel=$(download_wheel "$SAMPLES_PKG" "$CACHE/wheels")
  rm -rf "$DIR" && mkdir -p "$DIR"
  python3 - "$wheel" "$DIR" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("skimage/data/") and name.endswith((".png", ".jpg")):
            with open(os.path.join(out, os.path.basename(name)), "wb") as f:
                f.write(z.read(name))
PY
  touch "$DIR/.done"
fi
echo "$DIR"
