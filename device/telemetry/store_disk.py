"""The telemetry store's file through SQLite: connecting to it and setting it up (WAL mode, the
WAL's size cap, the schema), probing its header and its WAL before trusting them, salvaging the
unsent and unconfirmed records of a deleted, replaced or damaged file, checkpointing and
vacuuming, and the small SQL and encoding helpers the store's modules share. What is done to the
store's files outside SQLite (the lock and `.seq` side files, moving files aside) is
device/telemetry/store_files.py.

Nothing here opens a live database file outside SQLite (see device/telemetry/store.py).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from device.errors import StoreCorruptError
from device.telemetry import store_errors
from device.telemetry.store_errors import StoreAccessError, _sqlite_kind, store_error
from device.telemetry.store_files import _set_aside_orphans

log = logging.getLogger("device.telemetry.store")

SCHEMA_VERSION = 1
_WAL_MAX_BYTES = 4 * 1024 * 1024   # the WAL is checkpointed/truncated at this size at most...
_WAL_FS_SHARE = 8                  # ...or at 1/8 of a small file system
_SALVAGE_CHUNK = 1000
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
CREATE TABLE IF NOT EXISTS journaled (jseq INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS unconfirmed (seq INTEGER PRIMARY KEY, due_ns INTEGER NOT NULL,
                                        tries INTEGER NOT NULL);
"""
_COLUMNS = "seq, kind, tier, prio, wall_ns, mono_ns, boot_id, body, sent_ns"
_SQL_VARS = 500                    # bound parameters per statement, at most
_dumps = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False).encode


# --- file handling -----------------------------------------------------------------------------

def _connect(path: Path, notes: list[dict[str, Any]]) -> tuple[sqlite3.Connection, bool]:
    """Open and check the file; StoreCorruptError only when it is not a healthy SQLite
    database, StoreUnavailableError kinds for a full disk, permissions or locks. A foreign
    WAL beside it is set aside first (noted in `notes`)."""
    what = f"cannot open telemetry store {path}"
    _check_before_connecting(path, notes, what)
    try:
        conn = sqlite3.connect(str(path), timeout=store_errors.BUSY_TIMEOUT_S, check_same_thread=False)
    except sqlite3.Error as exc:
        raise store_error(exc, what, path) from exc
    try:
        fresh = _set_up(conn, path, what)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise store_error(exc, what, path) from exc
        raise
    return conn, fresh


def _check_before_connecting(path: Path, notes: list[dict[str, Any]], what: str) -> None:
    """The file as SQLite would find it: a missing file's stray WAL is set aside, a truncated
    or headerless file is StoreCorruptError, a WAL of another database is set aside."""
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
            log.error("telemetry store WAL belongs to another database; set aside", extra={
                "path": str(path), "reason": foreign, "moved_to": [str(m) for m in moved]})
            notes.append({"action": "foreign_wal_set_aside", "path": str(path),
                          "reason": foreign, "moved_to": [str(m) for m in moved]})


def _set_up(conn: sqlite3.Connection, path: Path, what: str) -> bool:
    """WAL mode, the WAL's size cap, a quick_check of an existing file, the schema; returns
    whether the file was new (no pages yet)."""
    conn.execute(f"PRAGMA busy_timeout = {int(store_errors.BUSY_TIMEOUT_S * 1000)}")
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
    return fresh


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


# --- carrying unsent records over --------------------------------------------------------------

