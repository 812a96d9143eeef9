#!/bin/sh
# What the stand-in keeps of the official postgres image's entrypoint: on an empty data folder,
# initdb with POSTGRES_USER as the superuser and the password from POSTGRES_PASSWORD_FILE, create
# POSTGRES_DB, and accept password (scram-sha-256) connections from the network; then run the
# server in the foreground.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # The password file itself (the official image's entrypoint may append a newline; initdb
  # reads the first line either way): the root file system may be read-only, with no /tmp.
  initdb --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start >/dev/null
  psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$@" -c listen_addresses='*' -k /var/run/postgresql
