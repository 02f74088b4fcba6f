"""Model-update benchmark (edgelens-fleet bench-updates, scripts/bench_updates.py).

Through a local Mosquitto: time to update a 2 MB model version on N device processes (10)
(edgelens-sync run, health judged by the agent: golden + latency), bytes re-sent after a kill -9
in the middle of a download, and the frame-path p95 of a pipeline running beside the devices
(synthetic camera, the store's detector) while idle and while the devices download and install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cloud_sync.fleet.acl import enroll
from cloud_sync.fleet.delivery import UpdateServer, signed_desired
from cloud_sync.fleet.localbroker import LocalBroker
from cloud_sync.fleet.rollout import Rollout, RolloutFile
from cloud_sync.signing import keygen
from device.config import build, load, to_toml
from device.config_schema import SCHEMA
from device.live.capture import Capture
from device.live.pipeline import FramePathSettings, Pipeline
from device.live.recognition import Budgets, RecognitionWorker
from device.live.sources import SyntheticSource
from device.metrics import Metrics, percentiles
from device.modelstore.store import default_root, file_entry
from device.stages.detector import Detector
from device.geometry import crop_line
from device.stages.recognizer import LineReading

ROOT = Path(__file__).resolve().parents[2]



def make_version(store: Path, version: str, total_bytes: int) -> Path:
    """A detector version from the store's .tflite, padded with an extra file to total_bytes."""
    source = sorted(default_root().glob("detector/*/detector.tflite"))
    if not source:
        raise SystemExit("bench-updates needs models/detector/<version>/detector.tflite")
    directory = store / "detector" / version
    directory.mkdir(parents=True)
    shutil.copyfile(source[0], directory / "detector.tflite")
    pad = max(0, total_bytes - (directory / "detector.tflite").stat().st_size)
    (directory / "vocab.bin").write_bytes(np.random.default_rng(1).bytes(pad))
    (directory / "MODEL_CARD.md").write_text(f"# detector {version} (benchmark)\n")
    manifest = {"name": "detector", "version": version, "task": "text-detection",
                "artifact": file_entry(directory / "detector.tflite"),
                "extra_files": [file_entry(directory / "vocab.bin")], "quantization": "int8-full",
                "signatures": {}, "compatible_backends": ["litert"], "latency_ms": {},
                "budget_ms": 1000, "accuracy": {}, "training": {}, "intended_use": "bench",
                "limitations": "bench", "golden": []}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


class Bench:
    def __init__(self, workdir: Path, chunk_size: int):
        self.workdir, self.chunk_size = workdir, chunk_size
        self.broker = LocalBroker(workdir / "broker").start()
        self.key, self.pub = workdir / "fleet.key", workdir / "fleet.pub"
        self.groups = workdir / "groups.toml"
        self.groups.write_text("[groups]\n")
        keygen(self.key, self.pub)

    def config(self, name: str, store: Path, **updates) -> Path:
        """A config; a device (any name but "fleet") is enrolled in its group in the
        operator's groups file, which push takes membership from."""
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        group = updates.pop("group", "bench")
        if name != "fleet":
            enroll(self.groups, name, group)
        raw = {"telemetry": {"db_path": str(folder / "t.sqlite"), "device_id": name,
                             "system_metrics": False},
               "mqtt": {"port": self.broker.port, "reconnect_min_s": 0.1,
                        "reconnect_max_s": 1.0, "keepalive_s": 5},
               "sync": {"idle_poll_s": 0.05, "nice": 10},
               "fleet": {"groups_file": str(self.groups)},
               "models": {"store": str(store)},
               "updates": {"trusted_keys": [str(self.pub)],
                           "group": group,
                           "health_source": "agent", "chunk_size": self.chunk_size,
                           "latency_runs": 2, "rollout_file": str(folder / "rollouts.json"),
                           **updates}}
        cfg = build(raw, SCHEMA, str(folder / "edgelens.toml"))
        (folder / "edgelens.toml").write_text(to_toml(cfg))
        return folder / "edgelens.toml"

    def device(self, name: str, **updates) -> tuple[subprocess.Popen, Path]:
        store = self.workdir / name / "models"
        make_version(store, "1.0.0", 200_000)
        config = self.config(name, store, **updates)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "cloud_sync.sync_cli", "run", "--config",
                                 str(config)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        return proc, store

    def push(self, directory: Path, members: list[str], rollout_id: str,
             timeout: float = 300, group: str = "bench") -> tuple[Rollout, UpdateServer, float]:
        cfg = load(self.config("fleet", self.workdir / "fleet-models"))
        signed = signed_desired(directory, str(self.key), self.chunk_size)
        rollout = Rollout(id=rollout_id, group=group, name="detector",
                          version=directory.name, source=str(directory), stage="all",
                          canary_percent=0.0, members=list(members))
        server = UpdateServer(cfg, rollout, signed, RolloutFile(self.workdir / "r.json"),
                              discover_s=0.2)
        start = time.perf_counter()
        result = server.run(threading.Event(), timeout)
        return result, server, time.perf_counter() - start

    def close(self) -> None:
        self.broker.kill()


