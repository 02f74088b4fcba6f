"""Offers that cannot be installed, sent to do harm elsewhere: an unsigned desired state whose
`manifest.version` is huge must not grow the retained update status past the broker's message
size limit (which made Mosquitto drop the device's connection on every status publish: no
telemetry, no updates), nor flood the telemetry store with `update_refused` audit records; and
a rollback signed for another group, replayed with its control block removed, must not
downgrade a device that has seen signed control blocks."""

from __future__ import annotations

import json
import shutil
import threading
import time

from cloud_sync import update_protocol as proto
from cloud_sync.errors import LinkError
from cloud_sync.fleet.delivery import signed_desired
from cloud_sync.fleet.localbroker import LocalBroker, find_mosquitto
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.update_agent import UpdateAgent
from cloud_sync.update_memory import AuditSink
from device.modelstore import install
from device.modelstore.store import ModelStore
from device.telemetry import TelemetryStore
from fixtures_broker import missing_mosquitto
from sync_helpers import produce_logs, run_agent, wait_until
from update_helpers import (device_config, device_store, fleet_keys, make_version, publish_raw,
                            run_push)

DESIRED = proto.desired_topic("edgelens", "lab", "detector")


class NoLink:
    connects, connected = 0, False

    def publish(self, *args, **kwargs) -> int:
        raise LinkError("not connected")


def _agent(tmp_path, store, pub, audit=None):
    cfg = device_config(tmp_path, None, "glasses-1", pub, store)
    audits = []
    agent = UpdateAgent(cfg, NoLink(), "glasses-1",
                        audit=audit or (lambda action, fields: audits.append((action, fields))))
    agent._prepare_store()
    return agent, audits, cfg


def _forged(version, rollout="x", key_id="0" * 16) -> bytes:
    """An unsigned desired state (no valid signature): anyone who can publish there."""
    return json.dumps({"v": 1, "rollout": rollout, "group": "lab", "stage": "all",
                       "canaries": [],
                       "manifest": {"name": "detector", "version": version, "update": {}},
                       "signature": {"key_id": key_id, "signature": "AA=="}},
                      ensure_ascii=False).encode()


# --- the retained status stays small; the connection, telemetry and updates go on -----------

def test_a_forged_offer_with_a_huge_version_keeps_the_device_connected_and_updating(tmp_path):
    """The shipped broker config (`message_size_limit 1048576`): a 0.5 MB unsigned offer whose
    version, JSON-escaped in the status, came to 1.5 MB used to disconnect the device on every
    status publish, for ever."""
    if find_mosquitto() is None:
        missing_mosquitto()
    broker = LocalBroker(tmp_path / "broker", extra_config=["message_size_limit 1048576"]).start()
    key, pub = fleet_keys(tmp_path)
    cfg = device_config(tmp_path, broker, "glasses-1", pub, device_store(tmp_path, "glasses-1"))
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    statuses = []
    watch = MqttLink(LinkSettings(port=broker.port, client_id="status-watch"),
                     on_message=lambda topic, payload, props: statuses.append(payload))
    watch.subscribe("edgelens/glasses-1/update/status")
    watch.subscribe("edgelens/glasses-1/telemetry")         # the fleet's side of telemetry
    watch.start()
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10) and watch.wait_connected(10)
        updates = agent.worker.updates
        publish_raw(fleet_cfg, DESIRED, _forged("\U0001F600" * 125_000))
        assert wait_until(lambda: updates.models.get("detector", {}).get("state")
                          == "refused", 15), updates.models
        assert wait_until(lambda: any(b'"refused"' in s for s in statuses), 10)
        assert max(len(s) for s in statuses) < 10_000
        assert updates.models["detector"]["version"] == "invalid"
        # telemetry still drains (its PUBACKs come) and an update still goes through
        produce_logs(cfg, 300)
        assert wait_until(lambda: agent.worker.store is not None
                          and agent.worker.store.backlog() == {}, 30), agent.worker.status()
        rollout, _ = run_push(fleet_cfg, key, make_version(tmp_path / "fleet-models", "1.1.0"),
                              members=["glasses-1"], timeout=60)
        assert rollout.stage == "done", rollout
        assert agent.worker.link.connects == 1 and updates.stats.refused == 1
    finally:
        agent.stop()
        watch.stop()
        broker.kill()
    assert ModelStore(tmp_path / "glasses-1" / "models").active_version("detector") == "1.1.0"


