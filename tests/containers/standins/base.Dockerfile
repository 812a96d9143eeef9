# Packages on top of the imported Debian root filesystem (see build.sh). Stand-ins take the
# versions Debian has, so the packages are not pinned.
ARG SUITE=bookworm
FROM bookstore-standin/debian:${SUITE}
ARG PACKAGES
# hadolint ignore=DL3008
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/*
USER 65534:65534
HEALTHCHECK NONE