def _frame_path_probe():
    """A pipeline on a synthetic camera with the store's detector; → (metrics, stop)."""

    class Blank:
        def read(self, crop):
            return LineReading("", 0.0)

    artifact = sorted(default_root().glob("detector/*/detector.tflite"))[0]
    metrics = Metrics()
    worker = RecognitionWorker(Detector(artifact, num_threads=1), Blank(), crop_line, metrics,
                               Budgets(recognition_ms=400))
    pipeline = Pipeline(Capture(SyntheticSource(seed=1, fps=20), metrics), worker, metrics,
                        FramePathSettings(frame_budget_ms=50))
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    return metrics, pipeline


def _p95(values) -> float | None:
    return percentiles(values, (95,), digits=2)["p95"]


def run(json_out: bool = False, devices: int = 10, size: int = 2_000_000,
        chunk_size: int = 64 * 1024) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="edgelens-bench-updates-"))
    bench = Bench(workdir, chunk_size)
    results: dict = {"devices": devices, "size_bytes": size, "chunk_size": chunk_size}
    procs = []
    try:
        metrics, pipeline = _frame_path_probe()
        names = [f"dev-{i:02d}" for i in range(devices)]
        started = [bench.device(n) for n in names]
        procs += [p for p, _ in started]
        deadline = time.monotonic() + 120     # devices connect; the probe settles
        while time.monotonic() < deadline and metrics.counter("frames_displayed") < 60:
            time.sleep(0.2)
        hist = metrics.histogram("frame_path")
        idle_from = len(hist.samples())
        time.sleep(3.0)
        idle = hist.samples()[idle_from:]
        dropped0 = metrics.counter("frames_dropped")
        version = make_version(workdir / "fleet-models", "1.1.0", size)
        busy_from = len(hist.samples())
        rollout, server, seconds = bench.push(version, names, f"bench-{devices}")
        busy = hist.samples()[busy_from:]
        results["update"] = {
            "seconds": round(seconds, 2), "stage": rollout.stage,
            "healthy": sum(rollout.device_state(d) == "healthy" for d in names),
            "bytes_served": server.stats.bytes_served,
            "bytes_per_device": sorted(set(rollout.bytes_served.values()))}
        results["frame_path_p95_ms"] = {"idle": _p95(idle), "during_update": _p95(busy),
                                        "idle_frames": len(idle), "update_frames": len(busy),
                                        "frames_dropped_during_update":
                                            metrics.counter("frames_dropped") - dropped0}
        for p in procs:
            p.terminate()
        single_from, dropped1 = len(hist.samples()), metrics.counter("frames_dropped")
        results["resume"] = _resume(bench, size, chunk_size)
        results["frame_path_p95_ms"]["during_one_device_update"] = _p95(
            hist.samples()[single_from:])
        results["frame_path_p95_ms"]["frames_dropped_during_one_device_update"] = \
            metrics.counter("frames_dropped") - dropped1
        pipeline.stop_event.set()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if json_out:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(report_lines(results)))
    return results


def report_lines(results: dict) -> list[str]:
    """The text report of `run`'s results (the device count is the one measured)."""
    u, f, r = results["update"], results["frame_path_p95_ms"], results["resume"]
    devices, size = results["devices"], results["size_bytes"]
    noun = "device" if devices == 1 else "devices"
    return [f"update {size / 1e6:.1f} MB on {devices} {noun}: {u['seconds']} s "
            f"({u['healthy']}/{devices} healthy, {u['bytes_served']} bytes served)",
            f"frame-path p95: idle {f['idle']} ms, during the {devices}-device update "
            f"{f['during_update']} ms (dropped {f['frames_dropped_during_update']}), during "
            f"one device's update with kill -9 {f['during_one_device_update']} ms (dropped "
            f"{f['frames_dropped_during_one_device_update']})",
            f"kill -9 at {r['had_percent']}% of the download: {r['resent_bytes']} bytes "
            f"re-sent of {r['size_bytes']} ({r['stage']})"]


def _resume(bench: Bench, size: int, chunk_size: int) -> dict:
    proc, store = bench.device("dev-resume", window_chunks=2, group="resume")
    version = bench.workdir / "fleet-models" / "detector" / "1.1.0"
    record = store / ".staging" / "detector-1.1.0.received"
    out: dict = {}
    pusher = threading.Thread(target=lambda: out.update(zip(("r", "s", "t"), bench.push(
        version, ["dev-resume"], "bench-resume", group="resume"))))
    pusher.start()
    total = -(-size // chunk_size)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            record.is_file() and len(record.read_text().splitlines()) >= total * 0.4):
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    had = len(set(record.read_text().splitlines())) if record.is_file() else 0
    config = bench.workdir / "dev-resume" / "edgelens.toml"
    proc = subprocess.Popen([sys.executable, "-m", "cloud_sync.sync_cli", "run", "--config",
                             str(config)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pusher.join(300)
    proc.terminate()
    proc.wait(10)
    rollout = out["r"]
    served = rollout.bytes_served.get("dev-resume", 0)
    files = out["s"].signed["manifest"]["update"]["files"]
    exact = sum(f["size_bytes"] for f in files)
    return {"size_bytes": exact, "had_chunks": had,
            "had_percent": round(100 * had / max(sum(len(f["chunks"]) for f in files), 1)),
            "bytes_served": served, "resent_bytes": served - exact, "stage": rollout.stage}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--devices", type=int, default=10, help="simulated devices (10)")
    parser.add_argument("--size", type=int, default=2_000_000, help="version bytes (2 MB)")
    args = parser.parse_args(argv)
    run(json_out=args.json, devices=args.devices, size=args.size)
    return 0
