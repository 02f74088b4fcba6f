"""The recorder: what the pipeline calls. Never blocks the frame path.

Every call builds a small `Record` (wall + monotonic time taken at the call) and appends it to a
bounded in-memory queue; one writer thread inserts the queue into the store in batches. When
the queue is full the oldest queued record is dropped, counted, logged (rate-limited) and the
count lands in the store's counters and in a `telemetry.overflow` log record. Audit records
are never dropped from the queue.
"""

from __future__ import annotations

import collections
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from device.errors import TelemetryError
from device.telemetry.aggregate import MetricWindow, QualityWindow
from device.telemetry.records import Clock, Record
from device.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

_LIMIT_CHECK_RECORDS = 5000   # check the disk limit after this many inserted records...
_LIMIT_CHECK_S = 5.0          # ...or this often
_PRUNE_EVERY_S = 60.0
_OVERFLOW_LOG_EVERY_S = 5.0


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str


def new_prediction_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Prediction:
    """One recognized (and maybe translated) region of one frame."""
    text: str
    confidence: float
    models: Mapping[str, ModelRef] = field(default_factory=dict)   # stage -> model
    region: tuple[int, int, int, int] | None = None                # x, y, w, h
    translation: str | None = None
    translation_source: str | None = None                          # model, cache, dictionary
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # stage -> ms
    prediction_id: str = field(default_factory=new_prediction_id)
    # shadow mode: the challenger's reading of the same line ({"version", "text",
    # "confidence", "agree", "latency_ms", ...}); its text is hashed like `text`
    shadow: Mapping[str, Any] | None = None


@dataclass
class RecorderStats:
    enqueued: int = 0
    written: int = 0
    overflow: int = 0
    write_errors: int = 0
    queued: int = 0


