#!/usr/bin/env bash
# The build's own tools beyond Rust, from Debian when missing: cmake and nasm, which build the
# vendored libjpeg-turbo (the `turbojpeg` crate) with its SIMD code. Idempotent; `make lint`,
# `make run` and `make test` run it before cargo does.
source "$(dirname "$0")/common.sh"
missing=()
for tool in cmake nasm; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] && exit 0
apt_install "${missing[@]}"
for tool in "${missing[@]}"; do command -v "$tool" >/dev/null || die "apt installed no $tool"; done
