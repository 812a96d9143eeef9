"""The PostgreSQL stack on a real Docker engine: docker-compose.yml with compose.postgres.yml
(three backend replicas on PostgreSQL behind nginx), with only what this machine cannot do
changed (tests/containers/compose.test.yml), on stand-ins for the upstream images
(tests/containers/standins, PostgreSQL's built from Debian's package).

Run by `scripts/test.sh pgstack`, beside the SQLite stack's tests (the `containers` tier): its
published ports are moved up by 10,000 (tests/containers/compose.ports.yml).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from testkit import ROOT, http as request, wait_until as poll  # noqa: E402

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
PROJECT = "bookstore-pg-test"
COMPOSE = [DOCKER, "compose", "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"),
           "-f", str(ROOT / "compose.postgres.yml"), "-f", str(ROOT / "tests/containers/compose.test.yml"),
           "-f", str(ROOT / "tests/containers/compose.ports.yml")]
SERVICES = ["secrets", "postgres", "backend", "frontend", "prometheus", "alertmanager"]
UI = "http://127.0.0.1:18080"
PROMETHEUS = "http://127.0.0.1:19090"
REPLICAS = 3
MONITORING: dict[str, str] = {}


def run(*command: str, check: bool = True) -> str:
    import subprocess
    result = subprocess.run(command, cwd=ROOT, text=True, capture_output=True,
                            env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def compose(*args: str, check: bool = True) -> str:
    return run(*COMPOSE, *args, check=check)


def wait_until(check, timeout: float, what: str):
    return poll(check, timeout, what, every=0.5, ignore=(OSError, AssertionError, KeyError, ValueError))


def inspect(container: str) -> dict:
    return json.loads(run(DOCKER, "inspect", container))[0]


def replicas() -> list[str]:
    return compose("ps", "-q", "backend").split()


def prometheus(query: str) -> list:
    """A query to Prometheus, as the user `bookstore` with the stack's monitoring password."""
    import base64
    import urllib.parse
    if "password" not in MONITORING:
        MONITORING["password"] = compose("exec", "-T", "prometheus", "cat", "/run/secrets/monitoring-password").strip()
    credentials = base64.b64encode(f"bookstore:{MONITORING['password']}".encode()).decode()
    status, _, body = request("GET", f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': query})}",
                              headers={"Authorization": f"Basic {credentials}"})
    return json.loads(body)["data"]["result"] if status == 200 else []


def replicas_up() -> int:
    result = prometheus('count(up{job="bookstore"} == 1)')
    return int(float(result[0]["value"][1])) if result else 0


class PostgresStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        compose("down", "-v", "--remove-orphans", check=False)
        compose("up", "-d", "--wait", "--wait-timeout", "240", *SERVICES[1:])
        cls.token = compose("exec", "-T", "backend", "bookstore", "token", "create", "--name", "pg-stack-tests").strip()

    @classmethod
    def tearDownClass(cls):
        compose("down", "-v", "--remove-orphans", check=False)

    def test_1_three_healthy_replicas_behind_nginx_none_publishing_a_port(self):
        containers = replicas()
        self.assertEqual(len(containers), REPLICAS)
        for container in containers:
            details = inspect(container)
            self.assertEqual(details["State"]["Health"]["Status"], "healthy")
            self.assertEqual(details["HostConfig"]["PortBindings"] or {}, {}, "nginx is the only entrance")
            self.assertTrue(details["HostConfig"]["ReadonlyRootfs"])
            environment = "\n".join(details["Config"]["Env"])
            self.assertIn("DATABASE_URL_FILE=/run/bookstore-secrets/database-url", environment)
            self.assertNotIn("postgres://", environment, "the password is in no container's environment")
            self.assertIn("BOOKSTORE_ADMIN_TOKEN_FILE=/run/bookstore-secrets/admin-token", environment)
            self.assertNotIn("BOOKSTORE_ADMIN_TOKEN=", environment, "nor is the operator token")
        postgres = inspect(compose("ps", "-q", "postgres").strip())
        self.assertEqual(postgres["State"]["Health"]["Status"], "healthy")
        # The database mounts its password and nothing else secret: not the operator token.
        self.assertEqual(sorted(m["Name"] for m in postgres["Mounts"] if "secrets" in m["Name"]),
                         [f"{PROJECT}_postgres-secrets"])
        self.assertEqual(compose("exec", "-T", "postgres", "ls", "/run/postgres-secrets").split(), ["postgres-password"])
        secrets = inspect(compose("ps", "-a", "-q", "secrets").strip())
        self.assertEqual(secrets["State"]["ExitCode"], 0)

    def test_2_requests_through_nginx_reach_every_replica_and_prometheus_scrapes_each(self):
        wait_until(lambda: replicas_up() == REPLICAS, 60, "Prometheus to scrape three replicas")
        for i in range(90):
            status, _, _ = request("GET", f"{UI}/books?limit=1&offset={i % 5}")
            self.assertEqual(status, 200)
        def spread():
            result = prometheus('sum by (instance) (http_requests_total{job="bookstore", route="/books"})')
            counts = {r["metric"]["instance"]: float(r["value"][1]) for r in result}
            return counts if len(counts) == REPLICAS and min(counts.values()) >= 10 else None
        counts = wait_until(spread, 30, "every replica to have served a share")
        self.assertEqual(len(counts), REPLICAS, counts)
        book = {"title": "On PostgreSQL", "author": "Compose", "year": 2025}
        self.assertEqual(request("POST", f"{UI}/books", book, token=None)[0], 401)
        # A token made through one replica works on every one (nginx spreads these over them).
        for _ in range(REPLICAS):
            status, _, body = request("POST", f"{UI}/books", book, token=self.token)
            self.assertEqual(status, 201, body)
        status, _, body = request("GET", f"{UI}/books?q=on+postgresql")
        self.assertEqual(len(json.loads(body)), REPLICAS)

    def test_3_a_killed_replica_costs_no_read_and_comes_back(self):
        wait_until(lambda: replicas_up() == REPLICAS, 60, "three replicas up")
        stop = threading.Event()
        reads, failed = [0], []

        def reader() -> None:
            # About 60 reads a second in all: under nginx's per-client limit (every client on
            # the host reaches nginx from the Docker bridge's one address).
            while not stop.is_set():
                status, _, body = request("GET", f"{UI}/books?limit=3", timeout=10)
                reads[0] += 1
                if status != 200:
                    failed.append((status, body[:200]))
                time.sleep(0.05)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        victim = replicas()[1]
        before = inspect(victim)
        os.kill(before["State"]["Pid"], 9)
        restarted = wait_until(lambda: (lambda now: now if now["RestartCount"] > before["RestartCount"]
                                        and now["State"].get("Health", {}).get("Status") == "healthy"
                                        else None)(inspect(victim)), 90, "the replica to be restarted and healthy")
        wait_until(lambda: replicas_up() == REPLICAS, 60, "Prometheus to scrape three replicas again")
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join()
        self.assertNotEqual(restarted["State"]["Pid"], before["State"]["Pid"])
        self.assertGreater(reads[0], 50)
        self.assertEqual(failed, [], f"of {reads[0]} reads")


if __name__ == "__main__":
    unittest.main(verbosity=2)
