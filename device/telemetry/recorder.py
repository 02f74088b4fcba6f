"""The recorder: what the pipeline calls. Never blocks the frame path.

Every call builds a small `Record` (wall + monotonic time taken at the call), writes it to the
journal (`[telemetry] journal`, device/telemetry/journal.py: one write call, so a killed process
loses nothing; the next start inserts what no commit covered, exactly once) and appends it to a
bounded in-memory queue; one writer thread inserts the queue into the store in batches. When
the queue is full the oldest queued record is dropped, counted, logged (rate-limited) and the
count lands in the store's counters and in a `telemetry.overflow` log record. Audit records
are never dropped from the queue.

When the store cannot be written (disk full, read-only, locked, or not openable at start) the
writer keeps the batch, backs off (growing delay up to `_BACKOFF_MAX_S`), counts the failures,
logs them rate-limited, and carries on where it stopped once the store takes writes again
(`telemetry.recovered` log record, `write_failures` counter). Its own errors never come back
through the telemetry log handler: nothing logged on the writer thread or by
`device.telemetry.*` is recorded (see `is_telemetry_thread`).

The recorder is built in three layers, each a class built on the one before it: the front
(device/telemetry/recorder_front.py: the calls, the windows, the bounded queues), the writer
thread (device/telemetry/recorder_writer.py) and, here, opening, starting, flushing and closing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from device.errors import TelemetryError
from device.telemetry.journal import Entry, Journal
from device.telemetry.records import KINDS, Clock, Record
from device.telemetry.recorder_front import RecorderStats
from device.telemetry.recorder_writer import RecorderWriter
from device.telemetry.store import TelemetryStore
from device.telemetry.store_errors import StoreUnavailableError

log = logging.getLogger(__name__)


class Recorder(RecorderWriter):
    """Feeds the telemetry store from any thread. `Recorder.open(cfg.telemetry)` opens the
    store and starts the writer; `close()` flushes and closes."""

    def __init__(self, store: TelemetryStore | None, settings: Any, *,
                 clock: Clock | None = None, path: str | Path | None = None,
                 journal: Journal | None = None):
        salt = b""
        if settings.redact_text:
            if settings.text_salt:
                salt = settings.text_salt.encode()
            elif store is not None:
                salt = store.text_salt().encode()
        super().__init__(store, settings, clock or (store.clock if store is not None else Clock()),
                         Path(path) if path is not None else (store.path if store else None),
                         journal)
        self._salt = salt

    @classmethod
    def open(cls, settings: Any, path: str | Path | None = None, *,
             clock: Clock | None = None) -> "Recorder":
        """Open the store named by `settings.db_path` (or `path`) and start the writer.

        A store that cannot be opened for now (full disk, no write access, locked:
        StoreUnavailableError) does not stop the caller: records are queued in memory and
        the writer keeps trying to open it. Other TelemetryErrors (a path that cannot hold a
        store) are raised."""
        if not settings.enabled:
            return cls(None, settings, clock=clock)
        where = Path(path or settings.db_path)
        try:
            store = TelemetryStore.open(where, settings, clock=clock)
        except StoreUnavailableError as exc:
            # full disk, read-only, locked...: record in memory and keep trying to open it
            log.error("telemetry store unavailable for now; queueing in memory and retrying",
                      extra={"path": str(where), "error": str(exc)})
            recorder = cls(None, settings, clock=clock, path=where)
            recorder._last_error = str(exc)
        else:
            recorder = cls(store, settings, clock=clock)
        if settings.journal:
            try:
                committed = recorder.store.journaled_max() if recorder.store else 0
            except TelemetryError:
                committed = 0
            recorder._adopt(*Journal.open(where, committed))
        recorder.start()
        return recorder

    def _adopt(self, journal: Journal | None, entries: list[Entry]) -> None:
        """Use `journal`; what it held from the last run is inserted first."""
        self._journal = journal
        records = [Record(e.kind, e.wall_ns, e.mono_ns, e.body, e.jseq, e.boot_id)
                   for e in entries if e.kind in KINDS and isinstance(e.body, dict)]
        if journal is not None and len(records) < len(entries):
            journal.stats.corrupt += len(entries) - len(records)
            self._journal_done += [e.jseq for e in entries
                                   if e.kind not in KINDS or not isinstance(e.body, dict)]
        if records:
            log.warning("telemetry journal: records the last run did not commit are inserted "
                        "now", extra={"count": len(records)})
            with self._lock:
                self._urgent.extend(records)
                self._stats.enqueued += len(records)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._path is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="telemetry-writer",
                                        daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        if self._thread is None:
            return True
        with self._lock:
            target = self._stats.enqueued
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._handled >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """End the open metric windows, write everything queued, close the store. A store
        that does not take writes gets one last try, not a wait."""
        if self._path is None:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("telemetry writer did not stop in time; records unwritten",
                          extra={"timeout_s": timeout, "unwritten": self._unwritten()})
                return
        elif self.store is not None:
            self._write_pending(force_windows=True)
        with self._lock:
            waiting = [*self._queue, *self._urgent, *self._internal, *self._retry]
            lost = sum(1 for r in waiting if not r.jseq)
            self._stats.lost += lost
        if waiting:
            log.error("telemetry closed with records unwritten: the store did not take them",
                      extra={"unwritten": len(waiting), "journaled": len(waiting) - lost,
                             "error": self._last_error or "not open"})
        if self._journal is not None:
            self._finish_journaled([])
            self._journal.close()
        if self.store is not None:
            self.store.close()

    def stats(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(self._stats.enqueued, self._stats.written,
                                 self._stats.overflow, self._stats.write_errors,
                                 self._waiting(), self._stats.lost, self._delay)
