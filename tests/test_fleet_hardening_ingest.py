"""Issue 11 on the fleet's ingest side: everything a device sends is hostile. Malformed records
are refused one by one and counted, the rest is stored; a bad message costs one log line, not a
traceback; `edgelens-fleet status` renders every device whatever rows the database holds."""

from __future__ import annotations

import json
import logging
import time
import zlib

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.batch import Batch
from cloud_sync.fleet.acl import load_groups, render_acl
from cloud_sync.errors import PayloadError, SyncError
from cloud_sync.fleet.store import open_fleet_store
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.telemetry import Recorder
from device.telemetry.records import StoredRecord
from fixtures_broker import config_for
from sync_helpers import run_agent, run_ingest, wait_until

NOW = time.time_ns()
GOOD_METRIC = {"window_s": 1.0, "counts": {"frames_captured": 30, "deadline_misses": 3},
               "stats": {"latency_ms.recognize": {"n": 30, "p50": 20.0, "p95": 40.0}},
               "gauges": {}}
GOOD_PREDICTION = {"models": {"recognizer": {"name": "crnn", "version": "3"}}}


def _rec(seq, kind, body, wall=None, mono=None):
    text = body if isinstance(body, str) else json.dumps(body)
    return StoredRecord(seq, kind, NOW if wall is None else wall, 500 + seq if mono is None
                        else mono, "b1", text)


def _batch(device, records):
    return batch_codec.decode(batch_codec.encode(device, "b1", (NOW, 10_000), records), 1 << 24)


def _raw_batch(device, records):
    """A Batch as a decoder might let it through: the store checks it again itself."""
    return Batch(device, "b1", NOW, 10_000, [(r.seq, r.kind, r.wall_ns, r.mono_ns, r.boot_id,
                                              json.loads(r.body)) for r in records])


def test_bad_records_are_refused_and_counted_and_the_rest_is_stored(fleet_store):
    store = fleet_store
    records = [
        _rec(1, "metric", GOOD_METRIC),
        _rec(-5, "log", {"severity": "INFO"}),                            # negative seq
        _rec(2**70, "log", {"severity": "INFO"}),                         # not a 64-bit seq
        _rec(3, "log", '{"severity":"ERROR","fields":{"x":NaN}}'),        # NaN: not JSON
        _rec(4, "metric", {**GOOD_METRIC, "window_s": "one"}),
        _rec(5, "metric", {**GOOD_METRIC, "stats": {"frame_path": {"n": 3}}}),   # no p95
        _rec(6, "prediction", {"models": [1]}),
        _rec(7, "log", {"severity": "INFO"}, wall=-1),                    # clock out of range
        _rec(8, "prediction", GOOD_PREDICTION),
    ]
    result = store.insert_batch(_raw_batch("dev-a", records), NOW, "w")
    assert (result.inserted, result.duplicates) == (2, 0)
    assert result.refused == {"record.seq": 2, "record.non_finite": 1, "metric.schema": 2,
                              "prediction.schema": 1, "record.clock": 1}
    assert store.seqs("dev-a") == [1, 8]
    assert store.refused() == {"dev-a": result.refused}
    [row] = store.device_rows(NOW + 10**9, 300)
    assert row.p95_ms == {"recognize": 40.0} and row.models == {"recognizer": "crnn@3"}


def test_text_postgresql_cannot_hold_is_refused_on_both_stores(fleet_store):
    """A boot id with a NUL or a lone surrogate (JSON's \\u0000 and \\ud800 carry them) is
    refused and counted, on SQLite as on PostgreSQL, whose text holds neither; the batch's
    other records are stored."""
    store = fleet_store
    batch = Batch("dev-a", "b1", NOW, 10_000, [
        (1, "log", NOW, 501, "b\x00oot", {"severity": "INFO"}),
        (2, "log", NOW, 502, "b\ud800", {"severity": "INFO"}),
        (3, "log", NOW, 503, "b1", {"severity": "ERROR", "text": "nul \x00 in a body"})])
    result = store.insert_batch(batch, NOW, "w")
    assert (result.inserted, result.refused) == (1, {"record.boot_id": 2})
    assert store.seqs("dev-a") == [3]
    [row] = store.device_rows(NOW, 300)        # the body's \u0000 does not hide its severity
    assert row.errors_last_hour == 1
    with pytest.raises(PayloadError, match="NUL or a lone surrogate"):
        store.insert_batch(Batch("dev-a", "\x00", NOW, 10_000, []), NOW, "w")


