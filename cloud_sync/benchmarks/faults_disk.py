"""Fault scenario 3 of `edgelens-sync bench faults` (cloud_sync/benchmarks/faults.py): the
telemetry store on a 2 MB tmpfs filled while the producer writes, then freed (root only; else
the row says skipped). The frame-path p95 proxy is the producer's time per `Recorder.log_event`
call, before, during and after the fault.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from cloud_sync.benchmarks.faults_harness import frame_runs, spawn_producer, write_config
from cloud_sync.benchmarks.sync import wait_until
from device.metrics import percentiles
from device.telemetry import TelemetryStore


# --- 3. disk full ---------------------------------------------------------------------------

def _fill(fs: Path) -> Path:
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for size in (1 << 16, 4096, 512, 1):
        try:
            while os.write(fd, b"\0" * size) == size:
                pass
        except OSError:
            pass
    os.close(fd)
    return filler


def _stamp(line: str) -> float | None:
    try:
        return float(line.split(" ", 1)[0])      # the producer's log lines start with it
    except ValueError:
        return None


def disk_full(folder: Path, quick: bool) -> dict[str, Any]:
    skipped = {"must_be_zero": False, "lost": None, "crashed": 0}
    fs = folder / "fs"
    fs.mkdir(parents=True)
    if os.geteuid() != 0:
        return {**skipped, "skipped": "needs root"}
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(fs)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {**skipped, "skipped": f"needs root (mount: {done.stderr.strip()[:80]})"}
    before, fault, after = (2.0, 2.0, 2.0) if quick else (3.0, 5.0, 3.0)
    count, log, timings = int(500 * (before + fault + after)), folder / "producer.log", \
        folder / "timings.json"
    try:
        cfg = write_config(folder, 1883, telemetry={"db_path": str(fs / "telemetry.sqlite"),
                                                    "flush_interval_s": 0.1})
        proc = spawn_producer(log, cfg.origin, 1, count, 500.0, folder / "progress", timings)
        wait_until(lambda: (fs / "telemetry.sqlite").exists(), 20)
        time.sleep(before)
        fill_wall, fill_mono, filler = time.time(), time.monotonic(), _fill(fs)
        time.sleep(fault)
        filler.unlink()
        free_wall, free_mono, rc = time.time(), time.monotonic(), proc.wait(120)
        store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry, quarantine=False)
        bodies, counters = [r.body for r in store.records("log")], store.counters()
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(fs)], capture_output=True)
    timed = json.loads(timings.read_text()) if timings.exists() else \
        {"stamps": [], "took": [], "stats": {}}
    phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for stamp, took in zip(timed["stamps"], timed["took"]):
        phases["before" if stamp < fill_mono else "during" if stamp < free_mono
               else "after"].append(took)
    text = log.read_text(errors="replace")
    lines = [t for t in map(_stamp, text.splitlines()) if t is not None]
    kept = set(frame_runs(bodies).get(1, []))
    return {"must_be_zero": True, "written": count, "in_store": len(kept),
            "lost": count - len(kept),
            "evicted_counted": sum(v for k, v in counters.items() if k.startswith("evicted.")),
            "overflow": timed["stats"].get("overflow"),
            "write_failures": counters.get("write_failures", 0),
            "recovered": any(json.loads(b).get("event") == "telemetry.recovered" for b in bodies),
            "log_lines_during_fault": sum(fill_wall <= t <= free_wall for t in lines),
            "log_lines_total": len(lines), "fault_s": fault,
            "call_p95_us": {k: percentiles([s * 1e6 for s in v], (95,), digits=1)["p95"]
                            for k, v in phases.items() if v},
            "crashed": int(rc != 0) + text.count("Traceback")}
