"""Issue 11 on the device's update path, the parts that need no broker: whole-name matching,
bounded parsing, the batch codec's errors, key file modes, the bounded inbox, the replay memory
outside the staging directory."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zlib

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync import topics
from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError
from cloud_sync.signing import keygen
from cloud_sync.update_agent import UpdateAgent
from cloud_sync.fleet import delivery, ingest
from cloud_sync.fleet.delivery import signed_desired
from cloud_sync.json_input import parse_json
from device.modelstore.store import ModelStore
from update_helpers import device_config, device_store, fleet_keys, make_version


class NoLink:
    connects, connected = 0, False

    def publish(self, *args, **kwargs) -> int:
        from cloud_sync.errors import LinkError
        raise LinkError("not connected")


def _agent(tmp_path, store, pub):
    cfg = device_config(tmp_path, None, "glasses-1", pub, store,
                        telemetry={"enabled": False})
    audits = []
    agent = UpdateAgent(cfg, NoLink(), "glasses-1",
                        audit=lambda action, fields: audits.append((action, fields)))
    agent._prepare_store()
    return agent, audits


# --- 13: names are matched whole --------------------------------------------------------------

@pytest.mark.parametrize("check, good", [
    (proto.check_model_name, "detector"), (proto.check_version, "1.2.3"),
    (proto.check_group, "lab"), (proto.check_file_name, "detector.tflite"),
    (proto.check_rollout_id, "detector-1.1.0-20240101T000000"),
    (topics.check_device_id, "glasses-1")])
def test_a_trailing_newline_is_not_part_of_a_name(check, good):
    assert check(good) == good
    with pytest.raises(PayloadError):
        check(good + "\n")


def test_versions_are_ascii_digits_only():
    with pytest.raises(PayloadError):
        proto.check_version("\u0661.\u0660.\u0660")        # Arabic-Indic digits


# --- 7: bounded parsing -----------------------------------------------------------------------

def test_parsing_is_bounded_in_depth_and_never_raises_anything_but_payload_error():
    deep = b'{"manifest": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for payload in (deep, b"[" * 100_000, b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",
                    b'{"a": NaN}', b'{"a": ' + b"9" * 5000 + b"}", b"\xff\xfe"):
        with pytest.raises(PayloadError):
            proto.parse_json(payload, "desired state", 1 << 22)
    assert proto.parse_json(b'{"a": [[1]]}', "x", 100) == {"a": [[1]]}


def test_chunk_headers_are_bounded_and_typed():
    def chunk(head: bytes) -> bytes:
        return len(head).to_bytes(2, "big") + head + b"data"
    for head in (b"[" * 30_000, b'{"rollout": "r", "name": "d", "version": "1.0.0", '
                 b'"file": "f", "index": 1e999}',
                 b'{"rollout": ["r"], "name": "d", "version": "1.0.0", "file": "f", '
                 b'"index": 0}', b'{"rollout": "r", "name": "d", "version": "1.0.0", '
                 b'"file": "f", "index": true}'):
        with pytest.raises(PayloadError):
            proto.decode_chunk(chunk(head))
    good = proto.encode_chunk(proto.ChunkHeader("r", "d", "1.0.0", "f", 3), b"xyz")
    assert proto.decode_chunk(good) == (proto.ChunkHeader("r", "d", "1.0.0", "f", 3), b"xyz")


@pytest.mark.parametrize("field, value", [
    ("canaries", 5), ("canaries", [1]), ("canaries", [""]), ("stage", "later"),
    ("stage", ["all"]), ("rollout", {"x": 1}), ("rollout", ""), ("group", 7)])
def test_desired_state_control_fields_are_typed(field, value):
    body = {"v": 1, "rollout": "r1", "group": "lab", "stage": "canary",
            "canaries": ["glasses-1"], field: value}
    with pytest.raises(PayloadError):
        proto.check_desired(body)


def test_desired_state_with_bad_control_fields_is_dropped_and_counted(tmp_path):
    """`{"stage": "canary", "canaries": 5}` raised TypeError out of _dispatch and ended the
    updates thread; now it is a malformed message, counted."""
    key, pub = fleet_keys(tmp_path)
    agent, _ = _agent(tmp_path, device_store(tmp_path, "glasses-1"), pub)
    signed = signed_desired(make_version(tmp_path / "fleet", "1.1.0"), str(key), 16384)
    topic = proto.desired_topic("edgelens", "lab", "detector")
    for body in ({"v": 1, "rollout": "r", "group": "lab", "stage": "canary", "canaries": 5,
                  **signed},
                 {"v": 1, "rollout": "r", "group": "lab", "stage": "all", "canaries": [],
                  "manifest": {"update": {"chunk_size": 1e999, "files": []}}}):
        agent._dispatch(topic, json.dumps(body).encode())
    agent._dispatch(topic, b'{"manifest": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    assert agent.stats.ignored_malformed == 3 and agent.stats.dropped_errors == 0
    assert "detector" not in agent.jobs and agent.models["detector"]["state"] == "idle"


@pytest.mark.parametrize("update", [
    {"chunk_size": float("inf"), "files": []}, {"chunk_size": 16384.0, "files": []},
    {"chunk_size": 16384, "files": [{"file": "a", "size_bytes": float("inf"), "sha256": "",
                                     "chunks": []}]},
    {"chunk_size": 16384, "files": [{"file": "a\n", "size_bytes": 1, "sha256": "",
                                     "chunks": [""]}]}])
def test_signed_update_blocks_of_the_wrong_types_are_refused(update):
    from cloud_sync.update_download import RefusedUpdate, plan_files
    with pytest.raises(RefusedUpdate):
        plan_files(update, 1 << 20)


# --- 13: batch.decode raises PayloadError only --------------------------------------------------

@pytest.mark.parametrize("doc", [
    b'{"v": 1, "device": "d", "boot_id": "b", "sent_wall_ns": 1e999, "sent_mono_ns": 0, '
    b'"records": []}',                                                      # OverflowError
    b'{"v": 1, "device": "d", "boot_id": "b", "sent_wall_ns": ' + b"9" * 5000 +
    b', "sent_mono_ns": 0, "records": []}',                                 # ValueError
    b"[" * 200_000 + b"]" * 200_000,                                        # RecursionError
    b'{"v": 1, "device": "d", "boot_id": "b", "sent_wall_ns": 0, "sent_mono_ns": 0, '
    b'"records": [[1, "log", 0, 0, "b", {"x": ' + b"[" * 200 + b"]" * 200 + b"}]]}",
])
def test_batch_decode_turns_every_bad_value_into_payload_error(doc):
    with pytest.raises(PayloadError):
        batch_codec.decode(zlib.compress(doc), 1 << 22)


@pytest.mark.parametrize("seq", [b"1e999", str(1 << 70).encode()])
def test_a_record_with_an_unusable_seq_is_refused_alone(seq):
    # the batch's other records are kept (the fleet stores them); this one is refused
    doc = (b'{"v": 1, "device": "d", "boot_id": "b", "sent_wall_ns": 0, "sent_mono_ns": 0, '
           b'"records": [[' + seq + b', "log", 0, 0, "b", {}], [2, "log", 0, 0, "b", {}]]}')
    batch = batch_codec.decode(zlib.compress(doc), 1 << 22)
    assert batch.refused == [(None, "record.seq")]
    assert [record[0] for record in batch.records] == [2]


# --- 13: key files under umask 000 ------------------------------------------------------------

def test_keygen_makes_private_directories_and_files_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        keygen(tmp_path / "keys" / "deep" / "fleet.key", tmp_path / "keys" / "deep" / "fleet.pub")
    finally:
        os.umask(old)
    for path in (tmp_path / "keys", tmp_path / "keys" / "deep"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, oct(path.stat().st_mode)
    for name in ("fleet.key", "fleet.pub"):
        mode = stat.S_IMODE((tmp_path / "keys" / "deep" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


# --- 7: the inbox is bounded --------------------------------------------------------------------

def test_the_inbox_is_bounded_while_the_agent_does_not_drain_it(tmp_path):
    """3,000 chunks of 60 KB arriving while the updates thread is not taking them used to grow
    the process by 176 MB; now at most 16 MB is queued, the rest dropped and counted."""
    key, pub = fleet_keys(tmp_path)
    agent, _ = _agent(tmp_path, device_store(tmp_path, "glasses-1"), pub)
    chunk = proto.encode_chunk(proto.ChunkHeader("r", "detector", "1.1.0", "f", 0),
                               b"x" * 60_000)
    for _ in range(3000):
        agent.handle(agent._chunk_topic, chunk)
    queued = agent._inbox_bytes["chunk"]
    assert queued <= 16 * 1024 * 1024 and agent.inbox.qsize() == queued // len(chunk)
    assert agent.stats.dropped_inbox_full == 3000 - agent.inbox.qsize()
    agent.handle(agent._chunk_topic, b"x" * (300 * 1024))          # over any chunk message
    assert agent.stats.ignored_malformed == 1
    while not agent.inbox.empty():                                  # what the loop does
        topic, payload = agent.inbox.get()
        agent._taken(topic, payload)
        agent._dispatch(topic, payload)
    assert agent._inbox_bytes["chunk"] == 0
    assert agent.stats.ignored_unexpected_chunk == 3000 - agent.stats.dropped_inbox_full


# --- 6: the replay memory survives a clean-up of the staging directory ----------------------------

def test_replay_memory_lives_outside_staging(tmp_path):
    """A rollback signed before 1.1.0 was accepted must stay refused after `.staging` was
    removed (it held the memory, so removing it re-opened the replay)."""
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    fleet = tmp_path / "fleet"
    make_version(fleet, "1.0.0")
    old_rollback = signed_desired(fleet / "detector" / "1.0.0", str(key), 16384, rollback=True)
    new = make_version(fleet, "1.1.0")
    shutil.copytree(new, store / "detector" / "1.1.0")     # already in the store: a switch
    agent, _ = _agent(tmp_path, store, pub)
    agent._consider("detector", {"v": 1, "rollout": "r-new", "group": "lab", "stage": "all",
                                 "canaries": [], **signed_desired(new, str(key), 16384)})
    assert ModelStore(store).active_version("detector") == "1.1.0"
    shutil.rmtree(store / ".staging")                        # a clean-up of the staging space
    agent, _ = _agent(tmp_path, store, pub)
    agent._consider("detector", {"v": 1, "rollout": "r-replay", "group": "lab", "stage": "all",
                                 "canaries": [], **old_rollback})
    assert agent.models["detector"]["state"] == "refused"
    assert "replayed desired state" in agent.models["detector"]["reason"]
    assert ModelStore(store).active_version("detector") == "1.1.0"
    assert (store / ".update-memory.json").is_file()


def test_memory_left_in_staging_by_an_older_version_is_merged(tmp_path):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    (store / ".staging").mkdir()
    (store / ".staging" / "memory.json").write_text(json.dumps(
        {"issued": {"detector": 5}, "failed": {"detector": ["1.0.5"]}}))
    agent, _ = _agent(tmp_path, store, pub)
    assert not (store / ".staging" / "memory.json").exists()
    assert agent._remember() == {"issued": {"detector": 5}, "control": {},
                                 "failed": {"detector": ["1.0.5"]}}


def test_a_download_that_cannot_fit_is_refused_before_it_starts(tmp_path, monkeypatch):
    """Free space is checked against the rest of the download when it is offered: refused with
    the reason, nothing left in the staging directory."""
    from collections import namedtuple

    from cloud_sync import update_download
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    agent, audits = _agent(tmp_path, store, pub)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(update_download.shutil, "disk_usage",
                        lambda path: usage(10**9, 10**9 - 50_000, 50_000))
    new = make_version(tmp_path / "fleet", "1.1.0", pad_bytes=100_000)
    agent._consider("detector", {"v": 1, "rollout": "r1", "group": "lab", "stage": "all",
                                 "canaries": [], **signed_desired(new, str(key), 16384)})
    state = agent.models["detector"]
    assert state["state"] == "refused" and "no space left on device" in state["reason"], state
    assert list((store / ".staging").iterdir()) == []
    assert [a for a, _ in audits] == ["update_offered", "update_refused"]


def test_a_health_check_that_cannot_run_is_a_failed_one(tmp_path, monkeypatch):
    """A version waiting for its verdict is always judged: a check that raises (the model does
    not even load) is an unhealthy verdict and the version is rolled back, instead of an error
    on every tick and a version never judged."""
    import time

    from cloud_sync import update_install
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    new = make_version(tmp_path / "fleet", "1.1.0")

    def broken(*args, **kwargs):
        raise RuntimeError("interpreter would not load the model")

    monkeypatch.setattr(update_install, "precheck", broken)
    agent, audits = _agent(tmp_path, store, pub)              # pins 1.0.0 as active
    shutil.copytree(new, store / "detector" / "1.1.0")         # in the store: a switch
    agent._consider("detector", {"v": 1, "rollout": "r1", "group": "lab", "stage": "all",
                                 "canaries": [], **signed_desired(new, str(key), 16384)})
    agent._check_health(agent.jobs["detector"], time.monotonic())
    state = agent.models["detector"]
    assert state["state"] == "rolled_back" and "could not run" in state["reason"], state
    assert ModelStore(store).active_version("detector") == "1.0.0"


# --- issue 14: an offer is judged whole before anything is recorded ----------------------------

@pytest.mark.parametrize("name, version", [("labels", "1.1.0"),      # no stage runs it
                                           ("detector", "1.0.0")])   # the active one itself
def test_a_refused_shadow_offer_leaves_no_replay_memory_and_no_offered_audit(tmp_path, name,
                                                                             version):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    new = make_version(tmp_path / "fleet", version, name=name)
    agent, audits = _agent(tmp_path, store, pub)
    agent._consider(name, {"v": 1, "rollout": "r1", "group": "lab", "stage": "all",
                           "canaries": [], **signed_desired(new, str(key), 16384, shadow=True)})
    assert [action for action, _ in audits] == ["update_refused"]
    assert name not in agent._remember()["issued"]
    assert name not in agent.jobs


def test_one_json_parser_for_both_directions_refuses_what_json_cannot_carry():
    """What a device reads from the broker and what the fleet reads from a device go through
    cloud_sync.json_input: 1e999 (no float holds it) was accepted on the glasses' side before."""
    assert ingest.parse_json is delivery.parse_json is proto.parse_json is parse_json
    for payload, reason in ((b'{"a": 1e999}', "out of range"), (b'{"a": NaN}', "not a JSON"),
                            (b'{"a": -Infinity}', "not a JSON"), (b"[1]", "JSON object"),
                            (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
                            (b"\xff{}", "not JSON")):
        with pytest.raises(PayloadError, match=reason):
            parse_json(payload, "x", 1 << 10)
    assert parse_json(b'{"a": 1e308, "b": [1.5]}', "x", 100) == {"a": 1e308, "b": [1.5]}
