# Packages on top of the imported Debian root filesystem (see build.sh). Stand-ins take the
# versions Debian has, so the packages are not pinned.
FROM bookstore-standin/debian:bookworm
ARG PACKAGES
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${PACKAGES} \
 && rm -rf /var/lib/apt/lists/*
USER 65534:65534
HEALTHCHECK NONE
