"""Model updates end to end with one in-process device: install, refusals, health rollback."""

from __future__ import annotations

import json

from cloud_sync.signing import keygen
from device.modelstore.store import ModelStore
from device.telemetry.store import TelemetryStore
from sync_helpers import run_agent, wait_until
from update_helpers import device_config, device_store, fleet_keys, make_version, run_push


def audits(cfg) -> list[dict]:
    store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry, quarantine=False)
    try:
        return [json.loads(r.body) for r in store.records("audit")]
    finally:
        store.close()


def test_push_installs_and_reports_healthy(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=40_000)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        rollout, server = run_push(fleet_cfg, key, new, members=["glasses-1"], timeout=60)
        assert rollout.stage == "done", rollout
        assert rollout.devices["glasses-1"]["state"] == "healthy"
        assert ModelStore(store).active_version("detector") == "1.1.0"
        assert ModelStore(store).get("detector").check_files() == []
        assert server.stats.bytes_served == sum(
            f["size_bytes"] for f in server.signed["manifest"]["update"]["files"])
    finally:
        agent.stop()
    actions = [a["action"] for a in audits(cfg)]
    assert actions[:3] == ["update_offered", "model_activated", "model_healthy"]


def _state(agent, name="detector") -> dict:
    return agent.worker.updates.models.get(name, {})


def _refused(agent, rollout: str) -> bool:
    s = _state(agent)
    return s.get("state") == "refused" and s.get("rollout") == rollout


