# Stand-in for postgres (the official image, Debian bookworm variant): Debian's PostgreSQL 15 as
# uid 999, data in /var/lib/postgresql/data, the server programs on PATH, and an entrypoint that
# initialises an empty data folder from POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE as
# the official one does (scram-sha-256 for connections from the network), then runs postgres.
FROM bookstore-standin/debian:bookworm
USER 0:0
# The official image's user and group ids, made before the package makes its own.
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home postgres
# hadolint ignore=DL3008
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 postgresql-contrib \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R 999:999 /var/lib/postgresql /var/run/postgresql && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME ["/var/lib/postgresql/data"]
USER 999:999
EXPOSE 5432
STOPSIGNAL SIGINT
# As upstream: no check in the image; compose.postgres.yml declares one (pg_isready).
HEALTHCHECK NONE
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
