"""The live pipeline with the real models on generated frames whose ground truth is known."""

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from device import config
from device.assembly import build_pipeline, load_stages
from device.errors import ModelStoreError
from device.metrics import Metrics
from device.modelstore.store import ModelStore
from device.geometry import polygon_iou
from calibration.metrics import edit_distance
from device.live.sources import SyntheticSource

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stages():
    return load_stages(config.defaults(), translate=False)


def _run(stages, seed=7, frames=75, **overrides):
    cfg = config.defaults()
    source = SyntheticSource(seed=seed, frames=frames, realtime=True)
    metrics = Metrics()
    pipeline = build_pipeline(cfg, stages, source=source, metrics=metrics)
    for key, value in overrides.items():
        setattr(pipeline.settings, key, value)
    summary = pipeline.run()
    return pipeline, source, summary


def test_text_shown_over_each_sign_is_the_signs_text(stages):
    pipeline, source, summary = _run(stages)
    assert summary["frames"]["displayed"] >= 60
    assert summary["recognition"]["finished"] >= 5
    truth = source.truth_at(pipeline.last_frame.index)
    visible = [t for t in truth if (t.polygon.min(axis=0) > 0).all()
               and (t.polygon.max(axis=0) < (640, 360)).all()]
    assert visible, "the test scene must have fully visible text"
    assert pipeline.regions, "nothing was shown"
    placed, exact = 0, 0
    for region in pipeline.regions:
        best = max(truth, key=lambda t: polygon_iou(t.polygon, region.polygon))
        close = edit_distance(region.text, best.text) <= max(1, len(best.text) // 5)
        if polygon_iou(best.polygon, region.polygon) >= 0.5 and close:
            placed += 1
            exact += region.text == best.text
    # the shown regions sit on real lines, tracked to this frame, carrying those lines' text
    # (a misread letter allowed per five; the recognizer's accuracy is the benchmark's job)
    shown = [(r.text, r.polygon.round().tolist()) for r in pipeline.regions]
    assert placed >= max(1, int(0.8 * len(pipeline.regions))), shown
    assert exact >= 1, shown


class _Slow:
    """The real stage, made slow on purpose."""

    def __init__(self, inner, seconds):
        self.inner, self.seconds = inner, seconds

    def detect(self, image):
        time.sleep(self.seconds)
        return self.inner.detect(image)


def test_slow_recognition_is_discarded_and_counted(stages):
    slow = type(stages)(_Slow(stages.detector, 0.25), stages.recognizer, None,
                        stages.crop_line, stages.versions)
    pipeline, _, summary = _run(slow, frames=45)
    assert summary["recognition"]["discarded_late"] >= 2
    assert summary["misses"]["recognition_path"] >= 2
    assert summary["recognition"]["finished"] == summary["recognition"]["discarded_late"]
    assert pipeline.regions == []  # nothing late was shown
    # the slow recognition thread must not hold up the frame path: at most a fifth of the
    # displayed frames over budget on a loaded 2-core machine
    assert summary["misses"]["frame_path_rate"] < 0.2


def test_slow_frame_path_drops_frames_and_counts_misses(stages):
    cfg = config.defaults()
    source = SyntheticSource(seed=7, frames=60, realtime=True)
    metrics = Metrics()
    pipeline = build_pipeline(cfg, stages, source=source, metrics=metrics,
                              show=lambda image, frame: time.sleep(0.07) is None)
    original = pipeline.renderer.render

    def slow_render(*args, **kwargs):
        time.sleep(0.025)
        return original(*args, **kwargs)

    pipeline.renderer.render = slow_render
    summary = pipeline.run()
    assert summary["misses"]["frame_path"] == summary["frames"]["displayed"]
    assert summary["frames"]["dropped"] >= 20
    assert summary["frames"]["captured"] == 60


def test_corrupt_model_is_refused_with_a_clear_error(tmp_path):
    shutil.copytree(ROOT / "models", tmp_path / "models")
    artifact = ModelStore(tmp_path / "models").get("detector").artifact   # the one that runs
    artifact.write_bytes(artifact.read_bytes()[:-100])
    cfg = config.build({"models": {"store": str(tmp_path / "models")}}, config.defaults_schema())
    with pytest.raises(ModelStoreError, match="detector .* failed its checks: .*sha256"):
        load_stages(cfg, translate=False)


def _service_config(tmp_path: Path, log_file, telemetry: str, extra: str = "") -> Path:
    """A copy of the model store and a service config using it, headless, no HUD."""
    shutil.copytree(ROOT / "models", tmp_path / "models")
    config_file = tmp_path / "edgelens.toml"
    config_file.write_text(f'[models]\nstore = "{tmp_path / "models"}"\n'
                           f'[logging]\nfile = "{log_file}"\n[pipeline]\nhud = false\n'
                           f'[telemetry]\n{telemetry}\n{extra}')
    return config_file


def test_service_keeps_serving_when_a_reload_fails_and_stops_cleanly(tmp_path):
    log_file = tmp_path / "edgelens.jsonl"
    telemetry = tmp_path / "telemetry.sqlite"
    config_file = _service_config(tmp_path, log_file, f'db_path = "{telemetry}"')
    service = subprocess.Popen([sys.executable, "-m", "device", "run", "--config",
                                str(config_file)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(log_file, "service started")
        artifact = ModelStore(tmp_path / "models").get("recognizer").artifact
        artifact.write_bytes(b"garbage")
        service.send_signal(signal.SIGHUP)
        _wait_for(log_file, "reload failed; keeping the running config and models")
        assert service.poll() is None
        time.sleep(1.0)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=20) == 0
    finally:
        if service.poll() is None:
            service.kill()
    text = log_file.read_text()
    assert "recognizer" in text and "sha256" in text
    assert '"event": "service stopped"' in text
    with sqlite3.connect(telemetry) as db:  # what the service recorded for the sync agent
        kinds = dict(db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind"))
    assert kinds.get("prediction", 0) >= 1 and kinds.get("metric", 0) >= 1
    assert kinds.get("log", 0) >= 2


def _wait_for(path: Path, event: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and event in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{event!r} not logged within {timeout} s")


@pytest.mark.slow
def test_service_runs_without_a_usable_log_file_or_telemetry_store(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    config_file = _service_config(tmp_path, tmp_path,
                                  f'db_path = "{tmp_path / "a-file" / "t.sqlite"}"')
    service = subprocess.Popen([sys.executable, "-m", "device", "run", "--config",
                                str(config_file)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while "service started" not in seen and time.monotonic() < deadline:
            line = service.stdout.readline()
            if not line:
                break
            seen += line
        assert "service started" in seen, seen
        assert "log file unavailable" in seen and "telemetry store unavailable" in seen
        service.send_signal(signal.SIGTERM)
        out, _ = service.communicate(timeout=30)
        assert service.returncode == 0, out
        assert "Traceback" not in seen + out
    finally:
        if service.poll() is None:
            service.kill()


@pytest.mark.slow
def test_logs_still_reach_the_telemetry_store_after_a_reload(tmp_path):
    log_file = tmp_path / "edgelens.jsonl"
    telemetry = tmp_path / "telemetry.sqlite"
    config_file = _service_config(tmp_path, log_file, f'db_path = "{telemetry}"')
    service = subprocess.Popen([sys.executable, "-m", "device", "run", "--config",
                                str(config_file)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_for(log_file, "service started")
        service.send_signal(signal.SIGHUP)
        _wait_for(log_file, "config reloaded")
        time.sleep(1.0)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=20) == 0
    finally:
        if service.poll() is None:
            service.kill()
    with sqlite3.connect(telemetry) as db:
        bodies = [row[0] for row in db.execute("SELECT body FROM records WHERE kind = 'log'")]
    text = " ".join(str(b) for b in bodies)
    assert "config reloaded" in text and "service stopped" in text


@pytest.mark.slow
def test_the_service_counts_recorded_video_frames_in_its_summary(tmp_path):
    import cv2
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((360, 640, 3), 90, np.uint8))
    log_file = tmp_path / "edgelens.jsonl"
    config_file = _service_config(
        tmp_path, log_file, "enabled = false",
        f'[source]\nuri = "images:{folder}"\nimage_dwell_s = 1.0\nfps = 10.0\n'
        f'[display]\nrecord = "{tmp_path / "out.avi"}"\n')
    out = subprocess.run([sys.executable, "-m", "device", "run", "--config", str(config_file)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    stopped = [json.loads(line) for line in log_file.read_text().splitlines()
               if '"pipeline stopped"' in line]
    counters = stopped[-1]["fields"]["summary"]["counters"]
    assert counters.get("frames_recorded", 0) >= 5      # the display's count reached it
