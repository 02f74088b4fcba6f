"""Model updates end to end with one in-process device: install, refusals, health rollback."""

from __future__ import annotations

import json

from cloud_sync.signing import keygen
from device.model_store import ModelStore
from device.telemetry.store import TelemetryStore
from tests.sync_helpers import run_agent, wait_until
from tests.update_helpers import device_config, device_store, fleet_keys, make_version, run_push


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
