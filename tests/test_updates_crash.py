"""kill -9 at random points while the update agent installs, activates, judges and prunes
versions: the active model is always complete, verified and loadable."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time

import pytest

from cloud_sync import update_protocol as proto
from cloud_sync.update_agent import UpdateAgent
from cloud_sync.fleet.delivery import signed_desired
from device.modelstore.install import recover
from device.modelstore.store import ModelStore
from device.runtime import TFLiteModel
from update_helpers import device_config, device_store, fleet_keys, make_version


class NoLink:
    """The agent's link when nothing is connected (requests and status go nowhere)."""
    connects, connected = 0, False

    def publish(self, *args, **kwargs) -> int:
        from cloud_sync.errors import LinkError
        raise LinkError("not connected")


def _install_forever(cfg, key, template, fleet_root, start: int) -> None:
    """The real agent path for version after version: offer, chunks, verify, rename,
    ACTIVE switch, golden + latency check, GOOD list, prune."""
    agent = UpdateAgent(cfg, NoLink(), "glasses-1", audit=lambda action, fields: None)
    agent._prepare_store()
    for i in range(start, start + 10_000):
        version = f"1.{i}.0"
        source = fleet_root / "detector" / version
        if not source.exists():      # built aside and renamed: a kill leaves no half copy
            partial = fleet_root / f"partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(template, partial)
            manifest = json.loads((partial / "manifest.json").read_text())
            manifest["version"] = version
            (partial / "manifest.json").write_text(json.dumps(manifest))
            source.parent.mkdir(parents=True, exist_ok=True)
            os.rename(partial, source)
        signed = signed_desired(source, str(key), 16384)
        body = {"v": 1, "rollout": f"r{i}", "group": "lab", "stage": "all", **signed}
        agent._on_desired("detector", json.dumps(body).encode())
        for entry in signed["manifest"]["update"]["files"]:
            data = (source / entry["file"]).read_bytes()
            for index in range(len(entry["chunks"])):
                header = proto.ChunkHeader(f"r{i}", "detector", version, entry["file"], index)
                agent._on_chunk(proto.encode_chunk(header, data[index * 16384:
                                                                (index + 1) * 16384]))
        job = agent.jobs["detector"]
        agent._check_health(job, time.monotonic())


@pytest.mark.slow
def test_kill_9_during_install_always_leaves_a_loadable_active_model(tmp_path):
    key, pub = fleet_keys(tmp_path)
    store_root = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, None, "glasses-1", pub, store_root,
                        telemetry={"enabled": False})
    template = make_version(tmp_path / "template", "1.0.0", pad_bytes=50_000)
    fleet_root = tmp_path / "fleet"
    rng = random.Random(6)
    seen_active = []
    for round_ in range(20):
        store = ModelStore(store_root)
        start = max(int(v.split(".")[1]) for v in store.versions("detector")) + 1
        pid = os.fork()
        if pid == 0:                                   # the child: install until killed
            try:
                _install_forever(cfg, key, template, fleet_root, start)
            except BaseException as exc:  # noqa: BLE001 - report, then leave the fork
                print(f"child failed: {exc!r}", flush=True)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.01, 0.6))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        recover(store, "detector")
        active = store.active_version("detector")
        version = store.get("detector", active)
        assert version.check_files() == [], (round_, active)
        TFLiteModel(version.artifact, num_threads=1)   # loadable
        seen_active.append(active)
    print(f"\nactive after each kill -9: {seen_active}")
    assert len(set(seen_active)) > 3             # the kills landed while versions moved on
    assert len(ModelStore(store_root).versions("detector")) <= 4
