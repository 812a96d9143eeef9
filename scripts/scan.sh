#!/usr/bin/env bash
# Scans the stack's images and configuration with Trivy:
#   - every image of docker-compose.yml: HIGH and CRITICAL vulnerabilities that have a fix;
#   - the repository's Dockerfiles and compose file: misconfigurations (trivy config);
#   - a CycloneDX SBOM of the backend image in artifacts/sbom/.
# Uses a `trivy` on PATH, or the pinned official container (aquasec/trivy). Needs internet
# for Trivy's vulnerability database. `--no-build` scans the images as they are.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

TRIVY_IMAGE=aquasec/trivy:0.59.1
build=1
[ "${1:-}" = "--no-build" ] && build=0

ensure_docker
ensure_compose

trivy_run() {
  if command -v trivy >/dev/null 2>&1; then
    trivy "$@"
  else
    "$DOCKER" run --rm \
      -v /var/run/docker.sock:/var/run/docker.sock \
      -v "$ROOT:/src" -w /src \
      -v bookstore-trivy-cache:/root/.cache/trivy \
      "$TRIVY_IMAGE" "$@"
  fi
}

if [ "$build" -eq 1 ]; then
  log "building the project's images"
  "$DOCKER" compose build
fi

failed=0
mapfile -t images < <("$DOCKER" compose config --images | sort -u)
for image in "${images[@]}"; do
  log "trivy image $image (HIGH, CRITICAL; fixed only)"
  trivy_run image --quiet --severity HIGH,CRITICAL --ignore-unfixed --exit-code 1 "$image" || failed=1
done

log "trivy config (Dockerfiles, compose file)"
# (deploy/kubernetes is Kustomize fragments, checked as rendered by `scripts/test.sh kubernetes`.)
trivy_run config --quiet --exit-code 1 --skip-dirs deploy/kubernetes . || failed=1

mkdir -p artifacts/sbom
log "CycloneDX SBOM of the backend image -> artifacts/sbom/bookstore-backend.cdx.json"
trivy_run image --quiet --format cyclonedx --output artifacts/sbom/bookstore-backend.cdx.json \
  bookstore-backend:0.1.0 || failed=1

if [ "$failed" -eq 0 ]; then
  log "scan: nothing found"
else
  warn "scan: findings above"
fi
exit "$failed"