def test_status_renders_every_device_whatever_rows_the_database_holds(fleet_db, capsys):
    """Rows stored before the checks existed (or by another writer): one odd record must not
    take `edgelens-fleet status` down for the whole fleet; each view shows what is valid."""
    db = fleet_db
    store = open_fleet_store(db)
    store.insert_batch(_batch("dev-a", [_rec(1, "metric", GOOD_METRIC),
                                        _rec(2, "prediction", GOOD_PREDICTION),
                                        _rec(3, "log", {"severity": "ERROR"})]), NOW, "w")
    store.insert_batch(_batch("dev-b", [_rec(1, "log", {"severity": "INFO"})]), NOW, "w")
    bad = [("metric", json.dumps({**GOOD_METRIC, "window_s": "one"})),
           ("metric", json.dumps({**GOOD_METRIC, "stats": {"frame_path": {"n": 3}}})),
           ("metric", json.dumps({**GOOD_METRIC, "counts": {"frames_captured": "many"}})),
           ("prediction", json.dumps({"models": [1]})),
           ("prediction", json.dumps({"models": {"recognizer": "crnn"}})),
           ("log", '{"severity":"ERROR","fields":{"x":NaN}}'),
           ("log", "not json at all")]
    for seq, (kind, body) in enumerate(bad, start=10):
        store.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                      ["dev-a", seq, kind, NOW, 1, "b1", NOW, NOW, body])
    store.execute("UPDATE devices SET status = ? WHERE device = 'dev-b'",
                  ['{"backlog_total": "lots"}'])
    store.close()
    assert fleet_cli.main(["status", "--db", str(db), "--json"]) == 0
    rows = {r["device"]: r for r in json.loads(capsys.readouterr().out)}
    a = rows["dev-a"]
    assert a["p95_ms"] == {"recognize": 40.0} and a["frames_per_s"] == 30.0
    assert a["models"] == {"recognizer": "crnn@3"} and a["errors_last_hour"] == 1
    assert a["records"] == 3 + len(bad)
    assert rows["dev-b"]["backlog"] is None and rows["dev-b"]["records"] == 1
    assert fleet_cli.main(["status", "--db", str(db)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


@pytest.mark.broker
def test_the_devices_own_nan_is_refused_at_ingest_and_status_still_works(tmp_path, broker,
                                                                         capsys, fleet_db):
    """A NaN that the device's own Recorder.log_event wrote (Python's json writes it; JSON has
    no NaN) arrives through the real sync path; that record is refused, the rest stored."""
    cfg = config_for(tmp_path, broker, fleet={"db": fleet_db})
    ingest, fleet = run_ingest(cfg)
    recorder = Recorder.open(cfg.telemetry)
    recorder.log_event("ERROR", "sensor.read", {"value": float("nan")})
    recorder.log_event("ERROR", "camera.lost")
    recorder.metric({**GOOD_METRIC, "window_s": float("inf")})
    recorder.close()
    agent = run_agent(cfg)
    try:
        assert wait_until(lambda: agent.worker.stats.acked_records == 3, 15)
        assert wait_until(lambda: fleet.refused().get("glasses-1", {}) ==
                          {"record.non_finite": 1, "metric.schema": 1}, 10), fleet.refused()
    finally:
        agent.stop()
        ingest.stop()
    assert fleet.record_count() == 1
    fleet.close()
    assert fleet_cli.main(["status", "--db", str(cfg.fleet.db), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["errors_last_hour"] == 1


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


@pytest.mark.broker
def test_each_bad_message_is_one_log_line_without_a_traceback(tmp_path, broker, caplog,
                                                              fleet_db):
    cfg = config_for(tmp_path, broker, fleet={"max_message_bytes": 4 * 1024 * 1024,
                                              "db": fleet_db})
    ingest, fleet = run_ingest(cfg)
    sender = MqttLink(LinkSettings(port=broker.port, client_id="attacker"))
    sender.start()
    assert sender.wait_connected(10)
    telemetry = "edgelens/glasses-1/telemetry"

    def raw_batch(records):
        return zlib.compress(json.dumps({"v": 1, "device": "glasses-1", "boot_id": "b",
                                         "sent_wall_ns": NOW, "sent_mono_ns": 1,
                                         "records": records}).encode())
    bad_messages = [
        (telemetry, zlib.compress(_deep(100_000))),                      # was RecursionError
        (telemetry, zlib.compress(json.dumps({"v": 1, "device": "glasses-1", "boot_id": "b",
                                              "sent_wall_ns": 2**80, "sent_mono_ns": 1,
                                              "records": []}).encode())),
        ("edgelens/glasses-1/status", _deep(100_000)),                   # was RecursionError
        ("edgelens/glasses-1/status", b'{"backlog_total": NaN}'),
        ("edgelens/glasses-1/status", b'{"backlog_total": "abc"}'),
        ("edgelens/glasses-1/status", b'["not", "an", "object"]'),
    ]
    # Mosquitto itself refuses control characters in topics; another broker may not, so these
    # go straight to the worker's handler: a device id with a trailing newline is no device id
    unrouted = [("edgelens/glasses-1\n/status", b'{"backlog_total": 1}'),
                ("edgelens/glasses-1\n/telemetry",
                 batch_codec.encode("glasses-1\n", "b", (NOW, 1), [_rec(1, "log", {})]))]
    caplog.set_level(logging.INFO)
    try:
        for topic, payload in bad_messages:
            sender.publish(topic, payload, qos=1)
        for topic, payload in unrouted:
            assert ingest.worker._handle(topic, payload, None) is True
        bad_messages += unrouted
        sender.publish(telemetry, raw_batch([[2**70, "log", 1, 1, "b", {}]]),   # a record refused
                       qos=1)
        sender.publish(telemetry, raw_batch([[-1, "log", NOW, 1, "b", {}],
                                             [1, "log", NOW, 1, "b", {"severity": "INFO"}]]),
                       qos=1)
        assert wait_until(lambda: fleet.record_count() == 1, 15)
        assert wait_until(lambda: fleet.workers()["w1"]["dropped"] == len(bad_messages), 10), \
            (fleet.workers(), [r.getMessage()[:100] for r in caplog.records])
        assert ingest.thread.is_alive() and ingest.worker.link.connected
    finally:
        sender.stop()
        ingest.stop()
    assert fleet.seqs("glasses-1") == [1]
    devices = [r.device for r in fleet.device_rows(time.time_ns(), 300)]
    assert devices == ["glasses-1"]
    assert fleet.refused()["glasses-1"] == {"message.telemetry": 2, "message.status": 4,
                                            "record.seq": 2}
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks[0].getMessage()
    dropped = [r for r in caplog.records if r.getMessage().startswith("message dropped")]
    assert len(dropped) == len(bad_messages)
    assert all("\n" not in r.reason.rstrip("\n") or "glasses-1\\n" in r.reason
               for r in dropped)
    fleet.close()


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nlab = ["glasses-1\\n"]\n')
    with pytest.raises(SyncError, match="not usable in a topic"):
        load_groups(groups)
    groups.write_text('[groups]\n"lab\\n" = ["glasses-1"]\n')
    with pytest.raises(SyncError, match="group 'lab\\\\n'"):
        load_groups(groups)
    with pytest.raises(SyncError, match="cannot go into the ACL"):
        render_acl("edgelens", {"lab": ["glasses-1\ntopic readwrite #"]})
