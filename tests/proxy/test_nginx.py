"""nginx in front of the backend, as frontend/nginx/default.conf configures it (rendered for
loopback by scripts/testkit/native.py, the real nginx from Debian and the real backend):
what nginx refuses by itself, and which headers of a client it never passes on.

    python3 -m unittest discover -s tests/proxy -v     (scripts/test.sh ui runs it)
"""

from __future__ import annotations

import json
import re
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from testkit import OPERATOR_TOKEN, http  # noqa: E402
from testkit.native import NativeStack  # noqa: E402

# The backend's own limit on a request body (backend/src/http/input.rs: BODY_LIMIT).
BODY_LIMIT = 64 * 1024


class Nginx(unittest.TestCase):
    stack: NativeStack

    @classmethod
    def setUpClass(cls) -> None:
        def start(stack: NativeStack) -> None:
            stack.start_backend("--demo-data", "false")
            stack.start_nginx()

        cls.stack = NativeStack.up(start, prefix="bookstore-nginx-")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.stack.down()

    def backend_answers(self, status: int) -> float:
        """How many requests the backend itself answered with `status`, from its metrics."""
        _, _, body = http("GET", f"{self.stack.backend_url(0)}/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith("http_requests_total{") and re.search(rf'status="{status}"', line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def test_a_body_over_the_backends_limit_is_refused_by_nginx_without_reaching_the_backend(self):
        before = self.backend_answers(413)
        book = {"title": "x" * BODY_LIMIT, "author": "A. Author", "year": 2000}
        status, headers, body = http("POST", f"{self.stack.url('nginx')}/books", book)
        self.assertEqual(status, 413, body)
        self.assertEqual(headers["Content-Type"], "application/problem+json")
        self.assertEqual(json.loads(body)["detail"], "the request body is larger than 64 KiB")
        self.assertEqual(self.backend_answers(413), before, "nginx answered; the backend never read the body")
        # A body within the limit is the backend's to judge, and a book this size is stored.
        fits = {"title": "A title", "author": "A. Author", "year": 2000, "genre": "g" * 50}
        status, _, body = http("POST", f"{self.stack.url('nginx')}/books", fits)
        self.assertEqual(status, 201, body)

    def test_a_clients_x_forwarded_host_never_reaches_the_origin_check(self):
        nginx = self.stack.url("nginx")
        # A page on evil.example posting a sign-in, claiming to be evil.example's host:
        # nginx is a trusted proxy, so the backend would believe its X-Forwarded-Host.
        status, _, body = http("POST", f"{nginx}/session", {"token": OPERATOR_TOKEN}, token=None,
                               headers={"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"})
        self.assertEqual(status, 403, body)
        # The site's own pages still sign in.
        status, _, body = http("POST", f"{nginx}/session", {"token": OPERATOR_TOKEN}, token=None,
                               headers={"Origin": nginx})
        self.assertEqual(status, 200, body)

    def test_a_clients_x_forwarded_proto_never_makes_the_cookie_secure(self):
        # Over plain HTTP a client claiming HTTPS would get a Secure, __Host- cookie its
        # browser then never sends back here; only a trusted proxy's word counts (test_https).
        nginx = self.stack.url("nginx")
        status, headers, body = http("POST", f"{nginx}/session", {"token": OPERATOR_TOKEN}, token=None,
                                     headers={"Origin": nginx, "X-Forwarded-Proto": "https"})
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["Set-Cookie"].startswith("bookstore_session="), headers["Set-Cookie"])
        self.assertNotIn("Secure", headers["Set-Cookie"])


if __name__ == "__main__":
    unittest.main()
