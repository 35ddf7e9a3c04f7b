#!/usr/bin/env bash
# Throughput of lookalike against the seeds' stack (../shared/peer), side by side in one run: the
# same photo, the same 20 closed-loop clients for 15 s, only 200 answers counted, the tuned peer
# and lookalike in alternating rounds. Needs the release binary and the load bench built
# (`cargo build --release --features s3`, `cargo bench --bench load --no-run`) and the local
# database.
#
#   scripts/peer-compare.sh PHOTO [ROUNDS] [MODEL]
#
# LOOKALIKE_BEFORE=/path/to/an/older/lookalike adds that build to every round ("lookalike before"),
# for before/after figures from the same run.
source "$(dirname "$0")/common.sh"

photo=$(readlink -f "$1")
rounds=${2:-3}
model=$(readlink -f "${3:-$ROOT/models/efficientnet_lite0.onnx}")
peer=${LOOKALIKE_PEER_DIR:-$ROOT/../shared/peer}
target=${CARGO_TARGET_DIR:-$ROOT/target}
load=$(ls -t "$target"/release/deps/load-* | grep -v '\.d$' | head -n1)
clients=${CLIENTS:-20}
seconds=${SECONDS_PER_RUN:-15}

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
"$peer/run.sh" "$model" 8101 & pids+=($!)
"$peer/run.sh" "$model" 8102 draft & pids+=($!)
"$ROOT/scripts/pg.sh" start >/dev/null
# The peer has no rate limits; lookalike's per-address limit would count all clients as one.
LOOKALIKE_LISTEN=127.0.0.1:8103 LOOKALIKE_MODEL="$model" LOOKALIKE_LOG=warn \
  LOOKALIKE_RATE_SEARCHES_PER_ADDRESS=100000/s \
  DATABASE_URL=$("$ROOT/scripts/pg.sh" url) "$target/release/lookalike" serve >/dev/null 2>&1 &
pids+=($!)
ports="8101 8102 8103"
if [ -n "${LOOKALIKE_BEFORE:-}" ]; then
  LOOKALIKE_LISTEN=127.0.0.1:8104 LOOKALIKE_MODEL="$model" LOOKALIKE_LOG=warn \
    LOOKALIKE_RATE_SEARCHES_PER_ADDRESS=100000/s \
    DATABASE_URL=$("$ROOT/scripts/pg.sh" url) "$LOOKALIKE_BEFORE" serve >/dev/null 2>&1 &
  pids+=($!)
  ports="$ports 8104"
fi
for port in $ports; do
  for _ in $(seq 1 120); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break
    curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    sleep 1
  done
done

run() { # name port path field
  local out
  out=$("$load" --bench --url "http://127.0.0.1:$2" --path "$3" --field "$4" \
    --clients "$clients" --seconds "$seconds" --photo "$photo" 2>&1 | grep -E '^\s+200:' || true)
  printf '%-16s %s\n' "$1" "${out:-  no 200 answers}"
}
echo "photo: $photo ($(stat -c %s "$photo") bytes), model: $(basename "$model"), $clients clients, $seconds s"
run "peer literal" 8101 /embeddings/generate file
for r in $(seq 1 "$rounds"); do
  echo "-- round $r"
  run "peer tuned" 8102 /embeddings/generate file
  run "lookalike" 8103 /v1/embeddings photos
  if [ -n "${LOOKALIKE_BEFORE:-}" ]; then run "lookalike before" 8104 /v1/embeddings photos; fi
done
