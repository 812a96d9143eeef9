#!/usr/bin/env bash
# Makes the Swarm secrets deploy/swarm/stack.yml reads, unless they exist: the database
# password and the backend's database URL (made together), the operator token, Grafana's
# admin password, and the monitoring password with its web config (made together: the bcrypt
# hash that Prometheus and Alertmanager check, computed by the backend image's `bookstore
# web-config`). Random values unless POSTGRES_PASSWORD, BOOKSTORE_ADMIN_TOKEN,
# GRAFANA_ADMIN_PASSWORD or MONITORING_PASSWORD choose them; a random token or password is
# printed once (Swarm never shows a secret's value again).
#   deploy/swarm/secrets.sh        (on a manager; BOOKSTORE_IMAGE names the backend image)
set -euo pipefail
docker=${DOCKER:-docker}
image=${BOOKSTORE_IMAGE:-bookstore-backend:0.1.0}

exists() { "$docker" secret inspect "$1" >/dev/null 2>&1; }
create() { printf '%s' "$2" | "$docker" secret create "$1" - >/dev/null; }
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# pair FIRST SECOND MAKE: the two secrets exist together or are made together by MAKE; one
# without the other is an error (remove it: each is derived from the same password).
pair() {
  local first=$1 second=$2 make=$3
  if exists "$first" && exists "$second"; then
    echo "$first, $second: exist"
  elif exists "$first" || exists "$second"; then
    echo "only one of $first and $second exists: remove it (they are made together)" >&2
    exit 1
  else
    "$make"
  fi
}

database_secrets() {
  # Hex, so that it needs no escaping in the URL.
  local password=${POSTGRES_PASSWORD:-$(random)}
  [[ $password =~ ^[A-Za-z0-9._~-]+$ ]] || { echo "POSTGRES_PASSWORD: letters, digits and ._~- only" >&2; exit 1; }
  create bookstore-postgres-password "$password"
  create bookstore-database-url "postgres://bookstore:$password@postgres:5432/bookstore"
  echo "bookstore-postgres-password, bookstore-database-url: made"
}

monitoring_secrets() {
  local password=${MONITORING_PASSWORD:-$(random)} web
  web=$(printf '%s\n' "$password" | "$docker" run --rm -i --network none "$image" web-config)
  create bookstore-monitoring-web "$web"
  create bookstore-monitoring-password "$password"
  if [ -n "${MONITORING_PASSWORD:-}" ]; then
    echo "bookstore-monitoring-password, bookstore-monitoring-web: made from MONITORING_PASSWORD"
  else
    echo "bookstore-monitoring-password, bookstore-monitoring-web: made; the monitoring password of user bookstore (shown this once): $password"
  fi
}

# secret NAME WHAT VARIABLE: makes secret NAME from $VARIABLE, or from a random value that is
# printed this once (WHAT says what it is).
secret() {
  local name=$1 what=$2 variable=$3 value
  if exists "$name"; then
    echo "$name: exists"
  elif [ -n "${!variable:-}" ]; then
    create "$name" "${!variable}"
    echo "$name: made from $variable"
  else
    value=$(random)
    create "$name" "$value"
    echo "$name: made; $what (shown this once): $value"
  fi
}

pair bookstore-postgres-password bookstore-database-url database_secrets
secret bookstore-admin-token "the operator token" BOOKSTORE_ADMIN_TOKEN
secret bookstore-grafana-password "Grafana's admin password" GRAFANA_ADMIN_PASSWORD

pair bookstore-monitoring-password bookstore-monitoring-web monitoring_secrets
