#!/usr/bin/env bash
# Headless Chromium and its WebDriver (Debian's chromium and chromium-driver) for the browser test
# (tests/it/browser.rs). Installs them from the distribution's registry when missing; does
# nothing when both are there.
source "$(dirname "$0")/common.sh"

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
command -v apt-get >/dev/null || die "chromium and chromedriver are missing, and this is not a Debian-like system: install them, then run this again"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "installing chromium needs root (or sudo)"
  sudo=sudo
fi
log "installing chromium and chromium-driver (apt)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromedriver >/dev/null || die "chromium-driver installed no chromedriver"
log "$(chromium --version 2>/dev/null | head -n1)"
