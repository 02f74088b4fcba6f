"""Fleet-side storage behind one small interface (`FleetStore`); SQLite is the default.

Inserts are idempotent, keyed by (device, seq): a batch redelivered by QoS 1 or re-sent after a
crash adds nothing the second time. A fleet that outgrows one machine implements `FleetStore`
for a server database and passes its URL to `open_fleet_store`.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from cloud_sync.batch import Batch
from cloud_sync.errors import FleetStoreError, PayloadError
from device.modelstore.shadow import SHADOW_LATENCY

log = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
_MAX_BOOT_ID = 128
_MAX_COUNT = 2**53                 # a per-second counter beyond this is not a counter
_MAX_WINDOW_S = 86_400.0

# counters that count frames which missed their deadline (the pipeline's and the generic name)
_FRAME_MISS_COUNTERS = ("frame_deadline_misses", "deadline_misses")

_DDL = """
CREATE TABLE IF NOT EXISTS records (
    device TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    wall_ns INTEGER NOT NULL, mono_ns INTEGER NOT NULL, boot_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL, received_ns INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (device, seq)
);
CREATE INDEX IF NOT EXISTS records_by_kind ON records(device, kind, ts_ns);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, online INTEGER, availability_ns INTEGER, last_seen_ns INTEGER,
    status TEXT, status_ns INTEGER
);
CREATE TABLE IF NOT EXISTS boots (
    device TEXT NOT NULL, boot_id TEXT NOT NULL, offset_ns INTEGER NOT NULL,
    PRIMARY KEY (device, boot_id)
);
CREATE TABLE IF NOT EXISTS workers (
    worker TEXT PRIMARY KEY, messages INTEGER NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0, updated_ns INTEGER
);
CREATE TABLE IF NOT EXISTS refused (
    device TEXT NOT NULL, reason TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0,
    last_ns INTEGER, PRIMARY KEY (device, reason)
);
"""


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
    def workers(self) -> dict[str, dict[str, int]]: ...
    def close(self) -> None: ...


def open_fleet_store(location: str | Path) -> FleetStore:
    """`path/to/fleet.sqlite` or `sqlite:///path`; other schemes are for server backends."""
    text = str(location)
    if "://" in text and not text.startswith("sqlite://"):
        raise FleetStoreError(f"no fleet store backend for {text!r}; this build has sqlite")
    return SqliteFleetStore(text.removeprefix("sqlite://"))


class SqliteFleetStore:
    """SQLite in WAL mode; several ingest processes may share one file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_DDL)
        except sqlite3.DatabaseError as exc:
            raise FleetStoreError(f"cannot open fleet database {self.path}: {exc}") from exc
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.Lock()

    # --- writing ------------------------------------------------------------------------------

    def insert_batch(self, batch: Batch, received_ns: int, worker: str) -> InsertResult:
        """Store a batch's valid records; refused ones are counted per reason (PayloadError
        when the batch's own clocks or boot id are unusable)."""
        check_batch(batch)
        device = batch.device
        refused: dict[str, int] = {}
        try:
            with self._lock, self.db.conn:
                conn = self.db.conn
                conn.execute("INSERT INTO boots(device, boot_id, offset_ns) VALUES (?, ?, ?) "
                             "ON CONFLICT(device, boot_id) DO UPDATE SET "
                             "offset_ns = min(offset_ns, excluded.offset_ns)",
                             [device, batch.boot_id, received_ns - batch.sent_mono_ns])
                offsets = dict(conn.execute("SELECT boot_id, offset_ns FROM boots "
                                            "WHERE device = ?", [device]))
                wall_error = received_ns - batch.sent_wall_ns
                rows = []
                for seq, kind, wall, mono, boot, body in batch.records:
                    ts = _timestamp(offsets, boot, wall, mono, wall_error)
                    reason = _field_problem(seq, wall, mono, boot, ts) or \
                        check_record(kind, body)
                    text = None
                    if reason is None:
                        text, reason = _encode(body)
                    if reason is not None:
                        refused[reason] = refused.get(reason, 0) + 1
                        continue
                    rows.append((device, seq, kind, wall, mono, boot, ts, received_ns, text))
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                                 rows)
                inserted = conn.total_changes - before
                self._touch(device, received_ns)
                self._bump_worker(worker, received_ns, messages=1, records=inserted,
                                  duplicates=len(rows) - inserted)
                for reason, n in refused.items():
                    self._bump_refused(device, reason, n, received_ns)
        except sqlite3.Error as exc:
            raise FleetStoreError(f"cannot store a batch from {device} in {self.path}: "
                                  f"{exc}") from exc
        return InsertResult(inserted, len(rows) - inserted, refused)

    def set_availability(self, device: str, online: bool, received_ns: int) -> None:
        self._write("INSERT INTO devices(device, online, availability_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET online = excluded.online, "
                    "availability_ns = excluded.availability_ns",
                    [device, int(online), received_ns])

    def set_status(self, device: str, status: dict[str, Any], received_ns: int) -> None:
        """PayloadError for a status `check_status` refuses."""
        check_status(status)
        text, problem = _encode(status)
        if text is None:
            raise PayloadError(f"status of {device} cannot be stored as JSON ({problem})")
        self._write("INSERT INTO devices(device, status, status_ns, last_seen_ns) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET "
                    "status = excluded.status, status_ns = excluded.status_ns, "
                    "last_seen_ns = max(coalesce(last_seen_ns, 0), excluded.last_seen_ns)",
                    [device, text, received_ns, received_ns])

    def count_dropped(self, worker: str, n: int = 1) -> None:
        try:
            with self._lock, self.db.conn:
                self._bump_worker(worker, time.time_ns(), dropped=n)
        except sqlite3.Error as exc:
            raise FleetStoreError(f"cannot write to {self.path}: {exc}") from exc

    def count_refused(self, device: str, reason: str, n: int = 1) -> None:
        """Count input refused from a device (`reason`: a fixed name, never device text)."""
        try:
            with self._lock, self.db.conn:
                self._bump_refused(device, reason, n, time.time_ns())
        except sqlite3.Error as exc:
            raise FleetStoreError(f"cannot write to {self.path}: {exc}") from exc

    def _bump_refused(self, device: str, reason: str, n: int, now_ns: int) -> None:
        self.db.execute("INSERT INTO refused(device, reason, n, last_ns) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(device, reason) DO UPDATE SET n = n + excluded.n, "
                        "last_ns = excluded.last_ns", [device, reason, n, now_ns])

    def _write(self, sql: str, args: list[Any]) -> None:
        try:
            with self._lock, self.db.conn:
                self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise FleetStoreError(f"cannot write to {self.path}: {exc}") from exc

    def _touch(self, device: str, received_ns: int) -> None:
        self.db.execute("INSERT INTO devices(device, last_seen_ns) VALUES (?, ?) "
                        "ON CONFLICT(device) DO UPDATE SET last_seen_ns = "
                        "max(coalesce(last_seen_ns, 0), excluded.last_seen_ns)",
                        [device, received_ns])

    def _bump_worker(self, worker: str, now_ns: int, **counts: int) -> None:
        cols = ", ".join(counts)
        marks = ", ".join("?" * len(counts))
        updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in counts)
        self.db.execute(f"INSERT INTO workers(worker, {cols}, updated_ns) VALUES "
                        f"(?, {marks}, ?) ON CONFLICT(worker) DO UPDATE SET {updates}, "
                        "updated_ns = excluded.updated_ns",
                        [worker, *counts.values(), now_ns])

    # --- reading ------------------------------------------------------------------------------

    def record_count(self, device: str | None = None) -> int:
        where, args = ("WHERE device = ?", [device]) if device else ("", [])
        with self._lock:
            return self.db.execute(f"SELECT count(*) FROM records {where}", args).fetchone()[0]

    def seqs(self, device: str) -> list[int]:
        with self._lock:
            return [r[0] for r in self.db.execute(
                "SELECT seq FROM records WHERE device = ? ORDER BY seq", [device])]

    def workers(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {r["worker"]: {k: r[k] for k in ("messages", "records", "duplicates",
                                                     "dropped")}
                    for r in self.db.query("SELECT * FROM workers ORDER BY worker")}

    def refused(self) -> dict[str, dict[str, int]]:
        """device → reason → how many records or messages from it were refused."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for device, reason, n in self.db.execute(
                    "SELECT device, reason, n FROM refused ORDER BY device, reason"):
                out.setdefault(device, {})[reason] = n
        return out

    def device_rows(self, now_ns: int, window_s: float) -> list[DeviceRow]:
        with self._lock:
            devices = list(self.db.query("SELECT * FROM devices ORDER BY device"))
            return [self._row(d, now_ns, window_s) for d in devices]

    def _row(self, d: dict[str, Any], now_ns: int, window_s: float) -> DeviceRow:
        device = d["device"]
        status = _loads_dict(d["status"])
        last = d["last_seen_ns"]
        row = DeviceRow(
            device=device, online=None if d["online"] is None else bool(d["online"]),
            last_seen=_iso(last), last_seen_age_s=None if last is None
            else round((now_ns - last) / 1e9, 1),
            backlog=status.get("backlog_total") if _count(status.get("backlog_total"))
            else None,
            frames_per_s=None)
        self._metrics_into(row, device, now_ns - int(window_s * 1e9))
        row.models = self._models(device)
        row.errors_last_hour = self.db.execute(
            "SELECT count(*) FROM records WHERE device = ? AND kind = 'log' AND ts_ns >= ? "
            f"AND {_json_at('$.severity')} IN ('ERROR', 'CRITICAL')",
            [device, now_ns - 3600 * 10**9]).fetchone()[0]
        row.records = self.db.execute("SELECT count(*) FROM records WHERE device = ?",
                                      [device]).fetchone()[0]
        return row

    def _metrics_into(self, row: DeviceRow, device: str, since_ns: int) -> None:
        seconds, frames, misses = 0.0, 0, 0
        shadow = {"shadow_pairs": 0, "shadow_agree": 0, "shadow_skipped": 0}
        p95: dict[str, list[tuple[float, int]]] = {}
        skipped = 0
        for (body,) in self.db.execute(
                "SELECT body FROM records WHERE device = ? AND kind = 'metric' AND ts_ns >= ?",
                [device, since_ns]):
            m = _loads_dict(body)
            if check_record("metric", m) is not None:     # stored before the checks existed
                skipped += 1
                continue
            seconds += float(m.get("window_s", 1.0))
            counts = m.get("counts", {})
            frames += counts.get("frames_captured", 0)
            misses += sum(counts.get(k, 0) for k in _FRAME_MISS_COUNTERS)
            for k in shadow:
                shadow[k] += counts.get(k, 0)
            for name, stats in m.get("stats", {}).items():   # every observed value is in ms
                p95.setdefault(name.removeprefix("latency_ms."), []).append(
                    (float(stats["p95"]), stats.get("n", 1)))
        if skipped:
            log.warning("%s: %d metric records with a bad shape left out of status", device,
                        skipped)
        if seconds:
            row.frames_per_s = round(frames / seconds, 2)
            row.miss_rate = round(misses / frames, 4) if frames else 0.0
        # n-weighted mean of the per-second p95s: an estimate, labelled as such in --help
        row.p95_ms = {path: round(sum(v * n for v, n in vals) / max(sum(n for _, n in vals), 1),
                                  2) for path, vals in sorted(p95.items())}
        challenger_p95 = next((row.p95_ms[k] for k in SHADOW_LATENCY.values()
                               if k in row.p95_ms), None)
        row.shadow = self._shadow(device, since_ns, shadow, challenger_p95)

    def _shadow(self, device: str, since_ns: int, counts: dict[str, int],
                p95_ms: float | None) -> dict[str, Any]:
        """Shadow mode over the window: the challenger named by the latest paired prediction,
        agreement per pair (exact text; all regions matched for a detector), the challenger's
        p95 ms per unit, share of units (lines, or frames for a detector) skipped."""
        pairs, skipped = counts["shadow_pairs"], counts["shadow_skipped"]
        if not pairs and not skipped:
            return {}
        latest = self.db.execute(
            f"SELECT {_json_at('$.shadow.name')}, {_json_at('$.shadow.version')} "
            "FROM records WHERE device = ? AND kind = 'prediction' AND ts_ns >= ? AND "
            f"{_json_at('$.shadow')} IS NOT NULL ORDER BY seq DESC LIMIT 1",
            [device, since_ns]).fetchone()
        return {"model": f"{latest[0]}@{latest[1]}" if latest else None, "pairs": pairs,
                "agreement": round(counts["shadow_agree"] / pairs, 4) if pairs else None,
                "p95_ms": p95_ms, "skipped_share": round(skipped / (pairs + skipped), 4)}

    def _models(self, device: str) -> dict[str, str]:
        """The model versions of the latest prediction with a well-formed `models`."""
        for (body,) in self.db.execute("SELECT body FROM records WHERE device = ? AND kind = "
                                       "'prediction' ORDER BY seq DESC LIMIT 50", [device]):
            prediction = _loads_dict(body)
            if check_record("prediction", prediction) is None:
                models = prediction.get("models", {})
                return {stage: f"{m['name']}@{m['version']}" for stage, m in models.items()}
        return {}

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()


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
    if len(boot) > _MAX_BOOT_ID:
        return "record.boot_id"
    return None


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


def _json_at(path: str) -> str:
    """json_extract(body, path) that is NULL, not an error, for a body that is not valid JSON
    (SQLite's json_extract fails the whole query on one malformed row; CASE is evaluated
    lazily, so json_valid guards it)."""
    return f"(CASE WHEN json_valid(body) THEN json_extract(body, '{path}') END)"


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
