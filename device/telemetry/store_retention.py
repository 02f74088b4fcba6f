"""The telemetry store's disk limit: measuring the live pages, pruning delivered records, and
evicting when the store is over `max_bytes` (or the file system runs short of room for the WAL)
- delivered records first, then unsent ones by tier (metrics, predictions, logs, audit), oldest
first - counting every eviction and saying so in a log record (and an audit record when audit
records went). `TelemetryStore` (device/telemetry/store.py) has these methods through
`StoreRetention`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from device.errors import TelemetryError
from device.telemetry.records import EVICTION_TIERS, Clock, Record
from device.telemetry.store_connection import _StoreFile
from device.telemetry.store_disk import _SQL_VARS, _chunks, _truncate_wal, _vacuum
from device.telemetry.store_errors import _translated

log = logging.getLogger(__name__)

_LOW_WATER = 0.9              # eviction brings the store down to this share of max_bytes
_WAITING = "(SELECT seq FROM unconfirmed)"
_NOTICE_LOGGER = "device.telemetry.store"   # the logger the stored eviction notice names


class StoreRetention:
    """The disk limit; a part of `TelemetryStore`, which provides the file, its connection,
    the limit, the clock, and the writes (`insert`, `bump`) the notices and counts go through."""

    path: Path
    _file: _StoreFile
    db: Any                   # the sqlite_utils.Database (TelemetryStore.db)
    _lock: threading.RLock
    max_bytes: int
    clock: Clock
    insert: Callable[[Sequence[Record]], int]
    bump: Callable[[dict[str, int]], None]

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
                ok = _truncate_wal(self.db.conn)
            except TelemetryError as exc:          # not open
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
            _vacuum(self.db.conn)
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
            "logger": _NOTICE_LOGGER, "fields": fields})]
        if evicted.get("audit"):
            log.error("telemetry store evicted unsent audit records",
                      extra={"count": evicted["audit"]})
            notes.append(Record("audit", wall, mono, {
                "action": "audit_evicted", "count": evicted["audit"],
                "max_bytes": self.max_bytes}))
        self.insert(notes)
