#!/usr/bin/env python3
"""CPU flame graphs of the backend under load: where each request's time goes. Run it through
scripts/flamegraphs.sh, which builds the `profiling` profile (the release build with symbols and
line tables) and installs what is missing.

For each engine (SQLite, PostgreSQL), each scenario (`GET /books/{id}`, `POST /books`, a
listing by title) and each path (the backend directly, and through the project's nginx), wrk
loads the server at 64 connections while `perf record --call-graph dwarf` samples the backend
(and nginx's workers, when nginx is in front); inferno folds the stacks into an SVG under
docs/flamegraphs/. The same databases as the benchmark's small catalogue.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from run import Behind, Server, bookstore_db, wrk  # noqa: E402
from testkit import ROOT, built, free_port, log  # noqa: E402
from testkit.postgres import Postgres  # noqa: E402

BINARY = built("bookstore", "profiling")
OUT = ROOT / "docs" / "flamegraphs"
BOOKS = 10_000
SCENARIOS = {  # name: (wrk scenario, path)
    "get": ("get_by_id", "/"),
    "post": ("post", "/"),
    "list": ("list", "/books?limit=20&sort=title"),
}


# The columns of the table the script prints: where each sample was, by crate.
GROUPS = [
    ("kernel", ()), ("nginx", ()),
    ("hyper, http", ("hyper", "hyper_util", "http", "httparse", "bytes", "http_body", "http_body_util")),
    ("axum, tower (routing, middleware)",
     ("axum", "axum_core", "tower", "tower_http", "tower_layer", "tower_service", "matchit", "percent_encoding")),
    ("allocator", ()), ("bookstore", ("bookstore",)),
    ("database driver", ("sqlx_sqlite", "sqlx_core", "sqlx_postgres", "flume", "libsqlite3_sys")),
    ("JSON", ("serde_json", "serde")), ("tokio", ("tokio",)),
]
# Crates too general to say whose work a sample was: the next one out decides.
GENERAL = {"core", "alloc", "std", "futures_util", "futures_core", "pin_project_lite", "hashbrown", "memchr", "itoa",
           "ryu"}


def shares(folded: bytes) -> dict[str, float]:
    """Each sample charged to the code it was in: the kernel (a kernel frame on top), nginx
    (its processes), the allocator (mimalloc on top), SQLite's C code, otherwise the innermost
    named crate on the stack that is not a general-purpose one."""
    counts: collections.Counter = collections.Counter()
    for line in folded.decode(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        frames, weight = stack.split(";"), int(n)
        leaf = frames[-1]
        if frames[0].startswith("nginx"):
            group = "nginx"
        elif leaf.endswith("_[k]"):
            group = "kernel"
        elif leaf.startswith(("mi_", "_mi_")):
            group = "allocator"
        elif leaf.startswith("sqlite3"):
            group = "database driver"
        else:
            crates = (re.match(r"<?([A-Za-z_][A-Za-z0-9_]*)::", f) for f in reversed(frames))
            crate = next((m.group(1) for m in crates if m and m.group(1) not in GENERAL), None)
            group = next((name for name, members in GROUPS if crate in members), "other")
        counts[group] += weight
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name, _ in GROUPS + [("other", ())]}


def table(rows: dict[str, dict[str, float]]) -> str:
    names = [name for name, _ in GROUPS] + ["other"]
    lines = ["| graph | " + " | ".join(names) + " |", "|---|" + "--:|" * len(names)]
    lines += [f"| {stem} | " + " | ".join(f"{row[n]:.0%}" for n in names) + " |" for stem, row in rows.items()]
    return "\n".join(lines)


def pids_of(server: Server | Behind) -> list[int]:
    """The processes to sample: the backend, and nginx's workers in front of it."""
    if isinstance(server, Server):
        return [server.process.pid]
    workers = subprocess.run(["pgrep", "-P", str(server.nginx.process.pid)], capture_output=True, text=True)
    return [b.process.pid for b in server.backends] + [int(p) for p in workers.stdout.split()]