def _salvage(conn: sqlite3.Connection) -> tuple[dict[str, list[tuple]], int]:
    """Unsent records, counters and meta (the text salt, whether the fleet sends receipts)
    readable through an old connection (of a deleted, replaced or damaged file); and a count of
    unsent records that could not be read. A record the broker took that still waits for the
    fleet's receipt (`unconfirmed`) counts as unsent: it is carried over unsent, to be sent
    again (the fleet de-duplicates it), since its receipt wait is not carried over. The two
    are read apart, so a damaged page of one costs the other nothing."""
    out: dict[str, list[tuple]] = {"records": [], "counters": [], "meta": []}
    unreadable = 0
    for table, sql in (("meta", ("SELECT key, value FROM meta "
                                 "WHERE key IN ('text_salt', 'fleet_receipts')")),
                       ("counters", "SELECT name, value FROM counters")):
        try:
            out[table] = conn.execute(sql).fetchall()
        except sqlite3.Error:
            pass
    columns = _COLUMNS.replace("sent_ns", "NULL")
    # newest first: of a truncated file, what is still readable is the recent part (in the
    # WAL and the page cache)
    below = 1 << 62
    while True:
        try:
            rows = conn.execute(
                f"SELECT {columns} FROM records WHERE seq < ? AND sent_ns IS NULL "
                "ORDER BY seq DESC LIMIT ?", [below, _SALVAGE_CHUNK]).fetchall()
        except sqlite3.Error as exc:
            try:
                unreadable = conn.execute(
                    "SELECT count(*) FROM records WHERE seq < ? AND sent_ns IS NULL",
                    [below]).fetchone()[0]
            except sqlite3.Error:
                unreadable = -1           # unknown
            log.error("salvaging telemetry records failed",
                      extra={"below_seq": below, "error": str(exc)})
            break
        if not rows:
            break
        out["records"] += rows
        below = rows[-1][0]
    # then, on their own (a damaged page of theirs must not cost the unsent ones), the records
    # waiting for the fleet's receipt
    try:
        waiting = [seq for (seq,) in conn.execute("SELECT seq FROM unconfirmed ORDER BY seq DESC")]
    except sqlite3.Error as exc:
        waiting, unreadable = [], -1      # how many waited is unknown
        log.error("salvaging telemetry receipts failed", extra={"error": str(exc)})
    for start in range(0, len(waiting), _SQL_VARS):
        chunk = waiting[start:start + _SQL_VARS]
        try:
            out["records"] += conn.execute(
                f"SELECT {columns} FROM records WHERE sent_ns IS NOT NULL AND seq IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall()
        except sqlite3.Error as exc:
            if unreadable >= 0:
                unreadable += len(waiting) - start
            log.error("salvaging telemetry records failed",
                      extra={"waiting": len(waiting) - start, "error": str(exc)})
            break
    return out, unreadable


def _restore(conn: sqlite3.Connection, salvaged: dict[str, list[tuple]]) -> int:
    """Put salvaged records back under their own numbers (the fleet de-duplicates them)."""
    if not any(salvaged.values()):
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


# --- giving room back -------------------------------------------------------------------------

def _truncate_wal(conn: sqlite3.Connection) -> bool:
    """Checkpoint the WAL and truncate it (gives its room back, e.g. after a full disk); False
    when a reader kept it from being truncated or the checkpoint failed. Never raises."""
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        log.debug("WAL checkpoint after a full disk failed", extra={"error": str(exc)})
        return False
    return not busy


def _vacuum(conn: sqlite3.Connection) -> None:
    """After an eviction: hand the freed pages back to the file system and truncate the WAL;
    best effort (a failure is logged)."""
    try:
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:  # pragma: no cover - vacuum is best effort
        log.warning("incremental_vacuum failed", extra={"error": str(exc)})


def encode_body(body: Any) -> str:
    """JSON text of a record body; a body that cannot be encoded is kept as a short repr
    rather than losing the batch it came in."""
    try:
        return _dumps(body)
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("telemetry record body not JSON-encodable; stored as repr",
                    extra={"error": str(exc)})
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


def _wal_budget(path: Path) -> int:
    """The WAL's size cap: 4 MB, or 1/8 of a small file system, so it can never fill it."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return _WAL_MAX_BYTES
    return max(64 * 1024, min(_WAL_MAX_BYTES, st.f_blocks * st.f_frsize // _WAL_FS_SHARE))


def _uri_path(path: Path) -> str:
    return quote(os.path.abspath(path))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
