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

import errno
import functools
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import sqlite_utils

from device.errors import StoreCorruptError, TelemetryError
from device.telemetry.records import (EVICTION_TIERS, Clock, Record, StoredRecord,
                                      send_priority)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SEQ_BLOCK = 100_000          # sequence numbers reserved per write of the .seq side file
_LOW_WATER = 0.9              # eviction brings the store down to this share of max_bytes
_SQL_VARS = 500
_WAL_MAX_BYTES = 4 * 1024 * 1024   # the WAL is checkpointed/truncated at this size at most...
_WAL_FS_SHARE = 8                  # ...or at 1/8 of a small file system
_SALVAGE_CHUNK = 1000
_ISSUED_SAVE_S = 1.0          # how often the highest issued number is noted in the side file
BUSY_TIMEOUT_S = 10.0         # how long a statement waits for another process's lock

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
_COLUMNS = "seq, kind, tier, prio, wall_ns, mono_ns, boot_id, body, sent_ns"
_dumps = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False).encode


# --- errors ------------------------------------------------------------------------------------

class StoreUnavailableError(TelemetryError):
    """The store is not corrupt but cannot be used now (full, read-only, locked, I/O error):
    retry later. Never a reason to quarantine the file."""


class StoreFullError(StoreUnavailableError):
    """The file system holding the store is full."""


class StoreAccessError(StoreUnavailableError):
    """The store (or its directory, WAL or file system) is read-only or not accessible."""


class StoreBusyError(StoreUnavailableError):
    """Another process held a lock on the store longer than the busy timeout."""


_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_ACCESS_CODES = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN,
                 sqlite3.SQLITE_AUTH}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_READONLY_DBMOVED = sqlite3.SQLITE_READONLY | (4 << 8)
_BAD_PATH_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                    errno.ELOOP, errno.EINVAL}
_MESSAGE_KINDS = (("malformed", "corrupt"), ("not a database", "corrupt"),
                  ("disk is full", "full"), ("readonly", "access"),
                  ("unable to open", "access"), ("locked", "busy"), ("disk i/o", "io"))