def test_bad_updates_are_refused_and_the_old_model_keeps_serving(tmp_path, broker):
    import copy

    from cloud_sync import update_protocol as proto
    from cloud_sync.signing import load_private, sign
    from cloud_sync.fleet.delivery import signed_desired
    from update_helpers import desired_body, publish_raw

    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_models = tmp_path / "fleet-models"
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, fleet_models)
    topic = proto.desired_topic("edgelens", "lab", "detector")
    agent = run_agent(cfg)
    reasons = {}
    try:
        assert agent.worker.link.wait_connected(10)

        # 1. wrong key: signed by a key the device does not trust
        other_key = tmp_path / "other.key"
        keygen(other_key, tmp_path / "other.pub")
        v110 = make_version(fleet_models, "1.1.0")
        publish_raw(fleet_cfg, topic, desired_body(
            "wrong-key", signed_desired(v110, str(other_key), 16384)), retain=True)
        assert wait_until(lambda: _refused(agent, "wrong-key"), 15)
        reasons["wrong key"] = _state(agent)["reason"]

        # 2. a manifest altered after signing (artifact hash swapped)
        signed = signed_desired(v110, str(key), 16384)
        signed["manifest"]["update"]["files"][0]["size_bytes"] += 1
        publish_raw(fleet_cfg, topic, desired_body("tampered", signed), retain=True)
        assert wait_until(lambda: _refused(agent, "tampered"), 15)
        reasons["tampered manifest"] = _state(agent)["reason"]

        # 3. path traversal, validly signed (a compromised or buggy fleet)
        evil = copy.deepcopy(signed_desired(v110, str(key), 16384))
        evil["manifest"]["update"]["files"][0]["file"] = "../../evil.tflite"
        evil["signature"] = sign(evil["manifest"], load_private(key))
        publish_raw(fleet_cfg, topic, desired_body("traversal", evil), retain=True)
        assert wait_until(lambda: _refused(agent, "traversal"), 15)
        reasons["path traversal"] = _state(agent)["reason"]

        # 4. a flipped bit in the served artifact (corrupted after signing)
        v120 = make_version(fleet_models, "1.2.0", salt="flip")
        signed = signed_desired(v120, str(key), 16384)
        data = bytearray((v120 / "detector.tflite").read_bytes())
        data[len(data) // 2] ^= 0x10
        (v120 / "detector.tflite").write_bytes(bytes(data))
        rollout, _ = run_push(fleet_cfg, key, v120, members=["glasses-1"], signed=signed,
                              rollout_id="flipped", timeout=30)
        assert rollout.stage == "halted", rollout
        reasons["flipped bit"] = _state(agent)["reason"]

        # 5. a truncated artifact (the served file is shorter than signed)
        v130 = make_version(fleet_models, "1.3.0", salt="trunc")
        signed = signed_desired(v130, str(key), 16384)
        with open(v130 / "detector.tflite", "r+b") as handle:
            handle.truncate(handle.seek(0, 2) - 100)
        rollout, _ = run_push(fleet_cfg, key, v130, members=["glasses-1"], signed=signed,
                              rollout_id="truncated", timeout=30)
        assert rollout.stage == "halted", rollout
        reasons["truncated"] = _state(agent)["reason"]

        # 6. a replayed older version (validly signed, not marked rollback)
        v090 = make_version(fleet_models, "0.9.0")
        publish_raw(fleet_cfg, topic, desired_body("older", signed_desired(v090, str(key),
                                                                            16384)), retain=True)
        assert wait_until(lambda: _refused(agent, "older"), 15)
        reasons["older version"] = _state(agent)["reason"]

        # 7. oversized: over [updates] max_artifact_bytes is checked from the signed sizes
        # 8. malformed messages and stray chunks are ignored and counted, nothing crashes
        publish_raw(fleet_cfg, topic, b"{not json")
        publish_raw(fleet_cfg, "edgelens/glasses-1/update/chunk", b"\x00\x05junk")
        publish_raw(fleet_cfg, "edgelens/glasses-1/update/chunk",
                    proto.encode_chunk(proto.ChunkHeader("nope", "detector", "9.9.9",
                                                         "detector.tflite", 0), b"x"))
        stats = agent.worker.updates.stats
        assert wait_until(lambda: stats.ignored_malformed >= 2
                          and stats.ignored_unexpected_chunk >= 1, 10), stats
        assert agent.worker.link.connected
    finally:
        agent.stop()
    assert "unknown key" in reasons["wrong key"]
    assert "bad signature" in reasons["tampered manifest"]
    assert "unsafe file name" in reasons["path traversal"]
    assert "does not match its signed hash" in reasons["flipped bit"]
    assert "does not match its signed hash or size" in reasons["truncated"]
    assert "older than the installed 1.0.0" in reasons["older version"]
    s = ModelStore(store)
    assert s.active_version("detector") == "1.0.0"
    assert s.versions("detector") == ["1.0.0"] and s.get("detector").check_files() == []
    assert not (tmp_path / "evil.tflite").exists() and not (store.parent / "evil.tflite").exists()
    refused = [a for a in audits(cfg) if a["action"] == "update_refused"]
    assert [a["rollout"] for a in refused] == ["wrong-key", "tampered", "traversal", "flipped",
                                               "truncated", "older"]
    assert all(a["reason"] for a in refused)


def test_unhealthy_versions_are_rolled_back_and_reported(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_models = tmp_path / "fleet-models"
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, fleet_models)
    slow = make_version(fleet_models, "1.1.0", budget_ms=0.0001)
    wrong = make_version(fleet_models, "1.2.0", golden_fails=True)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        slow_rollout, _ = run_push(fleet_cfg, key, slow, members=["glasses-1"], timeout=60)
        wrong_rollout, _ = run_push(fleet_cfg, key, wrong, members=["glasses-1"], timeout=60)
    finally:
        agent.stop()
    for rollout, words in ((slow_rollout, "over the budget"),
                           (wrong_rollout, "golden self-test failed")):
        assert rollout.stage == "halted", rollout
        device = rollout.devices["glasses-1"]
        assert device["state"] == "rolled_back" and words in device["reason"], device
        assert device["active"] == "1.0.0"
    s = ModelStore(store)
    assert s.active_version("detector") == "1.0.0" and s.versions("detector") == ["1.0.0"]
    aside = sorted(p.name.split("-")[0] for p in (store / "detector" / ".failed").iterdir())
    assert aside == ["1.1.0", "1.2.0"]
    rolled = [a for a in audits(cfg) if a["action"] == "model_rolled_back"]
    assert [(a["version"], a["to"]) for a in rolled] == [("1.1.0", "1.0.0"), ("1.2.0", "1.0.0")]


def test_fleet_wide_rollback_with_one_command(tmp_path, broker):
    import os
    import subprocess
    import sys

    from sync_helpers import ROOT
    key, pub = fleet_keys(tmp_path)
    names = ["glasses-1", "glasses-2"]
    cfgs = [device_config(tmp_path, broker, n, pub, device_store(tmp_path, n)) for n in names]
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                              updates={"signing_key": str(key)})
    make_version(tmp_path / "fleet-models", "1.0.0")
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    agents = [run_agent(c) for c in cfgs]
    try:
        for a in agents:
            assert a.worker.link.wait_connected(10)
        rollout, _ = run_push(fleet_cfg, key, new, members=names, previous="1.0.0")
        assert rollout.stage == "done"
        out = subprocess.run(
            [sys.executable, "-m", "cloud_sync.fleet.cli", "rollout", "rollback", "--config",
             str(tmp_path / "fleet" / "edgelens.toml"), "--timeout", "60"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert out.returncode == 0, out.stdout + out.stderr
        status = subprocess.run(
            [sys.executable, "-m", "cloud_sync.fleet.cli", "rollout", "status", "--config",
             str(tmp_path / "fleet" / "edgelens.toml")], cwd=ROOT, capture_output=True,
            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    finally:
        for a in agents:
            a.stop()
    for c in cfgs:
        assert ModelStore(c.models.store).active_version("detector") == "1.0.0"
    assert "served 0 bytes" in out.stdout          # both still held 1.0.0: no download
    assert "(rollback)  stage done" in status.stdout, status.stdout
    assert status.stdout.count("100.0% healthy") == 2 and "#" * 20 in status.stdout
