"""The stack as native processes, for tests and the drill: the backend binary, and nginx,
Prometheus and Alertmanager from Debian's packages, each with the project's own
configuration. This is the one place that turns the container configuration into a native
one, and only addresses and paths change; a replacement that does not apply is an error, so
an edited config cannot silently stop being what the tests run.

    python3 scripts/testkit/native.py nginx --dir DIR --listen PORT --backend HOST:PORT
                                            [--https PORT --cert FILE --key FILE]
        writes DIR/nginx.conf (and DIR/default.conf) and prints the path of nginx.conf:
        how the browser tests (tests/e2e/harness.mjs) get the same nginx as the drill.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit import OPERATOR_ENV, ROOT, built, free_port, get, wait_until  # noqa: E402

BINARY = Path(os.environ.get("BOOKSTORE_BIN") or built("bookstore"))
NGINX_SITE = ROOT / "frontend" / "nginx" / "default.conf"
NGINX_UPSTREAM = ROOT / "frontend" / "nginx" / "bookstore-upstream.conf"
NGINX_ENTRYPOINT = ROOT / "frontend" / "nginx" / "bookstore-nginx.sh"
PROMETHEUS_CONFIG = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
RULES = ROOT / "monitoring" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"


def replace(text: str, old: str, new: str, where: str) -> str:
    """`text` with every `old` replaced by `new`; an error if `old` does not occur."""
    if old not in text:
        raise ValueError(f"{where} no longer contains {old!r}: update scripts/testkit/native.py with it")
    return text.replace(old, new)


def render_nginx(directory: Path, listen: int, backends: list[str], workers: int = 1,
                 https: tuple[int, Path, Path] | None = None, trusted_proxies: str = "") -> Path:
    """The project's nginx site for loopback: listening on `listen`, balancing over
    `backends` (HOST:PORT each, where the image resolves the service name), serving the UI
    from the repository; wrapped in what the nginx image's own nginx.conf provides around
    conf.d. With `https` (port, certificate, key), also HTTPS on that port, plain HTTP
    redirected to it. The image's entrypoint (bookstore-nginx.sh) writes what depends on
    the start, as it does in the container. Returns the path of the main configuration."""
    runtime = directory / "bookstore-nginx"
    env = {"PATH": os.environ["PATH"], "BOOKSTORE_NGINX_DIR": str(runtime),
           "BOOKSTORE_TLS_CERT": str(directory / "no-certificate"), "BOOKSTORE_TRUSTED_PROXIES": trusted_proxies}
    if https:
        port, cert, key = https
        env.update(BOOKSTORE_TLS_CERT=str(cert), BOOKSTORE_TLS_KEY=str(key), BOOKSTORE_HTTPS_PORT=str(port))
    subprocess.run(["sh", str(NGINX_ENTRYPOINT), "true"], env=env, check=True, capture_output=True)
    if https:
        tls = runtime / "tls.conf"
        tls.write_text(replace(tls.read_text(), "listen 8443 ssl;", f"listen 127.0.0.1:{https[0]} ssl;",
                               "bookstore-nginx.sh's tls.conf"))
    site = NGINX_SITE.read_text()
    where = "frontend/nginx/default.conf"
    site = replace(site, "/tmp/bookstore-nginx/", f"{runtime}/", where)
    site = replace(site, "listen 8080;", f"listen 127.0.0.1:{listen};", where)
    upstream = "server backend:8000 resolve max_fails=2 fail_timeout=5s;"
    servers = "\n    ".join(f"server {b} max_fails=2 fail_timeout=5s;" for b in backends)
    site = replace(NGINX_UPSTREAM.read_text(), upstream, servers, "frontend/nginx/bookstore-upstream.conf") + site
    site = replace(site, "root /usr/share/nginx/html;", f"root {ROOT / 'frontend'};", where)
    (directory / "default.conf").write_text(site)
    main = directory / "nginx.conf"
    main.write_text(f"""
        worker_processes {workers};
        daemon off;
        pid {directory}/nginx.pid;
        error_log {directory}/nginx-error.log warn;
        events {{ worker_connections 1024; }}
        http {{
          include /etc/nginx/mime.types;
          default_type application/octet-stream;
          access_log {directory}/nginx-access.log;
          client_body_temp_path {directory}/client_temp;
          proxy_temp_path {directory}/proxy_temp;
          fastcgi_temp_path {directory}/fastcgi_temp;
          uwsgi_temp_path {directory}/uwsgi_temp;
          scgi_temp_path {directory}/scgi_temp;
          include {directory}/default.conf;
        }}
    """)
    return main


def render_prometheus(directory: Path, backends: list[str], alertmanager: str, prometheus: str, node: str) -> Path:
    """The project's prometheus.yml with loopback addresses (the backends listed where the
    image discovers them through DNS), the repository's rules, and its monitoring password in
    a file of `directory`. Prometheus sends it, but these native runs start Prometheus and
    Alertmanager without the web config that checks it: the containers tier proves that the
    stack's own refuse a request without it."""
    config = PROMETHEUS_CONFIG.read_text()
    where = "monitoring/prometheus/prometheus.yml"
    discovery = """    dns_sd_configs:
      - names: ["backend"]
        type: A
        port: 8000
        refresh_interval: 5s"""
    targets = ", ".join(f'"{b}"' for b in backends)
    config = replace(config, discovery, f"    static_configs:\n      - targets: [{targets}]", where)
    config = replace(config, '"alertmanager:9093"', f'"{alertmanager}"', where)
    config = replace(config, '"localhost:9090"', f'"{prometheus}"', where)
    config = replace(config, '"node-exporter:9100"', f'"{node}"', where)
    config = replace(config, "/etc/prometheus/rules/*.yml", str(RULES / "*.yml"), where)
    password = directory / "monitoring-password"
    password.write_text("native-monitoring-password\n")
    config = replace(config, "/run/secrets/monitoring-password", str(password), where)
    path = directory / "prometheus.yml"
    path.write_text(config)
    return path


