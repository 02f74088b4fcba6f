"""The fault benchmark's harness (`edgelens-sync bench faults`, cloud_sync/benchmarks/faults.py),
shared by its scenarios: a config per role in a temp folder, processes spawned with their output
in a log, workers on threads, polling until a count settles, and the stand-in pipeline process
(`produce`: log events through the real Recorder) that the kill -9 and disk-full scenarios run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from device.config import build, load, to_toml
from device.config_schema import SCHEMA
from device.telemetry import Recorder, TelemetryLogHandler

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "bench-faults"
NOW = time.time_ns()
# a clean stop: 0, or death by SIGTERM itself when it lands before the process installed its
# handler (its first second; systemd counts that as a clean exit too)
STOPPED = (0, -signal.SIGTERM)


def write_config(folder: Path, port: int, device: str = DEVICE, **sections: dict):
    """A config for one role in `folder` (also written to folder/edgelens.toml, for the
    processes); `sections` override or add to the benchmark's settings."""
    folder.mkdir(parents=True, exist_ok=True)
    raw: dict[str, dict] = {
        "telemetry": {"db_path": str(folder / "telemetry.sqlite"), "device_id": device,
                      "system_metrics": False},
        "mqtt": {"port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0, "keepalive_s": 5},
        "sync": {"idle_poll_s": 0.05, "retry_delay_s": 0.2, "status_interval_s": 1.0},
        "fleet": {"db": str(folder / "fleet.sqlite"), "share_group": f"faults-{folder.name}"}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    cfg = build(raw, SCHEMA, str(folder / "edgelens.toml"))
    (folder / "edgelens.toml").write_text(to_toml(cfg))
    return cfg


def spawn(log: Path, *args: str) -> subprocess.Popen:
    """`python ARGS` from the repository root, its output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))


def count_tracebacks(folder: Path) -> int:
    """Tracebacks in the *.log files of `folder` (each one a crash or an escaped error)."""
    return sum(p.read_text(errors="replace").count("Traceback") for p in folder.glob("*.log"))


class WorkerThread:
    """A worker's run(stop) on a thread."""

    def __init__(self, worker):
        self.worker, self.stop_event = worker, threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)


def settle(value, target: int | None = None, quiet_s: float = 3.0, timeout: float = 60.0):
    """Poll value() until it reaches `target` or has not changed for quiet_s; → last value."""
    last, since, end = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < end:
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        if (target is not None and now >= target) or time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.1)
    return last


def produce(argv: list[str]) -> int:
    """The stand-in pipeline: CONFIG RUN COUNT RATE PROGRESS [TIMINGS]. COUNT log events through
    the real Recorder (and its log handler, as in the pipeline) at RATE/s; the number of calls
    made goes into PROGRESS every 20 calls; TIMINGS gets each call's monotonic stamp and time."""
    config, run_id, count, rate, progress = argv[0], int(argv[1]), int(argv[2]), \
        float(argv[3]), argv[4]
    logging.basicConfig(level=logging.INFO,
                        format="%(created).6f %(levelname)s %(name)s: %(message)s")
    recorder = Recorder.open(load(config).telemetry)
    logging.getLogger().addHandler(TelemetryLogHandler(recorder, logging.INFO))
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    recorder.audit("producer_started", {"run": run_id})
    stamps, took, start = [], [], time.monotonic()
    for i in range(count):
        t0 = time.perf_counter()
        recorder.log_event("INFO", "bench.frame", {"run": run_id, "i": i})
        took.append(time.perf_counter() - t0)
        stamps.append(time.monotonic())
        if i % 20 == 19:
            os.pwrite(fd, b"%12d" % (i + 1), 0)
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
    recorder.close()
    stats = recorder.stats().__dict__
    if len(argv) > 5:
        Path(argv[5]).write_text(json.dumps({"stamps": stamps, "took": took, "stats": stats}))
    print("produced", json.dumps(stats), flush=True)
    return 0


def spawn_producer(log: Path, config: str, run_id: int, count: int, rate: float,
                   progress: Path, timings: Path | None = None) -> subprocess.Popen:
    """`produce` in its own process (the benchmark's entry point runs it: `produce` argv)."""
    return spawn(log, "-m", "cloud_sync.benchmarks.faults", "produce", config, str(run_id),
                 str(count), str(rate), str(progress), *([str(timings)] if timings else []))


def frame_runs(bodies) -> dict[int, list[int]]:
    """producer run → the `i` of each of its bench.frame records (repeats kept)."""
    runs: dict[int, list[int]] = {}
    for body in bodies:
        b = json.loads(body)
        if isinstance(b, dict) and b.get("event") == "bench.frame":
            runs.setdefault(b["fields"]["run"], []).append(b["fields"]["i"])
    return runs
