# Stand-in for nginxinc/nginx-unprivileged (alpine variant): nginx as uid 101 on port 8080,
# temporary files and pid under /tmp, site files in conf.d, busybox-style wget available.
FROM bookstore-standin/packages:nginx
COPY nginx.conf /etc/nginx/nginx.conf
USER 0:0
RUN rm -f /etc/nginx/sites-enabled/default /etc/nginx/conf.d/default.conf \
 && mkdir -p /usr/share/nginx/html \
 && (getent passwd 101 || useradd --system --uid 101 --gid 101 --no-create-home nginx 2>/dev/null \
     || (groupadd --system --gid 101 nginx && useradd --system --uid 101 --gid 101 --no-create-home nginx)) \
 && chown -R 101:101 /usr/share/nginx/html /var/log/nginx /var/lib/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 8080
STOPSIGNAL SIGQUIT
USER 101
CMD ["nginx", "-g", "daemon off;"]
HEALTHCHECK --interval=10s --timeout=3s CMD ["wget", "-q", "--spider", "http://127.0.0.1:8080/"]
