#!/usr/bin/env bash
# The backend failure drill (see scripts/drill.py and docs/post-mortem.md).
#   scripts/drill.sh --native   start the binaries with the project's configuration and drill them
#                               (add --replicas for the loss of one of three replicas on PostgreSQL)
#   scripts/drill.sh            drill the running `docker compose` stack
# Extra arguments go to drill.py (--kills N, --project NAME, --file COMPOSE_FILE ...).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require python3 python3
ensure_chromium
ensure_node
e2e_modules
if [ "${1:-}" = "--native" ]; then
  require nginx nginx-light
  require prometheus prometheus
  require prometheus-alertmanager prometheus-alertmanager
  ensure_postgres
  build_release >/dev/null
else
  ensure_docker
  ensure_compose
fi
python3 scripts/drill.py "$@"
