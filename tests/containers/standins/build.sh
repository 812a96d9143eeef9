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
for image in "$nginx_image" "$prometheus_image" "$alertmanager_image"; do
  [ -n "$image" ] || die "could not read an upstream image name from the project's files"
done

if ! have bookstore-standin/debian:bookworm; then
  log "making a minimal Debian root filesystem (mmdebstrap) as bookstore-standin/debian:bookworm"
  mmdebstrap --quiet --variant=minbase bookworm - | "$DOCKER" import - bookstore-standin/debian:bookworm >/dev/null
fi

# standin NAME PACKAGES DOCKERFILE IMAGE
standin() {
  if have "$4"; then
    log "stand-in $4 exists"
    return 0
  fi
  log "building stand-in $4 from Debian packages: $2"
  "$DOCKER" build -q --build-arg PACKAGES="$2" -t "bookstore-standin/packages:$1" -f base.Dockerfile . >/dev/null
  "$DOCKER" build -q -t "$4" -f "$3" . >/dev/null
}

standin nginx "nginx-light wget" nginx-unprivileged.Dockerfile "$nginx_image"
standin prometheus "prometheus wget" prometheus.Dockerfile "$prometheus_image"
standin alertmanager "prometheus-alertmanager wget" alertmanager.Dockerfile "$alertmanager_image"
