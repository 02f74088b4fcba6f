"""Issue 11 on the fleet's update side, against a real Mosquitto: what devices send cannot end
`push` or `serve` or break `rollout status`; one small chunk request cannot make the fleet send
a flood; a device's group is the operator's groups file, not what its status claims."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

import pytest

from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status
from cloud_sync.fleet.delivery import UpdateServer, signed_desired
from cloud_sync.fleet.membership import Membership
from cloud_sync.fleet.serve import RolloutService
from fixtures_broker import config_for
from sync_helpers import wait_until
from cloud_sync.fleet.acl import enroll
from update_helpers import device_config, fleet_keys, make_version, publish_raw

pytestmark = pytest.mark.broker


def _status(group, model_entry=None, **extra) -> bytes:
    body = {"device": "x", "group": group, **extra}
    if model_entry is not None:
        body["models"] = {"detector": model_entry}
    return json.dumps(body).encode()


@contextlib.contextmanager
def pushing(cfg, key, directory, *, rollout_id, members=(), canary=0.0, timeout=30.0,
            sender=None):
    """An UpdateServer (what `push` runs) on a thread; yields it, then its result."""
    signed = signed_desired(directory, str(key), cfg.updates.chunk_size)
    rollout = Rollout(id=rollout_id, group="lab", name=directory.parent.name,
                      version=directory.name, source=str(directory), canary_percent=canary,
                      stage="canary" if canary else "all", promote_percent=100.0,
                      halt_percent=20.0, members=list(members))
    server = UpdateServer(cfg, rollout, signed, RolloutFile(cfg.updates.rollout_file),
                          discover_s=0.5)
    for name, value in (sender or {}).items():
        setattr(server.sender, name, value)
    stop, result = threading.Event(), {}

    def run():
        try:
            result["rollout"] = server.run(stop, timeout)
        except BaseException as exc:  # noqa: BLE001  the test reports it
            result["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.link.connected or not thread.is_alive(), 10)
        wait_until(lambda: False, 0.8)                 # discovery over, desired published
        server.result = result
        yield server
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive()


class ChunkWatch:
    """Counts the chunk messages a device's chunk topic carries."""

    def __init__(self, cfg, device):
        self.count, self.bytes = 0, 0
        self.link = MqttLink(LinkSettings.from_config(cfg.mqtt, f"watch-{os.getpid()}"),
                             on_message=self._on)
        self.link.subscribe(f"edgelens/{device}/update/chunk")

    def _on(self, topic, payload, props):
        self.count += 1
        self.bytes += len(payload)

    def __enter__(self):
        self.link.start()
        assert self.link.wait_connected(10)
        wait_until(lambda: False, 0.3)
        return self

    def __exit__(self, *exc):
        self.link.stop()


