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
"""

from __future__ import annotations

import collections
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from device.errors import TelemetryError
from device.telemetry.aggregate import MetricWindow, QualityWindow
from device.telemetry.journal import Entry, Journal, encode
from device.telemetry.records import KINDS, Clock, Prediction, Record
from device.telemetry.store import StoreFullError, StoreUnavailableError, TelemetryStore
from device.telemetry.store_disk import encode_body
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

_WRITER = threading.local()


def is_telemetry_thread() -> bool:
    """True on a telemetry writer thread: what it logs must not be fed back into telemetry."""
    return getattr(_WRITER, "active", False)


@dataclass
class RecorderStats:
    enqueued: int = 0
    written: int = 0
    overflow: int = 0
    write_errors: int = 0       # failed attempts to write (or open) the store
    queued: int = 0
    lost: int = 0               # records still unwritten when the recorder closed
    retry_in_s: float = 0.0     # current back-off delay; 0 while the store takes writes


class Recorder:
    """Feeds the telemetry store from any thread. `Recorder.open(cfg.telemetry)` opens the
    store and starts the writer; `close()` flushes and closes."""

    def __init__(self, store: TelemetryStore | None, settings: Any, *,
                 clock: Clock | None = None, path: str | Path | None = None,
                 journal: Journal | None = None):
        self.store = store
        self._journal = journal
        self._journal_done: list[int] = []      # jseqs dropped from a full queue
        self.settings = settings
        self.clock = clock or (store.clock if store is not None else Clock())
        # where to (re)open the store when it could not be opened yet; None: disabled
        self._path = Path(path) if path is not None else (store.path if store else None)
        self._queue: collections.deque[Record] = collections.deque()
        self._urgent: collections.deque[Record] = collections.deque()    # audit: never dropped
        self._internal: collections.deque[Record] = collections.deque()  # windows, notices
        self._retry: list[Record] = []          # the batch the store did not take
        self._queue_size = settings.queue_size
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats = RecorderStats()
        self._handled = 0
        self._overflow_reported = 0
        self._metrics = MetricWindow(1.0)
        self._quality = QualityWindow(60.0)
        self._salt = b""
        if settings.redact_text:
            if settings.text_salt:
                self._salt = settings.text_salt.encode()
            elif store is not None:
                self._salt = store.text_salt().encode()
        self._system = SystemSampler(self._path) if settings.system_metrics else None
        self._delay = 0.0                   # back-off delay while the store fails
        self._failures = 0                  # failed attempts in the current outage
        self._failing_since: float | None = None
        self._failure_logged_at = 0.0
        self._last_error = ""
        self._pending_counts: dict[str, int] = {}   # counters waiting for a working store

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

    # --- the calls the pipeline makes -------------------------------------------------------

    def log_event(self, severity: str, event: str, fields: Mapping[str, Any] | None = None,
                  *, logger: str = "", wall_ns: int | None = None) -> None:
        wall, mono = self.clock.now()
        self._put(Record("log", wall_ns or wall, mono, {
            "severity": severity, "event": event, "logger": logger,
            "fields": dict(fields or {})}))

    def count(self, name: str, n: int = 1) -> None:
        """Add to a per-second counter (frames_captured, deadline_misses, cache_hits...)."""
        self._metrics.count(name, n, time.monotonic_ns())

    def observe(self, name: str, value: float) -> None:
        """A value summarized per second as p50/p95/max (e.g. 'latency_ms.recognize')."""
        self._metrics.observe(name, value, time.monotonic_ns())

    def gauge(self, name: str, value: float) -> None:
        self._metrics.gauge(name, value, time.monotonic_ns())

    def metric(self, body: Mapping[str, Any]) -> None:
        """A metric record aggregated by the caller (same shape as MetricWindow's)."""
        wall, mono = self.clock.now()
        self._put(Record("metric", wall, mono, dict(body)))

    def frame_quality(self, brightness: float, contrast: float, blur: float) -> None:
        """Per-frame image statistics, aggregated per minute for drift monitoring."""
        self._quality.frame(brightness, contrast, blur, time.monotonic_ns())

    def confidence(self, value: float) -> None:
        """One recognizer confidence, aggregated per minute into a distribution."""
        self._quality.confidence(value, time.monotonic_ns())

    def prediction(self, p: Prediction) -> str:
        """Record one prediction; returns its prediction_id (for feedback). The record body
        (and the text hashing) is built on the writer thread, or here when it is journaled
        (~15 us: it must be on disk when this returns)."""
        wall, mono = self.clock.now()
        self._put(Record("prediction", wall, mono, p))   # type: ignore[arg-type]
        return p.prediction_id

    def _prediction_body(self, p: Prediction) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prediction_id": p.prediction_id, "confidence": round(float(p.confidence), 4),
            "models": {stage: {"name": m.name, "version": m.version}
                       for stage, m in p.models.items()},
            "region": list(p.region) if p.region is not None else None,
            "translation_source": p.translation_source,
            "latency_ms": {k: round(float(v), 3) for k, v in p.latency_ms.items()}}
        body.update(self._text("text", p.text))
        if p.translation is not None:
            body.update(self._text("translation", p.translation))
        if p.shadow is not None:
            shadow = {k: v for k, v in p.shadow.items() if k != "text"}
            if "text" in p.shadow:
                shadow.update(self._text("text", str(p.shadow["text"])))
            body["shadow"] = shadow
        return body

    def feedback(self, prediction_id: str, verdict: str = "wrong",
                 correction: str | None = None) -> None:
        """The wearer marked a prediction (usually its translation) wrong."""
        wall, mono = self.clock.now()
        body: dict[str, Any] = {"prediction_id": prediction_id, "verdict": verdict}
        if correction is not None:
            body.update(self._text("correction", correction))
        self._put(Record("feedback", wall, mono, body))

    def audit(self, action: str, fields: Mapping[str, Any] | None = None) -> None:
        """Model installed/activated/rolled back, who signed it... Never dropped."""
        wall, mono = self.clock.now()
        record = self._journaled(Record("audit", wall, mono,
                                        {"action": action, **dict(fields or {})}))
        with self._lock:
            self._urgent.append(record)
            self._stats.enqueued += 1
        self._wake.set()

    def _text(self, name: str, text: str) -> dict[str, Any]:
        if not self._salt:
            return {name: text}
        digest = hmac.digest(self._salt, text.encode("utf-8"), "sha256").hex()
        return {f"{name}_sha256": digest[:32], f"{name}_len": len(text)}

    def _journaled(self, record: Record) -> Record:
        """The record as written to the journal (with its jseq; a prediction's body built
        here then), or as it is without a journal or when the write failed (counted)."""
        if self._journal is None:
            return record
        body = record.body
        if isinstance(body, Prediction):
            body = self._materialize(record).body
        text = encode_body(body)
        payload = encode(record.kind, record.wall_ns, record.mono_ns, self.clock.boot_id, text)
        return Record(record.kind, record.wall_ns, record.mono_ns, body,
                      self._journal.append(payload), encoded=text)

    def _put_internal(self, record: Record) -> None:
        """Records the writer makes itself (windows, notices) skip the bounded queue; they
        have their own bound (they pile up only while the store fails)."""
        record = self._journaled(record)
        with self._lock:
            if len(self._internal) >= self._queue_size:
                self._dropped(self._internal.popleft())
            self._internal.append(record)
            self._stats.enqueued += 1

    def _dropped(self, record: Record) -> None:              # under self._lock
        self._stats.overflow += 1
        self._handled += 1
        if record.jseq:
            self._journal_done.append(record.jseq)

    def _put(self, record: Record) -> None:
        record = self._journaled(record)
        with self._lock:
            if len(self._queue) >= self._queue_size:
                self._dropped(self._queue.popleft())
            self._queue.append(record)
            self._stats.enqueued += 1
            full = len(self._queue) >= self.settings.batch_size
        if full:
            self._wake.set()

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

    def _unwritten(self) -> int:
        with self._lock:
            return self._waiting()

    def _waiting(self) -> int:
        """Records not written yet (queued, internal, the kept batch); hold the lock."""
        return len(self._queue) + len(self._urgent) + len(self._internal) + len(self._retry)

    def stats(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(self._stats.enqueued, self._stats.written,
                                 self._stats.overflow, self._stats.write_errors,
                                 self._waiting(), self._stats.lost, self._delay)

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
            "severity": "WARNING", "event": "telemetry.recovered", "logger": __name__,
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

    def _materialize(self, record: Record) -> Record:
        """Predictions are queued as objects; their body is built here, off the frame path."""
        if not isinstance(record.body, Prediction):
            return record
        try:
            body = self._prediction_body(record.body)
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("prediction record unusable; stored as repr", extra={"error": str(exc)})
            body = {"unencodable": repr(record.body)[:500]}
        return Record(record.kind, record.wall_ns, record.mono_ns, body, record.jseq,
                      encoded=record.encoded)

    def _take(self, n: int) -> list[Record]:
        with self._lock:
            batch = [self._urgent.popleft() for _ in range(min(n, len(self._urgent)))]
            while self._internal and len(batch) < n:
                batch.append(self._internal.popleft())
            while self._queue and len(batch) < n:
                batch.append(self._queue.popleft())
        return batch

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
            "severity": "WARNING", "event": "telemetry.overflow", "logger": __name__,
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
