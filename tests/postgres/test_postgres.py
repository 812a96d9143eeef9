"""The PostgreSQL engine with real processes: two backends on one database, a database that
stops and starts under load, a backend killed under load, and copying a catalogue between
SQLite and PostgreSQL both ways.

    BOOKSTORE_TEST_POSTGRES=... python3 -m unittest -v tests/postgres/test_postgres.py

`scripts/test.sh postgres` starts a throwaway server (Debian's PostgreSQL 15) for it; these
tests stop and start that server, so they take its data folder from
BOOKSTORE_TEST_POSTGRES_DIR.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from testkit import OPERATOR_ENV, every_book, free_port, get, http, wait_until  # noqa: E402
from testkit.native import BINARY  # noqa: E402
from testkit.postgres import Postgres  # noqa: E402

ADMIN_URL = os.environ.get("BOOKSTORE_TEST_POSTGRES", "")
SERVER_DIR = os.environ.get("BOOKSTORE_TEST_POSTGRES_DIR", "")


def server() -> Postgres:
    port = urllib.parse.urlparse(ADMIN_URL).port
    return Postgres(Path(SERVER_DIR), port)


def new_database() -> str:
    name = f"proc_{uuid.uuid4().hex[:12]}"
    return server().create_database(name)


class Backend:
    """One `bookstore serve` process on a free port."""

    def __init__(self, database_url: str, *extra: str, demo: bool = False, operator: bool = True):
        self.operator = operator
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.extra = extra
        self.demo = demo
        self.log = tempfile.NamedTemporaryFile(prefix="bookstore-pg-backend-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "Backend":
        self.process = subprocess.Popen(
            [str(BINARY), "--addr", f"127.0.0.1:{self.port}", "--database-url", self.database_url,
             "--static-dir", "", "--demo-data", str(self.demo).lower(), "--log-format", "json", *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_ADMIN_TOKEN")},
                 **(OPERATOR_ENV if self.operator else {})})
        if wait:
            wait_until(lambda: get(f"{self.url}/readyz")[0] == 200, 60, f"the backend on {self.port}")
        return self

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 15, **options):
        return http(method, f"{self.url}{path}", body, headers, timeout, **options)

    def all_books(self) -> dict[int, dict]:
        return {b["id"]: b for b in every_book(self.url)}


def book(title: str) -> dict:
    return {"title": title, "author": "Replica Tester", "year": 2020}


@unittest.skipUnless(ADMIN_URL and SERVER_DIR, "needs BOOKSTORE_TEST_POSTGRES(_DIR): scripts/test.sh postgres sets them")
class TwoBackendsOnOneDatabase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        database = new_database()
        cls.a = Backend(database).start()
        cls.b = Backend(database).start()

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()

    def test_every_write_through_one_is_read_at_once_through_the_other(self):
        def round_trip(i: int) -> None:
            writer, reader = (self.a, self.b) if i % 2 else (self.b, self.a)
            title = f"Read your writes {i}"
            status, headers, body = writer.request("POST", "/books", book(title))
            self.assertEqual(status, 201, body)
            created = json.loads(body)
            path = f"/books/{created['id']}"
            status, read_headers, body = reader.request("GET", path)
            self.assertEqual((status, json.loads(body)), (200, created))
            self.assertEqual(read_headers["ETag"], headers["ETag"])
            status, headers, body = reader.request("PATCH", path, {"year": 1999}, {"If-Match": headers["ETag"]})
            self.assertEqual(status, 200, body)
            status, again, body = writer.request("GET", path)
            self.assertEqual(again["ETag"], headers["ETag"], "the other replica sees the change at once")
            status, _, body = writer.request("GET", f"/books?q={urllib.parse.quote(title)}&sort=-year")
            self.assertIn(created["id"], [b["id"] for b in json.loads(body)])
            status, _, _ = writer.request("DELETE", path)
            self.assertEqual(status, 204)
            status, _, _ = reader.request("GET", path)
            self.assertEqual(status, 404, "a delete through one is seen at once through the other")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(round_trip, range(1000)))

    def test_of_many_changes_to_one_version_across_replicas_exactly_one_wins(self):
        status, headers, body = self.a.request("POST", "/books", book("Contested"))
        path, tag = f"/books/{json.loads(body)['id']}", headers["ETag"]

        def patch(i: int) -> int:
            replica = self.a if i % 2 else self.b
            return replica.request("PATCH", path, {"year": 1900 + i}, {"If-Match": tag})[0]

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(patch, range(32)))
        self.assertEqual(sorted(set(statuses)), [200, 412], statuses)
        self.assertEqual(statuses.count(200), 1, statuses)

    def test_an_idempotent_retry_through_the_other_replica_returns_the_original_answer(self):
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = self.a.request("POST", "/books", book("Retried elsewhere"), key)
        retry = self.b.request("POST", "/books", book("Retried elsewhere"), key)
        self.assertEqual(first[0], 201)
        self.assertEqual((retry[0], retry[2], retry[1]["ETag"]), (201, first[2], first[1]["ETag"]))
        other = self.b.request("POST", "/books", book("Something else"), key)
        self.assertEqual(other[0], 422)
        status, _, body = self.a.request("GET", "/books?q=retried+elsewhere")
        self.assertEqual(len(json.loads(body)), 1)

    def test_a_token_made_by_the_cli_works_on_both_and_its_revocation_reaches_both(self):
        name = f"cli-{uuid.uuid4().hex[:8]}"
        made = token_command("create", "--name", name, database=self.a.database_url)
        self.assertEqual(made.returncode, 0, made.stderr)
        token = made.stdout.strip()
        self.assertRegex(made.stdout, r"^bks_[0-9a-f]{64}\n$")
        for backend in (self.a, self.b):
            self.assertEqual(backend.request("POST", "/books", book("Tokened"), token=token)[0], 201)
        # A session made on one replica is good on the other (sessions live in the database).
        status, headers, _ = self.a.request("POST", "/session", {"token": token}, token=None)
        self.assertEqual(status, 200)
        cookie = headers["Set-Cookie"].split(";")[0]
        browser = {"Cookie": cookie, "Origin": self.b.url}
        self.assertEqual(self.b.request("POST", "/books", book("By cookie"), browser, token=None)[0], 201)
        listed = token_command("list", "--json", database=self.a.database_url)
        self.assertNotIn(token[4:], listed.stdout)
        self.assertIn(name, [t["name"] for t in json.loads(listed.stdout)])
        revoked = token_command("revoke", name, database=self.a.database_url)
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        for backend in (self.a, self.b):
            self.assertEqual(backend.request("POST", "/books", book("Too late"), token=token)[0], 401)
            self.assertEqual(backend.request("POST", "/books", book("Too late"), browser, token=None)[0], 401)


@unittest.skipUnless(ADMIN_URL and SERVER_DIR, "needs BOOKSTORE_TEST_POSTGRES(_DIR): scripts/test.sh postgres sets them")
class FirstStart(unittest.TestCase):
    def test_backends_started_together_without_credentials_make_and_log_one_token(self):
        database = new_database()
        backends = [Backend(database, operator=False) for _ in range(3)]
        for backend in backends:
            backend.start(wait=False)
        try:
            for backend in backends:
                wait_until(lambda: get(f"{backend.url}/readyz")[0] == 200, 60, f"the backend on {backend.port}")
            logs = "".join(Path(b.log.name).read_text() for b in backends)
            shown = set(re.findall(r"bks_[0-9a-f]{64}", logs))
            self.assertEqual(len(shown), 1, "one first-start token, logged by one backend")
            listed = json.loads(token_command("list", "--json", database=database).stdout)
            self.assertEqual([t["name"] for t in listed], ["first-token"])
            token = shown.pop()
            for backend in backends:
                self.assertEqual(backend.request("POST", "/books", book("First"), token=token)[0], 201)
                self.assertEqual(backend.request("POST", "/books", book("Anonymous"), token=None)[0], 401)
        finally:
            for backend in backends:
                backend.stop()


def token_command(*args: str, database: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), "token", *args, "--database-url", database],
                          capture_output=True, text=True, timeout=60)


@unittest.skipUnless(ADMIN_URL and SERVER_DIR, "needs BOOKSTORE_TEST_POSTGRES(_DIR): scripts/test.sh postgres sets them")
class Faults(unittest.TestCase):
    def test_a_stopped_database_is_a_quick_503_and_the_backend_recovers_without_a_restart(self):
        backend = Backend(new_database()).start()
        try:
            acknowledged, answers, lock = set(), [], threading.Lock()
            stop = threading.Event()

            def load(n: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    started = time.monotonic()
                    status, headers, body = backend.request("POST", "/books", book(f"Under load {n}-{i}"), timeout=30)
                    took = time.monotonic() - started
                    read = backend.request("GET", "/books?limit=5&sort=-id", timeout=30)[0]
                    with lock:
                        answers.append((status, took, headers.get("Retry-After"), read))
                        if status == 201:
                            acknowledged.add(json.loads(body)["id"])
                    if status != 201:
                        time.sleep(0.05)

            with ThreadPoolExecutor(4) as pool:
                for n in range(4):
                    pool.submit(load, n)
                time.sleep(1)
                server().stop("fast")
                wait_until(lambda: backend.request("GET", "/readyz")[0] == 503, 15, "/readyz to say not ready")
                time.sleep(3)
                status, _, body = backend.request("GET", "/readyz")
                self.assertIn("database", json.loads(body)["detail"])
                server().start()
                wait_until(lambda: backend.request("GET", "/readyz")[0] == 200, 30, "/readyz to recover")
                time.sleep(1)
                stop.set()

            self.assertEqual(backend.process.poll(), None, "the backend kept running")
            statuses = {status for status, _, _, _ in answers}
            self.assertTrue(statuses <= {201, 503}, statuses)
            self.assertIn(503, statuses, "the outage was seen")
            for status, took, retry_after, read in answers:
                if status == 503:
                    self.assertLess(took, 10, "answered well before the request time limit")
                self.assertIn(read, (200, 503))
            self.assertEqual(backend.request("POST", "/books", book("After the outage"))[0], 201)
            missing = acknowledged - set(backend.all_books())
            self.assertEqual(missing, set(), "every acknowledged write is there")
        finally:
            backend.stop()
            if server().run(str(server().bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                            str(server().port), check=False).returncode != 0:
                server().start()

    def test_a_backend_killed_under_load_loses_no_acknowledged_write(self):
        database = new_database()
        backend = Backend(database).start()
        acknowledged, lock = set(), threading.Lock()
        stop = threading.Event()

        def writer(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                status, _, body = backend.request("POST", "/books", book(f"Killed {n}-{i}"), timeout=5)
                if status == 201:
                    with lock:
                        acknowledged.add(json.loads(body)["id"])

        for _ in range(3):
            stop.clear()
            with ThreadPoolExecutor(8) as pool:
                for n in range(8):
                    pool.submit(writer, n)
                time.sleep(1)
                backend.kill()
                stop.set()
            backend.start()
        try:
            self.assertGreater(len(acknowledged), 100)
            self.assertEqual(acknowledged - set(backend.all_books()), set())
        finally:
            backend.stop()


TRICKY_TITLES = ["Émile", "ÉCOLE des femmes", "école", "Straße", "naïve café", "100% \"Quoted\"", "a_b\\c",
                 "Zebra", "zebra", "ábc", "Abc", "日本語の本", "📚 Books", "[brackets]", "~tilde"]


@unittest.skipUnless(ADMIN_URL and SERVER_DIR, "needs BOOKSTORE_TEST_POSTGRES(_DIR): scripts/test.sh postgres sets them")
class CopyDatabase(unittest.TestCase):
    def copy(self, source: str, target: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BINARY), "copy-database", "--from", source, "--to", target, *extra],
                              capture_output=True, text=True)

    def test_a_catalogue_moves_to_postgresql_and_back_identical_and_both_engines_list_it_alike(self):
        scratch = Path(tempfile.mkdtemp(prefix="bookstore-copy-"))
        sqlite_url = f"sqlite://{scratch / 'source.db'}"
        source = Backend(sqlite_url).start()
        for i, title in enumerate(TRICKY_TITLES * 4):
            genre = ["Fiction", "fiction", None, "Poetry"][i % 4]
            body = {"title": f"{title} {i // len(TRICKY_TITLES)}", "author": TRICKY_TITLES[(i * 7) % len(TRICKY_TITLES)],
                    "year": -500 + (i * 37) % 2500, "genre": genre}
            self.assertEqual(source.request("POST", "/books", body)[0], 201)
        for gone in (5, 17, 60):
            self.assertEqual(source.request("DELETE", f"/books/{gone}")[0], 204)
        self.assertEqual(source.request("PATCH", "/books/9", {"year": 1234})[0], 200)
        original = source.all_books()

        # While the source server keeps running: a consistent snapshot.
        postgres_url = new_database()
        copied = self.copy(sqlite_url, postgres_url)
        self.assertEqual(copied.returncode, 0, copied.stderr)
        self.assertIn(f"copied {len(original)} books", copied.stdout)
        refused = self.copy(sqlite_url, postgres_url)
        self.assertEqual(refused.returncode, 2, "a target that holds books is refused")
        self.assertIn("--overwrite", refused.stderr)

        target = Backend(postgres_url, demo=True).start()
        try:
            self.assertEqual(target.all_books(), original, "ids, versions and timestamps kept")
            self.assertEqual(target.request("GET", "/books/9")[1]["ETag"], source.request("GET", "/books/9")[1]["ETag"])
            for query in ["sort=title", "sort=-title", "sort=author", "sort=-author", "sort=year", "sort=-created_at",
                          "q=e", "q=%C3%A9", "q=%25", "q=_", "q=b%5Cc", "author=zebra&sort=title",
                          "genre=FICTION&sort=-year", "year_from=0&year_to=1000&sort=title&limit=7&offset=3"]:
                with self.subTest(query=query):
                    ours = source.request("GET", f"/books?limit=1000&{query}")
                    theirs = target.request("GET", f"/books?limit=1000&{query}")
                    self.assertEqual(json.loads(theirs[2]), json.loads(ours[2]))
                    self.assertEqual(theirs[1]["X-Total-Count"], ours[1]["X-Total-Count"])
            status, _, body = target.request("POST", "/books", book("After the move"))
            highest_ever = len(TRICKY_TITLES) * 4  # the last book, deleted before the move
            self.assertEqual(json.loads(body)["id"], highest_ever + 1, "ids are never reused")
            moved = target.all_books()
        finally:
            target.stop()
            source.stop()

        back_url = f"sqlite://{scratch / 'back.db'}"
        copied = self.copy(postgres_url, back_url)
        self.assertEqual(copied.returncode, 0, copied.stderr)
        back = Backend(back_url, demo=True).start()
        try:
            self.assertEqual(back.all_books(), moved)
            status, _, body = back.request("POST", "/books", book("Back again"))
            self.assertEqual(json.loads(body)["id"], max(moved) + 1, "ids are never reused")
        finally:
            back.stop()

    def test_new_books_after_a_copy_get_ids_above_every_copied_one(self):
        # The newest book is still there (so the copy's ids, not a deletion, set the floor).
        scratch = Path(tempfile.mkdtemp(prefix="bookstore-copy-"))
        sqlite_url = f"sqlite://{scratch / 'source.db'}"
        source = Backend(sqlite_url).start()
        try:
            for i in range(5):
                self.assertEqual(source.request("POST", "/books", book(f"Kept {i}"))[0], 201)
            highest = max(source.all_books())
        finally:
            source.stop()
        postgres_url = new_database()
        copied = self.copy(sqlite_url, postgres_url)
        self.assertEqual(copied.returncode, 0, copied.stderr)
        target = Backend(postgres_url, demo=True).start()
        try:
            status, _, body = target.request("POST", "/books", book("After the copy"))
            self.assertEqual(status, 201, body)
            self.assertEqual(json.loads(body)["id"], highest + 1)
        finally:
            target.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
