"""Helpers for the model-update tests: small model versions, device configs, the fleet side."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_sync.fleet.acl import enroll
from cloud_sync.fleet.rollout import Rollout, RolloutFile
from cloud_sync.signing import keygen
from cloud_sync.fleet.delivery import UpdateServer, signed_desired
from device.modelstore.store import file_entry
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent


def small_tflite() -> Path:
    """A small committed .tflite to build test versions from (no training here)."""
    for pattern in ("models/detector/*/detector.tflite", "models/recognizer/*/recognizer.tflite",
                    "models/*/*/*.tflite"):
        found = sorted(ROOT.glob(pattern))
        if found:
            return found[0]
    pytest.skip("no .tflite model in models/ to build a test version from")



def make_version(store: Path, version: str, *, name: str = "detector", budget_ms: float = 10_000,
                 golden_fails: bool = False, pad_bytes: int = 0, salt: str = "") -> Path:
    """models/<name>/<version>/ with a real .tflite, card, manifest and golden set."""
    directory = store / name / version
    directory.mkdir(parents=True)
    shutil.copyfile(small_tflite(), directory / "detector.tflite")
    (directory / "MODEL_CARD.md").write_text(f"# {name} {version}\n\ntest version {salt}\n")
    golden = []
    if golden_fails:    # a blank scene where the truth says one line: the detector finds 0
        (directory / "golden").mkdir()
        cv2.imwrite(str(directory / "golden" / "blank.png"), np.full((192, 320, 3), 255,
                                                                      np.uint8))
        (directory / "golden" / "blank.json").write_text(json.dumps(
            {"polygons": [[[10, 10], [200, 10], [200, 40], [10, 40]]]}))
        golden = [{"input": "golden/blank.png", "ground_truth": "golden/blank.json",
                   "expected": "1"}]
    extra = []
    if pad_bytes:
        rng = np.random.default_rng(len(version) + pad_bytes)
        (directory / "vocab.bin").write_bytes(rng.bytes(pad_bytes))
        extra = [file_entry(directory / "vocab.bin", "vocab.bin")]
    manifest = {"name": name, "version": version, "task": "text-detection",
                "created": "2024-01-01", "artifact": file_entry(directory / "detector.tflite",
                                                            "detector.tflite"),
                "extra_files": extra, "quantization": "int8-full", "signatures": {},
                "compatible_backends": ["litert"], "latency_ms": {}, "budget_ms": budget_ms,
                "accuracy": {}, "training": {}, "intended_use": "tests",
                "limitations": "tests", "golden": golden}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


def fleet_keys(tmp_path: Path) -> tuple[Path, Path]:
    key, pub = tmp_path / "keys" / "fleet.key", tmp_path / "keys" / "fleet.pub"
    if not key.exists():
        keygen(key, pub)
    return key, pub


# the configs of the operator's side (push, serve, sign), not devices: never group members
FLEET_SIDE = frozenset({"fleet", "operator", "signer"})


def device_config(tmp_path: Path, broker, device: str, pub: Path, store: Path, **sections):
    """A device (or fleet) config: its own store, trusting `pub`, quick health checks. A device
    is enrolled in its [updates] group in tmp_path/groups.toml, and every config names that
    file as [fleet] groups_file (unless the test gives its own)."""
    folder = tmp_path / device
    folder.mkdir(parents=True, exist_ok=True)
    updates = {"trusted_keys": [str(pub)], "group": "lab", "health_source": "agent",
               "request_timeout_s": 3.0, "chunk_size": 16 * 1024, "latency_runs": 2,
               "rollout_file": str(tmp_path / "rollouts.json")}
    updates.update(sections.pop("updates", {}))
    groups = tmp_path / "groups.toml"
    if device not in FLEET_SIDE:      # enrolled by the operator, as push and serve require
        enroll(groups, device, updates["group"])
    elif not groups.exists():
        groups.write_text("[groups]\n")
    fleet = {"groups_file": str(groups), **sections.pop("fleet", {})}
    return config_for(folder, broker, device=device, models={"store": str(store)},
                      updates=updates, fleet=fleet,
                      sync={"nice": 0, "idle_poll_s": 0.05, "status_interval_s": 1.0},
                      **sections)


def device_store(tmp_path: Path, device: str, base_versions=("1.0.0",)) -> Path:
    store = tmp_path / device / "models"
    for version in base_versions:
        make_version(store, version)
    return store


def run_push(cfg, key: Path, directory: Path, group: str = "lab", *, canary: float = 0.0,
             rollback: bool = False, timeout: float = 60.0, stop=None,
             previous: str | None = None, members: list[str] | None = None,
             signed: dict | None = None, rollout_id: str | None = None
             ) -> tuple[Rollout, UpdateServer]:
    """What `edgelens-fleet push` does, in-process (so the test can read the server's stats)."""
    signed = signed or signed_desired(directory, str(key), cfg.updates.chunk_size,
                                      rollback=rollback)
    rollout = Rollout(id=rollout_id or f"r-{directory.name}-{int(rollback)}", group=group,
                      name=directory.parent.name, version=directory.name, source=str(directory),
                      previous=previous, rollback=rollback, canary_percent=canary,
                      stage="canary" if canary else "all", promote_percent=100.0,
                      halt_percent=cfg.updates.halt_percent, members=list(members or []))
    server = UpdateServer(cfg, rollout, signed, RolloutFile(cfg.updates.rollout_file),
                          discover_s=0.5, control_key=str(key))
    return server.run(stop or threading.Event(), timeout), server


def publish_raw(cfg, topic: str, payload: bytes, retain: bool = False) -> None:
    """One message from a throwaway fleet-side client (waits for the PUBACK)."""
    import os as _os

    from cloud_sync.mqtt_client import LinkSettings, MqttLink
    acked = threading.Event()
    link = MqttLink(LinkSettings.from_config(cfg.mqtt, f"test-pub-{_os.getpid()}"),
                    on_ack=lambda mid, reason: acked.set())
    link.start()
    try:
        assert link.wait_connected(10), "test publisher did not connect"
        link.publish(topic, payload, qos=1, retain=retain)
        assert acked.wait(10), "no PUBACK"
    finally:
        link.stop()


def desired_body(rollout: str, signed: dict, group: str = "lab", stage: str = "all") -> bytes:
    return json.dumps({"v": 1, "rollout": rollout, "group": group, "stage": stage,
                       "canaries": [], **signed}).encode()
