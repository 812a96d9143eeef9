#!/usr/bin/env bash
# Builds the local stand-ins for the upstream images the stack uses (see README.md), tagged
# with the exact names in Dockerfile.frontend and docker-compose.yml. Idempotent: images
# that exist are kept (`--force` rebuilds them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/../../../scripts/lib.sh"
cd "$here"

force=0
[ "${1:-}" = "--force" ] && force=1

ensure_docker
require mmdebstrap mmdebstrap

have() { [ "$force" -eq 0 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# The names the project's files use, read from them so that the two cannot drift apart.
nginx_image=$(sed -n 's/^FROM \(nginxinc\/nginx-unprivileged:[^ ]*\).*/\1/p' "$ROOT/Dockerfile.frontend")
prometheus_image=$(sed -n 's/^ *image: \(prom\/prometheus:[^ ]*\)/\1/p' "$ROOT/docker-compose.yml")
alertmanager_image=$(sed -n 's/^ *image: \(prom\/alertmanager:[^ ]*\)/\1/p' "$ROOT/docker-compose.yml")
node_exporter_image=$(sed -n 's/^ *image: \(prom\/node-exporter:[^ ]*\)/\1/p' "$ROOT/docker-compose.yml")
postgres_image=$(sed -n 's/^ *image: \(postgres:[^ ]*\)/\1/p' "$ROOT/compose.postgres.yml")
for image in "$nginx_image" "$prometheus_image" "$alertmanager_image" "$node_exporter_image" "$postgres_image"; do
  [ -n "$image" ] || die "could not read an upstream image name from the project's files"
done

# rootfs SUITE — a minimal Debian root filesystem of SUITE as bookstore-standin/debian:SUITE.
# (The mirror here may be a snapshot whose Release files have passed their Valid-Until.)
rootfs() {
  have "bookstore-standin/debian:$1" && return 0
  log "making a minimal Debian $1 root filesystem (mmdebstrap) as bookstore-standin/debian:$1"
  mmdebstrap --quiet --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' "$1" - \
    | "$DOCKER" import - "bookstore-standin/debian:$1" >/dev/null
}
rootfs bookworm
# nginx from Debian unstable: the pinned nginx-unprivileged is 1.27.4, and the stack's
# `server … resolve` needs 1.27.3 or later, which no stable Debian has (bookworm: 1.22).
rootfs sid

# standin NAME SUITE PACKAGES DOCKERFILE IMAGE
standin() {
  if have "$5"; then
    log "stand-in $5 exists"
    return 0
  fi
  log "building stand-in $5 from Debian $2 packages: $3"
  "$DOCKER" build -q --build-arg SUITE="$2" --build-arg PACKAGES="$3" -t "bookstore-standin/packages:$1" \
    -f base.Dockerfile . >/dev/null
  "$DOCKER" build -q -t "$5" -f "$4" . >/dev/null
}

standin nginx sid "nginx wget" nginx-unprivileged.Dockerfile "$nginx_image"
standin prometheus bookworm "prometheus wget" prometheus.Dockerfile "$prometheus_image"
standin alertmanager bookworm "prometheus-alertmanager wget" alertmanager.Dockerfile "$alertmanager_image"
standin node-exporter bookworm "prometheus-node-exporter wget" node-exporter.Dockerfile "$node_exporter_image"
if ! have "$postgres_image"; then
  log "building stand-in $postgres_image from Debian bookworm's PostgreSQL 15"
  "$DOCKER" build -q -t "$postgres_image" -f postgres.Dockerfile . >/dev/null
fi
