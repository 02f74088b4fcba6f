"""End to end with real processes and a real broker: offline production, outage, recovery,
kill -9 of the sync agent at random points. The fleet must hold every record exactly once."""

import os
import random
import signal
import time

import pytest

from device.telemetry import Recorder, TelemetryStore
from fixtures_broker import config_for
from sync_helpers import (python, run_agent, run_ingest, stop_process, sync_agent_process,
                          wait_until)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_records_made_while_the_broker_is_down_arrive_once_when_it_returns(tmp_path, broker):
    cfg = config_for(tmp_path, broker, sync={"batch_records": 200})
    config = tmp_path / "edgelens.toml"
    ingest, fleet = run_ingest(cfg)            # its persistent session outlives the outage
    broker.stop()                              # outage begins
    agent = sync_agent_process(config)
    producer = python("tests/telemetry_producer.py", str(config), "3000", "3000")
    try:
        assert producer.wait(60) == 0, producer.stdout.read().decode()
        assert fleet.record_count() == 0
        broker.start()                         # back online
        assert wait_until(lambda: fleet.record_count() >= 3001, 30), fleet.record_count()
        broker.restart()                       # a second, short outage while idle
        time.sleep(0.5)
        assert fleet.seqs("glasses-1") == list(range(1, 3002))
        [(first_kind,)] = fleet.execute(
            "SELECT kind FROM records ORDER BY received_ns, seq LIMIT 1")
        assert first_kind == "audit"           # audit goes first
        assert wait_until(lambda: _device(fleet)["backlog"] == 0, 10)
        assert _device(fleet)["online"] is True
    finally:
        log = stop_process(agent)
        stop_process(producer)
    assert wait_until(lambda: _device(fleet)["online"] is False, 10), log
    store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry)
    assert store.backlog() == {}
    store.close()
    ingest.stop()


def test_kill_9_of_the_sync_agent_at_random_points_loses_and_duplicates_nothing(
        tmp_path, broker):
    count = 12_000
    # small batches and a bandwidth cap stretch the sync over many kills
    cfg = config_for(tmp_path, broker, sync={"batch_records": 100, "max_inflight": 4,
                                             "max_bytes_per_s": 6_000})
    recorder = Recorder.open(cfg.telemetry)
    for i in range(count):
        recorder.log_event("INFO", "frame.done", {"i": i, "pad": os.urandom(8).hex()})
    recorder.close()
    ingest, fleet = run_ingest(cfg)
    rng = random.Random(5)
    kills = 0
    try:
        for _ in range(20):
            before = fleet.record_count()
            agent = sync_agent_process(tmp_path / "edgelens.toml")
            # kill at a random point once this run is sending (a slow machine takes longer to
            # start the process; the kill must still land in the middle of the sync)
            assert wait_until(lambda: fleet.record_count() > before, 60), "nothing sent"
            time.sleep(rng.uniform(0.0, 0.8))
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait()
            kills += 1
        partial = fleet.record_count()
        assert 0 < partial < count, f"the kills should land in the middle of the sync ({partial})"
        # the last run has no cap and finishes
        config_for(tmp_path, broker, sync={"batch_records": 500})
        agent = sync_agent_process(tmp_path / "edgelens.toml")
        assert wait_until(lambda: fleet.record_count() >= count, 30), fleet.record_count()
        time.sleep(0.3)
    finally:
        stop_process(agent)
        ingest.stop()
    assert fleet.seqs("glasses-1") == list(range(1, count + 1))
    workers = fleet.workers()
    assert workers["w1"]["records"] == count
    store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry)
    assert store.backlog() == {}
    store.close()


def test_kill_9_leaves_a_retained_offline_availability(tmp_path, broker):
    cfg = config_for(tmp_path, broker)
    ingest, fleet = run_ingest(cfg)
    agent = sync_agent_process(tmp_path / "edgelens.toml")
    try:
        assert wait_until(lambda: _device(fleet).get("online") is True, 15)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
        assert wait_until(lambda: _device(fleet)["online"] is False, 10)   # the last will
    finally:
        stop_process(agent)
        ingest.stop()


def test_live_production_with_a_broker_restart_mid_sync_arrives_exactly_once(tmp_path,
                                                                             broker):
    cfg = config_for(tmp_path, broker, sync={"batch_records": 50})
    config = tmp_path / "edgelens.toml"
    ingest, fleet = run_ingest(cfg)
    agent = sync_agent_process(config)
    producer = python("tests/telemetry_producer.py", str(config), "6000", "2000")
    try:
        assert wait_until(lambda: fleet.record_count() > 500, 20)
        broker.restart()                       # outage while both processes are busy
        assert producer.wait(60) == 0, producer.stdout.read().decode()
        assert wait_until(lambda: fleet.record_count() >= 6001, 30), fleet.record_count()
        time.sleep(0.3)
    finally:
        stop_process(agent)
        stop_process(producer)
        ingest.stop()
    assert fleet.seqs("glasses-1") == list(range(1, 6002))


def test_a_quarantined_store_keeps_syncing_with_fresh_sequence_numbers(tmp_path, broker):
    cfg = config_for(tmp_path, broker)
    ingest, fleet = run_ingest(cfg)
    agent = run_agent(cfg)
    try:
        recorder = Recorder.open(cfg.telemetry)
        for i in range(100):
            recorder.log_event("INFO", "before", {"i": i})
        recorder.close()
        assert wait_until(lambda: fleet.record_count() == 100, 15)
        path = tmp_path / "telemetry.sqlite"
        with open(path, "r+b") as fh:          # the file goes bad while the agent holds it
            fh.write(b"garbage garbage!")
        recorder = Recorder.open(cfg.telemetry)    # the pipeline restarts: quarantine
        for i in range(50):
            recorder.log_event("INFO", "after", {"i": i})
        recorder.close()
        assert wait_until(lambda: fleet.record_count() == 151, 20), fleet.record_count()
        assert agent.thread.is_alive()
    finally:
        agent.stop()
        ingest.stop()
    seqs = fleet.seqs("glasses-1")
    assert seqs[:100] == list(range(1, 101)) and min(seqs[100:]) > 100
    kinds = [r[0] for r in fleet.execute(
        "SELECT kind FROM records WHERE seq > 100 ORDER BY seq")]
    assert kinds == ["audit"] + ["log"] * 50   # store_quarantined comes first
    [kept] = [p for p in tmp_path.glob("telemetry.sqlite.corrupt-*")
              if not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes().startswith(b"garbage garbage!")


def _device(fleet):
    rows = fleet.device_rows(time.time_ns(), 300)
    return rows[0].as_dict() if rows else {}
