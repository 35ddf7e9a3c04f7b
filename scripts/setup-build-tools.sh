#!/usr/bin/env bash
# The build's own tools beyond Rust, from Debian when missing: cmake and nasm, which build the
# vendored libjpeg-turbo (the `turbojpeg` crate) with its SIMD code. Idempotent; `make lint`,
# `make run` and `make test` run it before cargo does.
source "$(dirname "$0")/common.sh"
missing=()
for tool in cmake nasm; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || die "${missing[*]} missing, and this is not a Debian-like system: install them, then run this again"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "installing ${missing[*]} needs root (or sudo)"
  sudo=sudo
fi
log "installing ${missing[*]} (apt), to build libjpeg-turbo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do command -v "$tool" >/dev/null || die "apt installed no $tool"; done
