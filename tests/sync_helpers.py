"""Small helpers for the sync/fleet tests: waiting, subprocesses, in-process workers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from cloud_sync.benchmarks import sync as bench_sync
from cloud_sync.benchmarks.sync import wait_until  # noqa: F401  (the tests' polling helper)
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.store import open_fleet_store
from cloud_sync.sync_agent import SyncAgent
from device.telemetry import Recorder

ROOT = Path(__file__).resolve().parent.parent


def python(*args: str, **kwargs) -> subprocess.Popen:
    """A Python subprocess from the repository root (logs to a pipe we can read on failure)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def sync_agent_process(config: Path) -> subprocess.Popen:
    return python("-m", "cloud_sync.sync_cli", "run", "--config", str(config))


def ingest_process(config: Path, db: Path, worker: str) -> subprocess.Popen:
    return python("-m", "cloud_sync.fleet.cli", "ingest", "--config", str(config),
                  "--db", str(db), "--worker-id", worker)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """Stop it as the benchmarks do (SIGTERM, then SIGKILL); its output."""
    bench_sync.stop_process(proc, timeout)
    return proc.stdout.read().decode(errors="replace") if proc.stdout else ""


class Running:
    """An agent or ingest worker on a thread, stopped by `stop()`."""

    def __init__(self, worker):
        self.worker = worker
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "worker did not stop"


def run_ingest(cfg, worker: str = "w1") -> tuple[Running, object]:
    store = open_fleet_store(cfg.fleet.db)
    running = Running(FleetIngest(cfg, store, worker))
    assert running.worker.link.wait_connected(10), "ingest did not connect"
    return running, store


def run_agent(cfg) -> Running:
    return Running(SyncAgent(cfg, store=None))


def produce_logs(cfg, n: int, event: str = "frame.done") -> None:
    """n log records {"i": 0..n-1} through the real Recorder, then a clean close."""
    recorder = Recorder.open(cfg.telemetry)
    for i in range(n):
        recorder.log_event("INFO", event, {"i": i})
    recorder.close()
