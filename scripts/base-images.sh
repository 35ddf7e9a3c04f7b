#!/usr/bin/env bash
# Makes the two base images the Dockerfile names, locally, under those names, since no image
# registry is reachable here: `debian:bookworm-slim` from Debian's own archive (debootstrap), and
# `rust:<toolchain>-slim-bookworm` from it plus this machine's Rust toolchain. Idempotent: an
# image already in the local store is kept (`--rebuild` makes them again). Installs buildah and
# debootstrap from Debian when missing. Uses buildah's vfs storage and chroot isolation, which work
# on this machine without a container daemon.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/buildah-env.sh"

rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true

missing=()
for tool in buildah debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

have_image() { ! $rebuild && buildah inspect --type image "$1" >/dev/null 2>&1; }

if ! have_image "$DEBIAN_IMAGE"; then
  log "making $DEBIAN_IMAGE from Debian's archive (debootstrap, about 2 minutes)"
  rootfs=$(mktemp -d /var/tmp/lookalike-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs" "$rootfs.tar"' EXIT
  debootstrap --variant=minbase --components=main bookworm "$rootfs" "$DEBIAN_MIRROR" >/dev/null
  cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main
EOF
  # "slim" as Debian's own image is: no package lists, caches, manuals or docs.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*
  tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$rootfs.tar" .
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash --label "org.opencontainers.image.description=Debian bookworm minbase, made by lookalike's scripts/base-images.sh" "$ctr"
  buildah commit --rm -q "$ctr" "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs" "$rootfs.tar"
  trap - EXIT
fi

if ! have_image "$RUST_IMAGE"; then
  toolchain=$(rustc --print sysroot)
  log "making $RUST_IMAGE from $DEBIAN_IMAGE and $toolchain"
  ctr=$(buildah from --pull=never "$DEBIAN_IMAGE")
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  buildah run "$ctr" -- sh -c 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates gcc libc6-dev make pkg-config >/dev/null && rm -rf /var/lib/apt/lists/*'
  # This machine reaches crates.io and PyPI through an egress proxy with CAs of its own; a build
  # container needs them too. They go into this build-only image, never into the runtime image.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    buildah copy "$ctr" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/ >/dev/null
    buildah run "$ctr" -- update-ca-certificates >/dev/null
  fi
  # The compiler alone: its binaries and libraries (no docs, no sources).
  buildah copy "$ctr" "$toolchain/bin" /usr/local/rust/bin >/dev/null
  buildah copy "$ctr" "$toolchain/lib" /usr/local/rust/lib >/dev/null
  buildah config --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label "org.opencontainers.image.description=Debian bookworm with this machine's Rust $(rustc --version | cut -d' ' -f2), made by lookalike's scripts/base-images.sh" "$ctr"
  buildah commit --rm -q "$ctr" "$RUST_IMAGE" >/dev/null
  trap - EXIT
fi
log "base images ready: $DEBIAN_IMAGE, $RUST_IMAGE"
