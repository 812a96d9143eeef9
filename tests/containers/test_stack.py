"""The container stack on a real Docker engine: the shipped docker-compose.yml, with only what
this machine cannot do changed (tests/containers/compose.test.yml: the backend's `prebuilt`
target; Grafana left out), on stand-ins for the upstream images (tests/containers/standins).

Run by `scripts/test.sh containers`, which installs and starts the engine, builds the
stand-ins and the host binary first.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import ssl
import subprocess
import sys
import tarfile
import tempfile
import unittest
import urllib.parse
from collections.abc import Mapping
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from testkit import ROOT, http as request, wait_until as poll  # noqa: E402
from testkit import tls  # noqa: E402

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
PROJECT = "bookstore-test"
COMPOSE = [DOCKER, "compose", "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"),
           "-f", str(ROOT / "tests/containers/compose.test.yml")]
SERVICES = ["backend", "frontend", "prometheus", "alertmanager", "alert-log", "node-exporter"]
BACKEND_IMAGE = "bookstore-backend:0.1.0"
UI = "http://127.0.0.1:8080"


def run(*command: str, check: bool = True, capture: bool = True) -> str:
    result = subprocess.run(command, cwd=ROOT, text=True, capture_output=capture,
                            env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout if capture else ""


def compose(*args: str, check: bool = True) -> str:
    return run(*COMPOSE, *args, check=check)


# The API token the tests write with, made in setUpClass as a user of the stack would.
TOKEN: dict[str, str | None] = {"value": None}


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None,
         token: str | None = "") -> tuple[int, Mapping[str, str], bytes]:
    """A request; changes carry the tests' API token unless `token` says otherwise (None: none).
    The headers answered are looked up case-insensitively (the backend sends lowercase names)."""
    return request(method, url, body, headers, timeout=10, token=TOKEN["value"] if token == "" else token)


def wait_until(check, timeout: float, what: str):
    return poll(check, timeout, what, every=0.5, ignore=(OSError, AssertionError, KeyError, ValueError))


def container(service: str) -> str:
    return compose("ps", "-q", service).strip()


def inspect(service: str) -> dict:
    return json.loads(run(DOCKER, "inspect", container(service)))[0]


def backend_url() -> str:
    """The backend publishes no port: the Docker host reaches it on the compose network."""
    networks = inspect("backend")["NetworkSettings"]["Networks"]
    return f"http://{next(iter(networks.values()))['IPAddress']}:8000"


def monitoring_auth() -> dict[str, str]:
    """Prometheus's and Alertmanager's basic auth: the user `bookstore` and the password the
    `secrets` one-shot made, read as the compose file's comment tells an operator to."""
    password = compose("exec", "-T", "prometheus", "cat", "/run/secrets/monitoring-password").strip()
    return {"Authorization": "Basic " + base64.b64encode(f"bookstore:{password}".encode()).decode()}


def up() -> None:
    compose("up", "-d", "--wait", "--wait-timeout", "180", *SERVICES)


class ContainerStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        compose("down", "-v", "--remove-orphans", check=False)
        compose("build", "backend", "frontend")
        up()
        # As the backend's log and the README tell a newcomer to.
        TOKEN["value"] = compose("exec", "-T", "backend", "bookstore", "token", "create", "--name", "container-tests").strip()

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("KEEP_STACK") != "1":
            compose("down", "-v", "--remove-orphans", check=False)

    def test_1_compose_config_validates(self):
        run(DOCKER, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q")
        compose("config", "-q")

    def test_2_the_backend_image_is_small_with_no_shell_and_no_package_database(self):
        size = int(run(DOCKER, "image", "inspect", "--format", "{{.Size}}", BACKEND_IMAGE))
        # One static binary with both database engines (16 MB in November 2026) and nothing else.
        self.assertLessEqual(size, 20_000_000, f"{size / 1e6:.1f} MB")
        created = run(DOCKER, "create", BACKEND_IMAGE).strip()
        try:
            exported = subprocess.run([DOCKER, "export", created], capture_output=True, check=True).stdout
        finally:
            run(DOCKER, "rm", created)
        names = tarfile.open(fileobj=io.BytesIO(exported)).getnames()
        for shell in ("bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"):
            self.assertNotIn(shell, names)
        for database in ("var/lib/dpkg", "lib/apk", "var/lib/rpm", "var/lib/apt"):
            self.assertFalse(any(n.startswith(database) for n in names), database)
        self.assertIn("usr/local/bin/bookstore", names)
        config = json.loads(run(DOCKER, "image", "inspect", BACKEND_IMAGE))[0]["Config"]
        self.assertEqual(config["User"], "10001:10001")
        self.assertEqual(config["Healthcheck"]["Test"], ["CMD", "/usr/local/bin/bookstore", "healthcheck"])
        exec_shell = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "/bin/sh", BACKEND_IMAGE, "-c", "true"],
                                    capture_output=True)
        self.assertNotEqual(exec_shell.returncode, 0, "the image must not have a shell")

    def test_3_every_service_is_healthy(self):
        for service in SERVICES:
            self.assertEqual(inspect(service)["State"]["Health"]["Status"], "healthy", service)

    def test_4_the_ui_port_serves_the_page_and_the_api_but_not_metrics(self):
        status, headers, body = http("GET", f"{UI}/")
        self.assertEqual(status, 200)
        self.assertIn(b"<title>Bookstore</title>", body)
        self.assertIn("default-src 'self'", headers.get("Content-Security-Policy", ""))
        status, headers, body = http("POST", f"{UI}/books", {"title": "Through nginx", "author": "Compose", "year": 2024})
        self.assertEqual(status, 201, body)
        created = json.loads(body)
        status, _, body = http("GET", f"{UI}/books?q=through+nginx")
        self.assertEqual([b["id"] for b in json.loads(body)], [created["id"]])
        for path in ("/metrics", "/metrics/"):
            self.assertEqual(http("GET", f"{UI}{path}")[0], 404, path)

    def test_4_changes_need_a_credential_and_the_log_says_how_to_get_one(self):
        book = {"title": "Anonymous", "author": "Nobody", "year": 2024}
        status, headers, body = http("POST", f"{UI}/books", book, token=None)
        self.assertEqual(status, 401, body)
        self.assertTrue(headers["WWW-Authenticate"].startswith('Bearer realm="bookstore"'))
        logs = compose("logs", "backend")
        self.assertIn("docker compose exec backend bookstore token create --name", logs)
        self.assertRegex(TOKEN["value"], r"^bks_[0-9a-f]{64}$")
        self.assertNotIn(TOKEN["value"][4:], logs, "the token is never logged")
        # A browser's sign-in through nginx: the session cookie works for the site's own pages.
        status, headers, body = http("POST", f"{UI}/session", {"token": TOKEN["value"]}, {"Origin": UI}, token=None)
        self.assertEqual(status, 200, body)
        cookie = headers["Set-Cookie"].split(";")[0]
        status, _, body = http("POST", f"{UI}/books", {**book, "title": "By cookie"}, {"Cookie": cookie, "Origin": UI},
                               token=None)
        self.assertEqual(status, 201, body)
        elsewhere = {"Cookie": cookie, "Origin": "http://evil.example"}
        self.assertEqual(http("POST", f"{UI}/books", book, elsewhere, token=None)[0], 403)

    def test_5_prometheus_scrapes_the_backend_and_loaded_the_rules(self):
        auth = monitoring_auth()

        def all_up():
            _, _, body = http("GET", "http://127.0.0.1:9090/api/v1/targets", headers=auth)
            targets = {t["labels"]["job"]: t["health"] for t in json.loads(body)["data"]["activeTargets"]}
            # Prometheus scrapes itself and Alertmanager every 15 s: wait for the first scrape.
            return targets if set(targets.values()) == {"up"} else None

        targets = wait_until(all_up, 60, "every target to be up")
        self.assertEqual(targets, {"bookstore": "up", "prometheus": "up", "alertmanager": "up", "node": "up"})
        _, _, body = http("GET", "http://127.0.0.1:9090/api/v1/rules", headers=auth)
        rules = sorted(r["name"] for g in json.loads(body)["data"]["groups"] for r in g["rules"])
        self.assertIn("BookstoreBackendDown", rules)
        declared = "".join(p.read_text() for p in (ROOT / "monitoring/prometheus/rules").glob("*.yml"))
        self.assertEqual(rules, sorted(re.findall(r"- (?:alert|record): ([\w:]+)", declared)))
        # node-exporter measures the file system that holds the data volume.
        _, _, body = http("GET", "http://127.0.0.1:9090/api/v1/query?query="
                          + urllib.parse.quote('node_filesystem_size_bytes{job="node", mountpoint="/bookstore-data"} > 0'),
                          headers=auth)
        self.assertTrue(json.loads(body)["data"]["result"], "no size of the data volume's file system")
        _, _, body = http("GET", "http://127.0.0.1:9090/api/v1/alertmanagers", headers=auth)
        self.assertTrue(json.loads(body)["data"]["activeAlertmanagers"], "Prometheus found Alertmanager")

    def test_5b_the_operations_plane_is_closed_to_anyone_without_its_credentials(self):
        # The backend's port is not published: nginx (8080) is the only way to the API.
        # (Read from Docker, not by trying the host's port 8000, which a native backend may hold
        # while other tiers run alongside this one.)
        backend = inspect("backend")
        self.assertEqual(backend["HostConfig"]["PortBindings"] or {}, {})
        ports = backend["NetworkSettings"]["Ports"]
        self.assertEqual({port: None for port in ports}, ports, "a backend port bound on the host")
        # Prometheus and Alertmanager: 401 without the password, 200 with it, for their APIs
        # and for an Alertmanager silence (which would hide every alert).
        auth = monitoring_auth()
        wrong = {"Authorization": "Basic " + base64.b64encode(b"bookstore:a-guess").decode()}
        for url in ("http://127.0.0.1:9090/api/v1/query?query=up", "http://127.0.0.1:9090/-/ready",
                    "http://127.0.0.1:9093/api/v2/silences", "http://127.0.0.1:9093/-/ready"):
            self.assertEqual(http("GET", url)[0], 401, url)
            self.assertEqual(http("GET", url, headers=wrong)[0], 401, url)
            self.assertEqual(http("GET", url, headers=auth)[0], 200, url)
        silence = {"matchers": [{"name": "alertname", "value": ".+", "isRegex": True}],
                   "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
                   "createdBy": "attacker", "comment": "hide every alert"}
        self.assertEqual(http("POST", "http://127.0.0.1:9093/api/v2/silences", silence, token=None)[0], 401)
        # Each secret volume is mounted only where it is needed: the monitoring services
        # cannot read the operator token, the backend cannot read the monitoring password.
        mounts = {service: {m["Destination"]: m.get("Name") for m in inspect(service)["Mounts"]}
                  for service in ("backend", "prometheus", "alertmanager")}
        self.assertNotIn(f"{PROJECT}_monitoring-secrets", mounts["backend"].values())
        for service in ("prometheus", "alertmanager"):
            self.assertNotIn(f"{PROJECT}_bookstore-secrets", mounts[service].values(), service)

    def test_5c_operations_ports_are_loopback_unless_bookstore_ops_bind_says_otherwise(self):
        def published(environment: dict) -> dict:
            config = json.loads(subprocess.run([*COMPOSE, "config", "--format", "json"], cwd=ROOT, check=True,
                                               capture_output=True, text=True,
                                               env={**os.environ, **environment}).stdout)
            return {name: sorted(p.get("host_ip", "") for p in service.get("ports", []))
                    for name, service in config["services"].items() if service.get("ports")}

        # The frontend's two: HTTP 8080 and HTTPS 8443.
        self.assertEqual(published({}), {"frontend": ["127.0.0.1", "127.0.0.1"], "prometheus": ["127.0.0.1"],
                                          "alertmanager": ["127.0.0.1"], "grafana": ["127.0.0.1"]})
        # The UI on every interface moves none of the operations ports, and the other way round.
        self.assertEqual(published({"BOOKSTORE_BIND": "0.0.0.0"}),
                         {"frontend": ["0.0.0.0", "0.0.0.0"], "prometheus": ["127.0.0.1"],
                          "alertmanager": ["127.0.0.1"], "grafana": ["127.0.0.1"]})
        self.assertEqual(published({"BOOKSTORE_OPS_BIND": "10.1.2.3"})["prometheus"], ["10.1.2.3"])

    def test_5d_grafana_has_no_anonymous_access_and_its_password_is_a_file_never_logged(self):
        # No Grafana binary or image exists here (no registry, no Debian package), so this reads
        # the configuration compose would start it with, and the secret the one-shot made.
        grafana = json.loads(run(*COMPOSE, "config", "--format", "json"))["services"]["grafana"]
        environment = grafana["environment"]
        self.assertEqual(environment["GF_AUTH_ANONYMOUS_ENABLED"], "false")
        self.assertEqual(environment["GF_SECURITY_ADMIN_PASSWORD__FILE"], "/run/secrets/grafana-password")
        self.assertNotIn("GF_SECURITY_ADMIN_PASSWORD", environment)
        self.assertIsNone(grafana.get("entrypoint"), "the image's own entrypoint: nothing prints the password")
        password = compose("exec", "-T", "prometheus", "cat", "/run/secrets/grafana-password").strip()
        self.assertRegex(password, r"^[0-9a-f]{32}$")
        self.assertNotIn(password, compose("logs"), "no service logs it")

    def test_5e_with_a_certificate_mounted_the_site_is_https_only(self):
        # A certificate from a throwaway CA in a folder named by BOOKSTORE_TLS_DIR, as a user
        # would put theirs in ./tls; the frontend is recreated with it, and without it after.
        folder = Path(tempfile.mkdtemp(prefix="bookstore-tls-"))
        folder.chmod(0o755)
        certificate = tls.make(folder, names=("localhost",))
        context = ssl.create_default_context(cafile=str(certificate.ca))
        with_tls = {**os.environ, "BOOKSTORE_TLS_DIR": str(folder), "DOCKER_BUILDKIT": "1"}

        def recreate_frontend(env: dict) -> None:
            subprocess.run([*COMPOSE, "up", "-d", "--no-deps", "--force-recreate", "--wait", "--wait-timeout", "60",
                            "frontend"], cwd=ROOT, env=env, check=True, capture_output=True)

        def ask(method: str, path: str, body: dict | None = None, headers: dict | None = None, secure: bool = True):
            connection = (HTTPSConnection("localhost", 8443, timeout=10, context=context) if secure
                          else HTTPConnection("localhost", 8080, timeout=10))
            try:
                data = json.dumps(body).encode() if body is not None else None
                connection.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
                response = connection.getresponse()
                return response.status, response.headers, response.read()
            finally:
                connection.close()

        recreate_frontend(with_tls)
        try:
            self.assertIn("HTTPS on 8443", compose("logs", "frontend"))
            status, headers, body = ask("GET", "/books?limit=1")
            self.assertEqual(status, 200, body)
            self.assertEqual(headers["Strict-Transport-Security"], "max-age=31536000")
            status, headers, _ = ask("GET", "/books?limit=1", secure=False)
            self.assertEqual(status, 308)
            self.assertEqual(headers["Location"], "https://localhost:8443/books?limit=1")
            # Signing in over HTTPS: the cookie is Secure and __Host- prefixed, and it works.
            origin = "https://localhost:8443"
            status, headers, body = ask("POST", "/session", {"token": TOKEN["value"]}, {"Origin": origin})
            self.assertEqual(status, 200, body)
            cookie = headers["Set-Cookie"]
            self.assertTrue(cookie.startswith("__Host-bookstore_session=") and "; Secure" in cookie, cookie)
            status, _, body = ask("POST", "/books", {"title": "Over HTTPS", "author": "A", "year": 2026},
                                  {"Cookie": cookie.split(";")[0], "Origin": origin})
            self.assertEqual(status, 201, body)
        finally:
            recreate_frontend({**os.environ, "DOCKER_BUILDKIT": "1"})
        self.assertEqual(http("GET", f"{UI}/books?limit=1")[0], 200, "plain HTTP again without the certificate")

    def test_6_every_container_runs_as_a_non_root_user_on_a_read_only_root(self):
        for service in SERVICES:
            details = inspect(service)
            self.assertTrue(details["HostConfig"]["ReadonlyRootfs"], service)
            self.assertEqual(details["HostConfig"]["CapDrop"], ["ALL"], service)
            self.assertIn("no-new-privileges:true", details["HostConfig"]["SecurityOpt"], service)
            # The process's real user, as the kernel sees it.
            status = Path(f"/proc/{details['State']['Pid']}/status").read_text()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            self.assertNotIn("0", uids, f"{service} runs as root: {uids}")

    def test_7_data_survives_down_and_up(self):
        status, _, body = http("POST", f"{UI}/books", {"title": "Survivor", "author": "Volume", "year": 2020})
        self.assertEqual(status, 201)
        book = json.loads(body)
        compose("down")
        up()
        status, _, body = http("GET", f"{UI}/books/{book['id']}")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["title"], "Survivor")

    def test_8_a_killed_backend_is_restarted_by_its_restart_policy(self):
        before = inspect("backend")
        os.kill(before["State"]["Pid"], 9)

        def restarted():
            now = inspect("backend")
            healthy = now["State"].get("Health", {}).get("Status") == "healthy"
            return now if now["RestartCount"] > before["RestartCount"] and healthy else None

        after = wait_until(restarted, 90, "the backend to be restarted and healthy")
        self.assertNotEqual(after["State"]["Pid"], before["State"]["Pid"])
        self.assertEqual(http("GET", f"{UI}/books?limit=1")[0], 200)

    def test_9_the_operator_token_chosen_in_dot_env_replaces_the_secret_file(self):
        chosen = "operator-token-chosen-by-the-container-tests"
        self.assertEqual(http("POST", f"{UI}/books", {"title": "Op", "author": "A", "year": 1}, token=chosen)[0], 401)
        run(*COMPOSE, "run", "--rm", "-e", f"BOOKSTORE_ADMIN_TOKEN={chosen}", "secrets")
        compose("restart", "backend")
        wait_until(lambda: inspect("backend")["State"]["Health"]["Status"] == "healthy", 90, "the backend")
        # Straight to the backend: nginx's kept-open connections to the old process are gone.
        status, _, body = http("POST", f"{backend_url()}/books", {"title": "Op", "author": "A", "year": 1},
                               token=chosen)
        self.assertEqual(status, 201, body)
        self.assertNotIn(chosen, json.dumps(inspect("backend")["Config"]["Env"]), "not in the environment")

    def test_9b_scheduled_backups_run_and_the_readmes_restore_runbook_works(self):
        # The stack took one on its first start (the volume held none), and exports it.
        def last_backup():
            _, _, body = http("GET", f"{backend_url()}/metrics")
            line = next(l for l in body.decode().splitlines()
                        if l.startswith("bookstore_backup_last_success_timestamp_seconds "))
            return float(line.split()[1]) or None
        self.assertGreater(wait_until(last_backup, 30, "a scheduled backup"), 0)
        status, _, body = http("POST", f"{UI}/books", {"title": "Before the backup", "author": "Runbook", "year": 2026})
        self.assertEqual(status, 201, body)
        kept = json.loads(body)["id"]
        # The README's commands: a backup now, copied out of the volume.
        compose("exec", "-T", "backend", "bookstore", "backup", "/backups/manual-test.db")
        out = Path(tempfile.mkdtemp(prefix="bookstore-backups-"))
        compose("cp", "backend:/backups", str(out / "backups"))
        names = sorted(p.name for p in (out / "backups").iterdir())
        self.assertIn("manual-test.db", names)
        self.assertTrue(any(n.startswith("bookstore-") and n.endswith("Z.db") for n in names), names)
        status, _, body = http("POST", f"{UI}/books", {"title": "After the backup", "author": "Runbook", "year": 2026})
        self.assertEqual(status, 201, body)
        lost = json.loads(body)["id"]
        # Restore while it runs: refused. Then as the runbook says.
        refused = subprocess.run([*COMPOSE, "run", "--rm", "--no-deps", "backend", "restore", "/backups/manual-test.db"],
                                 cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertIn("stop it first", refused.stderr)
        compose("stop", "backend")
        restored = compose("run", "--rm", "--no-deps", "backend", "restore", "/backups/manual-test.db")
        self.assertIn("integrity check ok", restored)
        compose("start", "backend")
        wait_until(lambda: inspect("backend")["State"]["Health"]["Status"] == "healthy", 90, "the backend")
        self.assertEqual(http("GET", f"{backend_url()}/books/{kept}")[0], 200)
        self.assertEqual(http("GET", f"{backend_url()}/books/{lost}")[0], 404, "made after the backup")


if __name__ == "__main__":
    unittest.main(verbosity=2)
