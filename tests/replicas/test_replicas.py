"""Three backends on one PostgreSQL behind the project's nginx, watched by the project's
Prometheus: natively, each program with its own configuration (scripts/testkit/native.py
renders it for loopback: nginx and Prometheus list the three instead of finding them by DNS).

    BOOKSTORE_TEST_POSTGRES=... python3 -m unittest -v tests/replicas/test_replicas.py

`scripts/test.sh replicas` starts the throwaway PostgreSQL and sets the variable.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import unittest
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from testkit import OPERATOR_TOKEN, get, http, wait_until  # noqa: E402
from testkit.native import NativeStack  # noqa: E402
from testkit.replica_loss import replica_loss  # noqa: E402

ADMIN_URL = os.environ.get("BOOKSTORE_TEST_POSTGRES", "")
REPLICAS = 3


def book(title: str) -> dict:
    return {"title": title, "author": "Replica Tester", "year": 2021}


@unittest.skipUnless(ADMIN_URL, "needs BOOKSTORE_TEST_POSTGRES: scripts/test.sh replicas sets it")
class ThreeReplicasBehindNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from testkit.postgres import Postgres
        port = urllib.parse.urlparse(ADMIN_URL).port
        database = Postgres(Path(os.environ["BOOKSTORE_TEST_POSTGRES_DIR"]), port).create_database(
            f"replicas_{uuid.uuid4().hex[:8]}")
        cls.stack = NativeStack(prefix="bookstore-replicas-", replicas=REPLICAS, database_url=database)
        # All at once, on a new database: they race to migrate it and to seed it.
        for replica in range(REPLICAS):
            cls.start(replica, wait=False)
        for replica in range(REPLICAS):
            wait_until(lambda: get(f"{cls.stack.backend_url(replica)}/readyz")[0] == 200, 60, f"replica {replica}")
        cls.stack.start_alertmanager()
        cls.stack.start_prometheus()
        cls.stack.start_nginx()
        cls.nginx = cls.stack.url("nginx")

    @classmethod
    def tearDownClass(cls):
        cls.stack.down()

    @classmethod
    def start(cls, replica: int, wait: bool = True) -> None:
        cls.stack.start_backend("--replicas-expected", str(REPLICAS), "--log-format", "json", replica=replica,
                                wait=wait)

    def requests_served(self, replica: int) -> float:
        """The replica's own count of answered API requests (from its /metrics)."""
        _, body = get(f"{self.stack.backend_url(replica)}/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith("http_requests_total{") and 'route="/books' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def prometheus_up(self) -> int:
        query = urllib.parse.urlencode({"query": 'count(up{job="bookstore"} == 1)'})
        status, body = get(f"{self.stack.url('prometheus')}/api/v1/query?{query}")
        result = json.loads(body)["data"]["result"] if status == 200 else []
        return int(float(result[0]["value"][1])) if result else 0

    def alert_state(self, name: str) -> str | None:
        _, body = get(f"{self.stack.url('prometheus')}/api/v1/alerts")
        states = [a["state"] for a in json.loads(body)["data"]["alerts"] if a["labels"]["alertname"] == name]
        return states[0] if states else None

    def test_1_requests_are_spread_over_every_replica(self):
        before = [self.requests_served(r) for r in range(REPLICAS)]
        for i in range(300):
            status, _, _ = http("GET", f"{self.nginx}/books?limit=1&offset={i % 7}")
            self.assertEqual(status, 200)
        grown = [self.requests_served(r) - before[r] for r in range(REPLICAS)]
        self.assertTrue(all(g >= 30 for g in grown), f"each replica's share of 300 requests: {grown}")

    def test_2_every_write_through_nginx_is_read_back_through_nginx(self):
        def round_trip(i: int) -> None:
            status, headers, body = http("POST", f"{self.nginx}/books", book(f"Through nginx {i}"))
            self.assertEqual(status, 201, body)
            created = json.loads(body)
            status, again, body = http("GET", f"{self.nginx}/books/{created['id']}")
            self.assertEqual((status, json.loads(body)), (200, created))
            self.assertEqual(again["ETag"], headers["ETag"])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(round_trip, range(200)))

    def test_3_an_idempotent_retry_through_nginx_lands_on_other_replicas_and_gets_the_first_answer(self):
        key = {"Idempotency-Key": uuid.uuid4().hex}
        answers = [http("POST", f"{self.nginx}/books", book("Retried through nginx"), key) for _ in range(6)]
        self.assertEqual({a[0] for a in answers}, {201})
        self.assertEqual(len({a[2] for a in answers}), 1, "every retry got the original answer")
        _, _, body = http("GET", f"{self.nginx}/books?q=retried+through+nginx")
        self.assertEqual(len(json.loads(body)), 1)

    def test_4_a_replica_killed_under_load_fails_no_read_and_loses_no_acknowledged_write(self):
        wait_until(lambda: self.prometheus_up() == REPLICAS, 60, "Prometheus to see every replica up")
        victim = 1

        def while_down() -> None:
            wait_until(lambda: self.prometheus_up() == REPLICAS - 1, 30, "Prometheus to see two replicas up")
            wait_until(lambda: self.alert_state("BookstoreReplicasMissing") in ("pending", "firing"), 30,
                       "BookstoreReplicasMissing to be pending")

        def once_back() -> None:
            # nginx takes the replica back once its fail_timeout (5 s) has passed since the last
            # failed attempt: wait for that under load rather than assume it happened.
            served = self.requests_served(victim)
            wait_until(lambda: self.prometheus_up() == REPLICAS, 30, "Prometheus to see three replicas up again")
            wait_until(lambda: self.requests_served(victim) > served, 30, "nginx to send requests to it again")

        loss = replica_loss(self.nginx, lambda: self.stack.stop(self.stack.backend_name(victim), signal.SIGKILL),
                            lambda: self.start(victim), while_down, once_back, writers=3, marker="Loaded")
        self.assertEqual(loss["failures"], [], f"of {loss['reads']} reads")
        self.assertGreater(loss["reads"], 200, "reads during the test")
        self.assertGreater(loss["acknowledged_writes"], 50, "acknowledged writes during the test")
        self.assertEqual(loss["lost_writes"], 0, "every acknowledged write is there")
        wait_until(lambda: self.alert_state("BookstoreReplicasMissing") is None, 60, "the alert to resolve")

    def test_6_a_browser_signed_in_through_one_replica_is_signed_in_on_every_one(self):
        status, headers, body = http("POST", f"{self.nginx}/session", {"token": OPERATOR_TOKEN},
                                     {"Origin": self.nginx}, token=None)
        self.assertEqual(status, 200, body)
        browser = {"Cookie": headers["Set-Cookie"].split(";")[0], "Origin": self.nginx}
        before = [self.requests_served(r) for r in range(REPLICAS)]
        for i in range(30):
            status, _, body = http("POST", f"{self.nginx}/books", book(f"Signed in {i}"), browser, token=None)
            self.assertEqual(status, 201, body)
        grown = [self.requests_served(r) - before[r] for r in range(REPLICAS)]
        self.assertTrue(all(g >= 5 for g in grown), f"each replica's share of the 30 changes: {grown}")
        status, _, _ = http("DELETE", f"{self.nginx}/session", None, browser, token=None)
        self.assertEqual(status, 204)
        self.assertEqual(http("POST", f"{self.nginx}/books", book("Signed out"), browser, token=None)[0], 401)

    def test_0_replicas_started_together_migrated_and_seeded_the_database_once(self):
        logs = "".join((self.stack.dir / f"{self.stack.backend_name(r)}.log").read_text() for r in range(REPLICAS))
        self.assertEqual(len(re.findall("added the sample catalogue", logs)), 1, "one replica seeded it")
        _, headers, body = http("GET", f"{self.nginx}/books?q=dune")
        self.assertEqual(len(json.loads(body)), 1, "one sample catalogue, not three")

    def test_5_the_replicas_share_one_catalogue(self):
        _, headers, _ = http("GET", f"{self.nginx}/books?limit=1")
        totals = set()
        for replica in range(REPLICAS):
            _, direct, _ = http("GET", f"{self.stack.backend_url(replica)}/books?limit=1")
            totals.add(direct["X-Total-Count"])
        self.assertEqual(totals, {headers["X-Total-Count"]})

    def test_7_the_limit_on_failed_credentials_is_shared_by_every_replica(self):
        # One client guessing at each replica in turn (straight to them: each believes a
        # loopback peer's X-Forwarded-For): ten failures a minute in all, not ten per replica.
        guesser = {"X-Forwarded-For": "198.51.100.200", "Authorization": "Bearer bks_" + "7" * 64}
        answers = [http("POST", f"{self.stack.backend_url(n % REPLICAS)}/books", book("Guess"), guesser)[0]
                   for n in range(3 * 10)]
        self.assertEqual(answers[:10], [401] * 10, answers)
        self.assertEqual(set(answers[10:]), {429}, answers)
        # A valid credential from that client is still served, by every replica.
        for replica in range(REPLICAS):
            status, _, body = http("POST", f"{self.stack.backend_url(replica)}/books", book("Valid"),
                                   {"X-Forwarded-For": "198.51.100.200"})
            self.assertEqual(status, 201, body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
