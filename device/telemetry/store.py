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
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import sqlite_utils

from device.errors import TelemetryError
from device.telemetry.records import (EVICTION_TIERS, Clock, Record, StoredRecord,
                                      send_priority)
from device.telemetry.store_connection import _acquire, _release, _StoreFile
from device.telemetry.store_disk import _chunks, _last_seq, _meta, encode_body
from device.telemetry.store_errors import (  # noqa: F401  the error kinds, re-exported
    StoreAccessError, StoreBusyError, StoreFullError, StoreUnavailableError, _translated,
    store_error)

log = logging.getLogger(__name__)

_LOW_WATER = 0.9              # eviction brings the store down to this share of max_bytes
_SQL_VARS = 500
_NEVER = 2**63 - 1            # an unconfirmed record being sent again is not due
_WAITING = "(SELECT seq FROM unconfirmed)"
_INSERT = ("INSERT INTO records (kind, tier, prio, wall_ns, mono_ns, boot_id, body) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")


# --- the store ---------------------------------------------------------------------------------

class TelemetryStore:
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

    # --- reading and marking sent (the sync agent) -----------------------------------------

    @_translated("reading unsent records")
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

    @_translated("marking records sent")
    def mark_sent(self, seqs: Sequence[int], confirm_within_s: float = 0.0,
                  max_wait_s: float = 3600.0) -> None:
        """The broker took these records. With `confirm_within_s` the fleet will also
        confirm them (a receipt after its commit): they wait as unconfirmed, and are sent
        again when no receipt came in time, the wait doubling per try up to `max_wait_s`."""
        now = time.time_ns()
        base, cap = int(confirm_within_s * 1e9), int(max_wait_s * 1e9)
        with self._lock:
            with self.db.conn:
                for chunk in _chunks(list(seqs), _SQL_VARS):
                    marks = ",".join("?" * len(chunk))
                    self.db.execute(
                        f"UPDATE records SET sent_ns = ? WHERE seq IN ({marks})",
                        [now, *chunk])
                    if base > 0:
                        self.db.conn.executemany(
                            "INSERT INTO unconfirmed (seq, due_ns, tries) VALUES (?, ?, 1) "
                            "ON CONFLICT(seq) DO UPDATE SET tries = tries + 1, due_ns = ? + "
                            "min(?, ? << min(tries, 20))",
                            [(s, now + base, now, cap, base) for s in chunk])

    @_translated("confirming records")
    def confirm(self, seqs: Sequence[int]) -> int:
        """The fleet committed these records (its receipt): they are delivered. Returns
        how many were waiting for it."""
        done = 0
        with self._lock, self.db.conn:
            for chunk in _chunks(list(seqs), _SQL_VARS):
                done += self.db.execute(
                    f"DELETE FROM unconfirmed WHERE seq IN ({','.join('?' * len(chunk))})",
                    chunk).rowcount
        return done

    @_translated("re-queueing unconfirmed records")
    def resend_unconfirmed(self, now_ns: int | None = None) -> int:
        """Records whose receipt is overdue become unsent again (their try count stays, so
        the next wait is longer); rows of records no longer stored are dropped. Returns how
        many were re-queued."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._lock, self.db.conn:
            again = self.db.execute(
                "UPDATE records SET sent_ns = NULL WHERE sent_ns IS NOT NULL AND seq IN "
                "(SELECT seq FROM unconfirmed WHERE due_ns <= ?)", [now_ns]).rowcount
            self.db.execute("UPDATE unconfirmed SET due_ns = ? WHERE due_ns <= ?",
                            [_NEVER, now_ns])
            self.db.execute("DELETE FROM unconfirmed WHERE seq NOT IN "
                            "(SELECT seq FROM records)")
        return again

    @_translated("counting unconfirmed records")
    def unconfirmed(self) -> int:
        with self._lock:
            return self.db.execute("SELECT count(*) FROM unconfirmed").fetchone()[0]

    @_translated("counting the backlog")
    def backlog(self) -> dict[str, int]:
        """Unsent records per kind."""
        with self._lock:
            return {kind: n for kind, n in self.db.execute(
                "SELECT kind, count(*) FROM records WHERE sent_ns IS NULL GROUP BY kind "
                "ORDER BY kind")}

    @_translated("reading the oldest unsent record")
    def oldest_unsent_wall_ns(self) -> int | None:
        with self._lock:
            row = self.db.execute(
                "SELECT min(wall_ns) FROM records WHERE sent_ns IS NULL").fetchone()
        return row[0]

    @_translated("reading records")
    def records(self, kind: str | None = None) -> list[StoredRecord]:
        """Every stored record (of one kind) in sequence order; for tests and inspection."""
        where, args = ("WHERE kind = ?", [kind]) if kind else ("", [])
        with self._lock:
            return [StoredRecord(*row) for row in self.db.execute(
                "SELECT seq, kind, wall_ns, mono_ns, boot_id, body FROM records "
                f"{where} ORDER BY seq", args)]

    # --- the disk limit ----------------------------------------------------------------------

    @_translated("measuring the store")
    def used_bytes(self) -> int:
        """Bytes of live database pages: what the disk limit counts. The WAL file beside it
        is checkpointed and truncated to at most 4 MB (1/8 of a small file system) on its
        own."""
        with self._lock:
            return self._data_bytes()

    @_translated("pruning sent records")
    def prune_sent(self, older_than_s: float) -> int:
        """Drop records delivered more than `older_than_s` ago; returns how many."""
        cutoff = time.time_ns() - int(older_than_s * 1e9)
        with self._lock, self.db.conn:
            return self.db.execute(
                "DELETE FROM records WHERE sent_ns IS NOT NULL AND sent_ns < ? AND seq NOT IN "
                "(SELECT seq FROM unconfirmed)", [cutoff]).rowcount

    def relieve(self) -> bool:
        """After a full disk: checkpoint and truncate the WAL (gives its room back), then
        bring the store under the limit the free space allows. True when the WAL could be
        truncated. Never raises."""
        with self._lock:
            try:
                busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                ok = not busy
            except (sqlite3.Error, TelemetryError) as exc:
                log.debug("WAL checkpoint after a full disk failed", extra={"error": str(exc)})
                ok = False
        try:
            self.enforce_limit()
        except TelemetryError as exc:
            log.debug("eviction after a full disk failed", extra={"error": str(exc)})
        return ok

    @_translated("enforcing the disk limit")
    def enforce_limit(self) -> dict[str, int]:
        """Evict until the store is under its low-water mark (of `max_bytes`, or less when the
        file system is nearly full: the WAL must always have room). Returns
        {'evicted.<kind>': n, 'pruned_sent': n}; the same counts are added to the store's
        counters. Evicted audit records are replaced by one audit record that says how many
        went."""
        with self._lock:
            used = self._data_bytes()
            limit, target = self.max_bytes, int(self.max_bytes * _LOW_WATER)
            squeeze = self._file.disk_shortfall()
            if squeeze:
                target = min(target, max(used - squeeze, 0))
                limit = min(limit, target)
            if used <= limit:
                return {}
            evicted: dict[str, int] = {}
            # delivered first; a record the fleet has not confirmed counts as not delivered
            pruned = self._evict_where(f"sent_ns IS NOT NULL AND seq NOT IN {_WAITING}",
                                       target, None)
            for tier in sorted(set(EVICTION_TIERS.values())):
                if self._data_bytes() <= target:
                    break
                self._evict_where(f"(sent_ns IS NULL OR seq IN {_WAITING}) AND tier = {tier}",
                                  target, evicted)
            counts = {f"evicted.{kind}": n for kind, n in evicted.items()}
            if pruned:
                counts["pruned_sent"] = pruned
            self.bump(counts)
            try:
                self.db.execute("PRAGMA incremental_vacuum")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # pragma: no cover - vacuum is best effort
                log.warning("incremental_vacuum failed", extra={"error": str(exc)})
        self._report_eviction(evicted, bool(squeeze))
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

    def _report_eviction(self, evicted: dict[str, int], disk_full: bool = False) -> None:
        if not evicted:
            return
        reason = "file system nearly full" if disk_full else f"store over {self.max_bytes} bytes"
        log.warning("telemetry evicted unsent records",
                    extra={"reason": reason, "evicted": evicted})
        wall, mono = self.clock.now()
        fields: dict[str, Any] = {"evicted": evicted, "max_bytes": self.max_bytes}
        if disk_full:
            fields["disk_full"] = True
        notes = [Record("log", wall, mono, {
            "severity": "WARNING", "event": "telemetry.evicted",
            "logger": __name__, "fields": fields})]
        if evicted.get("audit"):
            log.error("telemetry store evicted unsent audit records",
                      extra={"count": evicted["audit"]})
            notes.append(Record("audit", wall, mono, {
                "action": "audit_evicted", "count": evicted["audit"],
                "max_bytes": self.max_bytes}))
        self.insert(notes)
