#!/usr/bin/env python3
"""The README's promises, checked as a newcomer would meet them (the `readme` tier).

1. The quick-start block (the README's first ```sh block) holds the two commands: the run
   command and the test command. If it changes shape so that they cannot be found, this fails.
2. A fresh clone of HEAD runs the run command exactly as written, from the clone's root:
   `/books`, `/`, `/docs/` and `/metrics` must answer on http://127.0.0.1:8000 once it is
   built, and it must stop cleanly on Ctrl-C (SIGINT to its process group).
3. The README's configuration table, `bookstore serve --help` and `.env.example` name the
   same settings.

The clone builds into this checkout's own target/ (CARGO_TARGET_DIR): the dependencies
compiled once serve the clone and the other tiers' release builds, and only the clone's own
crate is built again. A build cache, not part of the command, which runs as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testkit import ROOT, built, http, log  # noqa: E402

README = ROOT / "README.md"
ADDRESS = ("127.0.0.1", 8000)
BUILD_TIMEOUT = 40 * 60  # a first release build on a slow machine
ANSWER_TIMEOUT = 60  # from "Running" to the first answer


class Failure(Exception):
    pass


def quick_start_commands(readme: str) -> tuple[str, str]:
    """(run command, test command) from the README's first ```sh block."""
    match = re.search(r"^```sh\n(.*?)^```", readme, re.M | re.S)
    if not match:
        raise Failure("the README has no ```sh block: the quick start must show the run and test commands")
    commands = [line.split("#", 1)[0].strip() for line in match.group(1).splitlines()]
    commands = [c for c in commands if c]
    shape = "its first ```sh block must hold exactly two commands: the run command (`cargo run ...`), " \
            "then the test command (`scripts/test.sh`)"
    if len(commands) != 2:
        raise Failure(f"the README's quick-start block has {len(commands)} commands; {shape}")
    run, test = commands
    if not run.startswith("cargo run"):
        raise Failure(f"the quick-start block's first command is {run!r}; {shape}")
    if not test.startswith("scripts/test.sh"):
        raise Failure(f"the quick-start block's second command is {test!r}; {shape}")
    return run, test


def configuration_table(readme: str) -> tuple[set[str], set[str]]:
    """(variables, flags) of the README's configuration table rows that have a flag."""
    section = re.search(r"^## Configuration\n(.*?)^## ", readme, re.M | re.S)
    if not section:
        raise Failure("the README has no '## Configuration' section")
    variables, flags = set(), set()
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        row_flags = re.findall(r"`(--[a-z0-9-]+)", cells[1])
        if row_flags:
            variables |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]))
            flags |= set(row_flags)
    if not variables:
        raise Failure("the README's configuration table lists no variable with a flag")
    return variables, flags


def serve_help(binary: Path) -> tuple[set[str], set[str]]:
    """(variables, flags) that `bookstore serve --help` documents."""
    text = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    variables = set(re.findall(r"\[env: ([A-Z][A-Z0-9_]+)[=\]]", text))
    flags = set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", text, re.M)) - {"--help", "--version"}
    return variables, flags


def check_settings_agree(binary: Path, readme: str) -> None:
    table_vars, table_flags = configuration_table(readme)
    help_vars, help_flags = serve_help(binary)
    problems = []
    if table_vars - help_vars:
        problems.append(f"in the README's table but not in `serve --help`: {sorted(table_vars - help_vars)}")
    if help_vars - table_vars:
        problems.append(f"in `serve --help` but not in the README's table: {sorted(help_vars - table_vars)}")
    if table_flags - help_flags:
        problems.append(f"flags in the README's table but not in `serve --help`: {sorted(table_flags - help_flags)}")
    if help_flags - table_flags:
        problems.append(f"flags of `serve --help` missing from the README's table: {sorted(help_flags - table_flags)}")
    example = (ROOT / ".env.example").read_text()
    missing = sorted(v for v in help_vars if not re.search(rf"^#?{v}=", example, re.M))
    if missing:
        problems.append(f"settings missing from .env.example: {missing}")
    if problems:
        raise Failure("the documented settings drifted from the flags:\n  " + "\n  ".join(problems))
    log(f"the README's table, `serve --help` and .env.example agree on {len(help_vars)} settings")


def port_is_free(address: tuple[str, int]) -> bool:
    with socket.socket() as s:
        return s.connect_ex(address) != 0


