"""Issue 11 ("Lose nothing, trust no input") on the device's update path, against a real
Mosquitto: a full disk during a download, messages that used to end the updates thread, a
crash of the updates loop while a version waits for its health verdict, and unsigned control
fields that could halt a download."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from cloud_sync import update_protocol as proto
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.fleet.rollout import Rollout, RolloutFile
from cloud_sync.signing import load_private
from cloud_sync.sync_agent import SyncAgent
from cloud_sync.fleet.delivery import UpdateServer, signed_desired
from device.modelstore import install
from device.modelstore.store import ModelStore
from sync_helpers import Running, run_agent, stop_process, sync_agent_process, wait_until
from update_helpers import (desired_body, device_config, device_store, fleet_keys,
                                  make_version, publish_raw, run_push)

pytestmark = pytest.mark.broker

DESIRED = proto.desired_topic("edgelens", "lab", "detector")


class Retained:
    """The latest message on each of some topics (device update status), from the broker."""

    def __init__(self, cfg, *topics: str):
        self.latest: dict[str, dict] = {}
        self.link = MqttLink(LinkSettings.from_config(cfg.mqtt, f"test-watch-{os.getpid()}"),
                             on_message=self._on_message)
        for topic in topics:
            self.link.subscribe(topic)
        self.link.start_connected(10)

    def _on_message(self, topic, payload, _props) -> None:
        if payload:
            self.latest[topic] = json.loads(payload)

    def get(self, topic: str) -> dict:
        return self.latest.get(topic, {})

    def stop(self) -> None:
        self.link.stop()


def _model(watch: Retained, device: str = "glasses-1") -> dict:
    return watch.get(f"edgelens/{device}/update/status").get("models", {}).get("detector", {})


def _stats(watch: Retained, device: str = "glasses-1") -> dict:
    return watch.get(f"edgelens/{device}/update/status").get("stats", {})


# --- 6: a full disk during the download ---------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """The device's model store on its own 4 MB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_full_disk_at_the_write_seam covers it")
    store = tmp_path / "glasses-1" / "models"
    store.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs",
                              str(store)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield store
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def _fill(directory) -> int:
    """Write zeros until the file system is full; → bytes written."""
    written = 0
    with open(directory / "filler", "wb", buffering=0) as handle:
        block = b"\0" * 65536
        while True:
            try:
                written += handle.write(block)
            except OSError:
                try:                     # the last few bytes, so nothing is left at all
                    while handle.write(b"\0" * 512):
                        written += 512
                except OSError:
                    return written


def test_full_disk_during_a_download_refuses_frees_staging_and_later_updates_work(
        tmp_path, broker, tiny_disk):
    """edgelens-sync as a process, its store on a 4 MB tmpfs that fills up mid-download: the
    update is refused with the reason in the status (not 'downloading' for ever), the staged
    chunks are removed, the replay memory (outside .staging) is intact and the next update
    installs."""
    key, pub = fleet_keys(tmp_path)
    store = tiny_disk
    make_version(store, "1.0.0")
    chunk = 4096
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store,
                        updates={"chunk_size": chunk, "window_chunks": 2})
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                              updates={"chunk_size": chunk})
    big = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=1_500_000)
    watch = Retained(fleet_cfg, "edgelens/glasses-1/update/status")
    proc = sync_agent_process(tmp_path / "glasses-1" / "edgelens.toml")
    record = store / ".staging" / "detector-1.1.0.received"
    result = {}
    pusher = threading.Thread(target=lambda: result.update(rollout=run_push(
        fleet_cfg, key, big, members=["glasses-1"], timeout=60)[0]))
    try:
        assert wait_until(lambda: _model(watch).get("state") == "idle", 20), watch.latest
        pusher.start()
        assert wait_until(lambda: record.is_file() and
                          len(record.read_text().splitlines()) >= 20, 30, interval=0.005)
        filled = _fill(store)
        assert wait_until(lambda: _model(watch).get("state") == "refused", 30), watch.latest
        pusher.join(70)
        refused = dict(_model(watch))
        staged = sorted(p.name for p in (store / ".staging").iterdir())
        memory = json.loads((store / ".update-memory.json").read_text())
        (store / "filler").unlink()
        small = make_version(tmp_path / "fleet-models", "1.2.0", pad_bytes=20_000)
        later, _ = run_push(fleet_cfg, key, small, members=["glasses-1"], timeout=60)
    finally:
        log = stop_process(proc)
        watch.stop()
    assert filled > 0
    assert result["rollout"].stage == "halted", (result, log)
    assert refused["version"] == "1.1.0" and "no space left on device" in refused["reason"], \
        refused
    assert "staging freed" in refused["reason"]
    assert staged == [], staged                          # the staged chunks were removed
    assert memory["issued"]["detector"] > 0             # the replay memory was kept
    assert later.stage == "done" and later.devices["glasses-1"]["state"] == "healthy", \
        (later, log)
    assert ModelStore(store).active_version("detector") == "1.2.0"
    assert "Traceback" not in log, log


