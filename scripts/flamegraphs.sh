#!/usr/bin/env bash
# CPU flame graphs of the backend under load, into docs/flamegraphs/ (see bench/flamegraphs.py):
# GET /books/{id}, POST /books and a listing, on SQLite and PostgreSQL, directly and through
# nginx. About four minutes. Needs root, or kernel.perf_event_paranoid <= 1, for perf.
#   scripts/flamegraphs.sh                      all twelve
#   scripts/flamegraphs.sh --only sqlite-get-direct,postgres-get-direct
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require perf linux-perf
require wrk wrk
require nginx nginx-light
cargo_tool inferno-flamegraph inferno
ensure_postgres
log "building the profiling binary (the release build with symbols: target/<host triple>/profiling/bookstore)"
cargo build --profile profiling --quiet -p bookstore

pgdir=$(mktemp -d)
python3 scripts/testkit/postgres.py start "$pgdir" >/dev/null
# shellcheck disable=SC2064 # the folder is known now
trap "python3 scripts/testkit/postgres.py stop '$pgdir'" EXIT
python3 bench/flamegraphs.py --postgres-dir "$pgdir" "$@"
