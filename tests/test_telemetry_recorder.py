"""The recorder: bounded queue, one writer thread, overflow counted, privacy, aggregation."""

import json
import logging
import time

from device.telemetry import (ModelRef, Prediction, Recorder, TelemetryLogHandler,
                              TelemetryStore)
from device.telemetry.aggregate import MetricWindow, QualityWindow
from fixtures_broker import config_for


def _settings(tmp_path, **telemetry):
    return config_for(tmp_path, None, telemetry=telemetry).telemetry


def _bodies(store, kind):
    return [json.loads(r.body) for r in store.records(kind)]


def test_every_record_carries_wall_monotonic_and_boot_id(tmp_path):
    s = _settings(tmp_path)
    before_wall, before_mono = time.time_ns(), time.monotonic_ns()
    recorder = Recorder.open(s)
    recorder.log_event("INFO", "pipeline.started", {"camera": "usb0"})
    recorder.audit("model_activated", {"model": "recognizer", "version": "3"})
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    records = store.records()
    assert [r.kind for r in records] == ["audit", "log"]   # audit is written first
    boot_id = open("/proc/sys/kernel/random/boot_id").read().strip()
    for r in records:
        assert r.boot_id == boot_id
        assert before_wall <= r.wall_ns <= time.time_ns()
        assert before_mono <= r.mono_ns <= time.monotonic_ns()
    assert _bodies(store, "log") == [{"severity": "INFO", "event": "pipeline.started",
                                      "logger": "", "fields": {"camera": "usb0"}}]
    store.close()


def test_overflow_drops_oldest_counts_and_says_so(tmp_path, caplog):
    s = _settings(tmp_path, queue_size=10)
    store = TelemetryStore.open(s.db_path, s)
    recorder = Recorder(store, s)            # writer not started yet: the queue fills up
    for i in range(25):
        recorder.log_event("INFO", "frame", {"i": i})
    recorder.audit("model_installed", {"model": "m"})   # audit is never dropped
    assert recorder.stats().overflow == 15
    recorder.start()
    assert recorder.flush(5)
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    logs = _bodies(store, "log")
    assert [b["fields"]["i"] for b in logs if b["event"] == "frame"] == list(range(15, 25))
    assert [b for b in logs if b["event"] == "telemetry.overflow"] == [
        {"severity": "WARNING", "event": "telemetry.overflow",
         "logger": "device.telemetry.recorder", "fields": {"dropped": 15, "dropped_total": 15}}]
    assert _bodies(store, "audit") == [{"action": "model_installed", "model": "m"}]
    assert store.counters() == {"overflow": 15}
    assert 15 in [r.dropped for r in caplog.records
                  if r.getMessage() == "telemetry queue full: records dropped"]
    store.close()


def test_calls_never_block_while_the_writer_is_stuck(tmp_path):
    s = _settings(tmp_path, queue_size=1000)
    recorder = Recorder.open(s)
    with recorder.store._lock:               # the writer cannot insert anything now
        start = time.perf_counter()
        for i in range(20_000):
            recorder.log_event("INFO", "frame", {"i": i})
            recorder.count("frames_captured")
        elapsed = time.perf_counter() - start
    print(f"20k calls with the writer stuck: {elapsed:.2f} s")   # a speed, not a verdict
    # they returned while the writer could not insert: what did not fit was dropped, not waited
    assert recorder.stats().overflow >= 19_000 - 1000
    recorder.close()


def test_close_writes_everything_in_batches(tmp_path):
    s = _settings(tmp_path, batch_size=100)
    recorder = Recorder.open(s)
    for i in range(5000):
        recorder.log_event("DEBUG", "tick", {"i": i})
    recorder.close()
    assert recorder.stats().written == 5000 and recorder.stats().overflow == 0
    store = TelemetryStore.open(s.db_path, s)
    assert [b["fields"]["i"] for b in _bodies(store, "log")] == list(range(5000))
    store.close()


def test_redacted_text_is_a_salted_hash_and_a_length(tmp_path):
    s = _settings(tmp_path, redact_text=True, text_salt="pepper")
    recorder = Recorder.open(s)
    p = Prediction(text="Ausgang", confidence=0.91234,
                   models={"recognizer": ModelRef("crnn", "3"), "translator": ModelRef("mt", "1")},
                   region=(10, 20, 200, 40), translation="Exit", translation_source="cache",
                   latency_ms={"recognize": 12.3456}, prediction_id="p-1")
    assert recorder.prediction(p) == "p-1"
    recorder.prediction(Prediction(text="Ausgang", confidence=0.5, prediction_id="p-2"))
    recorder.feedback("p-1", "wrong", correction="Way out")
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    first, second = _bodies(store, "prediction")
    assert first == {"prediction_id": "p-1", "confidence": 0.9123,
                     "models": {"recognizer": {"name": "crnn", "version": "3"},
                                "translator": {"name": "mt", "version": "1"}},
                     "region": [10, 20, 200, 40], "translation_source": "cache",
                     "latency_ms": {"recognize": 12.346},
                     "text_sha256": first["text_sha256"], "text_len": 7,
                     "translation_sha256": first["translation_sha256"], "translation_len": 4}
    assert len(first["text_sha256"]) == 32
    assert second["text_sha256"] == first["text_sha256"]         # same salt, same text
    raw = b"".join(r.body.encode() for r in store.records())
    assert b"Ausgang" not in raw and b"Exit" not in raw and b"Way out" not in raw
    [fb] = _bodies(store, "feedback")
    assert fb["prediction_id"] == "p-1" and fb["correction_len"] == 7
    store.close()