def _sqlite_kind(exc: BaseException) -> str:
    """corrupt, full, access, busy, io or other."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in _CORRUPT_CODES:
            return "corrupt"
        if primary == sqlite3.SQLITE_FULL:
            return "full"
        if code == _READONLY_DBMOVED:
            return "moved"
        if primary in _ACCESS_CODES:
            return "access"
        if primary in _BUSY_CODES:
            return "busy"
        if primary == sqlite3.SQLITE_IOERR:
            return "io"
        return "other"
    text = str(exc).lower()
    return next((kind for needle, kind in _MESSAGE_KINDS if needle in text), "other")


def store_error(exc: BaseException, what: str, path: Path | None = None) -> TelemetryError:
    """The TelemetryError kind for a sqlite3 or OS error, with a message saying what it is."""
    if isinstance(exc, TelemetryError):
        return exc
    where = f" ({path})" if path is not None else ""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreFullError(f"{what}: the file system is full{where}: {exc}")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreAccessError(f"{what}: no write access (permissions or a read-only "
                                    f"file system){where}: {exc}")
        if exc.errno in _BAD_PATH_ERRNOS:        # configuration, not a passing condition
            return TelemetryError(f"{what}: the path cannot hold a store (a file where a "
                                  f"folder should be?){where}: {exc}")
        return StoreUnavailableError(f"{what}: {exc}")
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    detail = f"{exc} [{name}]"
    kind = _sqlite_kind(exc)
    if kind == "io" and path is not None:
        free = _fs_free(path)
        if free is not None and free < 256 * 1024:
            kind = "full"      # SQLite reports some writes on a full disk as I/O errors
    if kind == "corrupt":
        return StoreCorruptError(f"{what}: the file is corrupt: {detail}")
    if kind == "full":
        return StoreFullError(f"{what}: the file system is full{where}: {detail}; the store "
                              "is kept as it is and retried when there is room")
    if kind in ("access", "moved"):
        return StoreAccessError(f"{what}: the store is read-only or not accessible (check the "
                                f"permissions of the file, its directory and the file "
                                f"system){where}: {detail}; it is not corrupt and is kept")
    if kind == "busy":
        return StoreBusyError(f"{what}: locked by another process for over "
                              f"{BUSY_TIMEOUT_S:.0f} s{where}: {detail}")
    if kind == "io":
        return StoreUnavailableError(f"{what}: I/O error{where}: {detail}")
    return TelemetryError(f"{what}: {detail}")


_F = TypeVar("_F", bound=Callable[..., Any])


def _translated(what: str) -> Callable[[_F], _F]:
    """Methods raise TelemetryError kinds, never sqlite3 or OS errors."""
    def wrap(method: _F) -> _F:
        @functools.wraps(method)
        def call(self: "TelemetryStore", *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                error = store_error(exc, f"telemetry store: {what}", self.path)
                self._file.after_error(exc)
                raise error from exc
        return call  # type: ignore[return-value]
    return wrap


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
            log.debug("telemetry store %s: %s", self.path, exc)
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
                 r.mono_ns, boot_id, _encode(r.body)) for r in records]
        notes: list[dict[str, Any]] = []
        with self._lock:
            for attempt in (1, 2):
                try:
                    notes += self._file.before_write(len(rows))
                    with self.db.conn:
                        self.db.conn.executemany(_INSERT, rows)
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
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

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
    def mark_sent(self, seqs: Sequence[int]) -> None:
        now = time.time_ns()
        with self._lock:
            with self.db.conn:
                for chunk in _chunks(list(seqs), _SQL_VARS):
                    marks = ",".join("?" * len(chunk))
                    self.db.execute(
                        f"UPDATE records SET sent_ns = ? WHERE seq IN ({marks})",
                        [now, *chunk])

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
                "DELETE FROM records WHERE sent_ns IS NOT NULL AND sent_ns < ?",
                [cutoff]).rowcount

    def relieve(self) -> bool:
        """After a full disk: checkpoint and truncate the WAL (gives its room back), then
        bring the store under the limit the free space allows. True when the WAL could be
        truncated. Never raises."""
        with self._lock:
            try:
                busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                ok = not busy
            except (sqlite3.Error, TelemetryError) as exc:
                log.debug("WAL checkpoint after a full disk failed: %s", exc)
                ok = False
        try:
            self.enforce_limit()
        except TelemetryError as exc:
            log.debug("eviction after a full disk failed: %s", exc)
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
        log.warning("telemetry %s: evicted unsent records %s", reason, evicted)
        wall, mono = self.clock.now()
        fields: dict[str, Any] = {"evicted": evicted, "max_bytes": self.max_bytes}
        if disk_full:
            fields["disk_full"] = True
        notes = [Record("log", wall, mono, {
            "severity": "WARNING", "event": "telemetry.evicted",
            "logger": __name__, "fields": fields})]
        if evicted.get("audit"):
            log.error("telemetry store evicted %d unsent audit records", evicted["audit"])
            notes.append(Record("audit", wall, mono, {
                "action": "audit_evicted", "count": evicted["audit"],
                "max_bytes": self.max_bytes}))
        self.insert(notes)


# --- one connection per process and file -------------------------------------------------------

_REGISTRY: dict[str, "_StoreFile"] = {}
_REGISTRY_LOCK = threading.Lock()
_REGISTRY_PID = os.getpid()


def _acquire(path: Path) -> "_StoreFile":
    global _REGISTRY_PID
    key = os.path.abspath(path)
    with _REGISTRY_LOCK:
        if os.getpid() != _REGISTRY_PID:     # a forked child never shares the parent's
            _REGISTRY.clear()
            _REGISTRY_PID = os.getpid()
        file = _REGISTRY.get(key)
        if file is None:
            file = _REGISTRY[key] = _StoreFile(path)
        file.refs += 1
        return file


def _release(file: "_StoreFile") -> None:
    with _REGISTRY_LOCK:
        file.refs -= 1
        if file.refs > 0:
            return
        if _REGISTRY.get(os.path.abspath(file.path)) is file:
            del _REGISTRY[os.path.abspath(file.path)]
    with file.lock:
        file.disconnect()


class _StoreFile:
    """This process's one connection to one store file, shared by its TelemetryStores."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.refs = 0
        self.owner = False            # some opener here quarantines (the pipeline)
        self.db: sqlite_utils.Database | None = None
        self.ident: tuple[int, int] | None = None
        self.fresh = False
        self.store_id = ""
        self.ceiling = 0              # no number above this was handed out (.seq side file)
        self.issued = 0               # highest number seen handed out through this connection
        self.issued_saved_at = 0.0
        self.wal_budget = _WAL_MAX_BYTES
        self.pending_check = False
        self.pending_deep = False     # a corrupt-kind error: run quick_check on the next check

    # --- open / close ---------------------------------------------------------------------

    def ensure_open(self, quarantine: bool) -> list[dict[str, Any]]:
        if quarantine:
            self.owner = True
        if self.db is None:
            with _FileLock(self.path):
                return self._open(quarantine)
        notes, _ = self.check()
        return notes

    def _open(self, quarantine: bool) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = []
        try:
            conn, fresh = _connect(self.path, notes)
        except StoreCorruptError as exc:
            if not quarantine:
                raise
            moved = quarantine_file(self.path)
            log.error("telemetry store %s is corrupt (%s); moved to %s, starting fresh",
                      self.path, exc, moved)
            notes.append({"action": "store_quarantined", "path": str(self.path),
                          "moved_to": str(moved), "reason": str(exc)})
            conn, fresh = _connect(self.path, notes)
        try:
            self._attach(conn, fresh)
            notes += self._adopt_identity()
        except BaseException:
            self.disconnect()
            raise
        return notes

    def _attach(self, conn: sqlite3.Connection, fresh: bool) -> None:
        self.db = sqlite_utils.Database(conn)
        self.fresh = fresh
        self.ident = _ident(self.path)
        self.wal_budget = _wal_budget(self.path)
        self.pending_check = False

    def disconnect(self) -> None:
        if self.db is None:
            return
        if self.issued:
            self.save_issued(sync=True)
        try:
            self.db.conn.close()
        except sqlite3.Error as exc:  # pragma: no cover - closing a broken file
            log.warning("closing telemetry store: %s", exc)
        self.db = None

    # --- sequence numbers -----------------------------------------------------------------

    def _adopt_identity(self) -> list[dict[str, Any]]:
        """Compare the open file with the .seq side file. A file that is not the one that
        handed out the numbers up to the ceiling (another store's id), or whose sequence is
        behind the last number known to be handed out (a restored backup, another database's
        WAL), continues above the ceiling: the fleet has those numbers already."""
        conn = self.db.conn
        db_id = _meta(conn, "store_id")
        side_id, side_ceiling, side_issued = _read_seq_file(self.path)
        expected = side_id or self.store_id
        issued = max(side_issued, self.issued)
        ceiling = max(side_ceiling, self.ceiling, issued)
        last = _last_seq(conn)
        foreign = bool(expected) and db_id != expected
        notes: list[dict[str, Any]] = []
        if not self.fresh and last < ceiling and (foreign or last < issued):
            if foreign:
                why = (f"it is not the store that handed out sequence numbers up to {ceiling} "
                       f"(store id {db_id}, expected {expected}): a replaced or foreign file")
                notes.append({"action": "store_identity_changed", "path": str(self.path),
                              "store_id": db_id, "expected_store_id": expected,
                              "last_seq": last, "continues_above": ceiling})
            else:
                why = (f"its sequence ({last}) is behind numbers already handed out "
                       f"({issued}): a restored backup or another database's WAL")
                notes.append({"action": "sequence_regressed", "path": str(self.path),
                              "found": last, "issued": issued, "continues_above": ceiling})
            log.error("telemetry store %s: %s; numbering continues above %d", self.path, why,
                      ceiling)
        if last < ceiling and (self.fresh or foreign or last < issued):
            self._move_sequence(ceiling, only_if=0 if self.fresh else None)
            last = _last_seq(conn)
        self.store_id, self.ceiling = db_id, max(ceiling, last)
        self.issued = max(self.issued, last)
        _update_seq_file(self.path, db_id, self.ceiling, self.issued)
        self.issued_saved_at = time.monotonic()
        return notes

    def start_above_ceiling(self, only_if_empty: bool) -> None:
        _, side_ceiling, side_issued = _read_seq_file(self.path)
        ceiling = max(self.ceiling, side_ceiling, side_issued)
        self._move_sequence(ceiling, only_if=0 if only_if_empty else None)
        self.ceiling = ceiling

    def _move_sequence(self, ceiling: int, only_if: int | None) -> None:
        """Set the records sequence to `ceiling` if it is below it (and equals `only_if`)."""
        conn = self.db.conn
        with conn:
            # Two processes (pipeline, sync agent) may both find the new file empty; only a
            # file that has handed out no number yet is moved up, or the second opener would
            # push the first one's running sequence up by a whole reservation block.
            conn.execute("BEGIN IMMEDIATE")
            last = _last_seq(conn)
            if last < ceiling and (only_if is None or last == only_if) and ceiling > 0:
                conn.execute("DELETE FROM sqlite_sequence WHERE name = 'records'")
                conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('records', ?)",
                             [ceiling])

    def before_write(self, count: int) -> list[dict[str, Any]]:
        """Run before an insert: a due check, the sequence regression guard, the
        reservation."""
        notes: list[dict[str, Any]] = []
        if self.pending_check or self.db is None:
            notes, _ = self.check()
        conn = self.db.conn
        last = _last_seq(conn)
        if last < self.issued:
            # The file under us went back in time: another database's WAL or file. Numbers
            # up to `issued` are with the fleet already; continue above everything given out.
            ceiling = max(self.ceiling, self.issued, *_read_seq_file(self.path)[1:])
            log.error("telemetry store %s: sequence went back from %d to %d (another "
                      "database's file or WAL); continuing above %d", self.path, self.issued,
                      last, ceiling)
            notes.append({"action": "sequence_regressed", "path": str(self.path),
                          "found": last, "issued": self.issued, "continues_above": ceiling})
            self._move_sequence(ceiling, only_if=None)
            self.store_id = _meta(conn, "store_id")
            self.ceiling = _update_seq_file(self.path, self.store_id, ceiling)[1]
            last = _last_seq(conn)
        if last + count > self.ceiling:
            # reserve a block: fsynced before any number of it is handed out
            self.ceiling = _update_seq_file(self.path, self.store_id,
                                            last + count + _SEQ_BLOCK, self.issued)[1]
        return notes

    def after_write(self) -> int:
        last = _last_seq(self.db.conn)
        self.issued = max(self.issued, last)
        if time.monotonic() - self.issued_saved_at >= _ISSUED_SAVE_S:
            self.save_issued(sync=False)
        return last

    def save_issued(self, sync: bool) -> None:
        """Note the highest number handed out in the side file (a restored older copy of
        the store is then recognized by its sequence being behind it)."""
        self.issued_saved_at = time.monotonic()
        try:
            _update_seq_file(self.path, None, 0, self.issued, sync=sync)
        except OSError as exc:   # a full disk: the ceiling alone still holds
            log.debug("cannot note the issued sequence in %s: %s", _seq_file(self.path), exc)

    # --- watching the file ----------------------------------------------------------------

    def after_error(self, exc: BaseException) -> None:
        """An error from the file: have the next write check it first."""
        kind = _sqlite_kind(exc)
        if kind in ("corrupt", "io", "moved", "other"):
            self.pending_check = True
        if kind == "corrupt":
            self.pending_deep = True

    def recovered_after(self, exc: BaseException) -> bool:
        """A write failed: check the file now; True when it was reopened (retry the write)."""
        self.after_error(exc)
        if not self.pending_check:
            return False
        try:
            _, reopened = self.check()
        except TelemetryError as error:
            log.debug("check after a write error: %s", error)
            return False
        return reopened

    def problem(self) -> tuple[str, str] | None:
        """What is wrong with the file at `path`, if anything: (kind, why)."""
        ident = _ident(self.path)
        if ident is None:
            return "deleted", f"{self.path} was deleted"
        if ident != self.ident:
            return "replaced", f"{self.path} was replaced by another file"
        header = _probe_header(self.path)
        if header is not None:
            return "damaged", f"{self.path} {header}"
        if self.pending_deep:
            self.pending_deep = False
            try:
                result = self.db.conn.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.Error as exc:
                result = str(exc) if _sqlite_kind(exc) == "corrupt" else "ok"
            if result != "ok":
                return "damaged", f"{self.path} fails quick_check: {result}"
        try:
            db_id = _meta(self.db.conn, "store_id")
        except sqlite3.Error as exc:
            if _sqlite_kind(exc) == "corrupt":
                return "damaged", f"{self.path} cannot be read: {exc}"
            return None
        if self.store_id and db_id != self.store_id:
            return "foreign", (f"{self.path} now holds another store (id {db_id}, opened as "
                               f"{self.store_id})")
        return None

    def check(self) -> tuple[list[dict[str, Any]], bool]:
        """Verify the open file; recover if needed. Returns (audit notes, reopened)."""
        if self.db is None:                  # an earlier reopen failed: try again
            with _FileLock(self.path):
                return self._open(self.owner), True
        self.pending_check = False
        found = self.problem()
        if found is None:
            return [], False
        kind, why = found
        if kind == "foreign":
            # the same inode now holds another database: never reuse a number, say so
            last = _last_seq(self.db.conn)
            ceiling = max(self.ceiling, self.issued, *_read_seq_file(self.path)[1:])
            log.error("telemetry store %s; numbering continues above %d", why, ceiling)
            self._move_sequence(ceiling, only_if=None)
            self.store_id = _meta(self.db.conn, "store_id")
            self.ceiling = _update_seq_file(self.path, self.store_id, ceiling)[1]
            return [{"action": "store_identity_changed", "path": str(self.path),
                     "reason": why, "last_seq": last, "continues_above": ceiling}], False
        if kind == "damaged" and not self.owner:
            raise StoreCorruptError(f"{why}; waiting for the pipeline to quarantine it")
        return self._reopen(kind, why), True

    def _reopen(self, kind: str, why: str) -> list[dict[str, Any]]:
        """Copy what can be read of the old file's unsent records into the file now at
        `path` (created when missing), keeping their sequence numbers."""
        log.error("telemetry store %s; reopening", why)
        old = self.db
        with _FileLock(self.path):
            moved = None
            if kind == "damaged":
                if _ident(self.path) == self.ident:
                    moved = quarantine_file(self.path)
            elif _ident(self.path) is None:
                _set_aside_orphans(self.path, "orphan")
            salvaged, unreadable = _salvage(old.conn)
            notes: list[dict[str, Any]] = []
            try:
                try:
                    conn, fresh = _connect(self.path, notes)
                except StoreCorruptError:
                    if not self.owner:
                        raise
                    moved = quarantine_file(self.path)
                    conn, fresh = _connect(self.path, notes)
            except BaseException:
                # keep what we had (still readable); the next check tries again
                self.pending_check = True
                raise
            try:     # the old file has moved: SQLite neither checkpoints nor deletes its WAL
                old.conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass
            self.db = None
            self._attach(conn, fresh)
            notes += self._adopt_identity()
            try:
                copied = _restore(self.db.conn, salvaged)
            except sqlite3.Error as exc:
                copied = 0
                unreadable = len(salvaged["records"])
                log.error("telemetry store %s: %d unsent records of the old file could not be "
                          "copied into the new one: %s", self.path, unreadable, exc)
            self.issued = max(self.issued, _last_seq(self.db.conn))
        if unreadable:
            log.error("telemetry store %s: %s of its records could not be read back",
                      self.path, unreadable)
        note: dict[str, Any] = {"action": "store_reopened", "path": str(self.path),
                                "reason": why, "salvaged_unsent": copied}
        if moved is not None:
            note["moved_to"] = str(moved)
        if unreadable:
            note["unreadable"] = unreadable
        log.warning("telemetry store %s reopened; %d unsent records carried over", self.path,
                    copied)
        return notes + [note]

    def disk_shortfall(self) -> int:
        """Bytes the store should give back so that the WAL keeps room on its file system."""
        free = _fs_free(self.path)
        if free is None:
            return 0
        headroom = 2 * self.wal_budget
        return max(headroom - free, 0)


