#!/usr/bin/env bash
# The side-by-side benchmark: this backend, the hyper ceiling and the FastAPI original in one
# run (see bench/run.py and docs/benchmarks.md).
#   scripts/bench.sh           full run; rewrites docs/benchmarks.md, the chart and
#                              bench/results/latest.json
#   scripts/bench.sh --quick   smoke run into a scratch directory; asserts nothing about speed
#   scripts/bench.sh --prepare only install and build what a run needs
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require wrk wrk
require nginx nginx-light
ensure_python_venv
venv="$TOOLS/fastapi-venv"
wanted=$(sha256sum bench/peers/fastapi/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$wanted" ]; then
  log "installing the FastAPI original's stack from PyPI into .tools/fastapi-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # Every package pinned and hashed (bench/peers/fastapi/requirements.in says how it is made).
  "$venv/bin/pip" install -q --require-hashes -r bench/peers/fastapi/requirements.txt
  echo "$wanted" >"$venv/.requirements"
fi
if [ -n "${BOOKSTORE_BIN:-}" ]; then
  # A test run's binary (scripts/test.sh): only the ceiling server is built here.
  log "building the ceiling server (the backend: $BOOKSTORE_BIN)"
  cargo build --release --quiet -p ceiling
else
  log "building release binaries (bookstore, ceiling)"
  cargo build --release --quiet -p bookstore -p ceiling
fi

ensure_postgres
[ "${1:-}" = "--prepare" ] && exit 0
pgdir=$(mktemp -d)
log "starting a throwaway PostgreSQL for the PostgreSQL scenarios"
# A page cache that holds the million-book catalogue and its indexes, as a production server would.
python3 scripts/testkit/postgres.py start "$pgdir" --shared-buffers 2GB >/dev/null
# shellcheck disable=SC2064 # the folder is known now
trap "python3 scripts/testkit/postgres.py stop '$pgdir'" EXIT

args=(--fastapi-venv "$venv" --postgres-dir "$pgdir")
if [ "${1:-}" = "--quick" ]; then
  out=$(mktemp -d)
  # shellcheck disable=SC2064 # both folders are known now
  trap "rm -rf '$out'; python3 scripts/testkit/postgres.py stop '$pgdir'" EXIT
  args+=(--quick --out "$out")
fi
python3 bench/run.py "${args[@]}"