def test_full_disk_at_the_write_seam(tmp_path, broker, monkeypatch):
    """The same without root: the chunk write fails with ENOSPC (os.pwrite patched) after a few
    chunks; an in-process agent refuses, frees the staging space and reports why."""
    import errno

    from cloud_sync import update_download
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store,
                        updates={"chunk_size": 4096, "window_chunks": 2})
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                              updates={"chunk_size": 4096})
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=200_000)
    real_pwrite, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) > 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(update_download.os, "pwrite", pwrite)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        rollout, _ = run_push(fleet_cfg, key, new, members=["glasses-1"], timeout=30)
        state = dict(agent.worker.updates.models["detector"])
        stats = agent.worker.updates.stats
    finally:
        agent.stop()
    assert rollout.stage == "halted", rollout
    assert state["state"] == "refused" and "no space left on device" in state["reason"], state
    assert list((store / ".staging").iterdir()) == []
    assert stats.dropped_errors == 0 and stats.restarts == 0
    assert (store / ".update-memory.json").is_file()
    assert ModelStore(store).active_version("detector") == "1.0.0"


# --- 7: one message must not stop updates on a device ------------------------------------------

def test_messages_that_ended_the_updates_thread_are_dropped_and_updates_go_on(tmp_path, broker):
    """edgelens-sync as a process gets a deeply nested desired state (RecursionError), a desired
    state with `"canaries": 5` (TypeError) and a chunk with a deeply nested header; each is
    counted and dropped, and a push afterwards still installs."""
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=30_000)
    watch = Retained(fleet_cfg, "edgelens/glasses-1/update/status")
    proc = sync_agent_process(tmp_path / "glasses-1" / "edgelens.toml")
    try:
        assert wait_until(lambda: _model(watch).get("state") == "idle", 20), watch.latest
        nested = b"[" * 200_000 + b"]" * 200_000
        publish_raw(fleet_cfg, DESIRED, b'{"v": 1, "rollout": "deep", "manifest": ' + nested +
                    b"}")
        signed = signed_desired(new, str(key), fleet_cfg.updates.chunk_size)
        publish_raw(fleet_cfg, DESIRED, json.dumps(
            {"v": 1, "rollout": "typed", "group": "lab", "stage": "canary", "canaries": 5,
             **signed}).encode())
        head = b"[" * 60_000
        publish_raw(fleet_cfg, "edgelens/glasses-1/update/chunk",
                    len(head).to_bytes(2, "big") + head + b"data")
        assert wait_until(lambda: _stats(watch).get("ignored_malformed", 0) >= 3, 20), \
            watch.latest
        rollout, _ = run_push(fleet_cfg, key, new, members=["glasses-1"], timeout=60)
        stats = dict(_stats(watch))
    finally:
        log = stop_process(proc)
        watch.stop()
    assert rollout.stage == "done", (rollout, log)
    assert rollout.devices["glasses-1"]["state"] == "healthy"
    assert ModelStore(store).active_version("detector") == "1.1.0"
    assert stats["ignored_malformed"] == 3 and stats["dropped_errors"] == 0, stats
    assert stats["restarts"] == 0, stats


def test_a_crashed_loop_is_restarted_and_the_version_waiting_for_its_verdict_is_judged(
        tmp_path, broker):
    """The updates loop fails while 1.1.0 waits for the pipeline's health verdict: it is
    restarted (counted and reported), and the verdict written afterwards is still acted on."""
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store,
                        updates={"health_source": "pipeline", "health_timeout_s": 600.0})
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    agent = run_agent(cfg)
    updates = agent.worker.updates
    result = {}
    pusher = threading.Thread(target=lambda: result.update(rollout=run_push(
        fleet_cfg, key, new, members=["glasses-1"], timeout=60)[0]))
    try:
        assert agent.worker.link.wait_connected(10)
        pusher.start()
        assert wait_until(lambda: updates.models.get("detector", {}).get("state") ==
                          "installed", 30), updates.models
        real_tick, failures = updates._tick, []

        def failing_tick(now):
            if not failures:
                failures.append(now)
                raise RuntimeError("injected failure in the updates loop")
            return real_tick(now)

        updates._tick = failing_tick
        assert wait_until(lambda: failures, 10)
        time.sleep(1.0)                               # the restart backoff (0.5 s) is over
        install.write_health(store / "detector" / "1.1.0",
                             {"healthy": True, "checks": {"judge": "test pipeline"}})
        pusher.join(60)
    finally:
        agent.stop()
    rollout = result["rollout"]
    assert rollout.stage == "done", rollout
    assert rollout.devices["glasses-1"]["state"] == "healthy"
    assert "1.1.0" in install.good_versions(ModelStore(store), "detector")
    assert updates.stats.restarts == 1 and "injected failure" in updates.stats.last_error


