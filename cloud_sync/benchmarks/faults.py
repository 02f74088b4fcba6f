"""`edgelens-sync bench faults [--json] [--quick]`: issue 11 measured, with a Mosquitto on a
free port, real processes and real SQLite files in a temp dir. One row per scenario:

1. kill -9 loop: a producer process (the pipeline's Recorder) and `edgelens-sync run` killed with
   SIGKILL at random moments, then both run to completion; an `edgelens-fleet ingest` process
   stores what arrives. Seq sets per device: written (device store) vs delivered (fleet DB);
   duplicated = one produced record under two seqs; holes = a record missing from the store
   while a later one of the same producer run is there.
2. broker kill -9 with the ingest worker offline (persistent session) after the device synced N
   records (all PUBACKed), restart on the same persistence file: 2 s after the last PUBACK (past
   `autosave_interval 1`) and right after it (the documented window, not held to zero).
3. disk full: the store on a 2 MB tmpfs (root only) filled while the producer writes, then
   freed. The frame-path p95 proxy is the producer's time per `Recorder.log_event` call.
4. fuzz: mutated and random input through every handler in-process, then malformed messages over
   MQTT to an ingest process, `serve` and `push` (threads) and a device's `edgelens-sync run`.
   crashed = exceptions escaping a handler, processes or threads that died.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from cloud_sync import batch as batch_codec
from cloud_sync import update_protocol as proto
from cloud_sync.benchmarks.sync import stop_process, wait_until
from cloud_sync.errors import PayloadError
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.store import SqliteFleetStore, check_record
from cloud_sync.fleet.localbroker import LocalBroker
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status
from cloud_sync.signing import keygen
from cloud_sync.sync_agent import SyncAgent
from cloud_sync.fleet.acl import enroll
from cloud_sync.fleet.delivery import UpdateServer, parse_request, parse_status, signed_desired
from cloud_sync.fleet.serve import RolloutService
from device.config import build, load, to_toml
from device.config_schema import SCHEMA
from device.metrics import percentiles
from device.telemetry import Recorder, TelemetryLogHandler, TelemetryStore

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "bench-faults"
NOW = time.time_ns()
# a clean stop: 0, or death by SIGTERM itself when it lands before the process installed its
# handler (its first second; systemd counts that as a clean exit too)
STOPPED = (0, -signal.SIGTERM)
UPDATE_DROPS = ("ignored_malformed", "ignored_bad_control", "ignored_unsigned_control",
                "ignored_foreign", "ignored_unexpected_chunk", "ignored_bad_chunk",
                "dropped_inbox_full", "dropped_errors")


def run(json_out: bool = False, quick: bool = False, seed: int = 11) -> dict[str, Any]:
    rng, rows = random.Random(seed), []
    with tempfile.TemporaryDirectory(prefix="edgelens-faults-") as tmp:
        tmp, n = Path(tmp), 1000 if quick else 3000
        broker = LocalBroker(tmp / "broker").start()
        steps = [("kill -9 loop", lambda: kill9(tmp / "k", broker, 8 if quick else 40, rng)),
                 ("broker kill -9, 2 s after last PUBACK", lambda: broker_crash(tmp / "b2", n, 2)),
                 ("broker kill -9, at last PUBACK (receipts)",
                  lambda: broker_crash(tmp / "b0", n, 0)),
                 ("broker kill -9, at last PUBACK, receipt_timeout_s = 0",
                  lambda: broker_crash(tmp / "b0-off", n, 0, receipts=False)),
                 ("disk full (2 MB tmpfs)", lambda: disk_full(tmp / "d", quick)),
                 ("fuzz, in-process handlers",
                  lambda: fuzz_handlers(tmp / "f", 500 if quick else 10_000)),
                 ("fuzz over MQTT", lambda: fuzz_mqtt(tmp / "m", broker, 200 if quick else 1000))]
        try:
            for name, step in steps:
                began = time.monotonic()
                try:
                    rows.append({"scenario": name, **step()})
                except Exception as exc:  # noqa: BLE001 - a harness failure is a row, not an end
                    rows.append({"scenario": name, "must_be_zero": True, "lost": None,
                                 "crashed": 1, "error": f"{type(exc).__name__}: {exc}"})
                rows[-1]["took_s"] = round(time.monotonic() - began, 1)
        finally:
            broker.kill()
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
               "quick": quick, "rows": rows}
    print(json.dumps(results, indent=2) if json_out else table(results))
    return results


# --- plumbing -------------------------------------------------------------------------------

def _config(folder: Path, port: int, device: str = DEVICE, **sections: dict):
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


def _spawn(log: Path, *args: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _tracebacks(folder: Path) -> int:
    return sum(p.read_text(errors="replace").count("Traceback") for p in folder.glob("*.log"))


class _Thread:
    """A worker's run(stop) on a thread."""

    def __init__(self, worker):
        self.worker, self.stop_event = worker, threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)


