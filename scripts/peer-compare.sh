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
# for before/after figures from the same run; LOOKALIKE_BEFORE_MODEL gives it its own model file
# (a build from before a change of how photos are embedded), LOOKALIKE_BEFORE_DATABASE_URL its own
# database (an older build refuses one that a newer build migrated further), and
# LOOKALIKE_BEFORE_ENV settings of its own (e.g. "LOOKALIKE_DETECTOR=false": the same build
# without the animal detector).
#
# Each round also measures the decode floor (issue 25, scripts/decode_floor.py: the photo only
# decoded at the reduced DCT scale a 224-px input needs, libjpeg-turbo through Pillow's draft
# mode, one process per core, nothing else) and the decode+model floor (the same, plus one run of
# the model lookalike serves, one thread per process: the ceiling of any service with that model),
# and the end prints the median of each and the ratios to lookalike and to the decode floor. lookalike runs with its defaults: `--model`
# names the fp32 model (the peer's) and `--precision auto` picks its INT8 sibling where the CPU
# qualifies (LOOKALIKE_PRECISION=fp32 for the same model as the peer).
#
# The photos of issue 25: `"$load" --write-photos DIR` writes DIR/3mp.jpg and DIR/12mp.jpg.
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
# The peer has no rate limits; lookalike's per-address limits would count all clients as one
# (the 20 clients stand for 20 people): its quota and its caps on one address's bodies are lifted.
export LOOKALIKE_RATE_SEARCHES_PER_ADDRESS=100000/s LOOKALIKE_MAX_BODIES_PER_ADDRESS=0 \
  LOOKALIKE_MAX_UPLOADS_PER_ADDRESS=0 LOOKALIKE_BODY_MEMORY_PER_ADDRESS_MIB=0
LOOKALIKE_LISTEN=127.0.0.1:8103 LOOKALIKE_MODEL="$model" LOOKALIKE_LOG=warn \
  DATABASE_URL=$("$ROOT/scripts/pg.sh" url) "$target/release/lookalike" serve >/dev/null 2>&1 &
pids+=($!)
ports="8101 8102 8103"
if [ -n "${LOOKALIKE_BEFORE:-}" ]; then
  # shellcheck disable=SC2086 # LOOKALIKE_BEFORE_ENV is a list of NAME=value words
  env ${LOOKALIKE_BEFORE_ENV:-} LOOKALIKE_LISTEN=127.0.0.1:8104 LOOKALIKE_MODEL="${LOOKALIKE_BEFORE_MODEL:-$model}" LOOKALIKE_LOG=warn \
    DATABASE_URL=${LOOKALIKE_BEFORE_DATABASE_URL:-$("$ROOT/scripts/pg.sh" url)} "$LOOKALIKE_BEFORE" serve >/dev/null 2>&1 &
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

results=$(mktemp)
run() { # name port path field
  local out
  out=$("$load" --bench --url "http://127.0.0.1:$2" --path "$3" --field "$4" \
    --clients "$clients" --seconds "$seconds" --photo "$photo" 2>&1 | grep -E '^\s+200:' || true)
  printf '%-16s %s\n' "$1" "${out:-  no 200 answers}"
  # "  200: N answers, R/s, latency ...": the rate, for the medians.
  printf '%s\t%s\n' "$1" "$(sed -nE 's/.* ([0-9.]+)\/s,.*/\1/p' <<<"$out")" >>"$results"
}
floor() { # name [model]
  local out
  out=$("$CACHE/venv/bin/python" "$ROOT/scripts/decode_floor.py" "$photo" "$seconds" "$(nproc)" ${2:+"$2"})
  printf '%-16s   %s\n' "$1" "$out"
  printf '%s\t%s\n' "$1" "$(sed -nE 's/.*floor: ([0-9.]+) .*/\1/p' <<<"$out")" >>"$results"
}
served=$(curl -fs http://127.0.0.1:8103/v1/status | grep -oE '"model":\{"name":"[^"]*","version":"[^"]*"' || true)
# The file lookalike serves: its INT8 sibling when `--precision auto` chose it (the status names
# the model `...-int8`), else the model given.
served_model=$model
if grep -q -- '-int8"' <<<"$served" && [ -f "${model%.onnx}_int8.onnx" ]; then
  served_model=${model%.onnx}_int8.onnx
fi
echo "photo: $photo ($(stat -c %s "$photo") bytes), model: $(basename "$model"), $clients clients, $seconds s"
echo "lookalike serves: ${served:-?}; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run "peer literal" 8101 /embeddings/generate file
for r in $(seq 1 "$rounds"); do
  echo "-- round $r"
  run "peer tuned" 8102 /embeddings/generate file
  run "lookalike" 8103 /v1/embeddings photos
  if [ -n "${LOOKALIKE_BEFORE:-}" ]; then run "lookalike before" 8104 /v1/embeddings photos; fi
  floor "decode floor"
  floor "decode+model" "$served_model"
done
echo "-- medians over $rounds rounds (photos/s) and ratios; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
"$CACHE/venv/bin/python" - "$results" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    name, _, rate = line.rstrip("\n").partition("\t")
    if rate:
        rates.setdefault(name, []).append(float(rate))
med = {name: statistics.median(v) for name, v in rates.items()}
for name, m in med.items():
    print(f"{name:<16} {m:8.1f}   rounds {', '.join(f'{r:.1f}' for r in rates[name])}")
ours = med.get("lookalike")
for other in ("peer tuned", "decode floor", "decode+model", "lookalike before"):
    if ours and med.get(other):
        print(f"lookalike / {other:<13} {ours / med[other]:.2f}")
if med.get("decode+model") and med.get("decode floor"):
    print(f"decode+model / decode floor {med['decode+model'] / med['decode floor']:.2f}"
          "  (the most any service with this model reaches)")
PY
rm -f "$results"
