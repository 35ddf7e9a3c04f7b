#!/usr/bin/env bash
# EXPLAIN ANALYZE of the nearby listing (GET /v1/reports?latitude=&longitude=&radius_km=) at
# 100,000 reports spread over France, 10% resolved: the query src/store/nearby.rs sends (GiST
# nearest-neighbour walk of migration 0014's index) beside the latitude band of migration 0010
# followed by a sort, for radii of 5, 25, 100 and 20,040 km, three runs each.
#   benches/nearby_explain.sh [database-url-of-the-server]   (a database `nearby_bench` is made anew)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER="${1:-postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable}"
DB="${SERVER%/*}/nearby_bench?sslmode=disable"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/lookalike"
psql -q "$SERVER" -c "DROP DATABASE IF EXISTS nearby_bench" -c "CREATE DATABASE nearby_bench"
"$BIN" migrate --database-url "$DB" >/dev/null
psql -q "$DB" <<'SQL'
INSERT INTO reports (id, kind, species, title, latitude, longitude, owner_token_hash, created_at, status)
SELECT gen_random_uuid(), (ARRAY['lost','found','sighting'])[1 + (g % 3)], (ARRAY['dog','cat','other'])[1 + (g % 3)], 'r' || g,
       round((42 + random() * 9)::numeric, 7)::float8, round((-5 + random() * 13)::numeric, 7)::float8,
       '\x00', now() - (g || ' seconds')::interval, CASE WHEN g % 10 = 0 THEN 'resolved' ELSE 'open' END
FROM generate_series(1, 100000) g;
ANALYZE reports;
SQL
python3 - "$DB" <<'PY' | psql -q "$DB" | grep -E "^radius|Execution Time|Index Scan|Seq Scan"
import math, sys
lat, lon = 48.8566, 2.3522
la, lo = math.radians(lat), math.radians(lon)
c = f"ARRAY[{math.cos(la)*math.cos(lo)},{math.cos(la)*math.sin(lo)},{math.sin(la)}]::float8[]"
point = ("cube(ARRAY[cos(radians(public_latitude)) * cos(radians(public_longitude)), "
         "cos(radians(public_latitude)) * sin(radians(public_longitude)), sin(radians(public_latitude))])")
for km in (5, 25, 100, 20040):
    chord = 2 * math.sin(min(km / 6371 / 2, math.pi / 2)) + 1e-12
    band = km / 111.2 + 0.01
    knn = (f"SELECT * FROM (SELECT id, title, {point} <-> cube({c}) AS chord FROM reports "
           f"WHERE public_latitude IS NOT NULL AND tenant_id IS NULL AND {point} <@ cube_enlarge(cube({c}), {chord}, 3) "
           f"AND status = 'open') near WHERE chord <= {chord} ORDER BY chord, id LIMIT 20")
    hav = (f"SELECT * FROM (SELECT id, title, 2 * 6371 * asin(least(1.0, sqrt(power(sin(radians(public_latitude - {lat}) / 2), 2) "
           f"+ cos(radians({lat})) * cos(radians(public_latitude)) * power(sin(radians(public_longitude - {lon}) / 2), 2)))) AS km "
           f"FROM reports WHERE tenant_id IS NULL AND status = 'open' AND public_latitude BETWEEN {lat - band} AND {lat + band}) near "
           f"WHERE km <= {km} ORDER BY km, id LIMIT 20")
    for name, q in (("gist nearest-first (0014)", knn), ("latitude band + sort (0010)", hav)):
        print(f"\\echo 'radius {km} km: {name}'")
        for _ in range(3):
            print(f"EXPLAIN (ANALYZE) {q};")
PY
