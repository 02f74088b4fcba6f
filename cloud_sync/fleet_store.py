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
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from cloud_sync.batch import Batch
from cloud_sync.errors import FleetStoreError
from device.shadow import SHADOW_LATENCY

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
"""


@dataclass(frozen=True)
class InsertResult:
    inserted: int
    duplicates: int


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
        device = batch.device
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
                rows = [(device, seq, kind, wall, mono, boot, _timestamp(offsets, boot, wall,
                                                                          mono, wall_error),
                         received_ns, json.dumps(body, separators=(",", ":")))
                        for seq, kind, wall, mono, boot, body in batch.records]
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                                 rows)
                inserted = conn.total_changes - before
                self._touch(device, received_ns)
                self._bump_worker(worker, received_ns, messages=1, records=inserted,
                                  duplicates=len(rows) - inserted)
        except sqlite3.Error as exc:
            raise FleetStoreError(f"cannot store a batch from {device} in {self.path}: "
                                  f"{exc}") from exc
        return InsertResult(inserted, len(rows) - inserted)

    def set_availability(self, device: str, online: bool, received_ns: int) -> None:
        self._write("INSERT INTO devices(device, online, availability_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET online = excluded.online, "
                    "availability_ns = excluded.availability_ns",
                    [device, int(online), received_ns])

    def set_status(self, device: str, status: dict[str, Any], received_ns: int) -> None:
        self._write("INSERT INTO devices(device, status, status_ns, last_seen_ns) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET "
                    "status = excluded.status, status_ns = excluded.status_ns, "
                    "last_seen_ns = max(coalesce(last_seen_ns, 0), excluded.last_seen_ns)",
                    [device, json.dumps(status), received_ns, received_ns])

    def count_dropped(self, worker: str, n: int = 1) -> None:
        with self._lock, self.db.conn:
            self._bump_worker(worker, time.time_ns(), dropped=n)

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

    def device_rows(self, now_ns: int, window_s: float) -> list[DeviceRow]:
        with self._lock:
            devices = list(self.db.query("SELECT * FROM devices ORDER BY device"))
            return [self._row(d, now_ns, window_s) for d in devices]

    def _row(self, d: dict[str, Any], now_ns: int, window_s: float) -> DeviceRow:
        device = d["device"]
        status = json.loads(d["status"]) if d["status"] else {}
        last = d["last_seen_ns"]
        row = DeviceRow(
            device=device, online=None if d["online"] is None else bool(d["online"]),
            last_seen=_iso(last), last_seen_age_s=None if last is None
            else round((now_ns - last) / 1e9, 1),
            backlog=status.get("backlog_total"),
            frames_per_s=None)
        self._metrics_into(row, device, now_ns - int(window_s * 1e9))
        row.models = self._models(device)
        row.errors_last_hour = self.db.execute(
            "SELECT count(*) FROM records WHERE device = ? AND kind = 'log' AND ts_ns >= ? "
            "AND json_extract(body, '$.severity') IN ('ERROR', 'CRITICAL')",
            [device, now_ns - 3600 * 10**9]).fetchone()[0]
        row.records = self.db.execute("SELECT count(*) FROM records WHERE device = ?",
                                      [device]).fetchone()[0]
        return row

    def _metrics_into(self, row: DeviceRow, device: str, since_ns: int) -> None:
        seconds, frames, misses = 0.0, 0, 0
        shadow = {"shadow_pairs": 0, "shadow_agree": 0, "shadow_skipped": 0}
        p95: dict[str, list[tuple[float, int]]] = {}
        for (body,) in self.db.execute(
                "SELECT body FROM records WHERE device = ? AND kind = 'metric' AND ts_ns >= ?",
                [device, since_ns]):
            m = json.loads(body)
            seconds += float(m.get("window_s", 1.0))
            counts = m.get("counts", {})
            frames += int(counts.get("frames_captured", 0))
            misses += sum(int(counts.get(k, 0)) for k in _FRAME_MISS_COUNTERS)
            for k in shadow:
                shadow[k] += int(counts.get(k, 0))
            for name, stats in m.get("stats", {}).items():   # every observed value is in ms
                p95.setdefault(name.removeprefix("latency_ms."), []).append(
                    (float(stats["p95"]), int(stats.get("n", 1))))
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
            "SELECT json_extract(body, '$.shadow.name'), json_extract(body, '$.shadow.version') "
            "FROM records WHERE device = ? AND kind = 'prediction' AND ts_ns >= ? AND "
            "json_extract(body, '$.shadow') IS NOT NULL ORDER BY seq DESC LIMIT 1",
            [device, since_ns]).fetchone()
        return {"model": f"{latest[0]}@{latest[1]}" if latest else None, "pairs": pairs,
                "agreement": round(counts["shadow_agree"] / pairs, 4) if pairs else None,
                "p95_ms": p95_ms, "skipped_share": round(skipped / (pairs + skipped), 4)}

    def _models(self, device: str) -> dict[str, str]:
        row = self.db.execute("SELECT body FROM records WHERE device = ? AND kind = "
                              "'prediction' ORDER BY seq DESC LIMIT 1", [device]).fetchone()
        if row is None:
            return {}
        models = json.loads(row[0]).get("models", {})
        return {stage: f"{m.get('name')}@{m.get('version')}" for stage, m in models.items()}

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()


def _timestamp(offsets: dict[str, int], boot: str, wall: int, mono: int,
               wall_error: int) -> int:
    if boot in offsets:
        return offsets[boot] + mono
    return wall + wall_error


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
