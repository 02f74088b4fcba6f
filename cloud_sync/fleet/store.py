"""Fleet-side storage behind one small interface (`FleetStore`), opened by `open_fleet_store`:
a SQLite file (the embedded default, one machine) or a `postgresql://` URL (PostgreSQL,
`store_postgres`, for ingest workers on several machines).

The logic is written once (`SqlFleetStore`): the statements, the checks, the clock correction,
record shaping and every status view; a backend adds only its connections, its JSON accessor
and its dialect of the schema steps (`migrations`). Retention: `prune(before_ns)`
(`edgelens-fleet prune --older-than DAYS`).

Inserts are idempotent, keyed by (device, seq): a batch redelivered by QoS 1 or re-sent after a
crash adds nothing the second time.

Clock correction: each batch carries the device's wall and monotonic clocks at sending time.
Per (device, boot) the store keeps `boot_offset_ns = received_wall - sent_mono` (its smallest
value: network delay only ever adds), so a record of that boot is re-dated as
`boot_offset_ns + mono_ns` on the fleet's clock, whatever the device's wall clock said. Records
of a boot never seen sending fall back to their wall time plus the device's current wall-clock
error.

Everything a device sends is checked here before it is stored (`check_batch`, `check_record`,
`check_status`): a record whose fields have the wrong type or range, or that holds NaN/Infinity
(JSON cannot carry them; `allow_nan=False`), is refused and counted per device and reason
(`refused()`), and the rest of its batch is stored. The views read defensively as well, so
rows written before these checks (or by another writer) cannot break `status`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from cloud_sync.batch import Batch
from cloud_sync.errors import FleetStoreError, PayloadError
from cloud_sync.fleet import migrations
from device.modelstore.shadow import SHADOW_LATENCY

log = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
_MAX_BOOT_ID = 128
_MAX_COUNT = 2**53                 # a per-second counter beyond this is not a counter
_MAX_WINDOW_S = 86_400.0

# counters that count frames which missed their deadline (the pipeline's and the generic name)
FRAME_MISS_COUNTERS = ("frame_deadline_misses", "deadline_misses")

@dataclass(frozen=True)
class InsertResult:
    inserted: int
    duplicates: int
    refused: dict[str, int] = field(default_factory=dict)    # reason → records refused


@dataclass
class DeviceRow:
    """One line of `edgelens-fleet status`."""
    device: str
    online: bool | None
    last_seen: str | None
    last_seen_age_s: float | None
    backlog: int | None
    frames_per_s: float | None
    p95_ms: dict[str, float] = field(default_factory=dict)
    miss_rate: float | None = None
    models: dict[str, str] = field(default_factory=dict)
    errors_last_hour: int = 0
    records: int = 0
    # shadow mode over the window: challenger, pairs, agreement, p95 ms, skipped share
    shadow: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


class Tx(Protocol):
    """One transaction of a backend; `?` placeholders on every backend."""
    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]: ...
    def insert_records(self, rows: list[tuple]) -> int: ...


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


class SqlFleetStore:
    """Everything the fleet store does, on any SQL database. A backend supplies `_tx` (a
    transaction; its driver's errors become FleetStoreError there), `_json_at` and `close`;
    the statements, the checks, the clock correction and the views are written once, here."""

    where = "the fleet database"

    @contextmanager
    def _tx(self, what: str, exclusive: bool = False) -> Iterator[Tx]:
        raise NotImplementedError

    def _json_at(self, path: str) -> str:
        raise NotImplementedError

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
                log.info("fleet store %s: schema step %d applied (%s)", self.where,
                         step.version, step.name)

    def _schema_versions(self) -> set[int]:
        with self._tx("cannot read the schema version", exclusive=True) as tx:
            tx.run(migrations.SCHEMA_VERSION_DDL)
            return {v for (v,) in tx.run("SELECT version FROM schema_version")}

    def _statements(self, step: migrations.Migration) -> tuple[str, ...]:
        raise NotImplementedError

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """One statement in its own transaction (`?` placeholders on every backend): for
        maintenance and tests; the fleet itself goes through the methods below."""
        with self._tx("cannot run a statement") as tx:
            return tx.run(sql, args)

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
            tx.run(_TOUCH, [device, received_ns])
            _bump_worker(tx, worker, received_ns, messages=1, records=inserted,
                         duplicates=len(rows) - inserted)
            for reason, n in sorted(refused.items()):
                tx.run(_REFUSED, [device, reason, n, received_ns])
        return InsertResult(inserted, len(rows) - inserted, refused)

    def set_availability(self, device: str, online: bool, received_ns: int) -> None:
        with self._tx(f"cannot store the availability of {device}") as tx:
            tx.run(_AVAILABILITY, [device, int(online), received_ns])

    def set_status(self, device: str, status: dict[str, Any], received_ns: int) -> None:
        """PayloadError for a status `check_status` refuses."""
        check_status(status)
        text, problem = _encode(status)
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

    # --- reading ------------------------------------------------------------------------------

    def record_count(self, device: str | None = None) -> int:
        where, args = ("WHERE device = ?", [device]) if device else ("", [])
        return self.execute(f"SELECT count(*) FROM records {where}", args)[0][0]

    def seqs(self, device: str) -> list[int]:
        return [r[0] for r in self.execute("SELECT seq FROM records WHERE device = ? "
                                           "ORDER BY seq", [device])]

    def workers(self) -> dict[str, dict[str, int]]:
        names = ("messages", "records", "duplicates", "dropped")
        return {r[0]: dict(zip(names, r[1:])) for r in self.execute(
            f"SELECT worker, {', '.join(names)} FROM workers ORDER BY worker")}

    def refused(self) -> dict[str, dict[str, int]]:
        """device → reason → how many records or messages from it were refused."""
        out: dict[str, dict[str, int]] = {}
        for device, reason, n in self.execute("SELECT device, reason, n FROM refused "
                                              "ORDER BY device, reason"):
            out.setdefault(device, {})[reason] = n
        return out

    def device_rows(self, now_ns: int, window_s: float) -> list[DeviceRow]:
        with self._tx("cannot read the devices") as tx:
            devices = tx.run("SELECT device, online, last_seen_ns, status FROM devices "
                             "ORDER BY device")
            return [self._row(tx, d, now_ns, window_s) for d in devices]

    def _row(self, tx: Tx, d: tuple, now_ns: int, window_s: float) -> DeviceRow:
        device, online, last, status_text = d
        status = _loads_dict(status_text)
        row = DeviceRow(
            device=device, online=None if online is None else bool(online),
            last_seen=_iso(last), last_seen_age_s=None if last is None
            else round((now_ns - last) / 1e9, 1),
            backlog=status.get("backlog_total") if _count(status.get("backlog_total"))
            else None,
            frames_per_s=None)
        self._metrics_into(tx, row, now_ns - int(window_s * 1e9))
        row.models = self._models(tx, device)
        row.errors_last_hour = tx.run(
            "SELECT count(*) FROM records WHERE device = ? AND kind = 'log' AND ts_ns >= ? "
            f"AND {self._json_at('$.severity')} IN ('ERROR', 'CRITICAL')",
            [device, now_ns - 3600 * 10**9])[0][0]
        row.records = tx.run("SELECT count(*) FROM records WHERE device = ?", [device])[0][0]
        return row

    def _metrics_into(self, tx: Tx, row: DeviceRow, since_ns: int) -> None:
        seconds, frames, misses = 0.0, 0, 0
        shadow = {"shadow_pairs": 0, "shadow_agree": 0, "shadow_skipped": 0}
        p95: dict[str, list[tuple[float, int]]] = {}
        skipped = 0
        for (body,) in tx.run("SELECT body FROM records WHERE device = ? AND kind = 'metric' "
                              "AND ts_ns >= ?", [row.device, since_ns]):
            m = _loads_dict(body)
            if check_record("metric", m) is not None:     # stored before the checks existed
                skipped += 1
                continue
            seconds += float(m.get("window_s", 1.0))
            counts = m.get("counts", {})
            frames += counts.get("frames_captured", 0)
            misses += sum(counts.get(k, 0) for k in FRAME_MISS_COUNTERS)
            for k in shadow:
                shadow[k] += counts.get(k, 0)
            for name, stats in m.get("stats", {}).items():   # every observed value is in ms
                p95.setdefault(name.removeprefix("latency_ms."), []).append(
                    (float(stats["p95"]), stats.get("n", 1)))
        if skipped:
            log.warning("%s: %d metric records with a bad shape left out of status", row.device,
                        skipped)
        if seconds:
            row.frames_per_s = round(frames / seconds, 2)
            row.miss_rate = round(misses / frames, 4) if frames else 0.0
        # n-weighted mean of the per-second p95s: an estimate, labelled as such in --help
        row.p95_ms = {path: round(sum(v * n for v, n in vals) / max(sum(n for _, n in vals), 1),
                                  2) for path, vals in sorted(p95.items())}
        challenger_p95 = next((row.p95_ms[k] for k in SHADOW_LATENCY.values()
                               if k in row.p95_ms), None)
        row.shadow = self._shadow(tx, row.device, since_ns, shadow, challenger_p95)

    def _shadow(self, tx: Tx, device: str, since_ns: int, counts: dict[str, int],
                p95_ms: float | None) -> dict[str, Any]:
        """Shadow mode over the window: the challenger named by the latest paired prediction,
        agreement per pair (exact text; all regions matched for a detector), the challenger's
        p95 ms per unit, share of units (lines, or frames for a detector) skipped."""
        pairs, skipped = counts["shadow_pairs"], counts["shadow_skipped"]
        if not pairs and not skipped:
            return {}
        latest = tx.run(
            f"SELECT {self._json_at('$.shadow.name')}, {self._json_at('$.shadow.version')} "
            "FROM records WHERE device = ? AND kind = 'prediction' AND ts_ns >= ? AND "
            f"{self._json_at('$.shadow')} IS NOT NULL ORDER BY seq DESC LIMIT 1",
            [device, since_ns])
        return {"model": f"{latest[0][0]}@{latest[0][1]}" if latest else None, "pairs": pairs,
                "agreement": round(counts["shadow_agree"] / pairs, 4) if pairs else None,
                "p95_ms": p95_ms, "skipped_share": round(skipped / (pairs + skipped), 4)}

    def _models(self, tx: Tx, device: str) -> dict[str, str]:
        """The model versions of the latest prediction with a well-formed `models`."""
        for (body,) in tx.run("SELECT body FROM records WHERE device = ? AND kind = "
                              "'prediction' ORDER BY seq DESC LIMIT 50", [device]):
            prediction = _loads_dict(body)
            if check_record("prediction", prediction) is None:
                models = prediction.get("models", {})
                return {stage: f"{m['name']}@{m['version']}" for stage, m in models.items()}
        return {}


def _bump_worker(tx: Tx, worker: str, now_ns: int, **counts: int) -> None:
    cols = ", ".join(counts)
    marks = ", ".join("?" * len(counts))
    updates = ", ".join(f"{c} = workers.{c} + excluded.{c}" for c in counts)
    tx.run(f"INSERT INTO workers(worker, {cols}, updated_ns) VALUES (?, {marks}, ?) "
           f"ON CONFLICT(worker) DO UPDATE SET {updates}, updated_ns = excluded.updated_ns",
           [worker, *counts.values(), now_ns])


def shape_records(batch: Batch, received_ns: int,
                  offsets: dict[str, int]) -> tuple[list[tuple], dict[str, int]]:
    """The rows to store for a batch's records (device, seq, kind, wall_ns, mono_ns, boot_id,
    ts_ns, received_ns, body JSON), re-dated by the boots' clock offsets, and the refused
    records counted per reason."""
    wall_error = received_ns - batch.sent_wall_ns
    rows, refused = [], {}
    for seq, kind, wall, mono, boot, body in batch.records:
        ts = _timestamp(offsets, boot, wall, mono, wall_error)
        reason = _field_problem(seq, wall, mono, boot, ts) or check_record(kind, body)
        text = None
        if reason is None:
            text, reason = _encode(body)
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


# --- checks on what devices send ----------------------------------------------------------------

# device ids and group names: 1-64 of A-Z a-z 0-9 _ . -, first a letter or digit; \Z, not $,
# which would let a trailing newline through
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def valid_name(name: Any) -> bool:
    """A device id or group name as the fleet accepts it (no trailing newline)."""
    return isinstance(name, str) and _NAME.match(name) is not None


def parse_device_json(payload: bytes, what: str, limit: int) -> dict[str, Any]:
    """A JSON object from a device: PayloadError when over `limit` bytes, not UTF-8 JSON, not
    an object, or holding NaN/Infinity (Python's json accepts them; JSON does not) or a number
    no float can hold (1e999)."""
    if len(payload) > limit:
        raise PayloadError(f"{what} of {len(payload)} bytes is over the limit of {limit}")
    try:
        body = json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PayloadError(f"{what} must be a JSON object, got {type(body).__name__}")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):            # 1e999: valid JSON, but not a float
        raise ValueError(f"{text[:40]} is out of range")
    return value


def check_batch(batch: Batch) -> None:
    """PayloadError when a batch's own clocks or boot id cannot be stored."""
    if not (_int_in(batch.sent_wall_ns, 0, INT64_MAX) and
            _int_in(batch.sent_mono_ns, 0, INT64_MAX)):
        raise PayloadError(f"batch from {batch.device} has clocks out of range")
    if len(batch.boot_id) > _MAX_BOOT_ID:
        raise PayloadError(f"batch from {batch.device} has a boot id over {_MAX_BOOT_ID} "
                           "characters")
    if not _storable_text(batch.boot_id):
        raise PayloadError(f"batch from {batch.device} has a boot id with a NUL or a lone "
                           "surrogate")


def check_status(status: Any) -> None:
    """PayloadError unless a device status (P/<device>/status) has the shape the views read."""
    if not isinstance(status, dict):
        raise PayloadError(f"status must be a JSON object, got {type(status).__name__}")
    total = status.get("backlog_total")
    if total is not None and not _count(total):
        raise PayloadError(f"status backlog_total {total!r:.40} is not a count")
    for key in ("backlog", "counters"):
        value = status.get(key)
        if value is not None and not (isinstance(value, dict) and
                                      all(_count(v) for v in value.values())):
            raise PayloadError(f"status {key} must map names to counts")


def check_record(kind: str, body: Any) -> str | None:
    """None when a record body has the shape the fleet views read, else the reason (a fixed
    name such as `metric.schema`). NaN/Infinity are refused when the body is written."""
    if not isinstance(body, dict):
        return "record.schema"
    if kind in ("metric", "quality"):
        window = body.get("window_s", 1.0)
        if not (_number(window) and 0 < window <= _MAX_WINDOW_S):
            return f"{kind}.schema"
    if kind == "metric":
        counts, stats = body.get("counts", {}), body.get("stats", {})
        if not (isinstance(counts, dict) and all(_count(v) for v in counts.values())):
            return "metric.schema"
        if not isinstance(stats, dict) or not all(
                isinstance(s, dict) and _number(s.get("p95")) and s["p95"] >= 0 and
                _count(s.get("n", 1)) for s in stats.values()):
            return "metric.schema"
        if not isinstance(body.get("gauges", {}), dict):
            return "metric.schema"
    elif kind == "prediction":
        models = body.get("models", {})
        if not (isinstance(models, dict) and all(
                isinstance(m, dict) and isinstance(m.get("name"), str) and
                isinstance(m.get("version"), str) for m in models.values())):
            return "prediction.schema"
        shadow = body.get("shadow")
        if shadow is not None and not isinstance(shadow, dict):
            return "prediction.schema"
    elif kind == "log":
        if not isinstance(body.get("severity", ""), str):
            return "log.schema"
    return None


def _field_problem(seq: int, wall: int, mono: int, boot: str, ts: int) -> str | None:
    if not _int_in(seq, 0, INT64_MAX):
        return "record.seq"
    if not all(_int_in(v, 0, INT64_MAX) for v in (wall, mono)) or \
            not _int_in(ts, -INT64_MAX, INT64_MAX):
        return "record.clock"
    if len(boot) > _MAX_BOOT_ID or not _storable_text(boot):
        return "record.boot_id"
    return None


def _storable_text(text: str) -> bool:
    """Text every backend stores as sent: UTF-8 without NUL (PostgreSQL's text holds no NUL;
    a lone surrogate, which JSON's \\ud800 escape can carry, is not UTF-8)."""
    if "\0" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encode(body: Any) -> tuple[str | None, str | None]:
    """(compact JSON, None), or (None, reason) for a body JSON cannot carry: NaN or Infinity
    (`allow_nan=False`), or nesting deeper than the encoder goes."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False), None
    except ValueError:
        return None, "record.non_finite"
    except RecursionError:
        return None, "record.too_deep"


def _loads_dict(text: str | None) -> dict[str, Any]:
    """A stored JSON object, or {} for anything else (NULL, not JSON, not an object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _count(value: Any) -> bool:
    return _int_in(value, 0, _MAX_COUNT)


def _number(value: Any) -> bool:
    """A finite JSON number a float can hold exactly enough (huge ints are not numbers here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_MAX_COUNT <= value <= _MAX_COUNT
    return isinstance(value, float) and math.isfinite(value)


def _timestamp(offsets: dict[str, int], boot: str, wall: int, mono: int,
               wall_error: int) -> int:
    if boot in offsets:
        return offsets[boot] + mono
    return wall + wall_error


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
