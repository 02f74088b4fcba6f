"""Model updates with devices as real processes (edgelens-sync run): several devices through a
canary rollout; kill -9 during a download resumes from the chunks already on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from device.modelstore.store import ModelStore
from sync_helpers import ROOT, stop_process, sync_agent_process, wait_until
from update_helpers import device_config, device_store, fleet_keys, make_version, run_push


def _start_devices(tmp_path, broker, pub, names, **updates):
    devices = {}
    for name in names:
        store = device_store(tmp_path, name)
        cfg = device_config(tmp_path, broker, name, pub, store, updates=updates)
        devices[name] = (cfg, store, sync_agent_process(tmp_path / name / "edgelens.toml"))
    return devices


def test_canary_rollout_to_device_processes(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    names = [f"glasses-{i}" for i in range(1, 5)]
    devices = _start_devices(tmp_path, broker, pub, names)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    make_version(tmp_path / "fleet-models", "1.0.0")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=100_000)
    try:
        rollout, server = run_push(fleet_cfg, key, new, canary=25.0, members=names,
                                   previous="1.0.0", timeout=90)
    finally:
        logs = {n: stop_process(p) for n, (_, _, p) in devices.items()}
    assert rollout.stage == "done", (rollout, logs)
    assert rollout.canaries == ["glasses-1"]
    assert {d: rollout.devices[d]["state"] for d in names} == {d: "healthy" for d in names}
    for name, (cfg, store, _) in devices.items():
        s = ModelStore(store)
        assert s.active_version("detector") == "1.1.0", logs[name]
        assert s.get("detector").check_files() == []
        assert s.versions("detector") == ["1.0.0", "1.1.0"]      # last two good kept
    size = sum(f["size_bytes"] for f in server.signed["manifest"]["update"]["files"])
    assert rollout.bytes_served == {d: size for d in names}
    out = subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", "rollout", "status",
                          "--config", str(tmp_path / "fleet" / "edgelens.toml"), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    status = json.loads(out.stdout)
    assert [(r["group"], r["stage"]) for r in status] == [("lab", "done")]
    assert [(d["device"], d["state"], d["progress"]) for d in status[0]["devices"]] == [
        (d, "healthy", 100.0) for d in names]


def test_kill_9_during_download_resumes_from_the_chunks_it_had(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    chunk, window = 4096, 2
    devices = _start_devices(tmp_path, broker, pub, ["glasses-1"], chunk_size=chunk,
                             window_chunks=window)
    cfg, store, proc = devices["glasses-1"]
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                              updates={"chunk_size": chunk})
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=1_000_000)
    record = store / ".staging" / "detector-1.1.0.received"
    result = {}
    pusher = threading.Thread(target=lambda: result.update(zip(("rollout", "server"), run_push(
        fleet_cfg, key, new, members=["glasses-1"], timeout=90))))
    pusher.start()
    try:
        assert wait_until(lambda: record.is_file() and
                          len(record.read_text().splitlines()) >= 60, 60, interval=0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        had = len(set(record.read_text().splitlines()))
        proc = sync_agent_process(tmp_path / "glasses-1" / "edgelens.toml")
        pusher.join(90)
    finally:
        log = stop_process(proc)
    rollout = result["rollout"]
    assert rollout.stage == "done", (rollout, log)
    size = sum(f["size_bytes"] for f in result["server"].signed["manifest"]["update"]["files"])
    total_chunks = sum(len(f["chunks"]) for f in result["server"].signed["manifest"]["update"]
                       ["files"])
    resent = rollout.bytes_served["glasses-1"] - size
    print(f"\nkill -9 after {had}/{total_chunks} chunks on disk; bytes re-sent: {resent} "
          f"(window {window} x {chunk} B)")
    assert 0 <= resent <= 2 * window * chunk
    assert had < total_chunks
    assert ModelStore(store).active_version("detector") == "1.1.0"
    assert ModelStore(store).get("detector").check_files() == []
