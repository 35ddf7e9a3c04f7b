#!/usr/bin/env bash
# `make compose-check`: validates compose.yaml against the Compose file schema with docker-compose
# (Debian's package, installed when missing; `config` reads and checks the file, no daemon needed),
# and checks that the files it mounts exist.
source "$(dirname "$0")/common.sh"

if ! command -v docker-compose >/dev/null; then
  log "installing docker-compose from Debian (the validator)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
fi
cd "$ROOT"
docker-compose -f compose.yaml config -q
for mounted in deploy/nginx.conf deploy/seaweedfs-s3.json; do
  [ -f "$mounted" ] || die "compose.yaml mounts $mounted, which is missing"
done
services=$(docker-compose -f compose.yaml config --services | sort | tr '\n' ' ')
log "compose.yaml is valid: $services"