def test_status_entries_are_kept_for_models_in_the_store_and_a_few_others(tmp_path):
    _, pub = fleet_keys(tmp_path)
    agent, _, _ = _agent(tmp_path, device_store(tmp_path, "glasses-1"), pub)
    for i in range(50):                       # any model name a desired topic can carry
        agent._dispatch(proto.desired_topic("edgelens", "lab", f"m{i}"),
                        _forged([["x"] * 1000], rollout=f"r{i}"))
    assert set(agent.models) == {"detector"} | {f"m{i}" for i in range(42, 50)}
    assert agent.stats.refused == 50 and agent.stats.dropped_errors == 0
    assert all(m.get("version") in (None, "invalid") for m in agent.models.values())
    assert len(json.dumps(agent.status())) < 10_000


# --- refusals are audited once a minute per model and reason, with a count ----------------------

def test_forged_offers_leave_one_bounded_audit_a_minute_and_the_store_keeps_its_records(
        tmp_path):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, None, "glasses-1", pub, store)
    produce_logs(cfg, 500)                    # the pipeline's own, not sent yet
    telemetry = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry)
    agent, _, _ = _agent(tmp_path, store, pub, audit=AuditSink(cfg.telemetry, store=telemetry))
    for n in range(30):                       # 1 MB each
        agent._dispatch(DESIRED, _forged("9" * 1_000_000, rollout=f"x{n}"))
    # a refusal for another reason is audited at once, not folded into the forged ones
    older = make_version(tmp_path / "fleet", "0.9.0")
    agent._dispatch(DESIRED, json.dumps({"v": 1, "rollout": "older", "group": "lab",
                                         "stage": "all", "canaries": [],
                                         **signed_desired(older, str(key), 16384)}).encode())

    def refused() -> list[dict]:
        return [b for b in (json.loads(r.body) for r in telemetry.records("audit"))
                if b["action"] == "update_refused"]

    first, other = refused()
    assert first["rollout"] == "x0" and first["version"] == "invalid"
    assert "unknown key" in first["reason"] and len(json.dumps(first)) < 1000
    assert other["rollout"] == "older" and "older than the installed" in other["reason"]
    assert agent.stats.refused == 31 and agent.stats.refusals_folded == 29
    agent._tick(time.monotonic() + 61)        # the minute is over: one record for the rest
    assert len(refused()) == 3
    assert refused()[-1]["repeated"] == 29 and refused()[-1]["rollout"] == "x29"
    agent._tick(time.monotonic() + 200)
    assert len(refused()) == 3 and agent._refusals == {}
    assert telemetry.backlog() == {"audit": 3, "log": 500}
    assert telemetry.used_bytes() < 1_000_000
    telemetry.close()


def test_refusals_of_many_models_and_reasons_are_audited_within_a_bound(tmp_path):
    _, pub = fleet_keys(tmp_path)
    agent, audits, _ = _agent(tmp_path, device_store(tmp_path, "glasses-1"), pub)
    for i in range(200):                      # a model name and a key id of their own each
        agent._dispatch(proto.desired_topic("edgelens", "lab", f"m{i % 20}"),
                        _forged("1.0.0", rollout=f"r{i}", key_id=f"{i:016x}"))
    assert len(audits) == 9 and len(agent._refusals) == 9
    assert agent.stats.refused == 200
    agent._tick(time.monotonic() + 61)
    assert sum(f.get("repeated", 1) for a, f in audits if a == "update_refused") == 200


