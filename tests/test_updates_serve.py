"""`edgelens-fleet serve`: a device offline for the whole push still gets the version later."""

from __future__ import annotations

import contextlib
import threading

from cloud_sync.fleet.rollout import RolloutFile
from cloud_sync.fleet.serve import RolloutService
from device.modelstore.store import ModelStore
from sync_helpers import run_agent, wait_until
from update_helpers import device_config, device_store, fleet_keys, make_version, run_push


@contextlib.contextmanager
def serving(fleet_cfg):
    """`edgelens-fleet serve`, in-process (so the test can read its stats)."""
    stop = threading.Event()
    service = RolloutService(fleet_cfg, RolloutFile(fleet_cfg.updates.rollout_file),
                             refresh_s=0.2)
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(10)


def test_a_device_that_missed_the_push_is_served_later(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    online = device_config(tmp_path, broker, "glasses-1", pub, device_store(tmp_path,
                                                                            "glasses-1"))
    late_store = device_store(tmp_path, "glasses-2")
    late = device_config(tmp_path, broker, "glasses-2", pub, late_store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    make_version(tmp_path / "fleet-models", "1.0.0")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=60_000)
    agent = run_agent(online)
    try:
        assert agent.worker.link.wait_connected(10)
        rollout, server = run_push(fleet_cfg, key, new, members=["glasses-1"], previous="1.0.0")
    finally:
        agent.stop()
    assert rollout.stage == "done", rollout
    size = sum(f["size_bytes"] for f in server.signed["manifest"]["update"]["files"])

    # the push is over; glasses-2 comes online for the first time
    with serving(fleet_cfg) as service:
        latecomer = run_agent(late)
        try:
            assert latecomer.worker.link.wait_connected(10)
            assert wait_until(lambda: ModelStore(late_store).active_version("detector") ==
                              "1.1.0", 60), latecomer.worker.updates.models
            assert wait_until(lambda: latecomer.worker.updates.models["detector"]["state"] ==
                              "healthy", 30)
            assert wait_until(lambda: RolloutFile(fleet_cfg.updates.rollout_file).latest("lab")
                              .devices.get("glasses-2", {}).get("state") == "healthy", 10)
        finally:
            latecomer.stop()
    assert service.stats.bytes_served == size                  # every chunk once, to glasses-2
    saved = RolloutFile(fleet_cfg.updates.rollout_file).latest("lab")
    assert saved.id == rollout.id and saved.stage == "done"
    assert sorted(saved.members) == ["glasses-1", "glasses-2"]
    assert saved.bytes_served == {"glasses-1": size, "glasses-2": size}
    assert ModelStore(late_store).get("detector").check_files() == []


def test_serve_refuses_a_source_that_changed_since_it_was_signed(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    late_store = device_store(tmp_path, "glasses-2")
    late = device_config(tmp_path, broker, "glasses-2", pub, late_store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=20_000)
    stopped = threading.Event()
    stopped.set()                     # a push stopped at once: stage all, reason "stopped"
    rollout, _ = run_push(fleet_cfg, key, new, stop=stopped, members=["glasses-2"])
    assert rollout.reason == "stopped", rollout
    blob = bytearray((new / "vocab.bin").read_bytes())     # the source changed since signing
    blob[0] ^= 1
    (new / "vocab.bin").write_bytes(bytes(blob))
    with serving(fleet_cfg) as service:
        latecomer = run_agent(late)
        try:
            assert latecomer.worker.link.wait_connected(10)
            assert wait_until(lambda: rollout.id in service.refused, 10)
            assert wait_until(lambda: latecomer.worker.updates.models.get("detector", {})
                              .get("state") == "downloading", 10)
            wait_until(lambda: False, 1.0)
        finally:
            latecomer.stop()
    assert service.stats.bytes_served == 0 and not service.served
    assert ModelStore(late_store).active_version("detector") == "1.0.0"
