"""`edgelens-fleet bench-ingest`: thousands of simulated devices through a real Mosquitto into
W real ingest processes on one shared subscription and the real fleet store.

* Devices (`SimulatedDevices`) are lightweight: each has its own id, topic, boot id, sequence
  and clocks and sends real batches (`cloud_sync.batch.encode`, QoS 1), but the batches of all
  devices go out over a few MQTT connections (--publishers): 5,000 paho clients in one process
  would measure their threads, not the fleet. A device sends every --batch-interval seconds the
  records it made since (rate × interval), each dated when it was made; devices are spread
  evenly over the interval.
* Lag: from a record's creation (its wall_ns, this machine's clock) to the first poll (every
  _POLL_S) of the store that returns it, for a sample of devices (_LAG_SAMPLE), through the
  store's own query API; the poll interval is the resolution. `lag_to_worker_ms` is the part
  until the worker received the batch (its received_ns): the rest is the store's.
* Lost: records the broker acknowledged (PUBACK) that the store lacks once ingest went quiet;
  duplicated: rows beyond one per (device, seq).
* CPU seconds per part (publishers in this process, Mosquitto, the ingest workers, PostgreSQL)
  say where the time went.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from cloud_sync import batch as batch_codec
from cloud_sync import topics
from cloud_sync.fleet.localbroker import LocalBroker
from cloud_sync.fleet.localpostgres import LocalPostgres
from cloud_sync.fleet.store import FleetStore, open_fleet_store
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.config import build, to_toml
from device.config_schema import SCHEMA
from device.metrics import percentiles
from device.telemetry.records import StoredRecord

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "edgelens"
_POLL_S = 0.1
_LAG_SAMPLE = 50
_QUIET_S = 20.0            # ingest is done when the store gained nothing for this long
_BODY = '{"severity":"INFO","event":"frame.done","fields":{"frames":30}}'


@dataclass(frozen=True)
class BenchSettings:
    devices: int = 1000
    rate: float = 1.0
    workers: int = 1
    db: str | None = None
    seconds: float = 20.0
    batch_interval: float = 1.0
    publishers: int = 4


class SimulatedDevices:
    """Devices sim-00001 … as (seq, boot, clocks) state; `send_batch(i)` publishes device i's
    records made since its last batch over one of `connections` shared MQTT connections."""

    def __init__(self, count: int, rate: float, port: int, connections: int):
        self.ids = [f"sim-{i:05d}" for i in range(1, count + 1)]
        self.rate = rate
        self.links = [MqttLink(LinkSettings(port=port, client_id=f"bench-pub-{n}"),
                               on_ack=lambda mid, reason, n=n: self._ack(n, mid, reason))
                      for n in range(connections)]
        self.boot = uuid.uuid4().hex[:12]
        self.next_seq = [1] * count
        self.owed = [0.0] * count           # fractional records carried to the next batch
        self.last_ns = [time.time_ns()] * count
        self.acked = [0] * count            # records in batches the broker acknowledged
        self.failed = 0                     # batches the broker refused (reason >= 0x80)
        self._pending: dict[tuple[int, int], tuple[int, int]] = {}
        self._early: dict[tuple[int, int], int] = {}    # acks that beat publish() returning
        self._lock = threading.Lock()

    def connect(self) -> None:
        for link in self.links:
            link.start()
            if not link.wait_connected(10):
                raise RuntimeError("bench publisher did not connect to the local broker")

    def close(self) -> None:
        for link in self.links:
            link.stop()

    def send_batch(self, i: int, count: int | None = None) -> int:
        """Publish device i's records due by now at its rate (or `count` of them); how many."""
        now = time.time_ns()
        if count is None:
            due = self.owed[i] + self.rate * (now - self.last_ns[i]) / 1e9
            count = int(due)
            self.owed[i] = due - count
        start_ns, self.last_ns[i] = self.last_ns[i], now
        if count == 0:
            return 0
        seq = self.next_seq[i]
        self.next_seq[i] += count
        step = (now - start_ns) // count
        mono = time.monotonic_ns()
        records = [StoredRecord(seq + k, "log", now - (count - 1 - k) * step,
                                mono - (count - 1 - k) * step, self.boot, _BODY)
                   for k in range(count)]
        payload = batch_codec.encode(self.ids[i], self.boot, (now, mono), records)
        n = i % len(self.links)
        # not under self._lock: paho calls on_ack holding its own lock, which publish() takes
        mid = self.links[n].publish(f"{PREFIX}/{self.ids[i]}/{topics.TELEMETRY}", payload,
                                    qos=1, content_type=batch_codec.CONTENT_TYPE)
        with self._lock:
            self._pending[(n, mid)] = (i, count)
            early = self._early.pop((n, mid), None)
        if early is not None:
            self._ack(n, mid, early)
        return count

    def _ack(self, n: int, mid: int, reason: int) -> None:
        with self._lock:
            if (n, mid) not in self._pending:
                self._early[(n, mid)] = reason
                return
            i, count = self._pending.pop((n, mid))
            if reason >= 0x80:
                self.failed += 1
            else:
                self.acked[i] += count

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._pending)


