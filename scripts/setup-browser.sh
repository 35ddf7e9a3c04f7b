#!/usr/bin/env bash
# Headless Chromium and its WebDriver (Debian's chromium and chromium-driver) for the browser test
# (tests/it/browser.rs). Installs them from the distribution's registry when missing; does
# nothing when both are there.
source "$(dirname "$0")/common.sh"

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
apt_install chromium chromium-driver
command -v chromedriver >/dev/null || die "chromium-driver installed no chromedriver"
log "$(chromium --version 2>/dev/null | head -n1)"