_HELD = threading.local()


class _FileLock:
    """flock on `<db>.lock` around opening, reopening, quarantining and side-file updates, so
    two processes never set files aside under each other. A separate file: locking it never
    touches the database's own POSIX locks. Re-entrant within a thread; other threads of the
    process wait like other processes do."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self.fd: int | None = None
        self.nested = False

    def __enter__(self) -> "_FileLock":
        held = getattr(_HELD, "paths", None)
        if held is None:
            held = _HELD.paths = {}
        key = str(self.path)
        if held.get(key):
            held[key] += 1
            self.nested = True
            return self
        if fcntl is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                try:
                    self.fd = os.open(self.path, os.O_RDONLY)
                except OSError:
                    self.fd = None      # read-only and no lock file: nothing to serialize with
            if self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
        held[key] = 1
        return self

    def __exit__(self, *exc: Any) -> None:
        held = _HELD.paths
        key = str(self.path)
        held[key] -= 1
        if self.nested or held[key] > 0:
            return
        del held[key]
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --- file handling -----------------------------------------------------------------------------

def _connect(path: Path, notes: list[dict[str, Any]]) -> tuple[sqlite3.Connection, bool]:
    """Open and check the file; StoreCorruptError only when it is not a healthy SQLite
    database, StoreUnavailableError kinds for a full disk, permissions or locks. A foreign
    WAL beside it is set aside first (noted in `notes`)."""
    what = f"cannot open telemetry store {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else None
    except OSError as exc:
        raise store_error(exc, what, path) from exc
    if size is None:
        moved = _set_aside_orphans(path, "orphan")
        if moved:
            notes.append({"action": "orphan_wal_set_aside", "path": str(path),
                          "moved_to": [str(m) for m in moved]})
    elif size == 0 and _wal_size(path) > 0:
        raise StoreCorruptError(f"{path} is empty but has a WAL: the file was truncated")
    elif size > 0:
        header = _probe_header(path)
        if header is not None:
            raise StoreCorruptError(f"{path} {header}")
        foreign = _foreign_wal(path)
        if foreign:
            moved = _set_aside_orphans(path, "foreign")
            log.error("telemetry store %s: its WAL belongs to another database (%s); set "
                      "aside to %s", path, foreign, ", ".join(map(str, moved)))
            notes.append({"action": "foreign_wal_set_aside", "path": str(path),
                          "reason": foreign, "moved_to": [str(m) for m in moved]})
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    except sqlite3.Error as exc:
        raise store_error(exc, what, path) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
        if fresh:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise StoreAccessError(f"{what}: cannot switch it to WAL mode (read-only?)")
        budget = _wal_budget(path)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {budget}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {max(budget // page_size, 16)}")
        if not fresh:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise StoreCorruptError(f"{path} fails quick_check: {result}")
        conn.executescript(_DDL)
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                     [str(SCHEMA_VERSION)])
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('store_id', ?)",
                     [secrets.token_hex(8)])
        conn.commit()
    except BaseException as exc:
        conn.close()
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise store_error(exc, what, path) from exc
        raise
    return conn, fresh


def _probe(path: Path, mode: str, query: Callable[[sqlite3.Connection], Any]) -> Any:
    """Read the file through SQLite: mode 'immutable' (the main file alone: no WAL, no locks)
    or 'ro' (with its WAL). Its descriptor is closed by SQLite, which keeps it open while this
    process holds locks on the file."""
    uri = f"file:{_uri_path(path)}?" + ("immutable=1" if mode == "immutable" else "mode=ro")
    conn = sqlite3.connect(uri, uri=True, timeout=1.0, check_same_thread=False)
    try:
        return query(conn)
    finally:
        conn.close()


def _probe_header(path: Path) -> str | None:
    """None when the file starts with a SQLite header and has pages; else what is wrong."""
    try:
        pages = _probe(path, "immutable",
                       lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    except sqlite3.Error as exc:
        if _sqlite_kind(exc) == "corrupt":
            return "does not start with the SQLite header"
        return None                      # cannot tell (permissions, I/O): not corrupt
    if pages == 0:
        return "is empty: the file was truncated"
    return None


def _identity_of(conn: sqlite3.Connection) -> tuple[str | None, int]:
    try:
        store_id = _meta(conn, "store_id")
    except sqlite3.OperationalError:
        store_id = None
    try:
        last = _last_seq(conn)
    except sqlite3.OperationalError:
        last = 0
    return store_id, last


def _foreign_wal(path: Path) -> str | None:
    """Why the WAL beside `path` belongs to another database, or None. The main file alone
    (immutable) and the file with its WAL must show the same store id, and the WAL can only
    move the sequence forward."""
    if _wal_size(path) <= 32:
        return None
    try:
        file_id, file_last = _probe(path, "immutable", _identity_of)
    except sqlite3.Error:
        return None
    if not file_id:
        return None                      # nothing checkpointed yet: nothing to compare
    try:
        wal_id, wal_last = _probe(path, "ro", _identity_of)
    except sqlite3.Error as exc:
        if _sqlite_kind(exc) == "corrupt":
            return f"the file with its WAL is corrupt ({exc}) while the file alone is not"
        return None
    if wal_id != file_id:
        return f"store id {wal_id} in the WAL, {file_id} in the file"
    if wal_last < file_last:
        return f"the WAL takes the sequence back from {file_last} to {wal_last}"
    return None


def _salvage(conn: sqlite3.Connection) -> tuple[dict[str, list[tuple]], int]:
    """Unsent records, counters and meta readable through an old connection (of a deleted,
    replaced or damaged file); and a count of unsent records that could not be read."""
    out: dict[str, list[tuple]] = {"records": [], "counters": [], "meta": []}
    unreadable = 0
    for table, sql in (("meta", "SELECT key, value FROM meta WHERE key = 'text_salt'"),
                       ("counters", "SELECT name, value FROM counters")):
        try:
            out[table] = conn.execute(sql).fetchall()
        except sqlite3.Error:
            pass
    # newest first: of a truncated file, what is still readable is the recent part (in the
    # WAL and the page cache)
    below = 1 << 62
    while True:
        try:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM records WHERE seq < ? AND sent_ns IS NULL "
                "ORDER BY seq DESC LIMIT ?", [below, _SALVAGE_CHUNK]).fetchall()
        except sqlite3.Error as exc:
            try:
                unreadable = conn.execute(
                    "SELECT count(*) FROM records WHERE seq < ? AND sent_ns IS NULL",
                    [below]).fetchone()[0]
            except sqlite3.Error:
                unreadable = -1           # unknown
            log.error("salvaging telemetry records below seq %d failed: %s", below, exc)
            break
        if not rows:
            break
        out["records"] += rows
        below = rows[-1][0]
    return out, unreadable


def _restore(conn: sqlite3.Connection, salvaged: dict[str, list[tuple]]) -> int:
    """Put salvaged records back under their own numbers (the fleet de-duplicates them)."""
    if not salvaged["records"] and not salvaged["counters"]:
        return 0
    before = conn.total_changes
    with conn:
        conn.executemany(f"INSERT OR IGNORE INTO records ({_COLUMNS}) VALUES "
                         f"({','.join('?' * 9)})", salvaged["records"])
        copied = conn.total_changes - before
        conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                         salvaged["meta"])
        conn.executemany(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
            salvaged["counters"])
    return copied


def _aside_name(path: Path, tag: str) -> Path:
    """A free name beside `path` for setting it aside: NAME.TAG-TIME[-N]."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = path.with_name(f"{path.name}.{tag}-{stamp}"), 1
    while target.exists():
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
        n += 1
    return target


