"""A throwaway PostgreSQL cluster on this machine (initdb + pg_ctl on a free port in a temporary
folder), for the tests and for `edgelens-fleet bench-ingest` when no --db is given.

The binaries come from Debian's `postgresql` package (scripts/setup installs it) under
/usr/lib/postgresql/<version>/bin, the newest version first; $EDGELENS_PG_BINDIR overrides.
initdb and postgres refuse to run as root, so as root the cluster is owned and run by the
unprivileged `postgres` user (runuser), in a folder under the system temp dir that user owns.
It listens on 127.0.0.1 only, trusts local logins (role `edgelens`) and is deleted on stop().
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from cloud_sync.errors import FleetStoreError
from cloud_sync.fleet.localbroker import free_port

log = logging.getLogger(__name__)

ROLE = "edgelens"
_RUN_AS = "postgres"
_FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


def find_postgres_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: $EDGELENS_PG_BINDIR, else Debian's newest
    /usr/lib/postgresql/<version>/bin, else the folder a pg_ctl on PATH links to."""
    candidates = []
    if os.environ.get("EDGELENS_PG_BINDIR"):
        candidates.append(Path(os.environ["EDGELENS_PG_BINDIR"]))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)],
                      reverse=True)
    candidates += versions
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class LocalPostgres:
    """start() → url; database(name) → a fresh database's URL; stop() removes everything."""

    def __init__(self, durable: bool = False):
        self.bindir = find_postgres_bindir()
        if self.bindir is None:
            raise FleetStoreError("PostgreSQL is not installed (no initdb/pg_ctl under "
                                  "/usr/lib/postgresql/*/bin); install the Debian package "
                                  "'postgresql' (scripts/setup does)")
        self.durable = durable
        self.port = 0
        self.folder: Path | None = None
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"

    def start(self) -> "LocalPostgres":
        self.folder = Path(tempfile.mkdtemp(prefix="edgelens-pg-"))
        if self._as_root:
            user = pwd.getpwnam(_RUN_AS)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        data, log_file = self.folder / "data", self.folder / "postgres.log"
        self._run("initdb", "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.port = free_port()
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 " \
                  "-c max_connections=200" + ("" if self.durable else " " + _FAST)
        self._run("pg_ctl", "-D", str(data), "-l", str(log_file), "-o", options, "-w",
                  "-t", "60", "start")
        log.info("postgres started on 127.0.0.1",
                 extra={"port": self.port, "path": str(self.folder)})
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.folder is None:
            return
        if (self.folder / "data" / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                          "stop")
            except FleetStoreError as exc:
                log.warning("postgres did not stop", extra={"error": str(exc)})
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "postgres.log" if self.folder else None
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", _RUN_AS, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              cwd=self.folder, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise FleetStoreError(f"{tool} failed ({done.returncode}): "
                                  f"{(done.stderr or done.stdout).strip()[-500:]} "
                                  f"{self.log_tail(5)}")
