"""Fleet ingestion against a real broker: shared subscriptions split the load, duplicates never
count twice, bad messages are dropped and the worker keeps going, clocks are corrected. Each
test runs on both fleet stores (`fleet_db`/`fleet_store`: SQLite, then PostgreSQL)."""

import json
import time
import zlib

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync.fleet.store import open_fleet_store
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.telemetry import Recorder
from device.telemetry.records import StoredRecord
from fixtures_broker import config_for
from sync_helpers import (ingest_process, produce_logs, run_agent, run_ingest, stop_process,
                          wait_until)


def _records(n, start=1, boot="b1", kind="log", body=None):
    text = json.dumps(body or {"severity": "INFO", "event": "e"})
    return [StoredRecord(s, kind, 1_000 + s, 500 + s, boot, text)
            for s in range(start, start + n)]


def test_same_batch_twice_is_stored_once(fleet_store):
    store = fleet_store
    payload = batch_codec.encode("dev-a", "b1", (2_000, 1_000), _records(5))
    batch = batch_codec.decode(payload, 1 << 20)
    assert store.insert_batch(batch, 10_000, "w").inserted == 5
    again = store.insert_batch(batch, 10_001, "w")
    assert (again.inserted, again.duplicates) == (0, 5)
    assert store.seqs("dev-a") == [1, 2, 3, 4, 5]
    assert store.workers() == {"w": {"messages": 2, "records": 5, "duplicates": 5,
                                     "dropped": 0}}


def test_a_large_batch_overlapping_a_stored_one_adds_only_the_new_records(fleet_store):
    """250 records (PostgreSQL takes batches this large by COPY, small ones by INSERT), 50 of
    them stored before by a small batch: exactly 200 more, each once."""
    store = fleet_store
    first = batch_codec.decode(batch_codec.encode("dev-a", "b1", (2_000, 1_000),
                                                  _records(50)), 1 << 20)
    big = batch_codec.decode(batch_codec.encode("dev-a", "b1", (2_000, 1_000),
                                                _records(250)), 1 << 20)
    assert store.insert_batch(first, 10_000, "w").inserted == 50
    result = store.insert_batch(big, 10_001, "w")
    assert (result.inserted, result.duplicates) == (200, 50)
    assert store.seqs("dev-a") == list(range(1, 251))
    assert store.insert_batch(big, 10_002, "w").duplicates == 250


def test_records_are_redated_from_the_monotonic_clock(fleet_store):
    """A device whose wall clock is a day behind: fleet time = receive time - age by the
    monotonic clock of that boot."""
    store = fleet_store
    day = 86_400 * 10**9
    true_now = 1_800_000_000 * 10**9
    mono_now = 5_000 * 10**9
    rec = StoredRecord(1, "log", true_now - day - 60 * 10**9, mono_now - 60 * 10**9, "b1", "{}")
    batch = batch_codec.decode(batch_codec.encode("dev-a", "b1", (true_now - day, mono_now),
                                                  [rec]), 1 << 20)
    store.insert_batch(batch, true_now, "w")
    assert store.execute("SELECT ts_ns FROM records") == [(true_now - 60 * 10**9,)]


@pytest.mark.broker
@pytest.mark.slow
def test_two_workers_share_the_load_and_the_total_is_exact(tmp_path, broker, fleet_db):
    cfg = config_for(tmp_path, broker, sync={"batch_records": 20, "max_inflight": 16})
    db = fleet_db
    open_fleet_store(db).close()
    workers = [ingest_process(tmp_path / "edgelens.toml", db, name) for name in ("w1", "w2")]
    try:
        assert wait_until(lambda: broker.log_file.read_text().count(
            "edgelens-fleet-w") >= 2, 20), broker.log_file.read_text()
        time.sleep(0.5)                         # their subscriptions are in place
        recorder = Recorder.open(cfg.telemetry)
        for i in range(4000):
            recorder.log_event("INFO", "frame.done", {"i": i})
        recorder.close()
        agent = run_agent(cfg)
        fleet = open_fleet_store(db)
        assert wait_until(lambda: fleet.record_count() >= 4000, 30), fleet.record_count()
        agent.stop()
    finally:
        logs = [stop_process(w) for w in workers]
    stats = fleet.workers()
    assert set(stats) == {"w1", "w2"}, logs
    assert stats["w1"]["messages"] > 20 and stats["w2"]["messages"] > 20
    assert stats["w1"]["records"] + stats["w2"]["records"] == 4000
    assert fleet.seqs("glasses-1") == list(range(1, 4001))
    fleet.close()


