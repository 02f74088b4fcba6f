"""The large-fleet topology, proven with two real Mosquitto brokers: a regional broker that the
glasses connect to, bridged to a core broker that the fleet (ingest, push) connects to. Nothing
in edgelens knows about the bridge: telemetry, availability and status go out through it into
the fleet store, commands come in, and a model update (retained desired state, chunk requests,
chunks, update status) completes across it. The bridge settings are the ones in
cloud_sync/README.md ("A large fleet: more than one broker"); a test keeps the two the same.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from cloud_sync.fleet.localbroker import LocalBroker, find_mosquitto
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.modelstore.store import ModelStore
from device.telemetry import Recorder
from fixtures_broker import config_for, missing_mosquitto
from sync_helpers import (produce_logs, run_agent, run_ingest, stop_process, sync_agent_process,
                          wait_until)
from update_helpers import (device_config, device_store, fleet_keys, make_version, publish_raw,
                            run_push)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

README = Path(__file__).resolve().parent.parent / "cloud_sync" / "README.md"
PREFIX = "edgelens"


def bridge_config(name: str, core_host: str, core_port: int, prefix: str = PREFIX) -> list[str]:
    """The regional broker's bridge to the core: device → fleet topics out, fleet → device
    topics in, QoS 1, a persistent bridge session, MQTT 5 (as in cloud_sync/README.md)."""
    return [f"connection {name}",
            f"address {core_host}:{core_port}",
            "bridge_protocol_version mqttv311",
            "cleansession false",
            f"remote_clientid bridge-{name}",
            f"local_clientid bridge-{name}-local",
            "try_private true",
            "restart_timeout 1 10",
            f"topic {prefix}/+/availability out 1",
            f"topic {prefix}/+/telemetry out 1",
            f"topic {prefix}/+/status out 1",
            f"topic {prefix}/+/update/status out 1",
            f"topic {prefix}/+/update/request out 1",
            f"topic {prefix}/+/cmd/+ in 1",
            f"topic {prefix}/+/update/chunk in 1",
            f"topic {prefix}/+/receipt in 1",
            f"topic {prefix}/_fleet/receipts in 1",
            f"topic {prefix}/_group/+/desired/+ in 1"]


@pytest.fixture
def bridged(tmp_path):
    """(regional, core): the regional broker's bridge to the core is up."""
    if find_mosquitto() is None:
        missing_mosquitto()
    core = LocalBroker(tmp_path / "core").start()
    regional = LocalBroker(tmp_path / "regional",
                           extra_config=bridge_config("region-1", core.host, core.port))
    regional.start()
    try:
        assert _bridge_carries(regional, core), regional.log_file.read_text()
        yield regional, core
    finally:
        regional.kill()
        core.kill()


def test_telemetry_status_and_commands_cross_the_bridge(tmp_path, bridged):
    regional, core = bridged
    (tmp_path / "device").mkdir()
    (tmp_path / "fleet").mkdir()
    device_cfg = config_for(tmp_path / "device", regional)
    fleet_cfg = config_for(tmp_path / "fleet", core)
    assert device_cfg.mqtt.port == regional.port and fleet_cfg.mqtt.port == core.port
    ingest, fleet = run_ingest(fleet_cfg)
    produce_logs(device_cfg, 500)
    agent = run_agent(device_cfg)
    try:
        assert wait_until(lambda: fleet.record_count() == 500, 30), fleet.record_count()
        assert wait_until(lambda: _row(fleet).backlog == 0, 15)
        assert _row(fleet).online is True
        # a command from the fleet's side of the bridge reaches the agent
        publish_raw(fleet_cfg, f"{PREFIX}/glasses-1/cmd/ping", b"{}")
        assert wait_until(lambda: agent.worker.stats.inbound_handled == 1, 15)
        agent.stop()                          # `offline` (retained) crosses the bridge too
        assert wait_until(lambda: _row(fleet).online is False, 15)
    finally:
        agent.stop()
        ingest.stop()
    assert fleet.seqs("glasses-1") == list(range(1, 501))
    # each record stored once; a batch the agent sent again because its receipt was late (the
    # core was away longer than the resend timeout on a slow machine) is counted and discarded
    assert fleet.workers()["w1"]["records"] == 500
    fleet.close()


