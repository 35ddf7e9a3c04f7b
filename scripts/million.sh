#!/usr/bin/env bash
# The store at N vectors, vector(1280) against halfvec(1280): runs benches/million.sql's phases
# (load, HNSW build and queries for each type) on the local PostgreSQL, in the throwaway database
# million_bench, logging to stdout. See benches/million.sql for the data and what is measured.
#   scripts/million.sh [N=100000] [TYPES="halfvec vector"] [KEEP=0]
# Environment: MILLION_MWM (maintenance_work_mem, default 4GB), MILLION_Q (queries, default 100),
# MILLION_SKIP_LOAD=1 to reuse a loaded million_bench, MILLION_TRUTH=halfvec to store only the
# halfvec table and take exact search over it as the truth (with TYPES=halfvec; for the million).
source "$(dirname "$0")/common.sh"
N="${1:-100000}"
TYPES="${2:-halfvec vector}"
KEEP="${3:-0}"
URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
run() { psql "$URL" -X -v n="$N" -v q="${MILLION_Q:-100}" -v mwm="${MILLION_MWM:-4GB}" \
  -v truth="${MILLION_TRUTH:-vector}" "$@" -f "$ROOT/benches/million.sql"; }
if [ "${MILLION_SKIP_LOAD:-0}" != 1 ]; then
  log "million: loading $N vectors"
  run -v phase=load
fi
for t in $TYPES; do
  log "million: $t HNSW build"
  run -v phase=build -v type="$t"
  log "million: $t queries"
  run -v phase=query -v type="$t"
done
[ "$KEEP" = 1 ] || run -v phase=drop