class Recorder:
    """Feeds the telemetry store from any thread. `Recorder.open(cfg.telemetry)` opens the
    store and starts the writer; `close()` flushes and closes."""

    def __init__(self, store: TelemetryStore | None, settings: Any, *,
                 clock: Clock | None = None):
        self.store = store
        self.settings = settings
        self.clock = clock or (store.clock if store is not None else Clock())
        self._queue: collections.deque[Record] = collections.deque()
        self._urgent: collections.deque[Record] = collections.deque()
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
        if store is not None and settings.redact_text:
            self._salt = (settings.text_salt or store.text_salt()).encode()
        self._system = _SystemSampler(store.path if store is not None else None) \
            if settings.system_metrics else None

    @classmethod
    def open(cls, settings: Any, path: str | Path | None = None, *,
             clock: Clock | None = None) -> "Recorder":
        """Open the store named by `settings.db_path` (or `path`) and start the writer."""
        if not settings.enabled:
            return cls(None, settings, clock=clock)
        store = TelemetryStore.open(path or settings.db_path, settings, clock=clock)
        recorder = cls(store, settings, clock=clock)
        recorder.start()
        return recorder

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
        (and the text hashing) is built on the writer thread, not here."""
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
        record = Record("audit", wall, mono, {"action": action, **dict(fields or {})})
        with self._lock:
            self._urgent.append(record)
            self._stats.enqueued += 1
        self._wake.set()

    def _text(self, name: str, text: str) -> dict[str, Any]:
        if not self._salt:
            return {name: text}
        digest = hmac.digest(self._salt, text.encode("utf-8"), "sha256").hex()
        return {f"{name}_sha256": digest[:32], f"{name}_len": len(text)}

    def _put_internal(self, record: Record) -> None:
        """Records the writer makes itself (windows, notices) skip the bounded queue."""
        with self._lock:
            self._urgent.append(record)
            self._stats.enqueued += 1

    def _put(self, record: Record) -> None:
        with self._lock:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._stats.overflow += 1
                self._handled += 1
            self._queue.append(record)
            self._stats.enqueued += 1
            full = len(self._queue) >= self.settings.batch_size
        if full:
            self._wake.set()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self.store is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="telemetry-writer",
                                        daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        if self.store is None or self._thread is None:
            return True
        with self._lock:
            target = self._stats.enqueued
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._handled >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """End the open metric windows, write everything queued, close the store."""
        if self.store is None:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("telemetry writer did not stop in %.1f s; %d records unwritten",
                          timeout, len(self._queue) + len(self._urgent))
                return
        else:
            self._write_pending(force_windows=True)
        self.store.close()

    def stats(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(self._stats.enqueued, self._stats.written,
                                 self._stats.overflow, self._stats.write_errors,
                                 len(self._queue) + len(self._urgent))

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        interval = self.settings.flush_interval_s
        since_check, last_check, last_prune = 0, time.monotonic(), time.monotonic()
        while True:
            stopping = self._stop.is_set()
            self._wake.wait(interval)
            self._wake.clear()
            try:
                since_check += self._write_pending(force_windows=stopping)
            except Exception:  # the writer must outlive any one bad record or batch
                log.exception("telemetry writer iteration failed; continuing")
            now = time.monotonic()
            if since_check >= _LIMIT_CHECK_RECORDS or now - last_check >= _LIMIT_CHECK_S \
                    or (stopping and since_check):
                self._guard(self.store.enforce_limit)
                since_check, last_check = 0, now
            if now - last_prune >= _PRUNE_EVERY_S:
                self._guard(lambda: self.store.prune_sent(self.settings.keep_sent_s))
                last_prune = now
            if stopping:
                break

    def _write_pending(self, force_windows: bool = False) -> int:
        """Roll finished windows into records and insert everything queued; returns count."""
        mono = time.monotonic_ns()
        if self._system is not None:
            self._system.sample(self._metrics, mono)
        self._queue_windows(mono, force_windows)
        self._report_overflow()
        written = 0
        while True:
            batch = self._take(self.settings.batch_size)
            if not batch:
                return written
            batch = [self._materialize(r) for r in batch]
            try:
                self.store.insert(batch)
                ok = True
            except TelemetryError as exc:
                log.error("telemetry write failed, %d records lost: %s", len(batch), exc)
                ok = False
            with self._done:
                if ok:
                    self._stats.written += len(batch)
                else:
                    self._stats.write_errors += len(batch)
                self._handled += len(batch)
                self._done.notify_all()
            written += len(batch)

    def _materialize(self, record: Record) -> Record:
        """Predictions are queued as objects; their body is built here, off the frame path."""
        if not isinstance(record.body, Prediction):
            return record
        try:
            body = self._prediction_body(record.body)
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("prediction record unusable (%s); stored as repr", exc)
            body = {"unencodable": repr(record.body)[:500]}
        return Record(record.kind, record.wall_ns, record.mono_ns, body)

    def _take(self, n: int) -> list[Record]:
        with self._lock:
            batch = [self._urgent.popleft() for _ in range(min(n, len(self._urgent)))]
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
        log.warning("telemetry queue full: dropped %d records (%d in total)", new, total)
        self._guard(lambda: self.store.bump({"overflow": new}))
        wall, mono = self.clock.now()
        self._put_internal(Record("log", wall, mono, {
            "severity": "WARNING", "event": "telemetry.overflow", "logger": __name__,
            "fields": {"dropped": new, "dropped_total": total}}))
        with self._done:
            self._done.notify_all()

    def _guard(self, action) -> None:
        try:
            action()
        except (TelemetryError, OSError) as exc:
            log.error("telemetry store maintenance failed: %s", exc)
        except Exception as exc:  # sqlite3 errors from maintenance: logged, loop goes on
            log.error("telemetry store maintenance failed: %r", exc)


class _SystemSampler:
    """CPU %, resident memory, disk free and temperature, once per second into gauges."""

    def __init__(self, db_path: Path | None):
        import psutil
        self._psutil = psutil
        self._process = psutil.Process()
        self._db_dir = str(Path(db_path).parent) if db_path is not None else "."
        self._last = 0
        self._has_temp = hasattr(psutil, "sensors_temperatures")
        psutil.cpu_percent(None)

    def sample(self, window: MetricWindow, mono: int) -> None:
        if mono - self._last < 1_000_000_000:
            return
        self._last = mono
        ps = self._psutil
        window.gauge("cpu_percent", ps.cpu_percent(None), mono)
        window.gauge("rss_bytes", self._process.memory_info().rss, mono)
        try:
            window.gauge("disk_free_bytes", ps.disk_usage(self._db_dir).free, mono)
        except OSError:
            pass
        if self._has_temp:
            temps = ps.sensors_temperatures() or {}
            readings = [t.current for entries in temps.values() for t in entries]
            if readings:
                window.gauge("temp_c", max(readings), mono)
            else:
                self._has_temp = False
