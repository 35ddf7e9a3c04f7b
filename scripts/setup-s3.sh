#!/usr/bin/env bash
# An S3-compatible server for the tests of the `s3` feature: moto's server mode (PyPI, pinned)
# in .cache/moto-venv. Idempotent; prints the path of its `moto_server`. The tests start and stop
# their own servers with it, each on a free port.
source "$(dirname "$0")/common.sh"

MOTO_VERSION=5.2.5
VENV="$CACHE/moto-venv"
SERVER="$VENV/bin/moto_server"
# A venv made under another path (a moved or symlinked checkout) keeps that path in its scripts'
# `#!` line, which then names nothing: made again.
interpreter=$(head -n1 "$SERVER" 2>/dev/null | sed -n 's/^#!//p' || true)
if [ ! -x "$SERVER" ] || [ ! -x "$interpreter" ] || ! "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  log "installing moto[server]==$MOTO_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  PIP_ROOT_USER_ACTION=ignore "$VENV/bin/pip" --disable-pip-version-check -q install "moto[server]==$MOTO_VERSION"
fi
echo "$SERVER"