def profile(server: Server | Behind, port: int, scenario: str, path: str, seconds: float, svg: Path,
            title: str, work: Path, folded_dir: Path | None) -> dict[str, float]:
    """Loads `port` with wrk for `seconds` while perf samples the server's processes in the
    middle of it, then writes the flame graph to `svg`; returns where the samples were."""
    data = work / f"{svg.stem}.perf"
    load: dict = {}
    runner = threading.Thread(target=lambda: load.update(
        wrk(port, scenario, path, 64, seconds, {"BENCH_MAX_ID": str(BOOKS)})))
    runner.start()
    time.sleep(1)  # past the warm-up
    pids = ",".join(str(p) for p in pids_of(server))
    subprocess.run(["perf", "record", "--quiet", "-F", "249", "--call-graph", "dwarf,16384", "-p", pids,
                    "-o", str(data), "--", "sleep", str(max(1.0, seconds - 2))],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runner.join()
    script = subprocess.run(["perf", "script", "-i", str(data)], check=True, capture_output=True)
    folded = subprocess.run(["inferno-collapse-perf", "--all"], input=script.stdout, check=True,
                            capture_output=True)
    if folded_dir:
        (folded_dir / f"{svg.stem}.folded").write_bytes(folded.stdout)
    svg.write_bytes(subprocess.run(
        ["inferno-flamegraph", "--title", title, "--subtitle",
         f"{load.get('rps', 0):,.0f} req/s under perf at 64 connections; width = share of CPU samples",
         "--width", "1600", "--minwidth", "1.5"],
        input=folded.stdout, check=True, capture_output=True).stdout)
    data.unlink()
    log(f"  {svg.relative_to(ROOT)}: {load.get('rps', 0):,.0f} req/s, {load.get('errors_total', 0)} errors")
    return shares(folded.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-dir", type=Path, help="a running throwaway PostgreSQL (testkit/postgres.py)")
    parser.add_argument("--seconds", type=float, default=8.0, help="load per flame graph")
    parser.add_argument("--only", help="comma-separated names to make, e.g. sqlite-get-direct")
    parser.add_argument("--folded", type=Path, help="also keep the folded stacks (inferno's input) in this folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flamegraphs-"))
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        log(f"preparing a catalogue of {BOOKS:,} books")
        bookstore_db(BINARY, work / "small.db", BOOKS)
        engines = {"sqlite": None}
        if args.postgres_dir:
            postgres = Postgres(args.postgres_dir, int((args.postgres_dir / "port").read_text()))
            template = postgres.create_database("flame_small")
            subprocess.run([str(BINARY), "copy-database", "--from", f"sqlite://{work / 'small.db'}", "--to", template],
                           check=True, capture_output=True)
            postgres.psql("VACUUM ANALYZE books", database="flame_small")
            engines["postgres"] = postgres

        def backend(engine: str) -> Server:
            port = free_port()
            if engine == "sqlite":
                copy = work / f"run-{port}.db"
                shutil.copyfile(work / "small.db", copy)
                url = f"sqlite://{copy}"
            else:
                url = engines["postgres"].create_database(f"flame_{port}", template="flame_small")
            # As `cargo run --release` runs it: logs at info, metrics on.
            return Server("bookstore", [str(BINARY), "--addr", f"127.0.0.1:{port}", "--database-url", url,
                                        "--static-dir", ""], port, "/readyz", env={"RUST_LOG": "info"})

        wanted = set(args.only.split(",")) if args.only else None
        rows: dict[str, dict[str, float]] = {}
        for engine in engines:
            for name, (scenario, path) in SCENARIOS.items():
                for via in ("direct", "nginx"):
                    stem = f"{engine}-{name}-{via}"
                    if wanted is not None and stem not in wanted:
                        continue
                    server: Server | Behind = backend(engine)
                    if via == "nginx":
                        server = Behind([server], Path(tempfile.mkdtemp(prefix="nginx-", dir=work)))
                    server.start()
                    try:
                        title = f"{engine}: {scenario} {path if name == 'list' else ''} ({via})".replace("  ", " ")
                        rows[stem] = profile(server, server.port, scenario, path, args.seconds,
                                                OUT / f"{stem}.svg", title, work, args.folded)
                    finally:
                        server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The table of docs/profiling.md.
    print(table(rows))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
