# Stand-in for prom/node-exporter: /bin/node_exporter as nobody on port 9100, wget for the
# health check.
FROM bookstore-standin/packages:node-exporter
USER 0:0
RUN ln -sf /usr/bin/prometheus-node-exporter /bin/node_exporter
USER 65534:65534
EXPOSE 9100
ENTRYPOINT ["/bin/node_exporter"]
HEALTHCHECK --interval=10s --timeout=3s CMD ["wget", "-q", "--spider", "http://127.0.0.1:9100/"]
