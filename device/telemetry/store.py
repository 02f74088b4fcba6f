"""The telemetry store: the one module that owns the telemetry SQLite file.

One table `records` holds every kind (see `records.EVICTION_TIERS`); `seq` is the per-device
sequence number (AUTOINCREMENT, never reused). A record is unsent until the sync agent marks it
sent after the broker acknowledged it. The file is bounded: `enforce_limit()` evicts sent
records first, then unsent ones by tier (metrics, predictions, logs, audit), oldest first, and
counts every eviction. When the file system itself runs short of room, the limit shrinks so that
the WAL always has space to be written and checkpointed.

One connection per process: every `TelemetryStore.open()` of the same file in one process
shares one SQLite connection (and its lock). Nothing here opens a live database file outside
SQLite - closing any other descriptor of it would drop the process's POSIX locks, after which
another process's close deletes the WAL under us (SQLite's documented fcntl pitfall). Headers
are read through SQLite (an `immutable=1` probe), never with `open()`.

Sequence numbers never repeat, whatever happens to the file. A small side file `<db>.seq`
(written atomically) holds the store's identity (`store_id`, kept in the `meta` table too) and a
reservation ceiling ("hi/lo" allocation): the store never hands out a number above the ceiling
written there. A file that is not the one that handed out those numbers (quarantined, deleted,
replaced, restored, or showing another database through a foreign WAL) continues above the
ceiling, so the fleet's (device, seq) de-duplication stays correct.

The file is watched: `check()` (the recorder's writer calls it every few seconds, the sync agent
through `replaced()`, and every write error) compares the file's identity (st_dev, st_ino) and
header with what is open. A deleted or replaced file is reopened, its unsent records copied
over under their own numbers; a truncated or corrupt one is quarantined by the owner (the
pipeline) the same way. A WAL that belongs to another database is set aside before SQLite can
apply it.

Errors: every method raises `TelemetryError` or one of its kinds, never a bare sqlite3 error:

    TelemetryError
    ├── StoreCorruptError      the file is not a usable SQLite database (quarantined by the owner)
    └── StoreUnavailableError  healthy but not usable now; retry later, never quarantined
        ├── StoreFullError     the file system is full (SQLITE_FULL, ENOSPC)
        ├── StoreAccessError   read-only file or file system, permissions, cannot open
        └── StoreBusyError     locked by another process longer than the busy timeout

This module opens, watches and writes the store; `TelemetryStore` gets its read side (the sync
agent's: unsent records, marking sent, receipts) from store_reads.py and its disk limit
(`enforce_limit`, pruning, eviction) from store_retention.py.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

import sqlite_utils

from device.errors import TelemetryError
from device.telemetry.records import EVICTION_TIERS, Clock, Record, send_priority
from device.telemetry.store_connection import _acquire, _release, _StoreFile
from device.telemetry.store_disk import _last_seq, _meta, encode_body
from device.telemetry.store_errors import (  # noqa: F401  the error kinds, re-exported
    StoreAccessError, StoreBusyError, StoreFullError, StoreUnavailableError, _translated,
    store_error)
from device.telemetry.store_reads import StoreReads
from device.telemetry.store_retention import StoreRetention

log = logging.getLogger(__name__)

_INSERT = ("INSERT INTO records (kind, tier, prio, wall_ns, mono_ns, boot_id, body) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")


# --- the store ---------------------------------------------------------------------------------

class TelemetryStore(StoreReads, StoreRetention):
    """Open with `TelemetryStore.open(path, cfg.telemetry)`; safe to share between threads.

    Stores opened on the same file in one process share one connection; each has its own
    clock and limit. `close()` closes the connection with the last of them."""

    def __init__(self, file: "_StoreFile", max_bytes: int, clock: Clock, fresh: bool = False):
        self._file = file
        self.path = file.path
        self.max_bytes = max_bytes
        self.clock = clock
        self.fresh = fresh
        self.opened_audit: list[Record] = []   # audit records produced by open()
        self._closed = False

    @property
    def db(self) -> sqlite_utils.Database:
        db = self._file.db
        if db is None:
            raise StoreUnavailableError(f"telemetry store {self.path} is not open")
        return db

    @property
    def _lock(self) -> threading.RLock:
        return self._file.lock

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, settings: Any = None, *, quarantine: bool = True,
             clock: Clock | None = None) -> "TelemetryStore":
        """Open (or create) the store. `settings` is the [telemetry] config section.

        A file that is not a healthy SQLite database (fails its header, SQLITE_CORRUPT /
        SQLITE_NOTADB, quick_check) is moved aside to `<name>.corrupt-<time>` (kept), a fresh
        store is created and an audit record says so. With `quarantine=False` (the sync agent,
        which does not own the file) it raises StoreCorruptError instead. A full disk, missing
        permissions or a lock raise StoreUnavailableError kinds and leave the file alone.

        In a process that has the file open already, the new store shares that connection.
        """
        path = Path(path)
        max_bytes = settings.max_bytes if settings is not None else 256 * 1024 * 1024
        clock = clock or Clock()
        file = _acquire(path)
        try:
            with file.lock:
                fresh = file.db is None
                notes = file.ensure_open(quarantine)
                fresh = fresh and file.fresh
        except (sqlite3.Error, OSError) as exc:
            _release(file)
            raise store_error(exc, f"cannot open telemetry store {path}", path) from exc
        except BaseException:
            _release(file)
            raise
        store = cls(file, max_bytes, clock, fresh)
        store.opened_audit = store._records(notes)
        if store.opened_audit:
            try:
                store.insert(store.opened_audit)
            except BaseException:
                store.close()
                raise
        return store

    @classmethod
    def shared(cls, path: str | Path, settings: Any = None, *,
               clock: Clock | None = None) -> "TelemetryStore":
        """The store as this process has it open (same connection), opened if it is not;
        never quarantines (for helpers such as the update agent's audit sink)."""
        return cls.open(path, settings, quarantine=False, clock=clock)

    def _records(self, notes: list[dict[str, Any]]) -> list[Record]:
        wall, mono = self.clock.now()
        return [Record("audit", wall, mono, note) for note in notes]

    def _start_sequence_above_ceiling(self) -> None:
        """A new file starts above every number a previous (quarantined or deleted) store may
        have handed out, as recorded in the .seq side file."""
        with self._lock:
            try:
                self._file.start_above_ceiling(only_if_empty=True)
            except (sqlite3.Error, OSError) as exc:
                raise store_error(exc, "telemetry store: moving the sequence up",
                                  self.path) from exc

    def check(self) -> bool:
        """Compare the file at `path` with the one open (identity, header, sequence); reopen
        a deleted or replaced file (copying its unsent records over), quarantine a truncated
        or corrupt one when this process owns the file. True when the store was reopened.
        Raises StoreCorruptError when the file is corrupt and this process does not own it."""
        with self._lock:
            try:
                notes, reopened = self._file.check()
            except (sqlite3.Error, OSError) as exc:
                raise store_error(exc, "telemetry store: checking the file", self.path) from exc
        if notes:
            self.insert(self._records(notes))
        return reopened

    def replaced(self) -> bool:
        """True when the file at `path` was not (or is not) the one this store had open: it
        was reopened in place by `check()`, or it is unusable until its owner quarantines it.
        Never raises."""
        try:
            return self.check()
        except TelemetryError as exc:   # the caller reopens and reports (rate-limited)
            log.debug("telemetry store check failed",
                      extra={"path": str(self.path), "error": str(exc)})
            return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _release(self._file)

    # --- writing --------------------------------------------------------------------------

    def insert(self, records: Sequence[Record]) -> int:
        """Insert records in one transaction; returns the last sequence number given out."""
        if not records:
            return self.last_seq()
        boot_id = self.clock.boot_id
        # executemany over a prepared statement: ~1.6x the rate of insert_all on this path.
        rows = [(r.kind, EVICTION_TIERS[r.kind], send_priority(r.kind, r.body), r.wall_ns,
                 r.mono_ns, r.boot_id or boot_id, r.encoded or encode_body(r.body))
                for r in records]
        jseqs = [r.jseq for r in records if r.jseq]
        notes: list[dict[str, Any]] = []
        with self._lock:
            for attempt in (1, 2):
                try:
                    notes += self._file.before_write(len(rows))
                    with self.db.conn:
                        todo = rows if not jseqs else \
                            self._not_journaled_yet(rows, records, jseqs)   # exactly once
                        self.db.conn.executemany(_INSERT, todo)
                    last = self._file.after_write()
                    break
                except (sqlite3.Error, OSError) as exc:
                    if attempt == 1 and self._file.recovered_after(exc):
                        continue
                    raise store_error(exc, f"cannot write {len(rows)} telemetry records",
                                      self.path) from exc
        if notes:
            self.insert(self._records(notes))
            return self.last_seq()
        return last

    def _not_journaled_yet(self, rows: list, records: Sequence[Record], jseqs: list[int]
                           ) -> list:
        """The rows whose journal number is not committed yet, those numbers now marked
        (inside the insert's transaction): a record read back from the journal after a crash
        between a commit and its segment's deletion is not stored twice."""
        conn = self.db.conn
        seen = {j for (j,) in conn.execute(
            "SELECT jseq FROM journaled WHERE jseq BETWEEN ? AND ?", [min(jseqs), max(jseqs)])}
        conn.executemany("INSERT OR IGNORE INTO journaled (jseq) VALUES (?)",
                         [(j,) for j in jseqs])
        if not seen:
            return rows
        return [row for row, r in zip(rows, records) if r.jseq not in seen]

    @_translated("forgetting journal numbers")
    def forget_journaled(self, below: int) -> int:
        """Drop the committed journal numbers below `below` (no journal segment can hold
        them any more), always keeping the highest."""
        with self._lock, self.db.conn:
            return self.db.conn.execute(
                "DELETE FROM journaled WHERE jseq < ? AND jseq < "
                "(SELECT MAX(jseq) FROM journaled)", [below]).rowcount

    @_translated("reading the journal numbers")
    def journaled_max(self) -> int:
        with self._lock:
            return self.db.conn.execute("SELECT MAX(jseq) FROM journaled").fetchone()[0] or 0

    @_translated("reading the last sequence number")
    def last_seq(self) -> int:
        with self._lock:
            return _last_seq(self.db.conn)

    @_translated("adding to counters")
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

    @_translated("reading counters")
    def counters(self) -> dict[str, int]:
        with self._lock:
            return {name: value for name, value in
                    self.db.execute("SELECT name, value FROM counters ORDER BY name")}

    @_translated("reading meta")
    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            value = _meta(self.db.conn, key)
        return default if value is None else value

    @_translated("writing meta")
    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self.db.conn:
            self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value = excluded.value", [key, value])

    def text_salt(self) -> str:
        """The per-store salt for redacted text (created on first use)."""
        salt = self.meta("text_salt")
        if salt is None:
            salt = secrets.token_hex(16)
            self.set_meta("text_salt", salt)
        return salt
