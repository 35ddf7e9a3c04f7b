#!/usr/bin/env bash
# Refreshes the vendored Swagger UI (src/http/web/vendor/swagger-ui/, served at /docs) from the npm
# registry: the pinned version, checked against its published sha512 integrity. The files are
# committed, so building needs neither npm nor the network; run this only to upgrade.
source "$(dirname "$0")/common.sh"

VERSION=5.35.0
INTEGRITY='sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=='
DEST="$ROOT/src/http/web/vendor/swagger-ui"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(npm_tarball swagger-ui-dist "$VERSION" "$INTEGRITY" "$work")
tar -xzf "$tarball" -C "$work"
mkdir -p "$DEST"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE; do
  cp "$work/package/$f" "$DEST/$f"
done
# The source map is not vendored: drop the comment that points browsers at it.
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/swagger-ui-bundle.js" "$DEST/swagger-ui.css"
log "Swagger UI $VERSION vendored in ${DEST#"$ROOT"/}"