def run_quick_start(run: str, clone: Path, target: Path) -> None:
    """Runs the run command in the clone, checks what it serves, and stops it with Ctrl-C."""
    if not port_is_free(ADDRESS):
        raise Failure(f"something already listens on {ADDRESS[0]}:{ADDRESS[1]}, where the README's run "
                      "command serves: stop it and run this tier again")
    output = clone.parent / "run.log"
    log(f"running `{run}` in a fresh clone (output: {output}); a first build takes minutes")
    env = {**os.environ, "CARGO_TARGET_DIR": str(target)}
    for name in [n for n in env if n.startswith("BOOKSTORE_") or n == "DATABASE_URL"]:
        del env[name]  # the newcomer's shell has none of these
    with open(output, "wb") as sink:
        process = subprocess.Popen(shlex.split(run), cwd=clone, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for_answers(process, output)
        check_pages()
        check_first_write(output)
    finally:
        stopped = stop(process)
    if stopped != 0:
        raise Failure(f"`{run}` did not stop cleanly on Ctrl-C (exit status {stopped}); see {output}")
    if not (clone / "data" / "bookstore.db").exists():
        raise Failure("the run command did not create data/bookstore.db as the README says")


def wait_for_answers(process: subprocess.Popen, output: Path) -> None:
    started = time.monotonic()
    running_since = None
    last_note = started
    while True:
        if process.poll() is not None:
            tail = output.read_text(errors="replace")[-3000:]
            raise Failure(f"the run command exited with {process.returncode} before serving:\n{tail}")
        if running_since is None and "Running `" in output.read_text(errors="replace"):
            running_since = time.monotonic()
            log(f"built in {running_since - started:.0f} s; waiting for the server to answer")
        if http("GET", "http://127.0.0.1:8000/readyz", timeout=2)[0] == 200:
            return
        now = time.monotonic()
        if running_since is None and now - started > BUILD_TIMEOUT:
            raise Failure(f"the build did not finish within {BUILD_TIMEOUT // 60} minutes; see {output}")
        if running_since is not None and now - running_since > ANSWER_TIMEOUT:
            raise Failure(f"the server did not answer /readyz within {ANSWER_TIMEOUT} s of starting; see {output}")
        if now - last_note > 60:
            log(f"still building ({now - started:.0f} s)")
            last_note = now
        time.sleep(0.5)


def check_pages() -> None:
    base = "http://127.0.0.1:8000"
    status, headers, body = http("GET", f"{base}/books")
    books = json.loads(body) if status == 200 else None
    if not isinstance(books, list) or not books:
        raise Failure(f"/books answered {status} {body[:200]!r}; expected the sample catalogue")
    expectations = [
        ("/", "text/html", b"<title>Bookstore</title>"),
        ("/docs", "text/html", b"swagger-ui"),
        ("/docs/", "text/html", b"swagger-ui"),
        ("/openapi.json", "application/json", b'"openapi"'),
        ("/metrics", "text/plain", b"http_requests_total"),
    ]
    for path, media, needle in expectations:
        status, headers, body = http("GET", f"{base}{path}")
        if status != 200 or not headers.get("Content-Type", "").startswith(media) or needle not in body:
            raise Failure(f"{path} answered {status} ({headers.get('Content-Type')}) without {needle!r}")
    log(f"/books ({len(books)} sample books), /, /docs, /docs/, /openapi.json and /metrics all answer")


def check_first_write(output: Path) -> None:
    """A newcomer's first change: refused without a credential, and the log says how to write
    (the first-start token, shown once, as the README's quick start says); with it, accepted."""
    base = "http://127.0.0.1:8000"
    book = {"title": "The newcomer's book", "author": "README", "year": 2026}
    status, headers, _ = http("POST", f"{base}/books", book, token=None)
    if status != 401 or not headers.get("WWW-Authenticate", "").startswith("Bearer"):
        raise Failure(f"an anonymous POST /books answered {status}; expected 401 with WWW-Authenticate")
    tokens = re.findall(r"bks_[0-9a-f]{64}", output.read_text(errors="replace"))
    if len(set(tokens)) != 1:
        raise Failure(f"the first start's log should show exactly one token (it showed {len(set(tokens))}); see {output}")
    status, _, body = http("POST", f"{base}/books", book, token=tokens[0])
    if status != 201:
        raise Failure(f"POST /books with the logged first-start token answered {status}: {body[:200]!r}")
    log("an anonymous change is refused (401); the first-start token from the log makes one (201)")


def stop(process: subprocess.Popen) -> int | None:
    """Ctrl-C, as a newcomer stops it: SIGINT to the whole process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
    return process.returncode


def main() -> int:
    readme = README.read_text()
    try:
        run, test = quick_start_commands(readme)
        ci = (ROOT / ".ci/run").read_text()
        if not re.search(rf"^(exec )?{re.escape(test)}\s*$", ci, re.M):
            raise Failure(f".ci/run does not call the README's test command `{test}`")
        log(f"the quick-start block: run `{run}`, test `{test}`")
        if subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout:
            log("note: the working tree has uncommitted changes; the clone checks HEAD only")
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        target = ROOT / "target"
        with tempfile.TemporaryDirectory(prefix="bookstore-readme-") as scratch:
            clone = Path(scratch) / "bookstore"
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
            subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", head], check=True)
            run_quick_start(run, clone, target)
            check_settings_agree(built("bookstore", target=target), (clone / "README.md").read_text())
    except Failure as failure:
        print(f"\033[1;31mxx\033[0m {failure}", file=sys.stderr)
        return 1
    log("the README's quick start works from a fresh clone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