def run_bench(s: BenchSettings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgelens-bench-ingest-") as tmp:
        folder = Path(tmp)
        server, db = None, s.db
        if db is None:
            server = LocalPostgres(durable=True).start()
            db = server.create_database("bench_ingest")
        broker = LocalBroker(folder / "broker").start()
        workers: list[subprocess.Popen] = []
        try:
            store = open_fleet_store(db)          # applies the schema before workers start
            config = _write_config(folder, broker.port, db)
            workers = [_worker(config, db, f"bench-w{n}") for n in range(1, s.workers + 1)]
            _wait_subscribed(broker, s.workers)
            result = _measure(s, broker, store, workers, server)
            store.close()
            result["db"] = "postgresql (throwaway, durable)" if server else _kind(db)
            return result
        finally:
            for proc in workers:
                proc.terminate()
            for proc in workers:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            broker.stop()
            if server:
                server.stop()


def _measure(s: BenchSettings, broker: LocalBroker, store: FleetStore,
             workers: list[subprocess.Popen], server: Any) -> dict[str, Any]:
    devices = SimulatedDevices(s.devices, s.rate, broker.port, s.publishers)
    devices.connect()
    sample = devices.ids[::max(1, s.devices // _LAG_SAMPLE)][:_LAG_SAMPLE]
    poller = _LagPoller(store, sample)
    parts = _Parts(broker, workers, server)
    poller.start()
    t0 = time.monotonic()
    sent, behind = _send(devices, s)
    send_s = time.monotonic() - t0
    while devices.unacked and time.monotonic() - t0 < send_s + 60:
        time.sleep(0.1)
    acked = sum(devices.acked)
    drain_s = _wait_quiet(store, acked, t0)
    poller.stop()
    cpu = parts.cpu_seconds()
    devices.close()
    stored, distinct = _counts(store)
    lags, to_worker = sorted(poller.lags_ms), sorted(poller.to_worker_ms)
    return {"devices": s.devices, "rate_per_device": s.rate, "workers": s.workers,
            "publishers": s.publishers, "batch_interval_s": s.batch_interval,
            "offered_records_per_s": round(s.devices * s.rate),
            "sent_records": sent, "acked_records": acked, "broker_refused_batches":
            devices.failed, "send_s": round(send_s, 1),
            "publisher_behind_max_s": round(behind, 2),
            "stored_records": stored,
            "throughput_records_per_s": round(stored / drain_s) if drain_s else None,
            "lag_ms": {"p50": _pct(lags, 50), "p95": _pct(lags, 95), "p99": _pct(lags, 99),
                       "n": len(lags)},
            "lag_to_worker_ms": {"p50": _pct(to_worker, 50), "p95": _pct(to_worker, 95),
                                 "p99": _pct(to_worker, 99)},
            "lost": acked - distinct if acked >= distinct else 0,
            "duplicated": stored - distinct, "cpu_s": cpu}


def _send(devices: SimulatedDevices, s: BenchSettings) -> tuple[int, float]:
    """Every device once per batch_interval, spread evenly; (records sent, how far the senders
    fell behind their schedule at worst, in s)."""
    n = len(devices.ids)
    start = time.monotonic()
    stop_at = start + s.seconds
    slot = s.batch_interval / n
    sent, behind = 0, 0.0
    for k in itertools.count():
        due = start + k * slot
        if due >= stop_at:
            break
        wait = due - time.monotonic()
        if wait > 0.002:
            time.sleep(wait)
        else:
            behind = max(behind, -wait)
        sent += devices.send_batch(k % n)
    return sent, behind


def _wait_quiet(store: FleetStore, acked: int, t0: float) -> float:
    """Seconds from the start until the store held every acknowledged record, or until it
    gained nothing for _QUIET_S (then what is missing counts as lost)."""
    last, last_change = -1, time.monotonic()
    while True:
        count = store.record_count()
        now = time.monotonic()
        if count >= acked:
            return now - t0
        if count != last:
            last, last_change = count, now
        elif now - last_change > _QUIET_S:
            return last_change - t0
        time.sleep(0.2)


class _LagPoller:
    """Polls the store for the sampled devices' records above the seq up to which each has
    all (the primary key answers it; two workers may store a device's batches out of order);
    lag = first seen − wall_ns."""

    def __init__(self, store: FleetStore, devices: list[str]):
        self.store = store
        self.complete = {device: 0 for device in devices}     # every seq up to this seen
        self.seen: dict[str, set[int]] = {device: set() for device in devices}
        self.lags_ms: list[float] = []
        self.to_worker_ms: list[float] = []     # creation → the worker received its batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        terms = " OR ".join(["(device = ? AND seq > ?)"] * len(devices))
        self._sql = f"SELECT device, seq, wall_ns, received_ns FROM records WHERE {terms}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._poll()                                 # what landed since the last poll

    def _run(self) -> None:
        while not self._stop.wait(_POLL_S):
            self._poll()

    def _poll(self) -> None:
        polled = time.time_ns()
        args = [v for item in self.complete.items() for v in item]
        for device, seq, wall_ns, received_ns in self.store.execute(self._sql, args):
            if seq in self.seen[device]:
                continue
            self.seen[device].add(seq)
            self.lags_ms.append((polled - wall_ns) / 1e6)
            self.to_worker_ms.append((received_ns - wall_ns) / 1e6)
        for device, seen in self.seen.items():
            while self.complete[device] + 1 in seen:
                self.complete[device] += 1
                seen.discard(self.complete[device])


class _Parts:
    """CPU seconds of each part, from when this object is made."""

    def __init__(self, broker: LocalBroker, workers: list[subprocess.Popen], server: Any):
        self.groups = {"publishers+poller (bench process)": [psutil.Process()],
                       "mosquitto": [psutil.Process(broker.pid)],
                       "ingest workers": [psutil.Process(w.pid) for w in workers],
                       "postgres": _postgres_processes(server)}
        self.start = {name: self._cpu(procs) for name, procs in self.groups.items()}

    @staticmethod
    def _cpu(procs: list[psutil.Process]) -> float:
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def cpu_seconds(self) -> dict[str, float]:
        if self.groups["postgres"]:                 # backends started after we looked
            self.groups["postgres"] = self.groups["postgres"][:1] + \
                self.groups["postgres"][0].children()
        return {name: round(self._cpu(procs) - self.start[name], 1)
                for name, procs in self.groups.items()}


def _postgres_processes(server: Any) -> list[psutil.Process]:
    if server is None or server.folder is None:
        return []
    pid_file = server.folder / "data" / "postmaster.pid"
    try:
        main = psutil.Process(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, psutil.Error):
        return []
    return [main, *main.children()]


def _counts(store: FleetStore) -> tuple[int, int]:
    stored = store.record_count()
    [(distinct,)] = store.execute("SELECT count(*) FROM (SELECT DISTINCT device, seq "
                                  "FROM records) AS d")
    return stored, distinct


def _pct(values: list[float], p: float) -> float | None:
    return percentiles(values, (p,), digits=1)[f"p{p}"]


def _kind(db: str) -> str:
    return "postgresql" if db.startswith(("postgresql://", "postgres://")) else "sqlite"


def _write_config(folder: Path, port: int, db: str) -> Path:
    cfg = build({"mqtt": {"port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
                 "fleet": {"db": db}, "logging": {"level": "WARNING"}}, SCHEMA,
                str(folder / "fleet.toml"))
    path = folder / "fleet.toml"
    path.write_text(to_toml(cfg))
    return path


def _worker(config: Path, db: str, name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "cloud_sync.fleet.cli", "ingest",
                             "--config", str(config), "--db", db, "--worker-id", name],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_subscribed(broker: LocalBroker, workers: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = broker.log_file.read_text(errors="replace") if broker.log_file.exists() else ""
        if text.count("edgelens-fleet-bench-w") >= workers:
            time.sleep(1.0)                    # their subscriptions follow the connect
            return
        time.sleep(0.1)
    raise RuntimeError(f"{workers} ingest workers did not connect within {timeout} s")
