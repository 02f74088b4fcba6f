"""Shadow mode: challengers (recognizer, detector, translator) redo the champion's work in
idle time only; the model watch follows the SHADOW pointers live."""

import contextlib
import dataclasses
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.fleet.store import SqliteFleetStore
from device import config
from device.assembly import build_pipeline, load_stages
from device.benchmarks.shadow import clone_version
from device.errors import ModelStoreError
from device.metrics import Metrics
from device.modelstore.install import set_active
from device.modelstore.store import ModelStore
from device.modelstore.pointers import clear_shadow, set_shadow, shadow_version
from device.modelstore.shadow import Challenger
from device.live.sources import SyntheticSource
from device.telemetry import Recorder, TelemetryStore
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _store_with_challenger(root: Path) -> ModelStore:
    """detector, recognizer 1.0.0 and translator 1.1.0 (active) + each one's weights again as
    the next patch version (challengers); only the recognizer's SHADOW is set here."""
    for name in ("detector", "recognizer", "translator"):
        shutil.copytree(ROOT / "models" / name, root / name)
    store = ModelStore(root)
    for name, active, challenger in (("detector", "1.0.0", "1.0.1"),
                                     ("recognizer", "1.0.0", "1.0.1"),
                                     ("translator", "1.1.0", "1.1.1")):
        clone_version(root, name, active, challenger)
        set_active(store, name, active)
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
    assert load_stages(cfg, translate=False).shadows == []  # a bad pointer never stops it
    clear_shadow(store, "recognizer")
    clear_shadow(store, "recognizer")
    assert shadow_version(store, "recognizer") is None


def test_same_weights_agree_fully_and_the_champion_path_is_unchanged(stages, tmp_path,
                                                                    capsys):
    assert [(c.stage, c.version) for c in stages.shadows] == [("recognizer", "1.0.1")]
    assert stages.versions["recognizer"] == "1.0.0"
    settings = config_for(tmp_path, None).telemetry
    recorder = Recorder.open(settings)
    try:
        metrics, summary = _run(stages, recorder)
    finally:
        recorder.close()
    c = metrics.counter
    assert c("shadow_pairs") >= 20, metrics.snapshot()["counters"]
    assert c("shadow_agree") == c("shadow_pairs")            # same weights: 100 % agreement
    assert c("shadow_errors") == 0
    # what shadow mode costs the champion in time is measured by `edgelens bench shadow`, not
    # asserted here: deadlines depend on the machine's speed
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
                      _SlowRecognizer(stages.shadows[0].model, 0.3))
    metrics, summary = _run(dataclasses.replace(stages, shadows=[slow]), frames=45)
    c = metrics.counter
    assert c("recognition_runs_finished") > 0
    assert c("shadow_pairs") == 0             # never run: it cannot have delayed the primary
    assert c("shadow_skipped") > 0


def _pairs_by_stage(db_path) -> dict[str, list[dict]]:
    with sqlite3.connect(db_path) as db:
        bodies = [json.loads(b) for (b,) in db.execute(
            "SELECT body FROM records WHERE kind = 'prediction'")]
    out: dict[str, list[dict]] = {}
    for b in bodies:
        if "shadow" in b:
            out.setdefault(b["shadow"]["stage"], []).append(b)
    return out


def test_detector_and_translator_challengers_agree_with_their_own_weights(tmp_path):
    store = _store_with_challenger(tmp_path / "models")
    set_shadow(store, "detector", "1.0.1")
    set_shadow(store, "translator", "1.1.1")
    cfg = config.build({"models": {"store": str(store.root)}}, config.defaults_schema())
    both = load_stages(cfg)
    assert sorted((c.stage, c.version) for c in both.shadows) == [("detector", "1.0.1"),
                                                                  ("translator", "1.1.1")]
    settings = config_for(tmp_path, None).telemetry
    recorder = Recorder.open(settings)
    try:
        metrics, _ = _run(both, recorder, frames=60)
    finally:
        recorder.close()
    c = metrics.counter
    detected = metrics.histogram("shadow.detect").count
    translated = metrics.histogram("shadow.translate").count
    assert detected >= 10 and translated >= 10, metrics.snapshot()["counters"]
    assert c("shadow_pairs") == detected + translated == c("shadow_agree")
    assert c("shadow_errors") == 0
    pairs = _pairs_by_stage(settings.db_path)
    assert len(pairs["detector"]) == detected and len(pairs["translator"]) == translated
    for b in pairs["detector"]:
        s = b["shadow"]
        assert s["f1"] == 1.0 and s["regions"] == s["champion_regions"] == s["matched"]
    for b in pairs["translator"]:
        assert b["shadow"]["version"] == "1.1.1" and b["shadow"]["agree"] is True
        assert b["models"]["translator"] == {"name": "translator", "version": "1.1.0"}
        assert ("text" in b["shadow"]) == ("translation" in b)   # hashed like the translation


