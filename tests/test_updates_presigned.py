"""Versions signed ahead of time (`edgelens-fleet sign`) and pushed without the signing key."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cloud_sync.errors import SyncError
from cloud_sync.fleet.rollout import Rollout, RolloutFile
from cloud_sync.signing import SignatureError, TrustedKeys, keygen, load_public
from cloud_sync.fleet.delivery import load_signed
from device.modelstore.store import ModelStore
from sync_helpers import ROOT, run_agent
from cloud_sync.fleet.acl import enroll
from update_helpers import device_config, device_store, fleet_keys, make_version


def fleet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_a_version_signed_elsewhere_is_pushed_without_the_key(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    cfg = device_config(tmp_path, broker, "glasses-1", pub, store)
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=30_000)
    signer = device_config(tmp_path, None, "signer", pub, tmp_path / "fleet-models",
                           updates={"signing_key": str(key)})
    signed_file = tmp_path / "release" / "detector-1.1.0.signed.json"
    out = fleet("sign", str(new), "--out", str(signed_file), "--config",
                str(signer.origin))
    assert out.returncode == 0, out.stderr
    # the operator's config has no signing key at all
    pusher = device_config(tmp_path, broker, "operator", pub, tmp_path / "fleet-models")
    assert pusher.updates.signing_key == ""
    refused = fleet("push", str(new), "--group", "lab", "--config", str(pusher.origin),
                    "--timeout", "5", "--discover", "0.2")
    assert refused.returncode != 0 and "no signing key" in refused.stderr
    agent = run_agent(cfg)
    try:
        assert agent.worker.link.wait_connected(10)
        done = fleet("push", str(new), "--group", "lab", "--canary", "0", "--config",
                     str(pusher.origin), "--signed", str(signed_file), "--timeout", "60",
                     "--discover", "0.5")
    finally:
        agent.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert ModelStore(store).active_version("detector") == "1.1.0"
    assert ": done (" in done.stdout and "served 0 bytes" not in done.stdout
    # its control block went out unsigned: the operator is told what devices may do with it
    assert "control block goes out unsigned" in done.stderr


def test_a_presigned_file_must_match_the_bytes_and_a_trusted_key(tmp_path):
    key, pub = fleet_keys(tmp_path)
    new = make_version(tmp_path / "fleet-models", "1.1.0", pad_bytes=5_000)
    signer = device_config(tmp_path, None, "signer", pub, tmp_path / "fleet-models",
                           updates={"signing_key": str(key)})
    signed_file = tmp_path / "v.signed.json"
    assert fleet("sign", str(new), "--out", str(signed_file), "--config",
                 str(signer.origin)).returncode == 0
    trusted = TrustedKeys([load_public(pub)])
    assert load_signed(signed_file, new, trusted)["manifest"]["version"] == "1.1.0"

    other_key, other_pub = tmp_path / "other.key", tmp_path / "other.pub"
    keygen(other_key, other_pub)
    with pytest.raises(SignatureError, match="unknown key"):
        load_signed(signed_file, new, TrustedKeys([load_public(other_pub)]))

    edited = json.loads(signed_file.read_text())
    edited["manifest"]["budget_ms"] = 1
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with pytest.raises(SyncError, match="budget_ms"):
        load_signed(tmp_path / "edited.json", new, trusted)

    blob = bytearray((new / "vocab.bin").read_bytes())
    blob[100] ^= 1
    (new / "vocab.bin").write_bytes(bytes(blob))
    with pytest.raises(SyncError, match="changed since it was signed"):
        load_signed(signed_file, new, trusted)

    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(SyncError, match="not a signed version"):
        load_signed(tmp_path / "junk.json", new, trusted)


def test_a_plain_signature_cannot_be_pushed_as_a_rollback_or_challenger(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    make_version(tmp_path / "fleet-models", "1.0.0")
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    signer = device_config(tmp_path, broker, "signer", pub, tmp_path / "fleet-models",
                           updates={"signing_key": str(key)})
    enroll(signer.fleet.groups_file, "glasses-1", "lab")
    signed_file = tmp_path / "v.signed.json"
    assert fleet("sign", str(new), "--out", str(signed_file), "--config",
                 str(signer.origin)).returncode == 0
    RolloutFile(signer.updates.rollout_file).save(Rollout(
        id="r1", group="lab", name="detector", version="1.1.0", source=str(new),
        previous="1.0.0", stage="done"))
    out = fleet("rollout", "rollback", "--config", str(signer.origin), "--to", str(new),
                "--signed", str(signed_file), "--timeout", "5")
    assert out.returncode != 0 and "signed without --rollback" in out.stderr, out.stderr
    shadow = make_version(tmp_path / "fleet-models", "1.0.0", name="recognizer")
    assert fleet("sign", str(shadow), "--out", str(signed_file), "--config",
                 str(signer.origin)).returncode == 0
    out = fleet("push", str(shadow), "--group", "lab", "--shadow", "--config",
                str(signer.origin), "--signed", str(signed_file), "--timeout", "5")
    assert out.returncode != 0 and "signed without --shadow" in out.stderr, out.stderr