def test_a_dead_updates_thread_is_started_again(tmp_path, broker):
    """Should the updates thread end anyway (here: SystemExit on its first run), the sync agent
    starts it again and counts it; updates then work."""
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    worker = SyncAgent(cfg, store=None)
    real_run, runs = worker.updates.run, []

    def dying_run(stop):
        runs.append(1)
        if len(runs) == 1:
            raise SystemExit("injected: the thread ends")
        real_run(stop)

    worker.updates.run = dying_run
    agent = Running(worker)
    try:
        assert worker.link.wait_connected(10)
        assert wait_until(lambda: len(runs) == 2, 10)
        publish_raw(fleet_cfg, DESIRED, b"{not json")
        assert wait_until(lambda: worker.updates.stats.ignored_malformed == 1, 10)
    finally:
        agent.stop()
    assert worker.stats.updates_restarts == 1


# --- 12: unsigned control fields cannot halt a download -----------------------------------------

def test_unsigned_or_forged_control_cannot_halt_a_download_signed_control_can(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    private = load_private(key)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    v110 = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=30_000)
    v120 = make_version(tmp_path / "fleet-models", "1.2.0", pad_bytes=30_000)
    signed = signed_desired(v110, str(key), fleet_cfg.updates.chunk_size)
    agent = run_agent(cfg)
    updates = agent.worker.updates
    stats = updates.stats

    def state() -> dict:
        return dict(updates.models.get("detector", {}))

    def publish(body: dict) -> None:
        publish_raw(fleet_cfg, DESIRED, json.dumps(body).encode(), retain=True)

    try:
        assert agent.worker.link.wait_connected(10)
        # r1 starts under a signed control block; nobody serves its chunks yet
        publish(proto.desired_message("r1", "lab", "all", [], signed, private))
        assert wait_until(lambda: state().get("state") == "downloading", 15), state()
        # an unsigned halt of it (anyone who can publish there could send one)
        publish(json.loads(desired_body("r1", signed, stage="halted")))
        assert not wait_until(lambda: state().get("state") == "halted", 2), state()
        assert wait_until(lambda: stats.ignored_unsigned_control == 1, 10), stats
        assert state()["state"] == "downloading", state()
        # a signed control block whose stage was edited after signing
        forged = proto.desired_message("r1", "lab", "all", [], signed, private)
        forged["stage"] = forged["control"]["stage"] = "halted"
        publish(forged)
        assert wait_until(lambda: stats.ignored_bad_control == 1, 10), stats
        # an unsigned offer of something else cannot take the download over
        junk = {"manifest": {"name": "detector", "version": "9.0.0", "update": {}},
                "signature": {}}
        publish({"v": 1, "rollout": "junk", "group": "lab", "stage": "all", "canaries": [],
                 **junk})
        assert wait_until(lambda: stats.ignored_unsigned_control == 2, 10), stats
        # an offer with a signed control block that is refused (its manifest is unsigned)
        # leaves the download alone
        publish(proto.desired_message("junk", "lab", "all", [], junk, private))
        assert wait_until(lambda: state().get("rollout") == "junk", 10), state()
        assert state()["state"] == "refused" and "unsigned" in state()["reason"], state()
        assert updates.jobs["detector"].rollout == "r1"
        assert updates.jobs["detector"].state == "downloading"
        # the fleet serves r1 (its own desired state is unsigned: ignored, the job goes on)
        rollout, _ = run_push(fleet_cfg, key, v110, members=["glasses-1"], signed=signed,
                              rollout_id="r1", timeout=60)
        assert rollout.stage == "done", rollout
        assert ModelStore(store).active_version("detector") == "1.1.0"

        # r2: a signed halt is obeyed; the earlier signed "all" replayed after it is not
        signed2 = signed_desired(v120, str(key), fleet_cfg.updates.chunk_size)
        go = proto.desired_message("r2", "lab", "all", [], signed2, private)
        publish(go)
        assert wait_until(lambda: state().get("state") == "downloading"
                          and state().get("rollout") == "r2", 15), state()
        publish(proto.desired_message("r2", "lab", "halted", [], signed2, private))
        assert wait_until(lambda: state().get("state") == "halted", 10), state()
        publish(go)
        assert wait_until(lambda: stats.ignored_bad_control == 2, 10), stats
        time.sleep(0.5)
        assert state().get("state") == "halted" and "detector" not in updates.jobs
    finally:
        agent.stop()
    assert stats.dropped_errors == 0 and stats.restarts == 0
    assert ModelStore(store).active_version("detector") == "1.1.0"