class _LosesSmallestRegion:
    """The real detector, made to miss its smallest region on every frame."""

    def __init__(self, inner):
        self.inner = inner

    def detect(self, image):
        import cv2
        regions = sorted(self.inner.detect(image), key=lambda r: cv2.contourArea(r.polygon))
        return regions[1:]


def test_a_detector_challenger_that_misses_regions_disagrees(stages, tmp_path):
    from device.stages.detector import Detector
    weaker = Challenger("detector", "detector", "9.9.9", _LosesSmallestRegion(stages.detector))
    assert isinstance(stages.detector, Detector)
    settings = config_for(tmp_path, None).telemetry
    recorder = Recorder.open(settings)
    try:
        metrics, _ = _run(dataclasses.replace(stages, shadows=[weaker]), recorder, frames=45)
    finally:
        recorder.close()
    c = metrics.counter
    assert c("shadow_pairs") >= 10
    pairs = _pairs_by_stage(settings.db_path)["detector"]
    shadows = [b["shadow"] for b in pairs]
    assert all(s["regions"] <= s["champion_regions"] for s in shadows)
    missed = [s for s in shadows if s["regions"] < s["champion_regions"]]
    assert len(missed) >= 3, shadows
    assert all(s["agree"] is False and s["f1"] < 1.0 for s in missed)
    assert all(s["agree"] is True and s["f1"] == 1.0 for s in shadows if s not in missed)
    assert c("shadow_agree") == len(shadows) - len(missed)


@contextlib.contextmanager
def _watched_pipeline(cfg, stages):
    """The service's arrangement: a live pipeline and the model watch beside it."""
    import threading

    from device.assembly import start_model_watch
    pipeline = build_pipeline(cfg, stages, source=SyntheticSource(seed=7, realtime=True))
    watch = start_model_watch(cfg, pipeline, stages)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    try:
        yield pipeline
    finally:
        watch.stop()
        pipeline.stop_event.set()
        runner.join(10)


def test_the_model_watch_follows_shadow_pointers_live(tmp_path):
    from sync_helpers import wait_until
    store = _store_with_challenger(tmp_path / "models")
    cfg = config.build({"models": {"store": str(store.root)},
                        "updates": {"watch_interval_s": 0.1}}, config.defaults_schema())
    live = load_stages(cfg, translate=False)
    assert live.shadows == []
    with _watched_pipeline(cfg, live) as pipeline:
        c = pipeline.metrics.counter
        assert wait_until(lambda: c("recognition_runs_finished") >= 5, 30)
        assert c("shadow_pairs") == 0
        set_shadow(store, "recognizer", "1.0.1")               # what the sync agent does
        assert wait_until(lambda: c("shadow_pairs") >= 10, 30), pipeline.metrics.snapshot()
        assert pipeline.worker.after_result.challengers[0].version == "1.0.1"
        clear_shadow(store, "recognizer")
        assert wait_until(lambda: pipeline.worker.after_result is None, 10)
        time.sleep(0.3)                                        # a run under way may finish
        stopped_at = c("shadow_pairs")
        runs = c("recognition_runs_finished")
        assert wait_until(lambda: c("recognition_runs_finished") >= runs + 5, 30)
        assert c("shadow_pairs") == stopped_at
        assert c("recognition_errors") == 0 and c("model_swaps") == 0


def test_a_new_active_translator_is_swapped_in_live(tmp_path):
    from device.modelstore.install import read_health
    from sync_helpers import wait_until
    store = _store_with_challenger(tmp_path / "models")
    cfg = config.build({"models": {"store": str(store.root)},
                        "updates": {"watch_interval_s": 0.1, "health_frames": 20}},
                       config.defaults_schema())
    live = load_stages(cfg)
    first = live.translator
    with _watched_pipeline(cfg, live) as pipeline:
        c = pipeline.metrics.counter
        assert wait_until(lambda: c("recognition_runs_finished") >= 5, 30)
        set_active(store, "translator", "1.1.1")
        assert wait_until(lambda: c("model_swaps") >= 1, 60)
        assert wait_until(lambda: read_health(store.root / "translator" / "1.1.1") is not None,
                          60)
    assert pipeline.worker.translator is not first and live.translator is not first
    assert live.versions["translator"] == "1.1.1"
    assert read_health(store.root / "translator" / "1.1.1")["healthy"] is True
    assert c("recognition_errors") == 0
