#!/bin/sh
# Build every Arena image locally (Debian rootfs + pip, no Docker Hub), push to the local
# registry, print digests, write .cache/images.json. Idempotent: unchanged images are skipped.
# Needs: debootstrap (apt-get install debootstrap), a running dockerd and registry.
set -eu
cd "$(dirname "$0")/.."
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/arena/docker.sock}"
exec python3 images/build.py "$@"
