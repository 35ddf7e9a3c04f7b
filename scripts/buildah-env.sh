# buildah settings shared by scripts/base-images.sh and scripts/image.sh. Sourced, not run.
# vfs storage and chroot isolation: what works on a machine with no container daemon and no
# overlay mounts (every buildah call must use the same storage driver to see the same images).
export STORAGE_DRIVER=vfs
export BUILDAH_ISOLATION=chroot
# Docker's format keeps HEALTHCHECK (OCI image configs have no field for it).
export BUILDAH_FORMAT=docker

RUST_VERSION=$(rustc --version | cut -d' ' -f2)
# The names the Dockerfile's FROM lines use (its RUST_IMAGE and DEBIAN_IMAGE arguments).
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
RUST_IMAGE=docker.io/library/rust:$RUST_VERSION-slim-bookworm
DEBIAN_MIRROR=${LOOKALIKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE=${LOOKALIKE_IMAGE:-localhost/lookalike:latest}
