"""Fleet-side storage behind one small interface (`FleetStore`), opened by `open_fleet_store`:
a SQLite file (the embedded default, one machine) or a `postgresql://` URL (PostgreSQL,
`store_postgres`, for ingest workers on several machines).

The logic is written once (`SqlFleetStore`, with its reads in `store_views.SqlFleetViews`): the
statements, the checks, the clock correction, record shaping and every status view; a backend
adds only its connections, its JSON accessor and its dialect of the schema steps
(`migrations`). Retention: `prune(before_ns)` (`edgelens-fleet prune --older-than DAYS`).

Inserts are idempotent, keyed by (device, seq): a batch redelivered by QoS 1 or re-sent after a
crash adds nothing the second time (a duplicate). A record whose (device, seq) is taken by a
different record (another boot id, clock or body: a device whose seq restarted) is not a
duplicate: it is refused as `record.collision`, so the loss shows in `status`.

Clock correction: each batch carries the device's wall and monotonic clocks at sending time.
Per (device, boot) the store keeps `boot_offset_ns = received_wall - sent_mono` (its smallest
value: network delay only ever adds), so a record of that boot is re-dated as
`boot_offset_ns + mono_ns` on the fleet's clock, whatever the device's wall clock said. Records
of a boot never seen sending fall back to their wall time plus the device's current wall-clock
error.

Everything a device sends is checked before it is stored (`device_input`: `check_batch`,
`check_record`, `check_status`): a record whose fields have the wrong type or range, or that
holds NaN/Infinity (JSON cannot carry them; `allow_nan=False`), is refused and counted per
device and reason (`refused()`), and the rest of its batch is stored. A record dated more than
MAX_AHEAD_NS past its receipt (a device clock far ahead, of a boot with no clock offset yet) is
stored dated at its receipt: kept, pruned in its time, and counted in the windows it arrived
in. What the store answers (status rows, counts) is `store_views`, the reading half of
`SqlFleetStore`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from cloud_sync.batch import Batch
from cloud_sync.errors import FleetStoreError, PayloadError
from cloud_sync.fleet import migrations
from cloud_sync.fleet.device_input import (check_batch, check_record, check_status,
                                           field_problem, storable_json)
from cloud_sync.fleet.store_views import DeviceRow, SqlFleetViews, Tx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InsertResult:
    inserted: int
    duplicates: int
    refused: dict[str, int] = field(default_factory=dict)    # reason → records refused


class FleetStore(Protocol):
    def insert_batch(self, batch: Batch, received_ns: int, worker: str) -> InsertResult: ...
    def set_availability(self, device: str, online: bool, received_ns: int) -> None: ...
    def set_status(self, device: str, status: dict[str, Any], received_ns: int) -> None: ...
    def count_dropped(self, worker: str, n: int = 1) -> None: ...
    def count_refused(self, device: str, reason: str, n: int = 1) -> None: ...
    def refused(self) -> dict[str, dict[str, int]]: ...
    def device_rows(self, now_ns: int, window_s: float) -> list[DeviceRow]: ...
    def record_count(self, device: str | None = None) -> int: ...
    def seqs(self, device: str) -> list[int]: ...
    def workers(self) -> dict[str, dict[str, int]]: ...
    def prune(self, before_ns: int) -> int: ...
    def close(self) -> None: ...


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_fleet_store(location: str | Path) -> FleetStore:
    """The one way every fleet command opens its store: `postgresql://…` (or `postgres://`)
    is PostgreSQL; `path/to/fleet.sqlite` or `sqlite:///path` is the embedded SQLite file."""
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES):
        # deferred: psycopg is optional (the extra "fleet"), and store_postgres builds on this
        # module
        from cloud_sync.fleet.store_postgres import PostgresFleetStore
        return PostgresFleetStore(text)
    if "://" in text and not text.startswith("sqlite://"):
        raise FleetStoreError(f"no fleet store backend for {text!r}; give a SQLite path or a "
                              "postgresql:// URL")
    return SqliteFleetStore(text.removeprefix("sqlite://"))


def _greatest(column: str) -> str:
    """`column` set to the larger of its stored and its new value (portable SQL upsert)."""
    table, name = column.split(".")
    return (f"{name} = CASE WHEN {table}.{name} IS NULL OR excluded.{name} > {table}.{name} "
            f"THEN excluded.{name} ELSE {table}.{name} END")


_UPSERT_BOOT = ("INSERT INTO boots(device, boot_id, offset_ns) VALUES (?, ?, ?) "
                "ON CONFLICT(device, boot_id) DO UPDATE SET offset_ns = CASE WHEN "
                "excluded.offset_ns < boots.offset_ns THEN excluded.offset_ns "
                "ELSE boots.offset_ns END")
_TOUCH = ("INSERT INTO devices(device, last_seen_ns) VALUES (?, ?) ON CONFLICT(device) DO "
          f"UPDATE SET {_greatest('devices.last_seen_ns')}")
_AVAILABILITY = ("INSERT INTO devices(device, online, availability_ns) VALUES (?, ?, ?) "
                 "ON CONFLICT(device) DO UPDATE SET online = excluded.online, "
                 "availability_ns = excluded.availability_ns")
_STATUS = ("INSERT INTO devices(device, status, status_ns, last_seen_ns) VALUES (?, ?, ?, ?) "
           "ON CONFLICT(device) DO UPDATE SET status = excluded.status, "
           f"status_ns = excluded.status_ns, {_greatest('devices.last_seen_ns')}")
_REFUSED = ("INSERT INTO refused(device, reason, n, last_ns) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(device, reason) DO UPDATE SET n = refused.n + excluded.n, "
            "last_ns = excluded.last_ns")
_PRUNE_CHUNK = 10_000
_COMPARE_CHUNK = 500               # seqs per statement when telling duplicates from collisions
MAX_AHEAD_NS = 86_400 * 10**9      # a record dated beyond receipt + this: dated at receipt


class SqlFleetStore(SqlFleetViews):
    """Everything the fleet store does, on any SQL database. A backend supplies `_tx` (a
    transaction; its driver's errors become FleetStoreError there), `_json_at` and `close`;
    the statements, the checks, the clock correction and the views (`SqlFleetViews`) are
    written once."""

    where = "the fleet database"

    def close(self) -> None:
        raise NotImplementedError

    def _migrate(self) -> None:
        """Apply the steps of `migrations` this database lacks, one transaction each."""
        for step in migrations.pending(self._schema_versions(), self.where):
            with self._tx(f"cannot apply schema step {step.version} ({step.name})",
                          exclusive=True) as tx:
                tx.run(migrations.SCHEMA_VERSION_DDL)
                if step.version in {v for (v,) in tx.run("SELECT version FROM schema_version")}:
                    continue                      # another process applied it meanwhile
                for statement in self._statements(step):
                    tx.run(statement)
                tx.run("INSERT INTO schema_version(version, name, applied_ns) VALUES (?, ?, ?)",
                       [step.version, step.name, time.time_ns()])
                log.info("fleet store schema step applied", extra={
                    "store": self.where, "step": step.version, "step_name": step.name})

    def _schema_versions(self) -> set[int]:
        with self._tx("cannot read the schema version", exclusive=True) as tx:
            tx.run(migrations.SCHEMA_VERSION_DDL)
            return {v for (v,) in tx.run("SELECT version FROM schema_version")}

    def _statements(self, step: migrations.Migration) -> tuple[str, ...]:
        raise NotImplementedError

    # --- writing ------------------------------------------------------------------------------

    def insert_batch(self, batch: Batch, received_ns: int, worker: str) -> InsertResult:
        """Store a batch's valid records; refused ones are counted per reason (PayloadError
        when the batch's own clocks or boot id are unusable)."""
        check_batch(batch)
        device = batch.device
        with self._tx(f"cannot store a batch from {device}") as tx:
            tx.run(_UPSERT_BOOT, [device, batch.boot_id, received_ns - batch.sent_mono_ns])
            offsets = dict(tx.run("SELECT boot_id, offset_ns FROM boots WHERE device = ?",
                                  [device]))
            rows, refused = shape_records(batch, received_ns, offsets)
            inserted = tx.insert_records(rows)
            collisions = _collisions(tx, device, rows) if inserted < len(rows) else 0
            if collisions:
                refused["record.collision"] = collisions
            duplicates = len(rows) - inserted - collisions
            tx.run(_TOUCH, [device, received_ns])
            _bump_worker(tx, worker, received_ns, messages=1, records=inserted,
                         duplicates=duplicates)
            for reason, n in sorted(refused.items()):
                tx.run(_REFUSED, [device, reason, n, received_ns])
        return InsertResult(inserted, duplicates, refused)

    def set_availability(self, device: str, online: bool, received_ns: int) -> None:
        with self._tx(f"cannot store the availability of {device}") as tx:
            tx.run(_AVAILABILITY, [device, int(online), received_ns])

    def set_status(self, device: str, status: dict[str, Any], received_ns: int) -> None:
        """PayloadError for a status `check_status` refuses."""
        check_status(status)
        text, problem = storable_json(status)
        if text is None:
            raise PayloadError(f"status of {device} cannot be stored as JSON ({problem})")
        with self._tx(f"cannot store the status of {device}") as tx:
            tx.run(_STATUS, [device, text, received_ns, received_ns])

    def count_dropped(self, worker: str, n: int = 1) -> None:
        with self._tx("cannot count a dropped message") as tx:
            _bump_worker(tx, worker, time.time_ns(), dropped=n)

    def count_refused(self, device: str, reason: str, n: int = 1) -> None:
        """Count input refused from a device (`reason`: a fixed name, never device text)."""
        with self._tx("cannot count refused input") as tx:
            tx.run(_REFUSED, [device, reason, n, time.time_ns()])

    def prune(self, before_ns: int) -> int:
        """Delete records whose fleet time (ts_ns) is before `before_ns`, in chunks of
        _PRUNE_CHUNK rows (short transactions beside running ingest); how many went."""
        total = 0
        while True:
            with self._tx("cannot prune records") as tx:
                gone = len(tx.run("DELETE FROM records WHERE (device, seq) IN (SELECT device, "
                                  "seq FROM records WHERE ts_ns < ? LIMIT ?) RETURNING seq",
                                  [before_ns, _PRUNE_CHUNK]))
            total += gone
            if gone < _PRUNE_CHUNK:
                return total


def _bump_worker(tx: Tx, worker: str, now_ns: int, **counts: int) -> None:
    cols = ", ".join(counts)
    marks = ", ".join("?" * len(counts))
    updates = ", ".join(f"{c} = workers.{c} + excluded.{c}" for c in counts)
    tx.run(f"INSERT INTO workers(worker, {cols}, updated_ns) VALUES (?, {marks}, ?) "
           f"ON CONFLICT(worker) DO UPDATE SET {updates}, updated_ns = excluded.updated_ns",
           [worker, *counts.values(), now_ns])


def _collisions(tx: Tx, device: str, rows: list[tuple]) -> int:
    """How many of `rows` (just offered with ON CONFLICT DO NOTHING) differ from the record
    stored under their (device, seq): kind, clocks, boot id or body. The rest that were not
    inserted are duplicates (the same record sent again)."""
    seqs = sorted({row[1] for row in rows})
    stored: dict[int, tuple] = {}
    for start in range(0, len(seqs), _COMPARE_CHUNK):
        chunk = seqs[start:start + _COMPARE_CHUNK]
        for seq, *fields in tx.run(
                "SELECT seq, kind, wall_ns, mono_ns, boot_id, body FROM records WHERE "
                f"device = ? AND seq IN ({', '.join('?' * len(chunk))})", [device, *chunk]):
            stored[seq] = tuple(fields)
    return sum(stored.get(row[1]) != (*row[2:6], row[8]) for row in rows)


def shape_records(batch: Batch, received_ns: int,
                  offsets: dict[str, int]) -> tuple[list[tuple], dict[str, int]]:
    """The rows to store for a batch's records (device, seq, kind, wall_ns, mono_ns, boot_id,
    ts_ns, received_ns, body JSON), re-dated by the boots' clock offsets, and the refused
    records (those `batch.decode` could not read included) counted per reason."""
    wall_error = received_ns - batch.sent_wall_ns
    rows, refused = [], {}
    for _, reason in batch.refused:
        refused[reason] = refused.get(reason, 0) + 1
    for seq, kind, wall, mono, boot, body in batch.records:
        ts = _timestamp(offsets, boot, wall, mono, wall_error)
        reason = field_problem(seq, wall, mono, boot, ts) or check_record(kind, body)
        if ts > received_ns + MAX_AHEAD_NS:     # a clock far ahead: dated at its receipt
            ts = received_ns
        text = None
        if reason is None:
            text, reason = storable_json(body)
        if reason is not None:
            refused[reason] = refused.get(reason, 0) + 1
            continue
        rows.append((batch.device, seq, kind, wall, mono, boot, ts, received_ns, text))
    return rows, refused


class SqliteFleetStore(SqlFleetStore):
    """SQLite in WAL mode; several ingest processes may share one file. One connection per
    store, behind a lock (paho's thread and the caller's may both use it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.where = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False,
                                   isolation_level=None)      # transactions are ours: _tx
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise FleetStoreError(f"cannot open fleet database {self.path}: {exc}") from exc
        self.conn = conn
        self._lock = threading.Lock()
        self._migrate()

    @contextmanager
    def _tx(self, what: str, exclusive: bool = False) -> Iterator[Tx]:
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
                try:
                    yield _SqliteTx(self.conn)
                except BaseException:
                    self.conn.rollback()
                    raise
                self.conn.commit()
            except sqlite3.Error as exc:
                raise FleetStoreError(f"{what} in {self.path}: {exc}") from exc

    def _json_at(self, path: str) -> str:
        """json_extract(body, path) that is NULL, not an error, for a body that is not valid
        JSON (SQLite's json_extract fails the whole query on one malformed row; CASE is
        evaluated lazily, so json_valid guards it)."""
        return f"(CASE WHEN json_valid(body) THEN json_extract(body, '{path}') END)"

    def _statements(self, step: migrations.Migration) -> tuple[str, ...]:
        return step.sqlite

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, args).fetchall()

    def insert_records(self, rows: list[tuple]) -> int:
        before = self.conn.total_changes
        self.conn.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?)", rows)
        return self.conn.total_changes - before


def _timestamp(offsets: dict[str, int], boot: str, wall: int, mono: int,
               wall_error: int) -> int:
    if boot in offsets:
        return offsets[boot] + mono
    return wall + wall_error
