"""Shadow mode: a challenger recognizer reads the champion's lines in idle time only."""

import dataclasses
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync import fleet_cli
from cloud_sync.fleet_store import SqliteFleetStore
from device import config
from device.assembly import build_pipeline, load_stages
from device.errors import ModelStoreError
from device.metrics import Metrics
from device.model_install import set_active
from device.model_store import ModelStore
from device.shadow import Challenger, clear_shadow, set_shadow, shadow_version
from device.sources import SyntheticSource
from device.telemetry import Recorder, TelemetryStore
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _store_with_challenger(root: Path) -> ModelStore:
    """detector + recognizer 1.0.0 (active) + the same weights as 1.0.1 (the challenger)."""
    for name in ("detector", "recognizer"):
        shutil.copytree(ROOT / "models" / name, root / name)
    shutil.copytree(root / "recognizer" / "1.0.0", root / "recognizer" / "1.0.1")
    manifest_path = root / "recognizer" / "1.0.1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = "1.0.1"
    manifest_path.write_text(json.dumps(manifest))
    store = ModelStore(root)
    set_active(store, "recognizer", "1.0.0")
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = _store_with_challenger(tmp_path_factory.mktemp("store") / "models")
    set_shadow(store, "recognizer", "1.0.1")
    return store


@pytest.fixture(scope="module")
def stages(store):
    cfg = config.build({"models": {"store": str(store.root)}}, config.defaults_schema())
    return load_stages(cfg, translate=False)


def _run(stages, recorder=None, frames=60):
    cfg = config.defaults()
    metrics = Metrics(forward=recorder)
    pipeline = build_pipeline(cfg, stages, source=SyntheticSource(seed=7, frames=frames,
                                                                  realtime=True),
                              metrics=metrics, recorder=recorder)
    summary = pipeline.run()
    return metrics, summary


def test_shadow_pointer_names_an_installed_version_other_than_active(tmp_path):
    store = _store_with_challenger(tmp_path / "models")
    assert shadow_version(store, "recognizer") is None
    set_shadow(store, "recognizer", "1.0.1")
    assert shadow_version(store, "recognizer") == "1.0.1"
    assert store.active_version("recognizer") == "1.0.0"   # ACTIVE untouched
    set_shadow(store, "recognizer", "1.0.0")
    assert shadow_version(store, "recognizer") is None      # the champion shadows nobody
    with pytest.raises(ModelStoreError, match="not in the store"):
        set_shadow(store, "recognizer", "9.9.9")
    (store.root / "recognizer" / "SHADOW").write_text("9.9.9\n")
    with pytest.raises(ModelStoreError, match="not in the store"):
        shadow_version(store, "recognizer")
    cfg = config.build({"models": {"store": str(store.root)}}, config.defaults_schema())
    assert load_stages(cfg, translate=False).shadow is None  # a bad pointer never stops it
    clear_shadow(store, "recognizer")
    clear_shadow(store, "recognizer")
    assert shadow_version(store, "recognizer") is None


def test_same_weights_agree_fully_and_the_champion_path_is_unchanged(stages, tmp_path,
                                                                    capsys):
    assert stages.shadow is not None and stages.shadow.version == "1.0.1"
    assert stages.versions["recognizer"] == "1.0.0"
    settings = config_for(tmp_path, None).telemetry
    recorder = Recorder.open(settings)
    try:
        metrics, summary = _run(stages, recorder)
    finally:
        recorder.close()
    baseline, base_summary = _run(dataclasses.replace(stages, shadow=None))
    c = metrics.counter
    assert c("shadow_pairs") >= 20, metrics.snapshot()["counters"]
    assert c("shadow_agree") == c("shadow_pairs")            # same weights: 100 % agreement
    assert c("shadow_errors") == 0
    assert c("recognition_deadline_misses") == baseline.counter(
        "recognition_deadline_misses") == 0
    assert c("recognition_runs_finished") >= 0.9 * baseline.counter("recognition_runs_finished")
    assert metrics.histogram("shadow.recognize").count == c("shadow_pairs")

    with sqlite3.connect(settings.db_path) as db:
        bodies = [json.loads(b) for (b,) in db.execute(
            "SELECT body FROM records WHERE kind = 'prediction'")]
        metric_bodies = [json.loads(b) for (b,) in db.execute(
            "SELECT body FROM records WHERE kind = 'metric'")]
    pairs = [b for b in bodies if "shadow" in b]
    assert len(pairs) == c("shadow_pairs")
    assert len(bodies) - len(pairs) >= 1                      # the champion's own records
    for b in pairs:
        assert b["models"]["recognizer"] == {"name": "recognizer", "version": "1.0.0"}
        assert b["shadow"]["version"] == "1.0.1" and b["shadow"]["agree"] is True
        assert b["shadow"]["latency_ms"] > 0
        assert ("text" in b["shadow"]) == ("text" in b)       # hashed exactly like the text
    # what the fleet status reads: per-second counters and the challenger's latency
    assert sum(m["counts"].get("shadow_pairs", 0) for m in metric_bodies) == c("shadow_pairs")
    assert any("shadow.recognize" in m["stats"] for m in metric_bodies)
    _fleet_sees_the_challenger(settings, tmp_path, c("shadow_pairs"), capsys)


def _fleet_sees_the_challenger(settings, tmp_path, pairs, capsys):
    """The device's records, as the sync agent would send them, in `edgelens-fleet status`."""
    telemetry = TelemetryStore.open(settings.db_path, settings)
    records = telemetry.records()
    telemetry.close()
    fleet_db = tmp_path / "fleet.sqlite"
    fleet = SqliteFleetStore(fleet_db)
    payload = batch_codec.encode("glasses-1", records[0].boot_id,
                                 (time.time_ns(), time.monotonic_ns()), records)
    fleet.insert_batch(batch_codec.decode(payload, 64 << 20), time.time_ns(), "w")
    fleet.close()
    assert fleet_cli.main(["status", "--db", str(fleet_db), "--json", "--window", "3600"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    shadow = row["shadow"]
    assert shadow["model"] == "recognizer@1.0.1" and shadow["pairs"] == pairs
    assert shadow["agreement"] == 1.0 and 0 < shadow["p95_ms"] < 200
    assert 0 <= shadow["skipped_share"] < 0.5
    assert row["models"]["recognizer"] == "recognizer@1.0.0"   # the champion still runs
    assert fleet_cli.main(["status", "--db", str(fleet_db), "--window", "3600"]) == 0
    assert "shadow=recognizer@1.0.1 agree=100.0%" in capsys.readouterr().out


class _SlowRecognizer:
    """The real challenger, made slow on purpose."""

    def __init__(self, inner, seconds):
        self.inner, self.seconds = inner, seconds

    def read(self, crop):
        time.sleep(self.seconds)
        return self.inner.read(crop)


def test_slow_challenger_is_skipped_and_never_delays_the_primary(stages):
    slow = Challenger("recognizer", "recognizer", "1.0.1",
                      _SlowRecognizer(stages.shadow.recognizer, 0.3))
    metrics, summary = _run(dataclasses.replace(stages, shadow=slow), frames=45)
    c = metrics.counter
    assert c("recognition_runs_finished") >= 30
    assert c("recognition_deadline_misses") == 0
    assert c("shadow_pairs") == 0
    assert c("shadow_skipped") > 0