def quarantine_file(path: Path) -> Path:
    """Move a corrupt store (and its -wal/-shm) aside; returns where it went."""
    moved = _aside_name(path, "corrupt")
    try:
        os.replace(path, moved)
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.replace(side, Path(str(moved) + suffix))
    except OSError as exc:
        raise store_error(exc, f"cannot move corrupt telemetry store {path} aside",
                          path) from exc
    return moved


def _set_aside_orphans(path: Path, why: str) -> list[Path]:
    """Move a -wal/-shm that does not belong to the file at `path` aside (kept)."""
    moved = []
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if not side.exists():
            continue
        target = _aside_name(side, why)
        try:
            os.replace(side, target)
        except OSError as exc:
            raise store_error(exc, f"cannot set {side} aside", path) from exc
        moved.append(target)
    return moved


def _seq_file(path: Path) -> Path:
    return Path(str(path) + ".seq")


def _read_seq_file(path: Path) -> tuple[str, int, int]:
    """(store id, ceiling, highest number known handed out) from the side file; the old
    format is the ceiling alone."""
    try:
        text = _seq_file(path).read_text().strip()
    except OSError:
        return "", 0, 0
    try:
        if text.startswith("{"):
            data = json.loads(text)
            return (str(data.get("store_id") or ""), int(data.get("ceiling") or 0),
                    int(data.get("issued") or 0))
        return "", int(text or 0), 0
    except (ValueError, TypeError, AttributeError):
        return "", 0, 0