@pytest.mark.broker
def test_bad_messages_are_dropped_and_ingest_keeps_going(tmp_path, broker, fleet_db):
    cfg = config_for(tmp_path, broker, fleet={"max_message_bytes": 64 * 1024,
                                              "max_batch_bytes": 1024 * 1024, "db": fleet_db})
    ingest, fleet = run_ingest(cfg)
    sender = MqttLink(LinkSettings(port=broker.port, client_id="attacker"))
    sender.start()
    assert sender.wait_connected(10)
    topic = "edgelens/glasses-1/telemetry"
    bad = [
        (topic, b"not zlib at all"),
        (topic, zlib.compress(b"{not json")),
        (topic, zlib.compress(json.dumps({"v": 99}).encode())),
        (topic, zlib.compress(b"\0" * (50 * 1024 * 1024), 9)),            # compression bomb
        (topic, b"x" * (100 * 1024)),                                     # oversized
        (topic, batch_codec.encode("someone-else", "b", (1, 1), _records(1))),   # wrong device
        ("edgelens/glasses-1/status", b"\xff\xfe not json"),
        ("edgelens/glasses-1/availability", b"maybe"),
    ]
    for t, payload in bad:
        sender.publish(t, payload, qos=1)
    # a record of an unknown kind is refused, not its message
    sender.publish(topic, zlib.compress(json.dumps({
        "v": 1, "device": "glasses-1", "boot_id": "b", "sent_wall_ns": 1, "sent_mono_ns": 1,
        "records": [[1, "nope", 1, 1, "b", {}]]}).encode()), qos=1)
    sender.publish(topic, batch_codec.encode("glasses-1", "b1", (1, 1), _records(3)), qos=1)
    try:
        assert wait_until(lambda: fleet.record_count() == 3, 15)
        assert wait_until(lambda: fleet.workers()["w1"]["dropped"] == len(bad), 5), \
            fleet.workers()
        assert fleet.refused()["glasses-1"]["record.schema"] == 1
        assert ingest.thread.is_alive() and ingest.worker.link.connected
    finally:
        sender.stop()
        ingest.stop()
    fleet.close()


@pytest.mark.broker
def test_status_rows_show_rates_latency_misses_models_and_errors(tmp_path, broker, fleet_db):
    cfg = config_for(tmp_path, broker, fleet={"db": fleet_db})
    ingest, fleet = run_ingest(cfg)
    recorder = Recorder.open(cfg.telemetry)
    for _ in range(10):
        recorder.metric({"window_s": 1.0,
                         "counts": {"frames_captured": 30, "deadline_misses": 3},
                         "stats": {"latency_ms.recognize": {"n": 30, "p50": 20.0, "p95": 40.0,
                                                            "max": 50.0},
                                   "frame_path": {"n": 30, "p50": 5.0, "p95": 9.5, "max": 12.0}},
                         "gauges": {}})
    from device.telemetry import ModelRef, Prediction
    recorder.prediction(Prediction("Ausgang", 0.9, {"recognizer": ModelRef("crnn", "3")}))
    recorder.log_event("ERROR", "camera.lost")
    recorder.log_event("ERROR", "camera.lost")
    recorder.close()
    agent = run_agent(cfg)
    try:
        assert wait_until(lambda: fleet.record_count() == 13, 15)
        assert wait_until(lambda: fleet.device_rows(time.time_ns(), 300)[0].backlog == 0, 10)
        [row] = fleet.device_rows(time.time_ns(), 300)
    finally:
        agent.stop()
        ingest.stop()
    assert row.device == "glasses-1" and row.online is True
    assert row.frames_per_s == 30.0 and row.miss_rate == 0.1
    assert row.p95_ms == {"frame_path": 9.5, "recognize": 40.0}
    assert row.models == {"recognizer": "crnn@3"}
    assert row.errors_last_hour == 2
    assert row.last_seen_age_s is not None and row.last_seen_age_s < 30
    fleet.close()


@pytest.mark.broker
def test_records_sent_while_the_ingest_worker_is_down_wait_in_its_session(tmp_path, broker,
                                                                         fleet_db):
    cfg = config_for(tmp_path, broker, fleet={"db": fleet_db})
    ingest, fleet = run_ingest(cfg)
    ingest.stop()                              # persistent session stays at the broker
    _produce_logs(cfg, 300)
    agent = run_agent(cfg)
    try:
        assert wait_until(lambda: agent.worker.stats.acked_records == 300, 15)
        assert fleet.record_count() == 0
        fleet.close()
        ingest, fleet = run_ingest(cfg)        # same worker id: same session
        assert wait_until(lambda: fleet.record_count() == 300, 15), fleet.record_count()
        ingest.stop()
    finally:
        agent.stop()
    assert fleet.seqs("glasses-1") == list(range(1, 301))
    fleet.close()


_produce_logs = produce_logs