def test_push_and_rollout_status_survive_what_devices_send(tmp_path, broker, capsys):
    key, pub = fleet_keys(tmp_path)
    cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    for n in range(5, 10):                       # enrolled: what they send is judged on merit
        enroll(tmp_path / "groups.toml", f"glasses-{n}", "lab")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=20_000)
    rid = "r-hostile"
    status = "edgelens/{}/update/status"
    for device, payload in {
            "glasses-9": b'{"group": "lab", "models": [1]}',
            "glasses-8": _status("lab", {"state": "downloading", "rollout": rid,
                                         "progress": "abc", "active": [1], "reason": {}}),
            "glasses-7": _status("lab", {"state": "healthy", "rollout": rid,
                                         "checks": {"p50_ms": 1e999}}),
            "glasses-6": b'{"group": "lab", "models": {"detector": {"progress": NaN}}}',
            "glasses-5": b"[" * 50_000 + b"]" * 50_000}.items():
        publish_raw(cfg, status.format(device), payload, retain=True)
    request = "edgelens/glasses-8/update/request"
    with pushing(cfg, key, new, rollout_id=rid, members=["glasses-8"], timeout=4) as server:
        for payload in (b'{"rollout": []}', b'{"rollout": "r-hostile", "file": [], "chunks": 1}',
                        b'{"rollout": "r-hostile", "file": "detector.tflite", "chunks": "all"}',
                        b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000,
                        b'{"rollout": {"a": 1}, "file": {}, "chunks": [[]]}'):
            publish_raw(cfg, request, payload)
        publish_raw(cfg, status.format("glasses-8"), b'{"group": "lab", "models": "x"}')
        wait_until(lambda: False, 1.0)
    assert "error" not in server.result, repr(server.result.get("error"))
    rollout = server.result["rollout"]
    assert rollout.reason in ("stopped", "timed out")           # it ran until told to stop
    assert server.stats.ignored_requests >= 6 + 3
    assert rollout.devices["glasses-8"]["progress"] is None
    assert rollout.devices["glasses-8"]["active"] is None
    assert "glasses-7" not in rollout.devices and "glasses-6" not in rollout.devices  # refused
    assert "glasses-9" not in rollout.members                   # its status was refused
    assert fleet_cli.main(["rollout", "status", "--config", str(cfg.origin), "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert {d["device"]: d["progress"] for d in shown["devices"]}["glasses-8"] == 0.0


def test_rollout_status_renders_a_rollout_file_with_odd_device_fields(tmp_path, capsys):
    """A rollout file written before the checks: progress "abc", lists where strings go."""
    cfg = config_for(tmp_path, None, updates={"rollout_file": str(tmp_path / "r.json")})
    odd = {"state": "downloading", "rollout": "r1", "progress": "abc", "active": [1],
           "reason": {"x": 1}}
    r = Rollout(id="r1", group="lab", name="detector", version="1.1.0", source="/nowhere",
                members=["glasses-1", "glasses-2"],
                devices={"glasses-1": odd, "glasses-2": {**odd, "progress": 1e308 * 10}},
                bytes_served={"glasses-1": "many"})
    (tmp_path / "r.json").write_text(json.dumps({"rollouts": [r.__dict__]}))
    assert fleet_cli.main(["rollout", "status", "--config", str(cfg.origin)]) == 0
    text = capsys.readouterr().out
    assert "glasses-1" in text and "glasses-2" in text
    assert fleet_cli.main(["rollout", "status", "--config", str(cfg.origin), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)[0]["devices"]
    assert [row["progress"] for row in rows] == [0.0, 0.0]
    clean = Rollout(id="r2", group="lab", name="detector", version="1", source="/x")
    record_status(clean, "glasses-1", {"progress": 1e999, "state": ["x"], "checks": {"a": 1}})
    assert clean.devices["glasses-1"]["progress"] is None
    assert clean.devices["glasses-1"]["state"] is None
    assert clean.devices["glasses-1"]["checks"] == {"a": 1}
    record_status(clean, "glasses-2", {"checks": {"p50_ms": float("inf")}})
    assert clean.devices["glasses-2"]["checks"] is None
    RolloutFile(tmp_path / "r2.json").save(clean)          # JSON without NaN/Infinity


def test_serve_survives_what_devices_send(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    stop = threading.Event()
    service = RolloutService(cfg, RolloutFile(cfg.updates.rollout_file), refresh_s=0.2)
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: service.link.connected, 10)
        for payload in (b'{"rollout": []}', b'{"rollout": {"x": 1}, "file": "a", "chunks": []}',
                        b"[" * 50_000 + b"]" * 50_000, b'{"rollout": NaN}'):
            publish_raw(cfg, "edgelens/glasses-1/update/request", payload)
        publish_raw(cfg, "edgelens/glasses-1/update/status", b'{"group": "lab", "models": [1]}')
        publish_raw(cfg, "edgelens/_group/lab/desired/detector", b'{"rollout": []}')
        assert wait_until(lambda: service.stats.ignored_requests >= 6, 10), service.stats
        wait_until(lambda: False, 0.5)                 # a refresh with that desired state
        alive = thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    assert alive


def test_one_request_cannot_make_the_fleet_send_a_flood(tmp_path, broker):
    """Chunk 0 listed twenty thousand times is sent once; a burst of requests for every chunk
    is paced to the device's byte budget."""
    key, pub = fleet_keys(tmp_path)
    cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=600_000)
    request = "edgelens/glasses-1/update/request"
    rid = "r-flood"
    rate, burst = 100_000, 200_000
    with ChunkWatch(cfg, "glasses-1") as watch, \
            pushing(cfg, key, new, rollout_id=rid, members=["glasses-1"], timeout=30,
                    sender={"rate": rate, "burst": burst}) as server:
        one = json.dumps({"rollout": rid, "name": "detector", "version": "1.1.0",
                          "file": "vocab.bin", "chunks": [0] * 20_000}).encode()
        assert len(one) < 64 * 1024
        publish_raw(cfg, request, one)
        assert wait_until(lambda: watch.count >= 1, 10)
        wait_until(lambda: False, 1.0)
        single = (server.stats.chunks_served, watch.count)
        chunks = len(server.files["vocab.bin"]["chunks"])
        every = json.dumps({"rollout": rid, "file": "vocab.bin",
                            "chunks": list(range(chunks))}).encode()
        start = time.monotonic()
        for _ in range(30):
            publish_raw(cfg, request, every)
        wait_until(lambda: False, 2.0)
        elapsed = time.monotonic() - start
        flood = server.stats.bytes_served
    assert single == (1, 1)
    chunk = cfg.updates.chunk_size
    # the budget left after the first chunk, refilled at `rate`, plus one chunk of slack
    assert flood <= burst + rate * (elapsed + 1.0) + chunk, (flood, elapsed)
    assert flood < 30 * 600_000 / 4
    assert server.stats.throttled > 0 and server.stats.ignored_chunks >= 20_000 - 1


def test_group_membership_comes_from_the_groups_file_not_the_device(tmp_path, broker):
    """A device claiming group `lab` is neither a member nor a canary, so its `rolled_back`
    cannot halt the rollout."""
    key, pub = fleet_keys(tmp_path)
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nlab = ["glasses-1"]\nfield = ["glasses-2"]\n')
    cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                        fleet={"groups_file": str(groups)})
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=5_000)
    rid = "r-spoof"
    statuses = {"glasses-1": _status("lab", {"state": "healthy", "rollout": rid,
                                             "version": "1.1.0"}),
                "aaa-spoof": _status("lab", {"state": "rolled_back", "rollout": rid,
                                             "reason": "spoofed"}),
                "glasses-2": _status("lab", {"state": "rolled_back", "rollout": rid,
                                             "reason": "spoofed"})}
    for device, payload in statuses.items():
        publish_raw(cfg, f"edgelens/{device}/update/status", payload, retain=True)
    with pushing(cfg, key, new, rollout_id=rid, canary=50.0, timeout=10) as server:
        assert wait_until(lambda: "rollout" in server.result, 15)
    rollout = server.result["rollout"]
    assert rollout.stage == "done", rollout.reason
    assert rollout.members == ["glasses-1"] and rollout.canaries == ["glasses-1"]
    assert server.stats.group_mismatches == 2

    # serve, too: glasses-2 claims lab but the file says field; glasses-1 claims nothing
    service = RolloutService(cfg, RolloutFile(cfg.updates.rollout_file))
    service._on_status("glasses-2", _status("lab"))
    service._on_status("glasses-1", _status(None))
    assert service.stats.group_mismatches == 1              # glasses-2's claim, ignored
    # a changed groups file is read again
    membership = Membership(groups)
    membership.RELOAD_EVERY_S = 0.0
    groups.write_text('[groups]\nlab = ["glasses-1", "glasses-2"]\n')
    os.utime(groups, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert membership.group_of("glasses-2") == "lab"


def test_no_groups_file_means_no_membership_and_enroll_moves_a_device(tmp_path):
    from cloud_sync.errors import SyncError
    for missing in (None, ""):
        with pytest.raises(SyncError, match=r"no \[fleet\] groups_file"):
            Membership(missing)
    cfg = config_for(tmp_path, None, updates={"rollout_file": str(tmp_path / "r.json")})
    with pytest.raises(SyncError, match=r"no \[fleet\] groups_file"):   # what serve runs
        RolloutService(cfg, RolloutFile(cfg.updates.rollout_file))
    groups = tmp_path / "groups.toml"
    assert enroll(groups, "glasses-1", "lab") == {"lab": ["glasses-1"]}
    enroll(groups, "glasses-2", "lab")
    assert enroll(groups, "glasses-1", "field") == {"field": ["glasses-1"], "lab": ["glasses-2"]}
    assert Membership(groups).group_of("glasses-1") == "field"
