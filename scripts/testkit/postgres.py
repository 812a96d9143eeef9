"""A throwaway PostgreSQL server for tests: Debian's PostgreSQL 15 (`initdb` in a scratch
folder, on a free port on 127.0.0.1, trust authentication), run as the unprivileged
`postgres` user when this runs as root, since PostgreSQL refuses to run as root.

    python3 scripts/testkit/postgres.py start DIR [--shared-buffers 1GB]  # prints the admin URL; leaves it running
    python3 scripts/testkit/postgres.py createdb DIR NAME  # prints the new database's URL
    python3 scripts/testkit/postgres.py stop DIR
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit import free_port  # noqa: E402


def bin_dir() -> Path:
    """Where Debian keeps the server's programs (not on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
    return Path(found[-1]).parent


class Postgres:
    """One cluster in `directory`, listening on 127.0.0.1:`port` and on a socket there."""

    def __init__(self, directory: Path | None = None, port: int | None = None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="bookstore-pg-"))
        self.data = self.dir / "data"
        self.port = port or free_port()
        self.bin = bin_dir()
        self.as_root = os.geteuid() == 0

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_root:
            command = ("runuser", "-u", "postgres", "--", *command)
        return subprocess.run(command, check=check, capture_output=True, text=True)

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self, shared_buffers: str = "64MB") -> "Postgres":
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            # A throwaway server: fast, and the tests' many databases and connections fit.
            conf.write(f"fsync = on\nmax_connections = 300\nshared_buffers = {shared_buffers}\n")
        return self

    def start(self) -> "Postgres":
        result = self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                          "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start", check=False)
        if result.returncode != 0:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log[-2000:]}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.run(str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
                        "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql).stdout

    def copy_in(self, table: str, csv_rows: str, database: str = "postgres") -> None:
        """Loads CSV rows into `table` (with its column list) through psql's `\\copy`."""
        command = [str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", database,
                   "-v", "ON_ERROR_STOP=1", "-c", f"\\copy {table} FROM STDIN WITH (FORMAT csv)"]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, input=csv_rows, text=True, check=True, capture_output=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); returns its URL."""
        copy = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "createdb", "stop"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("name", nargs="?", help="the database to create (createdb)")
    parser.add_argument("--shared-buffers", default="64MB", help="PostgreSQL's page cache (start)")
    args = parser.parse_args()
    if args.action == "start":
        server = Postgres(args.dir).init(args.shared_buffers).start()
        (args.dir / "port").write_text(str(server.port))
        print(server.admin_url)
        return 0
    server = Postgres(args.dir, int((args.dir / "port").read_text()))
    if args.action == "createdb":
        print(server.create_database(args.name))
    else:
        server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