def _settle(value, target: int | None = None, quiet_s: float = 3.0, timeout: float = 60.0):
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


def _producer(log: Path, config: str, run_id: int, count: int, rate: float, progress: Path,
              timings: Path | None = None) -> subprocess.Popen:
    return _spawn(log, "-m", "cloud_sync.benchmarks.faults", "produce", config, str(run_id),
                  str(count), str(rate), str(progress), *([str(timings)] if timings else []))


def _frames(bodies) -> dict[int, list[int]]:
    """producer run → the `i` of each of its bench.frame records (repeats kept)."""
    runs: dict[int, list[int]] = {}
    for body in bodies:
        b = json.loads(body)
        if isinstance(b, dict) and b.get("event") == "bench.frame":
            runs.setdefault(b["fields"]["run"], []).append(b["fields"]["i"])
    return runs


# --- 1. kill -9 of the producer and the sync agent ------------------------------------------

def kill9(folder: Path, broker: LocalBroker, kills: int, rng: random.Random) -> dict[str, Any]:
    # a bandwidth cap below the production rate keeps batches going out at every kill
    sync = {"batch_records": 100, "max_inflight": 4, "max_bytes_per_s": 30_000}
    cfg = _config(folder, broker.port, sync=sync)
    logs, config = folder / "logs", cfg.origin
    logs.mkdir()
    ingest = _spawn(logs / "ingest.log", "-m", "cloud_sync.fleet.cli", "ingest", "--config",
                    config, "--worker-id", "faults-w1")
    time.sleep(1.0)
    procs: dict[str, subprocess.Popen] = {}
    runs, killed_runs, crashes, killed = [0], [], [], {"producer": 0, "agent": 0}
    early = [0]                 # SIGTERMs that landed before the process's handler

    def start(name: str) -> None:
        if name == "producer":
            runs[0] += 1
            procs[name] = _producer(logs / f"producer-{runs[0]}.log", config, runs[0], 3000,
                                    1000.0, folder / f"progress-{runs[0]}")
        else:
            procs[name] = _spawn(logs / "agent.log", "-m", "cloud_sync.sync_cli", "run",
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
        _config(folder, broker.port, sync={**sync, "max_bytes_per_s": 0})   # the last drain
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
    arrived = _frames(body for _, body in rows)
    in_store = {run_id: set(ii) for run_id, ii in _frames(r.body for r in stored).items()}
    not_stored = 0              # handed to a killed producer's recorder, never in the store
    for run_id in killed_runs:
        progress = folder / f"progress-{run_id}"
        made = int((progress.read_bytes().strip() if progress.exists() else b"") or b"0")
        not_stored += len(set(range(made)) - in_store.get(run_id, set()))
    resent = fleet.workers().get("faults-w1", {}).get("duplicates", 0)
    fleet.close()
    tracebacks = _tracebacks(logs)
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
        cfg = _config(folder, broker.port, sync={"batch_records": 50,
                                                 "receipt_timeout_s": 3.0 if receipts else 0.0})
        fleet = SqliteFleetStore(cfg.fleet.db)
        ingest = _Thread(FleetIngest(cfg, fleet, "faults-b"))   # creates its persistent session
        ingest.worker.link.wait_connected(10)
        time.sleep(1.5)                         # its announcement is in the broker's snapshot
        ingest.stop()
        recorder = Recorder.open(cfg.telemetry)
        for i in range(n):
            recorder.log_event("INFO", "bench.frame", {"run": 1, "i": i})
        recorder.close()
        agent, began = _Thread(SyncAgent(cfg, store=None)), time.monotonic()
        acked = wait_until(lambda: agent.worker.stats.acked_records >= n, 60, 0.005)
        sync_s = time.monotonic() - began
        time.sleep(wait_s)
        broker.kill()
        broker.start()
        ingest = _Thread(FleetIngest(cfg, fleet, "faults-b"))
        ingest.worker.link.wait_connected(10)
        delivered = _settle(lambda: fleet.record_count(DEVICE), n, quiet_s=8.0)
        confirmed = _settle(lambda: agent.worker.stats.confirmed_records,
                            n if receipts else None, quiet_s=2.0)
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
            "resent_unconfirmed": resent, "lost": n - delivered,
            "crashed": int(not acked) + errors,
            "claim": "0 lost" if wait_s >= 2 or receipts else
            "documented: without receipts about the last 1 s may be lost"}


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
        cfg = _config(folder, 1883, telemetry={"db_path": str(fs / "telemetry.sqlite"),
                                               "flush_interval_s": 0.1})
        proc = _producer(log, cfg.origin, 1, count, 500.0, folder / "progress", timings)
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
    kept = set(_frames(bodies).get(1, []))
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