def test_records_sent_while_the_core_is_down_wait_in_the_regional_broker(tmp_path, bridged):
    """The device's PUBACK comes from its regional broker, which holds QoS 1 messages for the
    bridge (a persistent bridge session) until the core is back: nothing lost, nothing stored
    twice."""
    regional, core = bridged
    (tmp_path / "device").mkdir()
    (tmp_path / "fleet").mkdir()
    device_cfg = config_for(tmp_path / "device", regional, sync={"batch_records": 50})
    fleet_cfg = config_for(tmp_path / "fleet", core)
    ingest, fleet = run_ingest(fleet_cfg)
    agent = run_agent(device_cfg)
    recorder = Recorder.open(device_cfg.telemetry)
    try:
        for i in range(100):
            recorder.log_event("INFO", "before", {"i": i})
        assert wait_until(lambda: fleet.record_count() == 100, 30), fleet.record_count()
        core.stop()                               # the core (and the fleet behind it) away
        for i in range(400):
            recorder.log_event("INFO", "during", {"i": i})
        assert recorder.flush()
        assert wait_until(lambda: agent.worker.store.backlog() == {}, 30), \
            agent.worker.store.backlog()          # all acknowledged by the regional broker
        assert fleet.record_count() == 100
        core.start()
        assert wait_until(lambda: fleet.record_count() == 500, 60), \
            (fleet.record_count(), regional.log_file.read_text()[-2000:])
        # the core's ingest confirmed them through the bridge: nothing waits to be sent again
        assert wait_until(lambda: agent.worker.store.unconfirmed() == 0, 30)
        assert agent.worker.stats.confirmed_records >= 400
    finally:
        recorder.close()
        agent.stop()
        ingest.stop()
    assert fleet.seqs("glasses-1") == list(range(1, 501))
    # each record stored once; a batch the agent sent again because its receipt was late (the
    # core was away longer than the resend timeout on a slow machine) is counted and discarded
    assert fleet.workers()["w1"]["records"] == 500
    fleet.close()


def test_a_model_update_crosses_the_bridge_and_its_desired_state_stays_retained(
        tmp_path, bridged):
    regional, core = bridged
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    device_config(tmp_path, regional, "glasses-1", pub, store)
    device = sync_agent_process(tmp_path / "glasses-1" / "edgelens.toml")
    fleet_cfg = device_config(tmp_path, core, "fleet", pub, tmp_path / "fleet-models")
    make_version(tmp_path / "fleet-models", "1.0.0")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=100_000)
    try:
        rollout, server = run_push(fleet_cfg, key, new, members=["glasses-1"],
                                   previous="1.0.0", timeout=90)
    finally:
        log = stop_process(device)
    assert rollout.stage == "done", (rollout, log)
    assert rollout.devices["glasses-1"]["state"] == "healthy"
    assert ModelStore(store).active_version("detector") == "1.1.0", log
    size = sum(f["size_bytes"] for f in server.signed["manifest"]["update"]["files"])
    assert rollout.bytes_served == {"glasses-1": size}
    # a device that connects to its regional broker later finds the desired state there, even
    # while the core is away
    core.stop()
    desired = _retained(regional, f"{PREFIX}/_group/lab/desired/+")
    assert [(topic, json.loads(body)["rollout"]) for topic, body in desired] == [
        (f"{PREFIX}/_group/lab/desired/detector", rollout.id)]


def test_the_readme_names_the_bridge_settings_the_tests_use():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"# regional broker: the bridge to the core\n(.*?)```", text, re.S)
    assert block, "cloud_sync/README.md lost its bridge example"
    lines = [line.strip() for line in block.group(1).splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines == bridge_config("region-1", "core.example.net", 8883)[:2] + \
        ["bridge_cafile /etc/mosquitto/certs/ca.pem", "remote_username bridge-region-1",
         "remote_password CHANGE-ME"] + bridge_config("region-1", "core.example.net", 8883)[2:]


def _bridge_carries(regional: LocalBroker, core: LocalBroker, timeout: float = 30.0) -> bool:
    """True once a probe crosses the bridge both ways (its subscriptions on both sides are in
    place): a command topic in, a status topic out, neither retained."""
    ways = {"in": (core, regional, f"{PREFIX}/bridge-probe/cmd/probe"),
            "out": (regional, core, f"{PREFIX}/bridge-probe/status")}
    for way, (source, target, topic) in ways.items():
        arrived = threading.Event()
        listener = MqttLink(LinkSettings(port=target.port, client_id=f"probe-{way}-listener"),
                            on_message=lambda *message: arrived.set())
        listener.subscribe(topic)
        sender = MqttLink(LinkSettings(port=source.port, client_id=f"probe-{way}-sender"))
        listener.start()
        sender.start()
        try:
            assert listener.wait_connected(10) and sender.wait_connected(10)
            deadline = time.monotonic() + timeout
            while not arrived.is_set():
                if time.monotonic() > deadline:
                    return False
                sender.publish(topic, b"{}", qos=1)
                arrived.wait(0.5)
        finally:
            sender.stop()
            listener.stop()
    return True


def _row(fleet):
    rows = fleet.device_rows(time.time_ns(), 300)
    return rows[0] if rows else None


def _retained(broker: LocalBroker, topic_filter: str) -> list[tuple[str, bytes]]:
    """What a fresh subscriber on `broker` is handed for `topic_filter` (retained only)."""
    got: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    def on_message(topic, payload, properties):
        got.append((topic, payload))
        arrived.set()

    link = MqttLink(LinkSettings(port=broker.port, client_id="late-device-check"),
                    on_message=on_message)
    link.subscribe(topic_filter)
    link.start()
    try:
        assert link.wait_connected(10)
        assert arrived.wait(10), f"nothing retained on {topic_filter}"
        time.sleep(0.5)                       # and nothing else comes
    finally:
        link.stop()
    return got
