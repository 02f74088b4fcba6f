"""Fault scenarios 1 and 2 of `edgelens-sync bench faults` (cloud_sync/benchmarks/faults.py):
the producer and the sync agent killed -9 at random while records flow, and the broker killed
-9 with the ingest worker offline, right at or 2 s after the last PUBACK.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from cloud_sync.benchmarks.faults_harness import (DEVICE, STOPPED, WorkerThread, count_tracebacks,
                                                  frame_runs, settle, spawn, spawn_producer,
                                                  write_config)
from cloud_sync.benchmarks.sync import stop_process, wait_until
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.localbroker import LocalBroker
from cloud_sync.fleet.store import SqliteFleetStore
from cloud_sync.sync_agent import SyncAgent
from device.telemetry import Recorder, TelemetryStore


# --- 1. kill -9 of the producer and the sync agent ------------------------------------------

def kill9(folder: Path, broker: LocalBroker, kills: int, rng: random.Random) -> dict[str, Any]:
    # a bandwidth cap below the production rate keeps batches going out at every kill
    sync = {"batch_records": 100, "max_inflight": 4, "max_bytes_per_s": 30_000}
    cfg = write_config(folder, broker.port, sync=sync)
    logs, config = folder / "logs", cfg.origin
    logs.mkdir()
    ingest = spawn(logs / "ingest.log", "-m", "cloud_sync.fleet.cli", "ingest", "--config",
                   config, "--worker-id", "faults-w1")
    time.sleep(1.0)
    procs: dict[str, subprocess.Popen] = {}
    runs, killed_runs, crashes, killed = [0], [], [], {"producer": 0, "agent": 0}
    early = [0]                 # SIGTERMs that landed before the process's handler

    def start(name: str) -> None:
        if name == "producer":
            runs[0] += 1
            procs[name] = spawn_producer(logs / f"producer-{runs[0]}.log", config, runs[0],
                                         3000, 1000.0, folder / f"progress-{runs[0]}")
        else:
            procs[name] = spawn(logs / "agent.log", "-m", "cloud_sync.sync_cli", "run",
                                "--config", config)

    def stop(name: str, proc: subprocess.Popen) -> None:
        rc = stop_process(proc, 15.0)
        early[0] += rc == -signal.SIGTERM
        if rc not in STOPPED:
            crashes.append(f"{name} ended with {rc} on SIGTERM")

    start("producer")
    start("agent")
    try:
        while sum(killed.values()) < kills:
            time.sleep(rng.uniform(0.2, 1.2))
            draw = rng.random()
            for name in ["producer"] * (draw < 0.4 or draw >= 0.8) + ["agent"] * (draw >= 0.4):
                rc = procs[name].poll()
                if rc is None:
                    procs[name].kill()
                    procs[name].wait()
                    killed[name] += 1
                    killed_runs += [runs[0]] if name == "producer" else []
                elif not (name == "producer" and rc == 0):
                    crashes.append(f"{name} exited with {rc} by itself")
                start(name)
        if procs["producer"].wait(60) != 0:          # the last run goes to the end
            crashes.append(f"producer exited with {procs['producer'].returncode}")
        stop("agent", procs["agent"])
        write_config(folder, broker.port, sync={**sync, "max_bytes_per_s": 0})  # the last drain
        start("agent")
        store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry, quarantine=False)
        stored = store.records()
        store.close()
        written = {r.seq for r in stored}
        fleet = SqliteFleetStore(cfg.fleet.db)
        wait_until(lambda: written <= set(fleet.seqs(DEVICE)), 90, 0.2)
        time.sleep(0.5)
    finally:
        for name, proc in [*procs.items(), ("ingest", ingest)]:
            stop(name, proc)
    rows = fleet.execute("SELECT seq, body FROM records WHERE device = ?", [DEVICE])
    delivered = {seq for seq, _ in rows}
    arrived = frame_runs(body for _, body in rows)
    in_store = {run_id: set(ii) for run_id, ii in frame_runs(r.body for r in stored).items()}
    not_stored = 0              # handed to a killed producer's recorder, never in the store
    for run_id in killed_runs:
        progress = folder / f"progress-{run_id}"
        made = int((progress.read_bytes().strip() if progress.exists() else b"") or b"0")
        not_stored += len(set(range(made)) - in_store.get(run_id, set()))
    resent = fleet.workers().get("faults-w1", {}).get("duplicates", 0)
    fleet.close()
    tracebacks = count_tracebacks(logs)
    return {"must_be_zero": True, "kills": killed, "producer_runs": runs[0],
            "written": len(written), "delivered": len(delivered & written),
            "lost": len(written - delivered) + not_stored,
            "undelivered": len(written - delivered), "handed_over_not_stored": not_stored,
            "not_in_store": len(delivered - written),
            "duplicated": sum(len(ii) - len(set(ii)) for ii in arrived.values()),
            "holes_in_store": sum(max(ii) + 1 - len(ii) for ii in in_store.values()),
            "resent_dropped_by_seq": resent,
            "crashed": len(crashes) + tracebacks, "crashes": crashes[:5],
            "sigterm_before_handler": early[0],
            "tracebacks": tracebacks}


# --- 2. broker crash while the ingest worker is offline -------------------------------------

def broker_crash(folder: Path, n: int, wait_s: float, receipts: bool = True
                 ) -> dict[str, Any]:
    """The ingest worker makes its persistent session (and announces receipts), goes away;
    the device syncs `n` records; `wait_s` after the last PUBACK the broker is killed -9 and
    started again on its persistence file, then the ingest comes back. The device's agent
    runs throughout. With receipts (a 3 s receipt timeout here) what the broker lost is sent
    again; without ([sync] receipt_timeout_s = 0) a PUBACK was the end of it."""
    broker = LocalBroker(folder / "broker").start()
    agent = ingest = None
    try:
        cfg = write_config(folder, broker.port, sync={
            "batch_records": 50, "receipt_timeout_s": 3.0 if receipts else 0.0})
        fleet = SqliteFleetStore(cfg.fleet.db)
        ingest = WorkerThread(FleetIngest(cfg, fleet, "faults-b"))  # creates its persistent session
        ingest.worker.link.wait_connected(10)
        time.sleep(1.5)                         # its announcement is in the broker's snapshot
        ingest.stop()
        recorder = Recorder.open(cfg.telemetry)
        for i in range(n):
            recorder.log_event("INFO", "bench.frame", {"run": 1, "i": i})
        recorder.close()
        agent, began = WorkerThread(SyncAgent(cfg, store=None)), time.monotonic()
        acked = wait_until(lambda: agent.worker.stats.acked_records >= n, 60, 0.005)
        sync_s = time.monotonic() - began
        time.sleep(wait_s)
        broker.kill()
        broker.start()
        ingest = WorkerThread(FleetIngest(cfg, fleet, "faults-b"))
        ingest.worker.link.wait_connected(10)
        delivered = settle(lambda: fleet.record_count(DEVICE), n, quiet_s=8.0)
        # records still waiting for a receipt (0 once the fleet confirmed them all); quiet
        # past a receipt timeout, so a receipt lost in the restart is answered by a re-send
        left = -settle(lambda: -agent.worker.store.unconfirmed(), 0 if receipts else None,
                       quiet_s=5.0 if receipts else 2.0)
        # receipts taken: a copy sent again is confirmed too, so this may pass n
        confirmed = agent.worker.stats.confirmed_records
        resent = agent.worker.stats.resent_unconfirmed
    finally:
        for thread in (agent, ingest):
            if thread is not None:
                thread.stop()
        broker.kill()
    fleet.close()
    errors = ingest.worker.link.dropped_messages
    return {"must_be_zero": wait_s >= 2 or receipts, "acked": n if acked else None,
            "sync_s": round(sync_s, 2), "delivered": delivered, "confirmed": confirmed,
            "unconfirmed_left": left, "resent_unconfirmed": resent, "lost": n - delivered,
            "crashed": int(not acked) + errors,
            "claim": "0 lost" if wait_s >= 2 or receipts else
            "documented: without receipts about the last 1 s may be lost"}
