#!/usr/bin/env bash
# The images on every platform the project supports, as CI's `images` job runs it (on an
# amd64 runner, with QEMU and buildx set up):
#   - the upstream images docker-compose.yml and compose.postgres.yml pin must each publish
#     every platform (checked in the registry's manifest list);
#   - the backend and frontend images are built for each platform from the Dockerfiles as
#     they are (the backend's builder compiles for the platform it runs on, under emulation
#     for a foreign one);
#   - the backend image of each platform is started and must pass its own health check
#     (`bookstore healthcheck`, under emulation for a foreign one);
#   - each image is scanned with Trivy (HIGH and CRITICAL with a fix).
# This is the one place that lists the platforms. Needs docker with buildx, binfmt (QEMU)
# for the foreign platforms, and registry access; Trivy is installed if missing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_trivy

PLATFORMS=(linux/amd64 linux/arm64)

failed=0

log "the pinned upstream images publish ${PLATFORMS[*]}"
mapfile -t upstream < <({ docker compose config --images; docker compose -f docker-compose.yml -f compose.postgres.yml config --images
  sed -n 's/^ARG RUST_IMAGE=//p' Dockerfile.backend; sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile.frontend; } \
  | grep -v '^bookstore-' | sort -u)
for image in "${upstream[@]}"; do
  manifest=$(docker buildx imagetools inspect "$image") || { warn "$image: cannot read its manifest"; failed=1; continue; }
  for platform in "${PLATFORMS[@]}"; do
    if grep -q "Platform: *$platform\$" <<<"$manifest"; then
      log "  $image: $platform"
    else
      warn "  $image does not publish $platform"
      failed=1
    fi
  done
done

for platform in "${PLATFORMS[@]}"; do
  suffix=${platform//\//-}
  log "building bookstore-backend and bookstore-frontend for $platform"
  docker buildx build --platform "$platform" --load -f Dockerfile.backend -t "bookstore-backend:$suffix" .
  docker buildx build --platform "$platform" --load -f Dockerfile.frontend -t "bookstore-frontend:$suffix" .

  log "bookstore-backend:$suffix passes its own health check"
  container=$(docker run -d --platform "$platform" --read-only --cap-drop ALL \
    -e BOOKSTORE_ADMIN_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    --tmpfs /data:uid=10001,gid=10001 "bookstore-backend:$suffix")
  health=starting
  for _ in $(seq 1 60); do
    health=$(docker inspect --format '{{.State.Health.Status}}' "$container")
    [ "$health" = starting ] || break
    sleep 2
  done
  arch=$(docker image inspect --format '{{.Architecture}}' "bookstore-backend:$suffix")
  if [ "$health" = healthy ] && [ "linux/$arch" = "$platform" ]; then
    log "  healthy ($arch)"
  else
    warn "  $health, image architecture $arch"
    docker logs "$container" | tail -20 >&2
    failed=1
  fi
  docker rm -f "$container" >/dev/null

  for image in "bookstore-backend:$suffix" "bookstore-frontend:$suffix"; do
    log "trivy image $image (HIGH, CRITICAL; fixed only)"
    trivy image --quiet --severity HIGH,CRITICAL --ignore-unfixed --exit-code 1 "$image" || failed=1
  done
done

if [ "$failed" -eq 0 ]; then
  log "images: every platform built, healthy and clean"
else
  warn "images: findings above"
fi
exit "$failed"