def test_text_is_kept_when_redaction_is_off(tmp_path):
    s = _settings(tmp_path, redact_text=False)
    recorder = Recorder.open(s)
    recorder.prediction(Prediction(text="Ausgang", confidence=0.9, translation="Exit",
                                   prediction_id="p"))
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    [body] = _bodies(store, "prediction")
    assert (body["text"], body["translation"]) == ("Ausgang", "Exit")
    store.close()


def test_metric_window_summarizes_one_second():
    w = MetricWindow(1.0)
    base = 50_000_000_000
    w.count("frames_captured", 1, base)
    for i in range(1, 101):
        w.observe("latency_ms.recognize", float(i), base + i * 1000)
        w.count("frames_captured", 1, base + i * 1000)
    w.gauge("cpu_percent", 42.0, base + 5)
    assert w.roll(base + 999_000_000) == []
    [(start, body)] = w.roll(base + 1_000_000_001)
    assert start == base
    assert body == {"window_s": 1.0, "counts": {"frames_captured": 101},
                    "stats": {"latency_ms.recognize": {"n": 100, "p50": 50.5, "p95": 95.05,
                                                       "max": 100.0}},
                    "gauges": {"cpu_percent": 42.0}}


def test_quality_window_aggregates_a_minute_of_frames():
    w = QualityWindow(60.0)
    base = 120_000_000_000
    for i in range(10):
        w.frame(brightness=0.5, contrast=0.25, blur=100.0 + i, mono_ns=base + i)
        w.confidence(i / 10, base + i)
    [(start, body)] = w.roll(base, force=True)
    assert start == base
    assert body["image"]["brightness"] == {"n": 10, "mean": 0.5, "p5": 0.5, "p50": 0.5,
                                           "p95": 0.5}
    assert body["confidence"]["hist"] == [1] * 10
    assert body["confidence"]["n"] == 10


def test_recorder_writes_metric_and_quality_records_on_close(tmp_path):
    s = _settings(tmp_path)
    recorder = Recorder.open(s)
    for _ in range(30):
        recorder.count("frames_captured")
        recorder.observe("latency_ms.detect", 8.0)
        recorder.frame_quality(0.4, 0.3, 120.0)
        recorder.confidence(0.95)
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    metrics = _bodies(store, "metric")
    assert sum(m["counts"].get("frames_captured", 0) for m in metrics) == 30
    [quality] = _bodies(store, "quality")
    assert quality["confidence"]["n"] == 30 and quality["image"]["blur"]["mean"] == 120.0
    store.close()


def test_log_handler_records_structured_events(tmp_path):
    s = _settings(tmp_path)
    recorder = Recorder.open(s)
    logger = logging.getLogger("edgelens.test.handler")
    logger.propagate = False
    logger.addHandler(TelemetryLogHandler(recorder, logging.INFO))
    logger.setLevel(logging.DEBUG)
    logger.debug("not recorded")
    logger.warning("frame %d late", 7, extra={"event": "frame.late",
                                               "fields": {"late_ms": 12}})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("recognizer failed")
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    late, failed = _bodies(store, "log")
    assert late == {"severity": "WARNING", "event": "frame.late",
                    "logger": "edgelens.test.handler",
                    "fields": {"late_ms": 12, "message": "frame 7 late"}}
    assert failed["severity"] == "ERROR" and failed["event"] == "recognizer failed"
    assert "ValueError: boom" in failed["fields"]["exception"]
    # errors go out before other logs
    assert [r.kind for r in store.unsent(1, 1 << 20)] == ["log"]
    assert json.loads(store.unsent(1, 1 << 20)[0].body)["severity"] == "ERROR"
    store.close()


def test_disabled_telemetry_accepts_calls_and_writes_nothing(tmp_path):
    s = _settings(tmp_path, enabled=False)
    recorder = Recorder.open(s)
    recorder.log_event("INFO", "x")
    recorder.count("frames_captured")
    recorder.close()
    assert not (tmp_path / "telemetry.sqlite").exists()


def test_a_bad_prediction_does_not_stop_the_writer(tmp_path):
    s = _settings(tmp_path)
    recorder = Recorder.open(s)
    recorder.prediction(Prediction(text="x", confidence=None, prediction_id="bad"))
    recorder.log_event("INFO", "still.running")
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    assert "unencodable" in _bodies(store, "prediction")[0]
    assert _bodies(store, "log")[0]["event"] == "still.running"
    store.close()


def test_the_writer_keeps_the_store_under_its_limit(tmp_path):
    s = _settings(tmp_path, max_bytes=1024 * 1024, queue_size=100_000)
    recorder = Recorder.open(s)
    for i in range(12_000):
        recorder.metric({"i": i, "pad": "m" * 200})
        if i % 8 == 0:
            recorder.log_event("INFO", "frame", {"i": i, "pad": "l" * 200})
    recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    assert store.used_bytes() <= 1024 * 1024
    counters = store.counters()
    assert counters["evicted.metric"] > 0 and "evicted.log" not in counters
    assert store.backlog()["log"] == 1500 + len([b for b in _bodies(store, "log")
                                                 if b["event"] == "telemetry.evicted"])
    store.close()
