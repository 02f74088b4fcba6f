"""Ingest that scales out: workers on one MQTT 5 shared subscription against one PostgreSQL.
A worker killed with SIGKILL mid-stream loses nothing (a batch is acknowledged only after its
commit, so the broker keeps what was in flight in the worker's session) and stores nothing
twice (redelivered batches meet ON CONFLICT (device, seq) DO NOTHING)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from cloud_sync.benchmarks.fleet_ingest import SimulatedDevices
from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.fleet.store import open_fleet_store
from fixtures_broker import config_for
from sync_helpers import python, stop_process, wait_until

DEVICES, ROUNDS, PER_BATCH = 20, 60, 25
TOTAL = DEVICES * ROUNDS * PER_BATCH


def _worker(config, db, name):
    return python("-m", "cloud_sync.fleet.cli", "ingest", "--config", str(config), "--db", db,
                  "--worker-id", name, "--log-level", "WARNING")


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.postgres
def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(tmp_path, broker,
                                                                 postgres_url):
    config_for(tmp_path, broker, fleet={"db": postgres_url})
    config = tmp_path / "edgelens.toml"
    fleet = open_fleet_store(postgres_url)
    workers = {name: _worker(config, postgres_url, name) for name in ("w1", "w2")}
    devices = SimulatedDevices(DEVICES, 0, broker.port, connections=2)
    try:
        assert wait_until(lambda: broker.log_file.read_text().count("edgelens-fleet-w") >= 2,
                          30), broker.log_file.read_text()
        time.sleep(1.0)                          # their subscriptions follow the connect
        devices.connect()

        def stream():
            for _ in range(ROUNDS):
                for i in range(DEVICES):
                    devices.send_batch(i, PER_BATCH)
                time.sleep(0.05)
        sender = threading.Thread(target=stream)
        sender.start()
        assert wait_until(lambda: fleet.record_count() >= TOTAL // 10, 60)
        workers["w1"].send_signal(signal.SIGKILL)
        workers["w1"].wait(10)
        at_kill = fleet.record_count()
        w1_before = fleet.workers()["w1"]["messages"]
        sender.join(60)
        assert wait_until(lambda: devices.unacked == 0, 30)
        assert sum(devices.acked) == TOTAL and devices.failed == 0
        time.sleep(1.0)
        workers["w1"] = _worker(config, postgres_url, "w1")     # same id: same session
        assert wait_until(lambda: fleet.record_count() >= TOTAL, 120), fleet.record_count()
        time.sleep(1.0)                                          # nothing more arrives
    finally:
        devices.close()
        logs = {name: stop_process(proc) for name, proc in workers.items()}
    assert at_kill < TOTAL and w1_before > 0, (at_kill, w1_before)    # killed mid-stream
    for device in devices.ids:
        assert fleet.seqs(device) == list(range(1, ROUNDS * PER_BATCH + 1)), (device, logs)
    assert fleet.record_count() == TOTAL
    stats = fleet.workers()
    assert stats["w1"]["messages"] > w1_before                 # the restarted w1 took its share
    assert stats["w1"]["records"] + stats["w2"]["records"] == TOTAL, stats
    fleet.close()


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.postgres
def test_bench_ingest_reports_what_it_measured(postgres_url, capsys):
    """The scale test's own command, small: every acknowledged record is counted stored, none
    lost or twice, and the lag sample saw them."""
    assert fleet_cli.main(["bench-ingest", "--devices", "40", "--rate", "5", "--workers", "2",
                           "--seconds", "3", "--db", postgres_url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["acked_records"] > 300 and result["broker_refused_batches"] == 0
    assert result["stored_records"] == result["acked_records"]
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert result["lag_ms"]["n"] > 0 and result["lag_ms"]["p50"] > 0
    assert set(result["cpu_s"]) == {"publishers+poller (bench process)", "mosquitto",
                                    "ingest workers", "postgres"}
