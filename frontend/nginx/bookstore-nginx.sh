#!/bin/sh
# The frontend image's entrypoint: writes the two pieces of nginx's configuration that depend
# on how the container is started, then runs its command (nginx). POSIX sh: the image's shell
# is BusyBox's.
#
#   HTTPS     when a certificate and its key are mounted (BOOKSTORE_TLS_CERT, BOOKSTORE_TLS_KEY;
#             by default fullchain.pem and privkey.pem in /run/secrets/tls, certbot's names),
#             nginx also listens with TLS on 8443, and plain HTTP on 8080 is redirected to
#             https://HOST:BOOKSTORE_HTTPS_PORT (the published port, 8443 unless set; 443 is
#             left out of the URL). Without them, plain HTTP only.
#   proxies   BOOKSTORE_TRUSTED_PROXIES: the addresses or networks (comma- or space-separated)
#             of TLS-terminating proxies in front, whose X-Forwarded-Proto and X-Forwarded-For
#             nginx believes. Nobody else's.
#
# Both are files in BOOKSTORE_NGINX_DIR (/tmp/bookstore-nginx: the root file system is
# read-only), included by default.conf.
set -eu

dir=${BOOKSTORE_NGINX_DIR:-/tmp/bookstore-nginx}
cert=${BOOKSTORE_TLS_CERT:-/run/secrets/tls/fullchain.pem}
key=${BOOKSTORE_TLS_KEY:-/run/secrets/tls/privkey.pem}
https_port=${BOOKSTORE_HTTPS_PORT:-8443}

fail() {
  echo "bookstore-nginx: $*" >&2
  exit 1
}

mkdir -p "$dir"

if [ -e "$cert" ] || [ -e "$key" ]; then
  for file in "$cert" "$key"; do
    [ -r "$file" ] || fail "HTTPS needs $cert and $key, readable by uid $(id -u): $file is missing or unreadable"
  done
  case $https_port in
    443) suffix= ;;
    '' | *[!0-9]*) fail "BOOKSTORE_HTTPS_PORT must be a port number, not '$https_port'" ;;
    *) suffix=":$https_port" ;;
  esac
  cat >"$dir/tls.conf" <<EOF
# HTTPS: a certificate is mounted (written by bookstore-nginx at start).
listen 8443 ssl;
ssl_certificate $cert;
ssl_certificate_key $key;
set \$bookstore_tls 1;
set \$bookstore_https_port "$suffix";
EOF
  echo "bookstore-nginx: HTTPS on 8443 with $cert; plain HTTP redirected to port $https_port"
else
  echo "# Plain HTTP only: no certificate at $cert (written by bookstore-nginx at start)." >"$dir/tls.conf"
  echo "bookstore-nginx: plain HTTP only (no certificate at $cert)"
fi

: >"$dir/trusted-proxies.conf"
rm -f "$dir/real-ip.conf.new"
for proxy in $(printf '%s' "${BOOKSTORE_TRUSTED_PROXIES:-}" | tr ',' ' '); do
  case $proxy in
    *[!0-9A-Fa-f.:/]*) fail "BOOKSTORE_TRUSTED_PROXIES: '$proxy' is not an address or a network (10.0.0.0/8)" ;;
  esac
  echo "$proxy 1;" >>"$dir/trusted-proxies.conf"
  echo "set_real_ip_from $proxy;" >>"$dir/real-ip.conf.new"
done
if [ -e "$dir/real-ip.conf.new" ]; then
  mv "$dir/real-ip.conf.new" "$dir/real-ip.conf"
else
  echo "# No trusted proxies: the client is whoever connects." >"$dir/real-ip.conf"
fi

exec "$@"
