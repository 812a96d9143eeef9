"""HTTPS at the edge: nginx as frontend/nginx/default.conf and its entrypoint configure it when
a certificate is mounted (real nginx, the real backend, a certificate from a throwaway CA made
with openssl): HTTPS served with modern protocols only, plain HTTP redirected, HSTS, the
session cookie Secure and __Host- prefixed, and X-Forwarded-Proto believed only from a
trusted proxy.

    python3 -m unittest discover -s tests/proxy -v     (scripts/test.sh ui runs it)
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import unittest
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from testkit import OPERATOR_TOKEN, free_port  # noqa: E402
from testkit import tls  # noqa: E402
from testkit.native import NativeStack  # noqa: E402

# A TLS-terminating proxy in front (BOOKSTORE_TRUSTED_PROXIES), and a client that is not one.
PROXY, STRANGER = "127.0.0.2", "127.0.0.3"


class Https(unittest.TestCase):
    stack: NativeStack
    https: int
    context: ssl.SSLContext

    @classmethod
    def setUpClass(cls) -> None:
        def start(stack: NativeStack) -> None:
            certificate = tls.make(stack.dir / "tls", names=("localhost",))
            cls.context = ssl.create_default_context(cafile=str(certificate.ca))
            cls.https = free_port()
            stack.start_backend("--demo-data", "false")
            stack.start_nginx(https=(cls.https, certificate.chain, certificate.key), trusted_proxies=PROXY)

        cls.stack = NativeStack.up(start, prefix="bookstore-https-")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.stack.down()

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https}"

    def request(self, method: str, path: str, body=None, headers: dict | None = None, *,
                secure: bool = True, source: str = "127.0.0.1", context: ssl.SSLContext | None = None):
        """(status, headers, body) of one request to nginx over HTTPS (or plain HTTP), from
        the loopback address `source`."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if secure:
            connection = http.client.HTTPSConnection("localhost", self.https, timeout=5,
                                                     context=context or self.context, source_address=(source, 0))
        else:
            connection = http.client.HTTPConnection("localhost", self.stack.ports["nginx"], timeout=5,
                                                    source_address=(source, 0))
        try:
            connection.request(method, path, data, headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def sign_in(self, **kwargs) -> tuple[int, str]:
        """Signs in as the operator; (status, Set-Cookie)."""
        status, headers, body = self.request("POST", "/session", {"token": OPERATOR_TOKEN},
                                             {"Origin": self.origin}, **kwargs)
        return status, headers.get("Set-Cookie", "")

    def test_https_is_served_with_hsts_on_every_answer(self):
        status, headers, body = self.request("GET", "/books?limit=1")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Strict-Transport-Security"], "max-age=31536000")
        status, headers, _ = self.request("GET", "/no-such-page")
        self.assertEqual(status, 404)
        self.assertEqual(headers["Strict-Transport-Security"], "max-age=31536000", "errors too")
        # Over plain HTTP a browser ignores HSTS: nginx's health check does not send it.
        status, headers, _ = self.request("GET", "/_nginx/health", secure=False)
        self.assertEqual(status, 200)
        self.assertNotIn("Strict-Transport-Security", headers)

    def test_only_tls_1_2_and_1_3_are_spoken(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = ssl.create_default_context(cadata=self.ca_pem())
            context.minimum_version = context.maximum_version = version
            status, _, _ = self.request("GET", "/", context=context)
            self.assertEqual(status, 200, version)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cadata=self.ca_pem())
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client would speak TLS 1.1 if nginx did
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version, old.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
        with self.assertRaises(ssl.SSLError):
            self.request("GET", "/", context=old)

    def ca_pem(self) -> str:
        return (self.stack.dir / "tls" / "ca.pem").read_text()

    def test_plain_http_is_redirected_to_https_keeping_the_method_path_and_query(self):
        for method in ("GET", "POST"):
            status, headers, _ = self.request(method, "/books?genre=poetry&limit=2", secure=False)
            self.assertEqual(status, 308, method)  # 308: a POST is repeated as a POST
            self.assertEqual(headers["Location"], f"https://localhost:{self.https}/books?genre=poetry&limit=2")

    def test_signing_in_over_https_sets_a_secure_host_prefixed_cookie_that_works(self):
        status, cookie = self.sign_in()
        self.assertEqual(status, 200)
        self.assertTrue(cookie.startswith("__Host-bookstore_session="), cookie)
        self.assertIn("; Secure", cookie)
        self.assertIn("; Path=/;", cookie)
        self.assertNotIn("Domain", cookie)
        session = cookie.split(";")[0]
        book = {"title": "Over TLS", "author": "A. Author", "year": 2001}
        status, _, body = self.request("POST", "/books", book, {"Cookie": session, "Origin": self.origin})
        self.assertEqual(status, 201, body)

    def test_a_trusted_proxy_may_say_its_client_used_https_and_nobody_else_may(self):
        claim = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
        # The TLS proxy in front reaches nginx over plain HTTP, for a client that used HTTPS:
        # served, not redirected; HSTS; the cookie as over HTTPS.
        status, headers, body = self.request("GET", "/books?limit=1", headers=claim, secure=False, source=PROXY)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Strict-Transport-Security"], "max-age=31536000")
        status, headers, _ = self.request("POST", "/session", {"token": OPERATOR_TOKEN},
                                          {**claim, "Origin": f"https://localhost:{self.stack.ports['nginx']}"},
                                          secure=False, source=PROXY)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Set-Cookie"].startswith("__Host-bookstore_session="), headers["Set-Cookie"])
        # Anyone else saying so is redirected like any plain-HTTP client.
        status, headers, _ = self.request("GET", "/books?limit=1", headers=claim, secure=False, source=STRANGER)
        self.assertEqual(status, 308)


if __name__ == "__main__":
    unittest.main()
