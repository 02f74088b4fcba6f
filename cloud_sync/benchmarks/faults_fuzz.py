"""Fault scenario 4 of `edgelens-sync bench faults` (cloud_sync/benchmarks/faults.py): mutated
and random input through every handler in-process (`fuzz_handlers`), then malformed messages
over MQTT to an ingest process, `serve` and `push` (threads) and a device's `edgelens-sync run`
(`fuzz_mqtt`). crashed = exceptions escaping a handler, processes or threads that died.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import random
import time
import zlib
from pathlib import Path
from typing import Any

from cloud_sync import batch as batch_codec
from cloud_sync import update_protocol as proto
from cloud_sync.benchmarks.faults_harness import (DEVICE, NOW, STOPPED, WorkerThread,
                                                  count_tracebacks, settle, spawn, write_config)
from cloud_sync.benchmarks.sync import stop_process, wait_until
from cloud_sync.errors import PayloadError
from cloud_sync.fleet.acl import enroll
from cloud_sync.fleet.delivery import UpdateServer, parse_request, parse_status, signed_desired
from cloud_sync.fleet.device_input import check_record
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.localbroker import LocalBroker
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status
from cloud_sync.fleet.serve import RolloutService
from cloud_sync.fleet.store import SqliteFleetStore
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.signing import keygen
from cloud_sync.sync_agent import SyncAgent

# the update agent's counters of messages it dropped
UPDATE_DROPS = ("ignored_malformed", "ignored_bad_control", "ignored_unsigned_control",
                "ignored_foreign", "ignored_unexpected_chunk", "ignored_bad_chunk",
                "dropped_inbox_full", "dropped_errors")


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
    cfg = write_config(folder, 1, models={"store": str(folder / "models")},
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
    dev_cfg = write_config(folder / "device", broker.port, models={"store": str(store)},
                           updates={**updates, "request_timeout_s": 600.0}, sync={"nice": 0})
    groups = folder / "groups.toml"                 # the operator's: membership comes from it
    enroll(groups, DEVICE, "lab")
    fleet_cfg = write_config(folder / "fleet", broker.port, device="fleet", updates=updates,
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
    ingest = spawn(logs / "ingest.log", "-m", "cloud_sync.fleet.cli", "ingest", "--config",
                   fleet_cfg.origin, "--worker-id", "faults-m")
    device = spawn(logs / "device.log", "-m", "cloud_sync.sync_cli", "run", "--config",
                   dev_cfg.origin)
    serve = WorkerThread(RolloutService(fleet_cfg, rollouts, refresh_s=0.5))
    push = WorkerThread(UpdateServer(fleet_cfg, Rollout(
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
        counts = json.loads(settle(lambda: json.dumps(dropped())))   # unchanged for 3 s
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
            "crashed": len(dead), "dead": dead, "tracebacks": count_tracebacks(logs),
            "dropped": counts, "unexpected": {
                "device_dropped_errors": ustats.get("dropped_errors"),
                "device_update_restarts": ustats.get("restarts"),
                "sync_updates_restarts": sync.get("updates_restarts"),
                "paho_handler_errors": serve.worker.link.dropped_messages +
                push.worker.link.dropped_messages}}
