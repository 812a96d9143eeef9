#!/usr/bin/env bash
# The side-by-side benchmark: this backend, the hyper ceiling and the FastAPI original in one
# run (see bench/run.py and docs/benchmarks.md).
#   scripts/bench.sh           full run; rewrites docs/benchmarks.md, the chart and
#                              bench/results/latest.json
#   scripts/bench.sh --quick   smoke run into a scratch directory; asserts nothing about speed
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require wrk wrk
ensure_python_venv
venv="$TOOLS/fastapi-venv"
if [ ! -x "$venv/bin/uvicorn" ]; then
  log "installing the FastAPI original's stack from PyPI into .tools/fastapi-venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/peers/fastapi/requirements.txt
fi
log "building release binaries (bookstore, ceiling)"
cargo build --release --quiet -p bookstore -p ceiling

args=(--fastapi-venv "$venv")
if [ "${1:-}" = "--quick" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  args+=(--quick --out "$out")
fi
python3 bench/run.py "${args[@]}"
