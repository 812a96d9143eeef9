"""Helpers shared by the project's Python scripts and tests (the drill, the benchmark, the
monitoring and container tests, the README check): logging, free ports, plain HTTP and
polling. Standard library only, so every script runs with the system's python3.

Scripts outside this folder import it with `sys.path.insert(0, str(ROOT / "scripts"))`.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The operator token that the native stacks, the drill and the benchmark start their backends
# with (BOOKSTORE_ADMIN_TOKEN): a fixed test value, never used outside this machine's loopback.
OPERATOR_TOKEN = "operator-token-of-the-native-tests"
OPERATOR_ENV = {"BOOKSTORE_ADMIN_TOKEN": OPERATOR_TOKEN}
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def built(name: str, profile: str = "release", target: Path = ROOT / "target") -> Path:
    """A binary of this workspace where cargo builds it: TARGET/<host triple>/PROFILE/NAME
    (.cargo/config.toml names the host as the build target, see there why)."""
    host = subprocess.run(["rustc", "--print", "host-tuple"], capture_output=True, text=True,
                          check=True).stdout.strip()
    return target / host / profile / name


def log(message: str) -> None:
    """A progress line on stderr, in the shell scripts' style."""
    print(f"\033[1;34m==>\033[0m {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 5,
         token: str | None = OPERATOR_TOKEN):
    """(status, headers, body bytes) of one request; status 0 when nothing answers.

    `body` is sent as JSON unless it is already bytes. A change (POST, PUT, PATCH, DELETE)
    carries `Authorization: Bearer <token>` unless `headers` has one or `token` is None;
    reads carry none (they are public)."""
    headers = dict(headers or {})
    if token and method in CHANGES:
        headers.setdefault("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except OSError:
        return 0, {}, b""


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers."""
    status, _, body = http("GET", url, timeout=timeout)
    return status, body


def every_book(base_url: str, query: str = "", timeout: float = 30) -> list[dict]:
    """Every book `GET /books?<query>` lists, a page of 1,000 at a time, following each page's
    `Link: <…>; rel="next"` (a keyset cursor: offsets stop at 10,000) until there is none."""
    books, path = [], f"/books?limit=1000{'&' + query if query else ''}"
    while path:
        status, headers, body = http("GET", base_url + path, timeout=timeout)
        assert status == 200, f"GET {path} answered {status}: {body[:200]!r}"
        books += json.loads(body)
        link = re.search(r'<([^>]+)>;\s*rel="next"', headers.get("Link") or "")
        path = link and link.group(1)
    return books


def wait_until(check, timeout: float, what: str, every: float = 0.05, ignore: tuple = ()):
    """Calls `check` until it returns something true, and returns that; raises TimeoutError
    naming `what` after `timeout` seconds. Exceptions of the `ignore` types count as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
