# Stand-in for prom/prometheus: /bin/prometheus as nobody, data in /prometheus, config in
# /etc/prometheus, wget for the health check.
FROM bookstore-standin/packages:prometheus
USER 0:0
RUN test -x /bin/prometheus \
 && mkdir -p /prometheus /etc/prometheus && chown -R 65534:65534 /prometheus /etc/prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
HEALTHCHECK --interval=10s --timeout=3s CMD ["wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready"]