class SignedControlServer(UpdateServer):
    """UpdateServer publishing signed control blocks: the change update_delivery.py needs."""

    control_key = None

    def desired(self):
        r = self.rollout
        return proto.desired_message(r.id, r.group, r.stage, r.canaries, self.signed,
                                     self.control_key)


def test_a_canary_rollout_with_signed_control_blocks(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    names = ["glasses-1", "glasses-2"]
    agents = [run_agent(device_config(tmp_path, broker, n, pub, device_store(tmp_path, n)))
              for n in names]
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=20_000)
    signed = signed_desired(new, str(key), fleet_cfg.updates.chunk_size)
    rollout = Rollout(id="r-signed", group="lab", name="detector", version="1.1.0",
                      source=str(new), canary_percent=50.0, stage="canary",
                      members=list(names))
    server = SignedControlServer(fleet_cfg, rollout, signed,
                                 RolloutFile(fleet_cfg.updates.rollout_file), discover_s=0.5)
    server.control_key = load_private(key)
    try:
        for a in agents:
            assert a.worker.link.wait_connected(10)
        result = server.run(threading.Event(), 60)
    finally:
        for a in agents:
            a.stop()
    assert result.stage == "done" and result.canaries == ["glasses-1"], result
    assert {d: result.devices[d]["state"] for d in names} == {d: "healthy" for d in names}
    for a in agents:
        assert a.worker.updates.jobs["detector"].signed_control is True
        assert a.worker.updates.stats.ignored_bad_control == 0


# --- 13: the sync agent counts and drops commands that raised out of its handler ------------------

def test_commands_that_raised_past_the_sync_agent_are_counted_and_dropped(tmp_path, broker):
    from fixtures_broker import config_for
    cfg = config_for(tmp_path, broker)
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        cmd = "edgelens/glasses-1/cmd/ping"
        publish_raw(cfg, cmd, b"[" * 30_000 + b"]" * 30_000)      # RecursionError
        publish_raw(cfg, cmd, b'{"n": ' + b"9" * 5000 + b"}")     # ValueError (int digits)
        publish_raw(cfg, cmd, b'{"n": ' + b"[" * 100 + b"]" * 100 + b"}")   # too deep
        publish_raw(cfg, cmd, b"{}")
        stats = agent.worker.stats
        assert wait_until(lambda: stats.inbound_dropped == 3 and stats.inbound_handled == 1, 10), \
            stats
        assert agent.worker.link.dropped_messages == 0
    finally:
        agent.stop()


def test_a_desired_state_dropped_for_a_full_inbox_is_fetched_again(tmp_path, broker,
                                                                   monkeypatch):
    """While the agent is busy its inbox fills up and the retained desired state arriving then
    is dropped (counted); once the inbox drained the agent subscribes again and the broker
    sends it again: nothing is lost."""
    from cloud_sync import update_agent
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models")
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    filler = b"x" * 5000
    monkeypatch.setattr(update_agent, "_INBOX_BYTES", len(filler) + 100)
    agent = run_agent(cfg)
    updates = agent.worker.updates
    busy, release = threading.Event(), threading.Event()
    real_dispatch = updates._dispatch

    def slow_dispatch(topic, payload):
        if payload == b"stall":
            busy.set()
            release.wait(10)
        return real_dispatch(topic, payload)

    updates._dispatch = slow_dispatch
    other = proto.desired_topic("edgelens", "lab", "other")
    try:
        assert agent.worker.link.wait_connected(10)
        publish_raw(fleet_cfg, other, b"stall")
        assert busy.wait(10)
        publish_raw(fleet_cfg, other, filler)             # queued: the inbox is now full
        publish_raw(fleet_cfg, DESIRED, desired_body(
            "r1", signed_desired(new, str(key), 16384)), retain=True)
        assert wait_until(lambda: updates.stats.dropped_inbox_full == 1, 10), updates.stats
        release.set()
        assert wait_until(lambda: updates.models.get("detector", {}).get("rollout") == "r1",
                          10), updates.models
    finally:
        release.set()
        agent.stop()
    assert updates.stats.ignored_malformed == 2          # "stall" and the filler
