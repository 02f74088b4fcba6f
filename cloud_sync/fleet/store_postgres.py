"""The fleet store on PostgreSQL (psycopg 3, a psycopg_pool connection pool).

`open_fleet_store("postgresql://user@host:5432/fleet")` gives a `PostgresFleetStore`: the same
API and semantics as the SQLite store (the logic lives once, in `store.SqlFleetStore`); several
ingest workers on several machines may write to one database. Each transaction takes a pooled
connection, so paho's thread and a reader never share one. Connections are not checked when
taken (a round trip per transaction): one broken by a server restart fails its transaction
(FleetStoreError; ingest retries, then has the broker redeliver) and the pool discards it.
The schema is applied by `migrations` on open (index plan and why not time partitions: see
there).

Records go in by the faster of two ways for the batch at hand, both ending in ON CONFLICT
(device, seq) DO NOTHING: a multi-row INSERT for batches under _COPY_FROM_ROWS records, COPY
into a temporary staging table then INSERT … SELECT for larger ones. Measured on one durable
cluster, two runs (`python -m cloud_sync.benchmarks.fleet_insert`, BENCHMARKS.md, issue 16):
at 10 records a batch the INSERT stored 1.7–3.0k new records/s against COPY's 0.5–1.3k (the
staging table costs statements per batch); at 100, COPY 10.4–11.1k against 3.5–10.0k; at 500,
COPY 15.3–28.7k against 6.6–15.6k (parameters are not bound one by one).

Driver errors become FleetStoreError here, once; a URL in a message has its password masked.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from cloud_sync.errors import FleetStoreError
from cloud_sync.fleet import migrations
from cloud_sync.fleet.store import SqlFleetStore
from cloud_sync.fleet.store_views import Tx

try:
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:        # scripts/setup installs them (pyproject extra "fleet")
    raise FleetStoreError("a postgresql:// fleet store needs psycopg 3 and psycopg_pool: "
                          "pip install 'edgelens[fleet]' (scripts/setup does)") from exc

log = logging.getLogger(__name__)

_COLUMNS = 9                        # records: device … body
_ROWS_PER_INSERT = 1000             # 9,000 parameters, under PostgreSQL's 65,535
_COPY_FROM_ROWS = 100               # batches this large go in by COPY (measured crossover)
_MIGRATION_LOCK = 0x65646765        # pg_advisory_xact_lock key: schema steps, one at a time
_CONNECT_TIMEOUT_S = 10


def masked(url: str) -> str:
    """The URL with its password (if any) replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class PostgresFleetStore(SqlFleetStore):
    def __init__(self, url: str, max_connections: int = 4):
        self.url = url
        self.where = masked(url)
        self._check_reachable()
        self.pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=False,
                                   kwargs={"autocommit": True,
                                           "connect_timeout": _CONNECT_TIMEOUT_S},
                                   timeout=_CONNECT_TIMEOUT_S * 3, name="edgelens-fleet")
        try:
            self.pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            self.pool.close()
            raise FleetStoreError(f"cannot connect to the fleet database {self.where} within "
                                  f"{_CONNECT_TIMEOUT_S} s (is PostgreSQL running, and does "
                                  "the database exist?)") from exc
        try:
            self._migrate()
        except FleetStoreError:
            self.pool.close()
            raise

    def _check_reachable(self) -> None:
        """One direct connection first, so that a wrong URL fails at once with libpq's reason
        (the pool would retry it until its timeout)."""
        try:
            psycopg.connect(self.url, connect_timeout=_CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise FleetStoreError(f"cannot connect to the fleet database {self.where}: "
                                  f"{_first_line(exc)}") from exc

    @contextmanager
    def _tx(self, what: str, exclusive: bool = False) -> Iterator[Tx]:
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if exclusive:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
                yield _PostgresTx(cur)
        except (psycopg.Error, PoolTimeout) as exc:
            raise FleetStoreError(f"{what} in {self.where}: {_first_line(exc)}") from exc

    def _json_at(self, path: str) -> str:
        """The text at a `$.a.b` path of the body, NULL for a body that is not JSON (the
        migration's edgelens_jsonb returns NULL where a cast would fail the query)."""
        keys = ",".join(path.removeprefix("$.").split("."))
        return f"(edgelens_jsonb(body) #>> '{{{keys}}}')"

    def _statements(self, step: migrations.Migration) -> tuple[str, ...]:
        return step.postgres

    def close(self) -> None:
        self.pool.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_PLACEHOLDERS: dict[str, str] = {}


def _pg(sql: str) -> str:
    """`?` placeholders (the store's SQL) as psycopg's `%s` (our SQL holds no other ? or %)."""
    text = _PLACEHOLDERS.get(sql)
    if text is None:
        text = _PLACEHOLDERS[sql] = sql.replace("?", "%s")
    return text


class _PostgresTx:
    def __init__(self, cur: "psycopg.Cursor[Any]"):
        self.cur = cur

    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        self.cur.execute(_pg(sql), list(args) or None)
        return self.cur.fetchall() if self.cur.description else []

    def insert_records(self, rows: list[tuple]) -> int:
        """Measured (cloud_sync/benchmarks/fleet_insert.py): multi-row INSERT is faster for
        small batches, COPY through the staging table for large ones."""
        return (self.insert_copy if len(rows) >= _COPY_FROM_ROWS else self.insert_values)(rows)

    def insert_values(self, rows: list[tuple]) -> int:
        inserted = 0
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start:start + _ROWS_PER_INSERT]
            values = ",".join(["(" + ",".join(["%s"] * _COLUMNS) + ")"] * len(chunk))
            self.cur.execute(f"INSERT INTO records VALUES {values} "
                             "ON CONFLICT (device, seq) DO NOTHING",
                             [v for row in chunk for v in row], prepare=False)
            inserted += self.cur.rowcount
        return inserted

    def insert_copy(self, rows: list[tuple]) -> int:
        """COPY into a per-connection staging table (emptied at commit), then one INSERT …
        SELECT … ON CONFLICT DO NOTHING."""
        self.cur.execute("CREATE TEMP TABLE IF NOT EXISTS records_staging "
                         "(LIKE records) ON COMMIT DELETE ROWS")
        with self.cur.copy("COPY records_staging FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.cur.execute("INSERT INTO records SELECT * FROM records_staging "
                         "ON CONFLICT (device, seq) DO NOTHING")
        return self.cur.rowcount