# --- 4. fuzz ---------------------------------------------------------------------------------

SPECIAL = [b"", b"[" * 100_000 + b"]" * 100_000, b"{" * 50_000, b"1e999", b'{"a": NaN}',
           b"9" * 5000, b"\xff\xfe\x00", b"null", b"[]", b'"x"', b"{}",
           b'{"' + b"k" * 70_000 + b'": 1}', b'{"chunks": [' + b"0," * 30_000 + b"0]}"]
TEXTS = ["", "a", "glasses-1", "glasses-1\n", "x" * 300, "\u00e9\u0000", "../../etc/passwd",
         "ping", "1.0.0", "detector", "detector.tflite", "lab", "all", "halted", DEVICE]
SCALARS = [0, -1, 1, 2**63, 2**70, -2**63, 10**20, True, False, None, 0.5, -1e308, 1e308,
           5e-324, float("nan"), float("inf")]


@functools.lru_cache(maxsize=1)
def _bomb() -> bytes:
    return zlib.compress(b"0" * 10_000_000)


class Fuzzer:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def value(self, depth: int = 0) -> Any:
        r, pick = self.r, self.r.randrange(8 if depth < 3 else 6)
        if pick < 6:
            return [r.choice(SCALARS), r.choice(TEXTS), r.randrange(-5, 100_000)][pick // 2]
        if pick == 6:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {r.choice(TEXTS): self.value(depth + 1) for _ in range(r.randrange(4))}

    def mutate(self, obj: Any) -> Any:
        """A copy with one to three values inside replaced, removed, wrapped or added."""
        obj = copy.deepcopy(obj)
        for _ in range(self.r.randint(1, 3)):
            parent, node = None, obj
            while isinstance(node, (dict, list)) and node and self.r.random() < 0.7:
                key = self.r.choice(list(node) if isinstance(node, dict) else range(len(node)))
                parent, node = (node, key), node[key]
            if parent is None:
                if isinstance(obj, dict):
                    obj[self.r.choice(TEXTS)] = self.value()
                continue
            (container, key), action = parent, self.r.random()
            if action < 0.6:
                container[key] = self.value()
            elif action < 0.8 and isinstance(container, dict):
                del container[key]
            else:
                container[key] = [node] if action < 0.9 else {"x": node}
        return obj

    def bytes(self, data: bytes) -> bytes:
        r, data = self.r, bytearray(data)
        for _ in range(r.randint(1, 4)):
            at, op = r.randrange(len(data) + 1), r.randrange(5)
            if op == 0 and data:
                data[min(at, len(data) - 1)] ^= 1 << r.randrange(8)
            elif op == 1:
                del data[at:]
            elif op == 2:
                data[at:at] = r.choice([b"NaN", b"1e999", b"\xff", b"[[[[", b"}", b'"', b",",
                                        b"-0", b"\\u0000", r.randbytes(r.randint(1, 8))])
            elif op == 3:
                data[at:at] = data[at:r.randrange(at, len(data) + 1)]
            else:
                del data[at:at + r.randint(1, 4)]
        return bytes(data)

    def payload(self, seed: Any) -> bytes:
        x = self.r.random()
        return json.dumps(self.mutate(seed)).encode() if x < 0.45 else \
            self.bytes(json.dumps(seed).encode()) if x < 0.85 else \
            json.dumps(self.value()).encode() if x < 0.97 else self.r.choice(SPECIAL)

    def telemetry(self, seed: Any) -> bytes:
        x = self.r.random()
        return zlib.compress(self.payload(seed)) if x < 0.85 else \
            self.bytes(zlib.compress(json.dumps(seed).encode())) if x < 0.95 else \
            self.r.choice(SPECIAL + [_bomb()])

    def chunk(self) -> bytes:
        if self.r.random() < 0.5:
            head = self.payload(CHUNK_HEADER)[:65535]
            return len(head).to_bytes(2, "big") + head + self.r.randbytes(self.r.randrange(64))
        return self.bytes(proto.encode_chunk(proto.ChunkHeader(**CHUNK_HEADER), b"data"))


BODIES = {"metric": {"window_s": 1.0, "counts": {"frames_captured": 30}, "gauges": {"cpu": 5.0},
                     "stats": {"latency_ms.recognize": {"n": 30, "p50": 20.0, "p95": 40.0}}},
          "prediction": {"prediction_id": "p1", "confidence": 0.9, "shadow": {"agree": True},
                         "models": {"recognizer": {"name": "crnn", "version": "3"}}},
          "log": {"severity": "INFO", "event": "frame", "logger": "x", "fields": {"i": 1}},
          "audit": {"action": "a"}, "quality": {"window_s": 60.0, "image": {}},
          "feedback": {"prediction_id": "p1"}}
STATUS = {"device": DEVICE, "backlog": {"log": 3}, "backlog_total": 3, "counters": {"x": 1}}
REQUEST = {"rollout": "r-push", "name": "detector", "version": "1.1.0",
           "file": "detector.tflite", "chunks": [0, 1, 2]}
UPDATE_STATUS = {"device": DEVICE, "group": "lab", "stats": {}, "models": {"detector": {
    "state": "downloading", "version": "1.1.0", "rollout": "r-push", "progress": 42.0,
    "reason": "", "active": "1.0.0", "checks": {"golden": True}}}}
CHUNK_HEADER = {"rollout": "r-fz", "name": "detector", "version": "1.1.0",
                "file": "detector.tflite", "index": 0}


def _batch(device: str) -> dict[str, Any]:
    return {"v": 1, "device": device, "boot_id": "b", "sent_wall_ns": NOW, "sent_mono_ns": 10**9,
            "records": [[k + 1, kind, NOW, 10**8 + k, "b", body]
                        for k, (kind, body) in enumerate(BODIES.items())]}


def _update_fixture(folder: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A signing key and a signed detector 1.1.0 (random bytes: never installed healthy)."""
    key, pub = folder / "keys" / "fleet.key", folder / "keys" / "fleet.pub"
    keygen(key, pub)
    version = folder / "fleet-models" / "detector" / "1.1.0"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text(json.dumps({"name": "detector", "version": "1.1.0"}))
    (version / "detector.tflite").write_bytes(os.urandom(20_000))
    return key, pub, signed_desired(version, str(key), 4096)


def _desired(signed: dict[str, Any], key: Path, rollout: str, group: str) -> bytes:
    return json.dumps(proto.desired_message(rollout, group, "all", [], signed, str(key))).encode()


class _Quiet(logging.Handler):
    """In place of the root handlers while fuzzing in-process: counts tracebacks."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.tracebacks += record.exc_info is not None


def fuzz_handlers(folder: Path, n: int) -> dict[str, Any]:
    """`n` inputs per handler. dropped: refused as malformed (PayloadError, or counted by the
    handler); unexpected: another exception that a catch-all turned into a drop; escaped: an
    exception out of what the network thread calls (a crash)."""
    key, pub, signed = _update_fixture(folder)
    (folder / "models").mkdir()
    cfg = _config(folder, 1, models={"store": str(folder / "models")},
                  updates={"trusted_keys": [str(pub)], "group": "lab"})
    f, desired = Fuzzer(7), json.loads(_desired(signed, key, "r-fz", "lab"))
    ingest = FleetIngest(cfg, SqliteFleetStore(folder / "fleet.sqlite"), "fuzz")
    drops: list[type] = []
    real_drop = ingest._drop
    ingest._drop = lambda exc, *a: (drops.append(type(exc)), real_drop(exc, *a))[1]
    agent = SyncAgent(cfg, store=None)          # with its UpdateAgent; the link never starts
    updates = agent.updates
    updates._prepare_store()
    rollout = Rollout(id="r-push", group="lab", name="detector", version="1.1.0", source="",
                      stage="all")

    def strict(call) -> str:    # a parser: PayloadError is a drop, anything else unexpected
        try:
            return "dropped" if call() == "dropped" else "accepted"
        except PayloadError:
            return "dropped"
        except Exception:  # noqa: BLE001
            return "unexpected"

    def ingest_msg(telemetry: bool) -> str:
        dev = f.r.choice([DEVICE] * 4 + ["fz-1", "fz-1\n", "-bad", "x" * 70])
        leaf, payload = ("telemetry", f.telemetry(_batch(dev if f.r.random() < 0.9 else DEVICE))
                         ) if telemetry else ("availability", f.bytes(b"online")) \
            if f.r.random() < 0.2 else ("status", f.payload(STATUS))
        mark = len(drops)
        ingest._handle(f"edgelens/{dev}/{leaf}", payload, None)
        return "accepted" if len(drops) == mark else \
            "dropped" if drops[-1] is PayloadError else "unexpected"

    def command() -> str:
        topic = f"edgelens/{DEVICE}/cmd/" + f.r.choice(["ping", "ping", "reboot", "x" * 300])
        payload = f.payload({"n": 1})
        outcome = strict(lambda: agent._parse_command(topic, payload))
        agent._handle_inbound(topic, payload, None)
        return outcome

    def update_message() -> str:
        topic, payload = (proto.desired_topic("edgelens", "lab", "detector"),
                          f.payload(desired)) if f.r.random() < 0.5 else \
            (f"edgelens/{DEVICE}/update/chunk", f.chunk())
        s, counts = updates.stats, lambda: [getattr(updates.stats, k) for k in UPDATE_DROPS]
        mark, errors = counts(), s.dropped_errors
        updates._dispatch(topic, payload)
        return "unexpected" if s.dropped_errors != errors else \
            "dropped" if counts() != mark else "accepted"

    def record_body() -> str:
        kind = f.r.choice(list(BODIES) + ["bogus"])
        body = f.mutate(BODIES.get(kind, {})) if f.r.random() < 0.8 else f.value()
        return "dropped" if check_record(kind, body) is not None else "accepted"

    def status_then_record() -> None:
        for entry in parse_status(f.payload(UPDATE_STATUS))[1].values():
            record_status(rollout, "fz-1", entry)

    handlers = {
        "batch.decode": lambda: strict(lambda: batch_codec.decode(f.telemetry(_batch(DEVICE)),
                                                                  1 << 22)),
        "ingest telemetry (FleetIngest._handle)": lambda: ingest_msg(True),
        "ingest status/availability (FleetIngest._handle)": lambda: ingest_msg(False),
        "fleet_store.check_record": lambda: strict(record_body),
        "sync agent command (_parse_command, _handle_inbound)": command,
        "update_protocol.decode_chunk": lambda: strict(lambda: proto.decode_chunk(f.chunk())),
        "update_protocol desired (parse_json, check_desired)": lambda: strict(
            lambda: proto.check_desired(proto.parse_json(f.payload(desired), "d", 1 << 20))),
        "update agent (UpdateAgent._dispatch)": update_message,
        "update_delivery.parse_request": lambda: strict(lambda: parse_request(f.payload(REQUEST))),
        "update_delivery.parse_status + rollout.record_status": lambda: strict(
            status_then_record)}
    root, quiet = logging.getLogger(), _Quiet()
    saved = root.handlers[:], root.level
    root.handlers[:] = [quiet]
    root.setLevel(logging.WARNING)
    table: dict[str, dict[str, Any]] = {}
    try:
        for name, handler in handlers.items():
            counts = table[name] = {"inputs": n, "accepted": 0, "dropped": 0, "unexpected": 0,
                                    "escaped": 0}
            for _ in range(n):
                try:
                    counts[handler()] += 1
                except Exception as exc:  # noqa: BLE001 - escaped: the finding
                    counts["escaped"] += 1
                    counts.setdefault("first_escape", f"{type(exc).__name__}: {exc}"[:200])
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ingest.store.close()
    escaped = sum(c["escaped"] for c in table.values())
    return {"must_be_zero": True, "lost": None, "inputs": n * len(handlers), "crashed": escaped,
            "escaped": escaped, "unexpected": sum(c["unexpected"] for c in table.values()),
            "tracebacks": quiet.tracebacks, "handlers": table}


def fuzz_mqtt(folder: Path, broker: LocalBroker, n: int) -> dict[str, Any]:
    """`n` malformed messages to each of: an ingest process, serve, push, a device agent."""
    key, pub, signed = _update_fixture(folder)
    store, logs = folder / "device" / "models", folder / "logs"
    store.mkdir(parents=True)
    logs.mkdir()
    updates = {"trusted_keys": [str(pub)], "group": "lab", "chunk_size": 4096,
               "rollout_file": str(folder / "rollouts.json")}
    # the device asks once for chunks of an offer it took (no push drives it): no re-requests
    dev_cfg = _config(folder / "device", broker.port, models={"store": str(store)},
                      updates={**updates, "request_timeout_s": 600.0}, sync={"nice": 0})
    groups = folder / "groups.toml"                 # the operator's: membership comes from it
    enroll(groups, DEVICE, "lab")
    fleet_cfg = _config(folder / "fleet", broker.port, device="fleet", updates=updates,
                        fleet={"groups_file": str(groups)})
    source = str(folder / "fleet-models" / "detector" / "1.1.0")
    rollouts = RolloutFile(updates["rollout_file"])
    rollouts.save(Rollout(id="r-serve", group="lab3", name="detector", version="1.1.0",
                          source=source, stage="done"))
    sender = MqttLink(LinkSettings(port=broker.port, client_id="faults-fuzzer"))
    sender.start_connected(10)
    sender.publish(proto.desired_topic("edgelens", "lab3", "detector"),
                   _desired(signed, key, "r-serve", "lab3"), retain=True)
    latest: dict[str, dict] = {}
    dev_status, upd_status = f"edgelens/{DEVICE}/status", f"edgelens/{DEVICE}/update/status"
    watch = MqttLink(LinkSettings(port=broker.port, client_id="faults-watch"),
                     on_message=lambda t, p, _: latest.__setitem__(t, json.loads(p or b"{}")))
    watch.subscribe(dev_status)
    watch.subscribe(upd_status)
    watch.start_connected(10)
    ingest = _spawn(logs / "ingest.log", "-m", "cloud_sync.fleet.cli", "ingest", "--config",
                    fleet_cfg.origin, "--worker-id", "faults-m")
    device = _spawn(logs / "device.log", "-m", "cloud_sync.sync_cli", "run", "--config",
                    dev_cfg.origin)
    serve = _Thread(RolloutService(fleet_cfg, rollouts, refresh_s=0.5))
    push = _Thread(UpdateServer(fleet_cfg, Rollout(
        id="r-push", group="lab2", name="detector", version="1.1.0", source=source,
        stage="all"), signed, rollouts, discover_s=0.2, control_key=str(key)))
    fleet, f = SqliteFleetStore(folder / "fleet" / "fleet.sqlite"), Fuzzer(13)
    desired = json.loads(_desired(signed, key, "r-fz", "lab"))

    def dropped() -> dict[str, Any]:
        ustats = latest.get(upd_status, {}).get("stats", {})
        return {"ingest": fleet.workers().get("faults-m", {}).get("dropped", 0),
                "ingest_records_refused": sum(v for r in fleet.refused().values()
                                              for k, v in r.items()
                                              if not k.startswith("message.")),
                "serve": serve.worker.stats.ignored_requests + serve.worker.inbox.dropped,
                "push": push.worker.stats.ignored_requests + push.worker.inbox.dropped,
                "device_commands": latest.get(dev_status, {}).get("sync", {}).get(
                    "inbound_dropped"),
                "device_updates": sum(ustats.get(k, 0) for k in UPDATE_DROPS)}
    try:
        wait_until(lambda: upd_status in latest and dev_status in latest, 30, 0.1)
        time.sleep(1.0)
        for _ in range(n):
            dev, pick = f.r.choice(["fz-1", "fz-2", "fz-3"]), f.r.random()
            topic = f.r.choice(["telemetry"] * 6 + ["status"] * 3 + ["availability"])
            sender.publish(f"edgelens/{dev}/{topic}", f.telemetry(_batch(dev))
                           if topic == "telemetry" else f.payload(STATUS)
                           if topic == "status" else f.bytes(b"online"))
            leaf = f.r.choice(["request", "status"])          # to serve and push both
            sender.publish(f"edgelens/{dev}/update/{leaf}", f.payload(
                {**REQUEST, "rollout": f.r.choice(["r-push", "r-serve"])}
                if leaf == "request" else UPDATE_STATUS))
            sender.publish(*(
                (f"edgelens/{DEVICE}/cmd/" + f.r.choice(["ping", "reboot"]), f.payload({"n": 1}))
                if pick < 0.35 else (proto.desired_topic("edgelens", "lab", "detector"),
                                     f.payload(desired))
                if pick < 0.7 else (f"edgelens/{DEVICE}/update/chunk", f.chunk())))
        sender.publish("edgelens/fz-ok/telemetry", zlib.compress(json.dumps(
            _batch("fz-ok")).encode()))                       # then a good batch: stored?
        stored = wait_until(lambda: fleet.record_count("fz-ok") == len(BODIES), 60, 0.2)
        counts = json.loads(_settle(lambda: json.dumps(dropped())))   # unchanged for 3 s
        alive = {"ingest": ingest.poll() is None and stored, "device": device.poll() is None,
                 "serve": serve.thread.is_alive(), "push": push.thread.is_alive()}
    finally:
        serve.stop()
        push.stop()
        rcs = {"ingest": stop_process(ingest, 15.0), "device": stop_process(device, 15.0)}
        sender.stop()
        watch.stop()
        fleet.close()
    ustats, sync = latest.get(upd_status, {}).get("stats", {}), \
        latest.get(dev_status, {}).get("sync", {})
    dead = [k for k, ok in alive.items() if not ok] + [k for k, rc in rcs.items()
                                                       if rc not in STOPPED]
    return {"must_be_zero": True, "lost": None, "messages_per_target": n, "sent": 3 * n,
            "crashed": len(dead), "dead": dead, "tracebacks": _tracebacks(logs),
            "dropped": counts, "unexpected": {
                "device_dropped_errors": ustats.get("dropped_errors"),
                "device_update_restarts": ustats.get("restarts"),
                "sync_updates_restarts": sync.get("updates_restarts"),
                "paho_handler_errors": serve.worker.link.dropped_messages +
                push.worker.link.dropped_messages}}


# --- output ---------------------------------------------------------------------------------

def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [f"{m['cpus']} CPUs, load average {m['load_avg_1m']} at the end"
           + (" (--quick)" if results["quick"] else ""),
           f"{'scenario':38} {'lost':>6} {'crashed':>7}  details"]
    for row in results["rows"]:
        lost = "-" if row.get("lost") is None else row["lost"]
        detail = ", ".join(f"{k} {json.dumps(v) if isinstance(v, (dict, list)) else v}"
                           for k, v in row.items() if k not in (
                               "scenario", "must_be_zero", "lost", "crashed", "handlers"))
        out.append(f"{row['scenario']:38} {lost:>6} {row['crashed']:>7}  {detail}")
        out += [f"    {name:53} " + ", ".join(f"{k} {v}" for k, v in c.items())
                for name, c in row.get("handlers", {}).items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """The benchmark; exit status 1 when a count that must be zero is not."""
    import argparse
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["produce"]:
        return produce(argv[1:])
    parser = argparse.ArgumentParser(prog="edgelens-sync bench faults",
                                     description="Records lost and processes crashed under "
                                                 "faults (cloud_sync/benchmarks/faults.py).")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)    # the links' reconnect warnings are expected
    rows = run(args.json, args.quick)["rows"]
    return int(any(r["must_be_zero"] and (r.get("lost") or r["crashed"]) for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