def test_refusals_folded_into_an_unfinished_minute_are_audited_when_the_agent_stops(tmp_path):
    _, pub = fleet_keys(tmp_path)

    class Sink:
        records: list = []
        closed = False

        def __call__(self, action, fields):
            self.records.append((action, fields))

        def close(self):
            self.closed = True

    sink = Sink()
    agent, _, _ = _agent(tmp_path, device_store(tmp_path, "glasses-1"), pub, audit=sink)
    for i in range(5):
        agent._dispatch(proto.desired_topic("edgelens", "lab", "m1"),
                        _forged("1.0.0", rollout=f"r{i}"))
    refused = lambda: [f.get("repeated", 1) for a, f in sink.records if a == "update_refused"]  # noqa: E731
    assert refused() == [1] and agent.stats.refusals_folded == 4
    stop = threading.Event()
    stop.set()
    agent.run(stop)                 # stopping: the four folded in are written with their count
    assert refused() == [1, 4] and sink.closed


# --- a control block removed from a rollback signed for another group ---------------------------

def _two_versions(tmp_path, key):
    """A device with 1.0.0 active and 1.1.0 in the store; the fleet's copies of both."""
    store = device_store(tmp_path, "glasses-1")
    fleet = tmp_path / "fleet"
    v100, v110 = make_version(fleet, "1.0.0"), make_version(fleet, "1.1.0")
    shutil.copytree(v110, store / "detector" / "1.1.0")
    install.set_active(ModelStore(store), "detector", "1.0.0")
    return store, v100, v110


def _stripped(body: dict, group: str = "lab") -> bytes:
    body = {k: v for k, v in body.items() if k not in ("control", "control_signature")}
    return json.dumps({**body, "group": group}).encode()


def test_a_rollback_for_another_group_with_its_control_block_removed_is_refused(tmp_path):
    key, pub = fleet_keys(tmp_path)
    store, v100, v110 = _two_versions(tmp_path, key)
    agent, audits, _ = _agent(tmp_path, store, pub)
    go = proto.desired_message("r-110", "lab", "all", [], signed_desired(v110, str(key), 16384),
                               key=str(key))
    agent._dispatch(DESIRED, json.dumps(go).encode())          # lab's own, signed control
    assert ModelStore(store).active_version("detector") == "1.1.0"
    # the operator rolls another group back; that message replayed onto lab's topic
    other = proto.desired_message("rb-eu", "canary-eu", "all", [],
                                  signed_desired(v100, str(key), 16384, rollback=True),
                                  key=str(key))
    agent._dispatch(DESIRED, json.dumps(other).encode())
    assert agent.stats.ignored_bad_control == 1
    agent._dispatch(DESIRED, _stripped(other))
    state = agent.models["detector"]
    assert state["state"] == "refused" and "no signed control block" in state["reason"], state
    assert ModelStore(store).active_version("detector") == "1.1.0"
    assert agent.stats.refused == 1 and audits[-1][0] == "update_refused"
    assert audits[-1][1]["rollout"] == "rb-eu"
    # the same rollback with lab's signed control block is taken
    rollback = proto.desired_message("rb-lab", "lab", "all", [],
                                     signed_desired(v100, str(key), 16384, rollback=True),
                                     key=str(key))
    agent._dispatch(DESIRED, json.dumps(rollback).encode())
    assert ModelStore(store).active_version("detector") == "1.0.0"


def test_a_fleet_that_never_signed_control_still_rolls_back_unsigned(tmp_path):
    """As documented: a desired state without a control block is taken where no signed one
    was ever seen for the model."""
    key, pub = fleet_keys(tmp_path)
    store, v100, v110 = _two_versions(tmp_path, key)
    agent, audits, _ = _agent(tmp_path, store, pub)
    go = proto.desired_message("r-110", "lab", "all", [], signed_desired(v110, str(key), 16384))
    agent._dispatch(DESIRED, json.dumps(go).encode())
    assert ModelStore(store).active_version("detector") == "1.1.0"
    back = proto.desired_message("rb", "lab", "all", [],
                                 signed_desired(v100, str(key), 16384, rollback=True))
    agent._dispatch(DESIRED, json.dumps(back).encode())
    assert ModelStore(store).active_version("detector") == "1.0.0"
    assert [a for a, _ in audits].count("update_refused") == 0

