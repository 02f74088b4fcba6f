"""One SQLite connection per process and telemetry file, and its watch: every
`TelemetryStore.open()` of a file in one process shares it; it notices a deleted, replaced,
truncated or corrupt file (and a foreign WAL) and recovers as device/telemetry/store.py says.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from device.errors import StoreCorruptError, TelemetryError
from device.telemetry.store_disk import (_WAL_MAX_BYTES, _connect, _ident, _last_seq, _meta,
                                         _probe_header, _restore, _salvage, _wal_budget)
from device.telemetry.store_errors import _sqlite_kind, fs_free
from device.telemetry.store_files import (_FileLock, _read_seq_file, _seq_file,
                                          _set_aside_orphans, _update_seq_file, quarantine_file)

log = logging.getLogger("device.telemetry.store")

_SEQ_BLOCK = 100_000          # sequence numbers reserved per write of the .seq side file
_ISSUED_SAVE_S = 1.0          # how often the highest issued number is noted in the side file


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
            log.error("telemetry store corrupt; moved aside, starting fresh", extra={
                "path": str(self.path), "error": str(exc), "moved_to": str(moved)})
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
            log.warning("closing telemetry store failed", extra={"error": str(exc)})
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
            log.error("telemetry store behind numbers already handed out; numbering continues "
                      "higher", extra={"path": str(self.path), "reason": why,
                                       "continues_above": ceiling})
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
            log.error("telemetry store sequence went back (another database's file or WAL); "
                      "numbering continues higher", extra={
                          "path": str(self.path), "issued": self.issued, "found": last,
                          "continues_above": ceiling})
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
            log.debug("cannot note the issued sequence",
                      extra={"path": str(_seq_file(self.path)), "error": str(exc)})

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
            log.debug("check after a write error failed", extra={"error": str(error)})
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
            log.error("telemetry store identity changed; numbering continues higher",
                      extra={"reason": why, "continues_above": ceiling})
            self._move_sequence(ceiling, only_if=None)
            self.store_id = _meta(self.db.conn, "store_id")
            self.ceiling = _update_seq_file(self.path, self.store_id, ceiling)[1]
            return [{"action": "store_identity_changed", "path": str(self.path),
                     "reason": why, "last_seq": last, "continues_above": ceiling}], False
        if kind == "damaged" and not self.owner:
            raise StoreCorruptError(f"{why}; waiting for the pipeline to quarantine it")
        return self._reopen(kind, why), True

    def _reopen(self, kind: str, why: str) -> list[dict[str, Any]]:
        """Copy what can be read of the old file's unsent records (and, as unsent, those
        waiting for the fleet's receipt) into the file now at `path` (created when missing),
        keeping their sequence numbers."""
        log.error("telemetry store unusable; reopening", extra={"reason": why})
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
                log.error("telemetry store unsent records not copied into the new file",
                          extra={"path": str(self.path), "count": unreadable,
                                 "error": str(exc)})
            self.issued = max(self.issued, _last_seq(self.db.conn))
        if unreadable:
            log.error("telemetry store records could not be read back",
                      extra={"path": str(self.path), "count": unreadable})
        note: dict[str, Any] = {"action": "store_reopened", "path": str(self.path),
                                "reason": why, "salvaged_unsent": copied}
        if moved is not None:
            note["moved_to"] = str(moved)
        if unreadable:
            note["unreadable"] = unreadable
        log.warning("telemetry store reopened; unsent records carried over",
                    extra={"path": str(self.path), "count": copied})
        return notes + [note]

    def disk_shortfall(self) -> int:
        """Bytes the store should give back so that the WAL keeps room on its file system."""
        free = fs_free(self.path)
        if free is None:
            return 0
        headroom = 2 * self.wal_budget
        return max(headroom - free, 0)
