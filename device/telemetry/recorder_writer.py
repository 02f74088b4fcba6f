"""The recorder's writer thread: the one thread that writes the telemetry store. Every
`flush_interval_s` (or when a batch is full) it rolls the finished metric and quality windows
into records, inserts everything queued in batches, marks the journaled ones done, and keeps
the store in shape (file checks, the disk limit, pruning delivered records). When the store
cannot be written or opened it keeps the batch, backs off (growing delay up to
`_BACKOFF_MAX_S`), counts and logs the failures rate-limited, and says once when the store works
again (`telemetry.recovered`). Nothing it logs is fed back into telemetry (`is_telemetry_thread`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from device.errors import TelemetryError
from device.telemetry.journal import Journal
from device.telemetry.records import Clock, Record
from device.telemetry.recorder_front import RecorderFront
from device.telemetry.store import TelemetryStore
from device.telemetry.store_errors import StoreFullError
from device.telemetry.system import SystemSampler

log = logging.getLogger(__name__)

_LIMIT_CHECK_RECORDS = 5000   # check the disk limit after this many inserted records...
_LIMIT_CHECK_S = 5.0          # ...or this often
_PRUNE_EVERY_S = 60.0
_FILE_CHECK_S = 2.0           # compare the file on disk with the one open this often
_OVERFLOW_LOG_EVERY_S = 5.0
_BACKOFF_MIN_S = 0.1          # first retry after a failed write or open...
_BACKOFF_MAX_S = 5.0          # ...doubling up to this
_FAILURE_LOG_EVERY_S = 30.0   # a store that keeps failing is logged this often
_NOTICE_LOGGER = "device.telemetry.recorder"   # the logger the stored notices name

_WRITER = threading.local()


def is_telemetry_thread() -> bool:
    """True on a telemetry writer thread: what it logs must not be fed back into telemetry."""
    return getattr(_WRITER, "active", False)


class RecorderWriter(RecorderFront):
    """The writing half of `Recorder` (device/telemetry/recorder.py): `_run` is the writer
    thread; the store it writes is `store` (None until it could be opened at `_path`)."""

    def __init__(self, store: TelemetryStore | None, settings: Any, clock: Clock,
                 path: Path | None, journal: Journal | None):
        super().__init__(settings, clock, journal)
        self.store = store
        # where to (re)open the store when it could not be opened yet; None: disabled
        self._path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._overflow_reported = 0
        self._system = SystemSampler(self._path) if settings.system_metrics else None
        self._delay = 0.0                   # back-off delay while the store fails
        self._failures = 0                  # failed attempts in the current outage
        self._failing_since: float | None = None
        self._failure_logged_at = 0.0
        self._last_error = ""
        self._pending_counts: dict[str, int] = {}   # counters waiting for a working store

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        _WRITER.active = True
        interval = self.settings.flush_interval_s
        since_check, last_check, last_prune = 0, time.monotonic(), time.monotonic()
        last_file_check = time.monotonic()
        while True:
            stopping = self._stop.is_set()
            if stopping:
                pass                                # one last round, at once
            elif self._delay:
                self._stop.wait(self._delay)        # backing off: only a stop cuts it short
            else:
                self._wake.wait(interval)
            self._wake.clear()
            self._finish_journaled([])              # what a full queue dropped meanwhile
            if self.store is None and not self._open_store():
                if stopping:
                    break
                continue
            try:
                since_check += self._write_pending(force_windows=stopping)
            except Exception:  # the writer must outlive any one bad record or batch
                log.exception("telemetry writer iteration failed; continuing")
            now = time.monotonic()
            if self._delay:                         # the store is failing: no maintenance
                if stopping:
                    break
                continue
            if now - last_file_check >= _FILE_CHECK_S or stopping:
                self._guard(self.store.check)       # deleted, replaced, truncated file?
                last_file_check = now
                if stopping and self._unwritten():
                    self._guard(self._write_pending)   # what a reopen brought back
            if since_check >= _LIMIT_CHECK_RECORDS or now - last_check >= _LIMIT_CHECK_S \
                    or (stopping and since_check):
                self._guard(self.store.enforce_limit)
                if self._journal is not None:
                    self._guard(lambda: self.store.forget_journaled(self._journal.oldest_live()))
                since_check, last_check = 0, now
            if now - last_prune >= _PRUNE_EVERY_S:
                self._guard(lambda: self.store.prune_sent(self.settings.keep_sent_s))
                last_prune = now
            if stopping:
                break

    def _open_store(self) -> bool:
        """The store could not be opened at start: try again (with the writer's back-off)."""
        try:
            store = TelemetryStore.open(self._path, self.settings, clock=self.clock)
        except TelemetryError as exc:
            self._failed(exc, "open")
            return False
        if self.settings.redact_text and not self._salt:
            try:
                self._salt = store.text_salt().encode()
            except TelemetryError as exc:
                store.close()
                self._failed(exc, "open")
                return False
        self.store = store
        self._succeeded()
        return True

    def _failed(self, exc: TelemetryError, what: str = "write") -> None:
        """One failed attempt: count it, log it (rate-limited), grow the delay."""
        now = time.monotonic()
        with self._lock:
            self._stats.write_errors += 1
            waiting = self._waiting()
            dropped = self._stats.overflow
        self._failures += 1
        self._last_error = str(exc)
        if self._failing_since is None:
            self._failing_since = now
            self._failure_logged_at = now
            log.error("telemetry store failed; keeping records queued and retrying with "
                      "growing delays", extra={"operation": what, "error": str(exc),
                                               "waiting": waiting})
        elif now - self._failure_logged_at >= _FAILURE_LOG_EVERY_S:
            self._failure_logged_at = now
            log.error("telemetry store still failing", extra={
                "attempts": self._failures, "seconds": round(now - self._failing_since, 1),
                "error": str(exc), "waiting": waiting, "dropped": dropped})
        self._delay = min(max(self._delay * 2, _BACKOFF_MIN_S), _BACKOFF_MAX_S)
        if isinstance(exc, StoreFullError) and self.store is not None:
            self.store.relieve()              # checkpoint + truncate the WAL if it can

    def _succeeded(self) -> None:
        """The store took a write (or opened) again after failures: say so once."""
        if self._failing_since is None:
            return
        down = time.monotonic() - self._failing_since
        failures, error = self._failures, self._last_error
        self._failing_since, self._failures, self._delay = None, 0, 0.0
        log.warning("telemetry store works again",
                    extra={"failures": failures, "down_s": round(down, 3)})
        self._pending_counts["write_failures"] = \
            self._pending_counts.get("write_failures", 0) + failures
        wall, mono = self.clock.now()
        self._put_internal(Record("log", wall, mono, {
            "severity": "WARNING", "event": "telemetry.recovered", "logger": _NOTICE_LOGGER,
            "fields": {"failures": failures, "down_s": round(down, 3), "error": error[:500]}}))
        if self.store is not None:
            self.store.relieve()

    def _write_pending(self, force_windows: bool = False) -> int:
        """Roll finished windows into records and insert everything queued; returns count."""
        mono = time.monotonic_ns()
        if self._system is not None:
            self._system.sample(self._metrics, mono)
        self._queue_windows(mono, force_windows)
        self._report_overflow()
        written = 0
        while True:
            with self._lock:
                batch, self._retry = self._retry, []
            if not batch:
                batch = [self._materialize(r) for r in self._take(self.settings.batch_size)]
            if not batch:
                self._bump_pending()
                return written
            try:
                self.store.insert(batch)
            except TelemetryError as exc:
                with self._lock:
                    self._retry = batch             # kept: tried again after the delay
                self._failed(exc)
                return written
            self._succeeded()
            self._finish_journaled([r.jseq for r in batch if r.jseq])
            with self._done:
                self._stats.written += len(batch)
                self._handled += len(batch)
                self._done.notify_all()
            written += len(batch)

    def _finish_journaled(self, jseqs: list[int]) -> None:
        """Committed (and dropped) records are done in the journal; its write errors are
        counted and logged here, on the writer thread (rate-limited)."""
        if self._journal is None:
            return
        with self._lock:
            dropped, self._journal_done = self._journal_done, []
        self._journal.done(jseqs + dropped)
        errors, last = self._journal.errors_to_report()
        if errors:
            self._pending_counts["journal_write_errors"] = \
                self._pending_counts.get("journal_write_errors", 0) + errors
            now = time.monotonic()
            if now - getattr(self, "_journal_logged_at", -1e9) >= _FAILURE_LOG_EVERY_S:
                self._journal_logged_at = now
                log.error("telemetry journal: records not journaled; they are queued in "
                          "memory only", extra={"count": errors, "error": last})

    def _bump_pending(self) -> None:
        counts, self._pending_counts = self._pending_counts, {}
        if not counts:
            return
        try:
            self.store.bump(counts)
        except TelemetryError as exc:
            for name, n in counts.items():
                self._pending_counts[name] = self._pending_counts.get(name, 0) + n
            log.error("telemetry counters not stored yet", extra={"error": str(exc)})

    def _queue_windows(self, mono: int, force: bool) -> None:
        for kind, window in (("metric", self._metrics), ("quality", self._quality)):
            for start, body in window.roll(mono, force):
                wall = time.time_ns() - (mono - start)
                self._put_internal(Record(kind, wall, start, body))

    def _report_overflow(self) -> None:
        with self._lock:
            total = self._stats.overflow
        new = total - self._overflow_reported
        if not new:
            return
        now = time.monotonic()
        if now - getattr(self, "_overflow_logged_at", 0.0) < _OVERFLOW_LOG_EVERY_S \
                and not self._stop.is_set():
            return
        self._overflow_logged_at = now
        self._overflow_reported = total
        log.warning("telemetry queue full: records dropped",
                    extra={"dropped": new, "dropped_total": total})
        self._pending_counts["overflow"] = self._pending_counts.get("overflow", 0) + new
        wall, mono = self.clock.now()
        self._put_internal(Record("log", wall, mono, {
            "severity": "WARNING", "event": "telemetry.overflow", "logger": _NOTICE_LOGGER,
            "fields": {"dropped": new, "dropped_total": total}}))
        with self._done:
            self._done.notify_all()

    def _guard(self, action) -> None:
        try:
            action()
        except TelemetryError as exc:
            log.error("telemetry store maintenance failed", extra={"error": str(exc)})
        except Exception as exc:  # a bug in maintenance: logged, the loop goes on
            log.exception("telemetry store maintenance failed",
                          extra={"error": f"{type(exc).__name__}: {exc}"})
