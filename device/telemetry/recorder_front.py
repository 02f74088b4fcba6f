"""The recorder's front: the calls the pipeline makes (counters, observations, predictions,
feedback, audit, log events) and what they do on the caller's thread - aggregate metrics and
frame quality into per-second and per-minute windows, build the record (with the wearer's text
hashed when it is redacted), journal it, and append it to the bounded in-memory queues the
writer thread (device/telemetry/recorder_writer.py) takes batches from. A full queue drops its
oldest record and counts it; audit records and the writer's own records have queues of their
own. Never blocks the frame path.
"""

from __future__ import annotations

import collections
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from device.telemetry.aggregate import MetricWindow, QualityWindow
from device.telemetry.journal import Journal, encode
from device.telemetry.records import Clock, Prediction, Record
from device.telemetry.store_disk import encode_body

log = logging.getLogger(__name__)


@dataclass
class RecorderStats:
    enqueued: int = 0
    written: int = 0
    overflow: int = 0
    write_errors: int = 0       # failed attempts to write (or open) the store
    queued: int = 0
    lost: int = 0               # records still unwritten when the recorder closed
    retry_in_s: float = 0.0     # current back-off delay; 0 while the store takes writes


class RecorderFront:
    """The queueing half of `Recorder` (device/telemetry/recorder.py): safe to call from any
    thread; the writer half takes what is queued here."""

    def __init__(self, settings: Any, clock: Clock, journal: Journal | None):
        self._journal = journal
        self._journal_done: list[int] = []      # jseqs dropped from a full queue
        self.settings = settings
        self.clock = clock
        self._queue: collections.deque[Record] = collections.deque()
        self._urgent: collections.deque[Record] = collections.deque()    # audit: never dropped
        self._internal: collections.deque[Record] = collections.deque()  # windows, notices
        self._retry: list[Record] = []          # the batch the store did not take
        self._queue_size = settings.queue_size
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stats = RecorderStats()
        self._handled = 0
        self._metrics = MetricWindow(1.0)
        self._quality = QualityWindow(60.0)
        self._salt = b""                    # set by the recorder when text is redacted

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

    # --- what the writer takes --------------------------------------------------------------

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

    def _unwritten(self) -> int:
        with self._lock:
            return self._waiting()

    def _waiting(self) -> int:
        """Records not written yet (queued, internal, the kept batch); hold the lock."""
        return len(self._queue) + len(self._urgent) + len(self._internal) + len(self._retry)
