"""`edgelens-fleet push --shadow`: the device installs the version as a challenger (SHADOW)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cloud_sync.fleet.delivery import signed_desired
from device.modelstore.store import ModelStore
from device.modelstore.pointers import shadow_version
from sync_helpers import run_agent
from test_updates_basic import audits
from update_helpers import device_config, fleet_keys, make_version, run_push

ROOT = Path(__file__).resolve().parent.parent


def _recognizer(store: Path, version: str) -> Path:
    """The committed recognizer 1.0.0 under another version number."""
    directory = store / "recognizer" / version
    shutil.copytree(ROOT / "models" / "recognizer" / "1.0.0", directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["version"] = version
    # the latency budget is not what these tests are about: 1.0.0's own 1 ms would make them
    # depend on the machine's load (CI failed once on a busy machine with p50 over 1 ms)
    manifest["budget_ms"] = 60_000
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


def test_push_shadow_installs_a_challenger_and_keeps_the_active_version(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    store = tmp_path / "glasses-1" / "models"
    _recognizer(store, "1.0.0")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = _recognizer(tmp_path / "fleet-models", "1.1.0")
    signed = signed_desired(new, str(key), fleet_cfg.updates.chunk_size, shadow=True)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        rollout, _ = run_push(fleet_cfg, key, new, members=["glasses-1"], signed=signed,
                              timeout=60)
        assert rollout.stage == "done", rollout
        assert rollout.devices["glasses-1"]["state"] == "healthy"
        assert rollout.devices["glasses-1"]["shadow"] is True
        models = ModelStore(store)
        assert models.active_version("recognizer") == "1.0.0"      # the champion serves on
        assert shadow_version(models, "recognizer") == "1.1.0"
        assert models.get("recognizer", "1.1.0").check_files() == []
    finally:
        agent.stop()
    actions = [a["action"] for a in audits(cfg)]
    assert actions[:3] == ["update_offered", "model_shadowed", "model_healthy"]
    assert "model_activated" not in actions


def test_shadow_push_of_a_model_no_stage_runs_is_refused(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    store = tmp_path / "glasses-1" / "models"
    make_version(store, "1.0.0")
    make_version(store, "1.0.0", name="speech")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0", name="speech")
    signed = signed_desired(new, str(key), fleet_cfg.updates.chunk_size, shadow=True)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        rollout, _ = run_push(fleet_cfg, key, new, members=["glasses-1"], signed=signed,
                              timeout=30)
        assert rollout.devices["glasses-1"]["state"] == "refused"
        assert "detector, recognizer, translator" in rollout.devices["glasses-1"]["reason"]
        assert ModelStore(store).active_version("speech") == "1.0.0"
        assert not (store / "speech" / "SHADOW").exists()
    finally:
        agent.stop()
