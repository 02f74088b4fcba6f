"""The telemetry store: the one module that owns the telemetry SQLite file.

One table `records` holds every kind (see `records.EVICTION_TIERS`); `seq` is the per-device
sequence number (AUTOINCREMENT, never reused). A record is unsent until the sync agent marks it
sent after the broker acknowledged it. The file is bounded: `enforce_limit()` evicts sent
records first, then unsent ones by tier (metrics, predictions, logs, audit), oldest first, and
counts every eviction.

Sequence numbers survive a quarantined (corrupt) store through a small side file
`<db>.seq` holding a reservation ceiling ("hi/lo" allocation): the store never hands out a
sequence number above the ceiling written there, so a fresh store starts above every number
the old one may have used, and the fleet's (device, seq) de-duplication stays correct.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import sqlite_utils

from device.errors import StoreCorruptError, TelemetryError
from device.telemetry.records import (EVICTION_TIERS, Clock, Record, StoredRecord,
                                      send_priority)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SEQ_BLOCK = 100_000          # sequence numbers reserved per write of the .seq side file
_LOW_WATER = 0.9              # eviction brings the store down to this share of max_bytes
_SQL_VARS = 500

_DDL = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    tier INTEGER NOT NULL,
    prio INTEGER NOT NULL,
    wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_ns INTEGER
);
CREATE INDEX IF NOT EXISTS records_unsent ON records(prio, seq) WHERE sent_ns IS NULL;
CREATE INDEX IF NOT EXISTS records_sent ON records(sent_ns) WHERE sent_ns IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


_INSERT = ("INSERT INTO records (kind, tier, prio, wall_ns, mono_ns, boot_id, body) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
_dumps = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False).encode


class TelemetryStore:
    """Open with `TelemetryStore.open(path, cfg.telemetry)`; safe to share between threads."""

    def __init__(self, db: sqlite_utils.Database, path: Path, max_bytes: int,
                 clock: Clock, fresh: bool = False):
        self.db = db
        self.path = path
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.RLock()
        self._inode = _inode(path)
        self._seq_ceiling = _read_seq_file(path)
        self.fresh = fresh
        self.opened_audit: list[Record] = []   # audit records produced by open()

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, settings: Any = None, *, quarantine: bool = True,
             clock: Clock | None = None) -> "TelemetryStore":
        """Open (or create) the store. `settings` is the [telemetry] config section.

        A file that is not a healthy SQLite database is moved aside to
        `<name>.corrupt-<time>` (kept), a fresh store is created and an audit record says so.
        With `quarantine=False` (the sync agent, which does not own the file) it raises
        StoreCorruptError instead.
        """
        path = Path(path)
        max_bytes = settings.max_bytes if settings is not None else 256 * 1024 * 1024
        clock = clock or Clock()
        try:
            db, _, fresh = _connect(path)
            store = cls(db, path, max_bytes, clock, fresh)
        except StoreCorruptError as exc:
            if not quarantine:
                raise
            moved = quarantine_file(path)
            log.error("telemetry store %s is corrupt (%s); moved to %s, starting fresh",
                      path, exc, moved)
            db, _, fresh = _connect(path)
            store = cls(db, path, max_bytes, clock, fresh)
            wall, mono = clock.now()
            store.opened_audit.append(Record("audit", wall, mono, {
                "action": "store_quarantined", "path": str(path), "moved_to": str(moved),
                "reason": str(exc)}))
        if store.fresh:
            store._start_sequence_above_ceiling()
        if store.opened_audit:
            store.insert(store.opened_audit)
        return store

    def _start_sequence_above_ceiling(self) -> None:
        """A new file starts above every number a previous (quarantined or deleted) store may
        have handed out, as recorded in the .seq side file."""
        with self._lock, self.db.conn:
            # Two processes (pipeline, sync agent) may both find the new file empty; only a
            # file that has handed out no number yet is moved up, or the second opener would
            # push the first one's running sequence up by a whole reservation block.
            self.db.execute("BEGIN IMMEDIATE")
            ceiling = max(self._seq_ceiling, _read_seq_file(self.path))
            if self.last_seq() == 0 and ceiling > 0:
                self.db.execute("DELETE FROM sqlite_sequence WHERE name = 'records'")
                self.db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('records', ?)",
                                [ceiling])
            self._seq_ceiling = ceiling

    def replaced(self) -> bool:
        """True when the file at `path` is no longer the one this store opened."""
        return _inode(self.path) != self._inode

    def close(self) -> None:
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error as exc:  # pragma: no cover - closing a broken file
                log.warning("closing telemetry store: %s", exc)

    # --- writing --------------------------------------------------------------------------

    def insert(self, records: Sequence[Record]) -> int:
        """Insert records in one transaction; returns the last sequence number given out."""
        if not records:
            return self.last_seq()
        boot_id = self.clock.boot_id
        # executemany over a prepared statement: ~1.6x the rate of insert_all on this path.
        rows = [(r.kind, EVICTION_TIERS[r.kind], send_priority(r.kind, r.body), r.wall_ns,
                 r.mono_ns, boot_id, _encode(r.body)) for r in records]
        with self._lock:
            try:
                self._reserve(len(rows))
                with self.db.conn:
                    self.db.conn.executemany(_INSERT, rows)
            except (sqlite3.Error, OSError) as exc:
                raise TelemetryError(f"cannot write {len(rows)} telemetry records to "
                                     f"{self.path}: {exc}") from exc
            return self.last_seq()

    def _reserve(self, count: int) -> None:
        last = self.last_seq()
        if last + count > self._seq_ceiling:
            self._seq_ceiling = last + count + _SEQ_BLOCK
            _write_seq_file(self.path, self._seq_ceiling)

    def last_seq(self) -> int:
        row = self.db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return int(row[0]) if row else 0

    def bump(self, counts: dict[str, int]) -> None:
        """Add to named counters (overflow, evicted.<kind>, ...)."""
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        with self._lock, self.db.conn:
            self.db.conn.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                list(counts.items()))

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {name: value for name, value in
                    self.db.execute("SELECT name, value FROM counters ORDER BY name")}

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self.db.conn:
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def text_salt(self) -> str:
        """The per-store salt for redacted text (created on first use)."""
        salt = self.meta("text_salt")
        if salt is None:
            salt = secrets.token_hex(16)
            self.set_meta("text_salt", salt)
        return salt

    # --- reading and marking sent (the sync agent) -----------------------------------------

    def unsent(self, max_records: int, max_bytes: int,
               skip: Iterable[int] = ()) -> list[StoredRecord]:
        """Oldest unsent records, highest priority first, at most max_records / max_bytes of
        body (a single larger record is returned alone). Records in `skip` are left out."""
        skip = set(skip)
        with self._lock:
            cursor = self.db.execute(
                "SELECT seq, kind, wall_ns, mono_ns, boot_id, body FROM records "
                "WHERE sent_ns IS NULL ORDER BY prio, seq LIMIT ?",
                [max_records + len(skip)])
            out: list[StoredRecord] = []
            size = 0
            for row in cursor:
                if row[0] in skip:
                    continue
                size += len(row[5]) + 64
                if out and size > max_bytes:
                    break
                out.append(StoredRecord(*row))
                if len(out) >= max_records:
                    break
            cursor.close()
        return out

    def mark_sent(self, seqs: Sequence[int]) -> None:
        now = time.time_ns()
        with self._lock:
            try:
                with self.db.conn:
                    for chunk in _chunks(list(seqs), _SQL_VARS):
                        marks = ",".join("?" * len(chunk))
                        self.db.execute(
                            f"UPDATE records SET sent_ns = ? WHERE seq IN ({marks})",
                            [now, *chunk])
            except sqlite3.Error as exc:
                raise TelemetryError(f"cannot mark records sent in {self.path}: {exc}") from exc

    def backlog(self) -> dict[str, int]:
        """Unsent records per kind."""
        with self._lock:
            return {kind: n for kind, n in self.db.execute(
                "SELECT kind, count(*) FROM records WHERE sent_ns IS NULL GROUP BY kind "
                "ORDER BY kind")}

    def oldest_unsent_wall_ns(self) -> int | None:
        with self._lock:
            row = self.db.execute(
                "SELECT min(wall_ns) FROM records WHERE sent_ns IS NULL").fetchone()
        return row[0]

    def records(self, kind: str | None = None) -> list[StoredRecord]:
        """Every stored record (of one kind) in sequence order; for tests and inspection."""
        where, args = ("WHERE kind = ?", [kind]) if kind else ("", [])
        with self._lock:
            return [StoredRecord(*row) for row in self.db.execute(
                "SELECT seq, kind, wall_ns, mono_ns, boot_id, body FROM records "
                f"{where} ORDER BY seq", args)]

    # --- the disk limit ----------------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes of live database pages: what the disk limit counts. The WAL file beside it
        is checkpointed and truncated to at most 4 MB (journal_size_limit) on its own."""
        with self._lock:
            return self._data_bytes()

    def prune_sent(self, older_than_s: float) -> int:
        """Drop records delivered more than `older_than_s` ago; returns how many."""
        cutoff = time.time_ns() - int(older_than_s * 1e9)
        with self._lock, self.db.conn:
            return self.db.execute(
                "DELETE FROM records WHERE sent_ns IS NOT NULL AND sent_ns < ?",
                [cutoff]).rowcount

    def enforce_limit(self) -> dict[str, int]:
        """Evict until the store is under its low-water mark. Returns {'evicted.<kind>': n,
        'pruned_sent': n}; the same counts are added to the store's counters. Evicted audit
        records are replaced by one audit record that says how many went."""
        with self._lock:
            if self._data_bytes() <= self.max_bytes:
                return {}
            evicted: dict[str, int] = {}
            target = int(self.max_bytes * _LOW_WATER)
            pruned = self._evict_where("sent_ns IS NOT NULL", target, None)
            for tier in sorted(set(EVICTION_TIERS.values())):
                if self._data_bytes() <= target:
                    break
                self._evict_where(f"sent_ns IS NULL AND tier = {tier}", target, evicted)
            counts = {f"evicted.{kind}": n for kind, n in evicted.items()}
            if pruned:
                counts["pruned_sent"] = pruned
            self.bump(counts)
            try:
                self.db.execute("PRAGMA incremental_vacuum")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # pragma: no cover - vacuum is best effort
                log.warning("incremental_vacuum failed: %s", exc)
        self._report_eviction(evicted)
        return counts

    def _data_bytes(self) -> int:
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def _evict_where(self, where: str, target: int, evicted: dict[str, int] | None) -> int:
        """Delete oldest rows matching `where` in steps until under `target`; unsent losses
        are counted per kind in `evicted`."""
        removed = 0
        while self._data_bytes() > target:
            rows = self.db.execute("SELECT count(*) FROM records").fetchone()[0] or 1
            per_row = max(self._data_bytes() // rows, 1)
            step = max((self._data_bytes() - target) // per_row + 1, 16)
            with self.db.conn:
                victims = self.db.execute(
                    f"SELECT seq, kind FROM records WHERE {where} ORDER BY seq LIMIT ?",
                    [step]).fetchall()
                if not victims:
                    break
                for chunk in _chunks([v[0] for v in victims], _SQL_VARS):
                    self.db.execute(
                        f"DELETE FROM records WHERE seq IN ({','.join('?' * len(chunk))})",
                        chunk)
            if evicted is not None:
                for _, kind in victims:
                    evicted[kind] = evicted.get(kind, 0) + 1
            removed += len(victims)
        return removed

    def _report_eviction(self, evicted: dict[str, int]) -> None:
        if not evicted:
            return
        log.warning("telemetry store over %d bytes: evicted unsent records %s",
                    self.max_bytes, evicted)
        wall, mono = self.clock.now()
        notes = [Record("log", wall, mono, {
            "severity": "WARNING", "event": "telemetry.evicted",
            "logger": __name__, "fields": {"evicted": evicted, "max_bytes": self.max_bytes}})]
        if evicted.get("audit"):
            log.error("telemetry store evicted %d unsent audit records", evicted["audit"])
            notes.append(Record("audit", wall, mono, {
                "action": "audit_evicted", "count": evicted["audit"],
                "max_bytes": self.max_bytes}))
        self.insert(notes)


# --- file handling -----------------------------------------------------------------------------

def _connect(path: Path) -> tuple[sqlite_utils.Database, Path, bool]:
    """Open and check the file; StoreCorruptError when it is not a healthy SQLite database."""
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            if fh.read(16) != _SQLITE_MAGIC:
                raise StoreCorruptError(f"{path} does not start with the SQLite header")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
        if fresh:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 4194304")
        if not fresh:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise StoreCorruptError(f"{path} fails quick_check: {result}")
        conn.executescript(_DDL)
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                     [str(SCHEMA_VERSION)])
        conn.commit()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreCorruptError(f"{path}: {exc}") from exc
    return sqlite_utils.Database(conn), path, fresh


def quarantine_file(path: Path) -> Path:
    """Move a corrupt store (and its -wal/-shm) aside; returns where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while moved.exists():
        moved = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, moved)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(moved) + suffix))
    return moved


def _seq_file(path: Path) -> Path:
    return Path(str(path) + ".seq")


def _read_seq_file(path: Path) -> int:
    try:
        return int(_seq_file(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _write_seq_file(path: Path, ceiling: int) -> None:
    target = _seq_file(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(f"{ceiling}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _encode(body: Any) -> str:
    """JSON text of a record body; a body that cannot be encoded is kept as a short repr
    rather than losing the batch it came in."""
    try:
        return _dumps(body)
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("telemetry record body not JSON-encodable (%s); stored as repr", exc)
        return _dumps({"unencodable": repr(body)[:500]})


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
