#!/usr/bin/env bash
# `make image`: builds the container image from the Dockerfile with buildah (base images made
# locally by scripts/base-images.sh), then runs it against the local database and checks what a
# deployment relies on: it runs as a non-root user, /readyz answers 200, the image's own
# HEALTHCHECK command passes, and one photo gets an embedding.
#
#   scripts/image.sh              build and check the CPU image (localhost/lookalike:latest)
#   DEVICE=cuda scripts/image.sh --build-only     the GPU image (checking it needs a GPU)
#
# The cargo registry, the cargo target folder and the set-up downloads live in buildah's cache
# mounts between builds, so a rebuild after a code change compiles the crate only.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/buildah-env.sh"

build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true
device=${DEVICE:-cpu}
port=${LOOKALIKE_IMAGE_PORT:-18080}

"$ROOT/scripts/base-images.sh"

log "building $IMAGE (DEVICE=$device) with buildah"
started=$SECONDS
buildah build --pull=never --build-arg "RUST_IMAGE=$RUST_IMAGE" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
  --build-arg "DEVICE=$device" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >&2
log "built $IMAGE in $((SECONDS - started)) s ($(buildah images --noheading --format '{{.Size}}' "$IMAGE"))"
# Each build leaves the previous image untagged; vfs keeps whole copies, so drop them.
buildah rmi --prune >/dev/null 2>&1 || true
$build_only && exit 0

if [ -z "${DATABASE_URL:-}" ]; then
  "$ROOT/scripts/pg.sh" start >/dev/null
  DATABASE_URL=$("$ROOT/scripts/pg.sh" url)
fi
sample="$("$ROOT/scripts/setup-samples.sh")/chelsea.png"
base="http://127.0.0.1:$port"

ctr=$(buildah from --pull=never "$IMAGE")
server=
# Under errexit a failing command here would become the script's status: none may fail.
cleanup() {
  if [ -n "$server" ]; then
    kill -TERM -- "-$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  buildah rm "$ctr" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# Host networking: the container reaches the local database on loopback, and we reach it.
buildah config --env "DATABASE_URL=$DATABASE_URL" --env "LOOKALIKE_LISTEN=127.0.0.1:$port" "$ctr"

uid=$(buildah run "$ctr" -- id -u)
[ "$uid" != 0 ] || die "the image runs as root"

setsid buildah run --net host "$ctr" -- lookalike serve > /var/tmp/lookalike-image-serve.log 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat /var/tmp/lookalike-image-serve.log >&2; die "the container exited"; }
  sleep 1
done
curl -fsS -o /dev/null "$base/readyz" || { tail -20 /var/tmp/lookalike-image-serve.log >&2; die "/readyz did not answer 200 within 120 s"; }
log "the container answers /readyz as uid $uid"

# The HEALTHCHECK exactly as the image declares it, run inside the container.
mapfile -t check < <(buildah inspect --type image --format '{{range .Docker.Config.Healthcheck.Test}}{{println .}}{{end}}' "$IMAGE")
[ "${check[0]:-}" = CMD ] || die "the image has no HEALTHCHECK (CMD form): ${check[*]:-none}"
buildah run --net host "$ctr" -- "${check[@]:1}" || die "the image's HEALTHCHECK fails against a ready server"
log "its HEALTHCHECK passes"

answer=$(curl -fsS -F "photos=@$sample" "$base/v1/embeddings") || die "POST /v1/embeddings failed"
python3 - "$answer" <<'PY' || die "the embedding is not what the model gives"
import json, math, sys
body = json.loads(sys.argv[1])
vector = body["embeddings"][0]["embedding"]
assert body["dim"] == len(vector) == 1280, (body["dim"], len(vector))
norm = math.sqrt(sum(v * v for v in vector))
assert abs(norm - 1) < 1e-3, norm
print(f"[setup] one embedding from the container: {body['model']}, dim {len(vector)}, norm {norm:.4f}", file=sys.stderr)
PY
log "image $IMAGE checked"
