"""The sync agent against a real broker: bad inbound messages, no subscriber, bandwidth cap."""

import json
import os
import time

import pytest

from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.sync_outbox import TokenBucket
from device.telemetry import Recorder, TelemetryStore
from fixtures_broker import config_for
from sync_helpers import run_agent, run_ingest, wait_until

pytestmark = pytest.mark.broker


def _produce(cfg, n, pad=0):
    recorder = Recorder.open(cfg.telemetry)
    for i in range(n):
        recorder.log_event("INFO", "frame.done", {"i": i, "pad": os.urandom(pad).hex()})
    recorder.close()


def test_bad_inbound_messages_are_dropped_and_the_agent_keeps_syncing(tmp_path, broker):
    cfg = config_for(tmp_path, broker, sync={"max_inbound_bytes": 1024})
    ingest, fleet = run_ingest(cfg)
    agent = run_agent(cfg)
    sender = MqttLink(LinkSettings(port=broker.port, client_id="fleet-operator"))
    sender.start()
    try:
        assert sender.wait_connected(10) and agent.worker.link.wait_connected(10)
        time.sleep(0.3)
        cmd = "edgelens/glasses-1/cmd/"
        sender.publish(cmd + "ping", b"{}")                       # fine
        sender.publish(cmd + "ping", b"\xff not json")            # malformed
        sender.publish(cmd + "ping", b"[1, 2]")                   # not an object
        sender.publish(cmd + "self-destruct", b"{}")              # unknown command
        sender.publish(cmd + "ping", json.dumps({"x": "y" * 5000}).encode())   # oversized
        stats = agent.worker.stats
        assert wait_until(lambda: stats.inbound_dropped == 4 and stats.inbound_handled == 1, 10)
        _produce(cfg, 100)
        assert wait_until(lambda: fleet.record_count() == 100, 15)
        assert agent.thread.is_alive()
    finally:
        sender.stop()
        agent.stop()
        ingest.stop()


def test_nothing_is_marked_sent_while_no_fleet_ingest_listens(tmp_path, broker):
    cfg = config_for(tmp_path, broker)
    _produce(cfg, 50)
    agent = run_agent(cfg)
    try:
        assert wait_until(lambda: agent.worker.stats.refused_batches >= 2, 10)
        store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry)
        assert store.backlog() == {"log": 50}
        ingest, fleet = run_ingest(cfg)        # now someone listens
        assert wait_until(lambda: fleet.record_count() == 50, 15)
        assert wait_until(lambda: store.backlog() == {}, 5)
        store.close()
        ingest.stop()
    finally:
        agent.stop()


def test_bandwidth_cap_holds(tmp_path, broker):
    cap = 20_000
    cfg = config_for(tmp_path, broker, sync={"max_bytes_per_s": cap, "batch_records": 20})
    _produce(cfg, 2000, pad=40)                # ~80 bytes of noise each: ~170 KB compressed
    ingest, fleet = run_ingest(cfg)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        start = time.monotonic()
        time.sleep(3.0)
        sent = agent.worker.stats.sent_bytes
        elapsed = time.monotonic() - start
    finally:
        agent.stop()
        ingest.stop()
    assert sent > 0                                    # it sends (how fast: bench sync)
    assert sent <= cap * (elapsed + 1.0) + 5000        # one second of burst + one batch
    assert fleet.record_count() < 2000


class WaitedClock:
    """A clock that moves only when the bucket waits (the stop event's `wait`), so pacing is
    checked exactly, whatever the speed of the machine."""

    def __init__(self):
        self.now, self.waits, self.stopped = 100.0, 0, False

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += max(seconds, 1e-6)        # as a real wait, it takes at least a microsecond
        self.waits += 1
        return self.stopped

    def is_set(self) -> bool:
        return self.stopped


def test_token_bucket_without_cap_never_waits():
    clock = WaitedClock()
    bucket = TokenBucket(0, clock)
    assert all(bucket.wait(10**9, clock) for _ in range(1000))
    assert (clock.now, clock.waits) == (100.0, 0)


def test_token_bucket_paces_and_stops():
    clock = WaitedClock()
    bucket = TokenBucket(100_000, clock)
    for _ in range(30):
        assert bucket.wait(10_000, clock)     # 300 KB at 100 KB/s with 100 KB of burst
    assert clock.now - 100.0 == pytest.approx(2.0, abs=1e-3)
    clock.stopped = True
    assert bucket.wait(10**6, clock) is False


def test_mqtt_3_1_1_brokers_work_too(tmp_path, broker):
    cfg = config_for(tmp_path, broker, mqtt={"protocol": "3.1.1"})
    ingest, fleet = run_ingest(cfg)
    _produce(cfg, 200)
    agent = run_agent(cfg)
    try:
        assert wait_until(lambda: fleet.record_count() == 200, 15)
    finally:
        agent.stop()
        ingest.stop()
    assert fleet.seqs("glasses-1") == list(range(1, 201))