def _update_seq_file(path: Path, store_id: str | None, ceiling: int = 0, issued: int = 0,
                     sync: bool = True) -> tuple[str, int, int]:
    """Merge into the side file, under the lock file (the pipeline and the sync agent both
    write it): the ceiling and the issued mark only ever go up. Returns what it now holds."""
    with _FileLock(path):
        old = _read_seq_file(path)
        new = (old[0] if store_id is None else store_id, max(old[1], ceiling),
               max(old[2], issued))
        if new != old:
            _write_seq_file(path, new[1], new[0], new[2], sync)
    return new


def _write_seq_file(path: Path, ceiling: int, store_id: str = "", issued: int = 0,
                    sync: bool = True) -> None:
    target = _seq_file(path)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(json.dumps({"store_id": store_id, "ceiling": ceiling, "issued": issued})
                 + "\n")
        fh.flush()
        if sync:
            os.fsync(fh.fileno())
    os.replace(tmp, target)
    if not sync:
        return
    try:
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some file systems cannot fsync a directory
        pass


def _encode(body: Any) -> str:
    """JSON text of a record body; a body that cannot be encoded is kept as a short repr
    rather than losing the batch it came in."""
    try:
        return _dumps(body)
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("telemetry record body not JSON-encodable (%s); stored as repr", exc)
        return _dumps({"unencodable": repr(body)[:500]})


def _last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return int(row[0]) if row else 0


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _wal_size(path: Path) -> int:
    try:
        return os.stat(str(path) + "-wal").st_size
    except OSError:
        return 0


def _fs_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _wal_budget(path: Path) -> int:
    """The WAL's size cap: 4 MB, or 1/8 of a small file system, so it can never fill it."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return _WAL_MAX_BYTES
    return max(64 * 1024, min(_WAL_MAX_BYTES, st.f_blocks * st.f_frsize // _WAL_FS_SHARE))


def _uri_path(path: Path) -> str:
    from urllib.parse import quote
    return quote(os.path.abspath(path))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
