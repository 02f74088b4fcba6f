"""The telemetry store's read side, for the sync agent: the oldest unsent records by priority,
marking them sent once the broker took them, the fleet's receipts (confirmed records are
delivered, overdue ones are sent again with growing waits), and the backlog and inspection
queries. `TelemetryStore` (device/telemetry/store.py) has these methods through `StoreReads`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from device.telemetry.records import StoredRecord
from device.telemetry.store_connection import _StoreFile
from device.telemetry.store_disk import _SQL_VARS, _chunks
from device.telemetry.store_errors import _translated

_NEVER = 2**63 - 1            # an unconfirmed record being sent again is not due


class StoreReads:
    """Reading and marking sent (the sync agent); a part of `TelemetryStore`, which provides
    the file and its connection."""

    path: Path
    _file: _StoreFile
    db: Any                   # the sqlite_utils.Database (TelemetryStore.db)
    _lock: threading.RLock

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