def render_alertmanager(directory: Path, alert_log: str) -> Path:
    """The project's alertmanager.yml with the alert-log receiver on loopback."""
    config = replace(ALERTMANAGER_CONFIG.read_text(), "http://alert-log:9095/alerts", f"http://{alert_log}/alerts",
                     "monitoring/alertmanager/alertmanager.yml")
    path = directory / "alertmanager.yml"
    path.write_text(config)
    return path


class NativeStack:
    """Processes on loopback ports, their logs and data in one scratch folder: `replicas`
    backends (on SQLite by default, or on `database_url`), nginx, Prometheus, Alertmanager."""

    def __init__(self, prefix: str = "bookstore-native-", replicas: int = 1, database_url: str | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.ports = {name: free_port() for name in ("nginx", "prometheus", "alertmanager", "alert-log", "node-exporter")}
        self.backend_ports = [free_port() for _ in range(replicas)]
        self.ports["backend"] = self.backend_ports[0]
        self.processes: dict[str, subprocess.Popen] = {}
        self.database = self.dir / "bookstore.db"
        self.database_url = database_url or f"sqlite://{self.database}"

    @classmethod
    def up(cls, start, **options) -> "NativeStack":
        """A stack on which `start(stack)` has run, or none at all: if `start` fails, whatever
        it had started is taken down before the failure is raised."""
        stack = cls(**options)
        try:
            start(stack)
        except BaseException:
            stack.down()
            raise
        return stack

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def spawn(self, name: str, *command: str, env: dict | None = None) -> subprocess.Popen:
        # The child keeps its own copy of the log file; this process closes its one.
        with open(self.dir / f"{name}.log", "ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                       env={**os.environ, **(env or {})})
        self.processes[name] = process
        return process

    @staticmethod
    def backend_name(replica: int) -> str:
        return "backend" if replica == 0 else f"backend-{replica}"

    def backend_url(self, replica: int) -> str:
        return f"http://127.0.0.1:{self.backend_ports[replica]}"

    def start_backend(self, *extra: str, wait: bool = True, env: dict | None = None, replica: int = 0) -> subprocess.Popen:
        process = self.spawn(self.backend_name(replica), str(BINARY),
                             "--addr", f"127.0.0.1:{self.backend_ports[replica]}",
                             "--database-url", self.database_url, "--static-dir", "", *extra,
                             # nginx, in front, is on loopback too: its X-Forwarded-For names the client.
                             env={**OPERATOR_ENV, "BOOKSTORE_TRUSTED_PROXIES": "127.0.0.1", **(env or {})})
        if wait:
            wait_until(lambda: get(f"{self.backend_url(replica)}/readyz")[0] == 200, 60, "the backend to be ready")
        return process

    def start_alertmanager(self) -> None:
        """Alertmanager, and the alert-log receiver it notifies."""
        self.spawn("alert-log", str(BINARY), "alert-log", "--addr", f"127.0.0.1:{self.ports['alert-log']}")
        wait_until(lambda: get(f"{self.url('alert-log')}/healthz")[0] == 200, 30, "alert-log")
        config = render_alertmanager(self.dir, f"127.0.0.1:{self.ports['alert-log']}")
        self.spawn("alertmanager", "prometheus-alertmanager", f"--config.file={config}",
                   f"--storage.path={self.dir / 'alertmanager'}",
                   f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}", "--cluster.listen-address=")
        wait_until(lambda: get(f"{self.url('alertmanager')}/-/ready")[0] == 200, 30, "Alertmanager")

    def start_prometheus(self) -> None:
        config = render_prometheus(self.dir, self.backends(), f"127.0.0.1:{self.ports['alertmanager']}",
                                   f"127.0.0.1:{self.ports['prometheus']}", f"127.0.0.1:{self.ports['node-exporter']}")
        self.spawn("prometheus", "prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}")
        wait_until(lambda: get(f"{self.url('prometheus')}/-/ready")[0] == 200, 30, "Prometheus")

    def start_node_exporter(self) -> None:
        """Debian's node-exporter (the compose stack's host metrics), on this host."""
        self.spawn("node-exporter", "prometheus-node-exporter",
                   f"--web.listen-address=127.0.0.1:{self.ports['node-exporter']}")
        wait_until(lambda: get(f"{self.url('node-exporter')}/metrics")[0] == 200, 30, "node-exporter")

    def backends(self) -> list[str]:
        """Where the backends listen."""
        return [f"127.0.0.1:{port}" for port in self.backend_ports]

    def start_nginx(self, https: tuple[int, Path, Path] | None = None, trusted_proxies: str = "") -> None:
        """nginx in front of the backends; with `https` (port, certificate, key) also HTTPS,
        and plain HTTP redirected to it (see render_nginx)."""
        config = render_nginx(self.dir, self.ports["nginx"], self.backends(), https=https,
                              trusted_proxies=trusted_proxies)
        self.spawn("nginx", "nginx", "-c", str(config), "-e", str(self.dir / "nginx-error.log"))
        wait_until(lambda: get(f"{self.url('nginx')}/_nginx/health")[0] == 200, 30, "nginx")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=timeout)

    def down(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    nginx = sub.add_parser("nginx", help="render the nginx configuration for loopback")
    nginx.add_argument("--dir", type=Path, required=True)
    nginx.add_argument("--listen", type=int, required=True)
    nginx.add_argument("--backend", required=True, action="append", help="HOST:PORT of a backend (repeatable)")
    nginx.add_argument("--https", type=int, help="also HTTPS on this port (with --cert and --key)")
    nginx.add_argument("--cert", type=Path)
    nginx.add_argument("--key", type=Path)
    args = parser.parse_args()
    https = (args.https, args.cert, args.key) if args.https else None
    print(render_nginx(args.dir, args.listen, args.backend, https=https))
    return 0


if __name__ == "__main__":
    sys.exit(main())
