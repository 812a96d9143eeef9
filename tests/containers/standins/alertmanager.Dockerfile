# Stand-in for prom/alertmanager: /bin/alertmanager as nobody, data in /alertmanager, config
# in /etc/alertmanager, wget for the health check.
FROM bookstore-standin/packages:alertmanager
USER 0:0
RUN ln -sf /usr/bin/prometheus-alertmanager /usr/bin/alertmanager \
 && mkdir -p /alertmanager /etc/alertmanager && chown -R 65534:65534 /alertmanager /etc/alertmanager
USER 65534:65534
WORKDIR /alertmanager
EXPOSE 9093
VOLUME ["/alertmanager"]
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
HEALTHCHECK --interval=10s --timeout=3s CMD ["wget", "-q", "--spider", "http://127.0.0.1:9093/-/ready"]
